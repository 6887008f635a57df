/**
 * The Oracle groups an Oracle tree client talks to: the root's client and
 * one client per child group, connected (`connectGroup`) the first time a
 * path routes there and opened the first time a call needs it, all under
 * the same session id; and their closing, status and counters.
 *
 * @module
 */

import type { Logger } from "../runtime/log.ts";
import type { Transport } from "../transport/transport.ts";
import type { Delegation } from "./commands.ts";
import {
  OracleClient,
  type OracleClientOptions,
  type OracleClientStats,
  type OracleClientStatus,
  OracleError,
} from "./client.ts";
import { emptyStats } from "./_client_stats.ts";
import type { OracleTreeClientStats } from "./tree_client.ts";

/** The options every inner client gets: the tree's, with its session id. */
export type InnerOptions = Omit<OracleClientOptions, "replicas"> & {
  readonly id: string;
};

/** What the groups need from the tree client. */
export interface TreeGroupsHost {
  /** The inner clients' options (same session id, TTL and timeouts). */
  readonly options: InnerOptions;
  /** The most child groups. */
  readonly maxGroups: number;
  /** The tree's counters. */
  readonly stats: OracleTreeClientStats;
  readonly log: Logger;
  /** Makes the transport of a child group (the tree owns it). */
  connectGroup(delegation: Delegation, session: string): Promise<Transport>;
  /** Resolves once the root session is open; rejects if opening it failed. */
  rootOpen(): Promise<void>;
  /** Whether the tree is closing, closed or expired: no new connection is kept. */
  stopped(): boolean;
  /** An inner client reported the session expired. */
  expired(group: string): void;
}

/** One child group, from its first route to its close. */
interface ChildGroup {
  readonly delegation: Delegation;
  /** Settles once the transport is made and the client built. */
  readonly connected: Promise<OracleClient>;
  client: OracleClient | undefined;
}

/** The root's client and the child groups' clients, by group name. */
export class TreeGroups {
  /** The root group's client. */
  readonly root: OracleClient;
  readonly #host: TreeGroupsHost;
  readonly #children = new Map<string, ChildGroup>();
  /** Every child transport made, closed by {@linkcode TreeGroups.close}. */
  readonly #transports = new Set<Transport>();
  #closingClients: Promise<void> | undefined = undefined;

  /**
   * Builds the root's client over `rootTransport`.
   *
   * @throws {TypeError|RangeError} as the {@linkcode OracleClient}
   * constructor does.
   */
  constructor(
    host: TreeGroupsHost,
    rootTransport: Transport,
    replicas: readonly string[],
  ) {
    this.#host = host;
    this.root = new OracleClient(rootTransport, {
      ...host.options,
      replicas,
    });
    this.root.onSessionExpired(() => host.expired("root"));
  }

  /** Child groups connected or connecting. */
  get size(): number {
    return this.#children.size;
  }

  /**
   * The client of the group a delegation names (the root's when
   * `undefined`), its session not necessarily open: what subscriptions
   * need.
   *
   * @throws {OracleError} `overloaded` if it would be a group past `maxGroups`.
   */
  connected(
    delegation: Delegation | undefined,
    what: string,
  ): OracleClient | Promise<OracleClient> {
    if (delegation === undefined) return this.root;
    const child = this.#child(delegation, what);
    return child.client ?? child.connected;
  }

  /**
   * The client of the group a delegation names (the root's when
   * `undefined`) once its session is open (after the root's): what calls
   * need. The root's client queues calls itself while it opens; a
   * child's session is opened again by the next call if opening failed.
   *
   * @throws {OracleError} `overloaded` if it would be a group past `maxGroups`.
   */
  opened(
    delegation: Delegation | undefined,
    what: string,
  ): OracleClient | Promise<OracleClient> {
    if (delegation === undefined) return this.root;
    const child = this.#child(delegation, what);
    if (child.client?.status().state === "open") return child.client;
    return this.#open(child);
  }

  /** Opens a child's session (once: `open()` returns the same promise meanwhile). */
  async #open(child: ChildGroup): Promise<OracleClient> {
    await this.#host.rootOpen();
    const client = await child.connected;
    await client.open();
    return client;
  }

  #child(delegation: Delegation, what: string): ChildGroup {
    const name = delegation.group;
    const known = this.#children.get(name);
    if (known !== undefined) return known;
    if (this.#host.stopped()) {
      throw new OracleError(
        "closed",
        `Cannot ${what}: the tree client stopped`,
      );
    }
    if (this.#children.size >= this.#host.maxGroups) {
      throw new OracleError(
        "overloaded",
        `Cannot ${what}: it belongs to Oracle group ${
          JSON.stringify(name)
        }, but the client already follows ${this.#host.maxGroups} child groups (maxGroups)`,
      );
    }
    const connected = Promise.withResolvers<OracleClient>();
    const child: ChildGroup = {
      delegation,
      connected: connected.promise,
      client: undefined,
    };
    this.#connect(child).then(connected.resolve, connected.reject);
    child.connected.catch(() => {
      if (this.#children.get(name) === child) this.#children.delete(name);
    });
    this.#children.set(name, child);
    return child;
  }

  async #connect(child: ChildGroup): Promise<OracleClient> {
    const host = this.#host;
    const { group } = child.delegation;
    const what = `connect to Oracle group ${JSON.stringify(group)}`;
    let transport: Transport;
    try {
      transport = await host.connectGroup(child.delegation, host.options.id);
    } catch (cause) {
      throw new OracleError(
        "closed",
        `Cannot ${what}: connectGroup failed: ${String(cause)}`,
        { cause },
      );
    }
    if (host.stopped()) {
      await transport.close();
      throw new OracleError(
        "closed",
        `Cannot ${what}: the tree client stopped meanwhile`,
      );
    }
    this.#transports.add(transport);
    const client = new OracleClient(transport, {
      ...host.options,
      replicas: Object.keys(child.delegation.replicas),
    });
    client.onSessionExpired(() => host.expired(group));
    child.client = client;
    host.stats.groupsConnected++;
    host.log.log("debug", "oracle_tree_group_connected", {
      group,
      prefix: child.delegation.prefix,
    });
    return client;
  }

  /**
   * Closes every inner client, children first (together), the root last:
   * each sends `close_session` if its session is open. Call it once the
   * tree stopped: a child still connecting then closes its transport
   * instead of building a client. Idempotent.
   */
  closeClients(): Promise<void> {
    this.#closingClients ??= this.#closeClients();
    return this.#closingClients;
  }

  async #closeClients(): Promise<void> {
    const clients: OracleClient[] = [];
    for (const child of this.#children.values()) {
      if (child.client !== undefined) clients.push(child.client);
    }
    await Promise.allSettled(clients.map((client) => client.close()));
    await this.root.close();
  }

  /**
   * Closes every inner client, waits for the children still connecting,
   * then closes every child transport.
   */
  async close(): Promise<void> {
    await this.closeClients();
    await Promise.allSettled(
      [...this.#children.values()].map((child) => child.connected),
    );
    const transports = [...this.#transports];
    this.#transports.clear();
    await Promise.allSettled(transports.map((t) => t.close()));
  }

  /** The status of each connected child group's client, by group name. */
  childStatus(): Record<string, OracleClientStatus> {
    const out: Record<string, OracleClientStatus> = {};
    for (const [name, child] of this.#children) {
      if (child.client !== undefined) out[name] = child.client.status();
    }
    return out;
  }

  /** The counters of every inner client, summed. */
  sumStats(): OracleClientStats {
    const sum = emptyStats();
    const keys = Object.keys(sum) as (keyof OracleClientStats)[];
    const clients = [this.root];
    for (const child of this.#children.values()) {
      if (child.client !== undefined) clients.push(child.client);
    }
    for (const client of clients) {
      const stats = client.stats();
      for (const key of keys) sum[key] += stats[key];
    }
    return sum;
  }
}
