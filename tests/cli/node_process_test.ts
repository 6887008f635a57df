import { until } from "../_until.ts";
import assert from "node:assert/strict";
import { JsonLinesProcess, type Line } from "../_process.ts";
import {
  freePorts,
  OracleProcesses,
  withTimeout,
} from "../oracle/_oracle_processes.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** The members of the last view a `cohort node` process printed. */
function lastView(node: JsonLinesProcess): string[] {
  const line = node.lines.findLast((l) =>
    l.event === "joined" || l.event === "view"
  );
  return (line?.view as { members: string[] } | undefined)?.members ?? [];
}

Deno.test(
  "two 'cohort node --actor kv' processes on a shared Oracle see each other join, and the survivor's view shrinks after a SIGTERM",
  {
    sanitizeOps: true,
    sanitizeResources: true,
  },
  async (t) => {
    const oracle = await OracleProcesses.start({ size: 3 });
    const nodes: JsonLinesProcess[] = [];
    try {
      const start = () => {
        const node = new JsonLinesProcess(CLI, [
          "node",
          "--actor",
          "kv",
          "--oracle",
          Object.values(oracle.replicas).join(","),
          "--log-level",
          "warn",
        ]);
        nodes.push(node);
        return node;
      };
      const a = start();
      const b = start();
      let joined: Line[] = [];
      await t.step(
        "each prints 'joined', then both are in a view of two",
        async () => {
          await until(
            "a view of two at both",
            () => lastView(a).length === 2 && lastView(b).length === 2,
          );
          joined = [a, b].map((n) => n.find("joined")!);
          for (const line of joined) {
            assert.equal(line.group, "/cohort/kv");
            assert.match(
              line.member as string,
              /^n[0-9a-f]{8}@127\.0\.0\.1:\d+$/,
            );
            const view = line.view as { viewId: number; members: string[] };
            assert.ok(view.members.includes(line.member as string));
          }
          assert.notEqual(joined[0].member, joined[1].member);
          assert.deepEqual(
            new Set(lastView(a)),
            new Set([joined[0].member, joined[1].member]),
          );
        },
      );
      await t.step(
        "SIGTERM: the node leaves cleanly and exits 0; the other's view shrinks",
        async () => {
          await withTimeout(a.kill("SIGTERM"), 20_000, "node a's exit");
          assert.equal((await a.done).code, 0);
          await until("b alone in its view", () => lastView(b).length === 1);
          assert.deepEqual(lastView(b), [joined[1].member]);
          const viewIds = b.lines.map((l) =>
            (l.view as { viewId: number }).viewId
          );
          assert.deepEqual(viewIds, [...viewIds].sort((x, y) => x - y));
          assert.deepEqual(b.events("joined").length, 1);
        },
      );
    } finally {
      for (const node of nodes) {
        await withTimeout(node.kill("SIGKILL"), 10_000, "node exit").catch(
          (error) => console.error(String(error)),
        );
      }
      await oracle.stop();
    }
  },
);

Deno.test(
  "a 'cohort node' whose Oracle does not answer stops on the first SIGTERM with exit 0",
  {
    sanitizeOps: true,
    sanitizeResources: true,
  },
  async () => {
    const [port] = freePorts(1);
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net",
        CLI,
        "node",
        "--actor",
        "counter",
        "--oracle",
        `127.0.0.1:${port}`,
      ],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const reading = (async () => {
      for await (
        const text of child.stderr.pipeThrough(new TextDecoderStream())
      ) {
        stderr += text;
      }
    })();
    try {
      await until("node.joining", () => stderr.includes('"node.joining"'));
      child.kill("SIGTERM");
      const status = await withTimeout(child.status, 15_000, "node exit");
      assert.equal(status.code, 0, stderr);
      await reading;
      const stopping = stderr.split("\n").filter((l) => l !== "")
        .map((l) => JSON.parse(l))
        .find((l) => l.event === "node.stopping");
      assert.deepEqual(
        { signal: stopping?.signal, starting: stopping?.starting },
        { signal: "SIGTERM", starting: true },
      );
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Exited.
      }
      await withTimeout(child.status, 10_000, "node exit").catch(() => {});
      await reading.catch(() => {});
    }
  },
);
