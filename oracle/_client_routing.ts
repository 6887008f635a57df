/**
 * Target selection of the Oracle client: which replica requests go to,
 * the replicas that are down or suspect, leader hints, and the delays
 * before trying another replica (fast retries during an election, then a
 * doubling backoff).
 *
 * @module
 */

import type { Clock } from "../runtime/clock.ts";
import type { Random } from "../runtime/random.ts";
import type { PeerId } from "../transport/transport.ts";
import type { OracleErrorResult } from "./commands.ts";
import type { OracleClientStats } from "./client.ts";
import { MAX_TIMEOUT_FACTOR } from "./_client_calls.ts";

const BACKOFF_MIN_MS = 5;
const BACKOFF_SPREAD_MS = 20;
const BACKOFF_MAX_MS = 200;
/**
 * A replica that stayed silent past the request timeout, or whose
 * connection went down, is suspect for this long (or until a frame from it
 * arrives): rotation skips it, and `not_leader` hints naming it are
 * ignored. Otherwise a follower that has not noticed a crashed or frozen
 * leader yet sends the client straight back to it. At most a quarter of
 * the session TTL, though: one lost frame must not keep a client of a
 * short-lived session off a healthy leader until the session expires.
 */
const SUSPECT_MS = 1_000;
/**
 * After a `not_leader` answer that names no usable leader (an election is
 * running), the next replica is tried after 5-15 ms: elections take tens
 * of milliseconds, so a doubling backoff would overshoot the new leader.
 */
const RETRY_MIN_MS = 5;
const RETRY_SPREAD_MS = 10;
/**
 * Consecutive failed targets retried after {@linkcode RETRY_MIN_MS}: about
 * a second of polling, after which a long outage falls back to the
 * doubling backoff so that many clients do not keep the replicas busy.
 */
const FAST_RETRIES = 100;

/** A leader hint worth following: where to go, and after how long. */
export interface Redirect {
  /** The hinted leader. */
  readonly peer: PeerId;
  /** 0 for the first redirect in a row, a retry delay afterwards. */
  readonly delayMs: number;
}

/** The target replica and what the client knows of the others. */
export class Routing {
  readonly #replicas: readonly string[];
  readonly #replicaSet: ReadonlySet<string>;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #stats: OracleClientStats;

  #target: PeerId;
  #leader: PeerId | undefined = undefined;
  readonly #down = new Set<PeerId>();
  /** Replicas that timed out or went down, and since when (see {@linkcode SUSPECT_MS}). */
  readonly #suspects = new Map<PeerId, number>();
  /** Consecutive target changes without an answer from a target. */
  #failures = 0;
  /** Consecutive redirects without an answer: a second one waits (no ping-pong). */
  #redirectRun = 0;
  /** When the target last answered a request. */
  #lastAnswerAt = -Infinity;
  /**
   * Multiplies `requestTimeoutMs`: doubles (up to 8) each time a silent
   * target is left, back to 1 once a target answers within the plain
   * timeout, so a slow but live Oracle is not abandoned over and over.
   */
  #timeoutScale = 1;

  /** How long a suspicion lasts (see {@linkcode SUSPECT_MS}). */
  readonly #suspectMs: number;

  /**
   * Picks the first target at random among `replicas`; `sessionTtlMs`
   * bounds how long a replica stays suspect.
   */
  constructor(
    replicas: readonly string[],
    clock: Clock,
    random: Random,
    stats: OracleClientStats,
    sessionTtlMs: number,
  ) {
    this.#suspectMs = Math.min(SUSPECT_MS, sessionTtlMs / 4);
    this.#replicas = [...replicas];
    this.#replicaSet = new Set(replicas);
    this.#clock = clock;
    this.#random = random;
    this.#stats = stats;
    this.#target = this.#replicas[this.#random.int(this.#replicas.length)];
  }

  /** The replica requests are sent to. */
  get target(): PeerId {
    return this.#target;
  }

  /** The last replica known to lead. */
  get leader(): PeerId | undefined {
    return this.#leader;
  }

  /** When the target last answered a request. */
  get lastAnswerAt(): number {
    return this.#lastAnswerAt;
  }

  /** The current multiplier of `requestTimeoutMs`. */
  get timeoutScale(): number {
    return this.#timeoutScale;
  }

  /** Whether `peer` is one of the replicas. */
  has(peer: PeerId): boolean {
    return this.#replicaSet.has(peer);
  }

  /** Whether the transport reported `peer` down (and not up since). */
  isDown(peer: PeerId): boolean {
    return this.#down.has(peer);
  }

  /** Sets the target; returns the previous one. */
  setTarget(peer: PeerId): PeerId {
    const old = this.#target;
    this.#target = peer;
    return old;
  }

  /** A random delay that doubles with consecutive failures, up to 200 ms. */
  backoffMs(): number {
    const step = Math.min(this.#failures, 6);
    const low = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** step);
    const high = Math.min(BACKOFF_MAX_MS, BACKOFF_SPREAD_MS * 2 ** step);
    return low + this.#random.int(high - low + 1);
  }

  /** Delay before trying another replica when no leader is named. */
  retryMs(): number {
    return this.#failures < FAST_RETRIES
      ? RETRY_MIN_MS + this.#random.int(RETRY_SPREAD_MS + 1)
      : this.backoffMs();
  }

  /** Whether `peer` timed out or went down less than the suspicion time ago. */
  isSuspect(peer: PeerId): boolean {
    const since = this.#suspects.get(peer);
    if (since === undefined) return false;
    if (this.#clock.now() - since < this.#suspectMs) return true;
    this.#suspects.delete(peer);
    return false;
  }

  /**
   * The replica after the target, preferring one neither down nor
   * suspect, then one not down, then simply the next one.
   */
  nextReplica(): PeerId {
    const replicas = this.#replicas;
    const start = replicas.indexOf(this.#target);
    let notDown: PeerId | undefined;
    for (let i = 1; i <= replicas.length; i++) {
      const candidate = replicas[(start + i) % replicas.length];
      if (this.#down.has(candidate)) continue;
      if (!this.isSuspect(candidate)) return candidate;
      notDown ??= candidate;
    }
    return notDown ?? replicas[(start + 1) % replicas.length];
  }

  /** Counts a rotation away from the target; returns where to go. */
  rotation(): PeerId {
    this.#stats.rotations++;
    this.#failures++;
    if (this.#leader === this.#target) this.#leader = undefined;
    return this.nextReplica();
  }

  /** The transport could not reach the target: it is down and suspect. */
  markUnreachable(): void {
    this.#down.add(this.#target);
    this.#suspects.set(this.#target, this.#clock.now());
  }

  /**
   * The redirect a `not_leader` answer from the target asks for, if its
   * hint names a replica other than the target, neither down nor suspect.
   */
  redirect(error: OracleErrorResult): Redirect | undefined {
    const hint = error.leader;
    if (
      hint !== undefined && hint !== this.#target &&
      this.#replicaSet.has(hint) && !this.#down.has(hint) &&
      !this.isSuspect(hint)
    ) {
      this.#stats.redirects++;
      this.#leader = hint;
      // The first redirect goes at once; replicas naming each other in
      // turn (hints still settling) are followed after a retry delay.
      const delay = this.#redirectRun > 0 ? this.retryMs() : 0;
      this.#redirectRun++;
      this.#failures++;
      return { peer: hint, delayMs: delay };
    }
    return undefined;
  }

  /** The target stayed silent past the request timeout at `now`. */
  stalled(now: number): void {
    this.#suspects.set(this.#target, now);
    this.#stats.requestTimeouts++;
    this.#timeoutScale = Math.min(
      MAX_TIMEOUT_FACTOR,
      this.#timeoutScale * 2,
    );
  }

  /** A replica's connection went down; returns whether it is a replica. */
  peerDown(peer: PeerId): boolean {
    if (!this.#replicaSet.has(peer)) return false;
    this.#down.add(peer);
    this.#suspects.set(peer, this.#clock.now());
    return true;
  }

  /** A replica's connection came up; returns whether it is a replica. */
  peerUp(peer: PeerId): boolean {
    if (!this.#replicaSet.has(peer)) return false;
    this.#down.delete(peer);
    return true;
  }

  /** A frame came from `peer`: it answers again (a frozen process resumed, a pause ended). */
  heard(peer: PeerId): void {
    if (this.#suspects.size > 0) this.#suspects.delete(peer);
  }

  /** `from` answered a request last sent at `sentAt` (-1: not sent to it). */
  answered(from: PeerId, sentAt: number, requestTimeoutMs: number): void {
    if (from !== this.#target) return;
    const now = this.#clock.now();
    this.#lastAnswerAt = now;
    this.#failures = 0;
    this.#redirectRun = 0;
    this.#leader = from;
    if (sentAt >= 0 && now - sentAt < requestTimeoutMs) {
      this.#timeoutScale = 1;
    }
  }
}
