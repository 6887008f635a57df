import assert from "node:assert/strict";
import { OracleStateMachine } from "../../oracle/state_machine.ts";
import {
  type ListOp,
  type ListPage,
  type OpResult,
  type OracleErrorResult,
  type ReadOp,
  TREE_CHANNEL,
  viewChannel,
} from "../../oracle/commands.ts";
import { Harness, ok } from "./_sm_harness.ts";

type Fields = Omit<ListOp, "op">;

function list(h: Harness, fields: Fields): ListPage<Record<string, unknown>> {
  return ok(h.sm.read(undefined, { op: "list", ...fields })) as ListPage<
    Record<string, unknown>
  >;
}

function paths(page: ListPage<Record<string, unknown>>): unknown[] {
  return page.items.map((item) => item.path ?? item.group);
}

function error(result: OpResult): OracleErrorResult {
  assert.ok("error" in result, `expected an error: ${JSON.stringify(result)}`);
  return result.error;
}

/** Reads every page of a list with `limit`; returns the pages' paths. */
function allPages(h: Harness, fields: Fields): unknown[][] {
  const pages: unknown[][] = [];
  let after: string | undefined;
  for (let i = 0; i < 100; i++) {
    const page = list(h, { ...fields, after });
    pages.push(paths(page));
    if (page.next === null) return pages;
    assert.equal(
      page.next,
      page.items.at(-1)?.path ?? page.items.at(-1)?.group,
    );
    after = page.next;
  }
  throw new Error("list did not end in 100 pages");
}

Deno.test("list locks: held locks at or under the prefix (itself included), sorted, with get_lock's fields", async (t) => {
  const h = new Harness();
  h.open("a");
  h.open("b");
  for (const path of ["/apps/b", "/apps", "/applications", "/apps/a/x"]) {
    h.call("a", { op: "lock", path, wait: false });
  }
  h.send("b", { op: "lock", path: "/apps/b", wait: true });

  await t.step("the prefix and the paths below it, in string order", () => {
    assert.deepEqual(list(h, { kind: "locks", prefix: "/apps" }), {
      items: [
        { path: "/apps", holder: "a", token: 2, waiters: 0 },
        { path: "/apps/a/x", holder: "a", token: 4, waiters: 0 },
        { path: "/apps/b", holder: "a", token: 1, waiters: 1 },
      ],
      next: null,
    });
  });

  await t.step("each entry is what get_lock reads, plus the path", () => {
    for (const item of list(h, { kind: "locks", prefix: "/" }).items) {
      const { path, ...rest } = item;
      assert.deepEqual(
        ok(h.sm.read(undefined, { op: "get_lock", path: path as string })),
        rest,
      );
    }
  });

  await t.step("an exact path with nothing below it lists just itself", () => {
    assert.deepEqual(paths(list(h, { kind: "locks", prefix: "/apps/a/x" })), [
      "/apps/a/x",
    ]);
    assert.deepEqual(list(h, { kind: "locks", prefix: "/nothing" }), {
      items: [],
      next: null,
    });
  });

  await t.step("a lock nobody holds is not listed", () => {
    h.call("a", { op: "unlock", path: "/applications", token: 3 });
    assert.deepEqual(paths(list(h, { kind: "locks", prefix: "/" })), [
      "/apps",
      "/apps/a/x",
      "/apps/b",
    ]);
    h.entry({ expire: ["a"] });
    assert.deepEqual(list(h, { kind: "locks", prefix: "/" }).items, [
      { path: "/apps/b", holder: "b", token: 5, waiters: 0 },
    ]);
  });
});

Deno.test("list channels: first retained and last appended sequence numbers; first is last + 1 when nothing is retained", async (t) => {
  const h = new Harness({ retainEvents: 2 });
  h.open("c");
  for (let i = 0; i < 3; i++) {
    h.call("c", { op: "append", path: "/ch/kept", data: i });
  }
  h.call("c", { op: "append", path: "/ch/one", data: 0 });
  h.call("c", { op: "append", path: "/ch/gone", data: 0 });
  h.call("c", { op: "append", path: "/ch/gone", data: 1 });
  h.call("c", { op: "truncate", path: "/ch/gone", before: 10 });
  h.call("c", { op: "join", group: "/g", member: "m" });

  await t.step("retention and truncation show in the numbers", () => {
    assert.deepEqual(list(h, { kind: "channels", prefix: "/ch" }), {
      items: [
        { path: "/ch/gone", first: 3, last: 2 },
        { path: "/ch/kept", first: 2, last: 3 },
        { path: "/ch/one", first: 1, last: 1 },
      ],
      next: null,
    });
  });

  await t.step("the numbers match what read reports", () => {
    const read = ok(
      h.sm.read(undefined, {
        op: "read",
        path: "/ch/kept",
        from: 2,
        limit: 10,
      }),
    ) as { first: number; next: number };
    assert.deepEqual([read.first, read.next - 1], [2, 3]);
  });

  await t.step("/ covers view channels too; /_sys lists only them", () => {
    assert.deepEqual(paths(list(h, { kind: "channels", prefix: "/" })), [
      viewChannel("/g"),
      "/ch/gone",
      "/ch/kept",
      "/ch/one",
    ]);
    assert.deepEqual(list(h, { kind: "channels", prefix: "/_sys" }).items, [
      { path: viewChannel("/g"), first: 1, last: 1 },
    ]);
  });
});

Deno.test("list groups: installed view id and members, the proposal in flight, from what get_view reads", () => {
  const h = new Harness();
  for (const s of ["a", "b", "c"]) h.open(s);
  h.call("a", { op: "join", group: "/g/one", member: "a1" });
  h.call("b", { op: "join", group: "/g/one", member: "b1" });
  h.call("a", { op: "join", group: "/g/two", member: "a2" });
  // b1's join is proposal 2: a1 flushes, view 2 has a1 and b1; c1's join
  // is then proposal 3, in flight until both flush.
  assert.deepEqual(
    h.call("a", { op: "flushed", group: "/g/one", viewId: 2, member: "a1" }),
    { ok: null },
  );
  h.call("c", { op: "join", group: "/g/one", member: "c1" });
  const view = ok(h.sm.read(undefined, { op: "get_view", group: "/g/one" }));
  const { view: installed, proposal } = view as {
    view: { viewId: number; members: unknown[] };
    proposal: { viewId: number };
  };
  assert.deepEqual(list(h, { kind: "groups", prefix: "/g" }), {
    items: [
      {
        group: "/g/one",
        viewId: installed.viewId,
        members: installed.members,
        proposal: proposal.viewId,
      },
      {
        group: "/g/two",
        viewId: 1,
        members: [{ member: "a2", session: "a" }],
        proposal: null,
      },
    ],
    next: null,
  });
  assert.deepEqual(installed.viewId, 2);
  assert.deepEqual(installed.members.length, 2);
  assert.equal(proposal.viewId, 3);
});

Deno.test("list pages with after and next across more than limit entries; the default limit is 100", async (t) => {
  const h = new Harness();
  h.open("c");
  const all: string[] = [];
  for (let i = 0; i < 250; i++) {
    const path = `/p/${String(i).padStart(3, "0")}`;
    all.push(path);
    h.call("c", { op: "lock", path, wait: false });
  }
  h.call("c", { op: "lock", path: "/q", wait: false });

  await t.step(
    "without limit, pages of 100; next is the last item's path",
    () => {
      const first = list(h, { kind: "locks", prefix: "/p" });
      assert.equal(first.items.length, 100);
      assert.equal(first.next, "/p/099");
      const pages = allPages(h, { kind: "locks", prefix: "/p" });
      assert.deepEqual(pages.map((p) => p.length), [100, 100, 50]);
      assert.deepEqual(pages.flat(), all);
    },
  );

  await t.step(
    "a page that ends exactly at the last entry has next null",
    () => {
      const pages = allPages(h, { kind: "locks", prefix: "/p", limit: 125 });
      assert.deepEqual(pages.map((p) => p.length), [125, 125]);
      assert.deepEqual(pages.flat(), all);
    },
  );

  await t.step("limits 1 and 1000 are accepted", () => {
    assert.deepEqual(list(h, { kind: "locks", prefix: "/p", limit: 1 }), {
      items: [{ path: "/p/000", holder: "c", token: 1, waiters: 0 }],
      next: "/p/000",
    });
    const big = list(h, { kind: "locks", prefix: "/", limit: 1000 });
    assert.equal(big.items.length, 251);
    assert.equal(big.next, null);
  });

  await t.step(
    "after is strictly after, and need not be an entry or under the prefix",
    () => {
      assert.deepEqual(
        paths(list(h, { kind: "locks", prefix: "/p", after: "/p/247" })),
        ["/p/248", "/p/249"],
      );
      assert.deepEqual(
        paths(list(h, { kind: "locks", prefix: "/p", after: "/p/247x" })),
        ["/p/248", "/p/249"],
      );
      assert.equal(
        list(h, { kind: "locks", prefix: "/p", after: "/a" }).items.length,
        100,
      );
      assert.deepEqual(
        list(h, { kind: "locks", prefix: "/p", after: "/q" }),
        { items: [], next: null },
      );
    },
  );
});

Deno.test("list refuses bad fields with invalid or invalid_path, naming the field and the value", () => {
  const sm = new OracleStateMachine();
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [
      { kind: "files", prefix: "/a" },
      "invalid",
      /Field "kind" must be one of "locks", "channels", "groups", got "files"/,
    ],
    [{ prefix: "/a" }, "invalid", /Field "kind".*got undefined/],
    [{ kind: "locks", prefix: "a" }, "invalid_path", /Field "prefix".*"\/"/],
    [{ kind: "locks" }, "invalid_path", /Field "prefix".*expected a string/],
    [{ kind: "locks", prefix: "/a//b" }, "invalid_path", /empty segment/],
    [
      { kind: "locks", prefix: "/a", after: "/" },
      "invalid_path",
      /Field "after".*root/,
    ],
    [
      { kind: "locks", prefix: "/a", after: 3 },
      "invalid_path",
      /Field "after"/,
    ],
    [
      { kind: "locks", prefix: "/a", limit: 0 },
      "invalid",
      /Field "limit" must be an integer from 1 to 1000, got 0/,
    ],
    [
      { kind: "locks", prefix: "/a", limit: 1001 },
      "invalid",
      /Field "limit" must be an integer from 1 to 1000, got 1001/,
    ],
    [
      { kind: "locks", prefix: "/a", limit: 2.5 },
      "invalid",
      /got 2\.5/,
    ],
    [
      { kind: "locks", prefix: "/a", limit: "10" },
      "invalid",
      /Field "limit"/,
    ],
  ];
  for (const [fields, code, message] of cases) {
    const result = sm.read(
      undefined,
      { op: "list", ...fields } as unknown as ReadOp,
    );
    const refused = error(result);
    assert.equal(refused.code, code, JSON.stringify(fields));
    assert.match(refused.message, message, JSON.stringify(fields));
  }
  // `/` is a valid prefix, and a reserved one can be listed.
  for (const prefix of ["/", "/_sys", "/_sys/views"]) {
    assert.ok(
      "ok" in sm.read(undefined, { op: "list", kind: "groups", prefix }),
    );
  }
});

Deno.test("list in a tree: a prefix another group owns is refused like a read; above a delegation, only this group's entries", async (t) => {
  const h = new Harness();
  h.open("c");
  h.call("c", { op: "lock", path: "/b/l", wait: false });
  h.call("c", { op: "join", group: "/b/g", member: "m" });
  const replicas = { c1: "10.0.0.1:7000" };
  assert.deepEqual(
    h.call("c", { op: "delegate", prefix: "/a", group: "A", replicas }),
    { ok: null },
  );

  await t.step("a root: at or under the delegated prefix is moved", () => {
    for (const prefix of ["/a", "/a/x", viewChannel("/a/g")]) {
      const refused = error(
        h.sm.read(undefined, { op: "list", kind: "locks", prefix }),
      );
      assert.equal(refused.code, "moved", prefix);
      assert.equal(refused.delegation?.group, "A");
    }
  });

  await t.step("a root: / lists what the root holds", () => {
    assert.deepEqual(paths(list(h, { kind: "locks", prefix: "/" })), ["/b/l"]);
    assert.deepEqual(paths(list(h, { kind: "groups", prefix: "/" })), [
      "/b/g",
    ]);
    assert.deepEqual(paths(list(h, { kind: "channels", prefix: "/_sys" })), [
      TREE_CHANNEL,
      viewChannel("/b/g"),
    ]);
  });

  const child = new Harness({ treeRoot: false });
  child.entry({ adopt: ["/a"] });
  child.open("c");
  child.call("c", { op: "lock", path: "/a/l", wait: false });
  child.call("c", { op: "append", path: "/a/ch", data: 1 });

  await t.step(
    "a child: what it did not adopt is not_owner, / included",
    () => {
      for (const prefix of ["/", "/b", "/ab"]) {
        const refused = error(
          child.sm.read(undefined, { op: "list", kind: "locks", prefix }),
        );
        assert.equal(refused.code, "not_owner", prefix);
      }
    },
  );

  await t.step("a child: its adopted prefix and /_sys list its entries", () => {
    assert.deepEqual(paths(list(child, { kind: "locks", prefix: "/a" })), [
      "/a/l",
    ]);
    assert.deepEqual(paths(list(child, { kind: "channels", prefix: "/a" })), [
      "/a/ch",
    ]);
    assert.deepEqual(
      paths(list(child, { kind: "channels", prefix: "/_sys" })),
      [TREE_CHANNEL],
    );
  });

  await t.step("a child that delegated further lists only its own part", () => {
    assert.deepEqual(
      child.call("c", {
        op: "delegate",
        prefix: "/a/deep",
        group: "B",
        replicas,
      }),
      { ok: null },
    );
    assert.deepEqual(paths(list(child, { kind: "locks", prefix: "/a" })), [
      "/a/l",
    ]);
    const refused = error(
      child.sm.read(undefined, {
        op: "list",
        kind: "locks",
        prefix: "/a/deep/x",
      }),
    );
    assert.equal(refused.code, "moved");
    assert.equal(refused.delegation?.group, "B");
  });
});

Deno.test("list checks the reader's session like every read, and survives a snapshot round trip", () => {
  const h = new Harness();
  h.open("c");
  h.call("c", { op: "lock", path: "/x", wait: false });
  const op: ReadOp = { op: "list", kind: "locks", prefix: "/" };
  assert.equal(error(h.sm.read("nobody", op)).code, "session_expired");
  const copy = OracleStateMachine.restore(h.sm.snapshot());
  assert.deepEqual(copy.read("c", op), h.sm.read("c", op));
});
