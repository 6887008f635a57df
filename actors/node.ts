/**
 * The runtime a process hosts actors in: it finds (or runs) an Oracle and
 * joins groups with actors.
 *
 * Where the Oracle comes from:
 * - `oracle`: the replicas of a running Oracle, by address;
 * - `replica`: this process runs one replica of an Oracle whose replicas
 *   are all given (three nodes started so form a cluster with no separate
 *   Oracle processes);
 * - neither: a whole Oracle of one replica starts in this process (one
 *   process works out of the box; its groups live as long as it does).
 *
 * Every group a node joins under one label shares one member transport
 * and one Oracle session (an endpoint, on a free port of `host` unless
 * given: the port is part of the member's name). A node's member of a
 * group is named `label@host:port`; to put several members in one group
 * from one node, join under several labels.
 *
 * @example One process, an in-process Oracle, one replicated actor
 * ```ts ignore
 * import { z } from "zod";
 * import { Actor, handler, Node } from "@cohort/cohort";
 *
 * const Put = z.object({ key: z.string(), value: z.string() });
 * class Kv extends Actor<Record<string, string>> {
 *   data: Record<string, string> = {};
 *   @handler(Put, { order: "abcast" })
 *   put(m: z.infer<typeof Put>) {
 *     this.data[m.key] = m.value;
 *   }
 * }
 * const node = await Node.start();
 * const kv = await node.join("/apps/kv", new Kv());
 * await kv.send(Put, { key: "a", value: "1" });
 * await node.close();
 * ```
 *
 * @module
 */

import {
  type OracleGroup,
  OracleServer,
  startOracleGroup,
} from "../oracle/server.ts";
import { OracleClient } from "../oracle/client.ts";
import { OnFirstUse } from "../runtime/_on_first_use.ts";
import type { OracleReplicaStatus } from "../oracle/replica.ts";
import { type Logger, silentLogger } from "../runtime/log.ts";
import type { Actor } from "./actor.ts";
import {
  type FailurePolicy,
  GroupHandle,
  type HandlerFailure,
} from "./group_handle.ts";
import { GroupEndpoint } from "../groups/endpoint.ts";

/** This process as one replica of an Oracle. */
export interface NodeReplicaOptions {
  /** This replica's id, a key of `replicas`. */
  readonly id: string;
  /** Every replica: id to `"host:port"` (this one listens on its own). */
  readonly replicas: Readonly<Record<string, string>>;
  /** Where this replica keeps its log and snapshots. */
  readonly dataDir: string;
}

/** Options of {@linkcode Node.start}. */
export interface NodeOptions {
  /** A running Oracle's replicas: id to `"host:port"`, or a list of `"host:port"`. */
  readonly oracle?:
    | Readonly<Record<string, string>>
    | readonly string[]
    | undefined;
  /** Run one replica of the Oracle in this process. */
  readonly replica?: NodeReplicaOptions | undefined;
  /** The address members listen on. Default `"127.0.0.1"`. */
  readonly host?: string | undefined;
  /** The cluster secret (Oracle and members). */
  readonly secret?: string | Uint8Array | undefined;
  /** The transport between members. Default `"tcp"`. */
  readonly transport?: "tcp" | "udp" | undefined;
  /** The Oracle sessions' TTL, ms. Default 10,000. */
  readonly sessionTtlMs?: number | undefined;
  /** Where events are reported. Default: silent. */
  readonly logger?: Logger | undefined;
}

/** Options of {@linkcode Node.join}. */
export interface JoinOptions {
  /**
   * The endpoint to join on: its label (the member's name is
   * `label@host:port`). Groups joined under one label share its transport
   * and Oracle session. Default: the node's own label, made at start.
   */
  readonly label?: string | undefined;
  /** The port a new label's endpoint listens on. Default: a free one. */
  readonly port?: number | undefined;
  /** What a handler failure does. Default `"leave"`: the member leaves the group. */
  readonly failurePolicy?: FailurePolicy | undefined;
  /** Told of every handler failure. */
  readonly onFailure?: ((failure: HandlerFailure) => void) | undefined;
  /** Told of every message from the network dropped as invalid. */
  readonly onInvalid?: ((from: string, why: string) => void) | undefined;
  /** Told once when the member is out of the group, and why. */
  readonly onLeft?: ((why: string) => void) | undefined;
}

/** A free TCP port on `host` (for a member's fixed listen port). */
function freePort(host: string): number {
  const listener = Deno.listen({ hostname: host, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Hosts actors in groups (see the module documentation). */
export class Node {
  /** The Oracle's replicas this node uses: id to `"host:port"`. */
  readonly oracle: Readonly<Record<string, string>>;
  readonly #options: NodeOptions;
  readonly #ownOracle: OracleGroup | OracleServer | undefined;
  readonly #handles = new Set<GroupHandle<Actor<unknown>>>();
  /** Endpoints by label (being started, or running). */
  readonly #endpoints = new Map<string, Promise<GroupEndpoint>>();
  /** The node's id: its default label (members joined without a label are `id@host:port`). */
  readonly id: string = `n${crypto.randomUUID().slice(0, 8)}`;
  /** When the node started, ms since the epoch. */
  readonly startedAt: number = Date.now();
  /** The node's own Oracle session for inspection and admin actions, opened on first use. */
  readonly #adminClient = new OnFirstUse(() =>
    OracleClient.connect({
      replicas: this.oracle,
      secret: this.#options.secret,
      sessionTtlMs: this.#options.sessionTtlMs,
      logger: this.#options.logger,
    })
  );
  #closing: Promise<void> | undefined;

  private constructor(
    options: NodeOptions,
    oracle: Record<string, string>,
    ownOracle: OracleGroup | OracleServer | undefined,
  ) {
    this.#options = options;
    this.oracle = oracle;
    this.#ownOracle = ownOracle;
  }

  /**
   * Starts a node: connects to `options.oracle`, or runs `options.replica`,
   * or else a whole one-replica Oracle in this process.
   *
   * @throws {TypeError} if both `oracle` and `replica` are given, or an
   * address is malformed.
   */
  static async start(options: NodeOptions = {}): Promise<Node> {
    if (options.oracle !== undefined && options.replica !== undefined) {
      throw new TypeError(
        "Give Node.start either oracle (a running Oracle) or replica (run one here), not both",
      );
    }
    if (options.replica !== undefined) {
      const { id, replicas, dataDir } = options.replica;
      const listen = replicas[id];
      if (listen === undefined) {
        throw new TypeError(
          `Invalid replica: its id ${
            JSON.stringify(id)
          } is not a key of replicas`,
        );
      }
      const server = await OracleServer.start({
        id,
        peers: { ...replicas },
        dataDir,
        secret: options.secret,
        logger: options.logger ?? silentLogger,
      });
      return new Node(options, { ...replicas }, server);
    }
    if (options.oracle !== undefined) {
      const oracle = Array.isArray(options.oracle)
        ? Object.fromEntries(
          (options.oracle as readonly string[]).map((a, i) => [`${i + 1}`, a]),
        )
        : { ...options.oracle as Record<string, string> };
      if (Object.keys(oracle).length === 0) {
        throw new TypeError("Invalid oracle: name at least one replica");
      }
      return new Node(options, oracle, undefined);
    }
    const group = await startOracleGroup({
      size: 1,
      secret: options.secret,
      logger: options.logger,
    });
    return new Node(options, group.replicas, group);
  }

  /**
   * Joins the group at `path` with `actor`: the member handles the
   * group's messages with the actor's handlers.
   *
   * @returns The typed handle.
   * @throws {OracleError} if the Oracle refuses the join.
   */
  async join<A extends Actor<unknown>>(
    path: string,
    actor: A,
    options: JoinOptions = {},
  ): Promise<GroupHandle<A>> {
    if (this.#closing !== undefined) {
      throw new TypeError("This node is closed");
    }
    const endpoint = await this.#endpoint(
      options.label ?? this.id,
      options.port,
    );
    const handle = await GroupHandle.joinOn(endpoint, {
      group: path,
      actor,
      logger: this.#options.logger,
      failurePolicy: options.failurePolicy,
      onFailure: options.onFailure,
      onInvalid: options.onInvalid,
      onLeft: (why) => {
        this.#handles.delete(handle as GroupHandle<Actor<unknown>>);
        options.onLeft?.(why);
      },
    });
    this.#handles.add(handle as GroupHandle<Actor<unknown>>);
    return handle;
  }

  /** The groups this node is a member of now, one handle per membership. */
  groups(): readonly GroupHandle<Actor<unknown>>[] {
    return [...this.#handles];
  }

  /** Where this node's members listen: label to `"host:port"` (endpoints started so far). */
  async addresses(): Promise<Record<string, string>> {
    const started = await Promise.allSettled(this.#endpoints.values());
    const addresses: Record<string, string> = {};
    for (const result of started) {
      if (result.status !== "fulfilled") continue;
      const name = result.value.name;
      const at = name.indexOf("@");
      addresses[name.slice(0, at)] = name.slice(at + 1);
    }
    return addresses;
  }

  /** The status of every Oracle replica this node runs (none when it uses a running Oracle). */
  replicaStatus(): OracleReplicaStatus[] {
    const own = this.#ownOracle;
    if (own === undefined) return [];
    if (own instanceof OracleServer) return [own.status()];
    return [...own.servers.values()].map((server) => server.status());
  }

  /**
   * An Oracle session of this node's own, for reading the Oracle (locks,
   * channels, views) and for admin actions; opened on first use, closed
   * with the node.
   *
   * @throws {TypeError} if the node is closed.
   */
  oracleClient(): Promise<OracleClient> {
    if (this.#closing !== undefined) {
      return Promise.reject(new TypeError("This node is closed"));
    }
    return this.#adminClient.get();
  }

  /**
   * Leaves every group cleanly, closes the endpoints, then stops the
   * Oracle this node runs, if any. Idempotent. (Nodes that each run a
   * replica: a leave needs a majority of them up, so close them together,
   * not one after another.)
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#handles].map((h) => h.leave()));
      this.#handles.clear();
      const endpoints = await Promise.allSettled(this.#endpoints.values());
      for (const e of endpoints) {
        if (e.status === "fulfilled") await e.value.close();
      }
      await (await this.#adminClient.started())?.close();
      await this.#ownOracle?.stop();
    })();
    return this.#closing;
  }

  /** The endpoint of `label`, started on first use. */
  #endpoint(label: string, port: number | undefined): Promise<GroupEndpoint> {
    let endpoint = this.#endpoints.get(label);
    if (endpoint === undefined) {
      const host = this.#options.host ?? "127.0.0.1";
      endpoint = GroupEndpoint.start({
        label,
        listen: `${host}:${port ?? freePort(host)}`,
        oracle: { ...this.oracle },
        secret: this.#options.secret,
        transport: this.#options.transport,
        sessionTtlMs: this.#options.sessionTtlMs,
        logger: this.#options.logger,
      });
      this.#endpoints.set(label, endpoint);
      // A failed start is forgotten: the next join tries again.
      endpoint.catch(() => this.#endpoints.delete(label));
    }
    return endpoint;
  }
}
