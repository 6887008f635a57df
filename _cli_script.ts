/**
 * Runs a script of the repository (the demo, the benchmarks) in a child
 * `deno run` with the permissions its `deno.json` task gives it, sharing
 * this process's stdin, stdout and stderr. SIGTERM and SIGINT received
 * meanwhile are passed on to the child, and this process waits for it.
 *
 * Published packages leave `examples/` and `bench/` out: a script that is
 * not there is a one-line error (exit 1), not a stack trace.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/**
 * The `deno run` permission flags of the scripts `cohort demo` and `cohort
 * bench` run, as their `deno.json` tasks (`demo`, `bench`) have them.
 */
export const SCRIPT_PERMISSIONS: readonly string[] = [
  "--allow-net=127.0.0.1",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env",
];

/** What to run, and how. */
export interface ScriptSpec {
  /** The command's name, for messages (`cohort <name>: ...`). */
  readonly command: string;
  /** The script, resolved against the module that names it. */
  readonly script: URL;
  /** The `deno run` permission flags, as the script's task has them. */
  readonly permissions: readonly string[];
}

/**
 * Tells why `script` cannot be run from here, if it cannot: it is not a
 * local file (a published package leaves it out), or the file is missing.
 *
 * @example A script that is not there
 * ```ts
 * import { missingScript } from "./_cli_script.ts";
 * import assert from "node:assert/strict";
 *
 * const why = await missingScript(new URL("file:///nowhere/demo.ts"));
 * assert.match(why ?? "", /not found/);
 * ```
 *
 * @param script The script.
 * @returns `undefined` if it can be run, else why not.
 */
export async function missingScript(script: URL): Promise<string | undefined> {
  const help =
    "examples/ and bench/ are not in the published package; run it from a clone of the repository";
  if (script.protocol !== "file:") {
    return `${script.href} is not a local file: ${help}`;
  }
  try {
    const info = await Deno.stat(script);
    if (info.isFile) return undefined;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return `${fileURLToPath(script)} not found: ${help}`;
}

/**
 * Runs `spec.script` with `args` and waits for it to exit.
 *
 * @example Nothing to run
 * ```ts
 * import { runScript } from "./_cli_script.ts";
 * import assert from "node:assert/strict";
 *
 * const code = await runScript([], {
 *   command: "demo",
 *   script: new URL("file:///nowhere/demo.ts"),
 *   permissions: [],
 * }); // prints "cohort demo: /nowhere/demo.ts not found: ..." on stderr
 * assert.equal(code, 1);
 * ```
 *
 * @param args The script's arguments.
 * @param spec The script, its permissions, the command's name.
 * @returns The child's exit code (128 + the signal number if a signal
 * ended it), or 1 if the script is missing.
 */
export async function runScript(
  args: readonly string[],
  spec: ScriptSpec,
): Promise<number> {
  const missing = await missingScript(spec.script);
  if (missing !== undefined) {
    console.error(`cohort ${spec.command}: ${missing}`);
    return 1;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...spec.permissions,
      fileURLToPath(spec.script),
      ...args,
    ],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGTERM", "SIGINT"];
  const listeners = signals.map((signal) => {
    const listener = () => {
      try {
        child.kill(signal);
      } catch {
        // It has exited already.
      }
    };
    Deno.addSignalListener(signal, listener);
    return { signal, listener };
  });
  try {
    return (await child.status).code;
  } finally {
    for (const { signal, listener } of listeners) {
      Deno.removeSignalListener(signal, listener);
    }
  }
}
