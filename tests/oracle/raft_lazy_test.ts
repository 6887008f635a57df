import assert from "node:assert/strict";
import { RaftNode } from "../../oracle/raft.ts";
import type { AppendRequest } from "../../oracle/raft_types.ts";
import { Prng } from "../../sim/prng.ts";
import { Cluster, type Cmd } from "./_raft_harness.ts";

/** Elects a leader and lets its no-op commit everywhere. */
function settledCluster(ids: string[], seed: number): Cluster {
  const cluster = new Cluster({ seed, ids, raft: { heartbeatTicks: 2 } });
  assert.ok(cluster.runUntil(() => cluster.leader() !== undefined, 500));
  const leader = cluster.leader()!;
  assert.ok(
    cluster.runUntil(
      () =>
        [...cluster.nodes.values()].every((n) =>
          n.raft.commitIndex >= leader.raft.lastIndex
        ),
      500,
    ),
  );
  return cluster;
}

/** The appends with entries the leader sent, by follower: lazy or not. */
function appendsByFollower(
  cluster: Cluster,
  leader: string,
): Map<string, boolean[]> {
  const byFollower = new Map<string, boolean[]>();
  for (const s of cluster.sent) {
    const m = s.message;
    if (s.from !== leader || m.type !== "append" || m.entries.length === 0) {
      continue;
    }
    const list = byFollower.get(s.to) ?? [];
    list.push(m.lazy === true);
    byFollower.set(s.to, list);
  }
  return byFollower;
}

/** Proposes `count` entries, each after the previous committed. */
function proposeAndCommit(cluster: Cluster, count: number): void {
  for (let i = 0; i < count; i++) {
    const at = cluster.propose(`p${i}`)!;
    assert.ok(
      cluster.runUntil(
        () => cluster.leader()!.raft.commitIndex >= at.index,
        200,
      ),
    );
  }
}

Deno.test("a leader counts on a quorum of followers and marks the others' appends lazy", async (t) => {
  for (const ids of [["a", "b", "c"], ["a", "b", "c", "d", "e"]]) {
    await t.step(`${ids.length} replicas`, () => {
      const cluster = settledCluster(ids, 7);
      const leader = cluster.leader()!.id;
      const followers = ids.filter((id) => id !== leader);
      const countedOn = Math.floor(ids.length / 2); // quorum - 1
      cluster.recordSent = true;
      proposeAndCommit(cluster, 5);
      const sent = appendsByFollower(cluster, leader);
      followers.forEach((id, rank) => {
        const flags = sent.get(id) ?? [];
        assert.ok(flags.length > 0, `${id} got no append`);
        // The first followers in configuration order are counted on.
        const lazy = rank >= countedOn;
        assert.ok(flags.every((f) => f === lazy), `${id}: ${flags}`);
      });
    });
  }
});

Deno.test("a follower that stops replicating is replaced by a lazy one", () => {
  const ids = ["a", "b", "c"];
  const cluster = settledCluster(ids, 11);
  const leader = cluster.leader()!;
  const [first, second] = ids.filter((id) => id !== leader.id);
  // The leader loses its connection to the follower it counted on: it
  // falls back to probing it, and counts on the other one.
  leader.raft.peerDown(first);
  cluster.recordSent = true;
  const at = cluster.propose("after")!;
  assert.ok(
    cluster.runUntil(() => leader.raft.commitIndex >= at.index, 200),
  );
  const sent = appendsByFollower(cluster, leader.id);
  assert.equal(sent.get(second)?.[0], false, "now counted on");
  assert.equal(sent.get(first)?.[0], true, "probing: not counted on");
  // Once it replicates again, the configuration order is back.
  cluster.sent.length = 0;
  proposeAndCommit(cluster, 3);
  const later = appendsByFollower(cluster, leader.id);
  assert.equal(later.get(first)?.at(-1), false);
  assert.equal(later.get(second)?.at(-1), true);
  // With both probing, too few replicate: both are counted on.
  leader.raft.peerDown(first);
  leader.raft.peerDown(second);
  cluster.sent.length = 0;
  proposeAndCommit(cluster, 1);
  const probing = appendsByFollower(cluster, leader.id);
  assert.equal(probing.get(first)?.[0], false);
  assert.equal(probing.get(second)?.[0], false);
});

function follower(): RaftNode<Cmd> {
  return new RaftNode<Cmd>(
    { id: "b", replicas: ["a", "b", "c"], random: new Prng(3) },
    {
      hardState: { term: 0, votedFor: null },
      snapshot: undefined,
      entries: [],
    },
  );
}

function append(
  fields: Partial<AppendRequest<Cmd>> & { term: number },
): AppendRequest<Cmd> {
  return {
    type: "append",
    prevIndex: 0,
    prevTerm: 0,
    entries: [],
    commit: 0,
    round: 1,
    ...fields,
  };
}

/** An append in term 1 of one entry at `index`, after the one before it. */
function appendOne(index: number, command: Cmd, lazy = false) {
  return append({
    term: 1,
    prevIndex: index - 1,
    prevTerm: index > 1 ? 1 : 0,
    entries: [{ term: 1, index, command }],
    ...(lazy ? { lazy } : {}),
  });
}

Deno.test("a follower's ready may delay its sync only for lazy entries", async (t) => {
  await t.step(
    "an append in a new term is not lazy (the term is written)",
    () => {
      const node = follower();
      node.step("a", appendOne(1, "x", true));
      const ready = node.ready();
      assert.equal(ready.entries.length, 1);
      assert.notEqual(ready.hardState, undefined);
      assert.equal(ready.lazySync, false);
    },
  );

  const node = follower();
  node.step("a", append({ term: 1 })); // learns the term and leader
  node.ready();
  await t.step("lazy entries in the same term: lazy", () => {
    node.step("a", appendOne(1, "x", true));
    const ready = node.ready();
    assert.equal(ready.entries.length, 1);
    assert.equal(ready.hardState, undefined);
    assert.equal(ready.lazySync, true);
    node.persisted(1, 1);
    node.ready();
  });
  await t.step("entries not marked lazy: prompt", () => {
    node.step("a", appendOne(2, "y"));
    assert.equal(node.ready().lazySync, false);
    node.persisted(2, 1);
    node.ready();
  });
  await t.step("lazy and prompt entries in one ready: prompt", () => {
    node.step("a", appendOne(3, "z", true));
    node.step("a", appendOne(4, "w"));
    const ready = node.ready();
    assert.equal(ready.entries.length, 2);
    assert.equal(ready.lazySync, false);
  });
  await t.step("nothing written: not lazy", () => {
    node.step("a", append({ term: 1, prevIndex: 4, prevTerm: 1, lazy: true }));
    assert.equal(node.ready().lazySync, false);
  });
});

Deno.test("an append whose lazy flag is not a boolean is dropped and counted", () => {
  const node = follower();
  const before = node.status().droppedMessages;
  node.step("a", { ...append({ term: 1 }), lazy: "yes" } as never);
  assert.equal(node.status().droppedMessages, before + 1);
  assert.equal(node.term, 0);
});
