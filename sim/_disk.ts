/**
 * The simulated disk of one node (see `disk.ts` for its behaviour): the
 * write log, crash recovery and the per-incarnation `Storage` view.
 *
 * @module
 */

import { checkFileName, type Storage } from "../runtime/storage.ts";
import type { DiskCounters, DiskOptions, SimDiskView } from "./disk.ts";
import {
  checkLatency,
  type LatencyDistribution,
  sampleLatency,
} from "./network.ts";
import type { Prng } from "./prng.ts";
import { T, type TraceCode } from "./_trace.ts";

/** What a disk needs from the simulation. */
export interface DiskHost {
  now(): number;
  scheduleSync(
    node: number,
    incarnation: number,
    time: number,
    run: () => void,
  ): void;
  trace(kind: TraceCode, node: string, file: string, n: number): void;
  incarnationOf(node: number): number;
}

const APPEND = 0;
const REPLACE = 1;
const REMOVE = 2;

interface PendingOp {
  seq: number;
  kind: typeof APPEND | typeof REPLACE | typeof REMOVE;
  /** Bytes of an append or replace; never mutated afterwards. */
  data: Uint8Array;
}

interface FileState {
  /** Current content is `buf[0, len)`; bytes below `len` are never mutated. */
  buf: Uint8Array;
  len: number;
  exists: boolean;
  durBuf: Uint8Array;
  durLen: number;
  durExists: boolean;
  /** The op sequence the durable state reflects. */
  durSeq: number;
  /** Writes after `durSeq`, in order. */
  ops: PendingOp[];
  /** Sequence of a remove not yet durable, or 0. */
  removeSeq: number;
}

const EMPTY = new Uint8Array(0);

/** Resolved disk options. */
export interface DiskConfig {
  readonly syncLatency: LatencyDistribution;
  readonly syncErrorRate: number;
  readonly unsyncedOnCrash: "torn" | "lose";
}

/**
 * Validates disk options.
 *
 * @throws {RangeError} on an invalid latency, rate or mode.
 */
export function resolveDisk(options: DiskOptions): DiskConfig {
  const syncErrorRate = options.syncErrorRate ?? 0;
  if (!(syncErrorRate >= 0 && syncErrorRate <= 1)) {
    throw new RangeError(
      `Invalid syncErrorRate ${syncErrorRate}: must be a probability in [0, 1]`,
    );
  }
  const unsyncedOnCrash = options.unsyncedOnCrash ?? "torn";
  if (unsyncedOnCrash !== "torn" && unsyncedOnCrash !== "lose") {
    throw new RangeError(
      `Invalid unsyncedOnCrash ${
        JSON.stringify(unsyncedOnCrash)
      }: use "torn" or "lose"`,
    );
  }
  return {
    syncLatency: checkLatency(
      options.syncLatency ?? { kind: "uniform", min: 0.5, max: 2 },
    ),
    syncErrorRate,
    unsyncedOnCrash,
  };
}

/** One node's disk; survives the node's crashes. */
export class SimDisk implements SimDiskView {
  readonly #files = new Map<string, FileState>();
  readonly #host: DiskHost;
  readonly #config: DiskConfig;
  readonly #random: Prng;
  readonly #counters: DiskCounters;
  readonly #nodeIndex: number;
  readonly #nodeId: string;
  #opSeq = 0;
  #lastSyncTime = 0;

  constructor(
    nodeIndex: number,
    nodeId: string,
    host: DiskHost,
    config: DiskConfig,
    random: Prng,
    counters: DiskCounters,
  ) {
    this.#nodeIndex = nodeIndex;
    this.#nodeId = nodeId;
    this.#host = host;
    this.#config = config;
    this.#random = random;
    this.#counters = counters;
  }

  /** A {@linkcode Storage} bound to one incarnation of the node. */
  storageFor(incarnation: number): Storage {
    return new SimStorage(this, incarnation);
  }

  isCurrent(incarnation: number): boolean {
    return this.#host.incarnationOf(this.#nodeIndex) === incarnation;
  }

  zombie(): void {
    this.#counters.zombieCalls++;
  }

  list(): string[] {
    const names: string[] = [];
    for (const [name, f] of this.#files) if (f.exists) names.push(name);
    return names.sort();
  }

  read(name: string): Uint8Array | undefined {
    const f = this.#files.get(checkFileName(name));
    return f?.exists ? f.buf.slice(0, f.len) : undefined;
  }

  readDurable(name: string): Uint8Array | undefined {
    const f = this.#files.get(checkFileName(name));
    return f?.durExists ? f.durBuf.slice(0, f.durLen) : undefined;
  }

  #file(name: string): FileState {
    let f = this.#files.get(name);
    if (f === undefined) {
      f = {
        buf: EMPTY,
        len: 0,
        exists: false,
        durBuf: EMPTY,
        durLen: 0,
        durExists: false,
        durSeq: 0,
        ops: [],
        removeSeq: 0,
      };
      this.#files.set(name, f);
    }
    return f;
  }

  append(name: string, data: Uint8Array): void {
    checkFileName(name);
    const f = this.#file(name);
    const need = f.len + data.length;
    if (need > f.buf.length) {
      const grown = new Uint8Array(Math.max(need, f.buf.length * 2, 256));
      grown.set(f.buf.subarray(0, f.len));
      f.buf = grown;
    }
    f.buf.set(data, f.len);
    const seq = ++this.#opSeq;
    f.ops.push({ seq, kind: APPEND, data: f.buf.subarray(f.len, need) });
    f.len = need;
    f.exists = true;
    this.#host.trace(T.write, this.#nodeId, name, data.length);
  }

  replace(name: string, data: Uint8Array): void {
    checkFileName(name);
    const f = this.#file(name);
    // A fresh buffer: the old one may still back the durable state.
    f.buf = data.slice();
    f.len = data.length;
    f.exists = true;
    const seq = ++this.#opSeq;
    f.ops.push({ seq, kind: REPLACE, data: f.buf.subarray(0, f.len) });
    this.#host.trace(T.write, this.#nodeId, name, -data.length);
  }

  remove(name: string): void {
    checkFileName(name);
    const f = this.#files.get(name);
    if (f === undefined || !f.exists) return;
    f.buf = EMPTY;
    f.len = 0;
    f.exists = false;
    const seq = ++this.#opSeq;
    f.ops.push({ seq, kind: REMOVE, data: EMPTY });
    f.removeSeq = seq;
    this.#host.trace(T.write, this.#nodeId, name, -1);
  }

  sync(name: string, incarnation: number, done: (error?: Error) => void): void {
    checkFileName(name);
    const f = this.#file(name);
    const callSeq = this.#opSeq;
    const snapBuf = f.buf;
    const snapLen = f.len;
    const snapExists = f.exists;
    const host = this.#host;
    const latency = sampleLatency(this.#config.syncLatency, this.#random);
    const failed = this.#config.syncErrorRate > 0 &&
      this.#random.float() < this.#config.syncErrorRate;
    // Syncs complete in the order they were called.
    const time = Math.max(host.now() + latency, this.#lastSyncTime);
    this.#lastSyncTime = time;
    host.scheduleSync(this.#nodeIndex, incarnation, time, () => {
      if (failed) {
        this.#counters.syncErrors++;
        host.trace(T.syncError, this.#nodeId, name, snapLen);
        done(
          new Error(`Simulated sync failure of "${name}" on ${this.#nodeId}`),
        );
        return;
      }
      this.#counters.syncs++;
      if (callSeq > f.durSeq) {
        f.durBuf = snapBuf;
        f.durLen = snapLen;
        f.durExists = snapExists;
        f.durSeq = callSeq;
        f.ops = f.ops.filter((op) => op.seq > callSeq);
      }
      // Removes of any file before this sync was called are now durable.
      for (const g of this.#files.values()) {
        if (g.removeSeq !== 0 && g.removeSeq <= callSeq) {
          if (g.removeSeq > g.durSeq) {
            g.durBuf = EMPTY;
            g.durLen = 0;
            g.durExists = false;
            g.durSeq = g.removeSeq;
            g.ops = g.ops.filter((op) => op.seq > g.removeSeq);
          }
          g.removeSeq = 0;
        }
      }
      host.trace(T.sync, this.#nodeId, name, snapLen);
      done();
    });
  }

  /**
   * Applies a crash: each file keeps its durable content plus, in `"torn"`
   * mode, a random prefix of its unsynced writes.
   */
  crash(): void {
    const torn = this.#config.unsyncedOnCrash === "torn";
    const random = this.#random;
    const counters = this.#counters;
    for (const [name, f] of [...this.#files]) {
      const ops = f.ops;
      let buf: Uint8Array = f.durBuf.slice(0, f.durLen);
      let exists = f.durExists;
      if (ops.length > 0) {
        const keep = torn ? random.int(ops.length + 1) : 0;
        for (let i = 0; i < keep; i++) {
          const op = ops[i];
          if (op.kind === APPEND) {
            buf = concat(exists ? buf : EMPTY, op.data);
            exists = true;
          } else if (op.kind === REPLACE) {
            buf = op.data.slice();
            exists = true;
          } else {
            buf = EMPTY;
            exists = false;
          }
        }
        counters.unsyncedWritesSurvived += keep;
        counters.unsyncedWritesLost += ops.length - keep;
        const next = ops[keep];
        if (
          torn && next !== undefined && next.kind === APPEND &&
          next.data.length >= 2 && random.float() < 0.5
        ) {
          const part = 1 + random.int(next.data.length - 1);
          buf = concat(exists ? buf : EMPTY, next.data.subarray(0, part));
          exists = true;
          counters.tornWrites++;
          this.#host.trace(T.recover, this.#nodeId, name, part);
        }
      }
      if (!exists) {
        this.#files.delete(name);
        continue;
      }
      f.buf = buf;
      f.len = buf.length;
      f.exists = true;
      f.durBuf = buf;
      f.durLen = buf.length;
      f.durExists = true;
      f.durSeq = this.#opSeq;
      f.ops = [];
      f.removeSeq = 0;
    }
  }

  /** Makes every write durable (a clean stop: the OS keeps its cache). */
  flushAll(): void {
    for (const [name, f] of [...this.#files]) {
      if (!f.exists) {
        this.#files.delete(name);
        continue;
      }
      f.durBuf = f.buf;
      f.durLen = f.len;
      f.durExists = true;
      f.durSeq = this.#opSeq;
      f.ops = [];
      f.removeSeq = 0;
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** The {@linkcode Storage} one incarnation sees; silent once it crashed. */
class SimStorage implements Storage {
  readonly #disk: SimDisk;
  readonly #incarnation: number;

  constructor(disk: SimDisk, incarnation: number) {
    this.#disk = disk;
    this.#incarnation = incarnation;
  }

  #live(): boolean {
    if (this.#disk.isCurrent(this.#incarnation)) return true;
    this.#disk.zombie();
    return false;
  }

  list(): string[] {
    return this.#live() ? this.#disk.list() : [];
  }

  read(name: string): Uint8Array | undefined {
    return this.#live() ? this.#disk.read(name) : undefined;
  }

  append(name: string, data: Uint8Array): void {
    if (this.#live()) this.#disk.append(name, data);
  }

  replace(name: string, data: Uint8Array): void {
    if (this.#live()) this.#disk.replace(name, data);
  }

  remove(name: string): void {
    if (this.#live()) this.#disk.remove(name);
  }

  sync(name: string, done: (error?: Error) => void): void {
    if (this.#live()) this.#disk.sync(name, this.#incarnation, done);
  }
}
