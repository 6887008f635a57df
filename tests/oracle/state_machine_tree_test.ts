import assert from "node:assert/strict";
import {
  type ApplyOutput,
  OracleStateMachine,
  type StateMachineOptions,
} from "../../oracle/state_machine.ts";
import {
  type Delegation,
  type EntryCommand,
  type OpResult,
  type OracleErrorResult,
  type ReadOp,
  TREE_CHANNEL,
  viewChannel,
  type WriteOp,
} from "../../oracle/commands.ts";

const REPLICAS: Record<string, string> = {
  c2: "10.0.0.2:7000",
  c1: "10.0.0.1:7000",
};
/** How the state machine stores a delegation: replicas sorted by id. */
const CHILD_A: Delegation = {
  prefix: "/a",
  group: "child-a",
  replicas: { c1: "10.0.0.1:7000", c2: "10.0.0.2:7000" },
};

/** Drives a state machine with one session, "c", numbering entries and requests. */
class Driver {
  readonly sm: OracleStateMachine;
  index = 0;
  req = 0;

  constructor(options?: StateMachineOptions) {
    this.sm = new OracleStateMachine(options);
    this.call({ op: "open_session", ttlMs: 5_000 });
  }

  entry(command: EntryCommand): ApplyOutput[] {
    return this.sm.apply(++this.index, command);
  }

  /** Applies one write in its own entry; returns every output. */
  send(op: WriteOp, req = ++this.req): ApplyOutput[] {
    return this.entry({ batch: [{ session: "c", req, acked: 0, op }] });
  }

  /** Applies one write and returns its reply. */
  call(op: WriteOp, req = ++this.req): OpResult {
    const reply = this.send(op, req).find((o) =>
      o.kind === "reply" && o.req === req
    );
    assert.ok(reply?.kind === "reply", `no reply to ${op.op}`);
    return reply.result;
  }

  read(op: ReadOp): OpResult {
    return this.sm.read("c", op);
  }

  delegate(prefix: string, group = "child-a", replicas = REPLICAS): OpResult {
    return this.call({ op: "delegate", prefix, group, replicas });
  }
}

function error(result: OpResult): OracleErrorResult {
  assert.ok(
    "error" in result,
    `expected an error, got ${JSON.stringify(result)}`,
  );
  return result.error;
}

function treeEvents(sm: OracleStateMachine): unknown[] {
  const read = sm.eventsFrom(TREE_CHANNEL, 1, 100);
  assert.ok(!("compacted" in read));
  return read.events.map((e) => e.data);
}

const MOVED = (path: string): OracleErrorResult => ({
  code: "moved",
  message:
    `Path "${path}" belongs to Oracle group "child-a" (prefix "/a" was delegated to it): send it there`,
  delegation: CHILD_A,
});

Deno.test("a root owns every path it did not delegate; a delegated path answers moved with the delegation", async (t) => {
  const d = new Driver();
  assert.deepEqual(d.delegate("/a"), { ok: null });

  await t.step(
    "every write on a path at or under the prefix is refused",
    () => {
      const writes: [WriteOp, string][] = [
        [{ op: "append", path: "/a", data: 1 }, "/a"],
        [{ op: "append", path: "/a/x", data: 1 }, "/a/x"],
        [{ op: "truncate", path: "/a/x", before: 2 }, "/a/x"],
        [{ op: "lock", path: "/a/l", wait: true }, "/a/l"],
        [{ op: "unlock", path: "/a/l", token: 1 }, "/a/l"],
        [{ op: "join", group: "/a/g", member: "m" }, "/a/g"],
        [{ op: "leave", group: "/a/g", member: "m" }, "/a/g"],
        [{ op: "remove", group: "/a/g", member: "m", reason: "" }, "/a/g"],
        [{ op: "flushed", group: "/a/g", viewId: 1, member: "m" }, "/a/g"],
      ];
      for (const [op, path] of writes) {
        const out = d.send(op);
        assert.deepEqual(out, [{
          kind: "reply",
          session: "c",
          req: d.req,
          result: { error: MOVED(path) },
        }], op.op);
      }
    },
  );

  await t.step(
    "a refused write is cached: its retry gets the same error",
    () => {
      const req = ++d.req;
      const first = d.call({ op: "append", path: "/a/y", data: 1 }, req);
      assert.deepEqual(first, { error: MOVED("/a/y") });
      assert.deepEqual(
        d.call({ op: "append", path: "/a/y", data: 1 }, req),
        first,
      );
    },
  );

  await t.step(
    "reads of the subtree, view channels included, are refused",
    () => {
      assert.deepEqual(
        d.read({ op: "read", path: "/a/x", from: 1, limit: 10 }),
        {
          error: MOVED("/a/x"),
        },
      );
      assert.deepEqual(d.read({ op: "get_lock", path: "/a/l" }), {
        error: MOVED("/a/l"),
      });
      assert.deepEqual(d.read({ op: "get_view", group: "/a/g" }), {
        error: MOVED("/a/g"),
      });
      const views = viewChannel("/a/g");
      assert.deepEqual(
        d.read({ op: "read", path: views, from: 1, limit: 10 }),
        {
          error: MOVED(views),
        },
      );
      assert.equal(d.sm.owner(views)?.code, "moved");
    },
  );

  await t.step(
    "paths outside the prefix and the system channels stay here",
    () => {
      for (const path of ["/b", "/ab", "/a-b/c"]) {
        assert.ok("ok" in d.call({ op: "append", path, data: 1 }), path);
        assert.equal(d.sm.owner(path), undefined, path);
      }
      assert.ok("ok" in d.call({ op: "join", group: "/b/g", member: "m" }));
      const views = viewChannel("/b/g");
      assert.ok(
        "ok" in d.read({ op: "read", path: views, from: 1, limit: 10 }),
      );
      for (const path of [TREE_CHANNEL, "/_sys", "/_sys/views"]) {
        assert.ok(
          "ok" in d.read({ op: "read", path, from: 1, limit: 10 }),
          path,
        );
      }
      assert.equal(d.sm.owner("/"), undefined);
    },
  );

  await t.step("nothing was written under the prefix", () => {
    const read = d.sm.eventsUnder("/a", 1, 100);
    assert.ok(!("compacted" in read));
    assert.deepEqual(read.events, []);
  });
});

Deno.test("a child owns only the prefixes it adopted", async (t) => {
  const d = new Driver({ treeRoot: false });

  await t.step("before adopting, every path is not_owner", () => {
    assert.deepEqual(d.call({ op: "append", path: "/a/x", data: 1 }), {
      error: {
        code: "not_owner",
        message:
          `This Oracle group does not own "/a/x" (it owns nothing yet): resolve the path from the root again`,
      },
    });
    assert.equal(
      error(d.read({ op: "get_lock", path: "/a/x" })).code,
      "not_owner",
    );
    assert.deepEqual(d.sm.ownedPrefixes(), []);
  });

  await t.step(
    "adopt skips invalid, reserved and owned prefixes, and records each adoption",
    () => {
      const out = d.entry({
        adopt: ["/b", "/", "/_sys/x", "bad", "/a", "/b", "/a/z"],
      });
      assert.deepEqual(
        out.map((o) => o.kind === "event" ? [o.event.path, o.event.data] : o),
        [
          [TREE_CHANNEL, { type: "adopt", prefix: "/b" }],
          [TREE_CHANNEL, { type: "adopt", prefix: "/a" }],
        ],
      );
      assert.deepEqual(d.sm.ownedPrefixes(), ["/a", "/b"]);
      assert.deepEqual(d.entry({ adopt: ["/a"] }), []);
    },
  );

  await t.step("adopted paths are served, others are not_owner", () => {
    assert.ok("ok" in d.call({ op: "append", path: "/a/x", data: 1 }));
    assert.ok("ok" in d.call({ op: "lock", path: "/b", wait: false }));
    assert.deepEqual(d.read({ op: "get_lock", path: "/x" }), {
      error: {
        code: "not_owner",
        message:
          `This Oracle group does not own "/x" (it owns "/a", "/b"): resolve the path from the root again`,
      },
    });
    const views = viewChannel("/x/g");
    assert.equal(
      error(d.read({ op: "read", path: views, from: 1, limit: 1 })).code,
      "not_owner",
    );
    assert.ok(
      "ok" in d.read({ op: "read", path: TREE_CHANNEL, from: 1, limit: 10 }),
    );
  });

  await t.step("a child delegates under what it owns, not elsewhere", () => {
    assert.equal(error(d.delegate("/x")).code, "not_owner");
    assert.deepEqual(d.delegate("/a/sub", "grandchild"), { ok: null });
    assert.equal(d.sm.owner("/a/sub/y")?.delegation?.group, "grandchild");
    assert.deepEqual(d.read({ op: "get_tree" }), {
      ok: {
        owns: ["/a", "/b"],
        delegations: [{ ...CHILD_A, prefix: "/a/sub", group: "grandchild" }],
        tokens: 1,
      },
    });
  });

  await t.step(
    "adopting continues the tokens above the parent's, never lowers them",
    () => {
      const child = new Driver({ treeRoot: false });
      child.entry({ adopt: ["/p"], tokens: 50 });
      assert.deepEqual(child.call({ op: "lock", path: "/p/l", wait: false }), {
        ok: { token: 51 },
      });
      child.entry({ adopt: ["/q"], tokens: 7 });
      child.call({ op: "unlock", path: "/p/l", token: 51 });
      assert.deepEqual(child.call({ op: "lock", path: "/q/l", wait: false }), {
        ok: { token: 52 },
      });
    },
  );

  await t.step("a root ignores adopt entries", () => {
    const root = new Driver();
    assert.deepEqual(root.entry({ adopt: ["/a"] }), []);
    assert.deepEqual(root.sm.ownedPrefixes(), ["/"]);
    assert.deepEqual(treeEvents(root.sm), []);
  });
});

Deno.test("delegate appends to the tree channel, outputs the delegation, and is idempotent", () => {
  const d = new Driver();
  const out = d.send({
    op: "delegate",
    prefix: "/a",
    group: "child-a",
    replicas: REPLICAS,
  });
  assert.deepEqual(out, [
    {
      kind: "event",
      event: {
        path: TREE_CHANNEL,
        seq: 1,
        rev: 1,
        data: { type: "delegate", ...CHILD_A },
      },
    },
    { kind: "delegated", delegation: CHILD_A },
    { kind: "reply", session: "c", req: d.req, result: { ok: null } },
  ]);
  // The same delegation again, replicas in another order: no new event.
  const again = d.send({
    op: "delegate",
    prefix: "/a",
    group: "child-a",
    replicas: { c1: "10.0.0.1:7000", c2: "10.0.0.2:7000" },
  });
  assert.deepEqual(again, [
    { kind: "reply", session: "c", req: d.req, result: { ok: null } },
  ]);
  assert.equal(treeEvents(d.sm).length, 1);
});

Deno.test("delegate refuses what cannot be handed over, saying why", async (t) => {
  const d = new Driver();
  assert.deepEqual(d.delegate("/a"), { ok: null });

  await t.step("a delegation cannot move or change", () => {
    assert.deepEqual(error(d.delegate("/a", "other")), {
      code: "delegation",
      message:
        `Cannot delegate "/a" to Oracle group "other": it is delegated to Oracle group "child-a" already, and moving a delegation is not supported`,
    });
    for (
      const replicas of [
        { c1: "10.0.0.1:7000", c2: "10.0.0.9:7000" } as Record<string, string>,
        { c1: "10.0.0.1:7000", c3: "10.0.0.2:7000" },
        { c1: "10.0.0.1:7000" },
      ]
    ) {
      const changed = error(d.delegate("/a", "child-a", replicas));
      assert.equal(changed.code, "delegation");
      assert.match(changed.message, /changing a delegation is not supported/);
    }
  });

  await t.step("a prefix under a delegation answers moved", () => {
    assert.deepEqual(error(d.delegate("/a/b")), MOVED("/a/b"));
  });

  await t.step("a prefix above a delegation is refused", () => {
    assert.ok("ok" in d.delegate("/p/q", "child-q"));
    assert.deepEqual(error(d.delegate("/p")), {
      code: "delegation",
      message:
        `Cannot delegate "/p" to Oracle group "child-a": "/p/q" under it is delegated to Oracle group "child-q" already`,
    });
  });

  await t.step(
    "state under the prefix is refused: channels, view channels, locks",
    () => {
      const state: [WriteOp, string, string][] = [
        [{ op: "append", path: "/c", data: 1 }, "/c", `channel "/c"`],
        [{ op: "append", path: "/d/x/y", data: 1 }, "/d", `channel "/d/x/y"`],
        [
          { op: "join", group: "/e/g", member: "m" },
          "/e",
          `channel "/_sys/views/e/g"`,
        ],
        [{ op: "lock", path: "/f/l", wait: false }, "/f", `lock "/f/l"`],
      ];
      for (const [op, prefix, what] of state) {
        assert.ok("ok" in d.call(op), op.op);
        assert.deepEqual(error(d.delegate(prefix)), {
          code: "delegation",
          message:
            `Cannot delegate "${prefix}" to Oracle group "child-a": this group holds state under it (${what}); only a subtree this group never used can be delegated`,
        });
      }
      // A truncated channel still had events.
      d.call({ op: "truncate", path: "/c", before: 10 });
      assert.equal(error(d.delegate("/c")).code, "delegation");
    },
  );

  await t.step(
    "a sibling with a common string prefix is no state under it",
    () => {
      assert.ok("ok" in d.call({ op: "append", path: "/gg", data: 1 }));
      assert.ok("ok" in d.delegate("/g"));
    },
  );

  await t.step("fields are checked", () => {
    const cases: [WriteOp, string][] = [
      [
        { op: "delegate", prefix: "/", group: "g", replicas: REPLICAS },
        "invalid_path",
      ],
      [
        { op: "delegate", prefix: "/_sys/x", group: "g", replicas: REPLICAS },
        "reserved_path",
      ],
      [
        { op: "delegate", prefix: "/h", group: "", replicas: REPLICAS },
        "invalid",
      ],
      [{
        op: "delegate",
        prefix: "/h",
        group: "x".repeat(129),
        replicas: REPLICAS,
      }, "invalid"],
      [{ op: "delegate", prefix: "/h", group: "g", replicas: {} }, "invalid"],
      [
        { op: "delegate", prefix: "/h", group: "g", replicas: { r: "" } },
        "invalid",
      ],
      [
        { op: "delegate", prefix: "/h", group: "g", replicas: { "": "h:1" } },
        "invalid",
      ],
      [{
        op: "delegate",
        prefix: "/h",
        group: "g",
        replicas: { r: "h".repeat(256) },
      }, "invalid"],
      [{
        op: "delegate",
        prefix: "/h",
        group: "g",
        replicas: Object.fromEntries(
          Array.from({ length: 10 }, (_, i) => [`r${i}`, "h:1"]),
        ),
      }, "invalid"],
      [
        {
          op: "delegate",
          prefix: "/h",
          group: "g",
          replicas: ["h:1"],
        } as unknown as WriteOp,
        "invalid",
      ],
    ];
    for (const [op, code] of cases) {
      assert.equal(error(d.call(op)).code, code, JSON.stringify(op));
    }
    assert.equal(d.sm.owner("/h"), undefined);
  });

  await t.step("refusals appended nothing", () => {
    assert.deepEqual(
      treeEvents(d.sm).map((e) => (e as Delegation).prefix),
      ["/a", "/p/q", "/g"],
    );
  });
});

Deno.test("get_tree lists sorted delegations; ended_sessions lists ids not live here", async (t) => {
  const d = new Driver();
  d.delegate("/z", "child-z");
  d.delegate("/b", "child-b", { r: "h:1" });

  await t.step("get_tree", () => {
    assert.deepEqual(d.read({ op: "get_tree" }), {
      ok: {
        owns: ["/"],
        delegations: [
          { prefix: "/b", group: "child-b", replicas: { r: "h:1" } },
          { ...CHILD_A, prefix: "/z", group: "child-z" },
        ],
        tokens: 0,
      },
    });
  });

  await t.step("ended_sessions", () => {
    d.entry({
      batch: [
        {
          session: "e",
          req: 1,
          acked: 0,
          op: { op: "open_session", ttlMs: 5_000 },
        },
        { session: "e", req: 2, acked: 0, op: { op: "close_session" } },
        {
          session: "x",
          req: 1,
          acked: 0,
          op: { op: "open_session", ttlMs: 5_000 },
        },
      ],
    });
    d.entry({ expire: ["x"] });
    assert.deepEqual(
      d.read({ op: "ended_sessions", sessions: ["e", "c", "never", "x", "c"] }),
      { ok: { ended: ["e", "never", "x"] } },
    );
    assert.deepEqual(
      d.sm.read(undefined, { op: "ended_sessions", sessions: ["c"] }),
      { ok: { ended: [] } },
    );
    assert.deepEqual(d.sm.liveSessions(), ["c"]);
  });

  await t.step("ended_sessions checks its list", () => {
    for (
      const sessions of [[], Array.from({ length: 1001 }, (_, i) => `s${i}`), [
        1,
      ], "c"]
    ) {
      const op = { op: "ended_sessions", sessions } as unknown as ReadOp;
      assert.equal(error(d.read(op)).code, "invalid");
    }
    const max = Array.from({ length: 1000 }, (_, i) => `s${i}`);
    assert.ok("ok" in d.read({ op: "ended_sessions", sessions: max }));
  });
});

Deno.test("snapshots keep the tree; version 1 snapshots restore with an empty one", async (t) => {
  const d = new Driver({ treeRoot: false });
  d.entry({ adopt: ["/a", "/b"] });
  d.delegate("/a/sub", "grandchild");

  await t.step("a version 2 snapshot round-trips", () => {
    const bytes = d.sm.snapshot();
    const body = JSON.parse(new TextDecoder().decode(bytes));
    assert.equal(body.v, 2);
    const copy = OracleStateMachine.restore(bytes, { treeRoot: false });
    assert.equal(copy.digest(), d.sm.digest());
    assert.deepEqual(
      copy.read(undefined, { op: "get_tree" }),
      d.read({ op: "get_tree" }),
    );
    assert.equal(copy.owner("/a/sub/x")?.code, "moved");
    assert.equal(copy.owner("/b/x"), undefined);
    assert.equal(copy.owner("/c")?.code, "not_owner");
  });

  await t.step(
    "a version 1 snapshot restores with nothing adopted or delegated",
    () => {
      const root = new Driver();
      root.call({ op: "append", path: "/x", data: 1 });
      const body = JSON.parse(new TextDecoder().decode(root.sm.snapshot()));
      delete body.tree;
      body.v = 1;
      const v1 = new TextEncoder().encode(JSON.stringify(body));
      const asRoot = OracleStateMachine.restore(v1);
      assert.deepEqual(asRoot.read(undefined, { op: "get_tree" }), {
        ok: { owns: ["/"], delegations: [], tokens: 0 },
      });
      assert.ok(
        "ok" in asRoot.read("c", { op: "read", path: "/x", from: 1, limit: 1 }),
      );
      const asChild = OracleStateMachine.restore(v1, { treeRoot: false });
      assert.equal(asChild.owner("/x")?.code, "not_owner");
    },
  );

  await t.step(
    "a version 2 snapshot without its tree, or another version, is refused",
    () => {
      const body = JSON.parse(new TextDecoder().decode(d.sm.snapshot()));
      for (const bad of [{ ...body, tree: undefined }, { ...body, v: 3 }]) {
        assert.throws(
          () =>
            OracleStateMachine.restore(
              new TextEncoder().encode(JSON.stringify(bad)),
            ),
          SyntaxError,
        );
      }
    },
  );

  await t.step("the digest covers the tree", () => {
    const body = JSON.parse(new TextDecoder().decode(d.sm.snapshot()));
    const encode = (b: unknown) => new TextEncoder().encode(JSON.stringify(b));
    const fewerOwned = { ...body, tree: { ...body.tree, owns: ["/a"] } };
    const noDelegation = { ...body, tree: { ...body.tree, delegations: [] } };
    const options = { treeRoot: false };
    const base = OracleStateMachine.restore(encode(body), options).digest();
    assert.notEqual(
      OracleStateMachine.restore(encode(fewerOwned), options).digest(),
      base,
    );
    assert.notEqual(
      OracleStateMachine.restore(encode(noDelegation), options).digest(),
      base,
    );
  });
});
