import assert from "node:assert/strict";
import { parseOracleArgs } from "../../oracle/_cli_oracle.ts";
import { freePorts, withTimeout } from "../oracle/_oracle_processes.ts";
import { readLines } from "../_process.ts";
import { type DenoOutput, runDeno } from "./_capture.ts";
import { until } from "../_until.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
];
const PEERS = "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103";

/** Runs `cli.ts` with `args` and the permissions of `deno task oracle`. */
function runCli(args: string[]): Promise<DenoOutput> {
  return runDeno([...PERMISSIONS, CLI, ...args]);
}

Deno.test("cli --help and oracle --help print usage on stdout and exit 0", async () => {
  const top = await runCli(["--help"]);
  assert.equal(top.code, 0, top.stderr);
  assert.match(top.stdout, /^usage: cohort <command>/);
  assert.match(top.stdout, /oracle/);
  assert.equal(top.stderr, "");
  const oracle = await runCli(["oracle", "--help"]);
  assert.equal(oracle.code, 0, oracle.stderr);
  assert.match(oracle.stdout, /^usage: cohort oracle/);
  for (const flag of ["--id", "--peers", "--data", "--listen", "--no-sync"]) {
    assert.ok(oracle.stdout.includes(flag), `usage mentions ${flag}`);
  }
  assert.equal(oracle.stderr, "");
});

Deno.test("cli refuses an unknown command, bad or missing flags with a one-line error, then the usage, and exit 2", async (t) => {
  const cases: { args: string[]; message: RegExp }[] = [
    { args: [], message: /^cohort: missing command$/ },
    { args: ["orcale"], message: /^cohort: unknown command "orcale"/ },
    {
      args: ["oracle", "--id", "1", "--peers", PEERS, "--data", "d", "--bogus"],
      message: /^cohort oracle: .*--bogus/,
    },
    {
      args: ["oracle", "--id", "1", "--peers", PEERS],
      message: /^cohort oracle: Missing --data/,
    },
    {
      args: ["oracle", "--id", "4", "--peers", PEERS, "--data", "d"],
      message: /^cohort oracle: Invalid --id "4": not among the --peers ids/,
    },
  ];
  for (const { args, message } of cases) {
    await t.step(args.join(" ") || "(no arguments)", async () => {
      const out = await runCli(args);
      assert.equal(out.code, 2, out.stderr);
      assert.equal(out.stdout, "");
      const lines = out.stderr.trimEnd().split("\n");
      assert.match(lines[0], message);
      assert.match(lines[1], /^usage: cohort /, out.stderr);
    });
  }
});

Deno.test("oracle arguments are validated: ids, addresses, levels", () => {
  const base = ["--id", "1", "--peers", PEERS, "--data", "/tmp/x"];
  const config = parseOracleArgs([...base, "--no-sync", "--log-level", "warn"]);
  assert.ok(config !== "help");
  assert.deepEqual(config, {
    id: "1",
    listen: "127.0.0.1:7101",
    peers: {
      "1": "127.0.0.1:7101",
      "2": "127.0.0.1:7102",
      "3": "127.0.0.1:7103",
    },
    dataDir: "/tmp/x",
    secretFile: undefined,
    logLevel: "warn",
    sync: false,
    tree: undefined,
    admin: undefined,
  });
  assert.equal(parseOracleArgs(["-h"]), "help");
  const child = parseOracleArgs([
    ...base,
    "--tree-name",
    "payments",
    "--parent",
    "r1=127.0.0.1:7001,r2=127.0.0.1:7002",
  ]);
  assert.ok(child !== "help");
  assert.deepEqual(child.tree, {
    name: "payments",
    parent: { r1: "127.0.0.1:7001", r2: "127.0.0.1:7002" },
    root: undefined,
  });
  const grandchild = parseOracleArgs([
    ...base,
    "--tree-name",
    "eu",
    "--parent",
    "p1=127.0.0.1:7201",
    "--root",
    "r1=127.0.0.1:7001",
  ]);
  assert.ok(grandchild !== "help");
  assert.deepEqual(grandchild.tree?.root, { r1: "127.0.0.1:7001" });
  const listen = parseOracleArgs([...base, "--listen", "0.0.0.0:0"]);
  assert.ok(listen !== "help" && listen.listen === "0.0.0.0:0");
  const ipv6 = parseOracleArgs([
    "--id",
    "a",
    "--peers",
    "a=[::1]:7101",
    "--data",
    "d",
  ]);
  assert.ok(ipv6 !== "help" && ipv6.listen === "[::1]:7101");
  const bad: [string[], RegExp][] = [
    [["--peers", PEERS, "--data", "d"], /Missing --id/],
    [["--id", "1", "--data", "d"], /Missing --peers/],
    [["--id", "1", "--peers", "1=127.0.0.1", "--data", "d"], /HOST:PORT/],
    [["--id", "1", "--peers", "1=127.0.0.1:70000", "--data", "d"], /HOST:PORT/],
    [["--id", "1", "--peers", "1=:7101", "--data", "d"], /HOST:PORT/],
    [["--id", "1", "--peers", "127.0.0.1:7101", "--data", "d"], /ID=HOST/],
    [
      ["--id", "1", "--peers", `${PEERS},1=127.0.0.1:7104`, "--data", "d"],
      /twice/,
    ],
    [[...base, "--listen", "localhost"], /Invalid --listen/],
    [[...base, "--log-level", "loud"], /Invalid --log-level "loud"/],
    [[...base, "extra"], /Unexpected argument "extra"/],
    [[...base, "--secret-file", ""], /secret-file/],
    [
      [...base, "--parent", "r1=127.0.0.1:7001"],
      /--parent: only with --tree-name/,
    ],
    [[...base, "--tree-name", "x"], /Missing --parent/],
    [[...base, "--tree-name", "", "--parent", "r=h:1"], /Invalid --tree-name/],
    [[...base, "--tree-name", "x", "--parent", "r1"], /Invalid --parent entry/],
    [
      [...base, "--tree-name", "x", "--parent", "r=h:1", "--root", "r=h"],
      /Invalid --root address/,
    ],
  ];
  for (const [args, message] of bad) {
    assert.throws(() => parseOracleArgs(args), message, args.join(" "));
  }
});

Deno.test("a running oracle replica logs oracle.listening, serves its admin endpoint when asked, and stops cleanly with exit 0 on SIGTERM and SIGINT", async (t) => {
  const dataDir = await Deno.makeTempDir({ prefix: "cohort-cli-test-" });
  const tokenFile = `${dataDir}-admin-token`;
  const token = "oracle-admin-token-0123456789";
  await Deno.writeTextFile(tokenFile, token + "\n");
  try {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      await t.step(signal, async () => {
        const [port, adminPort] = freePorts(2);
        // With SIGTERM, the replica also serves the admin endpoint.
        const admin = signal === "SIGTERM"
          ? [
            "--admin",
            `127.0.0.1:${adminPort}`,
            "--admin-token-file",
            tokenFile,
          ]
          : [];
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            ...PERMISSIONS,
            CLI,
            "oracle",
            "--id",
            "1",
            "--peers",
            `1=127.0.0.1:${port}`,
            "--data",
            dataDir,
            ...admin,
          ],
          cwd: ROOT,
          env: { NO_COLOR: "1" },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const lines: Record<string, unknown>[] = [];
        const raw: string[] = [];
        const reading = readLines(child.stderr, (line) => {
          raw.push(line);
          try {
            lines.push(JSON.parse(line));
          } catch { /* kept in raw */ }
        });
        const stdout = new Response(child.stdout).text();
        try {
          await until(
            () => `an oracle.listening line:\n${raw.join("\n")}`,
            () => lines.some((l) => l.event === "oracle.listening"),
            20_000,
          );
          const listening = lines.find((l) => l.event === "oracle.listening")!;
          assert.equal(listening.address, `127.0.0.1:${port}`);
          assert.equal(listening.level, "info");
          assert.equal(typeof listening.ts, "string");
          if (admin.length > 0) {
            const url = `http://127.0.0.1:${adminPort}/`;
            await until(
              () => `an admin.listening line:\n${raw.join("\n")}`,
              () => lines.some((l) => l.event === "admin.listening"),
              20_000,
            );
            assert.equal(
              lines.find((l) => l.event === "admin.listening")?.url,
              url,
            );
            const get = (path: string, bearer?: string) =>
              fetch(new URL(path, url), {
                headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
              });
            const refused = await get("v1/oracle");
            assert.equal(refused.status, 401);
            await refused.body?.cancel();
            const oracle = await (await get("v1/oracle", token)).json();
            assert.equal(oracle.leader, "1");
            assert.equal(oracle.local[0].role, "leader");
            assert.equal(
              (await (await get("v1/node", token)).json()).kind,
              "oracle",
            );
          }
          Deno.kill(child.pid, signal);
          const status = await withTimeout(child.status, 15_000, "exit");
          assert.equal(status.code, 0, raw.join("\n"));
          await reading;
          assert.equal(await stdout, "");
          const stopped = lines.find((l) => l.event === "oracle.stopped");
          assert.ok(stopped, raw.join("\n"));
          assert.equal(stopped.clean, true);
          assert.equal(
            lines.find((l) => l.event === "oracle.stopping")?.signal,
            signal,
          );
        } finally {
          try {
            Deno.kill(child.pid, "SIGKILL");
          } catch { /* exited */ }
          await child.status;
          await reading.catch(() => {});
          await stdout.catch(() => "");
        }
      });
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(tokenFile);
  }
});
