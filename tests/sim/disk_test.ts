import assert from "node:assert/strict";
import {
  type DiskOptions,
  type SimNodeEnv,
  Simulation,
  type Storage,
} from "../../sim/mod.ts";

const bytes = (...xs: number[]) => new Uint8Array(xs);

/** One node whose env the test drives directly. */
function single(seed: number, disk: DiskOptions = {}) {
  const sim = new Simulation({ seed, disk });
  const envs: SimNodeEnv[] = [];
  const node = sim.addNode("n", (env) => {
    envs.push(env);
    return {};
  });
  const storage = (): Storage => envs.at(-1)!.storage;
  return { sim, node, envs, storage };
}

Deno.test("disk: sync completes after a latency, in call order, and makes writes durable", () => {
  const { sim, node, storage } = single(1, {
    syncLatency: { kind: "uniform", min: 1, max: 10 },
  });
  const done: string[] = [];
  storage().append("a", bytes(1));
  storage().sync("a", () => done.push(`a@${sim.now}`));
  storage().append("b", bytes(2));
  storage().sync("b", () => done.push(`b@${sim.now}`));
  storage().sync("a", () => done.push(`a2@${sim.now}`));
  assert.equal(done.length, 0, "sync never completes synchronously");
  assert.equal(node.disk.readDurable("a"), undefined);
  assert.deepEqual(node.disk.read("a"), bytes(1));
  sim.runFor(50);
  assert.deepEqual(done.map((d) => d.split("@")[0]), ["a", "b", "a2"]);
  const times = done.map((d) => Number(d.split("@")[1]));
  assert.ok(times[0] >= 1 && times[0] <= times[1] && times[1] <= times[2]);
  assert.deepEqual(node.disk.readDurable("a"), bytes(1));
  assert.deepEqual(node.disk.readDurable("b"), bytes(2));
  assert.equal(sim.faults().syncs, 3);
});

Deno.test("disk: with unsyncedOnCrash 'lose', a restart sees exactly the synced data", () => {
  const { sim, node, storage, envs } = single(2, { unsyncedOnCrash: "lose" });
  storage().append("log", bytes(1, 2));
  storage().sync("log", () => {});
  sim.runFor(10);
  storage().append("log", bytes(3, 4));
  storage().append("other", bytes(5));
  let lateSync = false;
  storage().sync("log", () => (lateSync = true)); // pending at the crash
  sim.crash("n");
  sim.runFor(10);
  assert.equal(lateSync, false, "a sync pending at the crash never calls back");
  sim.restart("n");
  assert.equal(envs.length, 2);
  assert.deepEqual(storage().read("log"), bytes(1, 2));
  assert.equal(storage().read("other"), undefined);
  assert.deepEqual(storage().list(), ["log"]);
  assert.deepEqual(node.disk.list(), ["log"]);
  const f = sim.faults();
  assert.equal(f.syncsLostByCrash, 1);
  assert.equal(f.unsyncedWritesLost, 2);
  assert.equal(f.unsyncedWritesSurvived, 0);
  // The first incarnation's storage is silent now.
  envs[0].storage.append("log", bytes(9));
  assert.equal(envs[0].storage.read("log"), undefined);
  assert.deepEqual(storage().read("log"), bytes(1, 2));
});

Deno.test("disk: with torn tails, a crash keeps the synced data plus a prefix of what followed", () => {
  const synced = bytes(10, 11, 12);
  const unsynced = [bytes(1, 2, 3, 4), bytes(5, 6, 7), bytes(8, 9)];
  const all = [...synced, ...unsynced.flatMap((u) => [...u])];
  let nothing = 0;
  let everything = 0;
  let torn = 0;
  let tornCounted = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const { sim, storage } = single(seed);
    storage().append("log", synced);
    storage().sync("log", () => {});
    sim.runFor(10);
    for (const u of unsynced) storage().append("log", u);
    sim.crash("n");
    sim.restart("n");
    const got = [...storage().read("log")!];
    assert.ok(got.length >= synced.length && got.length <= all.length);
    assert.deepEqual(
      got,
      all.slice(0, got.length),
      `seed ${seed}: not a prefix`,
    );
    const boundaries = [3, 7, 10, 12];
    if (got.length === 3) nothing++;
    else if (got.length === all.length) everything++;
    if (!boundaries.includes(got.length)) torn++;
    tornCounted += sim.faults().tornWrites;
  }
  assert.ok(nothing > 0, "some crashes lose every unsynced write");
  assert.ok(everything > 0, "some crashes keep every unsynced write");
  assert.ok(torn > 0, "some crashes tear an append");
  assert.equal(tornCounted, torn, "torn writes are counted");
});

Deno.test("disk: replace is atomic across a crash: old or new, never a mix", () => {
  const seen = new Set<string>();
  for (let seed = 1; seed <= 60; seed++) {
    const { sim, storage } = single(seed);
    storage().append("state", bytes(1, 1, 1, 1));
    storage().sync("state", () => {});
    sim.runFor(10);
    storage().replace("state", bytes(2, 2));
    sim.crash("n");
    sim.restart("n");
    const got = storage().read("state")!.join(",");
    assert.ok(got === "1,1,1,1" || got === "2,2", `seed ${seed}: ${got}`);
    seen.add(got);
  }
  assert.deepEqual([...seen].sort(), ["1,1,1,1", "2,2"]);

  const { sim, storage } = single(1);
  storage().replace("state", bytes(3));
  storage().sync("state", () => {});
  sim.runFor(10);
  sim.crash("n");
  sim.restart("n");
  assert.deepEqual(
    storage().read("state"),
    bytes(3),
    "synced replace survives",
  );
});

Deno.test("disk: a remove is durable once a later sync of any file completes", () => {
  const { sim, storage } = single(3, { unsyncedOnCrash: "lose" });
  storage().append("f", bytes(1));
  storage().sync("f", () => {});
  sim.runFor(10);
  storage().remove("f");
  assert.equal(storage().read("f"), undefined);
  sim.crash("n");
  sim.restart("n");
  assert.deepEqual(storage().read("f"), bytes(1), "unsynced remove is undone");
  storage().remove("f");
  storage().append("g", bytes(2));
  storage().sync("g", () => {});
  sim.runFor(10);
  sim.crash("n");
  sim.restart("n");
  assert.equal(
    storage().read("f"),
    undefined,
    "the sync of g made the remove durable",
  );
  assert.deepEqual(storage().list(), ["g"]);
});

Deno.test("disk: injected sync failures call back with an error and keep nothing", () => {
  const { sim, node, storage } = single(4, {
    syncErrorRate: 1,
    unsyncedOnCrash: "lose",
  });
  storage().append("f", bytes(1));
  let error: Error | undefined;
  storage().sync("f", (e) => (error = e));
  sim.runFor(10);
  assert.ok(error instanceof Error);
  assert.match(error.message, /sync failure/);
  assert.equal(node.disk.readDurable("f"), undefined);
  assert.equal(sim.faults().syncErrors, 1);
  sim.crash("n");
  sim.restart("n");
  assert.equal(storage().read("f"), undefined);
});

Deno.test("disk: reads are copies, names are checked", () => {
  const { storage } = single(5);
  storage().append("f", bytes(1, 2));
  storage().read("f")!.fill(0);
  assert.deepEqual(storage().read("f"), bytes(1, 2));
  const buffer = bytes(7);
  storage().append("f", buffer);
  buffer[0] = 0;
  assert.deepEqual(storage().read("f"), bytes(1, 2, 7), "appends are copied");
  assert.throws(() => storage().append("../x", bytes(1)), TypeError);
  assert.throws(() => storage().read(""), TypeError);
  assert.throws(() => storage().sync("a/b", () => {}), TypeError);
});

Deno.test("disk: the same seed tears the same way", () => {
  const run = (seed: number) => {
    const { sim, storage } = single(seed);
    for (let i = 0; i < 20; i++) storage().append("log", bytes(i, i, i));
    sim.crash("n");
    sim.restart("n");
    return [storage().read("log")?.length ?? 0, sim.traceHash()] as const;
  };
  assert.deepEqual(run(7), run(7));
  const lengths = new Set(Array.from({ length: 30 }, (_, i) => run(i)[0]));
  assert.ok(
    lengths.size > 5,
    `crash outcomes vary with the seed: ${[...lengths]}`,
  );
});
