/**
 * A seeded pseudo-random generator for the simulator: xoshiro128** seeded
 * through splitmix32, with independent forked streams.
 *
 * @module
 */

import { checkBound, type Random } from "../runtime/random.ts";
import { hashString } from "./_hash.ts";

const TWO_32 = 2 ** 32;

/** One step of splitmix32 over `state`; returns [next state, output]. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [next, z >>> 0];
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Checks a simulation seed.
 *
 * @param seed The seed.
 * @returns The seed, if valid.
 * @throws {RangeError} unless it is a non-negative safe integer.
 */
export function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(
      `Invalid seed ${seed}: must be a non-negative safe integer`,
    );
  }
  return seed;
}

/**
 * A deterministic random source: xoshiro128** (period 2^128 - 1) seeded
 * through splitmix32. Implements {@linkcode Random}, so protocol code takes
 * it where the real driver passes `CryptoRandom`.
 *
 * {@linkcode Prng.fork} derives an independent stream from this generator's
 * seed and a label, without consuming anything from this stream: adding a
 * new consumer with its own fork never perturbs the numbers the others see.
 *
 * @example Same seed, same numbers; forks are independent
 * ```ts
 * import { Prng } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * const a = new Prng(42);
 * const b = new Prng(42);
 * assert.equal(a.int(1000), b.int(1000));
 *
 * // Forking does not advance the parent and depends only on seed + label.
 * const before = new Prng(7);
 * before.fork("net");
 * assert.equal(before.float(), new Prng(7).float());
 * assert.equal(new Prng(7).fork("net").int(100), new Prng(7).fork("net").int(100));
 * ```
 */
export class Prng implements Random {
  #a = 0;
  #b = 0;
  #c = 0;
  #d = 0;
  /** Identity of this stream (seed and fork path), used to derive forks. */
  #key0 = 0;
  #key1 = 0;

  /**
   * Creates a generator.
   *
   * @param seed A non-negative safe integer.
   * @throws {RangeError} if the seed is not a non-negative safe integer.
   */
  constructor(seed: number) {
    checkSeed(seed);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_32) >>> 0;
    let s = lo ^ 0x2545f491;
    let k0: number;
    let k1: number;
    [s, k0] = splitmix32(s);
    [s, k1] = splitmix32(s ^ hi);
    this.#init(k0, k1);
  }

  #init(k0: number, k1: number): void {
    this.#key0 = k0 >>> 0;
    this.#key1 = k1 >>> 0;
    let s = (k0 ^ Math.imul(k1, 0x27d4eb2f)) | 0;
    let w: number;
    [s, w] = splitmix32(s);
    this.#a = w;
    [s, w] = splitmix32(s ^ k1);
    this.#b = w;
    [s, w] = splitmix32(s);
    this.#c = w;
    [s, w] = splitmix32(s);
    this.#d = w;
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  /**
   * Derives an independent generator from this one's seed and `label`.
   * Does not consume from this stream. The same label always yields the
   * same stream, so give each consumer its own label.
   *
   * @param label Names the consumer, for example `"net:n1>n2"`.
   * @returns A new generator.
   */
  fork(label: string): Prng {
    const child = new Prng(0);
    const h = hashString(label);
    const k0 = Math.imul(this.#key0 ^ h, 0x9e3779b1) ^ rotl(this.#key1, 7);
    const k1 = Math.imul(this.#key1 ^ rotl(h, 16), 0x85ebca77) ^
      rotl(this.#key0, 13) ^ h;
    child.#init(k0 >>> 0, k1 >>> 0);
    return child;
  }

  /**
   * The next 32 random bits as an unsigned integer.
   *
   * @returns An integer in [0, 2^32).
   */
  uint32(): number {
    const b = this.#b;
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    this.#c ^= this.#a;
    this.#d ^= b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  /**
   * A uniformly distributed float in [0, 1) with 53 random bits.
   *
   * @returns A float in [0, 1).
   */
  float(): number {
    const hi = this.uint32() >>> 5;
    const lo = this.uint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /**
   * A uniformly distributed integer in [0, `bound`), without modulo bias.
   *
   * @param bound The exclusive upper bound, an integer from 1 to 2^32.
   * @returns An integer in [0, `bound`).
   * @throws {RangeError} if `bound` is out of range.
   */
  int(bound: number): number {
    checkBound(bound);
    if (bound === TWO_32) return this.uint32();
    const limit = TWO_32 - (TWO_32 % bound);
    let r = this.uint32();
    while (r >= limit) r = this.uint32();
    return r % bound;
  }

  /**
   * A uniformly distributed integer in [`min`, `max`], both inclusive.
   *
   * @param min The smallest value.
   * @param max The largest value.
   * @returns An integer in [`min`, `max`].
   * @throws {RangeError} unless both are safe integers, `min <= max` and the
   * range holds at most 2^32 values.
   */
  intBetween(min: number, max: number): number {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max < min) {
      throw new RangeError(`Invalid integer range [${min}, ${max}]`);
    }
    return min + this.int(max - min + 1);
  }

  /**
   * A uniformly distributed float in [`min`, `max`).
   *
   * @param min The lower bound.
   * @param max The upper bound.
   * @returns A float in [`min`, `max`) (exactly `min` if they are equal).
   * @throws {RangeError} unless both are finite and `min <= max`.
   */
  uniform(min: number, max: number): number {
    if (!Number.isFinite(min) || !Number.isFinite(max) || max < min) {
      throw new RangeError(`Invalid float range [${min}, ${max})`);
    }
    return min + this.float() * (max - min);
  }

  /**
   * A normally distributed float (Box-Muller).
   *
   * @param mean The mean. Default 0.
   * @param stddev The standard deviation. Default 1.
   * @returns A sample.
   */
  normal(mean = 0, stddev = 1): number {
    const u = 1 - this.float(); // (0, 1]
    const v = this.float();
    return mean + stddev * Math.sqrt(-2 * Math.log(u)) *
        Math.cos(2 * Math.PI * v);
  }

  /**
   * Returns `true` with probability `p`.
   *
   * @param p A probability in [0, 1].
   * @returns Whether the event happens.
   * @throws {RangeError} if `p` is not in [0, 1].
   */
  chance(p: number): boolean {
    if (!(p >= 0 && p <= 1)) {
      throw new RangeError(`Invalid probability ${p}: must be in [0, 1]`);
    }
    if (p === 0) return false;
    if (p === 1) return true;
    return this.float() < p;
  }

  /**
   * One element of `items`, chosen uniformly.
   *
   * @param items A non-empty array.
   * @returns One of its elements.
   * @throws {RangeError} if `items` is empty.
   */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) {
      throw new RangeError("Cannot pick from an empty array");
    }
    return items[this.int(items.length)];
  }

  /**
   * Shuffles `items` in place (Fisher-Yates).
   *
   * @param items The array to shuffle.
   * @returns `items`.
   */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /**
   * Fills `target` with random bytes.
   *
   * @param target The buffer to fill.
   * @returns `target`.
   */
  fill(target: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= target.length; i += 4) {
      const w = this.uint32();
      target[i] = w & 0xff;
      target[i + 1] = (w >>> 8) & 0xff;
      target[i + 2] = (w >>> 16) & 0xff;
      target[i + 3] = w >>> 24;
    }
    if (i < target.length) {
      let w = this.uint32();
      for (; i < target.length; i++) {
        target[i] = w & 0xff;
        w >>>= 8;
      }
    }
    return target;
  }
}
