import assert from "node:assert/strict";
import {
  TcpTransport,
  type TcpTransportOptions,
} from "../../transport/tcp_transport.ts";
import {
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  FRAME_HEADER_SIZE,
  FRAME_KIND_DATA,
  FrameDecoder,
  writeFrameHeader,
} from "../../transport/frame.ts";
import {
  decodeAccept,
  decodeReject,
  encodeHello,
  FRAME_KIND_ACCEPT,
  FRAME_KIND_HELLO,
  FRAME_KIND_PROOF,
  FRAME_KIND_REJECT,
  handshakeProof,
  newNonce,
  peerIdBytes,
} from "../../transport/_tcp_handshake.ts";
import { secretKey } from "../../transport/_auth.ts";
import type { PeerId, TransportStats } from "../../transport/transport.ts";
import { delay, Recorder, waitUntil } from "./_helpers.ts";

// ------------------------------------------------------------------ helpers

const LOOPBACK = "127.0.0.1";

function freePort(): number {
  const listener = Deno.listen({ hostname: LOOPBACK, port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Starts transports and closes them all at the end of a test. */
class Cluster {
  readonly #transports: TcpTransport[] = [];

  async start(options: TcpTransportOptions): Promise<TcpTransport> {
    const t = await TcpTransport.start({
      handshakeTimeoutMs: 1_000,
      reconnectMinMs: 10,
      reconnectMaxMs: 100,
      ...options,
    });
    this.#transports.push(t);
    return t;
  }

  /** Starts one that listens on a free port and accepts any peer id. */
  startListener(
    id: string,
    options: Partial<TcpTransportOptions> = {},
  ): Promise<TcpTransport> {
    return this.start({
      id,
      listen: { port: 0 },
      acceptUnknownPeers: true,
      ...options,
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.#transports.map((t) => t.close()));
  }
}

/**
 * Declares a test whose transports start from one {@linkcode Cluster},
 * all closed when the test ends, however it ends.
 */
function clusterTest(
  name: string,
  fn: (cluster: Cluster, t: Deno.TestContext) => Promise<void>,
): void {
  Deno.test(name, async (t) => {
    const cluster = new Cluster();
    try {
      await fn(cluster, t);
    } finally {
      await cluster.close();
    }
  });
}

function address(t: TcpTransport): string {
  return `${LOOPBACK}:${t.listenAddress!.port}`;
}

/** Child processes running `_tcp_peer_process.ts`, killed by PID and awaited. */
class PeerProcesses {
  readonly #script = new URL("./_tcp_peer_process.ts", import.meta.url).href;
  readonly #children: {
    child: Deno.ChildProcess;
    drained: Promise<void>;
  }[] = [];

  /** Starts one and waits until it prints `ready`. */
  async spawn(args: string[]): Promise<Deno.ChildProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        `--allow-net=${LOOPBACK}`,
        this.#script,
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const ready = Promise.withResolvers<void>();
    const drained = (async () => {
      let text = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        text += chunk;
        if (text.includes("ready")) ready.resolve();
      }
      ready.reject(new Error(`peer process exited before ready: ${text}`));
    })();
    this.#children.push({ child, drained });
    const timer = setTimeout(
      () => ready.reject(new Error("peer process not ready in 10 s")),
      10_000,
    );
    try {
      await ready.promise;
    } finally {
      clearTimeout(timer);
    }
    return child;
  }

  /** Sends SIGKILL to the process by PID and waits for its exit. */
  async kill(child: Deno.ChildProcess): Promise<Deno.CommandStatus> {
    try {
      Deno.kill(child.pid, "SIGKILL");
    } catch { /* already gone */ }
    return await child.status;
  }

  async killAll(): Promise<void> {
    for (const { child, drained } of this.#children) {
      await this.kill(child);
      await drained.catch(() => {});
    }
  }
}

/** Deterministic payload of frame `i` with length `size`. */
function payloadFor(i: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (i * 2654435761) >>> 0;
  for (let j = 0; j < size; j++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out[j] = x & 0xff;
  }
  return out;
}

/** Counts what changed between two stats snapshots (only non-zero deltas). */
function statsDelta(
  before: TransportStats,
  after: TransportStats,
  keys: (keyof TransportStats)[],
): Partial<TransportStats> {
  const out: Partial<TransportStats> = {};
  for (const key of keys) out[key] = after[key] - before[key];
  return out;
}

/** Reads from a raw socket until the other side closes it; false on timeout. */
async function closedByPeer(
  conn: Deno.TcpConn,
  timeoutMs: number,
): Promise<boolean> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  const buf = new Uint8Array(64 * 1024);
  try {
    while ((await conn.read(buf)) !== null) { /* discard */ }
  } catch (error) {
    if (timedOut) return false;
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) return false;
  try {
    conn.close();
  } catch { /* closed */ }
  return true;
}

/** Writes without failing if the peer already closed the connection. */
async function writeIgnoringReset(
  conn: Deno.TcpConn,
  bytes: Uint8Array,
): Promise<boolean> {
  try {
    let written = 0;
    while (written < bytes.length) {
      written += await conn.write(bytes.subarray(written));
    }
    return true;
  } catch (error) {
    if (
      error instanceof Deno.errors.ConnectionReset ||
      error instanceof Deno.errors.BrokenPipe
    ) {
      return false;
    }
    throw error;
  }
}

/** Reads frames from a raw socket until `want` returns true for one. */
async function readFrame(
  conn: Deno.TcpConn,
  decoder: FrameDecoder,
  timeoutMs: number,
): Promise<{ kind: number; payload: Uint8Array } | null> {
  const buf = new Uint8Array(4096);
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) return null;
      let frame: { kind: number; payload: Uint8Array } | undefined;
      decoder.push(buf.subarray(0, n), (kind, payload) => {
        frame ??= { kind, payload: payload.slice() };
      });
      if (frame !== undefined) return frame;
    }
  } catch (error) {
    if (error instanceof Deno.errors.ConnectionReset) return null;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Plays the dialer side of the handshake over a raw socket with the given
 * key (possibly wrong). Returns the socket and the acceptor's answer.
 */
async function rawDial(
  port: number,
  from: string,
  to: string,
  key?: Uint8Array,
): Promise<{ conn: Deno.TcpConn; answer: number | null }> {
  const conn = await Deno.connect({ hostname: LOOPBACK, port });
  const decoder = new FrameDecoder();
  const nonceA = newNonce();
  const fromBytes = peerIdBytes(from);
  const toBytes = peerIdBytes(to);
  await conn.write(
    encodeFrame(FRAME_KIND_HELLO, encodeHello(nonceA, fromBytes, toBytes)),
  );
  const frame = await readFrame(conn, decoder, 2_000);
  if (frame === null || frame.kind !== FRAME_KIND_ACCEPT) {
    return { conn, answer: frame?.kind ?? null };
  }
  const accept = decodeAccept(frame.payload)!;
  const proof = handshakeProof(
    key,
    "dial",
    nonceA,
    accept.nonce,
    fromBytes,
    toBytes,
  );
  await conn.write(encodeFrame(FRAME_KIND_PROOF, proof));
  return { conn, answer: FRAME_KIND_ACCEPT };
}

/** Sends `count` frames, waiting for onDrain whenever the queue is full. */
async function sendAll(
  t: TcpTransport,
  recorder: Recorder,
  to: PeerId,
  count: number,
  payload: (i: number) => Uint8Array,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const p = payload(i);
    while (!t.send(to, p)) {
      const drains = recorder.drains.length;
      await waitUntil(() => recorder.drains.length > drains, 10_000, "onDrain");
    }
  }
}

/** Sends to a peer that is gone: accepted by send, counted as dropped. */
function assertUndeliverableDropped(server: TcpTransport, peer: PeerId): void {
  const before = server.stats().undeliverableDropped;
  assert.ok(server.send(peer, Uint8Array.of(1)), "dropped, not refused");
  assert.equal(server.stats().undeliverableDropped, before + 1);
}

/** A frame header with chosen magic and version. */
function header(
  magic0: number,
  magic1: number,
  version: number,
  kind: number,
  length: number,
) {
  const h = new Uint8Array(FRAME_HEADER_SIZE);
  writeFrameHeader(h, 0, kind, length);
  h[0] = magic0;
  h[1] = magic1;
  h[2] = version;
  return h;
}

// -------------------------------------------------------------------- tests

clusterTest(
  "tcp transport delivers 20,000 mixed-size frames in order, byte for byte",
  async (cluster, t) => {
    await t.step(
      "with maxFrameSize 256 KiB, including frames of exactly the limit",
      async () => {
        const MAX = 256 * 1024;
        const COUNT = 20_000;
        const sizeOf = (i: number): number => {
          if (i % 2000 === 1999) return MAX; // 10 frames at the limit
          if (i % 997 === 0) return 64 * 1024 - FRAME_HEADER_SIZE + (i % 3) - 1; // chunk boundary
          if (i % 5 === 0) return i % 17; // tiny, including empty
          return (i * 7919) % 3000;
        };
        const receiver = await cluster.startListener("r", {
          maxFrameSize: MAX,
        });
        const sender = await cluster.start({
          id: "s",
          peers: { r: address(receiver) },
          maxFrameSize: MAX,
          maxQueueBytes: 1024 * 1024,
        });
        let received = 0;
        const problems: string[] = [];
        receiver.setHandler({
          onFrame(from, payload) {
            const i = received++;
            if (problems.length > 0) return;
            const expected = payloadFor(i, sizeOf(i));
            if (from !== "s") problems.push(`frame ${i} from ${from}`);
            else if (payload.length !== expected.length) {
              problems.push(
                `frame ${i}: ${payload.length} bytes, expected ${expected.length}`,
              );
            } else {
              for (let j = 0; j < expected.length; j++) {
                if (payload[j] !== expected[j]) {
                  problems.push(`frame ${i}: byte ${j} differs`);
                  break;
                }
              }
            }
          },
        });
        const recorder = new Recorder();
        recorder.keep = false;
        recorder.attach(sender);
        await sendAll(
          sender,
          recorder,
          "r",
          COUNT,
          (i) => payloadFor(i, sizeOf(i)),
        );
        await waitUntil(() => received >= COUNT, 15_000, "all frames");
        await delay(20);
        assert.deepEqual(problems, []);
        assert.equal(received, COUNT);
        assert.equal(sender.stats().framesSent, COUNT);
        assert.equal(receiver.stats().framesReceived, COUNT);
        assert.ok(
          sender.stats().backpressureRefusals > 0,
          "the 1 MiB queue bound was hit and waited out",
        );
      },
    );

    await t.step(
      "a frame of exactly the default limit (1 MiB) arrives intact",
      async () => {
        const receiver = await cluster.startListener("r2");
        const sender = await cluster.start({
          id: "s2",
          peers: { r2: address(receiver) },
        });
        const got = new Recorder().attach(receiver);
        const big = payloadFor(42, DEFAULT_MAX_FRAME_SIZE);
        assert.equal(sender.maxFrameSize, DEFAULT_MAX_FRAME_SIZE);
        assert.ok(sender.send("r2", big));
        assert.ok(sender.send("r2", Uint8Array.of(1, 2, 3)));
        await waitUntil(() => got.frames.length === 2, 5_000, "two frames");
        assert.deepEqual(got.frames[0].payload, big);
        assert.deepEqual(got.frames[1].payload, Uint8Array.of(1, 2, 3));
      },
    );
  },
);

Deno.test("tcp transport reconnects after the peer process is killed and restarted", async (t) => {
  const port = freePort();
  const processes = new PeerProcesses();
  const cluster = new Cluster();
  const spawnPeer = () =>
    processes.spawn(["--mode=echo", "--id=echo", `--port=${port}`]);
  const kill = (child: Deno.ChildProcess) => processes.kill(child);

  try {
    let child = await spawnPeer();
    const node = await cluster.start({
      id: "parent",
      peers: { echo: `${LOOPBACK}:${port}` },
      reconnectMinMs: 20,
      reconnectMaxMs: 200,
    });
    const rec = new Recorder().attach(node);
    const seqOf = (p: Uint8Array) => new DataView(p.buffer).getUint32(0);
    const frame = (seq: number) => {
      const p = payloadFor(seq, 100);
      new DataView(p.buffer).setUint32(0, seq);
      return p;
    };

    /** Sends frames `from` to `to - 1`, each accepted by send. */
    const sendSeqs = (from: number, to: number) => {
      for (let seq = from; seq < to; seq++) {
        assert.ok(node.send("echo", frame(seq)));
      }
    };
    /** Waits for `count` echoes and checks they are frames 0 to count - 1. */
    const expectEchoes = async (count: number) => {
      await waitUntil(
        () => rec.frames.length === count,
        5_000,
        `${count} echoes`,
      );
      assert.deepEqual(rec.frames.map((f) => seqOf(f.payload)), [
        ...Array(count).keys(),
      ]);
    };

    await t.step("frames are echoed by the peer process", async () => {
      await waitUntil(() => rec.ups.length === 1, 5_000, "onPeerUp");
      sendSeqs(0, 200);
      await expectEchoes(200);
    });

    await t.step(
      "SIGKILL of the peer process is observed as onPeerDown",
      async () => {
        const status = await kill(child);
        assert.equal(status.signal, "SIGKILL");
        await waitUntil(() => rec.downs.length === 1, 5_000, "onPeerDown");
        assert.deepEqual(rec.downs, ["echo"]);
      },
    );

    await t.step("frames sent while the peer is down are queued", () => {
      sendSeqs(200, 300);
      assert.ok(node.queuedBytes("echo") >= 100 * (FRAME_HEADER_SIZE + 100));
    });

    await t.step(
      "a restarted peer on the same port is reconnected and frames flow again",
      async () => {
        child = await spawnPeer();
        await waitUntil(() => rec.ups.length === 2, 5_000, "second onPeerUp");
        sendSeqs(300, 400);
        await expectEchoes(400);
        assert.equal(node.stats().connectionsOpened, 2);
        assert.equal(node.stats().connectionsClosed, 1);
      },
    );
  } finally {
    await cluster.close();
    await processes.killAll();
  }
});

clusterTest(
  "tcp transport applies backpressure and signals onDrain",
  async (cluster, t) => {
    await t.step(
      "to a peer that is not up: refuses at the bound, drains after it comes up",
      async () => {
        const BOUND = 256 * 1024;
        const FRAME = 1000;
        const port = freePort();
        const a = await cluster.start({
          id: "a",
          peers: { b: `${LOOPBACK}:${port}` },
          maxFrameSize: 64 * 1024,
          maxQueueBytes: BOUND,
        });
        const recA = new Recorder().attach(a);
        let accepted = 0;
        let refused = 0;
        for (let i = 0; i < 2 * BOUND / FRAME; i++) {
          if (a.send("b", payloadFor(accepted, FRAME))) accepted++;
          else refused++;
          assert.ok(a.queuedBytes("b") <= BOUND, "queue within its bound");
        }
        assert.equal(accepted, Math.floor(BOUND / (FRAME + FRAME_HEADER_SIZE)));
        assert.equal(a.stats().backpressureRefusals, refused);
        assert.equal(a.stats().framesSent, accepted);
        assert.deepEqual(recA.drains, []);

        const b = await cluster.startListener("b", { listen: { port } });
        const recB = new Recorder().attach(b);
        await waitUntil(() => recA.drains.length === 1, 5_000, "onDrain");
        assert.deepEqual(recA.drains, ["b"]);
        await waitUntil(
          () => recB.frames.length === accepted,
          5_000,
          "all frames",
        );
        recB.frames.forEach((f, i) =>
          assert.deepEqual(f.payload, payloadFor(i, FRAME))
        );
        assert.equal(a.queuedBytes("b"), 0);
        assert.equal(a.stats().backpressureRefusals, refused);
      },
    );

    await t.step(
      "to a connected peer that stops reading: bound holds, drains when it reads",
      async () => {
        const BOUND = 512 * 1024;
        const a = await cluster.startListener("a2", {
          maxFrameSize: 64 * 1024,
          maxQueueBytes: BOUND,
        });
        const rec = new Recorder().attach(a);
        const { conn, answer } = await rawDial(
          a.listenAddress!.port,
          "slow",
          "a2",
        );
        try {
          assert.equal(answer, FRAME_KIND_ACCEPT);
          await waitUntil(
            () => rec.ups.includes("slow"),
            2_000,
            "slow peer up",
          );
          // Fill the kernel buffers and then the queue; the raw peer reads
          // nothing. Stop once the queue is full and nothing moves any more.
          const frame = new Uint8Array(16 * 1024);
          let accepted = 0;
          let refusals = 0;
          const deadline = performance.now() + 8_000;
          while (true) {
            assert.ok(
              performance.now() < deadline,
              "the queue never got stuck",
            );
            while (a.send("slow", frame)) {
              accepted++;
              assert.ok(a.queuedBytes("slow") <= BOUND);
            }
            refusals++;
            const queued = a.queuedBytes("slow");
            assert.ok(queued > BOUND - frame.length - FRAME_HEADER_SIZE);
            await delay(50);
            if (a.queuedBytes("slow") === queued) break;
          }
          assert.equal(a.stats().backpressureRefusals, refusals);
          assert.equal(a.stats().framesSent, accepted);
          const drainsBefore = rec.drains.length;
          await delay(50);
          assert.equal(rec.drains.length, drainsBefore, "no drain while stuck");
          // Now the slow peer reads everything; the queue drains.
          const decoder = new FrameDecoder(64 * 1024);
          const buf = new Uint8Array(256 * 1024);
          let frames = 0;
          while (frames < accepted) {
            const n = await conn.read(buf);
            assert.ok(n !== null, "connection stayed open");
            decoder.push(buf.subarray(0, n), (kind, payload) => {
              assert.equal(kind, FRAME_KIND_DATA);
              assert.equal(payload.length, frame.length);
              frames++;
            });
          }
          assert.equal(frames, accepted);
          await waitUntil(
            () => a.queuedBytes("slow") === 0,
            2_000,
            "empty queue",
          );
          assert.equal(rec.drains.length, drainsBefore + 1, "one onDrain");
          assert.equal(rec.drains.at(-1), "slow");
        } finally {
          conn.close();
        }
      },
    );
  },
);

Deno.test("tcp transport drops garbage from raw sockets while a legitimate peer keeps exchanging frames", async (t) => {
  const cluster = new Cluster();
  const processes = new PeerProcesses();
  let pinging = true;
  let pingLoop: Promise<void> = Promise.resolve();
  try {
    const node = await cluster.startListener("node", {
      handshakeTimeoutMs: 300,
    });
    let flooded = 0;
    node.setHandler({
      onFrame: (from, payload) => {
        if (from === "flooder") flooded++;
        else node.send(from, payload);
      },
    });
    const port = node.listenAddress!.port;
    const legit = await cluster.start({
      id: "legit",
      peers: { node: address(node) },
    });
    let roundTrips = 0;
    const echoed = { resolve: () => {} };
    legit.setHandler({
      onFrame: () => {
        roundTrips++;
        echoed.resolve();
      },
    });
    pingLoop = (async () => {
      const ping = new Uint8Array(64);
      while (pinging) {
        const got = new Promise<void>((resolve) => echoed.resolve = resolve);
        legit.send("node", ping);
        await Promise.race([got, delay(200)]);
      }
    })();
    await waitUntil(() => roundTrips > 10, 3_000, "legitimate ping-pong");

    const KEYS: (keyof TransportStats)[] = [
      "malformedDropped",
      "misbehavingDisconnects",
    ];
    const expectDropped = async (
      what: string,
      bytes: Uint8Array | undefined,
      expected: Partial<TransportStats>,
      closeAfterWrite = false,
    ): Promise<void> => {
      const before = node.stats();
      const tripsBefore = roundTrips;
      const conn = await Deno.connect({ hostname: LOOPBACK, port });
      if (bytes !== undefined) await writeIgnoringReset(conn, bytes);
      if (closeAfterWrite) {
        conn.close();
      } else {
        assert.ok(
          await closedByPeer(conn, 3_000),
          `${what}: connection closed by the node`,
        );
      }
      await waitUntil(
        () => KEYS.some((k) => node.stats()[k] !== before[k]),
        3_000,
        `${what}: a counter to move`,
      );
      assert.deepEqual(statsDelta(before, node.stats(), KEYS), {
        malformedDropped: 0,
        misbehavingDisconnects: 0,
        ...expected,
      }, what);
      await waitUntil(
        () => roundTrips > tripsBefore + 3,
        2_000,
        `${what}: ping-pong continues`,
      );
    };

    const MALFORMED = { malformedDropped: 1 };
    const MISBEHAVING = { misbehavingDisconnects: 1 };
    /** A HELLO header announcing `length` bytes, then `sent` zero bytes. */
    const cutHello = (sent: number, length: number) => {
      const bytes = new Uint8Array(FRAME_HEADER_SIZE + sent);
      writeFrameHeader(bytes, 0, FRAME_KIND_HELLO, length);
      return bytes;
    };
    const drops: {
      step: string;
      what: string;
      bytes: () => Uint8Array | undefined;
      expected: Partial<TransportStats>;
      closeAfterWrite?: boolean;
      /** The drop must take at least this long (the handshake timeout). */
      notBeforeMs?: number;
    }[] = [{
      step: "random bytes",
      what: "random bytes",
      bytes: () => {
        const junk = crypto.getRandomValues(new Uint8Array(4096));
        junk[0] = 0x00; // cannot be the magic
        return junk;
      },
      expected: MALFORMED,
    }, {
      step: "wrong magic",
      what: "wrong magic",
      bytes: () => header(0x48, 0x54, 1, FRAME_KIND_HELLO, 4),
      expected: MALFORMED,
    }, {
      step: "wrong version",
      what: "wrong version",
      bytes: () => header(0x43, 0x4f, 9, FRAME_KIND_HELLO, 4),
      expected: MALFORMED,
    }, {
      step: "absurd length header",
      what: "absurd length",
      bytes: () => header(0x43, 0x4f, 1, FRAME_KIND_HELLO, 0xfffffff0),
      expected: MALFORMED,
    }, {
      step: "truncated frame, then close",
      what: "truncated",
      bytes: () => cutHello(20, 100),
      expected: MALFORMED,
      closeAfterWrite: true,
    }, {
      step: "a connection that sends nothing times out",
      what: "silent",
      bytes: () => undefined,
      expected: MISBEHAVING,
      notBeforeMs: 250,
    }, {
      step: "a flood before the handshake",
      what: "pre-handshake flood",
      bytes: () => cutHello(256 * 1024, 1_000_000),
      expected: MISBEHAVING,
    }, {
      step: "a data frame before the handshake",
      what: "early data",
      bytes: () => encodeFrame(FRAME_KIND_DATA, new Uint8Array(10)),
      expected: MISBEHAVING,
    }, {
      step: "a malformed HELLO",
      what: "bad hello",
      bytes: () => encodeFrame(FRAME_KIND_HELLO, new Uint8Array(5)),
      expected: MALFORMED,
    }];
    for (const drop of drops) {
      await t.step(drop.step, async () => {
        const started = performance.now();
        await expectDropped(
          drop.what,
          drop.bytes(),
          drop.expected,
          drop.closeAfterWrite,
        );
        if (drop.notBeforeMs !== undefined) {
          assert.ok(
            performance.now() - started >= drop.notBeforeMs,
            "not before the handshake timeout",
          );
        }
      });
    }
    await t.step("garbage after an authenticated handshake", async () => {
      const before = node.stats();
      const { conn, answer } = await rawDial(port, "mallory", "node");
      assert.equal(answer, FRAME_KIND_ACCEPT);
      await writeIgnoringReset(conn, header(0x43, 0x4f, 7, 0, 0));
      assert.ok(await closedByPeer(conn, 3_000));
      await waitUntil(
        () => node.stats().malformedDropped === before.malformedDropped + 1,
        2_000,
        "malformed count",
      );
    });
    await t.step(
      "a flooding authenticated peer does not starve the others",
      async () => {
        // The flooder is another process, as a hostile peer would be.
        const flooder = await processes.spawn([
          "--mode=flood",
          "--id=flooder",
          `--target=${address(node)}`,
          "--to=node",
        ]);
        await waitUntil(() => flooded > 100, 5_000, "the flood to arrive");
        const tripsBefore = roundTrips;
        const floodBefore = flooded;
        await delay(1_000);
        const trips = roundTrips - tripsBefore;
        const floodFrames = flooded - floodBefore;
        await processes.kill(flooder);
        assert.ok(
          floodFrames > 2_000,
          `the flood went on at over 120 MB/s (${floodFrames} frames of 60 KiB in 1 s)`,
        );
        assert.ok(
          trips >= 200,
          `ping-pong kept going during the flood: ${trips} round trips in 1 s`,
        );
      },
    );
    assert.equal(
      legit.stats().connectionsOpened,
      1,
      "the legitimate connection never broke",
    );
    assert.equal(legit.stats().connectionsClosed, 0);
  } finally {
    pinging = false;
    await pingLoop;
    await processes.killAll();
    await cluster.close();
  }
});

clusterTest(
  "tcp transport refuses peers without the right cluster secret or with unknown ids",
  async (cluster, t) => {
    const server = await cluster.startListener("server", { secret: "right" });
    const serverRec = new Recorder().attach(server);
    const port = server.listenAddress!.port;

    const refused = async (
      dialerSecret: string | undefined,
      id: string,
      acceptor: TcpTransport,
      acceptorRec: Recorder,
    ): Promise<void> => {
      const before = acceptor.stats().authFailures;
      const dialer = await cluster.start({
        id,
        peers: { [acceptor.id]: address(acceptor) },
        secret: dialerSecret,
      });
      const rec = new Recorder().attach(dialer);
      dialer.send(acceptor.id, new Uint8Array(8));
      await waitUntil(
        () => dialer.stats().authFailures >= 2,
        3_000,
        `${id}: repeated auth failures`,
      );
      await waitUntil(
        () => acceptor.stats().authFailures > before,
        3_000,
        `${id}: acceptor counts it`,
      );
      assert.deepEqual(rec.ups, []);
      assert.ok(!acceptorRec.ups.includes(id));
      assert.ok(
        !acceptorRec.frames.some((f) => f.from === id),
        "no frame delivered",
      );
      assert.equal(dialer.stats().connectionsOpened, 0);
      await dialer.close();
    };

    await t.step(
      "a dialer with a wrong secret is refused by both sides",
      async () => {
        await refused("wrong", "wrong-secret", server, serverRec);
      },
    );
    await t.step(
      "a dialer without a secret is refused by a server with one",
      async () => {
        await refused(undefined, "no-secret", server, serverRec);
      },
    );
    await t.step(
      "a dialer with a secret refuses a server without one",
      async () => {
        const open = await cluster.startListener("open");
        const openRec = new Recorder().attach(open);
        await refused("right", "secretive", open, openRec);
      },
    );
    await t.step(
      "the acceptor checks the dialer's proof (raw dialer with a wrong key)",
      async () => {
        const before = server.stats();
        const { conn, answer } = await rawDial(
          port,
          "impostor",
          "server",
          secretKey("guess"),
        );
        try {
          assert.equal(answer, FRAME_KIND_ACCEPT);
          const frame = await readFrame(conn, new FrameDecoder(), 2_000);
          assert.equal(frame?.kind, FRAME_KIND_REJECT);
          assert.equal(decodeReject(frame!.payload), "auth");
          assert.ok(await closedByPeer(conn, 2_000));
        } finally {
          try {
            conn.close();
          } catch { /* closed */ }
        }
        assert.equal(server.stats().authFailures, before.authFailures + 1);
        assert.ok(!serverRec.ups.includes("impostor"));
      },
    );
    await t.step("the right secret works both ways", async () => {
      const client = await cluster.start({
        id: "friend",
        peers: { server: address(server) },
        secret: "right",
      });
      const rec = new Recorder().attach(client);
      server.setHandler({
        onFrame: (from, payload) => {
          serverRec.frames.push({ from, payload: payload.slice() });
          server.send(from, payload);
        },
        onPeerUp: (p) => serverRec.ups.push(p),
      });
      assert.ok(client.send("server", Uint8Array.of(7, 7)));
      await waitUntil(() => rec.frames.length === 1, 3_000, "echo");
      assert.deepEqual(rec.frames[0].payload, Uint8Array.of(7, 7));
      assert.deepEqual(rec.ups, ["server"]);
      assert.equal(client.stats().authFailures, 0);
    });
    await t.step(
      "an unknown peer id is refused when acceptUnknownPeers is false",
      async () => {
        const strict = await cluster.start({
          id: "strict",
          listen: { port: 0 },
          peers: { known: `${LOOPBACK}:1` },
        });
        const strictRec = new Recorder().attach(strict);
        const stranger = await cluster.start({
          id: "stranger",
          peers: { strict: address(strict) },
        });
        const rec = new Recorder().attach(stranger);
        await waitUntil(
          () => strict.stats().unknownPeerRefusals >= 1,
          3_000,
          "unknown peer refusal",
        );
        const { conn, answer } = await rawDial(
          strict.listenAddress!.port,
          "also-unknown",
          "strict",
        );
        conn.close();
        assert.equal(answer, FRAME_KIND_REJECT);
        assert.deepEqual(rec.ups, []);
        assert.deepEqual(strictRec.ups, []);
        assert.equal(strict.stats().connectionsOpened, 0);
        assert.throws(
          () => strict.send("stranger", new Uint8Array(1)),
          TypeError,
        );
      },
    );
  },
);

Deno.test("tcp transport send throws RangeError when oversize and TypeError for an unknown peer", async () => {
  const t = await TcpTransport.start({
    id: "a",
    peers: { b: `${LOOPBACK}:1` },
    maxFrameSize: 1024,
  });
  try {
    assert.throws(() => t.send("b", new Uint8Array(1025)), RangeError);
    assert.equal(t.stats().oversizeRefusals, 1);
    assert.ok(t.send("b", new Uint8Array(1024)));
    assert.throws(() => t.send("nobody", new Uint8Array(1)), TypeError);
    assert.throws(() => t.addPeer("c", "no-port"), TypeError);
    assert.throws(() => t.addPeer("c", "127.0.0.1:70000"), TypeError);
    assert.equal(t.stats().framesSent, 1);
  } finally {
    await t.close();
  }
  await assert.rejects(TcpTransport.start({ id: "" }), TypeError);
  await assert.rejects(
    TcpTransport.start({ id: "x", maxFrameSize: 0 }),
    RangeError,
  );
  await assert.rejects(
    TcpTransport.start({ id: "x", maxFrameSize: 2048, maxQueueBytes: 2048 }),
    RangeError,
  );
});

clusterTest(
  "tcp transport settles simultaneous dials on one connection",
  async (cluster) => {
    for (let round = 0; round < 10; round++) {
      const a = await cluster.start({ id: `a${round}`, listen: { port: 0 } });
      const b = await cluster.start({ id: `b${round}`, listen: { port: 0 } });
      const recA = new Recorder().attach(a);
      const recB = new Recorder().attach(b);
      a.addPeer(b.id, address(b));
      b.addPeer(a.id, address(a));
      assert.ok(a.send(b.id, Uint8Array.of(1)));
      assert.ok(b.send(a.id, Uint8Array.of(2)));
      await waitUntil(
        () => recA.frames.length === 1 && recB.frames.length === 1,
        3_000,
        "both frames",
      );
      await delay(30);
      assert.equal(
        a.stats().connectionsOpened,
        1,
        `round ${round}: one connection at a`,
      );
      assert.equal(
        b.stats().connectionsOpened,
        1,
        `round ${round}: one connection at b`,
      );
      assert.deepEqual(recA.downs, []);
      assert.deepEqual(recB.downs, []);
    }
  },
);

clusterTest(
  "tcp transport keeps delivering when the onFrame handler throws",
  async (cluster) => {
    const lines: string[] = [];
    const r = await cluster.startListener("r", {
      logger: { log: (level, event) => lines.push(`${level} ${event}`) },
    });
    let seen = 0;
    r.setHandler({
      onFrame() {
        seen++;
        if (seen % 2 === 1) throw new Error("handler bug");
      },
    });
    const s = await cluster.start({ id: "s", peers: { r: address(r) } });
    for (let i = 0; i < 10; i++) s.send("r", new Uint8Array(4));
    await waitUntil(() => seen === 10, 3_000, "10 frames");
    assert.equal(
      lines.filter((l) => l === "error tcp_handler_failed").length,
      5,
    );
    assert.equal(r.stats().connectionsClosed, 0);
  },
);

clusterTest(
  "tcp transport replaces a connection when the peer restarts and drops frames to gone dial-in peers",
  async (cluster) => {
    const server = await cluster.startListener("server");
    const rec = new Recorder().attach(server);
    // The first client redials only after seconds, so it cannot win the connection back.
    const first = await cluster.start({
      id: "client",
      peers: { server: address(server) },
      reconnectMinMs: 5_000,
      reconnectMaxMs: 5_000,
    });
    await waitUntil(() => rec.ups.length === 1, 2_000, "first client up");
    // A second process with the same id (a restart whose old socket is not closed yet).
    const second = await cluster.start({
      id: "client",
      peers: { server: address(server) },
    });
    const secondRec = new Recorder().attach(second);
    await waitUntil(() => rec.ups.length === 2, 2_000, "replacement up");
    assert.deepEqual(rec.downs, ["client"]);
    assert.ok(server.send("client", Uint8Array.of(9)));
    await waitUntil(
      () => secondRec.frames.length === 1,
      2_000,
      "frame to the new connection",
    );
    await first.close();
    await second.close();
    await waitUntil(
      () =>
        server.stats().connectionsClosed >= server.stats().connectionsOpened,
      2_000,
      "all closed",
    );
    assertUndeliverableDropped(server, "client");
  },
);

clusterTest(
  "tcp transport forgets dial-in peers once they are gone, however many came and went",
  async (cluster) => {
    const server = await cluster.startListener("server");
    const rec = new Recorder().attach(server);
    for (let round = 0; round < 5; round++) {
      const clients = await Promise.all(
        Array.from(
          { length: 10 },
          (_, i) =>
            cluster.start({
              id: `client-${round}-${i}`,
              peers: { server: address(server) },
            }),
        ),
      );
      await waitUntil(
        () => rec.ups.length === (round + 1) * 10,
        5_000,
        `round ${round} clients up`,
      );
      assert.equal(server.peers().length, 10);
      await Promise.all(clients.map((c) => c.close()));
      await waitUntil(
        () => server.peers().length === 0,
        5_000,
        `round ${round} clients forgotten`,
      );
    }
    assertUndeliverableDropped(server, "client-0-0");
    assert.throws(() => server.send("never-seen", Uint8Array.of(1)), TypeError);
  },
);
