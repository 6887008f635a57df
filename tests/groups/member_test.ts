import assert from "node:assert/strict";
import { GroupMember } from "../../groups/member.ts";
import { ackFrame } from "../../groups/_state_transfer.ts";
import type { ViewEvent } from "../../oracle/commands.ts";
import { Simulation } from "../../sim/mod.ts";
import { simMembers } from "./_sim_members.ts";

const m = (...names: string[]) =>
  names.map((member) => ({ member, session: member }));

function view(
  viewId: number,
  members: string[],
  joined: string[],
  left: string[] = [],
): ViewEvent {
  return {
    type: "view",
    group: "/g",
    viewId,
    members: m(...members),
    joined,
    left,
  };
}

/** A chunk frame of transfer `transfer`: chunk `index` of `count`. */
function chunk(transfer: number, count: number, index: number): Uint8Array {
  const frame = new Uint8Array(15);
  const data = new DataView(frame.buffer);
  frame[0] = 0xc8;
  frame[1] = 1;
  data.setUint32(2, transfer);
  data.setUint32(6, count);
  data.setUint32(10, index);
  frame[14] = 42;
  return frame;
}

function member(sim: Simulation, events: string[]) {
  return new GroupMember({
    me: "j",
    clock: sim.clock,
    send: () => true,
    deliver: () => events.push("deliver"),
    viewInstalled: (v) => events.push(`view ${v.viewId}`),
    flushed: () => {},
    suspect: () => {},
    excluded: (v) => events.push(`excluded ${v.viewId}`),
    state: {
      checkpoint: () => new Uint8Array([1]),
      restore: (bytes) => events.push(`restore ${[...bytes]}`),
    },
    stateLost: () => events.push("lost"),
  });
}

Deno.test("member: a new member waits for its state from the first old member, and restores it", () => {
  const sim = new Simulation({ seed: 1 });
  const events: string[] = [];
  const j = member(sim, events);
  j.onViewEvent(view(2, ["p", "j"], ["j"]));
  assert.equal(j.status().awaitingState, true);
  j.receive("x", chunk(2, 1, 0)); // not the provider: ignored
  assert.equal(j.status().awaitingState, true);
  j.receive("p", chunk(2, 1, 0));
  assert.equal(j.status().awaitingState, false);
  assert.deepEqual(events, ["view 2", "restore 42"]);
  // A stray ack is harmless.
  j.receive("p", ackFrame(2, 1));
});

Deno.test("member: a new member waits through later views while its provider stays, and gets those views after its state, in order", () => {
  const sim = new Simulation({ seed: 1 });
  const events: string[] = [];
  const j = member(sim, events);
  j.onViewEvent(view(2, ["p", "j"], ["j"]));
  j.onViewEvent(view(3, ["p", "j", "k"], ["k"]));
  assert.equal(j.status().awaitingState, true);
  assert.deepEqual(events, ["view 2"]);
  j.receive("p", chunk(2, 1, 0));
  assert.deepEqual(events, ["view 2", "restore 42", "view 3"]);
});

Deno.test("member: a new member whose provider leaves before the state arrived stops; one excluded meanwhile restores nothing", () => {
  const sim = new Simulation({ seed: 1 });
  const cut: string[] = [];
  const a = member(sim, cut);
  a.onViewEvent(view(2, ["p", "j"], ["j"]));
  a.onViewEvent(view(3, ["j", "k"], ["k"], ["p"]));
  assert.deepEqual(cut, ["view 2", "lost"]);
  a.receive("p", chunk(2, 1, 0));
  assert.deepEqual(cut, ["view 2", "lost"], "closed: nothing restored");

  const excluded: string[] = [];
  const b = member(sim, excluded);
  b.onViewEvent(view(2, ["p", "j"], ["j"]));
  b.onViewEvent(view(3, ["p"], [], ["j"]));
  b.receive("p", chunk(2, 1, 0));
  assert.deepEqual(excluded, ["view 2", "excluded 3"]);
  assert.equal(b.status().awaitingState, false);
});

Deno.test("member: sends queued behind a full window go out once it reopens (none stall)", () => {
  const sim = new Simulation({ seed: 3 });
  const got: number[] = [];
  const members = simMembers(sim, ["a", "b"], (me) => ({
    deliver: (message) => {
      if (me === "b") got.push(message.payload[0]);
    },
    reliable: { window: 4 },
  }));
  sim.runFor(1);
  for (const member of members.values()) {
    member.onViewEvent(view(1, ["a", "b"], ["a", "b"]));
  }
  const a = members.get("a")!;
  for (let i = 0; i < 50; i++) assert.ok(a.multicast(new Uint8Array([i])));
  assert.ok(a.status().queued > 0, "the window of 4 held most back");
  sim.runFor(2_000);
  assert.equal(a.status().queued, 0);
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i));
});

Deno.test("member: a flush echoes a large backlog in frames that fit a transport frame", () => {
  const sim = new Simulation({ seed: 5 });
  const echoSizes: number[] = [];
  const flushed: string[] = [];
  const got = new Map<string, number>();
  const members = simMembers(sim, ["a", "b", "c"], (me, env) => ({
    send: (to, frame) => {
      if (frame[0] === 0xc7 && frame[1] === 2) echoSizes.push(frame.length);
      return env.transport.send(to, frame);
    },
    deliver: () => got.set(me, (got.get(me) ?? 0) + 1),
    flushed: (viewId) => flushed.push(`${me} ${viewId}`),
  }));
  sim.runFor(1);
  for (const member of members.values()) {
    member.onViewEvent(view(1, ["a", "b", "c"], ["a", "b", "c"]));
  }
  // c hears nothing from a; a sends 200 KB, which b receives; a crashes.
  sim.partition(["a"], ["c"], { oneWay: true });
  const a = members.get("a")!;
  for (let i = 0; i < 200; i++) a.multicast(new Uint8Array(1000).fill(i));
  sim.runFor(20);
  assert.equal(got.get("b"), 200);
  assert.equal(got.get("c") ?? 0, 0);
  sim.crash("a");
  const proposal: ViewEvent = {
    type: "propose",
    group: "/g",
    viewId: 2,
    fromViewId: 1,
    members: m("b", "c"),
    survivors: ["b", "c"],
    joining: [],
    leaving: ["a"],
  };
  members.get("b")!.onViewEvent(proposal);
  members.get("c")!.onViewEvent(proposal);
  sim.runFor(500);
  assert.deepEqual(flushed.sort(), ["b 2", "c 2"]);
  assert.equal(got.get("c"), 200, "c got a's messages from b");
  assert.ok(echoSizes.length >= 4, `${echoSizes.length} echo frames`);
  assert.ok(
    Math.max(...echoSizes) <= 62_000,
    `${Math.max(...echoSizes)} bytes`,
  );
});

Deno.test("member: a point-to-point message reaches the member it names; one from outside the view is dropped and counted", () => {
  const sim = new Simulation({ seed: 7 });
  const got: string[] = [];
  const members = simMembers(sim, ["a", "b", "x"], (me) => ({
    direct: (from, payload) => got.push(`${me} <- ${from}: ${[...payload]}`),
  }));
  sim.runFor(1);
  members.get("a")!.onViewEvent(view(1, ["a", "b"], ["a", "b"]));
  members.get("b")!.onViewEvent(view(1, ["a", "b"], ["a", "b"]));
  members.get("x")!.onViewEvent(view(1, ["x", "a"], ["x", "a"]));
  assert.ok(members.get("a")!.sendDirect("b", new Uint8Array([1, 2])));
  assert.equal(members.get("a")!.sendDirect("x", new Uint8Array([3])), false);
  // x believes a is in its view, but a's view does not have x.
  assert.ok(members.get("x")!.sendDirect("a", new Uint8Array([4])));
  sim.runFor(50);
  assert.deepEqual(got, ["b <- a: 1,2"]);
  assert.equal(members.get("a")!.status().badFrames, 1);
});

Deno.test("member: status totals sends across views, times the last flush and lists state transfers; the log has one line per view, flush and transfer, none per message", () => {
  const sim = new Simulation({ seed: 7 });
  const lines: { member: string; event: string; [k: string]: unknown }[] = [];
  const flushedAt = new Map<string, number>();
  const members = simMembers(sim, ["a", "b", "j"], (me) => ({
    logger: {
      log: (_level, event, fields) =>
        lines.push({ member: me, event, ...fields }),
    },
    flushed: () => flushedAt.set(me, sim.clock.now()),
    state: {
      checkpoint: () => new Uint8Array(5000).fill(3),
      restore: () => {},
    },
  }));
  sim.runFor(1);
  const [a, b, j] = ["a", "b", "j"].map((n) => members.get(n)!);
  a.onViewEvent(view(1, ["a", "b"], ["a", "b"]));
  b.onViewEvent(view(1, ["a", "b"], ["a", "b"]));
  for (let i = 0; i < 10; i++) a.multicast(new Uint8Array([i]));
  sim.runFor(50);
  const proposal: ViewEvent = {
    type: "propose",
    group: "/g",
    viewId: 2,
    fromViewId: 1,
    members: m("a", "b", "j"),
    survivors: ["a", "b"],
    joining: ["j"],
    leaving: [],
  };
  const proposedAt = sim.clock.now();
  a.onViewEvent(proposal);
  b.onViewEvent(proposal);
  sim.runFor(40);
  assert.equal(flushedAt.size, 2, "a and b flushed");
  for (const member of [a, b, j]) {
    member.onViewEvent(view(2, ["a", "b", "j"], ["j"]));
  }
  const installedAt = sim.clock.now();
  for (let i = 0; i < 5; i++) a.multicast(new Uint8Array([i]));
  sim.runFor(500);

  const status = a.status();
  assert.equal(status.sent, 15, "sends of both views");
  assert.equal(status.flushes, 1);
  assert.equal(
    status.lastFlushMs,
    Math.round((installedAt - proposedAt) * 1000) / 1000,
  );
  assert.equal(status.unstable, 0, "everything acknowledged by now");
  assert.deepEqual(
    status.stateTransfers.map((t) => [t.viewId, t.direction, t.peers, t.bytes]),
    [[2, "sent", ["j"], 5000]],
  );
  assert.deepEqual(
    j.status().stateTransfers.map((t) => [t.direction, t.peers, t.bytes]),
    [["received", ["a"], 5000]],
  );
  assert.equal(j.status().flushes, 0, "j joined: no flush of its own");
  const of = (member: string) =>
    lines.filter((l) => l.member === member).map((l) => l.event);
  assert.deepEqual(of("a"), [
    "group.view_installed",
    "group.flushed",
    "group.view_installed",
    "group.state_sent",
  ]);
  assert.deepEqual(of("j"), ["group.view_installed", "group.state_received"]);
  const flushLine = lines.find((l) =>
    l.member === "a" && l.event === "group.flushed"
  )!;
  const microseconds = (ms: number) => Math.round(ms * 1000) / 1000;
  assert.equal(flushLine.ms, microseconds(flushedAt.get("a")! - proposedAt));
});

Deno.test("member: a suspicion is logged once per member and view", () => {
  const sim = new Simulation({ seed: 8 });
  const events: string[] = [];
  const suspected: string[] = [];
  const members = simMembers(sim, ["a", "b"], (me) => ({
    logger: {
      log: (_level, event, fields) => {
        if (me === "a") events.push(`${event} ${fields?.suspect ?? ""}`.trim());
      },
    },
    suspect: (who) => suspected.push(who),
    reliable: { suspectAfterMs: 100 },
  }));
  sim.runFor(1);
  for (const member of members.values()) {
    member.onViewEvent(view(1, ["a", "b"], ["a", "b"]));
  }
  for (let i = 0; i < 5; i++) members.get("a")!.multicast(new Uint8Array([i]));
  sim.runFor(500);
  sim.crash("b");
  for (let i = 0; i < 5; i++) members.get("a")!.multicast(new Uint8Array([i]));
  sim.runFor(5_000);
  assert.deepEqual(suspected, ["b"]);
  assert.deepEqual(events, ["group.view_installed", "group.suspect b"]);
});
