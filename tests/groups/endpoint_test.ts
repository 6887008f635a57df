import { until } from "../_until.ts";
import assert from "node:assert/strict";
import { GroupEndpoint } from "../../groups/endpoint.ts";
import { startOracleGroup } from "../../oracle/server.ts";
import { TcpTransport } from "../../transport/tcp_transport.ts";
import { freePorts } from "../oracle/_oracle_processes.ts";

Deno.test("endpoint: frames without a well-formed group tag, or for a group it is not in, are dropped and counted; its groups go on", async () => {
  const oracle = await startOracleGroup({ size: 1 });
  const [port] = freePorts(1);
  const endpoint = await GroupEndpoint.start({
    label: "e",
    listen: `127.0.0.1:${port}`,
    oracle: oracle.replicas,
  });
  const stranger = await TcpTransport.start({
    id: "stranger",
    listen: { hostname: "127.0.0.1", port: 0 },
  });
  try {
    const delivered: string[] = [];
    const member = await endpoint.join("/test/endpoint", {
      deliver: (m) => delivered.push(new TextDecoder().decode(m.payload)),
    });
    await until("a view", () => member.view !== undefined);
    stranger.addPeer(endpoint.name, `127.0.0.1:${port}`);
    const frames = [
      new Uint8Array([0]), // no room for a tag
      new Uint8Array([0, 9, 1]), // a tag longer than the frame
      new Uint8Array([0, 2, 0xff, 0xfe, 1]), // a tag that is not UTF-8
      new Uint8Array([0, 2, 0x2f, 0x78, 1, 2, 3]), // "/x": not joined
    ];
    for (const frame of frames) {
      for (let i = 0; i < 100 && !stranger.send(endpoint.name, frame); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    await until("every bad frame counted", () => endpoint.badFrames === 4);
    member.multicast(new TextEncoder().encode("still here"));
    await until("the group goes on", () => delivered.includes("still here"));
    assert.equal(endpoint.badFrames, 4, "the good frame is not counted");
  } finally {
    await stranger.close();
    await endpoint.close();
    await oracle.stop();
  }
});
