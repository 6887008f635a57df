/**
 * State transfer: a checkpoint streamed point to point, in chunks, from
 * the member that took it to the members that joined, with a window,
 * cumulative acknowledgements and resends (frames may be lost).
 *
 * Frames (big endian): magic `0xC8`, kind (1 chunk, 2 ack), transfer id
 * u32 (the view the checkpoint was taken at), then
 * - chunk: chunk count u32, index u32, the bytes;
 * - ack: the next index wanted u32 (every chunk below it arrived).
 *
 * @module
 */

import type { Clock, TimerId } from "../runtime/clock.ts";
import type { MemberId } from "./types.ts";

/** The first byte of every state-transfer frame. */
export const STATE_MAGIC = 0xc8;
const KIND_CHUNK = 1;
const KIND_ACK = 2;

/** A decoded state-transfer frame, or why it is not one. */
export type StateFrame =
  | {
    readonly kind: "chunk";
    readonly transfer: number;
    readonly count: number;
    readonly index: number;
    readonly bytes: Uint8Array;
  }
  | { readonly kind: "ack"; readonly transfer: number; readonly next: number }
  | { readonly error: string };

/** Decodes a state-transfer frame; never throws. */
export function decodeState(bytes: Uint8Array): StateFrame {
  if (bytes.length < 10 || bytes[0] !== STATE_MAGIC) {
    return { error: "not a state-transfer frame" };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const transfer = view.getUint32(2);
  if (bytes[1] === KIND_ACK) {
    if (bytes.length !== 10) return { error: "ack frame of the wrong size" };
    return { kind: "ack", transfer, next: view.getUint32(6) };
  }
  if (bytes[1] !== KIND_CHUNK || bytes.length < 14) {
    return { error: "unknown or short state-transfer frame" };
  }
  const count = view.getUint32(6);
  const index = view.getUint32(10);
  if (count === 0 || index >= count) {
    return { error: `chunk ${index} of ${count}` };
  }
  return { kind: "chunk", transfer, count, index, bytes: bytes.subarray(14) };
}

function chunkFrame(
  transfer: number,
  count: number,
  index: number,
  bytes: Uint8Array,
): Uint8Array {
  const frame = new Uint8Array(14 + bytes.length);
  const view = new DataView(frame.buffer);
  frame[0] = STATE_MAGIC;
  frame[1] = KIND_CHUNK;
  view.setUint32(2, transfer);
  view.setUint32(6, count);
  view.setUint32(10, index);
  frame.set(bytes, 14);
  return frame;
}

/** An ack frame: every chunk below `next` of `transfer` arrived. */
export function ackFrame(transfer: number, next: number): Uint8Array {
  const frame = new Uint8Array(10);
  const view = new DataView(frame.buffer);
  frame[0] = STATE_MAGIC;
  frame[1] = KIND_ACK;
  view.setUint32(2, transfer);
  view.setUint32(6, next);
  return frame;
}

/** Options of a {@linkcode StateSender}. */
export interface StateSenderOptions {
  /** The transfer's id: the view the checkpoint was taken at. */
  readonly transfer: number;
  /** The checkpoint. */
  readonly state: Uint8Array;
  /** The members to send it to. */
  readonly joiners: readonly MemberId[];
  readonly clock: Clock;
  /** Hands a frame to the transport; `false`: refused (resent later). */
  send(to: MemberId, frame: Uint8Array): boolean;
  /** Bytes per chunk. */
  readonly chunkBytes: number;
  /** Chunks in flight per joiner. */
  readonly window: number;
  /** A joiner that acknowledged nothing new for this long gets its unacknowledged chunks again. */
  readonly resendMs: number;
}

/** Streams one checkpoint to its joiners. */
export class StateSender {
  readonly #o: StateSenderOptions;
  readonly #count: number;
  /** Per joiner: the next chunk it wants, the next to send, when it last progressed. */
  readonly #joiners = new Map<
    MemberId,
    { acked: number; sent: number; progressAt: number }
  >();
  #timer: TimerId | undefined;

  /** Starts sending to every joiner. */
  constructor(options: StateSenderOptions) {
    this.#o = options;
    this.#count = Math.max(
      1,
      Math.ceil(options.state.length / options.chunkBytes),
    );
    const now = options.clock.now();
    for (const joiner of options.joiners) {
      this.#joiners.set(joiner, { acked: 0, sent: 0, progressAt: now });
      this.#pump(joiner);
    }
    this.#arm();
  }

  /** The transfer's id: the view the checkpoint was taken at. */
  get transfer(): number {
    return this.#o.transfer;
  }

  /** Joiners that have not received everything yet. */
  get pending(): readonly MemberId[] {
    return [...this.#joiners.keys()];
  }

  /** Whether every joiner received everything (or left). */
  get done(): boolean {
    return this.#joiners.size === 0;
  }

  /** An ack from `from`. */
  onAck(from: MemberId, next: number): void {
    const joiner = this.#joiners.get(from);
    if (joiner === undefined || next <= joiner.acked) return;
    joiner.acked = Math.min(next, this.#count);
    joiner.sent = Math.max(joiner.sent, joiner.acked);
    joiner.progressAt = this.#o.clock.now();
    if (joiner.acked >= this.#count) {
      this.#joiners.delete(from);
      if (this.#joiners.size === 0) this.close();
      return;
    }
    this.#pump(from);
  }

  /** Stops sending to members no longer in the view. */
  keepOnly(members: readonly MemberId[]): void {
    for (const joiner of [...this.#joiners.keys()]) {
      if (!members.includes(joiner)) this.#joiners.delete(joiner);
    }
    if (this.#joiners.size === 0) this.close();
  }

  /** Stops the timer and forgets the joiners. */
  close(): void {
    if (this.#timer !== undefined) this.#o.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#joiners.clear();
  }

  /** Sends the joiner's next chunks, up to the window. */
  #pump(member: MemberId): void {
    const joiner = this.#joiners.get(member)!;
    const { window, chunkBytes, state, transfer } = this.#o;
    while (joiner.sent < this.#count && joiner.sent < joiner.acked + window) {
      const start = joiner.sent * chunkBytes;
      const frame = chunkFrame(
        transfer,
        this.#count,
        joiner.sent,
        state.subarray(start, start + chunkBytes),
      );
      if (!this.#o.send(member, frame)) return;
      joiner.sent++;
    }
  }

  #arm(): void {
    this.#timer = this.#o.clock.setTimer(this.#o.resendMs, () => {
      this.#timer = undefined;
      const now = this.#o.clock.now();
      for (const [member, joiner] of this.#joiners) {
        if (now - joiner.progressAt >= this.#o.resendMs) {
          joiner.sent = joiner.acked;
          joiner.progressAt = now;
          this.#pump(member);
        }
      }
      if (this.#joiners.size > 0) this.#arm();
    });
  }
}

/** Chunks a receiver keeps ahead of the next one it wants (arrivals out of order). */
const AHEAD = 64;

/** Collects one checkpoint's chunks. */
export class StateReceiver {
  /** The transfer's id: the view the checkpoint was taken at. */
  readonly transfer: number;
  readonly #chunks: Uint8Array[] = [];
  /** Chunks that arrived ahead of the next one wanted, by index (bounded). */
  readonly #ahead = new Map<number, Uint8Array>();
  #count = 0;

  /** Waits for the chunks of `transfer`. */
  constructor(transfer: number) {
    this.transfer = transfer;
  }

  /** The next chunk wanted (every chunk below it arrived). */
  get next(): number {
    return this.#chunks.length;
  }

  /**
   * A chunk arrived: kept if it is the next one or up to 64 ahead of it
   * (others are sent again).
   *
   * @returns The whole checkpoint once every chunk arrived.
   */
  onChunk(
    count: number,
    index: number,
    bytes: Uint8Array,
  ): Uint8Array | undefined {
    if (this.#count === 0) this.#count = count;
    const next = this.#chunks.length;
    if (count !== this.#count || index < next || index >= next + AHEAD) {
      return undefined;
    }
    this.#ahead.set(index, bytes.slice());
    for (;;) {
      const chunk = this.#ahead.get(this.#chunks.length);
      if (chunk === undefined) break;
      this.#ahead.delete(this.#chunks.length);
      this.#chunks.push(chunk);
    }
    if (this.#chunks.length < count) return undefined;
    let size = 0;
    for (const chunk of this.#chunks) size += chunk.length;
    const state = new Uint8Array(size);
    let at = 0;
    for (const chunk of this.#chunks) {
      state.set(chunk, at);
      at += chunk.length;
    }
    return state;
  }
}
