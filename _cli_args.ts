/**
 * Values the `cohort` commands share: replica lists, `HOST:PORT`
 * addresses, log levels, ports, numbers and secret files. Each check
 * throws a `TypeError` (a `RangeError` for a number out of range) whose
 * message names the flag and the value.
 *
 * @module
 */

import type { LogLevel } from "./runtime/log.ts";

/** The log levels `--log-level` takes. */
const LOG_LEVELS: readonly LogLevel[] = [
  "debug",
  "info",
  "warn",
  "error",
];

/**
 * Parses `ID=HOST:PORT,...`: a group of replicas by id.
 *
 * @example Three replicas
 * ```ts
 * import { parsePeers } from "./_cli_args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parsePeers("1=127.0.0.1:7101,2=127.0.0.1:7102"), {
 *   "1": "127.0.0.1:7101",
 *   "2": "127.0.0.1:7102",
 * });
 * ```
 *
 * @param text The flag's value.
 * @param flag The flag, for messages. Default `"--peers"`.
 * @returns Id to `"host:port"`.
 * @throws {TypeError} on an entry without an id or address, an id given
 * twice, or a bad address.
 */
export function parsePeers(
  text: string,
  flag = "--peers",
): Record<string, string> {
  const peers: Record<string, string> = {};
  for (const item of text.split(",")) {
    const eq = item.indexOf("=");
    const id = eq > 0 ? item.slice(0, eq).trim() : "";
    const address = eq > 0 ? item.slice(eq + 1).trim() : "";
    if (id === "" || address === "") {
      throw new TypeError(
        `Invalid ${flag} entry ${
          JSON.stringify(item)
        }: use ID=HOST:PORT, for example 1=127.0.0.1:7101`,
      );
    }
    if (Object.hasOwn(peers, id)) {
      throw new TypeError(`Invalid ${flag}: id ${JSON.stringify(id)} twice`);
    }
    checkAddress(`${flag} address of ${JSON.stringify(id)}`, address, 1);
    peers[id] = address;
  }
  return peers;
}

/**
 * Parses a list of replicas given either with ids (`ID=HOST:PORT,...`)
 * or without (`HOST:PORT,...`).
 *
 * @example Without ids
 * ```ts
 * import { parseReplicaList } from "./_cli_args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseReplicaList("h1:7101,h2:7101", "--oracle"), ["h1:7101", "h2:7101"]);
 * ```
 *
 * @param text The flag's value.
 * @param flag The flag, for messages.
 * @returns Id to `"host:port"`, or the addresses in order.
 * @throws {TypeError} on a list that mixes both forms, or a bad entry.
 */
export function parseReplicaList(
  text: string,
  flag: string,
): Record<string, string> | string[] {
  const items = text.split(",").map((item) => item.trim());
  const withIds = items.filter((item) => item.includes("=")).length;
  if (withIds === items.length) return parsePeers(text, flag);
  if (withIds > 0) {
    throw new TypeError(
      `Invalid ${flag} ${
        JSON.stringify(text)
      }: give every replica as ID=HOST:PORT or every one as HOST:PORT, not both`,
    );
  }
  const addresses = new Set<string>();
  for (const address of items) {
    checkAddress(`${flag} entry`, address, 1);
    if (addresses.has(address)) {
      throw new TypeError(
        `Invalid ${flag}: address ${JSON.stringify(address)} twice`,
      );
    }
    addresses.add(address);
  }
  return [...addresses];
}

/**
 * Checks a `HOST:PORT` address (an IPv6 host in brackets).
 *
 * @example A port of 0 asks for any free port
 * ```ts
 * import { checkAddress } from "./_cli_args.ts";
 * import assert from "node:assert/strict";
 *
 * checkAddress("--listen", "0.0.0.0:0", 0);
 * assert.throws(() => checkAddress("--listen", "localhost", 0), /Invalid --listen "localhost"/);
 * ```
 *
 * @param what The flag (and entry), for the message.
 * @param address The value.
 * @param minPort The lowest port accepted (0 or 1).
 * @throws {TypeError} if the host is missing or the port out of range.
 */
export function checkAddress(
  what: string,
  address: string,
  minPort: number,
): void {
  const colon = address.lastIndexOf(":");
  let host = colon > 0 ? address.slice(0, colon) : "";
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const portText = colon > 0 ? address.slice(colon + 1) : "";
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (host === "" || /\s/.test(host) || !(port >= minPort && port <= 65535)) {
    throw new TypeError(
      `Invalid ${what} ${
        JSON.stringify(address)
      }: use HOST:PORT with a port from ${minPort} to 65535`,
    );
  }
}

/**
 * Checks a `--log-level` value.
 *
 * @example
 * ```ts
 * import { parseLogLevel } from "./_cli_args.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseLogLevel("warn"), "warn");
 * assert.throws(() => parseLogLevel("loud"), /Invalid --log-level "loud"/);
 * ```
 *
 * @param text The value.
 * @returns The level.
 * @throws {TypeError} if it is not a level.
 */
export function parseLogLevel(text: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(text)) {
    throw new TypeError(
      `Invalid --log-level ${JSON.stringify(text)}: use ${
        LOG_LEVELS.join(", ")
      }`,
    );
  }
  return text as LogLevel;
}

/** Options of {@linkcode parseNumber}. */
export interface NumberRange {
  /** The lowest value accepted. */
  readonly min: number;
  /** The highest value accepted. */
  readonly max: number;
  /** Whether `min` itself is refused. Default `false`. */
  readonly exclusiveMin?: boolean | undefined;
  /** Whether only integers are accepted. Default `false`. */
  readonly integer?: boolean | undefined;
}

/**
 * Parses a decimal number flag.
 *
 * @example Seconds
 * ```ts
 * import { parseNumber } from "./_cli_args.ts";
 * import assert from "node:assert/strict";
 *
 * const seconds = { min: 0, max: 600, exclusiveMin: true };
 * assert.equal(parseNumber("--seconds", "2.5", seconds), 2.5);
 * assert.throws(() => parseNumber("--seconds", "x", seconds), /Invalid --seconds "x"/);
 * ```
 *
 * @param flag The flag, for messages.
 * @param text The value.
 * @param range The values accepted.
 * @returns The number.
 * @throws {TypeError} if the text is not a decimal number (an integer if asked).
 * @throws {RangeError} if the number is out of range.
 */
export function parseNumber(
  flag: string,
  text: string,
  range: NumberRange,
): number {
  const pattern = range.integer ? /^[0-9]+$/ : /^[0-9]+(\.[0-9]+)?$|^\.[0-9]+$/;
  if (!pattern.test(text)) {
    throw new TypeError(
      `Invalid ${flag} ${JSON.stringify(text)}: use ${
        range.integer ? "an integer" : "a number"
      } from ${range.min} to ${range.max}`,
    );
  }
  const value = Number(text);
  const low = range.exclusiveMin ? value <= range.min : value < range.min;
  if (low || value > range.max) {
    throw new RangeError(
      `Invalid ${flag} ${JSON.stringify(text)}: use ${
        range.integer ? "an integer" : "a number"
      } from ${range.min}${
        range.exclusiveMin ? " (excluded)" : ""
      } to ${range.max}`,
    );
  }
  return value;
}

/**
 * Reads a `--secret-file`: its bytes, without one trailing newline.
 *
 * @param path The file.
 * @returns The secret.
 * @throws {TypeError} if the file is empty.
 * @throws {Deno.errors.NotFound} if it does not exist.
 */
export async function readSecret(path: string): Promise<Uint8Array> {
  let bytes = await Deno.readFile(path);
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0a) end--;
  if (end > 0 && bytes[end - 1] === 0x0d) end--;
  bytes = bytes.subarray(0, end);
  if (bytes.length === 0) {
    throw new TypeError(`Invalid --secret-file ${path}: the file is empty`);
  }
  return bytes;
}

/**
 * Reads a token file (an admin bearer token): its text, without one
 * trailing newline.
 *
 * @param flag The flag that named the file, for the message.
 * @param path The file.
 * @returns The token.
 * @throws {TypeError} naming the flag and the file if it cannot be read.
 */
export async function readTokenFile(
  flag: string,
  path: string,
): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).replace(/\r?\n$/, "");
  } catch (error) {
    throw new TypeError(
      `Cannot read ${flag} ${path}: ${(error as Error).message}`,
    );
  }
}

/**
 * Parses `--peers` for a replica run by this process, named by `idFlag`
 * (`--id`, `--replica`): every replica as `ID=HOST:PORT`, this one among
 * them.
 *
 * @param idFlag The flag that names this replica, for messages.
 * @param id This replica's id.
 * @param peers The `--peers` value, if given.
 * @param hint Said after "Missing --peers: " (what the list is).
 * @returns The replicas by id.
 * @throws {TypeError} if the list is missing or malformed, or `id` is not in it.
 */
export function parseOwnPeers(
  idFlag: string,
  id: string,
  peers: string | undefined,
  hint: string,
): Record<string, string> {
  if (peers === undefined || peers === "") {
    throw new TypeError(`Missing --peers: ${hint}`);
  }
  const replicas = parsePeers(peers);
  if (!Object.hasOwn(replicas, id)) {
    throw new TypeError(
      `Invalid ${idFlag} ${JSON.stringify(id)}: not among the --peers ids ${
        Object.keys(replicas).join(",")
      }`,
    );
  }
  return replicas;
}
