/**
 * One process's endpoint for group membership: one TCP or UDP transport
 * and one Oracle session shared by every group it joins. A member's name
 * is the endpoint's, `label@host:port`, in every group: the views carry
 * every member's address. Frames between members carry their group's
 * path first (a u16 length, then UTF-8), so one connection serves every
 * group two endpoints share.
 *
 * A member cut off from a majority of the Oracle installs no new view
 * (views come only from the Oracle's log): the endpoint says so through
 * {@linkcode GroupEndpointOptions.primary}, `status().primary` and a
 * `group.no_primary` log line.
 *
 * @module
 */

import { OracleClient, OracleError } from "../oracle/client.ts";
import { viewChannel, type ViewEvent } from "../oracle/commands.ts";
import { type Logger, silentLogger, withFields } from "../runtime/log.ts";
import { SystemClock } from "../runtime/clock.ts";
import { TcpTransport } from "../transport/tcp_transport.ts";
import { UdpTransport } from "../transport/udp_transport.ts";
import { splitHostPort } from "../transport/_options.ts";
import {
  GroupMember,
  type GroupMemberOptions,
  type GroupMessage,
} from "./member.ts";
import type { GroupView } from "./types.ts";
import { PrimaryWatch } from "./_primary_watch.ts";

/** Options of {@linkcode GroupEndpoint.start}. */
export interface GroupEndpointOptions {
  /** This incarnation's label (the members' name is `label@host:port`). Use a new one per incarnation. */
  label: string;
  /** Where to listen: `"host:port"` with a fixed port (it is part of the name). */
  listen: string;
  /** The Oracle's replicas: id to `"host:port"`. */
  oracle: Record<string, string>;
  /** The cluster secret of the Oracle and of the members. */
  secret?: string | Uint8Array | undefined;
  /** The transport between members. Default `"tcp"`. */
  transport?: "tcp" | "udp" | undefined;
  /** The Oracle session's TTL, ms. Default 10,000. */
  sessionTtlMs?: number | undefined;
  /**
   * How long without an answer from the Oracle means this endpoint is cut
   * off from its majority (outside the primary partition), ms. Default:
   * half the session's TTL.
   */
  primaryTimeoutMs?: number | undefined;
  /**
   * The endpoint left (`false`) or rejoined (`true`) the primary
   * partition: while out, its members install no new view (they may still
   * deliver what members they reach send in their current views).
   */
  primary?(primary: boolean): void;
  /** Where events are reported. Default: silent. */
  logger?: Logger | undefined;
}

/** What one group's member tells its application. */
export interface GroupCallbacks {
  /** Delivers a message (see {@linkcode GroupMemberOptions.deliver}). */
  deliver(message: GroupMessage): void;
  /** A view was installed; `awaitingState`: a new member still waits for its state. */
  viewInstalled?(view: GroupView, awaitingState: boolean): void;
  /** The application's state, for state transfer. */
  state?: GroupMemberOptions["state"];
  /** The member was excluded, or its state transfer was cut short: it is out. */
  out?(why: string): void;
  /** A point-to-point message from a member of the view. */
  direct?(from: string, payload: Uint8Array): void;
  /** Sends fit again after a multicast was refused. */
  writable?(): void;
}

/** The most bytes of a group path in a frame's tag. */
const MAX_TAG_BYTES = 0xffff;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** One transport and one Oracle session for every group a process joins. */
export class GroupEndpoint {
  /** The members' name in every group: `label@host:port`. */
  readonly name: string;
  /** The Oracle session every group of the endpoint uses. */
  readonly client: OracleClient;
  readonly #transport: TcpTransport | UdpTransport;
  readonly #logger: Logger;
  readonly #watch: PrimaryWatch;
  readonly #clock = new SystemClock();
  /** Per group joined: its member, and the subscription to its views. */
  readonly #groups = new Map<
    string,
    { member: GroupMember; subscription: { close(): void } }
  >();
  readonly #known = new Set<string>();
  #badFrames = 0;
  /** The tag of the last frame demultiplexed, and its group's member. */
  #lastTag: Uint8Array | undefined;
  #lastMember: GroupMember | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    name: string,
    client: OracleClient,
    transport: TcpTransport | UdpTransport,
    logger: Logger,
    options: GroupEndpointOptions,
    primaryTimeoutMs: number,
  ) {
    this.name = name;
    this.client = client;
    this.#transport = transport;
    this.#logger = logger;
    transport.setHandler({
      onFrame: (from, payload) => this.#onFrame(from, payload),
      onPeerDown: (peer) => this.#reachable(peer, false),
      onPeerUp: (peer) => this.#reachable(peer, true),
    });
    this.#watch = new PrimaryWatch({
      clock: this.#clock,
      answered: () => client.stats().replies,
      timeoutMs: primaryTimeoutMs,
      changed: (primary) => {
        logger.log(
          primary ? "info" : "warn",
          primary ? "group.primary" : "group.no_primary",
          { member: name },
        );
        options.primary?.(primary);
      },
    });
  }

  /**
   * Starts the transport and the Oracle session.
   *
   * @throws {TypeError} if `listen` is not `host:port` with a fixed port.
   * @throws {RangeError} if `primaryTimeoutMs` is at most a quarter of the session TTL.
   * @throws {OracleError} if the Oracle cannot be reached.
   */
  static async start(options: GroupEndpointOptions): Promise<GroupEndpoint> {
    const address = splitHostPort(options.listen);
    if (address === undefined) {
      throw new TypeError(
        `Invalid listen ${
          JSON.stringify(options.listen)
        }: use "host:port" with a fixed port (it is part of the member's name)`,
      );
    }
    const { hostname, port } = address;
    const ttlMs = options.sessionTtlMs ?? 10_000;
    const primaryTimeoutMs = options.primaryTimeoutMs ?? ttlMs / 2;
    if (!(primaryTimeoutMs > ttlMs / 4)) {
      throw new RangeError(
        `Invalid primaryTimeoutMs ${primaryTimeoutMs}: it must exceed the keep-alive period, a quarter of the session TTL (${
          ttlMs / 4
        } ms)`,
      );
    }
    const name = `${options.label}@${options.listen}`;
    const logger = options.logger ?? silentLogger;
    const transport = options.transport === "udp"
      ? await UdpTransport.start({
        id: name,
        bind: { hostname, port },
        secret: options.secret,
        acceptUnknownPeers: true,
        logger,
      })
      : await TcpTransport.start({
        id: name,
        listen: { hostname, port },
        secret: options.secret,
        acceptUnknownPeers: true,
        logger,
      });
    let client: OracleClient;
    try {
      client = await OracleClient.connect({
        replicas: options.oracle,
        secret: options.secret,
        sessionTtlMs: options.sessionTtlMs,
        logger,
      });
    } catch (error) {
      await transport.close();
      throw error;
    }
    return new GroupEndpoint(
      name,
      client,
      transport,
      logger,
      options,
      primaryTimeoutMs,
    );
  }

  /** Whether the Oracle answered lately (see {@linkcode GroupEndpointOptions.primary}). */
  get primary(): boolean {
    return this.#watch.primary;
  }

  /** Frames dropped: no group tag, or a group this endpoint is not in. */
  get badFrames(): number {
    return this.#badFrames;
  }

  /**
   * Joins `group`: follows its views and asks the Oracle to add this
   * endpoint's member.
   *
   * @returns The group's member; it is in the group once a view names it.
   * @throws {TypeError} if this endpoint is already in `group`, or closed.
   * @throws {OracleError} if the Oracle refuses the join.
   */
  async join(group: string, callbacks: GroupCallbacks): Promise<GroupMember> {
    if (this.#closing !== undefined) {
      throw new TypeError(`Endpoint ${this.name} is closed`);
    }
    if (this.#groups.has(group)) {
      throw new TypeError(
        `${this.name} is already a member of ${group}: join it from another endpoint (another label)`,
      );
    }
    const tag = tagOf(group);
    const name = this.name;
    const client = this.client;
    const quietly = (call: Promise<unknown>, what: string) =>
      call.catch((error) =>
        this.#logger.log(
          error instanceof OracleError ? "debug" : "warn",
          "group.oracle_call_failed",
          { group, what, error: String(error) },
        )
      );
    const member: GroupMember = new GroupMember({
      me: name,
      clock: this.#clock,
      logger: withFields(this.#logger, { group }),
      send: (to, frame) => this.#send(to, tag, frame),
      deliver: (message) => callbacks.deliver(message),
      viewInstalled: (view) =>
        callbacks.viewInstalled?.(view, member.awaitingState),
      flushed: (viewId) =>
        quietly(client.flushed(group, viewId, name), "flushed"),
      suspect: (suspect, reason, viewId) =>
        quietly(client.remove(group, suspect, reason, viewId), "remove"),
      orderGbcast: (seq, payload) =>
        quietly(client.gbcast(group, name, seq, payload), "gbcast"),
      excluded: () => callbacks.out?.("excluded"),
      state: callbacks.state,
      direct: callbacks.direct,
      writable: () => callbacks.writable?.(),
      stateLost: () => {
        callbacks.out?.("state transfer cut short");
        quietly(
          client.remove(group, name, "state transfer cut short"),
          "remove self",
        );
      },
    });
    const subscription = client.subscribe(
      viewChannel(group),
      { from: 1 },
      (events) => {
        for (const event of events) {
          member.onViewEvent(event.data as unknown as ViewEvent);
        }
      },
    );
    this.#groups.set(group, { member, subscription });
    try {
      await client.join(group, name);
    } catch (error) {
      this.#forget(group);
      throw error;
    }
    return member;
  }

  /**
   * Leaves `group` (best effort) and stops its member.
   */
  async leave(group: string): Promise<void> {
    if (!this.#groups.has(group)) return;
    await this.client.leave(group, this.name).catch(() => {});
    this.#forget(group);
  }

  /** Leaves every group (best effort), then closes the session and the transport. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#groups.keys()].map((g) => this.leave(g)));
      this.#watch.close();
      await this.client.close();
      await this.#transport.close();
    })();
    return this.#closing;
  }

  #forget(group: string): void {
    const joined = this.#groups.get(group);
    if (joined === undefined) return;
    this.#groups.delete(group);
    this.#lastTag = this.#lastMember = undefined;
    joined.subscription.close();
    joined.member.close();
  }

  #send(to: string, tag: Uint8Array, frame: Uint8Array): boolean {
    if (!this.#known.has(to)) {
      this.#known.add(to);
      this.#transport.addPeer(to, addressOf(to));
    }
    // The tag goes in front without a copy of the frame of its own.
    return this.#transport.send(to, frame, tag);
  }

  #onFrame(from: string, payload: Uint8Array): void {
    if (payload.length < 2) {
      this.#badFrames++;
      return;
    }
    const length = (payload[0] << 8) | payload[1];
    if (payload.length < 2 + length) {
      this.#badFrames++;
      return;
    }
    const tag = payload.subarray(2, 2 + length);
    let member = this.#lastTag !== undefined && sameBytes(this.#lastTag, tag)
      ? this.#lastMember
      : undefined;
    if (member === undefined) {
      let group: string;
      try {
        group = decoder.decode(tag);
      } catch {
        this.#badFrames++;
        return;
      }
      member = this.#groups.get(group)?.member;
      if (member === undefined) {
        this.#badFrames++;
        return;
      }
      // Frames come in runs of one group: the next one is likely the same.
      this.#lastTag = tag.slice();
      this.#lastMember = member;
    }
    member.receive(from, payload.subarray(2 + length));
  }

  #reachable(peer: string, reachable: boolean): void {
    for (const { member } of this.#groups.values()) {
      member.reachable(peer, reachable);
    }
  }
}

/** A group's frame tag: its path's length (u16) and UTF-8 bytes. */
function tagOf(group: string): Uint8Array {
  const bytes = encoder.encode(group);
  if (bytes.length > MAX_TAG_BYTES) {
    throw new RangeError(`Group path too long: ${bytes.length} bytes`);
  }
  const tag = new Uint8Array(2 + bytes.length);
  tag[0] = bytes.length >> 8;
  tag[1] = bytes.length & 0xff;
  tag.set(bytes, 2);
  return tag;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The address part of a member name `label@host:port`. */
function addressOf(member: string): string {
  return member.slice(member.lastIndexOf("@") + 1);
}
