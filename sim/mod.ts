/**
 * The deterministic simulator: run protocol code (anything written against
 * Cohort's `Clock`, `Random`, `Transport` and `Storage` interfaces) on a
 * virtual clock, a seeded PRNG, a simulated network that delays, loses,
 * duplicates and reorders frames and can be partitioned, and simulated disks
 * that lose unsynced writes when a node crashes. Every run is a pure
 * function of its seed and script: a failing seed replays exactly, and
 * {@linkcode Simulation.traceHash} proves it.
 *
 * {@linkcode simScenario} and {@linkcode runScenarioCli} turn checks into
 * seeded scenarios and a command that sweeps seed ranges.
 *
 * @example Crash a node: its timers never fire, only synced data survives
 * ```ts
 * import { Simulation } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * const sim = new Simulation({ seed: 3, disk: { unsyncedOnCrash: "lose" } });
 * let fired = 0;
 * const node = sim.addNode("n1", (env) => {
 *   env.clock.setTimer(100, () => fired++);
 *   if (env.incarnation === 1) {
 *     env.storage.append("log", new Uint8Array([1, 2]));
 *     env.storage.sync("log", () => env.storage.append("log", new Uint8Array([3])));
 *   }
 *   return {};
 * });
 * sim.runFor(50); // the sync completed, the second append did not
 * sim.crash("n1");
 * sim.runFor(100); // the first incarnation's timer is gone
 * assert.equal(fired, 0);
 * sim.restart("n1");
 * assert.deepEqual(node.disk.read("log"), new Uint8Array([1, 2]));
 * sim.runFor(100);
 * assert.equal(fired, 1);
 * assert.equal(sim.faults().timersDroppedByCrash, 1);
 * ```
 *
 * @module
 */

export { type Clock, type TimerId } from "../runtime/clock.ts";
export { type Random } from "../runtime/random.ts";
export { type Storage } from "../runtime/storage.ts";
export { type LogFields, type Logger, type LogLevel } from "../runtime/log.ts";
export {
  type PeerId,
  type Transport,
  type TransportHandler,
  type TransportStats,
} from "../transport/transport.ts";
export {
  checkLinearizable,
  type HistoryOperation,
  type LinearizabilityModel,
  type LinearizabilityOptions,
  type LinearizabilityResult,
} from "./linearizability.ts";
export { Prng } from "./prng.ts";
export {
  DEFAULT_LINK,
  type LatencyDistribution,
  type LinkConfig,
  type LinkOptions,
  sampleLatency,
} from "./network.ts";
export {
  type DiskCounters,
  type DiskOptions,
  type SimDiskView,
} from "./disk.ts";
export {
  type AddNodeOptions,
  type PartitionOptions,
  type RunUntilOptions,
  type SimFaultCounters,
  type SimNode,
  type SimNodeEnv,
  type SimNodeHandle,
  type SimulationOptions,
} from "./sim_types.ts";
export { Simulation } from "./simulation.ts";
export {
  SimulationError,
  type SimulationErrorCode,
  type SimulationErrorOptions,
} from "./simulation_error.ts";
export {
  runScenario,
  runScenarioCli,
  type RunScenarioCliOptions,
  type Scenario,
  type ScenarioResult,
  type ScenarioRunOptions,
  simScenario,
  type SimScenarioDefinition,
} from "./scenario.ts";
