/**
 * The Oracle client: a session with the Oracle's replica set, the requests
 * that session can make (channels, locks, group membership, reads) and
 * subscriptions to channels that resume on another replica with no gap and
 * no duplicate.
 *
 * The client is event-driven over an injected {@linkcode Transport},
 * {@linkcode Clock} and {@linkcode Random}, so the same code runs over TCP
 * and inside the deterministic simulator. {@linkcode OracleClient.connect}
 * is the shortcut that builds a TCP transport and the system clock.
 *
 * @example Connect, append, subscribe, close
 * ```ts ignore
 * import { OracleClient } from "@cohort/cohort/oracle";
 *
 * const client = await OracleClient.connect({
 *   replicas: { "1": "10.0.0.1:7000", "2": "10.0.0.2:7000", "3": "10.0.0.3:7000" },
 *   secret: Deno.env.get("COHORT_SECRET"),
 * });
 * const sub = client.subscribe("/apps/kv/log", {}, (events) => {
 *   for (const e of events) console.log(e.seq, e.data);
 * });
 * await client.append("/apps/kv/log", { put: "a", value: 1 });
 * sub.close();
 * await client.close();
 * ```
 *
 * @module
 */

import { openOrClose } from "./_open_session.ts";
import { type Clock, SystemClock, type TimerId } from "../runtime/clock.ts";
import { CryptoRandom, type Random } from "../runtime/random.ts";
import { type Logger, silentLogger } from "../runtime/log.ts";
import type { PeerId, Transport } from "../transport/transport.ts";
import { TcpTransport } from "../transport/tcp_transport.ts";
import type {
  ChannelEvent,
  Delegation,
  GroupView,
  Json,
  ListEntries,
  ListKind,
  ListPage,
  OracleErrorCode,
  OracleErrorResult,
  OracleGroupStatus,
  OracleOp,
  OracleTree,
  ViewMember,
} from "./commands.ts";
import {
  checkDuration,
  checkGbcastArgs,
  checkInteger,
  checkJson,
  checkListArgs,
  checkName,
  checkPath,
  checkReplicaAddresses,
  checkSessionIds,
} from "./_client_args.ts";
import { toBase64 } from "../runtime/_base64.ts";
import {
  DEFAULT_DEADLINE_MS,
  DEFAULT_MAX_INFLIGHT,
  DEFAULT_READ_LIMIT,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_SESSION_TTL_MS,
} from "./_client_defaults.ts";
import { MAX_ID_LENGTH, newClientId } from "./_client_id.ts";
import { type Call, CallTable } from "./_client_calls.ts";
import { Outbox } from "./_client_outbox.ts";
import { Routing } from "./_client_routing.ts";
import { emptyStats } from "./_client_stats.ts";
import { SubscriptionTable } from "./_client_subscription_table.ts";
import { parseList } from "./_client_list.ts";
import {
  BAD,
  parseAppend,
  type ParsedFrame,
  parseEndedSessions,
  parseGetLock,
  parseGetView,
  parseGroupStatus,
  parseLock,
  parseNothing,
  parseOpenSession,
  parseRead,
  parseReplicaFrame,
  parseTree,
  parseTruncate,
  parseViewId,
  type ResultParser,
} from "./_client_wire.ts";

/** `close()` waits for the Oracle's answer to `close_session` at most this many times `requestTimeoutMs`. */
const CLOSE_WAIT_FACTOR = 5;

/**
 * Every code an {@linkcode OracleError} can carry: the Oracle's own
 * {@linkcode OracleErrorCode}s, plus `"timeout"` (no answer before the
 * deadline) and `"closed"` (the client was closed, or not opened yet).
 */
export type OracleClientErrorCode = OracleErrorCode | "timeout" | "closed";

/** Options of {@linkcode OracleError}. */
export interface OracleErrorOptions {
  /** For `not_leader`: the leader's replica id when known. */
  leader?: string | undefined;
  /** For `compacted`: the first position still available. */
  first?: number | undefined;
  /** For `moved`: the delegation that owns the path. */
  delegation?: Delegation | undefined;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A failure reported by the Oracle or by the client on its behalf. Check
 * {@linkcode OracleError.code}: `session_expired` means the client is dead
 * for good (build a new one); `timeout` means no answer came before the
 * deadline (the request may or may not have been applied); `closed` means
 * the client was closed.
 *
 * @example Tell a busy lock from a lost session
 * ```ts
 * import { OracleError } from "@cohort/cohort/oracle";
 * import assert from "node:assert/strict";
 *
 * const error = new OracleError("compacted", 'Cannot read "/log" from 3: compacted', { first: 10 });
 * assert.equal(error.name, "OracleError");
 * assert.equal(error.code, "compacted");
 * assert.equal(error.first, 10);
 * ```
 */
export class OracleError extends Error {
  /** Always `"OracleError"`. */
  override readonly name: "OracleError" = "OracleError";
  /** What went wrong. */
  readonly code: OracleClientErrorCode;
  /** For `not_leader`: the leader's replica id when known. */
  readonly leader: string | undefined;
  /** For `compacted`: the first position still available. */
  readonly first: number | undefined;
  /**
   * For `moved`: the delegation that owns the path (the Oracle group to
   * ask instead); `undefined` if the Oracle sent none or a malformed one.
   */
  readonly delegation: Delegation | undefined;

  /**
   * Creates an error.
   *
   * @param code What went wrong.
   * @param message What failed and why, with the values.
   * @param options The leader hint, first available position, delegation
   * and cause.
   */
  constructor(
    code: OracleClientErrorCode,
    message: string,
    options: OracleErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.leader = options.leader;
    this.first = options.first;
    this.delegation = options.delegation;
  }
}

/** Options of the {@linkcode OracleClient} constructor. */
export interface OracleClientOptions {
  /** The replicas' peer ids, reachable through the transport. At least one. */
  replicas: readonly string[];
  /** Time source; the only one the client reads. */
  clock: Clock;
  /** Randomness for the session id, the first replica tried and backoff. */
  random: Random;
  /** Where the client reports target changes and dropped frames. Default: silent. */
  logger?: Logger | undefined;
  /**
   * The session id (a string unique for all time: the Oracle never lets an
   * expired id back). Default `"c-"` and 32 hex digits from `random`.
   */
  id?: string | undefined;
  /** How long the session lives without keep-alive, in ms (1,000-300,000). Default 10,000. */
  sessionTtlMs?: number | undefined;
  /**
   * A request that the target replica does not answer in this time, in ms,
   * makes the client try the next replica (and resend every pending
   * request); if the target answered other requests meanwhile, only that
   * request is resent, to the same replica. The wait doubles (up to 8
   * times) after each silent replica is left, and is back to this value
   * once a replica answers within it. Default 300.
   */
  requestTimeoutMs?: number | undefined;
  /**
   * A request still unanswered this long after the call, in ms, is given
   * up: it rejects with code `"timeout"`. Waiting locks have no deadline.
   * Default 30,000.
   */
  deadlineMs?: number | undefined;
  /**
   * Most requests in flight at once; further calls wait for a slot (they
   * are not refused). Default 1024.
   */
  maxInflight?: number | undefined;
}

/** Options of {@linkcode OracleClient.connect}: TCP addresses instead of a transport. */
export interface OracleConnectOptions
  extends Omit<OracleClientOptions, "replicas" | "clock" | "random"> {
  /** The replicas by id, each `"host:port"`. */
  replicas: Record<string, string>;
  /** The cluster secret the replicas' transports are configured with. */
  secret?: string | Uint8Array | undefined;
}

/** Options of {@linkcode OracleClient.subscribe}. */
export interface SubscribeOptions {
  /**
   * The first position wanted: a sequence number of the channel, or a
   * revision for a prefix subscription. Default 1.
   */
  from?: number | undefined;
  /** Subscribe to every channel under the path, in revision order. Default `false`. */
  prefix?: boolean | undefined;
  /**
   * Called once if the subscription ends on the Oracle's side: `compacted`
   * (the position was truncated; `first` says what is left), an invalid
   * path, or `session_expired`. Not called by {@linkcode Subscription.close}
   * or {@linkcode OracleClient.close}.
   */
  onError?: ((error: OracleError) => void) | undefined;
}

/** A live subscription, returned by {@linkcode OracleClient.subscribe}. */
export interface Subscription {
  /** Its id, unique within the client. */
  readonly id: number;
  /** The path (or prefix) subscribed to. */
  readonly path: string;
  /** Whether it follows every channel under `path`. */
  readonly prefix: boolean;
  /** The next position expected: one past the last one delivered. */
  readonly next: number;
  /** Whether it ended (closed, or ended by the Oracle). */
  readonly closed: boolean;
  /** Stops the subscription; no event is delivered afterwards. Idempotent. */
  close(): void;
}

/** A lock's state, as {@linkcode OracleClient.getLock} reads it. */
export interface OracleLockInfo {
  /** The holding session, or `null` when free. */
  holder: string | null;
  /** The fencing token of the current grant (0 when never granted). */
  token: number;
  /** How many sessions wait in the queue. */
  waiters: number;
}

/** A proposed next view of a group, waiting for its survivors to flush. */
export interface OracleViewProposal {
  /** The proposed view's id. */
  viewId: number;
  /** The members of the proposed view, in order. */
  members: ViewMember[];
  /** Members of the installed view that must report `flushed`. */
  survivors: string[];
  /** Survivors that reported `flushed` so far. */
  flushed: string[];
}

/** A group's state, as {@linkcode OracleClient.getView} reads it. */
export interface OracleViewInfo {
  /** The installed view, or `null` when the group has none. */
  view: GroupView | null;
  /** The proposed next view being flushed, or `null`. */
  proposal: OracleViewProposal | null;
}

/** A page of a channel, as {@linkcode OracleClient.read} returns it. */
export interface OracleReadResult {
  /** The events from the requested position, in order. */
  events: ChannelEvent[];
  /** The first sequence number still retained. */
  first: number;
  /** The sequence number after the last event returned (where to read on). */
  next: number;
}

/** Options of {@linkcode OracleClient.list}. */
export interface OracleListOptions {
  /** A cursor: only entries whose path sorts strictly after it (a previous page's `next`). */
  after?: string | undefined;
  /** The most entries returned, 1 to 1,000. Default 100. */
  limit?: number | undefined;
}

/** The client's life: `new` → `opening` → `open` → `closing` → `closed`, or `expired`. */
export type OracleClientState =
  | "new"
  | "opening"
  | "open"
  | "expired"
  | "closing"
  | "closed";

/** A snapshot of the client, from {@linkcode OracleClient.status}. */
export interface OracleClientStatus {
  /** Where the client is in its life. */
  state: OracleClientState;
  /** The replica requests are sent to. */
  target: string;
  /** The last replica known to lead (it answered, or was named by a redirect). */
  leader: string | undefined;
  /** The session id. */
  session: string;
  /** Requests sent and not yet answered (keep-alive included). */
  pending: number;
  /** Calls waiting for an in-flight slot (`maxInflight`) or for the session to open. */
  queued: number;
  /** Live subscriptions. */
  subscriptions: number;
}

/** Counters of an {@linkcode OracleClient}; they only grow. */
export interface OracleClientStats {
  /** Request frames handed to the transport, retransmissions included. */
  requestsSent: number;
  /** Of those, retransmissions of a request already sent once. */
  resends: number;
  /** Replies that settled a request. */
  replies: number;
  /** Replies for a request number that is unknown or already answered (ignored). */
  staleReplies: number;
  /** `not_leader` answers with a leader hint that the client followed. */
  redirects: number;
  /** Moves to the next replica (no hint, target down, or target silent). */
  rotations: number;
  /** Requests whose target stayed silent past `requestTimeoutMs`. */
  requestTimeouts: number;
  /** Requests rejected with `"timeout"` at their deadline. */
  deadlineTimeouts: number;
  /** Frames dropped as malformed: not JSON, wrong shape, unknown sender, or a result of the wrong shape. */
  badFrames: number;
  /** Events handed to subscribers. */
  eventsDelivered: number;
  /** Events dropped because they were already delivered (repeats after a resume). */
  duplicateEvents: number;
  /** Path-subscription frames that skipped a position (protocol errors; resubscribed). */
  gaps: number;
  /** Subscriptions sent again after a gap or a stale end. */
  resubscribes: number;
  /**
   * Subscriptions sent again because the target sent nothing for them in
   * a quarter of the session TTL (a lost `sub` frame or a lost last
   * event would otherwise go unnoticed).
   */
  subscriptionRefreshes: number;
  /** Event or end frames for an unknown subscription or from a replica that is no longer the target. */
  staleEvents: number;
  /** Frames the transport refused (backpressure); they were queued until it drained. */
  transportBackpressure: number;
  /** Calls that waited because `maxInflight` requests were in flight. */
  inflightWaits: number;
  /** Requests answered `overloaded` and retried after a backoff. */
  overloadRetries: number;
  /** Waiting lock requests sent again to the same replica (the first may have been lost). */
  waitResends: number;
  /** Exceptions thrown by subscriber and expiry callbacks (caught and logged). */
  callbackErrors: number;
}

/**
 * A session with the Oracle.
 *
 * **Leader following.** Every request goes to one target replica. A
 * `not_leader` answer moves the target to the named leader, or to the next
 * replica after 5-15 ms when none is named (after about a second of
 * failures, a random backoff doubling up to 200 ms). When the target goes
 * down or stays silent for `requestTimeoutMs`, the client moves to the
 * next replica and resends every pending request with its original
 * number: the Oracle applies a request once per (session, number), so
 * retries are safe. A replica that went down or stayed silent is suspect
 * for a second, or until it is heard from again: the client skips it and
 * ignores hints naming it, since followers that have not yet noticed a
 * crashed or frozen leader still name it.
 *
 * **Pipelining.** Requests do not wait for each other; up to
 * `maxInflight` are in flight, and further calls wait for a slot. Frames
 * the transport refuses are queued until it drains.
 *
 * **Subscriptions** track the next position they expect and resume from
 * it on the new target, so each event is delivered once and in order even
 * when replicas repeat events across a resume.
 *
 * **Expiry.** If the Oracle reports the session expired, every pending
 * request and subscription fails with code `session_expired`, the
 * {@linkcode OracleClient.onSessionExpired} callbacks run, and the client
 * stops: build a new one (the expired id is never accepted again).
 *
 * Nothing the network sends makes the client throw: malformed frames are
 * dropped and counted in {@linkcode OracleClient.stats}.
 *
 * @example Open a session and append, against a stand-in replica
 * ```ts
 * import { OracleClient } from "@cohort/cohort/oracle";
 * import { CryptoRandom, SystemClock } from "@cohort/cohort";
 * import { MemoryNetwork } from "@cohort/cohort/transport";
 * import assert from "node:assert/strict";
 *
 * // A stand-in for the Oracle: one replica that leads and answers two operations.
 * const net = new MemoryNetwork();
 * const replica = net.connect("r1");
 * let seq = 0;
 * replica.setHandler({
 *   onFrame(from, payload) {
 *     const req = JSON.parse(new TextDecoder().decode(payload));
 *     const op = req.op?.op;
 *     const ok = op === "open_session"
 *       ? { session: req.s, ttlMs: req.op.ttlMs }
 *       : op === "append"
 *       ? { seq: ++seq, rev: seq }
 *       : null;
 *     const res = JSON.stringify({ t: "res", r: req.r, ok });
 *     replica.send(from, new TextEncoder().encode(res));
 *   },
 * });
 *
 * const client = new OracleClient(net.connect("c1"), {
 *   replicas: ["r1"],
 *   clock: new SystemClock(),
 *   random: new CryptoRandom(),
 * });
 * await client.open();
 * assert.deepEqual(await client.append("/log", "hello"), { seq: 1, rev: 1 });
 * await client.close();
 * await net.close();
 * ```
 *
 * @example Run inside the simulator
 * ```ts ignore
 * import { OracleClient } from "@cohort/cohort/oracle";
 * import { Simulation } from "@cohort/cohort/sim";
 *
 * const sim = new Simulation({ seed: 1 });
 * // ... add replica nodes "1", "2", "3" ...
 * sim.addNode("client", (env) => {
 *   const client = new OracleClient(env.transport, {
 *     replicas: ["1", "2", "3"],
 *     clock: env.clock,
 *     random: env.random,
 *   });
 *   client.open().then(() => client.append("/log", "hello"));
 *   return {};
 * });
 * ```
 */
export class OracleClient {
  /** The session id. */
  readonly session: string;

  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;
  readonly #requestedTtlMs: number;
  readonly #requestTimeoutMs: number;
  readonly #deadlineMs: number;
  readonly #tickMs: number;
  readonly #stats: OracleClientStats = emptyStats();
  /** The target replica, suspects, leader hints and retry delays. */
  readonly #routing: Routing;
  /** Pending and queued requests. */
  readonly #calls: CallTable;
  /** Frames for the target, with backpressure. */
  readonly #outbox: Outbox;
  /** Live subscriptions. */
  readonly #subscriptions: SubscriptionTable;

  #state: OracleClientState = "new";
  #ownsTransport = false;
  #tickTimer: TimerId | undefined = undefined;
  #keepaliveTimer: TimerId | undefined = undefined;
  #ttlMs: number;

  #opening: Promise<void> | undefined = undefined;
  #closing: Promise<void> | undefined = undefined;
  readonly #expiredCallbacks: (() => void)[] = [];

  /**
   * Creates a client over `transport`, without opening the session (see
   * {@linkcode OracleClient.open}). The client installs itself as the
   * transport's handler.
   *
   * @param transport Carries frames to and from the replicas.
   * @param options Replicas, clock, randomness and limits.
   * @throws {TypeError} if `replicas` is empty or holds a non-string or
   * repeated id, or `id` is not a non-empty string.
   * @throws {RangeError} if a duration or `maxInflight` is out of range.
   */
  constructor(transport: Transport, options: OracleClientOptions) {
    const replicas = options.replicas;
    if (!Array.isArray(replicas) || replicas.length === 0) {
      throw new TypeError(
        "Invalid replicas: must be a non-empty array of replica ids",
      );
    }
    for (const id of replicas) checkName("replica id", id);
    if (new Set(replicas).size !== replicas.length) {
      throw new TypeError(
        `Invalid replicas ${JSON.stringify(replicas)}: ids repeat`,
      );
    }
    this.#transport = transport;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#log = options.logger ?? silentLogger;
    this.#requestedTtlMs = checkDuration(
      "sessionTtlMs",
      options.sessionTtlMs ?? DEFAULT_SESSION_TTL_MS,
      1_000,
      300_000,
    );
    if (!Number.isInteger(this.#requestedTtlMs)) {
      throw new RangeError(
        `Invalid sessionTtlMs ${this.#requestedTtlMs}: must be an integer`,
      );
    }
    this.#ttlMs = this.#requestedTtlMs;
    this.#requestTimeoutMs = checkDuration(
      "requestTimeoutMs",
      options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      1,
      3_600_000,
    );
    this.#deadlineMs = checkDuration(
      "deadlineMs",
      options.deadlineMs ?? DEFAULT_DEADLINE_MS,
      1,
      86_400_000,
    );
    const maxInflight = checkInteger(
      "maxInflight",
      options.maxInflight ?? DEFAULT_MAX_INFLIGHT,
      1,
    );
    this.#tickMs = Math.max(
      1,
      Math.min(this.#requestTimeoutMs, this.#deadlineMs) / 4,
    );
    this.session = options.id === undefined
      ? newClientId(this.#random)
      : checkName("id", options.id, MAX_ID_LENGTH);
    this.#routing = new Routing(
      replicas,
      this.#clock,
      this.#random,
      this.#stats,
      this.#requestedTtlMs,
    );
    this.#calls = new CallTable({
      stats: this.#stats,
      requestTimeoutMs: this.#requestTimeoutMs,
      send: (call) => this.#outbox.put({ k: "req", call }),
      timeoutScale: () => this.#routing.timeoutScale,
      lastAnswerAt: () => this.#routing.lastAnswerAt,
      timeoutError: (call) => this.#timeoutError(call),
    }, maxInflight);
    this.#outbox = new Outbox({
      session: this.session,
      transport,
      clock: this.#clock,
      log: this.#log,
      stats: this.#stats,
      stopped: () => this.#stopped(),
      target: () => this.#routing.target,
      ackFloor: () => this.#calls.ackFloor(),
      fail: (call, error) => this.#calls.fail(call, error),
      unreachable: () => this.#unreachable(),
    });
    this.#subscriptions = new SubscriptionTable({
      stats: this.#stats,
      log: this.#log,
      outbox: this.#outbox,
      stopped: () => this.#stopped(),
      target: () => this.#routing.target,
      now: () => this.#clock.now(),
      notLeader: (error) => this.#notLeader(error),
      error: (code, message, options) =>
        new OracleError(code, message, options),
      callbackFailed: (which, error, subscription) =>
        this.#callbackFailed(which, error, subscription),
    });
    transport.setHandler({
      onFrame: (from, payload) => this.#onFrame(from, payload),
      onPeerUp: (peer) => this.#onPeerUp(peer),
      onPeerDown: (peer) => this.#onPeerDown(peer),
      onDrain: (peer) => this.#onDrain(peer),
    });
  }

  /**
   * Starts a TCP transport (a dial-only client whose id is the session
   * id), the system clock and OS randomness, and opens the session. The
   * client owns the transport: {@linkcode OracleClient.close} closes it.
   *
   * @example Connect to a replica set
   * ```ts ignore
   * import { OracleClient } from "@cohort/cohort/oracle";
   *
   * const client = await OracleClient.connect({
   *   replicas: { "1": "127.0.0.1:7001", "2": "127.0.0.1:7002", "3": "127.0.0.1:7003" },
   *   secret: "cluster secret",
   * });
   * console.log(client.session);
   * await client.close();
   * ```
   *
   * @param options Replica addresses, secret and the client options.
   * @returns The client, with its session open.
   * @throws {TypeError} if `replicas` is empty or an address is invalid.
   * @throws {RangeError} if an option is out of range.
   * @throws {OracleError} if the session could not be opened (code
   * `"timeout"` when no replica answered before the deadline).
   */
  static async connect(options: OracleConnectOptions): Promise<OracleClient> {
    const addresses = options.replicas;
    if (
      typeof addresses !== "object" || addresses === null ||
      Object.keys(addresses).length === 0
    ) {
      throw new TypeError(
        "Invalid replicas: must map at least one replica id to its host:port",
      );
    }
    const random = new CryptoRandom();
    const id = options.id ?? newClientId(random);
    checkName("id", id, MAX_ID_LENGTH);
    const transport = await TcpTransport.start({
      id,
      peers: addresses,
      secret: options.secret,
      logger: options.logger,
    });
    let client: OracleClient;
    try {
      client = new OracleClient(transport, {
        ...options,
        replicas: Object.keys(addresses),
        clock: new SystemClock(),
        random,
        id,
      });
    } catch (error) {
      await transport.close();
      throw error;
    }
    client.#ownsTransport = true;
    return await openOrClose(client);
  }

  // ------------------------------------------------------------ session

  /**
   * Opens the session (`open_session`, idempotent at the Oracle) and
   * starts the keep-alive. Calls made while it is opening wait for it.
   * Calling it again returns the same promise.
   *
   * @example Open a session
   * ```ts ignore
   * await client.open();
   * console.log(client.status().state); // "open"
   * ```
   *
   * @returns A promise that resolves once the session is open.
   * @throws {OracleError} `timeout` if no replica answered before the
   * deadline, `session_expired` if the id was already used and expired,
   * `closed` if the client was closed.
   */
  open(): Promise<void> {
    if (this.#opening !== undefined) return this.#opening;
    if (this.#state === "expired") {
      return Promise.reject(this.#expiredError("open the session"));
    }
    if (this.#state === "closing" || this.#state === "closed") {
      return Promise.reject(this.#closedError("open the session"));
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#opening = promise;
    this.#state = "opening";
    this.#start(
      { op: "open_session", ttlMs: this.#requestedTtlMs },
      `open session ${this.session}`,
      parseOpenSession,
      (value) => {
        if (this.#state !== "opening") return;
        const { ttlMs } = value as { ttlMs: number };
        this.#state = "open";
        this.#ttlMs = Math.max(100, ttlMs);
        this.#scheduleKeepalive();
        this.#admitQueued();
        resolve();
      },
      (error) => {
        this.#opening = undefined;
        if (this.#state === "opening") {
          this.#state = "new";
          this.#calls.failQueued(error);
        }
        reject(error);
      },
      { internal: true, waits: false },
    );
    return promise;
  }

  /**
   * Registers a callback run once when the Oracle reports the session
   * expired (at once if it already has). Afterwards every call rejects
   * with code `session_expired`.
   *
   * @example Rebuild the client when its session expires
   * ```ts ignore
   * client.onSessionExpired(() => {
   *   console.error(`session ${client.session} expired: reconnecting`);
   * });
   * ```
   *
   * @param callback Called with no argument; exceptions are caught and logged.
   */
  onSessionExpired(callback: () => void): void {
    if (this.#state === "expired") {
      this.#runCallback(callback);
      return;
    }
    this.#expiredCallbacks.push(callback);
  }

  /**
   * Closes the session (`close_session`, best effort: waits at most five
   * request timeouts for the answer), rejects pending calls with code
   * `closed`, ends subscriptions, stops timers, and closes the transport
   * if the client owns it ({@linkcode OracleClient.connect}). Idempotent.
   *
   * @example Close the client
   * ```ts ignore
   * await client.close();
   * console.log(client.status().state); // "closed"
   * ```
   *
   * @returns A promise that resolves once the client is closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasOpen = this.#state === "open";
    this.#state = "closing";
    const error = this.#closedError("complete the request");
    this.#calls.failQueued(error);
    for (const call of this.#calls.snapshot()) this.#calls.fail(call, error);
    for (const entry of this.#subscriptions.snapshot()) {
      this.#subscriptions.close(entry.state);
    }
    this.#clearTimer("keepalive");
    if (wasOpen) {
      const done = Promise.withResolvers<void>();
      const bound = this.#clock.setTimer(
        this.#requestTimeoutMs * CLOSE_WAIT_FACTOR,
        () => done.resolve(),
      );
      this.#start(
        { op: "close_session" },
        `close session ${this.session}`,
        parseNothing,
        () => done.resolve(),
        () => done.resolve(),
        { internal: true, waits: false },
      );
      await done.promise;
      this.#clock.clearTimer(bound);
    }
    this.#state = "closed";
    for (const call of this.#calls.snapshot()) this.#calls.fail(call, error);
    this.#clearTimer("tick");
    this.#outbox.clearHoldTimer();
    this.#clearTimer("keepalive");
    this.#outbox.clear();
    if (this.#ownsTransport) await this.#transport.close();
  }

  // ------------------------------------------------------------ requests

  /**
   * Appends an event to a channel.
   *
   * @example Append an event
   * ```ts ignore
   * const { seq, rev } = await client.append("/apps/kv/log", { put: "a" });
   * ```
   *
   * @param path The channel.
   * @param data The event (any JSON value).
   * @returns The event's sequence number in the channel and its revision.
   * @throws {TypeError} if `path` is not a string starting with `/`, or
   * `data` is not JSON (undefined, BigInt, cycle, non-finite number).
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`.
   */
  async append(
    path: string,
    data: Json,
  ): Promise<{ seq: number; rev: number }> {
    checkPath("channel path", path);
    checkJson(`event for ${JSON.stringify(path)}`, data);
    return await this.#request(
      { op: "append", path, data },
      `append to ${JSON.stringify(path)}`,
      parseAppend,
    );
  }

  /**
   * Drops a channel's events before sequence number `before`.
   *
   * @example Keep only recent events
   * ```ts ignore
   * const { first } = await client.truncate("/apps/kv/log", 1000);
   * ```
   *
   * @param path The channel.
   * @param before The first sequence number to keep (at least 1).
   * @returns The first sequence number still retained.
   * @throws {TypeError} if `path` or `before` has the wrong type.
   * @throws {RangeError} if `before` is not an integer of at least 1.
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`.
   */
  async truncate(path: string, before: number): Promise<{ first: number }> {
    checkPath("channel path", path);
    checkInteger("truncation point", before, 1);
    return await this.#request(
      { op: "truncate", path, before },
      `truncate ${JSON.stringify(path)} before ${before}`,
      parseTruncate,
    );
  }

  /**
   * Acquires a lock, waiting in FIFO order behind earlier requests. The
   * replica answers when the lock is granted, however long that takes:
   * this call has no deadline.
   *
   * @example Hold a lock
   * ```ts ignore
   * const { token } = await client.lock("/apps/kv/primary");
   * try {
   *   // ... pass `token` to the guarded resource (fencing) ...
   * } finally {
   *   await client.unlock("/apps/kv/primary", token);
   * }
   * ```
   *
   * @param path The lock.
   * @returns The grant's fencing token (it only grows).
   * @throws {TypeError} if `path` is not a string starting with `/`.
   * @throws {OracleError} `lock_owned` if this session already holds or
   * waits for it; `not_holder` if the waiting request was withdrawn with
   * `unlock(path, 0)`; `closed` or `session_expired`.
   */
  async lock(path: string): Promise<{ token: number }> {
    checkPath("lock path", path);
    const what = `lock ${JSON.stringify(path)}`;
    const { token, holder, withdrawn } = await this.#request(
      { op: "lock", path, wait: true },
      what,
      parseLock,
      true,
    );
    if (withdrawn || token === 0) {
      throw new OracleError(
        "not_holder",
        `Cannot ${what}: the request was withdrawn (unlock with token 0) while ${
          holder ?? "another session"
        } held it`,
      );
    }
    return { token };
  }

  /**
   * Acquires a lock if it is free, without waiting.
   *
   * @example Try a lock
   * ```ts ignore
   * const token = await client.tryLock("/apps/kv/primary");
   * if (token === undefined) console.log("busy");
   * ```
   *
   * @param path The lock.
   * @returns The grant's fencing token, or `undefined` if another session holds it.
   * @throws {TypeError} if `path` is not a string starting with `/`.
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`.
   */
  async tryLock(path: string): Promise<number | undefined> {
    checkPath("lock path", path);
    const { token } = await this.#request(
      { op: "lock", path, wait: false },
      `try lock ${JSON.stringify(path)}`,
      parseLock,
    );
    return token === 0 ? undefined : token;
  }

  /**
   * Releases a lock held under `token` (or, with token 0, withdraws a
   * queued request).
   *
   * @example Release a lock
   * ```ts ignore
   * await client.unlock("/apps/kv/primary", token);
   * ```
   *
   * @param path The lock.
   * @param token The grant's fencing token, or 0.
   * @returns A promise that resolves once released.
   * @throws {TypeError} if `path` or `token` has the wrong type.
   * @throws {RangeError} if `token` is not an integer of at least 0.
   * @throws {OracleError} `not_holder` if this session does not hold the
   * lock under that token; `timeout`, `closed` or `session_expired`.
   */
  async unlock(path: string, token: number): Promise<void> {
    checkPath("lock path", path);
    checkInteger("token", token, 0);
    await this.#request(
      { op: "unlock", path, token },
      `unlock ${JSON.stringify(path)} (token ${token})`,
      parseNothing,
    );
  }

  /**
   * Asks for `member` (owned by this session) to join a group. The Oracle
   * orders the request and drives the view change.
   *
   * @example Join a group
   * ```ts ignore
   * const { viewId } = await client.join("/apps/kv", "node-a");
   * ```
   *
   * @param group The group's path.
   * @param member The member's name.
   * @returns The id of the view proposed (or installed) with the change.
   * @throws {TypeError} if `group` or `member` is invalid.
   * @throws {OracleError} `membership` if already a member or excluded;
   * `timeout`, `closed` or `session_expired`.
   */
  async join(group: string, member: string): Promise<{ viewId: number }> {
    checkPath("group", group);
    checkName("member", member);
    return await this.#request(
      { op: "join", group, member },
      `join ${JSON.stringify(member)} to ${JSON.stringify(group)}`,
      parseViewId,
    );
  }

  /**
   * Asks for `member` to leave a group voluntarily.
   *
   * @example Leave a group
   * ```ts ignore
   * await client.leave("/apps/kv", "node-a");
   * ```
   *
   * @param group The group's path.
   * @param member The member's name.
   * @returns The id of the view proposed with the change.
   * @throws {TypeError} if `group` or `member` is invalid.
   * @throws {OracleError} `membership` if not a member or the view is stale; `timeout`,
   * `closed` or `session_expired`.
   */
  async leave(group: string, member: string): Promise<{ viewId: number }> {
    checkPath("group", group);
    checkName("member", member);
    return await this.#request(
      { op: "leave", group, member },
      `remove ${JSON.stringify(member)} from ${JSON.stringify(group)}`,
      parseViewId,
    );
  }

  /**
   * Forces `member` out of a group (its failure is suspected). It may not
   * rejoin under the same name.
   *
   * @example Exclude a silent member
   * ```ts ignore
   * await client.remove("/apps/kv", "node-b", "no heartbeat for 5 s");
   * ```
   *
   * @param group The group's path.
   * @param member The member to exclude.
   * @param reason Why, for the record.
   * @param viewId The view the suspicion was raised in: if another view
   * is installed by then, the removal is refused (`membership`).
   * @returns The id of the view proposed with the change.
   * @throws {TypeError} if an argument is invalid.
   * @throws {OracleError} `membership` if not a member; `timeout`,
   * `closed` or `session_expired`.
   */
  async remove(
    group: string,
    member: string,
    reason: string,
    viewId?: number,
  ): Promise<{ viewId: number }> {
    checkPath("group", group);
    checkName("member", member);
    if (typeof reason !== "string") {
      throw new TypeError(`Invalid reason ${String(reason)}: must be a string`);
    }
    if (viewId !== undefined) checkInteger("viewId", viewId, 1);
    return await this.#request(
      { op: "remove", group, member, reason, viewId },
      `exclude ${JSON.stringify(member)} from ${JSON.stringify(group)}`,
      parseViewId,
    );
  }

  /**
   * Reports that `member` finished flushing for the proposed view `viewId`.
   *
   * @example Report a flush
   * ```ts ignore
   * await client.flushed("/apps/kv", 8, "node-a");
   * ```
   *
   * @param group The group's path.
   * @param viewId The proposed view's id.
   * @param member The member that flushed.
   * @returns A promise that resolves once recorded.
   * @throws {TypeError} if an argument has the wrong type.
   * @throws {RangeError} if `viewId` is not an integer of at least 1.
   * @throws {OracleError} `membership` for a stale view id; `timeout`,
   * `closed` or `session_expired`.
   */
  async flushed(group: string, viewId: number, member: string): Promise<void> {
    checkPath("group", group);
    checkInteger("view id", viewId, 1);
    checkName("member", member);
    await this.#request(
      { op: "flushed", group, viewId, member },
      `report ${JSON.stringify(member)} flushed for view ${viewId} of ${
        JSON.stringify(group)
      }`,
      parseNothing,
    );
  }

  /**
   * Multicasts `payload` to a group in gbcast order (see
   * {@linkcode GbcastOp}): the Oracle orders it like a view change, and
   * the members deliver it at the end of the installed view.
   *
   * @example Send a gbcast
   * ```ts ignore
   * await client.gbcast("/apps/kv", "node-a", 1, new Uint8Array([1, 2]));
   * ```
   *
   * @param group The group's path.
   * @param member The sending member, in the installed view.
   * @param seq The sender's number for it, above its last (a retry keeps it).
   * @param payload At most 12,288 bytes.
   * @returns The id of the view proposed with it; when it waits behind the
   * proposal in flight (or is a retry), the earliest view id it can end:
   * a hint only, since changes queued ahead of it push it later.
   * @throws {TypeError} if an argument has the wrong type.
   * @throws {RangeError} if `seq` is not a positive integer or `payload` is too large.
   * @throws {OracleError} `membership` if `member` is not in the installed
   * view; `timeout`,
   * `closed` or `session_expired`.
   */
  async gbcast(
    group: string,
    member: string,
    seq: number,
    payload: Uint8Array,
  ): Promise<{ viewId: number }> {
    const data = toBase64(checkGbcastArgs(group, member, seq, payload));
    return await this.#request(
      { op: "gbcast", group, member, seq, data },
      `gbcast from ${JSON.stringify(member)} to ${JSON.stringify(group)}`,
      parseViewId,
    );
  }

  /**
   * Reads a channel's retained events from `from` (linearizable).
   *
   * @example Page through a channel
   * ```ts ignore
   * let from = 1;
   * for (;;) {
   *   const page = await client.read("/apps/kv/log", from, 500);
   *   if (page.events.length === 0) break;
   *   from = page.next;
   * }
   * ```
   *
   * @param path The channel.
   * @param from The first sequence number wanted (at least 1).
   * @param limit Most events returned. Default 1000.
   * @returns The events, the first retained sequence number and where to read on.
   * @throws {TypeError} if an argument has the wrong type.
   * @throws {RangeError} if `from` or `limit` is not an integer of at least 1.
   * @throws {OracleError} `compacted` (with `first`) if `from` was
   * truncated; `timeout`, `closed` or `session_expired`.
   */
  async read(
    path: string,
    from: number,
    limit: number = DEFAULT_READ_LIMIT,
  ): Promise<OracleReadResult> {
    checkPath("channel path", path);
    checkInteger("read position", from, 1);
    checkInteger("read limit", limit, 1);
    return await this.#request(
      { op: "read", path, from, limit },
      `read ${JSON.stringify(path)} from ${from}`,
      parseRead,
    );
  }

  /**
   * Reads a lock's holder, token and queue length (linearizable).
   *
   * @example Who holds a lock
   * ```ts ignore
   * const { holder, token, waiters } = await client.getLock("/apps/kv/primary");
   * ```
   *
   * @param path The lock.
   * @returns The lock's state.
   * @throws {TypeError} if `path` is not a string starting with `/`.
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`.
   */
  async getLock(path: string): Promise<OracleLockInfo> {
    checkPath("lock path", path);
    return await this.#request(
      { op: "get_lock", path },
      `read lock ${JSON.stringify(path)}`,
      parseGetLock,
    );
  }

  /**
   * Reads a group's installed view and pending proposal (linearizable).
   *
   * @example Read a view
   * ```ts ignore
   * const { view } = await client.getView("/apps/kv");
   * console.log(view?.members.map((m) => m.member));
   * ```
   *
   * @param group The group's path.
   * @returns The view and proposal, each `null` when absent.
   * @throws {TypeError} if `group` is not a string starting with `/`.
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`.
   */
  async getView(group: string): Promise<OracleViewInfo> {
    checkPath("group", group);
    return await this.#request(
      { op: "get_view", group },
      `read view of ${JSON.stringify(group)}`,
      parseGetView,
    );
  }

  /**
   * Lists the held locks, the channels or the groups at or under `prefix`
   * that this Oracle group holds, sorted by path, one page at a time
   * (linearizable). Each call filters and sorts every entry of the table
   * at the leader: meant for admin pages, not hot paths.
   *
   * `prefix` is checked like a read of that path: `moved` or `not_owner`
   * when another Oracle group owns it. `/` lists everything this group
   * holds (only a root owns `/`), view channels and the tree channel under
   * `/_sys` included; a subtree this group delegated holds nothing here.
   *
   * @example Page through every lock under a prefix
   * ```ts ignore
   * let after: string | undefined;
   * do {
   *   const page = await client.list("locks", "/apps", { after, limit: 500 });
   *   for (const lock of page.items) console.log(lock.path, lock.holder, lock.token);
   *   after = page.next ?? undefined;
   * } while (after !== undefined);
   * ```
   *
   * @param kind `"locks"` (held locks: `{ path, holder, token, waiters }`),
   * `"channels"` (channels that ever had an event: `{ path, first, last }`,
   * `first` is `last + 1` when none is retained) or `"groups"` (groups
   * ever joined: `{ group, viewId, members, proposal }`, `viewId` `null`
   * and `members` `[]` before the first view, `proposal` the view id in
   * flight or `null`).
   * @param prefix A path, or `/`: lists it and every path under it.
   * @param options `after` (a cursor) and `limit` (default 100).
   * @returns The entries, sorted by path, and `next`: the last entry's
   * path when more follow (pass it as `after`), else `null`.
   * @throws {TypeError} if `kind` is not one of the three, `prefix` or
   * `after` is not a string starting with `/`, or `limit` not a number.
   * @throws {RangeError} if `limit` is not an integer from 1 to 1,000.
   * @throws {OracleError} `invalid_path` for a malformed path, `moved` or
   * `not_owner` if another group owns `prefix`; `timeout`, `closed` or
   * `session_expired`.
   */
  async list<K extends ListKind>(
    kind: K,
    prefix: string,
    options: OracleListOptions = {},
  ): Promise<ListPage<ListEntries[K]>> {
    checkListArgs(kind, prefix, options);
    const { after, limit } = options;
    return await this.#request(
      {
        op: "list",
        kind,
        prefix,
        ...(after === undefined ? {} : { after }),
        ...(limit === undefined ? {} : { limit }),
      },
      `list ${kind} under ${JSON.stringify(prefix)}`,
      parseList(kind),
    );
  }

  // ---------------------------------------------------------------- tree

  /**
   * Hands the subtree at `prefix` to another Oracle group: from now on the
   * replicas answer every operation on a path at or under it with code
   * `moved` and the delegation (an `OracleTreeClient` follows
   * it). Delegations are permanent.
   *
   * @example Delegate a subtree to a child group
   * ```ts ignore
   * await client.delegate("/apps/kv", "kv", {
   *   k1: "10.0.1.1:7000",
   *   k2: "10.0.1.2:7000",
   *   k3: "10.0.1.3:7000",
   * });
   * ```
   *
   * @param prefix The subtree handed over (not `/`, not under `/_sys`).
   * @param group The name of the Oracle group that takes it.
   * @param replicas That group's replicas: replica id to `"host:port"`
   * (1 to 9 entries).
   * @returns A promise that resolves once the delegation is recorded.
   * @throws {TypeError} if `prefix` is not a string starting with `/`,
   * `group` is not a non-empty string, or `replicas` is not an object of
   * non-empty strings.
   * @throws {RangeError} if `replicas` has no entry or more than 9.
   * @throws {OracleError} `delegation` if this group does not own the
   * prefix, it overlaps another delegation or this group holds state
   * under it; `moved` or `not_owner` if another group owns it; `timeout`,
   * `closed` or `session_expired`.
   */
  async delegate(
    prefix: string,
    group: string,
    replicas: Record<string, string>,
  ): Promise<void> {
    checkPath("prefix", prefix);
    checkName("group name", group);
    const copy = { ...checkReplicaAddresses("replicas", replicas) };
    await this.#request(
      { op: "delegate", prefix, group, replicas: copy },
      `delegate ${JSON.stringify(prefix)} to group ${JSON.stringify(group)}`,
      parseNothing,
    );
  }

  /**
   * Reads this Oracle group's place in the tree (linearizable): the
   * prefixes it owns and the delegations it made.
   *
   * @example List a group's delegations
   * ```ts ignore
   * const { owns, delegations } = await client.getTree();
   * for (const d of delegations) console.log(d.prefix, "->", d.group);
   * ```
   *
   * @returns The owned prefixes (`["/"]` for a root) and the delegations,
   * sorted by prefix.
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`.
   */
  async getTree(): Promise<OracleTree> {
    return await this.#request(
      { op: "get_tree" },
      "read the Oracle tree",
      parseTree,
    );
  }

  /**
   * Reads the group's consensus state from its leader (linearizable): the
   * leader's id and term, the commit index (the group's log position), the
   * applied index and the live sessions.
   *
   * @example Who leads, and how far the log is
   * ```ts
   * import { OracleClient, startOracleGroup } from "@cohort/cohort/oracle";
   *
   * const group = await startOracleGroup({ size: 1 });
   * const client = await OracleClient.connect({ replicas: group.replicas });
   * const { leader, commitIndex } = await client.groupStatus();
   * console.log(leader, commitIndex); // "1", and a positive index
   * await client.close();
   * await group.stop();
   * ```
   *
   * @returns The leader's view of the group.
   * @throws {OracleError} `timeout` or `closed` when no answer comes.
   */
  async groupStatus(): Promise<OracleGroupStatus> {
    return await this.#request(
      { op: "get_status" },
      "read the group's status",
      parseGroupStatus,
    );
  }

  /**
   * Asks which of `sessions` are not live at this Oracle group: ended,
   * expired or never opened (linearizable).
   *
   * @example Check whether sessions are still live
   * ```ts ignore
   * const ended = await client.endedSessions(["c-1234", "c-5678"]);
   * ```
   *
   * @param sessions The session ids to check (1 to 1,000).
   * @returns The ids among `sessions` that are not live.
   * @throws {TypeError} if `sessions` is not an array of non-empty strings.
   * @throws {RangeError} if it holds no id, more than 1,000, or an id
   * longer than 128 characters.
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`.
   */
  async endedSessions(sessions: readonly string[]): Promise<string[]> {
    const ids = [...checkSessionIds("sessions", sessions, MAX_ID_LENGTH)];
    return await this.#request(
      { op: "ended_sessions", sessions: ids },
      `check ${ids.length} sessions`,
      parseEndedSessions,
    );
  }

  // ------------------------------------------------------- subscriptions

  /**
   * Subscribes to a channel from a sequence number, or, with `prefix`, to
   * every channel under a path from a revision. Events are delivered in
   * order, each once, in batches, also across target changes.
   * Subscriptions do not need the session to be open.
   *
   * @example Follow a channel from its start
   * ```ts ignore
   * const sub = client.subscribe("/apps/kv/log", {
   *   from: 1,
   *   onError: (error) => console.error(error.code, error.first),
   * }, (events) => {
   *   for (const e of events) console.log(e.seq, e.data);
   * });
   * // ... later
   * sub.close();
   * ```
   *
   * @param path The channel, or the prefix.
   * @param options Start position, prefix mode and error callback.
   * @param onEvents Called with each batch of new events; exceptions are
   * caught and logged (the events count as delivered).
   * @returns The subscription.
   * @throws {TypeError} if `path` or a callback is invalid.
   * @throws {RangeError} if `from` is not an integer of at least 1.
   * @throws {OracleError} `closed` or `session_expired` if the client is no
   * longer usable.
   */
  subscribe(
    path: string,
    options: SubscribeOptions,
    onEvents: (events: readonly ChannelEvent[]) => void,
  ): Subscription {
    const prefix = options.prefix ?? false;
    checkPath(prefix ? "prefix" : "channel path", path);
    const from = checkInteger("subscription start", options.from ?? 1, 1);
    if (typeof onEvents !== "function") {
      throw new TypeError("Invalid onEvents: must be a function");
    }
    if (
      options.onError !== undefined && typeof options.onError !== "function"
    ) {
      throw new TypeError("Invalid onError: must be a function");
    }
    if (this.#state === "expired") {
      throw this.#expiredError(`subscribe to ${JSON.stringify(path)}`);
    }
    if (this.#state === "closing" || this.#state === "closed") {
      throw this.#closedError(`subscribe to ${JSON.stringify(path)}`);
    }
    return this.#subscriptions.add(
      path,
      prefix,
      from,
      onEvents,
      options.onError,
    );
  }

  // --------------------------------------------------------- inspection

  /**
   * A snapshot of the client's counters.
   *
   * @example Count dropped frames
   * ```ts ignore
   * console.log(client.stats().badFrames);
   * ```
   *
   * @returns A copy of the counters.
   */
  stats(): OracleClientStats {
    return { ...this.#stats };
  }

  /**
   * A snapshot of the client's state.
   *
   * @example Where requests go
   * ```ts ignore
   * const { target, leader, pending } = client.status();
   * ```
   *
   * @returns The state, target, known leader, session and sizes.
   */
  status(): OracleClientStatus {
    return {
      state: this.#state,
      target: this.#routing.target,
      leader: this.#routing.leader,
      session: this.session,
      pending: this.#calls.size,
      queued: this.#calls.queuedCount(),
      subscriptions: this.#subscriptions.size,
    };
  }

  // ============================================================ internals

  #closedError(what: string): OracleError {
    return new OracleError(
      "closed",
      this.#state === "new" || this.#state === "opening"
        ? `Cannot ${what}: the session ${this.session} is not open (call open() first)`
        : `Cannot ${what}: the client of session ${this.session} is closed`,
    );
  }

  #expiredError(what: string): OracleError {
    return new OracleError(
      "session_expired",
      `Cannot ${what}: the session ${this.session} expired`,
    );
  }

  #request<T>(
    op: OracleOp,
    what: string,
    parse: ResultParser<T>,
    waits = false,
  ): Promise<T> {
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    this.#start(
      op,
      what,
      parse,
      resolve as (value: unknown) => void,
      reject,
      { internal: false, waits },
    );
    return promise;
  }

  /** Creates a call and admits it, queues it, or fails it at once. */
  #start(
    op: OracleOp,
    what: string,
    parse: ResultParser<unknown>,
    resolve: (value: unknown) => void,
    reject: (error: unknown) => void,
    flags: { internal: boolean; waits: boolean },
  ): Call | undefined {
    const state = this.#state;
    if (state === "expired") {
      reject(this.#expiredError(what));
      return undefined;
    }
    const closing = state === "closing" && op.op === "close_session";
    const opening = state === "opening" && op.op === "open_session";
    if (
      state === "closed" || (state === "closing" && !closing) ||
      (state === "new" && !opening)
    ) {
      reject(this.#closedError(what));
      return undefined;
    }
    const call: Call = {
      op,
      what,
      parse,
      resolve,
      reject,
      deadlineAt: flags.waits || op.op === "keepalive"
        ? Infinity
        : this.#clock.now() + this.#deadlineMs,
      waits: flags.waits,
      internal: flags.internal,
      r: 0,
      sentAt: -1,
      timeoutMs: this.#requestTimeoutMs,
      sends: 0,
      retryAt: 0,
      overloads: 0,
      done: false,
    };
    if (flags.internal) {
      this.#calls.admit(call);
    } else if (state !== "open" || this.#calls.mustWait()) {
      if (state === "open") this.#stats.inflightWaits++;
      this.#calls.enqueue(call);
    } else {
      this.#calls.admit(call);
    }
    this.#ensureTick();
    return call;
  }

  #admitQueued(): void {
    this.#calls.admitQueued(() => this.#state === "open");
  }

  #stopped(): boolean {
    return this.#state === "closed" || this.#state === "expired";
  }

  /** Sends every live subscription and pending request to the target again. */
  #resendAll(): void {
    const outbox = this.#outbox;
    outbox.clear();
    for (const entry of this.#subscriptions.entries()) {
      outbox.put({ k: "sub", sub: entry.state });
      if (outbox.holding) return;
    }
    for (const call of this.#calls.snapshot()) {
      call.sentAt = -1;
      call.retryAt = 0;
      call.timeoutMs = this.#requestTimeoutMs;
      outbox.put({ k: "req", call });
      if (outbox.holding) return;
    }
  }

  // ------------------------------------------------------------ targeting

  /** Changes the target and resends everything, at once or after `delayMs`. */
  #moveTo(peer: PeerId, delayMs: number, reason: string): void {
    this.#outbox.unhold();
    const old = this.#routing.setTarget(peer);
    this.#outbox.clear();
    for (const call of this.#calls.pending()) call.sentAt = -1;
    if (old !== peer && !this.#routing.isDown(old)) {
      for (const id of this.#subscriptions.ids()) {
        this.#outbox.sendAside(old, { t: "unsub", id });
      }
    }
    this.#log.log("debug", "oracle_client_target", {
      from: old,
      to: peer,
      reason,
      delayMs,
    });
    if (delayMs > 0) {
      this.#outbox.hold(delayMs, () => this.#resendAll());
    } else {
      this.#resendAll();
    }
  }

  #rotate(reason: string, delayMs: number): void {
    this.#moveTo(this.#routing.rotation(), delayMs, reason);
  }

  #unreachable(): void {
    this.#routing.markUnreachable();
    this.#rotate("unreachable", this.#routing.backoffMs());
  }

  /** A `not_leader` answer from the target, for a request or a subscription. */
  #notLeader(error: OracleErrorResult): void {
    const redirect = this.#routing.redirect(error);
    if (redirect !== undefined) {
      this.#moveTo(redirect.peer, redirect.delayMs, "redirect");
      return;
    }
    const hint = error.leader;
    if (hint !== undefined && !this.#routing.has(hint)) {
      this.#log.log("warn", "oracle_client_unknown_leader", { leader: hint });
    }
    this.#rotate("not_leader", this.#routing.retryMs());
  }

  #onPeerDown(peer: PeerId): void {
    if (!this.#routing.peerDown(peer)) return;
    if (this.#stopped()) return;
    if (peer === this.#routing.target) this.#rotate("peer_down", 0);
  }

  #onPeerUp(peer: PeerId): void {
    if (!this.#routing.peerUp(peer)) return;
    if (this.#stopped()) return;
    if (this.#routing.isDown(this.#routing.target)) {
      this.#moveTo(peer, 0, "peer_up");
    }
  }

  #onDrain(peer: PeerId): void {
    if (peer === this.#routing.target) this.#outbox.flush();
  }

  // ------------------------------------------------------------ receiving

  #onFrame(from: PeerId, payload: Uint8Array): void {
    if (this.#stopped()) return;
    const frame = this.#routing.has(from)
      ? parseReplicaFrame(payload)
      : undefined;
    if (frame === undefined) {
      this.#badFrame(from, "malformed or unknown sender");
      return;
    }
    this.#routing.heard(from);
    switch (frame.t) {
      case "res":
        this.#onResponse(from, frame);
        break;
      case "ev":
        this.#subscriptions.onEvents(from, frame.id, frame.events);
        break;
      case "subend":
        this.#subscriptions.onEnd(from, frame.id, frame.err);
        break;
    }
  }

  #badFrame(from: PeerId, why: string): void {
    this.#stats.badFrames++;
    this.#log.log(
      this.#stats.badFrames === 1 ? "warn" : "debug",
      "oracle_client_bad_frame",
      { from, why },
    );
  }

  #onResponse(from: PeerId, frame: ParsedFrame & { t: "res" }): void {
    const call = this.#calls.get(frame.r);
    if (call === undefined) {
      this.#stats.staleReplies++;
      return;
    }
    const err = frame.err;
    if (err !== undefined) {
      if (err.code === "not_leader") {
        // From a former target: the request was already resent elsewhere.
        if (from === this.#routing.target) this.#notLeader(err);
        else this.#stats.staleReplies++;
        return;
      }
      if (err.code === "session_expired") {
        if (call.op.op === "close_session") {
          // A retried close_session whose first copy closed the session.
          this.#answered(from, call);
          this.#settle(call, null);
        } else {
          this.#expire();
        }
        return;
      }
      this.#answered(from, call);
      if (err.code === "overloaded") {
        this.#stats.overloadRetries++;
        const base = Math.min(1_000, 10 * 2 ** Math.min(call.overloads, 7));
        call.overloads++;
        call.sentAt = -1;
        call.retryAt = this.#clock.now() + base / 2 +
          this.#random.int(base / 2 + 1);
        this.#ensureTick();
        return;
      }
      this.#stats.replies++;
      this.#calls.fail(
        call,
        new OracleError(
          err.code,
          `Cannot ${call.what}: ${err.message || err.code}`,
          { leader: err.leader, first: err.first, delegation: err.delegation },
        ),
      );
      this.#admitQueued();
      return;
    }
    const value = call.parse(frame.ok as Json);
    if (value === BAD) {
      this.#badFrame(from, `result of ${call.op.op} has the wrong shape`);
      return;
    }
    this.#answered(from, call);
    this.#settle(call, value);
  }

  #settle(call: Call, value: unknown): void {
    this.#stats.replies++;
    this.#calls.settle(call, value);
    this.#admitQueued();
  }

  #answered(from: PeerId, call: Call): void {
    this.#routing.answered(from, call.sentAt, this.#requestTimeoutMs);
  }

  #callbackFailed(which: string, error: unknown, subscription?: number): void {
    this.#stats.callbackErrors++;
    this.#log.log("error", "oracle_client_callback_threw", {
      callback: which,
      subscription,
      error: error instanceof Error ? error.stack ?? error.message : String(
        error,
      ),
    });
  }

  #runCallback(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      this.#callbackFailed("onSessionExpired", error);
    }
  }

  // -------------------------------------------------------------- expiry

  #expire(): void {
    if (this.#state === "expired" || this.#state === "closed") return;
    this.#log.log("warn", "oracle_client_session_expired", {
      session: this.session,
    });
    this.#state = "expired";
    this.#clearTimer("tick");
    this.#outbox.unhold();
    this.#clearTimer("keepalive");
    this.#outbox.clear();
    const error = this.#expiredError("complete the request");
    this.#calls.failQueued(error);
    for (const call of this.#calls.snapshot()) this.#calls.fail(call, error);
    for (const entry of this.#subscriptions.snapshot()) {
      this.#subscriptions.end(
        entry,
        this.#expiredError(`follow ${JSON.stringify(entry.state.path)}`),
      );
    }
    const callbacks = this.#expiredCallbacks.splice(0);
    for (const callback of callbacks) this.#runCallback(callback);
  }

  // -------------------------------------------------------------- timers

  #clearTimer(which: "tick" | "keepalive"): void {
    const id = which === "tick" ? this.#tickTimer : this.#keepaliveTimer;
    if (id === undefined) return;
    this.#clock.clearTimer(id);
    if (which === "tick") this.#tickTimer = undefined;
    else this.#keepaliveTimer = undefined;
  }

  #scheduleKeepalive(): void {
    this.#clearTimer("keepalive");
    this.#keepaliveTimer = this.#clock.setTimer(this.#ttlMs / 4, () => {
      this.#keepaliveTimer = undefined;
      if (this.#state !== "open") return;
      if (this.#calls.keepalive === undefined) {
        this.#calls.keepalive = this.#start(
          { op: "keepalive" },
          `keep session ${this.session} alive`,
          parseNothing,
          () => {},
          () => {},
          { internal: true, waits: false },
        );
      }
      this.#subscriptions.refresh(this.#ttlMs / 4);
      this.#scheduleKeepalive();
    });
  }

  #ensureTick(): void {
    if (this.#tickTimer !== undefined) return;
    if (this.#stopped()) return;
    if (this.#calls.idle()) return;
    this.#tickTimer = this.#clock.setTimer(this.#tickMs, () => {
      this.#tickTimer = undefined;
      this.#tick();
      this.#ensureTick();
    });
  }

  /** Deadlines, then request timeouts. */
  #tick(): void {
    if (this.#stopped()) return;
    const now = this.#clock.now();
    if (this.#calls.tick(now)) {
      this.#routing.stalled(now);
      this.#rotate("timeout", 0);
    }
    this.#admitQueued();
  }

  #timeoutError(call: Call): OracleError {
    return new OracleError(
      "timeout",
      `Cannot ${call.what}: no answer within ${this.#deadlineMs} ms`,
    );
  }
}
