/**
 * Parsing of a `list` result in the Oracle client: a page of locks,
 * channels or groups, each entry checked for its kind's shape.
 *
 * @module
 */

import type {
  ListedChannel,
  ListedGroup,
  ListedLock,
  ListEntries,
  ListKind,
  ListPage,
  ViewMember,
} from "./commands.ts";
import { BAD, isCount, isRecord, type ResultParser } from "./_client_wire.ts";

/** `{ path, holder, token, waiters }`: a held lock. */
function lockEntry(value: unknown): ListedLock | undefined {
  if (!isRecord(value)) return undefined;
  const { path, holder, token, waiters } = value;
  if (typeof path !== "string" || typeof holder !== "string") return undefined;
  if (!isCount(token) || !isCount(waiters)) return undefined;
  return { path, holder, token, waiters };
}

/** `{ path, first, last }` with `1 <= first <= last + 1`. */
function channelEntry(value: unknown): ListedChannel | undefined {
  if (!isRecord(value)) return undefined;
  const { path, first, last } = value;
  if (typeof path !== "string" || !isCount(first) || !isCount(last)) {
    return undefined;
  }
  if (first < 1 || first > last + 1) return undefined;
  return { path, first, last };
}

function isMember(value: unknown): value is ViewMember {
  return isRecord(value) && typeof value.member === "string" &&
    typeof value.session === "string";
}

/** `{ group, viewId, members, proposal }`: ids or `null`, members `{ member, session }`. */
function groupEntry(value: unknown): ListedGroup | undefined {
  if (!isRecord(value)) return undefined;
  const { group, viewId, members, proposal } = value;
  if (typeof group !== "string") return undefined;
  if (viewId !== null && !isCount(viewId)) return undefined;
  if (proposal !== null && !isCount(proposal)) return undefined;
  if (!Array.isArray(members) || !members.every(isMember)) return undefined;
  return {
    group,
    viewId,
    members: members.map(({ member, session }) => ({ member, session })),
    proposal,
  };
}

const ENTRY: {
  readonly [K in ListKind]: (value: unknown) => ListEntries[K] | undefined;
} = { locks: lockEntry, channels: channelEntry, groups: groupEntry };

/**
 * The parser of a `list` result of `kind`: `{ items, next }`, every item
 * of that kind's shape, `next` a string or `null`.
 */
export function parseList<K extends ListKind>(
  kind: K,
): ResultParser<ListPage<ListEntries[K]>> {
  const entry = ENTRY[kind] as (value: unknown) => ListEntries[K] | undefined;
  return (ok) => {
    if (!isRecord(ok) || !Array.isArray(ok.items)) return BAD;
    const { next } = ok;
    if (next !== null && typeof next !== "string") return BAD;
    const items: ListEntries[K][] = [];
    for (const item of ok.items) {
      const parsed = entry(item);
      if (parsed === undefined) return BAD;
      items.push(parsed);
    }
    return { items, next };
  };
}
