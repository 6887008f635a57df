import assert from "node:assert/strict";
import {
  OracleClient,
  type OracleClientOptions,
  OracleError,
} from "../../oracle/client.ts";
import type { ChannelEvent } from "../../oracle/commands.ts";
import type { RequestFrame } from "../../oracle/wire.ts";
import { Simulation } from "../../sim/mod.ts";
import { TcpTransport } from "../../transport/tcp_transport.ts";
import {
  FakeOracle,
  FakeReplica,
  type FakeReplicaOptions,
} from "./_fake_replica.ts";

// ------------------------------------------------------------------ harness

interface Cluster {
  sim: Simulation;
  oracle: FakeOracle;
  replicas: Record<string, FakeReplica>;
  client: OracleClient;
  ids: string[];
}

/**
 * Three fake replicas r1..r3 and a client node on a simulated network that
 * behaves like TCP (FIFO, no loss, 1 ms). No replica leads until the test
 * says so.
 */
function cluster(
  options: {
    seed?: number;
    replicas?: Record<string, FakeReplicaOptions>;
    client?: Partial<OracleClientOptions>;
  } = {},
): Cluster {
  const sim = new Simulation({
    seed: options.seed ?? 1,
    latency: { kind: "constant", ms: 1 },
    fifo: true,
  });
  const oracle = new FakeOracle();
  const specs = options.replicas ?? { r1: {}, r2: {}, r3: {} };
  const ids = Object.keys(specs);
  const replicas: Record<string, FakeReplica> = {};
  for (const id of ids) {
    sim.addNode(id, (env) => {
      const replica = new FakeReplica(id, env.transport, oracle, specs[id]);
      replicas[id] = replica;
      return replica;
    });
  }
  let client: OracleClient | undefined;
  sim.addNode("client", (env) => {
    client = new OracleClient(env.transport, {
      replicas: ids,
      clock: env.clock,
      random: env.random,
      ...options.client,
    });
    return {};
  });
  return { sim, oracle, replicas, client: client!, ids };
}

/** Lets promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await Promise.resolve();
}

/** Runs one event due within `maxTime` ms; false (clock at the bound) if there is none. */
function stepWithin(sim: Simulation, maxTime: number): boolean {
  let checks = 0;
  return sim.runUntil(() => checks++ > 0, { maxTime: Math.max(0, maxTime) });
}

/** Runs the simulation, one event at a time, until `promise` settles. */
async function drive<T>(
  sim: Simulation,
  promise: Promise<T>,
  maxTime = 60_000,
): Promise<T> {
  let done = false;
  promise.then(() => done = true, () => done = true);
  const end = sim.now + maxTime;
  await settle();
  while (!done) {
    if (!stepWithin(sim, end - sim.now)) {
      throw new Error(`Not settled within ${maxTime} virtual ms`);
    }
    await settle();
  }
  return promise;
}

/** Runs the simulation for `ms`, letting promise callbacks run between events. */
async function runFor(sim: Simulation, ms: number): Promise<void> {
  const end = sim.now + ms;
  await settle();
  while (stepWithin(sim, end - sim.now)) await settle();
}

/** The replica that is not `a` and not `b`, in list order. */
function other(ids: string[], ...not: string[]): string {
  return ids.find((id) => !not.includes(id))!;
}

/** The replica after `id` in list order. */
function after(ids: string[], id: string): string {
  return ids[(ids.indexOf(id) + 1) % ids.length];
}

/** Applies `op` straight to the Oracle as request `r` of another session, "other". */
function applyOther(
  oracle: FakeOracle,
  r: number,
  op: RequestFrame["op"],
): void {
  oracle.apply("x", { t: "req", s: "other", r, a: 0, op });
}

/** The append requests `replica` received, in order. */
function appendRequests(replica: FakeReplica): RequestFrame[] {
  return replica.requests().filter((f) => f.op.op === "append");
}

function settled<T>(promise: Promise<T>): { done: boolean; value?: T } {
  const state: { done: boolean; value?: T } = { done: false };
  promise.then((value) => {
    state.done = true;
    state.value = value;
  }, () => state.done = true);
  return state;
}

// -------------------------------------------------------------------- tests

Deno.test("client opens a session and pipelines requests to the leader, each applied once", async (t) => {
  const { sim, oracle, replicas, client } = cluster();
  const target = client.status().target;
  replicas[target].leader = true;

  await t.step("open_session names the session", async () => {
    assert.match(client.session, /^c-[0-9a-f]{32}$/);
    await drive(sim, client.open());
    assert.equal(client.status().state, "open");
    assert.ok(oracle.sessions.has(client.session));
  });

  await t.step(
    "many appends are in flight at once and keep their order",
    async () => {
      const calls = Array.from(
        { length: 100 },
        (_, i) => client.append("/log", { i }),
      );
      const started = sim.now;
      const results = await drive(sim, Promise.all(calls));
      assert.deepEqual(results.map((r) => r.seq), calls.map((_, i) => i + 1));
      // One round trip for all of them: pipelined, not one after another.
      assert.ok(sim.now - started < 10, `took ${sim.now - started} ms`);
      assert.ok([...oracle.applied.values()].every((n) => n === 1));
    },
  );

  await t.step("`a` is the lowest request number without a reply", () => {
    const reqs = replicas[target].requests();
    for (const frame of reqs) assert.ok(frame.a <= frame.r);
    // The last appends were sent while the first ones were unanswered.
    assert.equal(reqs.at(-1)!.a, 2);
  });

  await t.step("reads, locks and groups return typed results", async () => {
    const page = await drive(sim, client.read("/log", 99, 10));
    assert.deepEqual(page.events.map((e) => e.seq), [99, 100]);
    assert.equal(page.next, 101);
    const token = await drive(sim, client.tryLock("/l"));
    assert.equal(typeof token, "number");
    assert.deepEqual(await drive(sim, client.getLock("/l")), {
      holder: client.session,
      token,
      waiters: 0,
    });
    await drive(sim, client.unlock("/l", token!));
    assert.deepEqual(await drive(sim, client.join("/g", "m1")), { viewId: 1 });
    assert.deepEqual(await drive(sim, client.getView("/g")), {
      view: null,
      proposal: null,
    });
    assert.deepEqual(await drive(sim, client.truncate("/log", 50)), {
      first: 50,
    });
    await assert.rejects(
      drive(sim, client.read("/log", 1)),
      (e) =>
        e instanceof OracleError && e.code === "compacted" && e.first === 50,
    );
  });

  await t.step("close ends the session", async () => {
    await drive(sim, client.close());
    assert.equal(client.status().state, "closed");
    assert.ok(!oracle.sessions.has(client.session));
  });
});

Deno.test("client follows a not_leader hint to the leader, for requests and subscriptions", async () => {
  const { sim, replicas, client, ids } = cluster();
  const first = client.status().target;
  const leader = after(ids, first);
  for (const id of ids) {
    replicas[id].leader = id === leader;
    replicas[id].hint = leader;
  }
  const seen: number[] = [];
  client.subscribe(
    "/log",
    {},
    (events) => seen.push(...events.map((e) => e.seq)),
  );
  await drive(sim, client.open());
  assert.equal(client.status().target, leader);
  assert.equal(client.status().leader, leader);
  assert.ok(client.stats().redirects >= 1);
  assert.equal(client.stats().rotations, 0);
  await drive(sim, client.append("/log", 1));
  await runFor(sim, 5);
  assert.deepEqual(seen, [1]);
  await drive(sim, client.close());
});

Deno.test("client tries the next replica 5-15 ms after a not_leader that names no leader", async () => {
  const { sim, replicas, client, ids } = cluster();
  const first = client.status().target;
  const leader = after(ids, after(ids, first)); // two rotations away
  replicas[leader].leader = true;
  const start = sim.now;
  await drive(sim, client.open());
  assert.equal(client.status().target, leader);
  assert.equal(client.stats().rotations, 2);
  // Two retries of 5-15 ms each, plus three 2 ms round trips.
  const took = sim.now - start;
  assert.ok(took >= 2 * 5 + 6 && took <= 2 * 15 + 6, `took ${took} ms`);
  await drive(sim, client.close());
});

Deno.test("a long stretch without a leader falls back from fast retries to a backoff", async () => {
  const { sim, replicas, client, ids } = cluster();
  const opened = client.open();
  await runFor(sim, 5_000);
  // About a second of 5-15 ms retries (100), then one every 200 ms (20):
  // 5-15 ms retries all along would be over 330.
  const sent = client.stats().requestsSent;
  assert.ok(sent >= 100 && sent <= 140, `sent ${sent} requests`);
  replicas[ids[0]].leader = true;
  await drive(sim, opened);
  await drive(sim, client.close());
});

Deno.test("client ignores a not_leader hint naming a replica that went down", async () => {
  const { sim, replicas, client, ids } = cluster();
  const first = client.status().target;
  const next = after(ids, first);
  const last = after(ids, next);
  replicas[first].leader = true;
  await drive(sim, client.open());
  // The follower next in line has not noticed the crash: it names `first`.
  replicas[next].hint = first;
  replicas[last].leader = true;
  sim.crash(first);
  const start = sim.now;
  await drive(sim, client.append("/log", 1));
  assert.equal(client.status().target, last);
  assert.equal(client.stats().redirects, 0);
  // Down, not_leader from `next`, one 5-15 ms retry: far below the 300 ms
  // request timeout a redirect back to the crashed replica would cost.
  assert.ok(sim.now - start <= 25, `took ${sim.now - start} ms`);
  await drive(sim, client.close());
});

Deno.test("a replica that timed out is suspect: skipped, its hints ignored, until it is heard from", async (t) => {
  const { sim, replicas, client, ids } = cluster({
    client: { requestTimeoutMs: 300 },
  });
  const first = client.status().target;
  const next = after(ids, first);
  const last = after(ids, next);
  replicas[first].leader = true;
  await drive(sim, client.open());

  await t.step(
    "a frozen leader: followers still name it, the client waits for the new one",
    async () => {
      replicas[first].silent = true;
      replicas[next].hint = first;
      replicas[last].hint = first;
      const start = sim.now;
      const append = client.append("/log", 1);
      await runFor(sim, 400);
      // The followers elect `last` at 400 ms.
      replicas[first].leader = false;
      replicas[last].leader = true;
      await drive(sim, append);
      assert.ok(sim.now - start <= 420, `took ${sim.now - start} ms`);
      assert.equal(client.status().target, last);
      assert.equal(client.stats().requestTimeouts, 1);
      assert.equal(client.stats().redirects, 0);
      // Nothing went back to the frozen replica after the timeout.
      assert.equal(appendRequests(replicas[first]).length, 1);
    },
  );

  await t.step(
    "a frame from it clears the suspicion: hints naming it are followed",
    async () => {
      replicas[first].silent = false;
      // A late reply arrives once the process runs again.
      replicas[first].sendTo("client", { t: "res", r: 1_000_000, ok: null });
      await runFor(sim, 5);
      replicas[first].leader = true;
      replicas[last].leader = false;
      replicas[last].hint = first;
      const rotations = client.stats().rotations;
      const start = sim.now;
      await drive(sim, client.append("/log", 2));
      assert.equal(client.status().target, first);
      assert.equal(client.stats().redirects, 1);
      assert.equal(client.stats().rotations, rotations);
      assert.ok(sim.now - start <= 5, `took ${sim.now - start} ms`);
    },
  );
  await drive(sim, client.close());
});

Deno.test("with a short session a suspicion lasts a quarter of its TTL: one lost reply does not keep the client off a healthy leader until the session expires", async () => {
  const { sim, replicas, client, ids } = cluster({
    client: { requestTimeoutMs: 100, sessionTtlMs: 1_000 },
  });
  const first = client.status().target;
  replicas[first].leader = true;
  for (const id of ids) if (id !== first) replicas[id].hint = first;
  await drive(sim, client.open());
  // One request's frames are lost; the leader stays the leader.
  replicas[first].silent = true;
  const start = sim.now;
  const append = client.append("/log", 1);
  await runFor(sim, 110);
  replicas[first].silent = false;
  await drive(sim, append);
  // Suspect for 250 ms (1,000 ms / 4), not 1,000 ms: back well before the
  // session could expire.
  assert.ok(sim.now - start < 450, `took ${sim.now - start} ms`);
  assert.equal(client.status().target, first);
  assert.equal(client.status().state, "open");
  await drive(sim, client.close());
});

Deno.test("a subscription whose sub frame was lost is sent again once the target was silent about it for a quarter of the TTL", async () => {
  const { sim, oracle, replicas, client } = cluster({
    client: { sessionTtlMs: 2_000 },
  });
  const target = client.status().target;
  replicas[target].leader = true;
  await drive(sim, client.open());
  let dropped = 0;
  replicas[target].dropIf = (frame) => frame.t === "sub" && dropped++ === 0;
  const seen: unknown[] = [];
  client.subscribe("/log", { from: 1 }, (events) => {
    for (const event of events) seen.push(event.data);
  });
  oracle.append("/log", "a");
  await runFor(sim, 400);
  assert.deepEqual(seen, [], "the first sub frame was lost");
  await runFor(sim, 700);
  assert.deepEqual(seen, ["a"]);
  assert.equal(dropped, 2);
  assert.ok(client.stats().subscriptionRefreshes >= 1);
  await drive(sim, client.close());
});

Deno.test("client resends every pending request with its number when the target goes down; each applies once", async (t) => {
  const { sim, oracle, replicas, client, ids } = cluster();
  const first = client.status().target;
  const next = after(ids, first);
  replicas[first].leader = true;
  await drive(sim, client.open());

  const calls = Array.from({ length: 20 }, (_, i) => client.append("/log", i));
  const states = calls.map(settled);
  await t.step(
    "the leader applies the requests but its replies are lost",
    async () => {
      replicas[first].holding = true;
      await runFor(sim, 5);
      assert.equal(oracle.channel("/log").length, 20);
      assert.ok(states.every((s) => !s.done));
    },
  );

  await t.step(
    "after the crash the next replica gets the same request numbers",
    async () => {
      replicas[first].leader = false;
      replicas[next].leader = true;
      sim.crash(first);
      const results = await drive(sim, Promise.all(calls));
      assert.deepEqual(results.map((r) => r.seq), calls.map((_, i) => i + 1));
      const sentFirst = appendRequests(replicas[first]).map((f) => f.r);
      const sentNext = appendRequests(replicas[next]).map((f) => f.r);
      assert.deepEqual(sentNext, sentFirst);
      assert.equal(oracle.channel("/log").length, 20);
      assert.ok([...oracle.applied.values()].every((n) => n === 1));
      assert.equal(client.status().target, next);
      assert.ok(client.stats().resends >= 20);
    },
  );
  await drive(sim, client.close());
});

Deno.test("client moves to the next replica when the target is silent past the request timeout", async () => {
  const { sim, replicas, client, ids } = cluster({
    client: { requestTimeoutMs: 300 },
  });
  const first = client.status().target;
  const next = after(ids, first);
  replicas[first].leader = true;
  replicas[first].silent = true;
  replicas[next].leader = true;
  const start = sim.now;
  await drive(sim, client.open());
  assert.ok(sim.now - start >= 300, `took ${sim.now - start} ms`);
  assert.ok(sim.now - start < 600, `took ${sim.now - start} ms`);
  assert.equal(client.status().target, next);
  assert.equal(client.stats().requestTimeouts, 1);
  await drive(sim, client.close());
});

Deno.test("client resends a lost request to a target that keeps answering others", async () => {
  const { sim, replicas, client, ids } = cluster();
  const first = client.status().target;
  replicas[first].leader = true;
  await drive(sim, client.open());
  let dropped = false;
  replicas[first].dropIf = (frame) => {
    if (dropped || frame.t !== "req" || frame.op.op !== "append") return false;
    dropped = true;
    return true;
  };
  const lost = client.append("/log", "lost once");
  const ok = client.append("/log", "fine");
  assert.equal((await drive(sim, ok)).seq, 1);
  assert.equal((await drive(sim, lost)).seq, 2);
  assert.equal(client.status().target, first);
  assert.equal(client.stats().rotations, 0);
  assert.equal(client.stats().resends, 1);
  assert.ok(ids.includes(first));
  await drive(sim, client.close());
});

Deno.test("a waiting lock is granted by the replica's push, however long it takes", async (t) => {
  const { sim, oracle, replicas, client } = cluster();
  const leader = client.status().target;
  replicas[leader].leader = true;
  await drive(sim, client.open());
  applyOther(oracle, 1, { op: "open_session", ttlMs: 10_000 });
  applyOther(oracle, 2, { op: "lock", path: "/l", wait: true });

  const lock = client.lock("/l");
  const state = settled(lock);
  await t.step(
    "the lock is busy: a try fails, the wait outlives the deadline",
    async () => {
      assert.equal(await drive(sim, client.tryLock("/l")), undefined);
      await runFor(sim, 40_000); // past deadlineMs (30 s), keep-alives flowing
      assert.equal(state.done, false);
      assert.equal(client.stats().deadlineTimeouts, 0);
      assert.equal(client.stats().requestTimeouts, 0);
    },
  );

  await t.step("the holder's unlock grants it", async () => {
    applyOther(oracle, 3, { op: "unlock", path: "/l", token: 1 });
    assert.deepEqual(await drive(sim, lock), { token: 2 });
    assert.equal(
      (await drive(sim, client.getLock("/l"))).holder,
      client.session,
    );
  });
  await drive(sim, client.close());
});

Deno.test("a subscription resumes on a new target with no gap and no duplicate", async (t) => {
  const { sim, oracle, replicas, client, ids } = cluster();
  const first = client.status().target;
  const next = after(ids, first);
  for (const id of ids) {
    replicas[id].leader = id === first;
    replicas[id].overlap = 7; // re-sends 7 old events on every resume
  }
  await drive(sim, client.open());
  const bySeq: number[] = [];
  const byRev: number[] = [];
  const sub = client.subscribe("/log", {}, (events) => {
    bySeq.push(...events.map((e) => e.seq));
  });
  client.subscribe("/", { prefix: true }, (events) => {
    byRev.push(...events.map((e) => e.rev));
  });

  await t.step("events flow from the first target", async () => {
    for (let i = 0; i < 10; i++) {
      oracle.append("/log", i);
      oracle.append("/other", i);
    }
    await runFor(sim, 5);
    assert.deepEqual(bySeq, range(1, 10));
    assert.equal(sub.next, 11);
  });

  await t.step(
    "the target dies; events keep coming at the new leader",
    async () => {
      replicas[first].leader = false;
      sim.crash(first);
      replicas[next].leader = true;
      for (let i = 10; i < 20; i++) {
        oracle.append("/log", i);
        oracle.append("/other", i);
      }
      await runFor(sim, 50);
      for (let i = 20; i < 30; i++) oracle.append("/log", i);
      await runFor(sim, 5);
      assert.deepEqual(bySeq, range(1, 30));
      assert.deepEqual(byRev, oracle.events.map((e) => e.rev));
      assert.equal(sub.next, 31);
      assert.ok(client.stats().duplicateEvents >= 7);
      assert.equal(client.stats().gaps, 0);
    },
  );

  await t.step("acknowledgements tell the replica what was processed", () => {
    const fake = [...replicas[next].subs.values()].find((s) =>
      s.path === "/log"
    )!;
    assert.equal(fake.acked, 30);
  });
  await drive(sim, client.close());
});

Deno.test("a subscription from a truncated position ends with compacted and the first position", async () => {
  const { sim, oracle, replicas, client } = cluster();
  replicas[client.status().target].leader = true;
  for (let i = 0; i < 10; i++) oracle.append("/log", i);
  applyOther(oracle, 1, { op: "open_session", ttlMs: 10_000 });
  applyOther(oracle, 2, { op: "truncate", path: "/log", before: 5 });
  const errors: OracleError[] = [];
  const sub = client.subscribe(
    "/log",
    { from: 2, onError: (e) => errors.push(e) },
    () => assert.fail("no event expected"),
  );
  await runFor(sim, 5);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "compacted");
  assert.equal(errors[0].first, 5);
  assert.equal(sub.closed, true);
  assert.equal(client.status().subscriptions, 0);
});

Deno.test("session_expired rejects everything, ends subscriptions and stops the client", async (t) => {
  const { sim, oracle, replicas, client } = cluster();
  replicas[client.status().target].leader = true;
  await drive(sim, client.open());
  const subErrors: string[] = [];
  client.subscribe(
    "/log",
    { onError: (e) => subErrors.push(e.code) },
    () => {},
  );
  let expiredCalls = 0;
  client.onSessionExpired(() => expiredCalls++);
  applyOther(oracle, 1, { op: "open_session", ttlMs: 10_000 });
  applyOther(oracle, 2, { op: "lock", path: "/l", wait: false });
  const waiting = client.lock("/l");
  await runFor(sim, 5);

  await t.step("the Oracle expires the session", async () => {
    oracle.expire(client.session);
    const calls = [client.append("/log", 1), client.append("/log", 2), waiting];
    const outcomes = await drive(sim, Promise.allSettled(calls));
    for (const outcome of outcomes) {
      assert.equal(outcome.status, "rejected");
      assert.equal((outcome.reason as OracleError).code, "session_expired");
    }
    assert.equal(expiredCalls, 1);
    assert.deepEqual(subErrors, ["session_expired"]);
    assert.equal(client.status().state, "expired");
  });

  await t.step(
    "later calls fail at once and nothing more is sent",
    async () => {
      const sent = replicas[client.status().target].received.length;
      await assert.rejects(
        client.append("/log", 3),
        (e) => e instanceof OracleError && e.code === "session_expired",
      );
      assert.throws(
        () => client.subscribe("/log", {}, () => {}),
        (e) => e instanceof OracleError && e.code === "session_expired",
      );
      let late = 0;
      client.onSessionExpired(() => late++);
      assert.equal(late, 1);
      await runFor(sim, 10_000);
      assert.equal(replicas[client.status().target].received.length, sent);
    },
  );
  await drive(sim, client.close());
});

Deno.test("close rejects pending calls with closed, closes the session and stops timers", async () => {
  const { sim, oracle, replicas, client } = cluster();
  const leader = client.status().target;
  replicas[leader].leader = true;
  await drive(sim, client.open());
  applyOther(oracle, 1, { op: "open_session", ttlMs: 10_000 });
  applyOther(oracle, 2, { op: "lock", path: "/l", wait: false });
  const waiting = client.lock("/l");
  const sub = client.subscribe("/log", {}, () => {});
  await runFor(sim, 5);
  const closing = client.close();
  await assert.rejects(
    waiting,
    (e) => e instanceof OracleError && e.code === "closed",
  );
  await drive(sim, closing);
  assert.equal(sub.closed, true);
  assert.ok(!oracle.sessions.has(client.session));
  assert.equal(replicas[leader].subs.size, 0); // unsubscribed
  const sent = replicas[leader].received.length;
  await runFor(sim, 20_000);
  assert.equal(replicas[leader].received.length, sent); // no keep-alive
  await assert.rejects(
    client.append("/log", 1),
    (e) => e instanceof OracleError && e.code === "closed",
  );
});

Deno.test("garbage from the network is dropped and counted, never thrown", async () => {
  const { sim, replicas, client } = cluster();
  const leader = client.status().target;
  replicas[leader].leader = true;
  await drive(sim, client.open());
  const text = (s: string) => new TextEncoder().encode(s);
  const garbage = [
    new Uint8Array([0xff, 0xfe, 0x00]),
    text("not json"),
    text("[1,2]"),
    text("null"),
    text('{"t":"res"}'),
    text('{"t":"res","r":1,"ok":1,"err":{"code":"x","message":""}}'),
    text('{"t":"res","r":-1,"ok":1}'),
    text('{"t":"res","r":1,"err":"boom"}'),
    text('{"t":"ev","id":1,"events":[{"path":"/a"}]}'),
    text('{"t":"ev","id":1,"events":"nope"}'),
    text('{"t":"subend","id":1,"err":{}}'),
    text('{"t":"what"}'),
  ];
  const bystander = other([...Object.keys(replicas)], leader);
  for (const payload of garbage) {
    replicas[leader].sendRaw("client", payload);
    replicas[bystander].sendRaw("client", payload);
  }
  // A reply for a request number nobody is waiting for: stale, not bad.
  replicas[leader].sendRaw("client", text('{"t":"res","r":777,"ok":null}'));
  // The wrong result shape for a pending append: dropped, then retried.
  let wrongOnce = true;
  const origin = replicas[leader];
  origin.dropIf = (frame) => {
    if (wrongOnce && frame.t === "req" && frame.op.op === "append") {
      wrongOnce = false;
      origin.sendRaw(
        "client",
        text(JSON.stringify({ t: "res", r: frame.r, ok: { seq: "one" } })),
      );
      return true;
    }
    return false;
  };
  const { seq } = await drive(sim, client.append("/log", 1));
  assert.equal(seq, 1);
  const stats = client.stats();
  assert.equal(stats.badFrames, garbage.length * 2 + 1);
  assert.equal(stats.staleReplies, 1);
  assert.equal(client.status().state, "open");
  await drive(sim, client.close());
});

Deno.test("maxInflight bounds the requests in flight; further calls wait for a slot", async () => {
  const { sim, replicas, client } = cluster({ client: { maxInflight: 4 } });
  const leader = client.status().target;
  replicas[leader].leader = true;
  await drive(sim, client.open());
  replicas[leader].holding = true;
  const calls = Array.from({ length: 10 }, (_, i) => client.append("/log", i));
  await runFor(sim, 100);
  const appends = () =>
    new Set(appendRequests(replicas[leader]).map((f) => f.r));
  assert.equal(appends().size, 4);
  assert.equal(client.status().queued, 6);
  assert.equal(client.stats().inflightWaits, 6);
  replicas[leader].release();
  const results = await drive(sim, Promise.all(calls));
  assert.deepEqual(results.map((r) => r.seq), range(1, 10));
  assert.equal(appends().size, 10);
  await drive(sim, client.close());
});

Deno.test("transport backpressure queues frames until the transport drains", async () => {
  const { sim, replicas, client } = cluster();
  const leader = client.status().target;
  replicas[leader].leader = true;
  sim.setLink("client", leader, { maxInFlight: 3 });
  await drive(sim, client.open());
  const calls = Array.from({ length: 50 }, (_, i) => client.append("/log", i));
  const results = await drive(sim, Promise.all(calls));
  assert.deepEqual(results.map((r) => r.seq), range(1, 50));
  assert.ok(client.stats().transportBackpressure > 0);
  assert.equal(client.stats().resends, 0);
  await drive(sim, client.close());
});

Deno.test("an overloaded answer is retried after a backoff", async () => {
  const { sim, replicas, client } = cluster();
  const leader = client.status().target;
  replicas[leader].leader = true;
  await drive(sim, client.open());
  let overloads = 2;
  const fake = replicas[leader];
  fake.dropIf = (frame) => {
    if (overloads > 0 && frame.t === "req" && frame.op.op === "append") {
      overloads--;
      fake.sendTo("client", {
        t: "res",
        r: frame.r,
        err: { code: "overloaded", message: "busy" },
      });
      return true;
    }
    return false;
  };
  assert.equal((await drive(sim, client.append("/log", 1))).seq, 1);
  assert.equal(client.stats().overloadRetries, 2);
  await drive(sim, client.close());
});

Deno.test("a request unanswered at its deadline rejects with timeout", async () => {
  const { sim, replicas, client } = cluster({
    client: { deadlineMs: 2_000 },
  });
  for (const replica of Object.values(replicas)) {
    replica.leader = true;
    replica.silent = true;
  }
  const start = sim.now;
  await assert.rejects(
    drive(sim, client.open()),
    (e) => e instanceof OracleError && e.code === "timeout",
  );
  assert.ok(sim.now - start >= 2_000 && sim.now - start < 2_600);
  // Rotations after 300, then 600 ms (the wait doubles per silent replica).
  assert.equal(client.stats().rotations, 2);
  assert.equal(client.status().pending, 0);
  assert.equal(client.status().state, "new");
  await drive(sim, client.close());
});

Deno.test("delegate, getTree and endedSessions return typed results; moved errors carry their delegation", async (t) => {
  const { sim, oracle, replicas, client } = cluster();
  const target = client.status().target;
  replicas[target].leader = true;
  await drive(sim, client.open());
  const kv = { prefix: "/apps/kv", group: "kv", replicas: { k1: "h1:7000" } };

  await t.step("the tree operations", async () => {
    await drive(sim, client.delegate(kv.prefix, kv.group, kv.replicas));
    assert.deepEqual(oracle.delegations.get("/apps/kv"), kv);
    assert.deepEqual(await drive(sim, client.getTree()), {
      owns: ["/"],
      delegations: [kv],
      tokens: 0,
    });
    assert.deepEqual(
      await drive(sim, client.endedSessions([client.session, "gone"])),
      ["gone"],
    );
    await assert.rejects(
      drive(sim, client.delegate("/apps", "other", { o1: "h:1" })),
      (e) => e instanceof OracleError && e.code === "delegation",
    );
  });

  await t.step(
    "requests and subscriptions end with the delegation",
    async () => {
      await assert.rejects(
        drive(sim, client.append("/apps/kv/log", 1)),
        (e) =>
          e instanceof OracleError && e.code === "moved" &&
          JSON.stringify(e.delegation) === JSON.stringify(kv),
      );
      const ended = Promise.withResolvers<OracleError>();
      client.subscribe("/apps/kv/log", { onError: ended.resolve }, () => {});
      const error = await drive(sim, ended.promise);
      assert.equal(error.code, "moved");
      assert.deepEqual(error.delegation, kv);
    },
  );

  await t.step(
    "a malformed delegation is dropped, not the answer",
    async () => {
      const bad = [
        { prefix: "/bad/a", group: "", replicas: { k1: "h:1" } },
        { prefix: "/bad/b", group: "g", replicas: { k1: 5 } },
        { prefix: "bad/c", group: "g", replicas: { k1: "h:1" } },
        "nonsense",
      ];
      bad.forEach((d, i) =>
        oracle.delegations.set(`/bad/${i}`, d as unknown as typeof kv)
      );
      for (let i = 0; i < bad.length; i++) {
        await assert.rejects(
          drive(sim, client.append(`/bad/${i}/x`, 1)),
          (e) =>
            e instanceof OracleError && e.code === "moved" &&
            e.delegation === undefined,
        );
      }
      await assert.rejects(
        drive(sim, client.getTree()),
        (e) => e instanceof OracleError && e.code === "timeout",
      );
      assert.ok(client.stats().badFrames > 0);
    },
  );
  await drive(sim, client.close());
});

Deno.test("arguments are checked before anything is sent", async () => {
  const { sim, replicas, client } = cluster();
  replicas[client.status().target].leader = true;
  await assert.rejects(
    client.append("/log", 1),
    (e) => e instanceof OracleError && e.code === "closed",
  );
  await drive(sim, client.open());
  const sent = replicas[client.status().target].received.length;
  await assert.rejects(client.append("log", 1), TypeError);
  await assert.rejects(client.append("/log", undefined as never), TypeError);
  await assert.rejects(client.append("/log", { n: NaN }), TypeError);
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  await assert.rejects(client.append("/log", cycle as never), TypeError);
  await assert.rejects(client.truncate("/log", 0), RangeError);
  await assert.rejects(client.read("/log", 1.5), RangeError);
  await assert.rejects(client.unlock("/l", -1), RangeError);
  await assert.rejects(client.join("/g", ""), TypeError);
  await assert.rejects(client.delegate("/a", "", { c1: "h:1" }), TypeError);
  await assert.rejects(client.delegate("/a", "g", {}), RangeError);
  await assert.rejects(
    client.delegate("/a", "g", { c1: 5 } as never),
    TypeError,
  );
  await assert.rejects(client.endedSessions([]), RangeError);
  await assert.rejects(client.endedSessions(Array(1001).fill("s")), RangeError);
  await assert.rejects(client.endedSessions(["x".repeat(129)]), RangeError);
  await assert.rejects(client.endedSessions([7] as never), TypeError);
  await assert.rejects(client.list("files" as never, "/"), TypeError);
  await assert.rejects(client.list("locks", "apps"), TypeError);
  await assert.rejects(client.list("locks", "/", { after: "x" }), TypeError);
  await assert.rejects(client.list("locks", "/", { limit: 0 }), RangeError);
  await assert.rejects(client.list("locks", "/", { limit: 1001 }), RangeError);
  await assert.rejects(
    client.list("locks", "/", { limit: "5" as never }),
    TypeError,
  );
  assert.throws(
    () => client.subscribe("/log", { from: 0 }, () => {}),
    RangeError,
  );
  assert.throws(
    () =>
      new OracleClient(null as never, {
        replicas: [],
        clock: sim.clock,
        random: sim.fork("x"),
      }),
    TypeError,
  );
  await runFor(sim, 5);
  assert.equal(replicas[client.status().target].received.length, sent);
  await drive(sim, client.close());
});

Deno.test("under leader crashes, restarts and partitions, every append applies once and subscribers see each event once, in order", async () => {
  const totals = { rotations: 0, requestTimeouts: 0, duplicateEvents: 0 };
  for (let seed = 1; seed <= 20; seed++) {
    const sim = new Simulation({
      seed,
      latency: { kind: "uniform", min: 1, max: 4 },
      fifo: true,
      duplicate: 0.05,
    });
    const oracle = new FakeOracle();
    const ids = ["r1", "r2", "r3"];
    const replicas: Record<string, FakeReplica> = {};
    let leader = "r1";
    for (const id of ids) {
      sim.addNode(id, (env) => {
        replicas[id] = new FakeReplica(id, env.transport, oracle, {
          leader: id === leader,
          hint: leader,
          overlap: 3,
        });
        return {};
      });
    }
    let client!: OracleClient;
    sim.addNode("client", (env) => {
      client = new OracleClient(env.transport, {
        replicas: ids,
        clock: env.clock,
        random: env.random,
      });
      return {};
    });
    const rng = sim.fork("script");
    const seen: ChannelEvent[] = [];
    const seenByRev: number[] = [];
    await drive(sim, client.open());
    client.subscribe("/log", {}, (events) => seen.push(...events));
    client.subscribe("/", { prefix: true }, (events) => {
      seenByRev.push(...events.map((e) => e.rev));
    });
    const calls: Promise<{ seq: number }>[] = [];
    const newLeader = (old: string) => {
      leader = ids[(ids.indexOf(old) + 1 + rng.int(2)) % 3];
      for (const id of ids) {
        replicas[id].leader = id === leader;
        replicas[id].hint = rng.int(2) === 0 ? leader : undefined;
      }
    };
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 10; i++) {
        calls.push(client.append(i % 2 === 0 ? "/log" : "/other", round));
      }
      await runFor(sim, rng.int(20));
      if (round % 5 === 2) {
        const old = leader;
        newLeader(old);
        sim.crash(old);
        await runFor(sim, rng.int(50));
        sim.restart(old);
        replicas[old].leader = false;
        replicas[old].hint = leader;
      } else if (round % 5 === 4) {
        // The client loses its leader without any peer event.
        const old = leader;
        const cut = sim.partition(["client"], [old]);
        newLeader(old);
        await runFor(sim, 200 + rng.int(600));
        sim.heal(cut);
      }
    }
    const results = await drive(sim, Promise.all(calls));
    await runFor(sim, 1_000);
    const seqs = (path: string) =>
      results.filter((_, i) => (i % 2 === 0) === (path === "/log")).map((r) =>
        r.seq
      ).sort((a, b) => a - b);
    assert.deepEqual(seqs("/log"), range(1, 100), `seed ${seed}`);
    assert.deepEqual(seqs("/other"), range(1, 100), `seed ${seed}`);
    assert.ok(
      [...oracle.applied.values()].every((n) => n === 1),
      `seed ${seed}`,
    );
    assert.deepEqual(seen.map((e) => e.seq), range(1, 100), `seed ${seed}`);
    assert.deepEqual(seenByRev, range(1, 200), `seed ${seed}`);
    const stats = client.stats();
    totals.rotations += stats.rotations + stats.redirects;
    totals.requestTimeouts += stats.requestTimeouts;
    totals.duplicateEvents += stats.duplicateEvents;
    await drive(sim, client.close());
  }
  // The faults were exercised.
  assert.ok(totals.rotations > 0, JSON.stringify(totals));
  assert.ok(totals.requestTimeouts > 0, JSON.stringify(totals));
  assert.ok(totals.duplicateEvents > 0, JSON.stringify(totals));
});

Deno.test("OracleClient.connect opens a session over TCP and close releases everything", async () => {
  const server = await TcpTransport.start({
    id: "r1",
    listen: { port: 0 },
    acceptUnknownPeers: true,
    secret: "s3cret",
  });
  const oracle = new FakeOracle();
  const replica = new FakeReplica("r1", server, oracle, { leader: true });
  try {
    const client = await OracleClient.connect({
      replicas: { r1: `127.0.0.1:${server.listenAddress!.port}` },
      secret: "s3cret",
    });
    try {
      assert.ok(oracle.sessions.has(client.session));
      const got = Promise.withResolvers<number[]>();
      client.subscribe("/log", {}, (events) => {
        if (events.at(-1)!.seq === 3) got.resolve(events.map((e) => e.seq));
      });
      const results = await Promise.all(
        [1, 2, 3].map((i) => client.append("/log", i)),
      );
      assert.deepEqual(results.map((r) => r.seq), [1, 2, 3]);
      const seqs = await got.promise;
      assert.equal(seqs.at(-1), 3);
    } finally {
      await client.close();
    }
    assert.ok(!oracle.sessions.has(client.session));
    assert.equal(replica.subs.size, 0);
  } finally {
    await server.close();
  }
});

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
