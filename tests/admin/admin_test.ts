import { KvActor } from "../../actors/_cli_actors.ts";
import assert from "node:assert/strict";
import { adminFixture, TOKEN } from "./_admin_fixture.ts";
import { until } from "../_until.ts";
import { parsePrometheus } from "./_prometheus.ts";
import { serveAdmin } from "../../admin/mod.ts";
import { startOracleGroup } from "../../oracle/server.ts";
import { OracleClient } from "../../oracle/client.ts";
import { Node } from "../../actors/node.ts";
import { VERSION } from "../../admin/_version.ts";

/** Every route that needs the token: method, path, body. */
const GUARDED: [string, string, unknown?][] = [
  ["GET", "/v1/node"],
  ["GET", "/v1/groups"],
  ["GET", "/v1/groups/apps/kv"],
  ["GET", "/v1/oracle"],
  ["GET", "/v1/locks"],
  ["GET", "/v1/channels?prefix=/chan"],
  ["GET", "/v1/views"],
  ["GET", "/metrics"],
  ["GET", "/v1/events"],
  ["POST", "/v1/actions/leave", { group: "/apps/kv" }],
  ["POST", "/v1/actions/exclude", { group: "/apps/kv", member: "x" }],
];

type ErrorBody = { error: { code: string; message: string } };

Deno.test("admin: every route but health and the page refuses a missing, wrong or malformed token with 401 JSON, and counts it", async () => {
  const f = await adminFixture();
  try {
    for (
      const token of [null, "wrong-token-0123456789abcdef", TOKEN + "x", ""]
    ) {
      for (const [method, path, body] of GUARDED) {
        const r = await f.call(path, { method, body, token });
        assert.equal(r.status, 401, `${method} ${path} with ${token}`);
        assert.equal((r.json as ErrorBody).error.code, "unauthorized");
        assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer/);
      }
    }
    // Not a bearer scheme at all.
    const basic = await f.call("/v1/node", {
      token: null,
      headers: { authorization: `Basic ${btoa("admin:" + TOKEN)}` },
    });
    assert.equal(basic.status, 401);
    assert.equal((await f.call("/v1/health", { token: null })).status, 200);
    const page = await f.call("/", { token: null });
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type") ?? "", /text\/html/);
    assert.equal(
      f.admin.counters.refused.get("unauthorized"),
      4 * GUARDED.length + 1,
    );
    // Nothing was acted on.
    assert.equal(f.a.view?.members.length, 2);
  } finally {
    await f.close();
  }
});

Deno.test("admin: with the token, node, groups, one group, Oracle, locks, channels and views tell the truth", async () => {
  const f = await adminFixture();
  try {
    const health = await f.call("/v1/health");
    assert.deepEqual(health.json, { status: "ok" });

    const node = (await f.call("/v1/node")).json as Record<string, unknown>;
    assert.equal(node.id, f.node.id);
    assert.equal(node.kind, "node");
    assert.equal(node.version, VERSION);
    assert.deepEqual(node.addresses, await f.node.addresses());
    assert.ok((node.uptimeSeconds as number) >= 0);

    const { groups } = (await f.call("/v1/groups")).json as {
      groups: Record<string, unknown>[];
    };
    assert.deepEqual(groups.map((g) => [g.path, g.member, g.role]), [
      ["/apps/kv", f.a.me, "coordinator"],
      ["/apps/kv", f.b.me, "member"],
    ]);
    const a = groups[0];
    assert.deepEqual(a.view, {
      id: f.a.view!.viewId,
      members: [f.a.me, f.b.me],
    });
    assert.equal(a.sent, 20);
    assert.equal(a.delivered, 20);
    assert.equal(a.primary, true);
    assert.equal(a.flushes, 1, "the view that added b came after a flush");
    assert.equal(typeof a.lastFlushMs, "number");
    const transfers = a.stateTransfers as {
      direction: string;
      peers: string[];
    }[];
    assert.deepEqual(transfers.map((t) => [t.direction, t.peers]), [["sent", [
      f.b.me,
    ]]]);
    const b = groups[1];
    assert.deepEqual(
      (b.stateTransfers as { direction: string }[]).map((t) => t.direction),
      ["received"],
    );

    const one = (await f.call("/v1/groups/apps/kv")).json as {
      path: string;
      members: unknown[];
    };
    assert.equal(one.path, "/apps/kv");
    assert.equal(one.members.length, 2);
    const encoded = await f.call("/v1/groups/apps%2Fkv");
    assert.equal(
      encoded.status,
      200,
      "a percent-encoded slash is the same path",
    );

    const oracle = (await f.call("/v1/oracle")).json as Record<string, unknown>;
    assert.deepEqual(oracle.replicas, f.node.oracle);
    assert.equal(oracle.leader, "1");
    assert.ok((oracle.term as number) >= 1);
    assert.ok((oracle.commitIndex as number) > 0);
    assert.ok(
      (oracle.sessions as number) >= 3,
      "a, b and the node's own session",
    );

    const client = await f.node.oracleClient();
    const locks = (await f.call("/v1/locks")).json as {
      locks: Record<string, unknown>[];
      next: null;
    };
    assert.deepEqual(locks, {
      locks: [{
        path: "/locks/leader",
        holder: client.session,
        token: 1,
        waiters: 0,
      }],
      next: null,
    });
    const channels = (await f.call("/v1/channels?prefix=/chan")).json;
    assert.deepEqual(channels, {
      channels: [{ path: "/chan/events", first: 1, last: 2 }],
      next: null,
    });
    const views = (await f.call("/v1/views?prefix=/apps")).json as {
      views: { group: string; viewId: number; members: { member: string }[] }[];
    };
    assert.deepEqual(
      views.views.map((
        v,
      ) => [v.group, v.viewId, v.members.map((m) => m.member)]),
      [["/apps/kv", f.a.view!.viewId, [f.a.me, f.b.me]]],
    );
    // Paging: one item per page, the cursor in `next`.
    const first = (await f.call("/v1/channels?limit=1")).json as {
      channels: { path: string }[];
      next: string;
    };
    assert.equal(first.channels.length, 1);
    assert.equal(first.next, first.channels[0].path);
    const second = (await f.call(
      `/v1/channels?limit=1&after=${encodeURIComponent(first.next)}`,
    )).json as {
      channels: { path: string }[];
    };
    assert.ok(second.channels[0].path > first.next);
  } finally {
    await f.close();
  }
});

Deno.test("admin: malformed paths, queries and bodies get 400/404/413/415 JSON that names the problem, and change nothing", async () => {
  const f = await adminFixture();
  try {
    const cases: [
      string,
      number,
      RegExp,
      { method?: string; body?: unknown; headers?: Record<string, string> }?,
    ][] = [
      ["/v1/locks?limit=0", 400, /limit/],
      ["/v1/locks?limit=1001", 400, /limit/],
      ["/v1/locks?limit=abc", 400, /limit must be an integer/],
      ["/v1/locks?limit=-1", 400, /limit/],
      ["/v1/locks?prefix=relative", 400, /prefix.*must start with "\/"/],
      ["/v1/locks?prefix=/a//b", 400, /prefix/],
      ["/v1/locks?prefix=/a&prefix=/b", 400, /"prefix" given 2 times/],
      ["/v1/locks?after=nope", 400, /after/],
      ["/v1/channels?colour=red", 400, /colour|Unrecognized/i],
      ["/v1/views?limit=" + "9".repeat(50), 400, /limit/],
      ["/v1/groups/" + "x".repeat(600), 400, /at most 512/],
      ["/v1/groups/a//b", 400, /Invalid path/],
      ["/v1/groups/bad%zz", 400, /Invalid path/],
      ["/v1/groups/apps/none", 404, /no member/],
      ["/v1/nothing", 404, /No route GET \/v1\/nothing/],
      ["/v1/actions/leave", 400, /not valid JSON/, {
        method: "POST",
        body: "{oops",
      }],
      ["/v1/actions/leave", 400, /group/, { method: "POST", body: {} }],
      ["/v1/actions/leave", 400, /Unrecognized key|extra/i, {
        method: "POST",
        body: { group: "/apps/kv", extra: 1 },
      }],
      ["/v1/actions/leave", 400, /group/, {
        method: "POST",
        body: { group: 42 },
      }],
      ["/v1/actions/exclude", 400, /member/, {
        method: "POST",
        body: { group: "/apps/kv" },
      }],
      ["/v1/actions/exclude", 400, /member/, {
        method: "POST",
        body: { group: "/apps/kv", member: "" },
      }],
      ["/v1/actions/leave", 413, /over 4096 bytes/, {
        method: "POST",
        body: { group: "/" + "a".repeat(5000) },
      }],
      ["/v1/actions/leave", 415, /application\/json/, {
        method: "POST",
        body: "group=/apps/kv",
        headers: { "content-type": "application/x-www-form-urlencoded" },
      }],
      ["/v1/actions/leave", 404, /no member/, {
        method: "POST",
        body: { group: "/apps/other" },
      }],
    ];
    for (const [path, status, message, init] of cases) {
      const r = await f.call(path, init);
      assert.equal(r.status, status, `${path}: ${r.text}`);
      const error = (r.json as ErrorBody).error;
      assert.equal(typeof error.code, "string", path);
      assert.match(error.message, message, `${path}: ${error.message}`);
    }
    // The Oracle refuses an exclusion from a group that does not exist: a JSON error, not a crash.
    const refused = await f.call("/v1/actions/exclude", {
      body: { group: "/apps/none", member: "x" },
    });
    assert.ok(refused.status >= 400 && refused.status < 600, refused.text);
    assert.equal(typeof (refused.json as ErrorBody).error.message, "string");
    assert.equal(f.a.view?.members.length, 2, "nothing changed");
    assert.equal((await f.call("/v1/health")).status, 200, "still serving");
  } finally {
    await f.close();
  }
});

Deno.test("admin: /metrics is valid Prometheus text, cohort_ names, counters end in _total, and agrees with /v1/groups", async () => {
  const f = await adminFixture();
  try {
    const r = await f.call("/metrics");
    assert.equal(r.status, 200);
    assert.match(
      r.headers.get("content-type") ?? "",
      /^text\/plain; version=0\.0\.4/,
    );
    const families = parsePrometheus(r.text);
    for (const [name, family] of families) {
      assert.match(name, /^cohort_[a-z][a-z0-9_]*$/, name);
      assert.ok(family.help.length > 0, `${name} has help`);
      if (family.type === "counter") assert.match(name, /_total$/, name);
      else assert.doesNotMatch(name, /_total$/, name);
    }
    const sample = (name: string, member: string) =>
      families.get(name)?.samples.find((s) => s.labels.member === member)
        ?.value;
    const { groups } = (await f.call("/v1/groups")).json as {
      groups: {
        member: string;
        sent: number;
        delivered: number;
        unstable: number;
        view: { id: number };
      }[];
    };
    for (const g of groups) {
      assert.equal(
        sample("cohort_group_messages_sent_total", g.member),
        g.sent,
      );
      assert.equal(
        sample("cohort_group_messages_delivered_total", g.member),
        g.delivered,
      );
      assert.equal(sample("cohort_group_view_id", g.member), g.view.id);
      assert.equal(sample("cohort_group_view_members", g.member), 2);
    }
    assert.equal(
      families.get("cohort_group_messages_delivered_total")?.type,
      "counter",
    );
    assert.equal(
      families.get("cohort_oracle_leader")?.samples[0].labels.replica,
      "1",
    );
    const oracle = (await f.call("/v1/oracle")).json as {
      term: number;
      commitIndex: number;
    };
    assert.equal(
      families.get("cohort_oracle_leader_term")?.samples[0].value,
      oracle.term,
    );
    assert.ok(
      families.get("cohort_oracle_commit_index")!.samples[0].value > 0,
    );
    assert.deepEqual(
      families.get("cohort_oracle_replica_leader")?.samples.map((s) => [
        s.labels.replica,
        s.value,
      ]),
      [["1", 1]],
    );
    assert.equal(
      families.get("cohort_info")?.samples[0].labels.version,
      VERSION,
    );
    // The endpoint's own counters: the request above was answered 200.
    const again = parsePrometheus((await f.call("/metrics")).text);
    const ok = again.get("cohort_admin_requests_total")?.samples.find((s) =>
      s.labels.code === "200"
    );
    assert.ok((ok?.value ?? 0) >= 2);
    // The parser is strict: it rejects what a scraper would.
    assert.throws(() => parsePrometheus("cohort_x 1\n"), /no TYPE/);
    assert.throws(
      () => parsePrometheus('# TYPE cohort_x gauge\ncohort_x{a="b} 1\n'),
      /bad labels/,
    );
  } finally {
    await f.close();
  }
});

Deno.test("admin: guarded actions: exclude a member through the Oracle, then leave the group", async () => {
  const f = await adminFixture();
  try {
    const excluded = await f.call("/v1/actions/exclude", {
      body: { group: "/apps/kv", member: f.b.me, reason: "test" },
    });
    assert.equal(excluded.status, 202, excluded.text);
    assert.equal((excluded.json as { member: string }).member, f.b.me);
    await until(
      "a view without b",
      () => f.a.view?.members.length === 1,
      10_000,
    );
    const views = (await f.call("/v1/views?prefix=/apps")).json as {
      views: { members: unknown[] }[];
    };
    assert.equal(views.views[0].members.length, 1);
    const left = await f.call("/v1/actions/leave", {
      body: { group: "/apps/kv" },
    });
    assert.equal(left.status, 200, left.text);
    assert.deepEqual(left.json, { left: "/apps/kv" });
    assert.deepEqual((await f.call("/v1/groups")).json, { groups: [] });
    assert.equal((await f.call("/v1/groups/apps/kv")).status, 404);
  } finally {
    await f.close();
  }
});

Deno.test("admin: a flood of requests beyond the in-flight cap gets 503s, not memory; the endpoint serves on", async () => {
  const f = await adminFixture({ maxInflight: 4 });
  try {
    const statuses = await Promise.all(
      Array.from(
        { length: 300 },
        () => f.call("/v1/oracle").then((r) => r.status),
      ),
    );
    const counts = new Map<number, number>();
    for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
    assert.deepEqual(
      [...counts.keys()].sort(),
      [200, 503],
      JSON.stringify([...counts]),
    );
    assert.equal(f.admin.counters.refused.get("busy"), counts.get(503));
    assert.equal((await f.call("/v1/oracle")).status, 200);
  } finally {
    await f.close();
  }
});

Deno.test("admin: /v1/events streams snapshots; streams beyond the cap get 503", async () => {
  const f = await adminFixture({ maxStreams: 1, snapshotMs: 50 });
  const controller = new AbortController();
  try {
    const response = await fetch(new URL("v1/events", f.admin.url), {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    assert.match(
      response.headers.get("content-type") ?? "",
      /text\/event-stream/,
    );
    const reader = response.body!.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    for (let i = 0; i < 100 && (text.match(/\n\n/g) ?? []).length < 2; i++) {
      text += (await reader.read()).value ?? "";
    }
    const frames = text.split("\n\n").filter((f) =>
      f.startsWith("event: snapshot")
    );
    assert.ok(frames.length >= 2, text);
    const data = JSON.parse(
      frames[0].split("\n").find((l) => l.startsWith("data: "))!.slice(6),
    );
    assert.equal(data.node.id, f.node.id);
    assert.deepEqual(data.groups.map((g: { member: string }) => g.member), [
      f.a.me,
      f.b.me,
    ]);
    assert.equal(data.oracle.leader, "1");
    assert.equal(data.locks[0].path, "/locks/leader");
    const second = await f.call("/v1/events");
    assert.equal(second.status, 503);
    assert.match((second.json as ErrorBody).error.message, /event streams/);
    await reader.cancel();
  } finally {
    controller.abort();
    await f.close();
  }
});

Deno.test("admin: an Oracle replica's endpoint shows its role and lists from its state; it excludes through a session of its own", async () => {
  const group = await startOracleGroup({ size: 3 });
  const node = await Node.start({ oracle: group.replicas });
  const servers = [...group.servers.values()];
  const admins = await Promise.all(
    servers.map((server) =>
      serveAdmin({
        replica: { server, replicas: group.replicas },
        token: TOKEN,
      })
    ),
  );
  const client = await OracleClient.connect({ replicas: group.replicas });
  try {
    await client.lock("/locks/x");
    const get = async (i: number, path: string) => {
      const r = await fetch(new URL(path.slice(1), admins[i].url), {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      return { status: r.status, json: await r.json() };
    };
    const roles = [];
    for (let i = 0; i < 3; i++) {
      const oracle = (await get(i, "/v1/oracle")).json;
      assert.deepEqual(oracle.replicas, group.replicas);
      assert.equal(oracle.local.length, 1);
      roles.push(oracle.local[0].role);
      assert.equal((await get(i, "/v1/node")).json.kind, "oracle");
      assert.deepEqual((await get(i, "/v1/groups")).json, { groups: [] });
    }
    assert.equal(roles.filter((r) => r === "leader").length, 1);
    const leader = roles.indexOf("leader");
    const leaderStatus = servers[leader].status();
    const onReplica = (await get(leader, "/v1/oracle")).json;
    assert.equal(onReplica.leader, leaderStatus.id);
    assert.equal(onReplica.term, leaderStatus.term);
    // A node that runs no replica reads the leader's own status.
    const nodeAdmin = await serveAdmin({ node, token: TOKEN });
    try {
      const r = await fetch(new URL("v1/oracle", nodeAdmin.url), {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      const fromNode = await r.json();
      assert.equal(fromNode.leader, leaderStatus.id);
      assert.equal(fromNode.term, leaderStatus.term);
      assert.ok(fromNode.commitIndex >= 1, JSON.stringify(fromNode));
      assert.ok(fromNode.sessions >= 2, "the locker's and the node's sessions");
      assert.deepEqual(fromNode.local, []);
    } finally {
      await nodeAdmin.close();
    }
    assert.deepEqual(
      (await get(leader, "/v1/locks")).json.locks.map((l: { path: string }) =>
        l.path
      ),
      ["/locks/x"],
    );
    const a = await node.join(
      "/apps/r",
      new KvActor(),
      { label: "a" },
    );
    await until("a's first view", () => a.view !== undefined, 10_000);
    const r = await fetch(
      new URL("v1/actions/exclude", admins[(leader + 1) % 3].url),
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKEN}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ group: "/apps/r", member: a.me }),
      },
    );
    assert.equal(r.status, 202, await r.text());
    await until("the Oracle to exclude a", async () => {
      const views = (await get(leader, "/v1/views?prefix=/apps/r")).json;
      return views.views[0]?.members.length === 0;
    }, 10_000);
  } finally {
    await client.close();
    await Promise.all(admins.map((a) => a.close()));
    await node.close();
    await group.stop();
  }
});

Deno.test("admin: configuration errors are refused at start: no token, a short one, auth off off loopback, neither source", async () => {
  const node = await Node.start();
  try {
    await assert.rejects(serveAdmin({ node }), /Missing admin token/);
    await assert.rejects(serveAdmin({ node, token: "short" }), /at least 16/);
    await assert.rejects(
      serveAdmin({ node, auth: false, host: "0.0.0.0" }),
      /only on a loopback/,
    );
    await assert.rejects(
      serveAdmin({ node, auth: false, token: TOKEN }),
      /not both/,
    );
    await assert.rejects(
      serveAdmin({ token: TOKEN }),
      /either node or replica/,
    );
    // Auth off, explicitly, on loopback: no token needed.
    const open = await serveAdmin({ node, auth: false });
    try {
      const r = await fetch(new URL("v1/node", open.url));
      assert.equal(r.status, 200);
      assert.equal((await r.json()).id, node.id);
    } finally {
      await open.close();
    }
  } finally {
    await node.close();
  }
});

Deno.test("admin: the reported version is deno.json's", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  assert.equal(VERSION, config.version);
});
