import { until } from "../_until.ts";
import assert from "node:assert/strict";
import { dispatchTable, type View } from "../../actors/actor.ts";
import {
  Add,
  CounterActor,
  EXAMPLE_ACTORS,
  Get,
  KvActor,
  Put,
  Read,
} from "../../actors/_cli_actors.ts";
import { Node } from "../../actors/node.ts";

Deno.test("the example actors declare abcast put, cbcast add, fbcast reads and a view callback", () => {
  const kv = dispatchTable(KvActor);
  assert.equal(kv.bySchema.get(Put)?.order, "abcast");
  assert.equal(kv.bySchema.get(Get)?.order, "fbcast");
  assert.deepEqual(kv.views, ["view"]);
  const counter = dispatchTable(CounterActor);
  assert.equal(counter.bySchema.get(Add)?.order, "cbcast");
  assert.equal(counter.bySchema.get(Read)?.order, "fbcast");
  assert.deepEqual(counter.views, ["view"]);
  assert.deepEqual(Object.keys(EXAMPLE_ACTORS), ["kv", "counter"]);
  assert.ok(EXAMPLE_ACTORS.kv.create() instanceof KvActor);
  assert.ok(EXAMPLE_ACTORS.counter.create() instanceof CounterActor);
});

Deno.test("kv and counter members agree, and a member that joins later gets the state", async (t) => {
  const node = await Node.start();
  try {
    const views: View[] = [];
    const first = new KvActor();
    first.viewChanged = (view) => views.push(view);
    const kv1 = await node.join("/cohort/kv", first, { label: "a" });
    const kv2 = await node.join("/cohort/kv", new KvActor(), { label: "b" });
    await until("a view of two", () => kv1.view?.members.length === 2);
    await t.step("puts are applied everywhere in one order", async () => {
      await kv1.send(Put, { key: "k", value: "1" });
      await kv2.send(Put, { key: "k", value: "2" });
      await kv1.send(Put, { key: "j", value: "x" });
      await until(
        "three puts at both",
        () => [kv1, kv2].every((h) => Object.keys(h.actor.data).length === 2),
      );
      await until("the same map", () => kv1.actor.data.k === kv2.actor.data.k);
      const replies = await kv2.query(Get, { key: "j" }, { replies: "all" });
      assert.deepEqual(replies.map((r) => r.ok ? r.value : r.error), [
        "x",
        "x",
      ]);
      assert.ok(views.some((v) => v.members.length === 2));
    });
    await t.step("a third member starts from the others' map", async () => {
      const kv3 = await node.join("/cohort/kv", new KvActor(), { label: "c" });
      await until("a view of three", () => kv3.view?.members.length === 3);
      await until("the map arrived", () => kv3.actor.data.j === "x");
      assert.deepEqual(kv3.actor.data, kv1.actor.data);
    });
    await t.step(
      "counter additions add up at every member, and move to a new one",
      async () => {
        const c1 = await node.join("/cohort/counter", new CounterActor(), {
          label: "a",
        });
        await until("c1 in its view", () => c1.view !== undefined);
        await c1.send(Add, { amount: 5 });
        await c1.send(Add, { amount: -2 });
        await until("c1 counted", () => c1.actor.value === 3);
        const c2 = await node.join("/cohort/counter", new CounterActor(), {
          label: "b",
        });
        await until("c2 got the value", () => c2.actor.value === 3);
        await c2.send(Add, { amount: 10 });
        await until(
          "both at 13",
          () => c1.actor.value === 13 && c2.actor.value === 13,
        );
        const replies = await c1.query(Read, {}, { replies: "all" });
        assert.deepEqual(replies.map((r) => r.ok ? r.value : r.error), [
          13,
          13,
        ]);
      },
    );
  } finally {
    await node.close();
  }
});
