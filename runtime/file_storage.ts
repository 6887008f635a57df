/**
 * The real {@linkcode Storage}: one directory of files on the local disk.
 *
 * @module
 */

import { checkFileName, type Storage } from "./storage.ts";

/** Options for {@linkcode FileStorage.open}. */
export interface FileStorageOptions {
  /** Create the directory (and parents) if it does not exist. Default `true`. */
  create?: boolean | undefined;
  /**
   * Where `sync` runs `fdatasync`. Default `"background"`.
   *
   * - `"background"`: on a worker thread; the event loop stays free while
   *   the disk works.
   * - `"inline"`: on the event loop's thread, once the current task and
   *   the microtasks queued so far have run (so frames sent in this turn
   *   are already written to their sockets). The syncs asked in one turn
   *   share one `fdatasync` per file. This saves the handoff to a worker
   *   thread and the wakeup back (about 70 µs per sync on a small VM), at
   *   the price of blocking the event loop while the disk works.
   */
  syncMode?: "background" | "inline" | undefined;
}

type SyncMode = "background" | "inline";

interface InlineSync {
  /** The file to sync; `undefined` once synced early (its handle closed). */
  file: Deno.FsFile | undefined;
  readonly done: (error?: Error) => void;
}

/** Suffix of the temporary file `replace` writes; `~` is never in a valid name. */
const TEMP_SUFFIX = "~";

/**
 * A {@linkcode Storage} over a directory. Appends go to the page cache with
 * `writeSync`; `sync` calls `fdatasync` (off the event loop, or inline at
 * the end of the turn: see {@linkcode FileStorageOptions.syncMode}) and then, if a file
 * was created, replaced or removed since the directory was last synced,
 * makes the directory entries durable; `replace` writes a temporary file,
 * syncs it and renames it over the old one, so a crash leaves the old or
 * the new content.
 *
 * Needs `--allow-read` and `--allow-write` for the directory.
 *
 * @example Append, sync and read back
 * ```ts
 * import { FileStorage } from "@cohort/cohort";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const storage = FileStorage.open(dir);
 * storage.append("log", new Uint8Array([1, 2, 3]));
 * await new Promise<void>((resolve, reject) =>
 *   storage.sync("log", (error) => error ? reject(error) : resolve())
 * );
 * assert.deepEqual(storage.read("log"), new Uint8Array([1, 2, 3]));
 * await storage.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FileStorage implements Storage {
  readonly #dir: string;
  #inline: boolean;
  /** Background syncs asked and not yet finished. */
  #backgroundPending = 0;
  readonly #handles = new Map<string, Deno.FsFile>();
  /** Inline mode: syncs asked in this turn, run together at its end. */
  #inlineSyncs: InlineSync[] = [];
  /** Inline mode: resolves once the pending inline syncs ran. */
  #inlineDone: PromiseWithResolvers<void> | undefined = undefined;
  /** Inline mode: an early sync (of a handle being closed) that failed. */
  #inlineFailure: Error | undefined = undefined;
  /** The tail of the chain of pending syncs, so that they complete in order. */
  #syncs: Promise<void> = Promise.resolve();
  /** A file was created, renamed into place or removed since the last directory sync. */
  #directoryDirty = true;
  #closed = false;

  private constructor(dir: string, syncMode: SyncMode) {
    this.#dir = dir;
    this.#inline = syncMode === "inline";
  }

  /**
   * Opens (and by default creates) a storage directory.
   *
   * @param dir The directory path.
   * @param options Whether to create it, and where syncs run.
   * @returns The storage.
   * @throws {Deno.errors.NotFound} if the directory is missing and `create` is false.
   * @throws {TypeError} if `syncMode` is not `"background"` or `"inline"`.
   */
  static open(dir: string, options: FileStorageOptions = {}): FileStorage {
    const syncMode = checkSyncMode(options.syncMode ?? "background");
    if (options.create ?? true) Deno.mkdirSync(dir, { recursive: true });
    if (!Deno.statSync(dir).isDirectory) {
      throw new TypeError(`Cannot open storage at "${dir}": not a directory`);
    }
    return new FileStorage(dir, syncMode);
  }

  /**
   * Where `sync` runs `fdatasync` from now on; it can change at any time
   * (a replica syncs inline as a follower and in the background as the
   * leader). Syncs still complete in the order they were asked: while
   * background syncs are pending, a sync asked inline joins them.
   *
   * @throws {TypeError} when set to anything but `"background"` or `"inline"`.
   */
  get syncMode(): "background" | "inline" {
    return this.#inline ? "inline" : "background";
  }

  set syncMode(mode: "background" | "inline") {
    this.#inline = checkSyncMode(mode) === "inline";
  }

  /** The directory this storage lives in. */
  get directory(): string {
    return this.#dir;
  }

  /**
   * Names of the files that exist, sorted; temporary files are left out.
   *
   * @returns The file names.
   */
  list(): string[] {
    const names: string[] = [];
    for (const entry of Deno.readDirSync(this.#dir)) {
      if (entry.isFile && isValidName(entry.name)) names.push(entry.name);
    }
    return names.sort();
  }

  /**
   * Reads a whole file.
   *
   * @param name The file name.
   * @returns Its content, or `undefined` if it does not exist.
   * @throws {TypeError} if the name is invalid.
   */
  read(name: string): Uint8Array | undefined {
    try {
      return Deno.readFileSync(this.#path(name));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  /**
   * Appends bytes to a file, creating it if needed. Durable after `sync`.
   *
   * @param name The file name.
   * @param data The bytes to append.
   * @throws {TypeError} if the name is invalid or the storage is closed.
   */
  append(name: string, data: Uint8Array): void {
    const file = this.#handle(name);
    let offset = 0;
    while (offset < data.length) {
      offset += file.writeSync(data.subarray(offset));
    }
  }

  /**
   * Replaces a file's content atomically (write, sync, rename). The new
   * directory entry is durable after `sync(name)`.
   *
   * @param name The file name.
   * @param data The new content.
   * @throws {TypeError} if the name is invalid or the storage is closed.
   */
  replace(name: string, data: Uint8Array): void {
    const path = this.#path(name);
    this.#closeHandle(name);
    const temp = path + TEMP_SUFFIX;
    const file = Deno.openSync(temp, {
      write: true,
      create: true,
      truncate: true,
    });
    try {
      let offset = 0;
      while (offset < data.length) {
        offset += file.writeSync(data.subarray(offset));
      }
      file.syncDataSync();
    } finally {
      file.close();
    }
    Deno.renameSync(temp, path);
    this.#directoryDirty = true;
  }

  /**
   * Deletes a file if it exists.
   *
   * @param name The file name.
   * @throws {TypeError} if the name is invalid or the storage is closed.
   */
  remove(name: string): void {
    const path = this.#path(name);
    this.#closeHandle(name);
    try {
      Deno.removeSync(path);
      this.#directoryDirty = true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }

  /**
   * Makes everything written to `name` so far durable (`fdatasync` of the
   * file, then `fsync` of the directory if an entry changed since its last
   * sync), then calls `done`.
   *
   * @param name The file name.
   * @param done Called once, with an error if syncing failed.
   * @throws {TypeError} if the name is invalid or the storage is closed.
   */
  sync(name: string, done: (error?: Error) => void): void {
    this.#path(name);
    const file = this.#handles.get(name);
    if (this.#inline && this.#backgroundPending === 0) {
      this.#inlineSyncs.push({ file, done });
      if (this.#inlineSyncs.length === 1) {
        this.#inlineDone = Promise.withResolvers();
        // Twice deferred: after the microtasks this turn queued so far, such
        // as a transport's flush of the frames sent before this sync.
        queueMicrotask(() => queueMicrotask(this.#runInlineSyncs));
      }
      return;
    }
    this.#backgroundPending++;
    this.#syncs = this.#syncs.then(async () => {
      let failure: Error | undefined;
      try {
        if (file) await file.syncData();
        if (this.#directoryDirty) {
          // Cleared before the await: a change made meanwhile sets it again.
          this.#directoryDirty = false;
          try {
            await this.#syncDirectory();
          } catch (error) {
            this.#directoryDirty = true;
            throw error;
          }
        }
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      // Outside the chain: a throwing callback must not stall later syncs.
      queueMicrotask(() => {
        this.#backgroundPending--;
        done(failure);
      });
    });
  }

  /**
   * Waits for pending syncs and closes every open file. The storage cannot
   * be used afterwards.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#inlineDone?.promise;
    await this.#syncs;
    for (const name of [...this.#handles.keys()]) this.#closeHandle(name);
  }

  /** Inline mode: one `fdatasync` per file asked this turn, then the directory. */
  readonly #runInlineSyncs = (): void => {
    const syncs = this.#inlineSyncs;
    const finished = this.#inlineDone;
    this.#inlineSyncs = [];
    this.#inlineDone = undefined;
    let failure = this.#inlineFailure;
    this.#inlineFailure = undefined;
    try {
      if (failure !== undefined) throw failure;
      const synced = new Set<Deno.FsFile>();
      for (const { file } of syncs) {
        if (file !== undefined && !synced.has(file)) {
          synced.add(file);
          file.syncDataSync();
        }
      }
      if (this.#directoryDirty) {
        this.#directoryDirty = false;
        try {
          this.#syncDirectorySync();
        } catch (error) {
          this.#directoryDirty = true;
          throw error;
        }
      }
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
    }
    for (const { done } of syncs) {
      try {
        done(failure);
      } catch (error) {
        // As in background mode: surfaced, without skipping later callbacks.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
    finished?.resolve();
  };

  #syncDirectorySync(): void {
    const dir = Deno.openSync(this.#dir, { read: true });
    try {
      dir.syncSync();
    } finally {
      dir.close();
    }
  }

  async #syncDirectory(): Promise<void> {
    const dir = await Deno.open(this.#dir, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  }

  #path(name: string): string {
    if (this.#closed) {
      throw new TypeError(`Cannot use storage at "${this.#dir}": it is closed`);
    }
    return `${this.#dir}/${checkFileName(name)}`;
  }

  #handle(name: string): Deno.FsFile {
    const path = this.#path(name);
    let file = this.#handles.get(name);
    if (!file) {
      file = Deno.openSync(path, { append: true, create: true });
      this.#directoryDirty = true;
      this.#handles.set(name, file);
    }
    return file;
  }

  #closeHandle(name: string): void {
    const file = this.#handles.get(name);
    if (!file) return;
    this.#handles.delete(name);
    // An inline sync asked for this file is still due: do its part now.
    const due = this.#inlineSyncs.filter((s) => s.file === file);
    if (due.length > 0) {
      try {
        file.syncDataSync();
      } catch (error) {
        this.#inlineFailure ??= error instanceof Error
          ? error
          : new Error(String(error));
      }
      for (const s of due) s.file = undefined;
    }
    if (this.#backgroundPending === 0) {
      file.close();
      return;
    }
    // A pending sync may still use the handle; close it after the chain.
    this.#syncs = this.#syncs.then(() => file.close());
  }
}

function checkSyncMode(mode: SyncMode): SyncMode {
  if (mode !== "background" && mode !== "inline") {
    throw new TypeError(
      `Invalid syncMode ${JSON.stringify(mode)}: use "background" or "inline"`,
    );
  }
  return mode;
}

function isValidName(name: string): boolean {
  try {
    checkFileName(name);
    return true;
  } catch {
    return false;
  }
}
