/**
 * Which path an Oracle operation acts on: what the ownership check of a
 * tree of Oracle groups looks at.
 *
 * @module
 */

import type { ReadOp, WriteOp } from "./commands.ts";

/**
 * The path an operation acts on (its group's, for group operations), or
 * `undefined` for operations on no path. `delegate` is not a path
 * operation here: its prefix is checked by the delegation itself.
 */
export function opPath(op: WriteOp | ReadOp): string | undefined {
  switch (op.op) {
    case "append":
    case "truncate":
    case "lock":
    case "unlock":
    case "read":
    case "get_lock":
      return op.path;
    case "join":
    case "leave":
    case "remove":
    case "flushed":
    case "gbcast":
    case "get_view":
      return op.group;
    default:
      return undefined;
  }
}
