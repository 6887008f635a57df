/**
 * Transport benchmark: frames/s of the TCP transport between two OS
 * processes for several frame sizes, against a raw-socket baseline measured
 * in the same run, and the round-trip time of one frame.
 *
 * This process is the receiver (and the ping side); a child process
 * (`_transport_peer.ts`) is the sender (and the echo side). Rates are
 * measured at the receiver, from the first frame to the end marker.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { usageError } from "./_usage.ts";
import { TcpTransport } from "../transport/tcp_transport.ts";

const HOST = "127.0.0.1";
const PEER_SCRIPT = new URL("./_transport_peer.ts", import.meta.url).href;

const USAGE =
  "usage: deno task bench transport [--seconds=1] [--repeat=3] [--rounds=5000] [--sizes=64,256,1024]";

/** What the benchmark prints as its last stdout line. */
export interface TransportBenchResult {
  /** TcpTransport frames per second, by payload size. */
  frames_per_s: Record<string, number>;
  /** Raw-socket baseline frames per second, by payload size. */
  raw_frames_per_s: Record<string, number>;
  /** `frames_per_s / raw_frames_per_s`, by payload size. */
  ratio: Record<string, number>;
  /** Round-trip time of one 64-byte frame, in microseconds. */
  rtt_us: { p50: number; p99: number };
}

/** Children still running, killed by PID on the way out. */
const running = new Set<Deno.ChildProcess>();

function progress(message: string): void {
  console.error(`[bench transport] ${message}`);
}

function spawnPeer(args: string[]): Deno.ChildProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", `--allow-net=${HOST}`, PEER_SCRIPT, ...args],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  running.add(child);
  child.status.finally(() => running.delete(child));
  return child;
}

async function killAll(): Promise<void> {
  for (const child of [...running]) {
    try {
      Deno.kill(child.pid, "SIGKILL");
    } catch { /* already exited */ }
    await child.status;
  }
}

async function expectExit(
  child: Deno.ChildProcess,
  what: string,
): Promise<void> {
  const timer = setTimeout(() => {
    try {
      Deno.kill(child.pid, "SIGKILL");
    } catch { /* exited */ }
  }, 10_000);
  const status = await child.status;
  clearTimeout(timer);
  if (!status.success) {
    throw new Error(
      `${what}: peer process failed (code ${status.code}, signal ${status.signal})`,
    );
  }
}

function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: timed out after ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** TcpTransport throughput: the child sends, this process counts. */
async function measureTransport(
  size: number,
  seconds: number,
): Promise<number> {
  const receiver = await TcpTransport.start({
    id: "receiver",
    listen: { hostname: HOST, port: 0 },
    acceptUnknownPeers: true,
  });
  try {
    let count = 0;
    let t0 = 0;
    const finished = Promise.withResolvers<number>();
    receiver.setHandler({
      onFrame(from, payload) {
        if (payload.length === size) {
          if (count++ === 0) t0 = performance.now();
        } else {
          finished.resolve(performance.now() - t0);
          receiver.send(from, Uint8Array.of(1));
        }
      },
    });
    const child = spawnPeer([
      "--mode=tcp-send",
      `--port=${receiver.listenAddress!.port}`,
      `--size=${size}`,
      `--seconds=${seconds}`,
    ]);
    const elapsedMs = await withTimeout(
      finished.promise,
      seconds * 1000 + 15_000,
      `transport ${size} B`,
    );
    await expectExit(child, `transport ${size} B`);
    return count / (elapsedMs / 1000);
  } finally {
    await receiver.close();
  }
}

/** Raw-socket baseline: length-prefixed frames, parsed and counted here. */
async function measureRaw(size: number, seconds: number): Promise<number> {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  let conn: Deno.TcpConn | undefined;
  try {
    const child = spawnPeer([
      "--mode=raw-send",
      `--port=${listener.addr.port}`,
      `--size=${size}`,
      `--seconds=${seconds}`,
    ]);
    conn = await withTimeout(listener.accept(), 15_000, `raw ${size} B accept`);
    const received = await withTimeout(
      countRawFrames(conn),
      seconds * 1000 + 15_000,
      `raw ${size} B`,
    );
    conn.close();
    conn = undefined;
    await expectExit(child, `raw ${size} B`);
    return received.count / (received.elapsedMs / 1000);
  } finally {
    conn?.close();
    listener.close();
  }
}

async function countRawFrames(
  conn: Deno.TcpConn,
): Promise<{ count: number; elapsedMs: number }> {
  const buf = new Uint8Array(128 * 1024);
  const header = new Uint8Array(4);
  let headerLength = 0;
  let skip = 0;
  let count = 0;
  let t0 = 0;
  while (true) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("raw sender closed before the end marker");
    let i = 0;
    if (skip > 0) {
      const s = Math.min(skip, n);
      i = s;
      skip -= s;
    }
    while (i < n) {
      let length: number;
      if (headerLength > 0 || n - i < 4) {
        while (headerLength < 4 && i < n) header[headerLength++] = buf[i++];
        if (headerLength < 4) break;
        headerLength = 0;
        length = ((header[0] << 24) | (header[1] << 16) | (header[2] << 8) |
          header[3]) >>> 0;
      } else {
        length = ((buf[i] << 24) | (buf[i + 1] << 16) | (buf[i + 2] << 8) |
          buf[i + 3]) >>> 0;
        i += 4;
      }
      if (length === 0) return { count, elapsedMs: performance.now() - t0 };
      if (count++ === 0) t0 = performance.now();
      const available = n - i;
      if (length <= available) {
        i += length;
      } else {
        skip = length - available;
        i = n;
      }
    }
  }
}

/** Ping-pong of one frame through TcpTransport; RTTs in microseconds. */
async function measureRtt(
  rounds: number,
): Promise<{ p50: number; p99: number }> {
  const pinger = await TcpTransport.start({
    id: "receiver",
    listen: { hostname: HOST, port: 0 },
    acceptUnknownPeers: true,
  });
  try {
    let echoed = Promise.withResolvers<void>();
    const up = Promise.withResolvers<void>();
    pinger.setHandler({
      onFrame: () => echoed.resolve(),
      onPeerUp: () => up.resolve(),
    });
    spawnPeer(["--mode=echo", `--port=${pinger.listenAddress!.port}`]);
    await withTimeout(up.promise, 15_000, "echo peer up");
    const ping = new Uint8Array(64);
    const samples: number[] = [];
    const warmup = Math.min(500, rounds);
    // One timer for the whole loop, so that no timer is set per round trip.
    const lost = Promise.withResolvers<never>();
    const timer = setTimeout(
      () => lost.reject(new Error("ping-pong: an echo was lost")),
      (warmup + rounds) * 5 + 10_000,
    );
    try {
      for (let i = 0; i < warmup + rounds; i++) {
        echoed = Promise.withResolvers<void>();
        const start = performance.now();
        pinger.send("echo", ping);
        await Promise.race([echoed.promise, lost.promise]);
        if (i >= warmup) samples.push((performance.now() - start) * 1000);
      }
    } finally {
      clearTimeout(timer);
    }
    samples.sort((a, b) => a - b);
    const at = (q: number) =>
      samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
    return { p50: round(at(0.5)), p99: round(at(0.99)) };
  } finally {
    await killAll();
    await pinger.close();
  }
}

function fmt(rate: number): string {
  return Math.round(rate).toLocaleString("en");
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

/**
 * Runs the transport benchmark.
 *
 * @param args `--seconds` per measurement (default 1), `--repeat` of each
 * measurement, best kept (default 3), `--rounds` of ping-pong (default
 * 5000), `--sizes` (default `64,256,1024`).
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        seconds: { type: "string", default: "1" },
        repeat: { type: "string", default: "3" },
        rounds: { type: "string", default: "5000" },
        sizes: { type: "string", default: "64,256,1024" },
      },
    }));
  } catch (error) {
    return usageError("transport", USAGE, (error as Error).message);
  }
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const repeat = Number(values.repeat);
  const sizes = values.sizes.split(",").map(Number);
  if (
    !(seconds > 0) || !(rounds >= 1) || !(repeat >= 1) ||
    sizes.some((s) => !Number.isInteger(s) || s < 1 || s > 65536)
  ) {
    return usageError(
      "transport",
      USAGE,
      "--seconds > 0, --repeat >= 1, --rounds >= 1, --sizes from 1 to 65536",
    );
  }
  const result: TransportBenchResult = {
    frames_per_s: {},
    raw_frames_per_s: {},
    ratio: {},
    rtt_us: { p50: 0, p99: 0 },
  };
  try {
    for (const size of sizes) {
      // Alternate baseline and transport; keep the best of each, which is
      // the least disturbed by other load on the machine.
      let raw = 0;
      let tcp = 0;
      for (let i = 0; i < repeat; i++) {
        const r = await measureRaw(size, seconds);
        progress(`raw ${size} B: ${fmt(r)} frames/s`);
        const t = await measureTransport(size, seconds);
        progress(`TcpTransport ${size} B: ${fmt(t)} frames/s`);
        raw = Math.max(raw, r);
        tcp = Math.max(tcp, t);
      }
      progress(
        `best of ${repeat}, ${size} B: TcpTransport ${fmt(tcp)}, raw ${
          fmt(raw)
        } frames/s (${(tcp / raw * 100).toFixed(0)}%)`,
      );
      result.frames_per_s[size] = Math.round(tcp);
      result.raw_frames_per_s[size] = Math.round(raw);
      result.ratio[size] = Math.round(tcp / raw * 1000) / 1000;
    }
    result.rtt_us = await measureRtt(rounds);
    progress(
      `round trip: p50 ${result.rtt_us.p50} µs, p99 ${result.rtt_us.p99} µs`,
    );
  } finally {
    await killAll();
  }
  console.log(JSON.stringify(result));
  return 0;
}
