import assert from "node:assert/strict";
import { SystemClock } from "../../runtime/clock.ts";
import { CryptoRandom } from "../../runtime/random.ts";
import { JsonLogger } from "../../runtime/log.ts";

Deno.test("system clock fires timers in delay order and cancels cleared ones", async () => {
  const clock = new SystemClock();
  const fired: string[] = [];
  await new Promise<void>((resolve) => {
    const cancelled = clock.setTimer(5, () => fired.push("cancelled"));
    clock.setTimer(20, () => {
      fired.push("late");
      resolve();
    });
    clock.setTimer(1, () => fired.push("early"));
    clock.clearTimer(cancelled);
  });
  assert.deepEqual(fired, ["early", "late"]);
});

Deno.test("crypto random stays in range and covers it", () => {
  const random = new CryptoRandom();
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const n = random.int(10);
    assert.ok(Number.isInteger(n) && n >= 0 && n < 10);
    seen.add(n);
    const f = random.float();
    assert.ok(f >= 0 && f < 1);
  }
  assert.equal(seen.size, 10);
  assert.throws(() => random.int(0), RangeError);
  assert.throws(() => random.int(2 ** 33), RangeError);
  const bytes = random.fill(new Uint8Array(100_000));
  assert.ok(bytes.some((b) => b !== 0));
});

Deno.test("json logger writes one parseable line per event at or above its level", () => {
  const lines: string[] = [];
  const log = new JsonLogger({
    level: "warn",
    base: { node: "n1" },
    write: (line) => lines.push(line),
  });
  log.log("info", "ignored");
  log.log("warn", "auth_refused", { peer: "x\ny" });
  log.log("error", "crash");
  assert.equal(lines.length, 2);
  const first = JSON.parse(lines[0]);
  assert.equal(first.event, "auth_refused");
  assert.equal(first.node, "n1");
  assert.equal(first.peer, "x\ny");
  assert.ok(!lines[0].includes("\n"));
});
