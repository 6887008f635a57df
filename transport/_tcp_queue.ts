/**
 * The per-peer send queue of the TCP transport: frames are copied into
 * 64 KiB coalescing buffers so that one socket write carries many frames.
 *
 * @module
 */

import { FRAME_HEADER_SIZE, writeFrameHeader } from "./frame.ts";

/** Size of a coalescing buffer. Larger frames get a buffer of their own. */
export const CHUNK_SIZE = 64 * 1024;
const POOL_LIMIT = 128;

/** A buffer of whole frames, written with one `write`. */
export interface Chunk {
  buf: Uint8Array;
  /** Bytes used. */
  len: number;
  /** Frames held. */
  frames: number;
}

/** Recycles coalescing buffers between queues (bounded). */
export class BufferPool {
  readonly #free: Uint8Array[] = [];

  /** A buffer of at least `size` bytes. */
  take(size: number): Uint8Array {
    if (size <= CHUNK_SIZE) {
      return this.#free.pop() ?? new Uint8Array(CHUNK_SIZE);
    }
    return new Uint8Array(size);
  }

  /** Returns a buffer for reuse; only standard-size buffers are kept. */
  give(buf: Uint8Array): void {
    if (buf.length === CHUNK_SIZE && this.#free.length < POOL_LIMIT) {
      this.#free.push(buf);
    }
  }
}

/**
 * FIFO of frames waiting to be written to one peer. Bytes count whole
 * frames (header and payload) from `push` until the chunk holding them is
 * released after its write, so the bound also covers the write in flight.
 */
export class SendQueue {
  /** Frame bytes queued or being written. */
  bytes = 0;
  /** Frames queued or being written. */
  frames = 0;
  readonly #pool: BufferPool;
  #sealed: Chunk[] = [];
  #tail: Chunk | undefined = undefined;

  constructor(pool: BufferPool) {
    this.#pool = pool;
  }

  /** Whether there is nothing left to take. */
  get isEmpty(): boolean {
    return this.#sealed.length === 0 &&
      (this.#tail === undefined || this.#tail.len === 0);
  }

  /**
   * Copies one frame in: `prefix` (if any), then `payload`, as one frame.
   * Returns `true` if this sealed a full chunk (worth starting a write for
   * right away).
   */
  push(kind: number, payload: Uint8Array, prefix?: Uint8Array): boolean {
    const before = prefix?.length ?? 0;
    const length = before + payload.length;
    const size = FRAME_HEADER_SIZE + length;
    let tail = this.#tail;
    let sealed = false;
    if (tail === undefined || tail.buf.length - tail.len < size) {
      if (tail !== undefined && tail.len > 0) {
        this.#sealed.push(tail);
        sealed = true;
      } else if (tail !== undefined) {
        this.#pool.give(tail.buf);
      }
      tail = { buf: this.#pool.take(size), len: 0, frames: 0 };
      this.#tail = tail;
    }
    const buf = tail.buf;
    const at = tail.len;
    writeFrameHeader(buf, at, kind, length);
    if (prefix !== undefined) buf.set(prefix, at + FRAME_HEADER_SIZE);
    const start = at + FRAME_HEADER_SIZE + before;
    if (payload.length <= 16) {
      for (let i = 0; i < payload.length; i++) buf[start + i] = payload[i];
    } else {
      buf.set(payload, start);
    }
    tail.len = at + size;
    tail.frames++;
    this.bytes += size;
    this.frames++;
    return sealed;
  }

  /** Removes and returns the oldest chunk, sealing the tail if needed. */
  take(): Chunk | undefined {
    if (this.#sealed.length > 0) return this.#sealed.shift();
    const tail = this.#tail;
    if (tail === undefined || tail.len === 0) return undefined;
    this.#tail = undefined;
    return tail;
  }

  /** Accounts for a taken chunk once its write has finished or failed. */
  release(chunk: Chunk): void {
    this.bytes -= chunk.len;
    this.frames -= chunk.frames;
    this.#pool.give(chunk.buf);
  }

  /** Drops everything not yet taken; returns the number of frames dropped. */
  clear(): number {
    let dropped = 0;
    for (const chunk of this.#sealed) {
      dropped += chunk.frames;
      this.release(chunk);
    }
    this.#sealed = [];
    if (this.#tail !== undefined) {
      dropped += this.#tail.frames;
      this.release(this.#tail);
      this.#tail = undefined;
    }
    return dropped;
  }
}
