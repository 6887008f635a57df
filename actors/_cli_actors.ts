/**
 * The example actors `cohort node --actor NAME` hosts: `kv`, a replicated
 * key/value map, and `counter`, a replicated counter. Each tells the
 * command of every view through {@linkcode ExampleActor.viewChanged}, and
 * hands its state to new members through `checkpoint()`/`restore()`.
 *
 * @module
 */

import { z } from "zod";
import { Actor, handler, onView, type View } from "./actor.ts";

/** An example actor: tells its host of every view it is given. */
export abstract class ExampleActor<State> extends Actor<State> {
  /** Called with every view, in order (the host prints it). */
  viewChanged: (view: View) => void = () => {};

  /**
   * Tells {@linkcode ExampleActor.viewChanged} of a new view.
   *
   * @param view The view.
   */
  @onView
  view(view: View): void {
    this.viewChanged(view);
  }
}

/** A `kv` write: sets `key` to `value`. */
export const Put = z.object({
  key: z.string().min(1).max(256),
  value: z.string().max(65_536),
});

/** A `kv` read: the value of `key` at the members that answer. */
export const Get = z.object({ key: z.string().min(1).max(256) });

/**
 * A replicated key/value map: `put` is abcast, so every member applies
 * writes in one order; a new member gets the whole map.
 *
 * @example Apply writes and hand the map on
 * ```ts
 * import { KvActor } from "./_cli_actors.ts";
 * import assert from "node:assert/strict";
 *
 * const kv = new KvActor();
 * kv.put({ key: "a", value: "1" });
 * const copy = new KvActor();
 * copy.restore(structuredClone(kv.checkpoint()));
 * assert.equal(copy.get({ key: "a" }), "1");
 * ```
 */
export class KvActor extends ExampleActor<Record<string, string>> {
  /** The map. */
  data: Record<string, string> = {};

  /**
   * Sets a key, in the group's total order.
   *
   * @param message The key and its value.
   */
  @handler(Put, { order: "abcast" })
  put(message: z.infer<typeof Put>): void {
    this.data[message.key] = message.value;
  }

  /**
   * Answers a key's value at this member (a query).
   *
   * @param message The key.
   * @returns The value, or `null` if the key is not set.
   */
  @handler(Get, { order: "fbcast" })
  get(message: z.infer<typeof Get>): string | null {
    return Object.hasOwn(this.data, message.key)
      ? this.data[message.key]
      : null;
  }

  /**
   * The map, for a new member.
   *
   * @returns The map.
   */
  override checkpoint(): Record<string, string> {
    return this.data;
  }

  /**
   * Takes the map the other members have.
   *
   * @param state The map.
   */
  override restore(state: Record<string, string>): void {
    this.data = state;
  }
}

/** A `counter` increment (negative: a decrement). */
export const Add = z.object({
  amount: z.number().int().min(-1_000_000).max(1_000_000),
});

/** A `counter` read: the value at the members that answer. */
export const Read = z.object({});

/**
 * A replicated counter: `add` is cbcast (additions commute, so causal
 * order is enough); a new member gets the value.
 *
 * @example Count and hand the value on
 * ```ts
 * import { CounterActor } from "./_cli_actors.ts";
 * import assert from "node:assert/strict";
 *
 * const counter = new CounterActor();
 * counter.add({ amount: 3 });
 * counter.add({ amount: -1 });
 * const copy = new CounterActor();
 * copy.restore(counter.checkpoint());
 * assert.equal(copy.read(), 2);
 * ```
 */
export class CounterActor extends ExampleActor<number> {
  /** The value. */
  value = 0;

  /**
   * Adds to the value, in causal order.
   *
   * @param message How much.
   */
  @handler(Add, { order: "cbcast" })
  add(message: z.infer<typeof Add>): void {
    this.value += message.amount;
  }

  /**
   * Answers the value at this member (a query).
   *
   * @returns The value.
   */
  @handler(Read, { order: "fbcast" })
  read(): number {
    return this.value;
  }

  /**
   * The value, for a new member.
   *
   * @returns The value.
   */
  override checkpoint(): number {
    return this.value;
  }

  /**
   * Takes the value the other members have.
   *
   * @param state The value.
   */
  override restore(state: number): void {
    this.value = state;
  }
}

/** One example actor `cohort node` can host. */
export interface ExampleActorEntry {
  /** One line for `--help`. */
  readonly summary: string;
  /** Makes a fresh actor. */
  readonly create: () => ExampleActor<unknown>;
}

/** The example actors by name. */
export const EXAMPLE_ACTORS: Readonly<Record<string, ExampleActorEntry>> = {
  kv: {
    summary: "a replicated key/value map (abcast put, state transfer)",
    create: () => new KvActor(),
  },
  counter: {
    summary: "a replicated counter (cbcast add, state transfer)",
    create: () => new CounterActor(),
  },
};
