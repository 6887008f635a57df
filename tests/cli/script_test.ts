import assert from "node:assert/strict";
import { BENCH_USAGE, parseBenchArgs } from "../../_cli_bench.ts";
import { parseDemoArgs } from "../../_cli_demo.ts";
import {
  missingScript,
  runScript,
  SCRIPT_PERMISSIONS,
} from "../../_cli_script.ts";
import { capture, runDeno } from "./_capture.ts";

const ROOT = new URL("../../", import.meta.url);

Deno.test("demo arguments: defaults, numbers, and --kill-after before the end", () => {
  assert.deepEqual(parseDemoArgs([]), { seconds: 6, killAfter: 2.5, hold: 0 });
  assert.deepEqual(
    parseDemoArgs(["--seconds=3", "--kill-after", ".5", "--hold", "30"]),
    { seconds: 3, killAfter: 0.5, hold: 30 },
  );
  assert.equal(parseDemoArgs(["-h"]), "help");
  const bad: [string[], RegExp][] = [
    [["--seconds", "x"], /^Invalid --seconds "x"/],
    [["--seconds", "0"], /^Invalid --seconds "0"/],
    [["--seconds", "601"], /^Invalid --seconds "601"/],
    [["--kill-after", "abc"], /^Invalid --kill-after "abc"/],
    [["--hold=-1"], /^Invalid --hold "-1"/],
    [["--hold", "3601"], /^Invalid --hold "3601"/],
    [
      ["--kill-after", "6"],
      /^Invalid --kill-after 6: must be less than --seconds 6/,
    ],
    [["--seconds"], /'--seconds <value>' argument missing/],
    [["--quick"], /Unknown option '--quick'/],
    [["now"], /Unexpected argument 'now'/],
  ];
  for (const [args, message] of bad) {
    assert.throws(
      () => parseDemoArgs(args),
      (error: Error) =>
        (error instanceof TypeError || error instanceof RangeError) &&
        message.test(error.message),
      args.join(" "),
    );
  }
});

Deno.test("bench arguments: a known benchmark's name, its options passed on as they are", () => {
  assert.deepEqual(parseBenchArgs(["oracle", "--seconds=2", "--no-sync"]), {
    name: "oracle",
    args: ["--seconds=2", "--no-sync"],
  });
  assert.equal(parseBenchArgs(["groups", "--help"]), "help");
  assert.deepEqual(parseBenchArgs(["groups", "--", "--help"]), {
    name: "groups",
    args: ["--", "--help"],
  });
  assert.throws(
    () => parseBenchArgs([]),
    /Missing benchmark name: use transport/,
  );
  assert.throws(
    () => parseBenchArgs(["--quick"]),
    /Unknown benchmark "--quick"/,
  );
});

Deno.test("cohort bench knows every benchmark of bench/main.ts and its options", async () => {
  const out = await runDeno(["bench/main.ts"]);
  assert.equal(out.code, 2, out.stderr);
  const lines = out.stderr.trimEnd().split("\n");
  const names = lines.find((l) => l.startsWith("benchmarks: "));
  assert.ok(names, out.stderr);
  for (const name of names.slice("benchmarks: ".length).split(", ")) {
    assert.deepEqual(parseBenchArgs([name]), { name, args: [] });
    const options = lines.find((l) => l.startsWith(`  ${name} `));
    assert.ok(options !== undefined, `bench/main.ts usage of ${name}`);
    assert.ok(BENCH_USAGE.includes(options), `cohort bench usage of ${name}`);
  }
});

Deno.test("cohort demo and cohort bench run their scripts with the permissions of the deno.json demo and bench tasks", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", ROOT)),
  );
  for (const [task, script] of [["demo", "examples/"], ["bench", "bench/"]]) {
    const words = (config.tasks[task] as string).split(/\s+/);
    const run = words.indexOf("run");
    const end = words.findIndex((w) => w.startsWith(script));
    assert.ok(run >= 0 && end > run, config.tasks[task]);
    assert.deepEqual(words.slice(run + 1, end), SCRIPT_PERMISSIONS, task);
  }
});

Deno.test("a script missing from the package is a one-line error and exit 1", async (t) => {
  await t.step("the repository has both scripts", async () => {
    for (const path of ["examples/primary_backup/demo.ts", "bench/main.ts"]) {
      assert.equal(await missingScript(new URL(path, ROOT)), undefined);
    }
  });
  await t.step("a file: URL that is not there", async () => {
    const out = await capture(
      (args) =>
        runScript(args, {
          command: "demo",
          script: new URL("examples/none/demo.ts", ROOT),
          permissions: [],
        }),
      [],
    );
    assert.equal(out.code, 1);
    assert.deepEqual(out.stdout, []);
    assert.equal(out.stderr.length, 1);
    assert.match(
      out.stderr[0],
      /^cohort demo: \/.*examples\/none\/demo\.ts not found: examples\/ and bench\/ are not in the published package/,
    );
  });
  await t.step("a remote URL (a published package)", async () => {
    const why = await missingScript(
      new URL("https://jsr.io/@cohort/cohort/0.1.0/bench/main.ts"),
    );
    assert.match(why ?? "", /^https:\/\/jsr\.io\/.* is not a local file: /);
  });
});

Deno.test("a script runs with its arguments and its exit code is the command's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cohort-cli-script-" });
  try {
    const script = new URL(`file://${dir}/exit.ts`);
    await Deno.writeTextFile(
      script,
      "if (Deno.args[1] !== 'two words') Deno.exit(99);\n" +
        "Deno.exit(Number(Deno.args[0]));\n",
    );
    const code = await runScript(["7", "two words"], {
      command: "demo",
      script,
      permissions: ["--quiet"],
    });
    assert.equal(code, 7);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cohort demo and cohort bench exit 2 on a bad value, as processes, before running anything", async () => {
  const demo = await runDeno(["-A", "cli.ts", "demo", "--seconds", "x"]);
  assert.equal(demo.code, 2, demo.stderr);
  assert.equal(demo.stdout, "");
  assert.match(
    demo.stderr,
    /^cohort demo: Invalid --seconds "x".*\nusage: cohort demo/,
  );
  const bench = await runDeno(["-A", "cli.ts", "bench", "grups"]);
  assert.equal(bench.code, 2, bench.stderr);
  assert.match(
    bench.stderr,
    /^cohort bench: Unknown benchmark "grups".*\nusage: cohort bench/,
  );
});
