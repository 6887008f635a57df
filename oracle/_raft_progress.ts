/**
 * What a leader knows about one follower's log (etcd style): in `probe` it
 * sends one append at a time until it finds where the logs match; in
 * `replicate` it pipelines appends; in `snapshot` it streams a snapshot.
 *
 * @module
 */

import type { Snapshot } from "./raft_types.ts";

/** One unacknowledged append: its `prevIndex` and its last entry's index. */
export interface Inflight {
  readonly prev: number;
  readonly last: number;
}

/** How the leader currently sends to a follower. */
export type ProgressState = "probe" | "replicate" | "snapshot";

/** The leader's view of one follower. */
export class Progress {
  /** Highest index known to match (durably) on the follower. */
  match = 0;
  /** Next index to send. */
  next: number;
  /** Sending mode. */
  state: ProgressState = "probe";
  /**
   * In probe: an append is outstanding; send the next one on the fresh
   * rejection of this one or at the next heartbeat interval, never on a
   * stale or duplicated reply.
   */
  paused = false;
  /**
   * In replicate: the unacknowledged appends, oldest first. Only their
   * rejections count; any other is stale (a duplicate, or the answer to an
   * append sent before the last fallback to probe).
   */
  inflight: Inflight[] = [];
  /** Heard from since the last check-quorum. */
  active = false;
  /** Highest heartbeat round the follower answered in this term. */
  ackedRound = 0;
  /** The commit index last sent to it. */
  sentCommit = 0;
  /**
   * An empty append (heartbeat, read round, or news of a commit at a tick)
   * is due at the next flush, unless an append with entries goes instead.
   */
  heartbeatDue = false;
  /** Ticks without progress while something is outstanding. */
  stall = 0;
  /** In snapshot: the snapshot being streamed. */
  snapshot: Snapshot | undefined = undefined;
  /** In snapshot: the next chunk to send. */
  snapshotChunk = 0;
  /** In snapshot: bytes the follower reported it holds (grows, except on a resync). */
  snapshotAcked = 0;
  /** In snapshot: after a stall, the next reply sets `snapshotAcked` even if lower. */
  snapshotResync = false;

  /**
   * Creates the progress of a follower a new leader knows nothing about.
   *
   * @param next The leader's last index + 1.
   */
  constructor(next: number) {
    this.next = next;
  }

  /** Falls back to probing from `next`. */
  probe(next: number): void {
    this.state = "probe";
    this.next = Math.max(next, this.match + 1);
    this.paused = false;
    this.inflight = [];
    this.stall = 0;
    this.snapshot = undefined;
  }

  /** Starts pipelining after the match point. */
  replicate(): void {
    this.state = "replicate";
    this.next = this.match + 1;
    this.paused = false;
    this.inflight = [];
    this.stall = 0;
  }

  /** Starts streaming `snapshot`. */
  sendSnapshot(snapshot: Snapshot): void {
    this.state = "snapshot";
    this.snapshot = snapshot;
    this.snapshotChunk = 0;
    this.snapshotAcked = 0;
    this.snapshotResync = false;
    this.inflight = [];
    this.paused = false;
    this.stall = 0;
  }

  /** Whether an unacknowledged append has `prevIndex` `prev`. */
  awaits(prev: number): boolean {
    return this.inflight.some((a) => a.prev === prev);
  }

  /** Forgets the appends acknowledged through `index`. */
  freeThrough(index: number): void {
    let n = 0;
    while (n < this.inflight.length && this.inflight[n].last <= index) n++;
    if (n > 0) this.inflight.splice(0, n);
  }
}
