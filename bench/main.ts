/**
 * Benchmark runner: `deno task bench <name> [options]`.
 *
 * Each benchmark prints progress on stderr and, as the last line on
 * stdout, one JSON object with its figures.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** A benchmark: takes its own arguments, returns the process exit code. */
type Bench = (args: string[]) => Promise<number>;

const BENCHES: Record<string, () => Promise<Bench>> = {
  transport: async () => (await import("./transport.ts")).main,
  oracle: async () => (await import("./oracle.ts")).main,
  "oracle-tree": async () => (await import("./oracle_tree.ts")).main,
  groups: async () => (await import("./groups.ts")).main,
};

const USAGE = `usage: deno task bench <name> [options]
benchmarks: ${Object.keys(BENCHES).join(", ")}
  transport [--seconds=1] [--repeat=3] [--rounds=5000] [--sizes=64,256,1024]
  oracle [--seconds=5] [--soak=0] [--no-sync] [--profile=DIR]
  oracle-tree [--seconds=5] [--clients=16] [--no-sync]
  groups [--seconds=3] [--quick] [--strategies=fbcast,cbcast,abcast,gbcast]`;

/**
 * Runs the benchmark named by the first argument.
 *
 * @param args Command-line arguments: the benchmark name, then its options.
 * @returns The exit code: 0 on success, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  const { positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: false,
  });
  const name = positionals[0];
  const load = name === undefined ? undefined : BENCHES[name];
  if (load === undefined || !Object.hasOwn(BENCHES, name!)) {
    console.error(
      name === undefined
        ? "bench: missing benchmark name"
        : `bench: unknown benchmark "${name}"`,
    );
    console.error(USAGE);
    return 2;
  }
  const rest = args.slice(args.indexOf(name!) + 1);
  return await (await load())(rest);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
