/**
 * What the CLI tests check exit codes and output with: a command's `main`
 * run in this process with `console.log` and `console.error` captured, or
 * a child `deno run` process and everything it printed.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url);

/** What a command printed, and its exit code. */
export interface Captured {
  /** The exit code `main` returned. */
  readonly code: number;
  /** The lines printed with `console.log` (stdout). */
  readonly stdout: string[];
  /** The lines printed with `console.error` (stderr). */
  readonly stderr: string[];
}

/**
 * Calls `main(args)` with the console captured; restores it afterwards.
 *
 * @returns The exit code and the printed lines.
 */
export async function capture(
  main: (args: string[]) => Promise<number>,
  args: string[],
): Promise<Captured> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const { log, error } = console;
  console.log = (...parts: unknown[]) => stdout.push(parts.join(" "));
  console.error = (...parts: unknown[]) => stderr.push(parts.join(" "));
  try {
    const code = await main(args);
    return { code, stdout, stderr };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** What a child `deno run` printed, and its exit code. */
export interface DenoOutput {
  /** The exit code (128 + the signal number if a signal ended it). */
  readonly code: number;
  /** Its stdout, decoded. */
  readonly stdout: string;
  /** Its stderr, decoded. */
  readonly stderr: string;
}

/** Options of {@linkcode runDeno}. */
export interface RunDenoOptions {
  /** How long it may run before it is killed. Default 30 000. */
  timeoutMs?: number | undefined;
}

/**
 * Runs `deno run --quiet <args>` (permission flags, script and its
 * arguments) from the repository's root, with `NO_COLOR=1` and no stdin,
 * and waits for it to exit.
 *
 * @returns Its exit code and output.
 * @throws {Error} If it ran longer than `timeoutMs` (it is killed).
 */
export async function runDeno(
  args: readonly string[],
  options: RunDenoOptions = {},
): Promise<DenoOutput> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const signal = AbortSignal.timeout(timeoutMs);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  if (signal.aborted) {
    throw new Error(
      `deno run ${args.join(" ")}: timed out after ${timeoutMs} ms`,
    );
  }
  const text = new TextDecoder();
  return {
    code: output.code,
    stdout: text.decode(output.stdout),
    stderr: text.decode(output.stderr),
  };
}
