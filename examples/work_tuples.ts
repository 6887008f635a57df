/**
 * Shared work tuples (a replicated tuple space, as in Linda): tasks are
 * put in the space; workers take them and put results back. Every `put`
 * and `take` is an abcast, so every member sees them in one order and
 * agrees which worker got which task: each task is done exactly once.
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-read --allow-write examples/work_tuples.ts
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
} from "../mod.ts";

const Tuple = z.object({
  kind: z.enum(["task", "result"]),
  id: z.number().int(),
  value: z.number().int(),
});
type Tuple = z.infer<typeof Tuple>;
const Put = z.object({ tuple: Tuple });
const Take = z.object({ kind: z.enum(["task", "result"]) });

class Space extends Actor<Tuple[]> {
  tuples: Tuple[] = [];
  /** Takes this member asked for: resolved with a tuple, or `null` if none was left. */
  readonly #waiting: ((tuple: Tuple | null) => void)[] = [];
  handle: GroupHandle<Space> | undefined;

  @handler(Put, { order: "abcast" })
  put(m: z.infer<typeof Put>): void {
    this.tuples.push(m.tuple);
  }

  /** Every member removes the same tuple; the taker gets it. */
  @handler(Take, { order: "abcast" })
  take(m: z.infer<typeof Take>, context: MessageContext): void {
    const at = this.tuples.findIndex((t) => t.kind === m.kind);
    const tuple = at < 0 ? null : this.tuples.splice(at, 1)[0];
    if (context.sender === context.view.me) this.#waiting.shift()?.(tuple);
  }

  /** Takes a tuple of `kind` from the space, or `null` if there is none. */
  async takeOne(kind: Tuple["kind"]): Promise<Tuple | null> {
    const taken = new Promise<Tuple | null>((r) => this.#waiting.push(r));
    await this.handle!.send(Take, { kind });
    return await taken;
  }

  override checkpoint(): Tuple[] {
    return this.tuples;
  }

  override restore(state: Tuple[]): void {
    this.tuples = state;
  }
}

const node = await Node.start();
try {
  const spaces: Space[] = [];
  for (let i = 0; i < 3; i++) {
    const space = new Space();
    space.handle = await node.join("/demo/tuples", space, { label: `w${i}` });
    spaces.push(space);
  }
  for (
    let i = 0;
    i < 500 && spaces[2].handle!.view?.members.length !== 3;
    i++
  ) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const TASKS = 60;
  for (let id = 1; id <= TASKS; id++) {
    await spaces[0].handle!.send(Put, {
      tuple: { kind: "task", id, value: id },
    });
  }
  // Three workers, one per member, until no task is left.
  const done = spaces.map(() => [] as number[]);
  await Promise.all(spaces.map(async (space, w) => {
    for (let i = 0; i <= TASKS; i++) {
      const task = await space.takeOne("task");
      if (task === null) return;
      done[w].push(task.id);
      await new Promise((r) => setTimeout(r, 2)); // the work
      await space.handle!.send(Put, {
        tuple: { kind: "result", id: task.id, value: task.value * 2 },
      });
    }
  }));
  for (
    let i = 0;
    i < 500 && spaces.some((s) => s.tuples.length !== TASKS);
    i++
  ) {
    await new Promise((r) => setTimeout(r, 10));
  }
  const all = done.flat().sort((a, b) => a - b);
  const exactlyOnce = all.length === TASKS &&
    all.every((id, i) => id === i + 1);
  const agreed = spaces.every((s) =>
    JSON.stringify(s.tuples) === JSON.stringify(spaces[0].tuples)
  );
  console.log(JSON.stringify({
    tasks: TASKS,
    doneBy: done.map((d) => d.length),
    exactlyOnce,
    spacesAgree: agreed,
    ok: exactlyOnce && agreed &&
      spaces[0].tuples.every((t) =>
        t.kind === "result" && t.value === 2 * t.id
      ),
  }));
} finally {
  await node.close();
}
