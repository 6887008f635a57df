/**
 * Argument checks of the Oracle client, run before anything is sent. The
 * Oracle checks again (and more strictly: path syntax, reserved prefixes);
 * these catch the type mistakes early with a clear message.
 *
 * @module
 */

import {
  LIST_KINDS,
  type ListKind,
  MAX_GBCAST_DATA_LENGTH,
  MAX_LIST_LIMIT,
} from "./commands.ts";

/** The longest path the client sends, in UTF-16 code units. */
export const MAX_PATH_LENGTH = 4096;

/**
 * Checks a channel, lock or group path: a string starting with `/`.
 *
 * @throws {TypeError} if it is not such a string.
 * @throws {RangeError} if it is longer than {@linkcode MAX_PATH_LENGTH}.
 */
export function checkPath(what: string, path: unknown): string {
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw new TypeError(
      `Invalid ${what} ${
        JSON.stringify(path) ?? String(path)
      }: must be a string starting with "/"`,
    );
  }
  if (path.length > MAX_PATH_LENGTH) {
    throw new RangeError(
      `Invalid ${what} of length ${path.length}: at most ${MAX_PATH_LENGTH} characters`,
    );
  }
  return path;
}

/**
 * Checks a non-empty string (member name, replica or session id).
 *
 * @throws {TypeError} if it is not a non-empty string.
 * @throws {RangeError} if it is longer than `maxLength`.
 */
export function checkName(
  what: string,
  value: unknown,
  maxLength = Infinity,
): string {
  if (typeof value !== "string" || value === "") {
    throw new TypeError(
      `Invalid ${what} ${
        JSON.stringify(value) ?? String(value)
      }: must be a non-empty string`,
    );
  }
  if (value.length > maxLength) {
    throw new RangeError(
      `Invalid ${what} of length ${value.length}: at most ${maxLength} characters`,
    );
  }
  return value;
}

/**
 * Checks an integer in [`min`, 2^53).
 *
 * @throws {TypeError} if it is not a number.
 * @throws {RangeError} if it is not a safe integer of at least `min`.
 */
export function checkInteger(
  what: string,
  value: unknown,
  min: number,
): number {
  if (typeof value !== "number") {
    throw new TypeError(`Invalid ${what} ${String(value)}: must be a number`);
  }
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `Invalid ${what} ${value}: must be an integer of at least ${min}`,
    );
  }
  return value;
}

/** The largest gbcast payload, in bytes (its base64 fits the Oracle's limit). */
export const MAX_GBCAST_BYTES = (MAX_GBCAST_DATA_LENGTH / 4) * 3;

/**
 * Checks a gbcast payload.
 *
 * @throws {TypeError} if it is not a `Uint8Array`.
 * @throws {RangeError} if it is larger than {@linkcode MAX_GBCAST_BYTES}.
 */
function checkGbcastPayload(payload: unknown): Uint8Array {
  if (!(payload instanceof Uint8Array)) {
    throw new TypeError(
      `Invalid gbcast payload ${String(payload)}: must be a Uint8Array`,
    );
  }
  if (payload.length > MAX_GBCAST_BYTES) {
    throw new RangeError(
      `Invalid gbcast payload of ${payload.length} bytes: at most ${MAX_GBCAST_BYTES} allowed`,
    );
  }
  return payload;
}

/**
 * Checks a duration option in milliseconds.
 *
 * @throws {RangeError} if it is not a finite number in [`min`, `max`].
 */
export function checkDuration(
  what: string,
  value: number,
  min: number,
  max: number,
): number {
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < min ||
    value > max
  ) {
    throw new RangeError(
      `Invalid ${what} ${value}: must be a number of milliseconds from ${min} to ${max}`,
    );
  }
  return value;
}

/**
 * Checks that a value can be sent as JSON: no `undefined`, functions,
 * symbols, BigInts, non-finite numbers or cycles.
 *
 * @throws {TypeError} naming the offending place.
 */
export function checkJson(what: string, value: unknown): void {
  const seen = new Set<object>();
  const visit = (v: unknown, where: string): void => {
    switch (typeof v) {
      case "string":
      case "boolean":
        return;
      case "number":
        if (!Number.isFinite(v)) {
          throw new TypeError(
            `Invalid ${what}: ${where} is ${v}, which JSON cannot carry`,
          );
        }
        return;
      case "object": {
        if (v === null) return;
        if (seen.has(v)) {
          throw new TypeError(`Invalid ${what}: ${where} is a cycle`);
        }
        seen.add(v);
        if (Array.isArray(v)) {
          v.forEach((item, i) => visit(item, `${where}[${i}]`));
        } else {
          const proto = Object.getPrototypeOf(v);
          if (proto !== Object.prototype && proto !== null) {
            throw new TypeError(
              `Invalid ${what}: ${where} is not a plain object or array`,
            );
          }
          for (const [key, item] of Object.entries(v)) {
            visit(item, `${where}.${key}`);
          }
        }
        seen.delete(v);
        return;
      }
      default:
        throw new TypeError(
          `Invalid ${what}: ${where} is ${typeof v}, which JSON cannot carry`,
        );
    }
  };
  visit(value, "data");
}

/** The most replicas a delegated group may have. */
export const MAX_GROUP_REPLICAS = 9;
/** The most session ids one `ended_sessions` read may carry. */
export const MAX_SESSION_IDS = 1000;

/**
 * Checks a group's replica addresses: a plain object mapping 1 to
 * {@linkcode MAX_GROUP_REPLICAS} non-empty replica ids to non-empty
 * `"host:port"` strings.
 *
 * @throws {TypeError} if it is not such an object.
 * @throws {RangeError} if it has no entry or too many.
 */
export function checkReplicaAddresses(
  what: string,
  value: unknown,
): Record<string, string> {
  if (
    typeof value !== "object" || value === null || Array.isArray(value) ||
    (Object.getPrototypeOf(value) !== Object.prototype &&
      Object.getPrototypeOf(value) !== null)
  ) {
    throw new TypeError(
      `Invalid ${what}: must be an object mapping replica ids to "host:port"`,
    );
  }
  const entries = Object.entries(value);
  if (entries.length === 0 || entries.length > MAX_GROUP_REPLICAS) {
    throw new RangeError(
      `Invalid ${what}: ${entries.length} replicas, must be 1 to ${MAX_GROUP_REPLICAS}`,
    );
  }
  for (const [id, address] of entries) {
    checkName(`replica id in ${what}`, id);
    checkName(`address of replica ${JSON.stringify(id)} in ${what}`, address);
  }
  return value as Record<string, string>;
}

/**
 * Checks a list of session ids: an array of 1 to
 * {@linkcode MAX_SESSION_IDS} non-empty strings of at most `maxLength`
 * characters.
 *
 * @throws {TypeError} if it is not an array or an id is not a non-empty string.
 * @throws {RangeError} if it is empty, too long, or an id is too long.
 */
export function checkSessionIds(
  what: string,
  value: unknown,
  maxLength: number,
): string[] {
  if (!Array.isArray(value)) {
    throw new TypeError(`Invalid ${what}: must be an array of session ids`);
  }
  if (value.length === 0 || value.length > MAX_SESSION_IDS) {
    throw new RangeError(
      `Invalid ${what}: ${value.length} session ids, must be 1 to ${MAX_SESSION_IDS}`,
    );
  }
  for (const id of value) checkName(`session id in ${what}`, id, maxLength);
  return value as string[];
}

/**
 * Checks what a `list` lists: `"locks"`, `"channels"` or `"groups"`.
 *
 * @throws {TypeError} if it is none of them.
 */
function checkListKind(value: unknown): ListKind {
  if (!LIST_KINDS.includes(value as ListKind)) {
    throw new TypeError(
      `Invalid list kind ${
        JSON.stringify(value) ?? String(value)
      }: must be "locks", "channels" or "groups"`,
    );
  }
  return value as ListKind;
}

/**
 * Checks a `list` limit: an integer from 1 to {@linkcode MAX_LIST_LIMIT}.
 *
 * @throws {TypeError} if it is not a number.
 * @throws {RangeError} if it is not an integer in that range.
 */
function checkListLimit(value: unknown): number {
  checkInteger("list limit", value, 1);
  if ((value as number) > MAX_LIST_LIMIT) {
    throw new RangeError(
      `Invalid list limit ${value}: must be an integer from 1 to ${MAX_LIST_LIMIT}`,
    );
  }
  return value as number;
}

/**
 * Checks the arguments of a `list`: its kind, its prefix (a path, or
 * `/`), and the optional cursor (a path) and limit.
 *
 * @throws {TypeError} naming the argument, if one has the wrong type or form.
 * @throws {RangeError} if the limit is out of range.
 */
export function checkListArgs(
  kind: unknown,
  prefix: unknown,
  options: { after?: unknown; limit?: unknown },
): void {
  checkListKind(kind);
  checkPath("list prefix", prefix);
  if (options.after !== undefined) checkPath("list cursor", options.after);
  if (options.limit !== undefined) checkListLimit(options.limit);
}

/**
 * Checks the arguments of a `gbcast`: the group's path, the member's
 * name, its sequence number (from 1) and the payload.
 *
 * @returns The payload.
 * @throws {TypeError} naming the argument, if one has the wrong type or form.
 * @throws {RangeError} if `seq` is not a positive integer or the payload
 * is larger than {@linkcode MAX_GBCAST_BYTES}.
 */
export function checkGbcastArgs(
  group: unknown,
  member: unknown,
  seq: unknown,
  payload: unknown,
): Uint8Array {
  checkPath("group", group);
  checkName("member", member);
  checkInteger("seq", seq, 1);
  return checkGbcastPayload(payload);
}
