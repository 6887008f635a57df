import assert from "node:assert/strict";
import { assertSeedsPassWithFaults } from "./_seeds.ts";
import { transportScenarios } from "./scenarios/transport.ts";
import { LOG_FILE, parseLog } from "./scenarios/_reliable_broadcast.ts";
import { scenarios } from "./main.ts";

const transport = transportScenarios.find((s) => s.name === "transport")!;

Deno.test("transport scenario: passes a range of seeds and injects every kind of fault", async () => {
  await assertSeedsPassWithFaults(
    transport,
    Array.from({ length: 40 }, (_, i) => i + 1),
    [
      "droppedByLoss",
      "droppedByPartition",
      "droppedReceiverDown",
      "duplicated",
      "reordered",
      "delayedForReorder",
      "crashes",
      "restarts",
      "partitions",
      "heals",
      "timersDroppedByCrash",
      "syncErrors",
    ],
  );
});

Deno.test("transport scenario: a seed replays to the same hash; seeds differ", async () => {
  const a = await transport.run(17);
  const b = await transport.run(17);
  assert.equal(a.traceHash, b.traceHash);
  assert.deepEqual(a.faults, b.faults);
  const hashes = new Set<string>();
  for (const s of [1, 2, 3, 4, 5, 6]) {
    hashes.add((await transport.run(s)).traceHash);
  }
  assert.equal(hashes.size, 6);
});

Deno.test("transport scenario: the command registers the transport family", () => {
  assert.ok(scenarios.includes(transport));
});

Deno.test("delivery log: a torn or corrupted tail is cut at the last whole record", async (t) => {
  const { encodeRecord } = await import("./scenarios/_reliable_broadcast.ts");
  const r1 = encodeRecord("n1", 1, new Uint8Array([1, 2, 3]));
  const r2 = encodeRecord("n1", 2, new Uint8Array([4]));
  const r3 = encodeRecord("n2", 1, new Uint8Array(0));
  const log = new Uint8Array([...r1, ...r2, ...r3]);
  await t.step("whole log", () => {
    const { records, validLength } = parseLog(log);
    assert.equal(validLength, log.length);
    assert.deepEqual(records.map((r) => `${r.sender}#${r.seq}`), [
      "n1#1",
      "n1#2",
      "n2#1",
    ]);
    assert.deepEqual(records[0].payload, new Uint8Array([1, 2, 3]));
  });
  await t.step("every truncation keeps only whole records", () => {
    for (let cut = 0; cut < log.length; cut++) {
      const { validLength } = parseLog(log.subarray(0, cut));
      const expected = cut >= r1.length + r2.length
        ? r1.length + r2.length
        : cut >= r1.length
        ? r1.length
        : 0;
      assert.equal(validLength, expected, `cut at ${cut}`);
    }
  });
  await t.step("a flipped byte ends the valid prefix", () => {
    const bad = log.slice();
    bad[r1.length + 3] ^= 0xff;
    assert.equal(parseLog(bad).validLength, r1.length);
  });
  await t.step("a sequence gap ends the valid prefix", () => {
    const gap = new Uint8Array([
      ...r1,
      ...encodeRecord("n1", 3, new Uint8Array(1)),
    ]);
    assert.equal(parseLog(gap).validLength, r1.length);
  });
  assert.equal(LOG_FILE, "deliveries.log");
});
