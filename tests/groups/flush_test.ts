import assert from "node:assert/strict";
import {
  decodeFlush,
  encodeDone,
  encodeEcho,
  encodeVector,
  FLUSH_MAGIC,
} from "../../groups/_flush_frame.ts";
import { echoDuties, flushTarget } from "../../groups/_flush_plan.ts";
import type { ViewEvent } from "../../oracle/commands.ts";
import { group, members } from "./_two_members.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("flush frames: vector, echo and done round trip", () => {
  assert.deepEqual(
    decodeFlush(encodeVector({ proposal: 7, oldView: 6, received: [3, 0, 9] })),
    { kind: "vector", proposal: 7, oldView: 6, received: [3, 0, 9] },
  );
  const echo = decodeFlush(
    encodeEcho({
      oldView: 6,
      sender: 2,
      first: 4,
      payloads: [bytes(1, 2), bytes(), bytes(3)],
    }),
  );
  assert.ok("kind" in echo && echo.kind === "echo");
  assert.equal(echo.oldView, 6);
  assert.equal(echo.sender, 2);
  assert.equal(echo.first, 4);
  assert.deepEqual(echo.payloads.map((p) => [...p]), [[1, 2], [], [3]]);
  assert.deepEqual(decodeFlush(encodeDone({ proposal: 7, oldView: 6 })), {
    kind: "done",
    proposal: 7,
    oldView: 6,
  });
});

Deno.test("flush frames: every truncation, trailing byte and unknown kind is an error, never a throw", () => {
  const frames = [
    encodeVector({ proposal: 7, oldView: 6, received: [3, 0, 9] }),
    encodeEcho({ oldView: 6, sender: 1, first: 1, payloads: [bytes(5, 6)] }),
    encodeDone({ proposal: 7, oldView: 6 }),
  ];
  for (const frame of frames) {
    for (let length = 0; length < frame.length; length++) {
      const decoded = decodeFlush(frame.subarray(0, length));
      assert.ok("error" in decoded, `${frame[1]} cut at ${length}`);
    }
    const longer = new Uint8Array(frame.length + 1);
    longer.set(frame);
    assert.ok("error" in decodeFlush(longer), `${frame[1]} with a byte more`);
  }
  assert.match(
    (decodeFlush(bytes(FLUSH_MAGIC, 9)) as { error: string }).error,
    /unknown flush frame kind 9/,
  );
  assert.ok("error" in decodeFlush(bytes(0x47, 1)));
  const zeroSeq = encodeEcho({ oldView: 1, sender: 0, first: 1, payloads: [] });
  new DataView(zeroSeq.buffer).setUint32(8, 0);
  assert.match(
    (decodeFlush(zeroSeq) as { error: string }).error,
    /sequence numbers from 0/,
  );
});

Deno.test("flush plan: the target is what any survivor received; each missing range is echoed by exactly one survivor", () => {
  const senders = ["a", "b", "c", "d"];
  // d crashed; b and c both hold a's messages up to 5, a lacks d's 3-4.
  const survivors = [
    ["a", { a: 5, b: 2, c: 1, d: 2 }],
    ["b", { a: 5, b: 2, c: 1, d: 4 }],
    ["c", { a: 3, b: 2, c: 1, d: 4 }],
  ] as const;
  assert.deepEqual(flushTarget(senders, survivors.map(([, v]) => v)), {
    a: 5,
    b: 2,
    c: 1,
    d: 4,
  });
  const duties = ["a", "b", "c"].flatMap((me) =>
    echoDuties(me, senders, survivors).map((duty) => ({ me, ...duty }))
  );
  assert.deepEqual(duties, [
    // a is the first to hold a's 5 messages: it echoes 4-5 to c.
    { me: "a", member: "c", sender: "a", from: 4, to: 5 },
    // b is the first to hold d's 4: it echoes 3-4 to a (c has them).
    { me: "b", member: "a", sender: "d", from: 3, to: 4 },
  ]);
  // Nobody received anything from a sender: nothing to echo, target 0.
  assert.deepEqual(echoDuties("a", ["a", "x"], [["a", { a: 1 }]]), []);
  assert.equal(flushTarget(["x"], [{}]).x, 0);
});

Deno.test("flush: a vector sent from a view this member has not installed yet is kept for its proposal, not dropped", () => {
  const { sim, flushed, nodes } = group();
  const [a, b] = [nodes.get("a")!, nodes.get("b")!];
  const view2: ViewEvent = {
    type: "view",
    group: "/g",
    viewId: 2,
    members: members("a", "b"),
    joined: [],
    left: [],
  };
  const propose3: ViewEvent = {
    type: "propose",
    group: "/g",
    viewId: 3,
    fromViewId: 2,
    members: members("a", "b"),
    survivors: ["a", "b"],
    joining: [],
    leaving: [],
  };
  // The Oracle's events reach b first: b installs view 2 and flushes for
  // view 3 while a is still in view 1.
  for (const member of [a, b]) {
    member.onViewEvent({ ...propose3, viewId: 2, fromViewId: 1 });
  }
  sim.runFor(20);
  const badBefore = a.status().badFrames;
  b.onViewEvent(view2);
  b.onViewEvent(propose3);
  sim.runFor(5);
  a.onViewEvent(view2);
  a.onViewEvent(propose3);
  // Well before b resends its vector (every 50 ms), a has it.
  sim.runFor(10);
  assert.equal(a.status().badFrames, badBefore);
  assert.ok(flushed.includes("a 3"), `a flushed: ${flushed}`);
});
