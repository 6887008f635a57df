import assert from "node:assert/strict";
import { OracleStateMachine } from "../../oracle/state_machine.ts";
import { code, Harness, ok } from "./_sm_harness.ts";

const G = "/apps/kv";

/** A group with A (session a) and B (session b) in view 2, and sessions c, d open. */
function twoMembers(): Harness {
  const h = new Harness();
  for (const s of ["a", "b", "c", "d"]) h.open(s);
  h.call("a", { op: "join", group: G, member: "A" });
  h.call("b", { op: "join", group: G, member: "B" });
  h.call("a", { op: "flushed", group: G, viewId: 2, member: "A" });
  return h;
}

/** Every one of `members` (member X of session x) reports `flushed` for `viewId`. */
function flushAll(h: Harness, viewId: number, members: string[]): void {
  for (const m of members) {
    h.call(m.toLowerCase(), { op: "flushed", group: G, viewId, member: m });
  }
}

const AB = [{ member: "A", session: "a" }, { member: "B", session: "b" }];

Deno.test("a gbcast is a proposal with the same members that carries it", () => {
  const h = twoMembers();
  assert.deepEqual(
    h.call("a", { op: "gbcast", group: G, member: "A", seq: 1, data: "AQI=" }),
    { ok: { viewId: 3 } },
  );
  const message = { member: "A", seq: 1, data: "AQI=" };
  assert.deepEqual(h.views(G).at(-1), {
    type: "propose",
    group: G,
    viewId: 3,
    fromViewId: 2,
    members: AB,
    survivors: ["A", "B"],
    joining: [],
    leaving: [],
    messages: [message],
  });
  h.call("a", { op: "flushed", group: G, viewId: 3, member: "A" });
  h.call("b", { op: "flushed", group: G, viewId: 3, member: "B" });
  assert.deepEqual(h.views(G).at(-1), {
    type: "view",
    group: G,
    viewId: 3,
    members: AB,
    joined: [],
    left: [],
    messages: [message],
  });
});

Deno.test("a retried gbcast is taken once; only a member of the installed view may send one", () => {
  const h = twoMembers();
  h.call("a", { op: "gbcast", group: G, member: "A", seq: 1, data: "" });
  const before = h.views(G).length;
  assert.deepEqual(
    h.call("a", { op: "gbcast", group: G, member: "A", seq: 1, data: "" }),
    { ok: { viewId: 3 } },
  );
  assert.equal(h.views(G).length, before, "no second proposal");
  assert.equal(
    code(
      h.call("b", { op: "gbcast", group: G, member: "A", seq: 2, data: "" }),
    ),
    "membership",
    "another session's member",
  );
  assert.equal(
    code(
      h.call("c", { op: "gbcast", group: G, member: "C", seq: 1, data: "" }),
    ),
    "membership",
    "not a member",
  );
  h.call("c", { op: "join", group: G, member: "C" });
  assert.match(
    JSON.stringify(
      h.call("c", { op: "gbcast", group: G, member: "C", seq: 1, data: "" }),
    ),
    /not in the installed view/,
    "a joiner must wait for its view",
  );
});

Deno.test("queued gbcasts and membership changes keep their order", () => {
  const h = twoMembers();
  // A join is in flight; then a gbcast of B, a join of D, a gbcast of A.
  h.call("c", { op: "join", group: G, member: "C" });
  h.call("b", { op: "gbcast", group: G, member: "B", seq: 1, data: "Ag==" });
  h.call("d", { op: "join", group: G, member: "D" });
  h.call("a", { op: "gbcast", group: G, member: "A", seq: 1, data: "AQ==" });
  h.call("a", { op: "flushed", group: G, viewId: 3, member: "A" });
  h.call("b", { op: "flushed", group: G, viewId: 3, member: "B" });
  const gbcastB = h.views(G).at(-1)!;
  assert.equal(gbcastB.type, "propose");
  assert.deepEqual(gbcastB.members.map((m) => m.member), ["A", "B", "C"]);
  assert.deepEqual(gbcastB.messages, [{ member: "B", seq: 1, data: "Ag==" }]);
  flushAll(h, 4, ["A", "B", "C"]);
  const joinD = h.views(G).at(-1)!;
  assert.equal(joinD.type, "propose");
  assert.deepEqual(joinD.members.map((m) => m.member), ["A", "B", "C", "D"]);
  assert.equal(joinD.messages, undefined);
  flushAll(h, 5, ["A", "B", "C"]);
  const gbcastA = h.views(G).at(-1)!;
  assert.deepEqual(gbcastA.messages, [{ member: "A", seq: 1, data: "AQ==" }]);
  assert.equal(gbcastA.viewId, 6);
});

Deno.test("a removal during a gbcast keeps the message unless its sender is removed", () => {
  const h = twoMembers();
  h.call("c", { op: "join", group: G, member: "C" });
  h.call("a", { op: "flushed", group: G, viewId: 3, member: "A" });
  h.call("b", { op: "flushed", group: G, viewId: 3, member: "B" });
  h.call("a", { op: "gbcast", group: G, member: "A", seq: 1, data: "" });
  h.call("b", { op: "gbcast", group: G, member: "B", seq: 1, data: "" });
  // C fails mid-flush: the proposal restarts with A's message.
  ok(h.call("d", { op: "remove", group: G, member: "C", reason: "silent" }));
  const restarted = h.views(G).at(-1)!;
  assert.equal(restarted.type, "propose");
  assert.equal(restarted.viewId, 5);
  assert.deepEqual(restarted.messages, [{ member: "A", seq: 1, data: "" }]);
  // A fails too: its message goes with it, and B's queued one stays queued.
  ok(h.call("d", { op: "remove", group: G, member: "A", reason: "silent" }));
  const last = h.views(G).at(-1)!;
  assert.equal(last.viewId, 6);
  assert.equal(last.messages, undefined);
  h.call("b", { op: "flushed", group: G, viewId: 6, member: "B" });
  const next = h.views(G).at(-1)!;
  assert.equal(next.type, "propose");
  assert.deepEqual(next.messages, [{ member: "B", seq: 1, data: "" }]);
});

Deno.test("a snapshot keeps gbcasts in flight, queued, and each member's last number", () => {
  const h = twoMembers();
  h.call("a", { op: "gbcast", group: G, member: "A", seq: 4, data: "AQI=" });
  h.call("b", { op: "gbcast", group: G, member: "B", seq: 1, data: "Ag==" });
  const restored = OracleStateMachine.restore(h.sm.snapshot());
  assert.equal(restored.digest(), h.sm.digest());
  h.sm = restored;
  assert.deepEqual(
    h.call("a", { op: "gbcast", group: G, member: "A", seq: 3, data: "" }),
    { ok: { viewId: 3 } },
    "an old number is a retry",
  );
  h.call("a", { op: "flushed", group: G, viewId: 3, member: "A" });
  h.call("b", { op: "flushed", group: G, viewId: 3, member: "B" });
  const views = h.views(G);
  assert.deepEqual(views.at(-2)!.messages, [
    { member: "A", seq: 4, data: "AQI=" },
  ]);
  assert.deepEqual(views.at(-1)!.messages, [
    { member: "B", seq: 1, data: "Ag==" },
  ]);
});

Deno.test("a gbcast whose data is not base64 or too long is refused", () => {
  const h = twoMembers();
  for (const data of ["AQI", "A?==", "A".repeat(16_388)]) {
    assert.equal(
      code(h.call("a", { op: "gbcast", group: G, member: "A", seq: 1, data })),
      "invalid",
      data.slice(0, 8),
    );
  }
});
