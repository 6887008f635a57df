/**
 * The consensus core of the Oracle: Raft (Ongaro and Ousterhout) as a pure,
 * deterministic state machine.
 *
 * Why Raft: the Oracle needs one ordered, durable log on a few replicas that
 * survives the loss of a minority. Raft is Multi-Paxos with a strong leader
 * and a spelled-out membership of roles, terms and log repair, which keeps
 * the core small and checkable. This implementation adds pre-vote, leader
 * stickiness with check-quorum (a replica cut off and rejoining cannot
 * depose a healthy leader), fast failover on a transport hint
 * ({@linkcode RaftNode.peerDown}), pipelined replication and snapshot
 * transfer.
 *
 * The core does no I/O: time is the driver calling {@linkcode RaftNode.tick},
 * randomness is an injected {@linkcode Random}, and every effect (writes,
 * messages, committed entries, confirmed reads) comes out of
 * {@linkcode RaftNode.ready}, which the driver handles in the order
 * {@linkcode RaftReady} documents.
 *
 * Linearizable reads use the read index: the leader records its commit
 * index when the read arrives (after it has committed an entry of its own
 * term, so that index covers every write acknowledged before), then sends a
 * heartbeat round; once a majority answered that round in the same term, no
 * other leader can have committed anything newer at the time of the read,
 * so serving the read once the state machine applied the read index returns
 * a state at least as new as any acknowledged write.
 *
 * The network may lose, duplicate, delay and reorder messages. If a stale
 * or duplicated reply could cause a send, the traffic to a far-behind
 * follower would grow with the duplication rate at every round trip, so
 * only fresh replies do. As in etcd, a rejection names the `prevIndex` it
 * rejects (`AppendReply.rejected`) and the leader acts only on the
 * rejection of an append it still waits for (in probe state, only if it
 * moves the probe back); otherwise a probing leader sends one append per
 * heartbeat interval. A success or snapshot reply that brings no progress
 * sends nothing, and a snapshot transfer goes back only after a stall. A
 * follower keeps a few early snapshot chunks, so reordering does not stall
 * a transfer.
 *
 * A new commit index has no message of its own when it is made: it rides
 * on the next append that carries entries, and a follower that gets none
 * gets one empty append at the next {@linkcode RaftNode.tick} (so followers
 * learn it within a tick). Under load, where the next entry soon follows
 * each commit, this halves the messages (and replies) per entry.
 * Heartbeats and read-index rounds still go at once; heartbeats keep
 * followers from campaigning and the leader's check-quorum fed.
 *
 * A leader counts on just enough followers for a majority (the first
 * replicating ones in configuration order) and marks its appends to the
 * others `lazy`: their ready says `lazySync`, and their driver may delay
 * the sync a little, so that fewer syncs compete for the disk with the
 * ones a commit waits for. A follower still acknowledges only what it
 * synced, so this changes when entries commit, never whether.
 *
 * @module
 */

import type { Random } from "../runtime/random.ts";
import { MAX_PENDING_READS, ReadQueue } from "./_raft_reads.ts";
import { RaftLog } from "./_raft_log.ts";
import { Progress } from "./_raft_progress.ts";
import {
  chunkCount,
  SnapshotAssembly,
  snapshotChunk,
} from "./_raft_snapshot.ts";
import { isRaftMessage } from "./_raft_validate.ts";
import type {
  AppendReply,
  AppendRequest,
  HardState,
  LogEntry,
  Outgoing,
  RaftMessage,
  RaftReady,
  RaftRestored,
  RaftRole,
  ReadState,
  ReplicaId,
  Snapshot,
  SnapshotChunk,
  SnapshotReply,
  VoteReply,
  VoteRequest,
} from "./raft_types.ts";

/** Snapshot chunks a leader keeps unacknowledged per follower. */
const SNAPSHOT_WINDOW = 4;

/**
 * How a {@linkcode RaftNode} is set up.
 *
 * @typeParam C The command type (plain JSON).
 */
export interface RaftOptions<C> {
  /** This replica's id. */
  readonly id: ReplicaId;
  /** Every replica's id, this one included: 1 to 7 distinct ids. */
  readonly replicas: readonly ReplicaId[];
  /** The only source of randomness (election timeouts). */
  readonly random: Random;
  /**
   * Follower election timeout: a random number of ticks in
   * [`electionTicks`, 2 × `electionTicks`). Also the leader-lease and
   * check-quorum period. Default 30.
   */
  readonly electionTicks?: number;
  /** Ticks between leader heartbeats. Default 5. */
  readonly heartbeatTicks?: number;
  /** Most entries per append message. Default 1024. */
  readonly maxAppendEntries?: number;
  /** Most command bytes (by `sizeOf`) per append message. Default 256 KiB. */
  readonly maxAppendBytes?: number;
  /** Most unacknowledged append messages per follower. Default 16. */
  readonly maxInflightAppends?: number;
  /**
   * The size of a command. Default: length of its JSON. Called at most once
   * per log entry: the leader keeps the size for every follower's batches.
   */
  readonly sizeOf?: (command: C) => number;
  /** Bytes of snapshot per chunk message. Default 256 KiB. */
  readonly snapshotChunkBytes?: number;
}

/** How the leader sends to one follower, as {@linkcode RaftStatus} reports it. */
export interface RaftPeerStatus {
  /** Highest index known durable and matching on the follower. */
  readonly match: number;
  /** Next index to send. */
  readonly next: number;
  /** `probe`, `replicate` or `snapshot`. */
  readonly state: string;
  /** Unacknowledged append messages. */
  readonly inflight: number;
}

/** An inspectable, plain-JSON picture of a {@linkcode RaftNode}. */
export interface RaftStatus {
  /** This replica's id. */
  readonly id: ReplicaId;
  /** Its role. */
  readonly role: RaftRole;
  /** Its current term. */
  readonly term: number;
  /** Whom it voted for in `term`. */
  readonly votedFor: ReplicaId | null;
  /** The leader it follows (itself if leader), or `null`. */
  readonly leader: ReplicaId | null;
  /** Highest index known committed. */
  readonly commitIndex: number;
  /** Last index handed out in `committed`. */
  readonly appliedIndex: number;
  /** Index of the last log entry. */
  readonly lastIndex: number;
  /** The local log is durable through this index. */
  readonly persistedIndex: number;
  /** Last index covered by the local snapshot. */
  readonly snapshotIndex: number;
  /** Reads the leader has not yet confirmed. */
  readonly pendingReads: number;
  /** Per follower, when leader (empty otherwise). */
  readonly peers: Readonly<Record<ReplicaId, RaftPeerStatus>>;
  /** Messages ignored: from a non-replica or with nonsense fields. */
  readonly droppedMessages: number;
  /** Messages of an older term, answered or ignored. */
  readonly staleMessages: number;
  /** Pre-vote rounds started. */
  readonly preVotes: number;
  /** Real elections started. */
  readonly elections: number;
  /** Times this replica became leader. */
  readonly leaderships: number;
  /** Snapshot transfers started as leader. */
  readonly snapshotsSent: number;
  /** Snapshots installed from a leader. */
  readonly snapshotsInstalled: number;
}

function positiveInteger(
  name: string,
  value: number | undefined,
  fallback: number,
): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(
      `Invalid Raft option ${name}: ${n} is not a positive integer`,
    );
  }
  return n;
}

/**
 * One Raft replica as a deterministic state machine. Feed it ticks,
 * messages and proposals; collect its effects with {@linkcode RaftNode.ready}.
 *
 * @typeParam C The command type (plain JSON).
 *
 * @example Elect a single replica and commit a command
 * ```ts
 * import { RaftNode } from "./raft.ts";
 * import { Prng } from "../sim/prng.ts";
 * import assert from "node:assert/strict";
 *
 * const node = new RaftNode<string>(
 *   { id: "1", replicas: ["1"], random: new Prng(1) },
 *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
 * );
 * assert.equal(node.role, "leader");
 * assert.deepEqual(node.propose("x"), { index: 2, term: 1 });
 * const ready = node.ready();
 * // The driver writes ready.entries durably, then reports it:
 * node.persisted(2, 1);
 * assert.deepEqual(
 *   node.ready().committed.map((e) => e.command),
 *   [null, "x"],
 * );
 * assert.equal(ready.entries.length, 2);
 * ```
 */
export class RaftNode<C> {
  readonly #id: ReplicaId;
  readonly #replicas: ReadonlySet<ReplicaId>;
  readonly #peers: readonly ReplicaId[];
  readonly #quorum: number;
  readonly #random: Random;
  readonly #electionTicks: number;
  readonly #heartbeatTicks: number;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #maxInflight: number;
  readonly #sizeOf: (command: C) => number;
  /** `sizeOf` of each entry's command, computed once for all followers. */
  readonly #sizes = new WeakMap<LogEntry<C>, number>();
  readonly #chunkBytes: number;

  readonly #log: RaftLog<C>;
  #term: number;
  #votedFor: ReplicaId | null;
  #hardDirty = false;
  /** Entries written since the last ready() that a commit waits on. */
  #promptWrite = false;
  #role: RaftRole = "follower";
  #leader: ReplicaId | undefined = undefined;
  #commit: number;
  #applied: number;
  /** The latest local snapshot, sent to laggards. */
  #snapshot: Snapshot | undefined;
  /** A snapshot installed from the leader, for the next `ready()`. */
  #newSnapshot: Snapshot | undefined = undefined;
  #assembly: SnapshotAssembly | undefined = undefined;

  #electionElapsed = 0;
  #electionTimeout = 0;
  #heartbeatElapsed = 0;
  #quorumElapsed = 0;
  #votes = new Map<ReplicaId, boolean>();
  #progress = new Map<ReplicaId, Progress>();
  #round = 0;
  #committedInTerm = false;
  #reads = new ReadQueue();

  #messages: Outgoing<C>[] = [];
  #afterPersist: Outgoing<C>[] = [];
  #readStates: ReadState[] = [];
  #failedReads: number[] = [];

  #dropped = 0;
  #stale = 0;
  #preVotes = 0;
  #elections = 0;
  #leaderships = 0;
  #snapshotsSent = 0;
  #snapshotsInstalled = 0;

  /**
   * Creates a replica from its recovered durable state. A replica set of
   * one elects itself at once.
   *
   * @param options Identity, replica set, randomness and tuning.
   * @param restored What the driver read back from its durable log.
   * @throws {RangeError} if the replica set is not 1 to 7 distinct ids
   *   including `options.id`, an option is not a positive integer, or the
   *   restored entries do not follow the snapshot contiguously.
   */
  constructor(options: RaftOptions<C>, restored: RaftRestored<C>) {
    const replicas = new Set(options.replicas);
    if (
      replicas.size !== options.replicas.length || replicas.size < 1 ||
      replicas.size > 7 || !replicas.has(options.id)
    ) {
      throw new RangeError(
        `Invalid Raft replica set ${
          JSON.stringify(options.replicas)
        } for "${options.id}": need 1 to 7 distinct ids including this one`,
      );
    }
    this.#id = options.id;
    this.#replicas = replicas;
    this.#peers = options.replicas.filter((r) => r !== options.id);
    this.#quorum = Math.floor(replicas.size / 2) + 1;
    this.#random = options.random;
    this.#electionTicks = positiveInteger(
      "electionTicks",
      options.electionTicks,
      30,
    );
    this.#heartbeatTicks = positiveInteger(
      "heartbeatTicks",
      options.heartbeatTicks,
      5,
    );
    this.#maxEntries = positiveInteger(
      "maxAppendEntries",
      options.maxAppendEntries,
      1024,
    );
    this.#maxBytes = positiveInteger(
      "maxAppendBytes",
      options.maxAppendBytes,
      256 * 1024,
    );
    this.#maxInflight = positiveInteger(
      "maxInflightAppends",
      options.maxInflightAppends,
      16,
    );
    this.#chunkBytes = positiveInteger(
      "snapshotChunkBytes",
      options.snapshotChunkBytes,
      256 * 1024,
    );
    this.#sizeOf = options.sizeOf ??
      ((command) => JSON.stringify(command).length);

    const snapshot = restored.snapshot;
    const meta = snapshot?.meta ?? { index: 0, term: 0 };
    this.#log = new RaftLog(meta, restored.entries);
    this.#snapshot = snapshot;
    this.#commit = meta.index;
    this.#applied = meta.index;
    this.#term = restored.hardState.term;
    this.#votedFor = restored.hardState.votedFor;
    if (this.#log.lastTerm > this.#term) {
      throw new RangeError(
        `Invalid restored state: last entry term ${this.#log.lastTerm} is above hard state term ${this.#term}`,
      );
    }
    this.#resetElectionTimeout();
    if (this.#peers.length === 0) this.#campaign();
  }

  /** This replica's role. */
  get role(): RaftRole {
    return this.#role;
  }

  /** The current term. */
  get term(): number {
    return this.#term;
  }

  /** The leader this replica follows (itself if leader), or `undefined`. */
  get leader(): ReplicaId | undefined {
    return this.#leader;
  }

  /** The highest index known committed. */
  get commitIndex(): number {
    return this.#commit;
  }

  /** The index of the last log entry. */
  get lastIndex(): number {
    return this.#log.lastIndex;
  }

  /**
   * A plain-JSON picture of this replica, with its counters.
   *
   * @returns The status.
   *
   * @example Inspect a fresh follower
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "a", replicas: ["a", "b", "c"], random: new Prng(1) },
   *   { hardState: { term: 3, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * const status = node.status();
   * assert.equal(status.role, "follower");
   * assert.equal(status.term, 3);
   * assert.equal(status.droppedMessages, 0);
   * ```
   */
  status(): RaftStatus {
    const peers: Record<ReplicaId, RaftPeerStatus> = {};
    for (const [peer, pr] of this.#progress) {
      peers[peer] = {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        inflight: pr.inflight.length,
      };
    }
    return {
      id: this.#id,
      role: this.#role,
      term: this.#term,
      votedFor: this.#votedFor,
      leader: this.#leader ?? null,
      commitIndex: this.#commit,
      appliedIndex: this.#applied,
      lastIndex: this.#log.lastIndex,
      persistedIndex: this.#log.persistedIndex,
      snapshotIndex: this.#log.snapIndex,
      pendingReads: this.#reads.size,
      peers,
      droppedMessages: this.#dropped,
      staleMessages: this.#stale,
      preVotes: this.#preVotes,
      elections: this.#elections,
      leaderships: this.#leaderships,
      snapshotsSent: this.#snapshotsSent,
      snapshotsInstalled: this.#snapshotsInstalled,
    };
  }

  /**
   * Advances logical time by one tick (the driver calls it about every
   * 10 ms): election timeouts, heartbeats, check-quorum, and on a leader
   * news of a commit index that no append carried since it was made.
   *
   * @example Elections start after the timeout
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "a", replicas: ["a", "b", "c"], random: new Prng(1), electionTicks: 10 },
   *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * for (let i = 0; i < 20; i++) node.tick();
   * assert.equal(node.role, "pre-candidate");
   * const sent = node.ready().messages.map((o) => o.message.type);
   * assert.deepEqual(sent, ["vote", "vote"]);
   * ```
   */
  tick(): void {
    if (this.#role === "leader") {
      this.#tickLeader();
      return;
    }
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTimeout) this.#campaign();
  }

  /**
   * Handles a message from another replica. Messages from a non-replica or
   * with nonsense fields are counted (`droppedMessages`) and ignored; this
   * never throws on bad input.
   *
   * @param from The sending replica.
   * @param message The message, as decoded from the wire.
   *
   * @example Garbage is counted, not thrown
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "a", replicas: ["a", "b"], random: new Prng(1) },
   *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * // deno-lint-ignore no-explicit-any
   * node.step("b", { type: "bogus" } as any);
   * node.step("z", { type: "vote_reply", term: 1, pre: false, granted: true });
   * assert.equal(node.status().droppedMessages, 2);
   * ```
   */
  step(from: ReplicaId, message: RaftMessage<C>): void {
    if (
      from === this.#id || !this.#replicas.has(from) || !isRaftMessage(message)
    ) {
      this.#dropped++;
      return;
    }
    const m = message;
    if (m.term > this.#term) {
      const exempt = m.type === "vote" ||
        (m.type === "vote_reply" && m.pre);
      if (!exempt) {
        const fromLeader = m.type === "append" || m.type === "snapshot";
        this.#becomeFollower(m.term, fromLeader ? from : undefined);
      }
    } else if (m.term < this.#term) {
      if (m.type !== "vote" && !(m.type === "vote_reply" && m.pre)) {
        this.#stale++;
        this.#answerStale(from, m);
        return;
      }
    }
    switch (m.type) {
      case "vote":
        return this.#onVote(from, m);
      case "vote_reply":
        return this.#onVoteReply(from, m);
      case "append":
        if (!this.#acceptLeader(from)) return;
        return this.#onAppend(from, m);
      case "snapshot":
        if (!this.#acceptLeader(from)) return;
        return this.#onChunk(from, m);
      case "append_reply":
        if (this.#role === "leader") this.#onAppendReply(from, m);
        return;
      case "snapshot_reply":
        if (this.#role === "leader") this.#onSnapshotReply(from, m);
        return;
    }
  }

  /**
   * Appends a command to the log if this replica is the leader. It is sent
   * at the next {@linkcode RaftNode.ready}, batched with the other pending
   * entries.
   *
   * @param command The command (plain JSON).
   * @returns Where it went in the log, or `undefined` if not leader.
   *
   * @example Only a leader accepts proposals
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const follower = new RaftNode<string>(
   *   { id: "a", replicas: ["a", "b", "c"], random: new Prng(1) },
   *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * assert.equal(follower.propose("x"), undefined);
   * ```
   */
  propose(command: C): { index: number; term: number } | undefined {
    if (this.#role !== "leader") return undefined;
    const index = this.#log.lastIndex + 1;
    this.#log.append({ term: this.#term, index, command });
    this.#promptWrite = true;
    return { index, term: this.#term };
  }

  /**
   * Asks for a linearizable read (read index). On the leader the read gets
   * the current commit index once the leader committed an entry of its own
   * term; the reads pending at the next {@linkcode RaftNode.ready} share a
   * heartbeat round sent at once, and each read comes out in `reads` when a
   * majority (this replica included) answered its round in this term.
   * Reads pending when leadership is lost come out in `failedReads`.
   *
   * @param id The driver's id for the read, echoed back.
   * @returns `false` if not leader (or 65,536 reads are already pending).
   *
   * @example A single replica confirms reads at once
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "1", replicas: ["1"], random: new Prng(1) },
   *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * node.ready();
   * node.persisted(1, 1); // the leader's no-op is durable, so committed
   * assert.equal(node.requestRead(7), true);
   * assert.deepEqual(node.ready().reads, [{ id: 7, index: 1 }]);
   * ```
   */
  requestRead(id: number): boolean {
    if (this.#role !== "leader" || this.#reads.size >= MAX_PENDING_READS) {
      return false;
    }
    this.#reads.add(id, this.#committedInTerm ? this.#commit : -1);
    return true;
  }

  /**
   * A hint from the transport that the connection to `peer` was lost. A
   * follower whose leader it is forgets that leader (so it grants
   * pre-votes) and starts an election after 1 to 2 × `heartbeatTicks`
   * ticks; a leader resends to that follower from its match point.
   *
   * @param peer The replica the connection led to.
   *
   * @example A follower fails over quickly
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "a", replicas: ["a", "b", "c"], random: new Prng(1) },
   *   { hardState: { term: 1, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * node.step("b", { type: "append", term: 1, prevIndex: 0, prevTerm: 0, entries: [], commit: 0, round: 0 });
   * assert.equal(node.leader, "b");
   * node.peerDown("b");
   * assert.equal(node.leader, undefined);
   * for (let i = 0; i < 10; i++) node.tick();
   * assert.equal(node.role, "pre-candidate");
   * ```
   */
  peerDown(peer: ReplicaId): void {
    if (peer === this.#id || !this.#replicas.has(peer)) return;
    if (this.#role === "follower" && this.#leader === peer) {
      this.#leader = undefined;
      this.#electionElapsed = 0;
      this.#electionTimeout = 1 + this.#random.int(2 * this.#heartbeatTicks);
      return;
    }
    const pr = this.#progress.get(peer);
    if (pr === undefined) return;
    if (pr.state === "snapshot") this.#resyncSnapshot(pr);
    else pr.probe(pr.match + 1);
  }

  /**
   * Tells the core the local log is durable through `index`, whose entry
   * has `term` (step 4 of {@linkcode RaftReady}). A leader counts only
   * durable entries of its own log toward commit.
   *
   * @param index The last index written and synced.
   * @param term The term of that entry.
   *
   * @example A leader commits only what it made durable
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "1", replicas: ["1"], random: new Prng(1) },
   *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * node.ready();
   * assert.equal(node.commitIndex, 0);
   * node.persisted(1, 1);
   * assert.equal(node.commitIndex, 1);
   * ```
   */
  persisted(index: number, term: number): void {
    if (!Number.isSafeInteger(index) || !Number.isSafeInteger(term)) return;
    this.#log.persistedTo(index, term);
    if (this.#role === "leader") this.#maybeCommit();
  }

  /**
   * Drops the log entries a driver snapshot covers and keeps the snapshot
   * to send to followers that fall behind the log start.
   *
   * @param snapshot A snapshot taken at an index already handed out in
   *   `committed` (and applied).
   * @throws {RangeError} if the snapshot is beyond the applied index or its
   *   term does not match the log.
   *
   * @example Compact after applying
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "1", replicas: ["1"], random: new Prng(1) },
   *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * node.ready();
   * node.persisted(1, 1);
   * node.ready();
   * node.compact({ meta: { index: 1, term: 1 }, data: new Uint8Array([1]) });
   * assert.equal(node.status().snapshotIndex, 1);
   * ```
   */
  compact(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta;
    if (index <= this.#log.snapIndex) return;
    if (index > this.#applied) {
      throw new RangeError(
        `Cannot compact the Raft log through ${index}: only ${this.#applied} entries are applied`,
      );
    }
    if (this.#log.term(index) !== term) {
      throw new RangeError(
        `Cannot compact the Raft log through ${index}: the snapshot term ${term} differs from the log term ${
          this.#log.term(index)
        }`,
      );
    }
    this.#log.compact(snapshot.meta);
    this.#snapshot = snapshot;
  }

  /**
   * Whether {@linkcode RaftNode.ready} has anything to hand out.
   *
   * @returns `true` if there is work for the driver.
   *
   * @example Nothing to do on a fresh follower
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "a", replicas: ["a", "b", "c"], random: new Prng(1) },
   *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * assert.equal(node.hasReady(), false);
   * ```
   */
  hasReady(): boolean {
    this.#flush();
    return this.#hardDirty || this.#newSnapshot !== undefined ||
      this.#log.hasUnstable || this.#messages.length > 0 ||
      this.#afterPersist.length > 0 || this.#applied < this.#commit ||
      this.#readStates.length > 0 || this.#failedReads.length > 0;
  }

  /**
   * Returns and clears everything pending for the driver, to be handled in
   * the order {@linkcode RaftReady} documents. A leader batches the entries
   * proposed since the last call into its append messages here.
   *
   * @returns The effects to carry out.
   *
   * @example A single replica's first ready
   * ```ts
   * import { RaftNode } from "./raft.ts";
   * import { Prng } from "../sim/prng.ts";
   * import assert from "node:assert/strict";
   *
   * const node = new RaftNode<string>(
   *   { id: "1", replicas: ["1"], random: new Prng(1) },
   *   { hardState: { term: 0, votedFor: null }, snapshot: undefined, entries: [] },
   * );
   * const ready = node.ready();
   * assert.deepEqual(ready.hardState, { term: 1, votedFor: "1" });
   * assert.deepEqual(ready.entries, [{ term: 1, index: 1, command: null }]);
   * assert.deepEqual(ready.committed, []); // not durable yet
   * ```
   */
  ready(): RaftReady<C> {
    this.#flush();
    const hardState: HardState | undefined = this.#hardDirty
      ? { term: this.#term, votedFor: this.#votedFor }
      : undefined;
    const committed = this.#applied < this.#commit
      ? this.#log.slice(this.#applied + 1, this.#commit + 1)
      : [];
    const entries = this.#log.takeUnstable();
    const ready: RaftReady<C> = {
      hardState,
      snapshot: this.#newSnapshot,
      entries,
      lazySync: entries.length > 0 && !this.#promptWrite &&
        hardState === undefined && this.#newSnapshot === undefined,
      messages: this.#messages,
      messagesAfterPersist: this.#afterPersist,
      committed,
      reads: this.#readStates,
      failedReads: this.#failedReads,
    };
    this.#hardDirty = false;
    this.#promptWrite = false;
    this.#newSnapshot = undefined;
    this.#applied = this.#commit;
    this.#messages = [];
    this.#afterPersist = [];
    this.#readStates = [];
    this.#failedReads = [];
    return ready;
  }

  // ---------------------------------------------------------------- roles

  #resetElectionTimeout(): void {
    this.#electionTimeout = this.#electionTicks +
      this.#random.int(this.#electionTicks);
  }

  #becomeFollower(term: number, leader: ReplicaId | undefined): void {
    if (this.#role === "leader") this.#stepDown();
    if (term > this.#term) {
      this.#term = term;
      this.#votedFor = null;
      this.#hardDirty = true;
    }
    this.#role = "follower";
    this.#leader = leader;
    this.#votes.clear();
    this.#electionElapsed = 0;
    this.#resetElectionTimeout();
  }

  #stepDown(): void {
    this.#failedReads.push(...this.#reads.clear());
    this.#progress.clear();
    this.#committedInTerm = false;
  }

  /** Starts a pre-vote round (or, alone, becomes leader at once). */
  #campaign(): void {
    this.#role = "pre-candidate";
    this.#leader = undefined;
    this.#electionElapsed = 0;
    this.#resetElectionTimeout();
    this.#votes = new Map([[this.#id, true]]);
    this.#preVotes++;
    if (this.#quorum === 1) {
      this.#startElection();
      return;
    }
    const request = this.#voteRequest(this.#term + 1, true);
    for (const peer of this.#peers) {
      this.#messages.push({ to: peer, message: request });
    }
  }

  #startElection(): void {
    this.#term++;
    this.#votedFor = this.#id;
    this.#hardDirty = true;
    this.#role = "candidate";
    this.#votes = new Map([[this.#id, true]]);
    this.#elections++;
    if (this.#quorum === 1) {
      this.#becomeLeader();
      return;
    }
    const request = this.#voteRequest(this.#term, false);
    for (const peer of this.#peers) {
      this.#afterPersist.push({ to: peer, message: request });
    }
  }

  /** A (pre-)vote request for `term`, with this replica's last log position. */
  #voteRequest(term: number, pre: boolean): VoteRequest {
    return {
      type: "vote",
      term,
      pre,
      lastIndex: this.#log.lastIndex,
      lastTerm: this.#log.lastTerm,
    };
  }

  #becomeLeader(): void {
    this.#role = "leader";
    this.#leader = this.#id;
    this.#votes.clear();
    this.#heartbeatElapsed = 0;
    this.#quorumElapsed = 0;
    this.#round = 0;
    this.#committedInTerm = false;
    this.#leaderships++;
    const next = this.#log.lastIndex + 1;
    this.#progress = new Map(this.#peers.map((p) => [p, new Progress(next)]));
    this.#log.append({ term: this.#term, index: next, command: null });
    this.#promptWrite = true;
    this.#maybeCommit();
  }

  /** Handles a leader's append or snapshot in the current term; `false` if it makes no sense. */
  #acceptLeader(from: ReplicaId): boolean {
    if (this.#role === "leader") {
      this.#dropped++; // two leaders in one term: impossible from a correct peer
      return false;
    }
    if (this.#role !== "follower" || this.#leader !== from) {
      this.#becomeFollower(this.#term, from);
    }
    this.#electionElapsed = 0;
    return true;
  }

  #answerStale(from: ReplicaId, m: RaftMessage<C>): void {
    // Tell a deposed leader about the newer term so it steps down.
    if (m.type === "append") {
      const reply: AppendReply = {
        type: "append_reply",
        term: this.#term,
        success: false,
        index: 0,
        round: m.round,
        rejected: m.prevIndex,
      };
      this.#messages.push({ to: from, message: reply });
    } else if (m.type === "snapshot") {
      const reply: SnapshotReply = {
        type: "snapshot_reply",
        term: this.#term,
        meta: m.meta,
        received: 0,
        rejected: true,
      };
      this.#messages.push({ to: from, message: reply });
    }
  }

  // ---------------------------------------------------------------- votes

  #inLease(): boolean {
    return this.#role === "leader" ||
      (this.#role === "follower" && this.#leader !== undefined &&
        this.#electionElapsed < this.#electionTicks);
  }

  #upToDate(m: VoteRequest): boolean {
    const lastTerm = this.#log.lastTerm;
    return m.lastTerm > lastTerm ||
      (m.lastTerm === lastTerm && m.lastIndex >= this.#log.lastIndex);
  }

  #onVote(from: ReplicaId, m: VoteRequest): void {
    const reply = (granted: boolean, afterPersist: boolean): void => {
      const message: VoteReply = {
        type: "vote_reply",
        term: granted ? m.term : this.#term,
        pre: m.pre,
        granted,
      };
      (afterPersist ? this.#afterPersist : this.#messages).push({
        to: from,
        message,
      });
    };
    if (m.pre) {
      reply(
        m.term > this.#term && !this.#inLease() && this.#upToDate(m),
        false,
      );
      return;
    }
    if (m.term < this.#term) {
      this.#stale++;
      reply(false, false);
      return;
    }
    if (m.term > this.#term) {
      if (this.#inLease()) {
        reply(false, false);
        return;
      }
      this.#becomeFollower(m.term, undefined);
    }
    if (
      (this.#votedFor === null || this.#votedFor === from) && this.#upToDate(m)
    ) {
      if (this.#votedFor === null) {
        this.#votedFor = from;
        this.#hardDirty = true;
      }
      this.#electionElapsed = 0;
      reply(true, true);
    } else {
      reply(false, false);
    }
  }

  #onVoteReply(from: ReplicaId, m: VoteReply): void {
    if (m.pre) {
      if (this.#role !== "pre-candidate") return;
      if (m.granted && m.term !== this.#term + 1) return;
    } else if (this.#role !== "candidate") {
      return;
    }
    this.#votes.set(from, m.granted);
    let granted = 0;
    let rejected = 0;
    for (const vote of this.#votes.values()) vote ? granted++ : rejected++;
    if (granted >= this.#quorum) {
      if (m.pre) this.#startElection();
      else this.#becomeLeader();
    } else if (rejected >= this.#quorum) {
      this.#becomeFollower(this.#term, undefined);
    }
  }

  // ------------------------------------------------------------ follower

  #onAppend(from: ReplicaId, m: AppendRequest<C>): void {
    const log = this.#log;
    const snapIndex = log.snapIndex;
    let prevIndex = m.prevIndex;
    let prevTerm = m.prevTerm;
    let entries = m.entries;
    const reply = (success: boolean, index: number): void => {
      const base = {
        type: "append_reply",
        term: this.#term,
        success,
        index,
        round: m.round,
      } as const;
      const message: AppendReply = success
        ? base
        : { ...base, rejected: m.prevIndex };
      (success ? this.#afterPersist : this.#messages).push({
        to: from,
        message,
      });
    };
    if (prevIndex < snapIndex) {
      // The prefix is in our snapshot: committed, so identical.
      const skip = snapIndex - prevIndex;
      if (skip >= entries.length) {
        this.#advanceCommit(Math.min(m.commit, snapIndex));
        reply(true, snapIndex);
        return;
      }
      if (entries[skip - 1].term !== log.snapTerm) {
        this.#dropped++;
        return;
      }
      entries = entries.slice(skip);
      prevIndex = snapIndex;
      prevTerm = log.snapTerm;
    }
    if (log.term(prevIndex) !== prevTerm) {
      let hint: number;
      if (prevIndex > log.lastIndex) {
        hint = log.lastIndex;
      } else {
        hint = Math.max(log.termStart(prevIndex) - 1, this.#commit);
      }
      reply(false, hint);
      return;
    }
    let i = 0;
    for (; i < entries.length; i++) {
      const entry = entries[i];
      const term = log.term(entry.index);
      if (term === undefined) break;
      if (term !== entry.term) {
        if (entry.index <= this.#commit) {
          this.#dropped++; // would rewrite a committed entry
          return;
        }
        log.truncateFrom(entry.index);
        break;
      }
    }
    if (i < entries.length && m.lazy !== true) this.#promptWrite = true;
    for (; i < entries.length; i++) log.append(entries[i]);
    const verified = prevIndex + entries.length;
    this.#advanceCommit(Math.min(m.commit, verified));
    reply(true, verified);
  }

  #advanceCommit(index: number): void {
    if (index > this.#commit) this.#commit = index;
  }

  #onChunk(from: ReplicaId, m: SnapshotChunk): void {
    const reply = (
      received: number,
      rejected: boolean,
      afterPersist = false,
    ): void => {
      const message: SnapshotReply = {
        type: "snapshot_reply",
        term: this.#term,
        meta: m.meta,
        received,
        rejected,
      };
      (afterPersist ? this.#afterPersist : this.#messages).push({
        to: from,
        message,
      });
    };
    if (m.meta.index <= this.#commit) {
      reply(0, true);
      return;
    }
    let assembly = this.#assembly;
    if (assembly === undefined || !assembly.matches(from, m)) {
      if (m.offset !== 0) {
        reply(0, false);
        return;
      }
      assembly = new SnapshotAssembly(from, m);
      this.#assembly = assembly;
    } else if (m.offset !== assembly.received) {
      assembly.hold(m); // early: kept until the gap before it fills
      reply(assembly.received, false);
      return;
    }
    if (!assembly.add(m)) {
      this.#dropped++;
      this.#assembly = undefined;
      return;
    }
    if (!assembly.complete) {
      reply(assembly.received, false);
      return;
    }
    this.#assembly = undefined;
    const snapshot = assembly.snapshot();
    this.#log.install(snapshot.meta);
    this.#commit = snapshot.meta.index;
    this.#applied = snapshot.meta.index;
    this.#snapshot = snapshot;
    this.#newSnapshot = snapshot;
    this.#snapshotsInstalled++;
    reply(assembly.total, false, true);
  }

  // -------------------------------------------------------------- leader

  #tickLeader(): void {
    this.#quorumElapsed++;
    if (this.#quorumElapsed >= this.#electionTicks) {
      this.#quorumElapsed = 0;
      let active = 1;
      for (const pr of this.#progress.values()) {
        if (pr.active) active++;
        pr.active = false;
      }
      if (active < this.#quorum) {
        this.#becomeFollower(this.#term, undefined);
        return;
      }
    }
    const stallLimit = 2 * this.#heartbeatTicks;
    for (const pr of this.#progress.values()) {
      const waiting = pr.state === "replicate"
        ? pr.inflight.length > 0
        : pr.state === "snapshot" && pr.snapshotChunk > this.#ackedChunks(pr);
      pr.stall = waiting ? pr.stall + 1 : 0;
      if (pr.stall >= stallLimit) {
        // Something was lost: resend from what the follower acknowledged.
        if (pr.state === "snapshot") this.#resyncSnapshot(pr);
        else pr.probe(pr.match + 1);
      }
      // A commit no append carried since: tell it now, in an empty append
      // unless entries go to this follower at the same flush.
      if (pr.sentCommit < this.#commit) pr.heartbeatDue = true;
    }
    this.#heartbeatElapsed++;
    if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      for (const pr of this.#progress.values()) {
        pr.heartbeatDue = true;
        if (pr.state === "probe") pr.paused = false;
      }
    }
  }

  /**
   * Resends a stalled snapshot transfer from the acknowledged chunk and
   * takes the follower's next reply as the truth, even if it is lower (the
   * follower lost its partial transfer, or `snapshotAcked` came from a stale
   * reply).
   */
  #resyncSnapshot(pr: Progress): void {
    pr.snapshotChunk = this.#ackedChunks(pr);
    pr.snapshotResync = true;
    pr.stall = 0;
  }

  #ackedChunks(pr: Progress): number {
    const total = pr.snapshot?.data.length ?? 0;
    return pr.snapshotAcked >= total
      ? chunkCount(total, this.#chunkBytes)
      : Math.floor(pr.snapshotAcked / this.#chunkBytes);
  }

  #maybeCommit(): void {
    const matches = [this.#log.persistedIndex];
    for (const pr of this.#progress.values()) matches.push(pr.match);
    matches.sort((a, b) => b - a);
    const index = matches[this.#quorum - 1];
    if (index <= this.#commit || this.#log.term(index) !== this.#term) return;
    this.#commit = index;
    if (!this.#committedInTerm) {
      this.#committedInTerm = true;
      this.#reads.setIndex(index);
    }
  }

  #onAppendReply(from: ReplicaId, m: AppendReply): void {
    const pr = this.#progress.get(from)!;
    pr.active = true;
    if (m.round > this.#round) {
      this.#dropped++;
      return;
    }
    if (m.round > pr.ackedRound) pr.ackedRound = m.round;
    if (m.success) {
      if (m.index > this.#log.lastIndex) {
        this.#dropped++;
        return;
      }
      // A success that brings no progress (a heartbeat's, a duplicate, a
      // late one) changes nothing: in probe state the next probe waits for
      // the next heartbeat interval.
      if (m.index > pr.match) {
        pr.match = m.index;
        pr.stall = 0;
        pr.freeThrough(m.index);
        if (pr.next <= m.index) pr.next = m.index + 1;
        if (pr.state === "probe") pr.replicate();
        else if (
          pr.state === "snapshot" && pr.snapshot !== undefined &&
          pr.match >= pr.snapshot.meta.index
        ) {
          pr.probe(pr.match + 1);
        }
        this.#maybeCommit();
      } else if (
        pr.state === "probe" && m.index >= pr.next - 1 &&
        pr.next > this.#log.lastIndex
      ) {
        // The follower has everything: pipeline what comes next. (With
        // entries to send, this is a stale reply: the probe carries them.)
        pr.replicate();
      }
      return;
    }
    const rejected = m.rejected!; // validated: present on a rejection
    const hint = Math.min(m.index, rejected - 1) + 1;
    if (pr.state === "replicate") {
      // Only the rejection of an append we wait for (beyond the match point:
      // heartbeats are sent at it) says anything.
      if (rejected > pr.match && pr.awaits(rejected)) pr.probe(hint);
    } else if (pr.state === "probe") {
      // Only the rejection of the probe we wait for, and only if it moves
      // the probe back; otherwise the next heartbeat interval probes again.
      if (rejected === pr.next - 1 && Math.max(hint, pr.match + 1) < pr.next) {
        pr.probe(hint);
      }
    }
  }

  #onSnapshotReply(from: ReplicaId, m: SnapshotReply): void {
    const pr = this.#progress.get(from)!;
    pr.active = true;
    const snapshot = pr.snapshot;
    if (
      pr.state !== "snapshot" || snapshot === undefined ||
      m.meta.index !== snapshot.meta.index || m.meta.term !== snapshot.meta.term
    ) {
      return;
    }
    if (m.rejected) {
      // The follower already committed through the snapshot.
      pr.probe(snapshot.meta.index + 1);
      return;
    }
    if (m.received > snapshot.data.length) {
      this.#dropped++;
      return;
    }
    if (m.received === snapshot.data.length) {
      // Installed (replies to the last chunk come after the follower's sync).
      if (snapshot.meta.index > pr.match) pr.match = snapshot.meta.index;
      pr.probe(pr.match + 1);
      this.#maybeCommit();
      return;
    }
    if (pr.snapshotResync) {
      // After a stall: believe the follower, even if it holds less.
      pr.snapshotResync = false;
      if (m.received < pr.snapshotAcked) {
        pr.snapshotAcked = m.received;
        pr.snapshotChunk = this.#ackedChunks(pr);
        return;
      }
    }
    if (m.received > pr.snapshotAcked) {
      pr.snapshotAcked = m.received;
      pr.stall = 0;
      // Never resend what the follower holds.
      pr.snapshotChunk = Math.max(pr.snapshotChunk, this.#ackedChunks(pr));
    }
    // A lower reply is stale or duplicated, or the follower lost its
    // partial transfer: sending on it would multiply messages, so the
    // stall timer restarts the transfer instead.
  }

  /** Moves the leader's pending sends into the outbox. */
  #flush(): void {
    if (this.#role !== "leader") return;
    if (this.#reads.needsRound) {
      this.#round++;
      this.#reads.assignRound(this.#round);
      for (const pr of this.#progress.values()) pr.heartbeatDue = true;
    }
    for (const [peer, pr] of this.#progress) this.#sendTo(peer, pr);
    if (this.#reads.size > 0) {
      this.#readStates.push(
        ...this.#reads.confirm((round) => this.#acked(round)),
      );
    }
  }

  #acked(round: number): boolean {
    let count = 1;
    for (const pr of this.#progress.values()) {
      if (pr.ackedRound >= round) count++;
    }
    return count >= this.#quorum;
  }

  #sendTo(peer: ReplicaId, pr: Progress): void {
    let sent = false;
    while (pr.state !== "snapshot") {
      if (pr.state === "probe" && pr.paused) break;
      if (pr.state === "replicate" && pr.inflight.length >= this.#maxInflight) {
        break;
      }
      const prevIndex = pr.next - 1;
      const prevTerm = this.#log.term(prevIndex);
      if (prevTerm === undefined) {
        if (this.#snapshot === undefined) break; // cannot happen: compaction keeps one
        pr.sendSnapshot(this.#snapshot);
        this.#snapshotsSent++;
        break;
      }
      const entries = pr.next <= this.#log.lastIndex
        ? this.#log.batch(
          pr.next,
          this.#maxEntries,
          this.#maxBytes,
          this.#entrySize,
        )
        : [];
      if (entries.length === 0 && pr.state === "replicate") break;
      this.#sendAppend(peer, pr, prevIndex, prevTerm, entries);
      sent = true;
      if (pr.state === "probe") {
        pr.paused = true;
        break;
      }
      const last = entries[entries.length - 1].index;
      pr.next = last + 1;
      pr.inflight.push({ prev: prevIndex, last });
    }
    if (pr.state === "snapshot") {
      this.#sendChunks(peer, pr);
      sent = false; // chunks carry no round or commit: heartbeat as usual
    }
    // A new commit index alone does not send: it waits for the next append
    // with entries or for the next tick (#tickLeader), which sets
    // `heartbeatDue`. Heartbeats and read rounds go at once.
    if (!sent && pr.heartbeatDue) {
      const prevTerm = this.#log.term(pr.match);
      const prevIndex = prevTerm === undefined ? 0 : pr.match;
      this.#sendAppend(peer, pr, prevIndex, prevTerm ?? 0, []);
    }
    pr.heartbeatDue = false;
  }

  /** The size of an entry's command, by `sizeOf`, computed once per entry. */
  readonly #entrySize = (entry: LogEntry<C>): number => {
    if (entry.command === null) return 4;
    let size = this.#sizes.get(entry);
    if (size === undefined) {
      size = this.#sizeOf(entry.command);
      this.#sizes.set(entry, size);
    }
    return size;
  };

  #sendAppend(
    peer: ReplicaId,
    pr: Progress,
    prevIndex: number,
    prevTerm: number,
    entries: LogEntry<C>[],
  ): void {
    const message: AppendRequest<C> = {
      type: "append",
      term: this.#term,
      prevIndex,
      prevTerm,
      entries,
      commit: this.#commit,
      round: this.#round,
      ...(entries.length > 0 && !this.#countsOn(peer) ? { lazy: true } : {}),
    };
    pr.sentCommit = this.#commit;
    this.#messages.push({ to: peer, message });
  }

  /**
   * Whether this leader counts on `peer` to commit promptly. It needs
   * quorum - 1 followers besides itself: the first ones in configuration
   * order among those replicating, or every follower while fewer than
   * that replicate. Appends with entries to the others are `lazy`.
   */
  #countsOn(peer: ReplicaId): boolean {
    const needed = this.#quorum - 1;
    let replicating = 0;
    for (const other of this.#peers) {
      if (this.#progress.get(other)?.state !== "replicate") continue;
      if (other === peer) return replicating < needed;
      replicating++;
    }
    return replicating < needed;
  }

  #sendChunks(peer: ReplicaId, pr: Progress): void {
    const snapshot = pr.snapshot!;
    const count = chunkCount(snapshot.data.length, this.#chunkBytes);
    const limit = Math.min(count, this.#ackedChunks(pr) + SNAPSHOT_WINDOW);
    while (pr.snapshotChunk < limit) {
      const message = snapshotChunk(
        snapshot,
        pr.snapshotChunk,
        this.#chunkBytes,
        this.#term,
      );
      this.#messages.push({ to: peer, message });
      pr.snapshotChunk++;
    }
  }
}
