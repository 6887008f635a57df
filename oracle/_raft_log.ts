/**
 * The in-memory Raft log of one replica: a snapshot point followed by
 * contiguous entries, with the positions the driver has been handed
 * (`unstable`) and has made durable (`persisted`).
 *
 * @module
 */

import type { LogEntry, SnapshotMeta } from "./raft_types.ts";

/** The log entries after a snapshot point, and how far they are durable. */
export class RaftLog<C> {
  #snapIndex: number;
  #snapTerm: number;
  #entries: LogEntry<C>[];
  /** The local log is durable through this index. */
  #persisted: number;
  /** First index not yet handed to the driver in `ready().entries`. */
  #unstable: number;

  /**
   * Builds a log from what the driver recovered.
   *
   * @param meta The snapshot point (index 0, term 0 for none).
   * @param entries The entries after it, contiguous.
   * @throws {RangeError} if the entries do not follow `meta` contiguously.
   */
  constructor(meta: SnapshotMeta, entries: readonly LogEntry<C>[]) {
    this.#snapIndex = meta.index;
    this.#snapTerm = meta.term;
    let term = meta.term;
    entries.forEach((entry, i) => {
      if (entry.index !== meta.index + 1 + i || entry.term < term) {
        throw new RangeError(
          `Invalid restored log: entry ${i} has index ${entry.index} and term ${entry.term}, expected index ${
            meta.index + 1 + i
          } and a term of at least ${term}`,
        );
      }
      term = entry.term;
    });
    this.#entries = [...entries];
    this.#persisted = this.lastIndex;
    this.#unstable = this.lastIndex + 1;
  }

  /** Index of the last entry covered by the snapshot (0 for none). */
  get snapIndex(): number {
    return this.#snapIndex;
  }

  /** Term of the last entry covered by the snapshot. */
  get snapTerm(): number {
    return this.#snapTerm;
  }

  /** Index of the last entry. */
  get lastIndex(): number {
    return this.#snapIndex + this.#entries.length;
  }

  /** Term of the last entry. */
  get lastTerm(): number {
    const n = this.#entries.length;
    return n === 0 ? this.#snapTerm : this.#entries[n - 1].term;
  }

  /** The local log is durable through this index. */
  get persistedIndex(): number {
    return this.#persisted;
  }

  /** Whether entries wait to be handed to the driver. */
  get hasUnstable(): boolean {
    return this.#unstable <= this.lastIndex;
  }

  /** The term of the entry at `index`, or `undefined` if compacted or absent. */
  term(index: number): number | undefined {
    if (index === this.#snapIndex) return this.#snapTerm;
    if (index < this.#snapIndex || index > this.lastIndex) return undefined;
    return this.#entries[index - this.#snapIndex - 1].term;
  }

  /** The entries in [`from`, `to`), all after the snapshot point. */
  slice(from: number, to: number): LogEntry<C>[] {
    const base = this.#snapIndex + 1;
    return this.#entries.slice(from - base, to - base);
  }

  /**
   * The entries from `from` until `maxCount` entries or `maxBytes` by
   * `sizeOf` (at least one).
   */
  batch(
    from: number,
    maxCount: number,
    maxBytes: number,
    sizeOf: (entry: LogEntry<C>) => number,
  ): LogEntry<C>[] {
    const start = from - this.#snapIndex - 1;
    const end = Math.min(this.#entries.length, start + maxCount);
    let bytes = 0;
    let i = start;
    for (; i < end; i++) {
      bytes += sizeOf(this.#entries[i]);
      if (bytes > maxBytes && i > start) break;
    }
    return this.#entries.slice(start, i);
  }

  /** Appends one entry at `lastIndex + 1`. */
  append(entry: LogEntry<C>): void {
    this.#entries.push(entry);
  }

  /** Drops every entry at or after `index` (which is after the snapshot point). */
  truncateFrom(index: number): void {
    this.#entries.length = index - this.#snapIndex - 1;
    this.#persisted = Math.min(this.#persisted, index - 1);
    this.#unstable = Math.min(this.#unstable, index);
  }

  /** The first index of the run of entries of the same term that ends at `index`. */
  termStart(index: number): number {
    const term = this.term(index);
    let first = index;
    while (first - 1 > this.#snapIndex && this.term(first - 1) === term) {
      first--;
    }
    return first;
  }

  /** Drops the entries through `meta.index` (which must hold `meta.term`). */
  compact(meta: SnapshotMeta): void {
    this.#entries.splice(0, meta.index - this.#snapIndex);
    this.#snapIndex = meta.index;
    this.#snapTerm = meta.term;
    this.#persisted = Math.max(this.#persisted, meta.index);
    this.#unstable = Math.max(this.#unstable, meta.index + 1);
  }

  /**
   * Installs a snapshot received from the leader: keeps the entries after
   * `meta` if the log holds `meta`, else discards them. The driver replaces
   * its whole stored log with the snapshot, so every kept entry is handed
   * to it again.
   */
  install(meta: SnapshotMeta): void {
    if (this.term(meta.index) === meta.term) {
      this.#entries.splice(0, meta.index - this.#snapIndex);
    } else {
      this.#entries = [];
    }
    this.#snapIndex = meta.index;
    this.#snapTerm = meta.term;
    this.#persisted = meta.index;
    this.#unstable = meta.index + 1;
  }

  /** Records that the log is durable through `index`, if it still holds that entry of `term`. */
  persistedTo(index: number, term: number): void {
    if (
      index > this.#persisted && index < this.#unstable &&
      this.term(index) === term
    ) {
      this.#persisted = index;
    }
  }

  /** Hands the entries not yet given to the driver. */
  takeUnstable(): LogEntry<C>[] {
    const entries = this.slice(this.#unstable, this.lastIndex + 1);
    this.#unstable = this.lastIndex + 1;
    return entries;
  }
}
