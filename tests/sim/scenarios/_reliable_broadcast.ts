/**
 * A small reliable broadcast written as a protocol core: it sees only a
 * Clock, a Random, a Transport and a Storage (through the simulator's
 * SimNodeEnv), never real I/O.
 *
 * - Senders number their messages 1, 2, 3, ... and keep them; every
 *   retransmission tick they resend, to each peer, up to `window` messages
 *   after the peer's cumulative ack.
 * - Receivers deliver each sender's messages in sequence order (FIFO),
 *   buffering out-of-order ones, append every delivery to a checksummed log
 *   and sync it; they acknowledge cumulatively, and only what is durable.
 * - A restarted receiver rebuilds its delivered sequence numbers from the
 *   log, cutting a torn tail off with an atomic replace.
 *
 * Senders keep their outbox in memory, so they are never crashed.
 *
 * @module
 */

import type {
  PeerId,
  SimNodeEnv,
  SimNodeHandle,
  TimerId,
} from "../../../sim/mod.ts";

/** What the protocol reports to the scenario's checker. */
export interface BroadcastObserver {
  /** `node` delivered message `seq` of `sender`. */
  delivered(
    node: PeerId,
    incarnation: number,
    sender: PeerId,
    seq: number,
    payload: Uint8Array,
  ): void;
  /** `node`'s deliveries of `sender` up to `seq` are synced. */
  durable(node: PeerId, incarnation: number, sender: PeerId, seq: number): void;
  /** `node` started and recovered these delivered sequence numbers from disk. */
  recovered(
    node: PeerId,
    incarnation: number,
    upTo: ReadonlyMap<PeerId, number>,
    tornBytes: number,
  ): void;
  /** `sender` learnt that `receiver` acknowledged up to `seq`. */
  acked(sender: PeerId, receiver: PeerId, seq: number): void;
}

/** Static configuration of one node. */
export interface BroadcastConfig {
  /** Every node of the group, this one included. */
  peers: readonly PeerId[];
  /** The nodes that broadcast. */
  senders: readonly PeerId[];
  /** Retransmission period, in ms. */
  rtoMs: number;
  /** Most messages resent to one peer per tick. */
  window: number;
}

/** Name of the delivery log file. */
export const LOG_FILE = "deliveries.log";

const DATA = 1;
const ACK = 2;
const RECORD_MAGIC = 0xa5;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const CRC_TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0;
}

/** Encodes one log record: magic, sender, seq, payload, CRC-32. */
export function encodeRecord(
  sender: PeerId,
  seq: number,
  payload: Uint8Array,
): Uint8Array {
  const name = encoder.encode(sender);
  const size = 1 + 1 + name.length + 4 + 4 + payload.length + 4;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let o = 0;
  out[o++] = RECORD_MAGIC;
  out[o++] = name.length;
  out.set(name, o);
  o += name.length;
  view.setUint32(o, seq);
  o += 4;
  view.setUint32(o, payload.length);
  o += 4;
  out.set(payload, o);
  o += payload.length;
  view.setUint32(o, crc32(out.subarray(0, o)));
  return out;
}

/** One record read back from the log. */
export interface LogRecord {
  sender: PeerId;
  seq: number;
  payload: Uint8Array;
}

/**
 * Reads the valid prefix of a log: whole records with a good checksum,
 * each sender's sequence numbers consecutive from 1.
 */
export function parseLog(
  bytes: Uint8Array,
): { records: LogRecord[]; validLength: number } {
  const records: LogRecord[] = [];
  const last = new Map<PeerId, number>();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  while (o < bytes.length) {
    if (bytes.length - o < 2 || bytes[o] !== RECORD_MAGIC) break;
    const nameLength = bytes[o + 1];
    const head = 2 + nameLength + 8;
    if (bytes.length - o < head) break;
    const payloadLength = view.getUint32(o + 2 + nameLength + 4);
    const end = o + head + payloadLength + 4;
    if (end > bytes.length) break;
    if (view.getUint32(end - 4) !== crc32(bytes.subarray(o, end - 4))) break;
    const sender = decoder.decode(bytes.subarray(o + 2, o + 2 + nameLength));
    const seq = view.getUint32(o + 2 + nameLength);
    if (seq !== (last.get(sender) ?? 0) + 1) break;
    last.set(sender, seq);
    records.push({
      sender,
      seq,
      payload: bytes.slice(o + head, o + head + payloadLength),
    });
    o = end;
  }
  return { records, validLength: o };
}

function encodeData(seq: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  out[0] = DATA;
  new DataView(out.buffer).setUint32(1, seq);
  out.set(payload, 5);
  return out;
}

function encodeAck(seq: number): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = ACK;
  new DataView(out.buffer).setUint32(1, seq);
  return out;
}

/** One member of the reliable broadcast group. */
export class BroadcastNode implements SimNodeHandle {
  readonly #env: SimNodeEnv;
  readonly #config: BroadcastConfig;
  readonly #observer: BroadcastObserver;
  readonly #senders: ReadonlySet<PeerId>;
  /** Sender side: my messages (seq = index + 1) and each peer's ack. */
  readonly #outbox: Uint8Array[] = [];
  readonly #acked = new Map<PeerId, number>();
  /** Receiver side, per sender. */
  readonly #delivered = new Map<PeerId, number>();
  readonly #durable = new Map<PeerId, number>();
  readonly #early = new Map<PeerId, Map<number, Uint8Array>>();
  #syncing = false;
  #timer: TimerId | undefined;
  #stopped = false;
  /** Frames dropped as malformed or from a node that is not a sender. */
  rejected = 0;

  /**
   * Starts a node: recovers from disk, installs the frame handler and the
   * retransmission timer.
   */
  constructor(
    env: SimNodeEnv,
    config: BroadcastConfig,
    observer: BroadcastObserver,
  ) {
    this.#env = env;
    this.#config = config;
    this.#observer = observer;
    this.#senders = new Set(config.senders);
    for (const s of config.senders) {
      this.#delivered.set(s, 0);
      this.#durable.set(s, 0);
      this.#early.set(s, new Map());
    }
    this.#recover();
    env.transport.setHandler({
      onFrame: (from, payload) => this.#onFrame(from, payload),
    });
    this.#arm();
  }

  /** Messages of `sender` delivered so far. */
  delivered(sender: PeerId): number {
    return this.#delivered.get(sender) ?? 0;
  }

  /** Messages of `sender` delivered and synced. */
  durable(sender: PeerId): number {
    return this.#durable.get(sender) ?? 0;
  }

  /** Broadcasts one message; returns its sequence number. */
  broadcast(payload: Uint8Array): number {
    const id = this.#env.id;
    if (!this.#senders.has(id)) {
      throw new TypeError(`${id} is not a sender`);
    }
    const copy = payload.slice();
    this.#outbox.push(copy);
    const seq = this.#outbox.length;
    this.#deliver(id, seq, copy);
    const frame = encodeData(seq, copy);
    for (const peer of this.#config.peers) {
      if (peer !== id) this.#env.transport.send(peer, frame);
    }
    return seq;
  }

  /** Stops the retransmission timer. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#env.clock.clearTimer(this.#timer);
  }

  #recover(): void {
    const storage = this.#env.storage;
    const bytes = storage.read(LOG_FILE) ?? new Uint8Array(0);
    const { records, validLength } = parseLog(bytes);
    for (const r of records) {
      if (this.#senders.has(r.sender)) this.#delivered.set(r.sender, r.seq);
    }
    for (const [s, seq] of this.#delivered) this.#durable.set(s, seq);
    const torn = bytes.length - validLength;
    if (torn > 0) {
      storage.replace(LOG_FILE, bytes.subarray(0, validLength));
      this.#requestSync();
    }
    this.#observer.recovered(
      this.#env.id,
      this.#env.incarnation,
      new Map(this.#delivered),
      torn,
    );
  }

  #arm(): void {
    const rto = this.#config.rtoMs;
    this.#timer = this.#env.clock.setTimer(
      rto + this.#env.random.int(Math.max(1, rto >> 1)),
      () => this.#tick(),
    );
  }

  #tick(): void {
    if (this.#stopped) return;
    const id = this.#env.id;
    if (this.#outbox.length > 0) {
      for (const peer of this.#config.peers) {
        if (peer === id) continue;
        const acked = this.#acked.get(peer) ?? 0;
        const last = Math.min(this.#outbox.length, acked + this.#config.window);
        for (let seq = acked + 1; seq <= last; seq++) {
          this.#env.transport.send(
            peer,
            encodeData(seq, this.#outbox[seq - 1]),
          );
        }
      }
    }
    this.#arm();
  }

  #onFrame(from: PeerId, frame: Uint8Array): void {
    if (frame.length < 5) {
      this.rejected++;
      return;
    }
    const seq = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
      .getUint32(1);
    if (frame[0] === DATA && this.#senders.has(from) && seq >= 1) {
      this.#onData(from, seq, frame.subarray(5));
    } else if (frame[0] === ACK && frame.length === 5) {
      this.#onAck(from, seq);
    } else {
      this.rejected++;
    }
  }

  #onData(sender: PeerId, seq: number, payload: Uint8Array): void {
    let next = this.#delivered.get(sender)! + 1;
    if (seq < next) {
      this.#sendAck(sender);
      return;
    }
    if (seq >= next + 4 * this.#config.window) return; // too far ahead
    const early = this.#early.get(sender)!;
    if (!early.has(seq)) early.set(seq, payload.slice());
    for (let p = early.get(next); p !== undefined; p = early.get(next)) {
      early.delete(next);
      this.#deliver(sender, next, p);
      next++;
    }
  }

  #onAck(from: PeerId, seq: number): void {
    if (!this.#senders.has(this.#env.id)) {
      this.rejected++;
      return;
    }
    if (seq > (this.#acked.get(from) ?? 0)) this.#acked.set(from, seq);
    this.#observer.acked(this.#env.id, from, seq);
  }

  #deliver(sender: PeerId, seq: number, payload: Uint8Array): void {
    this.#env.storage.append(LOG_FILE, encodeRecord(sender, seq, payload));
    this.#delivered.set(sender, seq);
    this.#observer.delivered(
      this.#env.id,
      this.#env.incarnation,
      sender,
      seq,
      payload,
    );
    this.#requestSync();
  }

  #requestSync(): void {
    if (this.#syncing) return;
    this.#syncing = true;
    const covered = new Map(this.#delivered);
    this.#env.storage.sync(LOG_FILE, (error) => {
      this.#syncing = false;
      if (error === undefined) {
        for (const [sender, seq] of covered) {
          if (seq > this.#durable.get(sender)!) {
            this.#durable.set(sender, seq);
            this.#observer.durable(
              this.#env.id,
              this.#env.incarnation,
              sender,
              seq,
            );
            this.#sendAck(sender);
          }
        }
      }
      let behind = error !== undefined;
      for (const [sender, seq] of this.#delivered) {
        if (seq > this.#durable.get(sender)!) behind = true;
      }
      if (behind) this.#requestSync();
    });
  }

  #sendAck(sender: PeerId): void {
    if (sender === this.#env.id) return;
    this.#env.transport.send(sender, encodeAck(this.#durable.get(sender)!));
  }
}
