/**
 * The application state the group tests replicate: an order-independent
 * digest of the messages a member delivered (how many, and two 32-bit
 * lanes of the XOR of their ids' hashes), equal at every member of a view
 * whatever order concurrent messages came in.
 *
 * @module
 */

/** A member's digest of what it delivered. */
export class DeliveryDigest {
  readonly #lanes = new Uint32Array(3);

  /** Folds a delivered message's id in. */
  apply(id: string): void {
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193;
    for (let i = 0; i < id.length; i++) {
      h1 = Math.imul(h1 ^ id.charCodeAt(i), 16777619);
      h2 = Math.imul(h2 ^ id.charCodeAt(i), 2246822507);
    }
    this.#lanes[0]++;
    this.#lanes[1] ^= h1;
    this.#lanes[2] ^= h2;
  }

  /** The digest as bytes (a state-transfer checkpoint). */
  checkpoint(): Uint8Array {
    return new Uint8Array(this.#lanes.slice().buffer);
  }

  /** Replaces the digest with a checkpoint. */
  restore(bytes: Uint8Array): void {
    this.#lanes.set(new Uint32Array(bytes.slice().buffer));
  }

  /** The digest as text, for comparing members. */
  toString(): string {
    return [...this.#lanes].map((x) => x.toString(16)).join(".");
  }
}
