/**
 * The `node` command of `cli.ts`: runs a {@linkcode Node} that hosts one
 * example actor (see `_cli_actors.ts`) in a group, until SIGTERM or
 * SIGINT.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-write cli.ts node --actor kv \
 *   --oracle 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103
 * ```
 *
 * Progress is JSON lines on stdout: `joined` once the member is in a
 * view, then `view` for every later view. Logs are JSON lines on stderr.
 * The first signal leaves the group cleanly (exit 0); a second one exits
 * at once (128 + the signal number).
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  parseLogLevel,
  parseNumber,
  parseOwnPeers,
  parseReplicaList,
  readSecret,
} from "../_cli_args.ts";
import { shutDown, StopSignals } from "../_cli_signals.ts";
import { parseCommandArgs } from "../_cli_usage.ts";
import {
  ADMIN_FLAGS,
  ADMIN_USAGE,
  type AdminCliConfig,
  parseAdminFlags,
  startAdmin,
} from "../admin/_cli_admin.ts";
import { isReserved, pathError } from "../oracle/path.ts";
import { JsonLogger, type Logger, type LogLevel } from "../runtime/log.ts";
import type { View } from "./actor.ts";
import { EXAMPLE_ACTORS, type ExampleActor } from "./_cli_actors.ts";
import type { GroupHandle } from "./group_handle.ts";
import { Node, type NodeReplicaOptions } from "./node.ts";

const ACTOR_NAMES = Object.keys(EXAMPLE_ACTORS);

/** The usage text of `cli.ts node --help`. */
export const NODE_USAGE: string =
  `usage: cohort node --actor NAME [--oracle LIST | --replica ID --peers LIST --data DIR] [options]

Runs a node hosting one example actor in a group until SIGTERM or SIGINT.

actors:
${
    Object.entries(EXAMPLE_ACTORS).map(([name, { summary }]) =>
      `  ${name.padEnd(10)}${summary}`
    ).join("\n")
  }

options:
  --actor NAME          the example actor to host: ${ACTOR_NAMES.join(", ")}
  --group PATH          the group to join (default /cohort/NAME)
  --oracle LIST         a running Oracle's replicas: ID=HOST:PORT,... or
                        HOST:PORT,...
  --replica ID          run replica ID of the Oracle in this process, with
  --peers LIST          every replica, this one included: ID=HOST:PORT,...
  --data DIR            and this replica's data directory
                        (with neither --oracle nor --replica, a one-replica
                        Oracle runs in this process)
  --host HOST           the address members listen on (default 127.0.0.1)
  --port PORT           the member's port (default: a free one)
  --transport NAME      tcp or udp, between members (default tcp)
  --secret-file FILE    file holding the cluster secret (a trailing newline
                        is ignored)
  --log-level LEVEL     debug, info, warn or error (default info)
${ADMIN_USAGE}
  -h, --help            print this help

Progress is JSON lines on stdout: {"event":"joined",...} once the member
is in a view, then {"event":"view",...} per view. Logs are JSON lines on
stderr. The first SIGTERM or SIGINT leaves the group cleanly (exit 0); a
second one exits at once.`;

/** A node's configuration, as the command line gives it. */
export interface NodeCliConfig {
  /** The example actor's name (a key of `EXAMPLE_ACTORS`). */
  actor: string;
  /** The group's path. */
  group: string;
  /** A running Oracle's replicas, by id or as a list of addresses. */
  oracle: Record<string, string> | string[] | undefined;
  /** The Oracle replica this process runs. */
  replica: NodeReplicaOptions | undefined;
  /** The address members listen on. */
  host: string;
  /** The member's port; `undefined`: a free one. */
  port: number | undefined;
  /** The transport between members. */
  transport: "tcp" | "udp";
  /** Path of the file holding the cluster secret. */
  secretFile: string | undefined;
  /** Lowest level logged. */
  logLevel: LogLevel;
  /** The admin endpoint to serve, if any. */
  admin: AdminCliConfig | undefined;
}

/** How long leaving the group and stopping may take. */
const STOP_TIMEOUT_MS = 10_000;

/**
 * Parses the arguments of the `node` command.
 *
 * @example A kv member using a running Oracle
 * ```ts
 * import { parseNodeArgs } from "./_cli_node.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseNodeArgs(["--actor", "kv", "--oracle", "127.0.0.1:7101"]);
 * assert.ok(config !== "help");
 * assert.equal(config.group, "/cohort/kv");
 * assert.deepEqual(config.oracle, ["127.0.0.1:7101"]);
 * ```
 *
 * @param args The command's arguments (after `node`).
 * @returns The configuration, or `"help"` if help was asked for.
 * @throws {TypeError} if a flag is unknown, missing or invalid; the message
 * names the flag and the value.
 * @throws {RangeError} if `--port` is out of range.
 */
export function parseNodeArgs(args: string[]): NodeCliConfig | "help" {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      actor: { type: "string" },
      group: { type: "string" },
      oracle: { type: "string" },
      replica: { type: "string" },
      peers: { type: "string" },
      data: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string" },
      transport: { type: "string", default: "tcp" },
      "secret-file": { type: "string" },
      "log-level": { type: "string", default: "info" },
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
  const actor = values.actor;
  if (actor === undefined || actor === "") {
    throw new TypeError(
      `Missing --actor: the example actor to host, one of ${
        ACTOR_NAMES.join(", ")
      }`,
    );
  }
  if (!Object.hasOwn(EXAMPLE_ACTORS, actor)) {
    throw new TypeError(
      `Invalid --actor ${JSON.stringify(actor)}: use ${ACTOR_NAMES.join(", ")}`,
    );
  }
  const group = values.group ?? `/cohort/${actor}`;
  const error = pathError(group);
  if (error !== undefined) throw new TypeError(`Invalid --group: ${error}`);
  if (isReserved(group)) {
    throw new TypeError(
      `Invalid --group ${JSON.stringify(group)}: /_sys is the Oracle's own`,
    );
  }
  const host = values.host;
  if (host === "" || /[\s,]/.test(host)) {
    throw new TypeError(
      `Invalid --host ${
        JSON.stringify(host)
      }: use an address or host name, for example 127.0.0.1`,
    );
  }
  const port = values.port === undefined
    ? undefined
    : parseNumber("--port", values.port, { min: 1, max: 65535, integer: true });
  const transport = values.transport;
  if (transport !== "tcp" && transport !== "udp") {
    throw new TypeError(
      `Invalid --transport ${JSON.stringify(transport)}: use tcp or udp`,
    );
  }
  const secretFile = values["secret-file"];
  if (secretFile === "") {
    throw new TypeError("Invalid --secret-file: the path is empty");
  }
  return {
    actor,
    group,
    ...parseOracleSource(values),
    host,
    port,
    transport,
    secretFile,
    logLevel: parseLogLevel(values["log-level"]),
    admin: parseAdminFlags(values),
  };
}

/** Where the Oracle comes from: `--oracle`, or `--replica --peers --data`, or neither. */
function parseOracleSource(values: {
  oracle?: string | undefined;
  replica?: string | undefined;
  peers?: string | undefined;
  data?: string | undefined;
}): Pick<NodeCliConfig, "oracle" | "replica"> {
  const { oracle, replica: id, peers, data } = values;
  const replicaFlag = id !== undefined
    ? "--replica"
    : peers !== undefined
    ? "--peers"
    : data !== undefined
    ? "--data"
    : undefined;
  if (oracle !== undefined) {
    if (replicaFlag !== undefined) {
      throw new TypeError(
        `Invalid ${replicaFlag} with --oracle: give either --oracle (a running Oracle) or --replica, --peers and --data (a replica in this process)`,
      );
    }
    if (oracle === "") {
      throw new TypeError(
        "Invalid --oracle: the list is empty; give ID=HOST:PORT,... or HOST:PORT,...",
      );
    }
    return { oracle: parseReplicaList(oracle, "--oracle"), replica: undefined };
  }
  if (replicaFlag === undefined) {
    return { oracle: undefined, replica: undefined };
  }
  if (id === undefined || id === "") {
    throw new TypeError(
      `Missing --replica: with ${replicaFlag}, the id of the replica this process runs`,
    );
  }
  const replicas = parseOwnPeers(
    "--replica",
    id,
    peers,
    "with --replica, every replica as ID=HOST:PORT, comma-separated",
  );
  if (data === undefined || data === "") {
    throw new TypeError(
      "Missing --data: with --replica, the replica's data directory",
    );
  }
  return { oracle: undefined, replica: { id, replicas, dataDir: data } };
}

/** A running node and its member. */
interface Hosting {
  readonly node: Node;
  readonly handle: GroupHandle<ExampleActor<unknown>>;
}

/**
 * Runs the `node` command: starts the node, joins the group with the
 * actor, prints `joined` and `view` lines on stdout, and leaves cleanly
 * on the first SIGTERM or SIGINT.
 *
 * @param args The command's arguments (after `node`).
 * @returns The exit code: 0 after a clean stop or `--help`, 1 if the node
 * could not start, left the group on its own or did not stop cleanly, 2
 * on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    name: "node",
    usage: NODE_USAGE,
    parse: parseNodeArgs,
  });
  if ("exitCode" in parsed) return parsed.exitCode;
  const { config } = parsed;
  const logger = new JsonLogger({
    level: config.logLevel,
    base: { actor: config.actor },
  });
  const stop = new StopSignals(logger, "node");
  const starting = host(config, logger, stop).then(
    (hosting) => ({ hosting }),
    (error: Error) => ({ error }),
  );
  const started = await Promise.race([
    starting,
    stop.reason.then((reason) => ({ reason })),
  ]);
  if (!("hosting" in started)) {
    stop.close();
    if ("error" in started) {
      logger.log("error", "node.start_failed", {
        error: started.error.message,
      });
      return 1;
    }
    // Stopped while starting (an Oracle that does not answer, say): give
    // the start up, and close the node should it still come up.
    logger.log("info", "node.stopping", { ...started.reason, starting: true });
    starting.then(async (late) => {
      if ("hosting" in late) await late.hosting.node.close();
    }).catch(() => {});
    return "signal" in started.reason ? 0 : 1;
  }
  const { hosting } = started;
  logger.log("info", "node.started", {
    group: config.group,
    member: hosting.handle.me,
    oracle: hosting.node.oracle,
    transport: config.transport,
  });
  let stopAdmin: (() => Promise<void>) | undefined;
  if (config.admin !== undefined) {
    try {
      stopAdmin = await startAdmin(
        config.admin,
        { node: hosting.node },
        logger,
      );
    } catch (error) {
      logger.log("error", "node.admin_failed", {
        error: (error as Error).message,
      });
      stop.fail(`admin endpoint: ${(error as Error).message}`);
    }
  }
  return await runUntilStopped(hosting, logger, stop, stopAdmin);
}

/** Starts the node and joins the group; stops the node if the join fails. */
async function host(
  config: NodeCliConfig,
  logger: Logger,
  stop: StopSignals,
): Promise<Hosting> {
  const secret = config.secretFile === undefined
    ? undefined
    : await readSecret(config.secretFile);
  const node = await Node.start({
    oracle: config.oracle,
    replica: config.replica,
    host: config.host,
    secret,
    transport: config.transport,
    logger,
  });
  try {
    logger.log("info", "node.joining", {
      group: config.group,
      oracle: node.oracle,
    });
    const actor = EXAMPLE_ACTORS[config.actor].create();
    let joined = false;
    actor.viewChanged = (view: View) => {
      printProgress(joined ? "view" : "joined", config.group, view);
      joined = true;
    };
    const handle = await node.join(config.group, actor, {
      port: config.port,
      onLeft: (why) => {
        if (!stop.stopping) stop.fail(`left the group: ${why}`);
      },
    });
    return { node, handle };
  } catch (error) {
    await node.close().catch(() => {});
    throw error;
  }
}

/** One progress line on stdout. */
function printProgress(event: "joined" | "view", group: string, view: View) {
  console.log(JSON.stringify({
    event,
    group,
    member: view.me,
    view: { viewId: view.viewId, members: view.members },
  }));
}

async function runUntilStopped(
  { node }: Hosting,
  logger: Logger,
  stop: StopSignals,
  stopAdmin: (() => Promise<void>) | undefined,
): Promise<number> {
  return await shutDown(stop, await stop.reason, {
    admin: stopAdmin,
    service: () => node.close(),
    ms: STOP_TIMEOUT_MS,
    logger,
    prefix: "node",
  });
}
