import assert from "node:assert/strict";
import {
  type PeerId,
  type SimNodeEnv,
  Simulation,
  SimulationError,
  type SimulationOptions,
} from "../../sim/mod.ts";

interface Received {
  from: PeerId;
  bytes: number[];
  at: number;
}

/** A node that records what it receives and exposes its env. */
class Probe {
  readonly received: Received[] = [];
  readonly peerEvents: string[] = [];
  readonly drains: PeerId[] = [];
  constructor(readonly env: SimNodeEnv) {
    env.transport.setHandler({
      onFrame: (from, payload) =>
        this.received.push({ from, bytes: [...payload], at: env.clock.now() }),
      onPeerUp: (peer) => this.peerEvents.push(`up:${peer}`),
      onPeerDown: (peer) => this.peerEvents.push(`down:${peer}`),
      onDrain: (peer) => this.drains.push(peer),
    });
  }
  send(to: PeerId, ...bytes: number[]): boolean {
    return this.env.transport.send(to, new Uint8Array(bytes));
  }
}

function cluster(options: SimulationOptions, ids: PeerId[] = ["a", "b", "c"]) {
  const sim = new Simulation(options);
  const nodes = new Map(
    ids.map((
      id,
    ) => [id, sim.addNode(id, (env) => new Probe(env), { down: true })]),
  );
  for (const id of ids) sim.start(id);
  const probe = (id: PeerId): Probe => nodes.get(id)!.handle!;
  return { sim, nodes, probe };
}

/** A small chatty workload: every node sends to every other every 5 ms. */
function chatter(
  seed: number,
  extra: Partial<SimulationOptions> = {},
): Simulation {
  const sim = new Simulation({
    seed,
    loss: 0.1,
    duplicate: 0.1,
    reorder: 0.2,
    latency: { kind: "lognormal", median: 3, sigma: 0.8 },
    ...extra,
  });
  const ids = ["a", "b", "c"];
  for (const id of ids) {
    sim.addNode(id, (env) => {
      let n = 0;
      const tick = () => {
        for (const peer of ids) {
          if (peer !== id) {
            env.transport.send(peer, new Uint8Array([n++ & 255]));
          }
        }
        if (env.random.chance(0.3)) {
          env.storage.append("f", new Uint8Array([n & 255]));
          env.storage.sync("f", () => {});
        }
        env.clock.setTimer(5, tick);
      };
      env.transport.setHandler({ onFrame: () => {} });
      env.clock.setTimer(0, tick);
      return {};
    }, { down: true });
  }
  for (const id of ids) sim.start(id);
  sim.schedule(100, () => {
    const p = sim.partition(["a"], ["b", "c"]);
    sim.schedule(50, () => sim.heal(p));
  });
  sim.schedule(120, () => sim.crash("c"));
  sim.schedule(180, () => sim.restart("c"));
  sim.runFor(400);
  return sim;
}

Deno.test("simulation: the same seed replays to the same trace hash", () => {
  const first = chatter(11);
  const second = chatter(11);
  assert.equal(first.traceHash(), second.traceHash());
  assert.match(first.traceHash(), /^[0-9a-f]{16}$/);
  assert.deepEqual(first.faults(), second.faults());
  assert.equal(first.eventsRun, second.eventsRun);
  assert.ok(first.eventsRun > 500, `only ${first.eventsRun} events`);
});

Deno.test("simulation: different seeds give different trace hashes", () => {
  const hashes = new Set([1, 2, 3, 4, 5].map((s) => chatter(s).traceHash()));
  assert.equal(hashes.size, 5);
});

Deno.test("simulation: keeping trace lines does not change the hash", () => {
  const plain = chatter(4);
  const kept = chatter(4, { traceCapacity: 50 });
  assert.equal(plain.traceHash(), kept.traceHash());
  assert.equal(plain.recentTrace().length, 0);
  const lines = kept.recentTrace();
  assert.equal(lines.length, 50);
  assert.match(lines.at(-1)!, /^\d+\.\d{3} \w+/);
});

Deno.test("simulation: loss drops frames and counts them", () => {
  const { sim, probe } = cluster({ seed: 1, loss: 0.3 });
  for (let i = 0; i < 1000; i++) probe("a").send("b", i & 255);
  sim.runFor(100);
  const f = sim.faults();
  assert.equal(f.framesSent, 1000);
  assert.equal(f.droppedByLoss + probe("b").received.length, 1000);
  assert.ok(
    f.droppedByLoss > 230 && f.droppedByLoss < 370,
    `${f.droppedByLoss}`,
  );
  assert.equal(probe("a").env.transport.stats().framesSent, 1000);
  assert.equal(
    probe("b").env.transport.stats().framesReceived,
    probe("b").received.length,
  );
});

Deno.test("simulation: duplication delivers extra copies and counts them", () => {
  const { sim, probe } = cluster({ seed: 2, duplicate: 0.25 });
  for (let i = 0; i < 400; i++) probe("a").send("b", i & 255, i >> 8);
  sim.runFor(100);
  const f = sim.faults();
  assert.ok(f.duplicated > 60 && f.duplicated < 140, `${f.duplicated}`);
  assert.equal(probe("b").received.length, 400 + f.duplicated);
  const distinct = new Set(probe("b").received.map((r) => r.bytes.join(",")));
  assert.equal(distinct.size, 400);
});

Deno.test("simulation: reordering happens and is counted; fifo links never reorder", async (t) => {
  await t.step("explicit reorder knob with constant latency", () => {
    const { sim, probe } = cluster({
      seed: 3,
      latency: { kind: "constant", ms: 2 },
      reorder: 0.2,
      reorderDelay: 30,
    });
    for (let i = 0; i < 200; i++) {
      sim.schedule(i * 0.5, () => probe("a").send("b", i));
    }
    sim.runFor(500);
    const order = probe("b").received.map((r) => r.bytes[0]);
    const inversions = order.filter((x, i) => i > 0 && x < order[i - 1]).length;
    const f = sim.faults();
    assert.ok(f.delayedForReorder > 20, `${f.delayedForReorder}`);
    assert.ok(f.reordered > 0 && inversions > 0);
    assert.equal(order.length, 200);
  });
  await t.step("constant latency without the knob keeps order", () => {
    const { sim, probe } = cluster({
      seed: 3,
      latency: { kind: "constant", ms: 2 },
    });
    for (let i = 0; i < 200; i++) probe("a").send("b", i);
    sim.runFor(50);
    assert.deepEqual(
      probe("b").received.map((r) => r.bytes[0]),
      Array.from({ length: 200 }, (_, i) => i),
    );
    assert.equal(sim.faults().reordered, 0);
  });
  await t.step("a fifo link with wild latency keeps order", () => {
    const { sim, probe } = cluster({
      seed: 3,
      latency: { kind: "uniform", min: 1, max: 50 },
      reorder: 0.5,
      duplicate: 0,
      fifo: true,
    });
    for (let i = 0; i < 200; i++) probe("a").send("b", i);
    sim.runFor(500);
    const order = probe("b").received.map((r) => r.bytes[0]);
    assert.deepEqual(order, Array.from({ length: 200 }, (_, i) => i));
    assert.equal(sim.faults().reordered, 0);
  });
});

Deno.test("simulation: latency distributions are respected", () => {
  for (
    const [latency, lo, hi] of [
      [{ kind: "constant", ms: 7 }, 7, 7],
      [{ kind: "uniform", min: 2, max: 4 }, 2, 4],
      [{ kind: "normal", mean: 10, stddev: 5, min: 3 }, 3, 40],
      [{ kind: "lognormal", median: 5, sigma: 1, min: 1, max: 60 }, 1, 60],
    ] as const
  ) {
    const { sim, probe } = cluster({ seed: 4, latency });
    for (let i = 0; i < 300; i++) probe("a").send("b", 1);
    sim.runFor(100);
    const times = probe("b").received.map((r) => r.at);
    assert.equal(times.length, 300);
    assert.ok(
      Math.min(...times) >= lo && Math.max(...times) <= hi,
      latency.kind,
    );
  }
  assert.throws(
    () =>
      new Simulation({ seed: 1, latency: { kind: "uniform", min: 5, max: 1 } }),
    RangeError,
  );
  assert.throws(() => new Simulation({ seed: 1, loss: 2 }), RangeError);
  assert.throws(() => new Simulation({ seed: 1, duplicate: -0.1 }), RangeError);
});

Deno.test("simulation: frames are copied at send", () => {
  const { sim, probe } = cluster({ seed: 5 });
  const buffer = new Uint8Array([1, 2, 3]);
  probe("a").env.transport.send("b", buffer);
  buffer.fill(9);
  sim.runFor(10);
  assert.deepEqual(probe("b").received[0].bytes, [1, 2, 3]);
});

Deno.test("simulation: a symmetric partition cuts both ways and heals", () => {
  const { sim, probe } = cluster({ seed: 6 });
  const p = sim.partition(["a"], ["b", "c"]);
  assert.ok(sim.isCut("a", "b") && sim.isCut("b", "a") && !sim.isCut("b", "c"));
  probe("a").send("b", 1);
  probe("b").send("a", 2);
  probe("b").send("c", 3);
  sim.runFor(10);
  assert.equal(sim.faults().droppedByPartition, 2);
  assert.equal(probe("a").received.length, 0);
  assert.equal(probe("c").received.length, 1);
  assert.ok(sim.heal(p));
  assert.equal(sim.heal(p), false);
  probe("a").send("b", 4);
  sim.runFor(10);
  assert.deepEqual(probe("b").received.map((r) => r.bytes[0]), [4]);
  const f = sim.faults();
  assert.equal(f.partitions, 1);
  assert.equal(f.heals, 1);
});

Deno.test("simulation: a one-way partition cuts only its direction", () => {
  const { sim, probe } = cluster({ seed: 7 });
  sim.partition(["a"], ["b"], { oneWay: true });
  assert.ok(sim.isCut("a", "b"));
  assert.ok(!sim.isCut("b", "a"));
  probe("a").send("b", 1);
  probe("b").send("a", 2);
  sim.runFor(10);
  assert.equal(probe("b").received.length, 0);
  assert.deepEqual(probe("a").received.map((r) => r.bytes[0]), [2]);
  assert.equal(sim.faults().droppedByPartition, 1);
});

Deno.test("simulation: overlapping partitions keep a link cut until both heal", () => {
  const { sim, probe } = cluster({ seed: 8 });
  const p1 = sim.partition(["a"], ["b"]);
  const p2 = sim.partition(["a", "c"], ["b"]);
  sim.heal(p1);
  assert.ok(sim.isCut("a", "b"));
  sim.heal(p2);
  assert.ok(!sim.isCut("a", "b"));
  sim.partition(["a"], ["b"]);
  sim.partition(["a"], ["c"]);
  sim.heal();
  assert.ok(!sim.isCut("a", "b") && !sim.isCut("a", "c"));
  probe("a").send("b", 1);
  sim.runFor(10);
  assert.equal(probe("b").received.length, 1);
});

Deno.test("simulation: a partition starting mid-flight drops frames on arrival", () => {
  const { sim, probe } = cluster({
    seed: 9,
    latency: { kind: "constant", ms: 10 },
  });
  probe("a").send("b", 1);
  sim.runFor(5);
  sim.partition(["a"], ["b"]);
  sim.runFor(10);
  assert.equal(probe("b").received.length, 0);
  assert.equal(sim.faults().droppedByPartition, 1);
});

Deno.test("simulation: per-link overrides apply to one direction and reset", () => {
  const { sim, probe } = cluster({ seed: 10 });
  sim.setLink("a", "b", { loss: 1 });
  assert.equal(sim.link("a", "b").loss, 1);
  assert.equal(sim.link("b", "a").loss, 0);
  probe("a").send("b", 1);
  probe("b").send("a", 2);
  probe("a").send("c", 3);
  sim.runFor(10);
  assert.equal(probe("b").received.length, 0);
  assert.equal(probe("a").received.length, 1);
  assert.equal(probe("c").received.length, 1);
  sim.resetLink("a", "b");
  assert.equal(sim.link("a", "b").loss, 0);
  sim.setDefaultLink({ loss: 1 });
  assert.equal(sim.link("b", "c").loss, 1);
  assert.throws(() => sim.setLink("a", "zz", {}), TypeError);
  assert.throws(() => sim.setLink("a", "b", { loss: 3 }), RangeError);
});

Deno.test("simulation: crash drops timers, in-flight frames and silences the incarnation", () => {
  const { sim, probe, nodes } = cluster({
    seed: 12,
    latency: { kind: "constant", ms: 10 },
  });
  const oldB = probe("b");
  let oldFired = 0;
  oldB.env.clock.setTimer(20, () => oldFired++);
  oldB.env.clock.setTimer(0, () => oldFired++); // same instant as the crash
  probe("a").send("b", 1); // in flight to b when it crashes
  oldB.send("a", 2); // in flight from b: still arrives
  assert.equal(sim.crash("b"), true);
  assert.equal(sim.crash("b"), false);
  assert.equal(nodes.get("b")!.up, false);
  assert.equal(nodes.get("b")!.handle, undefined);
  // Objects of the crashed incarnation do nothing.
  oldB.env.clock.setTimer(1, () => oldFired++);
  assert.equal(oldB.send("a", 3), true);
  oldB.env.storage.append("x", new Uint8Array([1]));
  probe("a").send("b", 4); // arrives while b is down
  sim.runFor(15);
  assert.deepEqual(probe("a").received.map((r) => r.bytes[0]), [2]);
  assert.equal(sim.restart("b"), true);
  assert.equal(sim.restart("b"), false);
  const newB = probe("b");
  assert.notEqual(newB, oldB);
  assert.equal(newB.env.incarnation, 2);
  assert.equal(nodes.get("b")!.incarnation, 2);
  sim.runFor(100);
  assert.equal(oldFired, 0, "no timer of the crashed incarnation fired");
  assert.equal(oldB.received.length, 0);
  assert.equal(
    newB.received.length,
    0,
    "frames to the old incarnation are gone",
  );
  assert.deepEqual(nodes.get("b")!.disk.list(), []);
  const f = sim.faults();
  assert.equal(f.crashes, 1);
  assert.equal(f.restarts, 1);
  assert.equal(f.timersDroppedByCrash, 2);
  assert.equal(f.droppedReceiverDown, 2);
  assert.ok(f.zombieCalls >= 3, `${f.zombieCalls}`);
});

Deno.test("simulation: frames sent after a restart reach the new incarnation", () => {
  const { sim, probe } = cluster({
    seed: 13,
    latency: { kind: "constant", ms: 10 },
  });
  sim.crash("b");
  probe("a").send("b", 1); // arrives at t=10, after the restart at t=5
  sim.schedule(5, () => sim.restart("b"));
  sim.runFor(20);
  assert.deepEqual(probe("b").received.map((r) => r.bytes[0]), [1]);
});

Deno.test("simulation: peer events follow starts, crashes and stops", () => {
  const { sim, probe } = cluster({ seed: 14 }, ["a", "b"]);
  sim.runFor(5);
  assert.deepEqual(probe("a").peerEvents, ["up:b"]);
  assert.deepEqual(probe("b").peerEvents, ["up:a"]);
  sim.crash("b");
  sim.runFor(5);
  assert.deepEqual(probe("a").peerEvents, ["up:b", "down:b"]);
  sim.restart("b");
  sim.runFor(5);
  assert.deepEqual(probe("a").peerEvents, ["up:b", "down:b", "up:b"]);
  assert.deepEqual(probe("b").peerEvents, ["up:a"]);
  sim.partition(["a"], ["b"]);
  sim.runFor(5);
  assert.equal(
    probe("a").peerEvents.length,
    3,
    "partitions emit no peer events",
  );
  const quiet = cluster({ seed: 14, peerEvents: false }, ["a", "b"]);
  quiet.sim.runFor(5);
  assert.deepEqual(quiet.probe("a").peerEvents, []);
});

Deno.test("simulation: stop is clean: stop() runs, writes are kept", () => {
  const sim = new Simulation({ seed: 15 });
  let stopped = 0;
  const node = sim.addNode("a", (env) => {
    env.storage.append("log", new Uint8Array([env.incarnation]));
    return { stop: () => stopped++ };
  });
  assert.equal(sim.stop("a"), true);
  assert.equal(sim.stop("a"), false);
  assert.equal(stopped, 1);
  assert.deepEqual(node.disk.readDurable("log"), new Uint8Array([1]));
  sim.restart("a");
  assert.deepEqual(node.disk.read("log"), new Uint8Array([1, 2]));
  assert.equal(sim.faults().stops, 1);
});

Deno.test("simulation: maxInFlight refuses sends and reports onDrain", () => {
  const { sim, probe } = cluster({
    seed: 16,
    maxInFlight: 2,
    latency: { kind: "constant", ms: 5 },
  });
  assert.equal(probe("a").send("b", 1), true);
  assert.equal(probe("a").send("b", 2), true);
  assert.equal(probe("a").send("b", 3), false);
  assert.equal(probe("a").send("c", 4), true, "other links are not affected");
  sim.runFor(10);
  assert.deepEqual(probe("a").drains, ["b"]);
  assert.equal(probe("a").env.transport.stats().backpressureRefusals, 1);
  assert.equal(sim.faults().backpressureRefusals, 1);
  assert.deepEqual(probe("b").received.map((r) => r.bytes[0]), [1, 2]);
});

Deno.test("simulation: transport argument errors", () => {
  const { sim, probe } = cluster({ seed: 17, maxFrameSize: 16 });
  const t = probe("a").env.transport;
  assert.equal(t.maxFrameSize, 16);
  assert.throws(() => t.send("b", new Uint8Array(17)), RangeError);
  assert.throws(() => t.send("nobody", new Uint8Array(1)), TypeError);
  assert.equal(t.stats().oversizeRefusals, 1);
  assert.equal(t.stats().unknownPeerRefusals, 1);
  assert.throws(() => sim.addNode("a", () => ({})), TypeError);
  assert.throws(() => sim.crash("nobody"), TypeError);
  assert.throws(() => sim.partition(["a"], ["nobody"]), TypeError);
});

Deno.test("simulation: a closed transport neither sends nor receives", async () => {
  const { sim, probe } = cluster({ seed: 18 });
  await probe("b").env.transport.close();
  probe("a").send("b", 1);
  probe("b").send("a", 2);
  sim.runFor(10);
  assert.equal(probe("b").received.length, 0);
  assert.equal(probe("a").received.length, 0);
  assert.equal(sim.faults().droppedNoHandler, 1);
  assert.equal(probe("b").env.transport.stats().undeliverableDropped, 1);
});

Deno.test("simulation: events at the same instant run in scheduling order", () => {
  const sim = new Simulation({ seed: 19 });
  const order: string[] = [];
  sim.schedule(5, () => order.push("s1"));
  sim.addNode("a", (env) => {
    env.clock.setTimer(5, () => order.push("t1"));
    env.clock.setTimer(5, () => order.push("t2"));
    const cancelled = env.clock.setTimer(5, () => order.push("never"));
    env.clock.clearTimer(cancelled);
    return {};
  });
  sim.schedule(5, () => order.push("s2"));
  const id = sim.schedule(5, () => order.push("never"));
  sim.cancel(id);
  sim.schedule(4, () => order.push("s0"));
  assert.equal(sim.runFor(5), 5);
  assert.deepEqual(order, ["s0", "s1", "t1", "t2", "s2"]);
  assert.equal(sim.now, 5);
});

Deno.test("simulation: runUntil stops at the predicate or at maxTime", () => {
  const sim = new Simulation({ seed: 20 });
  let ticks = 0;
  const tick = () => {
    ticks++;
    sim.schedule(10, tick);
  };
  sim.schedule(10, tick);
  assert.equal(sim.runUntil(() => ticks === 3), true);
  assert.equal(sim.now, 30);
  assert.equal(sim.runUntil(() => ticks === 1000, { maxTime: 55 }), false);
  assert.equal(sim.now, 85);
  assert.equal(ticks, 8);
  const idle = new Simulation({ seed: 20 });
  assert.equal(
    idle.runUntil(() => false),
    false,
    "an empty queue ends the run",
  );
  assert.throws(() => sim.runFor(-1), RangeError);
  assert.throws(() => sim.schedule(NaN, () => {}), RangeError);
});

Deno.test("simulation: the event budget stops a livelock", () => {
  const sim = new Simulation({ seed: 21, maxEvents: 1000 });
  const spin = () => {
    sim.schedule(0, spin);
  };
  sim.schedule(0, spin);
  assert.throws(
    () => sim.runFor(1),
    (error) => error instanceof SimulationError && error.code === "budget",
  );
  assert.equal(sim.eventsRun, 1000);
});

Deno.test("simulation: a throwing callback surfaces as a SimulationError with the node and cause", () => {
  const sim = new Simulation({ seed: 22 });
  const boom = new Error("boom");
  sim.addNode("a", (env) => {
    env.clock.setTimer(3, () => {
      throw boom;
    });
    return {};
  });
  try {
    sim.runFor(10);
    assert.fail("should have thrown");
  } catch (error) {
    assert.ok(error instanceof SimulationError);
    assert.equal(error.code, "callback");
    assert.equal(error.node, "a");
    assert.equal(error.time, 3);
    assert.equal(error.cause, boom);
    assert.match(error.message, /node a threw at t=3\.000ms \(seed 22\): boom/);
  }
});

Deno.test("simulation: node random streams are independent of other nodes", () => {
  const firstDraw = (ids: string[]) => {
    const sim = new Simulation({ seed: 23 });
    const draws = new Map<string, number>();
    for (const id of ids) {
      sim.addNode(id, (env) => {
        draws.set(id, env.random.uint32());
        return {};
      });
    }
    return draws;
  };
  const two = firstDraw(["a", "b"]);
  const three = firstDraw(["c", "b", "a"]);
  assert.equal(two.get("a"), three.get("a"));
  assert.equal(two.get("b"), three.get("b"));
  assert.notEqual(two.get("a"), two.get("b"));
});

Deno.test("simulation: node logs are stamped with virtual time, filtered, and not hashed", () => {
  const run = (options: Partial<SimulationOptions>) => {
    const sim = new Simulation({ seed: 30, ...options });
    sim.addNode("a", (env) => {
      env.log.log("debug", "boot");
      env.clock.setTimer(2, () => env.log.log("warn", "tick", { n: 1 }));
      return {};
    });
    sim.runFor(5);
    return sim;
  };
  const lines: string[] = [];
  const logged = run({ onLog: (line) => lines.push(line), logLevel: "debug" });
  assert.deepEqual(lines, [
    "0.000 a#1 debug boot",
    '2.000 a#1 warn tick {"n":1}',
  ]);
  const silent = run({});
  assert.equal(logged.traceHash(), silent.traceHash());
  const warnOnly: string[] = [];
  run({ onLog: (line) => warnOnly.push(line) });
  assert.deepEqual(warnOnly, ['2.000 a#1 warn tick {"n":1}']);
  assert.throws(
    () => new Simulation({ seed: 1, logLevel: "toString" as "info" }),
    RangeError,
  );
});
