import assert from "node:assert/strict";
import { OnFirstUse } from "../../runtime/_on_first_use.ts";

Deno.test("OnFirstUse starts on first use, shares the resource, and forgets a failed start", async () => {
  let starts = 0;
  let fail = true;
  const lazy = new OnFirstUse(() => {
    starts++;
    return fail ? Promise.reject(new Error("down")) : Promise.resolve(starts);
  });
  assert.equal(await lazy.started(), undefined, "started() never starts it");
  assert.equal(starts, 0);
  await assert.rejects(lazy.get(), /down/);
  assert.equal(
    await lazy.started(),
    undefined,
    "a failed start is not a resource",
  );
  fail = false;
  assert.equal(await lazy.get(), 2, "the next use tries again");
  assert.equal(await lazy.get(), 2, "then shares it");
  assert.equal(await lazy.started(), 2);
  assert.equal(starts, 2);
});
