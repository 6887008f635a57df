/**
 * A peer in its own process for the TCP transport tests. Runs until killed.
 *
 * - `--mode=echo --port=P`: listens on 127.0.0.1:P, accepts any peer and
 *   echoes every frame back to its sender. Prints `ready <port>` on stdout
 *   once listening.
 * - `--mode=flood --target=host:port --to=ID`: dials peer ID and sends it
 *   60 KiB frames as fast as the transport accepts them. Prints `ready`
 *   once connected.
 *
 * Run with `deno run --allow-net=127.0.0.1`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { TcpTransport } from "../../transport/tcp_transport.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mode: { type: "string", default: "echo" },
    id: { type: "string", default: "echo" },
    port: { type: "string" },
    target: { type: "string" },
    to: { type: "string" },
  },
});

const encoder = new TextEncoder();

async function echo(): Promise<void> {
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0) {
    throw new TypeError(`invalid --port ${values.port}`);
  }
  const transport = await TcpTransport.start({
    id: values.id,
    listen: { hostname: "127.0.0.1", port },
    acceptUnknownPeers: true,
  });
  transport.setHandler({
    onFrame(from, payload) {
      transport.send(from, payload);
    },
  });
  await Deno.stdout.write(
    encoder.encode(`ready ${transport.listenAddress!.port}\n`),
  );
}

async function flood(): Promise<void> {
  const to = values.to ?? "node";
  const transport = await TcpTransport.start({
    id: values.id,
    peers: { [to]: values.target ?? "" },
  });
  const up = Promise.withResolvers<void>();
  let drained = Promise.withResolvers<void>();
  transport.setHandler({
    onFrame() {},
    onPeerUp: () => up.resolve(),
    onDrain: () => drained.resolve(),
  });
  await up.promise;
  await Deno.stdout.write(encoder.encode("ready\n"));
  const frame = new Uint8Array(60 * 1024);
  while (true) {
    while (transport.send(to, frame)) { /* fill the queue */ }
    await drained.promise;
    drained = Promise.withResolvers<void>();
  }
}

if (values.mode === "flood") await flood();
else await echo();
