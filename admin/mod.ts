/**
 * Cohort's admin endpoint: a small HTTP API (Hono, served with
 * `Deno.serve`) that shows a node's groups and views, the Oracle's leader,
 * locks, channels and views, Prometheus metrics, and a live dashboard;
 * and that can make a member leave or ask the Oracle to exclude one.
 *
 * It is a separate entry point (`@cohort/cohort/admin`) so that Hono is
 * loaded only by programs that serve it.
 *
 * Security: it listens on 127.0.0.1 unless told otherwise; every route
 * but `GET /v1/health` (and the dashboard's data-free page) needs
 * `Authorization: Bearer <token>`, compared in constant time, unless
 * auth is turned off explicitly (allowed on a loopback address only).
 * Parameters are validated; errors are JSON
 * `{ "error": { "code", "message" } }`; requests in flight, event streams
 * and bodies are capped.
 *
 * @example Watch a node
 * ```ts ignore
 * import { Node } from "@cohort/cohort";
 * import { serveAdmin } from "@cohort/cohort/admin";
 *
 * const node = await Node.start();
 * const admin = await serveAdmin({ node, port: 8080, token: Deno.env.get("COHORT_ADMIN_TOKEN") });
 * console.log(`dashboard: ${admin.url}#token=...`);
 * ```
 *
 * @module
 */

import type { Node } from "../actors/node.ts";
import { OracleClient } from "../oracle/client.ts";
import type { OracleServer } from "../oracle/server.ts";
import { MIN_TOKEN_LENGTH, TokenCheck } from "./_auth.ts";
import { adminApp } from "./_app.ts";
import type { AdminCounters } from "./_metrics.ts";
import { type AdminSource, nodeSource, replicaSource } from "./_source.ts";

export type {
  AdminGroup,
  AdminNode,
  AdminOracle,
  GroupRole,
} from "./_source.ts";
export type { AdminSnapshot } from "./_app.ts";
export type { AdminCounters } from "./_metrics.ts";
export { MIN_TOKEN_LENGTH };

/** An Oracle replica to serve the admin endpoint of. */
export interface AdminReplica {
  /** The running replica. */
  readonly server: OracleServer;
  /** Every replica of its group: id to `"host:port"`. */
  readonly replicas: Readonly<Record<string, string>>;
  /** The cluster secret (for the session that excludes members). */
  readonly secret?: string | Uint8Array | undefined;
}

/** Options of {@linkcode serveAdmin}. Give `node` or `replica`. */
export interface AdminOptions {
  /** A node to show (its members, its Oracle session, its replicas). */
  readonly node?: Node | undefined;
  /** An Oracle replica to show. */
  readonly replica?: AdminReplica | undefined;
  /** The address to listen on. Default `"127.0.0.1"`. */
  readonly host?: string | undefined;
  /** The port. Default 0: a free one (see {@linkcode AdminServer.port}). */
  readonly port?: number | undefined;
  /** The bearer token (at least 16 characters). Required unless `auth` is `false`. */
  readonly token?: string | undefined;
  /** `false` turns auth off (only on a loopback host, and with no token). Default `true`. */
  readonly auth?: boolean | undefined;
  /** Most requests in flight; more get 503. Default 64. */
  readonly maxInflight?: number | undefined;
  /** Most event streams (`/v1/events`) open at once; more get 503. Default 8. */
  readonly maxStreams?: number | undefined;
  /** How often an event stream sends a snapshot, ms. Default 1,000. */
  readonly snapshotMs?: number | undefined;
}

/** A running admin endpoint. */
export interface AdminServer {
  /** Its base URL, `http://host:port/`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** Requests answered (by status) and refused (by reason). */
  readonly counters: AdminCounters;
  /** Stops listening, ends event streams and releases the source. */
  close(): Promise<void>;
}

/**
 * Serves the admin endpoint of a node or replica (see the module
 * documentation).
 *
 * @throws {TypeError} if neither or both of `node` and `replica` are
 * given, the token is missing or short, or auth is off on a host that is
 * not loopback.
 */
export async function serveAdmin(options: AdminOptions): Promise<AdminServer> {
  const host = options.host ?? "127.0.0.1";
  const auth = checkAuth(options, host);
  const source = sourceOf(options);
  const stop = new AbortController();
  const { app, counters } = adminApp(source, {
    auth,
    maxInflight: positive("maxInflight", options.maxInflight ?? 64),
    maxStreams: positive("maxStreams", options.maxStreams ?? 8),
    snapshotMs: positive("snapshotMs", options.snapshotMs ?? 1_000),
    signal: stop.signal,
  });
  const listening = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: host,
    port: options.port ?? 0,
    signal: stop.signal,
    onListen: () => listening.resolve(),
  }, app.fetch);
  await listening.promise;
  const port = server.addr.port;
  const shown = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shown}:${port}/`,
    port,
    counters,
    close() {
      closing ??= (async () => {
        stop.abort();
        await server.finished;
        await source.close();
      })();
      return closing;
    },
  };
}

function checkAuth(options: AdminOptions, host: string): TokenCheck | null {
  if (options.auth === false) {
    if (options.token !== undefined) {
      throw new TypeError("Give either a token or auth: false, not both");
    }
    if (!["127.0.0.1", "::1", "localhost"].includes(host)) {
      throw new TypeError(
        `Refusing to serve the admin endpoint without auth on ${host}: only on a loopback address`,
      );
    }
    return null;
  }
  if (options.token === undefined) {
    throw new TypeError(
      "Missing admin token: give token (at least 16 characters), or auth: false to turn auth off",
    );
  }
  return new TokenCheck(options.token);
}

function sourceOf(options: AdminOptions): AdminSource {
  if ((options.node === undefined) === (options.replica === undefined)) {
    throw new TypeError("Give serveAdmin either node or replica");
  }
  if (options.node !== undefined) return nodeSource(options.node);
  const { server, replicas, secret } = options.replica!;
  return replicaSource(server, {
    replicas,
    connect: () => OracleClient.connect({ replicas: { ...replicas }, secret }),
  });
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Invalid ${name} ${value}: use a positive integer`);
  }
  return value;
}
