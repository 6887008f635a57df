import assert from "node:assert/strict";
import { SubscriptionTable } from "../../oracle/_subscriptions.ts";
import { OracleStateMachine } from "../../oracle/state_machine.ts";
import type { ChannelEvent, OracleErrorResult } from "../../oracle/commands.ts";

/** A table over an empty state machine, recording what it sends. */
function setup(perClient = 2) {
  const source = new OracleStateMachine();
  const sent: { client: string; id: number; seqs: number[] }[] = [];
  const ended: { client: string; id: number; code: string }[] = [];
  const table = new SubscriptionTable({
    events: (client, id, events) =>
      sent.push({ client, id, seqs: events.map((e) => e.seq) }),
    end: (client, id, error: OracleErrorResult) =>
      ended.push({ client, id, code: error.code }),
  }, { window: 16, eventsPerFrame: 8, perClient });
  let seq = 0;
  const publish = (path: string) => {
    seq++;
    const event: ChannelEvent = { path, seq, rev: seq, data: null };
    table.offer(event);
    table.flush(source);
  };
  return { source, sent, ended, table, publish };
}

Deno.test("a client may hold at most perClient subscriptions; replacing one does not count twice", () => {
  const { source, ended, table } = setup(2);
  table.subscribe(source, "c1", 1, "/a", false, 1);
  table.subscribe(source, "c1", 1, "/b", false, 1); // replaces id 1
  table.subscribe(source, "c1", 2, "/a", false, 1);
  assert.equal(table.size, 2);
  assert.deepEqual(ended, []);
  table.subscribe(source, "c1", 3, "/a", false, 1);
  assert.deepEqual(ended, [{ client: "c1", id: 3, code: "overloaded" }]);
  table.subscribe(source, "c2", 1, "/a", false, 1); // another client's own limit
  assert.equal(table.size, 3);
});

Deno.test("dropping a client removes its subscriptions only, and frees its limit", () => {
  const { source, sent, ended, table, publish } = setup(2);
  table.subscribe(source, "c1", 1, "/a", false, 1);
  table.subscribe(source, "c1", 2, "/a", false, 1);
  table.subscribe(source, "c2", 1, "/a", false, 1);
  table.dropClient("c1");
  assert.equal(table.size, 1);
  publish("/a");
  assert.deepEqual(sent, [{ client: "c2", id: 1, seqs: [1] }]);
  table.subscribe(source, "c1", 3, "/a", false, 2);
  table.subscribe(source, "c1", 4, "/a", false, 2);
  assert.deepEqual(ended, []);
});

Deno.test("endAll ends every subscription of every client", () => {
  const { source, ended, table } = setup(2);
  table.subscribe(source, "c1", 1, "/a", false, 1);
  table.subscribe(source, "c2", 7, "/", true, 1);
  table.unsubscribe("c1", 1);
  table.subscribe(source, "c1", 2, "/a", false, 1);
  table.endAll({ code: "not_leader", message: "gone" });
  assert.deepEqual(
    ended.map((e) => `${e.client}/${e.id}/${e.code}`).sort(),
    ["c1/2/not_leader", "c2/7/not_leader"],
  );
  assert.equal(table.size, 0);
});
