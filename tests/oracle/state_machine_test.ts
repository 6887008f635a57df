import assert from "node:assert/strict";
import { prng } from "../transport/_helpers.ts";
import {
  type ApplyOutput,
  OracleStateMachine,
  type StateMachineOptions,
} from "../../oracle/state_machine.ts";
import type {
  ClientRequest,
  EntryCommand,
  ViewEvent,
  WriteOp,
} from "../../oracle/commands.ts";
import { viewChannel } from "../../oracle/commands.ts";
import { code, events, Harness, ok, replies, replyTo } from "./_sm_harness.ts";

Deno.test("dedupe replays retries, forgets acknowledged results and refuses old requests", async (t) => {
  const h = new Harness();
  h.open("c");
  const append = h.request("c", { op: "append", path: "/a", data: 1 });

  await t.step(
    "a retried request gets the same reply and is applied once",
    () => {
      const first = h.entry({ batch: [append] });
      assert.deepEqual(replyTo(first, "c", 2), { ok: { seq: 1, rev: 1 } });
      assert.equal(events(first).length, 1);
      const retry = h.entry({ batch: [append, append] });
      assert.deepEqual(
        replies(retry).map((r) => r.kind === "reply" && r.result),
        [
          { ok: { seq: 1, rev: 1 } },
          { ok: { seq: 1, rev: 1 } },
        ],
      );
      assert.equal(events(retry).length, 0);
      const read = h.sm.eventsFrom("/a", 1, 10);
      assert.ok(!("compacted" in read) && read.events.length === 1);
    },
  );

  await t.step("errors are cached too", () => {
    const bad = h.request("c", { op: "append", path: "/_sys/x", data: 1 });
    assert.equal(
      code(replyTo(h.entry({ batch: [bad] }), "c", bad.req)),
      "reserved_path",
    );
    assert.equal(
      code(replyTo(h.entry({ batch: [bad] }), "c", bad.req)),
      "reserved_path",
    );
  });

  await t.step(
    "once acked passes a request, a retry of it is a duplicate",
    () => {
      const out = h.entry({ batch: [{ ...append, acked: append.req }] });
      assert.deepEqual(
        replyTo(out, "c", 2),
        { ok: { seq: 1, rev: 1 } },
        "still cached",
      );
      const late = h.entry({ batch: [{ ...append, acked: 0 }] });
      assert.ok(
        "ok" in replyTo(late, "c", 2)!,
        "a lower acked never forgets more",
      );
      const next = h.request("c", { op: "append", path: "/a", data: 3 }, 4);
      h.entry({ batch: [next] });
      const dup = h.entry({ batch: [append] });
      assert.equal(code(replyTo(dup, "c", 2)), "duplicate");
      const read = h.sm.eventsFrom("/a", 1, 10);
      assert.ok(!("compacted" in read) && read.events.length === 2);
    },
  );

  await t.step("too many unacknowledged results get overloaded", () => {
    const small = new Harness({ maxPendingReplies: 3 });
    small.open("c"); // req 1 cached with acked 1
    const results = [2, 3, 4, 5].map((req) =>
      replyTo(
        small.entry({
          batch: [{
            session: "c",
            req,
            acked: 1,
            op: { op: "append", path: "/x", data: req },
          }],
        }),
        "c",
        req,
      )
    );
    assert.deepEqual(results.map(code), [
      undefined,
      undefined,
      "overloaded",
      "overloaded",
    ]);
    const after = small.entry({
      batch: [{
        session: "c",
        req: 6,
        acked: 4,
        op: { op: "append", path: "/x", data: 6 },
      }],
    });
    assert.ok("ok" in replyTo(after, "c", 6)!, "acknowledging frees room");
  });

  await t.step("unknown sessions get session_expired, never re-opened", () => {
    assert.equal(
      code(h.call("ghost", { op: "append", path: "/a", data: 0 })),
      "session_expired",
    );
    assert.deepEqual(h.call("c", { op: "close_session" }), { ok: null });
    assert.equal(
      code(h.call("c", { op: "open_session", ttlMs: 5_000 })),
      "session_expired",
    );
    assert.equal(
      code(h.call("c", { op: "append", path: "/a", data: 0 })),
      "session_expired",
    );
  });

  await t.step("open_session validates its ttl and is idempotent", () => {
    assert.equal(
      code(h.call("d", { op: "open_session", ttlMs: 999 })),
      "invalid",
    );
    assert.ok(!h.sm.hasSession("d"));
    h.open("d", 1_000);
    h.open("d", 300_000);
    assert.deepEqual(h.sm.sessions().find((s) => s.session === "d"), {
      session: "d",
      ttlMs: 300_000,
    });
    assert.equal(
      code(h.call("d", { op: "open_session", ttlMs: 300_001 })),
      "invalid",
    );
  });
});

Deno.test("apply ignores entries at or below the applied index and never throws on garbage", () => {
  const h = new Harness();
  h.open("c");
  assert.deepEqual(
    h.sm.apply(1, { batch: [h.request("c", { op: "close_session" })] }),
    [],
  );
  assert.ok(h.sm.hasSession("c"));
  assert.throws(() => h.sm.apply(1.5, { batch: [] }), TypeError);
  const garbage: unknown[] = [
    null,
    42,
    { batch: [null, 1, "x", { session: 5 }] },
    { batch: [{ session: "c", req: 9, acked: 0, op: null }] },
    {
      batch: [{ session: "c", req: 9, acked: -1, op: { op: "close_session" } }],
    },
    {
      batch: [{ session: "c", req: 0, acked: 0, op: { op: "close_session" } }],
    },
    {
      batch: [{
        session: "c",
        req: 10,
        acked: 0,
        op: { op: "read", path: "/a", from: 1, limit: 1 },
      }],
    },
    {
      batch: [{
        session: "c",
        req: 11,
        acked: 0,
        op: { op: "append", path: 7, data: 1 },
      }],
    },
    { expire: [1, null] },
  ];
  const codes = garbage.map((g) =>
    replies(h.entry(g as EntryCommand)).map((r) =>
      r.kind === "reply" && code(r.result)
    )
  );
  assert.deepEqual(codes, [[], [], [], ["invalid"], ["invalid"], ["invalid"], [
    "unknown_op",
  ], [
    "invalid_path",
  ], []]);
  assert.ok(h.sm.hasSession("c"));
  assert.equal(h.sm.appliedIndex, h.index);
});

Deno.test("locks grant in FIFO order with fencing tokens that only grow", async (t) => {
  const h = new Harness();
  for (const s of ["a", "b", "c"]) h.open(s);

  await t.step("try-lock reports the holder without queueing", () => {
    assert.deepEqual(h.call("a", { op: "lock", path: "/l", wait: false }), {
      ok: { token: 1 },
    });
    assert.deepEqual(h.call("b", { op: "lock", path: "/l", wait: false }), {
      ok: { token: 0, holder: "a" },
    });
    assert.equal(
      code(h.call("a", { op: "lock", path: "/l", wait: true })),
      "lock_owned",
    );
  });

  let bReq = 0;
  let cReq = 0;
  await t.step(
    "waiters get no reply until granted; a retry while queued outputs nothing",
    () => {
      const b = h.request("b", { op: "lock", path: "/l", wait: true });
      const c = h.request("c", { op: "lock", path: "/l", wait: true });
      bReq = b.req;
      cReq = c.req;
      assert.deepEqual(h.entry({ batch: [b, c] }), []);
      assert.deepEqual(h.entry({ batch: [b] }), []);
      assert.equal(
        code(h.call("c", { op: "lock", path: "/l", wait: true })),
        "lock_owned",
      );
      assert.deepEqual(h.sm.read(undefined, { op: "get_lock", path: "/l" }), {
        ok: { holder: "a", token: 1, waiters: 2 },
      });
    },
  );

  await t.step("unlock with a wrong token is refused", () => {
    assert.equal(
      code(h.call("a", { op: "unlock", path: "/l", token: 7 })),
      "not_holder",
    );
    assert.equal(
      code(h.call("b", { op: "unlock", path: "/l", token: 1 })),
      "not_holder",
    );
  });

  await t.step(
    "unlock grants the next waiter under its original request number",
    () => {
      const unlock = h.request("a", { op: "unlock", path: "/l", token: 1 });
      const out = h.entry({ batch: [unlock] });
      assert.deepEqual(replies(out), [
        {
          kind: "reply",
          session: "b",
          req: bReq,
          result: { ok: { token: 2 } },
        },
        { kind: "reply", session: "a", req: unlock.req, result: { ok: null } },
      ]);
      const retry = h.entry({
        batch: [{
          session: "b",
          req: bReq,
          acked: 0,
          op: { op: "lock", path: "/l", wait: true },
        }],
      });
      assert.deepEqual(
        replyTo(retry, "b", bReq),
        { ok: { token: 2 } },
        "grant cached",
      );
    },
  );

  await t.step(
    "token 0 withdraws a queued request, which is answered as not acquired",
    () => {
      const withdraw = h.request("c", { op: "unlock", path: "/l", token: 0 });
      const out = h.entry({ batch: [withdraw] });
      assert.deepEqual(replies(out), [
        {
          kind: "reply",
          session: "c",
          req: cReq,
          result: { ok: { token: 0, holder: "b", withdrawn: true } },
        },
        {
          kind: "reply",
          session: "c",
          req: withdraw.req,
          result: { ok: null },
        },
      ]);
      assert.equal(
        code(h.call("c", { op: "unlock", path: "/l", token: 0 })),
        "not_holder",
      );
      assert.deepEqual(h.call("b", { op: "unlock", path: "/l", token: 2 }), {
        ok: null,
      });
      assert.deepEqual(h.sm.read(undefined, { op: "get_lock", path: "/l" }), {
        ok: { holder: null, token: 0, waiters: 0 },
      });
      assert.deepEqual(h.call("c", { op: "lock", path: "/l", wait: false }), {
        ok: { token: 3 },
      });
    },
  );

  await t.step("lock paths are checked", () => {
    assert.equal(
      code(h.call("a", { op: "lock", path: "/_sys/l", wait: false })),
      "reserved_path",
    );
    assert.equal(
      code(h.call("a", { op: "lock", path: "l", wait: false })),
      "invalid_path",
    );
  });
});

Deno.test("session expiry releases locks to the next waiter and withdraws its queued requests", () => {
  const h = new Harness();
  for (const s of ["a", "b", "c"]) h.open(s);
  h.call("a", { op: "lock", path: "/x", wait: false });
  h.call("a", { op: "lock", path: "/y", wait: false });
  const bx = h.request("b", { op: "lock", path: "/x", wait: true });
  const ay = h.request("c", { op: "lock", path: "/y", wait: true });
  h.entry({ batch: [bx, ay] });
  h.call("b", { op: "lock", path: "/z", wait: false });
  const az = h.request("a", { op: "lock", path: "/z", wait: true });
  h.entry({ batch: [az] });

  const out = h.entry({ expire: ["a", "a", "nobody"] });
  assert.deepEqual(out, [
    { kind: "reply", session: "b", req: bx.req, result: { ok: { token: 4 } } },
    { kind: "reply", session: "c", req: ay.req, result: { ok: { token: 5 } } },
    { kind: "expired", session: "a" },
  ]);
  assert.deepEqual(h.sm.read(undefined, { op: "get_lock", path: "/z" }), {
    ok: { holder: "b", token: 3, waiters: 0 },
  });
  assert.equal(
    code(h.sm.read("a", { op: "get_lock", path: "/z" })),
    "session_expired",
  );
  assert.deepEqual(h.sm.sessions().map((s) => s.session), ["b", "c"]);
});

Deno.test("channels number events, truncate, retain and report compaction with the first available", async (t) => {
  const h = new Harness({ retainEvents: 5 });
  h.open("c");
  const append = (path: string, data: number) =>
    ok(h.call("c", { op: "append", path, data })) as {
      seq: number;
      rev: number;
    };

  await t.step("seq per channel, rev over all channels", () => {
    assert.deepEqual(append("/a", 1), { seq: 1, rev: 1 });
    assert.deepEqual(append("/b", 2), { seq: 1, rev: 2 });
    assert.deepEqual(append("/a", 3), { seq: 2, rev: 3 });
  });

  await t.step("truncate drops a prefix and never goes past the end", () => {
    assert.deepEqual(h.call("c", { op: "truncate", path: "/a", before: 2 }), {
      ok: { first: 2 },
    });
    assert.deepEqual(h.sm.eventsFrom("/a", 1, 10), { compacted: 2 });
    const read = h.sm.read("c", { op: "read", path: "/a", from: 1, limit: 10 });
    assert.equal(code(read), "compacted");
    assert.ok("error" in read && read.error.first === 2);
    assert.deepEqual(h.call("c", { op: "truncate", path: "/a", before: 100 }), {
      ok: { first: 3 },
    });
    assert.deepEqual(h.sm.eventsFrom("/a", 3, 10), {
      events: [],
      first: 3,
      next: 3,
    });
    assert.deepEqual(
      append("/a", 4),
      { seq: 3, rev: 4 },
      "numbering continues",
    );
    assert.deepEqual(
      h.call("c", { op: "truncate", path: "/never", before: 5 }),
      { ok: { first: 1 } },
    );
  });

  await t.step("retention drops the oldest events automatically", () => {
    for (let i = 0; i < 10; i++) append("/r", i);
    assert.deepEqual(h.sm.eventsFrom("/r", 5, 10), { compacted: 6 });
    const read = h.sm.eventsFrom("/r", 6, 3);
    assert.ok(!("compacted" in read));
    assert.deepEqual(read.events.map((e) => e.data), [5, 6, 7]);
    assert.equal(read.first, 6);
    assert.equal(read.next, 9);
  });

  await t.step("event data is size-checked and JSON only", () => {
    const small = new Harness({ maxEventBytes: 10 });
    small.open("c");
    assert.ok(
      "ok" in small.call("c", { op: "append", path: "/a", data: "12345678" }),
    );
    assert.equal(
      code(small.call("c", { op: "append", path: "/a", data: "123456789" })),
      "too_large",
    );
    assert.equal(
      code(small.call("c", { op: "append", path: "/a", data: "ééééé" })),
      "too_large",
    );
    assert.equal(
      code(
        small.call("c", {
          op: "append",
          path: "/a",
          data: undefined as unknown as null,
        }),
      ),
      "invalid",
    );
  });
});

Deno.test("prefix reads merge channels by revision and report compaction", () => {
  const h = new Harness({ retainEvents: 3 });
  h.open("c");
  const paths = ["/p/a", "/p/b", "/q", "/p/a/deep", "/pp", "/p/b"];
  for (const [i, path] of paths.entries()) {
    h.call("c", { op: "append", path, data: i });
  }
  const read = h.sm.eventsUnder("/p", 1, 10);
  assert.ok(!("compacted" in read));
  assert.deepEqual(read.events.map((e) => [e.path, e.rev]), [
    ["/p/a", 1],
    ["/p/b", 2],
    ["/p/a/deep", 4],
    ["/p/b", 6],
  ]);
  assert.equal(read.next, 7);
  const page = h.sm.eventsUnder("/p", 1, 2);
  assert.ok(!("compacted" in page));
  assert.deepEqual(page.events.map((e) => e.rev), [1, 2]);
  assert.equal(page.next, 3);
  const rest = h.sm.eventsUnder("/p", page.next, 2);
  assert.ok(!("compacted" in rest));
  assert.deepEqual(rest.events.map((e) => e.rev), [4, 6]);
  const all = h.sm.eventsUnder("/", 1, 100);
  assert.ok(!("compacted" in all) && all.events.length === 6);
  assert.deepEqual(h.sm.eventsUnder("/none", 3, 10), { events: [], next: 7 });

  for (let i = 0; i < 3; i++) {
    h.call("c", { op: "append", path: "/p/b", data: i }); // drops revs 2 and 6
  }
  assert.deepEqual(h.sm.eventsUnder("/p", 1, 10), { compacted: 7 });
  assert.deepEqual(h.sm.eventsUnder("/q", 1, 10), {
    events: [{ path: "/q", seq: 1, rev: 3, data: 2 }],
    next: 10,
  });
});

Deno.test("group views change by flush then view", async (t) => {
  const h = new Harness();
  for (const s of ["a", "b", "c", "d"]) h.open(s);
  const g = "/apps/kv";

  await t.step("the first join installs view 1 directly", () => {
    assert.deepEqual(h.call("a", { op: "join", group: g, member: "A" }), {
      ok: { viewId: 1 },
    });
    assert.deepEqual(h.views(g), [
      {
        type: "view",
        group: g,
        viewId: 1,
        members: [{ member: "A", session: "a" }],
        joined: ["A"],
        left: [],
      },
    ]);
    assert.equal(
      code(h.call("a", { op: "join", group: g, member: "A" })),
      "membership",
    );
  });

  await t.step(
    "a second join proposes view 2; the survivor flushes; it installs",
    () => {
      assert.deepEqual(h.call("b", { op: "join", group: g, member: "B" }), {
        ok: { viewId: 2 },
      });
      assert.deepEqual(h.views(g)[1], {
        type: "propose",
        group: g,
        viewId: 2,
        fromViewId: 1,
        members: [{ member: "A", session: "a" }, { member: "B", session: "b" }],
        survivors: ["A"],
        joining: ["B"],
        leaving: [],
      });
      assert.equal(
        code(h.call("b", { op: "flushed", group: g, viewId: 2, member: "B" })),
        "membership",
      );
      assert.equal(
        code(h.call("b", { op: "flushed", group: g, viewId: 2, member: "A" })),
        "membership",
        "not its member",
      );
      assert.deepEqual(
        h.call("a", { op: "flushed", group: g, viewId: 2, member: "A" }),
        { ok: null },
      );
      assert.deepEqual(h.sm.read(undefined, { op: "get_view", group: g }), {
        ok: {
          view: {
            group: g,
            viewId: 2,
            members: [{ member: "A", session: "a" }, {
              member: "B",
              session: "b",
            }],
          },
          proposal: null,
        },
      });
    },
  );

  await t.step(
    "changes during a proposal queue and form the next proposal",
    () => {
      assert.deepEqual(h.call("c", { op: "join", group: g, member: "C" }), {
        ok: { viewId: 3 },
      });
      assert.deepEqual(h.call("a", { op: "leave", group: g, member: "A" }), {
        ok: { viewId: 4 },
      });
      assert.equal(
        code(h.call("a", { op: "leave", group: g, member: "A" })),
        "membership",
      );
      assert.equal(
        code(h.call("b", { op: "leave", group: g, member: "A" })),
        "membership",
        "not its member",
      );
      h.call("a", { op: "flushed", group: g, viewId: 3, member: "A" });
      assert.equal(
        code(h.call("a", { op: "flushed", group: g, viewId: 2, member: "A" })),
        "membership",
        "stale",
      );
      h.call("b", { op: "flushed", group: g, viewId: 3, member: "B" });
      const view = h.sm.read(undefined, { op: "get_view", group: g });
      assert.deepEqual(view, {
        ok: {
          view: {
            group: g,
            viewId: 3,
            members: ["A", "B", "C"].map((m) => ({
              member: m,
              session: m.toLowerCase(),
            })),
          },
          proposal: {
            viewId: 4,
            members: [{ member: "B", session: "b" }, {
              member: "C",
              session: "c",
            }],
            survivors: ["B", "C"],
            flushed: [],
          },
        },
      });
    },
  );

  await t.step(
    "a removal during a flush restarts it under a higher view id",
    () => {
      h.call("b", { op: "flushed", group: g, viewId: 4, member: "B" });
      assert.deepEqual(
        h.call("d", {
          op: "remove",
          group: g,
          member: "C",
          reason: "suspected",
        }),
        {
          ok: { viewId: 5 },
        },
      );
      const last = h.views(g).at(-1)!;
      assert.equal(last.type, "propose");
      assert.ok(last.type === "propose");
      assert.deepEqual(last.members, [{ member: "B", session: "b" }]);
      assert.deepEqual(last.survivors, ["B"]);
      assert.deepEqual(last.leaving, ["A", "C"]);
      assert.equal(
        code(h.call("b", { op: "flushed", group: g, viewId: 4, member: "B" })),
        "membership",
      );
      h.call("b", { op: "flushed", group: g, viewId: 5, member: "B" });
      const installed = h.views(g).at(-1)!;
      assert.deepEqual(installed, {
        type: "view",
        group: g,
        viewId: 5,
        members: [{ member: "B", session: "b" }],
        joined: [],
        left: ["A", "C"],
      });
    },
  );

  await t.step("a removed member can never rejoin; one that left can", () => {
    assert.equal(
      code(h.call("c", { op: "join", group: g, member: "C" })),
      "membership",
    );
    assert.equal(
      code(
        h.call("d", { op: "remove", group: g, member: "C", reason: "again" }),
      ),
      "membership",
    );
    assert.equal(
      code(h.call("d", { op: "remove", group: g, member: "Z", reason: "who" })),
      "membership",
    );
    assert.deepEqual(h.call("a", { op: "join", group: g, member: "A" }), {
      ok: { viewId: 6 },
    });
  });

  await t.step(
    "when every member leaves the group is empty and the next join installs at once",
    () => {
      h.call("b", { op: "flushed", group: g, viewId: 6, member: "B" });
      h.call("a", { op: "leave", group: g, member: "A" });
      h.call("b", { op: "flushed", group: g, viewId: 7, member: "B" });
      assert.deepEqual(h.call("b", { op: "leave", group: g, member: "B" }), {
        ok: { viewId: 8 },
      });
      const view = h.sm.read(undefined, { op: "get_view", group: g });
      assert.deepEqual(view, {
        ok: { view: { group: g, viewId: 8, members: [] }, proposal: null },
      });
      assert.deepEqual(h.call("d", { op: "join", group: g, member: "D" }), {
        ok: { viewId: 9 },
      });
      assert.deepEqual(h.views(g).at(-1), {
        type: "view",
        group: g,
        viewId: 9,
        members: [{ member: "D", session: "d" }],
        joined: ["D"],
        left: [],
      });
    },
  );

  await t.step("group paths are checked; view channels are readable", () => {
    assert.equal(
      code(h.call("a", { op: "join", group: "/_sys/g", member: "A" })),
      "reserved_path",
    );
    assert.equal(
      code(h.call("a", { op: "join", group: "/g", member: "" })),
      "invalid",
    );
    const read = h.sm.read("a", {
      op: "read",
      path: viewChannel(g),
      from: 1,
      limit: 2,
    });
    assert.ok("ok" in read);
    assert.equal(
      code(h.call("a", { op: "append", path: viewChannel(g), data: 1 })),
      "reserved_path",
    );
    assert.deepEqual(
      h.sm.read(undefined, { op: "get_view", group: "/nothing" }),
      {
        ok: { view: null, proposal: null },
      },
    );
  });
});

Deno.test("session expiry forces members out and restarts a pending flush", () => {
  const h = new Harness();
  for (const s of ["a", "b", "c"]) h.open(s);
  const g = "/g";
  h.call("a", { op: "join", group: g, member: "A" });
  h.call("b", { op: "join", group: g, member: "B" });
  h.call("a", { op: "flushed", group: g, viewId: 2, member: "A" });
  h.call("c", { op: "join", group: g, member: "C" }); // proposal 3: survivors A, B
  h.call("a", { op: "flushed", group: g, viewId: 3, member: "A" });
  const queued = h.call("b", { op: "join", group: "/h", member: "B" });
  assert.deepEqual(queued, { ok: { viewId: 1 } });

  const out = h.entry({ expire: ["b"] });
  const proposals = events(out).map((e) => e.data as unknown as ViewEvent);
  assert.deepEqual(proposals.map((v) => [v.group, v.type, v.viewId]), [
    ["/g", "propose", 4],
    ["/h", "view", 2],
  ]);
  assert.deepEqual(out.at(-1), { kind: "expired", session: "b" });
  const view = h.sm.read(undefined, { op: "get_view", group: g });
  assert.deepEqual(view, {
    ok: {
      view: {
        group: g,
        viewId: 2,
        members: [{ member: "A", session: "a" }, { member: "B", session: "b" }],
      },
      proposal: {
        viewId: 4,
        members: [{ member: "A", session: "a" }, { member: "C", session: "c" }],
        survivors: ["A"],
        flushed: [],
      },
    },
  });
  h.call("a", { op: "flushed", group: g, viewId: 4, member: "A" });
  assert.deepEqual(h.views(g).at(-1), {
    type: "view",
    group: g,
    viewId: 4,
    members: [{ member: "A", session: "a" }, { member: "C", session: "c" }],
    joined: ["C"],
    left: ["B"],
  });
  assert.equal(
    code(h.call("a", { op: "join", group: g, member: "B" })),
    "membership",
  );
});

Deno.test("removing a queued joiner or a leaving member needs no new view", () => {
  const h = new Harness();
  for (const s of ["a", "b", "c"]) h.open(s);
  const g = "/g";
  h.call("a", { op: "join", group: g, member: "A" });
  h.call("b", { op: "join", group: g, member: "B" }); // proposal 2
  assert.deepEqual(h.call("c", { op: "join", group: g, member: "C" }), {
    ok: { viewId: 3 },
  });
  assert.deepEqual(
    h.call("a", { op: "remove", group: g, member: "C", reason: "x" }),
    { ok: { viewId: 2 } },
  );
  assert.deepEqual(h.call("b", { op: "leave", group: g, member: "B" }), {
    ok: { viewId: 3 },
  });
  h.call("a", { op: "flushed", group: g, viewId: 2, member: "A" });
  // View 2 {A, B} installed; proposal 3 {A} (B leaving) in flight.
  const before = h.views(g).length;
  assert.deepEqual(
    h.call("c", { op: "remove", group: g, member: "B", reason: "x" }),
    { ok: { viewId: 3 } },
  );
  assert.equal(h.views(g).length, before);
  h.call("a", { op: "flushed", group: g, viewId: 3, member: "A" });
  assert.deepEqual(h.views(g).at(-1), {
    type: "view",
    group: g,
    viewId: 3,
    members: [{ member: "A", session: "a" }],
    joined: [],
    left: ["B"],
  });
  assert.equal(
    code(h.call("b", { op: "join", group: g, member: "B" })),
    "membership",
  );
  assert.equal(
    code(h.call("c", { op: "join", group: g, member: "C" })),
    "membership",
  );
});

Deno.test("closing a session has the same effects as its expiry", () => {
  const run = (end: (h: Harness) => ApplyOutput[]) => {
    const h = new Harness();
    for (const s of ["a", "b"]) h.open(s);
    h.call("a", { op: "lock", path: "/l", wait: false });
    h.send("b", { op: "lock", path: "/l", wait: true });
    h.call("a", { op: "join", group: "/g", member: "A" });
    h.call("b", { op: "join", group: "/g", member: "B" });
    const out = end(h);
    return {
      out: out.filter((o) => !(o.kind === "reply" && o.session === "a")),
      state: h.sm.read(undefined, { op: "get_view", group: "/g" }),
      lock: h.sm.read(undefined, { op: "get_lock", path: "/l" }),
    };
  };
  const expired = run((h) => h.entry({ expire: ["a"] }));
  const closed = run((h) => h.send("a", { op: "close_session" }));
  assert.deepEqual(closed, expired);
  assert.deepEqual(expired.lock, { ok: { holder: "b", token: 2, waiters: 0 } });
});

/**
 * A seeded stream of entries mixing every operation, retries and expiries.
 * A shadow machine tells it which proposals are in flight, so that most
 * flush reports are right and views keep changing.
 */
function randomStream(
  seed: number,
  count: number,
  options: StateMachineOptions,
): EntryCommand[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const shadow = new OracleStateMachine(options);
  let incarnation = 0;
  const names = ["s1", "s2", "s3", "s4", "s5", "s6"];
  const opened = new Set<string>();
  const rotate = (k: number) => {
    names[k] = `s${k + 1}.${++incarnation}`;
  };
  const paths = ["/a", "/a/b", "/b", "/c/d"];
  const groups = ["/g1", "/g2"];
  let fresh = 0;
  const member = () =>
    rand() < 0.5 ? `m${Math.floor(rand() * 5)}` : `n${++fresh}`;
  const next = new Map<string, number>();
  const sent: ClientRequest[] = [];
  const entries: EntryCommand[] = [];
  /** A correct flush report for a proposal in flight, if any. */
  const goodFlush = (): { session: string; op: WriteOp } | undefined => {
    const group = pick(groups);
    const read = shadow.read(undefined, { op: "get_view", group });
    if (!("ok" in read)) return undefined;
    const { view, proposal } = read.ok as unknown as {
      view: { members: { member: string; session: string }[] } | null;
      proposal:
        | { viewId: number; survivors: string[]; flushed: string[] }
        | null;
    };
    if (proposal === null || view === null) return undefined;
    const todo = proposal.survivors.filter((m) =>
      !proposal.flushed.includes(m)
    );
    if (todo.length === 0) return undefined;
    const m = pick(todo);
    const session = view.members.find((v) => v.member === m)!.session;
    return {
      session,
      op: { op: "flushed", group, viewId: proposal.viewId, member: m },
    };
  };
  /** A member the group knows (installed or proposed), with its session. */
  const knownMember = (group: string) => {
    const read = shadow.read(undefined, { op: "get_view", group });
    if (!("ok" in read)) return undefined;
    const { view, proposal } = read.ok as unknown as {
      view: { members: { member: string; session: string }[] } | null;
      proposal: { members: { member: string; session: string }[] } | null;
    };
    const all = [...view?.members ?? [], ...proposal?.members ?? []];
    return all.length === 0 ? undefined : pick(all);
  };
  for (let i = 0; i < count; i++) {
    if (rand() < 0.03) {
      const k = Math.floor(rand() * names.length);
      const entry = { expire: [names[k]] };
      entries.push(entry);
      shadow.apply(i + 1, entry);
      if (rand() < 0.8) rotate(k);
      continue;
    }
    const batch: ClientRequest[] = [];
    const size = 1 + Math.floor(rand() * 4);
    for (let j = 0; j < size; j++) {
      if (rand() < 0.1 && sent.length > 0) {
        batch.push(pick(sent.slice(-30))); // a retry
        continue;
      }
      const k = Math.floor(rand() * names.length);
      let session = names[k];
      const r = rand();
      let op: WriteOp = !opened.has(session) || r < 0.03
        ? { op: "open_session", ttlMs: 1_000 + Math.floor(rand() * 5_000) }
        : r < 0.3
        ? {
          op: "append",
          path: pick(paths),
          data: { i, j, x: rand() < 0.5 ? "y" : [1, 2] },
        }
        : r < 0.35
        ? {
          op: "truncate",
          path: pick(paths),
          before: Math.floor(rand() * 50) + 1,
        }
        : r < 0.5
        ? { op: "lock", path: pick(paths), wait: rand() < 0.7 }
        : r < 0.6
        ? {
          op: "unlock",
          path: pick(paths),
          token: rand() < 0.3 ? 0 : Math.floor(rand() * 40),
        }
        : r < 0.72
        ? { op: "join", group: pick(groups), member: member() }
        : r < 0.78
        ? { op: "leave", group: pick(groups), member: member() }
        : r < 0.81
        ? { op: "remove", group: pick(groups), member: member(), reason: "r" }
        : r < 0.95
        ? {
          op: "flushed",
          group: pick(groups),
          viewId: 1 + Math.floor(rand() * 30),
          member: member(),
        }
        : r < 0.98
        ? {
          op: "gbcast",
          group: pick(groups),
          member: member(),
          seq: 1 + Math.floor(rand() * 4),
          data: rand() < 0.5 ? "AQI=" : "",
        }
        : { op: "close_session" };
      if (op.op === "flushed" && rand() < 0.8) {
        const good = goodFlush();
        if (good !== undefined) ({ session, op } = good);
      }
      if (
        (op.op === "leave" || op.op === "remove" || op.op === "gbcast") &&
        rand() < 0.8
      ) {
        const known = knownMember(op.group);
        if (known !== undefined) {
          op = { ...op, member: known.member };
          if (op.op !== "remove") session = known.session;
        }
      }
      const req = (next.get(session) ?? 0) + 1;
      next.set(session, req);
      const acked = Math.max(0, req - Math.floor(rand() * 5));
      opened.add(session);
      if (op.op === "close_session" && rand() < 0.8) rotate(k);
      const request = { session, req, acked, op };
      sent.push(request);
      batch.push(request);
    }
    const entry = { batch };
    entries.push(entry);
    shadow.apply(i + 1, entry);
  }
  return entries;
}

/**
 * Feeds one stream to two machines (and, from the middle, to a third
 * restored from a snapshot), checking that outputs agree and that fencing
 * tokens and view ids only grow. Returns the first machine and counters.
 */
function checkStream(
  entries: EntryCommand[],
  options: StateMachineOptions,
): {
  sm: OracleStateMachine;
  tokens: number;
  granted: number;
  installs: number;
  gbcasts: number;
} {
  const a = new OracleStateMachine(options);
  const b = new OracleStateMachine(options);
  const snapshotAt = Math.floor(entries.length / 2);
  let restored: OracleStateMachine | undefined;
  let tokens = 0;
  let granted = 0;
  let installs = 0;
  let gbcasts = 0;
  const answered = new Set<string>();
  const lastViewId = new Map<string, number>();
  for (const [i, entry] of entries.entries()) {
    const outA = a.apply(i + 1, entry);
    const outB = b.apply(i + 1, structuredClone(entry));
    assert.deepEqual(outB, outA);
    if (restored !== undefined) {
      assert.deepEqual(
        restored.apply(i + 1, entry),
        outA,
        `restored diverged at ${i + 1}`,
      );
    }
    if (i === snapshotAt) {
      const bytes = a.snapshot();
      restored = OracleStateMachine.restore(bytes, options);
      assert.equal(restored.digest(), a.digest());
      assert.deepEqual(restored.snapshot(), bytes);
    }
    for (const o of outA) {
      if (o.kind === "reply") {
        const key = `${o.session}#${o.req}`;
        const first = !answered.has(key);
        answered.add(key);
        const v = "ok" in o.result ? o.result.ok as { token?: number } : null;
        if (first && typeof v?.token === "number" && v.token > 0) {
          granted++;
          assert.ok(v.token > tokens, `token ${v.token} after ${tokens}`);
          tokens = v.token;
        }
      }
      if (o.kind === "event" && o.event.path.startsWith("/_sys/views/")) {
        const view = o.event.data as unknown as ViewEvent;
        const last = lastViewId.get(view.group) ?? 0;
        // A proposal's installation repeats its id; anything else grows.
        assert.ok(
          view.viewId > last ||
            (view.type === "view" && view.viewId === last),
          `view ids grow in ${view.group}`,
        );
        lastViewId.set(view.group, view.viewId);
        if (view.type === "view") {
          installs++;
          gbcasts += view.messages?.length ?? 0;
        }
      }
    }
  }
  assert.equal(a.digest(), b.digest());
  assert.equal(restored?.digest() ?? a.digest(), a.digest());
  return { sm: a, tokens, granted, installs, gbcasts };
}

Deno.test("replicas fed the same random stream agree on digest and outputs; snapshots round-trip", async (t) => {
  const options = { retainEvents: 20, maxPendingReplies: 16 };
  let result: ReturnType<typeof checkStream> | undefined;

  await t.step("same entries give the same outputs and digests", () => {
    result = checkStream(randomStream(0x5eed, 4_000, options), options);
    assert.ok(result.granted > 50, `only ${result.granted} lock grants`);
    assert.ok(result.installs > 50, `only ${result.installs} views installed`);
    assert.ok(result.gbcasts > 10, `only ${result.gbcasts} gbcasts delivered`);
  });

  await t.step(
    "at most one holder per lock, and held tokens never exceed the counter",
    () => {
      const { sm, tokens } = result!;
      for (const path of ["/a", "/a/b", "/b", "/c/d"]) {
        const lock = sm.read(undefined, { op: "get_lock", path });
        assert.ok("ok" in lock);
        const { holder, token } = lock.ok as {
          holder: string | null;
          token: number;
        };
        if (holder !== null) {
          assert.ok(sm.hasSession(holder) && token <= tokens);
        }
      }
    },
  );

  await t.step("twenty more seeds agree too", () => {
    for (let seed = 1; seed <= 20; seed++) {
      checkStream(randomStream(seed, 600, options), options);
    }
  });

  await t.step("a different stream gives a different digest", () => {
    const c = new OracleStateMachine(options);
    for (const [i, entry] of randomStream(7, 200, options).entries()) {
      c.apply(i + 1, entry);
    }
    assert.notEqual(c.digest(), result!.sm.digest());
  });
});

Deno.test("fencing tokens only grow, across releases, expiries and restores", () => {
  const h = new Harness();
  let last = 0;
  for (let round = 0; round < 20; round++) {
    const s = `s${round}`;
    h.open(s);
    const result = ok(
      h.call(s, { op: "lock", path: `/l${round % 3}`, wait: false }),
    ) as {
      token: number;
    };
    if (result.token > 0) {
      assert.ok(result.token > last);
      last = result.token;
    }
    if (round % 2 === 0) h.entry({ expire: [s] });
    else {h.call(s, {
        op: "unlock",
        path: `/l${round % 3}`,
        token: result.token,
      });}
    if (round === 10) h.sm = OracleStateMachine.restore(h.sm.snapshot());
  }
  assert.ok(last >= 20);
});

Deno.test("restore refuses bad snapshots and bad options", () => {
  assert.throws(
    () => OracleStateMachine.restore(new TextEncoder().encode("{}")),
    SyntaxError,
  );
  assert.throws(
    () => OracleStateMachine.restore(new Uint8Array([0xff])),
    SyntaxError,
  );
  assert.throws(() => new OracleStateMachine({ retainEvents: 0 }), RangeError);
  assert.throws(() => new OracleStateMachine({ maxSessions: 1.5 }), RangeError);
});

Deno.test("ended session ids are remembered up to the cap and sessions are capped", () => {
  const h = new Harness({ maxEndedSessions: 2, maxSessions: 2 });
  h.open("a");
  h.open("b");
  assert.equal(
    code(h.call("c", { op: "open_session", ttlMs: 5_000 })),
    "overloaded",
  );
  h.entry({ expire: ["a", "b"] });
  h.open("c");
  h.entry({ expire: ["c"] });
  assert.equal(
    code(h.call("b", { op: "open_session", ttlMs: 5_000 })),
    "session_expired",
  );
  assert.equal(
    code(h.call("c", { op: "open_session", ttlMs: 5_000 })),
    "session_expired",
  );
  h.open("a"); // forgotten: documented limit
});

Deno.test("outputs and reads are frozen: callers cannot corrupt state", () => {
  const h = new Harness();
  h.open("a");
  const out = h.send("a", { op: "join", group: "/g", member: "A" });
  const [event] = events(out);
  const view = event.data as unknown as { members: unknown[] };
  assert.throws(
    () => view.members.push({ member: "X", session: "x" }),
    TypeError,
  );
  const appended =
    events(h.send("a", { op: "append", path: "/a", data: { k: [1] } }))[0];
  assert.throws(() => {
    (appended.data as { k: number[] }).k.push(2);
  }, TypeError);
  const before = h.sm.digest();
  const read = h.sm.read(undefined, { op: "get_view", group: "/g" });
  assert.ok("ok" in read);
  assert.throws(() => {
    (read.ok as { view: { members: unknown[] } }).view.members.length = 0;
  }, TypeError);
  assert.equal(h.sm.digest(), before);
});

Deno.test("a removal raised in a view that is no longer installed is refused as stale", () => {
  const sm = new OracleStateMachine();
  let index = 0;
  const run = (session: string, req: number, op: WriteOp) =>
    sm.apply(++index, { batch: [{ session, req, acked: 0, op }] })
      .filter((o) => o.kind === "reply").map((o) =>
        (o as { result: unknown }).result
      );
  for (const s of ["a", "b", "c"]) {
    run(s, 1, { op: "open_session", ttlMs: 10_000 });
  }
  // a, b and c join one after the other: each join is a flush-then-view.
  run("a", 2, { op: "join", group: "/g", member: "a" });
  run("b", 2, { op: "join", group: "/g", member: "b" });
  run("a", 3, { op: "flushed", group: "/g", viewId: 2, member: "a" });
  run("c", 2, { op: "join", group: "/g", member: "c" });
  run("a", 4, { op: "flushed", group: "/g", viewId: 3, member: "a" });
  run("b", 3, { op: "flushed", group: "/g", viewId: 3, member: "b" });
  const view = sm.read(undefined, { op: "get_view", group: "/g" });
  assert.deepEqual(
    (view as { ok: { view: { viewId: number } } }).ok.view.viewId,
    3,
  );
  const stale = run("c", 3, {
    op: "remove",
    group: "/g",
    member: "a",
    reason: "silent",
    viewId: 2,
  });
  assert.equal(
    (stale[0] as { error: { code: string } }).error.code,
    "membership",
  );
  assert.match(
    (stale[0] as { error: { message: string } }).error.message,
    /raised in view 2, and view 3 is installed/,
  );
  assert.deepEqual(
    run("c", 4, {
      op: "remove",
      group: "/g",
      member: "a",
      reason: "silent",
      viewId: 3,
    }),
    [{ ok: { viewId: 4 } }],
  );
});
