/**
 * The `bench` command of `cli.ts`: runs one benchmark of `bench/main.ts`
 * in a child process, as `deno task bench` does, and exits with its exit
 * code.
 *
 * @module
 */

import { runScript, SCRIPT_PERMISSIONS } from "./_cli_script.ts";
import { parseCommandArgs } from "./_cli_usage.ts";

/** The benchmarks of `bench/main.ts`, with their options. */
const BENCHMARKS: Readonly<Record<string, string>> = {
  transport: "[--seconds=1] [--repeat=3] [--rounds=5000] [--sizes=64,256,1024]",
  oracle: "[--seconds=5] [--soak=0] [--no-sync] [--profile=DIR]",
  "oracle-tree": "[--seconds=5] [--clients=16] [--no-sync]",
  groups: "[--seconds=3] [--quick] [--strategies=fbcast,cbcast,abcast,gbcast]",
};

/** The usage text of `cli.ts bench --help`. */
export const BENCH_USAGE: string = `usage: cohort bench <name> [options]

Runs one benchmark. Needs the repository's bench/ (not in the published
package).

benchmarks:
${
  Object.entries(BENCHMARKS).map(([name, options]) => `  ${name} ${options}`)
    .join("\n")
}

The benchmark checks its own options (a usage error exits 2). Progress is
on stderr; the last stdout line is one JSON object with the figures.`;

/** A benchmark run, as the command line gives it. */
export interface BenchCliConfig {
  /** The benchmark's name. */
  name: string;
  /** Its arguments, passed on as they are. */
  args: string[];
}

/**
 * Parses the arguments of the `bench` command: a benchmark's name, then
 * its own options.
 *
 * @example The group benchmark, quickly
 * ```ts
 * import { parseBenchArgs } from "./_cli_bench.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseBenchArgs(["groups", "--quick"]), {
 *   name: "groups",
 *   args: ["--quick"],
 * });
 * assert.throws(() => parseBenchArgs(["grups"]), /Unknown benchmark "grups"/);
 * ```
 *
 * @param args The command's arguments (after `bench`).
 * @returns The run, or `"help"` if `--help` or `-h` is among the arguments.
 * @throws {TypeError} if the name is missing or unknown.
 */
export function parseBenchArgs(args: string[]): BenchCliConfig | "help" {
  const end = args.indexOf("--");
  const own = end < 0 ? args : args.slice(0, end);
  if (own.includes("--help") || own.includes("-h")) return "help";
  const [name, ...rest] = args;
  const names = Object.keys(BENCHMARKS).join(", ");
  if (name === undefined || name === "") {
    throw new TypeError(`Missing benchmark name: use ${names}`);
  }
  if (!Object.hasOwn(BENCHMARKS, name)) {
    throw new TypeError(
      `Unknown benchmark ${JSON.stringify(name)}: use ${names}`,
    );
  }
  return { name, args: rest };
}

/**
 * Runs the `bench` command.
 *
 * @param args The command's arguments (after `bench`).
 * @returns The benchmark's exit code, 0 for `--help`, 1 if bench/ is not
 * there, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    name: "bench",
    usage: BENCH_USAGE,
    parse: parseBenchArgs,
  });
  if ("exitCode" in parsed) return parsed.exitCode;
  const { name, args: rest } = parsed.config;
  return await runScript([name, ...rest], {
    command: "bench",
    script: new URL("./bench/main.ts", import.meta.url),
    permissions: SCRIPT_PERMISSIONS,
  });
}
