/**
 * The real driver of an Oracle replica: TCP, files, the system clock and
 * crypto randomness around an {@linkcode OracleReplica}; and
 * {@linkcode startOracleGroup}, which runs a whole group in one process
 * (tests, examples, the single-machine default).
 *
 * @module
 */

import { SystemClock } from "../runtime/clock.ts";
import { FileStorage } from "../runtime/file_storage.ts";
import { type Logger, silentLogger } from "../runtime/log.ts";
import { CryptoRandom } from "../runtime/random.ts";
import { TcpTransport } from "../transport/tcp_transport.ts";
import { OracleClient } from "./client.ts";
import type { OpResult, ReadOp } from "./commands.ts";
import { newClientId } from "./_client_id.ts";
import {
  OracleReplica,
  type OracleReplicaOptions,
  type OracleReplicaStatus,
  type OracleTreeLink,
} from "./replica.ts";
import { oracleTreeLink } from "./tree_link.ts";

/** Replica tuning an {@linkcode OracleServer} passes through. */
export type OracleTuning = Omit<
  OracleReplicaOptions,
  | "id"
  | "replicas"
  | "transport"
  | "storage"
  | "clock"
  | "random"
  | "logger"
  | "tree"
>;

/**
 * Where a child group of an Oracle tree finds its parent and the root.
 * Its replicas own only the prefixes the parent delegates to `name`; its
 * leader adopts them and ends the sessions the root no longer has.
 */
export interface OracleTreeOptions {
  /** This group's name: the one the parent's `delegate` names. */
  name: string;
  /** The parent group's replicas: id to `"host:port"`. */
  parent: Record<string, string>;
  /** The root group's replicas (the home of every session); default: the parent is the root. */
  root?: Record<string, string> | undefined;
  /** Milliseconds between two syncs of the leader with upstream. Default 200. */
  syncMs?: number | undefined;
}

/** Options of {@linkcode OracleServer.start}. */
export interface OracleServerOptions {
  /** This replica's id (a key of `peers`). */
  id: string;
  /** Where to listen, `"host:port"`; port `0` picks a free one. Default: this id's address in `peers`. */
  listen?: string | undefined;
  /**
   * Every replica by id, this one included: `{ "1": "127.0.0.1:7101", ... }`.
   * `null` for a replica whose address is not known yet (tell the server
   * later with {@linkcode OracleServer.setPeerAddress}).
   */
  peers: Record<string, string | null>;
  /** Directory of this replica's log and snapshots (created if missing). */
  dataDir: string;
  /** Cluster secret replicas and clients prove they hold. */
  secret?: string | Uint8Array | undefined;
  /** Where events are reported. Default: `silentLogger`. */
  logger?: Logger | undefined;
  /** Consensus and state-machine tuning. */
  tuning?: OracleTuning | undefined;
  /** Makes this replica part of a child group of an Oracle tree. Default: a root (owns every path). */
  tree?: OracleTreeOptions | undefined;
}

/**
 * One Oracle replica on TCP and files. Its log syncs inline, at the end of
 * the turn that wrote it (`FileStorage`'s `syncMode`): what waits on the
 * sync goes out as soon as `fdatasync` returns.
 *
 * @example One replica (a group of one), a client, and a clean stop
 * ```ts
 * import { OracleServer } from "@cohort/cohort/oracle";
 *
 * const dataDir = await Deno.makeTempDir();
 * const server = await OracleServer.start({
 *   id: "1",
 *   listen: "127.0.0.1:0",
 *   peers: { "1": "127.0.0.1:0" },
 *   dataDir,
 * });
 * console.log(server.address); // for example "127.0.0.1:40123"
 * await server.stop();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export class OracleServer {
  readonly #replica: OracleReplica;
  readonly #transport: TcpTransport;
  readonly #storage: FileStorage;
  readonly #address: string;
  #stopping: Promise<void> | undefined;

  private constructor(
    replica: OracleReplica,
    transport: TcpTransport,
    storage: FileStorage,
    address: string,
  ) {
    this.#replica = replica;
    this.#transport = transport;
    this.#storage = storage;
    this.#address = address;
  }

  /**
   * Opens the data directory, recovers the log, listens and joins the
   * other replicas.
   *
   * @param options Identity, addresses, data directory.
   * @returns The running server.
   * @throws {TypeError} if `id` is not in `peers` or an address is invalid.
   * @throws {WalCorruptionError} if the log is corrupted before its last record.
   */
  static async start(options: OracleServerOptions): Promise<OracleServer> {
    const peers = { ...options.peers };
    if (!Object.hasOwn(peers, options.id)) {
      throw new TypeError(
        `Cannot start Oracle replica ${
          JSON.stringify(options.id)
        }: not among the peers ${JSON.stringify(Object.keys(peers))}`,
      );
    }
    const listen = parseListen(options.listen ?? peers[options.id] ?? "");
    const others: Record<string, string> = {};
    for (const [id, address] of Object.entries(peers)) {
      if (id !== options.id && address !== null) others[id] = address;
    }
    const logger = options.logger ?? silentLogger;
    // Every replica syncs inline, at the end of the turn that wrote: its
    // sync, on the commit's critical path, then starts and ends without a
    // hop through a worker thread (measured faster than a background sync
    // for the leader too, whose appends to followers go out first).
    const storage = FileStorage.open(options.dataDir, { syncMode: "inline" });
    let transport: TcpTransport | undefined;
    try {
      transport = await TcpTransport.start({
        id: options.id,
        listen,
        peers: others,
        secret: options.secret,
        acceptUnknownPeers: true,
        logger,
      });
      const tree = options.tree;
      const replica = OracleReplica.open({
        ...options.tuning,
        stateMachine: {
          ...options.tuning?.stateMachine,
          treeRoot: tree === undefined,
        },
        tree: tree === undefined
          ? undefined
          : tcpTreeLink(tree, options.id, options.secret, logger),
        id: options.id,
        replicas: Object.keys(peers),
        transport,
        storage,
        clock: new SystemClock(),
        random: new CryptoRandom(),
        logger,
      });
      const bound = transport.listenAddress;
      const address = bound === undefined
        ? `${listen.hostname}:${listen.port}`
        : `${bound.hostname}:${bound.port}`;
      return new OracleServer(replica, transport, storage, address);
    } catch (error) {
      await transport?.close();
      await storage.close();
      throw error;
    }
  }

  /** The address this replica listens on, `"host:port"`. */
  get address(): string {
    return this.#address;
  }

  /** The replica this server runs. */
  get replica(): OracleReplica {
    return this.#replica;
  }

  /** A JSON view of the replica. */
  status(): OracleReplicaStatus {
    return this.#replica.status();
  }

  /**
   * Answers a read from this replica's applied state, without a
   * read-index round (see {@linkcode OracleReplica.inspect}): for an
   * admin page running in the replica's process. Not linearizable: on a
   * follower, or a leader that lost its leadership, the answer may be
   * stale (missing writes already acknowledged elsewhere). Use
   * {@linkcode OracleClient} for reads that must see every acknowledged
   * write.
   *
   * @example List the locks this replica has applied
   * ```ts
   * import { OracleClient, startOracleGroup } from "@cohort/cohort/oracle";
   * import assert from "node:assert/strict";
   *
   * const group = await startOracleGroup({ size: 1 });
   * const client = await OracleClient.connect({ replicas: group.replicas });
   * await client.lock("/apps/kv/primary");
   * const server = group.servers.get("1")!;
   * const page = server.inspect({ op: "list", kind: "locks", prefix: "/apps" });
   * assert.ok("ok" in page);
   * assert.deepEqual(page.ok, {
   *   items: [{ path: "/apps/kv/primary", holder: client.session, token: 1, waiters: 0 }],
   *   next: null,
   * });
   * await client.close();
   * await group.stop();
   * ```
   *
   * @param op A read: `read`, `get_lock`, `get_view`, `get_tree`,
   *   `ended_sessions` or `list`.
   * @returns `{ ok }` with the read's result, or `{ error }` (`invalid`,
   *   `invalid_path`, `unknown_op`, `compacted`, `moved`, `not_owner`);
   *   never `not_leader`.
   */
  inspect(op: ReadOp): OpResult {
    return this.#replica.inspect(op);
  }

  /**
   * Tells the server where a replica listens (when it was started on port
   * 0 and its address became known later).
   *
   * @param id A replica id.
   * @param address Its `"host:port"`.
   */
  setPeerAddress(id: string, address: string): void {
    if (id !== this.#replica.id) this.#transport.addPeer(id, address);
  }

  /** Stops the replica, waits for pending syncs, closes sockets and files. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#replica.stop();
      await this.#transport.close();
      await this.#storage.close();
    })();
    return this.#stopping;
  }
}

/** Options of {@linkcode startOracleGroup}. */
export interface OracleGroupOptions {
  /** Number of replicas (1, 3 or 5). Default 3. */
  size?: number | undefined;
  /** Parent directory of the replicas' data directories. Default: a new temporary directory, removed by `stop`. */
  dataDir?: string | undefined;
  /** Interface to listen on. Default `"127.0.0.1"`. */
  hostname?: string | undefined;
  /** Cluster secret. */
  secret?: string | Uint8Array | undefined;
  /** Where events are reported. Default: `silentLogger`. */
  logger?: Logger | undefined;
  /** Consensus and state-machine tuning. */
  tuning?: OracleTuning | undefined;
  /** Makes the group a child of an Oracle tree. Default: a root. */
  tree?: OracleTreeOptions | undefined;
}

/** A whole Oracle group running in this process. */
export interface OracleGroup {
  /** Replica id to `"host:port"`: what clients connect with. */
  readonly replicas: Record<string, string>;
  /** The running servers, by replica id. */
  readonly servers: ReadonlyMap<string, OracleServer>;
  /** Where the replicas keep their data. */
  readonly dataDir: string;
  /** Stops every replica (and removes a temporary data directory). */
  stop(): Promise<void>;
}

/**
 * Starts a whole Oracle group in this process on free local ports.
 *
 * @example A three-replica group for a test
 * ```ts
 * import { startOracleGroup } from "@cohort/cohort/oracle";
 *
 * const group = await startOracleGroup({ size: 3 });
 * console.log(Object.values(group.replicas).length); // 3
 * await group.stop();
 * ```
 *
 * @param options Size, data directory, secret, tuning.
 * @returns The running group.
 * @throws {RangeError} if `size` is not 1, 3 or 5.
 */
export async function startOracleGroup(
  options: OracleGroupOptions = {},
): Promise<OracleGroup> {
  const size = options.size ?? 3;
  if (size !== 1 && size !== 3 && size !== 5) {
    throw new RangeError(`Invalid Oracle group size ${size}: use 1, 3 or 5`);
  }
  const temporary = options.dataDir === undefined;
  const dataDir = options.dataDir ??
    await Deno.makeTempDir({ prefix: "cohort-oracle-" });
  const hostname = options.hostname ?? "127.0.0.1";
  const ids = Array.from({ length: size }, (_, i) => String(i + 1));
  // Bind every replica first, then tell each where the others are.
  const servers = new Map<string, OracleServer>();
  try {
    for (const id of ids) {
      const server = await OracleServer.start({
        id,
        listen: `${hostname}:0`,
        peers: Object.fromEntries(ids.map((other) => [other, null])),
        dataDir: `${dataDir}/${id}`,
        secret: options.secret,
        logger: options.logger,
        tuning: options.tuning,
        tree: options.tree,
      });
      servers.set(id, server);
    }
  } catch (error) {
    for (const server of servers.values()) await server.stop();
    if (temporary) await Deno.remove(dataDir, { recursive: true });
    throw error;
  }
  const replicas: Record<string, string> = {};
  for (const [id, server] of servers) replicas[id] = server.address;
  for (const server of servers.values()) {
    for (const [id, address] of Object.entries(replicas)) {
      server.setPeerAddress(id, address);
    }
  }
  let stopped: Promise<void> | undefined;
  return {
    replicas,
    servers,
    dataDir,
    stop() {
      stopped ??= (async () => {
        await Promise.all([...servers.values()].map((s) => s.stop()));
        if (temporary) await Deno.remove(dataDir, { recursive: true });
      })();
      return stopped;
    },
  };
}

/**
 * The tree link of a replica on TCP: each connection dials the parent
 * (and the root) with a new session named after the group and replica.
 */
function tcpTreeLink(
  tree: OracleTreeOptions,
  replicaId: string,
  secret: string | Uint8Array | undefined,
  logger: Logger,
): OracleTreeLink {
  const random = new CryptoRandom();
  const client = (replicas: Record<string, string>) => () =>
    OracleClient.connect({
      replicas,
      secret,
      logger,
      deadlineMs: 5_000,
      id: `tree-${tree.name}-${replicaId}-${newClientId(random).slice(2)}`,
    });
  return oracleTreeLink({
    name: tree.name,
    syncMs: tree.syncMs,
    parent: client(tree.parent),
    root: tree.root === undefined ? undefined : client(tree.root),
  });
}

function parseListen(address: string): { hostname: string; port: number } {
  const colon = typeof address === "string" ? address.lastIndexOf(":") : -1;
  let hostname = colon > 0 ? address.slice(0, colon) : "";
  if (hostname.startsWith("[") && hostname.endsWith("]")) {
    hostname = hostname.slice(1, -1);
  }
  const portText = colon > 0 ? address.slice(colon + 1) : "";
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (hostname === "" || !(port >= 0 && port <= 65535)) {
    throw new TypeError(
      `Invalid listen address ${
        JSON.stringify(address)
      }: use "host:port", for example "127.0.0.1:7101"`,
    );
  }
  return { hostname, port };
}
