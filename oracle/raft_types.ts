/**
 * The types the consensus core ({@linkcode RaftNode}) shares with its
 * drivers: log entries, persistent state, wire messages and the batch of
 * effects ({@linkcode RaftReady}) the core hands its driver.
 *
 * Every value here is plain JSON (strings, numbers, booleans, null, arrays,
 * plain objects) so a driver can encode messages with `JSON.stringify`.
 *
 * @module
 */

/** The id of one Oracle replica, unique in its replica set (for example `"1"`). */
export type ReplicaId = string;

/**
 * One entry of the replicated log. `command` is `null` for the no-op a new
 * leader appends at the start of its term.
 *
 * @typeParam C The command type the state machine applies (plain JSON).
 */
export interface LogEntry<C> {
  /** The term of the leader that created the entry. */
  readonly term: number;
  /** The entry's position in the log, from 1. */
  readonly index: number;
  /** What the state machine applies, or `null` for a leader's no-op. */
  readonly command: C | null;
}

/** The state a replica must make durable before it answers in a term. */
export interface HardState {
  /** The latest term this replica has seen. */
  readonly term: number;
  /** The candidate this replica voted for in `term`, or `null`. */
  readonly votedFor: ReplicaId | null;
}

/** Where a snapshot ends: the last log entry it covers. */
export interface SnapshotMeta {
  /** Index of the last entry the snapshot includes. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
}

/** A state-machine snapshot: its position and its serialized bytes. */
export interface Snapshot {
  /** The last entry the snapshot covers. */
  readonly meta: SnapshotMeta;
  /** The serialized state machine (opaque to the core). */
  readonly data: Uint8Array;
}

/**
 * A (pre-)vote request. A pre-vote (`pre: true`) asks whether the voter
 * would vote in `term` without changing anyone's term; only a granted
 * pre-vote majority starts a real election.
 */
export interface VoteRequest {
  readonly type: "vote";
  readonly term: number;
  readonly pre: boolean;
  readonly lastIndex: number;
  readonly lastTerm: number;
}

/** The answer to a {@linkcode VoteRequest}. */
export interface VoteReply {
  readonly type: "vote_reply";
  readonly term: number;
  readonly pre: boolean;
  readonly granted: boolean;
}

/**
 * Log replication and heartbeat from the leader. `round` numbers the
 * leader's heartbeat rounds; a reply echoes it, which is how read-index
 * requests learn that a majority still follows this leader.
 *
 * `lazy` (present only when `true`) says the leader does not count on this
 * follower to commit these entries soon: it has enough other followers for
 * a majority. The follower may then delay its sync a little (see
 * {@linkcode RaftReady.lazySync}), so that fewer syncs compete for the
 * disk with those a commit waits for. Safety does not depend on it: a
 * follower acknowledges only what it has synced, whenever that is.
 */
export interface AppendRequest<C> {
  readonly type: "append";
  readonly term: number;
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly LogEntry<C>[];
  readonly commit: number;
  readonly round: number;
  readonly lazy?: boolean;
}

/**
 * The answer to an {@linkcode AppendRequest}. On success `index` is the
 * last index the follower now holds durably from this leader; on failure it
 * is a hint where the leader should retry (the follower's last index, or
 * the first index of the conflicting term).
 *
 * A failure also carries `rejected`, the `prevIndex` of the request it
 * rejects (as in etcd's raft). The network may duplicate, delay and reorder
 * replies; with `rejected` the leader acts only on the rejection of the
 * probe it is waiting for and ignores the others, so one rejection causes
 * at most one new probe.
 */
export interface AppendReply {
  readonly type: "append_reply";
  readonly term: number;
  readonly success: boolean;
  readonly index: number;
  readonly round: number;
  /**
   * On failure: the `prevIndex` of the rejected request (required). On
   * success: omitted (`0` is accepted too), to keep the frame small.
   */
  readonly rejected?: number;
}

/**
 * One chunk of a snapshot sent to a follower that lags behind the leader's
 * log start. `data` is base64; chunks arrive in order from offset 0.
 */
export interface SnapshotChunk {
  readonly type: "snapshot";
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly offset: number;
  readonly total: number;
  readonly data: string;
}

/** The answer to a {@linkcode SnapshotChunk}: bytes received so far, or the installed index. */
export interface SnapshotReply {
  readonly type: "snapshot_reply";
  readonly term: number;
  readonly meta: SnapshotMeta;
  /** Bytes of the snapshot the follower holds (equals `total` when done). */
  readonly received: number;
  /** `true` when the follower rejects the transfer (stale or out of order). */
  readonly rejected: boolean;
}

/** Every message replicas exchange. */
export type RaftMessage<C> =
  | VoteRequest
  | VoteReply
  | AppendRequest<C>
  | AppendReply
  | SnapshotChunk
  | SnapshotReply;

/** A message for one replica. */
export interface Outgoing<C> {
  readonly to: ReplicaId;
  readonly message: RaftMessage<C>;
}

/** A replica's role. */
export type RaftRole = "follower" | "pre-candidate" | "candidate" | "leader";

/** A linearizable read the leader confirmed: serve it once `index` is applied. */
export interface ReadState {
  /** The id the driver passed to `requestRead`. */
  readonly id: number;
  /** The commit index at the time of the request. */
  readonly index: number;
}

/**
 * Everything the core asks its driver to do, collected since the last
 * `ready()` call. The driver must handle the fields in this order:
 *
 * 1. write `snapshot` (if any) and restore the state machine from it; it
 *    replaces the whole stored log (drop every stored entry: the entries
 *    kept after the snapshot come again in `entries`);
 * 2. write `hardState` (if any) and `entries` (if any: drop every stored
 *    entry at or after `entries[0].index`, then append);
 * 3. send `messages` right away (they do not depend on step 2);
 * 4. make step 1-2 durable (sync), then send `messagesAfterPersist` and
 *    call `persisted(lastIndex, lastTerm)` with the last entry written
 *    (the snapshot's `meta` if only a snapshot was written);
 * 5. apply `committed` in order (they are durable on a majority already);
 * 6. serve each of `reads` once the applied index reaches its `index`;
 *    fail each of `failedReads` (leadership was lost).
 *
 * When `lazySync` is `true`, the sync of step 4 may wait a little (a few
 * milliseconds, or until a later ready that is not lazy): every entry
 * came in appends the leader marked `lazy`, and neither the hard state nor
 * a snapshot changed. Messages must still go out in order behind it.
 */
export interface RaftReady<C> {
  readonly hardState: HardState | undefined;
  readonly snapshot: Snapshot | undefined;
  readonly entries: readonly LogEntry<C>[];
  readonly lazySync: boolean;
  readonly messages: readonly Outgoing<C>[];
  readonly messagesAfterPersist: readonly Outgoing<C>[];
  readonly committed: readonly LogEntry<C>[];
  readonly reads: readonly ReadState[];
  readonly failedReads: readonly number[];
}

/** What a replica recovered from its durable log at start. */
export interface RaftRestored<C> {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | undefined;
  /** The entries after the snapshot, contiguous, in index order. */
  readonly entries: readonly LogEntry<C>[];
}
