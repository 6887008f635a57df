import assert from "node:assert/strict";
import { SyncQueue } from "../../oracle/_sync_queue.ts";
import type { Clock, TimerId } from "../../runtime/clock.ts";

/** A clock whose timers fire only when the test advances it. */
class ManualClock implements Clock {
  #now = 0;
  #next = 1;
  readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, fn: () => void): TimerId {
    const id = this.#next++;
    this.timers.set(id, { at: this.#now + delayMs, fn });
    return id;
  }

  clearTimer(id: TimerId): void {
    this.timers.delete(id as number);
  }

  defer(fn: () => void): void {
    this.setTimer(0, fn);
  }

  advance(ms: number): void {
    this.#now += ms;
    for (const [id, timer] of [...this.timers]) {
      if (timer.at <= this.#now) {
        this.timers.delete(id);
        timer.fn();
      }
    }
  }
}

/** A queue whose syncs complete only when the test says so. */
function setup(lazyMs = 2) {
  const clock = new ManualClock();
  const pending: ((error?: Error) => void)[] = [];
  const errors: Error[] = [];
  const released: string[] = [];
  const queue = new SyncQueue(
    (done) => pending.push(done),
    (error) => errors.push(error),
    clock,
    lazyMs,
  );
  const after = (name: string) => () => released.push(name);
  const finishSync = () => {
    const done = pending.shift();
    assert.ok(done, "a sync is in flight");
    done();
  };
  return { clock, pending, errors, released, queue, after, finishSync };
}

Deno.test("a write that needs it now syncs at once; later writes share the next sync", () => {
  const { pending, released, queue, after, finishSync } = setup();
  queue.add(after("a"), "now");
  assert.equal(pending.length, 1);
  queue.add(after("b"), "now");
  queue.add(after("c"), "order");
  queue.add(after("d"), "soon");
  assert.equal(pending.length, 1, "one sync in flight at a time");
  finishSync();
  assert.deepEqual(released, ["a"]);
  assert.equal(pending.length, 1, "b needs it now: the next sync starts");
  finishSync();
  assert.deepEqual(released, ["a", "b", "c", "d"]);
  assert.equal(queue.syncs, 2);
  assert.equal(queue.busy, false);
});

Deno.test("a lazy write syncs after the delay, or with the next urgent write", async (t) => {
  await t.step("after the delay", () => {
    const { clock, pending, released, queue, after, finishSync } = setup(2);
    queue.add(after("lazy"), "soon");
    queue.add(after("heartbeat reply"), "order");
    assert.equal(pending.length, 0);
    assert.equal(queue.busy, true);
    clock.advance(1);
    assert.equal(pending.length, 0);
    clock.advance(1);
    assert.equal(pending.length, 1);
    finishSync();
    assert.deepEqual(released, ["lazy", "heartbeat reply"]);
    assert.equal(clock.timers.size, 0);
  });
  await t.step("with an urgent write, which also cancels the timer", () => {
    const { clock, pending, released, queue, after, finishSync } = setup(2);
    queue.add(after("lazy"), "soon");
    queue.add(after("urgent"), "now");
    assert.equal(pending.length, 1);
    assert.equal(clock.timers.size, 0);
    finishSync();
    assert.deepEqual(released, ["lazy", "urgent"]);
    clock.advance(10);
    assert.equal(pending.length, 0, "no second sync");
  });
  await t.step("written while a sync is in flight: waits for the delay", () => {
    const { clock, pending, released, queue, after, finishSync } = setup(2);
    queue.add(after("urgent"), "now");
    queue.add(after("lazy"), "soon");
    finishSync();
    assert.deepEqual(released, ["urgent"]);
    assert.equal(pending.length, 0);
    clock.advance(2);
    finishSync();
    assert.deepEqual(released, ["urgent", "lazy"]);
  });
});

Deno.test("waiters that wrote nothing are released once nothing written is unsynced", () => {
  const { pending, released, queue, after, finishSync } = setup();
  queue.add(after("idle"), "order");
  assert.deepEqual(released, ["idle"], "nothing to wait for");
  queue.add(after("write"), "now");
  queue.add(after("reply"), "order");
  finishSync();
  assert.deepEqual(released, ["idle", "write", "reply"]);
  assert.equal(pending.length, 0, "no sync just for order");
});

Deno.test("a waiter added while others are released comes after them", () => {
  const { clock, released, queue, finishSync } = setup(2);
  // Both covered by one sync: the lazy delay starts it.
  queue.add(() => {
    released.push("first");
    queue.add(() => released.push("third"), "order");
  }, "soon");
  queue.add(() => released.push("second"), "order");
  clock.advance(2);
  finishSync();
  assert.deepEqual(released, ["first", "second", "third"]);
});

Deno.test("a failed sync reports the error and releases nobody", () => {
  const { pending, errors, released, queue, after } = setup();
  queue.add(after("a"), "now");
  pending.shift()!(new Error("EIO"));
  assert.deepEqual(released, []);
  assert.equal(errors[0]?.message, "EIO");
});

Deno.test("a stopped queue starts no sync and releases nobody", () => {
  const { clock, pending, released, queue, after } = setup();
  queue.add(after("in flight"), "now");
  queue.add(after("lazy"), "soon");
  queue.stop();
  pending.shift()!();
  clock.advance(10);
  queue.add(after("late"), "now");
  assert.deepEqual(released, []);
  assert.equal(pending.length, 0);
});
