import assert from "node:assert/strict";
import { MemoryNetwork } from "../../transport/memory_transport.ts";
import { TcpTransport } from "../../transport/tcp_transport.ts";
import type { Transport } from "../../transport/transport.ts";
import { UdpTransport } from "../../transport/udp_transport.ts";
import { Simulation } from "../../sim/mod.ts";
import { waitUntil } from "./_helpers.ts";

// The Transport contract says `send` copies the payload before it returns,
// so callers (the Oracle's codec) may reuse their buffer at once.

/** Sends two frames from one reused buffer, overwriting it after each send. */
function sendReusing(from: Transport, to: string): void {
  const buffer = new Uint8Array([1, 2, 3]);
  assert.ok(from.send(to, buffer));
  buffer.set([4, 5, 6]);
  assert.ok(from.send(to, buffer));
  buffer.set([9, 9, 9]);
}

function collect(t: Transport): number[][] {
  const got: number[][] = [];
  t.setHandler({ onFrame: (_from, payload) => got.push([...payload]) });
  return got;
}

const EXPECTED = [[1, 2, 3], [4, 5, 6]];

Deno.test("send copies the payload: memory transport", async () => {
  const net = new MemoryNetwork();
  const a = net.connect("a");
  const b = net.connect("b");
  const got = collect(b);
  sendReusing(a, "b");
  await waitUntil(() => got.length === 2, 2_000, "two frames");
  assert.deepEqual(got, EXPECTED);
  await net.close();
});

Deno.test("send copies the payload: TCP transport", async () => {
  const b = await TcpTransport.start({
    id: "b",
    listen: { port: 0 },
    acceptUnknownPeers: true,
  });
  const a = await TcpTransport.start({
    id: "a",
    peers: { b: `127.0.0.1:${b.listenAddress!.port}` },
  });
  try {
    const got = collect(b);
    sendReusing(a, "b");
    await waitUntil(() => got.length === 2, 5_000, "two frames");
    assert.deepEqual(got, EXPECTED);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("send copies the payload: UDP transport", async () => {
  const a = await UdpTransport.start({ id: "a" });
  const b = await UdpTransport.start({ id: "b" });
  try {
    a.addPeer("b", `127.0.0.1:${b.address.port}`);
    b.addPeer("a", `127.0.0.1:${a.address.port}`);
    const got = collect(b);
    sendReusing(a, "b");
    await waitUntil(() => got.length === 2, 5_000, "two frames");
    assert.deepEqual(got.sort(), EXPECTED);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("send copies the payload: simulated network", () => {
  const sim = new Simulation({ seed: 1 });
  let got: number[][] = [];
  sim.addNode("b", (env) => {
    got = collect(env.transport);
    return {};
  });
  sim.addNode("a", (env) => {
    sendReusing(env.transport, "b");
    return {};
  });
  sim.runFor(100);
  assert.deepEqual(got.sort(), EXPECTED);
});
