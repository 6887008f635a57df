/**
 * How the simulated network behaves on one directed link: latency
 * distribution, loss, duplication, reordering, FIFO and in-flight limits.
 *
 * @module
 */

import type { Prng } from "./prng.ts";

/**
 * The distribution one-way latencies are drawn from, in milliseconds.
 *
 * - `constant`: always `ms`.
 * - `uniform`: uniform in [`min`, `max`).
 * - `normal`: mean `mean`, standard deviation `stddev`, clamped to at least
 *   `min` (default 0).
 * - `lognormal`: `median * exp(sigma * z)` with `z` standard normal (a long
 *   right tail), clamped to [`min`, `max`] (defaults 0 and unbounded).
 */
export type LatencyDistribution =
  | { readonly kind: "constant"; readonly ms: number }
  | { readonly kind: "uniform"; readonly min: number; readonly max: number }
  | {
    readonly kind: "normal";
    readonly mean: number;
    readonly stddev: number;
    readonly min?: number | undefined;
  }
  | {
    readonly kind: "lognormal";
    readonly median: number;
    readonly sigma: number;
    readonly min?: number | undefined;
    readonly max?: number | undefined;
  };

/**
 * Settings of a directed link. Every field is optional; missing ones keep
 * their current value (the simulation's defaults, then
 * {@linkcode DEFAULT_LINK}).
 */
export interface LinkOptions {
  /** One-way latency of each frame. Default uniform in [1, 5) ms. */
  latency?: LatencyDistribution | undefined;
  /** Probability that a frame is lost. Default 0. */
  loss?: number | undefined;
  /** Probability that a delivered frame is delivered a second time. Default 0. */
  duplicate?: number | undefined;
  /**
   * Probability that a frame is held back by an extra delay drawn uniformly
   * from [0, `reorderDelay`), so later frames overtake it. Default 0.
   * (Sampled latencies reorder frames on their own too, unless `fifo`.)
   */
  reorder?: number | undefined;
  /** Largest extra delay, in ms, of a frame held back by `reorder`. Default 20. */
  reorderDelay?: number | undefined;
  /**
   * If `true`, frames on this link are delivered in the order they were
   * sent (like one TCP connection): a frame never arrives before one sent
   * earlier on the same link. Default `false`.
   */
  fifo?: boolean | undefined;
  /**
   * Most frames in flight on this link at once. Beyond it `send` returns
   * `false` (backpressure) and `onDrain` follows once a frame lands or is
   * dropped. Default `Infinity`.
   */
  maxInFlight?: number | undefined;
}

/** The resolved settings of a directed link: {@linkcode LinkOptions} with every field set. */
export interface LinkConfig {
  /** One-way latency of each frame. */
  readonly latency: LatencyDistribution;
  /** Probability that a frame is lost. */
  readonly loss: number;
  /** Probability that a delivered frame is delivered twice. */
  readonly duplicate: number;
  /** Probability that a frame is held back by an extra delay. */
  readonly reorder: number;
  /** Largest extra delay of a held-back frame, in ms. */
  readonly reorderDelay: number;
  /** Whether the link delivers in send order. */
  readonly fifo: boolean;
  /** Most frames in flight on the link at once. */
  readonly maxInFlight: number;
}

/** The settings of every link unless configured otherwise. */
export const DEFAULT_LINK: LinkConfig = Object.freeze({
  latency: Object.freeze({ kind: "uniform", min: 1, max: 5 }),
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderDelay: 20,
  fifo: false,
  maxInFlight: Infinity,
});

function checkProbability(name: string, p: number): number {
  if (!(typeof p === "number" && p >= 0 && p <= 1)) {
    throw new RangeError(
      `Invalid ${name} ${p}: must be a probability in [0, 1]`,
    );
  }
  return p;
}

function checkMs(name: string, ms: number): number {
  if (!(typeof ms === "number" && Number.isFinite(ms) && ms >= 0)) {
    throw new RangeError(
      `Invalid ${name} ${ms}: must be a finite number of milliseconds >= 0`,
    );
  }
  return ms;
}

/**
 * Checks a latency distribution.
 *
 * @param latency The distribution.
 * @returns The distribution, if valid.
 * @throws {RangeError} if a parameter is negative, not finite, or out of order.
 */
export function checkLatency(
  latency: LatencyDistribution,
): LatencyDistribution {
  switch (latency.kind) {
    case "constant":
      checkMs("latency.ms", latency.ms);
      break;
    case "uniform":
      checkMs("latency.min", latency.min);
      checkMs("latency.max", latency.max);
      if (latency.max < latency.min) {
        throw new RangeError(
          `Invalid uniform latency [${latency.min}, ${latency.max}): max < min`,
        );
      }
      break;
    case "normal":
      checkMs("latency.mean", latency.mean);
      checkMs("latency.stddev", latency.stddev);
      checkMs("latency.min", latency.min ?? 0);
      break;
    case "lognormal":
      checkMs("latency.median", latency.median);
      checkMs("latency.sigma", latency.sigma);
      checkMs("latency.min", latency.min ?? 0);
      if (latency.max !== undefined) {
        checkMs("latency.max", latency.max);
        if (latency.max < (latency.min ?? 0)) {
          throw new RangeError(
            `Invalid lognormal latency bounds [${
              latency.min ?? 0
            }, ${latency.max}]: max < min`,
          );
        }
      }
      break;
    default:
      throw new RangeError(
        `Unknown latency kind ${
          JSON.stringify((latency as { kind: unknown }).kind)
        }: use constant, uniform, normal or lognormal`,
      );
  }
  return latency;
}

/**
 * Merges link options over a resolved configuration and validates the result.
 *
 * @param base The current settings.
 * @param options The changes.
 * @returns The new settings.
 * @throws {RangeError} if a probability is outside [0, 1], a delay is
 * negative or a latency distribution is invalid.
 */
export function resolveLink(
  base: LinkConfig,
  options: LinkOptions,
): LinkConfig {
  const maxInFlight = options.maxInFlight ?? base.maxInFlight;
  if (
    !(maxInFlight === Infinity ||
      (Number.isInteger(maxInFlight) && maxInFlight >= 1))
  ) {
    throw new RangeError(
      `Invalid maxInFlight ${maxInFlight}: must be a positive integer or Infinity`,
    );
  }
  return {
    latency: checkLatency(options.latency ?? base.latency),
    loss: checkProbability("loss", options.loss ?? base.loss),
    duplicate: checkProbability(
      "duplicate",
      options.duplicate ?? base.duplicate,
    ),
    reorder: checkProbability("reorder", options.reorder ?? base.reorder),
    reorderDelay: checkMs(
      "reorderDelay",
      options.reorderDelay ?? base.reorderDelay,
    ),
    fifo: options.fifo ?? base.fifo,
    maxInFlight,
  };
}

/**
 * Draws one latency from a distribution.
 *
 * @param latency The distribution (assumed valid).
 * @param random The generator to draw from.
 * @returns A latency in milliseconds, never negative.
 */
export function sampleLatency(
  latency: LatencyDistribution,
  random: Prng,
): number {
  switch (latency.kind) {
    case "constant":
      return latency.ms;
    case "uniform":
      return latency.min + random.float() * (latency.max - latency.min);
    case "normal":
      return Math.max(
        latency.min ?? 0,
        random.normal(latency.mean, latency.stddev),
      );
    case "lognormal": {
      const x = latency.median * Math.exp(latency.sigma * random.normal());
      return Math.min(latency.max ?? Infinity, Math.max(latency.min ?? 0, x));
    }
  }
}
