/**
 * A resource started on first use and shared after, whose failed start is
 * forgotten (the next use tries again).
 *
 * @module
 */

/** See the module documentation. */
export class OnFirstUse<T> {
  readonly #start: () => Promise<T>;
  #current: Promise<T> | undefined;

  /** `start` makes the resource; it runs on the first {@linkcode OnFirstUse.get}. */
  constructor(start: () => Promise<T>) {
    this.#start = start;
  }

  /** The resource: started now if it is not (or its last start failed). */
  get(): Promise<T> {
    if (this.#current === undefined) {
      const current = this.#start();
      this.#current = current;
      current.catch(() => {
        if (this.#current === current) this.#current = undefined;
      });
    }
    return this.#current;
  }

  /** The resource if it was started and started well, else `undefined`; never starts it. */
  async started(): Promise<T | undefined> {
    return await this.#current?.catch(() => undefined);
  }
}
