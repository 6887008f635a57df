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

/** The network and node faults every Oracle-based family injects. */
export const ORACLE_FAMILY_FAULTS: readonly string[] = [
  "droppedByLoss",
  "droppedByPartition",
  "duplicated",
  "reordered",
  "crashes",
  "restarts",
  "partitions",
  "heals",
];

/** What {@linkcode testScenarioFamily} runs. */
export interface FamilyTestOptions {
  /** Seeds that once failed (for reasons fixed since), run first. */
  readonly regressionSeeds: readonly number[];
  /** A further range of seeds: its first and how many. */
  readonly range: readonly [from: number, count: number];
  /** Fault counters each of which must be above 0 over all those runs. */
  readonly faults: readonly string[];
  /** Two different seeds: the first replays to the same hash, the second differs. */
  readonly replay: readonly [number, number];
  /** Every scenario the sim command registers. */
  readonly registered: readonly Scenario[];
}

/**
 * Registers the three tests every scenario family has: its seeds pass and
 * inject every kind of fault, a seed replays exactly, and the sim command
 * knows the family.
 */
export function testScenarioFamily(
  scenario: Scenario,
  options: FamilyTestOptions,
): void {
  const name = scenario.name;
  Deno.test(`${name} scenario: regression seeds and a range pass, and every kind of fault is injected`, async () => {
    const [from, count] = options.range;
    await assertSeedsPassWithFaults(scenario, [
      ...options.regressionSeeds,
      ...Array.from({ length: count }, (_, i) => from + i),
    ], options.faults);
  });
  Deno.test(`${name} scenario: a seed replays to the same hash; seeds differ`, async () => {
    const [seed, other] = options.replay;
    const a = await scenario.run(seed);
    const b = await scenario.run(seed);
    assert.ok(a.ok, a.failure);
    assert.equal(a.traceHash, b.traceHash);
    assert.deepEqual(a.faults, b.faults);
    const c = await scenario.run(other);
    assert.notEqual(c.traceHash, a.traceHash);
  });
  Deno.test(`${name} scenario: the sim command registers the family`, () => {
    assert.ok(options.registered.includes(scenario));
  });
}
