/**
 * The real driver of one group member: a {@linkcode GroupMember} over a
 * TCP or UDP transport, with an {@linkcode OracleClient} for its session,
 * its view channel, its flush reports and its suspicions. (UDP loses,
 * duplicates and reorders datagrams: the reliable multicast, the flush
 * and the state transfer resend what is lost.)
 *
 * A member cut off from a majority of the Oracle installs no new view (views
 * come only from the Oracle's log): it says so through
 * {@linkcode GroupDriverOptions.primary}, {@linkcode GroupDriver.status}
 * and a `group.no_primary` log line.
 *
 * A member's name is its label and its address, `label@host:port`: every
 * member learns the others' addresses from the views themselves. Use a
 * new label for every incarnation (a name the Oracle removed never comes
 * back).
 *
 * @module
 */

import { OracleClient, OracleError } from "../oracle/client.ts";
import { viewChannel, type ViewEvent } from "../oracle/commands.ts";
import { type Logger, silentLogger } from "../runtime/log.ts";
import { SystemClock } from "../runtime/clock.ts";
import { TcpTransport } from "../transport/tcp_transport.ts";
import { UdpTransport } from "../transport/udp_transport.ts";
import {
  GroupMember,
  type GroupMemberOptions,
  type GroupMemberStatus,
  type GroupMessage,
} from "./member.ts";
import type { GroupView } from "./types.ts";
import { PrimaryWatch } from "./_primary_watch.ts";

/** Options of {@linkcode GroupDriver.join}. */
export interface GroupDriverOptions {
  /** The group's path. */
  group: string;
  /** This incarnation's label (the member's name is `label@host:port`). */
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
   * How long without an answer from the Oracle means this member is cut
   * off from its majority (outside the primary partition), ms. Default:
   * half the session's TTL.
   */
  primaryTimeoutMs?: number | undefined;
  /**
   * The member left (`false`) or rejoined (`true`) the primary partition:
   * while out, it installs no new view (it may still deliver what members
   * it reaches send in its current view).
   */
  primary?(primary: boolean): void;
  /** Where events are reported. Default: silent. */
  logger?: Logger | undefined;
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
  /** Sends fit again after {@linkcode GroupDriver.multicast} returned `false`. */
  writable?(): void;
}

/** A {@linkcode GroupDriver}'s state: its member's, and whether it is in the primary partition. */
export interface GroupDriverStatus extends GroupMemberStatus {
  /** Whether the Oracle answered lately (see {@linkcode GroupDriverOptions.primary}). */
  primary: boolean;
}

/** One member of one group, on TCP or UDP. */
export class GroupDriver {
  /** The member's name in the group: `label@host:port`. */
  readonly name: string;
  readonly #member: GroupMember;
  readonly #client: OracleClient;
  readonly #transport: TcpTransport | UdpTransport;
  readonly #group: string;
  readonly #watch: PrimaryWatch;
  #closing: Promise<void> | undefined;

  private constructor(
    name: string,
    member: GroupMember,
    client: OracleClient,
    transport: TcpTransport | UdpTransport,
    group: string,
    watch: PrimaryWatch,
  ) {
    this.name = name;
    this.#member = member;
    this.#client = client;
    this.#transport = transport;
    this.#group = group;
    this.#watch = watch;
  }

  /**
   * Starts the transport and the Oracle session, follows the group's
   * views and asks to join.
   *
   * @param options Group, identity, Oracle, callbacks.
   * @returns The driver; the member is in the group once a view names it.
   * @throws {TypeError} if `listen` is not `host:port` with a fixed port.
   * @throws {RangeError} if `primaryTimeoutMs` is at most a quarter of the session TTL.
   * @throws {OracleError} if the Oracle cannot be reached or refuses the join.
   */
  static async join(options: GroupDriverOptions): Promise<GroupDriver> {
    const { hostname, port } = parseAddress(options.listen);
    if (port === 0) {
      throw new TypeError(
        `Invalid listen ${options.listen}: the port is part of the member's name, use a fixed one`,
      );
    }
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
    const group = options.group;
    const quietly = (call: Promise<unknown>, what: string) =>
      call.catch((error) =>
        logger.log(
          error instanceof OracleError ? "debug" : "warn",
          "group.oracle_call_failed",
          { what, error: String(error) },
        )
      );
    const known = new Set<string>();
    const clock = new SystemClock();
    const member = new GroupMember({
      me: name,
      clock,
      send: (to, frame) => {
        if (!known.has(to)) {
          known.add(to);
          transport.addPeer(to, addressOf(to));
        }
        return transport.send(to, frame);
      },
      deliver: (message) => options.deliver(message),
      viewInstalled: (view) =>
        options.viewInstalled?.(view, member.status().awaitingState),
      flushed: (viewId) =>
        quietly(client.flushed(group, viewId, name), "flushed"),
      suspect: (suspect, reason, viewId) =>
        quietly(client.remove(group, suspect, reason, viewId), "remove"),
      orderGbcast: (seq, payload) =>
        quietly(client.gbcast(group, name, seq, payload), "gbcast"),
      excluded: () => options.out?.("excluded"),
      state: options.state,
      direct: options.direct,
      writable: () => options.writable?.(),
      stateLost: () => {
        options.out?.("state transfer cut short");
        quietly(
          client.remove(group, name, "state transfer cut short"),
          "remove self",
        );
      },
    });
    transport.setHandler({
      onFrame: (from, payload) => member.receive(from, payload),
      onPeerDown: (peer) => member.reachable(peer, false),
      onPeerUp: (peer) => member.reachable(peer, true),
    });
    client.subscribe(viewChannel(group), { from: 1 }, (events) => {
      for (const event of events) {
        member.onViewEvent(event.data as unknown as ViewEvent);
      }
    });
    const watch = new PrimaryWatch({
      clock,
      answered: () => client.stats().replies,
      timeoutMs: primaryTimeoutMs,
      changed: (primary) => {
        logger.log(
          primary ? "info" : "warn",
          primary ? "group.primary" : "group.no_primary",
          { group, member: name },
        );
        options.primary?.(primary);
      },
    });
    try {
      await client.join(group, name);
    } catch (error) {
      watch.close();
      member.close();
      await client.close();
      await transport.close();
      throw error;
    }
    return new GroupDriver(name, member, client, transport, group, watch);
  }

  /** The installed view, if any. */
  get view(): GroupView | undefined {
    return this.#member.view;
  }

  /** The member's state (see {@linkcode GroupMember.status}), and whether it is in the primary partition. */
  status(): GroupDriverStatus {
    return { ...this.#member.status(), primary: this.#watch.primary };
  }

  /**
   * Multicasts to the group (see {@linkcode GroupMember.multicast}).
   *
   * @returns `false` if the send queue is full.
   */
  multicast(payload: Uint8Array, strategy = "fbcast"): boolean {
    return this.#member.multicast(payload, strategy);
  }

  /**
   * Sends to one member of the view, point to point (see
   * {@linkcode GroupMember.sendDirect}).
   *
   * @returns `false` if it was not handed to the transport.
   */
  sendDirect(to: string, payload: Uint8Array): boolean {
    return this.#member.sendDirect(to, payload);
  }

  /**
   * Leaves the group (best effort), then closes the session and the
   * transport. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#client.leave(this.#group, this.name).catch(() => {});
      this.#watch.close();
      this.#member.close();
      await this.#client.close();
      await this.#transport.close();
    })();
    return this.#closing;
  }
}

/** The address part of a member name `label@host:port`. */
function addressOf(member: string): string {
  return member.slice(member.lastIndexOf("@") + 1);
}

function parseAddress(address: string): { hostname: string; port: number } {
  const colon = address.lastIndexOf(":");
  const hostname = address.slice(0, colon);
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(
      `Invalid listen address ${JSON.stringify(address)}: use "host:port"`,
    );
  }
  return { hostname, port };
}
