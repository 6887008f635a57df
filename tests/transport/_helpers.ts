/**
 * Helpers shared by the transport tests: waiting, deterministic data, and a
 * recorder of what a transport reports.
 *
 * @module
 */

import type {
  PeerId,
  Transport,
  TransportHandler,
} from "../../transport/transport.ts";

const decoder = new TextDecoder();

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `condition` every 5 ms; fails after `timeoutMs`, describing what
 * it waited for (`what` is called then, so it can show the final state).
 */
export async function waitUntil(
  condition: () => boolean,
  timeoutMs: number,
  what: string | (() => string),
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) {
      const text = typeof what === "string" ? what : what();
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${text}`);
    }
    await delay(5);
  }
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Deterministic payload of `size` bytes: differs by seed, and from one
 * 256-byte block to the next, so a misplaced chunk does not go unseen.
 */
export function payloadOf(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    bytes[i] = (i * 131 + seed * 7 + (i >> 8)) & 0xff;
  }
  return bytes;
}

/** Whether two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One frame a {@linkcode Recorder} kept. */
export interface Received {
  from: PeerId;
  payload: Uint8Array;
}

/** Records everything a transport reports; frames are copied. */
export class Recorder {
  readonly frames: Received[] = [];
  readonly ups: PeerId[] = [];
  readonly downs: PeerId[] = [];
  readonly drains: PeerId[] = [];
  /** Whether frames are kept (turn off for floods; events still are). */
  keep = true;

  /** A handler that records into this recorder. */
  handler(): TransportHandler {
    return {
      onFrame: (from, payload) => {
        if (this.keep) this.frames.push({ from, payload: payload.slice() });
      },
      onPeerUp: (peer) => this.ups.push(peer),
      onPeerDown: (peer) => this.downs.push(peer),
      onDrain: (peer) => this.drains.push(peer),
    };
  }

  /** Installs {@linkcode Recorder.handler} on `t`. */
  attach(t: Transport): this {
    t.setHandler(this.handler());
    return this;
  }

  /** The frames kept (from `from` only, if given), decoded as UTF-8. */
  texts(from?: PeerId): string[] {
    return this.frames.filter((f) => from === undefined || f.from === from)
      .map((f) => decoder.decode(f.payload));
  }

  /** Whether a frame from `from` with these bytes was kept at or after index `since`. */
  has(from: PeerId, payload: Uint8Array, since = 0): boolean {
    for (let i = since; i < this.frames.length; i++) {
      const f = this.frames[i];
      if (f.from === from && bytesEqual(f.payload, payload)) return true;
    }
    return false;
  }
}
