/**
 * A child Oracle group's leader-side sync with its parent and its root:
 * it adopts the prefixes the parent delegated to this group, and ends the
 * sessions the root no longer has live (the root is the home of every
 * session of the tree).
 *
 * It runs only while its replica leads: exactly one sync in flight, timers
 * from the injected clock only (the simulator runs this code), and an
 * epoch that makes every answer arriving after leadership was lost (or
 * regained) a no-op.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import type { Logger } from "../runtime/log.ts";
import type { OracleTree } from "./commands.ts";
import { isReserved, isUnder, pathError } from "./path.ts";
import type {
  OracleReplicaCounters,
  OracleTreeLink,
  OracleTreeUpstream,
} from "./replica.ts";
import { MAX_ENDED_QUERY } from "./_sm_sessions.ts";

/** What a {@linkcode TreeSync} reads from and asks of its replica. */
export interface TreeSyncHost {
  /** The replica's id, for logs. */
  readonly id: string;
  /** The replica's clock. */
  readonly clock: Clock;
  /** Where failures and recoveries are reported. */
  readonly logger: Logger;
  /** Where sync failures are counted. */
  readonly counters: Pick<OracleReplicaCounters, "treeSyncFailures">;
  /** The index of the last applied entry. */
  appliedIndex(): number;
  /** The prefixes the group owns (adopted ones, for a child). */
  ownedPrefixes(): readonly string[];
  /** The ids of the live sessions. */
  liveSessions(): readonly string[];
  /**
   * Proposes `{ adopt: prefixes, tokens }` (`tokens`: the parent's last
   * fencing token); returns its log index, or `undefined` when not
   * proposed (not leader).
   */
  adopt(prefixes: string[], tokens: number): number | undefined;
  /** Proposes to expire those of `sessions` still live and not expiring already (only when leading). */
  expire(sessions: string[]): void;
}

/** The syncs of one replica with its parent and root, while it leads. */
export class TreeSync {
  readonly #link: OracleTreeLink;
  readonly #host: TreeSyncHost;
  readonly #syncMs: number;
  /** Changes when leadership starts or stops: answers of another epoch are ignored. */
  #epoch = 0;
  #running = false;
  #upstream: OracleTreeUpstream | undefined;
  #timer: TimerId | undefined;
  /** Consecutive failures: the backoff doubles with each, up to 8 times `syncMs`. */
  #failures = 0;
  /** The log index of the `adopt` entry proposed last (not applied while above the applied index). */
  #adoptAt = 0;
  /** Where the next chunk of live sessions to check starts. */
  #cursor = 0;

  /** `link` says how to reach upstream; `host` is the replica. */
  constructor(link: OracleTreeLink, host: TreeSyncHost) {
    const syncMs = link.syncMs ?? 200;
    if (!Number.isSafeInteger(syncMs) || syncMs < 1) {
      throw new RangeError(
        `Invalid tree syncMs ${syncMs}: use a positive integer`,
      );
    }
    this.#link = link;
    this.#host = host;
    this.#syncMs = syncMs;
  }

  /** Starts syncing (the replica became leader): connects, then syncs every `syncMs`. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const epoch = ++this.#epoch;
    this.#failures = 0;
    this.#adoptAt = 0;
    this.#cursor = 0;
    void this.#connect(epoch);
  }

  /** Stops syncing (leadership lost, or the replica stopped): timers stop, the upstream closes. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#epoch++;
    if (this.#timer !== undefined) this.#host.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#release();
  }

  async #connect(epoch: number): Promise<void> {
    let upstream: OracleTreeUpstream;
    try {
      upstream = await this.#link.connect();
    } catch (error) {
      this.#failed(epoch, error);
      return;
    }
    if (epoch !== this.#epoch) {
      this.#close(upstream);
      return;
    }
    this.#upstream = upstream;
    await this.#sync(epoch, upstream);
  }

  /** One sync: adopt what the parent delegated here, then end sessions the root ended. */
  async #sync(epoch: number, upstream: OracleTreeUpstream): Promise<void> {
    try {
      const tree = await upstream.tree();
      if (epoch !== this.#epoch) return;
      this.#adopt(tree);
      const chunk = this.#nextChunk();
      if (chunk.length > 0) {
        const ended = await upstream.endedSessions(chunk);
        if (epoch !== this.#epoch) return;
        this.#expire(chunk, ended);
      }
    } catch (error) {
      this.#failed(epoch, error);
      return;
    }
    if (this.#failures > 0) {
      this.#host.logger.log("info", "oracle.tree.sync_recovered", {
        id: this.#host.id,
        failures: this.#failures,
      });
      this.#failures = 0;
    }
    this.#next(epoch, this.#syncMs);
  }

  /** Schedules the next sync (reconnecting first when the upstream was released). */
  #next(epoch: number, delayMs: number): void {
    this.#timer = this.#host.clock.setTimer(delayMs, () => {
      this.#timer = undefined;
      if (epoch !== this.#epoch) return;
      const upstream = this.#upstream;
      void (upstream === undefined
        ? this.#connect(epoch)
        : this.#sync(epoch, upstream));
    });
  }

  #adopt(tree: OracleTree): void {
    const delegations = tree?.delegations;
    if (!Array.isArray(delegations) || !Number.isSafeInteger(tree.tokens)) {
      throw new TypeError(
        `The parent's tree has no list of delegations or no token count: ${
          JSON.stringify(tree)
        }`,
      );
    }
    if (this.#adoptAt > this.#host.appliedIndex()) return; // one in flight
    const owned = this.#host.ownedPrefixes();
    const wanted = new Set<string>();
    for (const d of delegations) {
      const prefix = d?.prefix;
      if (
        d?.group !== this.#link.name || pathError(prefix) !== undefined ||
        isReserved(prefix) || owned.some((p) => isUnder(p, prefix))
      ) continue;
      wanted.add(prefix);
    }
    if (wanted.size === 0) return;
    this.#adoptAt = this.#host.adopt([...wanted], tree.tokens) ?? 0;
  }

  /** The next chunk of live sessions to check: successive syncs rotate through all of them. */
  #nextChunk(): string[] {
    const live = this.#host.liveSessions();
    if (this.#cursor >= live.length) this.#cursor = 0;
    const chunk = live.slice(this.#cursor, this.#cursor + MAX_ENDED_QUERY);
    this.#cursor += chunk.length;
    return chunk;
  }

  #expire(asked: readonly string[], ended: readonly string[]): void {
    if (!Array.isArray(ended)) {
      throw new TypeError(
        `The root's ended sessions are not a list: ${typeof ended}`,
      );
    }
    const mine = new Set(asked);
    const gone = ended.filter((id) => mine.has(id));
    if (gone.length > 0) this.#host.expire(gone);
  }

  #failed(epoch: number, error: unknown): void {
    if (epoch !== this.#epoch) return;
    this.#host.counters.treeSyncFailures++;
    this.#host.logger.log(
      this.#failures === 0 ? "warn" : "debug",
      "oracle.tree.sync_failed",
      {
        id: this.#host.id,
        group: this.#link.name,
        error: error instanceof Error ? error.message : String(error),
      },
    );
    this.#failures++;
    this.#release();
    this.#next(epoch, this.#syncMs * 2 ** Math.min(this.#failures, 3));
  }

  /** Closes the upstream, if connected. */
  #release(): void {
    const upstream = this.#upstream;
    this.#upstream = undefined;
    if (upstream !== undefined) this.#close(upstream);
  }

  #close(upstream: OracleTreeUpstream): void {
    Promise.resolve().then(() => upstream.close()).catch((error) =>
      this.#host.logger.log("debug", "oracle.tree.close_failed", {
        id: this.#host.id,
        error: error instanceof Error ? error.message : String(error),
      })
    );
  }
}
