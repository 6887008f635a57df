import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import {
  DatagramEncoder,
  MAX_SENDER_ID_BYTES,
  writeUint32,
} from "../../transport/_datagram.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "../../transport/frame.ts";
import type { PeerId } from "../../transport/transport.ts";
import {
  UdpTransport,
  type UdpTransportOptions,
} from "../../transport/udp_transport.ts";
import type { LogFields, Logger, LogLevel } from "../../runtime/log.ts";
import { bytesEqual, delay, prng, Recorder, waitUntil } from "./_helpers.ts";

// ---------------------------------------------------------------- helpers

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65_536) {
    crypto.getRandomValues(bytes.subarray(at, Math.min(size, at + 65_536)));
  }
  return bytes;
}

/** A logger that keeps every line. */
class MemoryLogger implements Logger {
  readonly lines: Array<{ level: LogLevel; event: string } & LogFields> = [];
  log(level: LogLevel, event: string, fields: LogFields = {}): void {
    this.lines.push({ ...fields, level, event });
  }
  count(event: string, peer?: string): number {
    return this.lines.filter((l) =>
      l.event === event && (peer === undefined || l.peer === peer)
    ).length;
  }
}

/** Starts transports, installs a recorder on each, and closes them all. */
async function withTransports(
  options: UdpTransportOptions[],
  body: (ts: UdpTransport[], inboxes: Recorder[]) => Promise<void>,
): Promise<void> {
  const ts: UdpTransport[] = [];
  try {
    for (const o of options) ts.push(await UdpTransport.start(o));
    const inboxes = ts.map((t) => new Recorder().attach(t));
    await body(ts, inboxes);
  } finally {
    await Promise.all(ts.map((t) => t.close()));
  }
}

function addressOf(t: UdpTransport): string {
  return `127.0.0.1:${t.address.port}`;
}

/** Makes every transport know every other one. */
function linkAll(ts: UdpTransport[]): void {
  for (const a of ts) {
    for (const b of ts) if (a !== b) a.addPeer(b.id, addressOf(b));
  }
}

/**
 * Sends `payload` and waits for `inbox` to hold it; resends it up to
 * `attempts - 1` times if it was lost (UDP may lose). Returns the number of
 * resends.
 */
async function deliver(
  send: () => boolean,
  inbox: Recorder,
  from: PeerId,
  payload: Uint8Array,
  attempts = 3,
  waitMs = 2000,
): Promise<number> {
  const since = inbox.frames.length;
  for (let attempt = 0; attempt < attempts; attempt++) {
    assert.equal(send(), true, "send refused");
    const deadline = performance.now() + waitMs;
    while (performance.now() < deadline) {
      if (inbox.has(from, payload, since)) return attempt;
      await delay(5);
    }
  }
  throw new Error(
    `A ${payload.length}-byte frame from "${from}" did not arrive in ${attempts} attempts`,
  );
}

/** A bare node:dgram socket on 127.0.0.1, for hand-made datagrams. */
class RawSocket {
  private constructor(readonly socket: Socket) {}

  static async open(): Promise<RawSocket> {
    const socket = createSocket("udp4");
    await new Promise<void>((resolve) =>
      socket.bind(0, "127.0.0.1", () => resolve())
    );
    return new RawSocket(socket);
  }

  get address(): string {
    return `127.0.0.1:${this.socket.address().port}`;
  }

  send(bytes: Uint8Array, to: UdpTransport): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(
        bytes,
        to.address.port,
        "127.0.0.1",
        (error) => error ? reject(error) : resolve(),
      )
    );
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** A free UDP port on 127.0.0.1 (bound then released). */
async function freePort(): Promise<number> {
  const raw = await RawSocket.open();
  const port = raw.socket.address().port;
  await raw.close();
  return port;
}

// ---------------------------------------------------------------- tests

Deno.test("small frames are delivered between two transports in both directions", async () => {
  await withTransports([{ id: "a" }, { id: "b" }], async ([a, b], [ia, ib]) => {
    linkAll([a, b]);
    const n = 100;
    for (let i = 0; i < n; i++) {
      assert.equal(a.send("b", encoder.encode(`a->b ${i}`)), true);
      assert.equal(b.send("a", encoder.encode(`b->a ${i}`)), true);
    }
    // loopback does not lose 200 small datagrams; if it did, this says so
    await waitUntil(
      () => ib.frames.length >= n && ia.frames.length >= n,
      3000,
      `${n} frames each way (got ${ib.frames.length} and ${ia.frames.length})`,
    );
    const expected = (dir: string) =>
      Array.from({ length: n }, (_, i) => `${dir} ${i}`).sort();
    // UDP may reorder: compare as sets
    assert.deepEqual(ib.texts("a").sort(), expected("a->b"));
    assert.deepEqual(ia.texts("b").sort(), expected("b->a"));
    assert.deepEqual(ib.ups, ["a"]);
    assert.deepEqual(ia.ups, ["b"]);
    const sa = a.stats();
    assert.equal(sa.framesSent, n);
    assert.equal(sa.framesReceived, n);
    assert.equal(
      sa.bytesSent,
      ib.frames.reduce((s, f) => s + f.payload.length, 0),
    );
    assert.equal(
      sa.malformedDropped + sa.authFailures + sa.unknownPeerRefusals,
      0,
    );
    await waitUntil(() => a.stats().queuedBytes === 0, 1000, "queue to drain");
    assert.equal(a.stats().datagramsSent, n);
  });
});

Deno.test("frames of every size up to maxFrameSize are fragmented and reassembled intact", async (t) => {
  const maxFrameSize = 256 * 1024;
  await withTransports(
    [
      // two senders to one receiver add up: half the default rate each
      { id: "a", maxFrameSize, sendRate: 6 * 1024 * 1024 },
      { id: "b", maxFrameSize },
      { id: "c", maxFrameSize, sendRate: 6 * 1024 * 1024 },
    ],
    async ([a, b, c], [, ib]) => {
      linkAll([a, b, c]);
      const chunk = 1400 - 22 - 1; // default datagram minus header with a 1-byte id
      const sizes = [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        2 * chunk,
        2 * chunk + 1,
        10_000,
        65_535,
        65_536,
        100_000,
        200_003,
        maxFrameSize - 1,
        maxFrameSize,
      ];
      const sent: Uint8Array[] = [];
      let resends = 0;

      await t.step("one at a time, each size", async () => {
        for (const size of sizes) {
          const payload = randomBytes(size);
          sent.push(payload);
          resends += await deliver(
            () => a.send("b", payload),
            ib,
            "a",
            payload,
          );
        }
      });

      await t.step(
        "two senders at once, fragments interleaved at the receiver",
        async () => {
          const batch: Array<[UdpTransport, Uint8Array]> = [];
          for (let i = 0; i < 8; i++) {
            batch.push([a, randomBytes(40_000 + i * 1000)]);
            batch.push([c, randomBytes(40_000 + i * 1000)]);
          }
          for (const [from, payload] of batch) {
            sent.push(payload);
            assert.equal(from.send("b", payload), true);
          }
          const allArrived = () =>
            batch.every(([from, p]) => ib.has(from.id, p));
          const deadline = performance.now() + 3000;
          while (!allArrived() && performance.now() < deadline) await delay(5);
          for (const [from, payload] of batch) {
            if (!ib.has(from.id, payload)) {
              // lost on the way: allow two more tries, one frame at a time
              resends += 1 + await deliver(
                () => from.send("b", payload),
                ib,
                from.id,
                payload,
                2,
              );
            }
          }
        },
      );

      await t.step("only whole, intact frames were delivered", async () => {
        for (const frame of ib.frames) {
          assert.ok(
            sent.some((p) => bytesEqual(p, frame.payload)),
            `a ${frame.payload.length}-byte frame that was never sent was delivered`,
          );
        }
        await waitUntil(
          () => b.stats().incompleteFrames === 0,
          6000,
          "no incomplete frame left",
        );
        const s = b.stats();
        assert.equal(s.reassemblyBytes, 0);
        assert.equal(s.malformedDropped, 0);
        // resends are allowed, but a lossy loopback is worth seeing
        assert.ok(
          resends <= 6,
          `${resends} resends were needed for ${sent.length} frames`,
        );
        if (resends > 0) {
          console.log(`note: ${resends} frame(s) resent after loss`);
        }
      });
    },
  );
});

Deno.test("a frame at the default maximum size (1 MiB) arrives intact", async () => {
  const options = [{ id: "a" }, { id: "b", reassemblyTimeoutMs: 500 }];
  await withTransports(options, async ([a, b], [, ib]) => {
    linkAll([a, b]);
    assert.equal(a.maxFrameSize, DEFAULT_MAX_FRAME_SIZE);
    const payload = randomBytes(DEFAULT_MAX_FRAME_SIZE);
    const resends = await deliver(() => a.send("b", payload), ib, "a", payload);
    if (resends > 0) {
      console.log(`note: the 1 MiB frame was resent ${resends} time(s)`);
    }
    // what a lost attempt left behind is released at the timeout
    await waitUntil(
      () => b.stats().reassemblyBytes === 0,
      2000,
      "no bytes held",
    );
    assert.ok(ib.frames.length >= 1);
    for (const f of ib.frames) assert.ok(bytesEqual(f.payload, payload));
    assert.throws(
      () => a.send("b", new Uint8Array(DEFAULT_MAX_FRAME_SIZE + 1)),
      RangeError,
    );
  });
});

Deno.test("a frame with a lost fragment is dropped after the timeout and its memory released", async () => {
  const raw = await RawSocket.open();
  try {
    await withTransports(
      [{ id: "b", reassemblyTimeoutMs: 200, peers: { raw: raw.address } }],
      async ([b], [ib]) => {
        const frames = new DatagramEncoder({
          sender: "raw",
          maxDatagramSize: 500,
        });
        const payloads = Array.from(
          { length: 20 },
          (_, i) => randomBytes(3000 + i * 100),
        );
        let reserved = 0;
        for (let n = 0; n < payloads.length; n++) {
          const datagrams = frames.encode(n, payloads[n]);
          assert.ok(datagrams.length >= 7);
          datagrams.splice(n % datagrams.length, 1); // lose one
          for (const d of datagrams) await raw.send(d, b);
          reserved += payloads[n].length;
        }
        await waitUntil(
          () => b.stats().reassemblyBytes === reserved,
          1000,
          `${reserved} bytes held (held ${b.stats().reassemblyBytes})`,
        );
        assert.equal(b.stats().incompleteFrames, 20);
        await waitUntil(
          () => b.stats().reassemblyBytes === 0,
          2000,
          "held bytes back to 0",
        );
        const s = b.stats();
        assert.equal(s.incompleteFrames, 0);
        assert.equal(s.reassemblyTimeouts, 20);
        assert.equal(s.reassemblyEvictions, 0);
        assert.equal(ib.frames.length, 0, "no partial frame is delivered");
        // the same peer's complete frames still go through
        const whole = randomBytes(4000);
        for (const d of frames.encode(99, whole)) await raw.send(d, b);
        await waitUntil(() => ib.has("raw", whole), 1000, "a whole frame");
        assert.equal(b.stats().reassemblyBytes, 0);
      },
    );
  } finally {
    await raw.close();
  }
});

Deno.test("garbage datagrams are dropped and counted while a legitimate peer keeps talking", async () => {
  const raw = await RawSocket.open();
  try {
    await withTransports(
      [
        { id: "a" },
        { id: "b", maxFrameSize: 64 * 1024, reassemblyTimeoutMs: 300 },
      ],
      async ([a, b], [ia, ib]) => {
        linkAll([a, b]);
        b.addPeer("raw", raw.address);
        const good =
          new DatagramEncoder({ sender: "raw", maxDatagramSize: 200 })
            .encode(1, randomBytes(30))[0];
        const idEnd = 6 + 3; // header up to the end of the id "raw"
        const mutate = (f: (d: Uint8Array) => void, from = good) => {
          const d = from.slice();
          f(d);
          return d;
        };
        const random = randomBytes(300);
        random[0] = 0x00; // not the magic
        const longId = new Uint8Array(6 + 200 + 16 + 10);
        longId.set([0x43, 0x4f, 1, 0, 0, 200]);
        longId.fill(0x61, 6, 206);
        const garbage: Array<[string, Uint8Array]> = [
          ["random bytes", random],
          ["empty datagram", new Uint8Array(0)],
          ["wrong magic", mutate((d) => d[1] = 0x50)],
          ["wrong version", mutate((d) => d[2] = 2)],
          ["unknown kind", mutate((d) => d[3] = 7)],
          ["unknown flags", mutate((d) => d[4] = 0x10)],
          ["truncated header", good.subarray(0, 10)],
          ["header cut inside the numbers", good.subarray(0, idEnd + 9)],
          ["sender id too long", longId],
          ["sender id of length 0", mutate((d) => d[5] = 0)],
          ["sender id not UTF-8", mutate((d) => d[6] = 0xc3)],
          [
            "absurd fragment count",
            mutate((d) => writeUint32(d, idEnd + 12, 0xffffffff)),
          ],
          ["zero fragment count", mutate((d) => writeUint32(d, idEnd + 12, 0))],
          [
            "fragment index out of range",
            mutate((d) => writeUint32(d, idEnd + 8, 3)),
          ],
          [
            "frame larger than maxFrameSize",
            mutate((d) => writeUint32(d, idEnd + 4, 64 * 1024 + 1)),
          ],
          [
            "chunk shorter than the frame",
            mutate((d) => writeUint32(d, idEnd + 4, 31)),
          ],
          [
            "MAC flag on a datagram too short for a MAC",
            mutate((d) => d[4] = 1, good.subarray(0, idEnd + 16 + 4)),
          ],
        ];
        let round = 0;
        const exchange = async () => {
          round++;
          const ping = encoder.encode(`ping ${round}`);
          const pong = encoder.encode(`pong ${round}`);
          await deliver(() => a.send("b", ping), ib, "a", ping);
          await deliver(() => b.send("a", pong), ia, "b", pong);
        };
        let expected = 0;
        for (const [name, bytes] of garbage) {
          for (let k = 0; k < 5; k++) await raw.send(bytes, b);
          expected += 5;
          await waitUntil(
            () => b.stats().malformedDropped === expected,
            2000,
            `"${name}" counted as malformed (count ${b.stats().malformedDropped}, expected ${expected})`,
          );
          await exchange();
        }
        // a seeded flood of datagrams with a valid prefix and random rest
        // (in batches the receiver has read, so the socket buffer never
        // overflows: a flood faster than Deno reads would lose datagrams)
        const next = prng(1234);
        const received = b.stats().datagramsReceived;
        for (let k = 0; k < 300; k++) {
          if (k % 25 === 0) {
            await waitUntil(
              () => b.stats().datagramsReceived === received + k,
              2000,
              `the receiver to read ${k} datagrams`,
            );
          }
          const d = new Uint8Array(10 + Math.floor(next() * 600));
          for (let i = 0; i < d.length; i++) d[i] = Math.floor(next() * 256);
          d.set([0x43, 0x4f, 1, 0, 0, 3, 0x72, 0x61, 0x77]); // "raw"
          await raw.send(d, b);
        }
        expected += 300;
        await waitUntil(
          () => b.stats().malformedDropped === expected,
          2000,
          () =>
            `300 random datagrams counted as malformed (expected ${expected}): ${
              JSON.stringify(b.stats())
            }`,
        );
        await exchange();
        // two fragments of one message that disagree on the chunk size
        const frames = new DatagramEncoder({
          sender: "raw",
          maxDatagramSize: 200,
        });
        const first = frames.encode(5, randomBytes(1000))[0];
        const other =
          new DatagramEncoder({ sender: "raw", maxDatagramSize: 300 })
            .encode(5, randomBytes(1000))[1];
        await raw.send(first, b);
        await raw.send(other, b);
        expected++;
        await waitUntil(
          () => b.stats().malformedDropped === expected,
          2000,
          "inconsistent fragment counted as malformed",
        );
        await exchange();
        await waitUntil(
          () => b.stats().reassemblyBytes === 0,
          2000,
          "the half frame to expire",
        );
        const s = b.stats();
        assert.equal(s.authFailures, 0);
        assert.equal(s.unknownPeerRefusals, 0);
        assert.equal(ib.frames.filter((f) => f.from === "raw").length, 0);
        assert.deepEqual(
          ib.texts("a").sort(),
          Array.from({ length: round }, (_, i) => `ping ${i + 1}`).sort(),
        );
        assert.equal(a.stats().malformedDropped, 0);
      },
    );
  } finally {
    await raw.close();
  }
});

Deno.test("the cluster secret: wrong and missing MACs are refused, the right one works", async (t) => {
  const logs = new MemoryLogger();
  await withTransports(
    [
      { id: "b", secret: "right", logger: logs },
      { id: "good", secret: "right" },
      { id: "bad", secret: "wrong" },
      { id: "none" },
      { id: "stranger", secret: "right" },
    ],
    async ([b, good, bad, none, stranger], [ib, , , inone]) => {
      for (const peer of [good, bad, none]) {
        b.addPeer(peer.id, addressOf(peer));
        peer.addPeer("b", addressOf(b));
      }
      stranger.addPeer("b", addressOf(b));

      await t.step("the right secret works", async () => {
        const hi = encoder.encode("hi");
        await deliver(() => good.send("b", hi), ib, "good", hi);
        assert.deepEqual(ib.ups, ["good"]);
      });

      await t.step(
        "a wrong secret is refused and logged once, not per datagram",
        async () => {
          for (let i = 0; i < 30; i++) {
            bad.send("b", encoder.encode(`forged ${i}`));
          }
          await waitUntil(
            () => b.stats().authFailures === 30,
            2000,
            "30 auth failures",
          );
          assert.equal(logs.count("udp_auth_refused", "bad"), 1);
          const line = logs.lines.find((l) => l.peer === "bad")!;
          assert.equal(line.level, "warn");
          assert.match(String(line.reason), /wrong MAC/);
        },
      );

      await t.step("a missing MAC is refused", async () => {
        for (let i = 0; i < 5; i++) {
          none.send("b", encoder.encode(`plain ${i}`));
        }
        await waitUntil(
          () => b.stats().authFailures === 35,
          2000,
          "5 more auth failures",
        );
        assert.equal(logs.count("udp_auth_refused", "none"), 1);
        assert.match(
          String(logs.lines.find((l) => l.peer === "none")!.reason),
          /missing MAC/,
        );
      });

      await t.step(
        "a MAC is refused by a transport without a secret",
        async () => {
          b.send("none", encoder.encode("signed"));
          await waitUntil(
            () => none.stats().authFailures === 1,
            2000,
            "auth failure at none",
          );
          assert.equal(inone.frames.length, 0);
        },
      );

      await t.step(
        "an unknown sender is refused even with the right secret",
        async () => {
          for (let i = 0; i < 5; i++) {
            stranger.send(
              "b",
              encoder.encode(`who ${i}`),
            );
          }
          await waitUntil(
            () => b.stats().unknownPeerRefusals === 5,
            2000,
            "5 unknown-peer refusals",
          );
        },
      );

      await t.step(
        "nothing refused was delivered, and the right peer still is",
        async () => {
          const bye = encoder.encode("bye");
          await deliver(() => good.send("b", bye), ib, "good", bye);
          assert.deepEqual(ib.texts(), ["hi", "bye"]);
          assert.deepEqual(ib.ups, ["good"]);
          assert.equal(b.stats().authFailures, 35);
        },
      );
    },
  );
});

Deno.test("acceptUnknownPeers learns a sender's address from its datagrams, within a bound", async () => {
  await withTransports(
    [
      {
        id: "server",
        secret: "s",
        acceptUnknownPeers: true,
        maxLearnedPeers: 1,
      },
      { id: "client", secret: "s" },
      { id: "late", secret: "s" },
    ],
    async ([server, client, late], [is, ic]) => {
      client.addPeer("server", addressOf(server));
      late.addPeer("server", addressOf(server));
      assert.throws(() => server.send("client", new Uint8Array(1)), TypeError);
      const hello = encoder.encode("hello");
      await deliver(() => client.send("server", hello), is, "client", hello);
      assert.deepEqual(is.ups, ["client"]);
      const answer = encoder.encode("answer");
      await deliver(() => server.send("client", answer), ic, "server", answer);
      // the bound on learned peers
      late.send("server", encoder.encode("me too"));
      await waitUntil(
        () => server.stats().unknownPeerRefusals === 1,
        2000,
        "refusal of a second learned peer",
      );
      // removing a peer reports it down and makes it unknown again
      assert.equal(server.removePeer("client"), true);
      assert.deepEqual(is.downs, ["client"]);
      assert.equal(server.removePeer("client"), false);
      assert.throws(() => server.send("client", new Uint8Array(1)), TypeError);
      const again = encoder.encode("again");
      await deliver(() => late.send("server", again), is, "late", again);
      assert.deepEqual(is.ups, ["client", "late"]);
    },
  );
});

Deno.test("send applies backpressure at maxQueueBytes and onDrain follows", async () => {
  await withTransports(
    [{ id: "a", maxQueueBytes: 64 * 1024 }, { id: "b" }],
    async ([a, b], [ia, ib]) => {
      linkAll([a, b]);
      const frame = new Uint8Array(1000);
      let accepted = 0;
      let refusedAt = -1;
      for (let i = 0; i < 1000; i++) {
        if (!a.send("b", frame)) {
          refusedAt = i;
          break;
        }
        accepted++;
      }
      assert.ok(refusedAt > 0, "send never refused");
      const s = a.stats();
      assert.equal(s.backpressureRefusals, 1);
      assert.ok(s.queuedBytes <= 64 * 1024, `queued ${s.queuedBytes}`);
      assert.ok(
        s.queuedBytes + 1100 > 64 * 1024,
        `refused early at ${s.queuedBytes}`,
      );
      assert.equal(s.framesSent, accepted);
      assert.deepEqual(ia.drains, []);
      await waitUntil(() => ia.drains.length > 0, 2000, "onDrain");
      assert.deepEqual(ia.drains, ["b"]);
      assert.ok(a.stats().queuedBytes < 32 * 1024);
      assert.equal(a.send("b", frame), true);
      await waitUntil(
        () => ib.frames.length === accepted + 1,
        3000,
        `${accepted + 1} frames at b`,
      );
    },
  );
});

Deno.test("argument errors: oversize RangeError, unknown peer TypeError, no multicast TypeError", async () => {
  await withTransports([{
    id: "a",
    maxFrameSize: 1000,
    peers: { b: "127.0.0.1:9" },
  }], async ([a]) => {
    assert.throws(() => a.send("b", new Uint8Array(1001)), RangeError);
    assert.throws(
      () => a.send("b", new Uint8Array(1001)),
      /1001 bytes .*maximum is 1000/,
    );
    assert.equal(a.stats().oversizeRefusals, 2);
    assert.throws(() => a.send("nobody", new Uint8Array(1)), TypeError);
    assert.throws(() => a.multicast(new Uint8Array(1)), TypeError);
    assert.throws(() => a.addPeer("a", "127.0.0.1:9"), TypeError);
    assert.throws(() => a.addPeer("c", "example.com:80"), TypeError);
    assert.throws(() => a.addPeer("c", "127.0.0.1:0"), TypeError);
    assert.throws(() => a.addPeer("c", "[::1]:80"), TypeError);
    assert.throws(
      () => a.addPeer("x".repeat(MAX_SENDER_ID_BYTES + 1), "127.0.0.1:9"),
      TypeError,
    );
    assert.equal(a.stats().framesSent, 0);
    await a.close();
    assert.equal(a.send("b", new Uint8Array(1)), true);
    assert.equal(a.stats().undeliverableDropped, 1);
  });
});

Deno.test("start validates its options and releases the socket when binding fails", async () => {
  const bad: Array<[Partial<UdpTransportOptions>, ErrorConstructor]> = [
    [{ id: "" }, TypeError],
    [{ id: "x".repeat(MAX_SENDER_ID_BYTES + 1) }, TypeError],
    [{ peers: { b: "nowhere" } }, TypeError],
    [{ bind: { hostname: "example.com" } }, TypeError],
    [{ bind: { port: 70_000 } }, RangeError],
    [{ maxFrameSize: 0 }, RangeError],
    [{ maxDatagramSize: 20 }, RangeError],
    [{ maxDatagramSize: 70_000 }, RangeError],
    [{ maxFrameSize: 1000, maxReassemblyBytes: 999 }, RangeError],
    [{ maxIncompleteFrames: 0 }, RangeError],
    [{ reassemblyTimeoutMs: -1 }, RangeError],
    [{ maxQueueBytes: 0 }, RangeError],
    [{ sendRate: 0 }, RangeError],
    [{ secret: "" }, TypeError],
    [{ multicast: { group: "10.0.0.1", port: 5000 } }, TypeError],
    [{ multicast: { group: "239.1.1.1", port: 0 } }, RangeError],
  ];
  for (const [override, type] of bad) {
    await assert.rejects(
      UdpTransport.start({ id: "a", ...override }),
      type,
      JSON.stringify(override),
    );
  }
  const a = await UdpTransport.start({ id: "a" });
  try {
    await assert.rejects(
      UdpTransport.start({ id: "b", bind: { port: a.address.port } }),
      /EADDRINUSE|in use/i,
    );
  } finally {
    await a.close();
  }
});

Deno.test("exceptions thrown by the handler are logged and do not stop delivery", async () => {
  const logs = new MemoryLogger();
  await withTransports(
    [{ id: "a" }, { id: "b", logger: logs }],
    async ([a, b]) => {
      linkAll([a, b]);
      const seen: string[] = [];
      b.setHandler({
        onFrame: (_from, payload) => {
          const text = decoder.decode(payload);
          seen.push(text);
          if (text === "boom") throw new Error("handler failed");
        },
        onPeerUp: () => {
          throw new Error("peer-up handler failed");
        },
      });
      a.send("b", encoder.encode("boom"));
      await waitUntil(() => seen.length === 1, 2000, "first frame");
      a.send("b", encoder.encode("fine"));
      await waitUntil(() => seen.length === 2, 2000, "second frame");
      assert.deepEqual(seen, ["boom", "fine"]);
      assert.equal(logs.count("udp_handler_error"), 2);
      assert.ok(
        logs.lines.every((l) =>
          l.event !== "udp_handler_error" || l.level === "error"
        ),
      );
    },
  );
});

Deno.test("multicast on the loopback interface reaches every member but the sender", async (t) => {
  const group = `239.${100 + Math.floor(Math.random() * 100)}.${
    Math.floor(Math.random() * 256)
  }.${1 + Math.floor(Math.random() * 254)}`;
  const port = await freePort();
  const multicast = { group, port };
  await withTransports(
    [
      { id: "a", multicast, secret: "m" },
      { id: "b", multicast, secret: "m" },
      { id: "c", multicast, secret: "m" },
      { id: "outsider", secret: "m" },
    ],
    async ([a, b, c, outsider], [ia, ib, ic, io]) => {
      linkAll([a, b, c, outsider]);

      await t.step("a small frame", async () => {
        const hello = encoder.encode("hello group");
        await deliver(() => a.multicast(hello), ib, "a", hello);
        await waitUntil(() => ic.has("a", hello), 2000, "c to get the frame");
        assert.equal(a.stats().multicastFramesSent >= 1, true);
      });

      await t.step("a fragmented frame", async () => {
        const big = randomBytes(100_000);
        await deliver(() => b.multicast(big), ia, "b", big);
        await waitUntil(() => ic.has("b", big), 2000, "c to get the big frame");
      });

      await t.step("the sender and non-members get nothing", async () => {
        await delay(100);
        assert.equal(ia.frames.filter((f) => f.from === "a").length, 0);
        assert.equal(ib.frames.filter((f) => f.from === "b").length, 0);
        assert.equal(io.frames.length, 0);
        assert.equal(outsider.stats().datagramsReceived, 0);
        for (const t of [a, b, c]) {
          const s = t.stats();
          assert.equal(
            s.malformedDropped + s.authFailures + s.unknownPeerRefusals,
            0,
          );
        }
      });
    },
  );
});

Deno.test("multicast refuses at maxQueueBytes and reports the drain with the sender's own id", async () => {
  const multicast = { group: "239.200.0.77", port: await freePort() };
  await withTransports(
    [{ id: "m", multicast, maxQueueBytes: 16 * 1024 }],
    async ([m], [im]) => {
      let refused = false;
      for (let i = 0; i < 1000 && !refused; i++) {
        refused = !m.multicast(new Uint8Array(1000));
      }
      assert.ok(refused, "multicast never refused");
      assert.equal(m.stats().backpressureRefusals, 1);
      await waitUntil(() => im.drains.length > 0, 2000, "onDrain");
      assert.deepEqual(im.drains, ["m"]);
    },
  );
});
