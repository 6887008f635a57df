/**
 * A deterministic test cluster of {@linkcode RaftNode}s: a lossy,
 * reordering, duplicating network; per-node fake durable storage that
 * handles `ready()` in the documented order with a sync that may lag; crash
 * and restart from durable state; and safety checks on every step.
 *
 * @module
 */

import { RaftNode, type RaftOptions } from "../../oracle/raft.ts";
import type {
  HardState,
  LogEntry,
  RaftMessage,
  RaftReady,
  ReadState,
  ReplicaId,
  Snapshot,
} from "../../oracle/raft_types.ts";
import { Prng } from "../../sim/prng.ts";

/** Commands the test state machine applies. */
export type Cmd = string;

interface Stored {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: LogEntry<Cmd>[];
}

interface Batch {
  readonly ready: RaftReady<Cmd>;
  readonly last: { index: number; term: number } | undefined;
}

interface InFlight {
  readonly from: ReplicaId;
  readonly to: ReplicaId;
  readonly message: RaftMessage<Cmd>;
  readonly at: number;
}

/** One replica with its fake storage and state machine. */
export class SimNode {
  readonly id: ReplicaId;
  raft: RaftNode<Cmd>;
  up = true;
  durable: Stored = {
    hardState: { term: 0, votedFor: null },
    snapshot: undefined,
    entries: [],
  };
  written: Stored = {
    hardState: { term: 0, votedFor: null },
    snapshot: undefined,
    entries: [],
  };
  pending: Batch[] = [];
  /** Applied state machine: entry `i` is at position `i - 1`. */
  applied: { term: number; command: Cmd | null }[] = [];
  reads: ReadState[] = [];
  failedReads: number[] = [];
  leaderCheck: { term: number; required: number } | undefined;

  constructor(id: ReplicaId, raft: RaftNode<Cmd>) {
    this.id = id;
    this.raft = raft;
  }

  /** The written log as index -> entry (after the snapshot). */
  entryAt(index: number): LogEntry<Cmd> | undefined {
    const base = this.written.snapshot?.meta.index ?? 0;
    return this.written.entries[index - base - 1];
  }
}

/** One message a node handed to the network (before loss or duplication). */
export interface Sent {
  readonly from: ReplicaId;
  readonly to: ReplicaId;
  readonly message: RaftMessage<Cmd>;
}

/** How a {@linkcode Cluster} misbehaves. */
export interface ClusterOptions {
  seed: number;
  ids: readonly ReplicaId[];
  raft?: Partial<RaftOptions<Cmd>>;
  /** Probability a message is lost. */
  drop?: number;
  /** Probability a message is delivered twice. */
  dup?: number;
  /** Most extra steps a message waits (reordering). */
  maxDelay?: number;
  /** Probability a node syncs its pending writes in a step. */
  syncProb?: number;
  /** Compact when this many entries are applied past the snapshot (0: never). */
  compactEvery?: number;
  /** Encode every message as JSON on the way (as a real driver would). */
  jsonWire?: boolean;
  /**
   * Run each node's driver after every message it receives (as a replica
   * whose messages arrive one at a time does), not once per step: a reply
   * that causes a send is then seen at once, however many arrive.
   */
  readyEachMessage?: boolean;
}

function encodeSm(applied: SimNode["applied"], upTo: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(applied.slice(0, upTo)));
}

function decodeSm(data: Uint8Array): SimNode["applied"] {
  return JSON.parse(new TextDecoder().decode(data));
}

/** A cluster, its network and the invariants checked as it runs. */
export class Cluster {
  readonly nodes: Map<ReplicaId, SimNode> = new Map();
  readonly ids: readonly ReplicaId[];
  readonly violations: string[] = [];
  /** Messages the nodes sent while `recordSent` (for assertions). */
  readonly sent: Sent[] = [];
  recordSent = false;
  /** Every message the nodes sent (before loss or duplication). */
  sentCount = 0;
  now = 0;
  drop: number;
  dup: number;
  #options: ClusterOptions;
  #rng: Prng;
  #net: InFlight[] = [];
  #blocked = new Set<string>();
  #leaders = new Map<number, ReplicaId>();
  /** Highest index a leader of each term committed. */
  #committedBy = new Map<number, number>();
  /** The committed entry at each index, as first applied. */
  #global = new Map<number, { term: number; command: Cmd | null }>();

  constructor(options: ClusterOptions) {
    this.#options = options;
    this.ids = options.ids;
    this.drop = options.drop ?? 0;
    this.dup = options.dup ?? 0;
    this.#rng = new Prng(options.seed).fork("cluster");
    for (const id of options.ids) {
      this.nodes.set(id, new SimNode(id, this.#newRaft(id, undefined)));
    }
    for (const node of this.nodes.values()) this.#observe(node);
  }

  #newRaft(id: ReplicaId, stored: Stored | undefined): RaftNode<Cmd> {
    return new RaftNode<Cmd>(
      {
        electionTicks: 10,
        heartbeatTicks: 2,
        ...this.#options.raft,
        id,
        replicas: this.ids,
        random: new Prng(this.#options.seed).fork(`raft:${id}:${this.now}`),
      },
      {
        hardState: stored?.hardState ?? { term: 0, votedFor: null },
        snapshot: stored?.snapshot,
        entries: stored?.entries ?? [],
      },
    );
  }

  /** The node `id`. */
  node(id: ReplicaId): SimNode {
    return this.nodes.get(id)!;
  }

  /** The up leader with the highest term, if any. */
  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.nodes.values()) {
      if (
        node.up && node.raft.role === "leader" &&
        (best === undefined || node.raft.term > best.raft.term)
      ) {
        best = node;
      }
    }
    return best;
  }

  /** Cuts (or restores) the link between `a` and `b` in both directions. */
  cut(a: ReplicaId, b: ReplicaId, blocked = true): void {
    for (const key of [`${a}>${b}`, `${b}>${a}`]) {
      blocked ? this.#blocked.add(key) : this.#blocked.delete(key);
    }
  }

  /** Cuts every link between the groups. */
  partition(groups: readonly (readonly ReplicaId[])[]): void {
    this.heal();
    for (const g of groups) {
      for (const h of groups) {
        if (g === h) continue;
        for (const a of g) for (const b of h) this.cut(a, b);
      }
    }
  }

  /** Cuts `id` from everyone. */
  isolate(id: ReplicaId): void {
    for (const other of this.ids) if (other !== id) this.cut(id, other);
  }

  /** Restores every link. */
  heal(): void {
    this.#blocked.clear();
  }

  /** Crashes `id`: unsynced writes and in-memory state are lost. */
  crash(id: ReplicaId): void {
    const node = this.node(id);
    node.up = false;
    node.pending = [];
  }

  /** Restarts `id` from its durable state. */
  restart(id: ReplicaId): void {
    const node = this.node(id);
    const d = node.durable;
    node.written = {
      hardState: d.hardState,
      snapshot: d.snapshot,
      entries: [...d.entries],
    };
    node.applied = d.snapshot ? decodeSm(d.snapshot.data) : [];
    node.raft = this.#newRaft(id, d);
    node.up = true;
    node.leaderCheck = undefined;
    this.#observe(node);
  }

  /**
   * Crashes `id` and restarts it with an empty log and no snapshot (its
   * term and vote kept), as a replica acknowledging before its writes are
   * durable (the unsafe `syncBeforeAck: false`) can come back.
   */
  loseLog(id: ReplicaId): void {
    this.crash(id);
    const node = this.node(id);
    node.durable = { ...node.durable, snapshot: undefined, entries: [] };
    this.restart(id);
  }

  /** Proposes on the current leader; returns where it went. */
  propose(command: Cmd): { index: number; term: number } | undefined {
    const leader = this.leader();
    const result = leader?.raft.propose(command);
    if (leader) this.#observe(leader);
    return result;
  }

  /** Runs `steps` steps. */
  run(steps: number): void {
    for (let i = 0; i < steps; i++) this.step();
  }

  /** Runs until `done()` or `maxSteps`; returns whether `done()` held. */
  runUntil(done: () => boolean, maxSteps: number): boolean {
    for (let i = 0; i < maxSteps; i++) {
      if (done()) return true;
      this.step();
    }
    return done();
  }

  /** Sends what the node's `ready()` asks, storing and syncing like a driver. */
  processReady(node: SimNode, sync: boolean): void {
    if (!node.up || !node.raft.hasReady()) {
      if (sync) this.sync(node);
      return;
    }
    const ready = node.raft.ready();
    const w = node.written;
    let last: { index: number; term: number } | undefined;
    if (ready.snapshot) {
      w.snapshot = ready.snapshot;
      w.entries = [];
      last = ready.snapshot.meta;
    }
    if (ready.hardState) w.hardState = ready.hardState;
    if (ready.entries.length > 0) {
      const first = ready.entries[0].index;
      const base = w.snapshot?.meta.index ?? 0;
      w.entries.length = Math.max(
        0,
        Math.min(w.entries.length, first - base - 1),
      );
      if (base + w.entries.length + 1 !== first) {
        this.violations.push(
          `${node.id}: entries start at ${first}, stored log ends at ${
            base + w.entries.length
          }`,
        );
      }
      w.entries.push(...ready.entries);
      const e = ready.entries[ready.entries.length - 1];
      last = { index: e.index, term: e.term };
    }
    for (const out of ready.messages) this.#send(node.id, out.to, out.message);
    node.pending.push({ ready, last });
    if (node.leaderCheck && node.raft.role === "leader") {
      this.#checkLeaderCompleteness(node);
    }
    if (sync) this.sync(node);
  }

  /** Makes the node's writes durable and finishes its pending batches. */
  sync(node: SimNode): void {
    if (!node.up || node.pending.length === 0) return;
    const w = node.written;
    node.durable = {
      hardState: w.hardState,
      snapshot: w.snapshot,
      entries: [...w.entries],
    };
    const batches = node.pending;
    node.pending = [];
    for (const { ready, last } of batches) {
      for (const out of ready.messagesAfterPersist) {
        this.#send(node.id, out.to, out.message);
      }
      if (last) node.raft.persisted(last.index, last.term);
      if (ready.snapshot) {
        // Restore the state machine in ready order, after earlier batches.
        const sm = decodeSm(ready.snapshot.data);
        this.#checkSnapshotState(node, sm, ready.snapshot.meta.index);
        node.applied = sm;
      }
      for (const entry of ready.committed) this.#apply(node, entry);
      node.reads.push(...ready.reads);
      node.failedReads.push(...ready.failedReads);
      this.#observe(node);
    }
    this.#maybeCompact(node);
  }

  #maybeCompact(node: SimNode): void {
    const every = this.#options.compactEvery ?? 0;
    const snapIndex = node.written.snapshot?.meta.index ?? 0;
    const index = node.applied.length;
    if (every === 0 || index - snapIndex < every) return;
    const snapshot: Snapshot = {
      meta: { index, term: node.applied[index - 1].term },
      data: encodeSm(node.applied, index),
    };
    node.raft.compact(snapshot);
    for (const stored of [node.written, node.durable]) {
      const base = stored.snapshot?.meta.index ?? 0;
      stored.entries = stored.entries.slice(Math.max(0, index - base));
      stored.snapshot = snapshot;
    }
  }

  #apply(node: SimNode, entry: LogEntry<Cmd>): void {
    if (entry.index !== node.applied.length + 1) {
      this.violations.push(
        `${node.id}: applied ${entry.index} after ${node.applied.length}`,
      );
      return;
    }
    node.applied.push({ term: entry.term, command: entry.command });
    const known = this.#global.get(entry.index);
    if (known === undefined) {
      this.#global.set(entry.index, {
        term: entry.term,
        command: entry.command,
      });
    } else if (known.term !== entry.term || known.command !== entry.command) {
      this.violations.push(
        `${node.id}: state machine safety at ${entry.index}: ${
          JSON.stringify(entry)
        } vs ${JSON.stringify(known)}`,
      );
    }
  }

  #checkSnapshotState(
    node: SimNode,
    sm: SimNode["applied"],
    index: number,
  ): void {
    if (sm.length !== index) {
      this.violations.push(`${node.id}: snapshot at ${index} has ${sm.length}`);
    }
    sm.forEach((e, i) => {
      const known = this.#global.get(i + 1);
      if (known && (known.term !== e.term || known.command !== e.command)) {
        this.violations.push(`${node.id}: snapshot differs at ${i + 1}`);
      }
    });
  }

  /** Records election safety and commits after any call on `node`. */
  #observe(node: SimNode): void {
    const raft = node.raft;
    if (raft.role !== "leader") return;
    const term = raft.term;
    const known = this.#leaders.get(term);
    if (known === undefined) {
      this.#leaders.set(term, node.id);
    } else if (known !== node.id) {
      this.violations.push(`two leaders in term ${term}: ${known}, ${node.id}`);
    }
    if (node.leaderCheck === undefined || node.leaderCheck.term !== term) {
      let required = 0;
      for (const [t, index] of this.#committedBy) {
        if (t < term) required = Math.max(required, index);
      }
      node.leaderCheck = { term, required };
    }
    const commit = raft.commitIndex;
    if (commit > (this.#committedBy.get(term) ?? 0)) {
      this.#committedBy.set(term, commit);
    }
  }

  /** A new leader's log holds everything committed in earlier terms. */
  #checkLeaderCompleteness(node: SimNode): void {
    const check = node.leaderCheck!;
    if (check.term !== node.raft.term || check.required < 0) return;
    const snapIndex = node.written.snapshot?.meta.index ?? 0;
    for (let i = snapIndex + 1; i <= check.required; i++) {
      const known = this.#global.get(i);
      const entry = node.entryAt(i);
      if (
        entry === undefined ||
        (known &&
          (known.term !== entry.term || known.command !== entry.command))
      ) {
        this.violations.push(
          `leader completeness: ${node.id} (term ${check.term}) lacks ${i}`,
        );
        break;
      }
    }
    node.leaderCheck = { term: check.term, required: -1 };
  }

  /** Log matching across every pair of written logs. */
  checkLogMatching(): void {
    const nodes = [...this.nodes.values()];
    for (let a = 0; a < nodes.length; a++) {
      for (let b = a + 1; b < nodes.length; b++) {
        const x = nodes[a];
        const y = nodes[b];
        const lastX = (x.written.snapshot?.meta.index ?? 0) +
          x.written.entries.length;
        const lastY = (y.written.snapshot?.meta.index ?? 0) +
          y.written.entries.length;
        let top = Math.min(lastX, lastY);
        while (top > 0) {
          const ex = x.entryAt(top);
          const ey = y.entryAt(top);
          if (ex === undefined || ey === undefined) {
            top = 0;
            break;
          }
          if (ex.term === ey.term) break;
          top--;
        }
        for (let i = top; i > 0; i--) {
          const ex = x.entryAt(i);
          const ey = y.entryAt(i);
          if (ex === undefined || ey === undefined) break;
          if (ex.term !== ey.term || ex.command !== ey.command) {
            this.violations.push(
              `log matching: ${x.id} and ${y.id} agree at ${top} but differ at ${i}`,
            );
            break;
          }
        }
      }
    }
  }

  #send(from: ReplicaId, to: ReplicaId, message: RaftMessage<Cmd>): void {
    this.sentCount++;
    if (this.recordSent) this.sent.push({ from, to, message });
    const rng = this.#rng;
    if (this.drop > 0 && rng.float() < this.drop) return;
    const copies = this.dup > 0 && rng.float() < this.dup ? 2 : 1;
    const maxDelay = this.#options.maxDelay ?? 0;
    const wire = this.#options.jsonWire
      ? JSON.parse(JSON.stringify(message))
      : message;
    for (let i = 0; i < copies; i++) {
      this.#net.push({
        from,
        to,
        message: wire,
        at: this.now + (maxDelay > 0 ? rng.int(maxDelay + 1) : 0),
      });
    }
  }

  /** Delivers a message as if it came from `from` (for garbage tests). */
  inject(from: ReplicaId, to: ReplicaId, message: unknown): void {
    this.node(to).raft.step(from, message as RaftMessage<Cmd>);
  }

  /** One step: every node ticks, due messages arrive in random order, drivers run. */
  step(): void {
    this.now++;
    const rng = this.#rng;
    for (const node of this.nodes.values()) {
      if (!node.up) continue;
      node.raft.tick();
      this.#observe(node);
    }
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const m of this.#net) (m.at <= this.now ? due : later).push(m);
    this.#net = later;
    for (let i = due.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [due[i], due[j]] = [due[j], due[i]];
    }
    const syncProb = this.#options.syncProb ?? 1;
    for (const m of due) {
      const node = this.node(m.to);
      if (!node.up || this.#blocked.has(`${m.from}>${m.to}`)) continue;
      node.raft.step(m.from, m.message);
      this.#observe(node);
      if (this.#options.readyEachMessage) {
        this.processReady(node, syncProb >= 1 || rng.float() < syncProb);
      }
    }
    for (const node of this.nodes.values()) {
      this.processReady(node, syncProb >= 1 || rng.float() < syncProb);
    }
  }
}
