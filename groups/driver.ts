/**
 * The real driver of one group member: a {@linkcode GroupMember} of one
 * group on a {@linkcode GroupEndpoint} (a TCP or UDP transport and an
 * Oracle session, which other groups may share). (UDP loses, duplicates
 * and reorders datagrams: the reliable multicast, the flush and the state
 * transfer resend what is lost.)
 *
 * A member's name is its endpoint's label and address, `label@host:port`:
 * every member learns the others' addresses from the views themselves.
 * Use a new label for every incarnation (a name the Oracle removed never
 * comes back).
 *
 * @module
 */

import type { GroupMember, GroupMemberStatus } from "./member.ts";
import type { GroupView } from "./types.ts";
import {
  type GroupCallbacks,
  GroupEndpoint,
  type GroupEndpointOptions,
} from "./endpoint.ts";

/** Options of {@linkcode GroupDriver.join}: an endpoint of its own, a group, and the callbacks. */
export interface GroupDriverOptions
  extends GroupEndpointOptions, GroupCallbacks {
  /** The group's path. */
  group: string;
}

/** A {@linkcode GroupDriver}'s state: its member's, and whether it is in the primary partition. */
export interface GroupDriverStatus extends GroupMemberStatus {
  /** Whether the Oracle answered lately (see {@linkcode GroupEndpointOptions.primary}). */
  primary: boolean;
}

/** One member of one group, on an endpoint. */
export class GroupDriver {
  /** The member's name in the group: `label@host:port`. */
  readonly name: string;
  readonly #member: GroupMember;
  readonly #endpoint: GroupEndpoint;
  readonly #group: string;
  /** Whether closing this driver closes its endpoint (it started one of its own). */
  readonly #ownsEndpoint: boolean;
  #closing: Promise<void> | undefined;

  private constructor(
    endpoint: GroupEndpoint,
    group: string,
    member: GroupMember,
    ownsEndpoint: boolean,
  ) {
    this.name = endpoint.name;
    this.#endpoint = endpoint;
    this.#group = group;
    this.#member = member;
    this.#ownsEndpoint = ownsEndpoint;
  }

  /**
   * Starts an endpoint of its own (transport and Oracle session), follows
   * the group's views and asks to join.
   *
   * @param options Group, identity, Oracle, callbacks.
   * @returns The driver; the member is in the group once a view names it.
   * @throws {TypeError} if `listen` is not `host:port` with a fixed port.
   * @throws {RangeError} if `primaryTimeoutMs` is at most a quarter of the session TTL.
   * @throws {OracleError} if the Oracle cannot be reached or refuses the join.
   */
  static async join(options: GroupDriverOptions): Promise<GroupDriver> {
    const endpoint = await GroupEndpoint.start(options);
    try {
      return await GroupDriver.on(endpoint, options.group, options, true);
    } catch (error) {
      await endpoint.close();
      throw error;
    }
  }

  /**
   * Joins `group` on a running endpoint (which other groups may share).
   *
   * @param ownsEndpoint Whether closing the driver closes the endpoint.
   * @throws {TypeError} if the endpoint is already in `group`.
   * @throws {OracleError} if the Oracle refuses the join.
   */
  static async on(
    endpoint: GroupEndpoint,
    group: string,
    callbacks: GroupCallbacks,
    ownsEndpoint = false,
  ): Promise<GroupDriver> {
    const member = await endpoint.join(group, callbacks);
    return new GroupDriver(endpoint, group, member, ownsEndpoint);
  }

  /** The installed view, if any. */
  get view(): GroupView | undefined {
    return this.#member.view;
  }

  /** The member's state (see {@linkcode GroupMember.status}), and whether it is in the primary partition. */
  status(): GroupDriverStatus {
    return { ...this.#member.status(), primary: this.#endpoint.primary };
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
   * Leaves the group (best effort); if the endpoint is the driver's own,
   * closes its session and transport too. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#ownsEndpoint
      ? this.#endpoint.close()
      : this.#endpoint.leave(this.#group);
    return this.#closing;
  }
}
