/**
 * How a benchmark reports a usage error.
 *
 * @module
 */

/**
 * Prints `bench <name>: <message>` and the benchmark's usage line on
 * stderr.
 *
 * @param name The benchmark's name.
 * @param usage Its usage line.
 * @param message What was wrong with the arguments.
 * @returns The exit code for a usage error, 2.
 */
export function usageError(name: string, usage: string, message: string): 2 {
  console.error(`bench ${name}: ${message}`);
  console.error(usage);
  return 2;
}
