/**
 * The clock a simulated node incarnation is handed: virtual time, and
 * timers that never fire once the incarnation is gone.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import { checkDelay, type EventLoop } from "./_event_loop.ts";
import { isAlive, type NodeState } from "./_node_state.ts";
import { EventKind, QueuedEvent } from "./_queue.ts";
import { T } from "./_trace.ts";
import type { SimFaultCounters } from "./sim_types.ts";

/** A node incarnation's view of the virtual clock. */
export class NodeClock implements Clock {
  readonly #loop: EventLoop;
  readonly #node: NodeState;
  readonly #incarnation: number;
  readonly #counters: Pick<SimFaultCounters, "zombieCalls">;

  /**
   * Creates the clock of one incarnation.
   *
   * @param loop The simulation's event loop.
   * @param node The node.
   * @param incarnation The incarnation the clock belongs to.
   * @param counters Counts timers set by a crashed incarnation.
   */
  constructor(
    loop: EventLoop,
    node: NodeState,
    incarnation: number,
    counters: Pick<SimFaultCounters, "zombieCalls">,
  ) {
    this.#loop = loop;
    this.#node = node;
    this.#incarnation = incarnation;
    this.#counters = counters;
  }

  now(): number {
    return this.#loop.now;
  }

  setTimer(delayMs: number, callback: () => void): TimerId {
    const delay = checkDelay("timer delay", delayMs);
    const node = this.#node;
    const incarnation = this.#incarnation;
    if (!isAlive(node, incarnation)) {
      this.#counters.zombieCalls++;
      return new QueuedEvent(0, 0, EventKind.timer, -1, () => {}, undefined);
    }
    const loop = this.#loop;
    const event = loop.push(
      loop.now + delay,
      EventKind.timer,
      node.index,
      () => {
        if (!isAlive(node, incarnation)) return;
        loop.record(T.timer, node.id, "", event.seq, 0, "");
        callback();
      },
      undefined,
    );
    return event;
  }

  clearTimer(id: TimerId): void {
    this.#loop.clearTimer(id);
  }

  /** A zero-delay timer: the call stays in virtual time. */
  defer(callback: () => void): void {
    this.setTimer(0, callback);
  }
}
