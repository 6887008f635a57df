/**
 * The Oracle tree client's cache of delegations: which Oracle group owns
 * a path, as far as the `moved` answers seen so far tell. Bounded: the
 * oldest delegation learned is forgotten first.
 *
 * @module
 */

import { type Delegation, ownerPath } from "./commands.ts";

/** The delegations learned from `moved` answers, by prefix. */
export class TreeRoutes {
  readonly #max: number;
  /** In the order learned (a delegation learned again moves to the end). */
  readonly #byPrefix = new Map<string, Delegation>();

  /** Keeps at most `max` delegations. */
  constructor(max: number) {
    this.#max = max;
  }

  /** Delegations cached. */
  get size(): number {
    return this.#byPrefix.size;
  }

  /**
   * The cached delegation that owns `path`: the longest prefix at or above
   * `ownerPath(path)` (the group path of a view channel).
   *
   * @returns The delegation, or `undefined` when the root owns it as far
   * as the cache knows.
   */
  route(path: string): Delegation | undefined {
    if (this.#byPrefix.size === 0) return undefined;
    let prefix = ownerPath(path);
    while (prefix.length > 1) {
      const delegation = this.#byPrefix.get(prefix);
      if (delegation !== undefined) return delegation;
      prefix = prefix.slice(0, Math.max(1, prefix.lastIndexOf("/")));
    }
    return undefined;
  }

  /**
   * Caches a delegation (replacing one of the same prefix).
   *
   * @returns How many older delegations were forgotten to make room.
   */
  learn(delegation: Delegation): number {
    this.#byPrefix.delete(delegation.prefix);
    this.#byPrefix.set(delegation.prefix, delegation);
    let evicted = 0;
    for (const prefix of this.#byPrefix.keys()) {
      if (this.#byPrefix.size <= this.#max) break;
      this.#byPrefix.delete(prefix);
      evicted++;
    }
    return evicted;
  }

  /** Forgets `delegation` if it is still the one cached for its prefix. */
  forget(delegation: Delegation): void {
    if (this.#byPrefix.get(delegation.prefix) === delegation) {
      this.#byPrefix.delete(delegation.prefix);
    }
  }
}
