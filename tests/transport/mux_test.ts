import assert from "node:assert/strict";
import { MemoryNetwork } from "../../transport/memory_transport.ts";
import { TransportMux } from "../../transport/mux.ts";
import type { PeerId, Transport } from "../../transport/transport.ts";

/** Lets queued microtasks and zero-delay timers run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function record(view: Transport): string[] {
  const seen: string[] = [];
  view.setHandler({
    onFrame: (from, payload) => seen.push(`${from}:${payload[0]}`),
    onPeerUp: (peer) => seen.push(`up:${peer}`),
    onPeerDown: (peer) => seen.push(`down:${peer}`),
  });
  return seen;
}

function peers(net: MemoryNetwork, ids: PeerId[]): Map<PeerId, Transport> {
  const map = new Map<PeerId, Transport>();
  for (const id of ids) {
    const t = net.connect(id);
    t.setHandler({ onFrame: () => {} });
    map.set(id, t);
  }
  return map;
}

Deno.test("mux: frames and peer events go to the view that claims their peer, the rest to rest()", async () => {
  const net = new MemoryNetwork();
  const node = net.connect("n");
  const others = peers(net, ["r1", "r2", "c1"]);
  const mux = new TransportMux(node);
  const upstream = record(mux.route(["r1", "r2"]));
  const local = record(mux.rest());
  others.get("r1")!.send("n", new Uint8Array([1]));
  others.get("c1")!.send("n", new Uint8Array([2]));
  others.get("r2")!.send("n", new Uint8Array([3]));
  await settle();
  assert.deepEqual(upstream.filter((s) => !s.startsWith("up")), [
    "r1:1",
    "r2:3",
  ]);
  assert.deepEqual(local.filter((s) => !s.startsWith("up")), ["c1:2"]);
  assert.equal(mux.dropped, 0);
  await net.close();
});

Deno.test("mux: a view sends through the shared transport under its id", async () => {
  const net = new MemoryNetwork();
  const node = net.connect("n");
  const r1 = net.connect("r1");
  const got = record(r1);
  const view = new TransportMux(node).route(["r1"]);
  assert.equal(view.id, "n");
  assert.equal(view.maxFrameSize, node.maxFrameSize);
  assert.equal(view.send("r1", new Uint8Array([7])), true);
  await settle();
  assert.ok(got.includes("n:7"));
  await net.close();
});

Deno.test("mux: closing a view releases its peers (dropped, then to rest()) and stops its sends", async () => {
  const net = new MemoryNetwork();
  const node = net.connect("n");
  const r1 = net.connect("r1");
  r1.setHandler({ onFrame: () => {} });
  const mux = new TransportMux(node);
  const view = mux.route(["r1"]);
  const upstream = record(view);
  await view.close();
  assert.equal(view.send("r1", new Uint8Array([1])), false);
  r1.send("n", new Uint8Array([1]));
  await settle();
  assert.equal(mux.dropped, 1, "nobody claims r1 and there is no rest view");
  const local = record(mux.rest());
  r1.send("n", new Uint8Array([2]));
  await settle();
  assert.deepEqual(upstream.filter((s) => !s.startsWith("up")), []);
  assert.deepEqual(local.filter((s) => !s.startsWith("up")), ["r1:2"]);
  // The peer can be claimed again.
  mux.route(["r1"]);
  await net.close();
});

Deno.test("mux: refuses an empty route, a peer claimed twice and a second rest view", () => {
  const net = new MemoryNetwork();
  const mux = new TransportMux(net.connect("n"));
  assert.throws(() => mux.route([]), /no peer given/);
  mux.route(["a"]);
  assert.throws(() => mux.route(["b", "a"]), /"a": another view claims it/);
  mux.rest();
  assert.throws(() => mux.rest(), /already taken/);
});
