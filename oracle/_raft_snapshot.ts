/**
 * Snapshot transfer: the leader cuts a snapshot into base64 chunks; a
 * follower assembles the chunks of one transfer, in order, holding a few
 * that arrive early (the network reorders) until the gap before them fills.
 *
 * @module
 */

import { fromBase64, toBase64 } from "../runtime/_base64.ts";
import type {
  ReplicaId,
  Snapshot,
  SnapshotChunk,
  SnapshotMeta,
} from "./raft_types.ts";

/** Early chunks a follower holds per transfer (the leader's window is 4). */
const MAX_HELD_CHUNKS = 8;

/** How many chunks a snapshot of `total` bytes takes (at least one). */
export function chunkCount(total: number, chunkBytes: number): number {
  return Math.max(1, Math.ceil(total / chunkBytes));
}

/** Chunk number `chunk` of `snapshot`, as a message of `term`. */
export function snapshotChunk(
  snapshot: Snapshot,
  chunk: number,
  chunkBytes: number,
  term: number,
): SnapshotChunk {
  const offset = chunk * chunkBytes;
  const data = snapshot.data.subarray(offset, offset + chunkBytes);
  return {
    type: "snapshot",
    term,
    meta: { index: snapshot.meta.index, term: snapshot.meta.term },
    offset,
    total: snapshot.data.length,
    data: toBase64(data),
  };
}

/** One incoming transfer, bounded by its announced total. */
export class SnapshotAssembly {
  readonly from: ReplicaId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly total: number;
  #parts: Uint8Array[] = [];
  #received = 0;
  /** Chunks that arrived before the gap ahead of them filled, by offset. */
  #held = new Map<number, SnapshotChunk>();

  /** Starts assembling the transfer `first` belongs to. */
  constructor(from: ReplicaId, first: SnapshotChunk) {
    this.from = from;
    this.term = first.term;
    this.meta = first.meta;
    this.total = first.total;
  }

  /** Bytes received so far. */
  get received(): number {
    return this.#received;
  }

  /** Whether `chunk` belongs to this transfer. */
  matches(from: ReplicaId, chunk: SnapshotChunk): boolean {
    return from === this.from && chunk.term === this.term &&
      chunk.meta.index === this.meta.index &&
      chunk.meta.term === this.meta.term && chunk.total === this.total;
  }

  /**
   * Keeps a chunk that arrived early (its offset is above `received`) for
   * {@linkcode SnapshotAssembly.add}, if fewer than 8 are held.
   */
  hold(chunk: SnapshotChunk): void {
    if (
      chunk.offset > this.#received && chunk.offset < this.total &&
      this.#held.size < MAX_HELD_CHUNKS
    ) {
      this.#held.set(chunk.offset, chunk);
    }
  }

  /**
   * Adds the next chunk (its offset must equal `received`), then the held
   * chunks that now follow.
   *
   * @returns `false` if some data is not base64 or overflows the total.
   */
  add(chunk: SnapshotChunk): boolean {
    let next = chunk;
    for (;;) {
      if (!this.#append(next)) return false;
      const held = this.#held.get(this.#received);
      if (held === undefined) break;
      this.#held.delete(this.#received);
      next = held;
    }
    for (const offset of this.#held.keys()) {
      if (offset < this.#received) this.#held.delete(offset);
    }
    return true;
  }

  #append(chunk: SnapshotChunk): boolean {
    const bytes = fromBase64(chunk.data);
    if (
      bytes === undefined || bytes.length > this.total - this.#received ||
      (bytes.length === 0 && this.total > 0)
    ) {
      return false;
    }
    this.#parts.push(bytes);
    this.#received += bytes.length;
    return true;
  }

  /** Whether every byte arrived. */
  get complete(): boolean {
    return this.#received === this.total;
  }

  /** The assembled snapshot. */
  snapshot(): Snapshot {
    const data = new Uint8Array(this.total);
    let offset = 0;
    for (const part of this.#parts) {
      data.set(part, offset);
      offset += part.length;
    }
    return { meta: { index: this.meta.index, term: this.meta.term }, data };
  }
}
