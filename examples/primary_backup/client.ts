/**
 * The client of the primary/backup example: it sends deposits one at a
 * time to whichever member is the primary (trying the next member on a
 * refusal or a broken connection, and retrying the same request, which
 * the ledger applies once), for `--seconds`. Then it reads the ledger
 * from the primary and checks that every deposit it was told is done is
 * there.
 *
 * ```sh
 * deno run --allow-net examples/primary_backup/client.ts \
 *   --urls http://127.0.0.1:8081,http://127.0.0.1:8082 --seconds 5
 * ```
 *
 * Prints JSON lines on stdout: `progress` (every second), `resumed` (the first answer
 * after a pause of more than 100 ms, with the time it came), and
 * `result` (acknowledged, present, lost).
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { LedgerState } from "./ledger.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    urls: { type: "string" },
    seconds: { type: "string", default: "5" },
    client: { type: "string", default: "client-1" },
  },
});
if (!values.urls) {
  console.error("usage: client.ts --urls URL,URL,... [--seconds N]");
  Deno.exit(2);
}
const urls = values.urls.split(",");
const seconds = Number(values.seconds);
const client = values.client;
const print = (event: Record<string, unknown>) =>
  console.log(JSON.stringify({ ...event, at: Date.now() }));
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

let current = 0;
/** Sends `path` to the primary, trying the members in turn; bounded by `until`. */
async function call(
  path: string,
  init: RequestInit,
  until: number,
): Promise<unknown> {
  for (let attempt = 0; Date.now() < until; attempt++) {
    try {
      const response = await fetch(urls[current] + path, {
        ...init,
        signal: AbortSignal.timeout(4_000),
      });
      const body = await response.json();
      if (response.ok && (path !== "/state" || body.primary)) return body;
    } catch {
      // The member is down: try the next one.
    }
    current = (current + 1) % urls.length;
    if (attempt % urls.length === urls.length - 1) await delay(20);
  }
  return undefined;
}

const acked: number[] = [];
const end = Date.now() + seconds * 1000;
let lastAnswer = Date.now();
let lastProgress = Date.now();
for (let seq = 1; Date.now() < end; seq++) {
  const request = { client, seq, account: `acct-${seq % 10}`, amount: 1 };
  const reply = await call("/deposit", {
    method: "POST",
    body: JSON.stringify(request),
  }, end + 10_000);
  if (reply === undefined) break;
  const now = Date.now();
  if (now - lastAnswer > 100) {
    print({
      event: "resumed",
      seq,
      gapMs: now - lastAnswer,
      url: urls[current],
    });
  }
  lastAnswer = now;
  acked.push(seq);
  if (now - lastProgress >= 1_000) {
    lastProgress = now;
    print({ event: "progress", acked: acked.length });
  }
}

const state = await call("/state", { method: "GET" }, Date.now() + 15_000) as
  | LedgerState
  | undefined;
const last = state?.applied[client] ?? 0;
const present = acked.filter((seq) => seq <= last).length;
const total = Object.values(state?.balances ?? {}).reduce((a, b) => a + b, 0);
print({
  event: "result",
  acknowledged: acked.length,
  present,
  lost: acked.length - present,
  appliedUpTo: last,
  balanceTotal: total,
  stateRead: state !== undefined,
});
