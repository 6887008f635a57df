/**
 * Oracle path names: the rules every channel, lock and group path follows,
 * and the reserved `/_sys` subtree where the Oracle keeps its own channels.
 *
 * A path is absolute (`/apps/kv`), made of 1 to 32 non-empty segments of
 * `[A-Za-z0-9._~-]`, `:` and `@` (never `.` or `..`), at most 128 bytes per
 * segment and 512 bytes in all. `/` alone is the root: it names no channel,
 * lock or group and is valid only as a subscription prefix.
 *
 * @example Check a path and test prefixes
 * ```ts
 * import { checkPath, isReserved, isUnder, pathError } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(checkPath("/apps/kv"), "/apps/kv");
 * assert.match(pathError("/apps//kv") ?? "", /empty segment/);
 * assert.ok(isUnder("/apps", "/apps/kv"));
 * assert.ok(isReserved("/_sys/views/apps/kv"));
 * ```
 *
 * @module
 */

import { SYSTEM_PREFIX } from "./commands.ts";

/** The most segments a path may have. */
export const MAX_PATH_SEGMENTS = 32;
/** The most bytes one segment may have. */
export const MAX_SEGMENT_BYTES = 128;
/** The most bytes a whole path may have. */
export const MAX_PATH_BYTES = 512;

/** Options for {@linkcode pathError} and {@linkcode checkPath}. */
export interface PathOptions {
  /** Accept the root `/` (only subscription prefixes may be the root). Default `false`. */
  readonly root?: boolean | undefined;
}

const SEGMENT = /^[A-Za-z0-9._~:@-]+$/;

/** Shows at most 80 characters of a bad value inside a message. */
function show(path: string): string {
  return JSON.stringify(path.length > 80 ? `${path.slice(0, 77)}...` : path);
}

/**
 * Tells why a path is not valid.
 *
 * @param path The value to check (anything: non-strings are refused).
 * @param options Whether the root `/` is accepted.
 * @returns The reason the path is not valid, or `undefined` when it is.
 *
 * @example Find out why a path is refused
 * ```ts
 * import { pathError } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pathError("/apps/kv"), undefined);
 * assert.match(pathError("apps/kv") ?? "", /must start with "\/"/);
 * assert.match(pathError("/") ?? "", /only as a subscription prefix/);
 * assert.equal(pathError("/", { root: true }), undefined);
 * ```
 */
export function pathError(
  path: unknown,
  options?: PathOptions,
): string | undefined {
  if (typeof path !== "string") {
    return `Invalid path: expected a string, got ${
      path === null ? "null" : typeof path
    }`;
  }
  if (path.length > MAX_PATH_BYTES) {
    return `Invalid path ${
      show(path)
    }: ${path.length} characters, at most ${MAX_PATH_BYTES} bytes allowed`;
  }
  if (!path.startsWith("/")) {
    return `Invalid path ${show(path)}: must start with "/"`;
  }
  if (path === "/") {
    return options?.root
      ? undefined
      : `Invalid path "/": the root is valid only as a subscription prefix`;
  }
  const segments = path.slice(1).split("/");
  if (segments.length > MAX_PATH_SEGMENTS) {
    return `Invalid path ${
      show(path)
    }: ${segments.length} segments, at most ${MAX_PATH_SEGMENTS} allowed`;
  }
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    if (segment === "") {
      return i === segments.length - 1
        ? `Invalid path ${show(path)}: trailing "/"`
        : `Invalid path ${show(path)}: empty segment at position ${i + 1}`;
    }
    if (segment === "." || segment === "..") {
      return `Invalid path ${show(path)}: segment "${segment}" is not allowed`;
    }
    if (!SEGMENT.test(segment)) {
      return `Invalid path ${show(path)}: segment ${
        show(segment)
      } may hold only letters, digits and . _ ~ - : @`;
    }
    // Segments are ASCII, so characters are bytes.
    if (segment.length > MAX_SEGMENT_BYTES) {
      return `Invalid path ${show(path)}: segment ${
        i + 1
      } has ${segment.length} bytes, at most ${MAX_SEGMENT_BYTES} allowed`;
    }
  }
  return undefined;
}

/**
 * Checks a path and returns it.
 *
 * @param path The value to check.
 * @param options Whether the root `/` is accepted.
 * @returns `path`, when it is valid.
 * @throws {TypeError} When the path is not valid; the message says why.
 *
 * @example Refuse a path with an empty segment
 * ```ts
 * import { checkPath } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(checkPath("/locks/leader"), "/locks/leader");
 * assert.throws(() => checkPath("/locks//leader"), TypeError);
 * ```
 */
export function checkPath(path: unknown, options?: PathOptions): string {
  const error = pathError(path, options);
  if (error !== undefined) throw new TypeError(error);
  return path as string;
}

/**
 * Tells whether `path` is `prefix` itself or below it. The root `/` is above
 * every path.
 *
 * @param prefix A valid path, or `/`.
 * @param path A valid path.
 * @returns `true` when `path` is in the subtree named by `prefix`.
 *
 * @example A prefix matches whole segments only
 * ```ts
 * import { isUnder } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isUnder("/apps", "/apps"));
 * assert.ok(isUnder("/apps", "/apps/kv"));
 * assert.ok(!isUnder("/apps", "/applications"));
 * assert.ok(isUnder("/", "/anything"));
 * ```
 */
export function isUnder(prefix: string, path: string): boolean {
  if (prefix === "/") return path.startsWith("/");
  return path === prefix ||
    (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 0x2f);
}

/**
 * Tells whether a path is in the reserved `/_sys` subtree, where only the
 * Oracle itself writes (clients may read and subscribe).
 *
 * @param path A path.
 * @returns `true` for `/_sys` and every path below it.
 *
 * @example View channels are reserved
 * ```ts
 * import { isReserved } from "./path.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isReserved("/_sys/views/apps/kv"));
 * assert.ok(!isReserved("/_system"));
 * ```
 */
export function isReserved(path: string): boolean {
  return isUnder(SYSTEM_PREFIX, path);
}
