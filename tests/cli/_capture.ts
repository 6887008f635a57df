/**
 * Runs a command's `main` in this process with `console.log` and
 * `console.error` captured: what the CLI tests check exit codes and
 * output with, without starting a process.
 *
 * @module
 */

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
