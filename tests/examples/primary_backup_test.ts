import assert from "node:assert/strict";
import { runExample } from "./_run_example.ts";

Deno.test("primary/backup demo: the primary is SIGKILLed mid-load, a backup takes over, no acknowledged deposit is lost", async () => {
  const { result: summary, stderr } = await runExample(
    "primary_backup/demo",
    ["--seconds", "4", "--kill-after", "1.5"],
  );
  assert.equal(summary.lost, 0);
  assert.equal(summary.appliedOnce, true);
  assert.equal(summary.presentAfterFailover, summary.acknowledged);
  const acknowledged = summary.acknowledged as number;
  assert.ok(acknowledged > 100, `only ${acknowledged} acked`);
  assert.ok(
    (summary.failoverMs as number) > 0,
    "the client resumed after the kill",
  );
  assert.match(stderr, /SIGKILL m1, the primary/);
  assert.match(stderr, /m2: view \d+ \[m2, m3\], I am the primary/);
});
