/**
 * Group engine benchmark: member processes (`bench/_group_member.ts`) on
 * loopback TCP, an Oracle group of three in this process.
 *
 * Cases, each one JSON line on stdout:
 * - throughput: 3 and 5 members, one sender or every member sending,
 *   1000- and 100-byte messages, each strategy (fbcast, cbcast, abcast,
 *   gbcast): messages delivered per second per member (the slowest member
 *   and the mean), with the order verified (FIFO per sender everywhere;
 *   for abcast and gbcast, every member's sequence of deliveries hashes
 *   the same);
 * - latency: one member multicasts 16 bytes, the others reply point to
 *   point, timed until every reply is in (p50, p99), each strategy;
 * - failover: time from SIGKILL of a member to the new view at every
 *   survivor;
 * - state transfer: time for a new member to restore a 64 MiB state.
 *
 * Progress goes to stderr.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { usageError } from "./_usage.ts";
import { round } from "./_load.ts";
import { startOracleGroup } from "../oracle/server.ts";
import { delay, freePorts } from "../tests/oracle/_oracle_processes.ts";
import { JsonLinesProcess as Member } from "../tests/_process.ts";
import { until } from "../tests/_until.ts";

const USAGE =
  "usage: deno task bench groups [--seconds=3] [--quick] [--strategies=fbcast,cbcast,abcast,gbcast]";
const STRATEGIES = ["fbcast", "cbcast", "abcast", "gbcast"];
const MEMBER = new URL("./_group_member.ts", import.meta.url).pathname;

/** Prints a case's result: on stderr as progress, and on stdout. */
function report(line: Record<string, unknown>): void {
  const text = JSON.stringify(line);
  console.error(`[bench groups] ${text}`);
  console.log(text);
}

/** Starts `count` members of a fresh group with `args` each. */
function startMembers(
  oracle: Record<string, string>,
  group: string,
  count: number,
  args: (i: number) => string[],
): Member[] {
  const ports = freePorts(count);
  return ports.map((port, i) =>
    new Member(MEMBER, [
      "--label",
      `m${i + 1}`,
      "--listen",
      `127.0.0.1:${port}`,
      "--oracle",
      JSON.stringify(oracle),
      "--group",
      group,
      ...args(i),
    ])
  );
}

/**
 * Runs the group benchmark.
 *
 * @param args `--seconds` per throughput case (default 3), `--quick` (3
 * members and 1000-byte messages only), `--strategies`.
 * @returns The exit code: 0, 1 on failure, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        seconds: { type: "string", default: "3" },
        quick: { type: "boolean", default: false },
        strategies: { type: "string", default: STRATEGIES.join(",") },
      },
    }));
  } catch (error) {
    return usageError("groups", USAGE, (error as Error).message);
  }
  const seconds = Number(values.seconds);
  const strategies = values.strategies.split(",");
  if (
    !(seconds > 0 && seconds <= 600) ||
    strategies.some((s) => !STRATEGIES.includes(s))
  ) {
    return usageError(
      "groups",
      USAGE,
      `--seconds from 0 to 600, --strategies among ${STRATEGIES.join(", ")}`,
    );
  }
  const oracle = await startOracleGroup({ size: 3 });
  let groupNumber = 0;
  const running: Member[] = [];
  try {
    for (const members of values.quick ? [3] : [3, 5]) {
      for (const senders of ["one", "all"] as const) {
        for (const size of values.quick ? [1000] : [1000, 100]) {
          for (const strategy of strategies) {
            const group = `/bench/g${++groupNumber}`;
            const started = startMembers(
              oracle.replicas,
              group,
              members,
              (i) => [
                "--members",
                String(members),
                "--strategy",
                strategy,
                "--size",
                String(size),
                "--seconds",
                String(seconds),
                ...(senders === "all" || i === 0 ? ["--sender"] : []),
              ],
            );
            running.push(...started);
            await Promise.all(started.map((m) => m.done));
            running.length = 0;
            const results = started.map((m) => m.find("result"));
            if (results.some((r) => r === undefined)) {
              throw new Error(`a member printed no result (${group})`);
            }
            const rates = results.map((r) =>
              (r!.delivered as number) / (r!.seconds as number)
            );
            const fifoBroken = results.reduce(
              (n, r) => n + (r!.fifoBroken as number),
              0,
            );
            const firstBreak = results.find((r) => r!.firstBreak)?.firstBreak;
            const hashes = results.map((r) => r!.hashes as number[]);
            const common = Math.min(...hashes.map((h) => h.length));
            const orderAgreed = strategy === "fbcast" ||
              strategy === "cbcast" ||
              hashes.every((h) =>
                h.slice(0, common).join() === hashes[0].slice(0, common).join()
              );
            const line = {
              bench: "groups",
              case: "throughput",
              members,
              senders,
              size,
              strategy,
              msgsPerSecPerMemberMin: round(Math.min(...rates)),
              msgsPerSecPerMemberMean: round(
                rates.reduce((a, b) => a + b, 0) / rates.length,
              ),
              fifoBroken,
              ...(firstBreak === undefined ? {} : { firstBreak }),
              orderAgreed,
              orderCheckedDeliveries: common *
                (results[0]!.hashEvery as number),
            };
            report(line);
            if (fifoBroken > 0 || !orderAgreed) {
              throw new Error(`the order broke in ${JSON.stringify(line)}`);
            }
          }
        }
      }
    }

    // Multicast-and-reply latency: one member multicasts 16 bytes, the
    // others answer point to point; timed until every answer is in. The
    // pinger is the view's second member; for abcast, also its first (the
    // sequencer, whose own abcasts need no ORDER).
    const latencyCases = [0, 1].flatMap((gapMs) =>
      strategies.flatMap((strategy) =>
        strategy === "abcast"
          ? [{ strategy, at: 1, gapMs }, { strategy, at: 0, gapMs }]
          : [{ strategy, at: 1, gapMs }]
      )
    );
    for (const { strategy, at, gapMs } of latencyCases) {
      const group = `/bench/g${++groupNumber}`;
      const started = startMembers(oracle.replicas, group, 3, () => [
        "--members",
        "3",
        "--strategy",
        strategy,
        "--seconds",
        String(seconds),
        "--pingpong",
        String(at),
        "--gap-ms",
        String(gapMs),
      ]);
      running.push(...started);
      await Promise.all(started.map((m) => m.done));
      running.length = 0;
      const result = started.map((m) => m.find("result")).find((r) =>
        r?.rounds !== undefined
      );
      if (result === undefined || !(result.rounds as number > 0)) {
        throw new Error(`no latency measured (${group})`);
      }
      const line = {
        bench: "groups",
        case: "latency",
        members: 3,
        strategy,
        ...(strategy === "abcast"
          ? { pinger: at === 0 ? "sequencer" : "other" }
          : {}),
        gapMs,
        rounds: result.rounds,
        p50Ms: round(result.p50Ms as number, 3),
        p99Ms: round(result.p99Ms as number, 3),
      };
      report(line);
    }

    // Failover: SIGKILL one of three, time until both survivors install
    // the view without it.
    {
      const group = `/bench/g${++groupNumber}`;
      const three = startMembers(oracle.replicas, group, 3, () => [
        "--members",
        "3",
        "--seconds",
        "30",
      ]);
      running.push(...three);
      const views = (m: Member) => m.lines.filter((l) => l.event === "view");
      await until(
        "a view of three",
        () => three.every((m) => views(m).at(-1)?.members === 3),
        30_000,
        10,
      );
      await delay(500);
      const killedAt = Date.now();
      void three[2].kill();
      await until(
        "a view of two",
        () => three.slice(0, 2).every((m) => views(m).at(-1)?.members === 2),
        30_000,
        10,
      );
      const at = Math.max(
        ...three.slice(0, 2).map((m) => views(m).at(-1)!.at as number),
      );
      const line = {
        bench: "groups",
        case: "failover",
        members: 3,
        killToViewMs: at - killedAt,
      };
      report(line);
      await Promise.all(three.map((m) => m.kill()));
      running.length = 0;
    }

    // State transfer: a new member restores a 64 MiB state.
    {
      const group = `/bench/g${++groupNumber}`;
      const first = startMembers(oracle.replicas, group, 1, () => [
        "--members",
        "2",
        "--seconds",
        "60",
        "--state-mib",
        "64",
      ]);
      running.push(...first);
      await until(
        "the first member's view",
        () => first[0].find("view") !== undefined,
        30_000,
        10,
      );
      const joiner = startMembers(oracle.replicas, group, 1, () => [
        "--members",
        "2",
        "--seconds",
        "1",
        "--state-mib",
        "64",
      ]);
      running.push(...joiner);
      await until(
        "the 64 MiB state",
        () => joiner[0].find("restored") !== undefined,
        120_000,
        10,
      );
      const restored = joiner[0].find("restored")!;
      const line = {
        bench: "groups",
        case: "state-transfer",
        bytes: restored.bytes,
        msToRestore: restored.ms,
      };
      report(line);
    }
    return 0;
  } catch (error) {
    console.error(`bench groups: ${(error as Error).stack ?? error}`);
    return 1;
  } finally {
    await Promise.allSettled(running.map((m) => m.kill()));
    await oracle.stop();
  }
}
