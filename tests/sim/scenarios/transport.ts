/**
 * Scenario family `transport`: a reliable broadcast (sequence numbers,
 * cumulative acks, retransmission, per-sender FIFO delivery, a synced
 * delivery log) among 3-5 simulated nodes, under a random fault schedule
 * per seed: loss, duplication, reordering, symmetric and one-way partitions
 * that heal, degraded links, sync failures, and crash/restart of receivers.
 *
 * Checks:
 * - integrity: within an incarnation, each sender's messages are delivered
 *   exactly once, in order, byte-exact, and only if they were sent;
 * - durability: a restarted node recovers at least everything it had
 *   synced and nothing it never delivered; acks never exceed what the
 *   receiver had synced;
 * - liveness: once faults stop (partitions healed, links clean, crashed
 *   nodes restarted) every node delivers and syncs every message within a
 *   bounded virtual time;
 * - after a final crash and restart of every receiver, each recovers
 *   every message from its log.
 *
 * @module
 */

import {
  type LatencyDistribution,
  type PeerId,
  type Prng,
  type Scenario,
  type SimNode,
  simScenario,
  type Simulation,
  type SimulationOptions,
} from "../../../sim/mod.ts";
import {
  BroadcastNode,
  type BroadcastObserver,
} from "./_reliable_broadcast.ts";
import { randomSplit } from "./_split.ts";

/** Fails the run with a message (thrown inside a sim callback, it stops the run). */
class CheckFailure extends Error {
  override name = "CheckFailure";
}

interface NodeRecord {
  incarnation: number;
  /** Next sequence number expected from each sender in this incarnation. */
  next: Map<PeerId, number>;
  /** Highest sequence number known durable, over all incarnations. */
  durableMax: Map<PeerId, number>;
  /** Highest sequence number ever delivered, over all incarnations. */
  deliveredMax: Map<PeerId, number>;
  tornRecoveries: number;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Checks every invariant as the protocol reports events. */
export class BroadcastChecker implements BroadcastObserver {
  readonly sent = new Map<PeerId, Uint8Array[]>();
  readonly nodes = new Map<PeerId, NodeRecord>();
  readonly #now: () => number;

  constructor(senders: readonly PeerId[], now: () => number) {
    for (const s of senders) this.sent.set(s, []);
    this.#now = now;
  }

  #fail(text: string): never {
    throw new CheckFailure(`${text} (t=${this.#now().toFixed(3)}ms)`);
  }

  #node(id: PeerId): NodeRecord {
    let n = this.nodes.get(id);
    if (n === undefined) {
      n = {
        incarnation: 0,
        next: new Map(),
        durableMax: new Map(),
        deliveredMax: new Map(),
        tornRecoveries: 0,
      };
      this.nodes.set(id, n);
    }
    return n;
  }

  /** Records a broadcast before the sender performs it. */
  willSend(sender: PeerId, payload: Uint8Array): void {
    this.sent.get(sender)!.push(payload.slice());
  }

  delivered(
    node: PeerId,
    incarnation: number,
    sender: PeerId,
    seq: number,
    payload: Uint8Array,
  ): void {
    const n = this.#node(node);
    if (incarnation !== n.incarnation) {
      this.#fail(
        `integrity: ${node} incarnation ${incarnation} delivered after incarnation ${n.incarnation} started`,
      );
    }
    const expected = n.next.get(sender) ?? 1;
    if (seq < expected) {
      this.#fail(
        `integrity: ${node} delivered ${sender}#${seq} twice (expected #${expected})`,
      );
    }
    if (seq > expected) {
      this.#fail(
        `FIFO: ${node} delivered ${sender}#${seq} before ${sender}#${expected}`,
      );
    }
    const messages = this.sent.get(sender);
    if (messages === undefined || seq > messages.length) {
      this.#fail(`integrity: ${node} delivered ${sender}#${seq}, never sent`);
    }
    if (!sameBytes(messages[seq - 1], payload)) {
      this.#fail(
        `integrity: ${node} delivered ${sender}#${seq} with different bytes (${payload.length} vs ${
          messages[seq - 1].length
        })`,
      );
    }
    n.next.set(sender, seq + 1);
    if (seq > (n.deliveredMax.get(sender) ?? 0)) {
      n.deliveredMax.set(sender, seq);
    }
  }

  durable(
    node: PeerId,
    incarnation: number,
    sender: PeerId,
    seq: number,
  ): void {
    const n = this.#node(node);
    if (incarnation !== n.incarnation) {
      this.#fail(
        `${node} incarnation ${incarnation} reported a sync after a restart`,
      );
    }
    if (seq > (n.deliveredMax.get(sender) ?? 0)) {
      this.#fail(`${node} made ${sender}#${seq} durable without delivering it`);
    }
    if (seq > (n.durableMax.get(sender) ?? 0)) n.durableMax.set(sender, seq);
  }

  recovered(
    node: PeerId,
    incarnation: number,
    upTo: ReadonlyMap<PeerId, number>,
    tornBytes: number,
  ): void {
    const n = this.#node(node);
    if (incarnation <= n.incarnation) {
      this.#fail(
        `${node} restarted with incarnation ${incarnation} <= ${n.incarnation}`,
      );
    }
    n.incarnation = incarnation;
    if (tornBytes > 0) n.tornRecoveries++;
    for (const sender of this.sent.keys()) {
      const r = upTo.get(sender) ?? 0;
      const durable = n.durableMax.get(sender) ?? 0;
      const delivered = n.deliveredMax.get(sender) ?? 0;
      if (r < durable) {
        this.#fail(
          `durability: ${node} recovered ${sender} up to #${r} but had synced up to #${durable}`,
        );
      }
      if (r > delivered) {
        this.#fail(
          `durability: ${node} recovered ${sender} up to #${r} but only delivered up to #${delivered}`,
        );
      }
      // What survived the crash is on disk now.
      n.durableMax.set(sender, r);
      n.next.set(sender, r + 1);
    }
  }

  acked(sender: PeerId, receiver: PeerId, seq: number): void {
    const durable = this.#node(receiver).durableMax.get(sender) ?? 0;
    if (seq > durable) {
      this.#fail(
        `ack: ${sender} got an ack of #${seq} from ${receiver}, which only synced up to #${durable}`,
      );
    }
  }

  /** Whether every node delivered and synced every message sent so far. */
  complete(ids: readonly PeerId[]): boolean {
    for (const id of ids) {
      const n = this.nodes.get(id);
      if (n === undefined) return false;
      for (const [sender, messages] of this.sent) {
        if ((n.next.get(sender) ?? 1) - 1 !== messages.length) return false;
        if ((n.durableMax.get(sender) ?? 0) !== messages.length) return false;
      }
    }
    return true;
  }

  /** A one-line summary of who is missing what. */
  lagging(ids: readonly PeerId[]): string {
    const parts: string[] = [];
    for (const id of ids) {
      const n = this.nodes.get(id);
      for (const [sender, messages] of this.sent) {
        const got = n === undefined ? 0 : (n.next.get(sender) ?? 1) - 1;
        const durable = n?.durableMax.get(sender) ?? 0;
        if (got !== messages.length || durable !== messages.length) {
          parts.push(
            `${id} has ${sender} ${got}/${messages.length} (durable ${durable})`,
          );
        }
      }
    }
    return parts.join("; ");
  }
}

function randomLatency(random: Prng): LatencyDistribution {
  switch (random.int(4)) {
    case 0:
      return { kind: "constant", ms: random.intBetween(1, 10) };
    case 1: {
      const min = random.uniform(0.2, 3);
      return { kind: "uniform", min, max: min + random.uniform(1, 25) };
    }
    case 2:
      return {
        kind: "normal",
        mean: random.uniform(2, 20),
        stddev: random.uniform(0.5, 10),
        min: 0.5,
      };
    default:
      return {
        kind: "lognormal",
        median: random.uniform(1, 10),
        sigma: random.uniform(0.2, 1.2),
        min: 0.3,
        max: 300,
      };
  }
}

function simulationOptions(
  random: Prng,
): Omit<SimulationOptions, "seed" | "traceCapacity"> {
  return {
    latency: randomLatency(random),
    loss: random.pick([0, 0.02, 0.1, 0.2, 0.35]),
    duplicate: random.pick([0, 0.05, 0.2]),
    reorder: random.pick([0, 0.1, 0.3]),
    reorderDelay: random.uniform(5, 80),
    disk: {
      syncLatency: random.chance(0.5)
        ? { kind: "uniform", min: 0.2, max: random.uniform(0.5, 20) }
        : { kind: "lognormal", median: random.uniform(0.5, 6), sigma: 0.8 },
      syncErrorRate: random.pick([0, 0, 0.02, 0.05]),
      unsyncedOnCrash: "torn",
    },
  };
}

/** Settings of one run, drawn from the seed. */
interface Plan {
  ids: PeerId[];
  senders: PeerId[];
  receivers: PeerId[];
  messagesPerSender: number;
  faultWindowMs: number;
  rtoMs: number;
  window: number;
}

function drawPlan(random: Prng): Plan {
  const n = random.intBetween(3, 5);
  const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
  const senderCount = random.intBetween(1, 2);
  return {
    ids,
    senders: ids.slice(0, senderCount),
    receivers: ids.slice(senderCount),
    messagesPerSender: random.intBetween(10, 60),
    faultWindowMs: random.intBetween(1000, 3000),
    rtoMs: random.intBetween(15, 60),
    window: random.intBetween(4, 16),
  };
}

/** Schedules the faults of one run within [0, plan.faultWindowMs). */
function scheduleFaults(sim: Simulation, random: Prng, plan: Plan): void {
  const count = random.intBetween(3, 12);
  const window = plan.faultWindowMs;
  for (let i = 0; i < count; i++) {
    const at = random.uniform(0, window * 0.9);
    const duration = random.uniform(20, 600);
    const kind = random.pick([0, 1, 2, 2, 3]);
    if (kind === 0) {
      const [a, b] = randomSplit(random, plan.ids);
      sim.schedule(at, () => {
        const id = sim.partition(a, b);
        sim.schedule(duration, () => sim.heal(id));
      });
    } else if (kind === 1) {
      const [a, b] = randomSplit(random, plan.ids);
      sim.schedule(at, () => {
        const id = sim.partition(a, b, { oneWay: true });
        sim.schedule(duration, () => sim.heal(id));
      });
    } else if (kind === 2) {
      const victim = random.pick(plan.receivers);
      sim.schedule(at, () => {
        if (!sim.crash(victim)) return;
        sim.schedule(
          Math.min(duration, window - at),
          () => sim.restart(victim),
        );
      });
    } else {
      const from = random.pick(plan.ids);
      const to = random.pick(plan.ids.filter((id) => id !== from));
      const loss = random.uniform(0.5, 0.95);
      sim.schedule(at, () => {
        sim.setLink(from, to, { loss });
        sim.schedule(duration, () => sim.resetLink(from, to));
      });
    }
  }
}

/** Time allowed after the faults stop for every message to be delivered. */
const LIVENESS_BOUND_MS = 10_000;

function run(sim: Simulation, random: Prng): string | undefined {
  const plan = drawPlan(random.fork("plan"));
  const checker = new BroadcastChecker(plan.senders, () => sim.now);
  const config = {
    peers: plan.ids,
    senders: plan.senders,
    rtoMs: plan.rtoMs,
    window: plan.window,
  };
  const nodes = new Map<PeerId, SimNode<BroadcastNode>>();
  for (const id of plan.ids) {
    nodes.set(
      id,
      sim.addNode(id, (env) => new BroadcastNode(env, config, checker), {
        down: true,
      }),
    );
  }
  for (const id of plan.ids) sim.start(id);

  // Broadcasts at random times during the first 80% of the fault window.
  const payloads = random.fork("payloads");
  for (const sender of plan.senders) {
    const times = Array.from(
      { length: plan.messagesPerSender },
      () => payloads.uniform(0, plan.faultWindowMs * 0.8),
    ).sort((a, b) => a - b);
    for (const at of times) {
      const payload = payloads.fill(new Uint8Array(payloads.int(257)));
      sim.schedule(at, () => {
        checker.willSend(sender, payload);
        nodes.get(sender)!.handle!.broadcast(payload);
      });
    }
  }
  scheduleFaults(sim, random.fork("faults"), plan);

  sim.runFor(plan.faultWindowMs);

  // Faults stop: heal everything, clean links, restart whoever is down.
  sim.heal();
  sim.resetLink();
  sim.setDefaultLink({ loss: 0 });
  for (const id of plan.ids) sim.restart(id);
  const start = sim.now;
  if (
    !sim.runUntil(() => checker.complete(plan.ids), {
      maxTime: LIVENESS_BOUND_MS,
    })
  ) {
    return `liveness: not every message delivered ${LIVENESS_BOUND_MS}ms after faults stopped: ${
      checker.lagging(plan.ids)
    }`;
  }
  sim.note(`complete after ${(sim.now - start).toFixed(3)}ms`);

  // Every receiver crashes once more and must recover everything from disk.
  for (const id of plan.receivers) {
    sim.crash(id);
    sim.restart(id);
  }
  sim.runFor(200);
  if (!checker.complete(plan.ids)) {
    return `durability: after a final restart: ${checker.lagging(plan.ids)}`;
  }
  for (const [id, node] of nodes) {
    if (node.handle!.rejected > 0) {
      return `${id} rejected ${node.handle!.rejected} well-formed frames`;
    }
  }
  return undefined;
}

/** The scenarios of the `transport` family. */
export const transportScenarios: Scenario[] = [
  simScenario({
    name: "transport",
    description:
      "reliable broadcast over a lossy, duplicating, reordering, partitioned network with receiver crashes: integrity, FIFO, durability, liveness",
    options: simulationOptions,
    run,
  }),
];
