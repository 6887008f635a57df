/**
 * How every `cohort` command reports `--help` and usage errors, so they
 * all behave alike: `--help` prints the usage on stdout (exit 0); an
 * unknown flag, a missing or bad value prints one line
 * `cohort <command>: <message>` and then the usage on stderr (exit 2).
 *
 * @module
 */

/** A command's name and usage text. */
export interface CommandSpec {
  /** The command's name, as typed after `cohort` (`""`: the top level). */
  readonly name: string;
  /** The usage text `--help` prints. */
  readonly usage: string;
}

/** A command's name, usage, and the pure function parsing its arguments. */
export interface ParsedCommandSpec<T> extends CommandSpec {
  /**
   * Parses the command's arguments.
   *
   * @returns The configuration, or `"help"` when help was asked for.
   * @throws {TypeError} on a usage error; the message names the flag.
   * @throws {RangeError} on a value out of range; the message names the flag.
   */
  readonly parse: (args: string[]) => T | "help";
}

/** What parsing came to: a configuration, or the exit code to return now. */
export type ParseOutcome<T> =
  | { readonly config: T }
  | { readonly exitCode: 0 | 2 };

/** The exit code of a usage error. */
const USAGE_ERROR = 2;

/**
 * Reports a usage error: one line `cohort <command>: <message>` (line
 * breaks in `message` become spaces), then the command's usage, both on
 * stderr.
 *
 * @example Refuse a flag
 * ```ts
 * import { usageError } from "./_cli_usage.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const error = console.error;
 * console.error = (line: string) => lines.push(line);
 * try {
 *   assert.equal(usageError({ name: "demo", usage: "usage: cohort demo" }, "Unknown option '--x'"), 2);
 * } finally {
 *   console.error = error;
 * }
 * assert.deepEqual(lines, ["cohort demo: Unknown option '--x'", "usage: cohort demo"]);
 * ```
 *
 * @param command The command's name and usage.
 * @param message What was wrong.
 * @returns The exit code of a usage error, 2.
 */
export function usageError(command: CommandSpec, message: string): 2 {
  const prefix = command.name === "" ? "cohort" : `cohort ${command.name}`;
  console.error(`${prefix}: ${message.replace(/\s*\n\s*/g, " ")}`);
  console.error(command.usage);
  return USAGE_ERROR;
}

/**
 * Parses a command's arguments with `spec.parse`: on `--help` prints the
 * usage on stdout (exit code 0); on a `TypeError` or `RangeError` reports
 * a usage error (exit code 2), the message of a `node:util` `parseArgs`
 * error cut to its first sentence.
 *
 * @example Help, an error, a configuration
 * ```ts
 * import { parseCommandArgs } from "./_cli_usage.ts";
 * import assert from "node:assert/strict";
 *
 * const spec = {
 *   name: "echo",
 *   usage: "usage: cohort echo WORD",
 *   parse: (args: string[]) => args[0] === "-h" ? "help" as const : args[0],
 * };
 * assert.deepEqual(parseCommandArgs(["hi"], spec), { config: "hi" });
 * ```
 *
 * @param args The command's arguments.
 * @param spec The command's name, usage and parser.
 * @returns The configuration, or the exit code to return.
 * @throws {Error} whatever else `spec.parse` throws (a bug, not a usage error).
 */
export function parseCommandArgs<T>(
  args: string[],
  spec: ParsedCommandSpec<T>,
): ParseOutcome<T> {
  let config: T | "help";
  try {
    config = spec.parse(args);
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      return { exitCode: usageError(spec, shorten(error)) };
    }
    throw error;
  }
  if (config === "help") {
    console.log(spec.usage);
    return { exitCode: 0 };
  }
  return { config };
}

/**
 * A message of `node:util` `parseArgs` without its advice about
 * positional arguments (its first sentence: it names the flag).
 */
function shorten(error: Error): string {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS_")) {
    return error.message;
  }
  const end = error.message.search(/\.\s/);
  return end < 0 ? error.message : error.message.slice(0, end);
}
