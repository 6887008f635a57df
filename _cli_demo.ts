/**
 * The `demo` command of `cli.ts`: runs the primary/backup demo
 * (`examples/primary_backup/demo.ts`) in a child process, as
 * `deno task demo` does, and exits with its exit code.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseNumber } from "./_cli_args.ts";
import { runScript, SCRIPT_PERMISSIONS } from "./_cli_script.ts";
import { parseCommandArgs } from "./_cli_usage.ts";

const DEFAULT_SECONDS = 6;
const DEFAULT_KILL_AFTER = 2.5;
const MAX_SECONDS = 600;
const MAX_HOLD_SECONDS = 3_600;

/** The usage text of `cli.ts demo --help`. */
export const DEMO_USAGE: string =
  `usage: cohort demo [--seconds S] [--kill-after S] [--hold S]

Runs the primary/backup demo: an Oracle of three replica processes, three
ledger members and a client sending deposits; the primary is killed with
SIGKILL mid-load and a backup takes over. Needs the repository's
examples/ (not in the published package).

options:
  --seconds S           how long the client sends deposits (default ${DEFAULT_SECONDS},
                        at most ${MAX_SECONDS})
  --kill-after S        when the primary is killed, in seconds after the
                        client starts; less than --seconds (default ${DEFAULT_KILL_AFTER})
  --hold S              keep the surviving cluster up S seconds after the
                        result, to watch it with "cohort status" or the
                        dashboard (default 0, at most ${MAX_HOLD_SECONDS})
  -h, --help            print this help

Prints what happens on stderr, then one JSON line on stdout: acknowledged,
presentAfterFailover, lost (must be 0), failoverMs. Every member serves an
admin endpoint: the demo prints their URLs, the dashboard link and the
"cohort status" command line. Exits 0 only if no acknowledged deposit was
lost.`;

/** The demo's configuration, as the command line gives it. */
export interface DemoCliConfig {
  /** How long the client sends deposits, in seconds. */
  seconds: number;
  /** When the primary is killed, in seconds. */
  killAfter: number;
  /** How long the cluster stays up after the result, in seconds. */
  hold: number;
}

/**
 * Parses the arguments of the `demo` command.
 *
 * @example A shorter run
 * ```ts
 * import { parseDemoArgs } from "./_cli_demo.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseDemoArgs(["--seconds", "3", "--kill-after", "1"]), {
 *   seconds: 3,
 *   killAfter: 1,
 *   hold: 0,
 * });
 * assert.throws(() => parseDemoArgs(["--seconds", "x"]), /Invalid --seconds "x"/);
 * ```
 *
 * @param args The command's arguments (after `demo`).
 * @returns The configuration, or `"help"` if help was asked for.
 * @throws {TypeError} if a flag is unknown, missing its value, or not a number.
 * @throws {RangeError} if a number is out of range, or `--kill-after` is
 * not less than `--seconds`.
 */
export function parseDemoArgs(args: string[]): DemoCliConfig | "help" {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      seconds: { type: "string" },
      "kill-after": { type: "string" },
      hold: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  const range = { min: 0, max: MAX_SECONDS, exclusiveMin: true };
  const seconds = values.seconds === undefined
    ? DEFAULT_SECONDS
    : parseNumber("--seconds", values.seconds, range);
  const killAfter = values["kill-after"] === undefined
    ? DEFAULT_KILL_AFTER
    : parseNumber("--kill-after", values["kill-after"], range);
  if (killAfter >= seconds) {
    throw new RangeError(
      `Invalid --kill-after ${killAfter}: must be less than --seconds ${seconds}, or the client is done before the primary is killed`,
    );
  }
  const hold = values.hold === undefined
    ? 0
    : parseNumber("--hold", values.hold, { min: 0, max: MAX_HOLD_SECONDS });
  return { seconds, killAfter, hold };
}

/**
 * Runs the `demo` command.
 *
 * @param args The command's arguments (after `demo`).
 * @returns The demo's exit code (0 if no acknowledged deposit was lost),
 * 0 for `--help`, 1 if the demo is not there, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    name: "demo",
    usage: DEMO_USAGE,
    parse: parseDemoArgs,
  });
  if ("exitCode" in parsed) return parsed.exitCode;
  const { seconds, killAfter, hold } = parsed.config;
  return await runScript(
    [
      "--seconds",
      String(seconds),
      "--kill-after",
      String(killAfter),
      "--hold",
      String(hold),
    ],
    {
      command: "demo",
      script: new URL("./examples/primary_backup/demo.ts", import.meta.url),
      permissions: SCRIPT_PERMISSIONS,
    },
  );
}
