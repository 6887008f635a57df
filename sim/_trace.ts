/**
 * The simulator's trace: every event is folded into an incremental 64-bit
 * hash; optionally the last N events are kept as text for debugging.
 *
 * @module
 */

import { hashString, TraceHasher } from "./_hash.ts";

/** Codes of traced events. Their numeric values are part of the hash. */
export const T = {
  send: 1,
  deliver: 2,
  dropLoss: 3,
  dropPartition: 4,
  dropDown: 5,
  dropClosed: 6,
  duplicate: 7,
  timer: 8,
  crash: 9,
  restart: 10,
  stop: 11,
  partition: 12,
  heal: 13,
  sync: 14,
  syncError: 15,
  script: 16,
  note: 17,
  peerUp: 18,
  peerDown: 19,
  write: 20,
  start: 21,
  drain: 22,
  refused: 23,
  recover: 24,
  link: 25,
  delay: 26,
} as const;

/** One of {@linkcode T}'s values. */
export type TraceCode = typeof T[keyof typeof T];

const NAMES: string[] = [];
for (const [name, code] of Object.entries(T)) NAMES[code] = name;

/** Hashes every event and keeps the last `capacity` as text. */
export class TraceRecorder {
  readonly #hasher = new TraceHasher();
  readonly #strings = new Map<string, number>();
  readonly #capacity: number;
  readonly #ring: string[] = [];
  #next = 0;
  #count = 0;

  constructor(capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 0)) {
      throw new RangeError(
        `Invalid traceCapacity ${capacity}: must be a non-negative integer`,
      );
    }
    this.#capacity = capacity;
  }

  /** Number of events recorded (hashed) so far. */
  get count(): number {
    return this.#count;
  }

  #str(text: string): number {
    let h = this.#strings.get(text);
    if (h === undefined) {
      h = hashString(text);
      if (this.#strings.size < 4096) this.#strings.set(text, h);
    }
    return h;
  }

  /**
   * Records one event.
   *
   * @param time Virtual time.
   * @param kind What happened.
   * @param node The node it happened at (or `""`).
   * @param peer The other party, a file name, or `""`.
   * @param n A number describing it (size, sequence), hashed and shown.
   * @param hidden A number that is hashed but not shown (a payload digest).
   * @param text Free text, hashed and shown.
   */
  record(
    time: number,
    kind: TraceCode,
    node: string,
    peer: string,
    n: number,
    hidden: number,
    text: string,
  ): void {
    const h = this.#hasher;
    h.word(kind);
    h.float(time);
    h.word(this.#str(node));
    h.word(this.#str(peer));
    h.float(n);
    h.word(hidden);
    if (text !== "") h.word(this.#str(text));
    this.#count++;
    if (this.#capacity > 0) {
      let line = `${time.toFixed(3)} ${NAMES[kind]} ${node}`;
      if (peer !== "") line += ` ${peer}`;
      line += ` ${n}`;
      if (text !== "") line += ` ${text}`;
      this.#push(line);
    }
  }

  /** Keeps a line (a log line) in the ring without hashing it. */
  keep(line: string): void {
    if (this.#capacity > 0) this.#push(line);
  }

  /** Whether lines are being kept. */
  get keeping(): boolean {
    return this.#capacity > 0;
  }

  #push(line: string): void {
    if (this.#ring.length < this.#capacity) {
      this.#ring.push(line);
    } else {
      this.#ring[this.#next] = line;
      this.#next = (this.#next + 1) % this.#capacity;
    }
  }

  /** The digest of everything recorded so far. */
  hash(): string {
    return this.#hasher.hex();
  }

  /** The kept lines, oldest first. */
  recent(): string[] {
    return [
      ...this.#ring.slice(this.#next),
      ...this.#ring.slice(0, this.#next),
    ];
  }
}
