/**
 * Oracle benchmark: three replica processes (`cli.ts oracle`, sync on
 * unless `--no-sync`), driven by clients in this process.
 *
 * Phases, in order: appends/s with 1 and with 16 clients (each client one
 * request in flight); lock acquire+release cycles/s with 16 clients on one
 * contended path and on 16 paths; notify latency (an append's call to the
 * event's arrival at a subscriber in this process); an optional soak;
 * failover after SIGKILL of the leader (to the first acknowledged append
 * issued after the kill) and after SIGSTOP of the leader (then SIGCONT,
 * and the old leader rejoins). Elections are counted from the replicas'
 * `oracle.leader.elected` log lines: those during the load phases should
 * be zero.
 *
 * Progress goes to stderr; the last stdout line is one JSON object.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { usageError } from "./_usage.ts";
import { LoadTally, round, runLoad } from "./_load.ts";
import { OracleClient } from "../oracle/client.ts";
import {
  connectWhenReady,
  delay,
  type LogLine,
  OracleProcesses,
  waitForLeader,
  withTimeout,
} from "../tests/oracle/_oracle_processes.ts";

const USAGE =
  "usage: deno task bench oracle [--seconds=5] [--soak=0] [--no-sync] [--profile=DIR]";

/** What the benchmark prints as its last stdout line. */
export interface OracleBenchResult {
  /** Always `"oracle"`. */
  bench: "oracle";
  /** Replica processes (3). */
  replicas: number;
  /** Whether replicas synced writes before acknowledging them. */
  sync: boolean;
  /** Appends acknowledged per second, one client, one request in flight. */
  appendsPerSec1: number;
  /** Appends acknowledged per second, 16 clients, one request in flight each. */
  appendsPerSec16: number;
  /** Lock+unlock cycles per second, 16 clients, one path. */
  lockCyclesPerSec1Path: number;
  /** Lock+unlock cycles per second, 16 clients, each on its own path. */
  lockCyclesPerSec16Paths: number;
  /** Append call to subscriber delivery, median, ms. */
  notifyP50Ms: number;
  /** Append call to subscriber delivery, 99th percentile, ms. */
  notifyP99Ms: number;
  /** SIGKILL of the leader to the first acknowledged append issued after it, ms. */
  failoverKillMs: number;
  /** SIGSTOP of the leader to the first acknowledged append issued after it, ms. */
  failoverStopMs: number;
  /** Leader elections (distinct terms) while load ran: should be 0. */
  electionsDuringLoad: number;
  /** Soak length, seconds (only with `--soak`). */
  soakSeconds?: number;
  /** Appends/s during the soak (16 clients appending, 16 locking). */
  soakAppendsPerSec?: number;
  /** Lock cycles/s during the soak. */
  soakLockCyclesPerSec?: number;
  /** Elections during the soak. */
  soakElections?: number;
  /** Operations that failed during the load phases (should be 0). */
  errors: number;
}

function progress(message: string): void {
  console.error(`[bench oracle] ${message}`);
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Counts elections from the replicas' log lines. */
class ElectionCounter {
  readonly terms = new Set<number>();
  /** Terms elected while the counter was armed. */
  readonly during = new Set<number>();
  armed = false;

  onLine = (line: LogLine): void => {
    if (line.json?.event !== "oracle.leader.elected") return;
    const term = Number(line.json.term);
    this.terms.add(term);
    if (this.armed) this.during.add(term);
  };
}

/**
 * Keeps one client appending; SIGKILLs or SIGSTOPs the leader; returns the
 * time from the signal to the first acknowledged append issued after it.
 */
async function measureFailover(
  procs: OracleProcesses,
  probe: OracleClient,
  writer: OracleClient,
  signal: "SIGKILL" | "SIGSTOP",
  timeoutMs: number,
): Promise<{ ms: number; leader: string; electedMs: number }> {
  const leader = await waitForLeader(probe, 10_000, "/bench/probe");
  let signalledWall = 0;
  let signalledAt = Infinity;
  let recoveredAt = Infinity;
  let stop = false;
  const loop = (async () => {
    for (let n = 0; !stop; n++) {
      const startedAt = performance.now();
      try {
        await writer.append("/bench/failover", n);
        if (startedAt > signalledAt && recoveredAt === Infinity) {
          recoveredAt = performance.now();
        }
      } catch {
        await delay(1);
      }
    }
  })();
  try {
    await delay(300);
    signalledAt = performance.now();
    signalledWall = Date.now();
    if (signal === "SIGKILL") {
      // Do not wait for the exit here: the clock already runs.
      procs.signal(leader, "SIGKILL");
    } else {
      procs.signal(leader, "SIGSTOP");
    }
    const deadline = signalledAt + timeoutMs;
    while (recoveredAt === Infinity && performance.now() < deadline) {
      await delay(1);
    }
  } finally {
    stop = true;
    await loop;
  }
  if (recoveredAt === Infinity) {
    throw new Error(
      `no append acknowledged within ${timeoutMs} ms after ${signal} of leader ${leader}\n${procs.tail()}`,
    );
  }
  // When the next leader announced itself (log timestamps, ms resolution).
  const elected = procs.events("oracle.leader.elected").find((e) =>
    e.id !== leader && Date.parse(String(e.ts)) >= signalledWall - 1
  );
  const electedMs = elected === undefined
    ? NaN
    : Date.parse(String(elected.ts)) - signalledWall;
  return { ms: recoveredAt - signalledAt, leader, electedMs };
}

/**
 * Runs the Oracle benchmark.
 *
 * @param args `--seconds` per load phase (default 5), `--soak` seconds of
 * an extra loaded run (default 0: none), `--no-sync` (replicas acknowledge
 * before syncing), `--profile=DIR` (replicas write CPU profiles there).
 * @returns The exit code: 0, 1 on failure, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        seconds: { type: "string", default: "5" },
        soak: { type: "string", default: "0" },
        "no-sync": { type: "boolean", default: false },
        profile: { type: "string" },
      },
    }));
  } catch (error) {
    return usageError("oracle", USAGE, (error as Error).message);
  }
  const seconds = Number(values.seconds);
  const soak = Number(values.soak);
  if (!(seconds > 0 && seconds <= 3600) || !(soak >= 0 && soak <= 86_400)) {
    return usageError(
      "oracle",
      USAGE,
      "--seconds from 0 to 3600 (exclusive of 0), --soak from 0 to 86400",
    );
  }
  const sync = !values["no-sync"];
  const elections = new ElectionCounter();
  const denoFlags = values.profile === undefined
    ? []
    : ["--cpu-prof", `--cpu-prof-dir=${values.profile}`];
  progress(`starting 3 replica processes (sync ${sync})`);
  const procs = await OracleProcesses.start({
    size: 3,
    sync,
    onLine: elections.onLine,
    denoFlags,
  });
  const clients: OracleClient[] = [];
  const onSigint = () => {
    progress("interrupted: stopping the replicas");
    procs.stop().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const ready = await connectWhenReady(
      procs.replicas,
      20_000,
      "/bench/probe",
    );
    clients.push(ready.client);
    const probe = ready.client;
    progress(`leader ${ready.leader}; connecting 18 clients`);
    const connect = async () => {
      const client = await OracleClient.connect({ replicas: procs.replicas });
      clients.push(client);
      return client;
    };
    const workers: OracleClient[] = [];
    for (let i = 0; i < 16; i++) workers.push(await connect());
    const subscriber = await connect();
    const writer = await connect();
    const tally = new LoadTally(progress);

    // Warm up the JIT of every process, then count elections from here.
    await runLoad(16, Math.min(1, seconds), async (w) => {
      await workers[w].append(`/bench/warmup/${w}`, w);
    });
    elections.armed = true;

    const appendsPerSec1 = tally.record(
      "appends, 1 client",
      await runLoad(1, seconds, async () => {
        await workers[0].append("/bench/append/0", { n: 1 });
      }),
    );
    const appendsPerSec16 = tally.record(
      "appends, 16 clients",
      await runLoad(16, seconds, async (w) => {
        await workers[w].append(`/bench/append/${w}`, { n: 1 });
      }),
    );
    const lockCycle = async (client: OracleClient, path: string) => {
      const { token } = await client.lock(path);
      await client.unlock(path, token);
    };
    const lockCyclesPerSec1Path = tally.record(
      "lock cycles, 16 clients, 1 path",
      await runLoad(16, seconds, (w) => lockCycle(workers[w], "/bench/lock")),
    );
    const lockCyclesPerSec16Paths = tally.record(
      "lock cycles, 16 clients, 16 paths",
      await runLoad(
        16,
        seconds,
        (w) => lockCycle(workers[w], `/bench/locks/${w}`),
      ),
    );

    // Notify latency: one append at a time, timed to its delivery.
    const samples: number[] = [];
    let delivered = Promise.withResolvers<void>();
    const sub = subscriber.subscribe("/bench/notify", {}, (events) => {
      const now = performance.now();
      for (const event of events) {
        samples.push(now - (event.data as { t: number }).t);
      }
      delivered.resolve();
    });
    try {
      // The subscription is live once a first event arrives.
      await writer.append("/bench/notify", { t: performance.now() });
      await withTimeout(delivered.promise, 10_000, "first notification");
      samples.length = 0;
      const end = performance.now() + seconds * 1000;
      for (let i = 0; i < 1_000_000 && performance.now() < end; i++) {
        delivered = Promise.withResolvers<void>();
        await writer.append("/bench/notify", { t: performance.now() });
        await withTimeout(delivered.promise, 10_000, "a notification");
      }
    } finally {
      sub.close();
    }
    samples.sort((a, b) => a - b);
    const notifyP50Ms = percentile(samples, 0.5);
    const notifyP99Ms = percentile(samples, 0.99);
    progress(
      `notify latency over ${samples.length} events: p50 ${
        notifyP50Ms.toFixed(3)
      } ms, p99 ${notifyP99Ms.toFixed(3)} ms`,
    );

    let soakResult: Partial<OracleBenchResult> = {};
    if (soak > 0) {
      const before = elections.during.size;
      progress(`soak: ${soak} s of 16 appending and 16 locking clients`);
      const [appends, locks] = await Promise.all([
        runLoad(16, soak, async (w) => {
          await workers[w].append(`/bench/soak/${w}`, { n: 1 });
        }),
        runLoad(
          16,
          soak,
          (w) => lockCycle(workers[w], `/bench/soak-locks/${w % 4}`),
        ),
      ]);
      soakResult = {
        soakSeconds: soak,
        soakAppendsPerSec: round(tally.record("soak appends", appends)),
        soakLockCyclesPerSec: round(tally.record("soak lock cycles", locks)),
        soakElections: elections.during.size - before,
      };
    }
    elections.armed = false;
    const electionsDuringLoad = elections.during.size;
    progress(`elections during load: ${electionsDuringLoad}`);

    const failover = async (signal: "SIGKILL" | "SIGSTOP") => {
      const result = await measureFailover(
        procs,
        probe,
        writer,
        signal,
        15_000,
      );
      progress(
        `failover after ${signal} of leader ${result.leader}: ${
          result.ms.toFixed(1)
        } ms (new leader elected after ${result.electedMs} ms)`,
      );
      return result;
    };
    const killed = await failover("SIGKILL");
    await procs.kill(killed.leader, "SIGKILL");
    await procs.startReplica(killed.leader);
    // Let the restarted replica catch up before the next fault.
    await delay(2_000);
    await waitForLeader(probe, 10_000, "/bench/probe");

    const stopped = await failover("SIGSTOP");
    procs.signal(stopped.leader, "SIGCONT");
    const lostBefore =
      procs.events("oracle.leader.lost", stopped.leader).length;
    await procs.waitFor(
      () =>
        procs.events("oracle.leader.lost", stopped.leader).length > lostBefore,
      10_000,
      `former leader ${stopped.leader} to step down after SIGCONT`,
    );
    await waitForLeader(probe, 10_000, "/bench/probe");
    progress(`former leader ${stopped.leader} rejoined as a follower`);

    const result: OracleBenchResult = {
      bench: "oracle",
      replicas: 3,
      sync,
      appendsPerSec1: round(appendsPerSec1),
      appendsPerSec16: round(appendsPerSec16),
      lockCyclesPerSec1Path: round(lockCyclesPerSec1Path),
      lockCyclesPerSec16Paths: round(lockCyclesPerSec16Paths),
      notifyP50Ms: round(notifyP50Ms, 3),
      notifyP99Ms: round(notifyP99Ms, 3),
      failoverKillMs: round(killed.ms, 1),
      failoverStopMs: round(stopped.ms, 1),
      electionsDuringLoad,
      ...soakResult,
      errors: tally.errors,
    };
    for (const client of clients.splice(0)) await client.close();
    await procs.stop();
    console.log(JSON.stringify(result));
    return 0;
  } catch (error) {
    console.error(`bench oracle: ${(error as Error).stack ?? error}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    for (const client of clients) await client.close().catch(() => {});
    await procs.stop();
  }
}
