/**
 * The binary frames of reliable multicast: DATA (messages and the sender's
 * acknowledgements), ACK (acknowledgements alone, also the heartbeat) and
 * NAK (acknowledgements and the ranges a receiver misses). Big-endian;
 * sequence numbers are 48-bit (`u48`: a `u16` then a `u32`).
 *
 * ```text
 * offset 0   u8        magic 0x47 ("G")
 * offset 1   u8        version (1)
 * offset 2   u8        kind: 1 DATA, 2 ACK, 3 NAK
 * offset 3   u32       view id
 * offset 7   u16       sender: the frame's sender, as an index in the view's members
 * offset 9   u16       n: the ack vector's length (the view's size)
 * offset 11  n x u48   ack vector: per member, highest contiguous seq the sender holds
 * then, DATA: u32 count (>= 1), then count x (u48 seq, u32 length, payload);
 *             seqs strictly increasing, each >= 1
 *       ACK:  nothing
 *       NAK:  u16 target (whose messages are missing), u16 range count (>= 1),
 *             then count x (u48 first, u48 last), 1 <= first <= last
 * ```
 *
 * Decoding validates every field and returns an error value; it never
 * throws. A decoded DATA frame's payloads are views of the input.
 *
 * @module
 */

/** First byte of every frame. */
export const FRAME_MAGIC = 0x47;
/** The version this build writes and accepts. */
export const FRAME_VERSION = 1;
/** Frame kind of messages (with acknowledgements). */
export const KIND_DATA = 1;
/** Frame kind of acknowledgements alone (also the heartbeat). */
export const KIND_ACK = 2;
/** Frame kind of a negative acknowledgement (missing ranges). */
export const KIND_NAK = 3;
/** The largest sequence number a frame carries: 2^48 - 1. */
export const MAX_SEQ = 2 ** 48 - 1;
/** The most members a view may have (indexes are `u16`). */
export const MAX_MEMBERS = 0xffff;
/** Bytes a DATA frame spends per message besides its payload (seq, length). */
export const MESSAGE_OVERHEAD = 10;
/** Bytes per NAK range (first, last). */
export const NAK_RANGE_SIZE = 12;

const FIXED_HEADER = 11;
const U32 = 2 ** 32;

/**
 * Size of the part every frame starts with, for a view of `members` members.
 *
 * @param members The view's size.
 * @returns Header bytes, ack vector included.
 */
export function headerSize(members: number): number {
  return FIXED_HEADER + 6 * members;
}

/**
 * Size of an empty DATA frame (header and message count).
 *
 * @param members The view's size.
 * @returns Bytes before the first message.
 */
export function dataHeaderSize(members: number): number {
  return headerSize(members) + 4;
}

/** What every decoded frame carries. */
export interface FrameHeader {
  /** The view the frame belongs to. */
  readonly viewId: number;
  /** The sender's index in the view's members. */
  readonly sender: number;
  /** Per member index, the highest contiguous seq the sender holds from it. */
  readonly acks: readonly number[];
}

/** A decoded DATA frame. */
export interface DataFrame extends FrameHeader {
  /** The frame kind. */
  readonly kind: "data";
  /** The messages' sequence numbers, strictly increasing. */
  readonly seqs: readonly number[];
  /** The messages' payloads (views of the decoded bytes), in `seqs` order. */
  readonly payloads: readonly Uint8Array[];
}

/** A decoded ACK frame. */
export interface AckFrame extends FrameHeader {
  /** The frame kind. */
  readonly kind: "ack";
}

/** A decoded NAK frame. */
export interface NakFrame extends FrameHeader {
  /** The frame kind. */
  readonly kind: "nak";
  /** The index of the member whose messages are missing. */
  readonly target: number;
  /** Missing ranges, flat: `[first0, last0, first1, last1, ...]`, inclusive. */
  readonly ranges: readonly number[];
}

/** Any decoded frame. */
export type GroupFrame = DataFrame | AckFrame | NakFrame;

/** Why a frame was rejected. */
export type FrameErrorReason =
  | "too-large"
  | "truncated"
  | "bad-magic"
  | "bad-version"
  | "bad-kind"
  | "bad-field"
  | "trailing-bytes";

/** A frame that could not be decoded: the reason and a message with the values. */
export interface FrameDecodeError {
  /** Always `false`. */
  readonly ok: false;
  /** Why the frame was rejected. */
  readonly reason: FrameErrorReason;
  /** What was wrong, with the values involved. */
  readonly message: string;
}

/** The result of {@linkcode decodeFrame}. */
export type DecodeResult =
  | { readonly ok: true; readonly frame: GroupFrame }
  | FrameDecodeError;

function fail(reason: FrameErrorReason, message: string): FrameDecodeError {
  return { ok: false, reason, message };
}

function truncated(what: string, need: number, left: number) {
  return fail(
    "truncated",
    `Truncated group frame: ${what} needs ${need} bytes, ${left} left`,
  );
}

function readU48(view: DataView, at: number): number {
  return view.getUint16(at) * U32 + view.getUint32(at + 2);
}

function writeU48(view: DataView, at: number, value: number): void {
  view.setUint16(at, Math.floor(value / U32));
  view.setUint32(at + 2, value >>> 0);
}

/**
 * Decodes and validates one frame.
 *
 * @example Decode what a writer encoded
 * ```ts
 * import { decodeFrame, FrameWriter } from "./_frame.ts";
 * import assert from "node:assert/strict";
 *
 * const writer = new FrameWriter(1024);
 * const result = decodeFrame(writer.ack(7, 1, [3, 5]), 1024);
 * assert.ok(result.ok);
 * assert.deepEqual(result.frame, { kind: "ack", viewId: 7, sender: 1, acks: [3, 5] });
 * ```
 *
 * @param bytes The frame.
 * @param maxFrameBytes The largest frame accepted.
 * @returns The frame, or why it was rejected.
 */
export function decodeFrame(
  bytes: Uint8Array,
  maxFrameBytes: number,
): DecodeResult {
  const size = bytes.length;
  if (size > maxFrameBytes) {
    return fail(
      "too-large",
      `Group frame of ${size} bytes exceeds the maximum of ${maxFrameBytes}`,
    );
  }
  if (size < FIXED_HEADER) return truncated("the header", FIXED_HEADER, size);
  if (bytes[0] !== FRAME_MAGIC) {
    return fail(
      "bad-magic",
      `Bad group frame magic 0x${
        bytes[0].toString(16).padStart(2, "0")
      }: expected 0x47`,
    );
  }
  if (bytes[1] !== FRAME_VERSION) {
    return fail(
      "bad-version",
      `Unsupported group frame version ${bytes[1]}: expected ${FRAME_VERSION}`,
    );
  }
  const kind = bytes[2];
  if (kind !== KIND_DATA && kind !== KIND_ACK && kind !== KIND_NAK) {
    return fail("bad-kind", `Unknown group frame kind ${kind}: expected 1-3`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, size);
  const viewId = view.getUint32(3);
  const sender = view.getUint16(7);
  const n = view.getUint16(9);
  if (n === 0 || sender >= n) {
    return fail(
      "bad-field",
      `Bad group frame header: sender index ${sender} in an ack vector of ${n}`,
    );
  }
  let at = FIXED_HEADER;
  if (size - at < 6 * n) return truncated("the ack vector", 6 * n, size - at);
  const acks = new Array<number>(n);
  for (let i = 0; i < n; i++, at += 6) acks[i] = readU48(view, at);
  let frame: GroupFrame;
  if (kind === KIND_ACK) {
    frame = { kind: "ack", viewId, sender, acks };
  } else if (kind === KIND_DATA) {
    const body = decodeMessages(bytes, view, at);
    if (!body.ok) return body;
    at = body.end;
    frame = {
      kind: "data",
      viewId,
      sender,
      acks,
      seqs: body.seqs,
      payloads: body.payloads,
    };
  } else {
    const body = decodeRanges(view, at, n);
    if (!body.ok) return body;
    at = body.end;
    frame = {
      kind: "nak",
      viewId,
      sender,
      acks,
      target: body.target,
      ranges: body.ranges,
    };
  }
  if (at !== size) {
    return fail(
      "trailing-bytes",
      `Group frame has ${size - at} bytes after its end at offset ${at}`,
    );
  }
  return { ok: true, frame };
}

type Body<T> =
  | ({ readonly ok: true; readonly end: number } & T)
  | FrameDecodeError;

function decodeMessages(
  bytes: Uint8Array,
  view: DataView,
  start: number,
): Body<{ seqs: number[]; payloads: Uint8Array[] }> {
  const size = view.byteLength;
  if (size - start < 4) return truncated("the message count", 4, size - start);
  const count = view.getUint32(start);
  let at = start + 4;
  if (count === 0) return fail("bad-field", "DATA frame holds no message");
  if (count > (size - at) / MESSAGE_OVERHEAD) {
    return truncated(
      `${count} messages`,
      count * MESSAGE_OVERHEAD,
      size - at,
    );
  }
  const seqs = new Array<number>(count);
  const payloads = new Array<Uint8Array>(count);
  let previous = 0;
  for (let i = 0; i < count; i++) {
    if (size - at < MESSAGE_OVERHEAD) {
      return truncated(
        `message ${i + 1} of ${count}`,
        MESSAGE_OVERHEAD,
        size - at,
      );
    }
    const seq = readU48(view, at);
    const length = view.getUint32(at + 6);
    at += MESSAGE_OVERHEAD;
    if (seq <= previous) {
      return fail(
        "bad-field",
        `DATA frame message ${
          i + 1
        } has seq ${seq} after ${previous}: seqs must increase from 1`,
      );
    }
    if (length > size - at) {
      return truncated(`the payload of seq ${seq}`, length, size - at);
    }
    seqs[i] = seq;
    payloads[i] = bytes.subarray(at, at + length);
    previous = seq;
    at += length;
  }
  return { ok: true, end: at, seqs, payloads };
}

function decodeRanges(
  view: DataView,
  start: number,
  n: number,
): Body<{ target: number; ranges: number[] }> {
  const size = view.byteLength;
  if (size - start < 4) return truncated("the NAK target", 4, size - start);
  const target = view.getUint16(start);
  const count = view.getUint16(start + 2);
  let at = start + 4;
  if (target >= n || count === 0) {
    return fail(
      "bad-field",
      `Bad NAK: target index ${target} in a view of ${n}, ${count} ranges`,
    );
  }
  if (size - at < count * NAK_RANGE_SIZE) {
    return truncated(`${count} ranges`, count * NAK_RANGE_SIZE, size - at);
  }
  const ranges = new Array<number>(2 * count);
  for (let i = 0; i < count; i++, at += NAK_RANGE_SIZE) {
    const first = readU48(view, at);
    const last = readU48(view, at + 6);
    if (first < 1 || last < first) {
      return fail("bad-field", `Bad NAK range [${first}, ${last}]`);
    }
    ranges[2 * i] = first;
    ranges[2 * i + 1] = last;
  }
  return { ok: true, end: at, target, ranges };
}

/**
 * Encodes frames into one reused buffer of the maximum frame size: each
 * frame it returns is a view of that buffer, valid until the next frame is
 * started (transports copy a frame on `send`).
 */
export class FrameWriter {
  readonly #buffer: Uint8Array;
  readonly #view: DataView;
  #at = 0;
  #count = 0;

  /**
   * Creates a writer.
   *
   * @param maxFrameBytes The largest frame it writes.
   */
  constructor(maxFrameBytes: number) {
    this.#buffer = new Uint8Array(maxFrameBytes);
    this.#view = new DataView(this.#buffer.buffer);
  }

  /** Messages in the DATA frame being written. */
  get messageCount(): number {
    return this.#count;
  }

  #header(
    kind: number,
    viewId: number,
    sender: number,
    acks: ArrayLike<number>,
    extra: number,
  ): void {
    const n = acks.length;
    if (headerSize(n) + extra > this.#buffer.length) {
      throw new RangeError(
        `Cannot write a group frame for ${n} members: it needs ${
          headerSize(n) + extra
        } bytes, the maximum frame is ${this.#buffer.length}`,
      );
    }
    const view = this.#view;
    this.#buffer[0] = FRAME_MAGIC;
    this.#buffer[1] = FRAME_VERSION;
    this.#buffer[2] = kind;
    view.setUint32(3, viewId);
    view.setUint16(7, sender);
    view.setUint16(9, n);
    let at = FIXED_HEADER;
    for (let i = 0; i < n; i++, at += 6) writeU48(view, at, acks[i]);
    this.#at = at;
  }

  /**
   * Starts a DATA frame; add messages with {@linkcode FrameWriter.addMessage}.
   *
   * @param viewId The view.
   * @param sender The sender's index in the view.
   * @param acks The sender's ack vector.
   * @throws {RangeError} if not even one empty message fits.
   */
  beginData(viewId: number, sender: number, acks: ArrayLike<number>): void {
    this.#header(KIND_DATA, viewId, sender, acks, 4 + MESSAGE_OVERHEAD);
    this.#at += 4;
    this.#count = 0;
  }

  /**
   * Appends a message to the DATA frame being written.
   *
   * @param seq Its sequence number (above the previous one's).
   * @param payload Its payload.
   * @returns `false` (and writes nothing) if it does not fit.
   */
  addMessage(seq: number, payload: Uint8Array): boolean {
    const at = this.#at;
    if (at + MESSAGE_OVERHEAD + payload.length > this.#buffer.length) {
      return false;
    }
    writeU48(this.#view, at, seq);
    this.#view.setUint32(at + 6, payload.length);
    this.#buffer.set(payload, at + MESSAGE_OVERHEAD);
    this.#at = at + MESSAGE_OVERHEAD + payload.length;
    this.#count++;
    return true;
  }

  /**
   * Ends the DATA frame being written.
   *
   * @returns The frame (a view of the writer's buffer).
   */
  finishData(): Uint8Array {
    const n = this.#view.getUint16(9);
    this.#view.setUint32(headerSize(n), this.#count);
    return this.#buffer.subarray(0, this.#at);
  }

  /**
   * Writes an ACK frame.
   *
   * @param viewId The view.
   * @param sender The sender's index in the view.
   * @param acks The sender's ack vector.
   * @returns The frame (a view of the writer's buffer).
   */
  ack(viewId: number, sender: number, acks: ArrayLike<number>): Uint8Array {
    this.#header(KIND_ACK, viewId, sender, acks, 0);
    this.#count = 0;
    return this.#buffer.subarray(0, this.#at);
  }

  /**
   * Writes a NAK frame.
   *
   * @param viewId The view.
   * @param sender The sender's index in the view.
   * @param acks The sender's ack vector.
   * @param target Index of the member whose messages are missing.
   * @param ranges Flat inclusive ranges `[first0, last0, ...]` (at least one).
   * @returns The frame (a view of the writer's buffer).
   * @throws {RangeError} if the ranges do not fit in a frame.
   */
  nak(
    viewId: number,
    sender: number,
    acks: ArrayLike<number>,
    target: number,
    ranges: readonly number[],
  ): Uint8Array {
    const count = ranges.length / 2;
    this.#header(KIND_NAK, viewId, sender, acks, 4 + count * NAK_RANGE_SIZE);
    this.#count = 0;
    const view = this.#view;
    let at = this.#at;
    view.setUint16(at, target);
    view.setUint16(at + 2, count);
    at += 4;
    for (let i = 0; i < ranges.length; i++, at += 6) {
      writeU48(view, at, ranges[i]);
    }
    this.#at = at;
    return this.#buffer.subarray(0, at);
  }
}
