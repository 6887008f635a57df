import assert from "node:assert/strict";
import { SCRIPT_PERMISSIONS } from "../../_cli_script.ts";
import { readLines, stopChild } from "../_process.ts";
import { until } from "../_until.ts";
import { freePorts } from "../oracle/_oracle_processes.ts";
import { type DenoOutput, runDeno } from "../cli/_capture.ts";

const root = new URL("../../", import.meta.url);

/** Runs `cli.ts status` with `args`; returns its exit code and output. */
function status(args: string[]): Promise<DenoOutput> {
  return runDeno([
    "--allow-net=127.0.0.1",
    "--allow-read",
    "--allow-env",
    new URL("cli.ts", root).pathname,
    "status",
    ...args,
  ]);
}

Deno.test("cohort status against a running primary/backup demo prints the views and the Oracle leader", async () => {
  const demo = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...SCRIPT_PERMISSIONS,
      new URL("examples/primary_backup/demo.ts", root).pathname,
      "--seconds",
      "3",
      "--kill-after",
      "1",
      "--hold",
      "60",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const reading = readLines(demo.stderr, (line) => lines.push(line));
  try {
    const command = () =>
      lines.map((l) => / status --url (\S+) --token-file (\S+)$/.exec(l))
        .find((m) => m !== null);
    await until(
      () => `a status line from the demo:\n${lines.join("\n")}`,
      () => command() !== undefined,
      60_000,
    );
    const [, url, tokenFile] = command()!;

    const table = await status(["--url", url, "--token-file", tokenFile]);
    assert.equal(table.code, 0, table.stderr);
    const leader =
      /^Oracle leader: ([123]), term \d+, commit index \d+|^Oracle leader: ([123]);/m
        .exec(table.stdout);
    assert.ok(leader !== null, `no Oracle leader in:\n${table.stdout}`);
    assert.match(table.stdout, /^VIEWS\nGROUP +VIEW +MEMBERS/m);
    const ledger = table.stdout.split("\n").find((l) =>
      l.startsWith("/demo/ledger ")
    );
    assert.ok(ledger !== undefined, table.stdout);
    assert.match(ledger, /m\d@127\.0\.0\.1:\d+/);
    assert.match(table.stdout, /^MEMBERS HERE\n/m);
    console.log(table.stdout);

    const json = await status([
      "--url",
      url,
      "--token-file",
      tokenFile,
      "--json",
    ]);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.ok(["1", "2", "3"].includes(report.oracle.leader));
    const view = report.views.find((v: { group: string }) =>
      v.group === "/demo/ledger"
    );
    assert.ok(view.members.length >= 2, JSON.stringify(view));
    assert.equal(report.groups[0].path, "/demo/ledger");

    // The wrong token: one line, exit 1.
    const bad = await Deno.makeTempFile();
    try {
      await Deno.writeTextFile(bad, "not-the-token-at-all\n");
      const refused = await status(["--url", url, "--token-file", bad]);
      assert.equal(refused.code, 1);
      assert.equal(refused.stdout, "");
      assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
      assert.match(refused.stderr, /401.*bearer token/);
    } finally {
      await Deno.remove(bad);
    }
  } finally {
    await stopChild(demo, "SIGTERM", 15_000);
    await reading;
  }
});

Deno.test("cohort status: usage errors exit 2 with one line and the usage; an endpoint that is not there exits 1", async () => {
  for (
    const args of [[], ["--url"], ["--url", "nope"], ["--url", "ftp://x/"], [
      "--bogus",
    ], ["--url", "http://127.0.0.1:1/", "--timeout-ms", "0"]]
  ) {
    const r = await status(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr.split("\n")[0], /^cohort status: /);
    assert.match(r.stderr, /usage: cohort status/);
  }
  const help = await status(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: cohort status/);
  const [port] = freePorts(1);
  const gone = await status(["--url", `http://127.0.0.1:${port}/`]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /^cohort status: Cannot reach/);
});
