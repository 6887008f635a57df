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
