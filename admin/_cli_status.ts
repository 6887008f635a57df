/**
 * The `status` command of `cli.ts`: reads a running node's or replica's
 * admin endpoint and prints its views, the Oracle's leader, this
 * process's members and the locks, as tables or (`--json`) as one JSON
 * object.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read cli.ts status \
 *   --url http://127.0.0.1:8080/ --token-file ./admin-token
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseCommandArgs } from "../_cli_usage.ts";
import { parseNumber, readTokenFile } from "../_cli_args.ts";

/** The usage text of `cli.ts status --help`. */
export const STATUS_USAGE: string =
  `usage: cohort status --url URL [--token-file FILE] [--json]

Reads the admin endpoint of a running node or Oracle replica and prints the
Oracle's leader, the group views, this process's members and the locks.

options:
  --url URL           the admin endpoint, e.g. http://127.0.0.1:8080/
  --token-file FILE   file holding the admin bearer token (a trailing newline
                      is ignored); default: the COHORT_ADMIN_TOKEN variable;
                      none if neither is set (for an endpoint with auth off)
  --json              print one JSON object instead of tables
  --timeout-ms MS     give up on a request after MS (default 5000)
  -h, --help          print this help

Exit codes: 0 printed, 1 the endpoint failed or refused, 2 usage error.`;

/** The `status` command's configuration. */
export interface StatusConfig {
  /** The endpoint's base URL. */
  url: URL;
  /** Where the token is, if a file. */
  tokenFile: string | undefined;
  /** JSON instead of tables. */
  json: boolean;
  /** Per-request timeout. */
  timeoutMs: number;
}

/**
 * Parses the arguments of `status`.
 *
 * @example
 * ```ts
 * import { parseStatusArgs } from "./_cli_status.ts";
 * import assert from "node:assert/strict";
 *
 * const config = parseStatusArgs(["--url", "http://127.0.0.1:8080", "--json"]);
 * assert.ok(config !== "help" && config.json);
 * ```
 *
 * @param args The arguments after `status`.
 * @returns The configuration, or `"help"`.
 * @throws {TypeError} naming the flag, for an unknown flag or a bad value.
 * @throws {RangeError} if `--timeout-ms` is out of range.
 */
export function parseStatusArgs(args: string[]): StatusConfig | "help" {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      "token-file": { type: "string" },
      json: { type: "boolean", default: false },
      "timeout-ms": { type: "string", default: "5000" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return "help";
  if (positionals.length > 0) {
    throw new TypeError(
      `Unexpected argument ${JSON.stringify(positionals[0])}`,
    );
  }
  if (values.url === undefined || values.url === "") {
    throw new TypeError(
      "Missing --url: the admin endpoint, e.g. http://127.0.0.1:8080/",
    );
  }
  let url: URL;
  try {
    url = new URL(values.url);
  } catch {
    throw new TypeError(
      `Invalid --url ${JSON.stringify(values.url)}: not a URL`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(
      `Invalid --url ${JSON.stringify(values.url)}: use http:// or https://`,
    );
  }
  const timeoutMs = parseNumber("--timeout-ms", values["timeout-ms"], {
    min: 1,
    max: 600_000,
    integer: true,
  });
  return { url, tokenFile: values["token-file"], json: values.json, timeoutMs };
}

/** What `status` gathers from the endpoint. */
interface Gathered {
  node: { id: string; kind: string; version: string; uptimeSeconds: number };
  oracle: {
    replicas: Record<string, string>;
    leader: string | null;
    term: number | null;
    commitIndex: number | null;
    local: {
      id: string;
      role: string;
      tree?: {
        name: string | null;
        owns: string[];
        delegations: { prefix: string; group: string }[];
      };
    }[];
  };
  views: {
    group: string;
    viewId: number | null;
    members: { member: string }[];
    proposal: number | null;
  }[];
  groups: {
    path: string;
    member: string;
    role: string;
    view: { id: number } | null;
    sent: number;
    delivered: number;
    unstable: number;
    lastFlushMs: number | null;
  }[];
  locks: { path: string; holder: string; token: number; waiters: number }[];
}

/**
 * Runs `status`.
 *
 * @param args The arguments after `status`.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  const parsed = parseCommandArgs(args, {
    name: "status",
    usage: STATUS_USAGE,
    parse: parseStatusArgs,
  });
  if ("exitCode" in parsed) return parsed.exitCode;
  const { config } = parsed;
  try {
    const token = await readToken(config.tokenFile);
    const gathered = await gather(config, token);
    console.log(
      config.json
        ? JSON.stringify(gathered, null, 2)
        : render(gathered, config.url),
    );
    return 0;
  } catch (error) {
    console.error(
      `cohort status: ${error instanceof Error ? error.message : error}`,
    );
    return 1;
  }
}

async function readToken(
  file: string | undefined,
): Promise<string | undefined> {
  if (file === undefined) {
    return Deno.env.get("COHORT_ADMIN_TOKEN") || undefined;
  }
  return await readTokenFile("--token-file", file);
}

async function gather(
  config: StatusConfig,
  token: string | undefined,
): Promise<Gathered> {
  const get = async (path: string) => {
    const url = new URL(path, config.url);
    let response: Response;
    try {
      response = await fetch(url, {
        headers: token === undefined
          ? {}
          : { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(config.timeoutMs),
      });
    } catch (error) {
      throw new Error(
        `Cannot reach ${url}: ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(
        `${url} answered ${response.status} with no JSON: is it a Cohort admin endpoint?`,
      );
    }
    if (!response.ok) {
      const message = (body as { error?: { message?: string } })?.error
        ?.message;
      throw new Error(
        `${url} answered ${response.status}: ${message ?? text.slice(0, 200)}`,
      );
    }
    return body as Record<string, unknown>;
  };
  const [node, oracle, views, groups, locks] = await Promise.all([
    get("v1/node"),
    get("v1/oracle"),
    get("v1/views?limit=1000"),
    get("v1/groups"),
    get("v1/locks?limit=1000"),
  ]);
  return {
    node: node as Gathered["node"],
    oracle: oracle as Gathered["oracle"],
    views: views.views as Gathered["views"],
    groups: groups.groups as Gathered["groups"],
    locks: locks.locks as Gathered["locks"],
  };
}

/** The human-readable report. */
function render(g: Gathered, url: URL): string {
  const out: string[] = [];
  out.push(
    `${g.node.kind} ${g.node.id} at ${url.origin} (cohort ${g.node.version}, up ${
      Math.round(g.node.uptimeSeconds)
    } s)`,
  );
  const replicas = Object.entries(g.oracle.replicas).map(([id, a]) =>
    `${id}=${a}`
  ).join(" ");
  const detail = g.oracle.term === null
    ? ""
    : `, term ${g.oracle.term}, commit index ${g.oracle.commitIndex}`;
  out.push(
    `Oracle leader: ${
      g.oracle.leader ?? "unknown"
    }${detail}; replicas ${replicas}`,
  );
  for (const replica of g.oracle.local) {
    const tree = replica.tree;
    if (tree === undefined) continue;
    const delegations = tree.delegations.map((d) => `${d.prefix}->${d.group}`)
      .join(" ");
    out.push(
      `Oracle tree: group ${tree.name ?? "root"} owns ${tree.owns.join(" ")}${
        delegations === "" ? "" : `; delegates ${delegations}`
      }`,
    );
    break;
  }
  out.push("", "VIEWS");
  out.push(table(
    ["GROUP", "VIEW", "MEMBERS", "PROPOSAL"],
    g.views.map((v) => [
      v.group,
      v.viewId === null ? "-" : String(v.viewId),
      v.members.map((m) => m.member).join(", ") || "-",
      v.proposal === null ? "-" : String(v.proposal),
    ]),
  ));
  out.push("", "MEMBERS HERE");
  out.push(table(
    [
      "GROUP",
      "MEMBER",
      "ROLE",
      "VIEW",
      "SENT",
      "DELIVERED",
      "UNSTABLE",
      "LAST FLUSH",
    ],
    g.groups.map((m) => [
      m.path,
      m.member,
      m.role,
      m.view === null ? "-" : String(m.view.id),
      String(m.sent),
      String(m.delivered),
      String(m.unstable),
      m.lastFlushMs === null ? "-" : `${m.lastFlushMs.toFixed(1)} ms`,
    ]),
  ));
  out.push("", "LOCKS");
  out.push(table(
    ["PATH", "HOLDER", "TOKEN", "WAITERS"],
    g.locks.map((l) => [l.path, l.holder, String(l.token), String(l.waiters)]),
  ));
  return out.join("\n");
}

/** Left-aligned columns two spaces apart; `(none)` for no rows. */
function table(header: string[], rows: string[][]): string {
  if (rows.length === 0) return "(none)";
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  return [header, ...rows].map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]))
      .join("  ")
  ).join("\n");
}
