/**
 * Helpers for tests that run Oracle code in the simulator.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Simulation } from "../../sim/mod.ts";

/**
 * Runs the simulation until `promise` settles, at most `maxTime` virtual
 * ms, and returns its result (or throws its error).
 */
export async function settle<T>(
  sim: Simulation,
  promise: Promise<T>,
  maxTime = 20_000,
): Promise<T> {
  let done = false;
  const tracked = promise.finally(() => done = true);
  tracked.catch(() => {});
  await sim.runUntilAsync(() => done, { maxTime });
  assert.ok(done, `nothing settled within ${maxTime} virtual ms`);
  return await tracked;
}
