/**
 * The random source protocol code is handed: the only randomness it may use.
 *
 * @module
 */

/**
 * Random numbers as protocol code sees them. The real driver draws from the
 * operating system; the simulator from a seeded generator, so a run replays
 * exactly.
 */
export interface Random {
  /** A uniformly distributed float in [0, 1). */
  float(): number;
  /** A uniformly distributed integer in [0, `bound`); `bound` is at most 2^32. */
  int(bound: number): number;
  /** Fills `target` with random bytes and returns it. */
  fill(target: Uint8Array): Uint8Array;
}

/**
 * Randomness from the operating system (`crypto.getRandomValues`).
 *
 * @example Draw a number
 * ```ts
 * import { CryptoRandom } from "@cohort/cohort";
 * import assert from "node:assert/strict";
 *
 * const n = new CryptoRandom().int(6);
 * assert.ok(n >= 0 && n < 6);
 * ```
 */
export class CryptoRandom implements Random {
  readonly #word = new Uint32Array(2);

  /** A uniformly distributed float in [0, 1) with 53 random bits. */
  float(): number {
    crypto.getRandomValues(this.#word);
    return (this.#word[0] * 2 ** 21 + (this.#word[1] >>> 11)) / 2 ** 53;
  }

  /**
   * A uniformly distributed integer in [0, `bound`).
   *
   * @param bound The exclusive upper bound, from 1 to 2^32.
   * @throws {RangeError} if `bound` is out of range.
   */
  int(bound: number): number {
    checkBound(bound);
    return Math.floor(this.float() * bound);
  }

  /**
   * Fills `target` with random bytes.
   *
   * @param target The buffer to fill.
   * @returns `target`.
   */
  fill(target: Uint8Array): Uint8Array {
    for (let offset = 0; offset < target.length; offset += 65536) {
      crypto.getRandomValues(target.subarray(offset, offset + 65536));
    }
    return target;
  }
}

/**
 * Checks the bound of {@linkcode Random.int}.
 *
 * @param bound The exclusive upper bound.
 * @throws {RangeError} unless it is an integer from 1 to 2^32.
 */
export function checkBound(bound: number): void {
  if (!Number.isInteger(bound) || bound < 1 || bound > 2 ** 32) {
    throw new RangeError(
      `Invalid random bound ${bound}: must be an integer from 1 to 2^32`,
    );
  }
}
