/**
 * The deterministic simulation: one event queue ordered by (virtual time,
 * insertion sequence), a virtual clock, a seeded PRNG, a simulated network
 * and a simulated disk per node, and crash/restart of nodes.
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import type { LogFields, Logger, LogLevel } from "../runtime/log.ts";
import type { Storage } from "../runtime/storage.ts";
import {
  checkMaxFrameSize,
  DEFAULT_MAX_FRAME_SIZE,
} from "../transport/frame.ts";
import {
  emptyTransportStats,
  type PeerId,
  type Transport,
  type TransportHandler,
  type TransportStats,
} from "../transport/transport.ts";
import type { DiskCounters, DiskOptions, SimDiskView } from "./disk.ts";
import {
  type DiskConfig,
  type DiskHost,
  resolveDisk,
  SimDisk,
} from "./_disk.ts";
import {
  DEFAULT_LINK,
  type LinkConfig,
  type LinkOptions,
  resolveLink,
  sampleLatency,
} from "./network.ts";
import { checkSeed, Prng } from "./prng.ts";
import { hashBytes } from "./_hash.ts";
import {
  EventKind,
  type EventKindCode,
  EventQueue,
  QueuedEvent,
} from "./_queue.ts";
import { T, type TraceCode, TraceRecorder } from "./_trace.ts";

/** What a node's `start` function receives: its whole world. */
export interface SimNodeEnv {
  /** The node's id, also its transport address. */
  readonly id: PeerId;
  /** 1 for the first start, then one more per restart. */
  readonly incarnation: number;
  /** Virtual time; timers fire from the event queue. */
  readonly clock: Clock;
  /** A random stream of this node and incarnation. */
  readonly random: Prng;
  /** This incarnation's endpoint on the simulated network. */
  readonly transport: Transport;
  /** The node's simulated disk, as seen by this incarnation. */
  readonly storage: Storage;
  /**
   * A logger stamped with virtual time and node. Lines go to the kept trace
   * and to {@linkcode SimulationOptions.onLog}; they are not hashed.
   */
  readonly log: Logger;
}

/**
 * What a node's `start` function returns: any object. If it has a `stop`
 * method, {@linkcode Simulation.stop} calls it.
 */
export interface SimNodeHandle {
  /**
   * Called by {@linkcode Simulation.stop} (a clean shutdown), while the
   * node can still send and write. Never called on a crash.
   */
  stop?(): void;
}

/**
 * A simulated node as the simulation script sees it.
 *
 * @typeParam H What the node's `start` function returns.
 */
export interface SimNode<H extends object = SimNodeHandle> {
  /** The node's id. */
  readonly id: PeerId;
  /** Whether the node is running. */
  readonly up: boolean;
  /** The current (or last, while down) incarnation; 1 after the first start. */
  readonly incarnation: number;
  /** The running incarnation's handle, or `undefined` while the node is down. */
  readonly handle: H | undefined;
  /** Read-only inspection of the node's disk. */
  readonly disk: SimDiskView;
}

/**
 * Counters of everything the simulation did and every fault it injected.
 * They only grow.
 */
export interface SimFaultCounters extends DiskCounters {
  /** Frames accepted by a simulated transport's `send`. */
  framesSent: number;
  /** Frames handed to a node's `onFrame`, duplicates included. */
  framesDelivered: number;
  /** Frames lost to the links' `loss` probability. */
  droppedByLoss: number;
  /** Frames dropped because a partition cut their link (at send or on arrival). */
  droppedByPartition: number;
  /**
   * Frames in flight to a node when it crashed or stopped, or arriving while
   * it was down.
   */
  droppedReceiverDown: number;
  /** Frames arriving at a closed transport or one without a handler. */
  droppedNoHandler: number;
  /** Extra copies injected by the links' `duplicate` probability. */
  duplicated: number;
  /** Deliveries of a frame after a frame sent later on the same link. */
  reordered: number;
  /** Frames held back by the links' `reorder` probability. */
  delayedForReorder: number;
  /** Sends refused because a link's `maxInFlight` was reached. */
  backpressureRefusals: number;
  /** Timers of a crashed incarnation that will never fire. */
  timersDroppedByCrash: number;
  /** Node crashes. */
  crashes: number;
  /** Node restarts (after a crash or a stop). */
  restarts: number;
  /** Clean node stops. */
  stops: number;
  /** Partitions started. */
  partitions: number;
  /** Partitions healed. */
  heals: number;
}

function emptyCounters(): SimFaultCounters {
  return {
    framesSent: 0,
    framesDelivered: 0,
    droppedByLoss: 0,
    droppedByPartition: 0,
    droppedReceiverDown: 0,
    droppedNoHandler: 0,
    duplicated: 0,
    reordered: 0,
    delayedForReorder: 0,
    backpressureRefusals: 0,
    timersDroppedByCrash: 0,
    crashes: 0,
    restarts: 0,
    stops: 0,
    partitions: 0,
    heals: 0,
    syncs: 0,
    syncErrors: 0,
    syncsLostByCrash: 0,
    unsyncedWritesLost: 0,
    unsyncedWritesSurvived: 0,
    tornWrites: 0,
    zombieCalls: 0,
  };
}

/**
 * Options of a {@linkcode Simulation}. The {@linkcode LinkOptions} fields set
 * the default of every link.
 */
export interface SimulationOptions extends LinkOptions {
  /** The seed every random choice derives from. */
  seed: number;
  /** How the simulated disks behave. */
  disk?: DiskOptions | undefined;
  /** The largest payload simulated transports accept. Default 1 MiB. */
  maxFrameSize?: number | undefined;
  /**
   * Most events the simulation runs in its lifetime; one more throws a
   * {@linkcode SimulationError} with code `"budget"`. Default 10,000,000.
   */
  maxEvents?: number | undefined;
  /** How many trace lines to keep for {@linkcode Simulation.recentTrace}. Default 0. */
  traceCapacity?: number | undefined;
  /**
   * Whether transports report peers' lifecycle: `onPeerUp` when a node
   * starts (to it, for each running peer, and to each running peer) and
   * `onPeerDown` when a node crashes or stops (to each running peer).
   * Partitions never produce peer events. Default `true`.
   */
  peerEvents?: boolean | undefined;
  /** Delay of peer events, in ms. Default 1. */
  peerEventDelay?: number | undefined;
  /** Least severe level of node log lines kept. Default `"info"`. */
  logLevel?: LogLevel | undefined;
  /** Receives every node log line kept (text, stamped with virtual time). */
  onLog?: ((line: string) => void) | undefined;
}

/** Options of {@linkcode Simulation.addNode}. */
export interface AddNodeOptions {
  /**
   * Register the node without starting it; {@linkcode Simulation.start}
   * starts it. Default `false`.
   */
  down?: boolean | undefined;
}

/** Options of {@linkcode Simulation.runUntil}. */
export interface RunUntilOptions {
  /** Most virtual milliseconds to run. Default unbounded (the event budget still applies). */
  maxTime?: number | undefined;
}

/** Options of {@linkcode Simulation.partition}. */
export interface PartitionOptions {
  /** Block only frames from the first side to the second. Default `false`. */
  oneWay?: boolean | undefined;
}

/** Why a {@linkcode SimulationError} was thrown. */
export type SimulationErrorCode = "callback" | "budget";

/** Details of a {@linkcode SimulationError}. */
export interface SimulationErrorOptions {
  /** Virtual time of the failure, in ms. */
  time: number;
  /** The node whose callback threw, if any. */
  node?: PeerId | undefined;
  /** The value a callback threw, if any. */
  cause?: unknown;
}

/**
 * A simulation could not go on: a node or script callback threw (code
 * `"callback"`, the thrown value is the `cause`), or the event budget ran
 * out (code `"budget"`, a livelock or a run without end).
 */
export class SimulationError extends Error {
  /** Why the simulation stopped. */
  readonly code: SimulationErrorCode;
  /** Virtual time of the failure, in ms. */
  readonly time: number;
  /** The node whose callback threw, if any. */
  readonly node: PeerId | undefined;

  /**
   * Creates a simulation error.
   *
   * @param code Why the simulation stopped.
   * @param message What failed, with the values involved.
   * @param options The virtual time, the node involved and the thrown value.
   */
  constructor(
    code: SimulationErrorCode,
    message: string,
    options: SimulationErrorOptions,
  ) {
    super(
      message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "SimulationError";
    this.code = code;
    this.time = options.time;
    this.node = options.node;
  }
}

const LOG_RANK: Record<LogLevel, number> = {
  debug: 0,
  info: 1,
  warn: 2,
  error: 3,
};

interface LinkState {
  readonly key: number;
  readonly from: NodeState;
  readonly to: NodeState;
  readonly random: Prng;
  config: LinkConfig;
  version: number;
  sent: number;
  maxDelivered: number;
  inFlight: number;
  lastArrival: number;
  drainWaiter: SimTransport | undefined;
}

interface NodeState {
  readonly index: number;
  readonly id: PeerId;
  readonly start: (env: SimNodeEnv) => object;
  readonly disk: SimDisk;
  up: boolean;
  incarnation: number;
  handle: object | undefined;
  transport: SimTransport | undefined;
  view: SimNode<object>;
}

/** What simulated transports and clocks need from the simulation. */
interface Core {
  now(): number;
  alive(node: NodeState, incarnation: number): boolean;
  send(
    from: NodeState,
    transport: SimTransport,
    to: PeerId,
    payload: Uint8Array,
  ): boolean;
  setTimer(
    node: NodeState,
    incarnation: number,
    delayMs: number,
    callback: () => void,
  ): TimerId;
  clearTimer(id: TimerId): void;
  zombie(): void;
}

class SimTransport implements Transport {
  readonly id: PeerId;
  readonly maxFrameSize: number;
  readonly incarnation: number;
  handler: TransportHandler | undefined;
  closed = false;
  readonly counters: TransportStats = emptyTransportStats();
  readonly #core: Core;
  readonly #node: NodeState;

  constructor(core: Core, node: NodeState, maxFrameSize: number) {
    this.#core = core;
    this.#node = node;
    this.id = node.id;
    this.incarnation = node.incarnation;
    this.maxFrameSize = maxFrameSize;
  }

  get live(): boolean {
    return !this.closed && this.#core.alive(this.#node, this.incarnation);
  }

  setHandler(handler: TransportHandler): void {
    this.handler = handler;
  }

  send(to: PeerId, payload: Uint8Array): boolean {
    if (payload.length > this.maxFrameSize) {
      this.counters.oversizeRefusals++;
      throw new RangeError(
        `Cannot send ${payload.length} bytes from ${this.id} to ${to}: the maximum frame size is ${this.maxFrameSize}`,
      );
    }
    return this.#core.send(this.#node, this, to, payload);
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

class NodeClock implements Clock {
  readonly #core: Core;
  readonly #node: NodeState;
  readonly #incarnation: number;

  constructor(core: Core, node: NodeState, incarnation: number) {
    this.#core = core;
    this.#node = node;
    this.#incarnation = incarnation;
  }

  now(): number {
    return this.#core.now();
  }

  setTimer(delayMs: number, callback: () => void): TimerId {
    return this.#core.setTimer(
      this.#node,
      this.#incarnation,
      delayMs,
      callback,
    );
  }

  clearTimer(id: TimerId): void {
    this.#core.clearTimer(id);
  }
}

function checkDelay(what: string, ms: number): number {
  if (typeof ms !== "number" || Number.isNaN(ms) || ms === Infinity) {
    throw new RangeError(
      `Invalid ${what} ${ms}: must be a finite number of ms`,
    );
  }
  return Math.max(0, ms);
}

/**
 * A deterministic simulation of a cluster: nodes run protocol code against
 * a virtual {@linkcode Clock}, a seeded {@linkcode Prng}, a simulated
 * {@linkcode Transport} and a simulated {@linkcode Storage}, and every event
 * (frame delivery, timer, sync completion, script step) runs from one queue
 * ordered by (virtual time, insertion sequence). Nothing depends on real
 * time, real randomness or promise timing, so the same seed and script give
 * the same run and the same {@linkcode Simulation.traceHash}.
 *
 * The network is datagram-like: frames are copied at send, then may be
 * delayed (per-link latency distribution), lost, duplicated, reordered, or
 * cut by symmetric or one-way partitions. Frames in flight from a node that
 * crashes still arrive; frames in flight to it are dropped. A crash drops the
 * node's timers, pending syncs and unsynced disk writes (except a random
 * prefix, see {@linkcode DiskOptions}); a restart calls the node's `start`
 * again with the surviving disk. Objects handed to a crashed incarnation
 * are silenced: its sends and writes are ignored, its timers never fire.
 *
 * @example Two nodes ping each other over a lossy network
 * ```ts
 * import { Simulation } from "@cohort/cohort/sim";
 * import assert from "node:assert/strict";
 *
 * const sim = new Simulation({ seed: 1, loss: 0.2, latency: { kind: "uniform", min: 1, max: 10 } });
 * let received = 0;
 * sim.addNode("b", (env) => {
 *   env.transport.setHandler({ onFrame: () => received++ });
 *   return {};
 * });
 * sim.addNode("a", (env) => {
 *   const tick = () => {
 *     env.transport.send("b", new Uint8Array([1]));
 *     env.clock.setTimer(10, tick);
 *   };
 *   tick();
 *   return {};
 * });
 * assert.ok(sim.runUntil(() => received >= 20, { maxTime: 10_000 }));
 * assert.ok(sim.faults().droppedByLoss > 0);
 * // Same seed, same script: same trace hash.
 * console.log(sim.traceHash());
 * ```
 */
export class Simulation {
  readonly #seed: number;
  readonly #root: Prng;
  readonly #queue = new EventQueue();
  readonly #trace: TraceRecorder;
  readonly #counters: SimFaultCounters = emptyCounters();
  readonly #maxEvents: number;
  readonly #maxFrameSize: number;
  readonly #diskConfig: DiskConfig;
  readonly #peerEvents: boolean;
  readonly #peerEventDelay: number;
  readonly #logRank: number;
  readonly #onLog: ((line: string) => void) | undefined;
  readonly #nodes: NodeState[] = [];
  readonly #byId = new Map<PeerId, NodeState>();
  readonly #links = new Map<number, LinkState>();
  readonly #overrides = new Map<number, LinkOptions>();
  /** Directed pair key -> number of partitions cutting it. */
  readonly #blocked = new Map<number, number>();
  readonly #partitions = new Map<number, number[]>();
  readonly #core: Core;
  readonly #diskHost: DiskHost;
  #defaults: LinkConfig;
  #linkVersion = 0;
  #partitionSeq = 0;
  #now = 0;
  #seq = 0;
  #executed = 0;
  #clock: Clock | undefined;

  /**
   * Creates an empty simulation at virtual time 0.
   *
   * @param options The seed, default link settings, disk behaviour and limits.
   * @throws {RangeError} on an invalid seed, probability, latency, frame
   * size, event budget or trace capacity.
   */
  constructor(options: SimulationOptions) {
    this.#seed = checkSeed(options.seed);
    this.#root = new Prng(this.#seed);
    this.#defaults = resolveLink(DEFAULT_LINK, options);
    this.#diskConfig = resolveDisk(options.disk ?? {});
    this.#maxFrameSize = checkMaxFrameSize(
      options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
    );
    const maxEvents = options.maxEvents ?? 10_000_000;
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 1) {
      throw new RangeError(
        `Invalid maxEvents ${maxEvents}: must be a positive integer`,
      );
    }
    this.#maxEvents = maxEvents;
    this.#trace = new TraceRecorder(options.traceCapacity ?? 0);
    this.#peerEvents = options.peerEvents ?? true;
    this.#peerEventDelay = checkDelay(
      "peerEventDelay",
      options.peerEventDelay ?? 1,
    );
    const level = options.logLevel ?? "info";
    if (!Object.hasOwn(LOG_RANK, level)) {
      throw new RangeError(`Invalid logLevel ${JSON.stringify(level)}`);
    }
    this.#logRank = LOG_RANK[level];
    this.#onLog = options.onLog;
    this.#core = {
      now: () => this.#now,
      alive: (node, incarnation) => node.up && node.incarnation === incarnation,
      send: (from, transport, to, payload) =>
        this.#send(from, transport, to, payload),
      setTimer: (node, incarnation, delayMs, callback) =>
        this.#setNodeTimer(node, incarnation, delayMs, callback),
      clearTimer: (id) => this.#clearTimer(id),
      zombie: () => {
        this.#counters.zombieCalls++;
      },
    };
    this.#diskHost = {
      now: () => this.#now,
      scheduleSync: (node, incarnation, time, run) => {
        const state = this.#nodes[node];
        this.#push(time, EventKind.sync, node, () => {
          if (state.up && state.incarnation === incarnation) run();
        }, undefined);
      },
      trace: (kind, node, file, n) => this.#record(kind, node, file, n, 0, ""),
      incarnationOf: (node) => {
        const state = this.#nodes[node];
        return state.up ? state.incarnation : -1;
      },
    };
  }

  /** The seed this simulation was created with. */
  get seed(): number {
    return this.#seed;
  }

  /** Current virtual time, in ms. */
  get now(): number {
    return this.#now;
  }

  /** Number of events run so far. */
  get eventsRun(): number {
    return this.#executed;
  }

  /**
   * A clock for simulation scripts (not tied to any node): its timers are
   * script events and survive every crash.
   */
  get clock(): Clock {
    if (this.#clock === undefined) {
      this.#clock = {
        now: () => this.#now,
        setTimer: (delayMs, callback) => this.schedule(delayMs, callback),
        clearTimer: (id) => this.cancel(id),
      };
    }
    return this.#clock;
  }

  /**
   * Derives an independent random stream for a script, from the seed and
   * `label`. Does not perturb any stream the simulation itself uses.
   *
   * @param label Names the consumer; the same label gives the same stream.
   * @returns A new generator.
   */
  fork(label: string): Prng {
    return this.#root.fork("user:" + label);
  }

  // ---------------------------------------------------------------- events

  #push(
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

  #record(
    kind: TraceCode,
    node: string,
    peer: string,
    n: number,
    hidden: number,
    text: string,
  ): void {
    this.#trace.record(this.#now, kind, node, peer, n, hidden, text);
  }

  /**
   * Runs `fn` after `delayMs` virtual milliseconds, as a script event (not
   * tied to any node, so no crash cancels it).
   *
   * @param delayMs Delay in ms; negative values count as 0.
   * @param fn What to run.
   * @returns A handle for {@linkcode Simulation.cancel}.
   * @throws {RangeError} if `delayMs` is NaN or infinite.
   */
  schedule(delayMs: number, fn: () => void): TimerId {
    const delay = checkDelay("delay", delayMs);
    return this.#push(this.#now + delay, EventKind.script, -1, () => {
      this.#record(T.script, "", "", 0, 0, "");
      fn();
    }, undefined);
  }

  /**
   * Cancels a script event or timer; does nothing if it already ran.
   *
   * @param id A handle from {@linkcode Simulation.schedule} or a timer.
   */
  cancel(id: TimerId): void {
    this.#clearTimer(id);
  }

  #setNodeTimer(
    node: NodeState,
    incarnation: number,
    delayMs: number,
    callback: () => void,
  ): TimerId {
    const delay = checkDelay("timer delay", delayMs);
    if (!(node.up && node.incarnation === incarnation)) {
      this.#counters.zombieCalls++;
      return new QueuedEvent(0, 0, EventKind.timer, -1, () => {}, undefined);
    }
    const event = this.#push(
      this.#now + delay,
      EventKind.timer,
      node.index,
      () => {
        if (!(node.up && node.incarnation === incarnation)) return;
        this.#record(T.timer, node.id, "", event.seq, 0, "");
        callback();
      },
      undefined,
    );
    return event;
  }

  #clearTimer(id: TimerId): void {
    if (
      id instanceof QueuedEvent &&
      (id.kind === EventKind.timer || id.kind === EventKind.script)
    ) {
      id.cancelled = true;
    }
  }

  #nodeOfEvent(event: QueuedEvent): PeerId | undefined {
    return event.node >= 0 ? this.#nodes[event.node].id : undefined;
  }

  /** Runs the next event; false if there is none. */
  #step(): boolean {
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
      const node = this.#nodeOfEvent(event);
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
   * Runs every event due in the next `ms` virtual milliseconds, then sets
   * the clock to exactly `now + ms`.
   *
   * @param ms How long to run, in virtual ms.
   * @returns The number of events run.
   * @throws {RangeError} if `ms` is negative or not finite.
   * @throws {SimulationError} if a callback throws or the event budget runs out.
   */
  runFor(ms: number): number {
    if (!(Number.isFinite(ms) && ms >= 0)) {
      throw new RangeError(`Invalid duration ${ms}: must be finite and >= 0`);
    }
    const end = this.#now + ms;
    const start = this.#executed;
    for (;;) {
      const next = this.#queue.peek();
      if (next === undefined || next.time > end) break;
      this.#step();
    }
    this.#now = end;
    return this.#executed - start;
  }

  /**
   * Runs events until `predicate` returns true (checked before the first
   * event and after each one), time runs out, or no event is left.
   *
   * @param predicate The condition to reach.
   * @param options `maxTime`: most virtual ms to run.
   * @returns Whether the predicate became true.
   * @throws {RangeError} if `maxTime` is negative or NaN.
   * @throws {SimulationError} if a callback throws or the event budget runs out.
   */
  runUntil(predicate: () => boolean, options: RunUntilOptions = {}): boolean {
    const maxTime = options.maxTime ?? Infinity;
    if (!(maxTime >= 0)) {
      throw new RangeError(`Invalid maxTime ${maxTime}: must be >= 0`);
    }
    const end = this.#now + maxTime;
    if (predicate()) return true;
    for (;;) {
      const next = this.#queue.peek();
      if (next === undefined || next.time > end) {
        if (end !== Infinity) this.#now = end;
        return false;
      }
      this.#step();
      if (predicate()) return true;
    }
  }

  /**
   * Runs exactly one event, if there is one.
   *
   * @returns Whether an event ran.
   * @throws {SimulationError} if its callback throws or the event budget runs out.
   */
  step(): boolean {
    return this.#step();
  }

  // ----------------------------------------------------------------- nodes

  #node(id: PeerId): NodeState {
    const node = this.#byId.get(id);
    if (node === undefined) {
      throw new TypeError(`Unknown node ${JSON.stringify(id)}`);
    }
    return node;
  }

  /**
   * Adds a node and starts it now: calls `start` with the node's clock,
   * random stream, transport and (empty) disk. A node can send only to
   * nodes already added: add every node `down` first, then start them,
   * if they must all know each other from the start.
   *
   * @typeParam H What `start` returns.
   * @param id The node's id, unique in this simulation.
   * @param start Builds the node; called again on every restart.
   * @param options `down`: only register the node (addressable, with a
   * disk); start it later with {@linkcode Simulation.start}.
   * @returns The node's live view.
   * @throws {TypeError} if `id` is empty or already used.
   */
  addNode<H extends object>(
    id: PeerId,
    start: (env: SimNodeEnv) => H,
    options: AddNodeOptions = {},
  ): SimNode<H> {
    if (typeof id !== "string" || id === "") {
      throw new TypeError(`Invalid node id ${JSON.stringify(id)}`);
    }
    if (this.#byId.has(id)) {
      throw new TypeError(`Node ${JSON.stringify(id)} already exists`);
    }
    const index = this.#nodes.length;
    const disk = new SimDisk(
      index,
      id,
      this.#diskHost,
      this.#diskConfig,
      this.#root.fork(`disk:${id}`),
      this.#counters,
    );
    const node: NodeState = {
      index,
      id,
      start,
      disk,
      up: false,
      incarnation: 0,
      handle: undefined,
      transport: undefined,
      view: undefined as unknown as SimNode<object>,
    };
    node.view = {
      id,
      get up() {
        return node.up;
      },
      get incarnation() {
        return node.incarnation;
      },
      get handle() {
        return node.handle;
      },
      disk,
    };
    this.#nodes.push(node);
    this.#byId.set(id, node);
    if (!options.down) this.#startNode(node, T.start);
    return node.view as SimNode<H>;
  }

  /**
   * The view of a node.
   *
   * @param id The node's id.
   * @returns Its view (state, handle, disk).
   * @throws {TypeError} if no node has this id.
   */
  node(id: PeerId): SimNode<object> {
    return this.#node(id).view;
  }

  /**
   * Ids of every node ever added, in the order they were added.
   *
   * @returns The ids.
   */
  nodeIds(): PeerId[] {
    return this.#nodes.map((n) => n.id);
  }

  #startNode(node: NodeState, kind: TraceCode): void {
    node.incarnation++;
    node.up = true;
    const incarnation = node.incarnation;
    const transport = new SimTransport(this.#core, node, this.#maxFrameSize);
    node.transport = transport;
    this.#record(kind, node.id, "", incarnation, 0, "");
    const env: SimNodeEnv = {
      id: node.id,
      incarnation,
      clock: new NodeClock(this.#core, node, incarnation),
      random: this.#root.fork(`node:${node.id}#${incarnation}`),
      transport,
      storage: node.disk.storageFor(incarnation),
      log: this.#logger(node, incarnation),
    };
    node.handle = node.start(env);
    if (!this.#peerEvents || !node.up || node.incarnation !== incarnation) {
      return;
    }
    for (const other of this.#nodes) {
      if (other === node || !other.up) continue;
      this.#peerEvent(other, node.id, true);
      this.#peerEvent(node, other.id, true);
    }
  }

  #peerEvent(target: NodeState, peer: PeerId, up: boolean): void {
    const incarnation = target.incarnation;
    this.#push(
      this.#now + this.#peerEventDelay,
      EventKind.peer,
      target.index,
      () => {
        const transport = target.transport;
        if (
          !(target.up && target.incarnation === incarnation) ||
          transport === undefined || !transport.live
        ) return;
        this.#record(up ? T.peerUp : T.peerDown, target.id, peer, 0, 0, "");
        if (up) {
          transport.counters.connectionsOpened++;
          transport.handler?.onPeerUp?.(peer);
        } else {
          transport.counters.connectionsClosed++;
          transport.handler?.onPeerDown?.(peer);
        }
      },
      undefined,
    );
  }

  #logger(node: NodeState, incarnation: number): Logger {
    return {
      log: (level: LogLevel, event: string, fields?: LogFields) => {
        if (LOG_RANK[level] < this.#logRank) return;
        if (!this.#trace.keeping && this.#onLog === undefined) return;
        const line = `${
          this.#now.toFixed(3)
        } ${node.id}#${incarnation} ${level} ${event}${
          fields === undefined ? "" : " " + formatFields(fields)
        }`;
        this.#trace.keep(line);
        this.#onLog?.(line);
      },
    };
  }

  /** Takes a node down: cancels its events, silences its incarnation. */
  #takeDown(node: NodeState, crash: boolean): void {
    node.up = false;
    node.handle = undefined;
    const cancelled: QueuedEvent[] = [];
    this.#queue.forEach((event) => {
      if (event.node === node.index && !event.cancelled) {
        event.cancelled = true;
        cancelled.push(event);
      }
    });
    // Sequence order, so that follow-up events are scheduled deterministically
    // whatever the heap's layout.
    cancelled.sort((a, b) => a.seq - b.seq);
    const c = this.#counters;
    for (const event of cancelled) {
      if (event.kind === EventKind.deliver) c.droppedReceiverDown++;
      else if (crash && event.kind === EventKind.timer) {
        c.timersDroppedByCrash++;
      } else if (crash && event.kind === EventKind.sync) c.syncsLostByCrash++;
      event.onCancel?.();
    }
    if (crash) node.disk.crash();
    else node.disk.flushAll();
    if (!this.#peerEvents) return;
    for (const other of this.#nodes) {
      if (other !== node && other.up) this.#peerEvent(other, node.id, false);
    }
  }

  /**
   * Crashes a node: its timers, pending syncs and frames in flight to it
   * are dropped, unsynced disk writes are lost (but for a random prefix in
   * `"torn"` mode), and every object its incarnation holds goes silent.
   *
   * @param id The node's id.
   * @returns `true` if the node was up, `false` if it was already down.
   * @throws {TypeError} if no node has this id.
   */
  crash(id: PeerId): boolean {
    const node = this.#node(id);
    if (!node.up) return false;
    this.#counters.crashes++;
    this.#record(T.crash, id, "", node.incarnation, 0, "");
    this.#takeDown(node, true);
    return true;
  }

  /**
   * Stops a node cleanly: calls its handle's `stop()`, then takes it down.
   * Unlike a crash, every write is kept (the process exits; the operating
   * system's cache survives).
   *
   * @param id The node's id.
   * @returns `true` if the node was up, `false` if it was already down.
   * @throws {TypeError} if no node has this id.
   */
  stop(id: PeerId): boolean {
    const node = this.#node(id);
    if (!node.up) return false;
    const handle = node.handle as SimNodeHandle | undefined;
    if (typeof handle?.stop === "function") handle.stop();
    if (!node.up) return false;
    this.#counters.stops++;
    this.#record(T.stop, id, "", node.incarnation, 0, "");
    this.#takeDown(node, false);
    return true;
  }

  /**
   * Restarts a node that is down: calls its `start` again, with a new
   * incarnation, clock, random stream and transport, and the disk as the
   * crash left it.
   *
   * @param id The node's id.
   * @returns `true` if the node was down, `false` if it was already up.
   * @throws {TypeError} if no node has this id.
   */
  restart(id: PeerId): boolean {
    const node = this.#node(id);
    if (node.up) return false;
    if (node.incarnation === 0) {
      this.#startNode(node, T.start);
    } else {
      this.#counters.restarts++;
      this.#startNode(node, T.restart);
    }
    return true;
  }

  /**
   * Starts a node that is down: the first start of a node added with
   * `down: true`, or else a restart (same as {@linkcode Simulation.restart}).
   *
   * @param id The node's id.
   * @returns `true` if the node was down, `false` if it was already up.
   * @throws {TypeError} if no node has this id.
   */
  start(id: PeerId): boolean {
    return this.restart(id);
  }

  // --------------------------------------------------------------- network

  #linkKey(from: NodeState, to: NodeState): number {
    return from.index * 65536 + to.index;
  }

  #link(from: NodeState, to: NodeState): LinkState {
    const key = this.#linkKey(from, to);
    let link = this.#links.get(key);
    if (link === undefined) {
      link = {
        key,
        from,
        to,
        random: this.#root.fork(`net:${from.id}>${to.id}`),
        config: this.#defaults,
        version: -1,
        sent: 0,
        maxDelivered: 0,
        inFlight: 0,
        lastArrival: 0,
        drainWaiter: undefined,
      };
      this.#links.set(key, link);
    }
    if (link.version !== this.#linkVersion) {
      const override = this.#overrides.get(key);
      link.config = override === undefined
        ? this.#defaults
        : resolveLink(this.#defaults, override);
      link.version = this.#linkVersion;
    }
    return link;
  }

  #send(
    from: NodeState,
    transport: SimTransport,
    to: PeerId,
    payload: Uint8Array,
  ): boolean {
    const target = this.#byId.get(to);
    if (target === undefined) {
      transport.counters.unknownPeerRefusals++;
      throw new TypeError(
        `Cannot send from ${from.id} to unknown node ${JSON.stringify(to)}`,
      );
    }
    if (!transport.live) {
      transport.counters.undeliverableDropped++;
      if (!transport.closed) this.#counters.zombieCalls++;
      return true;
    }
    const link = this.#link(from, target);
    const config = link.config;
    if (link.inFlight >= config.maxInFlight) {
      transport.counters.backpressureRefusals++;
      this.#counters.backpressureRefusals++;
      link.drainWaiter = transport;
      this.#record(T.refused, from.id, to, payload.length, 0, "");
      return false;
    }
    const c = this.#counters;
    transport.counters.framesSent++;
    transport.counters.bytesSent += payload.length;
    c.framesSent++;
    const copy = payload.slice();
    const seq = ++link.sent;
    this.#record(T.send, from.id, to, payload.length, hashBytes(copy), "");
    if ((this.#blocked.get(link.key) ?? 0) > 0) {
      c.droppedByPartition++;
      this.#record(T.dropPartition, from.id, to, seq, 0, "");
      return true;
    }
    const random = link.random;
    if (config.loss > 0 && random.float() < config.loss) {
      c.droppedByLoss++;
      this.#record(T.dropLoss, from.id, to, seq, 0, "");
      return true;
    }
    link.inFlight++;
    let arrival = this.#now + sampleLatency(config.latency, random);
    if (config.reorder > 0 && random.float() < config.reorder) {
      arrival += random.float() * config.reorderDelay;
      c.delayedForReorder++;
      this.#record(T.delay, from.id, to, seq, 0, "");
    }
    if (config.fifo) {
      arrival = Math.max(arrival, link.lastArrival);
      link.lastArrival = arrival;
    }
    this.#push(
      arrival,
      EventKind.deliver,
      target.index,
      () => this.#deliver(link, copy, seq, true),
      () => this.#landed(link),
    );
    if (config.duplicate > 0 && random.float() < config.duplicate) {
      c.duplicated++;
      this.#record(T.duplicate, from.id, to, seq, 0, "");
      let again = this.#now + sampleLatency(config.latency, random);
      if (config.fifo) {
        again = Math.max(again, link.lastArrival);
        link.lastArrival = again;
      }
      const dup = copy.slice();
      this.#push(
        again,
        EventKind.deliver,
        target.index,
        () => this.#deliver(link, dup, seq, false),
        undefined,
      );
    }
    return true;
  }

  /** A frame of `link` left the network (delivered or dropped). */
  #landed(link: LinkState): void {
    link.inFlight--;
    const waiter = link.drainWaiter;
    if (waiter === undefined || link.inFlight >= link.config.maxInFlight) {
      return;
    }
    link.drainWaiter = undefined;
    const to = link.to.id;
    this.#push(this.#now, EventKind.drain, link.from.index, () => {
      if (!waiter.live) return;
      this.#record(T.drain, link.from.id, to, 0, 0, "");
      waiter.handler?.onDrain?.(to);
    }, undefined);
  }

  #deliver(
    link: LinkState,
    payload: Uint8Array,
    seq: number,
    primary: boolean,
  ): void {
    if (primary) this.#landed(link);
    const c = this.#counters;
    const from = link.from.id;
    const target = link.to;
    if (!target.up) {
      c.droppedReceiverDown++;
      this.#record(T.dropDown, target.id, from, seq, 0, "");
      return;
    }
    if ((this.#blocked.get(link.key) ?? 0) > 0) {
      c.droppedByPartition++;
      this.#record(T.dropPartition, target.id, from, seq, 0, "");
      return;
    }
    const transport = target.transport!;
    const handler = transport.handler;
    if (transport.closed || handler === undefined) {
      c.droppedNoHandler++;
      this.#record(T.dropClosed, target.id, from, seq, 0, "");
      return;
    }
    if (primary) {
      if (seq < link.maxDelivered) c.reordered++;
      else link.maxDelivered = seq;
    }
    c.framesDelivered++;
    transport.counters.framesReceived++;
    transport.counters.bytesReceived += payload.length;
    this.#record(T.deliver, target.id, from, seq, 0, "");
    handler.onFrame(from, payload);
  }

  /**
   * Changes the default settings of every link that has no override.
   *
   * @param options The settings to change.
   * @throws {RangeError} on an invalid probability, delay or latency.
   */
  setDefaultLink(options: LinkOptions): void {
    this.#defaults = resolveLink(this.#defaults, options);
    this.#linkVersion++;
    this.#record(T.link, "*", "*", this.#linkVersion, 0, "");
  }

  /**
   * Overrides the settings of the directed link `from` -> `to` (on top of
   * the defaults and of earlier overrides of the same link).
   *
   * @param from Sending node.
   * @param to Receiving node.
   * @param options The settings to change.
   * @throws {TypeError} if a node is unknown.
   * @throws {RangeError} on an invalid probability, delay or latency.
   */
  setLink(from: PeerId, to: PeerId, options: LinkOptions): void {
    const key = this.#linkKey(this.#node(from), this.#node(to));
    const merged = { ...this.#overrides.get(key), ...stripUndefined(options) };
    resolveLink(this.#defaults, merged);
    this.#overrides.set(key, merged);
    this.#linkVersion++;
    this.#record(T.link, from, to, this.#linkVersion, 0, "");
  }

  /**
   * Removes link overrides: of `from` -> `to`, or of every link if called
   * without arguments.
   *
   * @param from Sending node.
   * @param to Receiving node.
   * @throws {TypeError} if a node is unknown or only one is given.
   */
  resetLink(from?: PeerId, to?: PeerId): void {
    if (from === undefined && to === undefined) {
      this.#overrides.clear();
    } else if (from === undefined || to === undefined) {
      throw new TypeError("resetLink needs both nodes or none");
    } else {
      this.#overrides.delete(this.#linkKey(this.#node(from), this.#node(to)));
    }
    this.#linkVersion++;
    this.#record(T.link, from ?? "*", to ?? "*", this.#linkVersion, 0, "");
  }

  /**
   * The settings currently in force on the directed link `from` -> `to`.
   *
   * @param from Sending node.
   * @param to Receiving node.
   * @returns The resolved settings.
   * @throws {TypeError} if a node is unknown.
   */
  link(from: PeerId, to: PeerId): LinkConfig {
    return this.#link(this.#node(from), this.#node(to)).config;
  }

  /**
   * Cuts the network between two sets of nodes: frames from a node of
   * `sideA` to one of `sideB` are dropped (at send, and on arrival if they
   * were already in flight), and the other way too unless `oneWay`.
   * Partitions overlap freely; a link works again once every partition
   * that cut it has healed.
   *
   * @param sideA Nodes on one side.
   * @param sideB Nodes on the other side.
   * @param options `oneWay`: cut only `sideA` -> `sideB`.
   * @returns The partition's id, for {@linkcode Simulation.heal}.
   * @throws {TypeError} if a node is unknown.
   */
  partition(
    sideA: readonly PeerId[],
    sideB: readonly PeerId[],
    options: PartitionOptions = {},
  ): number {
    const a = sideA.map((id) => this.#node(id));
    const b = sideB.map((id) => this.#node(id));
    const keys: number[] = [];
    for (const x of a) {
      for (const y of b) {
        if (x === y) continue;
        keys.push(this.#linkKey(x, y));
        if (!options.oneWay) keys.push(this.#linkKey(y, x));
      }
    }
    for (const key of keys) {
      this.#blocked.set(key, (this.#blocked.get(key) ?? 0) + 1);
    }
    const id = ++this.#partitionSeq;
    this.#partitions.set(id, keys);
    this.#counters.partitions++;
    this.#record(
      T.partition,
      sideA.join(","),
      sideB.join(","),
      id,
      options.oneWay ? 1 : 0,
      options.oneWay ? "one-way" : "",
    );
    return id;
  }

  /**
   * Heals one partition, or every partition if called without an id.
   *
   * @param id A partition id from {@linkcode Simulation.partition}.
   * @returns Whether a partition was healed.
   */
  heal(id?: number): boolean {
    const ids = id === undefined ? [...this.#partitions.keys()] : [id];
    let healed = false;
    for (const pid of ids) {
      const keys = this.#partitions.get(pid);
      if (keys === undefined) continue;
      this.#partitions.delete(pid);
      for (const key of keys) {
        const n = (this.#blocked.get(key) ?? 1) - 1;
        if (n <= 0) this.#blocked.delete(key);
        else this.#blocked.set(key, n);
      }
      this.#counters.heals++;
      this.#record(T.heal, "", "", pid, 0, "");
      healed = true;
    }
    return healed;
  }

  /**
   * Whether frames from `from` to `to` are currently cut by a partition.
   *
   * @param from Sending node.
   * @param to Receiving node.
   * @returns `true` if a partition cuts the directed link.
   * @throws {TypeError} if a node is unknown.
   */
  isCut(from: PeerId, to: PeerId): boolean {
    const key = this.#linkKey(this.#node(from), this.#node(to));
    return (this.#blocked.get(key) ?? 0) > 0;
  }

  // ----------------------------------------------------------------- trace

  /**
   * Adds a script annotation to the trace (hashed like every event).
   *
   * @param text What to record.
   * @param node The node it concerns, if any.
   */
  note(text: string, node?: PeerId): void {
    this.#record(T.note, node ?? "", "", 0, 0, text);
  }

  /**
   * A snapshot of the fault and activity counters.
   *
   * @returns A copy of the counters.
   */
  faults(): SimFaultCounters {
    return { ...this.#counters };
  }

  /**
   * The hash of the trace so far: 16 hex digits (64 bits) folded over every
   * event in order (kind, virtual time, nodes, sizes, payload digests).
   * Equal seeds and scripts give equal hashes.
   *
   * @returns The hash.
   */
  traceHash(): string {
    return this.#trace.hash();
  }

  /**
   * The last traced events and log lines, oldest first, as text (at most
   * {@linkcode SimulationOptions.traceCapacity}).
   *
   * @returns The lines.
   */
  recentTrace(): string[] {
    return this.#trace.recent();
  }

  /** Number of traced events so far. */
  get traceLength(): number {
    return this.#trace.count;
  }
}

function formatFields(fields: LogFields): string {
  try {
    return JSON.stringify(fields);
  } catch {
    return String(fields);
  }
}

function stripUndefined(options: LinkOptions): LinkOptions {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined) out[k] = v;
  }
  return out as LinkOptions;
}
