/**
 * The dashboard end to end, in headless Chromium: a `cohort node` process
 * serves it (`--admin`), a second `cohort node` process and this test's
 * own node are in its group, and the second process is SIGKILLed; the
 * page, fed by the real event stream, shows the group and then the view
 * without the killed member.
 */

import assert from "node:assert/strict";
import { Node } from "../../actors/node.ts";
import { KvActor, Put } from "../../actors/_cli_actors.ts";
import { startOracleGroup } from "../../oracle/server.ts";
import { pollUntil, withChromium } from "./_browser.ts";
import { JsonLinesProcess } from "../_process.ts";
import { until } from "../_until.ts";
import { freePorts } from "../oracle/_oracle_processes.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;
const GROUP = "/apps/kv";

/** A `cohort node` process; its stdout JSON lines and stderr log lines collected. */
class NodeProcess extends JsonLinesProcess {
  constructor(permissions: string[], args: string[]) {
    super(CLI, ["node", ...args], { permissions, stderr: "lines" });
  }

  /** The member name the process joined as, once joined. */
  get member(): string | undefined {
    return this.find("joined")?.member as string | undefined;
  }
}

Deno.test("dashboard end to end: served by a cohort node process, it shows the group, then the view without a member SIGKILLed", async () => {
  const oracle = await startOracleGroup({ size: 1 });
  const oracleList = Object.entries(oracle.replicas).map(([id, a]) =>
    `${id}=${a}`
  ).join(",");
  const dir = await Deno.makeTempDir({ prefix: "cohort-dashboard-" });
  const tokenFile = `${dir}/admin-token`;
  const token = crypto.randomUUID();
  await Deno.writeTextFile(tokenFile, token + "\n");
  const [adminPort] = freePorts(1);
  const nodeArgs = ["--actor", "kv", "--group", GROUP, "--oracle", oracleList];
  const watcher = new NodeProcess(
    ["--allow-net", `--allow-read=${tokenFile}`],
    [
      ...nodeArgs,
      "--admin",
      `127.0.0.1:${adminPort}`,
      "--admin-token-file",
      tokenFile,
    ],
  );
  let victim: NodeProcess | undefined;
  let node: Node | undefined;
  let sending = true;
  let sender: Promise<void> = Promise.resolve();
  try {
    await until(
      "the watcher to join",
      () => watcher.member !== undefined,
      20_000,
    );
    victim = new NodeProcess(["--allow-net"], nodeArgs);
    await until(
      "the victim to join",
      () => victim!.member !== undefined,
      20_000,
    );
    node = await Node.start({ oracle: oracle.replicas });
    const here = await node.join(GROUP, new KvActor(), { label: "test" });
    await until(
      () => `a view of three; last seen: ${here.view?.members.length}`,
      () => here.view?.members.length === 3,
      20_000,
    );
    await (await node.oracleClient()).lock("/locks/kv/compaction");
    // Traffic, so the page has rates to show.
    sender = (async () => {
      for (let i = 0; sending && i < 5_000; i++) {
        await here.send(Put, { key: `k${i % 50}`, value: String(i) });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    const watcherName = watcher.member!;
    const victimName = victim.member!;
    const row =
      `[data-testid="group-row"][data-group="${GROUP}"][data-member="${watcherName}"]`;
    await withChromium(async (page) => {
      const members = () =>
        page.texts(`${row} [data-testid="view-members"]`).then((t) =>
          t[0] ?? ""
        );
      await page.goto(`http://127.0.0.1:${adminPort}/#token=${token}`);
      await pollUntil(
        "the page to connect",
        () => page.texts('[data-testid="status"]'),
        (t) => t[0] === "connected",
        15_000,
      );
      const three = await pollUntil(
        "the group with three members",
        members,
        (text) => text.split(", ").length === 3,
        15_000,
      );
      assert.ok(three.includes(victimName), three);
      assert.ok(three.includes(here.me), three);
      assert.equal((await page.texts('[data-testid="node-id"]')).length, 1);
      assert.deepEqual(await page.texts('[data-testid="oracle-leader"]'), [
        "1",
      ]);
      const locks = (await page.texts('[data-testid="locks"]'))[0];
      assert.match(locks, /\/locks\/kv\/compaction/);
      await pollUntil(
        "a message rate above zero",
        () => page.texts(`${row} [data-testid="rate"]`).then((t) => t[0] ?? ""),
        (rate) => /^(\d+\.\d)/.test(rate) && Number(rate.split(" ")[0]) > 0,
        15_000,
      );
      if (Deno.env.get("COHORT_SCREENSHOT") === "1") {
        const png = new URL("../../docs/dashboard.png", import.meta.url);
        await Deno.mkdir(new URL(".", png), { recursive: true });
        await page.screenshot(png.pathname);
      }

      await victim!.stop("SIGKILL");
      const two = await pollUntil(
        "the view without the killed member",
        members,
        (text) => text.split(", ").length === 2,
        15_000,
      );
      assert.ok(!two.includes(victimName), two);
      assert.ok(two.includes(watcherName) && two.includes(here.me), two);
    });
  } finally {
    sending = false;
    await sender.catch(() => {});
    await victim?.stop("SIGKILL");
    await watcher.stop("SIGTERM");
    await node?.close();
    await oracle.stop();
    await Deno.remove(dir, { recursive: true });
  }
  const logs = watcher.logs.map((l) => JSON.parse(l));
  assert.ok(
    logs.some((l) => l.event === "admin.listening"),
    watcher.logs.join("\n"),
  );
  // The watcher's log: each view once, in order, with its group; the last
  // without the killed member; no line per message (hundreds were sent).
  const views = logs.filter((l) => l.event === "group.view_installed");
  assert.deepEqual(
    views.map((l) => l.viewId),
    [...new Set(views.map((l) => l.viewId))].sort((a, b) => a - b),
  );
  assert.ok(views.every((l) => l.group === GROUP));
  assert.equal(views.at(-1)?.members.length, 2, JSON.stringify(views.at(-1)));
  assert.ok(logs.length < 100, `${logs.length} log lines`);
});
