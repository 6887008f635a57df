/**
 * Validation of the frames clients send to an Oracle replica: shape, types,
 * integer ranges, string lengths, path syntax and operation names, with
 * zod 4 schemas kept private to this module. A bad frame gets an
 * {@linkcode OracleErrorResult} whose message names the offending field;
 * nothing here throws.
 *
 * What needs state (sessions, reserved paths for writes, event data size)
 * is checked by the state machine.
 *
 * @example Parse a request frame
 * ```ts
 * import { parseClientFrame } from "./validate.ts";
 * import assert from "node:assert/strict";
 *
 * const ok = parseClientFrame({ t: "req", s: "c1", r: 1, a: 0, op: { op: "open_session", ttlMs: 5_000 } });
 * assert.ok("frame" in ok);
 * const bad = parseClientFrame({ t: "req", s: "c1", r: 1, a: 0, op: { op: "open_session", ttlMs: 5 } });
 * assert.ok("error" in bad && bad.error.code === "invalid");
 * assert.match(bad.error.message, /op\.ttlMs/);
 * ```
 *
 * @module
 */

import { z } from "zod";
import {
  type Json,
  LIST_KINDS,
  MAX_GBCAST_DATA_LENGTH,
  MAX_LIST_LIMIT,
  type OracleErrorResult,
} from "./commands.ts";
import { MAX_PATH_BYTES, pathError } from "./path.ts";
import {
  BASE64,
  MAX_ENDED_QUERY,
  MAX_MEMBER_LENGTH,
  MAX_READ_LIMIT,
  MAX_REASON_LENGTH,
  MAX_SESSION_ID_LENGTH,
  MAX_TREE_ADDRESS_LENGTH,
  MAX_TREE_GROUP_LENGTH,
  MAX_TREE_REPLICA_ID_LENGTH,
  MAX_TREE_REPLICAS,
  MAX_TTL_MS,
  MIN_TTL_MS,
} from "./_sm_sessions.ts";
import type { ClientFrame } from "./wire.ts";

/** How deeply event data may nest. */
const MAX_JSON_DEPTH = 64;

const count = (min: number) =>
  z.number().int().min(min).max(Number.MAX_SAFE_INTEGER);
const path = z.string().min(1).max(MAX_PATH_BYTES);
const member = z.string().min(1).max(MAX_MEMBER_LENGTH);
const replicas = z.record(
  z.string().min(1).max(MAX_TREE_REPLICA_ID_LENGTH),
  z.string().min(1).max(MAX_TREE_ADDRESS_LENGTH),
).refine(
  (value) => {
    const n = Object.keys(value).length;
    return n >= 1 && n <= MAX_TREE_REPLICAS;
  },
  { message: `must name 1 to ${MAX_TREE_REPLICAS} replicas` },
);

/** JSON data: null, booleans, finite numbers, strings, arrays and plain objects, nested at most 64 deep. */
function isJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (depth >= MAX_JSON_DEPTH) return false;
      if (Array.isArray(value)) return value.every((v) => isJson(v, depth + 1));
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      return Object.values(value).every((v) => isJson(v, depth + 1));
    }
    default:
      return false;
  }
}

const json = z.custom<Json>((value) => isJson(value, 0), {
  message:
    `must be JSON (null, booleans, finite numbers, strings, arrays, plain objects; at most ${MAX_JSON_DEPTH} levels deep)`,
});

const OPS = {
  open_session: z.strictObject({
    op: z.literal("open_session"),
    ttlMs: z.number().int().min(MIN_TTL_MS).max(MAX_TTL_MS),
  }),
  close_session: z.strictObject({ op: z.literal("close_session") }),
  append: z.strictObject({ op: z.literal("append"), path, data: json }),
  truncate: z.strictObject({
    op: z.literal("truncate"),
    path,
    before: count(1),
  }),
  lock: z.strictObject({ op: z.literal("lock"), path, wait: z.boolean() }),
  unlock: z.strictObject({ op: z.literal("unlock"), path, token: count(0) }),
  join: z.strictObject({ op: z.literal("join"), group: path, member }),
  leave: z.strictObject({ op: z.literal("leave"), group: path, member }),
  remove: z.strictObject({
    op: z.literal("remove"),
    group: path,
    member,
    reason: z.string().max(MAX_REASON_LENGTH),
    viewId: count(1).optional(),
  }),
  flushed: z.strictObject({
    op: z.literal("flushed"),
    group: path,
    viewId: count(1),
    member,
  }),
  gbcast: z.strictObject({
    op: z.literal("gbcast"),
    group: path,
    member,
    seq: count(1),
    data: z.string().max(MAX_GBCAST_DATA_LENGTH).regex(BASE64, {
      message: "must be base64",
    }),
  }),
  read: z.strictObject({
    op: z.literal("read"),
    path,
    from: count(0),
    limit: z.number().int().min(1).max(MAX_READ_LIMIT),
  }),
  get_lock: z.strictObject({ op: z.literal("get_lock"), path }),
  get_view: z.strictObject({ op: z.literal("get_view"), group: path }),
  delegate: z.strictObject({
    op: z.literal("delegate"),
    prefix: path,
    group: z.string().min(1).max(MAX_TREE_GROUP_LENGTH),
    replicas,
  }),
  get_tree: z.strictObject({ op: z.literal("get_tree") }),
  get_status: z.strictObject({ op: z.literal("get_status") }),
  ended_sessions: z.strictObject({
    op: z.literal("ended_sessions"),
    sessions: z.array(z.string()).min(1).max(MAX_ENDED_QUERY),
  }),
  list: z.strictObject({
    op: z.literal("list"),
    kind: z.enum(LIST_KINDS),
    prefix: path,
    after: path.optional(),
    limit: z.number().int().min(1).max(MAX_LIST_LIMIT).optional(),
  }),
  keepalive: z.strictObject({ op: z.literal("keepalive") }),
} as const;

const FRAMES = {
  req: z.strictObject({
    t: z.literal("req"),
    s: z.string().min(1).max(MAX_SESSION_ID_LENGTH),
    r: count(1),
    a: count(0),
    op: z.unknown(),
  }),
  sub: z.strictObject({
    t: z.literal("sub"),
    id: count(0),
    path,
    prefix: z.boolean(),
    from: count(0),
  }),
  unsub: z.strictObject({ t: z.literal("unsub"), id: count(0) }),
  suback: z.strictObject({
    t: z.literal("suback"),
    id: count(0),
    upTo: count(0),
  }),
} as const;

const FRAME_NAMES: Record<string, string> = {
  req: "request",
  sub: "subscribe",
  unsub: "unsubscribe",
  suback: "subscription ack",
};

function kindOf(value: unknown): string {
  return value === null
    ? "null"
    : Array.isArray(value)
    ? "array"
    : typeof value;
}

function show(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
}

function invalid(message: string): { error: OracleErrorResult } {
  return { error: { code: "invalid", message } };
}

/** Describes the first zod issue: the field it concerns and what is wrong. */
function describe(
  frame: string,
  prefix: (string | number)[],
  error: z.ZodError,
): string {
  const issue = error.issues[0];
  const field = [...prefix, ...issue.path.map(String)].join(".");
  const where = field === "" ? "" : ` field "${field}"`;
  if (issue.code === "unrecognized_keys") {
    return `Invalid ${frame} frame:${where} has unknown field${
      issue.keys.length > 1 ? "s" : ""
    } ${issue.keys.map((k) => show(k)).join(", ")}`;
  }
  if (
    issue.code === "invalid_type" && / received undefined$/.test(issue.message)
  ) {
    return `Invalid ${frame} frame:${where} is missing (${issue.expected} expected)`;
  }
  return `Invalid ${frame} frame:${where}: ${issue.message}`;
}

function checkPaths(
  frame: string,
  fields: [string, unknown][],
  root: boolean,
): { error: OracleErrorResult } | undefined {
  for (const [field, value] of fields) {
    if (value === undefined) continue;
    const reason = pathError(value, { root });
    if (reason !== undefined) {
      return {
        error: {
          code: "invalid_path",
          message: `Invalid ${frame} frame: field "${field}": ${reason}`,
        },
      };
    }
  }
  return undefined;
}

function parse(json: unknown): { frame: ClientFrame } | {
  error: OracleErrorResult;
} {
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    return invalid(
      `Invalid frame: expected a JSON object, got ${kindOf(json)}`,
    );
  }
  const t = (json as { t?: unknown }).t;
  if (typeof t !== "string" || !Object.hasOwn(FRAMES, t)) {
    return invalid(
      typeof t === "string"
        ? `Invalid frame: unknown frame type ${
          show(t)
        } (expected "req", "sub", "unsub" or "suback")`
        : `Invalid frame: field "t" must name the frame type, got ${kindOf(t)}`,
    );
  }
  const name = FRAME_NAMES[t];
  const parsed = FRAMES[t as keyof typeof FRAMES].safeParse(json);
  if (!parsed.success) return invalid(describe(name, [], parsed.error));
  const frame = parsed.data;
  if (frame.t === "sub") {
    return checkPaths(name, [["path", frame.path]], frame.prefix) ??
      { frame };
  }
  if (frame.t !== "req") return { frame };

  const op = frame.op;
  if (op === null || typeof op !== "object" || Array.isArray(op)) {
    return invalid(
      `Invalid request frame: field "op" must be an object, got ${kindOf(op)}`,
    );
  }
  const opName = (op as { op?: unknown }).op;
  if (typeof opName !== "string") {
    return invalid(
      `Invalid request frame: field "op.op" must name the operation, got ${
        kindOf(opName)
      }`,
    );
  }
  if (!Object.hasOwn(OPS, opName)) {
    return {
      error: {
        code: "unknown_op",
        message: `Unknown operation ${show(opName)} (expected one of ${
          Object.keys(OPS).join(", ")
        })`,
      },
    };
  }
  const parsedOp = OPS[opName as keyof typeof OPS].safeParse(op);
  if (!parsedOp.success) {
    return invalid(describe(name, ["op"], parsedOp.error));
  }
  const checked = parsedOp.data as Record<string, unknown>;
  const bad = checkPaths(name, [
    ["op.path", checked.path],
    // A delegation's `group` names an Oracle group, not a path.
    ["op.group", opName === "delegate" ? undefined : checked.group],
    ["op.after", checked.after],
  ], false) ??
    // A list may cover everything (`/`); a delegation may not.
    checkPaths(name, [["op.prefix", checked.prefix]], opName === "list");
  if (bad !== undefined) return bad;
  return { frame: { ...frame, op: parsedOp.data } as ClientFrame };
}

/**
 * Validates one frame a client sent (already decoded from JSON).
 *
 * @param json The decoded frame: anything.
 * @returns `{ frame }` typed as a {@linkcode ClientFrame}, or `{ error }`
 *   with code `unknown_op` for an unknown operation name, `invalid_path`
 *   for a path that breaks the path rules, `invalid` for everything else;
 *   the message names the field.
 *
 * @example Unknown operations and bad paths have their own codes
 * ```ts
 * import { parseClientFrame } from "./validate.ts";
 * import assert from "node:assert/strict";
 *
 * const unknown = parseClientFrame({ t: "req", s: "c", r: 1, a: 0, op: { op: "explode" } });
 * assert.ok("error" in unknown && unknown.error.code === "unknown_op");
 * const badPath = parseClientFrame({ t: "sub", id: 1, path: "/a//b", prefix: false, from: 1 });
 * assert.ok("error" in badPath && badPath.error.code === "invalid_path");
 * const root = parseClientFrame({ t: "sub", id: 1, path: "/", prefix: true, from: 1 });
 * assert.ok("frame" in root);
 * ```
 */
export function parseClientFrame(
  json: unknown,
): { frame: ClientFrame } | { error: OracleErrorResult } {
  try {
    return parse(json);
  } catch (error) {
    // Hostile input (getters that throw, cycles deeper than the stack).
    return invalid(
      `Invalid frame: could not be checked (${
        error instanceof Error ? error.message : String(error)
      })`,
    );
  }
}
