import assert from "node:assert/strict";
import { OracleError } from "../../oracle/client.ts";
import {
  type ChannelEvent,
  type Delegation,
  viewChannel,
} from "../../oracle/commands.ts";
import {
  OracleTreeClient,
  type OracleTreeClientOptions,
} from "../../oracle/tree_client.ts";
import { TreeRoutes } from "../../oracle/_tree_client_routes.ts";
import type { ClientFrame, RequestFrame } from "../../oracle/wire.ts";
import { Simulation } from "../../sim/mod.ts";
import { TcpTransport } from "../../transport/tcp_transport.ts";
import type { Transport } from "../../transport/transport.ts";
import { FakeOracle, FakeReplica } from "./_fake_replica.ts";
import { settle } from "./_sim_helpers.ts";

// ------------------------------------------------------------------ harness

/** A transport that records whether it was closed. */
interface SpyTransport extends Transport {
  readonly closed: boolean;
}

function spy(transport: Transport): SpyTransport {
  let closed = false;
  return {
    id: transport.id,
    maxFrameSize: transport.maxFrameSize,
    get closed() {
      return closed;
    },
    setHandler: (handler) => transport.setHandler(handler),
    send: (to, payload) => transport.send(to, payload),
    stats: () => transport.stats(),
    close: () => {
      closed = true;
      return transport.close();
    },
  };
}

interface Tree {
  sim: Simulation;
  /** The root group: one leading replica, r1. */
  root: FakeOracle;
  /** Child groups by name, each with leading replicas named in `groups`. */
  groups: Record<string, FakeOracle>;
  /** Every replica by id. */
  replicas: Record<string, FakeReplica>;
  client: OracleTreeClient;
  /** Every `connectGroup` call, in order. */
  connects: { delegation: Delegation; session: string }[];
  /** The transports `connectGroup` made, in order. */
  transports: SpyTransport[];
}

/**
 * A root group (replica r1) and child groups (`{ g1: ["c1"] }`: group g1
 * with replica c1) on a simulated network like TCP (FIFO, no loss, 1 ms).
 * Children own nothing until the test makes a delegation and adopts it.
 */
function tree(
  options: {
    groups?: Record<string, string[]>;
    client?: Partial<OracleTreeClientOptions>;
    /** Wraps the connectGroup that adds a node per child group. */
    connect?: (
      real: OracleTreeClientOptions["connectGroup"],
    ) => OracleTreeClientOptions["connectGroup"];
  } = {},
): Tree {
  const sim = new Simulation({
    seed: 1,
    latency: { kind: "constant", ms: 1 },
    fifo: true,
  });
  const root = new FakeOracle();
  const replicas: Record<string, FakeReplica> = {};
  const groups: Record<string, FakeOracle> = {};
  const add = (id: string, oracle: FakeOracle) =>
    sim.addNode(id, (env) => {
      replicas[id] = new FakeReplica(id, env.transport, oracle, {
        leader: true,
      });
      return {};
    });
  add("r1", root);
  for (const [name, ids] of Object.entries(options.groups ?? {})) {
    groups[name] = FakeOracle.child(root);
    for (const id of ids) add(id, groups[name]);
  }
  const connects: Tree["connects"] = [];
  const transports: SpyTransport[] = [];
  const connectGroup: OracleTreeClientOptions["connectGroup"] = (
    delegation,
    session,
  ) => {
    connects.push({ delegation, session });
    let transport!: Transport;
    sim.addNode(`${session}@${delegation.group}`, (node) => {
      transport = node.transport;
      return {};
    });
    transports.push(spy(transport));
    return Promise.resolve(transports.at(-1)!);
  };
  let client!: OracleTreeClient;
  sim.addNode("client", (env) => {
    client = new OracleTreeClient(env.transport, {
      replicas: ["r1"],
      clock: env.clock,
      random: env.random,
      connectGroup: options.connect?.(connectGroup) ?? connectGroup,
      ...options.client,
    });
    return {};
  });
  return { sim, root, groups, replicas, client, connects, transports };
}

/** The delegation of `prefix` to group `name`, whose replicas are `ids`. */
function delegation(name: string, prefix: string, ids: string[]): Delegation {
  return {
    prefix,
    group: name,
    replicas: Object.fromEntries(ids.map((id, i) => [id, `10.0.0.${i}:7000`])),
  };
}

/** The requests of operation `op` that `replica` received, in order. */
function requests(replica: FakeReplica, op: string): RequestFrame[] {
  return replica.requests().filter((f) => f.op.op === op);
}

/** Records, in `log`, the virtual time each matching frame reaches `replica`. */
function watch(
  sim: Simulation,
  replica: FakeReplica,
  match: (frame: ClientFrame) => boolean,
  log: { id: string; at: number }[],
): void {
  replica.dropIf = (frame) => {
    if (match(frame)) log.push({ id: replica.id, at: sim.now });
    return false;
  };
}

/** Session "other", opened at the root and at `oracle`, takes the lock at `path`. */
function holdLock(root: FakeOracle, oracle: FakeOracle, path: string): void {
  const open = { op: "open_session", ttlMs: 10_000 } as const;
  for (const at of new Set([root, oracle])) {
    at.apply("x", { t: "req", s: "other", r: 1, a: 0, op: open });
  }
  oracle.apply("x", {
    t: "req",
    s: "other",
    r: 2,
    a: 0,
    op: { op: "lock", path, wait: true },
  });
  const reply = oracle.apply("x", {
    t: "req",
    s: "other",
    r: 3,
    a: 0,
    op: { op: "get_lock", path },
  });
  assert.equal((reply as { ok: { holder: string } }).ok.holder, "other");
}

function isOp(op: string): (frame: ClientFrame) => boolean {
  return (frame) => frame.t === "req" && frame.op.op === op;
}

function isOracleError(code: string, message?: RegExp) {
  return (error: unknown) =>
    error instanceof OracleError && error.code === code &&
    (message === undefined || message.test(error.message));
}

// -------------------------------------------------------------------- tests

Deno.test("a call the root answers moved is retried at the child group, which is opened lazily, and the delegation is cached", async (t) => {
  const { sim, root, groups, replicas, client, connects } = tree({
    groups: { g1: ["c1"] },
  });
  root.delegate(delegation("g1", "/apps", ["c1"]));
  groups.g1.adopt("/apps");
  await settle(sim, client.open());

  await t.step("opening the tree opens only the root's session", () => {
    assert.ok(root.sessions.has(client.session));
    assert.equal(connects.length, 0);
    assert.equal(groups.g1.sessions.size, 0);
  });

  await t.step("the first call follows moved to the child", async () => {
    const results = await settle(
      sim,
      Promise.all([
        client.append("/apps/x", 1),
        client.append("/apps/x", 2),
      ]),
    );
    assert.deepEqual(results.map((r) => r.seq), [1, 2]);
    assert.deepEqual(connects, [{
      delegation: delegation("g1", "/apps", ["c1"]),
      session: client.session,
    }]);
    // One session, the same id, opened once at the child.
    assert.ok(groups.g1.sessions.has(client.session));
    assert.equal(requests(replicas.c1, "open_session").length, 1);
    assert.equal(requests(replicas.r1, "append").length, 2);
    assert.equal(root.events.length, 0);
    assert.equal(client.stats().moves, 2);
  });

  await t.step("later calls go straight to the child", async () => {
    await settle(sim, client.append("/apps/y", 3));
    await settle(sim, client.getView("/apps/kv"));
    await settle(sim, client.tryLock("/apps/l"));
    assert.equal(requests(replicas.r1, "append").length, 2);
    assert.equal(requests(replicas.c1, "append").length, 3);
    assert.equal(requests(replicas.r1, "get_view").length, 0);
    assert.equal(requests(replicas.c1, "get_view").length, 1);
    assert.equal(requests(replicas.r1, "lock").length, 0);
    assert.equal(client.stats().moves, 2);
    assert.equal(connects.length, 1);
  });

  await t.step("paths outside the delegation stay at the root", async () => {
    await settle(sim, client.append("/applications/x", 1));
    assert.equal(requests(replicas.c1, "append").length, 3);
    assert.deepEqual(root.channel("/applications/x").length, 1);
    const status = client.status();
    assert.equal(status.state, "open");
    assert.deepEqual(Object.keys(status.groups), ["g1"]);
    assert.equal(status.groups.g1.state, "open");
    assert.equal(status.delegations, 1);
    assert.equal(status.pending, 0);
    assert.equal(client.owner("/apps/z"), "g1");
    assert.equal(client.owner(viewChannel("/apps/kv")), "g1");
    assert.equal(client.owner("/applications/x"), "");
  });
  await settle(sim, client.close());
});

Deno.test("a not_owner answer is retried from the root after a doubling backoff until the child adopts the path", async () => {
  const { sim, root, groups, replicas, client } = tree({
    groups: { g1: ["c1"], g2: ["d1"] },
    client: { requestTimeoutMs: 100 },
  });
  // g1 delegated /apps/kv to g2, which has not adopted it yet.
  root.delegate(delegation("g1", "/apps", ["c1"]));
  groups.g1.adopt("/apps");
  groups.g1.delegate(delegation("g2", "/apps/kv", ["d1"]));
  await settle(sim, client.open());
  const atRoot: { id: string; at: number }[] = [];
  watch(sim, replicas.r1, isOp("append"), atRoot);
  const call = client.append("/apps/kv/x", "v");
  await sim.runForAsync(1_000);
  // Each not_owner sends the call back through the root (and g1), after
  // 100, 200, 400 ms.
  assert.ok(atRoot.length >= 4, JSON.stringify(atRoot));
  const gaps = atRoot.slice(1).map((e, i) => e.at - atRoot[i].at);
  gaps.forEach((gap, i) => assert.ok(gap >= 100 * 2 ** i, `${gaps}`));
  assert.equal(requests(replicas.c1, "append").length, atRoot.length);
  assert.equal(requests(replicas.d1, "append").length, atRoot.length);
  assert.equal(groups.g2.events.length, 0);
  groups.g2.adopt("/apps/kv");
  assert.deepEqual(await settle(sim, call), { seq: 1, rev: 1 });
  assert.equal(groups.g2.channel("/apps/kv/x").length, 1);
  assert.ok(client.stats().notOwnerRetries >= 4);
  await settle(sim, client.close());
});

Deno.test("a call whose owner never adopts the path rejects with timeout by its deadline, naming the group and the path", async (t) => {
  const { sim, root, groups, client } = tree({
    groups: { g1: ["c1"] },
    client: { requestTimeoutMs: 100, deadlineMs: 2_000 },
  });
  root.delegate(delegation("g1", "/apps", ["c1"]));
  await settle(sim, client.open());

  await t.step("an append", async () => {
    const started = sim.now;
    await assert.rejects(
      settle(sim, client.append("/apps/x", 1)),
      isOracleError("timeout", /group "g1" did not own "\/apps\/x"/),
    );
    // It gives up once the next retry (backoff at most 800 ms) would
    // start past the deadline.
    const elapsed = sim.now - started;
    assert.ok(elapsed > 1_200 && elapsed <= 2_000, `after ${elapsed} ms`);
    assert.equal(groups.g1.events.length, 0);
    assert.equal(client.stats().routeTimeouts, 1);
  });

  await t.step("a waiting lock stops looking for its owner too", async () => {
    const started = sim.now;
    await assert.rejects(
      settle(sim, client.lock("/apps/l")),
      isOracleError("timeout", /group "g1" did not own "\/apps\/l"/),
    );
    assert.ok(sim.now - started <= 2_000);
    assert.equal(client.status().pending, 0);
  });
  await settle(sim, client.close());
});

Deno.test("a call stops after 8 moved answers in a row", async () => {
  const { sim, root, groups, replicas, client } = tree({
    groups: { g1: ["c1"], g2: ["d1"] },
  });
  // A cycle: g1 sends /a/b to g2, which sends it back to g1.
  root.delegate(delegation("g1", "/a", ["c1"]));
  groups.g1.adopt("/a");
  groups.g1.delegate(delegation("g2", "/a/b", ["d1"]));
  groups.g2.adopt("/a/b");
  groups.g2.delegate(delegation("g1", "/a/b", ["c1"]));
  await settle(sim, client.open());
  await assert.rejects(
    settle(sim, client.append("/a/b/c", 1)),
    isOracleError("moved", /followed 8 delegations in a row/),
  );
  const sent = ["r1", "c1", "d1"].map((id) =>
    requests(replicas[id], "append").length
  );
  assert.equal(sent[0] + sent[1] + sent[2], 9, `${sent}`);
  assert.equal(client.stats().hopLimits, 1);
  const errors: OracleError[] = [];
  const sub = client.subscribe("/a/b/log", {
    onError: (e) => errors.push(e),
  }, () => {});
  await sim.runForAsync(100);
  assert.equal(errors.length, 1);
  assert.ok(isOracleError("moved", /followed 8 delegations/)(errors[0]));
  assert.equal(sub.closed, true);
  assert.equal(client.stats().hopLimits, 2);
  await settle(sim, client.close());
});

Deno.test("a subscription moves with its path's delegation, from its next position, with no gap and no duplicate", async (t) => {
  const { sim, root, groups, replicas, client, connects } = tree({
    groups: { g1: ["c1"], g2: ["d1"] },
    client: { requestTimeoutMs: 100 },
  });
  replicas.c1.overlap = 2;
  await settle(sim, client.open());
  const seen: Record<string, number[]> = { a: [], b: [], c: [], view: [] };
  const errors: OracleError[] = [];
  const onError = (error: OracleError) => errors.push(error);
  const collect = (key: string) => (events: readonly ChannelEvent[]) =>
    seen[key].push(...events.map((e) => e.seq));
  const a = client.subscribe("/apps/log", { onError }, collect("a"));
  const b = client.subscribe("/apps/log", { from: 2, onError }, collect("b"));

  await t.step("served by the root before the delegation", async () => {
    await sim.runForAsync(10);
    assert.equal(replicas.r1.subs.size, 2);
    assert.equal(connects.length, 0);
  });

  await t.step("moved to the child when the root delegates", async () => {
    root.delegate(delegation("g1", "/apps", ["c1"]));
    groups.g1.adopt("/apps");
    for (let i = 1; i <= 5; i++) groups.g1.append("/apps/log", i);
    await sim.runForAsync(50);
    assert.deepEqual(seen.a, [1, 2, 3, 4, 5]);
    assert.deepEqual(seen.b, [2, 3, 4, 5]);
    assert.equal(a.next, 6);
    assert.equal(b.next, 6);
    assert.equal(replicas.r1.subs.size, 0);
    assert.equal(replicas.c1.subs.size, 2);
    groups.g1.append("/apps/log", 6);
    await sim.runForAsync(10);
    assert.deepEqual(seen.a, [1, 2, 3, 4, 5, 6]);
    assert.equal(client.stats().moves, 2);
  });

  await t.step("a view channel follows its group's owner", async () => {
    client.subscribe(viewChannel("/apps/kv"), { onError }, collect("view"));
    await sim.runForAsync(10);
    assert.equal(replicas.c1.subs.size, 3);
    assert.equal(replicas.r1.subs.size, 0);
  });

  await t.step(
    "not_owner: made again through the root after a backoff, until the new owner adopts",
    async () => {
      const c = client.subscribe("/apps/deep/log", { onError }, collect("c"));
      await sim.runForAsync(10);
      groups.g1.delegate(delegation("g2", "/apps/deep", ["d1"]));
      await sim.runForAsync(500);
      assert.ok(client.stats().notOwnerRetries >= 2);
      const viaRoot = replicas.r1.received.filter((f) =>
        f.t === "sub" && f.path === "/apps/deep/log"
      );
      assert.ok(viaRoot.length >= 2, `${viaRoot.length}`);
      groups.g2.adopt("/apps/deep");
      groups.g2.append("/apps/deep/log", "x");
      groups.g2.append("/apps/deep/log", "y");
      await sim.runForAsync(1_000);
      assert.deepEqual(seen.c, [1, 2]);
      assert.equal(c.next, 3);
      assert.equal(c.closed, false);
    },
  );

  await t.step(
    "an owner that refuses it after delivering events: resumed from next",
    async () => {
      groups.g1.owns.length = 0;
      replicas.c1.dropRefused();
      await sim.runForAsync(50);
      groups.g1.adopt("/apps");
      groups.g1.append("/apps/log", 7);
      await sim.runForAsync(1_000);
      assert.deepEqual(seen.a, [1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(seen.b, [2, 3, 4, 5, 6, 7]);
      assert.equal(a.next, 8);
    },
  );
  assert.deepEqual(errors, []);

  await t.step("other errors end it and reach onError", async () => {
    groups.g1.append("/apps/old", 1);
    groups.g1.append("/apps/old", 2);
    await settle(sim, client.truncate("/apps/old", 2));
    const ended: OracleError[] = [];
    const old = client.subscribe("/apps/old", {
      onError: (e) => ended.push(e),
    }, () => {});
    await sim.runForAsync(10);
    assert.deepEqual(ended.map((e) => [e.code, e.first]), [["compacted", 2]]);
    assert.equal(old.closed, true);
    assert.equal(client.status().subscriptions, 4);
  });

  await t.step("close stops it at its current group", async () => {
    a.close();
    assert.equal(a.closed, true);
    await sim.runForAsync(10);
    assert.equal(replicas.c1.subs.size, 2);
    assert.equal(client.status().subscriptions, 3);
  });
  await settle(sim, client.close());
});

Deno.test("a session that expires in a child group expires the tree: the other groups' sessions close, everything fails, callbacks run once", async (t) => {
  const { sim, root, groups, replicas, client } = tree({
    groups: { g1: ["c1"] },
  });
  root.delegate(delegation("g1", "/apps", ["c1"]));
  groups.g1.adopt("/apps");
  await settle(sim, client.open());
  await settle(sim, client.append("/apps/x", 1));
  // Another session holds the root's lock: this client's lock waits there.
  holdLock(root, root, "/l");
  const waiting = client.lock("/l");
  waiting.catch(() => {});
  const subErrors: OracleError[] = [];
  const sub = client.subscribe("/apps/log", {
    onError: (error) => subErrors.push(error),
  }, () => {});
  let expiredA = 0;
  let expiredB = 0;
  client.onSessionExpired(() => expiredA++);
  client.onSessionExpired(() => expiredB++);
  await sim.runForAsync(10);
  assert.equal(requests(replicas.r1, "lock").length, 1);

  await t.step("the child ends the session", async () => {
    groups.g1.expire(client.session);
    await assert.rejects(
      settle(sim, client.append("/apps/y", 2)),
      isOracleError("session_expired"),
    );
    assert.equal(client.status().state, "expired");
    await assert.rejects(
      settle(sim, waiting),
      isOracleError("session_expired"),
    );
    assert.deepEqual(subErrors.map((e) => e.code), ["session_expired"]);
    assert.equal(sub.closed, true);
    assert.equal(expiredA, 1);
    assert.equal(expiredB, 1);
  });

  await t.step("the root's session is closed at once", async () => {
    await sim.runForAsync(20);
    assert.equal(requests(replicas.r1, "close_session").length, 1);
    assert.ok(root.ended.has(client.session));
    assert.equal(client.status().root.state, "closed");
  });

  await t.step("afterwards everything fails with session_expired", async () => {
    await assert.rejects(
      client.append("/x", 1),
      isOracleError("session_expired"),
    );
    await assert.rejects(client.open(), isOracleError("session_expired"));
    assert.throws(
      () => client.subscribe("/x", {}, () => {}),
      isOracleError("session_expired"),
    );
    let late = 0;
    client.onSessionExpired(() => late++);
    assert.equal(late, 1);
    await sim.runForAsync(100);
    assert.equal(expiredA, 1);
    assert.deepEqual(subErrors.length, 1);
  });
  await settle(sim, client.close());
  assert.equal(client.status().state, "closed");
});

Deno.test("a child group that refuses to open the session expires the tree", async () => {
  const { sim, root, groups, replicas, client } = tree({
    groups: { g1: ["c1"] },
  });
  root.delegate(delegation("g1", "/apps", ["c1"]));
  groups.g1.adopt("/apps");
  await settle(sim, client.open());
  let expired = 0;
  client.onSessionExpired(() => expired++);
  groups.g1.ended.add(client.session);
  await assert.rejects(
    settle(sim, client.append("/apps/x", 1)),
    isOracleError("session_expired"),
  );
  await sim.runForAsync(20);
  assert.equal(expired, 1);
  assert.equal(client.status().state, "expired");
  assert.equal(requests(replicas.c1, "append").length, 0);
  assert.ok(root.ended.has(client.session));
  await settle(sim, client.close());
});

Deno.test("close closes every group's session, children before the root, and the transports the tree made", async () => {
  const { sim, root, groups, replicas, client, transports } = tree({
    groups: { g1: ["c1"], g2: ["d1"] },
  });
  root.delegate(delegation("g1", "/a", ["c1"]));
  root.delegate(delegation("g2", "/b", ["d1"]));
  groups.g1.adopt("/a");
  groups.g2.adopt("/b");
  await settle(sim, client.open());
  await settle(
    sim,
    Promise.all([client.append("/a/x", 1), client.append("/b/x", 1)]),
  );
  holdLock(root, groups.g1, "/a/l");
  const waiting = client.lock("/a/l");
  waiting.catch(() => {});
  const sub = client.subscribe("/b/log", {}, () => {});
  await sim.runForAsync(10);
  assert.equal(replicas.d1.subs.size, 1);
  const closes: { id: string; at: number }[] = [];
  for (const id of ["r1", "c1", "d1"]) {
    watch(sim, replicas[id], isOp("close_session"), closes);
  }

  await settle(sim, client.close());
  await assert.rejects(waiting, isOracleError("closed"));
  assert.equal(sub.closed, true);
  assert.deepEqual(closes.map((c) => c.id).sort(), ["c1", "d1", "r1"]);
  assert.equal(closes.at(-1)!.id, "r1");
  assert.ok(closes[0].at < closes[2].at);
  for (const oracle of [root, groups.g1, groups.g2]) {
    assert.ok(oracle.ended.has(client.session));
  }
  assert.equal(transports.length, 2);
  assert.ok(transports.every((transport) => transport.closed));
  const status = client.status();
  assert.equal(status.state, "closed");
  assert.equal(status.root.state, "closed");
  assert.deepEqual(
    Object.values(status.groups).map((s) => s.state),
    ["closed", "closed"],
  );
  await assert.rejects(client.append("/a/x", 2), isOracleError("closed"));
});

Deno.test("a child group that does not answer fails the calls routed there; a later call opens its session again", async () => {
  const { sim, root, groups, replicas, client, connects } = tree({
    groups: { g1: ["c1"] },
    client: { deadlineMs: 1_000 },
  });
  root.delegate(delegation("g1", "/apps", ["c1"]));
  groups.g1.adopt("/apps");
  await settle(sim, client.open());
  replicas.c1.silent = true;
  await assert.rejects(
    settle(sim, client.append("/apps/x", 1)),
    isOracleError("timeout"),
  );
  await sim.runForAsync(100);
  assert.equal(client.status().groups.g1.state, "new");
  replicas.c1.silent = false;
  assert.deepEqual(await settle(sim, client.append("/apps/x", 2)), {
    seq: 1,
    rev: 1,
  });
  assert.equal(client.status().groups.g1.state, "open");
  assert.equal(connects.length, 1);
  await settle(sim, client.close());
});

Deno.test("a connectGroup failure rejects the call with closed; the next call connects again", async () => {
  let failures = 1;
  const { sim, root, groups, client, connects } = tree({
    groups: { g1: ["c1"] },
    connect: (real) => (delegation, session) =>
      failures-- > 0
        ? Promise.reject(new Error("no route to 10.0.0.0"))
        : real(delegation, session),
  });
  root.delegate(delegation("g1", "/apps", ["c1"]));
  groups.g1.adopt("/apps");
  await settle(sim, client.open());
  await assert.rejects(
    settle(sim, client.append("/apps/x", 1)),
    (e) =>
      isOracleError("closed", /group "g1".*no route/)(e) &&
      (e as OracleError).cause instanceof Error,
  );
  assert.deepEqual(client.status().groups, {});
  assert.deepEqual(await settle(sim, client.append("/apps/x", 2)), {
    seq: 1,
    rev: 1,
  });
  assert.equal(connects.length, 1);
  await settle(sim, client.close());
});

Deno.test("close while a child group is still connecting closes its transport once it comes", async () => {
  const pending = Promise.withResolvers<Transport>();
  let asked = 0;
  const { sim, root, groups, client } = tree({
    groups: { g1: ["c1"] },
    client: {
      connectGroup: () => {
        asked++;
        return pending.promise;
      },
    },
  });
  root.delegate(delegation("g1", "/apps", ["c1"]));
  groups.g1.adopt("/apps");
  await settle(sim, client.open());
  const call = client.append("/apps/x", 1);
  call.catch(() => {});
  await sim.runForAsync(10);
  assert.equal(asked, 1);
  const closing = client.close();
  let closed = false;
  closing.then(() => closed = true);
  await assert.rejects(call, isOracleError("closed"));
  await sim.runForAsync(100);
  assert.equal(closed, false, "close waits for connectGroup");
  let late!: SpyTransport;
  sim.addNode("late", (node) => {
    late = spy(node.transport);
    return {};
  });
  pending.resolve(late);
  await settle(sim, closing);
  assert.equal(late.closed, true);
  assert.equal(groups.g1.sessions.size, 0);
  assert.deepEqual(client.status().groups, {});
});

Deno.test("a path routed to one group more than maxGroups rejects with overloaded", async () => {
  const { sim, root, groups, client, connects } = tree({
    groups: { g1: ["c1"], g2: ["d1"] },
    client: { maxGroups: 1 },
  });
  root.delegate(delegation("g1", "/a", ["c1"]));
  root.delegate(delegation("g2", "/b", ["d1"]));
  groups.g1.adopt("/a");
  groups.g2.adopt("/b");
  await settle(sim, client.open());
  await settle(sim, client.append("/a/x", 1));
  await assert.rejects(
    settle(sim, client.append("/b/x", 1)),
    isOracleError("overloaded", /group "g2".*1 child groups \(maxGroups\)/),
  );
  const errors: OracleError[] = [];
  client.subscribe("/b/log", { onError: (e) => errors.push(e) }, () => {});
  await sim.runForAsync(10);
  assert.deepEqual(errors.map((e) => e.code), ["overloaded"]);
  assert.equal(connects.length, 1);
  assert.equal(groups.g2.events.length, 0);
  await settle(sim, client.close());
});

Deno.test("delegate goes to the prefix's owner and is cached; getTree and endedSessions ask the root", async () => {
  const { sim, root, groups, replicas, client } = tree({
    groups: { g1: ["c1"], g2: ["d1"] },
  });
  root.delegate(delegation("g1", "/apps", ["c1"]));
  groups.g1.adopt("/apps");
  await settle(sim, client.open());
  await settle(
    sim,
    client.delegate("/apps/kv", "g2", delegation("g2", "/", ["d1"]).replicas),
  );
  assert.deepEqual(
    groups.g1.delegations.get("/apps/kv"),
    delegation("g2", "/apps/kv", ["d1"]),
  );
  assert.equal(client.status().delegations, 2);
  groups.g2.adopt("/apps/kv");
  await settle(sim, client.append("/apps/kv/log", 1));
  // Straight to g2: neither the root nor g1 saw the append.
  assert.equal(requests(replicas.r1, "append").length, 0);
  assert.equal(requests(replicas.c1, "append").length, 0);
  assert.equal(groups.g2.channel("/apps/kv/log").length, 1);
  await assert.rejects(
    settle(sim, client.delegate("/apps/kv", "g3", { e1: "h:1" })),
    isOracleError("delegation"),
  );

  assert.deepEqual(await settle(sim, client.getTree()), {
    owns: ["/"],
    delegations: [delegation("g1", "/apps", ["c1"])],
    tokens: 0,
  });
  assert.deepEqual(
    await settle(sim, client.endedSessions([client.session, "nobody"])),
    ["nobody"],
  );
  assert.equal(requests(replicas.r1, "get_tree").length, 1);
  assert.equal(requests(replicas.c1, "ended_sessions").length, 0);
  await settle(sim, client.close());
});

Deno.test("a moved answer with a malformed delegation goes to the caller; nothing is thrown or followed", async () => {
  const { sim, root, replicas, client, connects } = tree({
    groups: { g1: ["c1"] },
  });
  root.delegations.set("/bad", {
    prefix: "/bad",
    group: 7,
    replicas: { c1: "h:1" },
  } as unknown as Delegation);
  root.delegations.set("/empty", {
    prefix: "/empty",
    group: "g1",
    replicas: {},
  });
  await settle(sim, client.open());
  for (const path of ["/bad/x", "/empty/x"]) {
    await assert.rejects(
      settle(sim, client.append(path, 1)),
      (e) =>
        isOracleError("moved")(e) &&
        (e as OracleError).delegation === undefined,
    );
  }
  const errors: OracleError[] = [];
  client.subscribe("/bad/log", { onError: (e) => errors.push(e) }, () => {});
  await sim.runForAsync(10);
  assert.deepEqual(errors.map((e) => [e.code, e.delegation]), [[
    "moved",
    undefined,
  ]]);
  assert.equal(requests(replicas.r1, "append").length, 2);
  assert.equal(connects.length, 0);
  assert.equal(client.stats().badFrames, 0);
  assert.equal(client.status().state, "open");
  await settle(sim, client.close());
});

Deno.test("arguments are checked before anything is sent", async () => {
  const { sim, replicas, client } = tree();
  await assert.rejects(client.append("/x", 1), isOracleError("closed", /open/));
  await settle(sim, client.open());
  const sent = replicas.r1.received.length;
  await assert.rejects(client.append("x", 1), TypeError);
  await assert.rejects(client.append("/x", undefined as never), TypeError);
  await assert.rejects(client.truncate("/x", 0), RangeError);
  await assert.rejects(client.read("/x", 1.5), RangeError);
  await assert.rejects(client.unlock("/l", -1), RangeError);
  await assert.rejects(client.lock(7 as never), TypeError);
  await assert.rejects(client.join("/g", ""), TypeError);
  await assert.rejects(client.remove("/g", "m", 1 as never), TypeError);
  await assert.rejects(client.flushed("/g", 0, "m"), RangeError);
  await assert.rejects(client.delegate("/a", "", { c1: "h:1" }), TypeError);
  await assert.rejects(client.delegate("/a", "g", {}), RangeError);
  await assert.rejects(
    client.delegate(
      "/a",
      "g",
      Object.fromEntries([...Array(10).keys()].map((i) => [`c${i}`, "h:1"])),
    ),
    RangeError,
  );
  await assert.rejects(
    client.delegate("/a", "g", { c1: 5 } as never),
    TypeError,
  );
  await assert.rejects(client.delegate("/a", "g", [] as never), TypeError);
  await assert.rejects(client.endedSessions([]), RangeError);
  await assert.rejects(
    client.endedSessions(Array(1001).fill("s")),
    RangeError,
  );
  await assert.rejects(client.endedSessions([""]), TypeError);
  await assert.rejects(client.endedSessions("s" as never), TypeError);
  assert.throws(
    () => client.subscribe("/x", { from: 0 }, () => {}),
    RangeError,
  );
  assert.throws(() => client.subscribe("x", {}, () => {}), TypeError);
  assert.throws(
    () => client.subscribe("/x", {}, undefined as never),
    TypeError,
  );
  const base = { replicas: ["r1"], clock: sim.clock, random: sim.fork("x") };
  const connectGroup = () => Promise.reject(new Error("unused"));
  assert.throws(
    () => new OracleTreeClient(null as never, base as never),
    /connectGroup/,
  );
  assert.throws(
    () =>
      new OracleTreeClient(null as never, {
        ...base,
        connectGroup,
        maxGroups: 0,
      }),
    RangeError,
  );
  assert.throws(
    () =>
      new OracleTreeClient(null as never, { ...base, connectGroup, id: "" }),
    TypeError,
  );
  await sim.runForAsync(5);
  assert.equal(replicas.r1.received.length, sent);
  await settle(sim, client.close());
});

Deno.test("the delegation cache answers with the longest prefix and forgets the oldest beyond its bound", () => {
  const routes = new TreeRoutes(2);
  const apps = delegation("g1", "/apps", ["c1"]);
  const kv = delegation("g2", "/apps/kv", ["d1"]);
  assert.equal(routes.learn(apps), 0);
  assert.equal(routes.learn(kv), 0);
  assert.equal(routes.route("/apps/kv/log"), kv);
  assert.equal(routes.route("/apps/kvx"), apps);
  assert.equal(routes.route(viewChannel("/apps/kv")), kv);
  assert.equal(routes.route("/other"), undefined);
  assert.equal(routes.learn(apps), 0);
  assert.equal(routes.learn(delegation("g3", "/b", ["e1"])), 1);
  assert.equal(routes.size, 2);
  assert.equal(routes.route("/apps/kv/log"), apps);
  routes.forget(kv);
  assert.equal(routes.size, 2);
  routes.forget(apps);
  assert.equal(routes.route("/apps/x"), undefined);
});

Deno.test({
  name:
    "OracleTreeClient.connect follows a delegation over TCP and close releases everything",
  sanitizeOps: true,
  sanitizeResources: true,
}, async () => {
  const secret = "s3cret";
  const listen = (id: string) =>
    TcpTransport.start({
      id,
      listen: { port: 0 },
      acceptUnknownPeers: true,
      secret,
    });
  const rootServer = await listen("r1");
  const childServer = await listen("c1");
  try {
    const root = new FakeOracle();
    const child = FakeOracle.child(root);
    new FakeReplica("r1", rootServer, root, { leader: true });
    new FakeReplica("c1", childServer, child, { leader: true });
    root.delegate({
      prefix: "/apps",
      group: "g1",
      replicas: { c1: `127.0.0.1:${childServer.listenAddress!.port}` },
    });
    child.adopt("/apps");
    const client = await OracleTreeClient.connect({
      replicas: { r1: `127.0.0.1:${rootServer.listenAddress!.port}` },
      secret,
    });
    try {
      const got = Promise.withResolvers<number[]>();
      client.subscribe("/apps/log", {}, (events) => {
        if (events.at(-1)!.seq === 2) got.resolve(events.map((e) => e.seq));
      });
      assert.deepEqual(await client.append("/apps/log", 1), { seq: 1, rev: 1 });
      await client.append("/apps/log", 2);
      assert.equal((await got.promise).at(-1), 2);
      assert.ok(child.sessions.has(client.session));
    } finally {
      await client.close();
    }
    assert.ok(!root.sessions.has(client.session));
    assert.ok(!child.sessions.has(client.session));
  } finally {
    await rootServer.close();
    await childServer.close();
  }
});
