/**
 * The public types of a {@linkcode Simulation}: what a node sees and
 * returns, the fault counters, and the options of the simulation and of
 * its methods.
 *
 * @module
 */

import type { Clock } from "../runtime/clock.ts";
import type { Logger, LogLevel } from "../runtime/log.ts";
import type { Storage } from "../runtime/storage.ts";
import type { PeerId, Transport } from "../transport/transport.ts";
import type { DiskCounters, DiskOptions, SimDiskView } from "./disk.ts";
import type { LinkOptions } from "./network.ts";
import type { Prng } from "./prng.ts";

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
