/**
 * The primary/backup story end to end, with separate OS processes: an
 * Oracle of three replicas, three ledger members (the first is the
 * primary) and a client sending deposits. Mid-load the primary is killed
 * with SIGKILL; a backup takes over and the client carries on. At the
 * end the client checks that every deposit it was told is done is in the
 * ledger.
 *
 * ```sh
 * deno task demo
 * ```
 *
 * Prints what happens as it happens (on stderr), then one JSON line on
 * stdout: `acknowledged`, `presentAfterFailover`, `lost` (must be 0) and
 * `failoverMs` (from the SIGKILL to the client's next acknowledged
 * deposit). Exits 0 only if nothing was lost.
 *
 * Every member serves Cohort's admin endpoint; the demo prints their
 * URLs, the dashboard's link and a `cohort status` command line. With
 * `--hold S` the surviving cluster stays up S seconds after the result
 * (to look at it); SIGINT or SIGTERM stops it early.
 *
 * @module
 */

import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "6" },
    "kill-after": { type: "string", default: "2.5" },
    hold: { type: "string", default: "0" },
  },
});
const seconds = Number(values.seconds);
const killAfterMs = Number(values["kill-after"]) * 1000;
const holdMs = Number(values.hold) * 1000;
for (
  const [flag, value] of [["seconds", seconds], ["kill-after", killAfterMs], [
    "hold",
    holdMs,
  ]] as const
) {
  if (!Number.isFinite(value) || value < 0) {
    console.error(`demo: invalid --${flag}: use a number of seconds`);
    Deno.exit(2);
  }
}
/** Aborted by SIGINT or SIGTERM: the demo stops its processes and exits. */
const stopped = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => stopped.abort(signal));
}
const here = new URL(".", import.meta.url);
const root = new URL("../../", import.meta.url);
const say = (text: string) => console.error(`[demo] ${text}`);

/** Free TCP ports on 127.0.0.1. */
function freePorts(count: number): number[] {
  const listeners = Array.from(
    { length: count },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/** A child process whose stdout JSON lines are collected. */
class Child {
  readonly name: string;
  readonly lines: Record<string, unknown>[] = [];
  readonly #process: Deno.ChildProcess;
  readonly done: Promise<Deno.CommandStatus>;

  constructor(
    name: string,
    args: string[],
    onLine?: (line: Record<string, unknown>) => void,
  ) {
    this.name = name;
    const process = new Deno.Command(Deno.execPath(), {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#process = process;
    this.done = process.status;
    (async () => {
      let buffer = "";
      for await (
        const chunk of process.stdout.pipeThrough(new TextDecoderStream())
      ) {
        buffer += chunk;
        for (
          let nl = buffer.indexOf("\n");
          nl >= 0;
          nl = buffer.indexOf("\n")
        ) {
          const text = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          try {
            const line = JSON.parse(text);
            this.lines.push(line);
            onLine?.(line);
          } catch {
            // Not a JSON line.
          }
        }
      }
    })();
  }

  get pid(): number {
    return this.#process.pid;
  }

  kill(signal: Deno.Signal = "SIGKILL"): void {
    try {
      this.#process.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

async function until(what: string, condition: () => boolean, ms = 30_000) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (stopped.signal.aborted) {
      throw new Error(`stopped by ${stopped.signal.reason}`);
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits `ms`, or less if the demo is stopped. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    stopped.signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

const children: Child[] = [];
const dataDir = await Deno.makeTempDir({ prefix: "cohort-demo-" });
let exitCode = 1;
try {
  const [o1, o2, o3, h1, h2, h3, a1, a2, a3] = freePorts(9);
  const adminPorts = new Map([["m1", a1], ["m2", a2], ["m3", a3]]);
  const token = [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const tokenFile = `${dataDir}/admin-token`;
  await Deno.writeTextFile(tokenFile, token + "\n", { mode: 0o600 });
  const peers = `1=127.0.0.1:${o1},2=127.0.0.1:${o2},3=127.0.0.1:${o3}`;
  for (const id of ["1", "2", "3"]) {
    children.push(
      new Child(`oracle ${id}`, [
        "run",
        "--allow-net",
        "--allow-read",
        "--allow-write",
        new URL("cli.ts", root).pathname,
        "oracle",
        "--id",
        id,
        "--peers",
        peers,
        "--data",
        `${dataDir}/${id}`,
        "--log-level",
        "warn",
      ]),
    );
  }
  say(`Oracle: three replica processes (${peers})`);

  const members = new Map<string, { child: Child; url: string }>();
  const startMember = (label: string, port: number) => {
    const child = new Child(label, [
      "run",
      "--allow-net=127.0.0.1",
      `--allow-read=${tokenFile}`,
      new URL("member.ts", here).pathname,
      "--label",
      label,
      "--oracle",
      peers,
      "--http",
      `127.0.0.1:${port}`,
      "--admin",
      `127.0.0.1:${adminPorts.get(label)}`,
      "--admin-token-file",
      tokenFile,
    ], (line) => {
      if (line.event === "view") {
        const names = (line.members as string[]).map((m) => m.split("@")[0]);
        say(
          `${label}: view ${line.viewId} [${names.join(", ")}]${
            line.primary ? ", I am the primary" : ""
          }`,
        );
      }
    });
    children.push(child);
    members.set(label, { child, url: `http://127.0.0.1:${port}` });
    return child;
  };
  const viewSize = (c: Child) =>
    (c.lines.findLast((l) => l.event === "view")?.members as
      | string[]
      | undefined)
      ?.length ?? 0;
  const m1 = startMember("m1", h1);
  await until("m1 in its group", () => viewSize(m1) === 1);
  const m2 = startMember("m2", h2);
  await until("m2 in the group", () => viewSize(m1) === 2);
  const m3 = startMember("m3", h3);
  await until(
    "a view of three",
    () =>
      [m1, m2, m3].every((c) => viewSize(c) === 3) &&
      [m1, m2, m3].every((c) =>
        c.lines.some((l) => l.event === "http") &&
        c.lines.some((l) => l.event === "admin")
      ),
  );
  for (const [label, port] of adminPorts) {
    say(`${label}: admin endpoint http://127.0.0.1:${port}/`);
  }
  say(`dashboard: http://127.0.0.1:${a2}/#token=${token}`);
  say(
    `status: deno run --allow-net=127.0.0.1 --allow-read ${
      new URL("cli.ts", root).pathname
    } status --url http://127.0.0.1:${a2}/ --token-file ${tokenFile}`,
  );

  say(`client: deposits for ${seconds} s, one at a time, to the primary`);
  const client = new Child("client", [
    "run",
    "--allow-net=127.0.0.1",
    new URL("client.ts", here).pathname,
    "--urls",
    [...members.values()].map((m) => m.url).join(","),
    "--seconds",
    String(seconds),
  ], (line) => {
    if (line.event === "progress") {
      say(`client: ${line.acked} deposits acknowledged`);
    }
    if (line.event === "resumed") {
      say(`client: answered again after ${line.gapMs} ms (${line.url})`);
    }
  });
  children.push(client);
  await pause(killAfterMs);
  if (stopped.signal.aborted) {
    throw new Error(`stopped by ${stopped.signal.reason}`);
  }
  const killedAt = Date.now();
  m1.kill("SIGKILL");
  say(`SIGKILL m1, the primary (pid ${m1.pid})`);
  await client.done;
  const result = client.lines.find((l) => l.event === "result");
  if (result === undefined) throw new Error("the client printed no result");
  const resumed = client.lines.find((l) =>
    l.event === "resumed" && (l.at as number) > killedAt
  );
  const lost = result.lost as number;
  const consistent = result.balanceTotal === result.appliedUpTo;
  const summary = {
    acknowledged: result.acknowledged,
    presentAfterFailover: result.present,
    lost,
    failoverMs: resumed === undefined
      ? null
      : (resumed.at as number) - killedAt,
    appliedOnce: consistent,
  };
  say(
    lost === 0 && consistent
      ? "every acknowledged deposit survived the primary's crash"
      : "DEPOSITS WERE LOST OR APPLIED TWICE",
  );
  console.log(JSON.stringify(summary));
  exitCode = lost === 0 && consistent && (result.acknowledged as number) > 0 &&
      resumed !== undefined
    ? 0
    : 1;
  if (holdMs > 0) {
    say(`holding the cluster up for ${holdMs / 1000} s (SIGINT stops it)`);
    await pause(holdMs);
  }
} catch (error) {
  say(`failed: ${String(error)}`);
} finally {
  for (const child of children) child.kill("SIGKILL");
  await Promise.all(children.map((c) => c.done));
  await Deno.remove(dataDir, { recursive: true }).catch(() => {});
}
Deno.exit(exitCode);
