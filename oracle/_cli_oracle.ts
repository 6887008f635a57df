/**
 * The `oracle` command of `cli.ts`: runs one Oracle replica in this
 * process until SIGTERM or SIGINT.
 *
 * ```sh
 * deno task oracle --id 1 --listen 127.0.0.1:7101 \
 *   --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 --data /var/lib/cohort/1
 * ```
 *
 * Logs are JSON lines on stderr. The first signal stops the replica
 * cleanly (exit 0); a second one exits at once (128 + the signal number).
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  checkAddress,
  parseLogLevel,
  parseOwnPeers,
  parsePeers,
  readSecret,
} from "../_cli_args.ts";
import { parseCommandArgs } from "../_cli_usage.ts";
import { shutDown, StopSignals } from "../_cli_signals.ts";
import {
  ADMIN_FLAGS,
  ADMIN_USAGE,
  type AdminCliConfig,
  parseAdminFlags,
  startAdmin,
} from "../admin/_cli_admin.ts";
import { JsonLogger, type LogLevel } from "../runtime/log.ts";
import { OracleServer } from "./server.ts";

/** The usage text of `cli.ts oracle --help`. */
export const ORACLE_USAGE: string =
  `usage: cohort oracle --id ID --peers ID=HOST:PORT,... --data DIR [options]

Runs one replica of an Oracle group until SIGTERM or SIGINT.

options:
  --id ID               this replica's id; one of the ids in --peers
  --peers LIST          every replica of the group, this one included:
                        1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103
  --data DIR            directory of this replica's log and snapshots
                        (created if missing)
  --listen HOST:PORT    where to listen (default: this id's address in --peers)
  --secret-file FILE    file holding the cluster secret (a trailing newline
                        is ignored); replicas and clients must share it
  --log-level LEVEL     debug, info, warn or error (default info)
  --no-sync             acknowledge writes before they are synced to disk
                        (faster; a power loss of a majority can lose
                        acknowledged writes)
  --tree-name NAME      run as a child group of an Oracle tree, named NAME:
                        it owns only the prefixes its parent delegates to NAME
  --parent LIST         with --tree-name: the parent group's replicas,
                        ID=HOST:PORT,...
  --root LIST           with --tree-name: the root group's replicas, if the
                        parent is not the root
${ADMIN_USAGE}
  -h, --help            print this help

Logs are JSON lines on stderr. The first SIGTERM or SIGINT stops the
replica cleanly (exit 0); a second one exits at once.`;

/** A replica's configuration, as the command line gives it. */
export interface OracleCliConfig {
  /** This replica's id. */
  id: string;
  /** Where to listen, `"host:port"`. */
  listen: string;
  /** Every replica by id, this one included. */
  peers: Record<string, string>;
  /** The data directory. */
  dataDir: string;
  /** Path of the file holding the cluster secret. */
  secretFile: string | undefined;
  /** Lowest level logged. */
  logLevel: LogLevel;
  /** Whether writes are synced before they are acknowledged. */
  sync: boolean;
  /** For a child group of a tree: its name, its parent's and root's replicas. */
  tree:
    | {
      name: string;
      parent: Record<string, string>;
      root: Record<string, string> | undefined;
    }
    | undefined;
  /** The admin endpoint to serve, if any. */
  admin: AdminCliConfig | undefined;
}

/** How long a clean stop may take before the process gives up on it. */
const STOP_TIMEOUT_MS = 10_000;
/** How often the replica is checked for a fatal (storage) failure. */
const FAILURE_CHECK_MS = 500;

/**
 * Parses the arguments of the `oracle` command.
 *
 * @example A replica of a group of three
 * ```ts
 * import { parseOracleArgs } from "./_cli_oracle.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseOracleArgs([
 *   "--id", "2",
 *   "--peers", "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103",
 *   "--data", "/tmp/oracle-2",
 * ]);
 * assert.ok(config !== "help");
 * assert.equal(config.listen, "127.0.0.1:7102");
 * ```
 *
 * @param args The command's arguments (after `oracle`).
 * @returns The configuration, or `"help"` if help was asked for.
 * @throws {TypeError} if a flag is unknown, missing or invalid; the message
 * names the flag and the value.
 */
export function parseOracleArgs(args: string[]): OracleCliConfig | "help" {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      id: { type: "string" },
      listen: { type: "string" },
      peers: { type: "string" },
      data: { type: "string" },
      "secret-file": { type: "string" },
      "log-level": { type: "string", default: "info" },
      "no-sync": { type: "boolean", default: false },
      "tree-name": { type: "string" },
      parent: { type: "string" },
      root: { type: "string" },
      ...ADMIN_FLAGS,
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  if (positionals.length > 0) {
    throw new TypeError(
      `Unexpected argument ${JSON.stringify(positionals[0])}`,
    );
  }
  const id = values.id;
  if (id === undefined || id === "") {
    throw new TypeError("Missing --id: this replica's id, one of --peers");
  }
  const peers = parseOwnPeers(
    "--id",
    id,
    values.peers,
    "every replica as ID=HOST:PORT, comma-separated",
  );
  const listen = values.listen ?? peers[id];
  checkAddress("--listen", listen, 0);
  const dataDir = values.data;
  if (dataDir === undefined || dataDir === "") {
    throw new TypeError("Missing --data: the replica's data directory");
  }
  const logLevel = parseLogLevel(values["log-level"]);
  const secretFile = values["secret-file"];
  if (secretFile === "") {
    throw new TypeError("Invalid --secret-file: the path is empty");
  }
  return {
    id,
    listen,
    peers,
    dataDir,
    secretFile,
    logLevel,
    sync: !values["no-sync"],
    tree: parseTree(values["tree-name"], values.parent, values.root),
    admin: parseAdminFlags(values),
  };
}

function parseTree(
  name: string | undefined,
  parent: string | undefined,
  root: string | undefined,
): OracleCliConfig["tree"] {
  if (name === undefined) {
    if (parent !== undefined || root !== undefined) {
      throw new TypeError(
        `Invalid ${
          parent !== undefined ? "--parent" : "--root"
        }: only with --tree-name`,
      );
    }
    return undefined;
  }
  if (name === "" || name.length > 128) {
    throw new TypeError(
      `Invalid --tree-name ${JSON.stringify(name)}: use 1 to 128 characters`,
    );
  }
  if (parent === undefined || parent === "") {
    throw new TypeError(
      "Missing --parent: the parent group's replicas as ID=HOST:PORT, comma-separated",
    );
  }
  return {
    name,
    parent: parsePeers(parent, "--parent"),
    root: root === undefined ? undefined : parsePeers(root, "--root"),
  };
}

/**
 * Runs the `oracle` command: starts the replica, logs `oracle.listening`,
 * and stops it cleanly on the first SIGTERM or SIGINT.
 *
 * @param args The command's arguments (after `oracle`).
 * @returns The exit code: 0 after a clean stop or `--help`, 1 if the
 * replica could not start or failed, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    name: "oracle",
    usage: ORACLE_USAGE,
    parse: parseOracleArgs,
  });
  if ("exitCode" in parsed) return parsed.exitCode;
  const { config } = parsed;
  const logger = new JsonLogger({
    level: config.logLevel,
    base: { replica: config.id },
  });
  let server: OracleServer;
  let secret: Uint8Array | undefined;
  try {
    secret = config.secretFile === undefined
      ? undefined
      : await readSecret(config.secretFile);
    server = await OracleServer.start({
      id: config.id,
      listen: config.listen,
      peers: config.peers,
      dataDir: config.dataDir,
      secret,
      logger,
      tuning: { syncBeforeAck: config.sync },
      tree: config.tree,
    });
  } catch (error) {
    logger.log("error", "oracle.start_failed", {
      error: (error as Error).message,
    });
    return 1;
  }
  logger.log("info", "oracle.listening", {
    id: config.id,
    address: server.address,
    peers: config.peers,
    dataDir: config.dataDir,
    sync: config.sync,
    tree: config.tree?.name,
  });
  let stopAdmin: (() => Promise<void>) | undefined;
  if (config.admin !== undefined) {
    try {
      stopAdmin = await startAdmin(config.admin, {
        replica: server,
        replicas: config.peers,
        secret,
      }, logger);
    } catch (error) {
      logger.log("error", "oracle.admin_failed", {
        error: (error as Error).message,
      });
      await server.stop();
      return 1;
    }
  }
  return await runUntilStopped(server, logger, stopAdmin);
}

async function runUntilStopped(
  server: OracleServer,
  logger: JsonLogger,
  stopAdmin: (() => Promise<void>) | undefined,
): Promise<number> {
  const stop = new StopSignals(logger, "oracle");
  const check = setInterval(() => {
    const failure = server.status().failure;
    if (failure !== null) stop.fail(failure);
  }, FAILURE_CHECK_MS);
  const reason = await stop.reason;
  clearInterval(check);
  return await shutDown(stop, reason, {
    admin: stopAdmin,
    service: () => server.stop(),
    ms: STOP_TIMEOUT_MS,
    logger,
    prefix: "oracle",
  });
}
