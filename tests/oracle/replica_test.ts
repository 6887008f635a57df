import assert from "node:assert/strict";
import { settle } from "./_sim_helpers.ts";
import { type SimNodeEnv, Simulation } from "../../sim/mod.ts";
import { OracleClient } from "../../oracle/client.ts";
import { OracleReplica } from "../../oracle/replica.ts";

const IDS = ["r1", "r2", "r3"];

/** Three replicas in a simulation, and a way to build clients on nodes. */
function cluster(seed: number, options: { electionTicks?: number } = {}) {
  const sim = new Simulation({ seed, latency: { kind: "constant", ms: 1 } });
  const replicas = new Map<string, OracleReplica>();
  for (const id of IDS) {
    sim.addNode(id, (env) => {
      const replica = OracleReplica.open({
        id,
        replicas: IDS,
        transport: env.transport,
        storage: env.storage,
        clock: env.clock,
        random: env.random,
        electionTicks: options.electionTicks,
      });
      replicas.set(id, replica);
      return { stop: () => replica.stop() };
    }, { down: true });
  }
  for (const id of IDS) sim.start(id);
  const client = (id: string, ttlMs = 2_000) => {
    let made: OracleClient | undefined;
    let env: SimNodeEnv | undefined;
    sim.addNode(id, (e) => {
      env = e;
      made = new OracleClient(e.transport, {
        replicas: IDS,
        clock: e.clock,
        random: e.random,
        sessionTtlMs: ttlMs,
        requestTimeoutMs: 100,
        id: `${id}-${e.incarnation}`,
      });
      return {};
    });
    return { client: made!, env: env! };
  };
  const leader = () => [...replicas.values()].find((r) => r.isLeader);
  return { sim, replicas, client, leader };
}

Deno.test("replica: a follower answers not_leader naming the leader", async () => {
  const { sim, client, leader } = cluster(1);
  const { client: c } = client("c1");
  await settle(sim, c.open());
  const lead = leader();
  assert.ok(lead !== undefined);
  const follower = IDS.find((id) => id !== lead.id)!;
  const replies: unknown[] = [];
  sim.addNode("raw", (env) => {
    env.transport.setHandler({
      onFrame: (_from, payload) =>
        replies.push(JSON.parse(new TextDecoder().decode(payload))),
    });
    env.transport.send(
      follower,
      new TextEncoder().encode(JSON.stringify({
        t: "req",
        s: c.session,
        r: 1,
        a: 1,
        op: { op: "append", path: "/log", data: 1 },
      })),
    );
    return {};
  });
  await sim.runUntilAsync(() => replies.length > 0, { maxTime: 1_000 });
  assert.deepEqual(replies, [{
    t: "res",
    r: 1,
    err: {
      code: "not_leader",
      message: `Replica ${follower} is not the leader; ${lead.id} is`,
      leader: lead.id,
    },
  }]);
});

Deno.test("replica: a leader expires a silent session and hands its lock to the next waiter", async () => {
  const { sim, client } = cluster(2);
  const a = client("a", 1_000);
  const b = client("b", 5_000);
  await settle(sim, Promise.all([a.client.open(), b.client.open()]));
  const { token } = await settle(sim, a.client.lock("/lk"));
  const waiting = b.client.lock("/lk");
  await sim.runForAsync(200);
  sim.crash("a"); // a stops keeping its session alive
  const grant = await settle(sim, waiting, 10_000);
  assert.ok(grant.token > token, "the waiter's token is greater");
  const info = await settle(sim, b.client.getLock("/lk"));
  assert.equal(info.holder, b.client.session);
});

Deno.test("replica: a session stays alive across a restart of every replica", async (t) => {
  // The new leader must not answer a keep-alive `session_expired` before
  // it has applied the entries that opened the session.
  for (let seed = 1; seed <= 40; seed++) {
    await t.step(`seed ${seed}`, () => sessionSurvivesRestart(seed));
  }
});

async function sessionSurvivesRestart(seed: number): Promise<void> {
  const { sim, client, replicas } = cluster(seed);
  const { client: c } = client("c1", 3_000);
  let expired = false;
  c.onSessionExpired(() => expired = true);
  await settle(sim, c.open());
  await settle(sim, c.append("/log", "before"));
  for (const id of IDS) sim.crash(id);
  for (const id of IDS) sim.restart(id);
  await sim.runForAsync(2_500);
  assert.equal(expired, false, "the session was expired");
  assert.deepEqual(await settle(sim, c.append("/log", "after")), {
    seq: 2,
    rev: 2,
  });
  assert.ok([...replicas.values()].some((r) => r.isLeader));
}

Deno.test("replica: a new leader does not call a session expired before it has applied the log", async () => {
  const { sim, client, leader } = cluster(4);
  const { client: c } = client("c1", 3_000);
  await settle(sim, c.open());
  await settle(sim, c.append("/log", "before"));
  sim.crash("c1");
  for (const id of IDS) sim.crash(id);
  for (const id of IDS) sim.restart(id);
  // The instant a leader is elected, before its first entry commits, a
  // keep-alive for the (still live) session arrives.
  assert.ok(
    await sim.runUntilAsync(() => leader() !== undefined, { maxTime: 5_000 }),
  );
  const lead = leader()!;
  assert.equal(lead.appliedIndex, 0, "the new leader has applied nothing yet");
  const replies: { ok?: unknown; err?: { code: string } }[] = [];
  sim.addNode("raw", (env) => {
    env.transport.setHandler({
      onFrame: (_from, payload) =>
        replies.push(JSON.parse(new TextDecoder().decode(payload))),
    });
    env.transport.send(
      lead.id,
      new TextEncoder().encode(JSON.stringify({
        t: "req",
        s: c.session,
        r: 1000,
        a: 1000,
        op: { op: "keepalive" },
      })),
    );
    return {};
  });
  await sim.runUntilAsync(() => replies.length > 0, { maxTime: 1_000 });
  assert.equal(replies.length, 1);
  assert.notEqual(replies[0].err?.code, "session_expired");
});

Deno.test("replica: inspect answers at once from the applied state; a cut-off follower's answer is stale until it catches up", async () => {
  const { sim, replicas, client, leader } = cluster(5);
  const { client: c } = client("c1");
  await settle(sim, c.open());
  await settle(sim, c.lock("/apps/a"));
  const lead = leader()!;
  const followerId = IDS.find((id) => id !== lead.id)!;
  const follower = replicas.get(followerId)!;
  const op = { op: "list", kind: "locks", prefix: "/apps" } as const;
  const listed = (replica: OracleReplica) => {
    const result = replica.inspect(op);
    assert.ok("ok" in result, JSON.stringify(result));
    return (result.ok as { items: { path: string }[] }).items.map((i) =>
      i.path
    );
  };
  await sim.runUntilAsync(() => listed(follower).length === 1, {
    maxTime: 1_000,
  });
  assert.deepEqual(listed(follower), ["/apps/a"]);

  const cut = sim.partition(
    [followerId],
    [...IDS.filter((id) => id !== followerId), "c1"],
  );
  await settle(sim, c.lock("/apps/b"));
  assert.deepEqual(listed(lead), ["/apps/a", "/apps/b"]);
  // No read-index round, no not_leader: the follower answers what it has.
  assert.deepEqual(listed(follower), ["/apps/a"]);
  assert.ok(follower.appliedIndex < lead.appliedIndex);

  sim.heal(cut);
  await sim.runUntilAsync(() => listed(follower).length === 2, {
    maxTime: 10_000,
  });
  assert.deepEqual(listed(follower), ["/apps/a", "/apps/b"]);
});
