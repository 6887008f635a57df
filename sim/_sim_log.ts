/**
 * Node log lines in a simulation: filtered by level, stamped with virtual
 * time, node and incarnation, kept in the trace ring (unhashed) and passed
 * to the script's `onLog`.
 *
 * @module
 */

import type { LogFields, Logger, LogLevel } from "../runtime/log.ts";
import type { PeerId } from "../transport/transport.ts";
import type { EventLoop } from "./_event_loop.ts";

const LOG_RANK: Record<LogLevel, number> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
};

function formatFields(fields: LogFields): string {
  try {
    return JSON.stringify(fields);
  } catch {
    return String(fields);
  }
}

/** Where the loggers of a simulation's nodes write. */
export class SimLog {
  readonly #loop: EventLoop;
  readonly #rank: number;
  readonly #onLog: ((line: string) => void) | undefined;

  /**
   * Creates the log of a simulation.
   *
   * @param loop Gives the time and keeps the lines.
   * @param level Least severe level kept.
   * @param onLog Receives every line kept.
   * @throws {RangeError} on an unknown level.
   */
  constructor(
    loop: EventLoop,
    level: LogLevel,
    onLog: ((line: string) => void) | undefined,
  ) {
    if (!Object.hasOwn(LOG_RANK, level)) {
      throw new RangeError(`Invalid logLevel ${JSON.stringify(level)}`);
    }
    this.#loop = loop;
    this.#rank = LOG_RANK[level];
    this.#onLog = onLog;
  }

  /**
   * The logger of one node incarnation.
   *
   * @param node The node's id.
   * @param incarnation The incarnation.
   * @returns A logger that stamps its lines with both.
   */
  logger(node: PeerId, incarnation: number): Logger {
    return {
      log: (level: LogLevel, event: string, fields?: LogFields) => {
        if (LOG_RANK[level] < this.#rank) return;
        const trace = this.#loop.trace;
        if (!trace.keeping && this.#onLog === undefined) return;
        const line = `${
          this.#loop.now.toFixed(3)
        } ${node}#${incarnation} ${level} ${event}${
          fields === undefined ? "" : " " + formatFields(fields)
        }`;
        trace.keep(line);
        this.#onLog?.(line);
      },
    };
  }
}
