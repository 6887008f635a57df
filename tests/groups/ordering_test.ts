import assert from "node:assert/strict";
import { abcast } from "../../groups/abcast.ts";
import { cbcast } from "../../groups/cbcast.ts";
import { fbcast } from "../../groups/fbcast.ts";
import { GroupMember } from "../../groups/member.ts";
import type { OrderedMessage } from "../../groups/ordering.ts";
import { Simulation } from "../../sim/mod.ts";

const VIEW = { viewId: 1, members: ["a", "b", "c"] };
const payload = new Uint8Array(0);
const noDefer = () => {
  throw new Error("cbcast and fbcast defer nothing");
};
const noEmit = () => {
  throw new Error("cbcast and fbcast emit nothing");
};

function message(
  sender: string,
  seq: number,
  header: Uint8Array,
): OrderedMessage {
  return { sender, seq, header, payload };
}

Deno.test("cbcast: concurrent messages go out on arrival; a message waits for what its sender had delivered, transitively", () => {
  // Messages arrive in each sender's order (the reliable layer is FIFO).
  const [a, b, c] = VIEW.members.map((m) =>
    cbcast.create(VIEW, m, noEmit, noDefer)
  );
  const a1 = message("a", 1, a.stamp());
  const a2 = message("a", 2, a.stamp());
  // b delivered a1 only, then sends b1 and b2: they depend on a1, not a2.
  assert.deepEqual(b.arrive(a1), [a1]);
  const b1 = message("b", 1, b.stamp());
  const b2 = message("b", 2, b.stamp());
  // c gets b's messages first: they wait for a1.
  assert.deepEqual(c.arrive(b1), []);
  assert.deepEqual(c.arrive(b2), []);
  assert.equal(c.held, 2);
  assert.deepEqual(c.arrive(a1), [a1, b1, b2]);
  // a2 is concurrent with b's: it goes out on arrival.
  assert.deepEqual(c.arrive(a2), [a2]);
  assert.equal(c.held, 0);
  // A chain: c delivered b2, then sends c1; a, which has its own two but
  // nothing of b's, holds c1 until b1 and b2 are in.
  const c1 = message("c", 1, c.stamp());
  assert.deepEqual(a.arrive(a1), [a1]);
  assert.deepEqual(a.arrive(a2), [a2]);
  assert.deepEqual(a.arrive(c1), []);
  assert.deepEqual(a.arrive(b1), [b1]);
  assert.deepEqual(a.arrive(b2), [b2, c1]);
});

Deno.test("cbcast: own messages are delivered in the order sent; a malformed stamp is dropped and counted", () => {
  const a = cbcast.create(VIEW, "a", noEmit, noDefer);
  const first = message("a", 1, a.stamp());
  const second = message("a", 2, a.stamp());
  assert.deepEqual(a.arrive(first), [first]);
  assert.deepEqual(a.arrive(second), [second]);
  assert.deepEqual(a.arrive(message("b", 1, new Uint8Array(3))), []);
  assert.deepEqual(a.arrive(message("x", 1, new Uint8Array(12))), []);
  assert.equal((a as unknown as { malformed: number }).malformed, 2);
  assert.equal(a.held, 0);
});

Deno.test("cbcast: at the end of the view, what still waits for a message nobody received is dropped", () => {
  const [a, b, c] = VIEW.members.map((m) =>
    cbcast.create(VIEW, m, noEmit, noDefer)
  );
  const a1 = message("a", 1, a.stamp());
  b.arrive(a1);
  const b1 = message("b", 1, b.stamp());
  assert.deepEqual(c.arrive(b1), []);
  assert.deepEqual(c.drain(), []);
});

Deno.test("fbcast: every message on arrival, nothing held", () => {
  const s = fbcast.create(VIEW, "a", noEmit, noDefer);
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

/**
 * abcast in view [s, b, c]: the sequencer `s`, whose ORDERs are kept in
 * `orders` and whose deferred work waits in `deferred`, and member `c`.
 */
function sequencerAndMember() {
  const view = { viewId: 1, members: ["s", "b", "c"] };
  const orders: Uint8Array[] = [];
  const deferred: (() => void)[] = [];
  const s = abcast.create(
    view,
    "s",
    (header) => orders.push(header),
    (callback) => deferred.push(callback),
  );
  const c = abcast.create(view, "c", noEmit, noDefer);
  return { s, c, orders, deferred };
}

Deno.test("abcast: the sequencer's ORDERs decide; an ORDER from another member or malformed is dropped; at the end of the view the unordered go by sender then seq", () => {
  const { s, c, orders, deferred } = sequencerAndMember();
  const m = (sender: string, seq: number) => message(sender, seq, c.stamp());
  const [b1, c1, b2] = [m("b", 1), m("c", 1), m("b", 2)];
  // The sequencer orders in arrival order, c1 then b1, each turn's
  // decisions in one ORDER at the end of the turn.
  assert.deepEqual(s.arrive(c1), []);
  assert.equal(orders.length, 0);
  deferred.splice(0).forEach((run) => run());
  assert.deepEqual(s.arrive(b1), []);
  deferred.splice(0).forEach((run) => run());
  assert.equal(orders.length, 2);
  const [o1, o2] = orders.map((header, i) => message("s", i + 1, header));
  assert.deepEqual(s.arrive(o1), [c1]);
  assert.deepEqual(s.arrive(o2), [b1]);
  // c sees data first, in another order, and waits for the ORDERs.
  assert.deepEqual(c.arrive(b1), []);
  assert.deepEqual(c.arrive(b2), []);
  // An ORDER from a member that is not the sequencer, or malformed: dropped.
  assert.deepEqual(c.arrive(message("b", 3, orders[0])), []);
  assert.deepEqual(c.arrive(message("s", 9, new Uint8Array([1, 0]))), []);
  assert.equal((c as unknown as { malformed: number }).malformed, 2);
  assert.deepEqual(c.arrive(o1), []); // c1 has not arrived
  assert.deepEqual(c.arrive(c1), [c1]);
  assert.deepEqual(c.arrive(o2), [b1]);
  // b2 was never ordered (the sequencer crashed): delivered at the end.
  assert.equal(c.held, 1);
  assert.deepEqual(c.drain(), [b2]);
});

Deno.test("abcast: the sequencer's own messages are ordered where they stand in its stream, without an ORDER; another member cannot claim that", () => {
  const { s, c, orders, deferred } = sequencerAndMember();
  const b1 = message("b", 1, c.stamp());
  // The sequencer decides b1, then multicasts its own s1 in the same turn:
  // its stream is s1, then the ORDER of b1.
  assert.deepEqual(s.arrive(b1), []);
  const s1 = message("s", 1, s.stamp());
  deferred.splice(0).forEach((run) => run());
  const o2 = message("s", 2, orders[0]);
  assert.deepEqual(s.arrive(s1), [s1], "no ORDER needed");
  assert.deepEqual(s.arrive(o2), [b1]);
  // c receives the sequencer's stream in FIFO order: the same order.
  assert.deepEqual(c.arrive(s1), [s1]);
  assert.deepEqual(c.arrive(o2), []);
  assert.deepEqual(c.arrive(b1), [b1]);
  // Only the sequencer's messages can be ordered by themselves.
  assert.deepEqual(c.arrive(message("b", 2, s1.header)), []);
  assert.equal((c as unknown as { malformed: number }).malformed, 1);
  assert.equal(orders.length, 1, "s1 was never put in an ORDER");
});
