/**
 * The admin endpoint's routes (a Hono app): health, node, groups, Oracle,
 * locks, channels, views, metrics, a live event stream, the dashboard,
 * and two guarded actions.
 *
 * Every route but `/v1/health` and the dashboard's page (a static shell
 * with no data: it asks for the token, and sends it with every request)
 * needs `Authorization: Bearer <token>` unless auth was turned off.
 * Requests in flight and event streams are capped (503 beyond), bodies
 * are capped at 4 KiB (413), and every parameter is checked (400).
 *
 * @module
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import type { z } from "zod";
import { OracleError } from "../oracle/client.ts";
import type { TokenCheck } from "./_auth.ts";
import { DASHBOARD_HTML } from "./_dashboard.ts";
import {
  type AdminCounters,
  METRICS_CONTENT_TYPE,
  renderMetrics,
} from "./_metrics.ts";
import {
  ExcludeBody,
  firstProblem,
  GroupPath,
  LeaveBody,
  ListQuery,
} from "./_params.ts";
import type {
  AdminGroup,
  AdminNode,
  AdminOracle,
  AdminSource,
} from "./_source.ts";
import { DEFAULT_LIST_LIMIT, type ListedLock } from "../oracle/commands.ts";

/** Options of {@linkcode adminApp}. */
export interface AdminAppOptions {
  /** The token check, or `null` when auth is off. */
  readonly auth: TokenCheck | null;
  /** Most requests in flight (event streams not counted). */
  readonly maxInflight: number;
  /** Most event streams open at once. */
  readonly maxStreams: number;
  /** How often an event stream sends a snapshot, ms. */
  readonly snapshotMs: number;
  /** Ends event streams when the server stops. */
  readonly signal: AbortSignal;
}

/** The list routes: path, the Oracle's list kind, the response's key. */
const LISTS = [
  ["/v1/locks", "locks", "locks"],
  ["/v1/channels", "channels", "channels"],
  ["/v1/views", "groups", "views"],
] as const;

/** The largest request body read. */
const MAX_BODY_BYTES = 4096;

/** What `/v1/events` sends: the dashboard's whole picture. */
export interface AdminSnapshot {
  /** This process. */
  readonly node: AdminNode;
  /** Its members. */
  readonly groups: readonly AdminGroup[];
  /** The Oracle, or `null` if it could not be read. */
  readonly oracle: AdminOracle | null;
  /** The first held locks (a default `list` page), or `[]` if they could not be read. */
  readonly locks: readonly ListedLock[];
}

/** The Hono app and its counters. */
export interface AdminApp {
  /** The app (`app.fetch` serves a request). */
  readonly app: Hono;
  /** What was answered and refused. */
  readonly counters: AdminCounters;
}

/** Builds the routes over `source` (see the module documentation). */
export function adminApp(
  source: AdminSource,
  options: AdminAppOptions,
): AdminApp {
  const counters: AdminCounters = { requests: new Map(), refused: new Map() };
  const refuse = (
    c: Context,
    reason: string,
    status: 401 | 413 | 503,
    message: string,
  ) => {
    counters.refused.set(reason, (counters.refused.get(reason) ?? 0) + 1);
    return errorResponse(c, status, reason, message);
  };
  let inflight = 0;
  let streams = 0;
  /** The last snapshot, serialized, and when it was taken: every stream sends it. */
  let shared: { at: number; data: Promise<string> } | undefined;
  const latest = (): Promise<string> => {
    const now = performance.now();
    if (shared === undefined || now - shared.at >= options.snapshotMs / 2) {
      shared = { at: now, data: snapshot(source).then(JSON.stringify) };
    }
    return shared.data;
  };
  const app = new Hono();

  app.use("*", async (c, next) => {
    await next();
    const code = c.res.status;
    counters.requests.set(code, (counters.requests.get(code) ?? 0) + 1);
  });
  app.use("*", async (c, next) => {
    if (inflight >= options.maxInflight) {
      return refuse(
        c,
        "busy",
        503,
        `Too many requests in flight (${options.maxInflight}); try again`,
      );
    }
    inflight++;
    try {
      await next();
    } finally {
      inflight--;
    }
  });
  app.use("*", async (c, next) => {
    const open = c.req.path === "/v1/health" || c.req.path === "/";
    if (!open && options.auth !== null) {
      if (!(await options.auth.accepts(c.req.header("authorization")))) {
        c.header("WWW-Authenticate", 'Bearer realm="cohort"');
        return refuse(
          c,
          "unauthorized",
          401,
          "Missing or wrong bearer token (Authorization: Bearer <token>)",
        );
      }
    }
    await next();
  });

  app.use(
    "/v1/actions/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        refuse(c, "too_large", 413, `Body over ${MAX_BODY_BYTES} bytes`),
    }),
  );

  app.get("/v1/health", (c) => c.json({ status: "ok" }));
  app.get("/", (c) => c.html(DASHBOARD_HTML));
  app.get("/v1/node", async (c) => c.json(await source.node()));
  app.get("/v1/groups", (c) => c.json({ groups: source.groups() }));
  app.get("/v1/groups/*", (c) => {
    const raw = decodePath(c.req.path.slice("/v1/groups".length));
    const parsed = GroupPath.safeParse(raw);
    if (!parsed.success) return badRequest(c, parsed.error);
    const members = source.groups().filter((g) => g.path === parsed.data);
    if (members.length === 0) {
      return errorResponse(
        c,
        404,
        "not_member",
        `This process has no member in ${JSON.stringify(parsed.data)}`,
      );
    }
    return c.json({ path: parsed.data, members });
  });
  app.get("/v1/oracle", async (c) => c.json(await source.oracle()));
  for (const [route, kind, key] of LISTS) {
    app.get(route, async (c) => {
      const query = queryOf(c);
      if (typeof query === "string") {
        return errorResponse(c, 400, "invalid", query);
      }
      const parsed = ListQuery.safeParse(query);
      if (!parsed.success) return badRequest(c, parsed.error);
      const { prefix, after, limit } = parsed.data;
      const page = await source.list(kind, prefix, after, limit);
      return c.json({ [key]: page.items, next: page.next });
    });
  }
  app.get("/metrics", async (c) => {
    const [node, oracle] = await Promise.all([
      source.node(),
      source.oracle().catch(() => null),
    ]);
    const text = renderMetrics(node, source.groups(), oracle, counters);
    return c.body(text, 200, { "Content-Type": METRICS_CONTENT_TYPE });
  });
  app.post("/v1/actions/leave", async (c) => {
    const body = await bodyOf(c, LeaveBody);
    if (body instanceof Response) return body;
    if (!(await source.leave(body.group))) {
      return errorResponse(
        c,
        404,
        "not_member",
        `This process has no member in ${JSON.stringify(body.group)}`,
      );
    }
    return c.json({ left: body.group });
  });
  app.post("/v1/actions/exclude", async (c) => {
    const body = await bodyOf(c, ExcludeBody);
    if (body instanceof Response) return body;
    const { viewId } = await source.exclude(
      body.group,
      body.member,
      body.reason,
    );
    return c.json(
      { group: body.group, member: body.member, proposal: viewId },
      202,
    );
  });
  app.get("/v1/events", (c) => {
    if (streams >= options.maxStreams) {
      return refuse(
        c,
        "busy",
        503,
        `Too many event streams open (${options.maxStreams})`,
      );
    }
    streams++;
    return streamSSE(c, async (stream) => {
      try {
        while (!stream.aborted && !stream.closed && !options.signal.aborted) {
          await stream.writeSSE({ event: "snapshot", data: await latest() });
          await sleep(options.snapshotMs, options.signal);
        }
      } finally {
        streams--;
      }
    });
  });

  app.notFound((c) =>
    errorResponse(c, 404, "not_found", `No route ${c.req.method} ${c.req.path}`)
  );
  app.onError((error, c) => {
    if (error instanceof OracleError) {
      return errorResponse(
        c,
        oracleStatus(error.code),
        error.code,
        error.message,
      );
    }
    return errorResponse(
      c,
      500,
      "internal",
      error instanceof Error ? error.message : String(error),
    );
  });
  return { app, counters };

  async function bodyOf<S extends z.ZodType>(
    c: Context,
    schema: S,
  ): Promise<z.infer<S> | Response> {
    if (!/^application\/json\b/i.test(c.req.header("content-type") ?? "")) {
      return errorResponse(
        c,
        415,
        "unsupported_media_type",
        "Send the body as application/json",
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(await c.req.text());
    } catch {
      return errorResponse(c, 400, "invalid", "The body is not valid JSON");
    }
    const parsed = schema.safeParse(json);
    return parsed.success ? parsed.data : badRequest(c, parsed.error);
  }
}

/** The dashboard's snapshot: everything at once; the Oracle's parts are `null`/`[]` when it cannot be read. */
async function snapshot(source: AdminSource): Promise<AdminSnapshot> {
  const [node, oracle, locks] = await Promise.all([
    source.node(),
    source.oracle().catch(() => null),
    source.list("locks", "/", undefined, DEFAULT_LIST_LIMIT).then(
      (p) => p.items,
      () => [],
    ),
  ]);
  return { node, groups: source.groups(), oracle, locks };
}

function errorResponse(
  c: Context,
  status: number,
  code: string,
  message: string,
): Response {
  return c.json({ error: { code, message } }, status as 400);
}

function badRequest(c: Context, error: z.ZodError): Response {
  return errorResponse(c, 400, "invalid", firstProblem(error));
}

/** The query as one value per name; a name given twice is an error. */
function queryOf(c: Context): Record<string, string> | string {
  const all = c.req.queries();
  const query: Record<string, string> = {};
  for (const [name, values] of Object.entries(all)) {
    if (values.length > 1) {
      return `Query parameter ${
        JSON.stringify(name)
      } given ${values.length} times`;
    }
    query[name] = values[0];
  }
  return query;
}

/** The URL's group path, percent-decoded (a bad escape stays as is, and fails validation). */
function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The HTTP status of an Oracle error. */
function oracleStatus(code: string): number {
  switch (code) {
    case "invalid":
    case "invalid_path":
    case "reserved_path":
    case "unknown_op":
    case "too_large":
      return 400;
    case "moved":
    case "not_owner":
    case "membership":
    case "lock_owned":
    case "not_holder":
    case "duplicate":
      return 409;
    case "timeout":
    case "closed":
    case "session_expired":
    case "overloaded":
    case "not_leader":
      return 503;
    default:
      return 502;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
