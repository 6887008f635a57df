import assert from "node:assert/strict";

const main = new URL("./main.ts", import.meta.url).pathname;

async function sim(...args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    // No permission flags: the simulator must need none.
    args: ["run", "--no-prompt", main, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) =>
    new TextDecoder().decode(bytes).trimEnd().split("\n");
  return {
    code: output.code,
    out: text(output.stdout),
    err: text(output.stderr),
  };
}

Deno.test("sim command: runs the transport family without permissions", async () => {
  const { code, out, err } = await sim(
    "--scenario",
    "transport",
    "--from",
    "1",
    "--seeds",
    "5",
  );
  assert.equal(code, 0, err.join("\n"));
  assert.equal(out.at(-1), "5 passed, 0 failed");
  assert.ok(err.some((l) => l.startsWith("transport: 5 passed, 0 failed in ")));
});

Deno.test("sim command: --seed prints a hash that replays; bad arguments exit 2", async () => {
  const one = await sim("--scenario", "transport", "--seed", "7");
  const again = await sim("--scenario", "transport", "--seed", "7");
  assert.equal(one.code, 0);
  assert.match(one.out[0], /^ok transport seed 7 hash [0-9a-f]{16} /);
  assert.equal(one.out[0], again.out[0]);
  assert.equal(one.out.at(-1), "1 passed, 0 failed");
  const bad = await sim("--seeds", "many");
  assert.equal(bad.code, 2);
  assert.match(bad.err[0], /^error: --seeds/);
  assert.match(bad.err[1], /^usage: /);
});
