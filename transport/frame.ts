/**
 * The wire framing shared by every stream transport: an 8-byte header
 * (magic, version, kind, payload length) followed by the payload.
 *
 * ```text
 * offset 0  2 bytes  magic 0x43 0x4F ("CO")
 * offset 2  1 byte   version (1)
 * offset 3  1 byte   kind (0 = data; other values are transport control)
 * offset 4  4 bytes  payload length, unsigned big-endian
 * offset 8  ...      payload
 * ```
 *
 * @module
 */

/** Size in bytes of the frame header. */
export const FRAME_HEADER_SIZE = 8;
/** First byte of every frame. */
export const FRAME_MAGIC_0 = 0x43;
/** Second byte of every frame. */
export const FRAME_MAGIC_1 = 0x4f;
/** The framing version this build writes and accepts. */
export const FRAME_VERSION = 1;
/** Frame kind of an application payload. */
export const FRAME_KIND_DATA = 0;
/** Default largest payload a receiver accepts: 1 MiB. */
export const DEFAULT_MAX_FRAME_SIZE: number = 1024 * 1024;
/** Hard upper bound on any configured maximum frame size: 256 MiB. */
export const MAX_FRAME_SIZE_LIMIT: number = 256 * 1024 * 1024;

/** Why a frame was rejected. */
export type FrameErrorReason =
  | "bad-magic"
  | "bad-version"
  | "too-large"
  | "truncated"
  | "malformed";

/**
 * A frame or datagram on the wire could not be parsed. Carries the reason
 * and up to 64 of the offending bytes.
 */
export class FrameError extends SyntaxError {
  /** Why the frame was rejected. */
  readonly reason: FrameErrorReason;
  /** Up to 64 of the offending bytes, for logs. */
  readonly data: Uint8Array;

  /**
   * Creates a frame error.
   *
   * @param reason Why the frame was rejected.
   * @param message A human-readable explanation with the values involved.
   * @param data The offending bytes; only the first 64 are kept.
   */
  constructor(reason: FrameErrorReason, message: string, data: Uint8Array) {
    super(message);
    this.name = "FrameError";
    this.reason = reason;
    this.data = data.slice(0, 64);
  }
}

/**
 * Checks a configured maximum frame size.
 *
 * @param size The requested maximum payload size in bytes.
 * @returns The size, if valid.
 * @throws {RangeError} if it is not an integer between 1 and {@linkcode MAX_FRAME_SIZE_LIMIT}.
 */
export function checkMaxFrameSize(size: number): number {
  if (!Number.isInteger(size) || size < 1 || size > MAX_FRAME_SIZE_LIMIT) {
    throw new RangeError(
      `Invalid maxFrameSize ${size}: must be an integer from 1 to ${MAX_FRAME_SIZE_LIMIT}`,
    );
  }
  return size;
}

/**
 * Writes a frame header into `target` at `offset`.
 *
 * @param target The buffer to write into; needs 8 bytes from `offset`.
 * @param offset Where the header starts.
 * @param kind The frame kind (0 to 255).
 * @param length The payload length in bytes.
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  kind: number,
  length: number,
): void {
  target[offset] = FRAME_MAGIC_0;
  target[offset + 1] = FRAME_MAGIC_1;
  target[offset + 2] = FRAME_VERSION;
  target[offset + 3] = kind;
  target[offset + 4] = length >>> 24;
  target[offset + 5] = (length >>> 16) & 0xff;
  target[offset + 6] = (length >>> 8) & 0xff;
  target[offset + 7] = length & 0xff;
}

/**
 * Returns a new buffer holding one whole frame.
 *
 * @example Encode and decode one frame
 * ```ts
 * import { encodeFrame, FrameDecoder } from "@cohort/cohort/transport";
 * import assert from "node:assert/strict";
 *
 * const bytes = encodeFrame(0, new TextEncoder().encode("hi"));
 * const seen: string[] = [];
 * new FrameDecoder(1024).push(bytes, (_kind, payload) => {
 *   seen.push(new TextDecoder().decode(payload));
 * });
 * assert.deepEqual(seen, ["hi"]);
 * ```
 *
 * @param kind The frame kind (0 for data).
 * @param payload The payload.
 * @returns Header and payload in one buffer.
 */
export function encodeFrame(kind: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
  writeFrameHeader(frame, 0, kind, payload.length);
  frame.set(payload, FRAME_HEADER_SIZE);
  return frame;
}

/**
 * Validates the header at `offset` and returns the payload length.
 *
 * @throws {FrameError} on wrong magic, version or a length over `maxFrameSize`.
 */
function readHeader(
  bytes: Uint8Array,
  offset: number,
  maxFrameSize: number,
): number {
  if (
    bytes[offset] !== FRAME_MAGIC_0 || bytes[offset + 1] !== FRAME_MAGIC_1
  ) {
    throw new FrameError(
      "bad-magic",
      `Bad frame magic 0x${hex(bytes[offset])}${
        hex(bytes[offset + 1])
      }: expected 0x434f`,
      bytes.subarray(offset),
    );
  }
  if (bytes[offset + 2] !== FRAME_VERSION) {
    throw new FrameError(
      "bad-version",
      `Unsupported frame version ${
        bytes[offset + 2]
      }: expected ${FRAME_VERSION}`,
      bytes.subarray(offset),
    );
  }
  const length = ((bytes[offset + 4] << 24) >>> 0) +
    (bytes[offset + 5] << 16) + (bytes[offset + 6] << 8) + bytes[offset + 7];
  if (length > maxFrameSize) {
    throw new FrameError(
      "too-large",
      `Frame of ${length} bytes exceeds the maximum of ${maxFrameSize}`,
      bytes.subarray(offset),
    );
  }
  return length;
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).padStart(2, "0");
}

/**
 * Splits a byte stream into frames. Feed it chunks as they arrive; it calls
 * back once per complete frame and keeps at most one partial frame.
 *
 * A malformed header makes {@linkcode FrameDecoder.push} throw a
 * {@linkcode FrameError}; the stream cannot be resynchronised and must be
 * closed.
 */
export class FrameDecoder {
  readonly #maxFrameSize: number;
  /** Holds the bytes of one partial frame (header, then header + payload). */
  #partial: Uint8Array = new Uint8Array(FRAME_HEADER_SIZE);
  #partialLength = 0;
  /** Payload length of the partial frame, or -1 while its header is incomplete. */
  #payloadLength = -1;

  /**
   * Creates a decoder.
   *
   * @param maxFrameSize The largest payload accepted, in bytes.
   * @throws {RangeError} if `maxFrameSize` is invalid.
   */
  constructor(maxFrameSize: number = DEFAULT_MAX_FRAME_SIZE) {
    this.#maxFrameSize = checkMaxFrameSize(maxFrameSize);
  }

  /** Number of bytes held for a frame that is not complete yet. */
  get buffered(): number {
    return this.#partialLength;
  }

  /**
   * Feeds bytes from the stream.
   *
   * @param chunk The next bytes of the stream.
   * @param onFrame Called once per complete frame with its kind and payload.
   * The payload is only valid during the call.
   * @throws {FrameError} if a header is malformed.
   */
  push(
    chunk: Uint8Array,
    onFrame: (kind: number, payload: Uint8Array) => void,
  ): void {
    let offset = 0;
    if (this.#partialLength > 0) {
      offset = this.#completePartial(chunk, onFrame);
      if (offset < 0) return;
    }
    const end = chunk.length;
    while (end - offset >= FRAME_HEADER_SIZE) {
      const length = readHeader(chunk, offset, this.#maxFrameSize);
      const frameEnd = offset + FRAME_HEADER_SIZE + length;
      if (frameEnd > end) break;
      onFrame(
        chunk[offset + 3],
        chunk.subarray(offset + FRAME_HEADER_SIZE, frameEnd),
      );
      offset = frameEnd;
    }
    if (offset < end) this.#keepPartial(chunk.subarray(offset));
  }

  /**
   * Appends bytes from `chunk` to the partial frame; emits it when complete.
   * Returns the offset in `chunk` where unconsumed bytes start, or -1 if the
   * whole chunk was consumed and the frame is still partial.
   */
  #completePartial(
    chunk: Uint8Array,
    onFrame: (kind: number, payload: Uint8Array) => void,
  ): number {
    let offset = 0;
    if (this.#payloadLength < 0) {
      const take = Math.min(
        FRAME_HEADER_SIZE - this.#partialLength,
        chunk.length,
      );
      this.#partial.set(chunk.subarray(0, take), this.#partialLength);
      this.#partialLength += take;
      offset = take;
      if (this.#partialLength < FRAME_HEADER_SIZE) return -1;
      this.#startPayload();
    }
    const total = FRAME_HEADER_SIZE + this.#payloadLength;
    const take = Math.min(total - this.#partialLength, chunk.length - offset);
    this.#partial.set(
      chunk.subarray(offset, offset + take),
      this.#partialLength,
    );
    this.#partialLength += take;
    offset += take;
    if (this.#partialLength < total) return -1;
    const frame = this.#partial;
    this.#resetPartial();
    onFrame(frame[3], frame.subarray(FRAME_HEADER_SIZE, total));
    return offset;
  }

  /** Validates the completed header and sizes the buffer for the payload. */
  #startPayload(): void {
    this.#payloadLength = readHeader(this.#partial, 0, this.#maxFrameSize);
    const total = FRAME_HEADER_SIZE + this.#payloadLength;
    if (this.#partial.length < total) {
      const grown = new Uint8Array(total);
      grown.set(this.#partial.subarray(0, this.#partialLength));
      this.#partial = grown;
    }
  }

  #keepPartial(rest: Uint8Array): void {
    this.#partial.set(rest.subarray(0, FRAME_HEADER_SIZE), 0);
    this.#partialLength = Math.min(rest.length, FRAME_HEADER_SIZE);
    this.#payloadLength = -1;
    if (rest.length < FRAME_HEADER_SIZE) return;
    this.#startPayload();
    this.#partial.set(rest, 0);
    this.#partialLength = rest.length;
  }

  /** Drops the partial frame and shrinks the buffer back to a header. */
  #resetPartial(): void {
    this.#partialLength = 0;
    this.#payloadLength = -1;
    if (this.#partial.length > 64 * 1024) {
      this.#partial = new Uint8Array(FRAME_HEADER_SIZE);
    }
  }
}
