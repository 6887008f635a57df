/**
 * The fault schedule of the Oracle scenario families: partitions, replica
 * crashes and restarts, lossy links and client crashes at random times
 * within the fault window, plus the faults a family adds of its own.
 *
 * @module
 */

import type { PeerId, Prng, Simulation } from "../../../sim/mod.ts";
import { randomSplit } from "./_split.ts";

/** A fault every Oracle family injects. */
export type OracleFault =
  /** Any nodes against any others, both ways. */
  | "partition"
  /** Replicas split by `splitReplicas`, one way half of the time. */
  | "replicas"
  /** A replica crashes, and restarts before the window ends. */
  | "crash"
  /** One link loses 30-90% of its frames. */
  | "lossy"
  /** A client crashes; its session expires; it comes back later. */
  | "client";

/** What the schedule acts on, and how. */
export interface OracleFaultPlan<K extends string> {
  readonly sim: Simulation;
  readonly random: Prng;
  /** Faults start within the first 90% of this many ms. */
  readonly windowMs: number;
  readonly replicas: readonly PeerId[];
  readonly clients: readonly PeerId[];
  readonly sessionTtlMs: number;
  /** How many faults: drawn from this range. */
  readonly count: readonly [number, number];
  /** The kinds to draw from (repeat one to make it likelier). */
  readonly kinds: readonly (OracleFault | K)[];
  /** The two sides of a `replicas` partition. */
  splitReplicas(): [PeerId[], PeerId[]];
  /** The session of client `id`'s current worker, if it has one. */
  sessionOf(id: PeerId): string | undefined;
  /** Told that client `id`, holding `session`, crashed. */
  clientCrashed(session: string): void;
  /** Schedules a fault of the family's own kind. */
  own?(kind: K, at: number, duration: number): void;
}

/** The faults of one run, once scheduled. */
export interface OracleFaults {
  /**
   * Clients a `client` fault crashed stay down from now on (the final
   * phase stops every client for good).
   */
  stopClientRestarts(): void;
}

/** Draws and schedules the faults of one run. */
export function scheduleOracleFaults<K extends string = never>(
  plan: OracleFaultPlan<K>,
): OracleFaults {
  const { sim, random, windowMs: window } = plan;
  let clientRestarts = true;
  const everyone = [...plan.replicas, ...plan.clients];
  const count = random.intBetween(plan.count[0], plan.count[1]);
  for (let i = 0; i < count; i++) {
    const at = random.uniform(200, window * 0.9);
    const duration = random.uniform(50, 1200);
    const kind = random.pick([...plan.kinds]);
    if (kind === "partition") {
      const [a, b] = randomSplit(random, everyone);
      sim.schedule(at, () => {
        const id = sim.partition(a, b);
        sim.schedule(duration, () => sim.heal(id));
      });
    } else if (kind === "replicas") {
      const [a, b] = plan.splitReplicas();
      sim.schedule(at, () => {
        const id = sim.partition(a, b, { oneWay: random.chance(0.5) });
        sim.schedule(duration, () => sim.heal(id));
      });
    } else if (kind === "crash") {
      const victim = random.pick([...plan.replicas]);
      sim.schedule(at, () => {
        if (!sim.crash(victim)) return;
        sim.schedule(
          Math.min(duration, Math.max(1, window - at)),
          () => sim.restart(victim),
        );
      });
    } else if (kind === "lossy") {
      const from = random.pick(everyone);
      const to = random.pick(everyone.filter((id) => id !== from));
      const loss = random.uniform(0.3, 0.9);
      sim.schedule(at, () => {
        sim.setLink(from, to, { loss });
        sim.schedule(duration, () => sim.resetLink(from, to));
      });
    } else if (kind === "client") {
      // A client crashes: its session expires at the Oracle, its locks
      // go to the next waiter; it comes back under a new session.
      const victim = random.pick([...plan.clients]);
      sim.schedule(at, () => {
        const session = plan.sessionOf(victim);
        if (!sim.crash(victim)) return;
        if (session !== undefined) plan.clientCrashed(session);
        sim.schedule(duration + plan.sessionTtlMs, () => {
          if (clientRestarts) sim.restart(victim);
        });
      });
    } else {
      plan.own?.(kind as K, at, duration);
    }
  }
  return { stopClientRestarts: () => clientRestarts = false };
}

/**
 * The faults stop: partitions heal, every link is clean again (no loss,
 * duplication or reordering), and `replicas` restart if they are down.
 */
export function stopOracleFaults(
  sim: Simulation,
  replicas: readonly PeerId[],
): void {
  sim.heal();
  sim.resetLink();
  sim.setDefaultLink({ loss: 0, duplicate: 0, reorder: 0 });
  for (const id of replicas) sim.restart(id);
}
