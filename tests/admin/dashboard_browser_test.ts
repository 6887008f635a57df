import assert from "node:assert/strict";
import { DASHBOARD_HTML } from "../../admin/_dashboard.ts";
import { type BrowserPage, pollUntil, withChromium } from "./_browser.ts";

const TOKEN = "secret-token";

/** The `data` of a `snapshot` event on `GET /v1/events`. */
interface Snapshot {
  node: {
    id: string;
    kind: "node" | "oracle";
    version: string;
    uptimeSeconds: number;
  };
  groups: {
    path: string;
    member: string;
    role: "coordinator" | "member" | "joining" | "flushing" | "excluded";
    view: { id: number; members: string[] } | null;
    primary: boolean;
    sent: number;
    delivered: number;
    retransmitted: number;
    unstable: number;
    lastFlushMs: number | null;
  }[];
  oracle: {
    replicas: Record<string, string>;
    leader: string | null;
    term: number | null;
    commitIndex: number | null;
    sessions: number | null;
  } | null;
  locks: {
    path: string;
    holder: string | null;
    token: number;
    waiters: number;
  }[];
}

/** Node "b" sees /apps/ledger in view 7 with a, b and c. */
const FIRST: Snapshot = {
  node: { id: "b", kind: "node", version: "0.1.0", uptimeSeconds: 3725 },
  groups: [
    {
      path: "/apps/ledger",
      member: "b",
      role: "member",
      view: { id: 7, members: ["a", "b", "c"] },
      primary: true,
      sent: 40,
      delivered: 120,
      retransmitted: 2,
      unstable: 3,
      lastFlushMs: 12,
    },
    {
      path: "/apps/kv",
      member: "b",
      role: "coordinator",
      view: { id: 3, members: ["b", "c"] },
      primary: true,
      sent: 900,
      delivered: 1800,
      retransmitted: 0,
      unstable: 0,
      lastFlushMs: null,
    },
    {
      path: "/jobs/<mailer>",
      member: "b",
      role: "joining",
      view: null,
      primary: false,
      sent: 0,
      delivered: 0,
      retransmitted: 0,
      unstable: 0,
      lastFlushMs: null,
    },
  ],
  oracle: {
    replicas: {
      r1: "127.0.0.1:7001",
      r2: "127.0.0.1:7002",
      r3: "127.0.0.1:7003",
    },
    leader: "r2",
    term: 4,
    commitIndex: 1042,
    sessions: 5,
  },
  locks: [
    { path: "/locks/ledger/compaction", holder: "b", token: 7, waiters: 1 },
    { path: "/locks/kv/rebalance", holder: null, token: 3, waiters: 0 },
  ],
};

/** a crashed: view 8 of /apps/ledger has b and c, and b coordinates. */
const SECOND: Snapshot = {
  ...FIRST,
  node: { ...FIRST.node, uptimeSeconds: 3727 },
  groups: [
    {
      ...FIRST.groups[0],
      role: "coordinator",
      view: { id: 8, members: ["b", "c"] },
      sent: 52,
      delivered: 180,
      unstable: 0,
      lastFlushMs: 31,
    },
    ...FIRST.groups.slice(1),
  ],
};

interface FakeAdmin {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** Every request's URL path and query, in order. */
  requested: string[];
  /** Sends `snapshot` to every open event stream (and to later ones). */
  push(snapshot: Snapshot): void;
  /** Ends the open event streams, as a restarting server would. */
  endStreams(): void;
  /** Ends the event streams and shuts the server down. */
  close(): Promise<void>;
}

/**
 * A stand-in for the admin endpoint: the page at `/`, and `/v1/events`
 * behind the bearer token, streaming the snapshots the test pushes. Each
 * frame is sent in two chunks, after a comment, so the page's parser meets
 * both.
 */
function startFakeAdmin(initial: Snapshot): FakeAdmin {
  const encoder = new TextEncoder();
  const streams = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const requested: string[] = [];
  let current = initial;
  const send = (stream: ReadableStreamDefaultController<Uint8Array>) => {
    const frame = `event: snapshot\ndata: ${JSON.stringify(current)}\n\n`;
    const half = Math.floor(frame.length / 2);
    stream.enqueue(encoder.encode(frame.slice(0, half)));
    stream.enqueue(encoder.encode(frame.slice(half)));
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const url = new URL(request.url);
      requested.push(url.pathname + url.search);
      if (url.pathname === "/") {
        return new Response(DASHBOARD_HTML, {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      }
      if (url.pathname !== "/v1/events") {
        return Response.json(
          { error: { code: "not_found", message: `No route ${url.pathname}` } },
          { status: 404 },
        );
      }
      if (request.headers.get("authorization") !== `Bearer ${TOKEN}`) {
        return Response.json(
          {
            error: {
              code: "unauthorized",
              message: "Missing or wrong bearer token",
            },
          },
          { status: 401 },
        );
      }
      let self: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({
        start(stream) {
          self = stream;
          streams.add(stream);
          stream.enqueue(encoder.encode(": cohort fake admin\n\n"));
          send(stream);
        },
        cancel() {
          streams.delete(self);
        },
      });
      return new Response(body, {
        headers: {
          "content-type": "text/event-stream",
          "cache-control": "no-store",
        },
      });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requested,
    push(snapshot) {
      current = snapshot;
      for (const stream of streams) send(stream);
    },
    endStreams() {
      for (const stream of streams) stream.close();
      streams.clear();
    },
    async close() {
      this.endStreams();
      await server.shutdown();
    },
  };
}

/** Polls until exactly one element matches `selector` with text `expected`. */
async function waitForText(
  page: BrowserPage,
  selector: string,
  expected: string,
): Promise<void> {
  await pollUntil(
    `${selector} to read ${JSON.stringify(expected)}`,
    () => page.texts(selector),
    (found) => found.length === 1 && found[0] === expected,
  );
}

const STATUS = '[data-testid="status"]';
const LEDGER_B =
  '[data-testid="group-row"][data-group="/apps/ledger"][data-member="b"]';
const LEDGER_MEMBERS = `${LEDGER_B} [data-testid="view-members"]`;
const TOKEN_FORM = '[data-testid="token-form"]';

Deno.test("dashboard shows a group's new view pushed by the server, to a page holding the token", async (t) => {
  const admin = startFakeAdmin(FIRST);
  try {
    await withChromium(async (page) => {
      await t.step(
        "the first snapshot shows the group, its members a, b, c and the Oracle leader",
        async () => {
          await page.goto(`${admin.url}/#token=${TOKEN}`);
          await waitForText(page, STATUS, "connected");
          await waitForText(page, LEDGER_MEMBERS, "a, b, c");
          assert.deepEqual(await page.texts('[data-testid="node-id"]'), ["b"]);
          assert.deepEqual(await page.texts('[data-testid="oracle-leader"]'), [
            "r2",
          ]);
          assert.deepEqual(
            await page.attributes('[data-testid="group-row"]', "data-group"),
            ["/apps/ledger", "/apps/kv", "/jobs/<mailer>"],
          );
          const locks = (await page.texts('[data-testid="locks"]'))[0];
          assert.match(locks, /\/locks\/ledger\/compaction/);
          assert.match(locks, /\/locks\/kv\/rebalance\s*free/);
        },
      );

      await t.step(
        "a pushed view [b, c] replaces the members and the rate counts new deliveries",
        async () => {
          admin.push(SECOND);
          await waitForText(page, LEDGER_MEMBERS, "b, c");
          const [rate] = await page.texts(`${LEDGER_B} [data-testid="rate"]`);
          const match = /^(\d+\.\d) \/ (\d+\.\d)$/.exec(rate);
          assert.ok(match, `rate cell reads ${JSON.stringify(rate)}`);
          assert.ok(
            Number(match[1]) > 0 && Number(match[2]) > 0,
            `rate ${rate}`,
          );
        },
      );

      await t.step(
        "the token leaves the address bar and never reaches the server in a URL",
        async () => {
          assert.equal(new URL(await page.url()).hash, "");
          assert.ok(
            admin.requested.includes("/v1/events"),
            admin.requested.join(" "),
          );
          for (const path of admin.requested) {
            assert.doesNotMatch(path, /secret/);
          }
        },
      );

      await t.step(
        "when the server ends the stream the page shows reconnecting, then reconnects",
        async () => {
          const connects = () =>
            admin.requested.filter((path) => path === "/v1/events").length;
          const before = connects();
          admin.endStreams();
          await waitForText(page, STATUS, "reconnecting");
          await waitForText(page, STATUS, "connected");
          assert.equal(connects(), before + 1);
          await waitForText(page, LEDGER_MEMBERS, "b, c");
        },
      );
    });
  } finally {
    await admin.close();
  }
});

Deno.test("dashboard shows unauthorized (401) for a wrong token, and connects with a pasted one", async (t) => {
  const admin = startFakeAdmin(FIRST);
  try {
    await withChromium(async (page) => {
      await t.step(
        "a wrong token in the fragment shows unauthorized (401) and the token form",
        async () => {
          await page.goto(`${admin.url}/#token=wrong-token`);
          await waitForText(page, STATUS, "unauthorized (401)");
          assert.equal(await page.isVisible(TOKEN_FORM), true);
          assert.equal(new URL(await page.url()).hash, "");
          assert.deepEqual(await page.texts('[data-testid="group-row"]'), []);
        },
      );

      await t.step(
        "pasting the right token into the form connects",
        async () => {
          await page.fill(`${TOKEN_FORM} input`, TOKEN);
          await page.click(`${TOKEN_FORM} button`);
          await waitForText(page, STATUS, "connected");
          await waitForText(page, LEDGER_MEMBERS, "a, b, c");
          assert.equal(await page.isVisible(TOKEN_FORM), false);
        },
      );

      await t.step("a new tab without a token asks for one", async () => {
        const tab = await page.newPage();
        try {
          await tab.goto(admin.url);
          await waitForText(tab, STATUS, "no token");
          assert.equal(await tab.isVisible(TOKEN_FORM), true);
        } finally {
          await tab.close();
        }
      });
    });
  } finally {
    await admin.close();
  }
});
