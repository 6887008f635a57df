/**
 * A typed handle on one actor's membership of one group: it validates and
 * multicasts messages to the group's handlers, queries the group for
 * replies, sends point to point, and runs the actor's handlers on what
 * the group delivers.
 *
 * @module
 */

import { GroupDriver, type GroupDriverStatus } from "../groups/driver.ts";
import type { GroupCallbacks, GroupEndpoint } from "../groups/endpoint.ts";
import type { Logger } from "../runtime/log.ts";
import { type Clock, SystemClock, type TimerId } from "../runtime/clock.ts";
import {
  type Actor,
  checkOrdering,
  type DispatchTable,
  dispatchTable,
  type HandlerEntry,
  type MessageContext,
  type Ordering,
  type View,
} from "./actor.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type HandlerEnvelope,
} from "./_envelope.ts";
import {
  describeIssues,
  type InferInput,
  type Schema,
  validate,
} from "./schema.ts";

/** What a member does when one of its handlers throws. */
export type FailurePolicy = "leave" | "continue";

/** A handler threw (or its reply promise rejected). */
export interface HandlerFailure {
  /** The group's path. */
  readonly group: string;
  /** The handler's name. */
  readonly handler: string;
  /** The message's id ({@linkcode MessageContext.id}). */
  readonly messageId: string;
  /** What it threw. */
  readonly error: unknown;
  /** What the member does: leaves the group, or goes on. */
  readonly policy: FailurePolicy;
}

/** How many replies a query waits for. */
export type ReplyCount = "all" | "majority" | "first" | number;

/** Options of {@linkcode GroupHandle.query}. */
export interface QueryOptions<R> {
  /**
   * How many replies to wait for: `"all"` (every member of the view,
   * less those that leave it meanwhile), `"majority"` (of the view at the
   * send), `"first"`, or a count. Default `"all"`.
   */
  readonly replies?: ReplyCount | undefined;
  /** How long to wait, in ms. Default 5,000. */
  readonly timeoutMs?: number | undefined;
  /** The ordering; default the handler's. */
  readonly order?: Ordering | undefined;
  /** Validates (and types) each reply; an invalid one counts as an error reply. */
  readonly reply?: Schema<unknown, R> | undefined;
}

/** One member's reply to a query. */
export type QueryReply<R> =
  | { readonly member: string; readonly ok: true; readonly value: R }
  | { readonly member: string; readonly ok: false; readonly error: string };

/** A query did not get the replies it waited for in time. */
export class QueryTimeoutError extends Error {
  /** The replies that came. */
  readonly replies: readonly QueryReply<unknown>[];
  /** How many it waited for. */
  readonly wanted: number;

  /**
   * A timeout with what came.
   *
   * @param replies The replies that came.
   * @param wanted How many it waited for.
   */
  constructor(replies: readonly QueryReply<unknown>[], wanted: number) {
    super(
      `The query got ${replies.length} of the ${wanted} replies it waited for in time`,
    );
    this.name = "QueryTimeoutError";
    this.replies = replies;
    this.wanted = wanted;
  }
}

/** The member is no longer in the group (it left, was excluded, or its handle closed). */
export class NotMemberError extends Error {
  /** The group's path. */
  readonly group: string;

  /**
   * The member is out of `group`.
   *
   * @param group The group's path.
   * @param why What happened.
   */
  constructor(group: string, why: string) {
    super(`Not a member of ${group}: ${why}`);
    this.name = "NotMemberError";
    this.group = group;
  }
}

/** Counters of a {@linkcode GroupHandle}; they only grow. */
export interface GroupHandleStats {
  /** Messages multicast or sent point to point. */
  sent: number;
  /** Messages handed to a handler. */
  handled: number;
  /** Messages from the network a schema refused (dropped). */
  invalidReceived: number;
  /** Messages from the network that were not well-formed, or named no handler (dropped). */
  malformedReceived: number;
  /** Handlers that threw. */
  handlerFailures: number;
  /** Replies to no query in flight, or from a member not asked (dropped). */
  strayReplies: number;
}

/** A view as an engine reports it. */
export interface EngineView {
  /** The view's id. */
  readonly viewId: number;
  /** The members, in the same order everywhere. */
  readonly members: readonly string[];
}

/** A message as an engine delivers it. */
export interface EngineMessage {
  /** The member that multicast it. */
  readonly sender: string;
  /** Its sequence number among the sender's messages in the view. */
  readonly seq: number;
  /** The view it was delivered in. */
  readonly viewId: number;
  /** The ordering it was sent with. */
  readonly strategy: string;
  /** The bytes. */
  readonly payload: Uint8Array;
}

/** What a {@linkcode GroupHandle} runs on: one member of one group. */
export interface GroupEngine {
  /** The member's name. */
  readonly name: string;
  /** The installed view, if any. */
  readonly view: EngineView | undefined;
  /** Multicasts in an ordering; `false` if the send queue is full. */
  multicast(payload: Uint8Array, order: Ordering): boolean;
  /** Sends to one member, point to point, best effort. */
  sendDirect(to: string, payload: Uint8Array): boolean;
  /** Leaves the group and stops. */
  close(): Promise<void>;
  /** The member's protocol state, for status pages and metrics (engines that keep one). */
  status?(): GroupDriverStatus;
}

/** What the engine tells its {@linkcode GroupHandle}. */
export interface GroupEngineEvents {
  /** A message the group delivered. */
  deliver(message: EngineMessage): void;
  /** A point-to-point message from a member of the view. */
  direct(from: string, payload: Uint8Array): void;
  /** A view was installed; `awaitingState`: a new member still waits for its state. */
  viewInstalled(view: EngineView, awaitingState: boolean): void;
  /** The actor's state, for a new member. */
  checkpoint(): Uint8Array;
  /** A new member's state arrived. */
  restore(state: Uint8Array): void;
  /** The member is out of the group. */
  out(why: string): void;
  /** Sends fit again after `multicast` returned `false`. */
  writable(): void;
}

/** Options of {@linkcode GroupHandle.attach}: the actor and what to do on trouble. */
export interface GroupHandleOptions<A extends Actor<unknown>> {
  /** The group's path. */
  readonly group: string;
  /** The actor that handles this member's messages. */
  readonly actor: A;
  /** Timers (query timeouts). Default: the system clock. */
  readonly clock?: Clock | undefined;
  /** What a handler failure does. Default `"leave"`. */
  readonly failurePolicy?: FailurePolicy | undefined;
  /** Told of every handler failure. */
  readonly onFailure?: ((failure: HandlerFailure) => void) | undefined;
  /** Told of every message from the network that was dropped as invalid, and why. */
  readonly onInvalid?: ((from: string, why: string) => void) | undefined;
  /** Told once when the member is out of the group, and why. */
  readonly onLeft?: ((why: string) => void) | undefined;
  /** Where events are reported. */
  readonly logger?: Logger | undefined;
}

/** Options of {@linkcode GroupHandle.join}: the handle's, and the member's over TCP or UDP. */
export interface GroupJoinOptions<A extends Actor<unknown>>
  extends GroupHandleOptions<A> {
  /** This incarnation's label (the member's name is `label@host:port`). */
  readonly label: string;
  /** Where the member listens: `"host:port"`, a fixed port. */
  readonly listen: string;
  /** The Oracle's replicas: id to `"host:port"`. */
  readonly oracle: Record<string, string>;
  /** The cluster secret. */
  readonly secret?: string | Uint8Array | undefined;
  /** The transport between members. Default `"tcp"`. */
  readonly transport?: "tcp" | "udp" | undefined;
  /** The Oracle session's TTL, ms. Default 10,000. */
  readonly sessionTtlMs?: number | undefined;
}

interface PendingQuery {
  readonly asked: Set<string>;
  readonly replies: QueryReply<unknown>[];
  readonly count: ReplyCount;
  wanted: number;
  readonly reply: Schema | undefined;
  readonly resolve: (replies: QueryReply<unknown>[]) => void;
  readonly reject: (error: Error) => void;
  readonly timer: TimerId;
}

/** Most queries in flight per handle. */
const MAX_QUERIES = 10_000;

/**
 * One actor's membership of one group (see the module documentation).
 *
 * @example Join, send and query (needs an Oracle)
 * ```ts ignore
 * const kv = await node.join("/apps/kv", new Kv());
 * await kv.send(Put, { key: "a", value: "1" });
 * const replies = await kv.query(Get, { key: "a" }, { replies: "majority" });
 * ```
 */
export class GroupHandle<A extends Actor<unknown>> {
  /** The group's path. */
  readonly group: string;
  /** The actor that handles this member's messages. */
  readonly actor: A;
  readonly #table: DispatchTable;
  readonly #options: GroupHandleOptions<A>;
  readonly #clock: Clock;
  #engine: GroupEngine | undefined;
  /** This member's name (set before any event can arrive). */
  #name = "";
  readonly #queries = new Map<number, PendingQuery>();
  #nextQuery = 0;
  #directCount = 0;
  #out: string | undefined;
  /**
   * The last view the actor was told of: the view of the messages it is
   * handed (a new member's held messages come after its state, when the
   * member may have installed later views already).
   */
  #appView: View | undefined;
  /** A view installed while the state was awaited: told after the restore. */
  #viewAfterRestore: View | undefined;
  readonly #writableWaiters: (() => void)[] = [];
  readonly #stats: GroupHandleStats = {
    sent: 0,
    handled: 0,
    invalidReceived: 0,
    malformedReceived: 0,
    handlerFailures: 0,
    strayReplies: 0,
  };

  private constructor(options: GroupHandleOptions<A>) {
    this.#clock = options.clock ?? new SystemClock();
    this.group = options.group;
    this.actor = options.actor;
    this.#options = options;
    this.#table = dispatchTable(
      options.actor.constructor as abstract new (...args: never[]) => object,
    );
  }

  /**
   * Joins `options.group` with `options.actor` (usually through
   * {@linkcode Node.join}).
   *
   * @returns The handle, once the Oracle took the join; the member is in
   * the group once a view names it.
   * @throws {TypeError} if the actor's handlers are declared wrongly.
   * @throws {OracleError} if the Oracle refuses the join or cannot be reached.
   */
  static async join<A extends Actor<unknown>>(
    options: GroupJoinOptions<A>,
  ): Promise<GroupHandle<A>> {
    const handle = new GroupHandle(options);
    // Known before the join returns: views may arrive before it does.
    handle.#name = `${options.label}@${options.listen}`;
    handle.#engine = await GroupDriver.join({
      group: options.group,
      label: options.label,
      listen: options.listen,
      oracle: options.oracle,
      secret: options.secret,
      transport: options.transport,
      sessionTtlMs: options.sessionTtlMs,
      logger: options.logger,
      ...handle.#callbacks(),
    });
    return handle;
  }

  /**
   * Joins `options.group` with `options.actor` on a running endpoint,
   * whose transport and Oracle session other groups may share (how
   * {@linkcode Node.join} joins).
   *
   * @throws {TypeError} if the endpoint is already in the group.
   * @throws {OracleError} if the Oracle refuses the join.
   */
  static async joinOn<A extends Actor<unknown>>(
    endpoint: GroupEndpoint,
    options: GroupHandleOptions<A>,
  ): Promise<GroupHandle<A>> {
    const handle = new GroupHandle(options);
    handle.#name = endpoint.name;
    handle.#engine = await GroupDriver.on(
      endpoint,
      options.group,
      handle.#callbacks(),
    );
    return handle;
  }

  /** The events, as a driver's callbacks. */
  #callbacks(): GroupCallbacks {
    const events = this.#events();
    return {
      deliver: events.deliver,
      direct: events.direct,
      viewInstalled: events.viewInstalled,
      state: { checkpoint: events.checkpoint, restore: events.restore },
      out: events.out,
      writable: events.writable,
    };
  }

  /**
   * Runs `options.actor` on an engine of one's own (the simulator's
   * members, for one): `open` gets the events the engine must report and
   * returns the engine.
   */
  static attach<A extends Actor<unknown>>(
    options: GroupHandleOptions<A>,
    open: (events: GroupEngineEvents) => GroupEngine,
  ): GroupHandle<A> {
    const handle = new GroupHandle(options);
    handle.#engine = open(handle.#events());
    handle.#name = handle.#engine.name;
    return handle;
  }

  #events(): GroupEngineEvents {
    const encoder = new TextEncoder();
    const decoder = new TextDecoder();
    const actor = this.actor as Actor<unknown>;
    return {
      deliver: (message) => this.#onMessage(message),
      direct: (from, payload) => this.#onDirect(from, payload),
      viewInstalled: (view, awaitingState) =>
        this.#onView(
          { viewId: view.viewId, members: view.members, me: this.me },
          awaitingState,
        ),
      checkpoint: () =>
        encoder.encode(JSON.stringify(actor.checkpoint() ?? null)),
      restore: (bytes) => {
        actor.restore(JSON.parse(decoder.decode(bytes)));
        const view = this.#viewAfterRestore;
        this.#viewAfterRestore = undefined;
        if (view !== undefined) this.#tellView(view);
      },
      out: (why) => this.#left(why),
      writable: () => {
        for (const wake of this.#writableWaiters.splice(0)) wake();
      },
    };
  }

  /** This member's name in the group. */
  get me(): string {
    return this.#name;
  }

  /** The installed view, if any. */
  get view(): View | undefined {
    const view = this.#engine?.view;
    return view === undefined
      ? undefined
      : { viewId: view.viewId, members: view.members, me: this.me };
  }

  /** Counters (a copy). */
  stats(): GroupHandleStats {
    return { ...this.#stats };
  }

  /**
   * The member's protocol state (view, flush, sent, delivered, unstable,
   * state transfers, primary partition), or `undefined` when its engine
   * keeps none or the member is out of the group.
   */
  memberStatus(): GroupDriverStatus | undefined {
    return this.#out === undefined ? this.#engine?.status?.() : undefined;
  }

  /**
   * Multicasts `message` to the handler of `schema`, in the handler's
   * ordering or `options.order`. It is validated first; it waits while
   * the send queue is full.
   *
   * @throws {TypeError} if the actor has no handler for `schema`, or the
   * message is invalid (the error names the fields).
   * @throws {NotMemberError} if the member is out of the group.
   */
  async send<S extends Schema>(
    schema: S,
    message: InferInput<S>,
    options?: { readonly order?: Ordering | undefined },
  ): Promise<void> {
    const entry = this.#prepare(schema, message);
    await this.#multicast(
      encodeEnvelope({ h: entry.name, m: message }),
      this.#order(entry, options?.order),
    );
  }

  /**
   * Multicasts `message` to the handler of `schema` as a query: every
   * member that handles it answers with what its handler returned, point
   * to point. Resolves with the replies once `options.replies` of them
   * are in.
   *
   * @throws {TypeError} if the actor has no handler for `schema`, or the
   * message is invalid.
   * @throws {RangeError} if `options.replies` is not `"all"`,
   * `"majority"`, `"first"` or a positive integer.
   * @throws {QueryTimeoutError} if the replies are not in after
   * `options.timeoutMs`.
   * @throws {NotMemberError} if the member is out of the group.
   */
  async query<S extends Schema, R = unknown>(
    schema: S,
    message: InferInput<S>,
    options?: QueryOptions<R>,
  ): Promise<QueryReply<R>[]> {
    const entry = this.#prepare(schema, message);
    const count = options?.replies ?? "all";
    if (
      !(count === "all" || count === "majority" || count === "first" ||
        (Number.isSafeInteger(count) && (count as number) > 0))
    ) {
      throw new RangeError(
        `Invalid replies ${
          String(count)
        }: use "all", "majority", "first" or a positive integer`,
      );
    }
    const view = this.view;
    if (view === undefined) {
      throw new NotMemberError(this.group, "no view installed yet");
    }
    if (this.#queries.size >= MAX_QUERIES) {
      throw new RangeError(
        `Too many queries in flight (${MAX_QUERIES}): wait for some`,
      );
    }
    const id = ++this.#nextQuery;
    const asked = new Set(view.members);
    const wanted = count === "all"
      ? asked.size
      : count === "majority"
      ? Math.floor(asked.size / 2) + 1
      : count === "first"
      ? 1
      : count as number;
    const timeoutMs = options?.timeoutMs ?? 5_000;
    const replies = new Promise<QueryReply<unknown>[]>((resolve, reject) => {
      const query: PendingQuery = {
        asked,
        replies: [],
        count,
        wanted,
        reply: options?.reply,
        resolve,
        reject,
        timer: this.#clock.setTimer(timeoutMs, () => {
          this.#queries.delete(id);
          reject(new QueryTimeoutError(query.replies, query.wanted));
        }),
      };
      this.#queries.set(id, query);
    });
    try {
      await this.#multicast(
        encodeEnvelope({ h: entry.name, m: message, q: id }),
        this.#order(entry, options?.order),
      );
    } catch (error) {
      const query = this.#queries.get(id);
      if (query !== undefined) this.#clock.clearTimer(query.timer);
      this.#queries.delete(id);
      throw error;
    }
    return await replies as QueryReply<R>[];
  }

  /**
   * Sends `message` to the handler of `schema` at one member of the view,
   * point to point: best effort, outside the group's ordering.
   *
   * @returns Whether it was handed to the transport.
   * @throws {TypeError} if the actor has no handler for `schema`, or the
   * message is invalid.
   */
  sendTo<S extends Schema>(
    member: string,
    schema: S,
    message: InferInput<S>,
  ): boolean {
    const entry = this.#prepare(schema, message);
    if (member === this.me) {
      this.#dispatch(
        { h: entry.name, m: message },
        member,
        this.#directId(member),
        "direct",
      );
      return true;
    }
    const bytes = encodeEnvelope({ h: entry.name, m: message });
    const sent = this.#engine?.sendDirect(member, bytes) ?? false;
    if (sent) this.#stats.sent++;
    return sent;
  }

  /** Leaves the group (and closes this member's session and transport). Idempotent. */
  async leave(): Promise<void> {
    this.#left("left");
    await this.#engine?.close();
  }

  // ------------------------------------------------------------ sending

  #prepare(schema: Schema, message: unknown): HandlerEntry {
    const entry = this.#table.bySchema.get(schema);
    if (entry === undefined) {
      throw new TypeError(
        `${this.actor.constructor.name} has no handler for this schema: declare one with @handler(schema)`,
      );
    }
    const result = validate(schema, message);
    if (result.issues !== undefined) {
      throw new TypeError(
        `Invalid message for handler ${entry.name}: ${
          describeIssues(result.issues)
        }`,
      );
    }
    return entry;
  }

  /** The ordering of a send: the handler's (checked when declared), or `order`, checked. */
  #order(entry: HandlerEntry, order: Ordering | undefined): Ordering {
    return order === undefined ? entry.order : checkOrdering(order);
  }

  async #multicast(bytes: Uint8Array, order: Ordering): Promise<void> {
    for (;;) {
      if (this.#out !== undefined || this.#engine === undefined) {
        throw new NotMemberError(this.group, this.#out ?? "not joined");
      }
      if (this.#engine.multicast(bytes, order)) {
        this.#stats.sent++;
        return;
      }
      await new Promise<void>((wake) => this.#writableWaiters.push(wake));
    }
  }

  // ----------------------------------------------------------- receiving

  #onMessage(message: EngineMessage): void {
    const decoded = decodeEnvelope(message.payload);
    if ("error" in decoded || !("h" in decoded.envelope)) {
      this.#drop(
        "malformed",
        message.sender,
        "error" in decoded ? decoded.error : "a reply multicast to the group",
      );
      return;
    }
    this.#dispatch(
      decoded.envelope,
      message.sender,
      `${message.viewId}/${message.sender}/${message.seq}`,
      message.strategy as Ordering,
    );
  }

  #onDirect(from: string, payload: Uint8Array): void {
    const decoded = decodeEnvelope(payload);
    if ("error" in decoded) {
      this.#drop("malformed", from, decoded.error);
      return;
    }
    const envelope = decoded.envelope;
    if ("h" in envelope) {
      this.#dispatch(envelope, from, this.#directId(from), "direct");
    } else {
      this.#onReply(
        from,
        envelope.r,
        "v" in envelope
          ? { ok: true, value: envelope.v }
          : { ok: false, error: envelope.e },
      );
    }
  }

  #directId(from: string): string {
    return `direct/${from}/${++this.#directCount}`;
  }

  /** Drops a message from the network: counts, reports and logs why. */
  #drop(kind: "malformed" | "invalid", from: string, why: string): void {
    if (kind === "malformed") this.#stats.malformedReceived++;
    else this.#stats.invalidReceived++;
    this.#options.onInvalid?.(from, why);
    this.#options.logger?.log("warn", `actor.${kind}_message`, {
      group: this.group,
      from,
      why,
    });
  }

  #dispatch(
    envelope: HandlerEnvelope,
    sender: string,
    id: string,
    order: Ordering | "direct",
  ): void {
    if (this.#out !== undefined) return;
    const entry = this.#table.handlers.get(envelope.h);
    if (entry === undefined) {
      this.#drop(
        "malformed",
        sender,
        `no handler named ${JSON.stringify(envelope.h)}`,
      );
      this.#reply(sender, envelope.q, { error: "no such handler" });
      return;
    }
    const result = validate(entry.schema, envelope.m);
    if (result.issues !== undefined) {
      const why = `invalid message for ${entry.name}: ${
        describeIssues(result.issues)
      }`;
      this.#drop("invalid", sender, why);
      this.#reply(sender, envelope.q, { error: why });
      return;
    }
    const context: MessageContext = {
      sender,
      view: this.#appView ?? this.view ??
        { viewId: 0, members: [], me: this.me },
      id,
      order,
    };
    let value: unknown;
    try {
      const method = (this.actor as unknown as Record<string, unknown>)[
        entry.name
      ] as (message: unknown, context: MessageContext) => unknown;
      value = method.call(this.actor, result.value, context);
    } catch (error) {
      this.#fail(entry.name, id, error);
      this.#reply(sender, envelope.q, { error: String(error) });
      return;
    }
    this.#stats.handled++;
    if (envelope.q === undefined) return;
    if (value instanceof Promise) {
      value.then(
        (v) => this.#reply(sender, envelope.q, { value: v }),
        (error) => {
          this.#fail(entry.name, id, error);
          this.#reply(sender, envelope.q, { error: String(error) });
        },
      );
    } else {
      this.#reply(sender, envelope.q, { value });
    }
  }

  #reply(
    to: string,
    query: number | undefined,
    outcome: { value: unknown } | { error: string },
  ): void {
    if (query === undefined) return;
    if (to === this.me) {
      this.#onReply(
        to,
        query,
        "value" in outcome
          ? { ok: true, value: outcome.value }
          : { ok: false, error: outcome.error },
      );
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = encodeEnvelope(
        "value" in outcome
          ? { r: query, v: outcome.value ?? null }
          : { r: query, e: outcome.error },
      );
    } catch (error) {
      bytes = encodeEnvelope({ r: query, e: String(error) });
    }
    this.#engine?.sendDirect(to, bytes);
  }

  #onReply(
    from: string,
    id: number,
    outcome: { ok: true; value: unknown } | { ok: false; error: string },
  ): void {
    const query = this.#queries.get(id);
    if (
      query === undefined || !query.asked.has(from) ||
      query.replies.some((r) => r.member === from)
    ) {
      this.#stats.strayReplies++;
      return;
    }
    let reply: QueryReply<unknown> = { member: from, ...outcome };
    if (outcome.ok && query.reply !== undefined) {
      const checked = validate(query.reply, outcome.value);
      reply = checked.issues === undefined
        ? { member: from, ok: true, value: checked.value }
        : {
          member: from,
          ok: false,
          error: `invalid reply: ${describeIssues(checked.issues)}`,
        };
    }
    query.replies.push(reply);
    this.#settle(id, query);
  }

  #settle(id: number, query: PendingQuery): void {
    if (query.replies.length < query.wanted) return;
    this.#clock.clearTimer(query.timer);
    this.#queries.delete(id);
    query.resolve(query.replies);
  }

  #onView(view: View, awaitingState: boolean): void {
    // Members that left cannot answer: "all" waits for those that stay.
    for (const [id, query] of this.#queries) {
      if (query.count !== "all") continue;
      for (const member of query.asked) {
        if (
          !view.members.includes(member) &&
          !query.replies.some((r) => r.member === member)
        ) {
          query.asked.delete(member);
          query.wanted--;
        }
      }
      this.#settle(id, query);
    }
    if (awaitingState) this.#viewAfterRestore = view;
    else this.#tellView(view);
  }

  #tellView(view: View): void {
    this.#appView = view;
    for (const name of this.#table.views) {
      try {
        (this.actor as unknown as Record<string, (view: View) => unknown>)[
          name
        ](view);
      } catch (error) {
        this.#fail(name, `view/${view.viewId}`, error);
      }
    }
  }

  #fail(handler: string, messageId: string, error: unknown): void {
    this.#stats.handlerFailures++;
    const policy = this.#options.failurePolicy ?? "leave";
    const failure: HandlerFailure = {
      group: this.group,
      handler,
      messageId,
      error,
      policy,
    };
    this.#options.logger?.log("error", "actor.handler_failed", {
      group: this.group,
      handler,
      messageId,
      error: String(error),
      policy,
    });
    this.#options.onFailure?.(failure);
    if (policy === "leave") {
      // Its state can no longer be trusted: out of the group at once.
      void this.leave();
    }
  }

  #left(why: string): void {
    if (this.#out !== undefined) return;
    this.#out = why;
    for (const [id, query] of this.#queries) {
      this.#clock.clearTimer(query.timer);
      this.#queries.delete(id);
      query.reject(new NotMemberError(this.group, why));
    }
    for (const wake of this.#writableWaiters.splice(0)) wake();
    this.#options.onLeft?.(why);
  }
}
