import assert from "node:assert/strict";
import type { ChannelEvent, Json } from "../../oracle/commands.ts";
import { OracleClient } from "../../oracle/client.ts";
import { startOracleGroup } from "../../oracle/server.ts";
import { TcpTransport } from "../../transport/tcp_transport.ts";
import {
  connectWhenReady,
  delay,
  OracleProcesses,
  waitForLeader,
  withTimeout,
} from "./_oracle_processes.ts";
import { waitUntil } from "../transport/_helpers.ts";

const CHANNELS = ["/test/ch/0", "/test/ch/1", "/test/ch/2", "/test/ch/3"];
const LOCK = "/test/lock";
const WORKERS = 4;
/** Acknowledged operations wanted after the kill. */
const AFTER_KILL = 200;

interface Acked {
  path: string;
  seq: number;
  data: Json;
}

/** What the workers saw, checked at the end. */
class Ledger {
  readonly appends: Acked[] = [];
  readonly tokens: number[] = [];
  readonly errors: string[] = [];
  /** The worker holding the lock, as the test sees it. */
  holder: number | undefined = undefined;
  overlaps = 0;
  acks = 0;
  /** When each acknowledged operation was issued and acknowledged. */
  readonly ackTimes: { issued: number; acked: number }[] = [];

  ack(issued: number): void {
    this.acks++;
    this.ackTimes.push({ issued, acked: performance.now() });
  }
}

/** Reads a whole channel from sequence number 1, page by page (bounded). */
async function readAll(
  client: OracleClient,
  path: string,
): Promise<ChannelEvent[]> {
  const events: ChannelEvent[] = [];
  let from = 1;
  for (let page = 0; page < 1_000; page++) {
    const result = await client.read(path, from, 1000);
    assert.equal(result.first, 1, `${path} was truncated`);
    if (result.events.length === 0) return events;
    events.push(...result.events);
    from = result.next;
  }
  throw new Error(`${path}: more than 1,000 pages`);
}

async function appendLoop(
  client: OracleClient,
  worker: number,
  ledger: Ledger,
  running: () => boolean,
): Promise<void> {
  for (let n = 0; running(); n++) {
    const path = CHANNELS[(worker + n) % CHANNELS.length];
    const data = { w: worker, n, s: client.session };
    const issued = performance.now();
    try {
      const { seq } = await client.append(path, data);
      ledger.appends.push({ path, seq, data });
      ledger.ack(issued);
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
  client: OracleClient,
  worker: number,
  ledger: Ledger,
  running: () => boolean,
): Promise<void> {
  while (running()) {
    let token: number;
    let issued = performance.now();
    try {
      ({ token } = await client.lock(LOCK));
    } catch (error) {
      if (!running()) return;
      ledger.errors.push(`lock w${worker}: ${(error as Error).message}`);
      await delay(10);
      continue;
    }
    if (ledger.holder !== undefined) ledger.overlaps++;
    ledger.holder = worker;
    ledger.tokens.push(token);
    ledger.ack(issued);
    await delay(0);
    // Released here: the next grant can only follow the unlock below.
    ledger.holder = undefined;
    issued = performance.now();
    try {
      await client.unlock(LOCK, token);
      ledger.ack(issued);
    } catch (error) {
      if (!running()) return;
      ledger.errors.push(
        `unlock w${worker} token ${token}: ${(error as Error).message}`,
      );
    }
  }
}

Deno.test("three replica processes: SIGKILL of the leader mid-stream loses nothing acknowledged", async (t) => {
  const procs = await OracleProcesses.start({ size: 3 });
  const clients: OracleClient[] = [];
  let stopLoad = false;
  let loops: Promise<void>[] = [];
  try {
    const ready = await connectWhenReady(procs.replicas, 20_000);
    const checker = ready.client;
    clients.push(checker);
    const ledger = new Ledger();

    await t.step(
      "four clients append and lock while the leader is killed",
      async () => {
        for (let w = 0; w < WORKERS; w++) {
          clients.push(
            await OracleClient.connect({
              replicas: procs.replicas,
              deadlineMs: 20_000,
            }),
          );
        }
        const running = () => !stopLoad;
        loops = clients.slice(1).flatMap((client, w) => [
          appendLoop(client, w, ledger, running),
          lockLoop(client, w, ledger, running),
        ]);
        await delay(1_000);
        assert.ok(ledger.acks > 0, "no operation acknowledged in 1 s");
        const leader = await waitForLeader(checker, 5_000);
        const acksAtKill = ledger.acks;
        const killedAt = performance.now();
        const status = await procs.kill(leader, "SIGKILL");
        assert.equal(status?.signal, "SIGKILL");
        await procs.waitFor(
          () => ledger.acks >= acksAtKill + AFTER_KILL,
          20_000,
          `${AFTER_KILL} acknowledged operations after killing leader ${leader} (${
            ledger.acks - acksAtKill
          } so far; errors: ${
            ledger.errors.slice(-3).join("; ")
          })\n${procs.tail()}`,
        );
        const resumed = Math.min(
          ...ledger.ackTimes.filter((a) => a.issued > killedAt).map((a) =>
            a.acked
          ),
        );
        const killedTerm = Math.max(
          ...procs.events("oracle.leader.elected", leader).map((e) =>
            Number(e.term)
          ),
        );
        const successor = procs.events("oracle.leader.elected").find((e) =>
          e.id !== leader && Number(e.term) > killedTerm
        );
        assert.ok(successor, `no new leader after killing ${leader}`);
        console.log(
          `killed leader ${leader} (term ${killedTerm}) after ${acksAtKill} acks; ` +
            `${successor.id} elected in term ${successor.term}; the first operation ` +
            `issued after the kill was acknowledged ${
              (resumed - killedAt).toFixed(0)
            } ms after it; ${ledger.acks - acksAtKill} acks since`,
        );
        stopLoad = true;
        await withTimeout(Promise.all(loops), 15_000, "workers to stop");
        for (const client of clients.slice(1)) await client.close();
        clients.splice(1);
        await procs.startReplica(leader);
      },
    );

    const contents = new Map<string, ChannelEvent[]>();
    await t.step(
      "every acknowledged append is there, once, at its seq; locks were exclusive",
      async () => {
        assert.deepEqual(ledger.errors, []);
        assert.equal(ledger.overlaps, 0, "two clients held the lock at once");
        assert.ok(ledger.tokens.length > 0, "no lock was granted");
        for (let i = 1; i < ledger.tokens.length; i++) {
          assert.ok(
            ledger.tokens[i] > ledger.tokens[i - 1],
            `token ${ledger.tokens[i]} granted after ${ledger.tokens[i - 1]}`,
          );
        }
        for (const path of CHANNELS) {
          const events = await readAll(checker, path);
          contents.set(path, events);
          events.forEach((e, i) => assert.equal(e.seq, i + 1, `${path} gap`));
          const seen = new Set(events.map((e) => JSON.stringify(e.data)));
          assert.equal(seen.size, events.length, `${path} has a duplicate`);
        }
        for (const { path, seq, data } of ledger.appends) {
          const event = contents.get(path)![seq - 1];
          assert.ok(
            event !== undefined,
            `${path}#${seq} acknowledged, missing`,
          );
          assert.deepEqual(event.data, data, `${path}#${seq}`);
        }
        console.log(
          `${ledger.appends.length} appends and ${ledger.tokens.length} lock grants checked`,
        );
      },
    );

    await t.step(
      "after SIGTERM and restart of all three, every channel reads back the same and tokens keep growing",
      async () => {
        await checker.close();
        clients.length = 0;
        const statuses = await procs.stopReplicas("SIGTERM");
        for (const id of procs.ids) {
          assert.equal(statuses[id]?.code, 0, `replica ${id}: ${procs.tail()}`);
        }
        await Promise.all(procs.ids.map((id) => procs.startReplica(id)));
        const again = await connectWhenReady(procs.replicas, 20_000);
        clients.push(again.client);
        for (const path of CHANNELS) {
          assert.deepEqual(
            await readAll(again.client, path),
            contents.get(path),
            path,
          );
        }
        const { token } = await again.client.lock(LOCK);
        assert.ok(
          token > Math.max(...ledger.tokens),
          `token ${token} after restart, ${Math.max(...ledger.tokens)} before`,
        );
        await again.client.unlock(LOCK, token);
      },
    );
  } finally {
    stopLoad = true;
    for (const client of clients) await client.close();
    await Promise.allSettled(loops);
    await procs.stop();
  }
});

const encoder = new TextEncoder();
const decoder = new TextDecoder();

Deno.test("a client that sends garbage and a replica not in the configuration are refused, counted, and nothing crashes", async () => {
  const group = await startOracleGroup({ size: 3 });
  const transports: TcpTransport[] = [];
  const clients: OracleClient[] = [];
  try {
    const ready = await connectWhenReady(group.replicas, 20_000);
    clients.push(ready.client);
    const leader = ready.leader;
    const server = group.servers.get(leader)!;
    const before = server.status().counters;
    const terms = [...group.servers.values()].map((s) => s.status().term);

    // A raw client on the leader.
    const raw = await TcpTransport.start({
      id: "raw-client",
      peers: { [leader]: group.replicas[leader] },
    });
    transports.push(raw);
    const replies: Record<string, unknown>[] = [];
    raw.setHandler({
      onFrame: (_from, payload) =>
        replies.push(JSON.parse(decoder.decode(payload))),
    });
    const send = (frame: unknown) =>
      assert.ok(
        raw.send(
          leader,
          frame instanceof Uint8Array
            ? frame
            : encoder.encode(JSON.stringify(frame)),
        ),
      );
    const replyTo = async (r: number) => {
      const deadline = performance.now() + 5_000;
      for (;;) {
        const reply = replies.find((f) => f.t === "res" && f.r === r);
        if (reply !== undefined) return reply;
        assert.ok(performance.now() < deadline, `no reply to request ${r}`);
        await delay(10);
      }
    };
    const errorOf = async (
      r: number,
    ) => ((await replyTo(r)).err as { code: string; message: string });

    // Not JSON, JSON that is not an object, objects of no known frame.
    send(Uint8Array.of(0xff, 0xfe, 0x00));
    send(encoder.encode("{not json"));
    send([1, 2, 3]);
    send("req");
    send(null);
    send({ t: "nonsense" });
    send({ no: "type" });
    send({ t: "req" });
    // Requests of the wrong shape, unknown ops, invalid paths.
    const s = "raw-session";
    send({
      t: "req",
      s,
      r: 1,
      a: 0,
      op: { op: "open_session", ttlMs: 10_000 },
    });
    send({ t: "req", s, r: 2, a: 0, op: "append" });
    send({ t: "req", s, r: 3, a: 0, op: { op: "self_destruct" } });
    send({
      t: "req",
      s,
      r: 4,
      a: 0,
      op: { op: "append", path: "rel/x", data: 1 },
    });
    send({
      t: "req",
      s,
      r: 5,
      a: 0,
      op: { op: "append", path: "/a//b", data: 1 },
    });
    send({
      t: "req",
      s,
      r: 6,
      a: 0,
      op: { op: "append", path: "/x", data: 1, extra: 1 },
    });
    send({
      t: "req",
      s,
      r: 7,
      a: 0,
      op: { op: "read", path: "/x", from: 1, limit: -1 },
    });
    send({ t: "sub", id: 1, path: "no-slash", prefix: false, from: 1 });
    // An event larger than the Oracle accepts (64 KiB by default).
    send({
      t: "req",
      s,
      r: 8,
      a: 0,
      op: { op: "append", path: "/test/big", data: "x".repeat(70_000) },
    });

    assert.deepEqual(await replyTo(1), {
      t: "res",
      r: 1,
      ok: { session: s, ttlMs: 10_000 },
    });
    assert.equal((await errorOf(2)).code, "invalid");
    assert.equal((await errorOf(3)).code, "unknown_op");
    assert.match((await errorOf(3)).message, /self_destruct/);
    assert.equal((await errorOf(4)).code, "invalid_path");
    assert.equal((await errorOf(5)).code, "invalid_path");
    assert.equal((await errorOf(6)).code, "invalid");
    assert.match((await errorOf(6)).message, /extra/);
    assert.equal((await errorOf(7)).code, "invalid");
    assert.equal((await errorOf(8)).code, "too_large");
    const subend = replies.find((f) => f.t === "subend" && f.id === 1);
    assert.equal((subend?.err as { code: string }).code, "invalid_path");

    // A peer that claims a replica-looking id outside the configuration.
    const impostor = await TcpTransport.start({
      id: "4",
      peers: Object.fromEntries(
        Object.entries(group.replicas).filter(([id]) => id !== "4"),
      ),
    });
    transports.push(impostor);
    for (const id of Object.keys(group.replicas)) {
      for (let i = 0; i < 3; i++) {
        assert.ok(impostor.send(
          id,
          encoder.encode(JSON.stringify({
            t: "raft",
            m: {
              type: "vote",
              term: 1_000_000 + i,
              pre: false,
              lastIndex: 1_000_000,
              lastTerm: 1_000_000,
            },
          })),
        ));
      }
    }
    await waitUntil(
      () =>
        [...group.servers.values()].every((s) =>
          s.status().counters.foreignRaftFrames >= 3
        ),
      5_000,
      "foreign raft frames to be counted at every replica",
    );

    const after = server.status().counters;
    assert.ok(
      after.malformedFrames - before.malformedFrames >= 5,
      `malformed ${before.malformedFrames} -> ${after.malformedFrames}`,
    );
    assert.ok(
      after.invalidRequests - before.invalidRequests >= 9,
      `invalid ${before.invalidRequests} -> ${after.invalidRequests}`,
    );
    for (const [id, s] of group.servers) {
      const status = s.status();
      assert.equal(status.stopped, false, `replica ${id} stopped`);
      assert.equal(status.failure, null, `replica ${id} failed`);
      assert.ok(status.term < 1_000_000, `replica ${id} took a foreign term`);
    }
    assert.ok(
      [...group.servers.values()].every((s, i) => s.status().term >= terms[i]),
    );

    // A normal client still works.
    const fresh = await OracleClient.connect({ replicas: group.replicas });
    clients.push(fresh);
    const { seq } = await fresh.append("/test/after", "still fine");
    assert.equal(seq, 1);
    const page = await fresh.read("/test/after", 1);
    assert.deepEqual(page.events.map((e) => e.data), ["still fine"]);
  } finally {
    for (const client of clients) await client.close();
    for (const transport of transports) await transport.close();
    await group.stop();
  }
});
