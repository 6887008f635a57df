/**
 * Oracle tree benchmark: a root group and two child groups, three replica
 * processes each (`cli.ts oracle`, sync on unless `--no-sync`), the root
 * delegating `/a` to A and `/b` to B; 16 tree clients in this process,
 * one append in flight each.
 *
 * Phases, in order, in one run: appends/s at the root alone, into one
 * child group (`/a`), into both child groups (half the clients each), and
 * into `/a` through plain clients of group A (no tree routing); then the
 * cost of looking up a cached delegation, timed over many lookups.
 *
 * Progress goes to stderr; the last stdout line is one JSON object.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { usageError } from "./_usage.ts";
import { LoadTally, round, runLoad } from "./_load.ts";
import { OracleClient } from "../oracle/client.ts";
import { OracleTreeClient } from "../oracle/tree_client.ts";
import {
  connectWhenReady,
  OracleProcesses,
} from "../tests/oracle/_oracle_processes.ts";

const USAGE =
  "usage: deno task bench oracle-tree [--seconds=5] [--clients=16] [--no-sync]";

/** What the benchmark prints as its last stdout line. */
export interface OracleTreeBenchResult {
  /** Always `"oracle-tree"`. */
  bench: "oracle-tree";
  /** Replica processes per group (3) and groups (3). */
  replicasPerGroup: number;
  /** Whether replicas synced writes before acknowledging them. */
  sync: boolean;
  /** Clients, one append in flight each. */
  clients: number;
  /** Appends/s into paths the root owns. */
  appendsPerSecRoot: number;
  /** Appends/s into one child group (`/a`), through the tree. */
  appendsPerSecOneChild: number;
  /** Appends/s into both child groups, half the clients each, through the tree. */
  appendsPerSecTwoChildren: number;
  /** `appendsPerSecTwoChildren / appendsPerSecOneChild`. */
  twoChildrenRatio: number;
  /** Appends/s into `/a` by plain clients of group A (no tree routing). */
  appendsPerSecDirect: number;
  /** `appendsPerSecOneChild / appendsPerSecDirect`: what routing costs. */
  treeVsDirectRatio: number;
  /** Nanoseconds per lookup of a cached delegation. */
  lookupNs: number;
  /** Lookup time as a share of one append's time at the one-child rate, per client. */
  lookupShareOfAppend: number;
  /** Operations that failed during the load phases (should be 0). */
  errors: number;
}

function progress(message: string): void {
  console.error(`[bench oracle-tree] ${message}`);
}

/**
 * Runs the Oracle tree benchmark.
 *
 * @param args `--seconds` per load phase (default 5), `--clients`
 * (default 16), `--no-sync` (replicas acknowledge before syncing).
 * @returns The exit code: 0, 1 on failure, 2 on a usage error.
 */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        seconds: { type: "string", default: "5" },
        clients: { type: "string", default: "16" },
        "no-sync": { type: "boolean", default: false },
      },
    }));
  } catch (error) {
    return usageError("oracle-tree", USAGE, (error as Error).message);
  }
  const seconds = Number(values.seconds);
  const clientCount = Number(values.clients);
  if (
    !(seconds > 0 && seconds <= 3600) ||
    !(Number.isInteger(clientCount) && clientCount >= 2 && clientCount <= 256)
  ) {
    return usageError(
      "oracle-tree",
      USAGE,
      "--seconds from 0 to 3600 (exclusive of 0), --clients an integer from 2 to 256",
    );
  }
  const sync = !values["no-sync"];
  const groups: OracleProcesses[] = [];
  const clients: { close(): Promise<void> }[] = [];
  const stopAll = async () => {
    for (const client of clients.splice(0).reverse()) {
      await client.close().catch(() => {});
    }
    for (const group of groups.splice(0).reverse()) await group.stop();
  };
  const onSigint = () => {
    progress("interrupted: stopping the replicas");
    stopAll().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    progress(`starting 3 groups of 3 replica processes (sync ${sync})`);
    const root = await OracleProcesses.start({ idPrefix: "r", sync });
    groups.push(root);
    const parent = Object.entries(root.replicas).map(([id, a]) => `${id}=${a}`)
      .join(",");
    const children: Record<string, OracleProcesses> = {};
    for (const name of ["A", "B"]) {
      const group = await OracleProcesses.start({
        idPrefix: name.toLowerCase(),
        sync,
        args: ["--tree-name", name, "--parent", parent],
      });
      groups.push(group);
      children[name] = group;
    }
    const operator = await connectWhenReady(
      root.replicas,
      20_000,
      "/ops/ready",
    );
    clients.push(operator.client);
    await operator.client.delegate("/a", "A", children.A.replicas);
    await operator.client.delegate("/b", "B", children.B.replicas);
    progress(
      `delegated /a to A and /b to B; connecting ${clientCount} tree clients`,
    );
    const tree: OracleTreeClient[] = [];
    for (let i = 0; i < clientCount; i++) {
      const client = await OracleTreeClient.connect({
        replicas: root.replicas,
        deadlineMs: 30_000,
      });
      clients.push(client);
      tree.push(client);
    }
    const tally = new LoadTally(progress);
    // Warm up every process and every client's cache (the first append
    // under each prefix is redirected; a child adopts its prefix once).
    await runLoad(clientCount, Math.min(2, seconds), async (w) => {
      await tree[w].append(`/a/warmup/${w}`, w);
      await tree[w].append(`/b/warmup/${w}`, w);
      await tree[w].append(`/r/warmup/${w}`, w);
    });

    const appendsPerSecRoot = tally.record(
      "appends at the root",
      await runLoad(clientCount, seconds, async (w) => {
        await tree[w].append(`/r/bench/${w}`, { n: 1 });
      }),
    );
    const appendsPerSecOneChild = tally.record(
      "appends into one child group",
      await runLoad(clientCount, seconds, async (w) => {
        await tree[w].append(`/a/bench/${w}`, { n: 1 });
      }),
    );
    const appendsPerSecTwoChildren = tally.record(
      "appends into two child groups",
      await runLoad(clientCount, seconds, async (w) => {
        await tree[w].append(`/${w % 2 === 0 ? "a" : "b"}/bench/${w}`, {
          n: 1,
        });
      }),
    );
    // Plain clients of group A; each session is opened at the root first,
    // the home of every session of the tree (A ends sessions the root
    // does not have).
    const direct: OracleClient[] = [];
    for (let i = 0; i < clientCount; i++) {
      const home = await OracleClient.connect({
        replicas: root.replicas,
        deadlineMs: 30_000,
      });
      clients.push(home);
      const client = await OracleClient.connect({
        replicas: children.A.replicas,
        deadlineMs: 30_000,
        id: home.session,
      });
      clients.push(client);
      direct.push(client);
    }
    await runLoad(clientCount, Math.min(1, seconds), async (w) => {
      await direct[w].append(`/a/warmup/direct/${w}`, w);
    });
    const appendsPerSecDirect = tally.record(
      "appends into group A by its own clients",
      await runLoad(clientCount, seconds, async (w) => {
        await direct[w].append(`/a/direct/${w}`, { n: 1 });
      }),
    );

    // A cached delegation's lookup, timed over many calls.
    const lookups = 1_000_000;
    let found = 0;
    const started = performance.now();
    for (let i = 0; i < lookups; i++) {
      if (tree[0].owner(i % 2 === 0 ? "/a/bench/x" : "/b/bench/y") !== "") {
        found++;
      }
    }
    const lookupNs = (performance.now() - started) * 1e6 / lookups;
    if (found !== lookups) {
      throw new Error(
        `a cached lookup found no owner (${found} of ${lookups})`,
      );
    }
    const appendNs = 1e9 * clientCount / appendsPerSecOneChild;
    progress(
      `cached delegation lookup: ${lookupNs.toFixed(1)} ns (${
        (100 * lookupNs / appendNs).toFixed(4)
      }% of an append's ${(appendNs / 1e6).toFixed(2)} ms)`,
    );

    const result: OracleTreeBenchResult = {
      bench: "oracle-tree",
      replicasPerGroup: 3,
      sync,
      clients: clientCount,
      appendsPerSecRoot: round(appendsPerSecRoot),
      appendsPerSecOneChild: round(appendsPerSecOneChild),
      appendsPerSecTwoChildren: round(appendsPerSecTwoChildren),
      twoChildrenRatio: round(
        appendsPerSecTwoChildren / appendsPerSecOneChild,
        2,
      ),
      appendsPerSecDirect: round(appendsPerSecDirect),
      treeVsDirectRatio: round(appendsPerSecOneChild / appendsPerSecDirect, 2),
      lookupNs: round(lookupNs, 1),
      lookupShareOfAppend: round(lookupNs / appendNs, 7),
      errors: tally.errors,
    };
    await stopAll();
    console.log(JSON.stringify(result));
    return 0;
  } catch (error) {
    console.error(`bench oracle-tree: ${(error as Error).stack ?? error}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    await stopAll();
  }
}
