/**
 * The simulated network between nodes: the state and settings of every
 * directed link, partitions, and the path of a frame from `send` to
 * `onFrame` (backpressure, loss, latency, reordering, duplication, drain).
 *
 * @module
 */

import type { Prng } from "./prng.ts";
import type { EventLoop } from "./_event_loop.ts";
import { hashBytes } from "./_hash.ts";
import type { NodeState } from "./_node_state.ts";
import { EventKind } from "./_queue.ts";
import type { SimTransport } from "./_sim_transport.ts";
import { T } from "./_trace.ts";
import {
  type LinkConfig,
  type LinkOptions,
  resolveLink,
  sampleLatency,
} from "./network.ts";
import type { PartitionOptions, SimFaultCounters } from "./sim_types.ts";

interface LinkState {
  readonly key: number;
  readonly from: NodeState;
  readonly to: NodeState;
  readonly random: Prng;
  config: LinkConfig;
  /** The settings version `config` was resolved at. */
  version: number;
  sent: number;
  maxDelivered: number;
  inFlight: number;
  lastArrival: number;
  /** The transport refused by backpressure, told when the link drains. */
  drainWaiter: SimTransport | undefined;
}

function linkKey(from: NodeState, to: NodeState): number {
  return from.index * 65536 + to.index;
}

function stripUndefined(options: LinkOptions): LinkOptions {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined) out[k] = v;
  }
  return out as LinkOptions;
}

/** Every directed link of a simulation, and the partitions cutting them. */
export class Links {
  readonly #loop: EventLoop;
  readonly #root: Prng;
  readonly #counters: SimFaultCounters;
  readonly #links = new Map<number, LinkState>();
  readonly #overrides = new Map<number, LinkOptions>();
  /** Directed pair key -> number of partitions cutting it. */
  readonly #blocked = new Map<number, number>();
  /** Partition id -> the keys it cuts. */
  readonly #partitions = new Map<number, number[]>();
  #defaults: LinkConfig;
  #version = 0;
  #partitionSeq = 0;

  /**
   * Creates a network without partitions or overrides.
   *
   * @param loop The simulation's event loop.
   * @param root The generator each link's random stream is forked from.
   * @param counters The simulation's counters.
   * @param defaults The settings of every link without an override.
   */
  constructor(
    loop: EventLoop,
    root: Prng,
    counters: SimFaultCounters,
    defaults: LinkConfig,
  ) {
    this.#loop = loop;
    this.#root = root;
    this.#counters = counters;
    this.#defaults = defaults;
  }

  #link(from: NodeState, to: NodeState): LinkState {
    const key = linkKey(from, to);
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
    if (link.version !== this.#version) {
      const override = this.#overrides.get(key);
      link.config = override === undefined
        ? this.#defaults
        : resolveLink(this.#defaults, override);
      link.version = this.#version;
    }
    return link;
  }

  #cut(key: number): boolean {
    return (this.#blocked.get(key) ?? 0) > 0;
  }

  /** On a FIFO link, delays `arrival` to the link's last arrival. */
  #fifo(link: LinkState, arrival: number): number {
    if (!link.config.fifo) return arrival;
    arrival = Math.max(arrival, link.lastArrival);
    link.lastArrival = arrival;
    return arrival;
  }

  /**
   * Sends a frame of a live transport: refuses it on backpressure, else
   * copies it, then drops, delays or duplicates it as the link says.
   *
   * @param from Sending node.
   * @param to Receiving node.
   * @param transport The sender's transport.
   * @param payload The frame.
   * @returns `false` if the link's `maxInFlight` was reached.
   */
  send(
    from: NodeState,
    to: NodeState,
    transport: SimTransport,
    payload: Uint8Array,
  ): boolean {
    const loop = this.#loop;
    const link = this.#link(from, to);
    const config = link.config;
    if (link.inFlight >= config.maxInFlight) {
      transport.counters.backpressureRefusals++;
      this.#counters.backpressureRefusals++;
      link.drainWaiter = transport;
      loop.record(T.refused, from.id, to.id, payload.length, 0, "");
      return false;
    }
    const c = this.#counters;
    transport.counters.framesSent++;
    transport.counters.bytesSent += payload.length;
    c.framesSent++;
    const copy = payload.slice();
    const seq = ++link.sent;
    loop.record(T.send, from.id, to.id, payload.length, hashBytes(copy), "");
    if (this.#cut(link.key)) {
      c.droppedByPartition++;
      loop.record(T.dropPartition, from.id, to.id, seq, 0, "");
      return true;
    }
    const random = link.random;
    if (config.loss > 0 && random.float() < config.loss) {
      c.droppedByLoss++;
      loop.record(T.dropLoss, from.id, to.id, seq, 0, "");
      return true;
    }
    link.inFlight++;
    let arrival = loop.now + sampleLatency(config.latency, random);
    if (config.reorder > 0 && random.float() < config.reorder) {
      arrival += random.float() * config.reorderDelay;
      c.delayedForReorder++;
      loop.record(T.delay, from.id, to.id, seq, 0, "");
    }
    loop.push(
      this.#fifo(link, arrival),
      EventKind.deliver,
      to.index,
      () => this.#deliver(link, copy, seq, true),
      () => this.#landed(link),
    );
    if (config.duplicate > 0 && random.float() < config.duplicate) {
      c.duplicated++;
      loop.record(T.duplicate, from.id, to.id, seq, 0, "");
      const again = loop.now + sampleLatency(config.latency, random);
      const dup = copy.slice();
      loop.push(
        this.#fifo(link, again),
        EventKind.deliver,
        to.index,
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
    const loop = this.#loop;
    const to = link.to.id;
    loop.push(loop.now, EventKind.drain, link.from.index, () => {
      if (!waiter.live) return;
      loop.record(T.drain, link.from.id, to, 0, 0, "");
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
    const loop = this.#loop;
    const c = this.#counters;
    const from = link.from.id;
    const target = link.to;
    if (!target.up) {
      c.droppedReceiverDown++;
      loop.record(T.dropDown, target.id, from, seq, 0, "");
      return;
    }
    if (this.#cut(link.key)) {
      c.droppedByPartition++;
      loop.record(T.dropPartition, target.id, from, seq, 0, "");
      return;
    }
    const transport = target.transport!;
    const handler = transport.handler;
    if (transport.closed || handler === undefined) {
      c.droppedNoHandler++;
      loop.record(T.dropClosed, target.id, from, seq, 0, "");
      return;
    }
    if (primary) {
      if (seq < link.maxDelivered) c.reordered++;
      else link.maxDelivered = seq;
    }
    c.framesDelivered++;
    transport.counters.framesReceived++;
    transport.counters.bytesReceived += payload.length;
    loop.record(T.deliver, target.id, from, seq, 0, "");
    handler.onFrame(from, payload);
  }

  /**
   * The settings in force on the directed link `from` -> `to`.
   *
   * @param from Sending node.
   * @param to Receiving node.
   * @returns The resolved settings.
   */
  config(from: NodeState, to: NodeState): LinkConfig {
    return this.#link(from, to).config;
  }

  /**
   * Changes the default settings of every link without an override.
   *
   * @param options The settings to change.
   * @throws {RangeError} on an invalid probability, delay or latency.
   */
  setDefault(options: LinkOptions): void {
    this.#defaults = resolveLink(this.#defaults, options);
    this.#changed("*", "*");
  }

  /**
   * Overrides settings of the directed link `from` -> `to`, on top of its
   * earlier overrides.
   *
   * @param from Sending node.
   * @param to Receiving node.
   * @param options The settings to change.
   * @throws {RangeError} on an invalid probability, delay or latency.
   */
  set(from: NodeState, to: NodeState, options: LinkOptions): void {
    const key = linkKey(from, to);
    const merged = { ...this.#overrides.get(key), ...stripUndefined(options) };
    resolveLink(this.#defaults, merged);
    this.#overrides.set(key, merged);
    this.#changed(from.id, to.id);
  }

  /**
   * Removes the overrides of the directed link `from` -> `to`.
   *
   * @param from Sending node.
   * @param to Receiving node.
   */
  reset(from: NodeState, to: NodeState): void {
    this.#overrides.delete(linkKey(from, to));
    this.#changed(from.id, to.id);
  }

  /** Removes the overrides of every link. */
  resetAll(): void {
    this.#overrides.clear();
    this.#changed("*", "*");
  }

  /** Makes every link re-resolve its settings, and traces the change. */
  #changed(from: string, to: string): void {
    this.#version++;
    this.#loop.record(T.link, from, to, this.#version, 0, "");
  }

  /**
   * Cuts every link from a node of `sideA` to one of `sideB`, and back
   * unless `oneWay`.
   *
   * @param sideA Nodes on one side.
   * @param sideB Nodes on the other side.
   * @param options `oneWay`: cut only `sideA` -> `sideB`.
   * @returns The partition's id.
   */
  partition(
    sideA: readonly NodeState[],
    sideB: readonly NodeState[],
    options: PartitionOptions,
  ): number {
    const keys: number[] = [];
    for (const x of sideA) {
      for (const y of sideB) {
        if (x === y) continue;
        keys.push(linkKey(x, y));
        if (!options.oneWay) keys.push(linkKey(y, x));
      }
    }
    for (const key of keys) {
      this.#blocked.set(key, (this.#blocked.get(key) ?? 0) + 1);
    }
    const id = ++this.#partitionSeq;
    this.#partitions.set(id, keys);
    this.#counters.partitions++;
    this.#loop.record(
      T.partition,
      sideA.map((n) => n.id).join(","),
      sideB.map((n) => n.id).join(","),
      id,
      options.oneWay ? 1 : 0,
      options.oneWay ? "one-way" : "",
    );
    return id;
  }

  /**
   * Heals one partition, or every partition if `id` is `undefined`.
   *
   * @param id A partition id.
   * @returns Whether a partition was healed.
   */
  heal(id: number | undefined): boolean {
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
      this.#loop.record(T.heal, "", "", pid, 0, "");
      healed = true;
    }
    return healed;
  }

  /**
   * Whether a partition cuts the directed link `from` -> `to`.
   *
   * @param from Sending node.
   * @param to Receiving node.
   * @returns `true` if it is cut.
   */
  isCut(from: NodeState, to: NodeState): boolean {
    return this.#cut(linkKey(from, to));
  }
}
