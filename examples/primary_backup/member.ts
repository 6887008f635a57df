/**
 * One member process of the primary/backup example: it joins the ledger
 * group and serves clients over HTTP. Only the primary (the oldest member
 * of the view) takes deposits; the others answer 409 and name it.
 *
 * ```sh
 * deno run --allow-net examples/primary_backup/member.ts --label m1 \
 *   --oracle 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103 \
 *   --http 127.0.0.1:8081 [--admin 127.0.0.1:9081 --admin-token-file FILE]
 * ```
 *
 * With `--admin`, it also serves Cohort's admin endpoint (dashboard,
 * metrics, `cohort status`) there, with the token in the file.
 *
 * Prints one JSON line per event on stdout: `joined`, `view` (members,
 * primary), `http` (listening), `admin` (its URL).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Node, QueryTimeoutError } from "../../mod.ts";
import { serveAdmin } from "../../admin/mod.ts";
import { Deposit, type DepositReply, Ledger } from "./ledger.ts";

const GROUP = "/demo/ledger";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    label: { type: "string" },
    oracle: { type: "string" },
    http: { type: "string" },
    admin: { type: "string" },
    "admin-token-file": { type: "string" },
  },
});
if (!values.label || !values.oracle || !values.http) {
  console.error(
    "usage: member.ts --label L --oracle ID=HOST:PORT,... --http HOST:PORT [--admin HOST:PORT --admin-token-file FILE]",
  );
  Deno.exit(2);
}
const oracle = Object.fromEntries(
  values.oracle.split(",").map((entry) => entry.split("=") as [string, string]),
);
const print = (event: Record<string, unknown>) =>
  console.log(JSON.stringify({ ...event, at: Date.now() }));

const ledger = new Ledger();
ledger.viewChanged = (view) =>
  print({
    event: "view",
    viewId: view.viewId,
    members: view.members,
    primary: view.members[0] === view.me,
  });
const node = await Node.start({ oracle, sessionTtlMs: 3_000 });
const group = await node.join(GROUP, ledger, {
  label: values.label,
  onLeft: (why) => {
    print({ event: "left", why });
    Deno.exit(1);
  },
});
print({ event: "joined", name: group.me });

if (values.admin !== undefined) {
  const at = values.admin.lastIndexOf(":");
  const tokenFile = values["admin-token-file"];
  const admin = await serveAdmin({
    node,
    host: values.admin.slice(0, at),
    port: Number(values.admin.slice(at + 1)),
    token: tokenFile === undefined
      ? undefined
      : (await Deno.readTextFile(tokenFile)).trim(),
  });
  print({ event: "admin", url: admin.url });
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });

const colon = values.http.lastIndexOf(":");
Deno.serve({
  hostname: values.http.slice(0, colon),
  port: Number(values.http.slice(colon + 1)),
  onListen: () => print({ event: "http", address: values.http }),
}, async (request) => {
  const url = new URL(request.url);
  const view = group.view;
  const primary = view?.members[0];
  if (request.method === "GET" && url.pathname === "/state") {
    return json(200, { primary: primary === group.me, ...ledger.state });
  }
  if (request.method !== "POST" || url.pathname !== "/deposit") {
    return json(404, { error: "POST /deposit or GET /state" });
  }
  if (primary !== group.me) {
    return json(409, { error: "not the primary", primary: primary ?? null });
  }
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return json(400, { error: "the body must be JSON" });
  }
  const parsed = Deposit.safeParse(body);
  if (!parsed.success) return json(400, { error: parsed.error.message });
  try {
    // Done only once every member of the view applied it: safe.
    const replies = await group.query(Deposit, parsed.data, {
      replies: "all",
      timeoutMs: 3_000,
    });
    const mine = replies.find((r) => r.member === group.me);
    if (mine === undefined || !mine.ok) {
      return json(500, { error: "not applied here" });
    }
    return json(200, mine.value as DepositReply);
  } catch (error) {
    const status = error instanceof QueryTimeoutError ? 503 : 500;
    return json(status, { error: String(error) });
  }
});
