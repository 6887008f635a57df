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

import { type Clock, SystemClock, type TimerId } from "../runtime/clock.ts";
import { CryptoRandom, type Random } from "../runtime/random.ts";
import { type Logger, silentLogger } from "../runtime/log.ts";
import type { PeerId, Transport } from "../transport/transport.ts";
import { TcpTransport } from "../transport/tcp_transport.ts";
import type {
  ChannelEvent,
  GroupView,
  Json,
  OracleErrorCode,
  OracleErrorResult,
  OracleOp,
  ViewMember,
} from "./commands.ts";
import type { ClientFrame } from "./wire.ts";
import { JsonCodec } from "../transport/codec.ts";
import {
  checkDuration,
  checkInteger,
  checkJson,
  checkName,
  checkPath,
} from "./_client_args.ts";
import { SubscriptionState } from "./_client_subscription.ts";
import {
  BAD,
  parseAppend,
  type ParsedFrame,
  parseGetLock,
  parseGetView,
  parseLock,
  parseNothing,
  parseOpenSession,
  parseRead,
  parseReplicaFrame,
  parseTruncate,
  parseViewId,
  type ResultParser,
} from "./_client_wire.ts";

const DEFAULT_SESSION_TTL_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 300;
const DEFAULT_DEADLINE_MS = 30_000;
const DEFAULT_MAX_INFLIGHT = 1024;
const DEFAULT_READ_LIMIT = 1000;
/** The longest session id the Oracle accepts. */
const MAX_ID_LENGTH = 128;
/** A request resent to the same (live) target waits at most this many times `requestTimeoutMs`. */
const MAX_TIMEOUT_FACTOR = 8;
const BACKOFF_MIN_MS = 5;
const BACKOFF_SPREAD_MS = 20;
const BACKOFF_MAX_MS = 200;
/**
 * A replica that stayed silent past the request timeout, or whose
 * connection went down, is suspect for this long (or until a frame from it
 * arrives): rotation skips it, and `not_leader` hints naming it are
 * ignored. Otherwise a follower that has not noticed a crashed or frozen
 * leader yet sends the client straight back to it.
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
/**
 * A waiting lock request is sent again to the same target after this many
 * times `requestTimeoutMs` without a grant, in case it was lost on the way
 * (the Oracle applies a retried request once; a still-queued retry changes
 * nothing).
 */
const WAIT_RESEND_FACTOR = 10;
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
   * Creates an error.
   *
   * @param code What went wrong.
   * @param message What failed and why, with the values.
   * @param options The leader hint, first available position and cause.
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

function emptyStats(): OracleClientStats {
  return {
    requestsSent: 0,
    resends: 0,
    replies: 0,
    staleReplies: 0,
    redirects: 0,
    rotations: 0,
    requestTimeouts: 0,
    deadlineTimeouts: 0,
    badFrames: 0,
    eventsDelivered: 0,
    duplicateEvents: 0,
    gaps: 0,
    resubscribes: 0,
    staleEvents: 0,
    transportBackpressure: 0,
    inflightWaits: 0,
    overloadRetries: 0,
    waitResends: 0,
    callbackErrors: 0,
  };
}

/** One request, from the call to its settlement. */
interface Call {
  readonly op: OracleOp;
  readonly what: string;
  readonly parse: ResultParser<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  /** `Infinity` for waiting locks and internal requests. */
  readonly deadlineAt: number;
  /** A waiting lock: the target's silence is watched by the keep-alive instead. */
  readonly waits: boolean;
  /** open_session, keepalive, close_session: no slot, no open-session gate. */
  readonly internal: boolean;
  /** Request number; 0 until admitted. */
  r: number;
  /** When the request was last handed to the transport for the current target; -1 if not. */
  sentAt: number;
  /** How long to wait for the current target before acting. */
  timeoutMs: number;
  /** Times handed to the transport. */
  sends: number;
  /** After an `overloaded` answer: when to send again (0: not waiting). */
  retryAt: number;
  /** `overloaded` answers so far. */
  overloads: number;
  done: boolean;
}

/** Something to send to the target, built when it is written. */
type OutItem =
  | { readonly k: "req"; readonly call: Call }
  | { readonly k: "sub"; readonly sub: SubscriptionState }
  | { readonly k: "suback"; readonly id: number; upTo: number }
  | { readonly k: "unsub"; readonly id: number };

type WriteOutcome = "ok" | "full" | "unreachable";

/** The client's handle on one subscription. */
class ClientSubscription implements Subscription {
  readonly #state: SubscriptionState;
  readonly #close: () => void;

  constructor(state: SubscriptionState, close: () => void) {
    this.#state = state;
    this.#close = close;
  }

  get id(): number {
    return this.#state.id;
  }

  get path(): string {
    return this.#state.path;
  }

  get prefix(): boolean {
    return this.#state.prefix;
  }

  get next(): number {
    return this.#state.next;
  }

  get closed(): boolean {
    return this.#state.closed;
  }

  close(): void {
    this.#close();
  }
}

interface SubEntry {
  readonly state: SubscriptionState;
  readonly onEvents: (events: readonly ChannelEvent[]) => void;
  readonly onError: ((error: OracleError) => void) | undefined;
}

function newClientId(random: Random): string {
  const bytes = random.fill(new Uint8Array(16));
  let hex = "c-";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
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
  readonly #replicas: readonly string[];
  readonly #replicaSet: ReadonlySet<string>;
  readonly #requestedTtlMs: number;
  readonly #requestTimeoutMs: number;
  readonly #deadlineMs: number;
  readonly #maxInflight: number;
  readonly #tickMs: number;
  readonly #stats: OracleClientStats = emptyStats();
  readonly #codec = new JsonCodec<ClientFrame>();

  #state: OracleClientState = "new";
  #ownsTransport = false;
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

  #nextR = 1;
  readonly #pending = new Map<number, Call>();
  #userPending = 0;
  #queue: Call[] = [];
  #queueHead = 0;

  #outbox: OutItem[] = [];
  #outboxHead = 0;
  readonly #subacks = new Map<number, OutItem & { k: "suback" }>();
  #holding = false;
  #holdTimer: TimerId | undefined = undefined;
  #tickTimer: TimerId | undefined = undefined;
  #keepaliveTimer: TimerId | undefined = undefined;
  #keepalive: Call | undefined = undefined;
  #ttlMs: number;

  #nextSubId = 1;
  readonly #subs = new Map<number, SubEntry>();

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
    this.#replicas = [...replicas];
    this.#replicaSet = new Set(replicas);
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
    this.#maxInflight = checkInteger(
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
    this.#target = this.#replicas[this.#random.int(this.#replicas.length)];
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
    try {
      await client.open();
    } catch (error) {
      await client.close();
      throw error;
    }
    return client;
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
          this.#failQueued(error);
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
    this.#failQueued(error);
    for (const call of [...this.#pending.values()]) this.#fail(call, error);
    for (const entry of [...this.#subs.values()]) {
      this.#closeSubscription(entry.state);
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
    for (const call of [...this.#pending.values()]) this.#fail(call, error);
    this.#clearTimer("tick");
    this.#clearTimer("hold");
    this.#clearTimer("keepalive");
    this.#outbox = [];
    this.#outboxHead = 0;
    this.#subacks.clear();
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
   * @throws {OracleError} `membership` if not a member; `timeout`,
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
   * @returns The id of the view proposed with the change.
   * @throws {TypeError} if an argument is invalid.
   * @throws {OracleError} `membership` if not a member; `timeout`,
   * `closed` or `session_expired`.
   */
  async remove(
    group: string,
    member: string,
    reason: string,
  ): Promise<{ viewId: number }> {
    checkPath("group", group);
    checkName("member", member);
    if (typeof reason !== "string") {
      throw new TypeError(`Invalid reason ${String(reason)}: must be a string`);
    }
    return await this.#request(
      { op: "remove", group, member, reason },
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
    const state = new SubscriptionState(this.#nextSubId++, path, prefix, from);
    this.#subs.set(state.id, { state, onEvents, onError: options.onError });
    this.#put({ k: "sub", sub: state });
    return new ClientSubscription(state, () => this.#closeSubscription(state));
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
      target: this.#target,
      leader: this.#leader,
      session: this.session,
      pending: this.#pending.size,
      queued: this.#queuedCount(),
      subscriptions: this.#subs.size,
    };
  }

  // ============================================================ internals

  #queuedCount(): number {
    let n = 0;
    for (let i = this.#queueHead; i < this.#queue.length; i++) {
      if (!this.#queue[i].done) n++;
    }
    return n;
  }

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
      this.#admit(call);
    } else if (
      state !== "open" || this.#userPending >= this.#maxInflight ||
      this.#queueHead < this.#queue.length
    ) {
      if (state === "open") this.#stats.inflightWaits++;
      this.#queue.push(call);
    } else {
      this.#admit(call);
    }
    this.#ensureTick();
    return call;
  }

  #admit(call: Call): void {
    call.r = this.#nextR++;
    this.#pending.set(call.r, call);
    if (!call.internal) this.#userPending++;
    this.#put({ k: "req", call });
  }

  #admitQueued(): void {
    const queue = this.#queue;
    while (
      this.#state === "open" && this.#userPending < this.#maxInflight &&
      this.#queueHead < queue.length
    ) {
      const call = queue[this.#queueHead++];
      if (!call.done) this.#admit(call);
    }
    if (this.#queueHead === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    }
  }

  #failQueued(error: unknown): void {
    const queue = this.#queue;
    this.#queue = [];
    const head = this.#queueHead;
    this.#queueHead = 0;
    for (let i = head; i < queue.length; i++) {
      const call = queue[i];
      if (!call.done) {
        call.done = true;
        call.reject(error);
      }
    }
  }

  /** Settles a call with an error and forgets it. */
  #fail(call: Call, error: unknown): void {
    if (call.done) return;
    call.done = true;
    if (call.r !== 0 && this.#pending.get(call.r) === call) {
      this.#pending.delete(call.r);
      if (!call.internal) this.#userPending--;
    }
    if (call === this.#keepalive) this.#keepalive = undefined;
    call.reject(error);
  }

  /** The lowest request number still without a reply (every lower one has its reply). */
  #ackFloor(): number {
    for (const r of this.#pending.keys()) return r;
    return this.#nextR;
  }

  // -------------------------------------------------------------- sending

  #put(item: OutItem): void {
    if (this.#state === "closed" || this.#state === "expired") return;
    // While holding, everything is regenerated from state at release.
    if (this.#holding) return;
    if (item.k === "suback") {
      const queued = this.#subacks.get(item.id);
      if (queued !== undefined) {
        queued.upTo = item.upTo;
        return;
      }
    }
    if (this.#outboxHead < this.#outbox.length) {
      this.#enqueueOut(item);
      return;
    }
    const outcome = this.#write(item);
    if (outcome === "full") {
      this.#enqueueOut(item);
    } else if (outcome === "unreachable") {
      this.#unreachable();
    }
  }

  #enqueueOut(item: OutItem): void {
    if (item.k === "suback") this.#subacks.set(item.id, item);
    this.#outbox.push(item);
  }

  #flush(): void {
    const outbox = this.#outbox;
    while (!this.#holding && this.#outboxHead < outbox.length) {
      const item = outbox[this.#outboxHead];
      const outcome = this.#write(item);
      if (outcome === "full") return;
      this.#outboxHead++;
      if (item.k === "suback") this.#subacks.delete(item.id);
      if (outcome === "unreachable") {
        this.#unreachable();
        return;
      }
    }
    if (this.#outbox === outbox && this.#outboxHead === outbox.length) {
      this.#outbox = [];
      this.#outboxHead = 0;
    }
  }

  /** Builds, encodes and hands one item to the transport, to the target. */
  #write(item: OutItem): WriteOutcome {
    let frame: ClientFrame;
    switch (item.k) {
      case "req": {
        const call = item.call;
        if (call.done) return "ok";
        frame = {
          t: "req",
          s: this.session,
          r: call.r,
          a: this.#ackFloor(),
          op: call.op,
        };
        break;
      }
      case "sub":
        if (item.sub.closed) return "ok";
        frame = {
          t: "sub",
          id: item.sub.id,
          path: item.sub.path,
          prefix: item.sub.prefix,
          from: item.sub.next,
        };
        break;
      case "suback":
        frame = { t: "suback", id: item.id, upTo: item.upTo };
        break;
      case "unsub":
        frame = { t: "unsub", id: item.id };
        break;
    }
    let bytes: Uint8Array;
    try {
      bytes = this.#codec.encode(frame);
    } catch (error) {
      if (item.k === "req") this.#fail(item.call, error);
      return "ok";
    }
    let accepted: boolean;
    try {
      accepted = this.#transport.send(this.#target, bytes);
    } catch (error) {
      if (error instanceof RangeError) {
        if (item.k === "req") {
          this.#fail(
            item.call,
            new RangeError(
              `Cannot ${item.call.what}: the request is ${bytes.length} bytes, more than the transport's maximum frame size ${this.#transport.maxFrameSize}`,
              { cause: error },
            ),
          );
        }
        return "ok";
      }
      this.#log.log("warn", "oracle_client_unreachable", {
        target: this.#target,
        error: String(error),
      });
      return "unreachable";
    }
    if (!accepted) {
      this.#stats.transportBackpressure++;
      return "full";
    }
    if (item.k === "req") {
      const call = item.call;
      if (call.sends > 0) this.#stats.resends++;
      call.sends++;
      call.sentAt = this.#clock.now();
      this.#stats.requestsSent++;
    }
    return "ok";
  }

  /** Best-effort frame to a replica other than the target (no queueing). */
  #sendAside(peer: PeerId, frame: ClientFrame): void {
    try {
      this.#transport.send(peer, this.#codec.encode(frame));
    } catch {
      // Best effort: the peer may be unknown to the transport.
    }
  }

  /** Sends every live subscription and pending request to the target again. */
  #resendAll(): void {
    this.#outbox = [];
    this.#outboxHead = 0;
    this.#subacks.clear();
    for (const entry of this.#subs.values()) {
      this.#put({ k: "sub", sub: entry.state });
      if (this.#holding) return;
    }
    for (const call of [...this.#pending.values()]) {
      call.sentAt = -1;
      call.retryAt = 0;
      call.timeoutMs = this.#requestTimeoutMs;
      this.#put({ k: "req", call });
      if (this.#holding) return;
    }
  }

  // ------------------------------------------------------------ targeting

  /** Changes the target and resends everything, at once or after `delayMs`. */
  #moveTo(peer: PeerId, delayMs: number, reason: string): void {
    const old = this.#target;
    this.#clearTimer("hold");
    this.#holding = false;
    this.#target = peer;
    this.#outbox = [];
    this.#outboxHead = 0;
    this.#subacks.clear();
    for (const call of this.#pending.values()) call.sentAt = -1;
    if (old !== peer && !this.#down.has(old)) {
      for (const id of this.#subs.keys()) {
        this.#sendAside(old, { t: "unsub", id });
      }
    }
    this.#log.log("debug", "oracle_client_target", {
      from: old,
      to: peer,
      reason,
      delayMs,
    });
    if (delayMs > 0) {
      this.#holding = true;
      this.#holdTimer = this.#clock.setTimer(delayMs, () => {
        this.#holdTimer = undefined;
        this.#holding = false;
        if (this.#state === "closed" || this.#state === "expired") return;
        this.#resendAll();
      });
    } else {
      this.#resendAll();
    }
  }

  #backoffMs(): number {
    const step = Math.min(this.#failures, 6);
    const low = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** step);
    const high = Math.min(BACKOFF_MAX_MS, BACKOFF_SPREAD_MS * 2 ** step);
    return low + this.#random.int(high - low + 1);
  }

  /** Delay before trying another replica when no leader is named. */
  #retryMs(): number {
    return this.#failures < FAST_RETRIES
      ? RETRY_MIN_MS + this.#random.int(RETRY_SPREAD_MS + 1)
      : this.#backoffMs();
  }

  /** Whether `peer` timed out or went down less than {@linkcode SUSPECT_MS} ago. */
  #isSuspect(peer: PeerId): boolean {
    const since = this.#suspects.get(peer);
    if (since === undefined) return false;
    if (this.#clock.now() - since < SUSPECT_MS) return true;
    this.#suspects.delete(peer);
    return false;
  }

  /**
   * The replica after the target, preferring one neither down nor
   * suspect, then one not down, then simply the next one.
   */
  #nextReplica(): PeerId {
    const replicas = this.#replicas;
    const start = replicas.indexOf(this.#target);
    let notDown: PeerId | undefined;
    for (let i = 1; i <= replicas.length; i++) {
      const candidate = replicas[(start + i) % replicas.length];
      if (this.#down.has(candidate)) continue;
      if (!this.#isSuspect(candidate)) return candidate;
      notDown ??= candidate;
    }
    return notDown ?? replicas[(start + 1) % replicas.length];
  }

  #rotate(reason: string, delayMs: number): void {
    this.#stats.rotations++;
    this.#failures++;
    if (this.#leader === this.#target) this.#leader = undefined;
    this.#moveTo(this.#nextReplica(), delayMs, reason);
  }

  #unreachable(): void {
    this.#down.add(this.#target);
    this.#suspects.set(this.#target, this.#clock.now());
    this.#rotate("unreachable", this.#backoffMs());
  }

  /** A `not_leader` answer from the target, for a request or a subscription. */
  #notLeader(error: OracleErrorResult): void {
    const hint = error.leader;
    if (
      hint !== undefined && hint !== this.#target &&
      this.#replicaSet.has(hint) && !this.#down.has(hint) &&
      !this.#isSuspect(hint)
    ) {
      this.#stats.redirects++;
      this.#leader = hint;
      // The first redirect goes at once; replicas naming each other in
      // turn (hints still settling) are followed after a retry delay.
      const delay = this.#redirectRun > 0 ? this.#retryMs() : 0;
      this.#redirectRun++;
      this.#failures++;
      this.#moveTo(hint, delay, "redirect");
      return;
    }
    if (hint !== undefined && !this.#replicaSet.has(hint)) {
      this.#log.log("warn", "oracle_client_unknown_leader", { leader: hint });
    }
    this.#rotate("not_leader", this.#retryMs());
  }

  #onPeerDown(peer: PeerId): void {
    if (!this.#replicaSet.has(peer)) return;
    this.#down.add(peer);
    this.#suspects.set(peer, this.#clock.now());
    if (this.#state === "closed" || this.#state === "expired") return;
    if (peer === this.#target) this.#rotate("peer_down", 0);
  }

  #onPeerUp(peer: PeerId): void {
    if (!this.#replicaSet.has(peer)) return;
    this.#down.delete(peer);
    if (this.#state === "closed" || this.#state === "expired") return;
    if (this.#down.has(this.#target)) this.#moveTo(peer, 0, "peer_up");
  }

  #onDrain(peer: PeerId): void {
    if (peer === this.#target) this.#flush();
  }

  // ------------------------------------------------------------ receiving

  #onFrame(from: PeerId, payload: Uint8Array): void {
    if (this.#state === "closed" || this.#state === "expired") return;
    const frame = this.#replicaSet.has(from)
      ? parseReplicaFrame(payload)
      : undefined;
    if (frame === undefined) {
      this.#badFrame(from, "malformed or unknown sender");
      return;
    }
    // It answers again (a frozen process resumed, a pause ended).
    if (this.#suspects.size > 0) this.#suspects.delete(from);
    switch (frame.t) {
      case "res":
        this.#onResponse(from, frame);
        break;
      case "ev":
        this.#onEvents(from, frame.id, frame.events);
        break;
      case "subend":
        this.#onSubscriptionEnd(from, frame.id, frame.err);
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
    const call = this.#pending.get(frame.r);
    if (call === undefined) {
      this.#stats.staleReplies++;
      return;
    }
    const err = frame.err;
    if (err !== undefined) {
      if (err.code === "not_leader") {
        // From a former target: the request was already resent elsewhere.
        if (from === this.#target) this.#notLeader(err);
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
      this.#fail(
        call,
        new OracleError(
          err.code,
          `Cannot ${call.what}: ${err.message || err.code}`,
          { leader: err.leader, first: err.first },
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
    call.done = true;
    this.#pending.delete(call.r);
    if (!call.internal) this.#userPending--;
    if (call === this.#keepalive) this.#keepalive = undefined;
    call.resolve(value);
    this.#admitQueued();
  }

  #answered(from: PeerId, call: Call): void {
    if (from !== this.#target) return;
    const now = this.#clock.now();
    this.#lastAnswerAt = now;
    this.#failures = 0;
    this.#redirectRun = 0;
    this.#leader = from;
    if (call.sentAt >= 0 && now - call.sentAt < this.#requestTimeoutMs) {
      this.#timeoutScale = 1;
    }
  }

  #onEvents(
    from: PeerId,
    id: number,
    events: readonly ChannelEvent[],
  ): void {
    const entry = this.#subs.get(id);
    if (entry === undefined) {
      this.#stats.staleEvents++;
      if (id < this.#nextSubId) this.#sendAside(from, { t: "unsub", id });
      return;
    }
    if (from !== this.#target) {
      this.#stats.staleEvents++;
      return;
    }
    const state = entry.state;
    const outcome = state.accept(events);
    this.#stats.duplicateEvents += outcome.duplicates;
    if (outcome.deliver.length > 0) {
      this.#stats.eventsDelivered += outcome.deliver.length;
      try {
        entry.onEvents(outcome.deliver);
      } catch (error) {
        this.#callbackFailed("onEvents", error, state.id);
      }
    }
    if (state.closed || this.#subs.get(id) !== entry) return;
    if (this.#state === "closed" || this.#state === "expired") return;
    if (outcome.gap) {
      this.#stats.gaps++;
      this.#stats.resubscribes++;
      this.#log.log("warn", "oracle_client_gap", {
        from,
        subscription: id,
        next: state.next,
      });
      this.#put({ k: "sub", sub: state });
    } else {
      this.#put({ k: "suback", id, upTo: state.next - 1 });
    }
  }

  #onSubscriptionEnd(
    from: PeerId,
    id: number,
    err: OracleErrorResult,
  ): void {
    const entry = this.#subs.get(id);
    if (entry === undefined || from !== this.#target) {
      this.#stats.staleEvents++;
      return;
    }
    const state = entry.state;
    if (err.code === "not_leader") {
      this.#notLeader(err);
      return;
    }
    if (
      err.code === "compacted" && err.first !== undefined &&
      err.first <= state.next
    ) {
      // Ends an older instance of this subscription: next is still there.
      this.#stats.resubscribes++;
      this.#put({ k: "sub", sub: state });
      return;
    }
    const what = state.prefix
      ? `follow prefix ${
        JSON.stringify(state.path)
      } from revision ${state.next}`
      : `follow ${JSON.stringify(state.path)} from ${state.next}`;
    this.#endSubscription(
      entry,
      new OracleError(err.code, `Cannot ${what}: ${err.message || err.code}`, {
        leader: err.leader,
        first: err.first,
      }),
    );
  }

  #endSubscription(entry: SubEntry, error: OracleError): void {
    const state = entry.state;
    if (state.closed) return;
    state.closed = true;
    this.#subs.delete(state.id);
    this.#subacks.delete(state.id);
    if (entry.onError !== undefined) {
      try {
        entry.onError(error);
      } catch (cause) {
        this.#callbackFailed("onError", cause, state.id);
      }
    }
  }

  #closeSubscription(state: SubscriptionState): void {
    if (state.closed) return;
    state.closed = true;
    this.#subs.delete(state.id);
    this.#subacks.delete(state.id);
    this.#put({ k: "unsub", id: state.id });
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
    this.#clearTimer("hold");
    this.#clearTimer("keepalive");
    this.#holding = false;
    this.#outbox = [];
    this.#outboxHead = 0;
    this.#subacks.clear();
    const error = this.#expiredError("complete the request");
    this.#failQueued(error);
    for (const call of [...this.#pending.values()]) this.#fail(call, error);
    for (const entry of [...this.#subs.values()]) {
      this.#endSubscription(
        entry,
        this.#expiredError(`follow ${JSON.stringify(entry.state.path)}`),
      );
    }
    const callbacks = this.#expiredCallbacks.splice(0);
    for (const callback of callbacks) this.#runCallback(callback);
  }

  // -------------------------------------------------------------- timers

  #clearTimer(which: "tick" | "hold" | "keepalive"): void {
    const id = which === "tick"
      ? this.#tickTimer
      : which === "hold"
      ? this.#holdTimer
      : this.#keepaliveTimer;
    if (id === undefined) return;
    this.#clock.clearTimer(id);
    if (which === "tick") this.#tickTimer = undefined;
    else if (which === "hold") this.#holdTimer = undefined;
    else this.#keepaliveTimer = undefined;
  }

  #scheduleKeepalive(): void {
    this.#clearTimer("keepalive");
    this.#keepaliveTimer = this.#clock.setTimer(this.#ttlMs / 4, () => {
      this.#keepaliveTimer = undefined;
      if (this.#state !== "open") return;
      if (this.#keepalive === undefined) {
        this.#keepalive = this.#start(
          { op: "keepalive" },
          `keep session ${this.session} alive`,
          parseNothing,
          () => {},
          () => {},
          { internal: true, waits: false },
        );
      }
      this.#scheduleKeepalive();
    });
  }

  #ensureTick(): void {
    if (this.#tickTimer !== undefined) return;
    if (this.#state === "closed" || this.#state === "expired") return;
    if (this.#pending.size === 0 && this.#queueHead >= this.#queue.length) {
      return;
    }
    this.#tickTimer = this.#clock.setTimer(this.#tickMs, () => {
      this.#tickTimer = undefined;
      this.#tick();
      this.#ensureTick();
    });
  }

  /** Deadlines, then request timeouts. */
  #tick(): void {
    if (this.#state === "closed" || this.#state === "expired") return;
    const now = this.#clock.now();
    // Queued calls: deadlines grow along the queue, except waiting locks (Infinity).
    const queue = this.#queue;
    for (let i = this.#queueHead; i < queue.length; i++) {
      const call = queue[i];
      if (call.done || call.deadlineAt === Infinity) continue;
      if (call.deadlineAt > now) break;
      this.#stats.deadlineTimeouts++;
      this.#fail(call, this.#timeoutError(call));
    }
    let stalled = false;
    for (const call of [...this.#pending.values()]) {
      if (call.done) continue;
      if (call.deadlineAt <= now) {
        this.#stats.deadlineTimeouts++;
        this.#fail(call, this.#timeoutError(call));
        continue;
      }
      if (call.retryAt > 0) {
        if (call.retryAt <= now && !stalled) {
          call.retryAt = 0;
          this.#put({ k: "req", call });
        }
        continue;
      }
      if (call.waits) {
        if (
          call.sentAt >= 0 && !stalled &&
          now - call.sentAt >= this.#requestTimeoutMs * WAIT_RESEND_FACTOR
        ) {
          this.#stats.waitResends++;
          call.sentAt = -1;
          this.#put({ k: "req", call });
        }
        continue;
      }
      if (call.sentAt < 0 || stalled) continue;
      if (now - call.sentAt < call.timeoutMs * this.#timeoutScale) continue;
      if (this.#lastAnswerAt > call.sentAt) {
        // The target answers others: resend this one (it may have been
        // lost), waiting longer each time.
        call.timeoutMs = Math.min(
          call.timeoutMs * 2,
          this.#requestTimeoutMs * MAX_TIMEOUT_FACTOR,
        );
        call.sentAt = -1;
        this.#put({ k: "req", call });
      } else {
        stalled = true;
      }
    }
    if (stalled) {
      this.#suspects.set(this.#target, now);
      this.#stats.requestTimeouts++;
      this.#timeoutScale = Math.min(
        MAX_TIMEOUT_FACTOR,
        this.#timeoutScale * 2,
      );
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
