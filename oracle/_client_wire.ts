/**
 * Parsing of what replicas send the Oracle client: frames and the results
 * of each operation. Nothing here throws on bad input: a parser returns
 * `undefined` and the client drops and counts the frame.
 *
 * @module
 */

import type {
  ChannelEvent,
  Delegation,
  GroupView,
  Json,
  OracleErrorCode,
  OracleErrorResult,
  OracleGroupStatus,
  OracleTree,
  ViewMember,
} from "./commands.ts";
import { pathError } from "./path.ts";

/** A replica-to-client frame after shape checks. */
export type ParsedFrame =
  | {
    readonly t: "res";
    readonly r: number;
    readonly ok: Json | undefined;
    readonly err: OracleErrorResult | undefined;
  }
  | {
    readonly t: "ev";
    readonly id: number;
    readonly events: readonly ChannelEvent[];
  }
  | {
    readonly t: "subend";
    readonly id: number;
    readonly err: OracleErrorResult;
  };

const decoder = new TextDecoder("utf-8", { fatal: true });

/** A plain object (not `null`, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A safe integer >= 0. */
export function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) &&
    value >= 0;
}

/**
 * Checks a delegation: `prefix` a valid path other than `/`, `group` a
 * non-empty string, `replicas` a record of at least one replica id to a
 * non-empty address string.
 *
 * @returns A copy holding only those fields, or `undefined`.
 */
export function parseDelegation(value: unknown): Delegation | undefined {
  if (!isRecord(value)) return undefined;
  const { prefix, group, replicas } = value;
  if (pathError(prefix) !== undefined) return undefined;
  if (typeof group !== "string" || group === "") return undefined;
  if (!isRecord(replicas)) return undefined;
  const copy: Record<string, string> = {};
  for (const [id, address] of Object.entries(replicas)) {
    if (id === "" || typeof address !== "string" || address === "") {
      return undefined;
    }
    copy[id] = address;
  }
  if (Object.keys(copy).length === 0) return undefined;
  return { prefix: prefix as string, group, replicas: copy };
}

/**
 * Checks an error result: `code` and `message` strings, optional `leader`
 * and `first`. An optional `delegation` of the wrong shape is dropped
 * (the result keeps its code, with `delegation` undefined) rather than
 * the whole frame.
 */
export function parseErrorResult(
  value: unknown,
): OracleErrorResult | undefined {
  if (!isRecord(value)) return undefined;
  const { code, message, leader, first, delegation } = value;
  if (typeof code !== "string" || code === "") return undefined;
  if (message !== undefined && typeof message !== "string") return undefined;
  if (leader !== undefined && leader !== null && typeof leader !== "string") {
    return undefined;
  }
  if (first !== undefined && first !== null && !isCount(first)) {
    return undefined;
  }
  return {
    code: code as OracleErrorCode,
    message: message ?? "",
    leader: typeof leader === "string" && leader !== "" ? leader : undefined,
    first: typeof first === "number" ? first : undefined,
    delegation: delegation === undefined || delegation === null
      ? undefined
      : parseDelegation(delegation),
  };
}

/** Checks one channel event: `path` string, `seq` and `rev` positive integers, `data` present. */
export function parseEvent(value: unknown): ChannelEvent | undefined {
  if (!isRecord(value)) return undefined;
  const { path, seq, rev } = value;
  if (typeof path !== "string") return undefined;
  if (!isCount(seq) || seq < 1 || !isCount(rev) || rev < 1) return undefined;
  if (!("data" in value)) return undefined;
  return value as unknown as ChannelEvent;
}

function parseEvents(value: unknown): ChannelEvent[] | undefined {
  if (!Array.isArray(value)) return undefined;
  for (const event of value) {
    if (parseEvent(event) === undefined) return undefined;
  }
  return value as ChannelEvent[];
}

/**
 * Decodes and checks one replica-to-client frame.
 *
 * @param payload The transport payload (UTF-8 JSON).
 * @returns The frame, or `undefined` if it is not valid JSON or not one of
 * `res`, `ev`, `subend` with the right fields.
 */
export function parseReplicaFrame(
  payload: Uint8Array,
): ParsedFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  switch (value.t) {
    case "res": {
      if (!isCount(value.r) || value.r < 1) return undefined;
      const hasOk = "ok" in value && value.ok !== undefined;
      const hasErr = "err" in value && value.err !== undefined &&
        value.err !== null;
      if (hasOk === hasErr) return undefined;
      if (hasErr) {
        const err = parseErrorResult(value.err);
        if (err === undefined) return undefined;
        return { t: "res", r: value.r, ok: undefined, err };
      }
      return { t: "res", r: value.r, ok: value.ok as Json, err: undefined };
    }
    case "ev": {
      if (!isCount(value.id) || value.id < 1) return undefined;
      const events = parseEvents(value.events);
      if (events === undefined) return undefined;
      return { t: "ev", id: value.id, events };
    }
    case "subend": {
      if (!isCount(value.id) || value.id < 1) return undefined;
      const err = parseErrorResult(value.err);
      if (err === undefined) return undefined;
      return { t: "subend", id: value.id, err };
    }
    default:
      return undefined;
  }
}

/** What a result parser returns for an `ok` value of the wrong shape. */
export const BAD: unique symbol = Symbol("bad result");

/** Turns an `ok` value into an operation's typed result, or {@linkcode BAD}. */
export type ResultParser<T> = (ok: Json) => T | typeof BAD;

/** `null` results (unlock, flushed, close_session, keepalive): anything is accepted. */
export const parseNothing: ResultParser<void> = () => undefined;

/** `{ session, ttlMs }`. */
export const parseOpenSession: ResultParser<
  { session: string; ttlMs: number }
> = (
  ok,
) => {
  if (!isRecord(ok)) return BAD;
  const { session, ttlMs } = ok;
  if (typeof session !== "string" || typeof ttlMs !== "number") {
    return BAD;
  }
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) return BAD;
  return { session, ttlMs };
};

/** `{ seq, rev }`. */
export const parseAppend: ResultParser<{ seq: number; rev: number }> = (ok) => {
  if (!isRecord(ok) || !isCount(ok.seq) || !isCount(ok.rev)) return BAD;
  return { seq: ok.seq, rev: ok.rev };
};

/** `{ first }`. */
export const parseTruncate: ResultParser<{ first: number }> = (ok) => {
  if (!isRecord(ok) || !isCount(ok.first)) return BAD;
  return { first: ok.first };
};

/**
 * `{ token }`; token 0 with `holder` when a try found the lock busy, and
 * also `withdrawn: true` when a waiting request was withdrawn.
 */
export const parseLock: ResultParser<
  { token: number; holder: string | undefined; withdrawn: boolean }
> = (ok) => {
  if (!isRecord(ok) || !isCount(ok.token)) return BAD;
  const holder = typeof ok.holder === "string" ? ok.holder : undefined;
  return { token: ok.token, holder, withdrawn: ok.withdrawn === true };
};

/** `{ viewId }`. */
export const parseViewId: ResultParser<{ viewId: number }> = (ok) => {
  if (!isRecord(ok) || !isCount(ok.viewId)) return BAD;
  return { viewId: ok.viewId };
};

/** `{ events, first, next }`. */
export const parseRead: ResultParser<
  { events: ChannelEvent[]; first: number; next: number }
> = (ok) => {
  if (!isRecord(ok) || !isCount(ok.first) || !isCount(ok.next)) {
    return BAD;
  }
  const events = parseEvents(ok.events);
  if (events === undefined) return BAD;
  return { events, first: ok.first, next: ok.next };
};

/** `{ holder, token, waiters }`. */
export const parseGetLock: ResultParser<
  { holder: string | null; token: number; waiters: number }
> = (ok) => {
  if (!isRecord(ok)) return BAD;
  const { holder, token, waiters } = ok;
  if (holder !== null && holder !== undefined && typeof holder !== "string") {
    return BAD;
  }
  if (!isCount(token) || !isCount(waiters)) return BAD;
  return { holder: holder ?? null, token, waiters };
};

/** A proposal as `get_view` returns it. */
interface Proposal {
  viewId: number;
  members: ViewMember[];
  survivors: string[];
  flushed: string[];
}

/** `{ view, proposal }`, each an object or `null`. */
export const parseGetView: ResultParser<
  { view: GroupView | null; proposal: Proposal | null }
> = (ok) => {
  if (!isRecord(ok)) return BAD;
  const view = ok.view ?? null;
  const proposal = ok.proposal ?? null;
  if (view !== null && !(isRecord(view) && isCount(view.viewId))) {
    return BAD;
  }
  if (
    proposal !== null &&
    !(isRecord(proposal) && isCount(proposal.viewId) &&
      Array.isArray(proposal.members) && Array.isArray(proposal.survivors) &&
      Array.isArray(proposal.flushed))
  ) {
    return BAD;
  }
  if (view !== null && !Array.isArray(view.members)) return BAD;
  return {
    view: view as unknown as GroupView | null,
    proposal: proposal as unknown as Proposal | null,
  };
};

/** `{ owns, delegations, tokens }`: path strings, delegations of the right shape, a count. */
export const parseTree: ResultParser<OracleTree> = (ok) => {
  if (!isRecord(ok)) return BAD;
  const { owns, delegations, tokens } = ok;
  if (!Array.isArray(owns) || !Array.isArray(delegations)) return BAD;
  if (!isCount(tokens)) return BAD;
  if (!owns.every((prefix) => typeof prefix === "string")) return BAD;
  const parsed: Delegation[] = [];
  for (const item of delegations) {
    const delegation = parseDelegation(item);
    if (delegation === undefined) return BAD;
    parsed.push(delegation);
  }
  return { owns: owns as string[], delegations: parsed, tokens };
};

/** `{ leader, term, commitIndex, appliedIndex, sessions }`: a replica id and counts. */
export const parseGroupStatus: ResultParser<OracleGroupStatus> = (ok) => {
  if (!isRecord(ok)) return BAD;
  const { leader, term, commitIndex, appliedIndex, sessions } = ok;
  if (typeof leader !== "string") return BAD;
  if (![term, commitIndex, appliedIndex, sessions].every(isCount)) return BAD;
  return {
    leader,
    term: term as number,
    commitIndex: commitIndex as number,
    appliedIndex: appliedIndex as number,
    sessions: sessions as number,
  };
};

/** `{ ended }`: session id strings. */
export const parseEndedSessions: ResultParser<string[]> = (ok) => {
  if (!isRecord(ok) || !Array.isArray(ok.ended)) return BAD;
  if (!ok.ended.every((id) => typeof id === "string")) return BAD;
  return ok.ended as string[];
};
