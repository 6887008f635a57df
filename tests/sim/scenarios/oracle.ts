/**
 * Scenario family `oracle`: 3 or 5 Oracle replicas and 3-5 clients
 * (appends, lock cycles, try-locks, reads, a path and a prefix
 * subscription each), under a random fault schedule per seed: replica
 * crashes and restarts (torn unsynced writes), symmetric and one-way
 * partitions, lossy links, message loss, duplication, reordering and
 * delay, sync failures, and client crashes whose sessions then expire.
 *
 * Checks:
 * - every replica applies the same entry at every index, contiguously;
 * - acknowledged appends, reads and delivered events never disagree on
 *   what a channel holds, and nothing acknowledged or delivered is lost,
 *   including after every replica is crashed and restarted at the end;
 * - subscriptions see every event once, in order, across rebinds;
 * - fencing tokens only grow; the lock and channel histories are
 *   linearizable as the clients observed them;
 * - liveness: once faults stop, every client operation completes and the
 *   replicas converge to the same state.
 *
 * @module
 */

import {
  checkLinearizable,
  type HistoryOperation,
  type LatencyDistribution,
  type PeerId,
  type Prng,
  type Scenario,
  simScenario,
  type Simulation,
  type SimulationOptions,
} from "../../../sim/mod.ts";
import { type ChannelEvent, viewChannel } from "../../../oracle/commands.ts";
import { OracleClient } from "../../../oracle/client.ts";
import { OracleReplica } from "../../../oracle/replica.ts";
import {
  checkAcknowledgedKept,
  CheckFailure,
  checkViewStream,
  OracleChecker,
  readWholeChannel,
} from "./_oracle_checks.ts";
import { channelModel, lockModel } from "./_oracle_models.ts";
import {
  CHANNELS,
  GROUP,
  OracleWorker,
  type Recorded,
  type WorkerPlan,
} from "./_oracle_worker.ts";
import { randomSplit } from "./_split.ts";
import { superviseReplicas } from "./_supervise.ts";
import { scheduleOracleFaults, stopOracleFaults } from "./_oracle_faults.ts";

/** Settings of one run, drawn from the seed. */
interface Plan {
  replicas: PeerId[];
  clients: PeerId[];
  faultWindowMs: number;
  sessionTtlMs: number;
  snapshotEvery: number;
  thinkMs: number;
  holdMs: number;
}

function drawPlan(random: Prng): Plan {
  const replicaCount = random.pick([3, 3, 5]);
  const clientCount = random.intBetween(3, 5);
  return {
    replicas: Array.from({ length: replicaCount }, (_, i) => `r${i + 1}`),
    clients: Array.from({ length: clientCount }, (_, i) => `c${i + 1}`),
    faultWindowMs: random.intBetween(2000, 5000),
    sessionTtlMs: random.intBetween(1000, 3000),
    snapshotEvery: random.pick([50, 200, 20_000]),
    thinkMs: random.intBetween(5, 60),
    holdMs: random.intBetween(1, 40),
  };
}

function randomLatency(random: Prng): LatencyDistribution {
  switch (random.int(3)) {
    case 0:
      return { kind: "constant", ms: random.intBetween(1, 5) };
    case 1: {
      const min = random.uniform(0.1, 2);
      return { kind: "uniform", min, max: min + random.uniform(0.5, 15) };
    }
    default:
      return {
        kind: "lognormal",
        median: random.uniform(0.5, 5),
        sigma: random.uniform(0.2, 1),
        min: 0.1,
        max: 200,
      };
  }
}

export function simulationOptions(
  random: Prng,
): Omit<SimulationOptions, "seed" | "traceCapacity"> {
  return {
    latency: randomLatency(random),
    loss: random.pick([0, 0, 0.01, 0.05, 0.1]),
    duplicate: random.pick([0, 0.02, 0.1]),
    reorder: random.pick([0, 0.05, 0.2]),
    reorderDelay: random.uniform(2, 40),
    maxEvents: 5_000_000,
    disk: {
      syncLatency: { kind: "uniform", min: 0.05, max: random.uniform(0.2, 5) },
      syncErrorRate: random.pick([0, 0, 0, 0.01]),
      unsyncedOnCrash: "torn",
    },
  };
}

/** Virtual time allowed, after the faults stop, for everything to settle. */
const LIVENESS_BOUND_MS = 30_000;

async function run(sim: Simulation, random: Prng): Promise<string | undefined> {
  const plan = drawPlan(random.fork("plan"));
  const checker = new OracleChecker(() => sim.now);
  const replicas = new Map<PeerId, OracleReplica>();
  for (const id of plan.replicas) {
    sim.addNode(id, (env) => {
      checker.replicaStarted(id);
      const replica = OracleReplica.open({
        id,
        replicas: plan.replicas,
        transport: env.transport,
        storage: env.storage,
        clock: env.clock,
        random: env.random,
        logger: env.log,
        snapshotEvery: plan.snapshotEvery,
        observer: checker.observer,
      });
      replicas.set(id, replica);
      return { stop: () => replica.stop() };
    }, { down: true });
  }
  const workerPlan: WorkerPlan = {
    replicas: plan.replicas,
    sessionTtlMs: plan.sessionTtlMs,
    thinkMs: plan.thinkMs,
    holdMs: plan.holdMs,
    stopAt: plan.faultWindowMs,
  };
  const workers = new Map<PeerId, OracleWorker>();
  for (const id of plan.clients) {
    sim.addNode(id, (env) => {
      const worker = new OracleWorker(env, workerPlan, checker);
      workers.set(id, worker);
      return {};
    }, { down: true });
  }
  for (const id of plan.replicas) sim.start(id);
  for (const id of plan.clients) sim.start(id);
  const faults = random.fork("faults");
  const scheduled = scheduleOracleFaults({
    sim,
    random: faults,
    windowMs: plan.faultWindowMs,
    replicas: plan.replicas,
    clients: plan.clients,
    sessionTtlMs: plan.sessionTtlMs,
    count: [3, 10],
    kinds: ["partition", "replicas", "crash", "crash", "lossy", "client"],
    splitReplicas: () => randomSplit(faults, plan.replicas),
    sessionOf: (id) => workers.get(id)?.session,
    clientCrashed: (session) => checker.clientCrashed(session),
  });

  // A replica that stopped on a storage failure is restarted.
  superviseReplicas(sim, () => replicas);

  await sim.runForAsync(plan.faultWindowMs);

  // Faults stop: heal, clean links, restart whoever is down or failed.
  stopOracleFaults(sim, plan.replicas);
  for (const id of plan.clients) sim.restart(id);
  const settled = () =>
    checker.fatalErrors.length > 0 ||
    ([...workers.values()].every((w) => w.idle) &&
      checker.pending().length === 0);
  if (!await sim.runUntilAsync(settled, { maxTime: LIVENESS_BOUND_MS })) {
    const pending = checker.pending().slice(0, 5).map((op) =>
      `${op.kind} ${op.path} by ${op.session} since ${op.call.toFixed(0)}ms`
    );
    return `liveness: ${checker.pending().length} operations still pending ${LIVENESS_BOUND_MS}ms after the faults stopped: ${
      pending.join("; ")
    }\n${describe(replicas, workers)}\n${
      recentOps(checker, checker.pending()[0].path)
    }`;
  }
  if (checker.fatalErrors.length > 0) {
    return `a client failed: ${checker.fatalErrors[0]}`;
  }
  const converged = () => {
    const live = plan.replicas.map((id) => replicas.get(id)!);
    const index = live[0].appliedIndex;
    return live.every((r) =>
      r.appliedIndex === index && r.digest() === live[0].digest()
    ) && index >= checker.highestApplied;
  };
  if (!await sim.runUntilAsync(converged, { maxTime: LIVENESS_BOUND_MS })) {
    return `convergence: replicas did not reach the same state: ${
      plan.replicas.map((id) => {
        const r = replicas.get(id)!;
        return `${id}@${r.appliedIndex}`;
      }).join(" ")
    }\n${describe(replicas, workers)}`;
  }

  // Stop the clients, crash every replica at once, restart them all, and
  // read every channel back: nothing acknowledged may be missing.
  scheduled.stopClientRestarts();
  for (const id of plan.clients) sim.crash(id);
  for (const id of plan.replicas) sim.crash(id);
  for (const id of plan.replicas) sim.restart(id);
  const finalReads = new Map<string, ChannelEvent[]>();
  let viewEvents: ChannelEvent[] | undefined;
  let groupEmptied = false;
  let lastView = "";
  let verifyError: unknown;
  sim.addNode("verifier", (env) => {
    const client = new OracleClient(env.transport, {
      replicas: plan.replicas,
      clock: env.clock,
      random: env.random,
      sessionTtlMs: 10_000,
      requestTimeoutMs: 100,
      id: "verifier",
    });
    const readAll = (path: string) =>
      readWholeChannel((p, from, limit) => client.read(p, from, limit), path);
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => env.clock.setTimer(ms, resolve));
    (async () => {
      await client.open();
      for (const path of CHANNELS) finalReads.set(path, await readAll(path));
      // Every client is gone: once their sessions expire, the Oracle must
      // have forced every member out and finished every view change.
      for (let i = 0; i < 300 && !groupEmptied; i++) {
        const { view, proposal } = await client.getView(GROUP);
        lastView = JSON.stringify({ view, proposal });
        groupEmptied = proposal === null && (view?.members.length ?? 0) === 0;
        if (!groupEmptied) await sleep(100);
      }
      viewEvents = await readAll(viewChannel(GROUP));
    })().catch((error) => verifyError = error);
    return {};
  });
  const readBack = () => viewEvents !== undefined || verifyError !== undefined;
  if (!await sim.runUntilAsync(readBack, { maxTime: 2 * LIVENESS_BOUND_MS })) {
    return `recovery: the Oracle did not serve reads after every replica restarted (read ${finalReads.size} channels; last view ${lastView})\n${
      describe(replicas, workers)
    }`;
  }
  if (verifyError !== undefined) {
    return `recovery: the verifier failed: ${String(verifyError)}`;
  }
  for (const [path, events] of finalReads) checker.checkChannel(path, events);
  if (!groupEmptied) {
    return `views: the group still has members or a pending view change long after every client's session should have expired: ${lastView}\n${
      describe(replicas, workers)
    }`;
  }
  const viewFailure = checkViewStream(viewEvents ?? []);
  if (viewFailure !== undefined) return `views: ${viewFailure}`;
  const lost = checkAcknowledgedKept(checker, finalReads);
  if (lost !== undefined) return lost;
  return checkHistories(checker);
}

/** The replicas' and clients' states, for a failure report. */
function describe(
  replicas: ReadonlyMap<PeerId, OracleReplica>,
  workers: ReadonlyMap<PeerId, OracleWorker>,
): string {
  const lines: string[] = [];
  for (const [id, replica] of replicas) {
    lines.push(`replica ${id}: ${JSON.stringify(replica.status())}`);
  }
  for (const [id, worker] of workers) {
    lines.push(`client ${id}: ${worker.status()}`);
  }
  return lines.join("\n");
}

/** The last operations on a path, for a failure report. */
function recentOps(checker: OracleChecker, path: string): string {
  return checker.history.filter((op) => op.path === path).slice(-12).map((
    op,
  ) =>
    `op ${op.id} ${op.kind} by ${op.session} ${op.call.toFixed(1)}..${
      op.ret.toFixed(1)
    } arg ${JSON.stringify(op.arg)} -> ${JSON.stringify(op.output)} ${
      op.error ?? ""
    }`
  ).join("\n");
}

/** One recorded operation in the models' terms, or `undefined` to leave it out. */
function toHistory(
  op: Recorded,
): HistoryOperation<unknown, unknown> | undefined {
  const known = op.ret !== Infinity;
  const output = (value: unknown) =>
    !known ? undefined : op.error !== undefined ? { error: op.error } : value;
  const base = { client: op.session, call: op.call, ret: op.ret };
  switch (op.kind) {
    case "append":
      return {
        ...base,
        input: { op: "append", path: op.path, data: op.arg },
        output: output(op.output),
      };
    case "read":
      return {
        ...base,
        input: { op: "read", path: op.path, from: op.arg, limit: 1000 },
        output: output(op.output),
      };
    case "lock":
    case "trylock":
      return {
        ...base,
        input: {
          kind: op.kind === "lock" ? "acquire" : "tryAcquire",
          path: op.path,
          client: op.session,
        },
        output: output(op.output),
      };
    case "unlock":
      return {
        ...base,
        input: {
          kind: "release",
          path: op.path,
          client: op.session,
          token: op.arg,
        },
        output: !known
          ? undefined
          : op.error === "not_holder"
          ? "not_holder"
          : op.error !== undefined
          ? { error: op.error }
          : "ok",
      };
    default:
      return undefined;
  }
}

/** Checks the lock and channel histories for linearizability. */
export function checkHistories(checker: OracleChecker): string | undefined {
  const lockOps: HistoryOperation<unknown, unknown>[] = [];
  const channelOps: HistoryOperation<unknown, unknown>[] = [];
  for (const op of checker.history) {
    const entry = toHistory(op);
    if (entry === undefined) continue;
    if (op.kind === "append" || op.kind === "read") channelOps.push(entry);
    else lockOps.push(entry);
  }
  for (const ended of checker.endedSessions) {
    lockOps.push({
      client: ended.session,
      input: { kind: "expire", client: ended.session },
      output: ended.ret === Infinity ? undefined : "ok",
      call: ended.call,
      ret: ended.ret,
    });
  }
  for (
    const [name, ops, model] of [
      ["channel", channelOps, channelModel],
      ["lock", lockOps, lockModel],
    ] as const
  ) {
    // deno-lint-ignore no-explicit-any
    const result = checkLinearizable(ops as any, model as any);
    if (result.ok === false) {
      return `linearizability (${name}): ${result.explanation}`;
    }
    if (result.ok === "unknown") {
      return `linearizability (${name}): undecided: ${result.reason}`;
    }
  }
  return undefined;
}

export const oracleScenarios: Scenario[] = [
  simScenario({
    name: "oracle",
    description:
      "Oracle replicas and clients under crashes, partitions, loss, duplication, reordering; checks log agreement, durability, linearizability, fencing, subscriptions",
    options: simulationOptions,
    async run(sim, random) {
      try {
        return await run(sim, random);
      } catch (error) {
        if (error instanceof CheckFailure) return error.message;
        throw error;
      }
    },
  }),
];
