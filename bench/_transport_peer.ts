/**
 * The child process of the transport benchmark. Modes:
 *
 * - `tcp-send`: dials the receiver with a TcpTransport, sends `--size`-byte
 *   frames for `--seconds`, then an empty end marker, and exits once the
 *   receiver answers it.
 * - `raw-send`: the baseline: plain `Deno.connect`, 4-byte length-prefixed
 *   frames copied into a 64 KiB buffer written when full, then a
 *   zero-length end marker.
 * - `echo`: dials with a TcpTransport and echoes every frame until killed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { TcpTransport } from "../transport/tcp_transport.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mode: { type: "string" },
    port: { type: "string" },
    size: { type: "string", default: "256" },
    seconds: { type: "string", default: "2" },
  },
});

const HOST = "127.0.0.1";
const port = Number(values.port);
const size = Number(values.size);
const durationMs = Number(values.seconds) * 1000;

async function tcpSend(): Promise<void> {
  const t = await TcpTransport.start({
    id: "sender",
    peers: { receiver: `${HOST}:${port}` },
  });
  const up = Promise.withResolvers<void>();
  const done = Promise.withResolvers<void>();
  let drained = Promise.withResolvers<void>();
  t.setHandler({
    onFrame: () => done.resolve(),
    onPeerUp: () => up.resolve(),
    onDrain: () => drained.resolve(),
  });
  await up.promise;
  const payload = new Uint8Array(size);
  const end = performance.now() + durationMs;
  do {
    for (let i = 0; i < 4096; i++) {
      while (!t.send("receiver", payload)) {
        await drained.promise;
        drained = Promise.withResolvers<void>();
      }
    }
  } while (performance.now() < end);
  while (!t.send("receiver", new Uint8Array(0))) {
    await drained.promise;
    drained = Promise.withResolvers<void>();
  }
  await done.promise;
  await t.close();
}

async function rawSend(): Promise<void> {
  const conn = await Deno.connect({ hostname: HOST, port });
  conn.setNoDelay(true);
  const buf = new Uint8Array(64 * 1024);
  const payload = new Uint8Array(size);
  const frameSize = 4 + size;
  let len = 0;
  const end = performance.now() + durationMs;
  do {
    for (let i = 0; i < 4096; i++) {
      if (buf.length - len < frameSize) {
        await writeAll(conn, buf.subarray(0, len));
        len = 0;
      }
      buf[len] = size >>> 24;
      buf[len + 1] = (size >>> 16) & 0xff;
      buf[len + 2] = (size >>> 8) & 0xff;
      buf[len + 3] = size & 0xff;
      buf.set(payload, len + 4);
      len += frameSize;
    }
  } while (performance.now() < end);
  if (buf.length - len < 4) {
    await writeAll(conn, buf.subarray(0, len));
    len = 0;
  }
  buf.fill(0, len, len + 4); // zero length: end marker
  len += 4;
  await writeAll(conn, buf.subarray(0, len));
  // Wait for the receiver to close, so every byte is read before we exit.
  await conn.read(new Uint8Array(1)).catch(() => null);
  conn.close();
}

async function echo(): Promise<void> {
  const t = await TcpTransport.start({
    id: "echo",
    peers: { receiver: `${HOST}:${port}` },
  });
  t.setHandler({ onFrame: (from, payload) => t.send(from, payload) });
  // Runs until the benchmark kills this process.
}

async function writeAll(conn: Deno.TcpConn, data: Uint8Array): Promise<void> {
  let written = 0;
  while (written < data.length) {
    written += await conn.write(data.subarray(written));
  }
}

switch (values.mode) {
  case "tcp-send":
    await tcpSend();
    break;
  case "raw-send":
    await rawSend();
    break;
  case "echo":
    await echo();
    break;
  default:
    console.error(`_transport_peer: unknown --mode ${values.mode}`);
    Deno.exit(2);
}
