import { until } from "../_until.ts";
import assert from "node:assert/strict";
import { PrimaryWatch } from "../../groups/_primary_watch.ts";
import { GroupDriver } from "../../groups/driver.ts";
import { Simulation } from "../../sim/mod.ts";
import {
  freePorts,
  OracleProcesses,
  withTimeout,
} from "../oracle/_oracle_processes.ts";

Deno.test("primary watch: out after timeoutMs without an answer, back at the next answer", () => {
  const sim = new Simulation({ seed: 1 });
  let answers = 0;
  const changes: string[] = [];
  const watch = new PrimaryWatch({
    clock: sim.clock,
    answered: () => answers,
    timeoutMs: 1_000,
    changed: (primary) => changes.push(`${primary} at ${sim.clock.now()}`),
  });
  for (let i = 0; i < 8; i++) {
    sim.runFor(250);
    answers++;
  }
  assert.deepEqual(changes, [], "answers keep it in");
  // The last answer is seen at the next check, a quarter of timeoutMs on.
  sim.runFor(1_200);
  assert.equal(watch.primary, true);
  sim.runFor(100);
  assert.equal(watch.primary, false);
  assert.equal(changes.length, 1);
  assert.match(changes[0], /^false at/);
  sim.runFor(5_000);
  assert.equal(changes.length, 1, "said once");
  answers++;
  sim.runFor(300);
  assert.equal(watch.primary, true);
  assert.equal(changes.length, 2);
  assert.match(changes[1], /^true at/);
  watch.close();
  assert.throws(
    () =>
      new PrimaryWatch({
        clock: sim.clock,
        answered: () => 0,
        timeoutMs: 0,
        changed: () => {},
      }),
    /Invalid timeoutMs 0/,
  );
});

Deno.test("a member cut off from the Oracle's majority says so, installs no view meanwhile, and is back once the majority is", async () => {
  const oracle = await OracleProcesses.start({ size: 3 });
  const drivers: GroupDriver[] = [];
  try {
    const ports = freePorts(2);
    const changes = new Map<string, boolean[]>();
    const views = new Map<string, number[]>();
    const got: string[] = [];
    for (const [i, label] of ["a", "b"].entries()) {
      const seen: boolean[] = [];
      const installed: number[] = [];
      drivers.push(
        await GroupDriver.join({
          group: "/test/primary",
          label,
          listen: `127.0.0.1:${ports[i]}`,
          oracle: oracle.replicas,
          sessionTtlMs: 8_000,
          primaryTimeoutMs: 2_500,
          deliver: (m) => {
            if (label === "b") got.push(new TextDecoder().decode(m.payload));
          },
          viewInstalled: (v) => installed.push(v.viewId),
          primary: (primary) => seen.push(primary),
        }),
      );
      changes.set(label, seen);
      views.set(label, installed);
    }
    const [a, b] = drivers;
    await until("a view of two", () => b.view?.members.length === 2);
    assert.ok(a.status().primary && b.status().primary);
    const installedBefore = views.get("a")!.length;

    // Two of three replicas die: no majority.
    await oracle.kill("1", "SIGKILL");
    await oracle.kill("2", "SIGKILL");
    await until(
      "both members to say they are outside the primary partition",
      () => !a.status().primary && !b.status().primary,
    );
    assert.deepEqual(changes.get("a"), [false]);
    assert.deepEqual(changes.get("b"), [false]);
    assert.equal(views.get("a")!.length, installedBefore, "no new view");
    // It still delivers in its current view what members it reaches send.
    a.multicast(new TextEncoder().encode("during"));
    await until(
      "the message in the current view",
      () => got.includes("during"),
    );

    await oracle.startReplica("1");
    await oracle.startReplica("2");
    await until(
      "both members back in the primary partition",
      () => a.status().primary && b.status().primary,
      30_000,
    );
    assert.deepEqual(changes.get("a"), [false, true]);
    assert.deepEqual(changes.get("b"), [false, true]);
    assert.equal(a.view?.members.length, 2, "the group carried on");
  } finally {
    for (const driver of drivers) {
      await withTimeout(driver.close(), 20_000, "a member to close");
    }
    await oracle.stop();
  }
});
