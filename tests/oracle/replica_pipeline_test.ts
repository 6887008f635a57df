import assert from "node:assert/strict";
import { settle } from "./_sim_helpers.ts";
import { Simulation } from "../../sim/mod.ts";
import { OracleClient } from "../../oracle/client.ts";
import { OracleReplica } from "../../oracle/replica.ts";
import type { PeerId, Transport } from "../../transport/transport.ts";

const IDS = ["r1", "r2", "r3"];
const decoder = new TextDecoder();

/** A frame a replica sent, decoded, with the virtual time it was sent at. */
interface Sent {
  at: number;
  from: string;
  to: PeerId;
  frame: {
    t: string;
    m?: {
      type: string;
      commit?: number;
      entries?: { index: number; command: unknown }[];
    };
  };
}

/**
 * Three replicas in a simulation (TCP-like: FIFO, 1 ms); every frame they
 * send is recorded. Leadership changes reach `leadership`.
 */
function cluster(seed: number) {
  const sim = new Simulation({
    seed,
    latency: { kind: "constant", ms: 1 },
    fifo: true,
  });
  const replicas = new Map<string, OracleReplica>();
  const sent: Sent[] = [];
  const leadership: [string, boolean][] = [];
  for (const id of IDS) {
    sim.addNode(id, (env) => {
      const inner = env.transport;
      const transport: Transport = {
        id: inner.id,
        maxFrameSize: inner.maxFrameSize,
        setHandler: (handler) => inner.setHandler(handler),
        send(to, payload) {
          sent.push({
            at: sim.now,
            from: id,
            to,
            frame: JSON.parse(decoder.decode(payload)),
          });
          return inner.send(to, payload);
        },
        stats: () => inner.stats(),
        close: () => inner.close(),
      };
      const replica = OracleReplica.open({
        id,
        replicas: IDS,
        transport,
        storage: env.storage,
        clock: env.clock,
        random: env.random,
        observer: {
          leadership: (replica, leader) => leadership.push([replica, leader]),
        },
      });
      replicas.set(id, replica);
      return { stop: () => replica.stop() };
    }, { down: true });
  }
  for (const id of IDS) sim.start(id);
  const clients: OracleClient[] = [];
  const client = (id: string) => {
    sim.addNode(id, (env) => {
      clients.push(
        new OracleClient(env.transport, {
          replicas: IDS,
          clock: env.clock,
          random: env.random,
        }),
      );
      return {};
    });
    return clients.at(-1)!;
  };
  const leader = () => [...replicas.values()].find((r) => r.isLeader);
  return { sim, replicas, sent, leadership, client, leader };
}

Deno.test("replica: writes that arrive while an entry commits wait and share the next entry", async () => {
  const { sim, sent, client, leader } = cluster(7);
  const clients = Array.from({ length: 8 }, (_, i) => client(`c${i}`));
  await settle(sim, Promise.all(clients.map((c) => c.open())));
  const before = leader()!.status().counters;
  // Each client appends in a loop, one append in flight, starting 0.25 ms
  // apart: without waiting, almost every append would get an entry.
  let stop = false;
  let appends = 0;
  const loops = clients.map(async (c, i) => {
    await new Promise<void>((resolve) => sim.clock.setTimer(i, resolve));
    while (!stop) {
      await c.append(`/log/${i}`, i);
      appends++;
    }
  });
  await sim.runUntilAsync(() => appends >= 400, { maxTime: 20_000 });
  stop = true;
  await settle(sim, Promise.all(loops));
  const after = leader()!.status().counters;
  const writes = after.writes - before.writes;
  const proposals = after.proposals - before.proposals;
  assert.ok(writes >= 400);
  assert.ok(
    writes >= 3 * proposals,
    `${writes} writes in ${proposals} entries`,
  );
  // When an entry of writes first went out, the one before was committed.
  const commitWhenSent = new Map<number, number>();
  for (const { from, frame } of sent) {
    if (from !== leader()!.id || frame.m?.type !== "append") continue;
    for (const entry of frame.m.entries ?? []) {
      const command = entry.command as { batch?: unknown } | null;
      if (command?.batch === undefined) continue;
      if (!commitWhenSent.has(entry.index)) {
        commitWhenSent.set(entry.index, frame.m.commit!);
      }
    }
  }
  const indexes = [...commitWhenSent.keys()].sort((a, b) => a - b);
  assert.ok(indexes.length >= 50);
  for (let i = 1; i < indexes.length; i++) {
    const commit = commitWhenSent.get(indexes[i])!;
    assert.ok(
      commit >= indexes[i - 1],
      `entry ${indexes[i]} went out with commit ${commit}, before entry ${
        indexes[i - 1]
      } committed`,
    );
  }
  await settle(sim, Promise.all(clients.map((c) => c.close())));
});

Deno.test("replica: a leader answers the client first and tells idle followers of the commit at its next tick", async () => {
  const { sim, sent, client, leader, replicas } = cluster(3);
  const c = client("c1");
  await settle(sim, c.open());
  const lead = leader()!;
  const mark = sent.length;
  await settle(sim, c.append("/log", "x"));
  const turn = sent.slice(mark).filter((s) => s.from === lead.id);
  const reply = turn.findIndex((s) => s.to === "c1" && s.frame.t === "res");
  assert.ok(reply >= 0);
  const news = (s: Sent) =>
    s.frame.t === "raft" && s.frame.m?.type === "append" &&
    s.frame.m.entries?.length === 0 && s.at === turn[reply].at;
  // Nothing about the commit goes to followers ahead of the reply.
  assert.deepEqual(turn.slice(0, reply).filter(news), []);
  // Idle followers learn the commit within one tick (10 ms) and a hop.
  const committed = lead.status().commitIndex;
  await sim.runForAsync(15);
  for (const [id, replica] of replicas) {
    assert.ok(
      replica.status().commitIndex >= committed,
      `${id} has commit ${replica.status().commitIndex} < ${committed}`,
    );
  }
  await settle(sim, c.close());
});

Deno.test("replica: leadership changes reach the observer", async () => {
  const { sim, leadership, client, leader, replicas } = cluster(5);
  const c = client("c1");
  await settle(sim, c.open());
  const first = leader()!.id;
  assert.deepEqual(leadership, [[first, true]]);
  sim.crash(first);
  await settle(sim, c.append("/log", 1));
  const second = leader()!.id;
  assert.notEqual(second, first);
  assert.deepEqual(leadership, [[first, true], [second, true]]);
  assert.equal(replicas.get(second)!.isLeader, true);
  await settle(sim, c.close());
});
