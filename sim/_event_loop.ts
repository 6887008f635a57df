/**
 * The simulation's event loop: one queue ordered by (virtual time,
 * insertion sequence), the virtual clock it drives, the event budget and
 * the trace every event is recorded in.
 *
 * @module
 */

import type { TimerId } from "../runtime/clock.ts";
import type { PeerId } from "../transport/transport.ts";
import {
  EventKind,
  type EventKindCode,
  EventQueue,
  QueuedEvent,
} from "./_queue.ts";
import { type TraceCode, TraceRecorder } from "./_trace.ts";
import { SimulationError } from "./simulation_error.ts";

/**
 * Checks a delay.
 *
 * @param what Names the delay in the error message.
 * @param ms The delay, in ms.
 * @returns The delay, or 0 if it is negative.
 * @throws {RangeError} if `ms` is NaN, infinite or not a number.
 */
export function checkDelay(what: string, ms: number): number {
  if (typeof ms !== "number" || Number.isNaN(ms) || ms === Infinity) {
    throw new RangeError(
      `Invalid ${what} ${ms}: must be a finite number of ms`,
    );
  }
  return Math.max(0, ms);
}

/** Options of an {@linkcode EventLoop}. */
export interface EventLoopOptions {
  /** The simulation's seed, for error messages. */
  seed: number;
  /** Most events run in the loop's lifetime. */
  maxEvents: number;
  /** How many trace lines to keep. */
  traceCapacity: number;
  /** The id of the node at an index, for error messages. */
  nodeId(index: number): PeerId;
}

/** Runs events in (time, sequence) order and records them in the trace. */
export class EventLoop {
  /** The trace of every event, hashed. */
  readonly trace: TraceRecorder;
  readonly #queue = new EventQueue();
  readonly #seed: number;
  readonly #maxEvents: number;
  readonly #nodeId: (index: number) => PeerId;
  #now = 0;
  #seq = 0;
  #executed = 0;

  /**
   * Creates an empty loop at virtual time 0.
   *
   * @param options The seed, event budget, trace capacity and node names.
   * @throws {RangeError} on an invalid event budget or trace capacity.
   */
  constructor(options: EventLoopOptions) {
    const maxEvents = options.maxEvents;
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) {
      throw new RangeError(
        `Invalid maxEvents ${maxEvents}: must be a positive integer`,
      );
    }
    this.#seed = options.seed;
    this.#maxEvents = maxEvents;
    this.#nodeId = options.nodeId;
    this.trace = new TraceRecorder(options.traceCapacity);
  }

  /** Current virtual time, in ms. */
  get now(): number {
    return this.#now;
  }

  /** Number of events run so far. */
  get executed(): number {
    return this.#executed;
  }

  /**
   * Schedules an event.
   *
   * @param time When it runs, in virtual ms.
   * @param kind What it is.
   * @param node The node it belongs to (cancelled when it goes down), or -1.
   * @param run What it does.
   * @param onCancel Called instead of `run` if its node goes down.
   * @returns The event, also the handle of a timer.
   */
  push(
    time: number,
    kind: EventKindCode,
    node: number,
    run: () => void,
    onCancel: (() => void) | undefined,
  ): QueuedEvent {
    const event = new QueuedEvent(time, ++this.#seq, kind, node, run, onCancel);
    this.#queue.push(event);
    return event;
  }

  /**
   * Records an event in the trace, at the current virtual time.
   *
   * @param kind What happened.
   * @param node The node it happened at (or `""`).
   * @param peer The other party, a file name, or `""`.
   * @param n A number describing it, hashed and shown.
   * @param hidden A number hashed but not shown (a payload digest).
   * @param text Free text, hashed and shown.
   */
  record(
    kind: TraceCode,
    node: string,
    peer: string,
    n: number,
    hidden: number,
    text: string,
  ): void {
    this.trace.record(this.#now, kind, node, peer, n, hidden, text);
  }

  /**
   * Cancels a timer or script event; does nothing for any other handle.
   *
   * @param id The handle.
   */
  clearTimer(id: TimerId): void {
    if (
      id instanceof QueuedEvent &&
      (id.kind === EventKind.timer || id.kind === EventKind.script)
    ) {
      id.cancelled = true;
    }
  }

  /**
   * Cancels every pending event of a node, without calling `onCancel`.
   *
   * @param node The node's index.
   * @returns The events cancelled, in sequence order (so that follow-up
   * events are scheduled deterministically whatever the heap's layout).
   */
  cancelEventsOf(node: number): QueuedEvent[] {
    const cancelled: QueuedEvent[] = [];
    this.#queue.forEach((event) => {
      if (event.node === node && !event.cancelled) {
        event.cancelled = true;
        cancelled.push(event);
      }
    });
    cancelled.sort((a, b) => a.seq - b.seq);
    return cancelled;
  }

  /**
   * Runs the next event.
   *
   * @returns Whether there was one.
   * @throws {SimulationError} if its callback throws or the budget runs out.
   */
  step(): boolean {
    const event = this.#queue.pop();
    if (event === undefined) return false;
    if (this.#executed >= this.#maxEvents) {
      this.#queue.push(event);
      throw new SimulationError(
        "budget",
        `Simulation with seed ${this.#seed} exceeded its budget of ${this.#maxEvents} events at t=${
          this.#now.toFixed(3)
        }ms`,
        { time: this.#now },
      );
    }
    this.#now = event.time;
    this.#executed++;
    try {
      event.run();
    } catch (error) {
      if (error instanceof SimulationError) throw error;
      const node = event.node >= 0 ? this.#nodeId(event.node) : undefined;
      const what = node === undefined ? "a script event" : `node ${node}`;
      throw new SimulationError(
        "callback",
        `Callback of ${what} threw at t=${
          this.#now.toFixed(3)
        }ms (seed ${this.#seed}): ${
          error instanceof Error ? error.message : String(error)
        }`,
        { time: this.#now, node, cause: error },
      );
    }
    return true;
  }

  /**
   * Runs every event due in the next `ms` virtual ms, then sets the clock
   * to exactly `now + ms`.
   *
   * @param ms How long to run.
   * @returns The number of events run.
   * @throws {RangeError} if `ms` is negative or not finite.
   * @throws {SimulationError} if a callback throws or the budget runs out.
   */
  runFor(ms: number): number {
    const end = this.#now + checkDuration(ms);
    const start = this.#executed;
    while (this.#stepIfDue(end));
    this.#now = end;
    return this.#executed - start;
  }

  /**
   * {@linkcode EventLoop.runFor}, awaiting `settle` after every event so
   * promise continuations run before the next event.
   */
  async runForAsync(ms: number, settle: () => Promise<void>): Promise<number> {
    const end = this.#now + checkDuration(ms);
    const start = this.#executed;
    await settle();
    while (this.#stepIfDue(end)) await settle();
    this.#now = end;
    return this.#executed - start;
  }

  /**
   * Runs events until `predicate` holds (checked before the first event and
   * after each one), `maxTime` virtual ms have passed, or none is left.
   *
   * @param predicate The condition to reach.
   * @param maxTime Most virtual ms to run.
   * @returns Whether the predicate became true.
   * @throws {RangeError} if `maxTime` is negative or NaN.
   * @throws {SimulationError} if a callback throws or the budget runs out.
   */
  runUntil(predicate: () => boolean, maxTime: number): boolean {
    const end = this.#now + checkMaxTime(maxTime);
    if (predicate()) return true;
    while (this.#stepIfDue(end)) {
      if (predicate()) return true;
    }
    if (end !== Infinity) this.#now = end;
    return false;
  }

  /**
   * {@linkcode EventLoop.runUntil}, awaiting `settle` after every event so
   * promise continuations run before the next event.
   */
  async runUntilAsync(
    predicate: () => boolean,
    maxTime: number,
    settle: () => Promise<void>,
  ): Promise<boolean> {
    const end = this.#now + checkMaxTime(maxTime);
    await settle();
    if (predicate()) return true;
    while (this.#stepIfDue(end)) {
      await settle();
      if (predicate()) return true;
    }
    if (end !== Infinity) this.#now = end;
    return false;
  }

  /** Runs the next event if it is due by `end`; returns whether one ran. */
  #stepIfDue(end: number): boolean {
    const next = this.#queue.peek();
    if (next === undefined || next.time > end) return false;
    this.step();
    return true;
  }
}

function checkDuration(ms: number): number {
  if (!(Number.isFinite(ms) && ms >= 0)) {
    throw new RangeError(`Invalid duration ${ms}: must be finite and >= 0`);
  }
  return ms;
}

function checkMaxTime(maxTime: number): number {
  if (!(maxTime >= 0)) {
    throw new RangeError(`Invalid maxTime ${maxTime}: must be >= 0`);
  }
  return maxTime;
}
