/**
 * Scenario family `groups`: a process group of 2-7 members over an
 * Oracle of three replicas. Members multicast numbered messages (fbcast,
 * cbcast, abcast or, one time in ten, gbcast, at random) while members crash (mid-multicast and
 * mid-flush included), restart and rejoin under new names (with state
 * transfer), leave, and while the network loses, duplicates, reorders and
 * partitions; on a reliable network too.
 *
 * The `actors` family runs the same, with a replicated actor in every
 * member behind a `GroupHandle`: its state hash must agree at every view.
 *
 * Checks, on the history every member recorded: view agreement, view
 * synchrony, integrity, FIFO, causal and total (agreed) order, gbcast
 * order against every message and view, state transfer (every member of a view holds the same digest of what it
 * delivered), and liveness once faults stop (every member still up ends
 * in the same view, and every message multicast by a member that stayed
 * up was delivered by every member of its view); and no member that no
 * fault touched is ever forced out.
 *
 * @module
 */

import {
  type PeerId,
  type Prng,
  type Scenario,
  simScenario,
  type Simulation,
  type SimulationOptions,
} from "../../../sim/mod.ts";
import { OracleReplica } from "../../../oracle/replica.ts";
import { GroupNode, type GroupNodePlan, nodeOf } from "./_group_node.ts";
import { GroupRecorder, type Strategy } from "./_group_history.ts";
import { checkGroupHistory, checkLiveness } from "./_group_checks.ts";
import { randomSplit } from "./_split.ts";
import { superviseReplicas } from "./_supervise.ts";
import { stopOracleFaults } from "./_oracle_faults.ts";

const ORACLE = ["o1", "o2", "o3"];
const GROUP = "/g";

/** Settings of one run, drawn from the seed. */
interface Plan {
  members: PeerId[];
  faultWindowMs: number;
  sessionTtlMs: number;
  sendEveryMs: number;
  reliableNetwork: boolean;
}

function drawPlan(random: Prng): Plan {
  const count = random.intBetween(2, 7);
  return {
    members: Array.from({ length: count }, (_, i) => `m${i + 1}`),
    faultWindowMs: random.intBetween(2000, 5000),
    // Sessions outlive the Oracle's first election and a few lost frames:
    // failures inside the group are the members' heartbeats' job.
    sessionTtlMs: random.intBetween(2000, 4000),
    sendEveryMs: random.intBetween(2, 40),
    reliableNetwork: random.chance(0.3),
  };
}

function simulationOptions(
  random: Prng,
): Omit<SimulationOptions, "seed" | "traceCapacity"> {
  const lossy = !random.chance(0.3);
  return {
    latency: { kind: "uniform", min: 0.1, max: random.uniform(0.5, 5) },
    loss: lossy ? random.pick([0, 0.01, 0.05]) : 0,
    duplicate: lossy ? random.pick([0, 0.02, 0.1]) : 0,
    reorder: lossy ? random.pick([0, 0.05, 0.2]) : 0,
    reorderDelay: random.uniform(2, 20),
    maxEvents: 10_000_000,
  };
}

/** Virtual time allowed, after the faults stop, for the group to settle. */
const LIVENESS_BOUND_MS = 30_000;

/**
 * One run; with `actors`, every member runs a replicated actor
 * (`_sim_ledger.ts`) through a `GroupHandle`, and the state compared at
 * every view is the actor's.
 */
async function run(
  sim: Simulation,
  random: Prng,
  actors: boolean,
): Promise<string | undefined> {
  const plan = drawPlan(random.fork("plan"));
  const fatal: string[] = [];
  const recorder = new GroupRecorder({
    now: () => sim.now,
    onFailure: (message) => fatal.push(message),
  });
  const replicas = new Map<PeerId, OracleReplica>();
  for (const id of ORACLE) {
    sim.addNode(id, (env) => {
      const replica = OracleReplica.open({
        id,
        replicas: ORACLE,
        transport: env.transport,
        storage: env.storage,
        clock: env.clock,
        random: env.random,
        logger: env.log,
      });
      replicas.set(id, replica);
      return { stop: () => replica.stop() };
    }, { down: true });
  }
  const nodePlan: GroupNodePlan = {
    oracle: ORACLE,
    group: GROUP,
    sessionTtlMs: plan.sessionTtlMs,
    sendEveryMs: plan.sendEveryMs,
    stopAt: plan.faultWindowMs,
    actors,
    // gbcast one time in ten: each costs an Oracle round and a flush.
    strategies: [
      ...Array<Strategy>(3).fill("fbcast"),
      ...Array<Strategy>(3).fill("cbcast"),
      ...Array<Strategy>(3).fill("abcast"),
      "gbcast",
    ],
  };
  const nodes = new Map<PeerId, GroupNode>();
  /**
   * Nodes some fault touched (crashed, partitioned, lossy, left). A node
   * no fault touched must never be forced out: that would be a false
   * suspicion, or a flush that could not finish.
   */
  const touched = new Set<PeerId>();
  const forcedOut = (member: string, how: string) => {
    const node = nodeOf(member);
    if (!touched.has(node)) {
      fatal.push(`${member} was ${how} though no fault touched ${node}`);
    }
  };
  /** Members whose end (crash or exclusion) was recorded. */
  const ended = new Set<string>();
  /** Records a member's end, the first time only. */
  const end = (member: string, how: "crashed" | "left") => {
    if (ended.has(member)) return;
    ended.add(member);
    recorder[how](member);
  };
  const crash = (id: PeerId) => {
    const node = nodes.get(id);
    if (!sim.crash(id) || node === undefined) return false;
    end(node.name, "crashed");
    return true;
  };
  for (const id of plan.members) {
    sim.addNode(id, (env) => {
      const node = new GroupNode(env, nodePlan, {
        sent: (member, id, viewId, strategy) =>
          recorder.sent({ id, sender: member, strategy, viewId }),
        delivered: (member, id, message) =>
          recorder.delivered(member, {
            id,
            sender: message.sender,
            strategy: message.strategy as Strategy,
            viewId: message.viewId,
          }),
        view: (member, view) => recorder.view(member, view),
        state: (member, viewId, hash) =>
          recorder.state(member, { viewId, hash }),
        stateLost: (member) => {
          // Not a fault of the member's: the joins came too fast. It stops
          // like a crash, and leaves.
          touched.add(nodeOf(member));
          end(member, "crashed");
        },
        excluded: (member) => {
          forcedOut(member, "excluded");
          end(member, "left");
        },
        lost: (member) => {
          forcedOut(member, "cut from the Oracle");
          end(member, "crashed");
        },
        fatal: (member, text) => fatal.push(`${member}: ${text}`),
      });
      nodes.set(id, node);
      return {};
    }, { down: true });
  }
  for (const id of ORACLE) sim.start(id);
  for (const id of plan.members) sim.start(id);
  superviseReplicas(sim, () => replicas);
  scheduleFaults(sim, random.fork("faults"), plan, nodes, crash, touched);

  await sim.runForAsync(plan.faultWindowMs);

  // Faults stop: heal, clean links, restart every node that is down.
  stopOracleFaults(sim, ORACLE);
  // Nodes down, or whose member is out of the group, come back as new
  // members (new incarnations, new names).
  for (const id of plan.members) {
    if (sim.node(id).up && nodes.get(id)?.gone) crash(id);
    if (!sim.node(id).up) sim.restart(id);
  }
  const live = () =>
    plan.members.map((id) => nodes.get(id)!).filter((n) => !n.gone);
  // Settled: every member still up is in one view of exactly them, with
  // nothing queued or flushing, and everything sent was delivered (the
  // liveness check, run at most every 50 ms of virtual time).
  let checkedAt = -Infinity;
  let lively = false;
  const settled = () => {
    if (fatal.length > 0) return true;
    const members = live();
    const view = members[0]?.view;
    const together = members.every((n) =>
      n.settled && n.view?.viewId === view?.viewId &&
      n.view?.members.length === members.length
    );
    if (!together) return false;
    if (sim.now - checkedAt >= 50) {
      checkedAt = sim.now;
      lively = checkLiveness(recorder.history) === undefined;
    }
    return lively;
  };
  if (!await sim.runUntilAsync(settled, { maxTime: LIVENESS_BOUND_MS })) {
    return `liveness: the group did not settle ${LIVENESS_BOUND_MS}ms after the faults stopped: ${
      checkLiveness(recorder.history)
    }\n${live().map((n) => n.status()).join("\n")}`;
  }
  if (fatal.length > 0) return `a member failed: ${fatal[0]}`;
  return checkGroupHistory(recorder.history, { settled: true });
}

/** Schedules the faults of one run within the fault window. */
function scheduleFaults(
  sim: Simulation,
  random: Prng,
  plan: Plan,
  nodes: ReadonlyMap<PeerId, GroupNode>,
  crash: (id: PeerId) => boolean,
  touched: Set<PeerId>,
): void {
  const count = random.intBetween(2, 10);
  const window = plan.faultWindowMs;
  for (let i = 0; i < count; i++) {
    const at = random.uniform(300, window * 0.8);
    const duration = random.uniform(100, 1500);
    const kind = random.pick(["crash", "crash", "lossy", "partition", "leave"]);
    const victim = random.pick(plan.members);
    if (kind === "lossy" && plan.members.length > 2) {
      // The victim's frames to some members get lost, then the victim
      // crashes: those members lack what the others received (a crash
      // mid-multicast), and only the flush's echoes can give it to them.
      const deaf = random.shuffle(plan.members.filter((m) => m !== victim))
        .slice(0, random.intBetween(1, plan.members.length - 2));
      const loss = random.uniform(0.5, 1);
      sim.schedule(at, () => {
        // Only the victim: the members that lack its messages are healthy,
        // and the flush must let them finish without excluding them.
        touched.add(victim);
        for (const to of deaf) sim.setLink(victim, to, { loss });
        sim.schedule(duration / 4, () => {
          crash(victim);
          for (const to of deaf) sim.resetLink(victim, to);
          sim.schedule(duration, () => sim.restart(victim));
        });
      });
    } else if (kind === "crash") {
      // Mid-multicast and mid-flush included: nothing waits for quiet.
      sim.schedule(at, () => {
        touched.add(victim);
        if (!crash(victim)) return;
        sim.schedule(duration, () => sim.restart(victim));
      });
    } else if (kind === "partition" && !plan.reliableNetwork) {
      const [a, b] = randomSplit(random, plan.members);
      sim.schedule(at, () => {
        for (const id of [...a, ...b]) touched.add(id);
        const id = sim.partition(a, b);
        sim.schedule(duration, () => sim.heal(id));
      });
    } else if (kind === "leave") {
      sim.schedule(at, () => {
        touched.add(victim);
        const node = nodes.get(victim);
        if (node === undefined || !sim.node(victim).up || node.gone) return;
        node.leave();
      });
    }
  }
}

export const groupScenarios: Scenario[] = [
  simScenario({
    name: "groups",
    description:
      "A process group of 2-7 members over an Oracle, under crashes, restarts, leaves, loss, duplication, reordering and partitions; checks view agreement, view synchrony, integrity, FIFO and liveness",
    options: simulationOptions,
    run: (sim, random) => run(sim, random, false),
  }),
  simScenario({
    name: "actors",
    description:
      "The groups scenario with a replicated actor in every member (registers overwritten by abcast and gbcast, counters raised by fbcast and cbcast, behind GroupHandle); checks that every member's actor state hash agrees at every view, with all the groups checks",
    options: simulationOptions,
    run: (sim, random) => run(sim, random, true),
  }),
];
