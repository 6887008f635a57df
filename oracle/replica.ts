/**
 * One Oracle replica: the driver that wires the consensus core
 * ({@linkcode RaftNode}), the write-ahead log ({@linkcode Wal}) and the
 * state machine ({@linkcode OracleStateMachine}) to a transport, a clock
 * and a storage handed in.
 *
 * It does no I/O of its own either: the same class runs over TCP and files
 * (see `OracleServer`) and inside the simulator. Clients talk to the
 * leader; a follower answers `not_leader` with the leader's id. Writes from
 * every client that arrive in one turn of the event loop go into one log
 * entry; while an entry of writes is being committed, new writes wait and
 * go together into the next one; and entries written while a sync is in
 * flight share the next sync (group commit). Reads wait for a read-index
 * round and are served from the leader's applied state. The leader pushes
 * channel events to subscribers and lock grants to waiters, and expires
 * sessions whose keep-alives stopped.
 *
 * In a tree of Oracle groups, a child group's leader also adopts the
 * prefixes its parent delegated to it and ends the sessions its root no
 * longer has live (see {@linkcode OracleReplicaOptions.tree}).
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import { type Logger, silentLogger } from "../runtime/log.ts";
import type { Random } from "../runtime/random.ts";
import type { Storage } from "../runtime/storage.ts";
import { JsonCodec } from "../transport/codec.ts";
import type { PeerId, Transport } from "../transport/transport.ts";
import {
  type ClientRequest,
  type Delegation,
  type EntryCommand,
  type Json,
  type OpResult,
  type OracleErrorResult,
  type OracleTree,
  ownerPath,
  type ReadOp,
} from "./commands.ts";
import { isUnder } from "./path.ts";
import { isReadOp } from "./_op_path.ts";
import { RaftNode } from "./raft.ts";
import type {
  LogEntry,
  Outgoing,
  RaftMessage,
  RaftReady,
  ReplicaId,
  Snapshot,
} from "./raft_types.ts";
import {
  type ApplyOutput,
  OracleStateMachine,
  type StateMachineOptions,
} from "./state_machine.ts";
import { parseClientFrame } from "./validate.ts";
import { Wal, type WalOptions } from "./wal.ts";
import { SubscriptionTable } from "./_subscriptions.ts";
import { SyncQueue } from "./_sync_queue.ts";
import { TreeSync } from "./_tree_sync.ts";
import type {
  ClientFrame,
  ReplicaToClientFrame,
  RequestFrame,
} from "./wire.ts";

/** Options of {@linkcode OracleReplica.open}. */
export interface OracleReplicaOptions {
  /** This replica's id: one of `replicas`, and its transport's peer id. */
  id: ReplicaId;
  /** Every replica of the group (3 or 5; 1 for tests), this one included. */
  replicas: readonly ReplicaId[];
  /** Connects this replica to the other replicas and to clients. */
  transport: Transport;
  /** Where the write-ahead log and snapshots live. */
  storage: Storage;
  /** Timers and the time used for session expiry. */
  clock: Clock;
  /** Randomizes election timeouts. */
  random: Random;
  /** Where events are reported. Default: `silentLogger`. */
  logger?: Logger | undefined;
  /** Milliseconds per consensus tick. Default 10. */
  tickMs?: number | undefined;
  /** Follower election timeout in ticks (randomized up to twice). Default 30. */
  electionTicks?: number | undefined;
  /** Leader heartbeat interval in ticks. Default 5. */
  heartbeatTicks?: number | undefined;
  /**
   * Sync the log before acknowledging (default `true`). With `false`,
   * entries are written but acknowledged before they are durable: a power
   * loss of a majority can lose acknowledged operations.
   */
  syncBeforeAck?: boolean | undefined;
  /**
   * How long a follower may delay syncing entries the leader marked lazy
   * (it has enough other followers to commit them), in milliseconds.
   * Default 2.
   */
  lazySyncMs?: number | undefined;
  /** Take a snapshot and truncate the log every this many applied entries. Default 20,000. */
  snapshotEvery?: number | undefined;
  /** Most client requests in one log entry. Default 512. */
  maxBatchRequests?: number | undefined;
  /** Most client requests waiting to be proposed or answered. Default 100,000. */
  maxPendingRequests?: number | undefined;
  /** Options of the state machine (retention, limits). */
  stateMachine?: StateMachineOptions | undefined;
  /** Options of the write-ahead log. */
  wal?: WalOptions | undefined;
  /** Hooks for checkers (the simulator): called as entries are applied. */
  observer?: OracleReplicaObserver | undefined;
  /**
   * For a child group of a tree of Oracle groups (set `stateMachine.treeRoot`
   * to `false` too): how its leader reaches the parent and the root. While
   * it leads, it adopts the prefixes the parent delegated to this group,
   * and ends the sessions the root no longer has live: the root is the
   * home of every session of the tree, so a session that ended there (it
   * closed or expired) ends in every child group too. A root has none.
   */
  tree?: OracleTreeLink | undefined;
}

/** How a child group's replicas reach their parent and the root (see {@linkcode OracleReplicaOptions.tree}). */
export interface OracleTreeLink {
  /** This group's name, as its parent's delegations name it. */
  readonly name: string;
  /** Connects to the parent and the root; called when this replica becomes leader, closed when it stops leading. */
  connect(): Promise<OracleTreeUpstream>;
  /** Milliseconds between two syncs. Default 200. */
  readonly syncMs?: number | undefined;
}

/** What a child group's leader asks upstream. */
export interface OracleTreeUpstream {
  /** The parent's place in the tree: its delegations and last fencing token (its `get_tree`). */
  tree(): Promise<OracleTree>;
  /** Which of `sessions` the root no longer has live (its `ended_sessions`). */
  endedSessions(sessions: readonly string[]): Promise<readonly string[]>;
  /** Releases the connections. */
  close(): Promise<void>;
}

/** Hooks a checker can attach to a replica. */
export interface OracleReplicaObserver {
  /** An entry was applied (`command` is `null` for a leader's no-op). */
  applied?(
    replica: ReplicaId,
    entry: LogEntry<EntryCommand>,
  ): void;
  /** The replica restored its state machine from a snapshot at `index`. */
  restored?(replica: ReplicaId, index: number): void;
  /** The replica became leader (`true`) or stopped leading (`false`). */
  leadership?(replica: ReplicaId, leader: boolean): void;
}

/** Counters of one replica; they only grow. */
export interface OracleReplicaCounters {
  /** Client frames received. */
  clientFrames: number;
  /** Frames that were not valid JSON or not a known frame: dropped. */
  malformedFrames: number;
  /** Client frames refused by validation (answered with an error when possible). */
  invalidRequests: number;
  /** Consensus frames from peers that are not replicas: refused. */
  foreignRaftFrames: number;
  /** Requests answered `not_leader`. */
  notLeader: number;
  /** Writes proposed. */
  writes: number;
  /** Log entries proposed by this replica as leader. */
  proposals: number;
  /** Reads served. */
  reads: number;
  /** Requests refused because too many were pending. */
  overloaded: number;
  /** Sessions this leader proposed to expire. */
  expiries: number;
  /** Snapshots taken. */
  snapshots: number;
  /** Entries applied. */
  applied: number;
  /** Sends the transport refused or could not route. */
  sendFailures: number;
  /** Prefixes this leader proposed to adopt because its parent delegated them (child groups). */
  treeAdopts: number;
  /** Sessions this leader proposed to expire because the root ended them (child groups). */
  treeExpiries: number;
  /** Syncs with the parent or the root that failed (child groups). */
  treeSyncFailures: number;
}

/** A JSON view of a replica's state, for status endpoints and tests. */
export interface OracleReplicaStatus {
  /** This replica's id. */
  id: ReplicaId;
  /** Its consensus role: follower, pre-candidate, candidate or leader. */
  role: string;
  /** Its current term. */
  term: number;
  /** The leader it knows of, or `null`. */
  leader: ReplicaId | null;
  /** The highest log index known committed. */
  commitIndex: number;
  /** The highest log index applied to the state machine. */
  appliedIndex: number;
  /** The last index in its log. */
  lastIndex: number;
  /** Live sessions. */
  sessions: number;
  /** Subscriptions it serves (leader only). */
  subscriptions: number;
  /** Client writes waiting to be proposed or answered. */
  pendingRequests: number;
  /** Log syncs started. */
  syncs: number;
  /** `true` once stopped. */
  stopped: boolean;
  /** Why it stopped on its own (a storage failure), or `null`. */
  failure: string | null;
  /** Counters that only grow. */
  counters: OracleReplicaCounters;
  /** Its group's place in a tree of Oracle groups. */
  tree: {
    /** The group's name in the tree, or `null` for a root. */
    name: string | null;
    /** The prefixes the group owns (`["/"]` for a root). */
    owns: readonly string[];
    /** The delegations the group made. */
    delegations: readonly Delegation[];
  };
}

interface PendingWrite {
  readonly client: PeerId;
  readonly request: ClientRequest;
}

interface PendingRead {
  readonly client: PeerId;
  readonly r: number;
  readonly session: string;
  readonly op: ReadOp;
}

/**
 * One replica of an Oracle group.
 *
 * @example Three replicas and a client in the simulator
 * ```ts
 * import assert from "node:assert/strict";
 * import { Simulation } from "@cohort/cohort/sim";
 * import { OracleClient, OracleReplica } from "@cohort/cohort/oracle";
 *
 * const sim = new Simulation({ seed: 1 });
 * const ids = ["r1", "r2", "r3"];
 * for (const id of ids) {
 *   sim.addNode(id, (env) => {
 *     const replica = OracleReplica.open({
 *       id,
 *       replicas: ids,
 *       transport: env.transport,
 *       storage: env.storage,
 *       clock: env.clock,
 *       random: env.random,
 *     });
 *     return { stop: () => replica.stop() };
 *   }, { down: true });
 * }
 * for (const id of ids) sim.start(id);
 * let seq = 0;
 * sim.addNode("client", (env) => {
 *   const client = new OracleClient(env.transport, {
 *     replicas: ids,
 *     clock: env.clock,
 *     random: env.random,
 *   });
 *   client.open()
 *     .then(() => client.append("/log", "hello"))
 *     .then((result) => seq = result.seq);
 *   return {};
 * });
 * await sim.runUntilAsync(() => seq > 0, { maxTime: 10_000 });
 * assert.equal(seq, 1);
 * ```
 */
export class OracleReplica {
  readonly #id: ReplicaId;
  readonly #replicas: ReadonlySet<ReplicaId>;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #tickMs: number;
  readonly #syncBeforeAck: boolean;
  readonly #snapshotEvery: number;
  readonly #maxBatch: number;
  readonly #maxPending: number;
  readonly #smOptions: StateMachineOptions | undefined;
  readonly #observer: OracleReplicaObserver | undefined;
  readonly #raft: RaftNode<EntryCommand>;
  readonly #wal: Wal<EntryCommand>;
  readonly #sync: SyncQueue;
  /** Encodes into one reused buffer: transports copy a frame on `send`. */
  readonly #codec = new JsonCodec<unknown>();
  readonly #subs: SubscriptionTable;
  /** A child group's sync with its parent and root, while leading. */
  readonly #treeSync: TreeSync | undefined;
  /** The group's name in the tree (`null`: a root). */
  readonly #treeName: string | null;
  #sm: OracleStateMachine;
  #appliedTerm = 0;
  #lastSnapshotIndex = 0;
  #snapshotting = false;

  /** Writes waiting to be proposed in the next entry. */
  #batch: PendingWrite[] = [];
  /**
   * The last entry of client writes this replica proposed as leader (index
   * and term): while it is not committed, new writes wait to be proposed
   * together once it is (consensus-level group commit).
   */
  #proposed = { index: 0, term: 0 };
  /** Writes proposed or waiting, by `session:req`, until their reply: who asked, and its request number. */
  readonly #pendingWrites = new Map<string, { client: PeerId; r: number }>();
  /** Reads waiting for their read-index round, by read id. */
  readonly #pendingReads = new Map<number, PendingRead[]>();
  /** Reads confirmed, waiting for the applied index to reach theirs. */
  #readyReads: { index: number; reads: PendingRead[] }[] = [];
  #readBatch: PendingRead[] = [];
  #nextReadId = 1;
  /** Leader only: when each live session was last heard from (its TTL is the state machine's). */
  readonly #sessionSeen = new Map<string, number>();
  readonly #expiring = new Set<string>();
  #wasLeader = false;
  #tickTimer: TimerId | undefined;
  #ticks = 0;
  #scheduled = false;
  #stopped = false;
  #failure: Error | undefined;
  readonly #counters: OracleReplicaCounters = {
    clientFrames: 0,
    malformedFrames: 0,
    invalidRequests: 0,
    foreignRaftFrames: 0,
    notLeader: 0,
    writes: 0,
    proposals: 0,
    reads: 0,
    overloaded: 0,
    expiries: 0,
    snapshots: 0,
    applied: 0,
    sendFailures: 0,
    treeAdopts: 0,
    treeExpiries: 0,
    treeSyncFailures: 0,
  };

  private constructor(options: OracleReplicaOptions) {
    const replicas = [...options.replicas];
    if (!replicas.includes(options.id)) {
      throw new TypeError(
        `Cannot start replica ${
          JSON.stringify(options.id)
        }: it is not in the replica set ${JSON.stringify(replicas)}`,
      );
    }
    if (options.transport.id !== options.id) {
      throw new TypeError(
        `Cannot start replica ${
          JSON.stringify(options.id)
        }: its transport's id is ${JSON.stringify(options.transport.id)}`,
      );
    }
    this.#id = options.id;
    this.#replicas = new Set(replicas);
    this.#transport = options.transport;
    this.#clock = options.clock;
    this.#log = options.logger ?? silentLogger;
    this.#tickMs = positive("tickMs", options.tickMs ?? 10);
    this.#syncBeforeAck = options.syncBeforeAck ?? true;
    this.#snapshotEvery = positive(
      "snapshotEvery",
      options.snapshotEvery ?? 20_000,
    );
    this.#maxBatch = positive(
      "maxBatchRequests",
      options.maxBatchRequests ?? 512,
    );
    this.#maxPending = positive(
      "maxPendingRequests",
      options.maxPendingRequests ?? 100_000,
    );
    this.#smOptions = options.stateMachine;
    this.#observer = options.observer;

    const { wal, restored, tornTailRepaired } = Wal.open<EntryCommand>(
      options.storage,
      options.wal,
    );
    this.#wal = wal;
    if (tornTailRepaired) {
      this.#log.log("warn", "oracle.wal.torn_tail_repaired", { id: this.#id });
    }
    this.#sm = new OracleStateMachine(this.#smOptions);
    if (restored.snapshot !== undefined) this.#restore(restored.snapshot);
    this.#raft = new RaftNode<EntryCommand>({
      id: this.#id,
      replicas,
      random: options.random,
      electionTicks: options.electionTicks,
      heartbeatTicks: options.heartbeatTicks,
    }, restored);
    this.#sync = new SyncQueue(
      (done) => this.#wal.sync(done),
      (error) => this.#fail(error),
      this.#clock,
      positive("lazySyncMs", options.lazySyncMs ?? 2),
    );
    this.#subs = new SubscriptionTable({
      events: (client, id, events) =>
        this.#sendClient(client, { t: "ev", id, events }),
      end: (client, id, err) =>
        this.#sendClient(client, { t: "subend", id, err }),
    }, { window: 4096, eventsPerFrame: 256, perClient: 1024 });
    this.#treeName = options.tree?.name ?? null;
    this.#treeSync = options.tree === undefined
      ? undefined
      : new TreeSync(options.tree, {
        id: this.#id,
        clock: this.#clock,
        logger: this.#log,
        counters: this.#counters,
        appliedIndex: () => this.#sm.appliedIndex,
        ownedPrefixes: () => this.#sm.ownedPrefixes(),
        liveSessions: () => this.#sm.liveSessions(),
        adopt: (prefixes, tokens) => this.#proposeAdopt(prefixes, tokens),
        expire: (sessions) => this.#expireEnded(sessions),
      });
    this.#log.log("info", "oracle.replica.start", {
      id: this.#id,
      replicas,
      term: restored.hardState.term,
      snapshot: restored.snapshot?.meta.index ?? 0,
      entries: restored.entries.length,
    });
    this.#transport.setHandler({
      onFrame: (from, payload) => this.#onFrame(from, payload),
      onPeerDown: (peer) => this.#onPeerDown(peer),
    });
    this.#tickTimer = this.#clock.setTimer(this.#tickMs, this.#onTick);
    this.#schedule();
  }

  /**
   * Recovers a replica from its storage and starts it: it installs itself
   * as the transport's handler and starts its timers.
   *
   * @param options Identity, transport, storage, clock and tuning.
   * @returns The running replica.
   * @throws {TypeError} if `id` is not in `replicas` or differs from the transport's id.
   * @throws {WalCorruptionError} if the log is corrupted before its last record.
   */
  static open(options: OracleReplicaOptions): OracleReplica {
    return new OracleReplica(options);
  }

  /** This replica's id. */
  get id(): ReplicaId {
    return this.#id;
  }

  /** `true` while this replica believes it leads. */
  get isLeader(): boolean {
    return this.#raft.role === "leader";
  }

  /** The leader this replica knows of, if any. */
  get leader(): ReplicaId | undefined {
    return this.#raft.leader;
  }

  /** The index of the last applied entry. */
  get appliedIndex(): number {
    return this.#sm.appliedIndex;
  }

  /** The ids of the live sessions in the applied state, in the order they were opened (for checkers). */
  liveSessions(): string[] {
    return this.#sm.liveSessions();
  }

  /** A fingerprint of the applied state (equal on replicas at the same index). */
  digest(): string {
    return this.#sm.digest();
  }

  /**
   * Answers a read from this replica's applied state, at once: no
   * read-index round, no session, whatever the role. Not linearizable: a
   * follower (or a leader that was just deposed) may answer from a stale
   * state, missing writes another replica already acknowledged; the
   * answer reflects {@linkcode OracleReplica.appliedIndex} at the time of
   * the call. For admin pages and debugging inside a replica's process;
   * clients read linearizably through `OracleClient`.
   *
   * @example List the groups this replica knows about
   * ```ts ignore
   * const page = replica.inspect({ op: "list", kind: "groups", prefix: "/" });
   * if ("ok" in page) console.log(page.ok);
   * ```
   *
   * @param op A read: `read`, `get_lock`, `get_view`, `get_tree`,
   *   `ended_sessions` or `list`.
   * @returns What the state machine answers: `{ ok }` with the read's
   *   result, or `{ error }` (`invalid`, `invalid_path`, `unknown_op`,
   *   `compacted`, `moved`, `not_owner`). Never `not_leader`.
   */
  inspect(op: ReadOp): OpResult {
    return this.#withStatus(op, this.#sm.read(undefined, op));
  }

  /** A `get_status` answer completed with what the replica knows (others as they are). */
  #withStatus(op: ReadOp, result: OpResult): OpResult {
    if (op.op !== "get_status" || !("ok" in result)) return result;
    return {
      ok: {
        ...(result.ok as Record<string, Json>),
        leader: this.#raft.leader ?? null,
        term: this.#raft.term,
        commitIndex: this.#raft.commitIndex,
        appliedIndex: this.#sm.appliedIndex,
      },
    };
  }

  /** A JSON view of this replica. */
  status(): OracleReplicaStatus {
    const tree = this.#sm.tree();
    return {
      id: this.#id,
      role: this.#raft.role,
      term: this.#raft.term,
      leader: this.#raft.leader ?? null,
      commitIndex: this.#raft.commitIndex,
      appliedIndex: this.#sm.appliedIndex,
      lastIndex: this.#raft.lastIndex,
      sessions: this.#sm.sessions().length,
      subscriptions: this.#subs.size,
      pendingRequests: this.#pendingWrites.size + this.#batch.length,
      syncs: this.#sync.syncs,
      stopped: this.#stopped,
      failure: this.#failure?.message ?? null,
      counters: { ...this.#counters },
      tree: {
        name: this.#treeName,
        owns: tree.owns,
        delegations: tree.delegations,
      },
    };
  }

  /**
   * Stops the replica: timers stop and frames are ignored. What was synced
   * stays; the caller closes the transport and storage.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#tickTimer !== undefined) this.#clock.clearTimer(this.#tickTimer);
    this.#tickTimer = undefined;
    this.#treeSync?.stop();
    this.#sync.stop();
    this.#log.log("info", "oracle.replica.stop", {
      id: this.#id,
      syncs: this.#sync.syncs,
      ...this.#counters,
    });
  }

  // ---- inputs -------------------------------------------------------------

  readonly #onTick = (): void => {
    if (this.#stopped) return;
    this.#tickTimer = this.#clock.setTimer(this.#tickMs, this.#onTick);
    this.#raft.tick();
    this.#ticks++;
    if (this.#ticks % 10 === 0) this.#checkSessions();
    this.#process();
  };

  #onPeerDown(peer: PeerId): void {
    if (this.#stopped) return;
    if (this.#replicas.has(peer)) {
      this.#raft.peerDown(peer);
      this.#schedule();
    } else {
      this.#subs.dropClient(peer);
    }
  }

  #onFrame(from: PeerId, payload: Uint8Array): void {
    if (this.#stopped) return;
    let frame: unknown;
    try {
      frame = this.#codec.decode(payload);
    } catch {
      this.#counters.malformedFrames++;
      return;
    }
    if (
      typeof frame !== "object" || frame === null || Array.isArray(frame)
    ) {
      this.#counters.malformedFrames++;
      return;
    }
    const t = (frame as { t?: unknown }).t;
    if (t === "raft") {
      if (!this.#replicas.has(from) || from === this.#id) {
        this.#counters.foreignRaftFrames++;
        return;
      }
      const m = (frame as { m?: unknown }).m;
      if (typeof m !== "object" || m === null) {
        this.#counters.malformedFrames++;
        return;
      }
      this.#raft.step(from, m as RaftMessage<EntryCommand>);
      this.#schedule();
      return;
    }
    this.#counters.clientFrames++;
    const parsed = parseClientFrame(frame);
    if ("error" in parsed) {
      this.#counters.invalidRequests++;
      const r = (frame as { r?: unknown }).r;
      if (t === "req" && Number.isSafeInteger(r)) {
        this.#sendClient(from, { t: "res", r: r as number, err: parsed.error });
      }
      const id = (frame as { id?: unknown }).id;
      if (t === "sub" && Number.isSafeInteger(id)) {
        this.#sendClient(from, {
          t: "subend",
          id: id as number,
          err: parsed.error,
        });
      }
      return;
    }
    this.#onClientFrame(from, parsed.frame);
  }

  #onClientFrame(from: PeerId, frame: ClientFrame): void {
    switch (frame.t) {
      case "req":
        this.#onRequest(from, frame);
        return;
      case "sub": {
        if (!this.isLeader) {
          this.#counters.notLeader++;
          this.#sendClient(from, {
            t: "subend",
            id: frame.id,
            err: this.#notLeader(),
          });
          return;
        }
        const notOwned = this.#sm.owner(frame.path);
        if (notOwned !== undefined) {
          this.#subs.unsubscribe(from, frame.id);
          this.#sendClient(from, { t: "subend", id: frame.id, err: notOwned });
          return;
        }
        this.#subs.subscribe(
          this.#sm,
          from,
          frame.id,
          frame.path,
          frame.prefix,
          frame.from,
        );
        return;
      }
      case "unsub":
        this.#subs.unsubscribe(from, frame.id);
        return;
      case "suback":
        this.#subs.ack(this.#sm, from, frame.id, frame.upTo);
        return;
    }
  }

  #onRequest(from: PeerId, frame: RequestFrame): void {
    const reply = (result: { ok: Json } | { error: OracleErrorResult }) =>
      this.#sendClient(
        from,
        "ok" in result
          ? { t: "res", r: frame.r, ok: result.ok }
          : { t: "res", r: frame.r, err: result.error },
      );
    if (!this.isLeader) {
      this.#counters.notLeader++;
      reply({ error: this.#notLeader() });
      return;
    }
    const op = frame.op;
    if (op.op === "keepalive") {
      reply(this.#keepAlive(frame.s));
      return;
    }
    this.#touch(frame.s);
    if (this.#pendingWrites.size + this.#readBatch.length >= this.#maxPending) {
      this.#counters.overloaded++;
      reply({
        error: {
          code: "overloaded",
          message:
            `Replica ${this.#id} has ${this.#maxPending} requests pending: retry later`,
        },
      });
      return;
    }
    if (isReadOp(op)) {
      this.#readBatch.push({ client: from, r: frame.r, session: frame.s, op });
      this.#schedule();
      return;
    }
    const key = requestKey(frame.s, frame.r);
    this.#pendingWrites.set(key, { client: from, r: frame.r });
    this.#batch.push({
      client: from,
      request: { session: frame.s, req: frame.r, acked: frame.a, op },
    });
    this.#counters.writes++;
    this.#schedule();
  }

  /**
   * Answers a keep-alive. Until this leader has applied an entry of its
   * own term, its state may lack sessions opened under earlier leaders, so
   * it asks the client to retry rather than call a live session expired.
   */
  #keepAlive(session: string): OpResult {
    if (this.#appliedTerm < this.#raft.term) {
      this.#counters.overloaded++;
      return {
        error: {
          code: "overloaded",
          message:
            `Replica ${this.#id} was just elected and is catching up: retry`,
        },
      };
    }
    if (!this.#sm.hasSession(session)) {
      return {
        error: {
          code: "session_expired",
          message: `Session ${
            JSON.stringify(session)
          } does not exist or has expired`,
        },
      };
    }
    this.#sessionSeen.set(session, this.#clock.now());
    return { ok: null };
  }

  #touch(session: string): void {
    if (this.#sessionSeen.has(session)) {
      this.#sessionSeen.set(session, this.#clock.now());
    }
  }

  // ---- the processing loop ------------------------------------------------

  #schedule(): void {
    if (this.#scheduled || this.#stopped) return;
    this.#scheduled = true;
    this.#clock.defer(() => {
      this.#scheduled = false;
      this.#process();
    });
  }

  #process(): void {
    if (this.#stopped) return;
    this.#proposeBatch();
    this.#requestReads();
    for (let rounds = 0; rounds < 64 && this.#raft.hasReady(); rounds++) {
      this.#handleReady(this.#raft.ready());
      this.#proposeBatch();
      this.#requestReads();
    }
    if (this.#raft.hasReady()) this.#schedule();
    this.#leadershipChanges();
  }

  #proposeBatch(): void {
    if (this.#batch.length === 0) return;
    if (!this.isLeader) {
      const batch = this.#batch;
      this.#batch = [];
      for (const w of batch) {
        this.#pendingWrites.delete(
          requestKey(w.request.session, w.request.req),
        );
        this.#counters.notLeader++;
        this.#sendClient(w.client, {
          t: "res",
          r: w.request.req,
          err: this.#notLeader(),
        });
      }
      return;
    }
    // One entry of writes in flight at a time: writes that arrive while it
    // commits share the next entry, so that under load each entry (its
    // appends, acknowledgements and syncs on every replica) carries many
    // writes. A write arriving when nothing is in flight goes at once.
    const proposed = this.#proposed;
    if (
      proposed.term === this.#raft.term &&
      this.#raft.commitIndex < proposed.index &&
      this.#batch.length < this.#maxBatch
    ) return;
    while (this.#batch.length > 0) {
      const part = this.#batch.splice(0, this.#maxBatch);
      const at = this.#raft.propose({ batch: part.map((w) => w.request) });
      if (at !== undefined) this.#proposed = at;
      this.#counters.proposals++;
    }
  }

  #requestReads(): void {
    if (this.#readBatch.length === 0) return;
    const reads = this.#readBatch;
    this.#readBatch = [];
    const id = this.#nextReadId++;
    if (!this.#raft.requestRead(id)) {
      for (const read of reads) this.#failRead(read);
      return;
    }
    this.#pendingReads.set(id, reads);
  }

  #handleReady(ready: RaftReady<EntryCommand>): void {
    if (ready.snapshot !== undefined) {
      // A snapshot from the leader replaces the whole log; entries kept
      // after it come again in `ready.entries`.
      this.#wal.installSnapshot(ready.snapshot, { discardEntriesAfter: true });
      this.#restore(ready.snapshot);
      this.#resetLeaderState();
    }
    const wrote = ready.hardState !== undefined || ready.entries.length > 0 ||
      ready.snapshot !== undefined;
    if (ready.hardState !== undefined || ready.entries.length > 0) {
      this.#wal.write(ready.hardState, ready.entries);
    }
    // Appends that carry no entry (heartbeats, news of a commit) go out
    // after the replies to clients below: the flush at the end of this turn
    // writes to peers in the order they were first sent to, and replies
    // are on a client's critical path while these are not. Messages to one
    // peer keep their order (one ready holds at most one such append per
    // follower, after its other messages).
    let lazy: Outgoing<EntryCommand>[] | undefined;
    for (const out of ready.messages) {
      const m = out.message;
      if (m.type === "append" && m.entries.length === 0) {
        (lazy ??= []).push(out);
      } else {
        this.#sendRaft(out.to, m);
      }
    }
    const last = ready.entries.at(-1) ?? ready.snapshot?.meta;
    const release = () => {
      for (const out of ready.messagesAfterPersist) {
        this.#sendRaft(out.to, out.message);
      }
      if (last !== undefined) this.#raft.persisted(last.index, last.term);
      this.#schedule();
    };
    if (wrote && this.#syncBeforeAck) {
      this.#sync.add(release, ready.lazySync ? "soon" : "now");
    } else if (this.#sync.busy) {
      // Keep messages in order behind earlier writes still syncing.
      this.#sync.add(release, "order");
    } else {
      release();
    }
    for (const entry of ready.committed) this.#apply(entry);
    for (const read of ready.reads) {
      const reads = this.#pendingReads.get(read.id);
      if (reads === undefined) continue;
      this.#pendingReads.delete(read.id);
      this.#readyReads.push({ index: read.index, reads });
    }
    for (const id of ready.failedReads) {
      const reads = this.#pendingReads.get(id);
      this.#pendingReads.delete(id);
      for (const read of reads ?? []) this.#failRead(read);
    }
    this.#serveReads();
    if (lazy !== undefined) {
      for (const out of lazy) this.#sendRaft(out.to, out.message);
    }
    this.#maybeSnapshot();
  }

  /** Replaces the state machine with a snapshot's (at start, or from the leader). */
  #restore(snapshot: Snapshot): void {
    this.#sm = OracleStateMachine.restore(snapshot.data, this.#smOptions);
    this.#appliedTerm = snapshot.meta.term;
    this.#lastSnapshotIndex = snapshot.meta.index;
    this.#observer?.restored?.(this.#id, snapshot.meta.index);
  }

  #apply(entry: LogEntry<EntryCommand>): void {
    if (entry.index <= this.#sm.appliedIndex) return;
    this.#appliedTerm = entry.term;
    this.#counters.applied++;
    this.#observer?.applied?.(this.#id, entry);
    if (entry.command === null) {
      this.#sm.apply(entry.index, { batch: [] });
      return;
    }
    const outputs = this.#sm.apply(entry.index, entry.command);
    const leader = this.isLeader;
    if (leader && "batch" in entry.command) {
      for (const request of entry.command.batch) {
        // Only a session that now exists gets a timer (an open can fail).
        if (
          request.op.op === "open_session" &&
          this.#sm.hasSession(request.session)
        ) {
          this.#sessionSeen.set(request.session, this.#clock.now());
        }
      }
    }
    let replies: Extract<ApplyOutput, { kind: "reply" }>[] | undefined;
    for (const output of outputs) {
      switch (output.kind) {
        case "reply":
          (replies ??= []).push(output);
          break;
        case "event":
          if (leader) this.#subs.offer(output.event);
          break;
        case "expired":
          this.#sessionSeen.delete(output.session);
          this.#expiring.delete(output.session);
          break;
        case "delegated":
          if (leader) this.#endMoved(output.delegation);
          break;
      }
    }
    // An `adopt` entry (a child's) needs nothing here: its tree events
    // went to subscribers above.
    if ("expire" in entry.command) {
      // Every listed session has ended now; one that had ended before
      // produced no `expired` output.
      for (const session of entry.command.expire) {
        this.#sessionSeen.delete(session);
        this.#expiring.delete(session);
      }
    }
    // Subscribers first: the writers' acknowledgements go out just after.
    if (leader) this.#subs.flush(this.#sm);
    for (const output of replies ?? []) {
      const key = requestKey(output.session, output.req);
      const client = this.#pendingWrites.get(key)?.client;
      if (client === undefined) continue;
      this.#pendingWrites.delete(key);
      this.#sendClient(
        client,
        "ok" in output.result
          ? { t: "res", r: output.req, ok: output.result.ok }
          : { t: "res", r: output.req, err: output.result.error },
      );
    }
  }

  /**
   * Ends the subscriptions at or under a prefix this group just delegated
   * (a view channel goes with its group) with `moved`. Prefix
   * subscriptions above it stay: they cover this group's own paths only.
   */
  #endMoved(delegation: Delegation): void {
    this.#subs.endWhere((path) =>
      isUnder(delegation.prefix, ownerPath(path))
        ? this.#sm.owner(path)
        : undefined
    );
  }

  #serveReads(): void {
    if (this.#readyReads.length === 0) return;
    const applied = this.#sm.appliedIndex;
    const later: { index: number; reads: PendingRead[] }[] = [];
    for (const batch of this.#readyReads) {
      if (batch.index > applied) {
        later.push(batch);
        continue;
      }
      for (const read of batch.reads) {
        this.#counters.reads++;
        const result = this.#withStatus(
          read.op,
          this.#sm.read(read.session, read.op),
        );
        this.#sendClient(
          read.client,
          "ok" in result
            ? { t: "res", r: read.r, ok: result.ok }
            : { t: "res", r: read.r, err: result.error },
        );
      }
    }
    this.#readyReads = later;
  }

  #failRead(read: PendingRead): void {
    this.#counters.notLeader++;
    this.#sendClient(read.client, {
      t: "res",
      r: read.r,
      err: this.#notLeader(),
    });
  }

  #maybeSnapshot(): void {
    const applied = this.#sm.appliedIndex;
    if (
      this.#snapshotting ||
      applied - this.#lastSnapshotIndex < this.#snapshotEvery
    ) return;
    const snapshot = {
      meta: { index: applied, term: this.#appliedTerm },
      data: this.#sm.snapshot(),
    };
    this.#snapshotting = true;
    this.#counters.snapshots++;
    this.#wal.installSnapshot(snapshot);
    this.#raft.compact(snapshot);
    this.#lastSnapshotIndex = applied;
    this.#sync.add(() => {
      this.#snapshotting = false;
      this.#wal.compact(snapshot.meta.index);
    });
    this.#log.log("info", "oracle.snapshot", {
      id: this.#id,
      index: applied,
      bytes: snapshot.data.length,
    });
  }

  /** Follows role changes: a new leader starts session timers; a former one ends subscriptions. */
  #leadershipChanges(): void {
    const leader = this.isLeader;
    if (leader === this.#wasLeader) return;
    this.#wasLeader = leader;
    this.#log.log(
      "info",
      leader ? "oracle.leader.elected" : "oracle.leader.lost",
      {
        id: this.#id,
        term: this.#raft.term,
      },
    );
    if (leader) {
      const now = this.#clock.now();
      for (const { session } of this.#sm.sessions()) {
        this.#sessionSeen.set(session, now);
      }
      this.#treeSync?.start();
    } else {
      this.#treeSync?.stop();
      this.#resetLeaderState();
    }
    this.#observer?.leadership?.(this.#id, leader);
  }

  #resetLeaderState(): void {
    this.#sessionSeen.clear();
    this.#expiring.clear();
    this.#subs.endAll(this.#notLeader());
    const error = this.#notLeader();
    for (const { client, r } of this.#pendingWrites.values()) {
      this.#counters.notLeader++;
      this.#sendClient(client, { t: "res", r, err: error });
    }
    this.#pendingWrites.clear();
    for (const batch of this.#readyReads) {
      for (const read of batch.reads) this.#failRead(read);
    }
    this.#readyReads = [];
  }

  #checkSessions(): void {
    if (!this.isLeader || this.#sessionSeen.size === 0) return;
    const now = this.#clock.now();
    const expired: string[] = [];
    for (const [session, seen] of this.#sessionSeen) {
      const ttl = this.#sm.sessionTtl(session);
      if (
        ttl !== undefined && now - seen > ttl && !this.#expiring.has(session)
      ) {
        expired.push(session);
        if (expired.length >= 1024) break;
      }
    }
    this.#proposeExpiry(expired, "ttl");
  }

  /** Proposes to expire sessions (none already expiring); returns whether it did. */
  #proposeExpiry(sessions: string[], why: "ttl" | "root"): boolean {
    if (sessions.length === 0) return false;
    if (this.#raft.propose({ expire: sessions }) === undefined) return false;
    for (const session of sessions) this.#expiring.add(session);
    this.#counters.expiries += sessions.length;
    this.#counters.proposals++;
    this.#log.log("info", "oracle.session.expire", {
      id: this.#id,
      sessions: sessions.length,
      why,
    });
    return true;
  }

  /** A child's leader ends the sessions its root reported ended (those still live and not expiring). */
  #expireEnded(sessions: string[]): void {
    if (!this.isLeader || this.#stopped) return;
    const live = sessions.filter((session) =>
      this.#sm.hasSession(session) && !this.#expiring.has(session)
    );
    if (!this.#proposeExpiry(live, "root")) return;
    this.#counters.treeExpiries += live.length;
    this.#schedule();
  }

  /**
   * A child's leader proposes to adopt prefixes its parent delegated to
   * it, its tokens continuing above the parent's `tokens`; returns the
   * entry's index.
   */
  #proposeAdopt(prefixes: string[], tokens: number): number | undefined {
    if (!this.isLeader || this.#stopped) return undefined;
    const at = this.#raft.propose({ adopt: prefixes, tokens });
    if (at === undefined) return undefined;
    this.#counters.treeAdopts += prefixes.length;
    this.#counters.proposals++;
    this.#log.log("info", "oracle.tree.adopt", { id: this.#id, prefixes });
    this.#schedule();
    return at.index;
  }

  // ---- outputs ------------------------------------------------------------

  #notLeader(): OracleErrorResult {
    const leader = this.#raft.leader;
    return leader !== undefined && leader !== this.#id
      ? {
        code: "not_leader",
        message: `Replica ${this.#id} is not the leader; ${leader} is`,
        leader,
      }
      : {
        code: "not_leader",
        message: `Replica ${this.#id} is not the leader and knows none yet`,
      };
  }

  #sendRaft(to: ReplicaId, message: RaftMessage<EntryCommand>): void {
    this.#send(to, this.#codec.encode({ t: "raft", m: message }));
  }

  #sendClient(to: PeerId, frame: ReplicaToClientFrame): void {
    this.#send(to, this.#codec.encode(frame));
  }

  #send(to: PeerId, payload: Uint8Array): void {
    try {
      if (!this.#transport.send(to, payload)) this.#counters.sendFailures++;
    } catch (error) {
      this.#counters.sendFailures++;
      this.#log.log("debug", "oracle.send_failed", {
        id: this.#id,
        to,
        error: String(error),
      });
    }
  }

  #fail(error: Error): void {
    this.#failure = error;
    this.#log.log("error", "oracle.storage_failed", {
      id: this.#id,
      error: error.message,
    });
    this.stop();
  }
}

function requestKey(session: string, req: number): string {
  return `${session}\u0000${req}`;
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Invalid ${name} ${value}: use a positive integer`);
  }
  return value;
}
