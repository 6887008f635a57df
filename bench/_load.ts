/**
 * Load helpers shared by the benchmarks: closed-loop workers and rounding.
 *
 * @module
 */

import { delay } from "../tests/oracle/_oracle_processes.ts";

/** `x` rounded to `digits` decimals. */
export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** What {@linkcode runLoad} counted. */
export interface LoadResult {
  /** Calls completed. */
  ops: number;
  /** Wall time the load ran, in seconds. */
  seconds: number;
  /** Calls that failed. */
  errors: number;
  /** The last failure's message. */
  lastError: string | undefined;
}

/**
 * Runs `op(worker)` in a loop on every worker (one call in flight each)
 * for `seconds`; counts completed calls.
 */
export async function runLoad(
  workers: number,
  seconds: number,
  op: (worker: number) => Promise<void>,
): Promise<LoadResult> {
  let ops = 0;
  let errors = 0;
  let lastError: string | undefined;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      // Bounded: one call in flight per worker, each with a client deadline.
      while (performance.now() < end) {
        try {
          await op(w);
          ops++;
        } catch (error) {
          errors++;
          lastError = (error as Error).message;
          await delay(10);
        }
      }
    }),
  );
  return {
    ops,
    seconds: (performance.now() - start) / 1000,
    errors,
    lastError,
  };
}

/** Completed calls per second. */
export function rate(result: LoadResult): number {
  return result.ops / result.seconds;
}

/** Reports each load phase's rate as progress and counts its failures. */
export class LoadTally {
  /** Failed calls over every phase recorded. */
  errors = 0;
  readonly #progress: (message: string) => void;

  /** `progress` receives one line per phase. */
  constructor(progress: (message: string) => void) {
    this.#progress = progress;
  }

  /** Reports a phase; returns its rate (completed calls per second). */
  record(name: string, result: LoadResult): number {
    this.errors += result.errors;
    this.#progress(
      `${name}: ${
        Math.round(rate(result)).toLocaleString("en")
      }/s (${result.ops} in ${result.seconds.toFixed(2)} s${
        result.errors > 0
          ? `, ${result.errors} errors, last: ${result.lastError}`
          : ""
      })`,
    );
    return rate(result);
  }
}
