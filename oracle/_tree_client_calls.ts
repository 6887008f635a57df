/**
 * The Oracle tree client's calls: each one sent to the group that owns
 * its path as far as the cache knows, sent again to the group a `moved`
 * answer names (at most {@linkcode MAX_HOPS} in a row), or from the root
 * after a doubling backoff when a group answers `not_owner`, until its
 * deadline.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import type { Logger } from "../runtime/log.ts";
import type { Delegation } from "./commands.ts";
import { type OracleClient, OracleError } from "./client.ts";
import { MAX_TIMEOUT_FACTOR } from "./_client_calls.ts";
import type { TreeRoutes } from "./_tree_client_routes.ts";
import type { OracleTreeClientStats } from "./tree_client.ts";

/** The most `moved` answers a call or subscription follows in a row. */
export const MAX_HOPS = 8;

/** What the calls need from the tree client. */
export interface TreeCallHost {
  readonly clock: Clock;
  readonly log: Logger;
  /** The `requestTimeoutMs` option: the first `not_owner` backoff. */
  readonly requestTimeoutMs: number;
  /** The `deadlineMs` option. */
  readonly deadlineMs: number;
  /** The tree's counters. */
  readonly stats: OracleTreeClientStats;
  readonly routes: TreeRoutes;
  /**
   * The client of the group a delegation names (the root's when
   * `undefined`), with its session open.
   *
   * @throws {OracleError} `overloaded` past `maxGroups`, `closed` once stopped.
   */
  client(
    delegation: Delegation | undefined,
    what: string,
  ): OracleClient | Promise<OracleClient>;
  /** Caches a delegation a `moved` answer named. */
  learn(delegation: Delegation): void;
}

/** The name of the group a delegation names, for messages. */
export function groupName(delegation: Delegation | undefined): string {
  return delegation === undefined
    ? "the root group"
    : `group ${JSON.stringify(delegation.group)}`;
}

/** One call, from its start to its settlement. */
interface TreeCall {
  /** The path that routes it; `undefined`: always the root. */
  readonly path: string | undefined;
  readonly what: string;
  readonly run: (client: OracleClient) => Promise<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  readonly startedAt: number;
  backoffTimer: TimerId | undefined;
  /** `moved` answers followed since the last backoff. */
  hops: number;
  /** The next `not_owner` backoff. */
  backoffMs: number;
  /** The next attempt ignores the cache. */
  fromRoot: boolean;
  /** Whether a group answered `not_owner`. */
  notOwner: boolean;
  /** The group that last answered `not_owner` (`undefined`: the root). */
  refusedBy: Delegation | undefined;
  done: boolean;
}

/** The calls in progress. */
export class TreeCalls {
  readonly #host: TreeCallHost;
  readonly #pending = new Set<TreeCall>();

  constructor(host: TreeCallHost) {
    this.#host = host;
  }

  /** Calls in progress. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Starts a call: `run` is called with the client of the group that owns
   * `path` (the root's when `undefined`), again after each `moved` or
   * `not_owner` answer.
   *
   * @returns What `run` resolves to at the right group, or the error it
   * rejects with there.
   */
  start<T>(
    path: string | undefined,
    what: string,
    run: (client: OracleClient) => Promise<T>,
  ): Promise<T> {
    const host = this.#host;
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const call: TreeCall = {
      path,
      what,
      run,
      resolve: resolve as (value: unknown) => void,
      reject,
      startedAt: host.clock.now(),
      backoffTimer: undefined,
      hops: 0,
      backoffMs: host.requestTimeoutMs,
      fromRoot: false,
      notOwner: false,
      refusedBy: undefined,
      done: false,
    };
    this.#pending.add(call);
    this.#attempt(call);
    return promise;
  }

  /** Rejects every call in progress with the error `error(what)` makes. */
  failAll(error: (what: string) => Error): void {
    for (const call of [...this.#pending]) this.#fail(call, error(call.what));
  }

  #attempt(call: TreeCall): void {
    const host = this.#host;
    const delegation = call.fromRoot || call.path === undefined
      ? undefined
      : host.routes.route(call.path);
    call.fromRoot = false;
    let client: OracleClient | Promise<OracleClient>;
    try {
      client = host.client(delegation, call.what);
    } catch (error) {
      this.#fail(call, error);
      return;
    }
    const send = (client: OracleClient) => {
      if (call.done) return;
      call.run(client).then(
        (value) => this.#settle(call, value),
        (error) => this.#refused(call, delegation, error),
      );
    };
    if (client instanceof Promise) {
      client.then(send, (error) => this.#fail(call, error));
    } else {
      send(client);
    }
  }

  /** The group the call went to rejected it: follow, back off, or give up. */
  #refused(
    call: TreeCall,
    delegation: Delegation | undefined,
    error: unknown,
  ): void {
    if (call.done) return;
    const host = this.#host;
    if (!(error instanceof OracleError) || call.path === undefined) {
      this.#fail(call, error);
      return;
    }
    if (error.code === "moved" && error.delegation !== undefined) {
      if (call.hops >= MAX_HOPS) {
        host.stats.hopLimits++;
        this.#fail(call, hopLimitError(call.what, error));
        return;
      }
      call.hops++;
      host.stats.moves++;
      host.learn(error.delegation);
      this.#attempt(call);
      return;
    }
    if (error.code === "not_owner") {
      host.stats.notOwnerRetries++;
      if (delegation !== undefined) host.routes.forget(delegation);
      call.notOwner = true;
      call.refusedBy = delegation;
      const delay = call.backoffMs;
      // Each attempt has the inner client's deadline; only the retries
      // after not_owner need one of their own: no timer per call.
      if (host.clock.now() + delay - call.startedAt > host.deadlineMs) {
        host.stats.routeTimeouts++;
        this.#fail(call, this.#timeoutError(call));
        return;
      }
      call.backoffMs = Math.min(
        delay * 2,
        host.requestTimeoutMs * MAX_TIMEOUT_FACTOR,
      );
      host.log.log("debug", "oracle_tree_not_owner", {
        path: call.path,
        group: delegation?.group,
        delayMs: delay,
      });
      call.backoffTimer = host.clock.setTimer(delay, () => {
        call.backoffTimer = undefined;
        if (call.done) return;
        call.hops = 0;
        call.fromRoot = true;
        this.#attempt(call);
      });
      return;
    }
    this.#fail(call, error);
  }

  #timeoutError(call: TreeCall): OracleError {
    const ms = this.#host.deadlineMs;
    if (call.notOwner) {
      return new OracleError(
        "timeout",
        `Cannot ${call.what}: ${groupName(call.refusedBy)} did not own ${
          JSON.stringify(call.path)
        } (not_owner: it has not adopted the delegation yet) within ${ms} ms`,
      );
    }
    return new OracleError(
      "timeout",
      `Cannot ${call.what}: no answer within ${ms} ms`,
    );
  }

  #settle(call: TreeCall, value: unknown): void {
    if (call.done) return;
    this.#finish(call);
    call.resolve(value);
  }

  #fail(call: TreeCall, error: unknown): void {
    if (call.done) return;
    this.#finish(call);
    call.reject(error);
  }

  #finish(call: TreeCall): void {
    call.done = true;
    this.#pending.delete(call);
    const clock = this.#host.clock;
    if (call.backoffTimer !== undefined) clock.clearTimer(call.backoffTimer);
    call.backoffTimer = undefined;
  }
}

/** The error of a call or subscription that met {@linkcode MAX_HOPS} `moved` answers in a row. */
export function hopLimitError(what: string, last: OracleError): OracleError {
  return new OracleError(
    "moved",
    `Cannot ${what}: followed ${MAX_HOPS} delegations in a row, the last to group ${
      JSON.stringify(last.delegation?.group)
    } for ${
      JSON.stringify(last.delegation?.prefix)
    } (a delegation cycle, or the tree is deeper than ${MAX_HOPS})`,
    { delegation: last.delegation, cause: last },
  );
}
