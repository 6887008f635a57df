import assert from "node:assert/strict";
import { startOracleGroup } from "../../oracle/server.ts";
import { freePorts, withTimeout } from "../oracle/_oracle_processes.ts";
import { JsonLinesProcess } from "../_process.ts";
import { until } from "../_until.ts";

const SCRIPT = new URL("./_member_process.ts", import.meta.url).pathname;

/** One member process and everything it printed. */
class MemberProcess extends JsonLinesProcess {
  constructor(args: string[]) {
    super(SCRIPT, args);
  }

  /** Delivered ids per view, in order. */
  deliveries(): Map<number, string[]> {
    const byView = new Map<number, string[]>();
    for (const l of this.events("deliver")) {
      const v = l.viewId as number;
      byView.set(v, [...byView.get(v) ?? [], l.id as string]);
    }
    return byView;
  }
}

const lastView = (p: MemberProcess) =>
  p.events("view").at(-1) as { viewId: number; members: string[] } | undefined;

/**
 * Three member processes multicast with `strategy`; `victim` picks which
 * one is SIGKILLed mid-stream (by its member name, from the view of
 * three). The survivors must agree on every view's messages (and order),
 * the victim must have delivered what they did in every earlier view,
 * and a new member must restore the state the survivors have at its view.
 * With `gbcastEvery`, every such message of each member is a gbcast: each
 * must end its view at every survivor, in one order.
 */
async function killMidStream(
  strategy: string,
  victim: (members: readonly string[]) => string,
  transport: "tcp" | "udp" = "tcp",
  gbcastEvery = 0,
): Promise<string> {
  const oracle = await startOracleGroup({ size: 3 });
  const members: MemberProcess[] = [];
  try {
    const ports = freePorts(4);
    const start = (label: string, port: number, count: number) => {
      const p = new MemberProcess([
        "--label",
        label,
        "--listen",
        `127.0.0.1:${port}`,
        "--oracle",
        JSON.stringify(oracle.replicas),
        "--strategy",
        strategy,
        "--count",
        String(count),
        "--every",
        "4",
        "--transport",
        transport,
        "--gbcast-every",
        String(gbcastEvery),
      ]);
      members.push(p);
      return p;
    };
    const three = [
      start("a", ports[0], 2000),
      start("b", ports[1], 2000),
      start("c", ports[2], 2000),
    ];
    await until(
      () => `a view of three: ${three.map((p) => JSON.stringify(lastView(p)))}`,
      () => three.every((p) => lastView(p)?.members.length === 3),
      30_000,
    );
    const name = (p: MemberProcess) => p.events("joined")[0]?.name as string;
    const killed = victim(lastView(three[0])!.members);
    const dead = three.find((p) => name(p) === killed)!;
    const [x, y] = three.filter((p) => p !== dead);
    await until(
      () => `${killed} to deliver 400 messages`,
      () => dead.events("deliver").length >= 400,
      30_000,
    );
    await dead.kill("SIGKILL");
    const killedIn = lastView(x)!.viewId;
    await until(
      () =>
        `a view without ${killed}: ${
          [x, y].map((p) => JSON.stringify(lastView(p)))
        }`,
      () =>
        [x, y].every((p) => {
          const v = lastView(p)!;
          return v.viewId > killedIn && !v.members.includes(killed);
        }),
      30_000,
    );
    const [dx, dy] = [x.deliveries(), y.deliveries()];
    const installed = (p: MemberProcess) =>
      new Set(p.events("view").map((l) => l.viewId as number));
    const both = [...installed(x)].filter((v) => installed(y).has(v));
    // A view is over at both survivors once both installed a later one:
    // the current view of either may still get messages (with gbcasts,
    // views follow each other quickly, and one may be a view ahead).
    const finished = Math.min(lastView(x)!.viewId, lastView(y)!.viewId);
    const gbcastIds = new Set(
      x.events("deliver").filter((l) => l.strategy === "gbcast").map((l) =>
        l.id as string
      ),
    );
    const isGbcast = (id: string) => gbcastIds.has(id);
    let compared = 0;
    let gbcasts = 0;
    for (const viewId of both) {
      if (viewId >= finished) continue;
      const ids = dx.get(viewId) ?? [];
      const other = dy.get(viewId) ?? [];
      if (strategy === "abcast") {
        assert.deepEqual(other, ids, `view ${viewId}: one order`);
      } else {
        assert.deepEqual([...other].sort(), [...ids].sort(), `view ${viewId}`);
      }
      assert.equal(new Set(ids).size, ids.length, `duplicates in ${viewId}`);
      // A view's gbcasts end it, alike at both survivors.
      assert.deepEqual(
        other.filter(isGbcast),
        ids.filter(isGbcast),
        `view ${viewId}: the same gbcasts in one order`,
      );
      for (const list of [ids, other]) {
        const first = list.findIndex(isGbcast);
        assert.ok(
          first < 0 || list.slice(first).every(isGbcast),
          `view ${viewId}: a message after a gbcast`,
        );
      }
      gbcasts += ids.filter(isGbcast).length;
      compared += ids.length;
    }
    assert.ok(compared >= 300, `only ${compared} deliveries compared`);
    if (gbcastEvery > 0) {
      assert.ok(gbcasts >= 10, `only ${gbcasts} gbcasts compared`);
    }
    // Before its last view, the victim delivered what the survivors did.
    for (const [viewId, ids] of dead.deliveries()) {
      if (
        viewId === killedIn || viewId >= finished || !installed(x).has(viewId)
      ) continue;
      assert.deepEqual(
        [...ids].sort(),
        [...dx.get(viewId) ?? []].sort(),
        `${killed} in view ${viewId}`,
      );
    }

    // A new member joins and restores the state the others have at its view.
    const d = start("d", ports[3], 0);
    await until(
      () => `d to restore its state: ${JSON.stringify(d.lines.slice(-3))}`,
      () => d.events("state").length > 0,
      30_000,
    );
    const restored = d.events("state")[0];
    const at = restored.viewId as number;
    for (const p of [x, y]) {
      const view = p.events("view").find((l) => l.viewId === at);
      assert.ok(view, `no view ${at} at ${name(p)}`);
      assert.equal(view.state, restored.state);
    }
    return `${strategy}${
      gbcastEvery > 0 ? ` and gbcast` : ""
    } over ${transport}: ${compared} deliveries (${gbcasts} gbcasts) agreed across ${both.length} views; ${killed} killed in view ${killedIn}; d restored state ${restored.state} at view ${at}`;
  } finally {
    for (const p of members) await p.kill("SIGKILL");
    await withTimeout(oracle.stop(), 20_000, "the Oracle to stop");
  }
}

Deno.test("group processes over TCP, abcast: a member SIGKILLed mid-stream; survivors agree on each view's messages in one order; a new member restores their state", async () => {
  console.log(await killMidStream("abcast", (members) => members[2]));
});

Deno.test("group processes over TCP, abcast: the sequencer SIGKILLed mid-stream; the survivors still agree on one order", async () => {
  console.log(await killMidStream("abcast", (members) => members[0]));
});

Deno.test("group processes over TCP, cbcast and fbcast: a member SIGKILLed mid-stream; survivors deliver the same messages in each view", async () => {
  console.log(await killMidStream("cbcast", (members) => members[1]));
  console.log(await killMidStream("fbcast", (members) => members[2]));
});

Deno.test("group processes over TCP and UDP, fbcast with every 25th message a gbcast: a member SIGKILLed mid-stream; every gbcast ends its view at every survivor, in one order", async () => {
  console.log(
    await killMidStream("fbcast", (members) => members[1], "tcp", 25),
  );
  console.log(
    await killMidStream("cbcast", (members) => members[0], "udp", 25),
  );
});

Deno.test("group processes over UDP: a member, then separately the abcast sequencer, SIGKILLed mid-stream; survivors agree; a new member restores their state", async () => {
  console.log(await killMidStream("abcast", (members) => members[1], "udp"));
  console.log(await killMidStream("abcast", (members) => members[0], "udp"));
  console.log(await killMidStream("cbcast", (members) => members[2], "udp"));
});
