/**
 * The Oracle state machine's `list` read: one page of the locks, channels
 * or groups at or under a prefix, sorted by path, for admin pages.
 *
 * Each request filters every key of the table it lists and sorts the
 * matches (an admin operation: no index is kept for it); the result holds
 * at most `limit` entries.
 *
 * @module
 */

import type {
  ListedChannel,
  ListedGroup,
  ListedLock,
  ListOp,
  ListPage,
} from "./commands.ts";
import { isUnder } from "./path.ts";
import type { ChannelStore } from "./_sm_channels.ts";
import type { GroupTable } from "./_sm_groups.ts";
import type { LockTable } from "./_sm_locks.ts";
import { DEFAULT_LIST_LIMIT } from "./commands.ts";

/** The tables a `list` reads. */
export interface ListTables {
  readonly locks: LockTable;
  readonly channels: ChannelStore;
  readonly groups: GroupTable;
}

/**
 * The paths at or under `prefix` that sort strictly after `after`, sorted,
 * at most `limit` of them; `next` is the last one's path when more match.
 */
function pageOf(
  paths: Iterable<string>,
  prefix: string,
  after: string | undefined,
  limit: number,
): { paths: string[]; next: string | null } {
  const matches: string[] = [];
  for (const path of paths) {
    if ((after === undefined || path > after) && isUnder(prefix, path)) {
      matches.push(path);
    }
  }
  matches.sort(); // plain string order
  if (matches.length <= limit) return { paths: matches, next: null };
  const page = matches.slice(0, limit);
  return { paths: page, next: page[page.length - 1] };
}

/** Serves a checked `list` (fields valid, prefix owned). */
export function listPage(
  tables: ListTables,
  op: ListOp,
): ListPage<ListedLock> | ListPage<ListedChannel> | ListPage<ListedGroup> {
  const limit = op.limit ?? DEFAULT_LIST_LIMIT;
  switch (op.kind) {
    case "locks": {
      const page = pageOf(tables.locks.paths(), op.prefix, op.after, limit);
      const items = page.paths.map((path): ListedLock => {
        const { holder, token, waiters } = tables.locks.get(path);
        // Only held locks are in the table.
        return { path, holder: holder!, token, waiters };
      });
      return { items, next: page.next };
    }
    case "channels": {
      const page = pageOf(tables.channels.paths(), op.prefix, op.after, limit);
      const items = page.paths.map((path): ListedChannel => ({
        path,
        ...tables.channels.bounds(path)!,
      }));
      return { items, next: page.next };
    }
    case "groups": {
      const page = pageOf(tables.groups.names(), op.prefix, op.after, limit);
      const items = page.paths.map((group): ListedGroup => {
        const { view, proposal } = tables.groups.get(group);
        return {
          group,
          viewId: view?.viewId ?? null,
          members: view?.members ?? [],
          proposal: proposal?.viewId ?? null,
        };
      });
      return { items, next: page.next };
    }
  }
}
