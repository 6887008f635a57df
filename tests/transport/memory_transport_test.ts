import assert from "node:assert/strict";
import {
  MemoryNetwork,
  MemoryTransport,
} from "../../transport/memory_transport.ts";
import type { PeerId, TransportHandler } from "../../transport/transport.ts";

interface Log {
  frames: Array<[PeerId, number[]]>;
  events: string[];
}

function record(
  transport: MemoryTransport,
  extra: Partial<TransportHandler> = {},
): Log {
  const log: Log = { frames: [], events: [] };
  transport.setHandler({
    onFrame: (from, payload) => log.frames.push([from, [...payload]]),
    onPeerUp: (peer) => log.events.push(`up:${peer}`),
    onPeerDown: (peer) => log.events.push(`down:${peer}`),
    onDrain: (peer) => log.events.push(`drain:${peer}`),
    ...extra,
  });
  return log;
}

/** Lets queued microtasks and zero-delay timers run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("memory transport: delivers asynchronously, in order, as copies", async () => {
  const net = new MemoryNetwork();
  const a = net.connect("a");
  const b = net.connect("b");
  record(a);
  const got = record(b);
  const buffer = new Uint8Array(1);
  for (let i = 0; i < 100; i++) {
    buffer[0] = i;
    assert.equal(a.send("b", buffer), true);
  }
  assert.equal(got.frames.length, 0, "nothing is delivered inside send");
  await settle();
  assert.deepEqual(
    got.frames.map(([, bytes]) => bytes[0]),
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.ok(got.frames.every(([from]) => from === "a"));
  const stats = a.stats();
  assert.equal(stats.framesSent, 100);
  assert.equal(stats.bytesSent, 100);
  assert.equal(b.stats().framesReceived, 100);
  assert.equal(b.stats().bytesReceived, 100);
  await net.close();
});

Deno.test("memory transport: a handler that sends is not re-entered", async () => {
  const net = new MemoryNetwork();
  const a = net.connect("a");
  const b = net.connect("b");
  let depth = 0;
  let maxDepth = 0;
  let pings = 0;
  const echo = (self: MemoryTransport, peer: PeerId): TransportHandler => ({
    onFrame: (_from, payload) => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
      pings++;
      if (payload[0] < 200) self.send(peer, new Uint8Array([payload[0] + 1]));
      depth--;
    },
  });
  a.setHandler(echo(a, "b"));
  b.setHandler(echo(b, "a"));
  a.send("b", new Uint8Array([0]));
  while (pings < 201) await settle();
  assert.equal(maxDepth, 1);
  await net.close();
});

Deno.test("memory transport: a long ping-pong still lets timers run", async () => {
  const net = new MemoryNetwork();
  const a = net.connect("a");
  const b = net.connect("b");
  let rounds = 0;
  let timerFiredAt = -1;
  const done = Promise.withResolvers<void>();
  a.setHandler({
    onFrame: () => {
      rounds++;
      if (rounds === 5000) done.resolve();
      else a.send("b", new Uint8Array(1));
    },
  });
  b.setHandler({ onFrame: () => b.send("a", new Uint8Array(1)) });
  setTimeout(() => (timerFiredAt = rounds), 0);
  a.send("b", new Uint8Array(1));
  await done.promise;
  assert.ok(
    timerFiredAt >= 0 && timerFiredAt < 5000,
    `timer ran at round ${timerFiredAt}`,
  );
  await net.close();
});

Deno.test("memory transport: a full queue refuses with false, then onDrain", async () => {
  const net = new MemoryNetwork({ queueLimit: 4 });
  const a = net.connect("a");
  const b = net.connect("b");
  const c = net.connect("c");
  const aLog = record(a);
  const bLog = record(b);
  record(c);
  await settle();
  aLog.events.length = 0;
  const results = Array.from(
    { length: 6 },
    (_, i) => a.send("b", new Uint8Array([i])),
  );
  assert.deepEqual(results, [true, true, true, true, false, false]);
  assert.equal(
    a.send("c", new Uint8Array([9])),
    true,
    "other peers are not blocked",
  );
  assert.equal(a.stats().backpressureRefusals, 2);
  await settle();
  assert.deepEqual(aLog.events, ["drain:b"]);
  assert.deepEqual(bLog.frames.map(([, x]) => x[0]), [0, 1, 2, 3]);
  assert.equal(a.send("b", new Uint8Array([4])), true);
  await net.close();
});

Deno.test("memory transport: size and peer checks", async () => {
  const net = new MemoryNetwork({ maxFrameSize: 8 });
  const a = net.connect("a");
  net.connect("b");
  assert.equal(a.maxFrameSize, 8);
  assert.throws(() => a.send("b", new Uint8Array(9)), RangeError);
  assert.equal(a.send("b", new Uint8Array(8)), true);
  assert.throws(() => a.send("zed", new Uint8Array(1)), TypeError);
  assert.equal(a.stats().oversizeRefusals, 1);
  assert.equal(a.stats().unknownPeerRefusals, 1);
  assert.throws(() => net.connect("a"), TypeError, "id in use");
  assert.throws(() => net.connect(""), TypeError);
  assert.throws(() => new MemoryNetwork({ queueLimit: 0 }), RangeError);
  assert.throws(() => new MemoryNetwork({ maxFrameSize: 0 }), RangeError);
  await net.close();
});

Deno.test("memory transport: peers see each other join and leave", async () => {
  const net = new MemoryNetwork();
  const a = net.connect("a");
  const aLog = record(a);
  const b = net.connect("b");
  const bLog = record(b);
  await settle();
  assert.deepEqual(aLog.events, ["up:b"]);
  assert.deepEqual(bLog.events, ["up:a"]);
  assert.deepEqual(net.peers, ["a", "b"]);
  const c = new MemoryTransport(net, "c");
  record(c);
  await b.close();
  await settle();
  assert.deepEqual(aLog.events, ["up:b", "up:c", "down:b"]);
  assert.deepEqual(net.peers, ["a", "c"]);
  assert.equal(a.stats().connectionsOpened, 2);
  assert.equal(a.stats().connectionsClosed, 1);
  // The id can be reused after it left.
  const b2 = net.connect("b");
  record(b2);
  await settle();
  assert.deepEqual(aLog.events.at(-1), "up:b");
  await net.close();
  await c.close();
});

Deno.test("memory transport: close drops queued frames both ways and later sends", async () => {
  const net = new MemoryNetwork();
  const a = net.connect("a");
  const b = net.connect("b");
  const aLog = record(a);
  const bLog = record(b);
  a.send("b", new Uint8Array([1]));
  b.send("a", new Uint8Array([2]));
  await b.close();
  assert.equal(b.send("a", new Uint8Array([3])), true);
  assert.equal(
    a.send("b", new Uint8Array([4])),
    true,
    "sending to a peer that left is dropped",
  );
  await settle();
  assert.deepEqual(bLog.frames, []);
  assert.deepEqual(aLog.frames, []);
  assert.equal(a.stats().undeliverableDropped, 2);
  assert.equal(b.stats().undeliverableDropped, 2);
  await net.close();
});

Deno.test("memory transport: frames before a handler is installed are dropped", async () => {
  const net = new MemoryNetwork();
  const a = net.connect("a");
  const b = net.connect("b");
  a.send("b", new Uint8Array([1]));
  await settle();
  const bLog = record(b);
  a.send("b", new Uint8Array([2]));
  await settle();
  assert.deepEqual(bLog.frames, [["a", [2]]]);
  assert.equal(a.stats().undeliverableDropped, 1);
  await net.close();
});

Deno.test("memory transport: closing from a handler stops a busy ping-pong at once", async () => {
  // Around round 512 the network falls back from microtasks to a timer so
  // that timers are not starved; closing there must still stop everything.
  for (const stopAt of [3, 511, 512, 513]) {
    const net = new MemoryNetwork();
    const a = net.connect("a");
    const b = net.connect("b");
    let rounds = 0;
    let echoes = 0;
    a.setHandler({
      onFrame: () => {
        a.send("b", new Uint8Array(1));
        if (++rounds === stopAt) net.close();
      },
    });
    b.setHandler({
      onFrame: () => {
        echoes++;
        b.send("a", new Uint8Array(1));
      },
    });
    a.send("b", new Uint8Array(1));
    while (rounds < stopAt) await settle();
    await settle();
    await settle();
    assert.equal(rounds, stopAt);
    assert.equal(echoes, stopAt);
    assert.deepEqual(net.peers, []);
  }
});

Deno.test("memory transport delivers the rest of a batch, then rethrows a handler's error", async () => {
  const net = new MemoryNetwork();
  const a = net.connect("a");
  const b = net.connect("b");
  const seen: number[] = [];
  b.setHandler({
    onFrame: (_from, payload) => {
      seen.push(payload[0]);
      if (payload[0] === 1) throw new Error("handler failed on 1");
    },
  });
  const escaped = Promise.withResolvers<unknown>();
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    escaped.resolve(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    for (const n of [1, 2, 3]) a.send("b", Uint8Array.of(n));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const error = await Promise.race([
      escaped.promise,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("the handler's error never escaped")),
          2_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    assert.ok(error instanceof Error && /failed on 1/.test(error.message));
    assert.deepEqual(seen, [1, 2, 3]);
  } finally {
    globalThis.removeEventListener("error", onError);
    await a.close();
    await b.close();
  }
});
