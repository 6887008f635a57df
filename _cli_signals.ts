/**
 * How a long-running `cohort` command stops: the first SIGTERM or SIGINT
 * asks for a clean stop; a second one exits at once (128 + the signal
 * number). A clean stop that takes too long is given up.
 *
 * @module
 */

import type { Logger } from "./runtime/log.ts";

/** Why a command stops: a signal, or a failure of what it runs. */
export type StopReason =
  | { readonly signal: string }
  | { readonly failure: string };

const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGTERM: 15 };

/**
 * Listens for SIGTERM and SIGINT (SIGINT only on Windows) from
 * construction until {@linkcode StopSignals.close}.
 *
 * @example Stop on a failure instead of a signal
 * ```ts
 * import { StopSignals } from "./_cli_signals.ts";
 * import { silentLogger } from "./runtime/log.ts";
 * import assert from "node:assert/strict";
 *
 * const stop = new StopSignals(silentLogger, "demo");
 * stop.fail("the member left");
 * assert.deepEqual(await stop.reason, { failure: "the member left" });
 * stop.close();
 * ```
 */
export class StopSignals {
  /** Resolves with the first reason to stop. */
  readonly reason: Promise<StopReason>;
  readonly #resolve: (reason: StopReason) => void;
  readonly #listeners: { signal: Deno.Signal; listener: () => void }[];
  #stopping = false;

  /**
   * Starts listening.
   *
   * @param logger Where a second signal's `<prefix>.exit_now` is logged.
   * @param prefix The command's event prefix, for example `"node"`.
   */
  constructor(logger: Logger, prefix: string) {
    const { promise, resolve } = Promise.withResolvers<StopReason>();
    this.reason = promise;
    this.#resolve = resolve;
    const signals: Deno.Signal[] = Deno.build.os === "windows"
      ? ["SIGINT"]
      : ["SIGTERM", "SIGINT"];
    this.#listeners = signals.map((signal) => {
      const listener = () => {
        if (this.#stopping) {
          logger.log("warn", `${prefix}.exit_now`, { signal });
          Deno.exit(128 + (SIGNAL_NUMBERS[signal] ?? 0));
        }
        this.#stop({ signal });
      };
      Deno.addSignalListener(signal, listener);
      return { signal, listener };
    });
  }

  /** Whether a stop was asked for. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /**
   * Stops because of a failure (unless a stop was asked for already).
   *
   * @param failure What failed.
   */
  fail(failure: string): void {
    this.#stop({ failure });
  }

  /** Stops listening. Idempotent. */
  close(): void {
    for (const { signal, listener } of this.#listeners.splice(0)) {
      Deno.removeSignalListener(signal, listener);
    }
  }

  #stop(reason: StopReason): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#resolve(reason);
  }
}

/** Options of {@linkcode stopWithin}. */
export interface StopWithinOptions {
  /** How long the stop may take. */
  readonly ms: number;
  /** Where a failed or late stop is logged. */
  readonly logger: Logger;
  /** The command's event prefix: `<prefix>.stop_failed`, `<prefix>.stop_timeout`. */
  readonly prefix: string;
}

/**
 * Runs `stop`, giving up after `options.ms`.
 *
 * @example A quick stop
 * ```ts
 * import { stopWithin } from "./_cli_signals.ts";
 * import { silentLogger } from "./runtime/log.ts";
 * import assert from "node:assert/strict";
 *
 * const clean = await stopWithin(() => Promise.resolve(), {
 *   ms: 1_000,
 *   logger: silentLogger,
 *   prefix: "demo",
 * });
 * assert.equal(clean, true);
 * ```
 *
 * @param stop The clean stop.
 * @param options The bound and where problems are logged.
 * @returns Whether `stop` finished in time without an error.
 */
export async function stopWithin(
  stop: () => Promise<void>,
  options: StopWithinOptions,
): Promise<boolean> {
  const { ms, logger, prefix } = options;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      stop().then(() => true, (error) => {
        logger.log("error", `${prefix}.stop_failed`, {
          error: (error as Error).message,
        });
        return false;
      }),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => {
          logger.log("error", `${prefix}.stop_timeout`, { ms });
          resolve(false);
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@linkcode shutDown}. */
export interface ShutDownOptions extends StopWithinOptions {
  /** Stops the admin endpoint, if one runs (first). */
  readonly admin?: (() => Promise<void>) | undefined;
  /** Stops what the command runs (within `ms`). */
  readonly service: () => Promise<void>;
}

/**
 * Ends a long-running command for `reason`: logs `<prefix>.stopping`,
 * stops its admin endpoint, then what it runs (giving up after
 * `options.ms`), stops listening for signals and logs `<prefix>.stopped`.
 *
 * @param stop The command's signals.
 * @param reason Why it stops.
 * @param options What to stop, the bound, and the log.
 * @returns The exit code: 0 after a signal and a clean stop, else 1.
 */
export async function shutDown(
  stop: StopSignals,
  reason: StopReason,
  options: ShutDownOptions,
): Promise<number> {
  const { logger, prefix } = options;
  logger.log("failure" in reason ? "error" : "info", `${prefix}.stopping`, {
    ...reason,
  });
  await options.admin?.();
  const clean = await stopWithin(options.service, options);
  stop.close();
  logger.log("info", `${prefix}.stopped`, { clean });
  return clean && "signal" in reason ? 0 : 1;
}
