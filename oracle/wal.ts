/**
 * The Oracle's durable write-ahead log: Raft's hard state and log entries
 * in checksummed, rotating segment files, plus snapshot files, all through
 * a {@linkcode Storage} (so the same code runs on {@linkcode FileStorage}
 * and on the simulator's disk).
 *
 * Files:
 * - `wal-<16-digit index>.log`: segments. Each record is
 *   `[u32 BE payload length][u32 BE CRC-32C of payload][payload]`, the payload
 *   UTF-8 JSON: a segment header (first record of every segment: the hard
 *   state, and the predecessor's name, length and largest entry index), a
 *   hard state, an entry, a "truncate from index" (a suffix replaced by
 *   {@linkcode Wal.write}) or a snapshot marker. Recovery replays them in
 *   order. A segment's name is the index its first entry was expected to
 *   have, made strictly increasing.
 * - `snap-<16-digit index>.bin`: snapshots, a 40-byte header (magic `CSNP`,
 *   version, index, term, data length, CRC-32C of the data, CRC-32C of the
 *   header) then the data, written with an atomic `replace`.
 *
 * Recovery cuts a torn tail (an incomplete last record, or a bad one
 * followed only by zeros or nothing) and anything a crash left after a
 * write that never became durable, rewriting the kept prefix with
 * `replace`; corruption anywhere else throws {@linkcode WalCorruptionError}.
 *
 * @example Write, sync, reopen
 * ```ts
 * import { Wal } from "./wal.ts";
 * import { FileStorage } from "../runtime/file_storage.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const storage = FileStorage.open(dir);
 * const { wal } = Wal.open<string>(storage);
 * wal.write({ term: 1, votedFor: "a" }, [{ term: 1, index: 1, command: "x" }]);
 * await new Promise<void>((ok, ko) => wal.sync((e) => e ? ko(e) : ok()));
 * await storage.close();
 *
 * const again = FileStorage.open(dir);
 * const { restored } = Wal.open<string>(again);
 * assert.deepEqual(restored.entries, [{ term: 1, index: 1, command: "x" }]);
 * assert.deepEqual(restored.hardState, { term: 1, votedFor: "a" });
 * await again.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import type { Storage } from "../runtime/storage.ts";
import type {
  HardState,
  LogEntry,
  RaftRestored,
  Snapshot,
} from "./raft_types.ts";
import {
  encodeSnapshot,
  RecordBuffer,
  segmentName,
  snapshotName,
} from "./_wal_format.ts";
import { recover, type SegmentInfo } from "./_wal_recover.ts";

/** Options of {@linkcode Wal.open}. */
export interface WalOptions {
  /**
   * Start a new segment file once the current one holds this many bytes
   * (checked before each write, so a batch never spans two files).
   * Default 64 MiB.
   */
  segmentBytes?: number | undefined;
  /**
   * Largest record payload, in bytes; a bigger entry or hard state is
   * refused with a `RangeError`. Default 16 MiB.
   */
  maxRecordBytes?: number | undefined;
}

/**
 * What {@linkcode Wal.open} returns: the log, the state it recovered, and
 * what recovery had to repair.
 *
 * @typeParam C The command type of the log entries.
 */
export interface WalOpenResult<C> {
  /** The log, ready for writes. */
  readonly wal: Wal<C>;
  /** Hard state, newest valid snapshot, and the entries after it. */
  readonly restored: RaftRestored<C>;
  /**
   * Whether recovery dropped a torn tail, or writes a crash cut off before
   * they became durable (see {@linkcode WalOpenResult.repairs}).
   */
  readonly tornTailRepaired: boolean;
  /** Bytes of segment files recovery dropped. */
  readonly droppedBytes: number;
  /**
   * Snapshot files newer than the one used whose checksum failed, with the
   * reason (`"snap-…bin: data checksum mismatch"`). They are kept on disk
   * until a newer snapshot is durable.
   */
  readonly brokenSnapshots: readonly string[];
  /** One line per repair or cleanup recovery made, for the operator's log. */
  readonly repairs: readonly string[];
}

/** Counters and shape of a {@linkcode Wal}; plain JSON. */
export interface WalStats {
  /** Segment files the log currently uses. */
  segments: number;
  /** Name of the segment being appended to, or `null` before the first write. */
  currentSegment: string | null;
  /** Bytes in the current segment. */
  currentSegmentBytes: number;
  /** Index of the last entry (or of the snapshot, if the log ends there). */
  lastIndex: number;
  /** Index of the newest installed snapshot, 0 if none. */
  snapshotIndex: number;
  /** Index of the newest snapshot a completed sync made durable. */
  durableSnapshotIndex: number;
  /** Calls to `write` that wrote something. */
  writes: number;
  /** Entries written. */
  entriesWritten: number;
  /** Records written (headers, hard states, entries, truncations, markers). */
  recordsWritten: number;
  /** Bytes appended to segments. */
  bytesWritten: number;
  /** Storage appends (one per `write` or `installSnapshot`). */
  appends: number;
  /** Calls to `sync`. */
  syncs: number;
  /** Syncs that completed without error. */
  syncsCompleted: number;
  /** Storage syncs that failed (the first one makes the log unusable). */
  syncErrors: number;
  /** Syncs called whose callback has not run yet. */
  pendingSyncs: number;
  /** Snapshots installed. */
  snapshotsInstalled: number;
  /** Segment files started. */
  segmentsCreated: number;
  /** Segment files removed by compaction. */
  segmentsRemoved: number;
  /** Whether an earlier sync or write failed, so the log refuses writes. */
  failed: boolean;
}

/**
 * The log on disk is damaged somewhere other than its tail: a record with a
 * bad checksum followed by more data, a bad record in an earlier segment, a
 * checksummed record that does not decode, or a gap in the entry indexes.
 * Recovery will not silently drop what follows; restore the replica from a
 * peer or a backup.
 *
 * @example Catch it and report where
 * ```ts
 * import { WalCorruptionError } from "./wal.ts";
 * import assert from "node:assert/strict";
 *
 * const error = new WalCorruptionError("wal-0000000000000001.log", 120, "checksum mismatch");
 * assert.equal(error.name, "WalCorruptionError");
 * assert.match(error.message, /wal-0000000000000001\.log.*offset 120/);
 * ```
 */
export class WalCorruptionError extends Error {
  /** Always `"WalCorruptionError"`. */
  override readonly name = "WalCorruptionError";
  /** The damaged file. */
  readonly file: string;
  /** Byte offset of the first damaged record in `file`. */
  readonly offset: number;
  /** What is wrong there. */
  readonly reason: string;

  /**
   * Creates the error; the message names the file, the offset and the reason.
   *
   * @param file The damaged file.
   * @param offset Byte offset of the damage.
   * @param reason What is wrong (default `"corrupted record"`).
   */
  constructor(file: string, offset: number, reason = "corrupted record") {
    super(
      `WAL file "${file}" is corrupted at offset ${offset}: ${reason}. The log is corrupted in the middle, not at its tail, so it will not be silently truncated; restore this replica from a peer or a backup`,
    );
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}

interface PendingSync {
  remaining: number;
  error: Error | undefined;
  readonly done: (error?: Error) => void;
  readonly snapshotIndex: number;
}

const MIB = 1024 * 1024;

function checkSize(name: string, value: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new RangeError(
      `Invalid ${name} ${value}: must be an integer from 1 to ${max}`,
    );
  }
  return value;
}

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function checkHardState(hs: HardState): void {
  if (
    !isCount(hs.term) ||
    (hs.votedFor !== null && typeof hs.votedFor !== "string")
  ) {
    throw new TypeError(
      `Invalid hard state ${
        JSON.stringify(hs)
      }: term must be an integer >= 0 and votedFor a string or null`,
    );
  }
}

function hardStateFields(hs: HardState): string {
  return `"term":${hs.term},"votedFor":${JSON.stringify(hs.votedFor)}`;
}

/**
 * A durable Raft log over a {@linkcode Storage}: the hard state and the
 * entries in rotating segment files, and snapshot files. It keeps only the
 * list of segments (first and last index per file) in memory, never the
 * entries.
 *
 * Each {@linkcode Wal.write} encodes its records into one reused buffer and
 * makes one `storage.append`; {@linkcode Wal.sync} makes everything written
 * so far durable (group commit: write several batches, sync once). After a
 * crash, {@linkcode Wal.open} recovers everything a completed sync covered.
 *
 * A failed sync makes the log unusable (later writes throw, later syncs
 * report the error): what reached the disk is unknown, reopen to recover.
 *
 * @typeParam C The command type of the log entries (plain JSON).
 *
 * @example Group commit, suffix replacement and recovery on the simulator's disk
 * ```ts
 * import { Wal } from "./wal.ts";
 * import { Simulation, type SimNodeEnv } from "../sim/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const sim = new Simulation({ seed: 1, disk: { unsyncedOnCrash: "lose" } });
 * const envs: SimNodeEnv[] = [];
 * sim.addNode("n", (env) => (envs.push(env), {}));
 * const { wal } = Wal.open<string>(envs.at(-1)!.storage);
 * wal.write({ term: 1, votedFor: null }, [
 *   { term: 1, index: 1, command: "a" },
 *   { term: 1, index: 2, command: "b" },
 * ]);
 * wal.write({ term: 2, votedFor: "n" }, [{ term: 2, index: 2, command: "B" }]);
 * let synced = false;
 * wal.sync((error) => synced = error === undefined);
 * sim.runFor(10);
 * assert.ok(synced);
 * wal.write(undefined, [{ term: 2, index: 3, command: "lost" }]); // never synced
 *
 * sim.crash("n");
 * sim.restart("n");
 * const { restored } = Wal.open<string>(envs.at(-1)!.storage);
 * assert.deepEqual(restored.hardState, { term: 2, votedFor: "n" });
 * assert.deepEqual(restored.entries.map((e) => e.command), ["a", "B"]);
 * ```
 */
export class Wal<C> {
  readonly #storage: Storage;
  readonly #segmentBytes: number;
  readonly #buffer: RecordBuffer;
  /** Live segments, oldest first; the last one is appended to. */
  #segments: SegmentInfo[];
  #nameFloor: number;
  #lastIndex: number;
  #hardState: HardState;
  #snapshotIndex: number;
  #snapshotTerm: number;
  #durableSnapshotIndex = 0;
  /** Snapshot files on disk, by index. */
  readonly #snapshotFiles: Map<number, string>;
  /** Files written since the last `sync` call. */
  readonly #touched = new Set<string>();
  readonly #pending: PendingSync[] = [];
  #failure: Error | undefined;
  /**
   * Set when recovery cut the current segment: it is never appended to
   * again, so a successor an unfinished repair left behind can never look
   * valid next to it.
   */
  #sealed: boolean;
  readonly #stats = {
    writes: 0,
    entriesWritten: 0,
    recordsWritten: 0,
    bytesWritten: 0,
    appends: 0,
    syncs: 0,
    syncsCompleted: 0,
    syncErrors: 0,
    snapshotsInstalled: 0,
    segmentsCreated: 0,
    segmentsRemoved: 0,
  };

  private constructor(
    storage: Storage,
    segmentBytes: number,
    maxRecordBytes: number,
    state: {
      segments: SegmentInfo[];
      nameFloor: number;
      lastIndex: number;
      hardState: HardState;
      snapshotIndex: number;
      snapshotTerm: number;
      snapshotFiles: Map<number, string>;
      sealed: boolean;
    },
  ) {
    this.#storage = storage;
    this.#segmentBytes = segmentBytes;
    this.#buffer = new RecordBuffer(maxRecordBytes);
    this.#segments = state.segments;
    this.#nameFloor = state.nameFloor;
    this.#lastIndex = state.lastIndex;
    this.#hardState = state.hardState;
    this.#snapshotIndex = state.snapshotIndex;
    this.#snapshotTerm = state.snapshotTerm;
    this.#snapshotFiles = state.snapshotFiles;
    this.#sealed = state.sealed;
    // What was read back may sit in the page cache only (a process crash
    // keeps it readable): the first sync makes it durable.
    for (const name of state.snapshotFiles.values()) this.#touched.add(name);
    for (const segment of state.segments) this.#touched.add(segment.name);
  }

  /**
   * Opens the log in `storage`, recovering what is there: the newest
   * snapshot whose checksum verifies (an older one if the newest is
   * broken), then the segments replayed in order. A torn tail is cut off
   * and the segment rewritten with its valid prefix (`replace`); segment and
   * snapshot files a crash left half-made are removed. The repairs become
   * durable with the first {@linkcode Wal.sync}.
   *
   * @typeParam C The command type of the log entries.
   * @param storage Where the files live (only this WAL's files: `wal-*.log`, `snap-*.bin`).
   * @param options Segment size and record size limit.
   * @returns The log, what it recovered, and what it repaired.
   * @throws {WalCorruptionError} if the log is corrupted before its tail.
   * @throws {RangeError} on an invalid option.
   *
   * @example Recover after a torn write
   * ```ts
   * import { Wal } from "./wal.ts";
   * import { Simulation, type SimNodeEnv } from "../sim/mod.ts";
   * import assert from "node:assert/strict";
   *
   * const sim = new Simulation({ seed: 7 });
   * const envs: SimNodeEnv[] = [];
   * const node = sim.addNode("n", (env) => (envs.push(env), {}));
   * const { wal } = Wal.open<number>(envs.at(-1)!.storage);
   * wal.write({ term: 1, votedFor: null }, [{ term: 1, index: 1, command: 1 }]);
   * wal.sync(() => {});
   * sim.runFor(10);
   * wal.write(undefined, [{ term: 1, index: 2, command: 2 }]);
   * sim.crash("n");
   * sim.restart("n");
   * const { restored, tornTailRepaired } = Wal.open<number>(envs.at(-1)!.storage);
   * assert.ok(restored.entries.length >= 1); // entry 2 may or may not survive
   * assert.equal(typeof tornTailRepaired, "boolean");
   * assert.ok(node.disk.list().length > 0);
   * ```
   */
  static open<C>(storage: Storage, options: WalOptions = {}): WalOpenResult<C> {
    const segmentBytes = checkSize(
      "segmentBytes",
      options.segmentBytes ?? 64 * MIB,
      2 ** 40,
    );
    const maxRecordBytes = checkSize(
      "maxRecordBytes",
      options.maxRecordBytes ?? 16 * MIB,
      2 ** 30,
    );
    const found = recover<C>(
      storage,
      maxRecordBytes,
      (file, offset, reason) => {
        throw new WalCorruptionError(file, offset, reason);
      },
    );
    const snapshotIndex = found.snapshot?.meta.index ?? 0;
    const wal = new Wal<C>(storage, segmentBytes, maxRecordBytes, {
      segments: found.segments,
      nameFloor: found.nameFloor,
      lastIndex: snapshotIndex + found.entries.length,
      hardState: found.hardState,
      snapshotIndex,
      snapshotTerm: found.snapshot?.meta.term ?? 0,
      snapshotFiles: found.snapshotFiles,
      sealed: found.tornTailRepaired,
    });
    // Start a segment whose header names the snapshot: once synced, the
    // log itself vouches for the snapshot, whatever recovery cut.
    if (snapshotIndex > 0) wal.#confirmSnapshot();
    return {
      wal,
      restored: {
        hardState: found.hardState,
        snapshot: found.snapshot,
        entries: found.entries,
      },
      tornTailRepaired: found.tornTailRepaired,
      droppedBytes: found.droppedBytes,
      brokenSnapshots: found.brokenSnapshots,
      repairs: found.repairs,
    };
  }

  /**
   * Writes a new hard state and/or entries with one `storage.append`.
   * Entries replace every stored entry at or after `entries[0].index`, then
   * extend the log. Nothing is durable until {@linkcode Wal.sync}.
   *
   * @param hardState The new hard state, or `undefined` to keep it.
   * @param entries Consecutive entries; the first at most one past the last
   * stored entry and after the newest snapshot.
   * @throws {RangeError} if an encoded record exceeds `maxRecordBytes`, or
   * the entries are not consecutive or would leave a gap or rewrite entries
   * a snapshot covers. Nothing is written then.
   * @throws {TypeError} on an invalid hard state, entry or command.
   * @throws {Error} if an earlier sync or write failed.
   *
   * @example Replace a suffix
   * ```ts
   * import { Wal } from "./wal.ts";
   * import { Simulation, type SimNodeEnv } from "../sim/mod.ts";
   * import assert from "node:assert/strict";
   *
   * const sim = new Simulation({ seed: 2 });
   * const envs: SimNodeEnv[] = [];
   * sim.addNode("n", (env) => (envs.push(env), {}));
   * const { wal } = Wal.open<string>(envs.at(-1)!.storage);
   * wal.write({ term: 1, votedFor: null }, [
   *   { term: 1, index: 1, command: "a" },
   *   { term: 1, index: 2, command: "b" },
   *   { term: 1, index: 3, command: "c" },
   * ]);
   * wal.write({ term: 2, votedFor: null }, [{ term: 2, index: 2, command: "x" }]);
   * assert.equal(wal.stats().lastIndex, 2);
   * ```
   */
  write(
    hardState: HardState | undefined,
    entries: readonly LogEntry<C>[],
  ): void {
    this.#checkUsable("write to");
    if (hardState !== undefined) checkHardState(hardState);
    const n = entries.length;
    const first = n > 0 ? entries[0].index : 0;
    if (n > 0) this.#checkEntries(entries);
    if (hardState === undefined && n === 0) return;
    const buffer = this.#buffer;
    buffer.reset();
    const segment = this.#startSegmentIfNeeded(hardState ?? this.#hardState);
    if (segment === undefined && hardState !== undefined) {
      buffer.add(
        `{"k":"hs",${hardStateFields(hardState)}}`,
        () => "the hard state",
      );
    }
    if (n > 0 && first <= this.#lastIndex) {
      buffer.add(`{"k":"trunc","from":${first}}`, () => "a truncation");
    }
    for (let i = 0; i < n; i++) {
      const e = entries[i];
      const command = e.command === null ? "null" : JSON.stringify(e.command);
      if (command === undefined) {
        throw new TypeError(
          `Cannot write entry ${e.index}: its command is not JSON (${typeof e
            .command})`,
        );
      }
      buffer.add(
        `{"k":"e","term":${e.term},"index":${e.index},"command":${command}}`,
        () => `entry ${e.index}`,
      );
    }
    this.#append(segment, n > 0 ? entries[n - 1].index : 0);
    if (hardState !== undefined) {
      this.#hardState = { term: hardState.term, votedFor: hardState.votedFor };
    }
    if (n > 0) {
      this.#lastIndex = entries[n - 1].index;
      this.#stats.entriesWritten += n;
    }
    this.#stats.writes++;
  }

  /**
   * Installs a snapshot (received from the leader or taken locally): writes
   * the snapshot file with an atomic `replace` and a marker in the log.
   * The log up to `meta.index` is no longer needed: once a sync made the
   * snapshot durable, {@linkcode Wal.compact} may remove it, and older
   * snapshot files are removed. Entries after `meta.index` are kept unless
   * `discardEntriesAfter` is set (Raft's rule for a leader's snapshot whose
   * last entry does not match the local log).
   *
   * @param snapshot The snapshot; its index must not be older than the
   * newest installed one.
   * @param options `discardEntriesAfter`: also drop every entry after
   * `meta.index`. Default `false`.
   * @throws {RangeError} if the snapshot is older than the installed one,
   * or at the same index with another term.
   * @throws {TypeError} on an invalid snapshot.
   * @throws {Error} if an earlier sync or write failed.
   *
   * @example Snapshot, sync, compact
   * ```ts
   * import { Wal } from "./wal.ts";
   * import { Simulation, type SimNodeEnv } from "../sim/mod.ts";
   * import assert from "node:assert/strict";
   *
   * const sim = new Simulation({ seed: 3 });
   * const envs: SimNodeEnv[] = [];
   * sim.addNode("n", (env) => (envs.push(env), {}));
   * const { wal } = Wal.open<number>(envs.at(-1)!.storage, { segmentBytes: 100 });
   * for (let i = 1; i <= 10; i++) {
   *   wal.write({ term: 1, votedFor: null }, [{ term: 1, index: i, command: i }]);
   * }
   * wal.installSnapshot({ meta: { index: 8, term: 1 }, data: new Uint8Array([8]) });
   * wal.sync(() => wal.compact(8));
   * sim.runFor(10);
   * assert.equal(wal.stats().durableSnapshotIndex, 8);
   * assert.ok(wal.stats().segmentsRemoved > 0);
   * ```
   */
  installSnapshot(
    snapshot: Snapshot,
    options: { readonly discardEntriesAfter?: boolean | undefined } = {},
  ): void {
    this.#checkUsable("install a snapshot in");
    const { index, term } = snapshot.meta ?? {};
    if (!isCount(index) || !isCount(term)) {
      throw new TypeError(
        `Invalid snapshot meta ${
          JSON.stringify(snapshot.meta)
        }: index and term must be integers >= 0`,
      );
    }
    if (!(snapshot.data instanceof Uint8Array)) {
      throw new TypeError("Invalid snapshot: data must be a Uint8Array");
    }
    if (index < this.#snapshotIndex) {
      throw new RangeError(
        `Cannot install a snapshot at ${index}: the log already has one at ${this.#snapshotIndex}`,
      );
    }
    if (
      index === this.#snapshotIndex && index > 0 && term !== this.#snapshotTerm
    ) {
      throw new RangeError(
        `Cannot install a snapshot at ${index} with term ${term}: the installed one at ${index} has term ${this.#snapshotTerm}`,
      );
    }
    const discard = options.discardEntriesAfter ?? false;
    const file = encodeSnapshot(index, term, snapshot.data);
    const buffer = this.#buffer;
    buffer.reset();
    const segment = this.#startSegmentIfNeeded(this.#hardState);
    buffer.add(
      `{"k":"snap","index":${index},"term":${term},"discard":${discard}}`,
      () => "a snapshot marker",
    );
    const name = snapshotName(index);
    this.#guard(() => this.#storage.replace(name, file));
    this.#snapshotFiles.set(index, name);
    this.#touched.add(name);
    this.#append(segment, 0);
    this.#snapshotIndex = index;
    this.#snapshotTerm = term;
    this.#lastIndex = discard ? index : Math.max(this.#lastIndex, index);
    this.#stats.snapshotsInstalled++;
  }

  /**
   * Makes everything written so far durable: syncs every file touched
   * since the previous call (snapshots first, then segments, oldest
   * first), then calls `done` once. Calls complete in call order. After a
   * crash, everything a completed sync covered is recovered.
   *
   * @param done Called once, with the error if the storage failed (this
   * one or an earlier sync); the log is unusable after an error.
   *
   * @example Wait for durability
   * ```ts
   * import { Wal } from "./wal.ts";
   * import { Simulation, type SimNodeEnv } from "../sim/mod.ts";
   * import assert from "node:assert/strict";
   *
   * const sim = new Simulation({ seed: 4 });
   * const envs: SimNodeEnv[] = [];
   * const node = sim.addNode("n", (env) => (envs.push(env), {}));
   * const { wal } = Wal.open<string>(envs.at(-1)!.storage);
   * wal.write({ term: 1, votedFor: null }, []);
   * const order: number[] = [];
   * wal.sync(() => order.push(1));
   * wal.sync(() => order.push(2));
   * sim.runFor(10);
   * assert.deepEqual(order, [1, 2]);
   * assert.ok(node.disk.readDurable(wal.stats().currentSegment!));
   * ```
   */
  sync(done: (error?: Error) => void): void {
    const files = this.#failure === undefined ? [...this.#touched].sort() : [];
    this.#touched.clear();
    if (files.length === 0 && this.#failure === undefined) {
      // Nothing new, but removes still need a sync, and done must wait for
      // the syncs before it.
      // With no file at all, syncing the next segment's (absent) name still
      // makes the directory, and so removals, durable.
      files.push(
        this.#segments.at(-1)?.name ??
          [...this.#snapshotFiles.values()].at(-1) ??
          segmentName(this.#nameFloor + 1),
      );
    }
    const entry: PendingSync = {
      remaining: files.length,
      error: undefined,
      done,
      snapshotIndex: this.#snapshotIndex,
    };
    this.#pending.push(entry);
    this.#stats.syncs++;
    for (const name of files) {
      let called = false;
      const complete = (error?: Error) => {
        if (called) return;
        called = true;
        if (error !== undefined && entry.error === undefined) {
          entry.error = error;
        }
        entry.remaining--;
        this.#drain();
      };
      try {
        this.#storage.sync(name, complete);
      } catch (error) {
        complete(error instanceof Error ? error : new Error(String(error)));
      }
    }
    if (files.length === 0) this.#drain();
  }

  /**
   * Removes the oldest segment files whose entries are all at or before
   * `upToIndex` (never the current segment). Call it once a snapshot at
   * `upToIndex` or later is durable.
   *
   * @param upToIndex Entries up to here are covered by a durable snapshot.
   * @throws {RangeError} if no durable snapshot covers `upToIndex`.
   *
   * @example Compaction needs a durable snapshot
   * ```ts
   * import { Wal } from "./wal.ts";
   * import { Simulation, type SimNodeEnv } from "../sim/mod.ts";
   * import assert from "node:assert/strict";
   *
   * const sim = new Simulation({ seed: 5 });
   * const envs: SimNodeEnv[] = [];
   * sim.addNode("n", (env) => (envs.push(env), {}));
   * const { wal } = Wal.open<number>(envs.at(-1)!.storage);
   * wal.write(undefined, [{ term: 1, index: 1, command: 1 }]);
   * assert.throws(() => wal.compact(1), RangeError);
   * ```
   */
  compact(upToIndex: number): void {
    if (!isCount(upToIndex)) {
      throw new RangeError(
        `Invalid compaction index ${upToIndex}: must be an integer >= 0`,
      );
    }
    if (upToIndex > this.#durableSnapshotIndex) {
      throw new RangeError(
        `Cannot compact the log up to ${upToIndex}: the newest durable snapshot is at ${this.#durableSnapshotIndex}`,
      );
    }
    const segments = this.#segments;
    let removed = 0;
    while (
      removed < segments.length - 1 && segments[removed].maxIndex <= upToIndex
    ) {
      this.#storage.remove(segments[removed].name);
      this.#touched.delete(segments[removed].name);
      removed++;
    }
    if (removed > 0) {
      this.#segments = segments.slice(removed);
      this.#stats.segmentsRemoved += removed;
    }
  }

  /**
   * Counters and the log's shape, as plain JSON.
   *
   * @returns A fresh object.
   *
   * @example Count appends
   * ```ts
   * import { Wal } from "./wal.ts";
   * import { Simulation, type SimNodeEnv } from "../sim/mod.ts";
   * import assert from "node:assert/strict";
   *
   * const sim = new Simulation({ seed: 6 });
   * const envs: SimNodeEnv[] = [];
   * sim.addNode("n", (env) => (envs.push(env), {}));
   * const { wal } = Wal.open<number>(envs.at(-1)!.storage);
   * wal.write(undefined, [
   *   { term: 1, index: 1, command: 1 },
   *   { term: 1, index: 2, command: 2 },
   * ]);
   * const stats = wal.stats();
   * assert.equal(stats.appends, 1);
   * assert.equal(stats.entriesWritten, 2);
   * assert.equal(stats.lastIndex, 2);
   * ```
   */
  stats(): WalStats {
    const current = this.#segments.at(-1);
    return {
      segments: this.#segments.length,
      currentSegment: current?.name ?? null,
      currentSegmentBytes: current?.bytes ?? 0,
      lastIndex: this.#lastIndex,
      snapshotIndex: this.#snapshotIndex,
      durableSnapshotIndex: this.#durableSnapshotIndex,
      ...this.#stats,
      pendingSyncs: this.#pending.length,
      failed: this.#failure !== undefined,
    };
  }

  // ----------------------------------------------------------------- private

  #checkUsable(what: string): void {
    if (this.#failure !== undefined) {
      throw new Error(
        `Cannot ${what} the WAL: an earlier sync or write failed (${this.#failure.message}); reopen it to recover`,
        { cause: this.#failure },
      );
    }
  }

  #checkEntries(entries: readonly LogEntry<C>[]): void {
    let expect = entries[0].index;
    for (const e of entries) {
      if (!isCount(e.term) || !isCount(e.index) || e.index < 1) {
        throw new TypeError(
          `Invalid log entry (term ${e.term}, index ${e.index}): term must be an integer >= 0, index >= 1`,
        );
      }
      if (e.index !== expect) {
        throw new RangeError(
          `Cannot write entries: index ${e.index} follows ${
            expect - 1
          } (entries must be consecutive)`,
        );
      }
      expect++;
    }
    const first = entries[0].index;
    if (first <= this.#snapshotIndex) {
      throw new RangeError(
        `Cannot write entry ${first}: the snapshot at ${this.#snapshotIndex} covers it`,
      );
    }
    if (first > this.#lastIndex + 1) {
      throw new RangeError(
        `Cannot write entry ${first}: the log ends at ${this.#lastIndex}, so it would leave a gap`,
      );
    }
  }

  /**
   * Frames the header of a new segment into the (reset) buffer if the
   * current one is full or there is none; returns the new segment, not yet
   * registered.
   */
  #startSegmentIfNeeded(hs: HardState): SegmentInfo | undefined {
    const current = this.#segments.at(-1);
    if (
      current !== undefined && current.bytes < this.#segmentBytes &&
      !this.#sealed
    ) return undefined;
    const base = Math.max(this.#lastIndex + 1, this.#nameFloor + 1);
    let prevMax = 0;
    for (const s of this.#segments) prevMax = Math.max(prevMax, s.maxIndex);
    this.#buffer.add(
      `{"k":"seg",${hardStateFields(hs)},"prev":${
        current === undefined ? "null" : `"${current.name}"`
      },"prevBytes":${
        current?.bytes ?? 0
      },"prevMax":${prevMax},"snap":${this.#snapshotIndex},"snapTerm":${this.#snapshotTerm}}`,
      () => "a segment header",
    );
    return { name: segmentName(base), base, bytes: 0, maxIndex: 0 };
  }

  #confirmSnapshot(): void {
    this.#sealed = true;
    this.#buffer.reset();
    const segment = this.#startSegmentIfNeeded(this.#hardState);
    this.#append(segment, 0);
  }

  /** Appends the buffer to the current (or the new) segment. */
  #append(segment: SegmentInfo | undefined, maxIndex: number): void {
    const target = segment ?? this.#segments.at(-1)!;
    const bytes = this.#buffer.bytes();
    // FileStorage and the simulator copy the bytes before append returns,
    // so the buffer can be reused.
    this.#guard(() => this.#storage.append(target.name, bytes));
    if (segment !== undefined) {
      this.#sealed = false;
      this.#segments.push(segment);
      this.#nameFloor = segment.base;
      this.#stats.segmentsCreated++;
    }
    target.bytes += bytes.length;
    if (maxIndex > target.maxIndex) target.maxIndex = maxIndex;
    this.#touched.add(target.name);
    this.#stats.appends++;
    this.#stats.recordsWritten += this.#buffer.records;
    this.#stats.bytesWritten += bytes.length;
  }

  /** Runs a storage write; a failure leaves the files in an unknown state. */
  #guard(write: () => void): void {
    try {
      write();
    } catch (error) {
      this.#failure = error instanceof Error ? error : new Error(String(error));
      throw error;
    }
  }

  /** Completes finished syncs, in call order. */
  #drain(): void {
    const pending = this.#pending;
    let thrown: { error: unknown } | undefined;
    while (pending.length > 0 && pending[0].remaining === 0) {
      const entry = pending.shift()!;
      if (entry.error !== undefined) {
        this.#stats.syncErrors++;
        this.#failure ??= entry.error;
      }
      const error = entry.error ?? this.#failure;
      if (error === undefined) {
        this.#stats.syncsCompleted++;
        if (entry.snapshotIndex > this.#durableSnapshotIndex) {
          this.#durableSnapshotIndex = entry.snapshotIndex;
          this.#removeOlderSnapshots();
        }
      }
      try {
        entry.done(error);
      } catch (error) {
        // Finish the other callbacks first, then let the first throw out.
        thrown ??= { error };
      }
    }
    if (thrown !== undefined) throw thrown.error;
  }

  #removeOlderSnapshots(): void {
    for (const [index, name] of [...this.#snapshotFiles]) {
      if (index < this.#durableSnapshotIndex) {
        this.#storage.remove(name);
        this.#snapshotFiles.delete(index);
      }
    }
  }
}
