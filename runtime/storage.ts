/**
 * The storage protocol code is handed: named files that survive a crash only
 * once synced.
 *
 * @module
 */

/**
 * A flat directory of named byte files, as protocol code sees it.
 *
 * Writes are buffered: after a crash a file holds what its last completed
 * {@linkcode Storage.sync} covered, and possibly a prefix of what was
 * appended after it (a torn tail). Readers must tolerate a torn last record.
 * The real driver is {@linkcode FileStorage}; the simulator provides a
 * simulated disk with the same contract.
 */
export interface Storage {
  /** Names of the files that exist, sorted. */
  list(): string[];
  /** The whole content of a file, or `undefined` if it does not exist. */
  read(name: string): Uint8Array | undefined;
  /** Appends bytes to a file, creating it if needed. Not durable until synced. */
  append(name: string, data: Uint8Array): void;
  /**
   * Replaces a file's content atomically: after a crash the file holds either
   * the old or the new content, the new one once `sync(name)` completed.
   */
  replace(name: string, data: Uint8Array): void;
  /** Deletes a file; durable once a later `sync` of any file completes. */
  remove(name: string): void;
  /**
   * Makes everything written to `name` so far durable, then calls `done`
   * (with an error if the device failed). Calls complete in order.
   */
  sync(name: string, done: (error?: Error) => void): void;
}

/** Checks a storage file name: 1-128 characters of `[A-Za-z0-9._-]`, not `.` or `..`. */
export function checkFileName(name: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(name) || name === "." || name === "..") {
    throw new TypeError(
      `Invalid storage file name ${
        JSON.stringify(name)
      }: use 1-128 of [A-Za-z0-9._-]`,
    );
  }
  return name;
}
