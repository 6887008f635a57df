/**
 * Recovery of the write-ahead log: pick the newest valid snapshot, replay
 * the segments in order, tell what a crash may leave behind (a torn tail,
 * segments written after a tail that was never synced, a snapshot marker
 * whose snapshot never reached the disk) from corruption, and repair the
 * former through the `Storage` (replace and remove; there is no truncate).
 *
 * Why cutting at those points is safe: `Wal.sync` syncs every file touched
 * since the previous call, older files first, and storage syncs complete in
 * call order. So once some record is missing from the disk, no sync covering
 * it completed, hence no later sync completed either: everything written
 * after it was never acknowledged and may be dropped.
 *
 * @module
 */

import type { Storage } from "../runtime/storage.ts";
import type {
  HardState,
  LogEntry,
  Snapshot,
  SnapshotMeta,
} from "./raft_types.ts";
import {
  decodeRecord,
  decodeSnapshot,
  parseSegmentName,
  parseSnapshotName,
  RECORD_HEADER_BYTES,
  scanRecords,
  type SegmentHeaderRecord,
} from "./_wal_format.ts";

/** What the WAL keeps per segment file (never the entries themselves). */
export interface SegmentInfo {
  readonly name: string;
  readonly base: number;
  /** Bytes appended so far (the valid prefix after recovery). */
  bytes: number;
  /** Largest entry index written into this segment, 0 if none. */
  maxIndex: number;
}

/** Reports corruption; never returns. */
export type CorruptionReporter = (
  file: string,
  offset: number,
  reason: string,
) => never;

/** Everything recovery found, and what it repaired. */
export interface Recovered<C> {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: LogEntry<C>[];
  segments: SegmentInfo[];
  /** Largest segment base seen, so new names sort after every old file. */
  nameFloor: number;
  /** Snapshot files kept: the chosen one and broken newer ones. */
  snapshotFiles: Map<number, string>;
  tornTailRepaired: boolean;
  droppedBytes: number;
  brokenSnapshots: string[];
  repairs: string[];
  removedFiles: string[];
}

interface Cut {
  /** Position in the segment list. */
  seg: number;
  /** Offset in that segment; records from here on are dropped. */
  offset: number;
  reason: string;
}

const EMPTY = new Uint8Array(0);

/** The outcome of replaying the segments against one snapshot choice. */
interface Replay<C> {
  hardState: HardState;
  entries: LogEntry<C>[];
  retained: SegmentInfo[];
  cut: Cut | undefined;
  /** Segments left over from compaction (before a removed predecessor). */
  leftovers: string[];
  /**
   * Whether the replayed log shows the snapshot was installed before its
   * end (its marker, a later marker, or a later segment header). A snapshot
   * file that survived a crash without that was never synced.
   */
  confirmed: boolean;
}

/**
 * Reads the snapshot and the segments from `storage`, repairs a torn tail,
 * and returns the state to resume from.
 */
export function recover<C>(
  storage: Storage,
  maxRecordBytes: number,
  fail: CorruptionReporter,
): Recovered<C> {
  const segs: { name: string; base: number }[] = [];
  const snaps: { name: string; index: number }[] = [];
  for (const name of storage.list()) {
    const base = parseSegmentName(name);
    if (base !== undefined) segs.push({ name, base });
    const index = parseSnapshotName(name);
    if (index !== undefined) snaps.push({ name, index });
  }
  segs.sort((a, b) => a.base - b.base);
  snaps.sort((a, b) => b.index - a.index);
  const repairs: string[] = [];
  const removedFiles: string[] = [];
  const remove = (name: string, why: string) => {
    storage.remove(name);
    removedFiles.push(name);
    repairs.push(`removed ${name}: ${why}`);
  };

  const cache = new Map<number, Uint8Array>();
  const read = (i: number): Uint8Array => {
    let bytes = cache.get(i);
    if (bytes === undefined) {
      bytes = storage.read(segs[i].name) ?? EMPTY;
      // Keep the two latest reads: replay looks one segment ahead.
      if (cache.size >= 2) cache.delete(cache.keys().next().value!);
      cache.set(i, bytes);
    }
    return bytes;
  };

  // The newest snapshot that verifies and that the log confirms; broken
  // newer ones are kept as evidence (the log may refer to them), valid but
  // unconfirmed newer ones were never synced.
  const broken: number[] = [];
  const brokenSnapshots: string[] = [];
  const unconfirmed: { name: string; index: number }[] = [];
  let snapshot: Snapshot | undefined;
  let chosen = -1;
  let replay: Replay<C> | undefined;
  for (let k = 0; k <= snaps.length && replay === undefined; k++) {
    if (k < snaps.length) {
      const { name, index } = snaps[k];
      const bytes = storage.read(name);
      if (bytes === undefined) continue;
      const decoded = decodeSnapshot(bytes, index);
      if (typeof decoded === "string") {
        broken.push(index);
        brokenSnapshots.push(`${name}: ${decoded}`);
        repairs.push(`ignored broken snapshot ${name}: ${decoded}`);
        continue;
      }
      const candidate: Snapshot = {
        meta: { index: decoded.index, term: decoded.term },
        data: decoded.data,
      };
      const attempt = replaySegments<C>(
        segs,
        read,
        candidate.meta,
        broken,
        maxRecordBytes,
        fail,
      );
      if (!attempt.confirmed) {
        unconfirmed.push(snaps[k]);
        continue;
      }
      snapshot = candidate;
      chosen = k;
      replay = attempt;
    } else {
      chosen = snaps.length;
      replay = replaySegments<C>(
        segs,
        read,
        { index: 0, term: 0 },
        broken,
        maxRecordBytes,
        fail,
      );
    }
  }
  const { hardState, entries, retained, cut, leftovers } = replay!;

  const snapshotFiles = new Map<number, string>();
  for (let k = 0; k < snaps.length; k++) {
    const { name, index } = snaps[k];
    if (k === chosen) snapshotFiles.set(index, name);
    else if (k > chosen) {
      remove(name, `older than the snapshot at ${snapshot?.meta.index ?? 0}`);
    } else if (unconfirmed.includes(snaps[k])) {
      remove(
        name,
        "the log ends before this snapshot was installed, so it was never synced",
      );
    } else if (broken.includes(index)) snapshotFiles.set(index, name);
  }
  for (const name of leftovers) {
    remove(name, "left over from compaction");
  }

  // Repair: drop what follows the cut, rewrite the cut segment's prefix.
  let droppedBytes = 0;
  let tornTailRepaired = false;
  if (cut !== undefined) {
    tornTailRepaired = true;
    for (let j = segs.length - 1; j > cut.seg; j--) {
      droppedBytes += read(j).length;
      remove(segs[j].name, `written after the cut (${cut.reason})`);
    }
    const last = retained.at(-1);
    if (last !== undefined && last.name === segs[cut.seg].name) {
      const bytes = read(cut.seg);
      droppedBytes += bytes.length - last.bytes;
      if (last.bytes === 0) {
        retained.pop();
        remove(last.name, `nothing valid in it (${cut.reason})`);
      } else {
        storage.replace(last.name, bytes.slice(0, last.bytes));
        repairs.push(
          `cut ${last.name} at offset ${last.bytes}, dropping ${
            bytes.length - last.bytes
          } bytes: ${cut.reason}`,
        );
      }
    } else {
      droppedBytes += read(cut.seg).length;
      remove(segs[cut.seg].name, cut.reason);
    }
  }
  return {
    hardState,
    snapshot,
    entries,
    segments: retained,
    nameFloor: segs.reduce((m, s) => Math.max(m, s.base), 0),
    snapshotFiles,
    tornTailRepaired,
    droppedBytes,
    brokenSnapshots,
    repairs,
    removedFiles,
  };
}

/**
 * Replays every segment in order against the snapshot at `S`; no side
 * effects. If a segment turns out to follow an earlier predecessor than the
 * one before it (the ones between were dropped by an earlier repair whose
 * removals never became durable), replays again, stopping before them.
 */
function replaySegments<C>(
  segs: readonly { name: string; base: number }[],
  read: (i: number) => Uint8Array,
  snap: SnapshotMeta,
  broken: readonly number[],
  maxRecordBytes: number,
  fail: CorruptionReporter,
): Replay<C> {
  let stopAt = segs.length;
  for (;;) {
    const result = replayOnce<C>(
      segs,
      read,
      snap,
      broken,
      maxRecordBytes,
      fail,
      stopAt,
    );
    if (result.restartAt === undefined) return result;
    stopAt = result.restartAt;
  }
}

function replayOnce<C>(
  segs: readonly { name: string; base: number }[],
  read: (i: number) => Uint8Array,
  snap: SnapshotMeta,
  broken: readonly number[],
  maxRecordBytes: number,
  fail: CorruptionReporter,
  stopAt: number,
): Replay<C> & { restartAt?: number } {
  const S = snap.index;
  const brokenCovers = (index: number) => broken.some((b) => b >= index);
  // `lastIndex` is -1 until the first record that sets it.
  let hardState: HardState = { term: 0, votedFor: null };
  let lastIndex = -1;
  const entries: LogEntry<C>[] = [];
  let retained: SegmentInfo[] = [];
  const leftovers: string[] = [];
  let cut: Cut | undefined;
  let confirmed = S === 0;

  for (let i = 0; i < segs.length && cut === undefined; i++) {
    const { name, base } = segs[i];
    if (i === stopAt) {
      cut = {
        seg: i,
        offset: 0,
        reason:
          `${name} was dropped by an earlier repair whose removal never became durable (a later segment follows an earlier one), so nothing was synced since`,
      };
      break;
    }
    const bytes = read(i);
    const header = readHeader(bytes, maxRecordBytes);
    const prev = retained.at(-1);
    if (header !== undefined && (header.prev !== null || prev !== undefined)) {
      if (prev !== undefined && header.prev === prev.name) {
        if (prev.bytes < header.prevBytes) {
          cut = {
            seg: i,
            offset: 0,
            reason:
              `${prev.name} holds ${prev.bytes} valid bytes but ${name} recorded ${header.prevBytes}: its unsynced tail was lost, so ${name} and later segments were never synced`,
          };
          break;
        }
        if (prev.bytes > header.prevBytes) {
          // Only an earlier repair dropping this segment lets its
          // predecessor grow again; the removal never became durable, so
          // nothing was synced since.
          cut = {
            seg: i,
            offset: 0,
            reason:
              `${prev.name} grew past the ${header.prevBytes} bytes ${name} recorded: ${name} was dropped by an earlier repair whose removal never became durable`,
          };
          break;
        }
      } else if (
        header.prev !== null && (prev === undefined || header.prev > prev.name)
      ) {
        // The predecessor is gone: removed by compaction (then a snapshot
        // covers every entry before this segment) or never synced.
        if (S >= header.prevMax) {
          for (const old of retained) leftovers.push(old.name);
          retained = [];
          entries.length = 0;
          lastIndex = -1;
        } else if (brokenCovers(header.prevMax)) {
          fail(
            name,
            0,
            `its predecessor ${header.prev} is gone and only a broken snapshot covers entries up to ${header.prevMax}`,
          );
        } else {
          cut = {
            seg: i,
            offset: 0,
            reason:
              `its predecessor ${header.prev} is missing and no snapshot covers its entries (up to ${header.prevMax}): it was never synced`,
          };
          break;
        }
      } else {
        // Follows an earlier segment than the one before it (or none): the
        // segments in between were dropped by an earlier repair whose
        // removal never became durable. Replay again without them.
        const restartAt = firstAfter(segs, header.prev);
        return {
          hardState,
          entries,
          retained,
          cut,
          leftovers,
          confirmed,
          restartAt,
        };
      }
    }

    const info: SegmentInfo = { name, base, bytes: 0, maxIndex: 0 };
    let first = true;
    const stop: { cut?: Cut } = {};
    const scan = scanRecords(bytes, maxRecordBytes, (offset, start, end) => {
      const rec = decodeRecord(bytes, start, end);
      if (typeof rec === "string") fail(name, offset, `record ${rec}`);
      if (first) {
        first = false;
        if (rec.k !== "seg") {
          fail(
            name,
            offset,
            `the segment starts with a "${rec.k}" record, not a segment header`,
          );
        }
        hardState = { term: rec.term, votedFor: rec.votedFor };
        if (
          rec.snap > S || (rec.snap === S && rec.snapTerm === snap.term)
        ) confirmed = true;
        return true;
      }
      switch (rec.k) {
        case "seg":
          return fail(
            name,
            offset,
            "segment header in the middle of a segment",
          );
        case "hs":
          hardState = { term: rec.term, votedFor: rec.votedFor };
          return true;
        case "e": {
          const i = rec.index;
          if (lastIndex >= 0 && i <= lastIndex) {
            fail(
              name,
              offset,
              `entry ${i} follows entry ${lastIndex} without a truncate record`,
            );
          }
          if (i > S) {
            const want = S + 1 + entries.length;
            if (i !== want) {
              fail(
                name,
                offset,
                `entry ${i} leaves a gap: the snapshot ends at ${S} and the log after it reaches only ${
                  want - 1
                }`,
              );
            }
            entries.push({
              term: rec.term,
              index: i,
              command: rec.command as C | null,
            });
          }
          lastIndex = i;
          if (i > info.maxIndex) info.maxIndex = i;
          return true;
        }
        case "trunc": {
          if (lastIndex >= 0 && rec.from > lastIndex + 1) {
            fail(
              name,
              offset,
              `truncate from ${rec.from} is past the last entry ${lastIndex}`,
            );
          }
          lastIndex = rec.from - 1;
          const keep = Math.max(0, rec.from - 1 - S);
          if (keep < entries.length) entries.length = keep;
          return true;
        }
        case "snap": {
          // A marker of a snapshot that is not on disk (or whose file holds
          // another snapshot at the same index) was never synced.
          const other = rec.index > S ||
            (rec.index === S && rec.term !== snap.term);
          if (other && !brokenCovers(rec.index)) {
            stop.cut = {
              seg: i,
              offset,
              reason:
                `it marks a snapshot at ${rec.index} that is not on disk: that snapshot, this record and everything after it were never synced`,
            };
            return false;
          }
          if (rec.index >= S) confirmed = true;
          if (rec.discard) {
            const keep = Math.max(0, rec.index - S);
            if (keep < entries.length) entries.length = keep;
            lastIndex = rec.index;
          } else if (lastIndex >= 0) {
            // (Unknown stays unknown: compaction may have removed entries
            // past the marker's index.)
            lastIndex = Math.max(lastIndex, rec.index);
          }
          return true;
        }
      }
    });
    if (stop.cut !== undefined) {
      cut = stop.cut;
      info.bytes = cut.offset;
      retained.push(info);
      break;
    }
    const problem = scan.problem ??
      (bytes.length === 0
        ? { offset: 0, kind: "zeros" as const, reason: "empty file" }
        : undefined);
    info.bytes = scan.validEnd;
    retained.push(info);
    if (problem === undefined) continue;
    if (problem.kind === "corrupt") {
      fail(name, problem.offset, problem.reason);
    }
    if (i === segs.length - 1) {
      cut = { seg: i, offset: problem.offset, reason: problem.reason };
      break;
    }
    const next = readHeader(read(i + 1), maxRecordBytes, true);
    // The successor recorded this segment's length when it was started; a
    // problem past that length, or a file shorter than it, is a tail that
    // was never synced (so the successor was not either).
    if (
      next === undefined || next.prev !== name ||
      problem.offset >= next.prevBytes || bytes.length < next.prevBytes ||
      problem.kind === "zeros"
    ) {
      cut = {
        seg: i,
        offset: problem.offset,
        reason: `${problem.reason}; the segments after it were never synced`,
      };
      break;
    }
    fail(
      name,
      problem.offset,
      `${problem.reason}, at the end of a segment as long as its successor ${
        segs[i + 1].name
      } recorded, so this is not a torn write`,
    );
  }
  if (cut !== undefined) {
    // A segment after the cut that follows a segment before the cut one
    // (or none) proves the ones in between were dropped by an earlier
    // repair: they must not survive this one either.
    let restartAt = stopAt;
    for (let j = cut.seg + 1; j < segs.length; j++) {
      const later = readHeader(read(j), maxRecordBytes, true);
      if (later === undefined) continue;
      const r = firstAfter(segs, later.prev);
      if (r > cut.seg) continue;
      restartAt = Math.min(restartAt, r);
    }
    if (restartAt < stopAt) {
      return {
        hardState,
        entries,
        retained,
        cut,
        leftovers,
        confirmed,
        restartAt,
      };
    }
  }
  return { hardState, entries, retained, cut, leftovers, confirmed };
}

/**
 * The segment header, if the file starts with a valid one. A checksummed
 * first record that is not a header is corruption, unless `lenient`.
 */
function readHeader(
  bytes: Uint8Array,
  maxRecordBytes: number,
  lenient = false,
): SegmentHeaderRecord | undefined {
  if (bytes.length < RECORD_HEADER_BYTES) return undefined;
  let header: SegmentHeaderRecord | undefined;
  scanRecords(bytes, maxRecordBytes, (_offset, start, end) => {
    const rec = decodeRecord(bytes, start, end);
    if (typeof rec !== "string" && rec.k === "seg") header = rec;
    else if (!lenient) header = undefined;
    return false;
  });
  return header;
}

/**
 * Position of the first segment listed after `prev` (0 for `null`): where
 * the segments a later one skipped over begin.
 */
function firstAfter(
  segs: readonly { name: string }[],
  prev: string | null,
): number {
  if (prev === null) return 0;
  const at = segs.findIndex((sg) => sg.name > prev);
  return at < 0 ? segs.length : at;
}
