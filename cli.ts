/**
 * Cohort's command line: `deno run cli.ts <command> [options]`.
 *
 * Commands are looked up by name and loaded on demand, so a command only
 * pulls in what it needs; a later command is one more entry in the table.
 *
 * - `oracle`: runs one Oracle replica until SIGTERM or SIGINT
 *   (`deno task oracle --help`).
 * - `node`: runs a node hosting one example actor (`kv` or `counter`) in
 *   a group until SIGTERM or SIGINT, printing a JSON line on stdout when
 *   it joins and at every view change.
 * - `demo`: runs the primary/backup demo (`examples/primary_backup/demo.ts`)
 *   in a child process.
 * - `bench`: runs one benchmark of `bench/main.ts` in a child process.
 *
 * `demo` and `bench` need the repository's `examples/` and `bench/`, which
 * the published package leaves out. Every command takes `--help`. Logs are
 * JSON lines on stderr (`--log-level`).
 *
 * Exit codes: 0 on success (and for `--help`), 1 when a command fails,
 * 2 on a usage error (unknown command, unknown flag, bad or missing
 * value): one line `cohort <command>: <message>` then the usage, on
 * stderr.
 *
 * @example Print the usage
 * ```sh
 * deno run cli.ts --help
 * deno run cli.ts node --help
 * deno run --allow-net --allow-read --allow-write cli.ts node --actor kv
 * deno run -A cli.ts demo --seconds 4 --kill-after 2
 * deno run -A cli.ts bench groups --quick
 * ```
 *
 * @module
 */

import { usageError } from "./_cli_usage.ts";

/** A command: takes its own arguments, returns the process exit code. */
export type Command = (args: string[]) => Promise<number>;

/** One entry of the command table. */
interface CommandEntry {
  /** One line shown by `--help`. */
  readonly summary: string;
  /** Loads the command's module. */
  readonly load: () => Promise<Command>;
}

const COMMANDS: Record<string, CommandEntry> = {
  oracle: {
    summary: "run one replica of an Oracle group",
    load: async () => (await import("./oracle/_cli_oracle.ts")).main,
  },
  node: {
    summary: "run a node hosting an example actor in a group",
    load: async () => (await import("./actors/_cli_node.ts")).main,
  },
  demo: {
    summary: "run the primary/backup demo (needs examples/)",
    load: async () => (await import("./_cli_demo.ts")).main,
  },
  bench: {
    summary: "run a benchmark (needs bench/)",
    load: async () => (await import("./_cli_bench.ts")).main,
  },
  status: {
    summary: "print views, Oracle leader and locks from an admin endpoint",
    load: async () => (await import("./admin/_cli_status.ts")).main,
  },
};

/** The usage text of `cli.ts --help`. */
export const USAGE: string = `usage: cohort <command> [options]

commands:
${
  Object.entries(COMMANDS).map(([name, { summary }]) =>
    `  ${name.padEnd(10)}${summary}`
  ).join("\n")
}

Run "cohort <command> --help" for a command's options.`;

/**
 * Runs the command named by the first argument.
 *
 * @example Ask for the usage
 * ```ts
 * import { main } from "./cli.ts";
 *
 * const code = await main(["--help"]); // prints the usage on stdout
 * console.assert(code === 0);
 * ```
 *
 * @param args The command name, then its arguments.
 * @returns The exit code: 0 on success, 1 on failure, 2 on a usage error
 * (reported on stderr: one line, then the usage).
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(USAGE);
    return 0;
  }
  const top = { name: "", usage: USAGE };
  if (name === undefined || name === "") {
    return usageError(top, "missing command");
  }
  if (!Object.hasOwn(COMMANDS, name)) {
    return usageError(
      top,
      `unknown command ${JSON.stringify(name)}; commands: ${
        Object.keys(COMMANDS).join(", ")
      }`,
    );
  }
  const command = await COMMANDS[name].load();
  return await command(rest);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
