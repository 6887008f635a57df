/**
 * `fbcast`: FIFO per sender, view synchronous. The reliable multicast
 * already delivers each sender's messages in order, once: a message is
 * delivered as soon as it arrives.
 *
 * @module
 */

import type {
  OrderedMessage,
  OrderingStrategy,
  StrategyFactory,
} from "./ordering.ts";

const EMPTY = new Uint8Array(0);

/** Delivers every message on arrival (the reliable layer is FIFO). */
class Fbcast implements OrderingStrategy {
  readonly held = 0;

  stamp(): Uint8Array {
    return EMPTY;
  }

  arrive(message: OrderedMessage): OrderedMessage[] {
    return [message];
  }

  drain(): OrderedMessage[] {
    return [];
  }
}

/**
 * The `fbcast` strategy (wire code 1).
 *
 * @example Every message is delivered on arrival
 * ```ts
 * import { fbcast } from "./fbcast.ts";
 * import assert from "node:assert/strict";
 *
 * const s = fbcast.create({ viewId: 1, members: ["a", "b"] }, "a", () => {}, () => {});
 * const m = { sender: "b", seq: 1, header: s.stamp(), payload: new Uint8Array([7]) };
 * assert.deepEqual(s.arrive(m), [m]);
 * ```
 */
export const fbcast: StrategyFactory = {
  name: "fbcast",
  code: 1,
  create: () => new Fbcast(),
};
