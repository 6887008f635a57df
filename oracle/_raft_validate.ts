/**
 * Structural checks of messages received from the network: the core only
 * acts on messages whose fields make sense; anything else is counted and
 * ignored.
 *
 * @module
 */

import type { RaftMessage, SnapshotMeta } from "./raft_types.ts";

/** Largest snapshot a follower accepts to assemble (1 GiB). */
export const MAX_SNAPSHOT_BYTES = 2 ** 30;

function isIndex(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) &&
    value >= 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isMeta(value: unknown): value is SnapshotMeta {
  return isRecord(value) && isIndex(value.index) && isIndex(value.term) &&
    value.index > 0 && value.term > 0;
}

function entriesValid(m: Record<string, unknown>): boolean {
  const entries = m.entries;
  if (!Array.isArray(entries)) return false;
  let term = m.prevTerm as number;
  for (let i = 0; i < entries.length; i++) {
    const e: unknown = entries[i];
    if (
      !isRecord(e) || e.index !== (m.prevIndex as number) + 1 + i ||
      !isIndex(e.term) || e.term < term || e.term < 1 ||
      e.term > (m.term as number) || e.command === undefined
    ) {
      return false;
    }
    term = e.term;
  }
  return true;
}

/**
 * Whether `m` is a well-formed Raft message.
 *
 * @param m Anything received from the network.
 * @returns `true` if every field has a sensible type and range.
 */
export function isRaftMessage(m: unknown): m is RaftMessage<unknown> {
  if (!isRecord(m) || !isIndex(m.term)) return false;
  switch (m.type) {
    case "vote":
      return typeof m.pre === "boolean" && m.term > 0 &&
        isIndex(m.lastIndex) && isIndex(m.lastTerm) &&
        m.lastTerm < m.term && (m.lastIndex === 0) === (m.lastTerm === 0);
    case "vote_reply":
      return typeof m.pre === "boolean" && typeof m.granted === "boolean";
    case "append":
      return m.term > 0 && isIndex(m.prevIndex) && isIndex(m.prevTerm) &&
        m.prevTerm <= m.term && (m.prevIndex === 0) === (m.prevTerm === 0) &&
        isIndex(m.commit) && isIndex(m.round) &&
        (m.lazy === undefined || typeof m.lazy === "boolean") &&
        entriesValid(m);
    case "append_reply":
      return typeof m.success === "boolean" && isIndex(m.index) &&
        isIndex(m.round) &&
        (m.success
          ? m.rejected === undefined || m.rejected === 0
          : isIndex(m.rejected));
    case "snapshot":
      return m.term > 0 && isMeta(m.meta) && m.meta.term <= m.term &&
        isIndex(m.offset) && isIndex(m.total) &&
        m.total <= MAX_SNAPSHOT_BYTES && m.offset <= m.total &&
        typeof m.data === "string";
    case "snapshot_reply":
      return isMeta(m.meta) && isIndex(m.received) &&
        typeof m.rejected === "boolean";
    default:
      return false;
  }
}
