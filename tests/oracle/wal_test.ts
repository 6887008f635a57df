import assert from "node:assert/strict";
import {
  Wal,
  WalCorruptionError,
  type WalOpenResult,
  type WalOptions,
} from "../../oracle/wal.ts";
import { crc32c } from "../../oracle/_crc32.ts";
import type { HardState, LogEntry } from "../../oracle/raft_types.ts";
import { FileStorage } from "../../runtime/file_storage.ts";
import {
  type DiskOptions,
  type SimNodeEnv,
  Simulation,
  type Storage,
} from "../../sim/mod.ts";

type Cmd = { v: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function entry(term: number, index: number, v = `c${index}`): LogEntry<Cmd> {
  return { term, index, command: { v } };
}

function entries(from: number, to: number, term: number): LogEntry<Cmd>[] {
  const out: LogEntry<Cmd>[] = [];
  for (let i = from; i <= to; i++) out.push(entry(term, i));
  return out;
}

function indexes(list: readonly LogEntry<Cmd>[]): number[] {
  return list.map((e) => e.index);
}

/** Where a WAL lives in a test: a directory on disk or a simulated node. */
interface Backend {
  readonly name: string;
  storage(): Storage;
  sync(wal: Wal<Cmd>): Promise<void>;
  /** A restart: close and reopen (files), crash and restart (simulator). */
  restart(): Promise<void>;
  files(): string[];
  read(name: string): Uint8Array;
  /** Overwrites a file's whole content, durably. */
  overwrite(name: string, bytes: Uint8Array): Promise<void>;
  dispose(): Promise<void>;
}

async function fileBackend(): Promise<Backend & { dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "wal_test_" });
  let storage = FileStorage.open(dir);
  return {
    name: "file storage",
    dir,
    storage: () => storage,
    sync: (wal) =>
      new Promise<void>((resolve, reject) =>
        wal.sync((error) => error ? reject(error) : resolve())
      ),
    restart: async () => {
      await storage.close();
      storage = FileStorage.open(dir);
    },
    files: () => storage.list(),
    read: (name) => Deno.readFileSync(`${dir}/${name}`),
    overwrite: async (name, bytes) => {
      await storage.close();
      Deno.writeFileSync(`${dir}/${name}`, bytes);
      storage = FileStorage.open(dir);
    },
    dispose: async () => {
      await storage.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function simBackend(
  seed = 1,
  disk: DiskOptions = { unsyncedOnCrash: "lose" },
): Backend & { sim: Simulation } {
  const sim = new Simulation({ seed, disk });
  const envs: SimNodeEnv[] = [];
  const node = sim.addNode("n", (env) => {
    envs.push(env);
    return {};
  });
  const storage = () => envs.at(-1)!.storage;
  const syncWith = (run: (done: (error?: Error) => void) => void) => {
    let result: { error?: Error } | undefined;
    run((error) => (result = { error }));
    sim.runUntil(() => result !== undefined, { maxTime: 10_000 });
    if (result === undefined) throw new Error("sync never completed");
    if (result.error) throw result.error;
    return Promise.resolve();
  };
  return {
    name: "simulated disk",
    sim,
    storage,
    sync: (wal) => syncWith((done) => wal.sync(done)),
    restart: () => {
      sim.crash("n");
      sim.restart("n");
      return Promise.resolve();
    },
    files: () => node.disk.list(),
    read: (name) => node.disk.read(name)!,
    overwrite: (name, bytes) => {
      storage().replace(name, bytes);
      return syncWith((done) => storage().sync(name, done));
    },
    dispose: () => Promise.resolve(),
  };
}

async function onBoth(
  t: Deno.TestContext,
  body: (backend: Backend, t: Deno.TestContext) => Promise<void>,
): Promise<void> {
  for (const make of [fileBackend, () => Promise.resolve(simBackend())]) {
    const backend = await make();
    try {
      await t.step(backend.name, (t) => body(backend, t));
    } finally {
      await backend.dispose();
    }
  }
}

function open(backend: Backend, options?: WalOptions): WalOpenResult<Cmd> {
  return Wal.open<Cmd>(backend.storage(), options);
}

function segmentsOf(backend: Backend): string[] {
  return backend.files().filter((f) => f.startsWith("wal-"));
}

/** Offsets of each record in a segment file. */
function recordOffsets(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let o = 0; o + 8 <= bytes.length; o += 8 + view.getUint32(o)) {
    out.push(o);
  }
  return out;
}

Deno.test("crc32c matches the standard check value", () => {
  assert.equal(crc32c(encoder.encode("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  const data = encoder.encode("abcdefghijklmnopqrstuvwxyz0123456789");
  assert.equal(crc32c(data, 3, 20), crc32c(data.slice(3, 20)));
});

Deno.test("wal round-trips the hard state, entries and a replaced suffix across restarts", async (t) => {
  await onBoth(t, async (backend, t) => {
    const first = open(backend);
    assert.deepEqual(first.restored, {
      hardState: { term: 0, votedFor: null },
      snapshot: undefined,
      entries: [],
    });
    assert.equal(first.tornTailRepaired, false);
    const wal = first.wal;
    wal.write({ term: 1, votedFor: "a" }, entries(1, 5, 1));
    wal.write({ term: 2, votedFor: "b" }, [entry(2, 3, "x3"), entry(2, 4)]);
    wal.write(undefined, [entry(2, 5, "x5")]);
    assert.equal(wal.stats().appends, 3, "one append per write");
    await backend.sync(wal);
    await backend.restart();

    const second = open(backend);
    assert.deepEqual(second.restored.hardState, { term: 2, votedFor: "b" });
    assert.deepEqual(second.restored.entries, [
      entry(1, 1),
      entry(1, 2),
      entry(2, 3, "x3"),
      entry(2, 4),
      entry(2, 5, "x5"),
    ]);
    assert.equal(second.tornTailRepaired, false);
    assert.equal(second.wal.stats().lastIndex, 5);

    await t.step(
      "appending after recovery continues the same log",
      async () => {
        second.wal.write(undefined, [entry(2, 6)]);
        await backend.sync(second.wal);
        await backend.restart();
        const third = open(backend);
        assert.deepEqual(indexes(third.restored.entries), [1, 2, 3, 4, 5, 6]);
        assert.deepEqual(third.restored.hardState, { term: 2, votedFor: "b" });
        assert.equal(segmentsOf(backend).length, 1);
      },
    );

    await t.step("writes that leave a gap or break order are refused", () => {
      const { wal } = open(backend);
      assert.throws(() => wal.write(undefined, [entry(2, 9)]), RangeError);
      assert.throws(
        () => wal.write(undefined, [entry(2, 7), entry(2, 9)]),
        RangeError,
      );
      assert.throws(
        () => wal.write({ term: -1, votedFor: null }, []),
        TypeError,
      );
      assert.equal(wal.stats().appends, 0);
    });
  });
});

Deno.test("wal rotates segments and compaction removes only segments a durable snapshot covers", async (t) => {
  await onBoth(t, async (backend, t) => {
    const { wal } = open(backend, { segmentBytes: 600 });
    for (let i = 1; i <= 100; i += 4) {
      wal.write({ term: 1, votedFor: null }, entries(i, i + 3, 1));
    }
    await backend.sync(wal);
    const segments = segmentsOf(backend);
    assert.ok(segments.length >= 8, `${segments.length} segments`);
    assert.equal(wal.stats().segments, segments.length);
    assert.deepEqual(segments, [...segments].sort());

    await t.step(
      "every segment is replayed in order after a restart",
      async () => {
        await backend.restart();
        const { restored, wal: again } = open(backend, { segmentBytes: 600 });
        assert.deepEqual(
          indexes(restored.entries),
          entries(1, 100, 1).map((e) => e.index),
        );
        assert.equal(again.stats().segments, segments.length);
      },
    );

    await t.step(
      "compaction waits for a durable snapshot, then removes covered segments",
      async () => {
        const { wal } = open(backend, { segmentBytes: 600 });
        wal.installSnapshot({
          meta: { index: 60, term: 1 },
          data: encoder.encode("s60"),
        });
        assert.throws(() => wal.compact(60), RangeError, "not durable yet");
        await backend.sync(wal);
        assert.equal(wal.stats().durableSnapshotIndex, 60);
        const before = segmentsOf(backend).length;
        wal.compact(60);
        const after = segmentsOf(backend);
        assert.ok(after.length < before, `${after.length} < ${before}`);
        assert.equal(wal.stats().segmentsRemoved, before - after.length);
        assert.equal(wal.stats().segments, after.length);
        assert.throws(() => wal.compact(61), RangeError);
        wal.write(undefined, [entry(1, 101)]);
        await backend.sync(wal);
        await backend.restart();
        const { restored } = open(backend, { segmentBytes: 600 });
        assert.deepEqual(restored.snapshot?.meta, { index: 60, term: 1 });
        assert.equal(decoder.decode(restored.snapshot!.data), "s60");
        assert.deepEqual(
          indexes(restored.entries),
          entries(61, 101, 1).map((e) => e.index),
        );
      },
    );
  });
});

Deno.test("wal recovers from a snapshot plus the entries written after it", async (t) => {
  await onBoth(t, async (backend, t) => {
    const { wal } = open(backend);
    wal.write({ term: 3, votedFor: "a" }, entries(1, 10, 3));
    wal.installSnapshot({
      meta: { index: 10, term: 3 },
      data: encoder.encode("ten"),
    });
    wal.write(undefined, entries(11, 15, 3));
    await backend.sync(wal);
    await backend.restart();
    let result = open(backend);
    assert.deepEqual(result.restored.snapshot?.meta, { index: 10, term: 3 });
    assert.equal(decoder.decode(result.restored.snapshot!.data), "ten");
    assert.deepEqual(indexes(result.restored.entries), [11, 12, 13, 14, 15]);
    assert.deepEqual(result.restored.hardState, { term: 3, votedFor: "a" });

    await t.step(
      "a leader's snapshot past the log end restarts the log after it",
      async () => {
        const wal = result.wal;
        wal.installSnapshot(
          { meta: { index: 30, term: 4 }, data: encoder.encode("thirty") },
          { discardEntriesAfter: true },
        );
        assert.throws(() => wal.write(undefined, [entry(4, 30)]), RangeError);
        wal.write({ term: 4, votedFor: null }, [entry(4, 31), entry(4, 32)]);
        await backend.sync(wal);
        assert.deepEqual(
          backend.files().filter((f) => f.startsWith("snap-")),
          ["snap-0000000000000030.bin"],
          "the older snapshot is removed once the newer one is durable",
        );
        await backend.restart();
        result = open(backend);
        assert.deepEqual(result.restored.snapshot?.meta, {
          index: 30,
          term: 4,
        });
        assert.deepEqual(indexes(result.restored.entries), [31, 32]);
      },
    );

    await t.step(
      "a snapshot that discards later entries drops them from the log",
      async () => {
        const wal = result.wal;
        wal.write(undefined, entries(33, 36, 4));
        wal.installSnapshot(
          { meta: { index: 34, term: 5 }, data: encoder.encode("x") },
          { discardEntriesAfter: true },
        );
        wal.write(undefined, [entry(5, 35, "new")]);
        await backend.sync(wal);
        await backend.restart();
        result = open(backend);
        assert.deepEqual(result.restored.snapshot?.meta, {
          index: 34,
          term: 5,
        });
        assert.deepEqual(result.restored.entries, [entry(5, 35, "new")]);
        assert.throws(
          () =>
            result.wal.installSnapshot({
              meta: { index: 20, term: 5 },
              data: new Uint8Array(),
            }),
          RangeError,
        );
      },
    );
  });
});

Deno.test("wal cuts a torn last record at every byte offset, and appending after the repair recovers again", async () => {
  const backend = await fileBackend();
  try {
    const { wal } = open(backend);
    wal.write({ term: 1, votedFor: "a" }, entries(1, 3, 1));
    const lastStart = wal.stats().currentSegmentBytes;
    wal.write(undefined, [entry(1, 4, "the last record")]);
    await backend.sync(wal);
    const name = wal.stats().currentSegment!;
    const full = backend.read(name);
    assert.ok(full.length - lastStart > 40);
    for (let cut = lastStart; cut < full.length; cut++) {
      for (const other of segmentsOf(backend)) {
        if (other !== name) Deno.removeSync(`${backend.dir}/${other}`);
      }
      await backend.overwrite(name, full.slice(0, cut));
      const result = open(backend);
      const at = `cut at ${cut}`;
      assert.deepEqual(indexes(result.restored.entries), [1, 2, 3], at);
      assert.equal(result.tornTailRepaired, cut > lastStart, at);
      assert.equal(result.droppedBytes, cut - lastStart, at);
      assert.equal(
        backend.read(name).length,
        lastStart,
        `${at}: prefix rewritten`,
      );
      result.wal.write(undefined, [entry(2, 4, "again")]);
      await backend.sync(result.wal);
      await backend.restart();
      const again = open(backend);
      assert.equal(again.tornTailRepaired, false, at);
      assert.deepEqual(
        again.restored.entries.at(-1),
        entry(2, 4, "again"),
        at,
      );
      assert.equal(again.restored.entries.length, 4, at);
    }
  } finally {
    await backend.dispose();
  }
});

Deno.test("wal tolerates a zero-filled tail and a last record whose payload is zeros", async (t) => {
  await onBoth(t, async (backend, t) => {
    const { wal } = open(backend);
    wal.write({ term: 1, votedFor: null }, entries(1, 5, 1));
    await backend.sync(wal);
    const name = wal.stats().currentSegment!;
    const good = backend.read(name);

    await t.step("zeros after the last record", async () => {
      const padded = new Uint8Array(good.length + 4096);
      padded.set(good);
      await backend.overwrite(name, padded);
      const result = open(backend);
      assert.deepEqual(indexes(result.restored.entries), [1, 2, 3, 4, 5]);
      assert.equal(result.tornTailRepaired, true);
      assert.deepEqual(backend.read(name), good);
    });

    await t.step("the last record's payload zero-filled", async () => {
      const offsets = recordOffsets(good);
      const last = offsets.at(-1)!;
      const bytes = good.slice();
      bytes.fill(0, last + 8);
      await backend.overwrite(name, bytes);
      const result = open(backend);
      assert.deepEqual(indexes(result.restored.entries), [1, 2, 3, 4]);
      assert.equal(result.tornTailRepaired, true);
    });
  });
});

Deno.test("wal refuses to open when a middle record is corrupted, naming the file and offset", async (t) => {
  await onBoth(t, async (backend) => {
    const { wal } = open(backend);
    for (let i = 1; i <= 10; i++) {
      wal.write({ term: 1, votedFor: null }, [entry(1, i)]);
    }
    await backend.sync(wal);
    const name = wal.stats().currentSegment!;
    const bytes = backend.read(name);
    const offsets = recordOffsets(bytes);
    const target = offsets[5];
    bytes[target + 12] ^= 0x20;
    await backend.overwrite(name, bytes);
    try {
      open(backend);
      assert.fail("open must throw");
    } catch (e) {
      assert.ok(e instanceof WalCorruptionError);
      assert.equal(e.name, "WalCorruptionError");
      assert.equal(e.file, name);
      assert.equal(e.offset, target);
      assert.match(
        e.message,
        new RegExp(`${name.replace(".", "\\.")}.*offset ${target}`),
      );
      assert.match(e.message, /checksum mismatch/);
      assert.match(
        e.message,
        /corrupted in the middle.*not be silently truncated/,
      );
    }
    // Nothing was repaired or removed.
    assert.deepEqual(backend.read(name), bytes);
  });
});

Deno.test("wal refuses to open when an earlier segment is corrupted, even in its last record", async (t) => {
  await onBoth(t, async (backend) => {
    const { wal } = open(backend, { segmentBytes: 300 });
    for (let i = 1; i <= 30; i++) {
      wal.write({ term: 1, votedFor: null }, [entry(1, i)]);
    }
    await backend.sync(wal);
    const first = segmentsOf(backend)[0];
    const original = backend.read(first);
    const offsets = recordOffsets(original);
    assert.ok(segmentsOf(backend).length > 2);
    for (const target of [offsets[1], offsets.at(-1)!]) {
      const bytes = original.slice();
      bytes[target + 10] ^= 0x01;
      await backend.overwrite(first, bytes);
      assert.throws(
        () => open(backend, { segmentBytes: 300 }),
        (e: unknown) =>
          e instanceof WalCorruptionError && e.file === first &&
          e.offset === target,
        `flip at ${target}`,
      );
    }
    await backend.overwrite(first, original);
    assert.equal(open(backend).restored.entries.length, 30);
  });
});

Deno.test("wal drops segments written after a segment whose unsynced tail was lost", async () => {
  const backend = await fileBackend();
  try {
    const { wal } = open(backend, { segmentBytes: 300 });
    wal.write({ term: 1, votedFor: null }, entries(1, 2, 1));
    await backend.sync(wal);
    const first = wal.stats().currentSegment!;
    const synced = backend.read(first).length;
    wal.write(undefined, entries(3, 4, 1)); // same segment, never synced
    assert.equal(wal.stats().currentSegment, first);
    wal.write(undefined, entries(5, 6, 1)); // a new segment
    wal.write(undefined, entries(7, 8, 1));
    assert.ok(segmentsOf(backend).length >= 2);
    await backend.restart();
    // The crash kept the later segments but not the first one's tail.
    await backend.overwrite(first, backend.read(first).slice(0, synced));
    const result = open(backend, { segmentBytes: 300 });
    assert.deepEqual(indexes(result.restored.entries), [1, 2]);
    assert.equal(result.tornTailRepaired, true);
    assert.deepEqual(segmentsOf(backend), [first]);
    assert.ok(result.repairs.some((r) => r.includes("never synced")));
  } finally {
    await backend.dispose();
  }
});

Deno.test("wal falls back to the older snapshot when the newest one is broken", async () => {
  const backend = simBackend(5);
  const { wal } = open(backend);
  wal.write({ term: 1, votedFor: null }, entries(1, 20, 1));
  wal.installSnapshot({
    meta: { index: 10, term: 1 },
    data: encoder.encode("ten"),
  });
  await backend.sync(wal);
  wal.installSnapshot({
    meta: { index: 15, term: 1 },
    data: encoder.encode("fifteen"),
  });
  await backend.sync(wal); // removes snap-10, not durably: the crash brings it back
  await backend.restart();
  assert.deepEqual(backend.files().filter((f) => f.startsWith("snap-")), [
    "snap-0000000000000010.bin",
    "snap-0000000000000015.bin",
  ]);
  const newest = backend.read("snap-0000000000000015.bin");
  newest[newest.length - 1] ^= 0xff;
  await backend.overwrite("snap-0000000000000015.bin", newest);

  const result = open(backend);
  assert.deepEqual(result.restored.snapshot?.meta, { index: 10, term: 1 });
  assert.equal(decoder.decode(result.restored.snapshot!.data), "ten");
  assert.deepEqual(
    indexes(result.restored.entries),
    entries(11, 20, 1).map((e) => e.index),
  );
  assert.equal(result.brokenSnapshots.length, 1);
  assert.match(
    result.brokenSnapshots[0],
    /snap-0000000000000015\.bin: data checksum mismatch/,
  );

  // A newer durable snapshot replaces both.
  result.wal.installSnapshot({
    meta: { index: 18, term: 1 },
    data: encoder.encode("x"),
  });
  await backend.sync(result.wal);
  await backend.sync(result.wal);
  await backend.restart();
  assert.deepEqual(backend.files().filter((f) => f.startsWith("snap-")), [
    "snap-0000000000000018.bin",
  ]);
  assert.deepEqual(indexes(open(backend).restored.entries), [19, 20]);
});

Deno.test("wal loses unsynced writes on a simulated crash but never synced ones", async (t) => {
  await t.step("unsynced writes are all lost in 'lose' mode", async () => {
    const backend = simBackend(9);
    const { wal } = open(backend);
    wal.write({ term: 1, votedFor: null }, entries(1, 5, 1));
    await backend.sync(wal);
    wal.write({ term: 2, votedFor: "x" }, entries(6, 8, 2));
    let late = false;
    wal.sync(() => (late = true)); // still pending at the crash
    await backend.restart();
    assert.equal(late, false);
    const { restored } = open(backend);
    assert.deepEqual(indexes(restored.entries), [1, 2, 3, 4, 5]);
    assert.deepEqual(restored.hardState, { term: 1, votedFor: null });
  });

  await t.step(
    "synced writes survive torn crashes over many seeds",
    async () => {
      for (let seed = 1; seed <= 40; seed++) {
        const backend = simBackend(seed, {});
        const { wal } = open(backend, { segmentBytes: 400 });
        for (let i = 1; i <= 12; i += 3) {
          wal.write({ term: 1, votedFor: null }, entries(i, i + 2, 1));
        }
        await backend.sync(wal);
        for (let i = 13; i <= 30; i += 3) {
          wal.write(undefined, entries(i, i + 2, 1));
        }
        await backend.restart();
        const { restored } = open(backend, { segmentBytes: 400 });
        const got = indexes(restored.entries);
        assert.ok(got.length >= 12, `seed ${seed}: ${got.length} entries`);
        assert.deepEqual(got, entries(1, got.length, 1).map((e) => e.index));
      }
    },
  );
});

Deno.test("wal refuses records larger than maxRecordBytes with a RangeError and writes nothing", () => {
  const backend = simBackend(3);
  const { wal } = open(backend, { maxRecordBytes: 100 });
  wal.write({ term: 1, votedFor: null }, [entry(1, 1)]);
  const before = wal.stats();
  assert.throws(
    () => wal.write(undefined, [entry(1, 2), entry(1, 3, "x".repeat(200))]),
    (e: unknown) =>
      e instanceof RangeError && /entry 3/.test(e.message) &&
      /maxRecordBytes 100/.test(e.message),
  );
  assert.throws(
    () => wal.write(undefined, [entry(1, 2, "é".repeat(60))]),
    RangeError,
    "counted in UTF-8 bytes",
  );
  assert.deepEqual(wal.stats(), before);
  wal.write(undefined, [entry(1, 2)]);
  assert.equal(wal.stats().lastIndex, 2);
  assert.throws(() => open(backend, { maxRecordBytes: 0 }), RangeError);
  assert.throws(() => open(backend, { segmentBytes: 1.5 }), RangeError);
});

Deno.test("wal reports a failed sync to every later caller and refuses further writes", () => {
  const backend = simBackend(4, { syncErrorRate: 1 });
  const { wal } = open(backend);
  wal.write({ term: 1, votedFor: null }, [entry(1, 1)]);
  const results: (Error | undefined)[] = [];
  wal.sync((e) => results.push(e));
  wal.sync((e) => results.push(e));
  backend.sim.runFor(50);
  assert.equal(results.length, 2);
  assert.ok(results.every((e) => e instanceof Error));
  assert.equal(wal.stats().failed, true);
  assert.throws(() => wal.write(undefined, [entry(1, 2)]), /earlier sync/);
  let last: Error | undefined;
  wal.sync((e) => (last = e));
  assert.ok(last instanceof Error);
});

// ------------------------------------------------------------ property test

interface ModelEntry {
  readonly term: number;
  readonly v: string;
}

interface ModelState {
  /** Entry i at `log[i - 1]`; placeholders below a snapshot. */
  readonly log: readonly ModelEntry[];
  readonly hs: HardState;
  readonly snapIndex: number;
}

function snapshotData(index: number, term: number): Uint8Array {
  return encoder.encode(`snap:${index}:${term}`);
}

/** The write history of one incarnation: its states and the last synced one. */
interface Epoch {
  states: ModelState[];
  synced: number;
  /** Whether any sync completed in this incarnation. */
  anySync: boolean;
}

/**
 * The recovered log must be one the write history allows: a state of the
 * last incarnation at or after its last completed sync or, if nothing was
 * synced in that incarnation, possibly one of the incarnation before (a
 * repair's removals that never became durable).
 */
function checkRecovered(
  seed: number,
  result: WalOpenResult<Cmd>,
  epochs: readonly Epoch[],
): ModelState {
  // The hard state: any one written since the last completed sync, never
  // older than the synced one.
  const hardState = result.restored.hardState;
  const written = epochs.flatMap((e) =>
    e.states.map((x) => JSON.stringify(x.hs))
  );
  assert.ok(
    written.includes(JSON.stringify(hardState)),
    `seed ${seed}: hard state ${JSON.stringify(hardState)} never written`,
  );
  assert.ok(
    hardState.term >= epochs[0].states[epochs[0].synced].hs.term,
    `seed ${seed}: hard state term went back`,
  );
  let failure: unknown;
  for (let k = epochs.length - 1; k >= 0; k--) {
    try {
      return checkAgainst(seed, result, epochs[k].states, epochs[k].synced);
    } catch (error) {
      failure ??= error;
      if (epochs[k].anySync) break;
    }
  }
  throw failure;
}

function checkAgainst(
  seed: number,
  result: WalOpenResult<Cmd>,
  states: readonly ModelState[],
  synced: number,
): ModelState {
  const { snapshot, entries, hardState } = result.restored;
  const s = snapshot?.meta.index ?? 0;
  const where = `seed ${seed}`;
  if (snapshot !== undefined) {
    assert.equal(
      decoder.decode(snapshot.data),
      `snap:${s}:${snapshot.meta.term}`,
      `${where}: snapshot data`,
    );
  }
  entries.forEach((e, i) =>
    assert.equal(e.index, s + 1 + i, `${where}: contiguous`)
  );
  const last = s + entries.length;
  const matches = (x: ModelState) =>
    last <= x.log.length &&
    (s === 0 || x.log[s - 1].term === snapshot!.meta.term) &&
    entries.every((e) =>
      x.log[e.index - 1].term === e.term &&
      x.log[e.index - 1].v === e.command!.v
    );
  const common = (a: ModelState, b: ModelState) => {
    let n = 0;
    while (
      n < a.log.length && n < b.log.length && a.log[n].term === b.log[n].term &&
      a.log[n].v === b.log[n].v
    ) n++;
    return n;
  };
  let ok = false;
  for (let b = synced; b < states.length && !ok; b++) {
    const need = b === synced
      ? states[b].log.length
      : common(states[b - 1], states[b]);
    ok = matches(states[b]) && last >= need;
  }
  assert.ok(
    ok,
    `${where}: recovered log (snapshot ${s}, up to ${last}) is not a state the writes since the last completed sync allow (synced state has ${
      states[synced].log.length
    } entries)`,
  );
  const log: ModelEntry[] = [];
  for (let i = 1; i < s; i++) log.push({ term: -1, v: "?" });
  if (s > 0) log.push({ term: snapshot!.meta.term, v: "?" });
  for (const e of entries) log.push({ term: e.term, v: e.command!.v });
  return { log, hs: hardState, snapIndex: s };
}

Deno.test("wal property: random writes, syncs, snapshots, compactions and torn crashes never lose a synced entry", () => {
  const options: WalOptions = { segmentBytes: 700 };
  let crashes = 0;
  let repaired = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const backend = simBackend(seed, {
      syncLatency: { kind: "uniform", min: 0.2, max: 3 },
    });
    const random = backend.sim.fork("wal-test");
    let wal = open(backend, options).wal;
    let epoch: Epoch = {
      states: [{ log: [], hs: { term: 0, votedFor: null }, snapIndex: 0 }],
      synced: 0,
      anySync: false,
    };
    let epochs: Epoch[] = [epoch];
    let counter = 0;
    const now = () => epoch.states[epoch.states.length - 1];
    const crash = () => {
      backend.sim.crash("n");
      backend.sim.restart("n");
      crashes++;
      let result: WalOpenResult<Cmd>;
      try {
        result = open(backend, options);
      } catch (error) {
        throw new Error(`seed ${seed}: ${error}`, { cause: error });
      }
      if (result.tornTailRepaired) repaired++;
      const recovered = checkRecovered(seed, result, epochs);
      epoch = { states: [recovered], synced: 0, anySync: false };
      epochs.push(epoch);
      wal = result.wal;
    };
    for (let op = 0; op < 80; op++) {
      const x = random.float();
      const state = now();
      if (x < 0.45) {
        let hs: HardState | undefined;
        if (random.chance(0.3)) {
          hs = {
            term: state.hs.term + 1,
            votedFor: random.pick(["a", "b", null]),
          };
        }
        const term = (hs ?? state.hs).term;
        const overwrite = state.log.length > state.snapIndex &&
          random.chance(0.2);
        const from = overwrite
          ? random.intBetween(state.snapIndex + 1, state.log.length)
          : state.log.length + 1;
        const count = random.int(5);
        if (hs === undefined && count === 0) continue;
        const batch: LogEntry<Cmd>[] = [];
        for (let i = 0; i < count; i++) {
          batch.push({
            term,
            index: from + i,
            command: {
              v: `${epochs.length}.${counter++}` + "x".repeat(random.int(40)),
            },
          });
        }
        wal.write(hs, batch);
        const log = count > 0 ? state.log.slice(0, from - 1) : [...state.log];
        for (const e of batch) log.push({ term: e.term, v: e.command!.v });
        epoch.states.push({
          log,
          hs: hs ?? state.hs,
          snapIndex: state.snapIndex,
        });
      } else if (x < 0.7) {
        const mine = epoch;
        const at = mine.states.length - 1;
        wal.sync((error) => {
          assert.equal(error, undefined);
          mine.synced = Math.max(mine.synced, at);
          mine.anySync = true;
          epochs = [mine];
        });
      } else if (x < 0.82) {
        backend.sim.runFor(random.uniform(0, 4));
      } else if (x < 0.88) {
        if (state.log.length === 0) continue;
        const index = random.intBetween(
          Math.max(1, state.snapIndex),
          state.log.length,
        );
        const term = state.log[index - 1].term;
        wal.installSnapshot({
          meta: { index, term },
          data: snapshotData(index, term),
        });
        epoch.states.push({ ...state, snapIndex: index });
      } else if (x < 0.9) {
        // A leader's snapshot: the log restarts after it.
        const index = Math.max(
          state.snapIndex + 1,
          state.log.length + random.int(4),
        );
        if (index === 0) continue;
        const term = state.hs.term;
        wal.installSnapshot(
          { meta: { index, term }, data: snapshotData(index, term) },
          { discardEntriesAfter: true },
        );
        const log = state.log.slice(0, index - 1).map((e) => e);
        while (log.length < index - 1) log.push({ term: -1, v: "?" });
        log.push({ term, v: "?" });
        epoch.states.push({ ...state, log, snapIndex: index });
      } else if (x < 0.95) {
        const durable = wal.stats().durableSnapshotIndex;
        if (durable > 0) wal.compact(random.intBetween(0, durable));
      } else {
        crash();
      }
    }
    backend.sim.runFor(random.uniform(0, 5));
    crash();
  }
  assert.ok(crashes >= 300);
  assert.ok(repaired > 50, `${repaired} repairs`);
});
