import assert from "node:assert/strict";
import { cbcast } from "../../groups/cbcast.ts";
import { fbcast } from "../../groups/fbcast.ts";
import { GroupMember } from "../../groups/member.ts";
import type { OrderedMessage } from "../../groups/ordering.ts";
import { Simulation } from "../../sim/mod.ts";

const VIEW = { viewId: 1, members: ["a", "b", "c"] };
const payload = new Uint8Array(0);

function message(
  sender: string,
  seq: number,
  header: Uint8Array,
): OrderedMessage {
  return { sender, seq, header, payload };
}

Deno.test("cbcast: concurrent messages go out on arrival; a message waits for what its sender had delivered, transitively", () => {
  const [a, b, c] = VIEW.members.map((m) => cbcast.create(VIEW, m));
  const a1 = message("a", 1, a.stamp());
  const a2 = message("a", 2, a.stamp());
  // b delivered a1 only, then sends: b1 depends on a1, not on a2.
  assert.deepEqual(b.arrive(a1), [a1]);
  const b1 = message("b", 1, b.stamp());
  // c gets b1 first: it waits; a2 alone is not enough (a1 comes before it).
  assert.deepEqual(c.arrive(b1), []);
  assert.deepEqual(c.arrive(a2), []);
  assert.equal(c.held, 2);
  assert.deepEqual(c.arrive(a1), [a1, b1, a2]);
  assert.equal(c.held, 0);
});

Deno.test("cbcast: own messages are delivered in the order sent; a malformed stamp is dropped and counted", () => {
  const a = cbcast.create(VIEW, "a");
  const first = message("a", 1, a.stamp());
  const second = message("a", 2, a.stamp());
  assert.deepEqual(a.arrive(first), [first]);
  assert.deepEqual(a.arrive(second), [second]);
  assert.deepEqual(a.arrive(message("b", 1, new Uint8Array(3))), []);
  assert.deepEqual(a.arrive(message("x", 1, new Uint8Array(12))), []);
  assert.equal((a as unknown as { malformed: number }).malformed, 2);
  assert.equal(a.held, 0);
});

Deno.test("cbcast: drain delivers nothing more and keeps what waits (a restarted flush may still bring its cause)", () => {
  const [a, b, c] = VIEW.members.map((m) => cbcast.create(VIEW, m));
  const a1 = message("a", 1, a.stamp());
  b.arrive(a1);
  const b1 = message("b", 1, b.stamp());
  assert.deepEqual(c.arrive(b1), []);
  assert.deepEqual(c.drain(), []);
  assert.equal(c.held, 1);
  assert.deepEqual(c.arrive(a1), [a1, b1]);
});

Deno.test("fbcast: every message on arrival, nothing held", () => {
  const s = fbcast.create(VIEW, "a");
  const m = message("b", 1, s.stamp());
  assert.equal(m.header.length, 0);
  assert.deepEqual(s.arrive(m), [m]);
  assert.deepEqual(s.drain(), []);
  assert.equal(s.held, 0);
});

Deno.test("member: an unknown strategy is refused with the known ones named; strategies need unique names and codes", () => {
  const sim = new Simulation({ seed: 1 });
  const options = {
    me: "a",
    clock: sim.clock,
    send: () => true,
    deliver: () => {},
    viewInstalled: () => {},
    flushed: () => {},
    suspect: () => {},
  };
  const member = new GroupMember(options);
  assert.throws(
    () => member.multicast(new Uint8Array(1), "zbcast"),
    /Unknown ordering strategy "zbcast": use one of fbcast, cbcast/,
  );
  assert.throws(
    () =>
      new GroupMember({
        ...options,
        strategies: [fbcast, { ...cbcast, code: fbcast.code }],
      }),
    /Invalid strategy "cbcast"/,
  );
});
