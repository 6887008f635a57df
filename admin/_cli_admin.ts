/**
 * The admin-endpoint flags the long-running commands (`cohort node`,
 * `cohort oracle`) share, and starting the endpoint from them. The admin
 * module (and Hono) is loaded only when `--admin` is given.
 *
 * @module
 */

import type { Node } from "../actors/node.ts";
import type { OracleServer } from "../oracle/server.ts";
import type { Logger } from "../runtime/log.ts";
import { checkAddress, readTokenFile } from "../_cli_args.ts";

/** The flags, for `parseArgs`'s `options`. */
export const ADMIN_FLAGS = {
  admin: { type: "string" },
  "admin-token-file": { type: "string" },
  "admin-no-auth": { type: "boolean", default: false },
} as const;

/** The flags' lines of a command's usage. */
export const ADMIN_USAGE: string =
  `  --admin HOST:PORT     serve the admin endpoint (dashboard, /metrics, the
                        API "cohort status" reads) there, e.g. 127.0.0.1:9090
  --admin-token-file FILE
                        file holding its bearer token (16+ characters; a
                        trailing newline is ignored)
  --admin-no-auth       serve it with no token (loopback addresses only)`;

/** The admin endpoint a command serves. */
export interface AdminCliConfig {
  /** Where it listens. */
  host: string;
  /** Its port. */
  port: number;
  /** The token's file; `undefined` with auth off. */
  tokenFile: string | undefined;
}

/**
 * Checks the admin flags.
 *
 * @example
 * ```ts
 * import { parseAdminFlags } from "./_cli_admin.ts";
 * import assert from "node:assert/strict";
 *
 * const admin = parseAdminFlags({ admin: "127.0.0.1:9090", "admin-token-file": "/run/token" });
 * assert.equal(admin?.port, 9090);
 * assert.throws(() => parseAdminFlags({ admin: "127.0.0.1:9090" }), /--admin-token-file/);
 * ```
 *
 * @param values The parsed flags.
 * @returns The endpoint's configuration, or `undefined` without `--admin`.
 * @throws {TypeError} naming the flag, for a bad address or a missing,
 * extra or conflicting token flag.
 */
export function parseAdminFlags(values: {
  admin?: string | undefined;
  "admin-token-file"?: string | undefined;
  "admin-no-auth"?: boolean | undefined;
}): AdminCliConfig | undefined {
  const tokenFile = values["admin-token-file"];
  const noAuth = values["admin-no-auth"] === true;
  if (values.admin === undefined) {
    if (tokenFile !== undefined || noAuth) {
      throw new TypeError(
        `Invalid ${
          tokenFile !== undefined ? "--admin-token-file" : "--admin-no-auth"
        } without --admin HOST:PORT`,
      );
    }
    return undefined;
  }
  checkAddress("--admin", values.admin, 0);
  const colon = values.admin.lastIndexOf(":");
  const host = values.admin.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  if (noAuth && tokenFile !== undefined) {
    throw new TypeError(
      "Invalid --admin-no-auth with --admin-token-file: give one of them",
    );
  }
  if (!noAuth && (tokenFile === undefined || tokenFile === "")) {
    throw new TypeError(
      "Missing --admin-token-file: the file holding the admin token (or --admin-no-auth on a loopback address)",
    );
  }
  return { host, port: Number(values.admin.slice(colon + 1)), tokenFile };
}

/** What the endpoint shows: a node, or an Oracle replica and its group. */
export type AdminTarget =
  | { readonly node: Node }
  | {
    readonly replica: OracleServer;
    readonly replicas: Readonly<Record<string, string>>;
    readonly secret: Uint8Array | undefined;
  };

/**
 * Starts the endpoint and logs `admin.listening` with its URL.
 *
 * @returns A function that stops it.
 * @throws {TypeError} if the token file cannot be read or the token is too short.
 */
export async function startAdmin(
  config: AdminCliConfig,
  target: AdminTarget,
  logger: Logger,
): Promise<() => Promise<void>> {
  const token = config.tokenFile === undefined
    ? undefined
    : await readTokenFile("--admin-token-file", config.tokenFile);
  const { serveAdmin } = await import("./mod.ts");
  const admin = await serveAdmin({
    ...("node" in target ? { node: target.node } : {
      replica: {
        server: target.replica,
        replicas: target.replicas,
        secret: target.secret,
      },
    }),
    host: config.host,
    port: config.port,
    token,
    auth: config.tokenFile !== undefined,
  });
  logger.log("info", "admin.listening", {
    url: admin.url,
    auth: token !== undefined,
  });
  return () => admin.close();
}
