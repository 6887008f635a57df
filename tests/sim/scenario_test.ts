import assert from "node:assert/strict";
import {
  runScenario,
  runScenarioCli,
  type Scenario,
  simScenario,
} from "../../sim/mod.ts";

/** Passes on every seed; exchanges a few frames so the hash depends on the seed. */
const steady = simScenario({
  name: "steady",
  description: "a few frames on a lossy link",
  options: () => ({ loss: 0.2 }),
  run(sim) {
    let got = 0;
    sim.addNode("b", (env) => {
      env.transport.setHandler({ onFrame: () => got++ });
      return {};
    });
    sim.addNode("a", (env) => {
      for (let i = 0; i < 20; i++) env.transport.send("b", new Uint8Array([i]));
      return {};
    });
    sim.runFor(100);
    if (got === 0) return "nothing arrived";
  },
});

/** Fails on every seed divisible by 3, by returning a message or by throwing. */
const flaky = simScenario({
  name: "flaky",
  description: "fails when the seed is divisible by 3",
  run(sim, random) {
    sim.addNode("a", (env) => {
      env.clock.setTimer(1, () => {
        if (sim.seed % 6 === 0) {
          throw new Error(`timer blew up ${random.int(1)}`);
        }
      });
      return {};
    });
    sim.runFor(10);
    if (sim.seed % 6 === 3) {
      return `seed ${sim.seed} is divisible by 3\nsecond line`;
    }
  },
});

async function cli(scenarios: Scenario[], args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runScenarioCli(scenarios, args, {
    stdout: (line) => out.push(line),
    stderr: (line) => err.push(line),
  });
  return { code, out, err };
}

Deno.test("runner: all passing seeds end with 'N passed, 0 failed' and exit 0", async () => {
  const { code, out, err } = await cli([steady], [
    "--from",
    "5",
    "--seeds",
    "7",
  ]);
  assert.equal(code, 0);
  assert.equal(out.at(-1), "7 passed, 0 failed");
  assert.equal(out.length, 1, "passing seeds print nothing without --verbose");
  assert.ok(err.some((l) => l.includes("steady: seeds 5..11")));
});

Deno.test("runner: each failing seed prints its reason and one replay command; exit 1", async () => {
  const { code, out } = await cli([steady, flaky], [
    "--from",
    "1",
    "--seeds",
    "12",
  ]);
  assert.equal(code, 1);
  assert.equal(out.at(-1), "20 passed, 4 failed");
  const fails = out.filter((l) => l.startsWith("FAIL "));
  assert.deepEqual(
    fails.map((l) => l.split(" ").slice(0, 4).join(" ")),
    [
      "FAIL flaky seed 3",
      "FAIL flaky seed 6",
      "FAIL flaky seed 9",
      "FAIL flaky seed 12",
    ],
  );
  assert.match(fails[0], /: seed 3 is divisible by 3$/);
  assert.match(fails[1], /timer blew up/);
  assert.match(fails[1], /hash [0-9a-f]{16}/);
  const replays = out.filter((l) => l.includes("replay:"));
  assert.deepEqual(replays, [
    "  replay: deno task sim --scenario flaky --seed 3",
    "  replay: deno task sim --scenario flaky --seed 6",
    "  replay: deno task sim --scenario flaky --seed 9",
    "  replay: deno task sim --scenario flaky --seed 12",
  ]);
  assert.ok(
    !out.some((l) => l.includes("second line")),
    "details only with --verbose",
  );
});

Deno.test("runner: --seed prints the trace hash, which replays identically", async () => {
  const first = await cli([steady], ["--scenario", "steady", "--seed", "42"]);
  const second = await cli([steady], ["--seed", "42", "--scenario", "steady"]);
  assert.equal(first.code, 0);
  assert.match(
    first.out[0],
    /^ok steady seed 42 hash [0-9a-f]{16} events \d+ time \d+ms$/,
  );
  assert.deepEqual(first.out, second.out);
  assert.equal(first.out.at(-1), "1 passed, 0 failed");
  const other = await cli([steady], ["--seed", "43"]);
  assert.notEqual(other.out[0].split(" ")[5], first.out[0].split(" ")[5]);
});

Deno.test("runner: --verbose shows hashes, faults, details and the trace tail", async () => {
  const { code, out } = await cli([flaky], [
    "--scenario",
    "flaky",
    "--seed",
    "3",
    "--verbose",
  ]);
  assert.equal(code, 1);
  assert.ok(out.some((l) => l === "    second line"));
  assert.ok(out.some((l) => l.startsWith("  faults:")));
  assert.ok(out.some((l) => l.startsWith("    | ")), "trace lines shown");
  assert.equal(out.at(-2), "  replay: deno task sim --scenario flaky --seed 3");
  assert.equal(out.at(-1), "0 passed, 1 failed");
  // Keeping trace lines does not change the hash.
  const quiet = await cli([flaky], ["--scenario", "flaky", "--seed", "3"]);
  assert.equal(quiet.out[0].split(" ")[5], out[0].split(" ")[5]);
});

Deno.test("runner: no arguments run every scenario over the default range", async () => {
  const { code, out, err } = await cli([steady, flaky], []);
  assert.equal(code, 1);
  assert.equal(out.at(-1), "84 passed, 16 failed");
  assert.ok(err.some((l) => l.startsWith("steady: seeds 1..50")));
  assert.ok(err.some((l) => l.startsWith("flaky: 34 passed, 16 failed in ")));
});

Deno.test("runner: bad arguments print one error line and the usage, exit 2", async () => {
  for (
    const args of [
      ["--seed", "x"],
      ["--seed", "-1"],
      ["--seeds", "0"],
      ["--seed", "1", "--from", "2"],
      ["--scenario", "nope"],
      ["--bogus"],
      ["positional"],
      ["--seed"],
    ]
  ) {
    const { code, out, err } = await cli([steady, flaky], args);
    assert.equal(code, 2, args.join(" "));
    assert.equal(out.length, 0, args.join(" "));
    assert.match(err[0], /^error: /, args.join(" "));
    assert.match(err[1], /^usage: deno task sim /);
    assert.ok(err.some((l) => l.includes("flaky")), "usage lists scenarios");
  }
  const unknown = await cli([steady], ["--scenario", "nope"]);
  assert.match(unknown.err[0], /unknown scenario "nope" \(known: steady\)/);
  const help = await cli([steady], ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out[0], /^usage: /);
});

Deno.test("runner: duplicate scenario names are a programming error", async () => {
  await assert.rejects(() => cli([steady, steady], []), TypeError);
});

Deno.test("runScenario: a scenario that throws becomes a failed result", async () => {
  const broken: Scenario = {
    name: "broken",
    description: "throws outside any simulation",
    run() {
      return Promise.reject(new Error("bad setup"));
    },
  };
  const result = await runScenario(broken, 1);
  assert.equal(result.ok, false);
  assert.match(result.failure!, /bad setup/);
  const { code, out } = await cli([broken], ["--seed", "1"]);
  assert.equal(code, 1);
  assert.equal(out.at(-1), "0 passed, 1 failed");
});

Deno.test("simScenario: results carry hash, faults, events and virtual time", async () => {
  const a = await steady.run(9);
  const b = await steady.run(9);
  assert.deepEqual(a, b);
  assert.ok(a.ok);
  assert.ok(a.events! > 0);
  assert.equal(a.virtualTime, 100);
  assert.equal(typeof a.faults.droppedByLoss, "number");
  assert.equal(a.trace, undefined);
  assert.equal((await steady.run(9, { traceCapacity: 5 })).trace!.length, 5);
});
