/**
 * The on-disk format of the Oracle's write-ahead log: file names, the
 * checksummed record framing, the JSON record kinds, the record scanner that
 * tells a torn tail from corruption, and the snapshot file layout.
 *
 * @module
 */

import { crc32c } from "./_crc32.ts";

/** Bytes before each record's payload: u32 BE length, u32 BE CRC-32C. */
export const RECORD_HEADER_BYTES = 8;

const SEGMENT_RE = /^wal-(\d{16})\.log$/;
const SNAPSHOT_RE = /^snap-(\d{16})\.bin$/;

/** `wal-<16-digit base>.log`. */
export function segmentName(base: number): string {
  return `wal-${String(base).padStart(16, "0")}.log`;
}

/** The base of a segment file name, or `undefined` if it is not one. */
export function parseSegmentName(name: string): number | undefined {
  const m = SEGMENT_RE.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/** `snap-<16-digit index>.bin`. */
export function snapshotName(index: number): string {
  return `snap-${String(index).padStart(16, "0")}.bin`;
}

/** The index of a snapshot file name, or `undefined` if it is not one. */
export function parseSnapshotName(name: string): number | undefined {
  const m = SNAPSHOT_RE.exec(name);
  return m === null ? undefined : Number(m[1]);
}

// ------------------------------------------------------------------ records

/**
 * The first record of every segment: the hard state when the segment was
 * started and where its predecessor ended (`prevBytes` is the predecessor's
 * final length, `prevMax` the largest entry index in every segment that
 * existed then), so recovery can tell a predecessor that lost its unsynced
 * tail, or was lost entirely, from one removed by compaction; and the
 * newest snapshot installed before it, which confirms that snapshot.
 */
export interface SegmentHeaderRecord {
  readonly k: "seg";
  readonly term: number;
  readonly votedFor: string | null;
  readonly prev: string | null;
  readonly prevBytes: number;
  readonly prevMax: number;
  /** Index of the newest snapshot installed when the segment was started. */
  readonly snap: number;
  /** Its term. */
  readonly snapTerm: number;
}

/** A new hard state. */
export interface HardStateRecord {
  readonly k: "hs";
  readonly term: number;
  readonly votedFor: string | null;
}

/** One log entry. */
export interface EntryRecord {
  readonly k: "e";
  readonly term: number;
  readonly index: number;
  readonly command: unknown;
}

/** Every stored entry at or after `from` is dropped. */
export interface TruncateRecord {
  readonly k: "trunc";
  readonly from: number;
}

/**
 * A snapshot at `index` was installed: the log up to `index` may have gaps
 * from here on, and with `discard` the entries after it are dropped.
 */
export interface SnapshotMarkerRecord {
  readonly k: "snap";
  readonly index: number;
  readonly term: number;
  readonly discard: boolean;
}

/** Every record kind. */
export type WalRecord =
  | SegmentHeaderRecord
  | HardStateRecord
  | EntryRecord
  | TruncateRecord
  | SnapshotMarkerRecord;

function isCount(x: unknown): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
}

function isVote(x: unknown): x is string | null {
  return x === null || typeof x === "string";
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Decodes one checksummed payload.
 *
 * @returns The record, or a string saying why it is invalid.
 */
export function decodeRecord(
  bytes: Uint8Array,
  start: number,
  end: number,
): WalRecord | string {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes.subarray(start, end)));
  } catch (error) {
    return `its checksum is valid but its payload is not UTF-8 JSON (${
      (error as Error).message
    })`;
  }
  if (typeof value !== "object" || value === null) {
    return "its payload is not a JSON object";
  }
  const r = value as Record<string, unknown>;
  switch (r.k) {
    case "e":
      if (isCount(r.term) && isCount(r.index) && r.index >= 1) {
        return r as unknown as EntryRecord;
      }
      break;
    case "hs":
      if (isCount(r.term) && isVote(r.votedFor)) {
        return r as unknown as HardStateRecord;
      }
      break;
    case "seg":
      if (
        isCount(r.term) && isVote(r.votedFor) && isCount(r.prevBytes) &&
        isCount(r.prevMax) && isCount(r.snap) && isCount(r.snapTerm) &&
        (r.prev === null ||
          (typeof r.prev === "string" &&
            parseSegmentName(r.prev) !== undefined))
      ) return r as unknown as SegmentHeaderRecord;
      break;
    case "trunc":
      if (isCount(r.from) && r.from >= 1) {
        return r as unknown as TruncateRecord;
      }
      break;
    case "snap":
      if (
        isCount(r.index) && isCount(r.term) && typeof r.discard === "boolean"
      ) return r as unknown as SnapshotMarkerRecord;
      break;
    default:
      return `unknown record kind ${JSON.stringify(r.k)}`;
  }
  return `invalid fields in a ${JSON.stringify(r.k)} record`;
}

const encoder = new TextEncoder();
const INITIAL_BUFFER = 64 * 1024;
const KEEP_BUFFER = 4 * 1024 * 1024;

/**
 * Frames records into one reused buffer: each JSON payload is written with
 * `encodeInto` straight after its 8-byte header, then checksummed in place.
 */
export class RecordBuffer {
  #buf = new Uint8Array(INITIAL_BUFFER);
  #view = new DataView(this.#buf.buffer);
  #length = 0;
  #records = 0;
  readonly #maxRecordBytes: number;

  constructor(maxRecordBytes: number) {
    this.#maxRecordBytes = maxRecordBytes;
  }

  /** Bytes framed so far. */
  get length(): number {
    return this.#length;
  }

  /** Records framed so far. */
  get records(): number {
    return this.#records;
  }

  /** Starts a new batch (and gives back memory a huge batch took). */
  reset(): void {
    this.#length = 0;
    this.#records = 0;
    if (this.#buf.length > KEEP_BUFFER) this.#grow(INITIAL_BUFFER, true);
  }

  /**
   * Frames one payload.
   *
   * @throws {RangeError} if it is longer than `maxRecordBytes` once encoded.
   */
  add(json: string, what: () => string): void {
    // Every UTF-16 unit takes at least one UTF-8 byte, at most three.
    if (json.length > this.#maxRecordBytes) this.#tooBig(json.length, what);
    const at = this.#length;
    const need = at + RECORD_HEADER_BYTES + json.length * 3;
    if (need > this.#buf.length) this.#grow(need, false);
    const start = at + RECORD_HEADER_BYTES;
    const { written } = encoder.encodeInto(json, this.#buf.subarray(start));
    if (written > this.#maxRecordBytes) this.#tooBig(written, what);
    this.#view.setUint32(at, written);
    this.#view.setUint32(at + 4, crc32c(this.#buf, start, start + written));
    this.#length = start + written;
    this.#records++;
  }

  /** The framed bytes (a view into the reused buffer, valid until the next `add`). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#length);
  }

  #tooBig(bytes: number, what: () => string): never {
    throw new RangeError(
      `Cannot write ${what()}: its record is ${bytes} bytes (at least), more than maxRecordBytes ${this.#maxRecordBytes}`,
    );
  }

  #grow(need: number, exact: boolean): void {
    const size = exact ? need : Math.max(need, this.#buf.length * 2);
    const grown = new Uint8Array(size);
    grown.set(this.#buf.subarray(0, this.#length));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }
}

/** Where and why a segment stops being a sequence of valid records. */
export interface ScanProblem {
  /** Offset of the first byte that is not part of a valid record. */
  readonly offset: number;
  /**
   * - `incomplete`: the last record runs past the end of the file;
   * - `zeros`: only zero bytes from `offset` to the end;
   * - `bad-at-end`: a complete record with a bad checksum or length,
   *   followed only by zero bytes or nothing;
   * - `corrupt`: a bad record followed by more data.
   */
  readonly kind: "incomplete" | "zeros" | "bad-at-end" | "corrupt";
  /** A human-readable reason. */
  readonly reason: string;
}

function allZero(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Walks the records of a segment, calling `onRecord` with each valid
 * payload's bounds; stops early if it returns `false`.
 *
 * @returns The end of the valid prefix and, if the file does not end there
 * cleanly, what is wrong after it.
 */
export function scanRecords(
  bytes: Uint8Array,
  maxRecordBytes: number,
  onRecord: (offset: number, start: number, end: number) => boolean,
): { validEnd: number; problem: ScanProblem | undefined } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.length;
  let o = 0;
  while (o < n) {
    if (n - o < RECORD_HEADER_BYTES) {
      return {
        validEnd: o,
        problem: allZero(bytes, o)
          ? { offset: o, kind: "zeros", reason: "zero-filled tail" }
          : {
            offset: o,
            kind: "incomplete",
            reason: `record header cut short (${n - o} of 8 bytes)`,
          },
      };
    }
    const length = view.getUint32(o);
    const crc = view.getUint32(o + 4);
    const end = o + RECORD_HEADER_BYTES + length;
    if (length === 0 && crc === 0 && allZero(bytes, o)) {
      return {
        validEnd: o,
        problem: { offset: o, kind: "zeros", reason: "zero-filled tail" },
      };
    }
    if (end > n) {
      return {
        validEnd: o,
        problem: {
          offset: o,
          kind: "incomplete",
          reason: `record of ${length} bytes runs past the end of the file (${
            n - o - RECORD_HEADER_BYTES
          } present)`,
        },
      };
    }
    let bad: string | undefined;
    if (length === 0 || length > maxRecordBytes) {
      bad = `invalid record length ${length}`;
    } else {
      const actual = crc32c(bytes, o + RECORD_HEADER_BYTES, end);
      if (actual !== crc) {
        bad = `checksum mismatch (stored ${hex(crc)}, computed ${hex(actual)})`;
      }
    }
    if (bad !== undefined) {
      return {
        validEnd: o,
        problem: allZero(bytes, end)
          ? { offset: o, kind: "bad-at-end", reason: bad }
          : {
            offset: o,
            kind: "corrupt",
            reason: `${bad}, followed by ${n - end} more bytes of data`,
          },
      };
    }
    if (!onRecord(o, o + RECORD_HEADER_BYTES, end)) {
      return { validEnd: o, problem: undefined };
    }
    o = end;
  }
  return { validEnd: n, problem: undefined };
}

function hex(x: number): string {
  return "0x" + x.toString(16).padStart(8, "0");
}

// ---------------------------------------------------------------- snapshots

/** "CSNP": Cohort snapshot. */
const SNAPSHOT_MAGIC = 0x43534e50;
const SNAPSHOT_VERSION = 1;
/** magic, version, index (u64), term (u64), data length (u64), data CRC, header CRC. */
export const SNAPSHOT_HEADER_BYTES = 40;
const TWO_32 = 0x1_0000_0000;

function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / TWO_32));
  view.setUint32(at + 4, value >>> 0);
}

function getU64(view: DataView, at: number): number {
  return view.getUint32(at) * TWO_32 + view.getUint32(at + 4);
}

/** Encodes a snapshot file: header then data. */
export function encodeSnapshot(
  index: number,
  term: number,
  data: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(SNAPSHOT_HEADER_BYTES + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, SNAPSHOT_MAGIC);
  view.setUint32(4, SNAPSHOT_VERSION);
  setU64(view, 8, index);
  setU64(view, 16, term);
  setU64(view, 24, data.length);
  view.setUint32(32, crc32c(data));
  view.setUint32(36, crc32c(out, 0, 36));
  out.set(data, SNAPSHOT_HEADER_BYTES);
  return out;
}

/**
 * Decodes and verifies a snapshot file.
 *
 * @returns The snapshot, or a string saying why it is broken.
 */
export function decodeSnapshot(
  bytes: Uint8Array,
  expectedIndex: number,
):
  | { index: number; term: number; data: Uint8Array }
  | string {
  if (bytes.length < SNAPSHOT_HEADER_BYTES) {
    return `only ${bytes.length} bytes, shorter than its ${SNAPSHOT_HEADER_BYTES}-byte header`;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== SNAPSHOT_MAGIC) return "bad magic number";
  if (view.getUint32(36) !== crc32c(bytes, 0, 36)) {
    return "header checksum mismatch";
  }
  const version = view.getUint32(4);
  if (version !== SNAPSHOT_VERSION) return `unknown version ${version}`;
  const index = getU64(view, 8);
  const term = getU64(view, 16);
  const length = getU64(view, 24);
  if (index !== expectedIndex) {
    return `header says index ${index}, file name says ${expectedIndex}`;
  }
  if (SNAPSHOT_HEADER_BYTES + length !== bytes.length) {
    return `header says ${length} data bytes, file holds ${
      bytes.length - SNAPSHOT_HEADER_BYTES
    }`;
  }
  if (view.getUint32(32) !== crc32c(bytes, SNAPSHOT_HEADER_BYTES)) {
    return "data checksum mismatch";
  }
  return { index, term, data: bytes.slice(SNAPSHOT_HEADER_BYTES) };
}
