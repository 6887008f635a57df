/**
 * Cohort's command line: `deno run cli.ts <command> [options]`.
 *
 * Commands are looked up by name and loaded on demand, so a command only
 * pulls in what it needs; a later command is one more entry in the table.
 *
 * - `oracle`: runs one Oracle replica (see `deno task oracle --help`).
 *
 * Exit codes: 0 on success (and for `--help`), 1 when a command fails,
 * 2 on a usage error (unknown command, bad or missing flag).
 *
 * @example Print the usage
 * ```sh
 * deno run cli.ts --help
 * deno task oracle --help
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
