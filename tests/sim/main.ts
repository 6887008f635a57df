/**
 * The `sim` command: runs every registered scenario family over seed ranges.
 *
 * ```sh
 * deno task sim [--scenario NAME] [--seed N | --from N --seeds K] [--verbose]
 * ```
 *
 * Needs no permissions: the simulator does no I/O.
 *
 * @module
 */

import { runScenarioCli, type Scenario } from "../../sim/mod.ts";
import { oracleScenarios } from "./scenarios/oracle.ts";
import { oracleTreeScenarios } from "./scenarios/oracle_tree.ts";
import { groupScenarios } from "./scenarios/groups.ts";
import { transportScenarios } from "./scenarios/transport.ts";

/** Every scenario the command knows, one family per file in `scenarios/`. */
export const scenarios: Scenario[] = [
  ...transportScenarios,
  ...oracleScenarios,
  ...oracleTreeScenarios,
  ...groupScenarios,
];

if (import.meta.main) {
  Deno.exitCode = await runScenarioCli(scenarios, Deno.args);
}
