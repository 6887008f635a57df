import assert from "node:assert/strict";
import {
  dataHeaderSize,
  decodeFrame,
  FrameWriter,
  type GroupFrame,
} from "../../groups/_frame.ts";
import {
  ReliableMulticast,
  type ReliableMulticastOptions,
} from "../../groups/reliable.ts";
import type { GroupView } from "../../groups/types.ts";
import {
  type Clock,
  Simulation,
  type SimulationOptions,
  type TimerId,
} from "../../sim/mod.ts";

type Tuning = Partial<
  Omit<ReliableMulticastOptions, "view" | "me" | "clock" | "send" | "deliver">
>;

/** One member under test and what its callbacks saw. */
interface Member {
  rm: ReliableMulticast;
  /** Seqs delivered, per sender, in delivery order. */
  got: Map<string, number[]>;
  slow: string[];
  suspected: string[];
  windowOpens: number;
  /** Multicasts that succeeded. */
  sent: number;
  /** Timers set and neither fired nor cleared, and the most there ever were. */
  timers: { pending: Set<TimerId>; most: number };
}

const text = new TextEncoder();
const untext = new TextDecoder();

/** The payload of `sender`'s message `seq`, padded to `size`: checked on delivery. */
function payloadOf(sender: string, seq: number, size = 0): Uint8Array {
  return text.encode(`${sender}:${seq}`.padEnd(size));
}

/** What a test adds to the harness's callbacks. */
interface Hooks {
  deliver?(me: string, sender: string, seq: number): void;
  windowOpen?(me: string): void;
}

/** Starts one simulated node per member of `view`, each running a ReliableMulticast. */
function group(
  sim: Simulation,
  view: GroupView,
  tuning: Tuning = {},
  hooks: Hooks = {},
): Map<string, Member> {
  const members = new Map<string, Member>();
  for (const me of view.members) {
    sim.addNode(me, (env) => {
      const record: Omit<Member, "rm"> = {
        got: new Map(view.members.map((m) => [m, []])),
        slow: [],
        suspected: [],
        windowOpens: 0,
        sent: 0,
        timers: { pending: new Set(), most: 0 },
      };
      const { timers } = record;
      const { pending } = timers;
      const clock: Clock = {
        now: () => env.clock.now(),
        setTimer: (ms, callback) => {
          const id = env.clock.setTimer(ms, () => {
            pending.delete(id);
            callback();
          });
          pending.add(id);
          timers.most = Math.max(timers.most, pending.size);
          return id;
        },
        clearTimer: (id) => {
          pending.delete(id);
          env.clock.clearTimer(id);
        },
        defer: (callback) => env.clock.defer(callback),
      };
      const member: Member = Object.assign(record, {
        rm: new ReliableMulticast({
          ...tuning,
          view,
          me,
          clock,
          send: (to, frame) => env.transport.send(to, frame),
          deliver: (sender, seq, payload) => {
            assert.equal(untext.decode(payload).trimEnd(), `${sender}:${seq}`);
            record.got.get(sender)!.push(seq);
            hooks.deliver?.(me, sender, seq);
          },
          onSlow: (m) => record.slow.push(m),
          onSuspect: (m) => record.suspected.push(m),
          onWindowOpen: () => {
            record.windowOpens++;
            hooks.windowOpen?.(me);
          },
        }),
      });
      env.transport.setHandler({
        onFrame: (from, frame) => member.rm.receive(from, frame),
      });
      members.set(me, member);
      return { stop: () => member.rm.close() };
    });
  }
  return members;
}

/** Multicasts the next message of `member` as `id`; returns its seq. */
function send(member: Member, id: string, size = 0): number | undefined {
  const seq = member.rm.multicast(payloadOf(id, member.sent + 1, size));
  if (seq !== undefined) member.sent++;
  return seq;
}

/** `[1, 2, ..., n]`. */
function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** The sum of one counter over every member. */
function total(
  members: Map<string, Member>,
  key:
    | "delivered"
    | "naksSent"
    | "retransmitted"
    | "duplicatesDropped"
    | "sendRefused",
): number {
  let sum = 0;
  for (const m of members.values()) sum += m.rm.stats()[key];
  return sum;
}

const VIEW4: GroupView = { viewId: 7, members: ["a", "b", "c", "d"] };
const PER_SENDER = 150;

/**
 * Every member sends PER_SENDER messages in bursts of 10 every 3 ms; runs
 * until everyone delivered everything.
 */
function runTraffic(options: SimulationOptions) {
  const sim = new Simulation(options);
  const members = group(sim, VIEW4);
  for (let burst = 0; burst < PER_SENDER / 10; burst++) {
    sim.schedule(burst * 3, () => {
      for (const [id, member] of members) {
        for (let k = 0; k < 10; k++) {
          assert.notEqual(send(member, id), undefined);
        }
      }
    });
  }
  const everything = VIEW4.members.length ** 2 * PER_SENDER;
  const done = sim.runUntil(() => total(members, "delivered") === everything, {
    maxTime: 20_000,
  });
  assert.ok(done, `delivered ${total(members, "delivered")} of ${everything}`);
  for (const [id, member] of members) {
    assert.ok(
      member.timers.most <= 4,
      `${id} had ${member.timers.most} timers`,
    );
    for (const sender of VIEW4.members) {
      assert.deepEqual(
        member.got.get(sender),
        range(PER_SENDER),
        `${id} from ${sender}`,
      );
    }
  }
  return { sim, members };
}

Deno.test("every member delivers every message once, in FIFO order, despite loss, duplicates and reordering", async (t) => {
  for (const seed of [1, 2, 3, 4, 5]) {
    await t.step(`seed ${seed}`, () => {
      const { sim, members } = runTraffic({
        seed,
        loss: 0.1 + 0.05 * seed,
        duplicate: 0.1,
        reorder: 0.2,
        latency: { kind: "uniform", min: 1, max: 6 },
      });
      const faults = sim.faults();
      assert.ok(
        faults.droppedByLoss > 0 && faults.duplicated > 0 &&
          faults.reordered > 0,
      );
      assert.ok(total(members, "naksSent") > 0, "gaps were NAKed");
      assert.ok(total(members, "retransmitted") > 0, "and repaired");
      assert.ok(
        total(members, "duplicatesDropped") > 0,
        "duplicates were dropped",
      );
    });
  }
});

Deno.test("frames the transport refuses (backpressure) are covered by retransmission", () => {
  const { members } = runTraffic({ seed: 9, maxInFlight: 1 });
  assert.ok(total(members, "sendRefused") > 0);
});

Deno.test("senders pump through a small window under loss, never holding more than it", () => {
  const sim = new Simulation({ seed: 12, loss: 0.25, duplicate: 0.1 });
  const view = { viewId: 2, members: ["a", "b", "c"] };
  const per = 200;
  const pump = (id: string) => {
    const member = members.get(id)!;
    while (member.sent < per && send(member, id) !== undefined) {
      const unstable = member.sent - member.rm.stable()[id];
      assert.ok(unstable <= 16, `${id} holds ${unstable}`);
    }
  };
  const members: Map<string, Member> = group(sim, view, { window: 16 }, {
    windowOpen: pump,
  });
  for (const id of view.members) sim.schedule(0, () => pump(id));
  const done = () =>
    [...members.values()].every((m) =>
      view.members.every((s) => m.got.get(s)!.length === per)
    );
  assert.ok(sim.runUntil(done, { maxTime: 30_000 }));
  for (const m of members.values()) {
    for (const s of view.members) assert.deepEqual(m.got.get(s), range(per));
    assert.ok(m.rm.stats().windowRefusals > 0);
    assert.ok(m.windowOpens > 0);
  }
});

Deno.test("stability advances and every held message is garbage-collected once idle", () => {
  const { sim, members } = runTraffic({ seed: 11, loss: 0.2, duplicate: 0.1 });
  sim.runFor(500);
  for (const [id, member] of members) {
    assert.equal(member.rm.stats().unstableCount, 0, id);
    assert.deepEqual(member.rm.stable(), {
      a: PER_SENDER,
      b: PER_SENDER,
      c: PER_SENDER,
      d: PER_SENDER,
    });
    assert.deepEqual(member.rm.received(), member.rm.stable());
    assert.deepEqual(member.rm.unstable("a", 0), []);
  }
});

Deno.test("many messages multicast in one turn travel in one frame per destination", async (t) => {
  const view = { viewId: 1, members: ["a", "b", "c"] };
  await t.step("all in one frame", () => {
    const sim = new Simulation({ seed: 1 });
    const members = group(sim, view);
    const a = members.get("a")!;
    sim.schedule(0, () => {
      for (let i = 0; i < 100; i++) send(a, "a");
    });
    sim.runFor(6);
    assert.equal(a.rm.stats().framesSent, 2);
    assert.deepEqual(members.get("b")!.got.get("a"), range(100));
    assert.deepEqual(members.get("c")!.got.get("a"), range(100));
    assert.deepEqual(
      a.got.get("a"),
      range(100),
      "own messages delivered locally",
    );
  });
  await t.step("split only where the frame is full", () => {
    // Constant latency: no reordering, so no NAK and no retransmission.
    const sim = new Simulation({
      seed: 1,
      latency: { kind: "constant", ms: 1 },
    });
    const members = group(sim, view, { maxFrameBytes: 1024 });
    const a = members.get("a")!;
    sim.schedule(0, () => {
      for (let i = 0; i < 100; i++) send(a, "a", 50);
    });
    sim.runFor(6);
    assert.deepEqual(members.get("b")!.got.get("a"), range(100));
    const perFrame = Math.floor((1024 - dataHeaderSize(3)) / 60);
    assert.equal(a.rm.stats().framesSent, 2 * Math.ceil(100 / perFrame));
  });
});

Deno.test("an ack rides on data sent within ackDelayMs, and goes out alone otherwise", async (t) => {
  const view = { viewId: 1, members: ["a", "b"] };
  for (const reply of [true, false]) {
    await t.step(reply ? "b replies at once" : "b stays silent", () => {
      const sim = new Simulation({ seed: 2 });
      const members: Map<string, Member> = group(
        sim,
        view,
        { ackDelayMs: 5, heartbeatMs: 10_000, suspectAfterMs: 20_000 },
        {
          deliver: (me, sender) => {
            if (reply && me === "b" && sender === "a") {
              send(members.get("b")!, "b");
            }
          },
        },
      );
      sim.schedule(0, () => send(members.get("a")!, "a"));
      sim.runFor(100);
      const b = members.get("b")!.rm.stats();
      assert.equal(b.acksSent, reply ? 0 : 1);
      assert.equal(b.framesSent, 1);
      assert.deepEqual(members.get("a")!.rm.stable(), {
        a: 1,
        b: reply ? 1 : 0,
      });
    });
  }
});

Deno.test("a standalone ack waits ackIdleMs for a few messages, and only ackDelayMs once an eighth of the window is unacknowledged", () => {
  const sim = new Simulation({ seed: 2 });
  const members = group(sim, { viewId: 1, members: ["a", "b"] }, {
    window: 16,
    ackDelayMs: 2,
    ackIdleMs: 20,
    heartbeatMs: 10_000,
    suspectAfterMs: 20_000,
  });
  const [a, b] = [members.get("a")!, members.get("b")!];
  sim.schedule(0, () => send(a, "a"));
  sim.runFor(15);
  assert.equal(b.rm.stats().acksSent, 0, "one message: the ack waits");
  sim.runFor(10);
  assert.equal(b.rm.stats().acksSent, 1);
  sim.runFor(10); // the ack's own latency (1-5 ms)
  assert.deepEqual(a.rm.stable(), { a: 1, b: 0 });
  sim.schedule(0, () => {
    send(a, "a");
    send(a, "a");
  });
  // Two of a window of 16: acked within 2 ms of arriving (at most 5 ms
  // each way), long before ackIdleMs.
  sim.runFor(12);
  assert.equal(b.rm.stats().acksSent, 2);
  assert.deepEqual(a.rm.stable(), { a: 3, b: 0 });
  assert.throws(
    () => group(sim, { viewId: 1, members: ["c"] }, { ackIdleMs: 50 }),
    /Invalid ackIdleMs 50: must be below retransmitMs \(50\)/,
  );
});

Deno.test("a lost tail is resent after retransmitMs without ack progress", async (t) => {
  await t.step("a short tail, whole", () => {
    const sim = new Simulation({ seed: 3 });
    const members = group(sim, { viewId: 1, members: ["a", "b"] }, {
      heartbeatMs: 10_000,
      suspectAfterMs: 20_000,
    });
    const a = members.get("a")!;
    const b = members.get("b")!;
    sim.setLink("a", "b", { loss: 1 });
    sim.schedule(0, () => {
      for (let i = 0; i < 5; i++) send(a, "a");
    });
    sim.runFor(10);
    sim.resetLink("a", "b");
    sim.runFor(35);
    assert.deepEqual(b.got.get("a"), [], "nothing arrives before retransmitMs");
    sim.runFor(15);
    assert.deepEqual(b.got.get("a"), range(5));
    assert.equal(a.rm.stats().retransmitted, 5);
    assert.equal(b.rm.stats().naksSent, 0, "b could not know what it missed");
    // b acks a few messages within ackIdleMs (20 ms).
    sim.runFor(25);
    assert.deepEqual(a.rm.stable(), { a: 5, b: 0 });
    assert.equal(a.rm.stats().unstableCount, 0);
  });
  await t.step("a long tail, one frame at a time, the rest by NAK", () => {
    const sim = new Simulation({ seed: 3 });
    const members = group(sim, { viewId: 1, members: ["a", "b"] }, {
      heartbeatMs: 10_000,
      suspectAfterMs: 20_000,
      maxFrameBytes: 1024,
    });
    const a = members.get("a")!;
    const b = members.get("b")!;
    sim.setLink("a", "b", { loss: 1 });
    sim.schedule(0, () => {
      for (let i = 0; i < 100; i++) send(a, "a", 50);
    });
    sim.runFor(10);
    sim.resetLink("a", "b");
    sim.runFor(40.5);
    const perFrame = Math.floor((1024 - dataHeaderSize(2)) / 60);
    assert.equal(a.rm.stats().retransmitted, perFrame);
    sim.runFor(100);
    assert.deepEqual(b.got.get("a"), range(100));
    assert.ok(b.rm.stats().naksSent > 0);
  });
});

Deno.test("a gap is NAKed as ranges after nakDelayMs, again after retransmitMs, and no more once filled", () => {
  const sim = new Simulation({ seed: 14 });
  const naks: GroupFrame[] = [];
  const got: number[] = [];
  const rm = new ReliableMulticast({
    view: { viewId: 1, members: ["a", "b"] },
    me: "a",
    clock: sim.clock,
    send: (to, frame) => {
      const result = decodeFrame(frame, 65_536);
      assert.ok(result.ok && to === "b");
      if (result.frame.kind === "nak") naks.push(result.frame);
      return true;
    },
    deliver: (_sender, seq) => got.push(seq),
    heartbeatMs: 10_000,
    suspectAfterMs: 20_000,
  });
  const writer = new FrameWriter(1024);
  const data = (seqs: number[]) => {
    writer.beginData(1, 1, [0, 9]);
    for (const seq of seqs) writer.addMessage(seq, payloadOf("b", seq));
    return writer.finishData();
  };
  rm.receive("b", data([1, 4, 7]));
  sim.runFor(1.5);
  assert.equal(naks.length, 0, "not before nakDelayMs");
  sim.runFor(1);
  assert.deepEqual(naks, [{
    kind: "nak",
    viewId: 1,
    sender: 0,
    acks: [0, 1],
    target: 1,
    ranges: [2, 3, 5, 6, 8, 9],
  }]);
  sim.runFor(40);
  assert.equal(naks.length, 1, "not again before retransmitMs");
  rm.receive("b", data([2, 3, 5]));
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
  sim.runFor(20);
  assert.equal(naks.length, 2);
  assert.deepEqual(naks[1].kind === "nak" && naks[1].ranges, [6, 6, 8, 9]);
  rm.receive("b", data([6, 8, 9]));
  sim.runFor(500);
  assert.equal(naks.length, 2, "no NAK once the gap is filled");
  assert.deepEqual(got, range(9));
  rm.close();
});

Deno.test("multicast refuses beyond the window and calls onWindowOpen when it reopens", () => {
  const sim = new Simulation({ seed: 4 });
  const members = group(sim, { viewId: 1, members: ["a", "b"] }, { window: 8 });
  const a = members.get("a")!;
  sim.schedule(0, () => {
    for (let i = 1; i <= 8; i++) assert.equal(send(a, "a"), i);
    assert.equal(send(a, "a"), undefined);
    assert.equal(send(a, "a"), undefined);
  });
  sim.runFor(1);
  assert.equal(a.rm.stats().windowRefusals, 2);
  assert.equal(a.windowOpens, 0);
  assert.ok(sim.runUntil(() => a.windowOpens > 0, { maxTime: 100 }));
  assert.equal(a.windowOpens, 1);
  assert.equal(send(a, "a"), 9);
  sim.runFor(100);
  assert.equal(a.windowOpens, 1, "reopens once per refusal");
  assert.equal(members.get("b")!.windowOpens, 0);
  assert.deepEqual(members.get("b")!.got.get("a"), range(9));
});

Deno.test("a member that stops acknowledging is reported slow, once", () => {
  const sim = new Simulation({ seed: 5 });
  const members = group(sim, { viewId: 1, members: ["a", "b", "c"] }, {
    heartbeatMs: 50,
    slowAfterMs: 300,
  });
  // c hears from a once (a heartbeat), then nothing more.
  sim.runFor(60);
  sim.partition(["a"], ["c"], { oneWay: true });
  sim.schedule(0, () => send(members.get("a")!, "a"));
  sim.runFor(250);
  for (const m of members.values()) assert.deepEqual(m.slow, []);
  sim.runFor(2000);
  assert.deepEqual(members.get("a")!.slow, ["c"]);
  assert.deepEqual(members.get("b")!.slow, ["c"]);
  assert.deepEqual(members.get("c")!.slow, []);
  assert.deepEqual(members.get("a")!.suspected, [], "c still talks to a");
  assert.deepEqual(
    members.get("c")!.suspected,
    ["a"],
    "c hears nothing from a",
  );
  assert.equal(members.get("a")!.rm.stable().a, 0);
});

Deno.test("a silent member is suspected after suspectAfterMs, once", () => {
  const sim = new Simulation({ seed: 6 });
  const members = group(sim, { viewId: 1, members: ["a", "b", "c"] }, {
    suspectAfterMs: 1000,
  });
  sim.runFor(100);
  sim.crash("c");
  sim.runFor(1000);
  for (const id of ["a", "b"]) assert.deepEqual(members.get(id)!.suspected, []);
  sim.runFor(150);
  sim.runFor(3000);
  for (const id of ["a", "b"]) {
    assert.deepEqual(members.get(id)!.suspected, ["c"]);
    assert.deepEqual(members.get(id)!.slow, []);
  }
});

Deno.test("a member never heard from in the view is not suspected (it may not know the view yet), but reported slow", () => {
  const sim = new Simulation({ seed: 6 });
  const members = group(sim, { viewId: 1, members: ["a", "b", "c"] }, {
    slowAfterMs: 2000,
  });
  // c never gets going in this view: nothing from it reaches anyone.
  sim.partition(["c"], ["a", "b"], { oneWay: true });
  sim.schedule(0, () => send(members.get("a")!, "a"));
  sim.runFor(3000);
  for (const id of ["a", "b"]) {
    assert.deepEqual(members.get(id)!.suspected, [], id);
    assert.deepEqual(members.get(id)!.slow, ["c"], id);
  }
});

Deno.test("heartbeats carry the ack vector while the group is idle", () => {
  const sim = new Simulation({ seed: 7 });
  const members = group(sim, { viewId: 1, members: ["a", "b", "c"] });
  sim.runFor(1000);
  for (const [id, member] of members) {
    const stats = member.rm.stats();
    assert.equal(stats.heartbeatsSent, 10, id);
    assert.equal(stats.acksSent, 10, id);
    assert.equal(stats.framesSent, 20, id);
    assert.ok(
      stats.framesReceived >= 18 && stats.framesReceived <= 20,
      `${id} received ${stats.framesReceived}`,
    );
    assert.deepEqual(member.suspected, []);
  }
});

Deno.test("wrong-view, unknown-sender and garbage frames are dropped and counted", () => {
  const sim = new Simulation({ seed: 8 });
  const delivered: number[] = [];
  const rm = new ReliableMulticast({
    view: { viewId: 5, members: ["a", "b"] },
    me: "a",
    clock: sim.clock,
    send: () => true,
    deliver: (_sender, seq) => delivered.push(seq),
    window: 4,
  });
  const writer = new FrameWriter(1024);
  const data = (
    viewId: number,
    sender: number,
    acks: number[],
    seqs: number[],
  ) => {
    writer.beginData(viewId, sender, acks);
    for (const seq of seqs) writer.addMessage(seq, new Uint8Array([seq]));
    return writer.finishData();
  };
  rm.receive("b", data(4, 1, [0, 1], [1]));
  rm.receive("b", data(6, 1, [0, 1], [1]));
  rm.receive("z", data(5, 1, [0, 1], [1]));
  rm.receive("b", new Uint8Array([1, 2, 3]));
  rm.receive("b", new Uint8Array(0));
  rm.receive("b", data(5, 0, [0, 1], [1]));
  rm.receive("b", data(5, 1, [0, 1, 0], [1]));
  rm.receive("b", data(5, 1, [1, 1], [1]));
  rm.receive("b", writer.nak(5, 1, [0, 0], 1, [1, 1]));
  rm.receive("a", data(5, 0, [0, 1], [1]));
  assert.deepEqual(delivered, []);
  let stats = rm.stats();
  assert.deepEqual(
    [
      stats.wrongView,
      stats.unknownSender,
      stats.badFrames,
      stats.framesReceived,
    ],
    [2, 1, 7, 0],
  );
  rm.receive("b", data(5, 1, [0, 9], [9]));
  rm.receive("b", data(5, 1, [0, 9], [8]));
  rm.receive("b", data(5, 1, [0, 9], [1, 2, 3, 4, 5, 6, 7]));
  rm.receive("b", data(5, 1, [0, 9], [2, 8]));
  assert.deepEqual(
    delivered,
    range(8),
    "within the receive buffer of 2 x window",
  );
  stats = rm.stats();
  assert.equal(stats.overflowDropped, 1);
  assert.equal(stats.duplicatesDropped, 2);
  assert.equal(stats.framesReceived, 4);
  rm.close();
});

Deno.test("a DATA frame is copied once, and held payloads share the copy unless few of its bytes are new", () => {
  const sim = new Simulation({ seed: 13 });
  const got: Uint8Array[] = [];
  const rm = new ReliableMulticast({
    view: { viewId: 1, members: ["a", "b"] },
    me: "a",
    clock: sim.clock,
    send: () => true,
    deliver: (_sender, _seq, payload) => got.push(payload),
  });
  const writer = new FrameWriter(65_536);
  const frame = (first: number, last: number) => {
    writer.beginData(1, 1, [0, last]);
    for (let seq = first; seq <= last; seq++) {
      writer.addMessage(seq, new Uint8Array(100).fill(seq));
    }
    return writer.finishData();
  };
  const all = frame(1, 100);
  rm.receive("b", all);
  all.fill(0);
  assert.equal(got.length, 100);
  assert.ok(
    got.every((payload, i) => payload[0] === i + 1 && payload[99] === i + 1),
  );
  assert.equal(new Set(got.map((p) => p.buffer)).size, 1, "one copy");
  assert.notEqual(got[0].buffer, all.buffer);
  rm.receive("b", frame(2, 101));
  assert.equal(got.length, 101);
  assert.equal(got[100][0], 101);
  assert.equal(
    got[100].buffer.byteLength,
    100,
    "a lone new message is copied alone",
  );
  assert.equal(rm.stats().duplicatesDropped, 99);
  rm.close();
});

Deno.test("unstable() and accept() let a third member fill a gap left by a crashed sender", () => {
  const sim = new Simulation({ seed: 9 });
  const members = group(sim, { viewId: 1, members: ["a", "b", "c"] });
  const [a, b, c] = ["a", "b", "c"].map((id) => members.get(id)!);
  sim.partition(["a"], ["c"], { oneWay: true });
  sim.schedule(0, () => {
    for (let i = 0; i < 5; i++) send(a, "a");
  });
  sim.runFor(20);
  sim.crash("a");
  sim.runFor(200);
  assert.deepEqual(b.got.get("a"), range(5));
  assert.deepEqual(c.got.get("a"), []);
  assert.equal(c.rm.received().a, 0);
  const echoed = b.rm.unstable("a", c.rm.received().a);
  assert.deepEqual(echoed.map((m) => m.seq), range(5));
  assert.deepEqual(b.rm.unstable("a", 3).map((m) => m.seq), [4, 5]);
  for (const { seq, payload } of echoed.reverse()) {
    c.rm.accept("a", seq, payload);
  }
  c.rm.accept("a", 2, payloadOf("a", 2));
  assert.deepEqual(c.got.get("a"), range(5));
  assert.equal(c.rm.received().a, 5);
  assert.equal(c.rm.stats().duplicatesDropped, 1);
  sim.runFor(200);
  for (const m of [b, c]) {
    assert.equal(
      m.rm.stable().a,
      5,
      "the crashed sender counts as holding its own",
    );
    assert.equal(m.rm.stats().unstableCount, 0);
  }
  assert.throws(() => c.rm.accept("z", 1, new Uint8Array()), TypeError);
  assert.throws(() => c.rm.accept("a", 0, new Uint8Array()), RangeError);
});

Deno.test("a single-member view delivers locally and is stable at once", () => {
  const sim = new Simulation({ seed: 10 });
  const members = group(sim, { viewId: 1, members: ["a"] }, { window: 2 });
  const a = members.get("a")!;
  sim.schedule(0, () => {
    assert.equal(send(a, "a"), 1);
    assert.equal(send(a, "a"), 2);
    assert.equal(send(a, "a"), undefined);
    assert.deepEqual(a.got.get("a"), [], "delivered at the end of the turn");
  });
  sim.runFor(1);
  assert.deepEqual(a.got.get("a"), [1, 2]);
  assert.equal(a.windowOpens, 1);
  assert.deepEqual(a.rm.stable(), { a: 2 });
  assert.equal(a.rm.stats().unstableCount, 0);
  assert.equal(a.rm.stats().framesSent, 0);
});

Deno.test("close stops the timers and later calls do nothing", () => {
  const sim = new Simulation({ seed: 11 });
  const members = group(sim, { viewId: 1, members: ["a", "b"] });
  const a = members.get("a")!;
  sim.schedule(0, () => send(a, "a"));
  sim.runFor(1);
  assert.ok(a.timers.pending.size > 0);
  a.rm.close();
  assert.equal(a.timers.pending.size, 0);
  const before = a.rm.stats();
  sim.runFor(3000);
  assert.equal(send(a, "a"), undefined);
  a.rm.accept("b", 1, payloadOf("b", 1));
  assert.deepEqual(a.rm.stats(), before);
  assert.deepEqual(a.suspected, []);
  assert.deepEqual(a.got.get("b"), []);
  assert.deepEqual(members.get("b")!.suspected, ["a"]);
});

Deno.test("invalid options and oversize messages are refused", () => {
  const base = {
    view: { viewId: 1, members: ["a", "b"] },
    me: "a",
    clock: new Simulation({ seed: 1 }).clock,
    send: () => true,
    deliver: () => {},
  };
  assert.throws(() => new ReliableMulticast({ ...base, me: "z" }), TypeError);
  assert.throws(
    () =>
      new ReliableMulticast({
        ...base,
        view: { viewId: 1, members: ["a", "a"] },
      }),
    TypeError,
  );
  assert.throws(
    () =>
      new ReliableMulticast({ ...base, view: { viewId: -1, members: ["a"] } }),
    RangeError,
  );
  assert.throws(
    () => new ReliableMulticast({ ...base, window: 0 }),
    RangeError,
  );
  assert.throws(
    () => new ReliableMulticast({ ...base, heartbeatMs: 0 }),
    RangeError,
  );
  assert.throws(
    () => new ReliableMulticast({ ...base, maxFrameBytes: 30 }),
    RangeError,
  );
  const rm = new ReliableMulticast({ ...base, maxFrameBytes: 100 });
  const fits = 100 - dataHeaderSize(2) - 10;
  assert.equal(rm.multicast(new Uint8Array(fits)), 1);
  assert.throws(() => rm.multicast(new Uint8Array(fits + 1)), RangeError);
  rm.close();
});

Deno.test("a member heard only in a newer view is alive: no suspicion from a member still in the old one", () => {
  const sim = new Simulation({ seed: 11 });
  const suspected = [] as string[];
  const rm = new ReliableMulticast({
    view: { viewId: 3, members: ["a", "b"] },
    me: "a",
    clock: sim.clock,
    send: () => true,
    deliver: () => {},
    onSuspect: (member) => suspected.push(member),
    suspectAfterMs: 1000,
  });
  const writer = new FrameWriter(1024);
  // b is heard once in view 3, then only in view 4 (it moved on first).
  rm.receive("b", writer.ack(3, 1, [0, 0]));
  for (let t = 200; t <= 3000; t += 200) {
    sim.schedule(t, () => rm.receive("b", writer.ack(4, 0, [0, 0])));
  }
  sim.runFor(3000);
  assert.deepEqual(suspected, []);
  assert.equal(rm.stats().wrongView, 15);
  // An older view's frames are no sign of life in this one.
  const suspectedQuietly: string[] = [];
  const quiet = new ReliableMulticast({
    view: { viewId: 3, members: ["a", "b"] },
    me: "a",
    clock: sim.clock,
    send: () => true,
    deliver: () => {},
    onSuspect: (member) => suspectedQuietly.push(member),
    suspectAfterMs: 1000,
  });
  quiet.receive("b", writer.ack(3, 1, [0, 0]));
  for (let t = 200; t <= 3000; t += 200) {
    sim.schedule(t, () => quiet.receive("b", writer.ack(2, 1, [0, 0])));
  }
  sim.runFor(3000);
  assert.deepEqual(suspectedQuietly, ["b"]);
  rm.close();
  quiet.close();
});

Deno.test("a member whose connection was lost is suspected after unreachableAfterMs if it stays silent; one reached again or heard from is not", () => {
  const sim = new Simulation({ seed: 5, peerEvents: false });
  const members = group(sim, { viewId: 1, members: ["a", "b", "c"] }, {
    heartbeatMs: 50,
    suspectAfterMs: 5_000,
    unreachableAfterMs: 200,
  });
  const a = members.get("a")!;
  sim.runFor(200); // everyone heard from everyone (heartbeats)
  sim.crash("b");
  sim.schedule(0, () => {
    a.rm.reachable("b", false);
    a.rm.reachable("c", false);
  });
  sim.runFor(20);
  sim.schedule(0, () => a.rm.reachable("c", true)); // c's connection is back
  sim.runFor(150);
  assert.deepEqual(a.suspected, [], "not before unreachableAfterMs");
  sim.runFor(60);
  assert.deepEqual(a.suspected, ["b"]);
  sim.runFor(1_000);
  assert.deepEqual(a.suspected, ["b"], "c, reachable again and heard, is not");
  assert.throws(
    () =>
      group(sim, { viewId: 1, members: ["d"] }, {
        suspectAfterMs: 100,
        unreachableAfterMs: 150,
      }),
    /Invalid unreachableAfterMs 150: must be at most suspectAfterMs \(100\)/,
  );
});

Deno.test("a lost connection gives away a member not heard from in the view yet (its silence alone would not)", () => {
  const sim = new Simulation({ seed: 6, peerEvents: false });
  const members = group(sim, { viewId: 1, members: ["a", "b"] }, {
    heartbeatMs: 10_000,
    suspectAfterMs: 5_000,
    unreachableAfterMs: 200,
  });
  const a = members.get("a")!;
  sim.crash("b"); // before a heard anything from it
  sim.schedule(0, () => a.rm.reachable("b", false));
  sim.runFor(150);
  assert.deepEqual(a.suspected, []);
  sim.runFor(100);
  assert.deepEqual(a.suspected, ["b"]);
});
