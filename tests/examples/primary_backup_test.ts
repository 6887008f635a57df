import assert from "node:assert/strict";

Deno.test("primary/backup demo: the primary is SIGKILLed mid-load, a backup takes over, no acknowledged deposit is lost", async () => {
  const demo = new URL(
    "../../examples/primary_backup/demo.ts",
    import.meta.url,
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-env",
      demo.pathname,
      "--seconds",
      "4",
      "--kill-after",
      "1.5",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  assert.equal(output.code, 0, stderr);
  const summary = JSON.parse(lines.at(-1)!);
  console.log(JSON.stringify(summary));
  assert.equal(summary.lost, 0);
  assert.equal(summary.appliedOnce, true);
  assert.equal(summary.presentAfterFailover, summary.acknowledged);
  assert.ok(summary.acknowledged > 100, `only ${summary.acknowledged} acked`);
  assert.ok(summary.failoverMs > 0, "the client resumed after the kill");
  assert.match(stderr, /SIGKILL m1, the primary/);
  assert.match(stderr, /m2: view \d+ \[m2, m3\], I am the primary/);
});
