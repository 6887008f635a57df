/**
 * The frames of a flush, in binary: a survivor's receive vector for a
 * proposed view, and echoed messages of the old view (a survivor resends
 * another sender's messages to a survivor that lacks them).
 *
 * Layout (big endian): magic `0xC7`, kind (1 vector, 2 echo, 3 done), then
 * - vector: proposed view id u32, old view id u32, count u16, then `count`
 *   u32 sequence numbers, one per member of the old view in view order;
 * - echo: old view id u32, sender index u16, first seq u32, count u16,
 *   then `count` times (payload length u32, payload bytes);
 * - done: proposed view id u32, old view id u32 (the sender delivered
 *   everything up to the target: stop resending to it).
 *
 * @module
 */

/** The first byte of every flush frame (reliable multicast frames use another). */
export const FLUSH_MAGIC = 0xc7;
const KIND_VECTOR = 1;
const KIND_ECHO = 2;
const KIND_DONE = 3;
const U32_MAX = 0xffff_ffff;

/** A survivor's receive vector for a proposed view. */
export interface VectorFrame {
  readonly kind: "vector";
  /** The proposed view the flush is for. */
  readonly proposal: number;
  /** The view being flushed. */
  readonly oldView: number;
  /** Per member of the old view, in view order: highest seq received without a gap. */
  readonly received: readonly number[];
}

/** Messages of the old view echoed by a survivor. */
export interface EchoFrame {
  readonly kind: "echo";
  /** The view being flushed. */
  readonly oldView: number;
  /** The original sender's index in the old view. */
  readonly sender: number;
  /** The first message's sequence number; the others follow without gaps. */
  readonly first: number;
  /** The messages' payloads. */
  readonly payloads: readonly Uint8Array[];
}

/** A survivor finished its flush for a proposed view. */
export interface DoneFrame {
  readonly kind: "done";
  /** The proposed view the flush is for. */
  readonly proposal: number;
  /** The view being flushed. */
  readonly oldView: number;
}

/** A decoded flush frame, or why it is not one. */
export type DecodedFlush =
  | VectorFrame
  | EchoFrame
  | DoneFrame
  | { readonly error: string };

/** Encodes a done frame. */
export function encodeDone(frame: Omit<DoneFrame, "kind">): Uint8Array {
  const bytes = new Uint8Array(10);
  const view = new DataView(bytes.buffer);
  bytes[0] = FLUSH_MAGIC;
  bytes[1] = KIND_DONE;
  view.setUint32(2, frame.proposal);
  view.setUint32(6, frame.oldView);
  return bytes;
}

/** Encodes a vector frame. */
export function encodeVector(frame: Omit<VectorFrame, "kind">): Uint8Array {
  const bytes = new Uint8Array(12 + 4 * frame.received.length);
  const view = new DataView(bytes.buffer);
  bytes[0] = FLUSH_MAGIC;
  bytes[1] = KIND_VECTOR;
  view.setUint32(2, frame.proposal);
  view.setUint32(6, frame.oldView);
  view.setUint16(10, frame.received.length);
  frame.received.forEach((seq, i) => view.setUint32(12 + 4 * i, seq));
  return bytes;
}

/** Encodes an echo frame. */
export function encodeEcho(frame: Omit<EchoFrame, "kind">): Uint8Array {
  let size = 14;
  for (const payload of frame.payloads) size += 4 + payload.length;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  bytes[0] = FLUSH_MAGIC;
  bytes[1] = KIND_ECHO;
  view.setUint32(2, frame.oldView);
  view.setUint16(6, frame.sender);
  view.setUint32(8, frame.first);
  view.setUint16(12, frame.payloads.length);
  let at = 14;
  for (const payload of frame.payloads) {
    view.setUint32(at, payload.length);
    bytes.set(payload, at + 4);
    at += 4 + payload.length;
  }
  return bytes;
}

/**
 * Decodes a flush frame; never throws.
 *
 * @param bytes A frame whose first byte is {@linkcode FLUSH_MAGIC}.
 * @returns The frame, or `{ error }` saying what is wrong.
 */
export function decodeFlush(bytes: Uint8Array): DecodedFlush {
  if (bytes.length < 2 || bytes[0] !== FLUSH_MAGIC) {
    return { error: "not a flush frame" };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (bytes[1] === KIND_VECTOR) {
    if (bytes.length < 12) return { error: "vector frame too short" };
    const count = view.getUint16(10);
    if (bytes.length !== 12 + 4 * count) {
      return {
        error: `vector frame of ${bytes.length} bytes for ${count} entries`,
      };
    }
    const received: number[] = [];
    for (let i = 0; i < count; i++) received.push(view.getUint32(12 + 4 * i));
    return {
      kind: "vector",
      proposal: view.getUint32(2),
      oldView: view.getUint32(6),
      received,
    };
  }
  if (bytes[1] === KIND_ECHO) {
    if (bytes.length < 14) return { error: "echo frame too short" };
    const count = view.getUint16(12);
    const first = view.getUint32(8);
    if (first === 0 || first + count - 1 > U32_MAX) {
      return { error: `echo frame with sequence numbers from ${first}` };
    }
    const payloads: Uint8Array[] = [];
    let at = 14;
    for (let i = 0; i < count; i++) {
      if (at + 4 > bytes.length) return { error: "echo frame truncated" };
      const length = view.getUint32(at);
      if (at + 4 + length > bytes.length) {
        return { error: "echo frame truncated" };
      }
      payloads.push(bytes.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    if (at !== bytes.length) return { error: "echo frame has trailing bytes" };
    return {
      kind: "echo",
      oldView: view.getUint32(2),
      sender: view.getUint16(6),
      first,
      payloads,
    };
  }
  if (bytes[1] === KIND_DONE) {
    if (bytes.length !== 10) {
      return { error: `done frame of ${bytes.length} bytes, not 10` };
    }
    return {
      kind: "done",
      proposal: view.getUint32(2),
      oldView: view.getUint32(6),
    };
  }
  return { error: `unknown flush frame kind ${bytes[1]}` };
}
