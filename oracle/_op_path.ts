/**
 * Which path an Oracle operation acts on (what the ownership check of a
 * tree of Oracle groups looks at), and which operations are reads.
 *
 * @module
 */

import type { OracleOp, ReadOp, WriteOp } from "./commands.ts";

/** The operations served after a read-index round, never logged. */
const READS: ReadonlySet<string> = new Set<ReadOp["op"]>([
  "read",
  "get_lock",
  "get_view",
  "get_tree",
  "ended_sessions",
  "list",
  "get_status",
]);

/** Tells whether an operation is a read ({@linkcode ReadOp}). */
export function isReadOp(op: OracleOp): op is ReadOp {
  return READS.has(op.op);
}

/**
 * The path an operation acts on (its group's, for group operations; a
 * `list`'s prefix), or `undefined` for operations on no path. `delegate` is not a path
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
    case "list":
      return op.prefix;
    default:
      return undefined;
  }
}
