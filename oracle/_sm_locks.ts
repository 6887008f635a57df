/**
 * The Oracle state machine's locks: one holder per path, a FIFO queue of
 * waiting requests, and fencing tokens from one counter that only grows.
 *
 * @module
 */

/** A request waiting for a lock: its session and original request number. */
export interface Waiter {
  readonly session: string;
  readonly req: number;
}

/** A lock granted to a waiting request: its reply is `{ token }` for `req`. */
export interface Grant extends Waiter {
  readonly path: string;
  readonly token: number;
}

/** A lock as a snapshot stores it: path, holder, token, waiters as [session, req]. */
export type LockSnapshot = [string, string, number, [string, number][]];

interface Lock {
  holder: string;
  token: number;
  waiters: Waiter[];
}

/** What {@linkcode LockTable.lock} did. */
export type LockOutcome =
  | { readonly granted: number }
  | { readonly busy: string }
  | { readonly queued: true }
  | { readonly owned: "holder" | "waiter" };

/** What {@linkcode LockTable.unlock} did. */
export type UnlockOutcome =
  | { readonly released: Grant | undefined }
  | { readonly withdrawn: Waiter; readonly holder: string }
  | { readonly notHolder: string };

/** Every lock, its queue, and the fencing-token counter. */
export class LockTable {
  /** Locks with a holder; a lock with no holder does not exist (its queue is then empty). */
  #locks = new Map<string, Lock>();
  #tokens = 0;
  /** Paths each session holds or waits for (an index, rebuilt on restore). */
  #bySession = new Map<string, Set<string>>();

  /** The last fencing token granted (0 before the first). */
  get tokens(): number {
    return this.#tokens;
  }

  /** Makes the next token at least `floor + 1` (a child adopting its parent's tokens). */
  raiseTokens(floor: number): void {
    if (floor > this.#tokens) this.#tokens = floor;
  }

  #index(session: string, path: string, add: boolean): void {
    let paths = this.#bySession.get(session);
    if (add) {
      if (paths === undefined) this.#bySession.set(session, paths = new Set());
      paths.add(path);
    } else if (paths !== undefined) {
      paths.delete(path);
      if (paths.size === 0) this.#bySession.delete(session);
    }
  }

  /** Acquires, refuses, or queues a lock request. */
  lock(path: string, session: string, req: number, wait: boolean): LockOutcome {
    const lock = this.#locks.get(path);
    if (lock === undefined) {
      const token = ++this.#tokens;
      this.#locks.set(path, { holder: session, token, waiters: [] });
      this.#index(session, path, true);
      return { granted: token };
    }
    if (lock.holder === session) return { owned: "holder" };
    if (lock.waiters.some((w) => w.session === session)) {
      return { owned: "waiter" };
    }
    if (!wait) return { busy: lock.holder };
    lock.waiters.push({ session, req });
    this.#index(session, path, true);
    return { queued: true };
  }

  /** Hands a lock whose holder left to its next waiter, or deletes it. */
  #handOver(path: string, lock: Lock): Grant | undefined {
    this.#index(lock.holder, path, false);
    const next = lock.waiters.shift();
    if (next === undefined) {
      this.#locks.delete(path);
      return undefined;
    }
    lock.holder = next.session;
    lock.token = ++this.#tokens;
    return { path, session: next.session, req: next.req, token: lock.token };
  }

  /** Releases a held lock (`token` > 0) or withdraws a queued request (`token` 0). */
  unlock(path: string, session: string, token: number): UnlockOutcome {
    const lock = this.#locks.get(path);
    if (lock === undefined) {
      return { notHolder: `Lock ${JSON.stringify(path)} is not held` };
    }
    if (token === 0) {
      const at = lock.waiters.findIndex((w) => w.session === session);
      if (at < 0) {
        return {
          notHolder: `Session ${
            JSON.stringify(session)
          } does not wait for lock ${JSON.stringify(path)}`,
        };
      }
      const [waiter] = lock.waiters.splice(at, 1);
      this.#index(session, path, false);
      return { withdrawn: waiter, holder: lock.holder };
    }
    if (lock.holder !== session || lock.token !== token) {
      return {
        notHolder: `Session ${JSON.stringify(session)} does not hold lock ${
          JSON.stringify(path)
        } under token ${token} (holder ${
          JSON.stringify(lock.holder)
        }, token ${lock.token})`,
      };
    }
    return { released: this.#handOver(path, lock) };
  }

  /**
   * Releases every lock a session holds and withdraws its queued requests,
   * in path order; returns the grants to the next waiters.
   */
  endSession(session: string): Grant[] {
    const paths = this.#bySession.get(session);
    if (paths === undefined) return [];
    const grants: Grant[] = [];
    for (const path of [...paths].sort()) {
      const lock = this.#locks.get(path)!;
      if (lock.holder === session) {
        const grant = this.#handOver(path, lock);
        if (grant !== undefined) grants.push(grant);
      } else {
        lock.waiters = lock.waiters.filter((w) => w.session !== session);
      }
    }
    this.#bySession.delete(session);
    return grants;
  }

  /** A lock's holder (`null` when free), its token (0 when free) and queue length. */
  get(
    path: string,
  ): { holder: string | null; token: number; waiters: number } {
    const lock = this.#locks.get(path);
    return lock === undefined ? { holder: null, token: 0, waiters: 0 } : {
      holder: lock.holder,
      token: lock.token,
      waiters: lock.waiters.length,
    };
  }

  /** The paths of every held lock, in insertion order (for `list`). */
  paths(): IterableIterator<string> {
    return this.#locks.keys();
  }

  /**
   * The first held lock whose path passes `test` (a queued request waits
   * on a held lock). A scan of every lock: only a delegation asks.
   */
  findPath(test: (path: string) => boolean): string | undefined {
    for (const path of this.#locks.keys()) if (test(path)) return path;
    return undefined;
  }

  /** Every lock in insertion order, as a snapshot stores it. */
  toSnapshot(): { tokens: number; locks: LockSnapshot[] } {
    const locks: LockSnapshot[] = [];
    for (const [path, lock] of this.#locks) {
      locks.push([
        path,
        lock.holder,
        lock.token,
        lock.waiters.map((w) => [w.session, w.req]),
      ]);
    }
    return { tokens: this.#tokens, locks };
  }

  /** Rebuilds a table from {@linkcode LockTable.toSnapshot}'s output. */
  static fromSnapshot(
    snapshot: { tokens: number; locks: LockSnapshot[] },
  ): LockTable {
    const table = new LockTable();
    table.#tokens = snapshot.tokens;
    for (const [path, holder, token, waiters] of snapshot.locks) {
      table.#locks.set(path, {
        holder,
        token,
        waiters: waiters.map(([session, req]) => ({ session, req })),
      });
      table.#index(holder, path, true);
      for (const [session] of waiters) table.#index(session, path, true);
    }
    return table;
  }
}
