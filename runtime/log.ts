/**
 * Structured logging: one JSON object per line on stderr.
 *
 * @module
 */

/** Severity of a log line, from most to least verbose. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_RANK: Record<LogLevel, number> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
};

/** Extra structured fields of a log line. */
export type LogFields = Record<string, unknown>;

/** Where Cohort components report what happens to them. */
export interface Logger {
  /**
   * Records one event.
   *
   * @param level Severity.
   * @param event A short, stable event name, for example `"auth_refused"`.
   * @param fields Values that explain the event.
   */
  log(level: LogLevel, event: string, fields?: LogFields): void;
}

/** Options for {@linkcode JsonLogger}. */
export interface JsonLoggerOptions {
  /** Lines below this level are not written. Default `"info"`. */
  level?: LogLevel | undefined;
  /** Fields added to every line, for example `{ node: "n1" }`. */
  base?: LogFields | undefined;
  /** Where lines go. Default: standard error. */
  write?: ((line: string) => void) | undefined;
}

/**
 * Writes one JSON object per line: `{"ts":..., "level":..., "event":..., ...}`.
 *
 * @example Log to a string array
 * ```ts
 * import { JsonLogger } from "@cohort/cohort";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const log = new JsonLogger({ write: (l) => lines.push(l), base: { node: "n1" } });
 * log.log("warn", "auth_refused", { peer: "n9" });
 * assert.equal(JSON.parse(lines[0]).peer, "n9");
 * ```
 */
export class JsonLogger implements Logger {
  readonly #rank: number;
  readonly #base: LogFields;
  readonly #write: (line: string) => void;

  /**
   * Creates a logger.
   *
   * @param options Level, base fields and sink.
   */
  constructor(options: JsonLoggerOptions = {}) {
    this.#rank = LEVEL_RANK[options.level ?? "info"];
    this.#base = options.base ?? {};
    this.#write = options.write ?? writeStderr;
  }

  /**
   * Writes one line if `level` is at or above the configured level.
   *
   * @param level Severity.
   * @param event Event name.
   * @param fields Extra fields.
   */
  log(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (LEVEL_RANK[level] < this.#rank) return;
    this.#write(
      JSON.stringify({
        ts: new Date().toISOString(),
        level,
        event,
        ...this.#base,
        ...fields,
      }),
    );
  }
}

const stderrEncoder = new TextEncoder();

function writeStderr(line: string): void {
  Deno.stderr.writeSync(stderrEncoder.encode(line + "\n"));
}

/** A logger that discards everything (the default of library components). */
export const silentLogger: Logger = { log() {} };

/**
 * A logger that adds `fields` to every line it passes on to `logger`
 * (the line's own fields win).
 *
 * @example Tag a component's lines with its group
 * ```ts
 * import { JsonLogger, withFields } from "./log.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const log = withFields(new JsonLogger({ write: (l) => lines.push(l) }), { group: "/g" });
 * log.log("info", "group.view_installed", { viewId: 2 });
 * assert.equal(JSON.parse(lines[0]).group, "/g");
 * ```
 *
 * @param logger Where the lines go.
 * @param fields Fields added to every line.
 * @returns The tagging logger.
 */
export function withFields(logger: Logger, fields: LogFields): Logger {
  if (logger === silentLogger) return logger;
  return {
    log: (level, event, extra = {}) =>
      logger.log(level, event, { ...fields, ...extra }),
  };
}
