import { ORACLE_FAMILY_FAULTS, testScenarioFamily } from "./_seeds.ts";
import { scenarios } from "./main.ts";
import { oracleTreeScenarios } from "./scenarios/oracle_tree.ts";

/**
 * Seeds that failed while the tree was built, each for a reason fixed
 * since: 263 (a tree client reports its session ended when one group
 * ended it, while the root ends it later: the check took the report as
 * the root's expiry). A seed names one run of the scenario as it was
 * written then: when the scenario's plan changes, re-pin failing seeds.
 */
testScenarioFamily(oracleTreeScenarios[0], {
  regressionSeeds: [263],
  range: [2000, 12],
  faults: ORACLE_FAMILY_FAULTS,
  replay: [31, 32],
  registered: scenarios,
});
