/**
 * Sequential models of the Oracle's channels and locks for
 * {@linkcode checkLinearizable}, and {@linkcode FencingMonitor}, an online
 * check of fencing tokens. Scenarios record client operations as the
 * clients observed them and check the history at the end of a run.
 *
 * ## Conventions for recording a history
 *
 * - `call` is when the client sent the request (its first attempt), `ret`
 *   when the client got the answer, on the simulator's virtual clock.
 * - An operation whose fate the client does not know (timed out, client
 *   crashed, retried without an answer) gets `output: undefined` and
 *   `ret: Infinity`: it may have taken effect at any time after its call,
 *   or never.
 * - An error output (`{ error: code }`) means the operation had no effect.
 *   Record an error only when it guarantees that (for example
 *   `session_expired`, `lock_owned`, `invalid`); after `not_leader` or a
 *   transport failure, the outcome is unknown: record `undefined`.
 * - `client` is a session id: a client that opens a new session must be
 *   recorded under a new name.
 *
 * ## What the channel model claims
 *
 * Per path, appends and reads are linearizable with respect to an
 * append-only list: an acknowledged append got `seq` = (number of earlier
 * appends on the path) + 1 and a `rev` greater than every earlier event's
 * on the path; a successful `read(from, limit)` returned exactly the
 * events `from` .. `from + limit - 1` that existed at some instant between
 * its call and return (all of them, none missing, none extra, with the data
 * and revisions their appends got), and `next` is the sequence number
 * after the last event returned (`from` when none). Not checked: that
 * revisions are unique across paths, truncation and retention (reads that
 * failed with `compacted` count as having no effect; `first` is only
 * checked to be at most `from`).
 *
 * ## What the lock model claims
 *
 * Per path, with a grant linearized at the instant the lock was handed
 * over (between the acquire's call and the arrival of its reply):
 *
 * - mutual exclusion: a grant (to `acquire` or `tryAcquire`) is possible
 *   only while nobody holds the lock; the holder keeps it until it
 *   releases it or its session expires;
 * - fencing: every grant's token is greater than every token granted
 *   earlier on that path;
 * - `release(token)` succeeds exactly when the client holds the lock under
 *   `token`, and then frees it; otherwise it answers `not_holder`;
 *   `release(0)` (withdrawing a queued request) has no effect here;
 * - `tryAcquire` answers `{ token: 0 }` only while someone else holds the
 *   lock (and names that holder, if it names one);
 * - `inspect` (a `get_lock` read) sees the current holder and token;
 * - `expire(client)` (the session expired or was closed) releases the
 *   client's lock, and the client is never granted a lock again.
 *
 * Not checked: FIFO order among waiting requests (the queue is not
 * modelled, so any waiter may be granted next), and that the same expiry
 * took effect at one instant on every path (each path places it on its
 * own: a per-path check, slightly weaker than a whole-history one).
 * A grant whose reply never arrived holds the lock with an unknown token;
 * later tokens are then only checked against the known ones.
 *
 * @module
 */

import type { LinearizabilityModel } from "../../../sim/linearizability.ts";
import type {
  AppendOp,
  Json,
  ReadChannelOp,
} from "../../../oracle/commands.ts";

/** An error answer: the operation had no effect. */
export interface ErrorOutput {
  /** The Oracle's error code, for example `"session_expired"`. */
  readonly error: string;
}

// ---------------------------------------------------------------- channels

/** A channel operation, exactly as the client sent it. */
export type ChannelInput = AppendOp | ReadChannelOp;

/** An event as a read returned it (`path` optional). */
export interface ChannelReadEvent {
  readonly path?: string | undefined;
  readonly seq: number;
  readonly rev: number;
  readonly data: Json;
}

/** What a channel operation answered: an append's `{ seq, rev }`, a read's `{ events, first, next }`, or an error. */
export type ChannelOutput =
  | { readonly seq: number; readonly rev: number }
  | {
    readonly events: readonly ChannelReadEvent[];
    readonly first: number;
    readonly next: number;
  }
  | ErrorOutput;

/** One appended event in the model: its data (canonical JSON) and revision, if known. */
interface ChannelEntry {
  readonly data: string;
  readonly rev: number | undefined;
  /** The event before it (a persistent list: appends share the past). */
  readonly prev: ChannelEntry | null;
}

/**
 * The channel model's state for one path: the events appended so far.
 * Treat as opaque.
 */
export interface ChannelState {
  /** The newest event; each links to the one before. */
  readonly last: ChannelEntry | null;
  /** How many events were appended (the newest has this sequence number). */
  readonly length: number;
  /** The greatest known revision on the path (0 before the first). */
  readonly maxRev: number;
  /** Hashes of the events, extended on every append. */
  readonly h1: number;
  readonly h2: number;
  /** The memoization key. */
  readonly key: string;
}

/** JSON with object keys sorted: equal for equal values. */
function canonical(value: Json): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${
    keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")
  }}`;
}

/** FNV-1a over a string, continuing from `hash`. */
function fnv(hash: number, text: string): number {
  let h = hash;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  }
  return h >>> 0;
}

const EMPTY_CHANNEL: ChannelState = {
  last: null,
  length: 0,
  maxRev: 0,
  h1: 0x811c9dc5,
  h2: 0x2545f491,
  key: "",
};

function append(
  state: ChannelState,
  data: string,
  rev: number | undefined,
  maxRev: number,
): ChannelState {
  const item = `${data}@${rev ?? "?"};`;
  const h1 = fnv(state.h1, item);
  const h2 = fnv(state.h2 ^ 0x5bd1e995, item);
  const length = state.length + 1;
  return {
    last: { data, rev, prev: state.last },
    length,
    maxRev,
    h1,
    h2,
    key: `${length}:${maxRev}:${h1}:${h2}`,
  };
}

/** The events with sequence numbers `from` .. `from + count - 1`. */
function slice(
  state: ChannelState,
  from: number,
  count: number,
): ChannelEntry[] {
  const out: ChannelEntry[] = new Array(count);
  let entry = state.last;
  for (let seq = state.length; seq >= from && entry !== null; seq--) {
    if (seq < from + count) out[seq - from] = entry;
    entry = entry.prev;
  }
  return out;
}

function isError(output: unknown): output is ErrorOutput {
  return typeof output === "object" && output !== null && "error" in output;
}

function stepAppend(
  state: ChannelState,
  input: AppendOp,
  output: ChannelOutput | undefined,
): ChannelState | undefined {
  if (isError(output)) return state;
  const data = canonical(input.data);
  if (output === undefined) return append(state, data, undefined, state.maxRev);
  if (!("seq" in output)) return undefined;
  if (output.seq !== state.length + 1) return undefined;
  if (!(output.rev > state.maxRev)) return undefined;
  return append(state, data, output.rev, output.rev);
}

/** Rebuilds a state whose events got revisions from a read; `undefined` if they do not increase. */
function learnRevs(
  state: ChannelState,
  from: number,
  revs: readonly number[],
): ChannelState | undefined {
  const all = slice(state, 1, state.length);
  let rebuilt = EMPTY_CHANNEL;
  let last = 0;
  for (let i = 0; i < all.length; i++) {
    const j = i + 1 - from;
    const rev = all[i].rev ?? (j >= 0 && j < revs.length ? revs[j] : undefined);
    if (rev !== undefined) {
      if (rev <= last) return undefined;
      last = rev;
    }
    rebuilt = append(rebuilt, all[i].data, rev, Math.max(last, state.maxRev));
  }
  return rebuilt;
}

function stepRead(
  state: ChannelState,
  input: ReadChannelOp,
  output: ChannelOutput | undefined,
): ChannelState | undefined {
  if (output === undefined || isError(output)) return state;
  if (!("events" in output)) return undefined;
  const { from, limit } = input;
  if (from < 1 || output.first > from) return undefined;
  const available = Math.max(0, state.length - from + 1);
  const count = Math.min(Math.max(0, limit), available);
  const events = output.events;
  if (events.length !== count) return undefined;
  if (output.next !== from + count) return undefined;
  const expected = slice(state, from, count);
  let unknownRevs = false;
  for (let i = 0; i < count; i++) {
    const event = events[i];
    const entry = expected[i];
    if (event.seq !== from + i) return undefined;
    if (event.path !== undefined && event.path !== input.path) return undefined;
    if (canonical(event.data) !== entry.data) return undefined;
    if (entry.rev === undefined) unknownRevs = true;
    else if (entry.rev !== event.rev) return undefined;
  }
  return unknownRevs ? learnRevs(state, from, events.map((e) => e.rev)) : state;
}

function groupByPath<T extends { readonly input: { readonly path?: string } }>(
  ops: readonly T[],
): T[][] {
  const byPath = new Map<string, T[]>();
  const everywhere: T[] = [];
  for (const op of ops) {
    const path = op.input.path;
    if (path === undefined) {
      everywhere.push(op);
      continue;
    }
    let list = byPath.get(path);
    if (list === undefined) byPath.set(path, list = []);
    list.push(op);
  }
  if (byPath.size === 0) return everywhere.length > 0 ? [everywhere] : [];
  return [...byPath.values()].map((list) =>
    everywhere.length === 0 ? list : [...list, ...everywhere]
  );
}

function brief(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The Oracle's channels as an append-only list per path (see the module
 * documentation for the exact claim). Partitions the history by path.
 *
 * @example A read that misses an acknowledged append fails
 * ```ts
 * import { checkLinearizable } from "../../../sim/linearizability.ts";
 * import { channelModel } from "./_oracle_models.ts";
 * import assert from "node:assert/strict";
 *
 * const result = checkLinearizable([
 *   {
 *     client: "a",
 *     input: { op: "append", path: "/c", data: "x" },
 *     output: { seq: 1, rev: 1 },
 *     call: 0,
 *     ret: 10,
 *   },
 *   {
 *     client: "b",
 *     input: { op: "read", path: "/c", from: 1, limit: 10 },
 *     output: { events: [], first: 1, next: 1 },
 *     call: 20,
 *     ret: 30,
 *   },
 * ], channelModel);
 * assert.equal(result.ok, false);
 * ```
 */
export const channelModel: LinearizabilityModel<
  ChannelState,
  ChannelInput,
  ChannelOutput
> = {
  init: () => EMPTY_CHANNEL,
  step(state, input, output) {
    return input.op === "append"
      ? stepAppend(state, input, output)
      : stepRead(state, input, output);
  },
  partition: groupByPath,
  key: (state) => state.key,
  describe(op) {
    const out = op.output === undefined ? "(no reply)" : brief(op.output);
    return op.input.op === "append"
      ? `append(${op.input.path}, ${brief(op.input.data)}) -> ${out}`
      : `read(${op.input.path}, from ${op.input.from}, limit ${op.input.limit}) -> ${out}`;
  },
};

// ------------------------------------------------------------------ locks

/**
 * A lock operation of session `client`: a waiting `acquire`, a
 * `tryAcquire`, a `release` under a token (0 withdraws a queued request),
 * an `inspect` (`get_lock`), or an `expire` (the session expired or was
 * closed: on `path`, or on every path when `path` is omitted).
 */
export type LockInput =
  | {
    readonly kind: "acquire" | "tryAcquire";
    readonly path: string;
    readonly client: string;
  }
  | {
    readonly kind: "release";
    readonly path: string;
    readonly client: string;
    readonly token: number;
  }
  | { readonly kind: "inspect"; readonly path: string; readonly client: string }
  | {
    readonly kind: "expire";
    readonly client: string;
    readonly path?: string | undefined;
  };

/**
 * What a lock operation answered: a grant `{ token }` (or `{ token: 0 }`,
 * with the holder if known, for a busy `tryAcquire`); `"ok"` or
 * `"not_holder"` for `release`; `{ holder, token }` for `inspect`; `"ok"`
 * for `expire`; or an error (no effect).
 */
export type LockOutput =
  | { readonly token: number; readonly holder?: string | undefined }
  | { readonly holder: string | null; readonly token: number }
  | "ok"
  | "not_holder"
  | ErrorOutput;

/** The lock model's state for one path. */
export interface LockState {
  /** The holding session, or `null` when the lock is free. */
  readonly holder: string | null;
  /** The holder's token; `undefined` when free or when the grant's reply never arrived. */
  readonly token: number | undefined;
  /** The greatest token known to have been granted on the path (0 before any). */
  readonly maxToken: number;
  /** Sessions that expired, sorted. */
  readonly expired: readonly string[];
}

function grant(
  state: LockState,
  client: string,
  token: number | undefined,
): LockState | undefined {
  if (state.holder !== null || state.expired.includes(client)) return undefined;
  if (token !== undefined && !(token > state.maxToken)) return undefined;
  return {
    holder: client,
    token,
    maxToken: token ?? state.maxToken,
    expired: state.expired,
  };
}

function free(state: LockState): LockState {
  return { ...state, holder: null, token: undefined };
}

function stepLock(
  state: LockState,
  input: LockInput,
  output: LockOutput | undefined,
): LockState | undefined {
  if (isError(output)) return state;
  switch (input.kind) {
    case "acquire":
    case "tryAcquire": {
      if (output === undefined) {
        if (input.kind === "tryAcquire" && state.holder !== null) return state;
        return grant(state, input.client, undefined);
      }
      if (typeof output !== "object" || output.token === undefined) {
        return undefined;
      }
      if (output.token > 0) return grant(state, input.client, output.token);
      // A busy answer: only a try, only while someone else holds the lock.
      if (input.kind !== "tryAcquire") return undefined;
      if (state.holder === null || state.holder === input.client) {
        return undefined;
      }
      const named = output.holder;
      if (named !== undefined && named !== null && named !== state.holder) {
        return undefined;
      }
      return state;
    }
    case "release": {
      if (input.token === 0) {
        return output === undefined || output === "ok" ||
            output === "not_holder"
          ? state
          : undefined;
      }
      const holds = state.holder === input.client &&
        (state.token === input.token ||
          (state.token === undefined && input.token > state.maxToken));
      if (output === undefined) return holds ? free(state) : state;
      if (output === "ok") {
        return holds
          ? { ...free(state), maxToken: Math.max(state.maxToken, input.token) }
          : undefined;
      }
      if (output === "not_holder") {
        // With an unknown token, the release may also have missed.
        return !holds || state.token === undefined ? state : undefined;
      }
      return undefined;
    }
    case "inspect": {
      if (output === undefined) return state;
      if (typeof output !== "object" || !("holder" in output)) return undefined;
      if ((output.holder ?? null) !== state.holder) return undefined;
      if (state.holder === null) return output.token === 0 ? state : undefined;
      if (state.token !== undefined) {
        return output.token === state.token ? state : undefined;
      }
      return output.token > state.maxToken
        ? { ...state, token: output.token, maxToken: output.token }
        : undefined;
    }
    case "expire": {
      if (output !== undefined && output !== "ok") return undefined;
      if (state.expired.includes(input.client)) return state;
      const next = state.holder === input.client ? free(state) : state;
      return {
        ...next,
        expired: [...state.expired, input.client].sort(),
      };
    }
  }
}

/**
 * The Oracle's locks, per path (see the module documentation for the
 * exact claim). Partitions the history by path; an `expire` without a path
 * goes to every path.
 *
 * @example Two holders at once fail; a handoff after release passes
 * ```ts
 * import {
 *   checkLinearizable,
 *   type HistoryOperation,
 * } from "../../../sim/linearizability.ts";
 * import { type LockInput, lockModel, type LockOutput } from "./_oracle_models.ts";
 * import assert from "node:assert/strict";
 *
 * type LockOp = HistoryOperation<LockInput, LockOutput>;
 * const acquire = (client: string, token: number, call: number, ret: number): LockOp => ({
 *   client,
 *   input: { kind: "acquire", path: "/l", client },
 *   output: { token },
 *   call,
 *   ret,
 * });
 * const a1 = acquire("a", 1, 0, 5);
 * const b2 = acquire("b", 2, 1, 30); // waited: granted 2 by 30
 * assert.equal(checkLinearizable([a1, b2], lockModel).ok, false);
 *
 * const release: LockOp = {
 *   client: "a",
 *   input: { kind: "release", path: "/l", client: "a", token: 1 },
 *   output: "ok",
 *   call: 10,
 *   ret: 20,
 * };
 * assert.equal(checkLinearizable([a1, release, b2], lockModel).ok, true);
 * ```
 */
export const lockModel: LinearizabilityModel<LockState, LockInput, LockOutput> =
  {
    init: () => ({ holder: null, token: undefined, maxToken: 0, expired: [] }),
    step: stepLock,
    partition: groupByPath,
    key: (s) =>
      `${s.holder === null ? "-" : JSON.stringify(s.holder)}|${
        s.token ?? "?"
      }|${s.maxToken}|${JSON.stringify(s.expired)}`,
    describe(op) {
      const out = op.output === undefined ? "(no reply)" : brief(op.output);
      const input = op.input;
      const where = input.path ?? "*";
      return input.kind === "release"
        ? `release(${where}, token ${input.token}) -> ${out}`
        : `${input.kind}(${where}) -> ${out}`;
    },
  };

// ---------------------------------------------------------------- fencing

/**
 * Thrown by {@linkcode FencingMonitor.grant} when a grant breaks fencing.
 */
export class FencingError extends Error {
  /** The lock's path. */
  readonly path: string;
  /** The offending token. */
  readonly token: number;
  /** The session it was granted to. */
  readonly holder: string;
  /** The greatest token granted on the path before. */
  readonly previous: number;

  /**
   * Creates the error.
   *
   * @param message What went wrong.
   * @param fields The grant and the previous token.
   */
  constructor(
    message: string,
    fields: { path: string; token: number; holder: string; previous: number },
  ) {
    super(message);
    this.name = "FencingError";
    this.path = fields.path;
    this.token = fields.token;
    this.holder = fields.holder;
    this.previous = fields.previous;
  }
}

/**
 * An online check of fencing tokens. Report every grant in the order the
 * Oracle decided them (for example as a replica applies its log): each new
 * token on a path must be greater than every earlier one, and a token is
 * never granted to two sessions. Reporting the same grant again (another
 * replica applying the same entry, or a client seeing its reply) is
 * allowed.
 *
 * Client-side observations arrive in any order (replies race), so feed
 * them through {@linkcode FencingMonitor.grant} only if they are already
 * known from the apply order, or check them at the end with
 * {@linkcode lockModel}.
 *
 * @example A token going backwards throws
 * ```ts
 * import { FencingError, FencingMonitor } from "./_oracle_models.ts";
 * import assert from "node:assert/strict";
 *
 * const monitor = new FencingMonitor();
 * monitor.grant("/l", 3, "a");
 * monitor.grant("/l", 7, "b");
 * monitor.grant("/l", 3, "a"); // the same grant again: fine
 * assert.equal(monitor.latest("/l"), 7);
 * assert.throws(() => monitor.grant("/l", 5, "c"), FencingError);
 * assert.throws(() => monitor.grant("/l", 7, "c"), FencingError);
 * ```
 */
export class FencingMonitor {
  #latest = new Map<string, number>();
  #holders = new Map<string, Map<number, string>>();
  #grants = 0;

  /**
   * Records a grant.
   *
   * @param path The lock's path.
   * @param token The fencing token granted.
   * @param holder The session it was granted to.
   * @throws {FencingError} if `token` was granted to another session, or is
   * new and not greater than the latest token on `path`.
   * @throws {RangeError} if `token` is not a positive integer.
   */
  grant(path: string, token: number, holder: string): void {
    if (!Number.isSafeInteger(token) || token < 1) {
      throw new RangeError(
        `Invalid fencing token ${token} on ${
          JSON.stringify(path)
        }: must be a positive integer`,
      );
    }
    let holders = this.#holders.get(path);
    if (holders === undefined) this.#holders.set(path, holders = new Map());
    const previous = this.#latest.get(path) ?? 0;
    const known = holders.get(token);
    if (known !== undefined) {
      if (known === holder) return;
      throw new FencingError(
        `Lock ${JSON.stringify(path)}: token ${token} granted to ${
          JSON.stringify(holder)
        } was already granted to ${JSON.stringify(known)}`,
        { path, token, holder, previous },
      );
    }
    if (token <= previous) {
      throw new FencingError(
        `Lock ${JSON.stringify(path)}: token ${token} granted to ${
          JSON.stringify(holder)
        } is not greater than the previous grant's token ${previous}`,
        { path, token, holder, previous },
      );
    }
    holders.set(token, holder);
    this.#latest.set(path, token);
    this.#grants++;
  }

  /**
   * The latest token granted on a path.
   *
   * @param path The lock's path.
   * @returns The token, or 0 if none was granted.
   */
  latest(path: string): number {
    return this.#latest.get(path) ?? 0;
  }

  /**
   * The session a token was granted to.
   *
   * @param path The lock's path.
   * @param token A fencing token.
   * @returns The session, or `undefined` if that token was not granted there.
   */
  holderOf(path: string, token: number): string | undefined {
    return this.#holders.get(path)?.get(token);
  }

  /** How many distinct grants were recorded. */
  get grants(): number {
    return this.#grants;
  }
}
