/**
 * The Oracle tree client: one session across a tree of Oracle groups,
 * where a parent group delegates path prefixes to child groups. Every
 * call and subscription goes to the group that owns its path, following
 * `moved` answers and caching the delegations they name, so callers use
 * one client as if the tree were one Oracle.
 *
 * @example Connect to the root of a tree and use paths anywhere in it
 * ```ts ignore
 * import { OracleTreeClient } from "@cohort/cohort/oracle";
 *
 * const client = await OracleTreeClient.connect({
 *   replicas: { "1": "10.0.0.1:7000", "2": "10.0.0.2:7000", "3": "10.0.0.3:7000" },
 *   secret: Deno.env.get("COHORT_SECRET"),
 * });
 * // "/apps/kv" may be delegated to a child group: the client finds it.
 * await client.append("/apps/kv/log", { put: "a" });
 * await client.close();
 * ```
 *
 * @module
 */

import { openOrClose } from "./_open_session.ts";
import { type Clock, SystemClock } from "../runtime/clock.ts";
import { CryptoRandom } from "../runtime/random.ts";
import { type Logger, silentLogger } from "../runtime/log.ts";
import type { Transport } from "../transport/transport.ts";
import { TcpTransport } from "../transport/tcp_transport.ts";
import type {
  ChannelEvent,
  Delegation,
  Json,
  ListEntries,
  ListKind,
  ListPage,
  OracleTree,
} from "./commands.ts";
import {
  type OracleClient,
  type OracleClientOptions,
  type OracleClientState,
  type OracleClientStats,
  type OracleClientStatus,
  type OracleConnectOptions,
  OracleError,
  type OracleListOptions,
  type OracleLockInfo,
  type OracleReadResult,
  type OracleViewInfo,
  type SubscribeOptions,
  type Subscription,
} from "./client.ts";
import {
  checkGbcastArgs,
  checkInteger,
  checkJson,
  checkListArgs,
  checkName,
  checkPath,
  checkReplicaAddresses,
  checkSessionIds,
} from "./_client_args.ts";
import {
  DEFAULT_DEADLINE_MS,
  DEFAULT_READ_LIMIT,
  DEFAULT_REQUEST_TIMEOUT_MS,
} from "./_client_defaults.ts";
import { MAX_ID_LENGTH, newClientId } from "./_client_id.ts";
import { emptyStats } from "./_client_stats.ts";
import { TreeCalls } from "./_tree_client_calls.ts";
import { TreeGroups } from "./_tree_client_groups.ts";
import { TreeRoutes } from "./_tree_client_routes.ts";
import {
  TreeSubscription,
  type TreeSubscriptionHost,
} from "./_tree_client_subscription.ts";

const DEFAULT_MAX_GROUPS = 64;
/** The delegation cache holds at most this many prefixes per group of `maxGroups`. */
const PREFIXES_PER_GROUP = 64;

/** Options of the {@linkcode OracleTreeClient} constructor. */
export interface OracleTreeClientOptions extends OracleClientOptions {
  /**
   * Makes the transport to a child group: one whose peer ids are the keys
   * of `delegation.replicas` (their addresses are the values). Called
   * once per group, the first time a path routes there; `session` is the
   * tree's session id. The tree client owns the transport: it closes it
   * in {@linkcode OracleTreeClient.close}.
   */
  connectGroup: (delegation: Delegation, session: string) => Promise<Transport>;
  /**
   * Most child groups the client talks to (the root not counted); a path
   * that routes to one more rejects with code `overloaded`. Also bounds
   * the delegation cache, to 64 prefixes per group. Default 64.
   */
  maxGroups?: number | undefined;
}

/** Options of {@linkcode OracleTreeClient.connect}: the root's TCP addresses. */
export interface OracleTreeConnectOptions extends OracleConnectOptions {
  /** Most child groups the client talks to. Default 64. */
  maxGroups?: number | undefined;
}

/** A snapshot of an {@linkcode OracleTreeClient}, from {@linkcode OracleTreeClient.status}. */
export interface OracleTreeClientStatus {
  /** Where the tree client is in its life. */
  state: OracleClientState;
  /** The session id, the same in every group. */
  session: string;
  /** The root group's client. */
  root: OracleClientStatus;
  /** Each child group's client, by group name (groups connected so far). */
  groups: Record<string, OracleClientStatus>;
  /** Delegations cached. */
  delegations: number;
  /** Calls in progress (following delegations, or at their group). */
  pending: number;
  /** Live subscriptions. */
  subscriptions: number;
}

/**
 * Counters of an {@linkcode OracleTreeClient}; they only grow. The
 * {@linkcode OracleClientStats} fields are the sums over the groups'
 * clients (and `callbackErrors` also counts the tree's own callbacks);
 * the others are the tree's.
 */
export interface OracleTreeClientStats extends OracleClientStats {
  /** Calls and subscriptions sent again to the group a `moved` answer named. */
  moves: number;
  /** `not_owner` answers after which a call or subscription was retried from the root. */
  notOwnerRetries: number;
  /** Calls and subscriptions given up after 8 `moved` answers in a row. */
  hopLimits: number;
  /** Calls rejected with `timeout` by the tree client's own deadline. */
  routeTimeouts: number;
  /** Child groups connected. */
  groupsConnected: number;
  /** Delegations dropped from the full cache (oldest first). */
  routesEvicted: number;
}

type TreeCounters = Omit<OracleTreeClientStats, keyof OracleClientStats>;

/**
 * A session with a tree of Oracle groups.
 *
 * **Routing.** A call goes to the group that owns its path as far as the
 * client knows: the longest delegation prefix cached at or above the path
 * (for a view channel, its group's path), else the root. A group that
 * delegated the path answers `moved` with the delegation: the client
 * caches it and sends the call there, following at most 8 `moved` in a
 * row (more rejects with code `moved`). A child group that has not
 * adopted the path yet answers `not_owner`: the client forgets the
 * delegation that sent it there and retries from the root after
 * `requestTimeoutMs`, doubling up to 8 times; once the next retry would
 * start past the call's deadline (`deadlineMs` from the call, also
 * counting the time spent following delegations), it rejects with code
 * `timeout` naming the group and the path. Each attempt has the group
 * client's own deadline. A
 * refused request was not applied, so these retries are safe. Any other
 * answer goes to the caller as is.
 *
 * **One session.** Every group sees the same session id. The root's
 * session opens with {@linkcode OracleTreeClient.open}; a child group's
 * opens the first time a call routes there (calls wait for it). If any
 * group reports the session expired, the whole tree session is: the other
 * groups' sessions are closed (which releases their locks and
 * memberships at once), every call and subscription fails with code
 * `session_expired` and the {@linkcode OracleTreeClient.onSessionExpired}
 * callbacks run once.
 *
 * **Subscriptions** follow their path too: ended with `moved`, one is
 * made again at the named group; ended with `not_owner`, again from the
 * root after the backoff (subscriptions have no deadline); each time from
 * the position reached, so no event is lost or repeated. A prefix
 * subscription covers the paths its owner group owns, not subtrees
 * delegated below the prefix.
 *
 * Within a group, the group's {@linkcode OracleClient} does the work:
 * leader following, retries, pipelining, keep-alive.
 *
 * @example Run inside the simulator
 * ```ts ignore
 * import { OracleTreeClient } from "@cohort/cohort/oracle";
 * import type { Transport } from "@cohort/cohort/transport";
 *
 * sim.addNode("client", (env) => {
 *   const client = new OracleTreeClient(env.transport, {
 *     replicas: ["1", "2", "3"],
 *     clock: env.clock,
 *     random: env.random,
 *     // A node per child group, whose transport reaches its replicas.
 *     connectGroup: async (delegation, session) => {
 *       let transport!: Transport;
 *       sim.addNode(`${session}@${delegation.group}`, (node) => {
 *         transport = node.transport;
 *         return {};
 *       });
 *       return transport;
 *     },
 *   });
 *   client.open().then(() => client.append("/apps/kv/log", "hello"));
 *   return {};
 * });
 * ```
 */
export class OracleTreeClient {
  /** The session id, the same in every group of the tree. */
  readonly session: string;

  readonly #rootTransport: Transport;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #counters: OracleTreeClientStats;
  readonly #routes: TreeRoutes;
  readonly #groups: TreeGroups;
  readonly #calls: TreeCalls;
  readonly #subscriptionHost: TreeSubscriptionHost;
  readonly #subscriptions = new Set<TreeSubscription>();
  #nextSubscriptionId = 1;
  #state: OracleClientState = "new";
  #ownsRootTransport = false;
  #opening: Promise<void> | undefined = undefined;
  #closing: Promise<void> | undefined = undefined;
  readonly #expiredCallbacks: (() => void)[] = [];

  /**
   * Creates a tree client whose root group is reached over
   * `rootTransport`, without opening the session (see
   * {@linkcode OracleTreeClient.open}). The root's client installs itself
   * as the transport's handler.
   *
   * @param rootTransport Carries frames to and from the root's replicas.
   * @param options The root's replicas, clock, randomness, limits, and
   * how to reach child groups.
   * @throws {TypeError} if `replicas` is empty or holds a non-string or
   * repeated id, `id` is not a non-empty string, or `connectGroup` is not
   * a function.
   * @throws {RangeError} if a duration, `maxInflight` or `maxGroups` is
   * out of range.
   */
  constructor(rootTransport: Transport, options: OracleTreeClientOptions) {
    if (typeof options.connectGroup !== "function") {
      throw new TypeError("Invalid connectGroup: must be a function");
    }
    const maxGroups = checkInteger(
      "maxGroups",
      options.maxGroups ?? DEFAULT_MAX_GROUPS,
      1,
    );
    this.session = options.id === undefined
      ? newClientId(options.random)
      : checkName("id", options.id, MAX_ID_LENGTH);
    this.#rootTransport = rootTransport;
    this.#clock = options.clock;
    this.#log = options.logger ?? silentLogger;
    const requestTimeoutMs = options.requestTimeoutMs ??
      DEFAULT_REQUEST_TIMEOUT_MS;
    const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#counters = { ...emptyStats(), ...emptyTreeCounters() };
    this.#routes = new TreeRoutes(maxGroups * PREFIXES_PER_GROUP);
    const learn = (delegation: Delegation) => {
      this.#counters.routesEvicted += this.#routes.learn(delegation);
    };
    this.#groups = new TreeGroups(
      {
        options: {
          clock: options.clock,
          random: options.random,
          logger: options.logger,
          id: this.session,
          sessionTtlMs: options.sessionTtlMs,
          requestTimeoutMs: options.requestTimeoutMs,
          deadlineMs: options.deadlineMs,
          maxInflight: options.maxInflight,
        },
        maxGroups,
        stats: this.#counters,
        log: this.#log,
        connectGroup: options.connectGroup,
        rootOpen: () =>
          this.#opening ??
            Promise.reject(this.#closedError("open a child group's session")),
        stopped: () => this.#stopped(),
        expired: (group) => this.#expire(group),
      },
      rootTransport,
      options.replicas,
    );
    this.#calls = new TreeCalls({
      clock: this.#clock,
      log: this.#log,
      requestTimeoutMs,
      deadlineMs,
      stats: this.#counters,
      routes: this.#routes,
      client: (delegation, what) => this.#groups.opened(delegation, what),
      learn,
    });
    this.#subscriptionHost = {
      clock: this.#clock,
      log: this.#log,
      requestTimeoutMs,
      stats: this.#counters,
      routes: this.#routes,
      client: (delegation, what) => this.#groups.connected(delegation, what),
      learn,
      expired: (group) => this.#expire(group),
      ended: (subscription) => this.#subscriptions.delete(subscription),
      callbackFailed: (which, error, subscription) =>
        this.#callbackFailed(which, error, subscription),
    };
  }

  /**
   * Starts a TCP transport to the root (a dial-only client whose id is
   * the session id), the system clock and OS randomness, and opens the
   * session at the root. Each child group gets its own dial-only TCP
   * transport (id: the session id, peers: the delegation's replicas, the
   * same secret) when a path first routes there. The client owns every
   * transport: {@linkcode OracleTreeClient.close} closes them.
   *
   * @example Connect to the root of a tree
   * ```ts ignore
   * import { OracleTreeClient } from "@cohort/cohort/oracle";
   *
   * const client = await OracleTreeClient.connect({
   *   replicas: { "1": "127.0.0.1:7001", "2": "127.0.0.1:7002", "3": "127.0.0.1:7003" },
   *   secret: "cluster secret",
   * });
   * console.log(client.session);
   * await client.close();
   * ```
   *
   * @param options The root's replica addresses, the secret, `maxGroups`
   * and the client options.
   * @returns The client, with its session open at the root.
   * @throws {TypeError} if `replicas` is empty or an address is invalid.
   * @throws {RangeError} if an option is out of range.
   * @throws {OracleError} if the session could not be opened (code
   * `"timeout"` when no root replica answered before the deadline).
   */
  static async connect(
    options: OracleTreeConnectOptions,
  ): Promise<OracleTreeClient> {
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
    let client: OracleTreeClient;
    try {
      client = new OracleTreeClient(transport, {
        ...options,
        replicas: Object.keys(addresses),
        clock: new SystemClock(),
        random,
        id,
        connectGroup: (delegation, session) =>
          TcpTransport.start({
            id: session,
            peers: { ...delegation.replicas },
            secret: options.secret,
            logger: options.logger,
          }),
      });
    } catch (error) {
      await transport.close();
      throw error;
    }
    client.#ownsRootTransport = true;
    return await openOrClose(client);
  }

  // ------------------------------------------------------------ session

  /**
   * Opens the session at the root (`open_session`) and starts its
   * keep-alive; child groups' sessions open when first used. Calls made
   * while it is opening wait for it. Calling it again returns the same
   * promise, until the session expires or the client closes.
   *
   * @example Open the tree session
   * ```ts ignore
   * await client.open();
   * console.log(client.status().state); // "open"
   * ```
   *
   * @returns A promise that resolves once the root session is open.
   * @throws {OracleError} `timeout` if no root replica answered before the
   * deadline, `session_expired` if the id was already used and expired,
   * `closed` if the client was closed.
   */
  open(): Promise<void> {
    if (this.#state === "expired") {
      return Promise.reject(this.#expiredError("open the session"));
    }
    if (this.#state === "closing" || this.#state === "closed") {
      return Promise.reject(this.#closedError("open the session"));
    }
    if (this.#opening !== undefined) return this.#opening;
    this.#state = "opening";
    const opening = this.#groups.root.open().then(() => {
      if (this.#state === "opening") this.#state = "open";
    }, (error) => {
      if (this.#opening === opening) this.#opening = undefined;
      if (this.#state === "opening") this.#state = "new";
      throw error;
    });
    this.#opening = opening;
    return opening;
  }

  /**
   * Registers a callback run once when the tree session expires, because
   * any group reported it expired (at once if it already has).
   * Afterwards every call rejects with code `session_expired`.
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
   * Closes the session in every group (best effort, see
   * {@linkcode OracleClient.close}): child groups first, the root last.
   * Rejects calls in progress with code `closed`, closes subscriptions,
   * and closes the transports the client owns (every child group's, and
   * the root's if {@linkcode OracleTreeClient.connect} made it); it waits
   * for `connectGroup` calls in progress. Idempotent.
   *
   * @example Close the client
   * ```ts ignore
   * await client.close();
   * console.log(client.status().state); // "closed"
   * ```
   *
   * @returns A promise that resolves once everything is closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#state = "closing";
    this.#calls.failAll((what) => this.#closedError(what));
    for (const subscription of [...this.#subscriptions]) subscription.close();
    await this.#groups.close();
    if (this.#ownsRootTransport) await this.#rootTransport.close();
    this.#state = "closed";
  }

  // ------------------------------------------------------------ requests

  /**
   * Appends an event to a channel, at the group that owns it.
   *
   * @example Append an event
   * ```ts ignore
   * const { seq, rev } = await client.append("/apps/kv/log", { put: "a" });
   * ```
   *
   * @param path The channel.
   * @param data The event (any JSON value).
   * @returns The event's sequence number in the channel and its revision
   * (in the owner group's order of revisions).
   * @throws {TypeError} if `path` is not a string starting with `/`, or
   * `data` is not JSON (undefined, BigInt, cycle, non-finite number).
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`; `moved` after 8 delegations in a row; `overloaded`
   * if the owner would be a group past `maxGroups`.
   */
  async append(
    path: string,
    data: Json,
  ): Promise<{ seq: number; rev: number }> {
    checkPath("channel path", path);
    checkJson(`event for ${JSON.stringify(path)}`, data);
    return await this.#call(
      path,
      `append to ${JSON.stringify(path)}`,
      (client) => client.append(path, data),
    );
  }

  /**
   * Drops a channel's events before sequence number `before`, at the
   * group that owns it.
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
   * @throws {OracleError} as {@linkcode OracleTreeClient.append} does.
   */
  async truncate(path: string, before: number): Promise<{ first: number }> {
    checkPath("channel path", path);
    checkInteger("truncation point", before, 1);
    return await this.#call(
      path,
      `truncate ${JSON.stringify(path)} before ${before}`,
      (client) => client.truncate(path, before),
    );
  }

  /**
   * Acquires a lock at the group that owns it, waiting in FIFO order
   * behind earlier requests. Once the owner queued the request, the call
   * has no deadline; finding the owner (`not_owner` retries) still stops
   * at `deadlineMs` with code `timeout`.
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
   * @returns The grant's fencing token (it only grows, within the owner group).
   * @throws {TypeError} if `path` is not a string starting with `/`.
   * @throws {OracleError} `lock_owned` if this session already holds or
   * waits for it; `not_holder` if the waiting request was withdrawn with
   * `unlock(path, 0)`; `timeout` if no group owned it in time; `moved`,
   * `overloaded`, `closed` or `session_expired`.
   */
  async lock(path: string): Promise<{ token: number }> {
    checkPath("lock path", path);
    return await this.#call(
      path,
      `lock ${JSON.stringify(path)}`,
      (client) => client.lock(path),
    );
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
   * @throws {OracleError} as {@linkcode OracleTreeClient.append} does.
   */
  async tryLock(path: string): Promise<number | undefined> {
    checkPath("lock path", path);
    return await this.#call(
      path,
      `try lock ${JSON.stringify(path)}`,
      (client) => client.tryLock(path),
    );
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
   * lock under that token; otherwise as {@linkcode OracleTreeClient.append}.
   */
  async unlock(path: string, token: number): Promise<void> {
    checkPath("lock path", path);
    checkInteger("token", token, 0);
    await this.#call(
      path,
      `unlock ${JSON.stringify(path)} (token ${token})`,
      (client) => client.unlock(path, token),
    );
  }

  /**
   * Asks for `member` (owned by this session) to join a group, at the
   * Oracle group that owns the group's path.
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
   * otherwise as {@linkcode OracleTreeClient.append}.
   */
  async join(group: string, member: string): Promise<{ viewId: number }> {
    checkPath("group", group);
    checkName("member", member);
    return await this.#call(
      group,
      `join ${JSON.stringify(member)} to ${JSON.stringify(group)}`,
      (client) => client.join(group, member),
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
   * @throws {OracleError} `membership` if not a member or the view is stale; otherwise as
   * {@linkcode OracleTreeClient.append}.
   */
  async leave(group: string, member: string): Promise<{ viewId: number }> {
    checkPath("group", group);
    checkName("member", member);
    return await this.#call(
      group,
      `remove ${JSON.stringify(member)} from ${JSON.stringify(group)}`,
      (client) => client.leave(group, member),
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
   * @throws {OracleError} `membership` if not a member; otherwise as
   * {@linkcode OracleTreeClient.append}.
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
    return await this.#call(
      group,
      `exclude ${JSON.stringify(member)} from ${JSON.stringify(group)}`,
      (client) => client.remove(group, member, reason, viewId),
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
   * @throws {OracleError} `membership` for a stale view id; otherwise as
   * {@linkcode OracleTreeClient.append}.
   */
  async flushed(group: string, viewId: number, member: string): Promise<void> {
    checkPath("group", group);
    checkInteger("view id", viewId, 1);
    checkName("member", member);
    await this.#call(
      group,
      `report ${JSON.stringify(member)} flushed for view ${viewId} of ${
        JSON.stringify(group)
      }`,
      (client) => client.flushed(group, viewId, member),
    );
  }

  /**
   * Multicasts `payload` to a group in gbcast order, at the Oracle group
   * that owns the group (see {@linkcode OracleClient.gbcast}).
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
   * view; otherwise as {@linkcode OracleTreeClient.append}.
   */
  async gbcast(
    group: string,
    member: string,
    seq: number,
    payload: Uint8Array,
  ): Promise<{ viewId: number }> {
    checkGbcastArgs(group, member, seq, payload);
    return await this.#call(
      group,
      `gbcast from ${JSON.stringify(member)} to ${JSON.stringify(group)}`,
      (client) => client.gbcast(group, member, seq, payload),
    );
  }

  /**
   * Reads a channel's retained events from `from` at the group that owns
   * it (linearizable).
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
   * truncated; otherwise as {@linkcode OracleTreeClient.append}.
   */
  async read(
    path: string,
    from: number,
    limit: number = DEFAULT_READ_LIMIT,
  ): Promise<OracleReadResult> {
    checkPath("channel path", path);
    checkInteger("read position", from, 1);
    checkInteger("read limit", limit, 1);
    return await this.#call(
      path,
      `read ${JSON.stringify(path)} from ${from}`,
      (client) => client.read(path, from, limit),
    );
  }

  /**
   * Reads a lock's holder, token and queue length at the group that owns
   * it (linearizable).
   *
   * @example Who holds a lock
   * ```ts ignore
   * const { holder, token, waiters } = await client.getLock("/apps/kv/primary");
   * ```
   *
   * @param path The lock.
   * @returns The lock's state.
   * @throws {TypeError} if `path` is not a string starting with `/`.
   * @throws {OracleError} as {@linkcode OracleTreeClient.append} does.
   */
  async getLock(path: string): Promise<OracleLockInfo> {
    checkPath("lock path", path);
    return await this.#call(
      path,
      `read lock ${JSON.stringify(path)}`,
      (client) => client.getLock(path),
    );
  }

  /**
   * Reads a group's installed view and pending proposal at the Oracle
   * group that owns the group's path (linearizable).
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
   * @throws {OracleError} as {@linkcode OracleTreeClient.append} does.
   */
  async getView(group: string): Promise<OracleViewInfo> {
    checkPath("group", group);
    return await this.#call(
      group,
      `read view of ${JSON.stringify(group)}`,
      (client) => client.getView(group),
    );
  }

  /**
   * Lists the held locks, the channels or the groups at or under `prefix`
   * at the Oracle group that owns `prefix` (linearizable), routed like
   * any path operation on `prefix`. Only that group's entries are
   * listed: subtrees it delegated are not followed (list them by their
   * own prefixes). See {@linkcode OracleClient.list} for the entries.
   *
   * @example Page through the groups under a prefix
   * ```ts ignore
   * let after: string | undefined;
   * do {
   *   const page = await client.list("groups", "/apps", { after });
   *   for (const g of page.items) console.log(g.group, g.viewId, g.members.length);
   *   after = page.next ?? undefined;
   * } while (after !== undefined);
   * ```
   *
   * @param kind `"locks"`, `"channels"` or `"groups"`.
   * @param prefix A path, or `/` (the root's own entries).
   * @param options `after` (a cursor) and `limit` (1 to 1,000, default 100).
   * @returns The entries, sorted by path, and `next`: the last entry's
   * path when more follow (pass it as `after`), else `null`.
   * @throws {TypeError} if `kind` is not one of the three, `prefix` or
   * `after` is not a string starting with `/`, or `limit` not a number.
   * @throws {RangeError} if `limit` is not an integer from 1 to 1,000.
   * @throws {OracleError} as {@linkcode OracleTreeClient.append} does.
   */
  async list<K extends ListKind>(
    kind: K,
    prefix: string,
    options: OracleListOptions = {},
  ): Promise<ListPage<ListEntries[K]>> {
    checkListArgs(kind, prefix, options);
    return await this.#call(
      prefix,
      `list ${kind} under ${JSON.stringify(prefix)}`,
      (client) => client.list(kind, prefix, options),
    );
  }

  // ---------------------------------------------------------------- tree

  /**
   * Hands the subtree at `prefix` to another Oracle group, at the group
   * that owns `prefix` now, and caches the new delegation.
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
   * @throws {OracleError} `delegation` if the owner refused it (overlap,
   * state under the prefix); otherwise as {@linkcode OracleTreeClient.append}.
   */
  async delegate(
    prefix: string,
    group: string,
    replicas: Record<string, string>,
  ): Promise<void> {
    checkPath("prefix", prefix);
    checkName("group name", group);
    const copy = { ...checkReplicaAddresses("replicas", replicas) };
    await this.#call(
      prefix,
      `delegate ${JSON.stringify(prefix)} to group ${JSON.stringify(group)}`,
      (client) => client.delegate(prefix, group, copy),
    );
    this.#counters.routesEvicted += this.#routes.learn({
      prefix,
      group,
      replicas: copy,
    });
  }

  /**
   * Reads the root group's place in the tree (linearizable): `["/"]` and
   * the delegations the root made (not those of its children).
   *
   * @example List the root's delegations
   * ```ts ignore
   * const { delegations } = await client.getTree();
   * for (const d of delegations) console.log(d.prefix, "->", d.group);
   * ```
   *
   * @returns The prefixes the root owns and its delegations.
   * @throws {OracleError} on an Oracle error, `timeout`, `closed` or
   * `session_expired`.
   */
  async getTree(): Promise<OracleTree> {
    return await this.#call(
      undefined,
      "read the Oracle tree",
      (client) => client.getTree(),
    );
  }

  /**
   * Asks the root, the home of every session of the tree, which of
   * `sessions` are not live (linearizable).
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
    return await this.#call(
      undefined,
      `check ${ids.length} sessions`,
      (client) => client.endedSessions(ids),
    );
  }

  // ------------------------------------------------------- subscriptions

  /**
   * Subscribes to a channel from a sequence number, or, with `prefix`, to
   * every channel under a path from a revision, at the group that owns
   * it; the subscription moves with the path's delegations, each event
   * delivered once and in order. A prefix subscription covers the paths
   * its owner group owns, not subtrees delegated below the prefix (and
   * its revisions are that group's). Subscriptions do not need the
   * session to be open.
   *
   * @example Follow a channel wherever it lives
   * ```ts ignore
   * const sub = client.subscribe("/apps/kv/log", {
   *   onError: (error) => console.error(error.code),
   * }, (events) => {
   *   for (const e of events) console.log(e.seq, e.data);
   * });
   * // ... later
   * sub.close();
   * ```
   *
   * @param path The channel, or the prefix.
   * @param options Start position, prefix mode and error callback (not
   * called for `moved` and `not_owner`, which the client follows; called
   * with `moved` after 8 in a row, `overloaded` past `maxGroups`, and
   * `closed` if `connectGroup` failed).
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
    const subscription = new TreeSubscription(
      this.#subscriptionHost,
      this.#nextSubscriptionId++,
      path,
      { prefix, from, onEvents, onError: options.onError },
    );
    this.#subscriptions.add(subscription);
    subscription.home(false);
    return subscription;
  }

  // --------------------------------------------------------- inspection

  /**
   * The Oracle group a call on `path` goes to now, as far as the cached
   * delegations tell (a `moved` answer may still send it further).
   *
   * @example Where a path lives
   * ```ts ignore
   * await client.append("/apps/kv/log", 1);
   * console.log(client.owner("/apps/kv/log")); // "kv", once delegated
   * ```
   *
   * @param path A channel, lock or group path (view channels route by
   * their group).
   * @returns The group's name, or `""` for the root.
   * @throws {TypeError} if `path` is not a string starting with `/`.
   */
  owner(path: string): string {
    checkPath("path", path);
    return this.#routes.route(path)?.group ?? "";
  }

  /**
   * A snapshot of the counters: the groups' clients' counters summed,
   * and the tree's own.
   *
   * @example Count delegations followed
   * ```ts ignore
   * const { moves, notOwnerRetries, requestsSent } = client.stats();
   * ```
   *
   * @returns A copy of the counters.
   */
  stats(): OracleTreeClientStats {
    const sum = this.#groups.sumStats();
    const out = { ...this.#counters };
    for (const key of Object.keys(sum) as (keyof OracleClientStats)[]) {
      out[key] += sum[key];
    }
    return out;
  }

  /**
   * A snapshot of the tree client and of each group's client.
   *
   * @example Which groups the client talks to
   * ```ts ignore
   * const { state, root, groups } = client.status();
   * console.log(state, root.leader, Object.keys(groups));
   * ```
   *
   * @returns The state, session, groups' statuses and sizes.
   */
  status(): OracleTreeClientStatus {
    return {
      state: this.#state,
      session: this.session,
      root: this.#groups.root.status(),
      groups: this.#groups.childStatus(),
      delegations: this.#routes.size,
      pending: this.#calls.size,
      subscriptions: this.#subscriptions.size,
    };
  }

  // ============================================================ internals

  #stopped(): boolean {
    return this.#state === "expired" || this.#state === "closing" ||
      this.#state === "closed";
  }

  #closedError(what: string): OracleError {
    return new OracleError(
      "closed",
      this.#state === "new" || this.#state === "opening"
        ? `Cannot ${what}: the session ${this.session} is not open (call open() first)`
        : `Cannot ${what}: the tree client of session ${this.session} is closed`,
    );
  }

  #expiredError(what: string): OracleError {
    return new OracleError(
      "session_expired",
      `Cannot ${what}: the session ${this.session} expired`,
    );
  }

  /** Starts a call routed by `path` (the root's when `undefined`), or fails it at once. */
  #call<T>(
    path: string | undefined,
    what: string,
    run: (client: OracleClient) => Promise<T>,
  ): Promise<T> {
    if (this.#state === "expired") {
      return Promise.reject(this.#expiredError(what));
    }
    if (this.#state !== "open" && this.#state !== "opening") {
      return Promise.reject(this.#closedError(what));
    }
    return this.#calls.start(path, what, run);
  }

  /** A group reported the session expired: the whole tree session is. */
  #expire(group: string): void {
    if (this.#stopped()) return;
    this.#log.log("warn", "oracle_tree_session_expired", {
      session: this.session,
      group,
    });
    this.#state = "expired";
    this.#calls.failAll((what) => this.#expiredError(what));
    for (const subscription of [...this.#subscriptions]) {
      subscription.end(
        this.#expiredError(`follow ${JSON.stringify(subscription.path)}`),
      );
    }
    this.#groups.closeClients().catch((error) => {
      this.#log.log("warn", "oracle_tree_close_failed", {
        error: String(error),
      });
    });
    for (const callback of this.#expiredCallbacks.splice(0)) {
      this.#runCallback(callback);
    }
  }

  #runCallback(callback: () => void): void {
    try {
      callback();
    } catch (error) {
      this.#callbackFailed("onSessionExpired", error);
    }
  }

  #callbackFailed(which: string, error: unknown, subscription?: number): void {
    this.#counters.callbackErrors++;
    this.#log.log("error", "oracle_tree_callback_threw", {
      callback: which,
      subscription,
      error: error instanceof Error ? error.stack ?? error.message : String(
        error,
      ),
    });
  }
}

function emptyTreeCounters(): TreeCounters {
  return {
    moves: 0,
    notOwnerRetries: 0,
    hopLimits: 0,
    routeTimeouts: 0,
    groupsConnected: 0,
    routesEvicted: 0,
  };
}
