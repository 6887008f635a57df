import assert from "node:assert/strict";
import { GroupMember } from "../../groups/member.ts";
import type { GbcastMessage } from "../../oracle/commands.ts";
import { toBase64 } from "../../runtime/_base64.ts";
import { Simulation } from "../../sim/mod.ts";
import { encoder, group, members } from "./_two_members.ts";

Deno.test("gbcast: delivered after every message of the view it ends, before the next view, alike at every member", () => {
  const { sim, log, requests, flushed, sent, nodes, feed } = group();
  const [a, b] = [nodes.get("a")!, nodes.get("b")!];
  a.multicast(encoder.encode("m1"));
  b.multicast(encoder.encode("m2"), "cbcast");
  sim.runFor(50);
  assert.ok(a.multicast(encoder.encode("g"), "gbcast"));
  assert.ok(a.multicast(encoder.encode("m3")));
  assert.deepEqual(a.status().gbcastPending, true);
  assert.equal(a.status().queued, 1, "a's later send waits for its gbcast");

  sim.runFor(2_500);
  assert.ok(requests.length >= 3, "an unanswered request is repeated");
  assert.ok(requests.every((r) => r.seq === 1 && r.payload === "g"));

  const messages: GbcastMessage[] = [
    { member: "a", seq: 1, data: toBase64(encoder.encode("g")) },
  ];
  feed({
    type: "propose",
    group: "/g",
    viewId: 2,
    fromViewId: 1,
    members: members("a", "b"),
    survivors: ["a", "b"],
    joining: [],
    leaving: [],
    messages,
  });
  assert.deepEqual(sent.filter((s) => s.startsWith("gbcast")), [
    "gbcast g 1:1",
  ]);
  const asked = requests.length;
  sim.runFor(2_500);
  assert.equal(requests.length, asked, "no request once a proposal has it");
  assert.deepEqual(flushed.sort(), ["a 2", "b 2"]);

  feed({
    type: "view",
    group: "/g",
    viewId: 2,
    members: members("a", "b"),
    joined: [],
    left: [],
    messages,
  });
  sim.runFor(50);
  for (const me of ["a", "b"]) {
    const events = log.get(me)!;
    assert.deepEqual(
      events.slice(1, 3).sort(),
      ["cbcast m2 in 1", "fbcast m1 in 1"],
      me,
    );
    assert.deepEqual(events.slice(3), [
      "gbcast g in 1",
      "view 2",
      "fbcast m3 in 2",
    ], me);
  }
  assert.equal(a.status().gbcastPending, false);
  assert.equal(a.status().queued, 0);
});

Deno.test("gbcast: refused without an Oracle to order it, and above 12,288 bytes", () => {
  const sim = new Simulation({ seed: 1 });
  const plain = new GroupMember({
    me: "a",
    clock: sim.clock,
    send: () => true,
    deliver: () => {},
    viewInstalled: () => {},
    flushed: () => {},
    suspect: () => {},
  });
  assert.throws(
    () => plain.multicast(new Uint8Array(1), "gbcast"),
    /Unknown ordering strategy "gbcast": use one of fbcast, cbcast, abcast$/,
  );
  const { nodes } = group();
  assert.throws(
    () => nodes.get("a")!.multicast(new Uint8Array(12_289), "gbcast"),
    /too large: at most 12288 bytes/,
  );
  assert.ok(nodes.get("a")!.multicast(new Uint8Array(12_288), "gbcast"));
});
