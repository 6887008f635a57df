/**
 * Group commit: everything written while one sync is in flight is covered
 * by the next single sync, and what waits on durability is released in the
 * order it was written.
 *
 * @module
 */

/** Something waiting for what was written before it to be durable. */
export type AfterSync = () => void;

/** Runs the one sync the queue needs (the WAL's `sync`). */
export type SyncRunner = (done: (error?: Error) => void) => void;

/** At most one sync in flight; waiters released in write order. */
export class SyncQueue {
  readonly #run: SyncRunner;
  readonly #onError: (error: Error) => void;
  /** Waiters written before the sync in flight started. */
  #covered: AfterSync[] = [];
  /** Waiters written since: the next sync covers them. */
  #waiting: AfterSync[] = [];
  #inFlight = false;
  #syncs = 0;

  constructor(run: SyncRunner, onError: (error: Error) => void) {
    this.#run = run;
    this.#onError = onError;
  }

  /** Syncs started so far. */
  get syncs(): number {
    return this.#syncs;
  }

  /** `true` while anything waits for durability. */
  get busy(): boolean {
    return this.#inFlight || this.#waiting.length > 0;
  }

  /** Calls `after` once everything written so far is durable. */
  add(after: AfterSync): void {
    this.#waiting.push(after);
    if (!this.#inFlight) this.#start();
  }

  #start(): void {
    this.#covered = this.#waiting;
    this.#waiting = [];
    this.#inFlight = true;
    this.#syncs++;
    this.#run((error) => {
      this.#inFlight = false;
      if (error !== undefined) {
        this.#onError(error);
        return;
      }
      const covered = this.#covered;
      this.#covered = [];
      for (const after of covered) after();
      if (this.#waiting.length > 0) this.#start();
    });
  }
}
