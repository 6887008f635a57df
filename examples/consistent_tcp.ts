/**
 * Consistent failure detection for a plain TCP connection: two processes
 * talk over their own TCP connection, and each breaks it if and only if
 * the Oracle reports the other failed (a view of their pair group
 * without it), never on a timeout of its own. So both sides agree on
 * whether the other is alive: the one the Oracle has not excluded.
 *
 * This process starts an Oracle, starts the peer process, and talks to
 * it; then it kills the peer with SIGKILL and breaks the connection when
 * the Oracle's view says so.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read --allow-write --allow-run examples/consistent_tcp.ts
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Actor, Node, onView, startOracleGroup, type View } from "../mod.ts";

const GROUP = "/demo/consistent-tcp";

class Pair extends Actor {
  members: readonly string[] = [];
  changed: () => void = () => {};

  @onView
  view(view: View): void {
    this.members = view.members;
    this.changed();
  }
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    peer: { type: "boolean", default: false },
    oracle: { type: "string" },
  },
});

if (values.peer) {
  // The peer: in the pair group, and an echo server on its own TCP port.
  const node = await Node.start({
    oracle: JSON.parse(values.oracle!),
    sessionTtlMs: 3_000,
  });
  const handle = await node.join(GROUP, new Pair(), { label: "peer" });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log(JSON.stringify({
    name: handle.me,
    port: (listener.addr as Deno.NetAddr).port,
  }));
  for await (const conn of listener) {
    (async () => {
      const buffer = new Uint8Array(64);
      for (let n; (n = await conn.read(buffer)) !== null;) {
        await conn.write(buffer.subarray(0, n));
      }
    })().catch(() => {});
  }
} else {
  const oracle = await startOracleGroup({ size: 3 });
  const node = await Node.start({
    oracle: oracle.replicas,
    sessionTtlMs: 3_000,
  });
  const pair = new Pair();
  const me = await node.join(GROUP, pair, { label: "main" });
  const peer = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      new URL(import.meta.url).pathname,
      "--peer",
      "--oracle",
      JSON.stringify(oracle.replicas),
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = peer.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the peer exited");
      text += value;
    }
    const { name, port } = JSON.parse(text.slice(0, text.indexOf("\n")));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    let broken = false;
    let brokeWhilePeerInView = false;
    pair.changed = () => {
      // The Oracle's word, and only it, breaks the connection.
      if (
        !broken && !pair.members.includes(name) && pair.members.includes(me.me)
      ) {
        broken = true;
        conn.close();
      }
    };
    for (let i = 0; i < 500 && !pair.members.includes(name); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // Talk while both are up.
    const buffer = new Uint8Array(4);
    let echoes = 0;
    for (let i = 0; i < 20; i++) {
      await conn.write(new Uint8Array([1, 2, 3, 4]));
      if ((await conn.read(buffer)) === 4) echoes++;
    }
    peer.kill("SIGKILL");
    const killedAt = Date.now();
    brokeWhilePeerInView = broken; // nothing may break it before the report
    for (let i = 0; i < 1000 && !broken; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    console.log(JSON.stringify({
      echoes,
      brokenAfterOracleReport: broken,
      msFromKillToBreak: Date.now() - killedAt,
      brokenBeforeReport: brokeWhilePeerInView,
      ok: echoes === 20 && broken && !brokeWhilePeerInView,
    }));
  } finally {
    try {
      peer.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await peer.status;
    await node.close();
    await oracle.stop();
  }
}
