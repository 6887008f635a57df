/**
 * The operations the Oracle's state machine understands, their results and
 * its error codes: the vocabulary shared by the state machine, the replica
 * and the client.
 *
 * Writes go through the replicated log in batches
 * ({@linkcode EntryCommand}); reads are served by the leader after a
 * read-index round (linearizable) and never enter the log. Every value is
 * plain JSON.
 *
 * @module
 */

/** Any JSON value: what channel events carry. */
export type Json =
  | null
  | boolean
  | number
  | string
  | Json[]
  | { [key: string]: Json };

/** Opens (or re-opens, idempotently) the session named by the request envelope. */
export interface OpenSessionOp {
  /** The operation's name. */
  readonly op: "open_session";
  /** Time to live without keep-alive, in milliseconds (1,000-300,000). */
  readonly ttlMs: number;
}

/** Closes the request's session: its locks are released, it leaves every group. */
export interface CloseSessionOp {
  /** The operation's name. */
  readonly op: "close_session";
}

/** Appends one event to a channel. */
export interface AppendOp {
  /** The operation's name. */
  readonly op: "append";
  /** The path it acts on (absolute, validated). */
  readonly path: string;
  /** The event's data, any JSON value. */
  readonly data: Json;
}

/** Drops a channel's events before sequence number `before` (garbage collection). */
export interface TruncateOp {
  /** The operation's name. */
  readonly op: "truncate";
  /** The path it acts on (absolute, validated). */
  readonly path: string;
  /** Events with a lower sequence number are dropped. */
  readonly before: number;
}

/** Acquires a lock for the request's session: waits in FIFO order (`wait`) or tries once. */
export interface LockOp {
  /** The operation's name. */
  readonly op: "lock";
  /** The path it acts on (absolute, validated). */
  readonly path: string;
  /** `true` waits in FIFO order; `false` tries once. */
  readonly wait: boolean;
}

/** Releases a lock the request's session holds under `token`; or withdraws a waiting request. */
export interface UnlockOp {
  /** The operation's name. */
  readonly op: "unlock";
  /** The path it acts on (absolute, validated). */
  readonly path: string;
  /** The fencing token of the grant, or 0 to withdraw a queued request. */
  readonly token: number;
}

/** Asks for `member` (owned by the request's session) to join a group. */
export interface JoinOp {
  /** The operation's name. */
  readonly op: "join";
  /** The group's path. */
  readonly group: string;
  /** The member's name, unique in the group. */
  readonly member: string;
}

/** Asks for `member` to leave a group (voluntary leave). */
export interface LeaveOp {
  /** The operation's name. */
  readonly op: "leave";
  /** The group's path. */
  readonly group: string;
  /** The member's name, unique in the group. */
  readonly member: string;
}

/**
 * Forces `member` out of a group (failure suspected by another member).
 * The excluded member may not rejoin under the same name.
 */
export interface RemoveOp {
  /** The operation's name. */
  readonly op: "remove";
  /** The group's path. */
  readonly group: string;
  /** The member's name, unique in the group. */
  readonly member: string;
  /** Why it is removed (for logs). */
  readonly reason: string;
  /**
   * The view the suspicion was raised in. When given and no longer the
   * installed view, the removal is refused (`membership`): a member that
   * lagged behind, or was itself excluded, must not force out members
   * that moved on to a newer view.
   */
  readonly viewId?: number | undefined;
}

/** Reports that `member` finished flushing for the proposed view `viewId`. */
export interface FlushedOp {
  /** The operation's name. */
  readonly op: "flushed";
  /** The group's path. */
  readonly group: string;
  /** The view's id. */
  readonly viewId: number;
  /** The member's name, unique in the group. */
  readonly member: string;
}

/**
 * Multicasts `data` to a group in gbcast order: the Oracle orders it like
 * a view change, against every other message and every view. It becomes
 * a proposal with the same members that carries it; once every member
 * flushed, each delivers it after every message of the installed view and
 * before the next view. Only a member of the installed view may send one,
 * and it is dropped if its sender leaves the group before that view is
 * installed. A retried request (the same `seq` or a lower one) is taken
 * once.
 */
export interface GbcastOp {
  /** The operation's name. */
  readonly op: "gbcast";
  /** The group's path. */
  readonly group: string;
  /** The sending member's name (owned by the request's session). */
  readonly member: string;
  /** The sender's number for it: 1, 2, 3, ... (higher than its last). */
  readonly seq: number;
  /** The message, base64 (at most {@linkcode MAX_GBCAST_DATA_LENGTH} characters). */
  readonly data: string;
}

/** The longest base64 `data` of a {@linkcode GbcastOp} (12 KiB of bytes). */
export const MAX_GBCAST_DATA_LENGTH = 16_384;

/** A gbcast a proposal carries: delivered, in order, at the end of the installed view. */
export interface GbcastMessage {
  /** The member that sent it. */
  readonly member: string;
  /** The sender's number for it. */
  readonly seq: number;
  /** The message, base64. */
  readonly data: string;
}

/**
 * Hands the subtree at `prefix` to another Oracle group (the parent's
 * side of a delegation). Refused (`delegation`) when this group does not
 * own the prefix, when it overlaps another delegation, or when this group
 * holds state under it (a channel that ever had an event, a lock, a
 * group). Delegations are permanent: a delegated subtree cannot be moved.
 */
export interface DelegateOp {
  /** The operation's name. */
  readonly op: "delegate";
  /** The subtree handed over: every path at or under it (not `/`, not reserved). */
  readonly prefix: string;
  /** The name of the Oracle group that takes it. */
  readonly group: string;
  /** That group's replicas: replica id to `"host:port"` (1 to 9 entries). */
  readonly replicas: Readonly<Record<string, string>>;
}

/** Every operation that changes state (goes through the log). */
export type WriteOp =
  | OpenSessionOp
  | CloseSessionOp
  | AppendOp
  | TruncateOp
  | LockOp
  | UnlockOp
  | JoinOp
  | LeaveOp
  | RemoveOp
  | FlushedOp
  | GbcastOp
  | DelegateOp;

/** Reads a channel's retained events from `from`, at most `limit`. */
export interface ReadChannelOp {
  /** The operation's name. */
  readonly op: "read";
  /** The path it acts on (absolute, validated). */
  readonly path: string;
  /** The first position wanted. */
  readonly from: number;
  /** The most events returned (1-1,000). */
  readonly limit: number;
}

/** Reads a lock's holder, token and queue length. */
export interface GetLockOp {
  /** The operation's name. */
  readonly op: "get_lock";
  /** The path it acts on (absolute, validated). */
  readonly path: string;
}

/** Reads a group's installed view and its pending proposal. */
export interface GetViewOp {
  /** The operation's name. */
  readonly op: "get_view";
  /** The group's path. */
  readonly group: string;
}

/**
 * Reads this group's place in the tree: the prefixes it owns (`["/"]` for
 * the root) and the delegations it made. Result: {@linkcode OracleTree}.
 */
export interface GetTreeOp {
  /** The operation's name. */
  readonly op: "get_tree";
}

/**
 * Asks which of `sessions` are not live here (ended, expired or never
 * opened). A child group asks its root, the home of every session of the
 * tree, and ends those sessions too. Result: `{ ended: string[] }`.
 */
export interface EndedSessionsOp {
  /** The operation's name. */
  readonly op: "ended_sessions";
  /** Session ids to check (1 to 1,000). */
  readonly sessions: readonly string[];
}

/** What a {@linkcode ListOp} lists: `locks`, `channels` or `groups`. */
export type ListKind = keyof ListEntries;

/** What a `list` can list. */
export const LIST_KINDS: readonly ListKind[] = ["locks", "channels", "groups"];
/** The most entries one `list` returns. */
export const MAX_LIST_LIMIT = 1_000;
/** How many entries a `list` without `limit` returns. */
export const DEFAULT_LIST_LIMIT = 100;

/**
 * Lists the locks, channels or groups this Oracle group holds at or under
 * `prefix`, sorted by path (plain string order), one page at a time.
 * Result: {@linkcode ListPage} of {@linkcode ListedLock},
 * {@linkcode ListedChannel} or {@linkcode ListedGroup}.
 *
 * The prefix is checked for ownership like a read of that path (`moved`,
 * `not_owner`); `/` is accepted, and on a child group gets `not_owner`
 * (it owns only what it adopted). A prefix above a delegated subtree
 * lists only what this group holds: nothing lies under a delegated
 * prefix here. `/_sys` entries (view channels, the tree channel) are
 * plain paths: a prefix of `/` or at or under `/_sys` lists them, as a
 * prefix subscription to `/` sees them.
 */
export interface ListOp {
  /** The operation's name. */
  readonly op: "list";
  /** Which table: held locks, channels that ever had an event, or groups ever joined. */
  readonly kind: ListKind;
  /** Lists this path and every path under it (a valid path, or `/`). */
  readonly prefix: string;
  /** A cursor (a valid path): only entries whose path sorts strictly after it. */
  readonly after?: string | undefined;
  /** The most entries returned (1-1,000). Default 100. */
  readonly limit?: number | undefined;
}

/** A held lock, as `list` with kind `locks` returns it (`get_lock`'s fields plus the path). */
export interface ListedLock {
  /** The lock's path. */
  readonly path: string;
  /** The holding session (a lock nobody holds is not listed). */
  readonly holder: string;
  /** The fencing token of the current grant. */
  readonly token: number;
  /** How many requests wait in the queue. */
  readonly waiters: number;
}

/**
 * A channel that ever had an event, as `list` with kind `channels` returns
 * it. When `first` is `last + 1` the channel retains no event (all were
 * truncated or dropped by retention); its numbering still goes on.
 */
export interface ListedChannel {
  /** The channel's path. */
  readonly path: string;
  /** The first retained sequence number (`last + 1` when none is retained). */
  readonly first: number;
  /** The sequence number of the last event ever appended. */
  readonly last: number;
}

/** A group ever joined, as `list` with kind `groups` returns it. */
export interface ListedGroup {
  /** The group's path. */
  readonly group: string;
  /** The installed view's id, or `null` before the first view is installed. */
  readonly viewId: number | null;
  /** The installed view's members in order (`[]` without a view). */
  readonly members: readonly ViewMember[];
  /** The view id of the proposal in flight, or `null` when none is. */
  readonly proposal: number | null;
}

/** The entry a `list` of each kind returns. */
export interface ListEntries {
  /** Held locks. */
  readonly locks: ListedLock;
  /** Channels that ever had an event. */
  readonly channels: ListedChannel;
  /** Groups ever joined. */
  readonly groups: ListedGroup;
}

/** One page of a `list`. */
export interface ListPage<T> {
  /** The entries, sorted by path. */
  readonly items: readonly T[];
  /** The last item's path when more entries follow (pass it as `after`), else `null`. */
  readonly next: string | null;
}

/**
 * Reads the group's consensus state as its leader knows it: the leader,
 * its term, commit and applied index, and the live sessions. Result:
 * {@linkcode OracleGroupStatus}.
 */
export interface GetStatusOp {
  /** The operation's name. */
  readonly op: "get_status";
}

/** The consensus state of an Oracle group, as `get_status` reads it. */
export interface OracleGroupStatus {
  /**
   * The leader: through a client, the replica that answered (after
   * confirming its lead); from `inspect`, the leader the replica knows of,
   * or `null`.
   */
  readonly leader: string | null;
  /** Its term. */
  readonly term: number;
  /** The highest log index known committed: the group's log position. */
  readonly commitIndex: number;
  /** The highest log index applied to its state machine. */
  readonly appliedIndex: number;
  /** Live sessions. */
  readonly sessions: number;
}

/** Every read (served after a read-index round, never logged). */
export type ReadOp =
  | ReadChannelOp
  | GetLockOp
  | GetViewOp
  | GetTreeOp
  | EndedSessionsOp
  | ListOp
  | GetStatusOp;

/** Keeps the request's session alive (handled by the leader, never logged). */
export interface KeepAliveOp {
  /** The operation's name. */
  readonly op: "keepalive";
}

/** Every operation a client can send. */
export type OracleOp = WriteOp | ReadOp | KeepAliveOp;

/** One client request inside a log entry. */
export interface ClientRequest {
  /** The session (the client's id) the request belongs to. */
  readonly session: string;
  /** The client's request number: a retried request keeps its number. */
  readonly req: number;
  /** Every request of this session numbered below this has its reply; forget them. */
  readonly acked: number;
  /** The operation's name. */
  readonly op: WriteOp;
}

/**
 * What one log entry carries: a batch of client requests, an expiry the
 * leader decided, or prefixes a child group's leader adopts because its
 * parent delegated them (ignored by a root), with the parent's last
 * fencing token, above which the child's tokens continue.
 */
export type EntryCommand =
  | { readonly batch: readonly ClientRequest[] }
  | { readonly expire: readonly string[] }
  | { readonly adopt: readonly string[]; readonly tokens?: number };

/** One event of a channel. */
export interface ChannelEvent {
  /** The path it acts on (absolute, validated). */
  readonly path: string;
  /** Position in its channel, from 1, without gaps. */
  readonly seq: number;
  /** Position among every event of the Oracle, from 1: what prefix subscriptions resume from. */
  readonly rev: number;
  /** The event's data, any JSON value. */
  readonly data: Json;
}

/** A group member: its name and the session that owns it. */
export interface ViewMember {
  /** The member's name, unique in the group. */
  readonly member: string;
  /** The session that owns it. */
  readonly session: string;
}

/** An installed group view. */
export interface GroupView {
  /** The group's path. */
  readonly group: string;
  /** The view's id. */
  readonly viewId: number;
  /** Members in join order (the order every member sees). */
  readonly members: readonly ViewMember[];
}

/**
 * The data of an event in a group's view channel
 * (`viewChannel(group)`): a proposed next view, whose surviving members
 * must flush and report `flushed`, or an installed view.
 */
export type ViewEvent =
  | {
    readonly type: "propose";
    readonly group: string;
    readonly viewId: number;
    /** The installed view the proposal replaces. */
    readonly fromViewId: number;
    readonly members: readonly ViewMember[];
    /** Members of the installed view that must report `flushed`. */
    readonly survivors: readonly string[];
    readonly joining: readonly string[];
    readonly leaving: readonly string[];
    /** gbcasts delivered at the end of the installed view (absent when none). */
    readonly messages?: readonly GbcastMessage[];
  }
  | {
    readonly type: "view";
    readonly group: string;
    readonly viewId: number;
    readonly members: readonly ViewMember[];
    readonly joined: readonly string[];
    readonly left: readonly string[];
    /** gbcasts the previous view's members delivered last in it (absent when none). */
    readonly messages?: readonly GbcastMessage[];
  };

/** A subtree of paths one Oracle group handed to another. */
export interface Delegation {
  /** Every path at or under it belongs to `group`. */
  readonly prefix: string;
  /** The name of the Oracle group that owns it. */
  readonly group: string;
  /** That group's replicas: replica id to `"host:port"`. */
  readonly replicas: Readonly<Record<string, string>>;
}

/** A group's place in the tree, as `get_tree` reads it. */
export interface OracleTree {
  /** The prefixes this group owns, sorted (`["/"]` for a root). */
  readonly owns: readonly string[];
  /** The delegations this group made, sorted by prefix. */
  readonly delegations: readonly Delegation[];
  /**
   * The last fencing token this group granted. A child adopting a prefix
   * starts its own tokens above its parent's, so the tokens of a lock
   * path keep growing across the delegation.
   */
  readonly tokens: number;
}

/** Error codes the Oracle answers with. */
export type OracleErrorCode =
  /** Not the leader; `leader` names it when known. */
  | "not_leader"
  /** The request is malformed, or a field is out of range. */
  | "invalid"
  /** The path is not valid (absolute, no empty segments, length limits). */
  | "invalid_path"
  /** The path is under the reserved `/_sys` prefix. */
  | "reserved_path"
  /** The operation name is unknown. */
  | "unknown_op"
  /** The session does not exist or has expired: open a new one under a new id. */
  | "session_expired"
  /** The requested position was truncated; `first` is the first available. */
  | "compacted"
  /** The session does not hold this lock under this token. */
  | "not_holder"
  /** The session already holds or waits for this lock. */
  | "lock_owned"
  /** Not a member, already a member, excluded, or a stale view id. */
  | "membership"
  /** Too many requests in flight or too much state for this session. */
  | "overloaded"
  /** The request is larger than the Oracle accepts. */
  | "too_large"
  /** The request's reply was already acknowledged by the client. */
  | "duplicate"
  /** The path was delegated to another Oracle group; `delegation` names it. */
  | "moved"
  /**
   * This group does not own the path (a child group that has not adopted
   * it yet): resolve the path again from the root.
   */
  | "not_owner"
  /** A `delegate` was refused: see the message. */
  | "delegation";

/** An error result. */
export interface OracleErrorResult {
  /** What went wrong, for programs. */
  readonly code: OracleErrorCode;
  /** What went wrong, for people, with the values. */
  readonly message: string;
  /** For `not_leader`: the leader's replica id when known. */
  readonly leader?: string | undefined;
  /** For `compacted`: the first available sequence number (or revision). */
  readonly first?: number | undefined;
  /** For `moved`: the delegation that owns the path. */
  readonly delegation?: Delegation | undefined;
}

/** A result: `ok` with a JSON value, or `error`. */
export type OpResult =
  | { readonly ok: Json }
  | { readonly error: OracleErrorResult };

/** The reserved root under which the Oracle keeps its own channels. */
export const SYSTEM_PREFIX = "/_sys";

/**
 * The channel where a group's delegations are appended as events
 * `{ type: "delegate", prefix, group, replicas }`.
 */
export const TREE_CHANNEL = `${SYSTEM_PREFIX}/tree`;

/**
 * The path whose owner serves `path`: the group path for a view channel
 * (`/_sys/views/apps/kv` → `/apps/kv`), `path` itself otherwise.
 */
export function ownerPath(path: string): string {
  const views = `${SYSTEM_PREFIX}/views/`;
  return path.startsWith(views) ? path.slice(views.length - 1) : path;
}

/** The channel where a group's view events are appended, for example `/_sys/views/apps/kv`. */
export function viewChannel(group: string): string {
  return `${SYSTEM_PREFIX}/views${group}`;
}
