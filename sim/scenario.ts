/**
 * Seeded scenarios and the command that runs them: a scenario is a named
 * function from a seed to a verdict; the runner sweeps seed ranges, prints
 * one replay command per failing seed and ends with `N passed, N failed`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { checkSeed, Prng } from "./prng.ts";
import type { SimulationOptions } from "./sim_types.ts";
import { Simulation } from "./simulation.ts";
import { SimulationError } from "./simulation_error.ts";

/** The verdict of one scenario run with one seed. */
export interface ScenarioResult {
  /** Whether every check passed. */
  ok: boolean;
  /** Why the run failed (first line is the summary). */
  failure?: string | undefined;
  /** The hash of the run's trace; equal seeds give equal hashes. */
  traceHash: string;
  /** Counters of the faults injected and of activity. */
  faults: Record<string, number>;
  /** Number of simulation events run. */
  events?: number | undefined;
  /** Virtual time at the end of the run, in ms. */
  virtualTime?: number | undefined;
  /** The last trace lines, if they were asked for. */
  trace?: string[] | undefined;
}

/** Options of {@linkcode Scenario.run}. */
export interface ScenarioRunOptions {
  /** How many trace lines to keep and return in the result. Default 0. */
  traceCapacity?: number | undefined;
}

/** A named, seeded test: the same seed must always give the same result. */
export interface Scenario {
  /** A short name for the command line, for example `"transport"`. */
  readonly name: string;
  /** One line saying what the scenario exercises and checks. */
  readonly description: string;
  /**
   * Runs the scenario with one seed. Should not throw: failures are
   * reported in the result ({@linkcode runScenario} catches if it does).
   */
  run(seed: number, options?: ScenarioRunOptions): Promise<ScenarioResult>;
}

/** What {@linkcode simScenario} builds a {@linkcode Scenario} from. */
export interface SimScenarioDefinition {
  /** The scenario's name. */
  name: string;
  /** One line saying what it exercises and checks. */
  description: string;
  /**
   * Simulation options for a seed (everything but the seed and trace
   * capacity). `random` is a stream of its own, derived from the seed.
   */
  options?:
    | ((random: Prng) => Omit<SimulationOptions, "seed" | "traceCapacity">)
    | undefined;
  /**
   * Builds the cluster, runs it and checks it. Returns a failure message,
   * or nothing if every check passed; throwing (for example a failed
   * `assert`) also counts as a failure.
   */
  run(
    sim: Simulation,
    random: Prng,
  ): string | undefined | void | Promise<string | undefined | void>;
}

function message(error: unknown): string {
  if (error instanceof SimulationError && error.cause instanceof Error) {
    return `${error.message}\n${error.cause.stack ?? ""}`.trimEnd();
  }
  if (error instanceof Error) return error.stack ?? error.message;
  return String(error);
}

function faultRecord(sim: Simulation): Record<string, number> {
  return Object.fromEntries(Object.entries(sim.faults()));
}

/**
 * Builds a {@linkcode Scenario} that runs a {@linkcode Simulation} seeded
 * with the scenario's seed and reports its trace hash, fault counters and
 * verdict.
 *
 * @example A scenario that checks a frame crosses a lossy link
 * ```ts
 * import { simScenario } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * const scenario = simScenario({
 *   name: "hello",
 *   description: "a frame eventually crosses a lossy link",
 *   options: () => ({ loss: 0.5 }),
 *   run(sim) {
 *     let got = false;
 *     sim.addNode("b", (env) => {
 *       env.transport.setHandler({ onFrame: () => (got = true) });
 *       return {};
 *     });
 *     sim.addNode("a", (env) => {
 *       const tick = () => {
 *         if (got) return;
 *         env.transport.send("b", new Uint8Array([1]));
 *         env.clock.setTimer(5, tick);
 *       };
 *       tick();
 *       return {};
 *     });
 *     if (!sim.runUntil(() => got, { maxTime: 1000 })) return "never arrived";
 *   },
 * });
 * const result = await scenario.run(7);
 * assert.ok(result.ok, result.failure);
 * assert.equal(result.traceHash, (await scenario.run(7)).traceHash);
 * ```
 *
 * @param definition Name, description, options and the run function.
 * @returns The scenario.
 */
export function simScenario(definition: SimScenarioDefinition): Scenario {
  return {
    name: definition.name,
    description: definition.description,
    async run(
      seed: number,
      runOptions: ScenarioRunOptions = {},
    ): Promise<ScenarioResult> {
      checkSeed(seed);
      const root = new Prng(seed);
      const simOptions = definition.options?.(root.fork("scenario-options")) ??
        {};
      const sim = new Simulation({
        ...simOptions,
        seed,
        traceCapacity: runOptions.traceCapacity ?? 0,
      });
      let failure: string | undefined;
      try {
        failure = (await definition.run(sim, root.fork("scenario"))) ??
          undefined;
      } catch (error) {
        failure = message(error);
      }
      return {
        ok: failure === undefined,
        failure,
        traceHash: sim.traceHash(),
        faults: faultRecord(sim),
        events: sim.eventsRun,
        virtualTime: sim.now,
        trace: (runOptions.traceCapacity ?? 0) > 0
          ? sim.recentTrace()
          : undefined,
      };
    },
  };
}

/**
 * Runs one scenario with one seed, turning a thrown exception into a
 * failed result.
 *
 * @param scenario The scenario.
 * @param seed The seed.
 * @param options Trace capacity.
 * @returns The result.
 */
export async function runScenario(
  scenario: Scenario,
  seed: number,
  options: ScenarioRunOptions = {},
): Promise<ScenarioResult> {
  try {
    return await scenario.run(seed, options);
  } catch (error) {
    return {
      ok: false,
      failure: `scenario threw: ${message(error)}`,
      traceHash: "unknown",
      faults: {},
    };
  }
}

/** Options of {@linkcode runScenarioCli}. */
export interface RunScenarioCliOptions {
  /** Writes one line of results. Default: standard output. */
  stdout?: ((line: string) => void) | undefined;
  /** Writes one line of progress or error. Default: standard error. */
  stderr?: ((line: string) => void) | undefined;
  /** The command that runs the scenarios, for replay lines. Default `"deno task sim"`. */
  command?: string | undefined;
  /** First seed when no seed is given. Default 1. */
  defaultFrom?: number | undefined;
  /** Number of seeds when no seed is given. Default 50. */
  defaultSeeds?: number | undefined;
  /** Trace lines shown for a failing seed with `--verbose`. Default 40. */
  verboseTraceLines?: number | undefined;
  /** A wall clock in ms for progress timings. Default `performance.now`. */
  wallClock?: (() => number) | undefined;
}

const encoder = new TextEncoder();

function writeLine(
  stream: { writeSync(p: Uint8Array): number },
  line: string,
): void {
  const bytes = encoder.encode(line + "\n");
  let offset = 0;
  while (offset < bytes.length) {
    offset += stream.writeSync(bytes.subarray(offset));
  }
}

function usage(command: string, scenarios: readonly Scenario[]): string[] {
  const lines = [
    `usage: ${command} [--scenario NAME] [--seed N | --from N --seeds K] [--verbose]`,
    "  --scenario NAME  run only this scenario (default: all)",
    "  --seed N         run one seed and print its trace hash",
    "  --from N         first seed of a range (default 1)",
    "  --seeds K        number of seeds in the range (default 50)",
    "  --verbose        print every seed's hash and fault counts, and the last",
    "                   trace lines of failing seeds",
    "scenarios:",
  ];
  for (const s of scenarios) lines.push(`  ${s.name}  ${s.description}`);
  return lines;
}

class UsageError extends Error {}

function parseCount(flag: string, text: string, min: number): number {
  if (!/^\d+$/.test(text)) {
    throw new UsageError(`${flag} needs a non-negative integer, got "${text}"`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`${flag} must be an integer >= ${min}, got "${text}"`);
  }
  return n;
}

interface Plan {
  scenarios: Scenario[];
  from: number;
  count: number;
  single: boolean;
  verbose: boolean;
  help: boolean;
}

function plan(
  scenarios: readonly Scenario[],
  args: readonly string[],
  defaultFrom: number,
  defaultSeeds: number,
): Plan {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        scenario: { type: "string" },
        seed: { type: "string" },
        from: { type: "string" },
        seeds: { type: "string" },
        verbose: { type: "boolean", short: "v" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError(
      error instanceof Error ? error.message : String(error),
    );
  }
  const v = parsed.values;
  const result: Plan = {
    scenarios: [...scenarios],
    from: defaultFrom,
    count: defaultSeeds,
    single: false,
    verbose: v.verbose ?? false,
    help: v.help ?? false,
  };
  if (v.scenario !== undefined) {
    const found = scenarios.find((s) => s.name === v.scenario);
    if (found === undefined) {
      throw new UsageError(
        `unknown scenario "${v.scenario}" (known: ${
          scenarios.map((s) => s.name).join(", ")
        })`,
      );
    }
    result.scenarios = [found];
  }
  if (v.seed !== undefined) {
    if (v.from !== undefined || v.seeds !== undefined) {
      throw new UsageError("--seed cannot be combined with --from or --seeds");
    }
    result.from = parseCount("--seed", v.seed, 0);
    result.count = 1;
    result.single = true;
  } else {
    if (v.from !== undefined) result.from = parseCount("--from", v.from, 0);
    if (v.seeds !== undefined) result.count = parseCount("--seeds", v.seeds, 1);
  }
  if (!Number.isSafeInteger(result.from + result.count - 1)) {
    throw new UsageError("the seed range goes beyond the largest safe integer");
  }
  return result;
}

function formatFaults(faults: Record<string, number>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(faults)) {
    if (value !== 0) parts.push(`${name}=${value}`);
  }
  return parts.join(" ");
}

/**
 * Runs scenarios from command-line arguments and reports as the `sim`
 * command does:
 *
 * `[--scenario NAME] [--seed N | --from N --seeds K] [--verbose]`
 *
 * Without arguments, every scenario runs with the default seed range. Each
 * failing seed prints its reason and the one command that replays it;
 * `--seed` and `--verbose` print trace hashes; progress goes to standard
 * error; the last line of standard output is exactly `N passed, N failed`.
 * Bad arguments print a one-line error and the usage to standard error.
 *
 * @example Run a scenario over a few seeds and collect the output
 * ```ts
 * import { runScenarioCli, simScenario } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * const idle = simScenario({ name: "idle", description: "nothing happens", run() {} });
 * const out: string[] = [];
 * const code = await runScenarioCli([idle], ["--from", "1", "--seeds", "3"], {
 *   stdout: (line) => out.push(line),
 *   stderr: () => {},
 * });
 * assert.equal(code, 0);
 * assert.equal(out.at(-1), "3 passed, 0 failed");
 * ```
 *
 * @param scenarios The registered scenarios (unique names).
 * @param args The command-line arguments.
 * @param options Output sinks, command name, defaults.
 * @returns The exit code (once every run ended): 0 if every run passed, 1 if one failed, 2 on bad arguments.
 * @throws {TypeError} if two scenarios share a name.
 */
export async function runScenarioCli(
  scenarios: readonly Scenario[],
  args: readonly string[],
  options: RunScenarioCliOptions = {},
): Promise<number> {
  const names = new Set<string>();
  for (const s of scenarios) {
    if (names.has(s.name)) {
      throw new TypeError(`Two scenarios are named "${s.name}"`);
    }
    names.add(s.name);
  }
  const out = options.stdout ?? ((line) => writeLine(Deno.stdout, line));
  const err = options.stderr ?? ((line) => writeLine(Deno.stderr, line));
  const command = options.command ?? "deno task sim";
  const wall = options.wallClock ?? (() => performance.now());
  let p: Plan;
  try {
    p = plan(
      scenarios,
      args,
      options.defaultFrom ?? 1,
      options.defaultSeeds ?? 50,
    );
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`error: ${error.message}`);
    for (const line of usage(command, scenarios)) err(line);
    return 2;
  }
  if (p.help) {
    for (const line of usage(command, scenarios)) out(line);
    return 0;
  }
  const showHash = p.single || p.verbose;
  const traceCapacity = p.verbose ? options.verboseTraceLines ?? 40 : 0;
  let passed = 0;
  let failed = 0;
  for (const scenario of p.scenarios) {
    const started = wall();
    const last = p.from + p.count - 1;
    err(
      `${scenario.name}: ${
        p.single ? `seed ${p.from}` : `seeds ${p.from}..${last}`
      }`,
    );
    let scenarioFailed = 0;
    const step = Math.max(1, Math.ceil(p.count / 10));
    for (let i = 0; i < p.count; i++) {
      const seed = p.from + i;
      const result = await runScenario(scenario, seed, { traceCapacity });
      const info = `hash ${result.traceHash}${
        result.events === undefined ? "" : ` events ${result.events}`
      }${
        result.virtualTime === undefined
          ? ""
          : ` time ${Math.round(result.virtualTime)}ms`
      }`;
      if (result.ok) {
        passed++;
        if (showHash) {
          out(`ok ${scenario.name} seed ${seed} ${info}`);
          if (p.verbose) out(`  faults: ${formatFaults(result.faults)}`);
        }
      } else {
        failed++;
        scenarioFailed++;
        const [first, ...rest] = (result.failure ?? "failed").split("\n");
        out(`FAIL ${scenario.name} seed ${seed} ${info}: ${first}`);
        if (p.verbose) {
          for (const line of rest) out(`    ${line}`);
          out(`  faults: ${formatFaults(result.faults)}`);
          for (const line of result.trace ?? []) out(`    | ${line}`);
        }
        out(`  replay: ${command} --scenario ${scenario.name} --seed ${seed}`);
      }
      if (!p.single && p.count >= 20 && (i + 1) % step === 0) {
        err(`${scenario.name}: ${i + 1}/${p.count}`);
      }
    }
    const seconds = ((wall() - started) / 1000).toFixed(1);
    err(
      `${scenario.name}: ${
        p.count - scenarioFailed
      } passed, ${scenarioFailed} failed in ${seconds}s`,
    );
  }
  out(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}
