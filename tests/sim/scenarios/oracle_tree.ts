/**
 * Scenario family `oracle-tree`: a root Oracle group and two child groups
 * (three replicas each) and 3-5 clients, each with one tree client (one
 * session for the whole tree). An operator delegates `/a` to group A and
 * `/b` to group B while the clients already read and follow paths there;
 * the clients then write, lock and join groups in both subtrees and at
 * the root. Faults per seed, in every group: replica crashes and restarts
 * (torn unsynced writes), partitions (within a group and between groups),
 * lossy links, loss, duplication, reordering, delay, sync failures,
 * client crashes, and clients cut off from the root only.
 *
 * Checks:
 * - per group: every replica applies the same entry at every index, and
 *   the replicas converge once faults stop;
 * - across the tree, as the clients observed it: acknowledged appends,
 *   reads and delivered events never disagree and nothing is lost (also
 *   after every replica of every group restarts); subscriptions see every
 *   event once, in order, across delegations and rebinds; fencing tokens
 *   are never given twice; lock and channel histories are linearizable;
 * - sessions span the tree: once faults stop, no child group keeps a
 *   session alive that the root ended, and once every client is gone each
 *   child group's groups empty (their memberships were released);
 * - liveness: once faults stop every client operation completes.
 *
 * @module
 */

import {
  type PeerId,
  type Prng,
  type Scenario,
  simScenario,
  type Simulation,
} from "../../../sim/mod.ts";
import {
  type ChannelEvent,
  isUnder,
  viewChannel,
} from "../../../oracle/mod.ts";
import { OracleClient, OracleError } from "../../../oracle/client.ts";
import { OracleReplica } from "../../../oracle/replica.ts";
import { oracleTreeLink } from "../../../oracle/tree_link.ts";
import { OracleTreeClient } from "../../../oracle/tree_client.ts";
import { TransportMux } from "../../../transport/mux.ts";
import {
  checkAcknowledgedKept,
  CheckFailure,
  checkViewStream,
  OracleChecker,
  readWholeChannel,
} from "./_oracle_checks.ts";
import { checkHistories, simulationOptions } from "./oracle.ts";
import { randomSplit } from "./_split.ts";
import { superviseReplicas } from "./_supervise.ts";
import { scheduleOracleFaults, stopOracleFaults } from "./_oracle_faults.ts";
import {
  TREE_CHANNELS,
  TREE_GROUPS,
  TreeWorker,
  type TreeWorkerPlan,
} from "./_tree_worker.ts";

/** The Oracle groups of the tree: the root, then the children and their prefixes. */
const GROUPS = [
  { name: "root", prefix: undefined, ids: ["r1", "r2", "r3"] },
  { name: "A", prefix: "/a", ids: ["a1", "a2", "a3"] },
  { name: "B", prefix: "/b", ids: ["b1", "b2", "b3"] },
] as const;
const ROOT = GROUPS[0].ids;

/** Settings of one run, drawn from the seed. */
interface Plan {
  clients: PeerId[];
  faultWindowMs: number;
  sessionTtlMs: number;
  snapshotEvery: number;
  thinkMs: number;
  holdMs: number;
  syncMs: number;
  /** When the operator delegates `/a`, then `/b`. */
  delegateAt: [number, number];
}

function drawPlan(random: Prng): Plan {
  const clientCount = random.intBetween(3, 5);
  const faultWindowMs = random.intBetween(2000, 5000);
  return {
    clients: Array.from({ length: clientCount }, (_, i) => `c${i + 1}`),
    faultWindowMs,
    sessionTtlMs: random.intBetween(1000, 3000),
    snapshotEvery: random.pick([50, 200, 20_000]),
    thinkMs: random.intBetween(5, 60),
    holdMs: random.intBetween(1, 40),
    syncMs: random.pick([20, 100, 200]),
    delegateAt: [
      random.uniform(0, 300),
      random.uniform(300, faultWindowMs * 0.6),
    ],
  };
}

const REPLICAS: PeerId[] = GROUPS.flatMap((g) => [...g.ids]);

/** Virtual time allowed, after the faults stop, for everything to settle. */
const LIVENESS_BOUND_MS = 30_000;

/** The replicas of one group, as they run. */
type GroupReplicas = Map<PeerId, OracleReplica>;

async function run(sim: Simulation, random: Prng): Promise<string | undefined> {
  const plan = drawPlan(random.fork("plan"));
  const recorder = new OracleChecker(() => sim.now);
  const groups = new Map<string, GroupReplicas>();
  for (const group of GROUPS) {
    const checker = new OracleChecker(() => sim.now);
    const replicas: GroupReplicas = new Map();
    groups.set(group.name, replicas);
    for (const id of group.ids) {
      sim.addNode(id, (env) => {
        checker.replicaStarted(id);
        let transport = env.transport;
        let tree = undefined;
        if (group.prefix !== undefined) {
          const mux = new TransportMux(env.transport);
          transport = mux.rest();
          const upstream = mux.route(ROOT);
          let connections = 0;
          tree = oracleTreeLink({
            name: group.name,
            syncMs: plan.syncMs,
            parent: () =>
              Promise.resolve(
                new OracleClient(upstream, {
                  replicas: ROOT,
                  clock: env.clock,
                  random: env.random,
                  sessionTtlMs: 3000,
                  requestTimeoutMs: 100,
                  deadlineMs: 2000,
                  id: `${id}-${env.incarnation}-up${++connections}`,
                }),
              ),
          });
        }
        const replica = OracleReplica.open({
          id,
          replicas: group.ids,
          transport,
          storage: env.storage,
          clock: env.clock,
          random: env.random,
          logger: env.log,
          snapshotEvery: plan.snapshotEvery,
          observer: checker.observer,
          stateMachine: { treeRoot: group.prefix === undefined },
          tree,
        });
        replicas.set(id, replica);
        return { stop: () => replica.stop() };
      }, { down: true });
    }
  }

  // The operator delegates both subtrees; the clients write there only
  // once it was acknowledged.
  const delegated = new Set<string>();
  const operatorErrors: string[] = [];
  sim.addNode("operator", (env) => {
    const client = new OracleClient(env.transport, {
      replicas: ROOT,
      clock: env.clock,
      random: env.random,
      sessionTtlMs: 10_000,
      requestTimeoutMs: 100,
      deadlineMs: 1000,
      id: "operator",
    });
    // Retries what timed out (the root may be partitioned or electing).
    const retry = async (what: string, call: () => Promise<void>) => {
      for (let attempt = 0; attempt < 1000; attempt++) {
        try {
          return await call();
        } catch (error) {
          if (!(error instanceof OracleError) || error.code !== "timeout") {
            throw error;
          }
        }
      }
      throw new Error(`${what} timed out 1000 times`);
    };
    const delegate = async (
      prefix: string,
      name: string,
      ids: readonly string[],
    ) => {
      const replicas = Object.fromEntries(ids.map((id) => [id, `${id}:1`]));
      await retry(
        `delegating ${prefix}`,
        () => client.delegate(prefix, name, replicas),
      );
      delegated.add(prefix);
    };
    const children = GROUPS.slice(1);
    retry("opening the session", () => client.open()).then(async () => {
      for (const [i, group] of children.entries()) {
        const wait = plan.delegateAt[i] - env.clock.now();
        if (wait > 0) {
          await new Promise<void>((resolve) =>
            env.clock.setTimer(wait, () => resolve())
          );
        }
        await delegate(group.prefix!, group.name, group.ids);
      }
    }).catch((error) => operatorErrors.push(String(error)));
    return {};
  });

  const workerPlan: TreeWorkerPlan = {
    root: ROOT,
    sessionTtlMs: plan.sessionTtlMs,
    thinkMs: plan.thinkMs,
    holdMs: plan.holdMs,
    // Traffic goes on for a while after the faults stop (liveness).
    stopAt: plan.faultWindowMs + 1500,
    writable: (path) =>
      !path.startsWith("/a") && !path.startsWith("/b") ||
      [...delegated].some((prefix) => isUnder(prefix, path)),
  };
  const workers = new Map<PeerId, TreeWorker>();
  for (const id of plan.clients) {
    sim.addNode(id, (env) => {
      const worker = new TreeWorker(env, workerPlan, recorder);
      workers.set(id, worker);
      return {};
    }, { down: true });
  }
  for (const id of REPLICAS) sim.start(id);
  for (const id of plan.clients) sim.start(id);
  const faults = random.fork("faults");
  const scheduled = scheduleOracleFaults({
    sim,
    random: faults,
    windowMs: plan.faultWindowMs,
    replicas: REPLICAS,
    clients: plan.clients,
    sessionTtlMs: plan.sessionTtlMs,
    count: [4, 12],
    kinds: [
      "partition",
      "replicas",
      "crash",
      "crash",
      "crash",
      "lossy",
      "client",
      "cut-from-root",
    ],
    // Within one group, or a whole child group cut off from the root.
    splitReplicas: () => {
      const group = faults.pick([...GROUPS]);
      return faults.chance(0.3) && group.prefix !== undefined
        ? [[...group.ids], [...ROOT]]
        : randomSplit(faults, group.ids);
    },
    sessionOf: (id) => workers.get(id)?.session,
    clientCrashed: (session) => recorder.clientCrashed(session),
    // A client loses the root only, for longer than its session lives:
    // the root ends the session; the children must end it too although
    // the client still keeps it alive there.
    own: (_kind: "cut-from-root", at) => {
      const victim = faults.pick(plan.clients);
      sim.schedule(at, () => {
        const id = sim.partition([victim], [...ROOT]);
        sim.schedule(plan.sessionTtlMs * 1.5, () => sim.heal(id));
      });
    },
  });

  // A replica that stopped on a storage failure is restarted.
  superviseReplicas(sim, () => [...groups.values()].flatMap((g) => [...g]));

  await sim.runForAsync(plan.faultWindowMs);

  stopOracleFaults(sim, REPLICAS);
  for (const id of plan.clients) sim.restart(id);
  const settled = () =>
    recorder.fatalErrors.length > 0 || operatorErrors.length > 0 ||
    (delegated.size === 2 &&
      [...workers.values()].every((w) => w.idle) &&
      recorder.pending().length === 0);
  if (!await sim.runUntilAsync(settled, { maxTime: LIVENESS_BOUND_MS })) {
    const pending = recorder.pending().slice(0, 5).map((op) =>
      `${op.kind} ${op.path} by ${op.session} since ${op.call.toFixed(0)}ms`
    );
    return `liveness: ${recorder.pending().length} operations still pending and ${
      [...delegated].join(",")
    } delegated ${LIVENESS_BOUND_MS}ms after the faults stopped: ${
      pending.join("; ")
    }\n${describe(groups, workers)}`;
  }
  if (operatorErrors.length > 0) {
    return `the operator failed: ${operatorErrors[0]}`;
  }
  if (recorder.fatalErrors.length > 0) {
    return `a client failed: ${recorder.fatalErrors[0]}`;
  }
  const converged = () =>
    [...groups.values()].every((replicas) => {
      const live = [...replicas.values()];
      return live.every((r) =>
        r.appliedIndex === live[0].appliedIndex &&
        r.digest() === live[0].digest()
      );
    });
  if (!await sim.runUntilAsync(converged, { maxTime: LIVENESS_BOUND_MS })) {
    return `convergence: a group's replicas did not reach the same state\n${
      describe(groups, workers)
    }`;
  }
  // Sessions span the tree: a child keeps no session the root ended.
  const orphans = () => orphanSessions(groups);
  if (
    !await sim.runUntilAsync(() => orphans().length === 0, {
      maxTime: LIVENESS_BOUND_MS,
    })
  ) {
    return `sessions: child groups keep sessions the root ended: ${
      orphans().slice(0, 5).join(", ")
    }`;
  }

  // Stop the clients, crash every replica of every group at once, restart
  // them all, and read everything back through the tree.
  scheduled.stopClientRestarts();
  for (const id of plan.clients) sim.crash(id);
  for (const id of REPLICAS) sim.crash(id);
  for (const id of REPLICAS) sim.restart(id);
  const finalReads = new Map<string, ChannelEvent[]>();
  const viewEvents = new Map<string, ChannelEvent[]>();
  const lastViews = new Map<string, string>();
  let verifyError: unknown;
  let verified = false;
  sim.addNode("verifier", (env) => {
    const mux = new TransportMux(env.transport);
    const client = new OracleTreeClient(mux.route(ROOT), {
      replicas: ROOT,
      clock: env.clock,
      random: env.random,
      sessionTtlMs: 10_000,
      requestTimeoutMs: 100,
      id: "verifier",
      connectGroup: (delegation) =>
        Promise.resolve(mux.route(Object.keys(delegation.replicas))),
    });
    const readAll = (path: string) =>
      readWholeChannel((p, from, limit) => client.read(p, from, limit), path);
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => env.clock.setTimer(ms, resolve));
    (async () => {
      await client.open();
      for (const path of TREE_CHANNELS) {
        finalReads.set(path, await readAll(path));
      }
      // Every client is gone: once their sessions end (at the root, and
      // so in every child), every member must be out of every group.
      for (const group of TREE_GROUPS) {
        for (let i = 0; i < 300; i++) {
          const { view, proposal } = await client.getView(group);
          lastViews.set(group, JSON.stringify({ view, proposal }));
          if (proposal === null && (view?.members.length ?? 0) === 0) break;
          await sleep(100);
        }
        viewEvents.set(group, await readAll(viewChannel(group)));
      }
      verified = true;
    })().catch((error) => verifyError = error);
    return {};
  });
  const readBack = () => verified || verifyError !== undefined;
  if (!await sim.runUntilAsync(readBack, { maxTime: 4 * LIVENESS_BOUND_MS })) {
    return `recovery: the tree did not serve reads after every replica restarted (read ${finalReads.size} channels)\n${
      describe(groups, workers)
    }`;
  }
  if (verifyError !== undefined) {
    return `recovery: the verifier failed: ${String(verifyError)}`;
  }
  for (const [path, events] of finalReads) recorder.checkChannel(path, events);
  for (const group of TREE_GROUPS) {
    const last = JSON.parse(lastViews.get(group) ?? "null");
    if (last?.proposal !== null || (last?.view?.members.length ?? 0) !== 0) {
      return `views: group ${group} still has members or a pending view change long after every client's session ended: ${
        lastViews.get(group)
      }`;
    }
    const failure = checkViewStream(viewEvents.get(group) ?? []);
    if (failure !== undefined) return `views of ${group}: ${failure}`;
  }
  const lost = checkAcknowledgedKept(recorder, finalReads);
  if (lost !== undefined) return lost;
  return checkHistories(recorder);
}

/** Sessions a child group's replicas hold live that no root replica holds live. */
function orphanSessions(groups: ReadonlyMap<string, GroupReplicas>): string[] {
  const rootLive = new Set<string>();
  for (const replica of groups.get("root")!.values()) {
    for (const session of replica.liveSessions()) rootLive.add(session);
  }
  const orphans: string[] = [];
  for (const [name, replicas] of groups) {
    if (name === "root") continue;
    for (const [id, replica] of replicas) {
      for (const session of replica.liveSessions()) {
        if (!rootLive.has(session)) orphans.push(`${session} at ${id}`);
      }
    }
  }
  return orphans;
}

/** The replicas' and clients' states, for a failure report. */
function describe(
  groups: ReadonlyMap<string, GroupReplicas>,
  workers: ReadonlyMap<PeerId, TreeWorker>,
): string {
  const lines: string[] = [];
  for (const replicas of groups.values()) {
    for (const [id, replica] of replicas) {
      lines.push(`replica ${id}: ${JSON.stringify(replica.status())}`);
    }
  }
  for (const [id, worker] of workers) {
    lines.push(`client ${id}: ${worker.status()}`);
  }
  return lines.join("\n");
}

export const oracleTreeScenarios: Scenario[] = [
  simScenario({
    name: "oracle-tree",
    description:
      "A root and two child Oracle groups, delegations during traffic, clients across subtrees, faults in every group; checks per-group log agreement, durability, linearizability, subscriptions across delegations, sessions ended across the tree",
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
