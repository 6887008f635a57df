/**
 * Runs a scenario over seeds and checks it passed and injected faults: the
 * shape of every scenario family's test.
 *
 * @module
 */

import assert from "node:assert/strict";
import { runScenario, type Scenario } from "../../sim/mod.ts";

/**
 * Runs `scenario` with every seed; asserts that every run passed and that
 * each of `faults` was injected at least once over all runs.
 */
export async function assertSeedsPassWithFaults(
  scenario: Scenario,
  seeds: readonly number[],
  faults: readonly string[],
): Promise<void> {
  const totals: Record<string, number> = {};
  const failures: string[] = [];
  for (const seed of seeds) {
    const result = await runScenario(scenario, seed);
    if (!result.ok) failures.push(`seed ${seed}: ${result.failure}`);
    for (const [k, v] of Object.entries(result.faults)) {
      totals[k] = (totals[k] ?? 0) + v;
    }
  }
  assert.deepEqual(failures, []);
  for (const fault of faults) {
    assert.ok(
      totals[fault] > 0,
      `no ${fault} in ${seeds.length} seeds: ${JSON.stringify(totals)}`,
    );
  }
}
