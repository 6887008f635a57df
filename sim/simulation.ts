/**
 * The deterministic simulation: one event queue ordered by (virtual time,
 * insertion sequence), a virtual clock, a seeded PRNG, a simulated network
 * and a simulated disk per node, and crash/restart of nodes.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { Clock, TimerId } from "../runtime/clock.ts";
import {
  checkMaxFrameSize,
  DEFAULT_MAX_FRAME_SIZE,
} from "../transport/frame.ts";
import type { PeerId } from "../transport/transport.ts";
import {
  DEFAULT_LINK,
  type LinkConfig,
  type LinkOptions,
  resolveLink,
} from "./network.ts";
import { checkSeed, Prng } from "./prng.ts";
import type {
  AddNodeOptions,
  PartitionOptions,
  RunUntilOptions,
  SimFaultCounters,
  SimNode,
  SimNodeEnv,
  SimNodeHandle,
  SimulationOptions,
} from "./sim_types.ts";
import {
  type DiskConfig,
  type DiskHost,
  resolveDisk,
  SimDisk,
} from "./_disk.ts";
import { checkDelay, EventLoop } from "./_event_loop.ts";
import { Links } from "./_links.ts";
import { NodeClock } from "./_node_clock.ts";
import { isAlive, newNodeState, type NodeState } from "./_node_state.ts";
import { EventKind } from "./_queue.ts";
import { SimLog } from "./_sim_log.ts";
import { SimulationError } from "./simulation_error.ts";
import { SimTransport, type TransportHost } from "./_sim_transport.ts";
import { T, type TraceCode } from "./_trace.ts";

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
  readonly #loop: EventLoop;
  readonly #links: Links;
  readonly #log: SimLog;
  readonly #counters: SimFaultCounters = emptyCounters();
  readonly #maxFrameSize: number;
  readonly #diskConfig: DiskConfig;
  readonly #peerEvents: boolean;
  readonly #peerEventDelay: number;
  readonly #nodes: NodeState[] = [];
  readonly #byId = new Map<PeerId, NodeState>();
  readonly #transportHost: TransportHost;
  readonly #diskHost: DiskHost;
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
    const defaults = resolveLink(DEFAULT_LINK, options);
    this.#diskConfig = resolveDisk(options.disk ?? {});
    this.#maxFrameSize = checkMaxFrameSize(
      options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
    );
    const loop = new EventLoop({
      seed: this.#seed,
      maxEvents: options.maxEvents ?? 10_000_000,
      traceCapacity: options.traceCapacity ?? 0,
      nodeId: (index) => this.#nodes[index].id,
    });
    this.#loop = loop;
    this.#links = new Links(loop, this.#root, this.#counters, defaults);
    this.#peerEvents = options.peerEvents ?? true;
    this.#peerEventDelay = checkDelay(
      "peerEventDelay",
      options.peerEventDelay ?? 1,
    );
    this.#log = new SimLog(loop, options.logLevel ?? "info", options.onLog);
    this.#transportHost = {
      peer: (id) => this.#byId.get(id),
      zombie: () => {
        this.#counters.zombieCalls++;
      },
      send: (from, to, transport, payload) =>
        this.#links.send(from, to, transport, payload),
    };
    this.#diskHost = {
      now: () => loop.now,
      scheduleSync: (node, incarnation, time, run) => {
        const state = this.#nodes[node];
        loop.push(time, EventKind.sync, node, () => {
          if (isAlive(state, incarnation)) run();
        }, undefined);
      },
      trace: (kind, node, file, n) => loop.record(kind, node, file, n, 0, ""),
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
    return this.#loop.now;
  }

  /** Number of events run so far. */
  get eventsRun(): number {
    return this.#loop.executed;
  }

  /**
   * A clock for simulation scripts (not tied to any node): its timers are
   * script events and survive every crash.
   */
  get clock(): Clock {
    if (this.#clock === undefined) {
      this.#clock = {
        now: () => this.#loop.now,
        setTimer: (delayMs, callback) => this.schedule(delayMs, callback),
        clearTimer: (id) => this.cancel(id),
        defer: (callback) => void this.schedule(0, callback),
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

  #record(kind: TraceCode, node: string, peer: string, n: number): void {
    this.#loop.record(kind, node, peer, n, 0, "");
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
    const loop = this.#loop;
    return loop.push(loop.now + delay, EventKind.script, -1, () => {
      this.#record(T.script, "", "", 0);
      fn();
    }, undefined);
  }

  /**
   * Cancels a script event or timer; does nothing if it already ran.
   *
   * @param id A handle from {@linkcode Simulation.schedule} or a timer.
   */
  cancel(id: TimerId): void {
    this.#loop.clearTimer(id);
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
    return this.#loop.runFor(ms);
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
    return this.#loop.runUntil(predicate, options.maxTime ?? Infinity);
  }

  /**
   * {@linkcode Simulation.runFor} for code written with promises: after
   * every event, every promise continuation it triggered runs (the
   * microtask queue is drained) before the next event, at the same virtual
   * time. Still deterministic: continuations run in the order JavaScript
   * queues them. A promise rejected and not handled during the run fails
   * it.
   *
   * @example A client written with async/await inside the simulator
   * ```ts
   * import assert from "node:assert/strict";
   * import { Simulation } from "@cohort/cohort/sim";
   *
   * const sim = new Simulation({ seed: 1 });
   * const steps: number[] = [];
   * sim.addNode("a", (env) => {
   *   const sleep = (ms: number) =>
   *     new Promise<void>((resolve) => env.clock.setTimer(ms, resolve));
   *   (async () => {
   *     await sleep(10);
   *     steps.push(env.clock.now());
   *     await sleep(5);
   *     steps.push(env.clock.now());
   *   })();
   *   return {};
   * });
   * await sim.runForAsync(100);
   * assert.deepEqual(steps, [10, 15]);
   * ```
   *
   * @param ms How long to run, in virtual ms.
   * @returns The number of events run.
   * @throws {RangeError} if `ms` is negative or not finite.
   * @throws {SimulationError} if a callback throws, a promise rejection is
   * not handled, or the event budget runs out.
   */
  runForAsync(ms: number): Promise<number> {
    return this.#trapRejections((settle) => this.#loop.runForAsync(ms, settle));
  }

  /**
   * {@linkcode Simulation.runUntil} for code written with promises; see
   * {@linkcode Simulation.runForAsync}.
   *
   * @param predicate The condition to reach.
   * @param options `maxTime`: most virtual ms to run.
   * @returns Whether the predicate became true.
   * @throws {RangeError} if `maxTime` is negative or NaN.
   * @throws {SimulationError} if a callback throws, a promise rejection is
   * not handled, or the event budget runs out.
   */
  runUntilAsync(
    predicate: () => boolean,
    options: RunUntilOptions = {},
  ): Promise<boolean> {
    return this.#trapRejections((settle) =>
      this.#loop.runUntilAsync(predicate, options.maxTime ?? Infinity, settle)
    );
  }

  async #trapRejections<T>(
    run: (settle: () => Promise<void>) => Promise<T>,
  ): Promise<T> {
    const rejections: unknown[] = [];
    const trap = (event: PromiseRejectionEvent) => {
      event.preventDefault();
      rejections.push(event.reason);
    };
    const settle = async () => {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (rejections.length > 0) {
        const reason = rejections[0];
        throw new SimulationError(
          "callback",
          `A promise was rejected and not handled at t=${
            this.now.toFixed(3)
          }ms (seed ${this.seed}): ${
            reason instanceof Error ? reason.message : String(reason)
          }`,
          { time: this.now, cause: reason },
        );
      }
    };
    globalThis.addEventListener("unhandledrejection", trap);
    try {
      const result = await run(settle);
      await settle();
      return result;
    } finally {
      globalThis.removeEventListener("unhandledrejection", trap);
    }
  }

  /**
   * Runs exactly one event, if there is one.
   *
   * @returns Whether an event ran.
   * @throws {SimulationError} if its callback throws or the event budget runs out.
   */
  step(): boolean {
    return this.#loop.step();
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
    const node = newNodeState(index, id, start, disk);
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
    const transport = new SimTransport(
      this.#transportHost,
      node,
      this.#maxFrameSize,
    );
    node.transport = transport;
    this.#record(kind, node.id, "", incarnation);
    const env: SimNodeEnv = {
      id: node.id,
      incarnation,
      clock: new NodeClock(this.#loop, node, incarnation, this.#counters),
      random: this.#root.fork(`node:${node.id}#${incarnation}`),
      transport,
      storage: node.disk.storageFor(incarnation),
      log: this.#log.logger(node.id, incarnation),
    };
    node.handle = node.start(env);
    if (!this.#peerEvents || !isAlive(node, incarnation)) return;
    for (const other of this.#nodes) {
      if (other === node || !other.up) continue;
      this.#peerEvent(other, node.id, true);
      this.#peerEvent(node, other.id, true);
    }
  }

  #peerEvent(target: NodeState, peer: PeerId, up: boolean): void {
    const incarnation = target.incarnation;
    const loop = this.#loop;
    loop.push(
      loop.now + this.#peerEventDelay,
      EventKind.peer,
      target.index,
      () => {
        const transport = target.transport;
        if (
          !isAlive(target, incarnation) ||
          transport === undefined || !transport.live
        ) return;
        this.#record(up ? T.peerUp : T.peerDown, target.id, peer, 0);
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

  /** Takes a node down: cancels its events, silences its incarnation. */
  #takeDown(node: NodeState, crash: boolean): void {
    node.up = false;
    node.handle = undefined;
    const c = this.#counters;
    for (const event of this.#loop.cancelEventsOf(node.index)) {
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
    this.#record(T.crash, id, "", node.incarnation);
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
    this.#record(T.stop, id, "", node.incarnation);
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

  /**
   * Changes the default settings of every link that has no override.
   *
   * @param options The settings to change.
   * @throws {RangeError} on an invalid probability, delay or latency.
   */
  setDefaultLink(options: LinkOptions): void {
    this.#links.setDefault(options);
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
    this.#links.set(this.#node(from), this.#node(to), options);
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
      this.#links.resetAll();
    } else if (from === undefined || to === undefined) {
      throw new TypeError("resetLink needs both nodes or none");
    } else {
      this.#links.reset(this.#node(from), this.#node(to));
    }
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
    return this.#links.config(this.#node(from), this.#node(to));
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
    return this.#links.partition(a, b, options);
  }

  /**
   * Heals one partition, or every partition if called without an id.
   *
   * @param id A partition id from {@linkcode Simulation.partition}.
   * @returns Whether a partition was healed.
   */
  heal(id?: number): boolean {
    return this.#links.heal(id);
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
    return this.#links.isCut(this.#node(from), this.#node(to));
  }

  // ----------------------------------------------------------------- trace

  /**
   * Adds a script annotation to the trace (hashed like every event).
   *
   * @param text What to record.
   * @param node The node it concerns, if any.
   */
  note(text: string, node?: PeerId): void {
    this.#loop.record(T.note, node ?? "", "", 0, 0, text);
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
    return this.#loop.trace.hash();
  }

  /**
   * The last traced events and log lines, oldest first, as text (at most
   * {@linkcode SimulationOptions.traceCapacity}).
   *
   * @returns The lines.
   */
  recentTrace(): string[] {
    return this.#loop.trace.recent();
  }

  /** Number of traced events so far. */
  get traceLength(): number {
    return this.#loop.trace.count;
  }
}
