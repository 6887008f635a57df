/**
 * What every member of a view acknowledged from every sender, as one member
 * knows it, and the stability that follows: a message is stable once every
 * member holds it.
 *
 * @module
 */

/**
 * An n x n matrix of cumulative acknowledgements: row `m` holds, per sender
 * `s`, the highest contiguous seq of `s` that member `m` holds. Entries only
 * grow. Keeps per sender the maximum of its column and its stability: the
 * minimum over the other members (a sender holds its own messages, whatever
 * the others last heard from it).
 */
export class AckMatrix {
  readonly #n: number;
  readonly #cells: Float64Array;
  readonly #stable: Float64Array;
  readonly #highest: Float64Array;

  /**
   * Creates a matrix of zeros.
   *
   * @param n The view's size.
   */
  constructor(n: number) {
    this.#n = n;
    this.#cells = new Float64Array(n * n);
    this.#stable = new Float64Array(n);
    this.#highest = new Float64Array(n);
  }

  /**
   * What `member` acknowledged of `sender`.
   *
   * @param member The acknowledging member's index.
   * @param sender The sender's index.
   * @returns The highest contiguous seq.
   */
  get(member: number, sender: number): number {
    return this.#cells[member * this.#n + sender];
  }

  /**
   * The row of `member`: its ack vector, as a live view.
   *
   * @param member The member's index.
   * @returns One entry per sender.
   */
  row(member: number): Float64Array {
    return this.#cells.subarray(member * this.#n, (member + 1) * this.#n);
  }

  /**
   * The highest seq of `sender` every member holds.
   *
   * @param sender The sender's index.
   * @returns The minimum of its column.
   */
  stable(sender: number): number {
    return this.#stable[sender];
  }

  /**
   * The highest seq of `sender` some member holds.
   *
   * @param sender The sender's index.
   * @returns The maximum of its column.
   */
  highest(sender: number): number {
    return this.#highest[sender];
  }

  /**
   * Raises what `member` acknowledged of `sender` to `seq`, if higher.
   *
   * @param member The acknowledging member's index.
   * @param sender The sender's index.
   * @param seq The new highest contiguous seq.
   * @returns Whether the entry grew.
   */
  raise(member: number, sender: number, seq: number): boolean {
    const n = this.#n;
    const cells = this.#cells;
    const old = cells[member * n + sender];
    if (!(seq > old)) return false;
    cells[member * n + sender] = seq;
    if (seq > this.#highest[sender]) this.#highest[sender] = seq;
    if (old === this.#stable[sender] && (member !== sender || n === 1)) {
      this.#stable[sender] = this.#columnMin(sender);
    }
    return true;
  }

  /** The minimum of a column, leaving out the sender itself (it holds its own messages) unless it is alone. */
  #columnMin(sender: number): number {
    const n = this.#n;
    if (n === 1) return this.#cells[0];
    let min = Infinity;
    for (let m = 0; m < n; m++) {
      const v = this.#cells[m * n + sender];
      if (m !== sender && v < min) min = v;
    }
    return min;
  }

  /**
   * Raises `member`'s row entrywise to `vector` (older vectors change nothing).
   *
   * @param member The acknowledging member's index.
   * @param vector Its ack vector, one entry per sender.
   * @returns Whether any entry grew.
   */
  merge(member: number, vector: readonly number[]): boolean {
    let grew = false;
    for (let s = 0; s < this.#n; s++) {
      if (this.raise(member, s, vector[s])) grew = true;
    }
    return grew;
  }

  /**
   * Whether `member` lacks a message of another sender that some member
   * holds: it holds up the stability of that sender.
   *
   * @param member The member's index.
   * @returns `true` if some entry of its row is below its column's maximum.
   */
  lagging(member: number): boolean {
    const n = this.#n;
    for (let s = 0; s < n; s++) {
      if (s !== member && this.#cells[member * n + s] < this.#highest[s]) {
        return true;
      }
    }
    return false;
  }
}
