import assert from "node:assert/strict";
import { main, USAGE } from "../../cli.ts";
import { NODE_USAGE } from "../../actors/_cli_node.ts";
import { DEMO_USAGE } from "../../_cli_demo.ts";
import { BENCH_USAGE } from "../../_cli_bench.ts";
import { ORACLE_USAGE } from "../../oracle/_cli_oracle.ts";
import { STATUS_USAGE } from "../../admin/_cli_status.ts";
import { capture } from "./_capture.ts";

const USAGES: Record<string, string> = {
  oracle: ORACLE_USAGE,
  node: NODE_USAGE,
  demo: DEMO_USAGE,
  bench: BENCH_USAGE,
  status: STATUS_USAGE,
};

Deno.test("--help and -h print the usage on stdout and exit 0, at the top and for every command", async (t) => {
  for (const help of ["--help", "-h"]) {
    await t.step(`cohort ${help}`, async () => {
      const out = await capture(main, [help]);
      assert.equal(out.code, 0);
      assert.deepEqual(out.stdout, [USAGE]);
      assert.deepEqual(out.stderr, []);
      for (const name of Object.keys(USAGES)) {
        assert.match(USAGE, new RegExp(`^  ${name} `, "m"), name);
      }
    });
    for (const [name, usage] of Object.entries(USAGES)) {
      await t.step(`cohort ${name} ${help}`, async () => {
        const out = await capture(main, [name, help]);
        assert.equal(out.code, 0);
        assert.deepEqual(out.stdout, [usage]);
        assert.match(usage, new RegExp(`^usage: cohort ${name}`));
        assert.deepEqual(out.stderr, []);
      });
    }
  }
});

Deno.test("a usage error is one line 'cohort <command>: <message>' then the usage on stderr, exit 2", async (t) => {
  const cases: { args: string[]; usage: string; line: RegExp }[] = [
    { args: [], usage: USAGE, line: /^cohort: missing command$/ },
    {
      args: ["nod"],
      usage: USAGE,
      line:
        /^cohort: unknown command "nod"; commands: oracle, node, demo, bench\b/,
    },
    {
      args: ["oracle", "--bogus"],
      usage: ORACLE_USAGE,
      line: /^cohort oracle: Unknown option '--bogus'$/,
    },
    {
      args: ["oracle", "--id", "1", "--peers", "1=127.0.0.1:7101"],
      usage: ORACLE_USAGE,
      line: /^cohort oracle: Missing --data/,
    },
    {
      args: ["node", "--actor", "kv", "--bogus"],
      usage: NODE_USAGE,
      line: /^cohort node: Unknown option '--bogus'$/,
    },
    {
      args: ["node", "--actor"],
      usage: NODE_USAGE,
      line: /^cohort node: Option '--actor <value>' argument missing$/,
    },
    {
      args: ["node", "--actor", "kv", "--port", "0"],
      usage: NODE_USAGE,
      line: /^cohort node: Invalid --port "0"/,
    },
    {
      args: ["demo", "--seconds", "x"],
      usage: DEMO_USAGE,
      line: /^cohort demo: Invalid --seconds "x"/,
    },
    {
      args: ["demo", "--kill-after=-1"],
      usage: DEMO_USAGE,
      line: /^cohort demo: Invalid --kill-after "-1"/,
    },
    {
      args: ["demo", "--kill-after", "-1"],
      usage: DEMO_USAGE,
      line: /^cohort demo: Option '--kill-after' argument is ambiguous$/,
    },
    {
      args: ["demo", "--seconds", "2", "--kill-after", "3"],
      usage: DEMO_USAGE,
      line:
        /^cohort demo: Invalid --kill-after 3: must be less than --seconds 2/,
    },
    {
      args: ["demo", "--loud"],
      usage: DEMO_USAGE,
      line: /^cohort demo: Unknown option '--loud'$/,
    },
    {
      args: ["bench"],
      usage: BENCH_USAGE,
      line: /^cohort bench: Missing benchmark name/,
    },
    {
      args: ["bench", "grups", "--quick"],
      usage: BENCH_USAGE,
      line: /^cohort bench: Unknown benchmark "grups"/,
    },
  ];
  for (const { args, usage, line } of cases) {
    await t.step(args.join(" ") || "(no arguments)", async () => {
      const out = await capture(main, args);
      assert.equal(out.code, 2, out.stderr.join("\n"));
      assert.deepEqual(out.stdout, []);
      assert.equal(out.stderr.length, 2, out.stderr.join("\n"));
      assert.match(out.stderr[0], line);
      assert.ok(!out.stderr[0].includes("\n"), "the error is one line");
      assert.equal(out.stderr[1], usage);
    });
  }
});
