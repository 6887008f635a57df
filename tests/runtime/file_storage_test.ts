import assert from "node:assert/strict";
import { FileStorage } from "../../runtime/file_storage.ts";

function synced(storage: FileStorage, name: string): Promise<void> {
  return new Promise((resolve, reject) =>
    storage.sync(name, (error) => error ? reject(error) : resolve())
  );
}

Deno.test("file storage appends, syncs and reads back across reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const storage = FileStorage.open(dir + "/nested/data");
    storage.append("wal.0", new Uint8Array([1, 2]));
    storage.append("wal.0", new Uint8Array([3]));
    await synced(storage, "wal.0");
    await storage.close();
    const again = FileStorage.open(dir + "/nested/data", { create: false });
    assert.deepEqual(again.read("wal.0"), new Uint8Array([1, 2, 3]));
    assert.equal(again.read("absent"), undefined);
    assert.deepEqual(again.list(), ["wal.0"]);
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file storage replace is atomic and leaves no temporary file listed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const storage = FileStorage.open(dir);
    storage.append("snap", new Uint8Array([9, 9, 9]));
    storage.replace("snap", new Uint8Array([4, 5]));
    await synced(storage, "snap");
    assert.deepEqual(storage.read("snap"), new Uint8Array([4, 5]));
    storage.append("snap", new Uint8Array([6]));
    assert.deepEqual(storage.read("snap"), new Uint8Array([4, 5, 6]));
    Deno.writeFileSync(dir + "/snap~", new Uint8Array([1])); // a leftover temp
    assert.deepEqual(storage.list(), ["snap"]);
    storage.remove("snap");
    storage.remove("snap");
    assert.deepEqual(storage.list(), []);
    await storage.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file storage completes syncs in the order they were asked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const storage = FileStorage.open(dir);
    const order: number[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      storage.append(`f${i % 3}`, new Uint8Array([i]));
      all.push(
        new Promise((resolve) =>
          storage.sync(`f${i % 3}`, (error) => {
            assert.equal(error, undefined);
            order.push(i);
            resolve();
          })
        ),
      );
    }
    await Promise.all(all);
    assert.deepEqual(order, [...Array(20).keys()]);
    await storage.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file storage refuses invalid names and use after close", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const storage = FileStorage.open(dir);
    for (const name of ["", "..", "a/b", "../x", "x~", "a".repeat(129)]) {
      assert.throws(() => storage.append(name, new Uint8Array(1)), TypeError);
    }
    await storage.close();
    assert.throws(
      () => storage.read("x"),
      (e: unknown) => e instanceof TypeError && /is closed/.test(e.message),
    );
    assert.throws(() => FileStorage.open(dir + "/missing", { create: false }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file storage syncs inline at the end of the turn, in order, after what the turn queued first", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const storage = FileStorage.open(dir, { syncMode: "inline" });
    assert.equal(storage.syncMode, "inline");
    const order: string[] = [];
    const all: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) {
      storage.append(`f${i % 2}`, new Uint8Array([i]));
      all.push(
        new Promise((resolve) =>
          storage.sync(`f${i % 2}`, (error) => {
            assert.equal(error, undefined);
            order.push(`sync ${i}`);
            resolve();
          })
        ),
      );
      // Queued after the first sync was asked: still runs before it.
      queueMicrotask(() => order.push(`microtask ${i}`));
    }
    assert.deepEqual(order, []); // never synchronously
    await Promise.all(all);
    assert.deepEqual(order, [
      ...[0, 1, 2, 3, 4, 5].map((i) => `microtask ${i}`),
      ...[0, 1, 2, 3, 4, 5].map((i) => `sync ${i}`),
    ]);
    await storage.close();
    const again = FileStorage.open(dir, { create: false });
    assert.deepEqual(again.read("f0"), new Uint8Array([0, 2, 4]));
    assert.deepEqual(again.read("f1"), new Uint8Array([1, 3, 5]));
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file storage keeps syncs in order when the sync mode changes with syncs pending", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const storage = FileStorage.open(dir);
    const order: number[] = [];
    const done = (i: number) =>
      new Promise<void>((resolve) =>
        storage.sync("log", (error) => {
          assert.equal(error, undefined);
          order.push(i);
          resolve();
        })
      );
    storage.append("log", new Uint8Array([1]));
    const first = done(1); // in the background: finishes in a later task
    storage.syncMode = "inline";
    storage.append("log", new Uint8Array([2]));
    const second = done(2); // joins the pending background sync
    await Promise.all([first, second]);
    storage.append("log", new Uint8Array([3]));
    const third = done(3); // nothing pending: inline
    storage.syncMode = "background";
    storage.append("log", new Uint8Array([4]));
    const fourth = done(4);
    await Promise.all([third, fourth]);
    assert.deepEqual(order, [1, 2, 3, 4]);
    assert.throws(
      // deno-lint-ignore no-explicit-any
      () => storage.syncMode = "sometimes" as any,
      TypeError,
    );
    assert.throws(
      // deno-lint-ignore no-explicit-any
      () => FileStorage.open(dir, { syncMode: "never" as any }),
      TypeError,
    );
    await storage.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file storage replacing or removing a file with an inline sync pending syncs it first", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const storage = FileStorage.open(dir, { syncMode: "inline" });
    storage.append("a", new Uint8Array([1]));
    storage.append("b", new Uint8Array([2]));
    const a = synced(storage, "a");
    const b = synced(storage, "b");
    storage.replace("a", new Uint8Array([7])); // closes a's handle
    storage.remove("b"); // closes b's handle
    await Promise.all([a, b]);
    await synced(storage, "a");
    assert.deepEqual(storage.read("a"), new Uint8Array([7]));
    assert.deepEqual(storage.list(), ["a"]);
    await storage.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
