/**
 * The simulated disk of one node: the `Storage` contract with
 * crash semantics. Only synced data is sure to survive a crash; unsynced
 * writes survive as a random prefix (the last append possibly torn);
 * `replace` is atomic; `sync` completes through the event queue after a
 * sampled latency.
 *
 * @module
 */

import type { LatencyDistribution } from "./network.ts";

/** How the simulated disks behave. */
export interface DiskOptions {
  /** Latency of one `sync`. Default uniform in [0.5, 2) ms. */
  syncLatency?: LatencyDistribution | undefined;
  /**
   * Probability that a `sync` fails (its callback gets an error and nothing
   * becomes durable). Default 0.
   */
  syncErrorRate?: number | undefined;
  /**
   * What a crash does to unsynced writes of a file:
   * - `"torn"` (default): a random prefix of them survives, in order, and
   *   the first lost append may survive partially (a torn tail);
   * - `"lose"`: all of them are lost.
   */
  unsyncedOnCrash?: "torn" | "lose" | undefined;
}

/** Read-only inspection of a node's disk, for checkers and tests. */
export interface SimDiskView {
  /** Names of the files that currently exist, sorted. */
  list(): string[];
  /**
   * Current content of a file, as the running node sees it (a copy).
   *
   * @param name The file name.
   * @returns The content, or `undefined` if the file does not exist.
   */
  read(name: string): Uint8Array | undefined;
  /**
   * The content a crash is guaranteed to preserve: the last completed sync
   * (a copy).
   *
   * @param name The file name.
   * @returns The durable content, or `undefined` if the file durably does not exist.
   */
  readDurable(name: string): Uint8Array | undefined;
}

/** Disk counters, part of the simulation's fault counters. */
export interface DiskCounters {
  /** Syncs that completed successfully. */
  syncs: number;
  /** Syncs that failed (injected by `syncErrorRate`). */
  syncErrors: number;
  /** Syncs pending when their node crashed (their callbacks never run). */
  syncsLostByCrash: number;
  /** Unsynced writes (appends, replaces, removes) a crash discarded. */
  unsyncedWritesLost: number;
  /** Unsynced writes that survived a crash anyway (the random prefix). */
  unsyncedWritesSurvived: number;
  /** Appends a crash cut in the middle (a torn tail). */
  tornWrites: number;
  /**
   * Calls made through objects of a crashed incarnation (sends, writes,
   * timers); they have no effect.
   */
  zombieCalls: number;
}
