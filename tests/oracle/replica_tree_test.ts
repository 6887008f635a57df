import assert from "node:assert/strict";
import { type SimNodeEnv, Simulation } from "../../sim/mod.ts";
import type {
  Delegation,
  OracleErrorResult,
  OracleOp,
} from "../../oracle/commands.ts";
import {
  OracleReplica,
  type OracleTreeLink,
  type OracleTreeUpstream,
} from "../../oracle/replica.ts";
import type { ReplicaToClientFrame } from "../../oracle/wire.ts";

const DELEGATION: Delegation = {
  prefix: "/a",
  group: "child",
  replicas: { c1: "10.0.0.1:7000" },
};

/** Replicas of one group in a simulation, with options for a child group. */
function group(
  ids: string[],
  options: { root?: boolean; tree?: (id: string) => OracleTreeLink } = {},
) {
  const sim = new Simulation({ seed: 7, latency: { kind: "constant", ms: 1 } });
  const replicas = new Map<string, OracleReplica>();
  for (const id of ids) {
    sim.addNode(id, (env) => {
      const replica = OracleReplica.open({
        id,
        replicas: ids,
        transport: env.transport,
        storage: env.storage,
        clock: env.clock,
        random: env.random,
        stateMachine: { treeRoot: options.root ?? true },
        tree: options.tree?.(id),
      });
      replicas.set(id, replica);
      return { stop: () => replica.stop() };
    }, { down: true });
  }
  for (const id of ids) sim.start(id);
  const leader = () => [...replicas.values()].find((r) => r.isLeader);
  return { sim, replicas, leader };
}

/** A client node that sends raw frames and keeps every frame it receives. */
function rawClient(sim: Simulation, name = "c") {
  const frames: ReplicaToClientFrame[] = [];
  let env: SimNodeEnv | undefined;
  sim.addNode(name, (e) => {
    env = e;
    e.transport.setHandler({
      onFrame: (_from, payload) =>
        frames.push(JSON.parse(new TextDecoder().decode(payload))),
    });
    return {};
  });
  const send = (to: string, frame: unknown) =>
    env!.transport.send(to, new TextEncoder().encode(JSON.stringify(frame)));
  let r = 0;
  /** Sends a request of session `s` and waits for its reply. */
  const call = async (to: string, s: string, op: OracleOp) => {
    const req = ++r;
    send(to, { t: "req", s, r: req, a: 0, op });
    const reply = () =>
      frames.find((f) => f.t === "res" && f.r === req) as
        | { ok?: unknown; err?: OracleErrorResult }
        | undefined;
    await sim.runUntilAsync(() => reply() !== undefined, { maxTime: 2_000 });
    const got = reply();
    assert.ok(got !== undefined, `no reply to ${op.op}`);
    return got;
  };
  const ends = () =>
    frames.filter((f) => f.t === "subend") as {
      id: number;
      err: OracleErrorResult;
    }[];
  return { frames, send, call, ends };
}

async function started(
  sim: Simulation,
  leader: () => OracleReplica | undefined,
): Promise<OracleReplica> {
  await sim.runUntilAsync(() => leader() !== undefined, { maxTime: 5_000 });
  const lead = leader();
  assert.ok(lead !== undefined, "no leader elected");
  return lead;
}

Deno.test("replica: delegating a prefix ends the subscriptions under it with moved", async (t) => {
  const { sim, leader } = group(["r1"]);
  const lead = await started(sim, leader);
  const c = rawClient(sim);
  assert.ok(
    "ok" in await c.call(lead.id, "s", { op: "open_session", ttlMs: 300_000 }),
  );
  const subs: [number, string, boolean][] = [
    [1, "/a/x", false],
    [2, "/a", true],
    [3, "/_sys/views/a/g", false],
    [4, "/", true],
    [5, "/b", false],
    [6, "/ab", true],
  ];
  for (const [id, path, prefix] of subs) {
    c.send(lead.id, { t: "sub", id, path, prefix, from: 1 });
  }
  await sim.runForAsync(20);
  assert.deepEqual(c.ends(), []);

  await t.step(
    "subscriptions at or under the prefix end with the whole moved error",
    async () => {
      assert.deepEqual(
        await c.call(lead.id, "s", {
          op: "delegate",
          prefix: "/a",
          group: "child",
          replicas: { c1: "10.0.0.1:7000" },
        }),
        { t: "res", r: 2, ok: null },
      );
      const moved = (path: string) => ({
        code: "moved",
        message:
          `Path "${path}" belongs to Oracle group "child" (prefix "/a" was delegated to it): send it there`,
        delegation: DELEGATION,
      });
      assert.deepEqual(c.ends(), [
        { t: "subend", id: 1, err: moved("/a/x") },
        { t: "subend", id: 2, err: moved("/a") },
        { t: "subend", id: 3, err: moved("/_sys/views/a/g") },
      ]);
    },
  );

  await t.step(
    "the others stay: the root prefix gets the tree event and later events",
    async () => {
      await c.call(lead.id, "s", { op: "append", path: "/b", data: 1 });
      await sim.runForAsync(20);
      const events = c.frames.filter((f) => f.t === "ev");
      const paths = (id: number) =>
        events.filter((f) => f.id === id).flatMap((f) =>
          f.events.map((e) => e.path)
        );
      assert.deepEqual(paths(4), ["/_sys/tree", "/b"]);
      assert.deepEqual(paths(5), ["/b"]);
      assert.equal(c.ends().length, 3);
    },
  );

  await t.step("a new subscription under the prefix ends at once", async () => {
    c.send(lead.id, { t: "sub", id: 7, path: "/a/y", prefix: false, from: 1 });
    c.send(lead.id, { t: "sub", id: 8, path: "/a", prefix: true, from: 1 });
    await sim.runForAsync(20);
    assert.deepEqual(
      c.ends().slice(3).map((e) => [e.id, e.err.code, e.err.delegation]),
      [[7, "moved", DELEGATION], [8, "moved", DELEGATION]],
    );
    assert.equal(lead.status().subscriptions, 3);
  });
});

Deno.test("replica: a child ends a subscription to a path it does not own at once", async () => {
  const { sim, leader } = group(["r1"], { root: false });
  const lead = await started(sim, leader);
  const c = rawClient(sim);
  c.send(lead.id, { t: "sub", id: 1, path: "/x", prefix: false, from: 1 });
  c.send(lead.id, {
    t: "sub",
    id: 2,
    path: "/_sys/tree",
    prefix: false,
    from: 1,
  });
  await sim.runForAsync(20);
  assert.deepEqual(c.ends(), [{
    t: "subend",
    id: 1,
    err: {
      code: "not_owner",
      message:
        `This Oracle group does not own "/x" (it owns nothing yet): resolve the path from the root again`,
    },
  }]);
  assert.equal(lead.status().subscriptions, 1);
});

/** A scripted parent and root, shared by every replica's upstream. */
class FakeUpstream {
  delegations: Delegation[] = [];
  /** The parent's last fencing token. */
  tokens = 0;
  /** Sessions the root no longer has live. */
  readonly ended = new Set<string>();
  /** Replica ids in the order they connected. */
  readonly connects: string[] = [];
  closes = 0;
  /** Calls to fail before answering again. */
  failures = 0;
  /** When set, `delegations()` waits for it. */
  hold: Promise<void> | undefined;
  readonly asked: string[][] = [];

  link(id: string, syncMs = 50): OracleTreeLink {
    return {
      name: "child",
      syncMs,
      connect: () => {
        this.connects.push(id);
        return Promise.resolve(this.#upstream());
      },
    };
  }

  #fail(): Promise<never> | undefined {
    if (this.failures === 0) return undefined;
    this.failures--;
    return Promise.reject(new Error("parent unreachable"));
  }

  #upstream(): OracleTreeUpstream {
    return {
      tree: async () => {
        await this.hold;
        await this.#fail();
        return {
          owns: ["/"],
          delegations: this.delegations,
          tokens: this.tokens,
        };
      },
      endedSessions: async (sessions) => {
        this.asked.push([...sessions]);
        await this.#fail();
        return sessions.filter((s) => this.ended.has(s));
      },
      close: () => {
        this.closes++;
        return Promise.resolve();
      },
    };
  }
}

Deno.test("replica: a child's leader adopts what its parent delegated and ends what its root ended", async (t) => {
  const up = new FakeUpstream();
  const { sim, leader } = group(["r1"], {
    root: false,
    tree: (id) => up.link(id),
  });
  const lead = await started(sim, leader);
  const c = rawClient(sim);
  const tree = async () => (await c.call(lead.id, "s1", { op: "get_tree" })).ok;

  await t.step(
    "adopts a prefix delegated to it, once, and ignores others",
    async () => {
      for (const s of ["s1", "s2"]) {
        await c.call(lead.id, s, { op: "open_session", ttlMs: 300_000 });
      }
      up.delegations = [
        DELEGATION,
        { ...DELEGATION, prefix: "/o", group: "other" },
        { ...DELEGATION, prefix: "/_sys/x" },
      ];
      up.tokens = 100;
      await sim.runForAsync(500);
      assert.deepEqual(await tree(), {
        owns: ["/a"],
        delegations: [],
        tokens: 100,
      });
      // Fencing tokens go on above the parent's.
      const lock = await c.call(lead.id, "s1", {
        op: "lock",
        path: "/a/lk",
        wait: false,
      });
      assert.deepEqual(lock.ok, { token: 101 });
      await c.call(lead.id, "s1", { op: "unlock", path: "/a/lk", token: 101 });
      assert.equal(lead.status().counters.treeAdopts, 1);
      assert.deepEqual(
        (await c.call(lead.id, "s1", { op: "append", path: "/a/x", data: 1 }))
          .ok,
        { seq: 1, rev: 2 },
      );
    },
  );

  await t.step(
    "ends a session the root reports ended, and only that one",
    async () => {
      up.ended.add("s2");
      await sim.runForAsync(500);
      const ended = await c.call(lead.id, "s1", {
        op: "ended_sessions",
        sessions: ["s1", "s2"],
      });
      assert.deepEqual(ended.ok, { ended: ["s2"] });
      assert.equal(lead.status().counters.treeExpiries, 1);
      assert.equal(lead.status().sessions, 1);
      assert.ok(up.asked.some((a) => a.includes("s1") && a.includes("s2")));
    },
  );

  await t.step("recovers after upstream failures, reconnecting", async () => {
    const before = up.connects.length;
    up.failures = 3;
    up.delegations = [DELEGATION, { ...DELEGATION, prefix: "/b" }];
    await sim.runForAsync(3_000);
    const counters = lead.status().counters;
    assert.equal(counters.treeSyncFailures, 3);
    assert.equal(up.connects.length, before + 3);
    assert.ok(up.closes >= 3);
    assert.deepEqual(await tree(), {
      owns: ["/a", "/b"],
      delegations: [],
      tokens: 101,
    });
    assert.equal(counters.treeAdopts, 2);
  });

  await t.step("stopping the replica closes the upstream", () => {
    const closes = up.closes;
    lead.stop();
    assert.equal(up.closes, closes);
    return sim.runForAsync(10).then(() => assert.equal(up.closes, closes + 1));
  });
});

Deno.test("replica: only a child's leader syncs, and a late answer after losing leadership proposes nothing", async (t) => {
  const up = new FakeUpstream();
  let release = () => {};
  up.hold = new Promise((resolve) => release = resolve);
  const ids = ["r1", "r2", "r3"];
  const { sim, replicas, leader } = group(ids, {
    root: false,
    tree: (id) => up.link(id),
  });
  const old = await started(sim, leader);
  await sim.runForAsync(300);

  await t.step("followers never connect", () => {
    assert.deepEqual(up.connects, [old.id]);
    for (const r of replicas.values()) {
      if (r !== old) assert.deepEqual(r.status().counters.treeAdopts, 0);
    }
  });

  await t.step(
    "the deposed leader ignores the answer it was waiting for",
    async () => {
      const others = ids.filter((id) => id !== old.id);
      sim.partition([old.id], others);
      await sim.runUntilAsync(
        () => !old.isLeader && leader() !== undefined && leader() !== old,
        { maxTime: 5_000 },
      );
      assert.equal(old.isLeader, false, "the old leader stepped down");
      assert.ok(up.closes >= 1, "its upstream was closed");
      const lastIndex = old.status().lastIndex;
      up.delegations = [DELEGATION];
      release();
      await sim.runForAsync(500);
      assert.equal(old.status().counters.treeAdopts, 0);
      assert.equal(old.status().lastIndex, lastIndex);
      // The new leader, whose own sync was held too, adopts.
      const now = leader()!;
      assert.equal(now.status().counters.treeAdopts, 1);
      assert.deepEqual(up.connects, [old.id, now.id]);
    },
  );
});
