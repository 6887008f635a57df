import { until } from "../_until.ts";
import assert from "node:assert/strict";
import { z } from "zod";
import {
  Actor,
  dispatchTable,
  handler,
  type MessageContext,
  onView,
  type View,
} from "../../actors/actor.ts";
import { Node } from "../../actors/node.ts";
import { freePorts } from "../oracle/_oracle_processes.ts";
import {
  type GroupHandle,
  NotMemberError,
  QueryTimeoutError,
} from "../../actors/group_handle.ts";

const Put = z.object({ key: z.string().min(1), value: z.string() });
const Get = z.object({ key: z.string() });
const Boom = z.object({ why: z.string() });

class Kv extends Actor<Record<string, string>> {
  data: Record<string, string> = {};
  views: number[] = [];
  seen: string[] = [];

  @handler(Put, { order: "abcast" })
  put(m: z.infer<typeof Put>, context: MessageContext): string {
    this.data[m.key] = m.value;
    this.seen.push(`${context.order} ${m.key}`);
    return `${context.view.me} stored ${m.key}`;
  }

  @handler(Get)
  get(m: z.infer<typeof Get>): string | null {
    return this.data[m.key] ?? null;
  }

  @handler(Boom)
  boom(m: z.infer<typeof Boom>): void {
    throw new Error(m.why);
  }

  /** Who each view said this member is. */
  me: string[] = [];

  @onView
  view(v: View): void {
    this.views.push(v.members.length);
    this.me.push(v.me);
  }

  override checkpoint(): Record<string, string> {
    return this.data;
  }

  override restore(state: Record<string, string>): void {
    this.data = state;
  }
}

/** A subclass inherits its parent's handlers and adds its own. */
const Del = z.object({ key: z.string() });
class KvWithDelete extends Kv {
  @handler(Del)
  del(m: z.infer<typeof Del>): void {
    delete this.data[m.key];
  }
}

// A handler whose parameter does not accept its schema's output type fails
// `deno check` (the type-level test: remove the directive and check fails).
class Mistyped extends Actor {
  // @ts-expect-error: the parameter must accept { key: string; value: string }
  @handler(Put)
  put(_m: { key: number }): void {}
}

Deno.test("dispatch table: inherited and own handlers, one per schema; legacy and private uses are refused", () => {
  const table = dispatchTable(KvWithDelete);
  assert.deepEqual([...table.handlers.keys()].sort(), [
    "boom",
    "del",
    "get",
    "put",
  ]);
  assert.equal(table.handlers.get("put")!.order, "abcast");
  assert.equal(table.bySchema.get(Del)!.name, "del");
  assert.deepEqual(dispatchTable(Kv).handlers.has("del"), false);
  assert.deepEqual(table.views, ["view"]);
  assert.ok(dispatchTable(Mistyped).handlers.has("put"));
  assert.throws(
    () => (handler(Put) as (a: unknown, b: unknown) => void)({}, "put"),
    /standard \(TC39\) method decorator: remove "experimentalDecorators"/,
  );
  assert.throws(
    () => handler(Put, { order: "total" as never }),
    /Invalid order "total"/,
  );
  class Twice extends Actor {
    @handler(Get)
    a(): void {}
    @handler(Get)
    b(): void {}
  }
  assert.throws(() => dispatchTable(Twice), /take the same schema/);
});

Deno.test("actors in a group: typed sends in order, queries, views, state transfer, schema rejection at send and at receive, the handler-failure policy", async (t) => {
  const node = await Node.start();
  const handles: GroupHandle<Kv>[] = [];
  try {
    for (const label of ["a", "b", "c"]) {
      handles.push(await node.join("/test/kv", new Kv(), { label }));
    }
    const [a, b, c] = handles;
    await until(
      "a view of three",
      () => handles.every((h) => h.view?.members.length === 3),
    );
    // Even a view that came before the join returned names the member.
    for (const h of handles) {
      assert.ok(h.actor.me.length > 0 && h.actor.me.every((m) => m === h.me));
    }

    await t.step(
      "sends are validated, delivered everywhere in one order",
      async () => {
        await assert.rejects(
          () => a.send(Put, { key: "", value: "x" }),
          /Invalid message for handler put: key: /,
        );
        // @ts-expect-error: value must be a string (deno check refuses it)
        const wrong: z.input<typeof Put> = { key: "k", value: 1 };
        await assert.rejects(() => a.send(Put, wrong), TypeError);
        for (let i = 0; i < 20; i++) {
          await handles[i % 3].send(Put, { key: `k${i % 4}`, value: `v${i}` });
        }
        await until(
          "every put",
          () => handles.every((h) => h.actor.seen.length === 20),
        );
        assert.deepEqual(b.actor.seen, a.actor.seen);
        assert.deepEqual(c.actor.data, a.actor.data);
        assert.ok(a.actor.seen.every((s) => s.startsWith("abcast")));
      },
    );

    await t.step(
      "a query collects typed replies: all, a majority, the first",
      async () => {
        const all = await b.query(Get, { key: "k1" }, { reply: z.string() });
        assert.equal(all.length, 3);
        assert.ok(all.every((r) => r.ok && r.value === a.actor.data.k1));
        const majority = await c.query(Put, { key: "q", value: "1" }, {
          replies: "majority",
        });
        assert.ok(majority.length >= 2);
        const first = await a.query(Get, { key: "q" }, { replies: "first" });
        assert.equal(first.length, 1);
        await assert.rejects(
          () => a.query(Get, { key: "q" }, { replies: 0 }),
          /Invalid replies 0/,
        );
        await assert.rejects(
          () => a.query(Get, { key: "q" }, { replies: 4, timeoutMs: 300 }),
          (error) =>
            error instanceof QueryTimeoutError && error.replies.length === 3,
        );
      },
    );

    await t.step("point to point reaches one member's handler", async () => {
      assert.ok(a.sendTo(c.me, Put, { key: "direct", value: "only c" }));
      await until("c's direct put", () => c.actor.data.direct === "only c");
      assert.equal(a.actor.data.direct, undefined);
      assert.ok(c.actor.seen.includes("direct direct"));
    });

    await t.step(
      "a message the schema refuses on arrival is dropped and counted",
      async () => {
        // A sender whose schema is looser than the receivers' (another build).
        const loose = z.object({ key: z.string(), value: z.string() });
        class Looser extends Actor {
          @handler(loose)
          put(): void {}
        }
        const d = await node.join("/test/kv", new Looser(), { label: "loose" });
        await until("a view of four", () => a.view?.members.length === 4);
        const before = a.stats().invalidReceived;
        await d.send(loose, { key: "", value: "bad" });
        await until("the refusal", () => a.stats().invalidReceived > before);
        assert.equal(a.actor.data[""], undefined);
        await d.leave();
        await until(
          "a view of three again",
          () => a.view?.members.length === 3,
        );
      },
    );

    await t.step("a new member gets the state at its view", async () => {
      const d = await node.join("/test/kv", new Kv(), { label: "d" });
      handles.push(d);
      await until("d restored", () => d.actor.views.length > 0);
      assert.deepEqual(d.actor.data, a.actor.data);
    });

    await t.step(
      "groups joined under one label share its endpoint: one name, one transport",
      async () => {
        const other = await node.join("/test/other", new Kv(), { label: "a" });
        const again = await node.join("/test/other", new Kv(), { label: "z" });
        assert.equal(other.me, a.me, "one endpoint: one member name");
        await until(
          "a view of two in the other group",
          () => again.view?.members.length === 2,
        );
        await other.send(Put, { key: "elsewhere", value: "1" });
        await until(
          "the other group's put",
          () => again.actor.data.elsewhere === "1",
        );
        assert.equal(a.actor.data.elsewhere, undefined, "groups stay apart");
        await assert.rejects(
          () => node.join("/test/other", new Kv(), { label: "a" }),
          /already a member of \/test\/other/,
        );
        await other.leave();
        await again.leave();
        await a.send(Put, { key: "still", value: "here" });
        await until("a's group goes on", () => b.actor.data.still === "here");
      },
    );

    await t.step(
      "a handler that throws: by default the member leaves",
      async () => {
        const failures: string[] = [];
        const e = await node.join("/test/kv", new Kv(), {
          label: "e",
          onFailure: (f) => failures.push(`${f.handler}: ${String(f.error)}`),
        });
        const f = await node.join("/test/kv", new Kv(), {
          label: "f",
          failurePolicy: "continue",
        });
        await until("e and f in", () => a.view?.members.length === 6);
        // Point to point, so that only e and f run the failing handler.
        assert.ok(a.sendTo(e.me, Boom, { why: "bad state" }));
        assert.ok(a.sendTo(f.me, Boom, { why: "bad state" }));
        await until("e out", () => !a.view!.members.includes(e.me));
        assert.deepEqual(failures, ["boom: Error: bad state"]);
        await assert.rejects(() => e.send(Get, { key: "x" }), NotMemberError);
        assert.ok(a.view!.members.includes(f.me), "f's policy is to go on");
        assert.equal(f.stats().handlerFailures, 1);
      },
    );
  } finally {
    await node.close();
  }
});

Deno.test("three nodes that each run one Oracle replica form a cluster with no separate Oracle processes", async () => {
  const ports = freePorts(3);
  const replicas = Object.fromEntries(
    ports.map((port, i) => [`${i + 1}`, `127.0.0.1:${port}`]),
  );
  const root = await Deno.makeTempDir({ prefix: "cohort-embedded-" });
  const nodes: Node[] = [];
  let handles: GroupHandle<Kv>[] = [];
  try {
    for (const id of Object.keys(replicas)) {
      nodes.push(
        await Node.start({
          replica: { id, replicas, dataDir: `${root}/${id}` },
        }),
      );
    }
    handles = await Promise.all(
      nodes.map((node) => node.join("/test/embedded", new Kv())),
    );
    await until(
      "a view of three",
      () => handles.every((h) => h.view?.members.length === 3),
    );
    await handles[2].send(Put, { key: "k", value: "v" });
    await until(
      "the put everywhere",
      () => handles.every((h) => h.actor.data.k === "v"),
    );
    await assert.rejects(
      () =>
        Node.start({
          oracle: replicas,
          replica: { id: "1", replicas, dataDir: root },
        }),
      /either oracle .* or replica/,
    );
  } finally {
    // Leave while every replica is up: a leave needs the Oracle's majority.
    await Promise.all(handles.map((h) => h.leave()));
    await Promise.all(nodes.map((node) => node.close()));
    await Deno.remove(root, { recursive: true });
  }
});
