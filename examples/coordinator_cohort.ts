/**
 * Coordinator-cohort: every request reaches the whole group; the
 * coordinator (the oldest member of the view) does the work and
 * multicasts the result; the cohorts watch, and if the coordinator fails
 * before its result arrives, the next coordinator redoes what is pending.
 * View synchrony makes that exact: a result is delivered to every
 * survivor before the new view, or to none.
 *
 * Here the coordinator stops working mid-stream (as if it hung), then
 * leaves; every request still gets exactly one result.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read --allow-write examples/coordinator_cohort.ts
 * ```
 *
 * @module
 */

import { z } from "zod";
import {
  Actor,
  type GroupHandle,
  handler,
  type MessageContext,
  Node,
  onView,
  type View,
} from "../mod.ts";

const Request = z.object({ id: z.number().int(), n: z.number().int() });
const Result = z.object({ id: z.number().int(), value: z.number().int() });

class Worker extends Actor {
  /** Requests without a result yet, by id. */
  readonly pending = new Map<number, number>();
  /** Results, by id, and how many results each id got. */
  readonly results = new Map<number, number>();
  readonly resultCount = new Map<number, number>();
  handle: GroupHandle<Worker> | undefined;
  /** A hung coordinator does nothing; this one hangs at this request. */
  hung = false;
  hangAt = 0;

  @handler(Request, { order: "abcast" })
  request(m: z.infer<typeof Request>, context: MessageContext): void {
    this.pending.set(m.id, m.n);
    if (m.id === this.hangAt) this.hung = true;
    if (this.#coordinator(context.view)) this.#work(m.id, m.n);
  }

  @handler(Result, { order: "abcast" })
  result(m: z.infer<typeof Result>): void {
    this.pending.delete(m.id);
    this.results.set(m.id, m.value);
    this.resultCount.set(m.id, (this.resultCount.get(m.id) ?? 0) + 1);
  }

  /** A new coordinator redoes what the old one left pending. */
  @onView
  view(view: View): void {
    if (!this.#coordinator(view)) return;
    for (const [id, n] of this.pending) this.#work(id, n);
  }

  #coordinator(view: View): boolean {
    return view.members[0] === view.me && !this.hung;
  }

  #work(id: number, n: number): void {
    void this.handle?.send(Result, { id, value: n * n });
  }
}

const node = await Node.start();
try {
  const workers: GroupHandle<Worker>[] = [];
  for (let i = 0; i < 3; i++) {
    const worker = new Worker();
    worker.handle = await node.join("/demo/coordinator", worker, {
      label: `w${i}`,
    });
    workers.push(worker.handle);
  }
  const [coordinator, cohort] = workers;
  coordinator.actor.hangAt = 21; // it stops working at request 21
  for (let i = 0; i < 500 && cohort.view?.members.length !== 3; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  for (let id = 1; id <= 40; id++) {
    await cohort.send(Request, { id, n: id });
  }
  await new Promise((r) => setTimeout(r, 100));
  const pendingAtFailure = coordinator.actor.pending.size;
  await coordinator.leave(); // the cohorts see a view without it
  const survivors = workers.slice(1).map((w) => w.actor);
  for (
    let i = 0;
    i < 500 && survivors.some((w) => w.results.size < 40);
    i++
  ) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const exactlyOnce = survivors.every((w) =>
    w.results.size === 40 && [...w.resultCount.values()].every((c) => c === 1)
  );
  const correct = survivors.every((w) =>
    [...w.results].every(([id, value]) => value === id * id)
  );
  console.log(JSON.stringify({
    requests: 40,
    pendingWhenTheCoordinatorHung: pendingAtFailure,
    results: survivors.map((w) => w.results.size),
    exactlyOnce,
    ok: pendingAtFailure > 0 && exactlyOnce && correct,
  }));
} finally {
  await node.close();
}
