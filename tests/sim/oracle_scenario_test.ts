import assert from "node:assert/strict";
import { ORACLE_FAMILY_FAULTS, testScenarioFamily } from "./_seeds.ts";
import { scenarios } from "./main.ts";
import { oracleScenarios } from "./scenarios/oracle.ts";
import { checkViewStream } from "./scenarios/_oracle_checks.ts";
import type { ChannelEvent, ViewEvent } from "../../oracle/commands.ts";

const oracle = oracleScenarios.find((s) => s.name === "oracle")!;

/**
 * Seeds that failed while the Oracle was built, each for a reason fixed
 * since: 16 (a waiting lock request lost on a lossy link was never sent
 * again), 6 (a replica stopped by a sync failure was never restarted),
 * 1-5 (the final phase restarted crashed clients, which kept their
 * sessions alive). A seed names one run of the scenario as it was written
 * then: when the scenario's plan changes, re-pin failing seeds anew.
 */
const REGRESSION_SEEDS = [1, 2, 3, 4, 5, 6, 16];

testScenarioFamily(oracle, {
  regressionSeeds: REGRESSION_SEEDS,
  range: [1000, 13],
  faults: ORACLE_FAMILY_FAULTS,
  replay: [21, 22],
  registered: scenarios,
});

function event(seq: number, data: ViewEvent): ChannelEvent {
  // deno-lint-ignore no-explicit-any
  return { path: "/_sys/views/g", seq, rev: seq, data: data as any };
}

const m = (...names: string[]) =>
  names.map((member) => ({ member, session: member }));

Deno.test("view stream check: accepts a flush-then-view history and catches broken ones", async (t) => {
  const good = [
    event(1, {
      type: "view",
      group: "/g",
      viewId: 1,
      members: m("a"),
      joined: ["a"],
      left: [],
    }),
    event(2, {
      type: "propose",
      group: "/g",
      viewId: 2,
      fromViewId: 1,
      members: m("a", "b"),
      survivors: ["a"],
      joining: ["b"],
      leaving: [],
    }),
    event(3, {
      type: "view",
      group: "/g",
      viewId: 2,
      members: m("a", "b"),
      joined: ["b"],
      left: [],
    }),
  ];
  await t.step("a proper history passes", () => {
    assert.equal(checkViewStream(good), undefined);
  });
  await t.step("a view whose members do not follow from the last fails", () => {
    const bad = [...good];
    bad[2] = event(3, {
      type: "view",
      group: "/g",
      viewId: 2,
      members: m("b"),
      joined: ["b"],
      left: [],
    });
    assert.match(checkViewStream(bad)!, /do not follow/);
  });
  await t.step("a survivor outside the installed view fails", () => {
    const bad = [...good];
    bad[1] = event(2, {
      type: "propose",
      group: "/g",
      viewId: 2,
      fromViewId: 1,
      members: m("a", "b"),
      survivors: ["a", "z"],
      joining: ["b"],
      leaving: [],
    });
    assert.match(checkViewStream(bad)!, /survivor z/);
  });
  await t.step("a view id that goes back fails", () => {
    const bad = [...good, good[0]];
    bad[3] = event(4, {
      type: "view",
      group: "/g",
      viewId: 2,
      members: m("a", "b"),
      joined: [],
      left: [],
    });
    assert.match(checkViewStream(bad)!, /not above/);
  });
});
