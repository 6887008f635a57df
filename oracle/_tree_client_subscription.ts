/**
 * A subscription of the Oracle tree client: an inner subscription at the
 * group that owns the path, made again at the group a `moved` end names,
 * or from the root after a doubling backoff on a `not_owner` end, each
 * time from the position the previous one reached.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import type { Logger } from "../runtime/log.ts";
import type { ChannelEvent, Delegation } from "./commands.ts";
import { type OracleClient, OracleError, type Subscription } from "./client.ts";
import { MAX_TIMEOUT_FACTOR } from "./_client_calls.ts";
import { hopLimitError, MAX_HOPS } from "./_tree_client_calls.ts";
import type { TreeRoutes } from "./_tree_client_routes.ts";
import type { OracleTreeClientStats } from "./tree_client.ts";

/** What a tree subscription needs from the tree client. */
export interface TreeSubscriptionHost {
  readonly clock: Clock;
  readonly log: Logger;
  /** The `requestTimeoutMs` option: the first `not_owner` backoff. */
  readonly requestTimeoutMs: number;
  /** The tree's counters. */
  readonly stats: OracleTreeClientStats;
  readonly routes: TreeRoutes;
  /**
   * The client of the group a delegation names (the root's when
   * `undefined`), its session not necessarily open.
   *
   * @throws {OracleError} `overloaded` past `maxGroups`, `closed` once stopped.
   */
  client(
    delegation: Delegation | undefined,
    what: string,
  ): OracleClient | Promise<OracleClient>;
  /** Caches a delegation a `moved` end named. */
  learn(delegation: Delegation): void;
  /** An inner subscription ended with `session_expired`. */
  expired(group: string): void;
  /** The subscription ended or was closed: forget it. */
  ended(subscription: TreeSubscription): void;
  /** Counts and logs an exception thrown by a callback. */
  callbackFailed(which: string, error: unknown, subscription: number): void;
}

/** The inner subscription currently serving, where, and from where. */
interface Homed {
  /** Set once `subscribe` returned. */
  inner: Subscription | undefined;
  readonly delegation: Delegation | undefined;
  readonly from: number;
}

/** A subscription that follows its path across the tree. */
export class TreeSubscription implements Subscription {
  /** Its id, unique within the tree client. */
  readonly id: number;
  /** The path (or prefix) subscribed to. */
  readonly path: string;
  /** Whether it follows every channel under `path`. */
  readonly prefix: boolean;
  readonly #host: TreeSubscriptionHost;
  readonly #onEvents: (events: readonly ChannelEvent[]) => void;
  readonly #onError: ((error: OracleError) => void) | undefined;
  #homed: Homed | undefined = undefined;
  /** The position to resume from while no inner subscription serves. */
  #next: number;
  #closed = false;
  #hops = 0;
  #backoffMs: number;
  #timer: TimerId | undefined = undefined;

  constructor(
    host: TreeSubscriptionHost,
    id: number,
    path: string,
    options: {
      prefix: boolean;
      from: number;
      onEvents: (events: readonly ChannelEvent[]) => void;
      onError: ((error: OracleError) => void) | undefined;
    },
  ) {
    this.#host = host;
    this.id = id;
    this.path = path;
    this.prefix = options.prefix;
    this.#next = options.from;
    this.#onEvents = options.onEvents;
    this.#onError = options.onError;
    this.#backoffMs = host.requestTimeoutMs;
  }

  /** The next position expected: one past the last one delivered. */
  get next(): number {
    return this.#homed?.inner?.next ?? this.#next;
  }

  /** Whether it ended (closed, or ended by the Oracle). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops the subscription; no event is delivered afterwards. Idempotent. */
  close(): void {
    if (this.#stop()) this.#host.ended(this);
  }

  /** Ends the subscription on the tree's side: `onError` gets `error`. */
  end(error: OracleError): void {
    if (!this.#stop()) return;
    this.#host.ended(this);
    if (this.#onError === undefined) return;
    try {
      this.#onError(error);
    } catch (cause) {
      this.#host.callbackFailed("onError", cause, this.id);
    }
  }

  #stop(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#next = this.next;
    this.#homed?.inner?.close();
    this.#homed = undefined;
    if (this.#timer !== undefined) this.#host.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    return true;
  }

  #what(): string {
    return this.prefix
      ? `follow prefix ${JSON.stringify(this.path)} from revision ${this.next}`
      : `follow ${JSON.stringify(this.path)} from ${this.next}`;
  }

  /**
   * Subscribes at the group that owns the path as far as the cache knows
   * (or at the root, `fromRoot`), from {@linkcode TreeSubscription.next}.
   */
  home(fromRoot: boolean): void {
    if (this.#closed) return;
    const delegation = fromRoot
      ? undefined
      : this.#host.routes.route(this.path);
    let client: OracleClient | Promise<OracleClient>;
    try {
      client = this.#host.client(delegation, this.#what());
    } catch (error) {
      this.end(asOracleError(error));
      return;
    }
    if (client instanceof Promise) {
      client.then(
        (client) => this.#subscribeAt(client, delegation),
        (error) => this.end(asOracleError(error)),
      );
    } else {
      this.#subscribeAt(client, delegation);
    }
  }

  #subscribeAt(
    client: OracleClient,
    delegation: Delegation | undefined,
  ): void {
    if (this.#closed) return;
    const homed: Homed = { inner: undefined, delegation, from: this.#next };
    this.#homed = homed;
    try {
      homed.inner = client.subscribe(this.path, {
        from: homed.from,
        prefix: this.prefix,
        onError: (error) => this.#innerEnded(homed, error),
      }, (events) => {
        this.#hops = 0;
        this.#backoffMs = this.#host.requestTimeoutMs;
        this.#onEvents(events);
      });
    } catch (error) {
      this.end(asOracleError(error));
    }
  }

  /** The inner subscription of `homed` ended with `error`. */
  #innerEnded(homed: Homed, error: OracleError): void {
    if (this.#closed || homed !== this.#homed) return;
    const host = this.#host;
    this.#next = homed.inner?.next ?? homed.from;
    this.#homed = undefined;
    const delegation = homed.delegation;
    if (error.code === "moved" && error.delegation !== undefined) {
      if (this.#hops >= MAX_HOPS) {
        host.stats.hopLimits++;
        this.end(hopLimitError(this.#what(), error));
        return;
      }
      this.#hops++;
      host.stats.moves++;
      host.learn(error.delegation);
      this.home(false);
      return;
    }
    if (error.code === "not_owner") {
      host.stats.notOwnerRetries++;
      if (delegation !== undefined) host.routes.forget(delegation);
      const delay = this.#backoffMs;
      this.#backoffMs = Math.min(
        delay * 2,
        host.requestTimeoutMs * MAX_TIMEOUT_FACTOR,
      );
      host.log.log("debug", "oracle_tree_not_owner", {
        path: this.path,
        group: delegation?.group,
        subscription: this.id,
        delayMs: delay,
      });
      this.#timer = host.clock.setTimer(delay, () => {
        this.#timer = undefined;
        this.#hops = 0;
        this.home(true);
      });
      return;
    }
    if (error.code === "session_expired") {
      // The tree expires, which ends this subscription too.
      host.expired(delegation?.group ?? "root");
    }
    this.end(error);
  }
}

/** An error for `onError`: an {@linkcode OracleError} as is, anything else wrapped. */
function asOracleError(error: unknown): OracleError {
  if (error instanceof OracleError) return error;
  return new OracleError("closed", String(error), { cause: error });
}
