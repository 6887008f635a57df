/**
 * Failure detection within a view: a member silent for `suspectAfterMs`
 * is suspected, and a member that holds up stability without acknowledging
 * anything new for `slowAfterMs` is slow; each is reported once. A member
 * whose connection the transport lost (a crashed process's sockets close
 * at once) and that stays unreachable and silent for
 * `unreachableAfterMs` (counted from the loss or from its last frame,
 * whichever is later: frames in flight may still arrive) is suspected
 * sooner.
 *
 * A member never heard from in the view is not suspected for its silence:
 * it may not have learned of the view yet (views reach members through the
 * Oracle at different times). If it crashed, its lost connection or the
 * end of its Oracle session gives it away; if it lives but hears nothing,
 * it holds up stability and is reported slow.
 *
 * @module
 */

import type { AckMatrix } from "./_reliable_acks.ts";
import type { ResolvedOptions } from "./_reliable_options.ts";
import type { MemberId } from "./types.ts";

/** What {@linkcode PeerWatch} reports. */
export interface PeerReports {
  /** Nothing heard from `member` for `suspectAfterMs`, or since its connection was lost `unreachableAfterMs` ago. */
  onSuspect?: ((member: MemberId, reason: string) => void) | undefined;
  /** `member` holds up stability and acknowledged nothing new for `slowAfterMs`. */
  onSlow?: ((member: MemberId) => void) | undefined;
}

/** When each member was last heard from and last made ack progress. */
export class PeerWatch {
  readonly #o: ResolvedOptions;
  readonly #reports: PeerReports;
  readonly #heardAt: Float64Array;
  readonly #progressAt: Float64Array;
  /** Since when a member is seen lagging (NaN: it is not). */
  readonly #lagSince: Float64Array;
  readonly #reportedSlow: Uint8Array;
  readonly #reportedSuspect: Uint8Array;
  /** Since when the transport reports a member unreachable (NaN: it does not). */
  readonly #downSince: Float64Array;

  /**
   * Starts watching: no member heard from yet; every member counts as
   * making progress at `now`.
   *
   * @param o The instance's options.
   * @param reports Where suspicions and slowness go.
   * @param now The current time.
   */
  constructor(o: ResolvedOptions, reports: PeerReports, now: number) {
    const n = o.members.length;
    this.#o = o;
    this.#reports = reports;
    this.#heardAt = new Float64Array(n).fill(NaN);
    this.#progressAt = new Float64Array(n).fill(now);
    this.#lagSince = new Float64Array(n).fill(NaN);
    this.#reportedSlow = new Uint8Array(n);
    this.#reportedSuspect = new Uint8Array(n);
    this.#downSince = new Float64Array(n).fill(NaN);
  }

  /**
   * The transport lost member `m`'s connection (or reached it again).
   *
   * @param m The member's index.
   * @param now The current time, or `NaN` when it is reachable again.
   */
  unreachable(m: number, now: number): void {
    this.#downSince[m] = now;
  }

  /**
   * When member `m`, unreachable, becomes due for suspicion: `NaN` if it
   * is reachable or already suspected.
   *
   * @param m The member's index.
   */
  unreachableDue(m: number): number {
    return this.#reportedSuspect[m] ? NaN : this.#unreachableAt(m);
  }

  /**
   * `unreachableAfterMs` after the later of the loss and the last frame
   * (frames in flight may still arrive); `NaN` while reachable. A lost
   * connection is evidence enough even from a member not heard from in
   * this view yet.
   */
  #unreachableAt(m: number): number {
    const heardAt = this.#heardAt[m];
    return Math.max(
      this.#downSince[m],
      Number.isNaN(heardAt) ? -Infinity : heardAt,
    ) + this.#o.unreachableAfterMs;
  }

  /**
   * A valid frame came from member `m`.
   *
   * @param m The member's index.
   * @param now The current time.
   * @param progress Whether its acks grew.
   */
  heard(m: number, now: number, progress: boolean): void {
    this.#heardAt[m] = now;
    if (progress) this.#progressAt[m] = now;
  }

  /**
   * Reports the members newly suspected or slow as of `now`.
   *
   * @param now The current time.
   * @param acks What every member acknowledged.
   * @param closed Whether the instance closed (a report may close it).
   */
  check(now: number, acks: AckMatrix, closed: () => boolean): void {
    const { me, members, suspectAfterMs, slowAfterMs } = this.#o;
    for (let m = 0; m < members.length && !closed(); m++) {
      if (m === me) continue;
      // NaN (never heard, or reachable) compares false.
      const reason = now - this.#heardAt[m] >= suspectAfterMs
        ? "silent: no heartbeat"
        // The same sum as unreachableDue: a check at that time is due.
        : now >= this.#unreachableAt(m)
        ? "unreachable: connection lost"
        : undefined;
      if (!this.#reportedSuspect[m] && reason !== undefined) {
        this.#reportedSuspect[m] = 1;
        this.#reports.onSuspect?.(members[m], reason);
      }
      if (!acks.lagging(m)) {
        this.#lagSince[m] = NaN;
        continue;
      }
      if (Number.isNaN(this.#lagSince[m])) this.#lagSince[m] = now;
      const since = Math.max(this.#lagSince[m], this.#progressAt[m]);
      if (!this.#reportedSlow[m] && now - since >= slowAfterMs) {
        this.#reportedSlow[m] = 1;
        this.#reports.onSlow?.(members[m]);
      }
    }
  }
}
