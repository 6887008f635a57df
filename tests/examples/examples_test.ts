import assert from "node:assert/strict";
import { runExample } from "./_run_example.ts";

/** An example's closing JSON line. */
async function run(name: string): Promise<Record<string, unknown>> {
  return (await runExample(name)).result;
}

Deno.test("locks: one holder at a time, and a stale holder's write is refused by its fencing token", async () => {
  const r = await run("locks");
  assert.equal(r.mostHoldersAtOnce, 1);
  assert.equal(r.staleWriteRefused, true);
  assert.equal(r.updates, 61);
  assert.equal(r.ok, true);
});

Deno.test("pub/sub: a subscriber that reconnects resumes where it left off, without gap or duplicate", async () => {
  const r = await run("pubsub");
  assert.equal(r.received, r.published);
  assert.equal(r.duplicates, 0);
  assert.equal(r.inOrder, true);
});

Deno.test("consistent TCP: the connection breaks only once the Oracle reports the peer failed", async () => {
  const r = await run("consistent_tcp");
  assert.equal(r.echoes, 20);
  assert.equal(r.brokenBeforeReport, false);
  assert.equal(r.brokenAfterOracleReport, true);
});

Deno.test("coordinator-cohort: the coordinator hangs mid-stream; every request still gets exactly one result", async () => {
  const r = await run("coordinator_cohort");
  assert.ok((r.pendingWhenTheCoordinatorHung as number) > 0);
  assert.deepEqual(r.results, [40, 40]);
  assert.equal(r.exactlyOnce, true);
  assert.equal(r.ok, true);
});

Deno.test("parallel search: each member searches its share; the merged replies are the whole answer", async () => {
  const r = await run("parallel_search");
  assert.equal(r.members, 4);
  assert.equal(r.found, 143);
  assert.deepEqual(r.shares, [250, 250, 250, 250]);
  assert.equal(r.ok, true);
});

Deno.test("work tuples: every task is taken by exactly one worker; every member's space agrees", async () => {
  const r = await run("work_tuples");
  assert.equal(r.exactlyOnce, true);
  assert.equal(r.spacesAgree, true);
  assert.equal(r.ok, true);
});

Deno.test("data under a lock with cbcast updates: every member applies every update in version order", async () => {
  const r = await run("locked_data");
  assert.equal(r.outOfOrder, 0);
  assert.deepEqual(r.versions, [150, 150, 150]);
  assert.equal(r.statesAgree, true);
});
