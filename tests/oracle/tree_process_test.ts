import assert from "node:assert/strict";
import type { ChannelEvent, Json } from "../../oracle/commands.ts";
import { OracleTreeClient } from "../../oracle/tree_client.ts";
import {
  connectWhenReady,
  delay,
  OracleProcesses,
  withTimeout,
} from "./_oracle_processes.ts";

/** The subtrees, their groups and what the workers use in each. */
const SUBTREES = [
  { prefix: "/a", name: "A", channel: "/a/ch", lock: "/a/lock" },
  { prefix: "/b", name: "B", channel: "/b/ch", lock: "/b/lock" },
] as const;
const WORKERS = 3;
/** Acknowledged operations under `/a` wanted after the kill. */
const AFTER_KILL = 150;

interface Acked {
  path: string;
  seq: number;
  data: Json;
}

/** What the workers saw, checked at the end. */
class Ledger {
  readonly appends: Acked[] = [];
  readonly tokens = new Map<string, number[]>();
  readonly errors: string[] = [];
  readonly holders = new Map<string, number>();
  overlaps = 0;
  acks = 0;
  /** Acknowledged operations under `/a`, the subtree whose leader is killed. */
  acksA = 0;

  ack(path: string): void {
    this.acks++;
    if (path.startsWith("/a/")) this.acksA++;
  }
}

async function appendLoop(
  client: OracleTreeClient,
  worker: number,
  ledger: Ledger,
  running: () => boolean,
): Promise<void> {
  for (let n = 0; running(); n++) {
    const path = SUBTREES[(worker + n) % SUBTREES.length].channel;
    const data = { w: worker, n };
    try {
      const { seq } = await client.append(path, data);
      ledger.appends.push({ path, seq, data });
      ledger.ack(path);
    } catch (error) {
      if (!running()) return;
      ledger.errors.push(
        `append w${worker} n${n}: ${(error as Error).message}`,
      );
      await delay(10);
    }
  }
}

async function lockLoop(
  client: OracleTreeClient,
  worker: number,
  ledger: Ledger,
  running: () => boolean,
): Promise<void> {
  for (let n = 0; running(); n++) {
    const path = SUBTREES[(worker + n) % SUBTREES.length].lock;
    let token: number;
    try {
      ({ token } = await client.lock(path));
    } catch (error) {
      if (!running()) return;
      ledger.errors.push(`lock w${worker}: ${(error as Error).message}`);
      await delay(10);
      continue;
    }
    if (ledger.holders.has(path)) ledger.overlaps++;
    ledger.holders.set(path, worker);
    const tokens = ledger.tokens.get(path) ?? [];
    tokens.push(token);
    ledger.tokens.set(path, tokens);
    ledger.ack(path);
    await delay(0);
    ledger.holders.delete(path);
    try {
      await client.unlock(path, token);
      ledger.ack(path);
    } catch (error) {
      if (!running()) return;
      ledger.errors.push(
        `unlock w${worker} ${path}: ${(error as Error).message}`,
      );
    }
  }
}

async function readAll(
  client: OracleTreeClient,
  path: string,
): Promise<ChannelEvent[]> {
  const events: ChannelEvent[] = [];
  for (let page = 0; page < 1_000; page++) {
    const got = await client.read(path, events.length + 1, 1000);
    events.push(...got.events);
    if (got.events.length < 1000) return events;
  }
  throw new Error(`${path} has more than a million events`);
}

Deno.test("oracle tree processes: a root and two child groups (nine replica processes); clients work across both subtrees while child A's leader is SIGKILLed; nothing acknowledged is lost or delivered twice", async (t) => {
  const groups: OracleProcesses[] = [];
  const clients: { close(): Promise<void> }[] = [];
  let stopLoad = false;
  let loops: Promise<void>[] = [];
  try {
    const root = await OracleProcesses.start({ idPrefix: "r" });
    groups.push(root);
    const parent = Object.entries(root.replicas).map(([id, a]) => `${id}=${a}`)
      .join(",");
    const children = new Map<string, OracleProcesses>();
    for (const { name } of SUBTREES) {
      const group = await OracleProcesses.start({
        idPrefix: name.toLowerCase(),
        args: ["--tree-name", name, "--parent", parent],
      });
      groups.push(group);
      children.set(name, group);
    }
    const operator = await connectWhenReady(
      root.replicas,
      20_000,
      "/ops/ready",
    );
    clients.push(operator.client);
    for (const { prefix, name } of SUBTREES) {
      await operator.client.delegate(
        prefix,
        name,
        children.get(name)!.replicas,
      );
    }
    const ledger = new Ledger();
    const delivered = new Map<string, ChannelEvent[]>();

    await t.step(
      "tree clients follow the delegations; A's leader is killed mid-stream",
      async () => {
        const follower = await OracleTreeClient.connect({
          replicas: root.replicas,
          deadlineMs: 20_000,
        });
        clients.push(follower);
        for (const { channel } of SUBTREES) {
          delivered.set(channel, []);
          follower.subscribe(channel, {
            from: 1,
            onError: (error) =>
              ledger.errors.push(`subscription ${channel}: ${error.code}`),
          }, (events) => delivered.get(channel)!.push(...events));
        }
        const workers: OracleTreeClient[] = [];
        for (let w = 0; w < WORKERS; w++) {
          const client = await OracleTreeClient.connect({
            replicas: root.replicas,
            deadlineMs: 20_000,
          });
          clients.push(client);
          workers.push(client);
        }
        const running = () => !stopLoad;
        loops = workers.flatMap((client, w) => [
          appendLoop(client, w, ledger, running),
          lockLoop(client, w, ledger, running),
        ]);
        const groupA = children.get("A")!;
        await groupA.waitFor(
          () => ledger.acks >= 100,
          20_000,
          `100 acknowledged operations before the kill (errors: ${
            ledger.errors.slice(-3).join("; ")
          })`,
        );
        // A's leader: the one elected in A's highest term so far.
        const elected = groupA.events("oracle.leader.elected");
        assert.ok(elected.length > 0, "group A never elected a leader");
        const leader = String(
          elected.reduce((a, b) => Number(b.term) > Number(a.term) ? b : a).id,
        );
        const acksAtKill = ledger.acksA;
        const status = await groupA.kill(leader, "SIGKILL");
        assert.equal(status?.signal, "SIGKILL");
        await groupA.waitFor(
          () => ledger.acksA >= acksAtKill + AFTER_KILL,
          30_000,
          `${AFTER_KILL} acknowledged operations under /a after killing A's leader ${leader} (${
            ledger.acksA - acksAtKill
          } so far; errors: ${
            ledger.errors.slice(-3).join("; ")
          })\n${groupA.tail()}`,
        );
        const killedTerm = Math.max(
          ...groupA.events("oracle.leader.elected", leader).map((e) =>
            Number(e.term)
          ),
        );
        const successor = groupA.events("oracle.leader.elected").find((e) =>
          e.id !== leader && Number(e.term) > killedTerm
        );
        assert.ok(successor, `no new leader in A after killing ${leader}`);
        stopLoad = true;
        await withTimeout(Promise.all(loops), 20_000, "workers to stop");
        console.log(
          `killed A's leader ${leader} after ${acksAtKill} acks under /a; ${successor.id} took over in term ${successor.term}; ${
            ledger.acksA - acksAtKill
          } acks under /a since`,
        );
      },
    );

    await t.step(
      "every acknowledged append is in its subtree once, the subscriptions saw each once in order, locks were exclusive per subtree",
      async () => {
        assert.deepEqual(ledger.errors, []);
        assert.equal(ledger.overlaps, 0, "two clients held a lock at once");
        for (const { lock } of SUBTREES) {
          const tokens = ledger.tokens.get(lock) ?? [];
          assert.ok(tokens.length > 0, `no grant of ${lock}`);
          for (let i = 1; i < tokens.length; i++) {
            assert.ok(
              tokens[i] > tokens[i - 1],
              `${lock}: ${tokens[i]} after ${tokens[i - 1]}`,
            );
          }
        }
        const reader = await OracleTreeClient.connect({
          replicas: root.replicas,
          deadlineMs: 20_000,
        });
        clients.push(reader);
        for (const { channel } of SUBTREES) {
          const events = await readAll(reader, channel);
          events.forEach((e, i) =>
            assert.equal(e.seq, i + 1, `${channel} gap`)
          );
          for (const { path, seq, data } of ledger.appends) {
            if (path !== channel) continue;
            assert.deepEqual(
              events[seq - 1]?.data,
              data,
              `${path}#${seq} acknowledged, missing`,
            );
          }
          await groups[0].waitFor(
            () => delivered.get(channel)!.length >= events.length,
            20_000,
            `the subscription to ${channel} to catch up`,
          );
          const got = delivered.get(channel)!;
          got.forEach((e, i) =>
            assert.equal(
              e.seq,
              i + 1,
              `${channel}: delivered #${e.seq} at ${i + 1}`,
            )
          );
          assert.deepEqual(got.map((e) => e.data), events.map((e) => e.data));
          // The subtree's data lives in its child group, not in the root.
          const atRoot = await operator.client.read(channel, 1, 1).then(
            () => "served",
            (error) => error.code,
          );
          assert.equal(atRoot, "moved", `${channel} read at the root`);
        }
        console.log(
          `${ledger.appends.length} appends and ${
            [...ledger.tokens.values()].reduce((n, t) => n + t.length, 0)
          } lock grants checked across two subtrees`,
        );
      },
    );
  } finally {
    stopLoad = true;
    await Promise.allSettled(loops);
    for (const client of clients.reverse()) {
      await client.close().catch(() => {});
    }
    for (const group of groups.reverse()) await group.stop();
  }
});
