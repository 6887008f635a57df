/**
 * The Oracle state machine's sessions and their dedupe tables, the limits
 * on request fields, and the field checks every operation goes through
 * before it touches state.
 *
 * @module
 */

import {
  LIST_KINDS,
  type ListKind,
  MAX_GBCAST_DATA_LENGTH,
  MAX_LIST_LIMIT,
  type OpResult,
  type OracleErrorCode,
  type OracleErrorResult,
  type ReadOp,
  type WriteOp,
} from "./commands.ts";
import { isReserved, pathError } from "./path.ts";

/** The shortest session time to live, in milliseconds. */
export const MIN_TTL_MS = 1_000;
/** The longest session time to live, in milliseconds. */
export const MAX_TTL_MS = 300_000;
/** The longest session id, in characters. */
export const MAX_SESSION_ID_LENGTH = 128;
/** The longest group member name, in characters. */
export const MAX_MEMBER_LENGTH = 256;
/** The longest removal reason, in characters. */
export const MAX_REASON_LENGTH = 1_024;
/** The most events one read returns. */
export const MAX_READ_LIMIT = 1_000;
/** The longest Oracle group name in a delegation, in characters. */
export const MAX_TREE_GROUP_LENGTH = 128;
/** The most replicas a delegation names. */
export const MAX_TREE_REPLICAS = 9;
/** The longest replica id in a delegation, in characters. */
export const MAX_TREE_REPLICA_ID_LENGTH = 128;
/** The longest replica address (`"host:port"`) in a delegation, in characters. */
export const MAX_TREE_ADDRESS_LENGTH = 255;
/** The most session ids one `ended_sessions` read checks. */
export const MAX_ENDED_QUERY = 1_000;
/** Standard base64 with padding: what a gbcast's data must be. */
export const BASE64 =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Builds an error result. */
export function fail(
  code: OracleErrorCode,
  message: string,
  first?: number,
): { error: OracleErrorResult } {
  return {
    error: first === undefined ? { code, message } : { code, message, first },
  };
}

/** Quotes a value for a message, cut to 80 characters. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
}

function isCount(value: unknown, min: number): value is number {
  return Number.isSafeInteger(value) && (value as number) >= min;
}

function checkCount(
  field: string,
  value: unknown,
  min: number,
): { error: OracleErrorResult } | undefined {
  return isCount(value, min) ? undefined : fail(
    "invalid",
    `Field "${field}" must be an integer >= ${min}, got ${String(value)}`,
  );
}

function checkName(
  field: string,
  value: unknown,
  max: number,
): { error: OracleErrorResult } | undefined {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    return fail(
      "invalid",
      `Field "${field}" must be a string of 1 to ${max} characters`,
    );
  }
  return undefined;
}

function checkPathField(
  field: string,
  value: unknown,
  write: boolean,
  root = false,
): { error: OracleErrorResult } | undefined {
  const reason = pathError(value, { root });
  if (reason !== undefined) {
    return fail("invalid_path", `Field "${field}": ${reason}`);
  }
  if (write && isReserved(value as string)) {
    return fail(
      "reserved_path",
      `Field "${field}": path ${
        quote(value as string)
      } is under the reserved /_sys prefix, where only the Oracle writes`,
    );
  }
  return undefined;
}

/**
 * Checks a delegation's replicas: a plain object of 1 to 9 entries, replica
 * id to `"host:port"` (the address's shape is checked loosely: a string of
 * 1 to 255 characters).
 */
function checkReplicas(
  value: unknown,
): { error: OracleErrorResult } | undefined {
  const shape =
    `Field "replicas" must map 1 to ${MAX_TREE_REPLICAS} replica ids (1 to ${MAX_TREE_REPLICA_ID_LENGTH} characters) to "host:port" addresses (1 to ${MAX_TREE_ADDRESS_LENGTH} characters)`;
  if (
    value === null || typeof value !== "object" || Array.isArray(value) ||
    (Object.getPrototypeOf(value) !== Object.prototype &&
      Object.getPrototypeOf(value) !== null)
  ) {
    return fail("invalid", shape);
  }
  const entries = Object.entries(value);
  if (entries.length < 1 || entries.length > MAX_TREE_REPLICAS) {
    return fail("invalid", `${shape}, got ${entries.length} entries`);
  }
  for (const [id, address] of entries) {
    if (id.length === 0 || id.length > MAX_TREE_REPLICA_ID_LENGTH) {
      return fail("invalid", `${shape}, got replica id ${quote(id)}`);
    }
    if (
      typeof address !== "string" || address.length === 0 ||
      address.length > MAX_TREE_ADDRESS_LENGTH
    ) {
      return fail(
        "invalid",
        `${shape}, got ${
          typeof address === "string" ? quote(address) : typeof address
        } for replica ${quote(id)}`,
      );
    }
  }
  return undefined;
}

/** Checks a session id: a string of 1 to 128 characters. */
export function checkSessionId(value: unknown): boolean {
  return typeof value === "string" && value.length > 0 &&
    value.length <= MAX_SESSION_ID_LENGTH;
}

/** Checks the fields of a write operation (the data size is checked when applied). */
export function checkWriteOp(
  op: WriteOp,
): { error: OracleErrorResult } | undefined {
  switch (op.op) {
    case "open_session":
      return isCount(op.ttlMs, MIN_TTL_MS) && op.ttlMs <= MAX_TTL_MS
        ? undefined
        : fail(
          "invalid",
          `Field "ttlMs" must be an integer from ${MIN_TTL_MS} to ${MAX_TTL_MS}, got ${
            String(op.ttlMs)
          }`,
        );
    case "close_session":
      return undefined;
    case "append":
      return checkPathField("path", op.path, true);
    case "truncate":
      return checkPathField("path", op.path, true) ??
        checkCount("before", op.before, 1);
    case "lock":
      return checkPathField("path", op.path, true) ??
        (typeof op.wait === "boolean"
          ? undefined
          : fail("invalid", `Field "wait" must be a boolean`));
    case "unlock":
      return checkPathField("path", op.path, true) ??
        checkCount("token", op.token, 0);
    case "join":
    case "leave":
      return checkPathField("group", op.group, true) ??
        checkName("member", op.member, MAX_MEMBER_LENGTH);
    case "remove":
      return checkPathField("group", op.group, true) ??
        checkName("member", op.member, MAX_MEMBER_LENGTH) ??
        (typeof op.reason === "string" && op.reason.length <= MAX_REASON_LENGTH
          ? undefined
          : fail(
            "invalid",
            `Field "reason" must be a string of at most ${MAX_REASON_LENGTH} characters`,
          )) ??
        (op.viewId === undefined
          ? undefined
          : checkCount("viewId", op.viewId, 1));
    case "flushed":
      return checkPathField("group", op.group, true) ??
        checkName("member", op.member, MAX_MEMBER_LENGTH) ??
        checkCount("viewId", op.viewId, 1);
    case "gbcast":
      return checkPathField("group", op.group, true) ??
        checkName("member", op.member, MAX_MEMBER_LENGTH) ??
        checkCount("seq", op.seq, 1) ??
        (typeof op.data === "string" &&
            op.data.length <= MAX_GBCAST_DATA_LENGTH && BASE64.test(op.data)
          ? undefined
          : fail(
            "invalid",
            `Field "data" must be base64 of at most ${MAX_GBCAST_DATA_LENGTH} characters`,
          ));
    case "delegate":
      return checkPathField("prefix", op.prefix, true) ??
        checkName("group", op.group, MAX_TREE_GROUP_LENGTH) ??
        checkReplicas(op.replicas);
    default:
      return fail(
        "unknown_op",
        `Unknown write operation ${
          quote(String((op as { op?: unknown })?.op))
        }`,
      );
  }
}

/** Checks the fields of a read operation. */
export function checkReadOp(
  op: ReadOp,
): { error: OracleErrorResult } | undefined {
  switch (op.op) {
    case "read":
      return checkPathField("path", op.path, false) ??
        checkCount("from", op.from, 0) ??
        (isCount(op.limit, 1) && op.limit <= MAX_READ_LIMIT ? undefined : fail(
          "invalid",
          `Field "limit" must be an integer from 1 to ${MAX_READ_LIMIT}, got ${
            String(op.limit)
          }`,
        ));
    case "get_lock":
      return checkPathField("path", op.path, false);
    case "get_view":
      return checkPathField("group", op.group, false);
    case "get_tree":
    case "get_status":
      return undefined;
    case "ended_sessions":
      return Array.isArray(op.sessions) && op.sessions.length >= 1 &&
          op.sessions.length <= MAX_ENDED_QUERY &&
          op.sessions.every((id) => typeof id === "string")
        ? undefined
        : fail(
          "invalid",
          `Field "sessions" must be an array of 1 to ${MAX_ENDED_QUERY} session ids (strings)`,
        );
    case "list":
      return (LIST_KINDS.includes(op.kind as ListKind) ? undefined : fail(
        "invalid",
        `Field "kind" must be one of ${
          LIST_KINDS.map((k) => `"${k}"`).join(", ")
        }, got ${
          typeof op.kind === "string" ? quote(op.kind) : String(op.kind)
        }`,
      )) ??
        checkPathField("prefix", op.prefix, false, true) ??
        (op.after === undefined
          ? undefined
          : checkPathField("after", op.after, false)) ??
        (op.limit === undefined ||
            (isCount(op.limit, 1) && op.limit <= MAX_LIST_LIMIT)
          ? undefined
          : fail(
            "invalid",
            `Field "limit" must be an integer from 1 to ${MAX_LIST_LIMIT}, got ${
              String(op.limit)
            }`,
          ));
    default:
      return fail(
        "unknown_op",
        `Unknown read operation ${quote(String((op as { op?: unknown })?.op))}`,
      );
  }
}

/** A live session: its time to live and its dedupe table. */
export interface Session {
  ttlMs: number;
  /** Every request numbered below this was acknowledged by the client. */
  acked: number;
  /** Results of requests numbered >= `acked`; `null` while a lock request waits. */
  results: Map<number, OpResult | null>;
}

/** A session as a snapshot stores it: id, ttl, acked, [req, result or null]. */
export type SessionSnapshot = [string, number, number, [
  number,
  OpResult | null,
][]];

/**
 * Live sessions and the ids of ended ones. Ended ids are remembered so they
 * can never be reopened, up to `maxEnded` of them (the oldest are forgotten
 * first).
 */
export class SessionTable {
  #live = new Map<string, Session>();
  #ended = new Set<string>();
  #maxEnded: number;

  constructor(maxEnded: number) {
    this.#maxEnded = maxEnded;
  }

  get size(): number {
    return this.#live.size;
  }

  get(id: string): Session | undefined {
    return this.#live.get(id);
  }

  isEnded(id: string): boolean {
    return this.#ended.has(id);
  }

  open(id: string, ttlMs: number): Session {
    const session: Session = { ttlMs, acked: 0, results: new Map() };
    this.#live.set(id, session);
    return session;
  }

  /** Ends a live session (its dedupe table is freed); returns whether it was live. */
  end(id: string): boolean {
    if (!this.#live.delete(id)) return false;
    this.#ended.add(id);
    if (this.#ended.size > this.#maxEnded) {
      for (const old of this.#ended) {
        this.#ended.delete(old);
        if (this.#ended.size <= this.#maxEnded) break;
      }
    }
    return true;
  }

  /** Live sessions in the order they were opened. */
  list(): { session: string; ttlMs: number }[] {
    return [...this.#live].map(([session, s]) => ({ session, ttlMs: s.ttlMs }));
  }

  /** Live session ids in the order they were opened. */
  ids(): string[] {
    return [...this.#live.keys()];
  }

  toSnapshot(): { live: SessionSnapshot[]; ended: string[] } {
    const live: SessionSnapshot[] = [];
    for (const [id, s] of this.#live) {
      live.push([id, s.ttlMs, s.acked, [...s.results]]);
    }
    return { live, ended: [...this.#ended] };
  }

  static fromSnapshot(
    maxEnded: number,
    snapshot: { live: SessionSnapshot[]; ended: string[] },
  ): SessionTable {
    const table = new SessionTable(maxEnded);
    for (const [id, ttlMs, acked, results] of snapshot.live) {
      table.#live.set(id, { ttlMs, acked, results: new Map(results) });
    }
    for (const id of snapshot.ended) table.#ended.add(id);
    return table;
  }
}
