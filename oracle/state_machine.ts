/**
 * The Oracle's replicated state machine: event channels, sessions, locks,
 * group views and this group's place in a tree of Oracle groups, changed
 * only by applying committed log entries.
 *
 * It is pure and deterministic: no I/O, no clock, no randomness. Replicas
 * that apply the same entries in the same order hold the same state and
 * produce the same outputs, which {@linkcode OracleStateMachine.digest}
 * lets a checker confirm.
 *
 * @example Open a session, append an event, read it back
 * ```ts
 * import { OracleStateMachine } from "./state_machine.ts";
 * import assert from "node:assert/strict";
 *
 * const sm = new OracleStateMachine();
 * sm.apply(1, {
 *   batch: [
 *     { session: "c1", req: 1, acked: 0, op: { op: "open_session", ttlMs: 10_000 } },
 *     { session: "c1", req: 2, acked: 0, op: { op: "append", path: "/chat", data: "hi" } },
 *   ],
 * });
 * const read = sm.read("c1", { op: "read", path: "/chat", from: 1, limit: 10 });
 * assert.deepEqual(read, {
 *   ok: { events: [{ path: "/chat", seq: 1, rev: 1, data: "hi" }], first: 1, next: 2 },
 * });
 * ```
 *
 * @module
 */

import {
  type ChannelEvent,
  type ClientRequest,
  type Delegation,
  type EntryCommand,
  type Json,
  type OpResult,
  type OracleErrorResult,
  type OracleTree,
  ownerPath,
  type ReadOp,
  TREE_CHANNEL,
  type WriteOp,
} from "./commands.ts";
import { isReserved, isUnder, pathError } from "./path.ts";
import {
  type ChannelSnapshot,
  ChannelStore,
  copyEventData,
  freezeJson,
} from "./_sm_channels.ts";
import { type GroupSnapshot, GroupTable } from "./_sm_groups.ts";
import { opPath } from "./_op_path.ts";
import { listPage } from "./_sm_list.ts";
import { type Grant, type LockSnapshot, LockTable } from "./_sm_locks.ts";
import {
  checkReadOp,
  checkSessionId,
  checkWriteOp,
  fail,
  MAX_READ_LIMIT,
  quote,
  type Session,
  type SessionSnapshot,
  SessionTable,
} from "./_sm_sessions.ts";
import { type TreeSnapshot, TreeTable } from "./_sm_tree.ts";

/** Limits of an {@linkcode OracleStateMachine}. Every replica must use the same. */
export interface StateMachineOptions {
  /**
   * Events retained per channel; older ones are dropped automatically and
   * reads of them report `compacted`. Default 10,000.
   */
  retainEvents?: number | undefined;
  /** The largest event data, in bytes of its JSON text. Default 65,536. */
  maxEventBytes?: number | undefined;
  /** The most live sessions; more `open_session` requests get `overloaded`. Default 100,000. */
  maxSessions?: number | undefined;
  /**
   * The most cached results per session (requests not yet acknowledged,
   * waiting lock requests included); more get `overloaded`. Default 1,024.
   */
  maxPendingReplies?: number | undefined;
  /**
   * How many ended session ids are remembered so they cannot be reopened;
   * the oldest are forgotten first. Default 100,000.
   */
  maxEndedSessions?: number | undefined;
  /**
   * Whether this group is the root of its tree of Oracle groups (default
   * `true`). A root owns every path it did not delegate; a child owns only
   * the prefixes it adopted (`{ adopt }` entries), minus those it
   * delegated further. Operations on paths a group does not own get
   * `moved` or `not_owner`.
   */
  treeRoot?: boolean | undefined;
}

/** One effect of applying a log entry, for the replica to act on. */
export type ApplyOutput =
  /** A reply, sent by whichever replica holds the client's request. */
  | {
    readonly kind: "reply";
    readonly session: string;
    readonly req: number;
    readonly result: OpResult;
  }
  /** An appended event (view events included), for subscriptions. */
  | { readonly kind: "event"; readonly event: ChannelEvent }
  /** A session ended: it expired or was closed. */
  | { readonly kind: "expired"; readonly session: string }
  /** This group delegated a subtree: subscriptions under it must end (`moved`). */
  | { readonly kind: "delegated"; readonly delegation: Delegation };

const SNAPSHOT_VERSION = 2;

interface SnapshotBody {
  v: number;
  applied: number;
  rev: number;
  channels: ChannelSnapshot[];
  tokens: number;
  locks: LockSnapshot[];
  live: SessionSnapshot[];
  ended: string[];
  groups: GroupSnapshot[];
  /** Absent from version 1 snapshots (taken before trees: nothing delegated). */
  tree?: TreeSnapshot;
}

function option(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `Invalid state machine option "${name}": expected an integer >= ${min}, got ${value}`,
    );
  }
  return value;
}

/** Results carry interfaces and readonly arrays that are JSON but not typed `Json`. */
function json(value: unknown): Json {
  return value as Json;
}

/** A 64-bit (two 32-bit lanes) non-cryptographic hash of a string, as 16 hex digits. */
function hash64(text: string): string {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h2 >>> 0).toString(16).padStart(8, "0") +
    (h1 >>> 0).toString(16).padStart(8, "0");
}

/**
 * The Oracle's state: channels, sessions, locks and group views.
 *
 * Writes arrive as committed log entries through
 * {@linkcode OracleStateMachine.apply}, which returns the replies, events
 * and session ends they cause. Reads
 * ({@linkcode OracleStateMachine.read}) never change state.
 *
 * Exactly once: per session, the results of requests numbered at or above
 * the client's `acked` are cached; a retried request gets its cached reply
 * again and is not re-applied, one numbered below `acked` gets
 * `duplicate`. Closing a session frees its cache, so a retried
 * `close_session` gets `session_expired`: for that request it means done.
 *
 * Locks: a waiting `lock` request gets no reply until granted; its grant
 * `{ token }` is sent for the original request number (a retry while it
 * waits outputs nothing). `unlock` with token 0 withdraws a waiting request:
 * the unlock gets `null` and the withdrawn request gets
 * `{ token: 0, holder, withdrawn: true }` (not acquired).
 *
 * Groups: changes are ordered into flush-then-view proposals (see
 * `join`, `leave`, `remove`, `flushed` in `commands.ts`); a `join` or
 * `leave` made while a proposal is in flight waits for it to install, and
 * its result `viewId` is then the lowest id the change can take effect in
 * (a removal meanwhile restarts the proposal under a higher id): the
 * change takes effect in the first view at or above it.
 *
 * Limits and memory: every channel that ever had an event keeps a small
 * record (its next sequence number) so numbering never restarts; groups
 * keep their last view id and the names removed from them, forever; the
 * ids of ended sessions are remembered up to `maxEndedSessions`.
 *
 * @example Two sessions queue for a lock; closing the holder grants the waiter
 * ```ts
 * import { OracleStateMachine } from "./state_machine.ts";
 * import assert from "node:assert/strict";
 *
 * const sm = new OracleStateMachine();
 * const open = (session: string) => ({ session, req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } as const });
 * sm.apply(1, { batch: [open("a"), open("b")] });
 * sm.apply(2, { batch: [
 *   { session: "a", req: 2, acked: 0, op: { op: "lock", path: "/leader", wait: true } },
 *   { session: "b", req: 2, acked: 0, op: { op: "lock", path: "/leader", wait: true } },
 * ] });
 * const out = sm.apply(3, { expire: ["a"] });
 * assert.deepEqual(out, [
 *   { kind: "reply", session: "b", req: 2, result: { ok: { token: 2 } } },
 *   { kind: "expired", session: "a" },
 * ]);
 * ```
 */
export class OracleStateMachine {
  readonly #maxEventBytes: number;
  readonly #maxSessions: number;
  readonly #maxPending: number;
  readonly #retain: number;
  readonly #maxEnded: number;
  readonly #root: boolean;
  #applied = 0;
  #channels: ChannelStore;
  #locks: LockTable;
  #sessions: SessionTable;
  #groups: GroupTable;
  #tree: TreeTable;
  /** Where outputs of the entry being applied go. */
  #out: ApplyOutput[] = [];

  /**
   * Creates an empty state machine (applied index 0).
   *
   * @param options Limits; every replica must use the same.
   * @throws {RangeError} When an option is not a positive integer.
   */
  constructor(options?: StateMachineOptions) {
    this.#retain = option("retainEvents", options?.retainEvents, 10_000, 1);
    this.#maxEventBytes = option(
      "maxEventBytes",
      options?.maxEventBytes,
      65_536,
      4,
    );
    this.#maxSessions = option("maxSessions", options?.maxSessions, 100_000, 1);
    this.#maxPending = option(
      "maxPendingReplies",
      options?.maxPendingReplies,
      1_024,
      1,
    );
    this.#maxEnded = option(
      "maxEndedSessions",
      options?.maxEndedSessions,
      100_000,
      0,
    );
    this.#root = options?.treeRoot ?? true;
    this.#tree = new TreeTable(this.#root);
    this.#channels = new ChannelStore(this.#retain);
    this.#locks = new LockTable();
    this.#sessions = new SessionTable(this.#maxEnded);
    this.#groups = new GroupTable((path, data) =>
      this.#appendEvent(path, data)
    );
  }

  /** The index of the last applied log entry (0 before the first). */
  get appliedIndex(): number {
    return this.#applied;
  }

  /**
   * Applies one committed log entry. Entries at or below
   * {@linkcode OracleStateMachine.appliedIndex} are ignored (they were
   * applied already), as are malformed parts of an entry that cannot be
   * answered. Never throws on bad commands: they get error replies.
   *
   * @param index The entry's log index, increasing.
   * @param command The entry's command (`null`, a leader's no-op, is accepted).
   * @returns The replies, events and session ends the entry caused, in order.
   * @throws {TypeError} When `index` is not a non-negative safe integer.
   *
   * @example A retried request is answered from the cache, not applied twice
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * const open = { session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } } as const;
   * const append = { session: "c", req: 2, acked: 1, op: { op: "append", path: "/log", data: 1 } } as const;
   * sm.apply(1, { batch: [open, append] });
   * const again = sm.apply(2, { batch: [append] });
   * assert.deepEqual(again, [
   *   { kind: "reply", session: "c", req: 2, result: { ok: { seq: 1, rev: 1 } } },
   * ]);
   * ```
   */
  apply(index: number, command: EntryCommand | null): ApplyOutput[] {
    if (!Number.isSafeInteger(index) || index < 0) {
      throw new TypeError(
        `Cannot apply log entry: index must be a non-negative safe integer, got ${index}`,
      );
    }
    if (index <= this.#applied) return [];
    this.#applied = index;
    const out: ApplyOutput[] = [];
    this.#out = out;
    if (command === null || typeof command !== "object") return out;
    if ("batch" in command && Array.isArray(command.batch)) {
      for (const request of command.batch) this.#request(request);
    } else if ("expire" in command && Array.isArray(command.expire)) {
      for (const id of command.expire) {
        if (typeof id === "string") this.#end(id);
      }
    } else if ("adopt" in command && Array.isArray(command.adopt)) {
      if (!this.#root) {
        const floor = command.tokens;
        if (Number.isSafeInteger(floor) && floor! > 0) {
          this.#locks.raiseTokens(floor!);
        }
        for (const prefix of command.adopt) this.#adopt(prefix);
      }
    }
    this.#out = [];
    return out;
  }

  /** A child adopts a prefix its parent delegated to it; skips invalid, reserved and owned ones. */
  #adopt(prefix: unknown): void {
    if (
      pathError(prefix) !== undefined || isReserved(prefix as string) ||
      this.#tree.adopted(prefix as string)
    ) return;
    this.#tree.adopt(prefix as string);
    this.#appendEvent(TREE_CHANNEL, {
      type: "adopt",
      prefix: prefix as string,
    });
  }

  /** `{ error }` when this group does not own the path `op` acts on. */
  #ownership(op: WriteOp | ReadOp): { error: OracleErrorResult } | undefined {
    const path = opPath(op);
    const error = path === undefined ? undefined : this.#tree.check(path);
    return error === undefined ? undefined : { error };
  }

  /**
   * Names state this group holds at or under `prefix` (a channel that ever
   * had an event, view channels included; a lock; a group), if any. Scans
   * every channel, lock and group: only a delegation asks.
   */
  #stateUnder(prefix: string): string | undefined {
    const under = (path: string) => isUnder(prefix, path);
    const channel = this.#channels.findPath((path) => under(ownerPath(path)));
    if (channel !== undefined) return `channel ${quote(channel)}`;
    const lock = this.#locks.findPath(under);
    if (lock !== undefined) return `lock ${quote(lock)}`;
    const group = this.#groups.findPath(under);
    return group === undefined ? undefined : `group ${quote(group)}`;
  }

  #reply(session: string, req: number, result: OpResult): void {
    this.#out.push({ kind: "reply", session, req, result });
  }

  #appendEvent(path: string, data: Json): ChannelEvent {
    // View events share arrays with group state: frozen, nobody mutates them.
    const event = this.#channels.append(path, freezeJson(data));
    this.#out.push({ kind: "event", event });
    return event;
  }

  #grant(grant: Grant): void {
    const result: OpResult = { ok: { token: grant.token } };
    const session = this.#sessions.get(grant.session);
    if (session?.results.has(grant.req)) {
      session.results.set(grant.req, result);
    }
    this.#reply(grant.session, grant.req, result);
  }

  #request(request: ClientRequest): void {
    if (request === null || typeof request !== "object") return;
    const { session: id, req, acked, op } = request;
    if (typeof id !== "string" || !Number.isSafeInteger(req)) return;
    if (!checkSessionId(id) || req < 1) {
      this.#reply(
        id,
        req,
        fail(
          "invalid",
          `Request ${req} of session ${
            quote(id)
          }: the session id must have 1 to 128 characters and the request number be >= 1`,
        ),
      );
      return;
    }
    if (!Number.isSafeInteger(acked) || acked < 0) {
      this.#reply(
        id,
        req,
        fail("invalid", `Field "acked" must be an integer >= 0, got ${acked}`),
      );
      return;
    }
    if (op === null || typeof op !== "object" || typeof op.op !== "string") {
      this.#reply(
        id,
        req,
        fail("invalid", `Field "op" must name an operation`),
      );
      return;
    }
    let session = this.#sessions.get(id);
    if (session === undefined) {
      if (op.op !== "open_session" || this.#sessions.isEnded(id)) {
        this.#reply(
          id,
          req,
          fail(
            "session_expired",
            `Session ${quote(id)} ${
              this.#sessions.isEnded(id) ? "has ended" : "does not exist"
            }: open a new session under a new id`,
          ),
        );
        return;
      }
      const invalid = checkWriteOp(op);
      if (invalid !== undefined) return this.#reply(id, req, invalid);
      if (this.#sessions.size >= this.#maxSessions) {
        this.#reply(
          id,
          req,
          fail(
            "overloaded",
            `Cannot open session ${
              quote(id)
            }: ${this.#maxSessions} sessions are live`,
          ),
        );
        return;
      }
      session = this.#sessions.open(id, op.ttlMs);
    }
    // Dedupe: forget acknowledged results, replay cached ones.
    if (acked > session.acked) {
      session.acked = acked;
      for (const n of session.results.keys()) {
        if (n < acked) session.results.delete(n);
      }
    }
    if (req < session.acked) {
      this.#reply(
        id,
        req,
        fail(
          "duplicate",
          `Request ${req} of session ${
            quote(id)
          } was already answered and acknowledged (acked ${session.acked})`,
        ),
      );
      return;
    }
    if (session.results.has(req)) {
      const cached = session.results.get(req);
      if (cached != null) this.#reply(id, req, cached);
      return;
    }
    if (session.results.size >= this.#maxPending) {
      this.#reply(
        id,
        req,
        fail(
          "overloaded",
          `Session ${
            quote(id)
          } has ${session.results.size} unacknowledged requests, at most ${this.#maxPending} allowed`,
        ),
      );
      return;
    }
    if (op.op === "close_session") {
      this.#reply(id, req, { ok: null });
      this.#end(id);
      return;
    }
    const result = checkWriteOp(op) ?? this.#ownership(op) ??
      this.#write(id, session, req, op);
    session.results.set(req, result);
    if (result !== null) this.#reply(id, req, result);
  }

  /** Applies a checked write; `null` when the reply comes later (a queued lock). */
  #write(
    id: string,
    session: Session,
    req: number,
    op: WriteOp,
  ): OpResult | null {
    switch (op.op) {
      case "open_session":
        session.ttlMs = op.ttlMs;
        return { ok: { session: id, ttlMs: op.ttlMs } };
      case "append": {
        const copy = copyEventData(op.data, this.#maxEventBytes);
        if ("tooLarge" in copy) return fail("too_large", copy.tooLarge);
        if ("invalid" in copy) return fail("invalid", copy.invalid);
        const event = this.#appendEvent(op.path, copy.data);
        return { ok: { seq: event.seq, rev: event.rev } };
      }
      case "truncate":
        return { ok: { first: this.#channels.truncate(op.path, op.before) } };
      case "lock": {
        const outcome = this.#locks.lock(op.path, id, req, op.wait);
        if ("granted" in outcome) return { ok: { token: outcome.granted } };
        if ("busy" in outcome) {
          return { ok: { token: 0, holder: outcome.busy } };
        }
        if ("queued" in outcome) return null;
        return fail(
          "lock_owned",
          `Session ${quote(id)} already ${
            outcome.owned === "holder" ? "holds" : "waits for"
          } lock ${quote(op.path)}`,
        );
      }
      case "unlock": {
        const outcome = this.#locks.unlock(op.path, id, op.token);
        if ("notHolder" in outcome) {
          return fail("not_holder", outcome.notHolder);
        }
        if ("withdrawn" in outcome) {
          const result: OpResult = {
            ok: { token: 0, holder: outcome.holder, withdrawn: true },
          };
          const waiter = outcome.withdrawn;
          if (session.results.has(waiter.req)) {
            session.results.set(waiter.req, result);
          }
          this.#reply(id, waiter.req, result);
        } else if (outcome.released !== undefined) {
          this.#grant(outcome.released);
        }
        return { ok: null };
      }
      case "join":
      case "leave":
      case "remove": {
        const result = op.op === "join"
          ? this.#groups.join(op.group, op.member, id)
          : op.op === "leave"
          ? this.#groups.leave(op.group, op.member, id)
          : this.#groups.remove(op.group, op.member, op.viewId);
        return "error" in result ? result : { ok: { viewId: result.viewId } };
      }
      case "flushed":
        return this.#groups.flushed(op.group, op.viewId, op.member, id) ??
          { ok: null };
      case "gbcast": {
        const result = this.#groups.gbcast(
          op.group,
          op.member,
          id,
          op.seq,
          op.data,
        );
        return "error" in result ? result : { ok: { viewId: result.viewId } };
      }
      case "delegate": {
        const plan = this.#tree.planDelegation(
          op,
          (prefix) => this.#stateUnder(prefix),
        );
        if ("error" in plan) return plan;
        if ("add" in plan) {
          const delegation = plan.add;
          this.#tree.delegate(delegation);
          this.#appendEvent(
            TREE_CHANNEL,
            json({ type: "delegate", ...delegation }),
          );
          this.#out.push({ kind: "delegated", delegation });
        }
        return { ok: null };
      }
      default:
        return fail(
          "unknown_op",
          `Unknown write operation ${quote((op as { op: string }).op)}`,
        );
    }
  }

  /** Ends a live session: releases its locks, forces its members out, frees its cache. */
  #end(id: string): void {
    if (!this.#sessions.end(id)) return;
    for (const grant of this.#locks.endSession(id)) this.#grant(grant);
    this.#groups.endSession(id);
    this.#out.push({ kind: "expired", session: id });
  }

  /**
   * Serves a read (after the replica made sure it reflects every write
   * committed before the read arrived). Never changes state.
   *
   * @param session The reader's session, checked to be live; `undefined` for none.
   * @param op The read.
   * @returns `{ events, first, next }` for `read` (or `compacted` with
   *   `first`), `{ holder, token, waiters }` for `get_lock`,
   *   `{ view, proposal }` for `get_view`, an `OracleTree` for `get_tree`,
   *   `{ ended }` for `ended_sessions`, a `ListPage` (`{ items, next }`)
   *   for `list`; or an error (`invalid` or `invalid_path` for a bad
   *   field, `moved` or `not_owner` for a path or prefix this group does
   *   not own).
   *
   * @example Read a free lock
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * assert.deepEqual(sm.read(undefined, { op: "get_lock", path: "/leader" }), {
   *   ok: { holder: null, token: 0, waiters: 0 },
   * });
   * ```
   *
   * @example List the locks under a prefix, one page at a time
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * const lock = (req: number, path: string) => ({ session: "c", req, acked: 0, op: { op: "lock", path, wait: false } as const });
   * sm.apply(1, { batch: [
   *   { session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } },
   *   lock(2, "/apps/b"), lock(3, "/apps/a"), lock(4, "/other"),
   * ] });
   * assert.deepEqual(sm.read(undefined, { op: "list", kind: "locks", prefix: "/apps", limit: 1 }), {
   *   ok: { items: [{ path: "/apps/a", holder: "c", token: 2, waiters: 0 }], next: "/apps/a" },
   * });
   * assert.deepEqual(sm.read(undefined, { op: "list", kind: "locks", prefix: "/apps", after: "/apps/a" }), {
   *   ok: { items: [{ path: "/apps/b", holder: "c", token: 1, waiters: 0 }], next: null },
   * });
   * ```
   */
  read(session: string | undefined, op: ReadOp): OpResult {
    if (session !== undefined && this.#sessions.get(session) === undefined) {
      return fail(
        "session_expired",
        `Session ${quote(String(session))} does not exist or has ended`,
      );
    }
    if (op === null || typeof op !== "object") {
      return fail("invalid", `Field "op" must name an operation`);
    }
    const refused = checkReadOp(op) ?? this.#ownership(op);
    if (refused !== undefined) return refused;
    switch (op.op) {
      case "read": {
        const read = this.#channels.from(op.path, op.from, op.limit);
        if ("compacted" in read) {
          return this.#compacted(op.path, op.from, read.compacted);
        }
        return { ok: json(read) };
      }
      case "get_lock":
        return { ok: this.#locks.get(op.path) };
      case "get_view":
        return { ok: json(this.#groups.get(op.group)) };
      case "get_tree":
        return { ok: json(this.tree()) };
      case "get_status":
        // The replica adds what only it knows: leader, term and indexes.
        return { ok: { sessions: this.#sessions.size } };
      case "ended_sessions":
        return {
          ok: {
            ended: op.sessions.filter((id) =>
              this.#sessions.get(id) === undefined
            ),
          },
        };
      case "list":
        return {
          ok: json(listPage({
            locks: this.#locks,
            channels: this.#channels,
            groups: this.#groups,
          }, op)),
        };
    }
  }

  #compacted(
    path: string,
    from: number,
    first: number,
  ): { error: OracleErrorResult } {
    return fail(
      "compacted",
      `Cannot read ${
        quote(path)
      } from ${from}: truncated, first available is ${first}`,
      first,
    );
  }

  /**
   * Retained events of one channel from sequence number `seq`, for
   * subscriptions.
   *
   * @param path A channel path (one never written reads as empty).
   * @param seq The first sequence number wanted.
   * @param limit The most events returned.
   * @returns The events with the first retained sequence number and the
   *   one to read from next, or `{ compacted: first }` when `seq` was
   *   truncated.
   *
   * @example Resume after compaction
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine({ retainEvents: 2 });
   * const append = (req: number) => ({ session: "c", req, acked: 0, op: { op: "append", path: "/a", data: req } as const });
   * sm.apply(1, { batch: [
   *   { session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } },
   *   append(2), append(3), append(4),
   * ] });
   * assert.deepEqual(sm.eventsFrom("/a", 1, 10), { compacted: 2 });
   * const read = sm.eventsFrom("/a", 2, 10);
   * assert.ok(!("compacted" in read) && read.events.length === 2 && read.next === 4);
   * ```
   */
  eventsFrom(
    path: string,
    seq: number,
    limit: number,
  ): { events: ChannelEvent[]; first: number; next: number } | {
    compacted: number;
  } {
    return this.#channels.from(path, seq, clampLimit(limit));
  }

  /**
   * Retained events of every channel under `prefix` (`/` for all, system
   * channels included) from revision `rev`, merged by revision, for prefix
   * subscriptions.
   *
   * @param prefix A path or `/`.
   * @param rev The first revision wanted.
   * @param limit The most events returned.
   * @returns The events and the revision to read from next, or
   *   `{ compacted: first }` when a channel under the prefix dropped an
   *   event at or after `rev` (`first` is the revision from which the
   *   merged stream is complete).
   *
   * @example Events of two channels, in revision order
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * const append = (req: number, path: string) => ({ session: "c", req, acked: 0, op: { op: "append", path, data: req } as const });
   * sm.apply(1, { batch: [
   *   { session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } },
   *   append(2, "/a/x"), append(3, "/a/y"), append(4, "/b"), append(5, "/a/x"),
   * ] });
   * const read = sm.eventsUnder("/a", 1, 10);
   * assert.ok(!("compacted" in read));
   * assert.deepEqual(read.events.map((e) => e.rev), [1, 2, 4]);
   * assert.equal(read.next, 5);
   * ```
   */
  eventsUnder(
    prefix: string,
    rev: number,
    limit: number,
  ): { events: ChannelEvent[]; next: number } | { compacted: number } {
    return this.#channels.under(prefix, rev, clampLimit(limit));
  }

  /**
   * The live sessions with their time to live: the leader runs their expiry
   * timers and proposes `{ expire: [...] }` for those that lapse.
   *
   * @returns The live sessions, in the order they were opened.
   *
   * @example List sessions
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * sm.apply(1, { batch: [{ session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } }] });
   * assert.deepEqual(sm.sessions(), [{ session: "c", ttlMs: 5_000 }]);
   * ```
   */
  sessions(): { session: string; ttlMs: number }[] {
    return this.#sessions.list();
  }

  /**
   * Tells whether a session is live.
   *
   * @param id A session id.
   * @returns `true` when the session was opened and has not ended.
   *
   * @example A closed session is gone
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * sm.apply(1, { batch: [{ session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } }] });
   * assert.ok(sm.hasSession("c"));
   * sm.apply(2, { batch: [{ session: "c", req: 2, acked: 1, op: { op: "close_session" } }] });
   * assert.ok(!sm.hasSession("c"));
   * ```
   */
  hasSession(id: string): boolean {
    return this.#sessions.get(id) !== undefined;
  }

  /**
   * The time to live a live session was opened with.
   *
   * @param id A session id.
   * @returns Its TTL in milliseconds, or `undefined` if it is not live.
   *
   * @example A session's TTL
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * sm.apply(1, { batch: [{ session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } }] });
   * assert.equal(sm.sessionTtl("c"), 5_000);
   * assert.equal(sm.sessionTtl("d"), undefined);
   * ```
   */
  sessionTtl(id: string): number | undefined {
    return this.#sessions.get(id)?.ttlMs;
  }

  /**
   * Whether this group owns `path` (the check every path operation goes
   * through; a view channel goes with its group, other `/_sys` paths are
   * owned by every group).
   *
   * @param path A valid path, or `/`.
   * @returns `undefined` when this group owns it; a `moved` error naming
   *   the delegation when it lies at or under a delegated prefix; a
   *   `not_owner` error when this child group adopted no prefix at or
   *   above it.
   *
   * @example A delegated path moved
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * sm.apply(1, { batch: [
   *   { session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } },
   *   { session: "c", req: 2, acked: 0, op: { op: "delegate", prefix: "/a", group: "child", replicas: { c1: "10.0.0.1:7000" } } },
   * ] });
   * assert.equal(sm.owner("/a/b")?.code, "moved");
   * assert.equal(sm.owner("/a/b")?.delegation?.group, "child");
   * assert.equal(sm.owner("/b"), undefined);
   * ```
   */
  owner(path: string): OracleErrorResult | undefined {
    return this.#tree.check(path);
  }

  /**
   * The prefixes this group owns: `["/"]` for a root, the adopted ones,
   * sorted, for a child (delegations made are not subtracted).
   *
   * @returns The owned prefixes, sorted.
   *
   * @example A child owns what it adopted
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine({ treeRoot: false });
   * assert.deepEqual(sm.ownedPrefixes(), []);
   * sm.apply(1, { adopt: ["/b", "/a"] });
   * assert.deepEqual(sm.ownedPrefixes(), ["/a", "/b"]);
   * assert.deepEqual(new OracleStateMachine().ownedPrefixes(), ["/"]);
   * ```
   */
  ownedPrefixes(): string[] {
    return this.#tree.owned();
  }

  /**
   * This group's place in the tree, as `get_tree` reads it.
   *
   * @returns The owned prefixes, the delegations made (both sorted) and
   * the last fencing token granted.
   *
   * @example A root that delegated a prefix
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * sm.apply(1, { batch: [
   *   { session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } },
   *   { session: "c", req: 2, acked: 0, op: { op: "delegate", prefix: "/a", group: "A", replicas: { a1: "h:1" } } },
   * ] });
   * assert.deepEqual(sm.tree(), {
   *   owns: ["/"],
   *   delegations: [{ prefix: "/a", group: "A", replicas: { a1: "h:1" } }],
   *   tokens: 0,
   * });
   * ```
   */
  tree(): OracleTree {
    return { ...this.#tree.tree(), tokens: this.#locks.tokens };
  }

  /**
   * The ids of the live sessions, in the order they were opened.
   *
   * @returns Session ids.
   *
   * @example One live session
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * sm.apply(1, { batch: [{ session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } }] });
   * assert.deepEqual(sm.liveSessions(), ["c"]);
   * ```
   */
  liveSessions(): string[] {
    return this.#sessions.ids();
  }

  #body(): SnapshotBody {
    const channels = this.#channels.toSnapshot();
    const locks = this.#locks.toSnapshot();
    const sessions = this.#sessions.toSnapshot();
    return {
      v: SNAPSHOT_VERSION,
      applied: this.#applied,
      rev: channels.rev,
      channels: channels.channels,
      tokens: locks.tokens,
      locks: locks.locks,
      live: sessions.live,
      ended: sessions.ended,
      groups: this.#groups.toSnapshot(),
      tree: this.#tree.toSnapshot(),
    };
  }

  /**
   * Serializes the whole state (applied index, channels, revisions, fencing
   * counter, sessions and their dedupe tables, locks, groups, prefixes
   * adopted and delegated) as UTF-8 JSON.
   *
   * @returns Bytes {@linkcode OracleStateMachine.restore} turns back into an
   *   identical state machine.
   *
   * @example Round trip
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const sm = new OracleStateMachine();
   * sm.apply(1, { batch: [{ session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } }] });
   * const copy = OracleStateMachine.restore(sm.snapshot());
   * assert.equal(copy.digest(), sm.digest());
   * assert.equal(copy.appliedIndex, 1);
   * ```
   */
  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.#body()));
  }

  /**
   * Rebuilds a state machine from {@linkcode OracleStateMachine.snapshot}'s
   * bytes.
   *
   * @param bytes A snapshot.
   * @param options Limits (as for the constructor); every replica must use the same.
   * @returns A state machine whose state, digest and future outputs equal the original's.
   * @throws {SyntaxError} When the bytes are not a snapshot of this
   *   version or of version 1 (taken before trees: restored with nothing
   *   adopted or delegated).
   * @throws {RangeError} When an option is not a positive integer.
   *
   * @example Restore refuses garbage
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * assert.throws(() => OracleStateMachine.restore(new Uint8Array([1, 2, 3])), SyntaxError);
   * ```
   */
  static restore(
    bytes: Uint8Array,
    options?: StateMachineOptions,
  ): OracleStateMachine {
    let body: SnapshotBody;
    try {
      body = JSON.parse(
        new TextDecoder("utf-8", { fatal: true }).decode(bytes),
      );
    } catch (error) {
      throw new SyntaxError(
        `Cannot restore the Oracle state machine: the snapshot is not UTF-8 JSON (${bytes.length} bytes)`,
        { cause: error },
      );
    }
    if (
      body === null || typeof body !== "object" ||
      (body.v !== SNAPSHOT_VERSION && body.v !== 1) ||
      !Number.isSafeInteger(body.applied) ||
      !Array.isArray(body.channels) || !Array.isArray(body.locks) ||
      !Array.isArray(body.live) || !Array.isArray(body.ended) ||
      !Array.isArray(body.groups) ||
      (body.v === SNAPSHOT_VERSION &&
        (body.tree === null || typeof body.tree !== "object" ||
          !Array.isArray(body.tree.owns) ||
          !Array.isArray(body.tree.delegations)))
    ) {
      throw new SyntaxError(
        `Cannot restore the Oracle state machine: not a version 1 or ${SNAPSHOT_VERSION} snapshot`,
        { cause: body },
      );
    }
    const sm = new OracleStateMachine(options);
    sm.#applied = body.applied;
    sm.#channels = ChannelStore.fromSnapshot(sm.#retain, {
      rev: body.rev,
      channels: body.channels,
    });
    sm.#locks = LockTable.fromSnapshot({
      tokens: body.tokens,
      locks: body.locks,
    });
    sm.#sessions = SessionTable.fromSnapshot(sm.#maxEnded, {
      live: body.live,
      ended: body.ended,
    });
    sm.#groups = GroupTable.fromSnapshot(
      (path, data) => sm.#appendEvent(path, data),
      body.groups,
    );
    sm.#tree = TreeTable.fromSnapshot(sm.#root, body.tree);
    return sm;
  }

  /**
   * A deterministic fingerprint of the whole state, for checkers comparing
   * replicas: equal states give equal digests on every platform. It hashes
   * the snapshot, so it costs as much as taking one.
   *
   * @returns The applied index and a 64-bit hash, as `"<index>:<16 hex digits>"`.
   *
   * @example Same entries, same digest
   * ```ts
   * import { OracleStateMachine } from "./state_machine.ts";
   * import assert from "node:assert/strict";
   *
   * const a = new OracleStateMachine();
   * const b = new OracleStateMachine();
   * const entry = { batch: [{ session: "c", req: 1, acked: 0, op: { op: "open_session", ttlMs: 5_000 } } as const] };
   * a.apply(1, entry);
   * b.apply(1, entry);
   * assert.equal(a.digest(), b.digest());
   * ```
   */
  digest(): string {
    return `${this.#applied}:${hash64(JSON.stringify(this.#body()))}`;
  }
}

function clampLimit(limit: number): number {
  return Number.isFinite(limit)
    ? Math.max(0, Math.min(Math.floor(limit), MAX_READ_LIMIT))
    : MAX_READ_LIMIT;
}
