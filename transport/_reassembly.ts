/**
 * Reassembly of frames cut into datagrams by the UDP transport. A pure
 * state machine: the caller passes the current time in and drives timeouts
 * with {@linkcode Reassembler.sweep}; it sets no timer and does no I/O.
 *
 * Memory is bounded: an incomplete frame reserves its full length when its
 * first fragment arrives (the length is checked against `maxFrameSize`
 * first), the reservations of all incomplete frames never exceed
 * `maxBytes`, and there are never more than `maxFrames` incomplete frames.
 * To make room, the oldest incomplete frames are evicted. An incomplete
 * frame is dropped `timeoutMs` after its first fragment arrived.
 *
 * @module
 */

import { checkFragmentShape, type Fragment } from "./_datagram.ts";
import { positiveNumber } from "./_options.ts";
import { checkMaxFrameSize, FrameError } from "./frame.ts";

/** Options for {@linkcode Reassembler}. */
export interface ReassemblerOptions {
  /** Largest frame accepted, in bytes. */
  maxFrameSize: number;
  /** Most bytes reserved by incomplete frames at once; at least `maxFrameSize`. */
  maxBytes: number;
  /** Most incomplete frames at once; at least 1. */
  maxFrames: number;
  /** How long after its first fragment an incomplete frame is dropped, in ms. */
  timeoutMs: number;
  /**
   * How many completed multi-fragment frames are remembered (for
   * `timeoutMs`) so that late duplicates of their fragments are ignored
   * instead of starting a new frame. Default 1024.
   */
  maxRemembered?: number | undefined;
}

/** Counters and gauges of a {@linkcode Reassembler}. */
export interface ReassemblyStats {
  /** Bytes reserved right now by incomplete frames (gauge). */
  heldBytes: number;
  /** Incomplete frames right now (gauge). */
  incompleteFrames: number;
  /** Frames returned whole, single-fragment frames included. */
  framesCompleted: number;
  /** Incomplete frames dropped because their timeout passed. */
  framesExpired: number;
  /** Incomplete frames dropped to make room for newer ones. */
  framesEvicted: number;
  /** Fragments ignored because they had already been received. */
  duplicateFragments: number;
}

interface Pending {
  readonly frameLength: number;
  readonly count: number;
  readonly chunkSize: number;
  readonly deadline: number;
  readonly buffer: Uint8Array;
  /** One bit per fragment: received or not. */
  readonly received: Uint8Array;
  receivedCount: number;
}

/**
 * Puts frames back together from their fragments, in any order, ignoring
 * duplicates, within bounded memory.
 */
export class Reassembler {
  readonly #maxFrameSize: number;
  readonly #maxBytes: number;
  readonly #maxFrames: number;
  readonly #timeoutMs: number;
  readonly #maxRemembered: number;
  /** Incomplete frames by key, oldest first. */
  readonly #pending = new Map<string, Pending>();
  /** Recently completed frames by key, with the time they are forgotten. */
  readonly #recent = new Map<string, number>();
  #heldBytes = 0;
  #completed = 0;
  #expired = 0;
  #evicted = 0;
  #duplicates = 0;

  /**
   * Creates a reassembler.
   *
   * @throws {RangeError} if a bound is invalid.
   */
  constructor(options: ReassemblerOptions) {
    this.#maxFrameSize = checkMaxFrameSize(options.maxFrameSize);
    this.#maxBytes = checkInteger(
      "maxReassemblyBytes",
      options.maxBytes,
      this.#maxFrameSize,
      "the maximum frame size",
    );
    this.#maxFrames = checkInteger(
      "maxIncompleteFrames",
      options.maxFrames,
      1,
      "1",
    );
    this.#timeoutMs = positiveNumber("reassemblyTimeoutMs", options.timeoutMs);
    this.#maxRemembered = checkInteger(
      "maxRemembered",
      options.maxRemembered ?? 1024,
      0,
      "0",
    );
  }

  /** Bytes reserved right now by incomplete frames. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Number of incomplete frames right now. */
  get incompleteFrames(): number {
    return this.#pending.size;
  }

  /**
   * Takes one fragment.
   *
   * @param fragment The fragment; its chunk is copied if kept.
   * @param now The current time in milliseconds.
   * @returns The whole frame if this fragment completed it, else
   * `undefined`. A single-fragment frame is returned as the chunk itself.
   * @throws {FrameError} if the fragment is inconsistent with itself, with
   * `maxFrameSize`, or with the fragments already received for its frame.
   */
  accept(fragment: Fragment, now: number): Uint8Array | undefined {
    const { frameLength, fragmentIndex: index, fragmentCount: count, chunk } =
      fragment;
    if (frameLength > this.#maxFrameSize) {
      throw new FrameError(
        "too-large",
        `Fragment announces a frame of ${frameLength} bytes, over the maximum of ${this.#maxFrameSize}`,
        chunk,
      );
    }
    checkFragmentShape(frameLength, index, count, chunk.length, chunk);
    if (count === 1) {
      this.#completed++;
      return chunk;
    }
    const key = `${fragment.messageNumber}:${fragment.sender}`;
    if (this.#recent.has(key)) {
      this.#duplicates++;
      return undefined;
    }
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      const chunkSize = inferChunkSize(frameLength, index, count, chunk);
      this.#makeRoom(frameLength, now);
      pending = {
        frameLength,
        count,
        chunkSize,
        deadline: now + this.#timeoutMs,
        buffer: new Uint8Array(frameLength),
        received: new Uint8Array(Math.ceil(count / 8)),
        receivedCount: 0,
      };
      this.#pending.set(key, pending);
      this.#heldBytes += frameLength;
    } else if (
      pending.frameLength !== frameLength || pending.count !== count
    ) {
      throw new FrameError(
        "malformed",
        `Fragment ${index} of message ${key} announces ${count} fragments of a ${frameLength}-byte frame; earlier fragments announced ${pending.count} of ${pending.frameLength}`,
        chunk,
      );
    }
    const expected = index === count - 1
      ? frameLength - (count - 1) * pending.chunkSize
      : pending.chunkSize;
    if (chunk.length !== expected) {
      throw new FrameError(
        "malformed",
        `Fragment ${index} of ${count} of message ${key} carries ${chunk.length} bytes: expected ${expected}`,
        chunk,
      );
    }
    const bit = 1 << (index & 7);
    if ((pending.received[index >>> 3] & bit) !== 0) {
      this.#duplicates++;
      return undefined;
    }
    pending.received[index >>> 3] |= bit;
    pending.buffer.set(chunk, index * pending.chunkSize);
    pending.receivedCount++;
    if (pending.receivedCount < count) return undefined;
    this.#pending.delete(key);
    this.#heldBytes -= frameLength;
    this.#completed++;
    this.#remember(key, now);
    return pending.buffer;
  }

  /**
   * Drops incomplete frames whose timeout has passed and forgets old
   * completed frames.
   *
   * @param now The current time in milliseconds.
   * @returns The number of incomplete frames dropped.
   */
  sweep(now: number): number {
    let dropped = 0;
    for (const [key, pending] of this.#pending) {
      if (now >= pending.deadline) {
        this.#pending.delete(key);
        this.#heldBytes -= pending.frameLength;
        dropped++;
      }
    }
    this.#expired += dropped;
    for (const [key, forgetAt] of this.#recent) {
      if (now < forgetAt) break;
      this.#recent.delete(key);
    }
    return dropped;
  }

  /** Drops everything held, without counting it (used when closing). */
  clear(): void {
    this.#pending.clear();
    this.#recent.clear();
    this.#heldBytes = 0;
  }

  /** Returns a snapshot of the counters and gauges. */
  stats(): ReassemblyStats {
    return {
      heldBytes: this.#heldBytes,
      incompleteFrames: this.#pending.size,
      framesCompleted: this.#completed,
      framesExpired: this.#expired,
      framesEvicted: this.#evicted,
      duplicateFragments: this.#duplicates,
    };
  }

  /** Drops expired, then the oldest, incomplete frames until `bytes` fit. */
  #makeRoom(bytes: number, now: number): void {
    if (
      this.#pending.size < this.#maxFrames &&
      this.#heldBytes + bytes <= this.#maxBytes
    ) return;
    this.sweep(now);
    for (const [key, pending] of this.#pending) {
      if (
        this.#pending.size < this.#maxFrames &&
        this.#heldBytes + bytes <= this.#maxBytes
      ) return;
      this.#pending.delete(key);
      this.#heldBytes -= pending.frameLength;
      this.#evicted++;
    }
  }

  #remember(key: string, now: number): void {
    if (this.#maxRemembered === 0) return;
    if (this.#recent.size >= this.#maxRemembered) {
      const oldest = this.#recent.keys().next();
      if (!oldest.done) this.#recent.delete(oldest.value);
    }
    this.#recent.set(key, now + this.#timeoutMs);
  }
}

/**
 * The sender's chunk size, from the first fragment seen of a frame.
 *
 * @throws {FrameError} if no chunk size is consistent with the fragment.
 */
function inferChunkSize(
  frameLength: number,
  index: number,
  count: number,
  chunk: Uint8Array,
): number {
  if (index < count - 1) {
    const size = chunk.length;
    if ((count - 1) * size < frameLength && frameLength <= count * size) {
      return size;
    }
  } else {
    const rest = frameLength - chunk.length;
    if (rest % (count - 1) === 0 && chunk.length <= rest / (count - 1)) {
      return rest / (count - 1);
    }
  }
  throw new FrameError(
    "malformed",
    `Fragment ${index} of ${count} carries ${chunk.length} bytes: no chunk size cuts a ${frameLength}-byte frame that way`,
    chunk,
  );
}

function checkInteger(
  name: string,
  value: number,
  min: number,
  minText: string,
): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(
      `Invalid ${name} ${value}: must be an integer of at least ${minText} (${min})`,
    );
  }
  return value;
}
