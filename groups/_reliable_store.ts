/**
 * The messages one member holds from one sender, by sequence number: a ring
 * buffer above a garbage-collected base that grows by doubling.
 *
 * @module
 */

const INITIAL_CAPACITY = 64;

/**
 * Payloads by sequence number. Every seq at or below {@linkcode SeqStore.base}
 * is gone (stable and collected); above it, slots may be empty (gaps).
 * Callers bound how far above the base they store.
 */
export class SeqStore {
  #slots: (Uint8Array | undefined)[] = new Array(INITIAL_CAPACITY);
  #base = 0;
  #top = 0;
  #size = 0;

  /** Every seq at or below it has been dropped. */
  get base(): number {
    return this.#base;
  }

  /** The highest seq stored, or the base if none is. */
  get top(): number {
    return this.#top;
  }

  /** How many payloads are held. */
  get size(): number {
    return this.#size;
  }

  /**
   * The payload of `seq`, if held.
   *
   * @param seq A sequence number.
   * @returns The payload, or `undefined`.
   */
  get(seq: number): Uint8Array | undefined {
    if (seq <= this.#base || seq > this.#top) return undefined;
    return this.#slots[seq % this.#slots.length];
  }

  /**
   * Holds `payload` as `seq`, unless that seq was dropped or is held.
   *
   * @param seq A sequence number.
   * @param payload The payload (kept as is, not copied).
   * @returns Whether it was stored.
   */
  put(seq: number, payload: Uint8Array): boolean {
    if (seq <= this.#base || this.get(seq) !== undefined) return false;
    if (seq - this.#base > this.#slots.length) this.#grow(seq - this.#base);
    this.#slots[seq % this.#slots.length] = payload;
    this.#size++;
    if (seq > this.#top) this.#top = seq;
    return true;
  }

  /**
   * Drops every seq at or below `seq` (garbage collection).
   *
   * @param seq The new base; lower values do nothing.
   */
  dropThrough(seq: number): void {
    if (seq <= this.#base) return;
    const slots = this.#slots;
    const end = Math.min(seq, this.#top);
    let dropped = 0;
    for (let s = this.#base + 1; s <= end; s++) {
      const i = s % slots.length;
      if (slots[i] !== undefined) {
        slots[i] = undefined;
        dropped++;
      }
    }
    this.#size -= dropped;
    this.#base = seq;
    if (this.#top < seq) this.#top = seq;
  }

  #grow(span: number): void {
    let capacity = this.#slots.length * 2;
    while (capacity < span) capacity *= 2;
    const slots = new Array<Uint8Array | undefined>(capacity);
    for (let s = this.#base + 1; s <= this.#top; s++) {
      slots[s % capacity] = this.#slots[s % this.#slots.length];
    }
    this.#slots = slots;
  }
}
