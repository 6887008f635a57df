/**
 * The TCP transport: one authenticated, coalescing connection per pair of
 * peers, with reconnection, backpressure and hostile-input handling.
 *
 * @module
 */

import { equalInConstantTime, secretKey } from "./_auth.ts";
import {
  decodeAccept,
  decodeHello,
  decodeReject,
  encodeAccept,
  encodeHello,
  encodeReject,
  FRAME_KIND_ACCEPT,
  FRAME_KIND_HELLO,
  FRAME_KIND_PROOF,
  FRAME_KIND_REJECT,
  handshakeProof,
  MAX_HANDSHAKE_PAYLOAD,
  newNonce,
  peerIdBytes,
  type RejectReason,
} from "./_tcp_handshake.ts";
import { BufferPool, SendQueue } from "./_tcp_queue.ts";
import { integerInRange, positiveNumber, splitHostPort } from "./_options.ts";
import {
  checkMaxFrameSize,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  FRAME_HEADER_SIZE,
  FRAME_KIND_DATA,
  FrameDecoder,
  FrameError,
} from "./frame.ts";
import {
  emptyTransportStats,
  type PeerId,
  type Transport,
  type TransportHandler,
  type TransportOptions,
  type TransportStats,
} from "./transport.ts";
import { type Logger, silentLogger } from "../runtime/log.ts";

/** Default bound on the bytes queued for one peer: 8 MiB. */
export const DEFAULT_MAX_QUEUE_BYTES: number = 8 * 1024 * 1024;

const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000;
const DEFAULT_RECONNECT_MIN_MS = 100;
const DEFAULT_RECONNECT_MAX_MS = 5_000;
/** Bytes a peer may send before its handshake is complete. */
const PRE_HANDSHAKE_BYTE_LIMIT = 2 *
  (FRAME_HEADER_SIZE + MAX_HANDSHAKE_PAYLOAD);
/** Inbound connections allowed to be in their handshake at once. */
const MAX_PENDING_HANDSHAKES = 256;
/** A connection's read buffer starts here and doubles while reads fill it. */
const READ_BUFFER_MIN = 8 * 1024;
const READ_BUFFER_MAX = 128 * 1024;
/** A read loop yields to the event loop after this many bytes in a row. */
const READ_YIELD_BYTES = 1024 * 1024;
/** Bounds the set of "already warned" keys used to log a problem once. */
const WARNED_LIMIT = 1024;
/** How many departed dial-in peers are remembered as such. */
const DEPARTED_LIMIT = 4096;

/** Where a transport listens. */
export interface TcpListenOptions {
  /** Interface to bind. Default `"127.0.0.1"`. */
  hostname?: string | undefined;
  /** Port to bind; `0` picks a free one (read it from {@linkcode TcpTransport.listenAddress}). */
  port: number;
}

/** A TCP endpoint address. */
export interface TcpAddress {
  /** Host name or IP address. */
  hostname: string;
  /** Port number. */
  port: number;
}

/**
 * Options for {@linkcode TcpTransport.start}: those of every transport,
 * which read as follows for TCP, plus the TCP-specific ones below.
 *
 * - `id`: at most 255 UTF-8 bytes.
 * - `peers`: each `"host:port"` (`"[::1]:7000"` for IPv6) is dialed at
 *   start and redialed after every loss, so `onPeerUp`/`onPeerDown` track
 *   its reachability.
 * - `secret`: both ends of every connection prove they hold it
 *   (HMAC-SHA-256 over fresh nonces) in its handshake.
 * - `maxQueueBytes`: per peer, headers included, counting the write in
 *   flight. Default 8 MiB ({@linkcode DEFAULT_MAX_QUEUE_BYTES}); at least
 *   `maxFrameSize + 8`.
 * - `acceptUnknownPeers`: accept inbound connections from peers that are
 *   not in `peers` (servers whose clients are not configured). Otherwise
 *   such connections are refused and counted in `unknownPeerRefusals`.
 */
export interface TcpTransportOptions extends TransportOptions {
  /** Where to accept connections. Absent: a dial-only client. */
  listen?: TcpListenOptions | undefined;
  /**
   * Time a connection has to complete its handshake (and a dial to
   * connect) before it is dropped and counted in `misbehavingDisconnects`.
   * Default 5000 ms.
   */
  handshakeTimeoutMs?: number | undefined;
  /** First reconnection delay in ms; it doubles per failed attempt. Default 100. */
  reconnectMinMs?: number | undefined;
  /** Largest reconnection delay in ms. Default 5000. Delays are jittered between half and all of the computed value. */
  reconnectMaxMs?: number | undefined;
}

/**
 * `hello`: acceptor waits for HELLO; `accept`: dialer waits for ACCEPT;
 * `proof`: acceptor waits for PROOF; `open`: data flows; `closing`: a
 * REJECT is being written, then the socket closes; `closed`.
 */
type Timer = ReturnType<typeof setTimeout>;

type ConnState = "hello" | "accept" | "proof" | "open" | "closing" | "closed";

/** One TCP connection, in handshake or open. */
class Connection {
  readonly tcp: Deno.TcpConn;
  readonly role: "dial" | "accept";
  /** `host:port` of the other end, for logs. */
  readonly remote: string;
  /** Host of the other end: the key that rate-limits warnings. */
  readonly remoteHost: string;
  readonly decoder: FrameDecoder;
  state: ConnState;
  peerId: PeerId | undefined;
  peerIdBytes: Uint8Array | undefined;
  nonceA: Uint8Array | undefined = undefined;
  nonceB: Uint8Array | undefined = undefined;
  handshakeBytes = 0;
  timer: Timer | undefined = undefined;
  writing = false;
  control: Uint8Array[] = [];
  closeAfterControl = false;
  onFrame: (kind: number, payload: Uint8Array) => void = () => {};

  constructor(
    tcp: Deno.TcpConn,
    role: "dial" | "accept",
    maxFrameSize: number,
    peerId: PeerId | undefined,
  ) {
    this.tcp = tcp;
    this.role = role;
    this.state = role === "dial" ? "accept" : "hello";
    this.peerId = peerId;
    this.peerIdBytes = peerId === undefined ? undefined : peerIdBytes(peerId);
    this.decoder = new FrameDecoder(maxFrameSize);
    const addr = tcp.remoteAddr;
    this.remote = `${addr.hostname}:${addr.port}`;
    this.remoteHost = addr.hostname;
  }
}

/** An outbound connection attempt that has not completed its handshake. */
interface DialAttempt {
  readonly abort: AbortController;
  cancelled: boolean;
  conn: Connection | undefined;
}

/** What the transport knows about one peer. */
class PeerState {
  readonly id: PeerId;
  address: TcpAddress | undefined;
  readonly queue: SendQueue;
  conn: Connection | undefined = undefined;
  dial: DialAttempt | undefined = undefined;
  timer: Timer | undefined = undefined;
  attempts = 0;
  refused = false;
  dirty = false;

  constructor(id: PeerId, address: TcpAddress | undefined, pool: BufferPool) {
    this.id = id;
    this.address = address;
    this.queue = new SendQueue(pool);
  }
}

/**
 * The default transport: framed payloads over TCP, one connection per pair
 * of peers.
 *
 * **Guarantees.** Frames to one peer arrive in the order they were sent
 * and never twice (TCP is FIFO per connection, and there is one connection
 * per pair of peers). When a connection breaks, frames that were being
 * written at that moment may be lost, leaving a gap; frames still queued
 * are kept (up to `maxQueueBytes`) and written, in order, on the next
 * connection. Layers above must detect gaps (sequence numbers) and
 * retransmit.
 *
 * **Connections.** Peers given an address (`peers`,
 * {@linkcode TcpTransport.addPeer}) are dialed eagerly at start and
 * redialed with exponential backoff and jitter after every loss or failed
 * attempt, so `onPeerUp`/`onPeerDown` follow their reachability. A peer
 * that only ever dialed in (no address) is reachable while its connection
 * lasts; afterwards frames to it are dropped and counted in
 * `undeliverableDropped`. When both sides dial at once, the connection
 * dialed by the smaller peer id wins. A new authenticated inbound
 * connection from a peer replaces its established one (the peer
 * restarted); this is reported as `onPeerDown` then `onPeerUp`.
 *
 * **Handshake.** HELLO (dialer id, target id, nonce) → ACCEPT (acceptor
 * nonce and its proof of the secret) or REJECT → PROOF (dialer's proof). No
 * data frame is written on a connection before its handshake is complete
 * on that side. Proofs are HMAC-SHA-256 under the cluster secret over both
 * nonces and both ids, so they cannot be replayed.
 *
 * **Writes** are copied into 64 KiB buffers, flushed when a buffer is full
 * or at the end of the current task, with at most one write in flight per
 * connection and `TCP_NODELAY` set. **Reads** are decoded in place from the
 * read buffer; a connection yields to the event loop after each MiB it
 * reads, so a flooding peer cannot starve the others.
 *
 * **Hostile input** never throws out of the transport: malformed frames
 * (`malformedDropped`), unknown peers (`unknownPeerRefusals`), wrong or
 * missing proofs (`authFailures`), silence, frames out of turn or more than
 * about 1 KiB before the handshake completes, or more than 256 handshakes
 * at once (`misbehavingDisconnects`) close the connection and are counted
 * in {@linkcode TcpTransport.stats}; each kind of problem is logged once
 * per peer or host at `warn`, then at `debug`. Exceptions thrown by the
 * handler are caught and logged at `error`.
 *
 * @example Two transports exchange a frame
 * ```ts
 * import { TcpTransport } from "@cohort/cohort/transport";
 * import assert from "node:assert/strict";
 *
 * const server = await TcpTransport.start({
 *   id: "server",
 *   listen: { port: 0 },
 *   acceptUnknownPeers: true,
 * });
 * const { port } = server.listenAddress!;
 * const client = await TcpTransport.start({
 *   id: "client",
 *   peers: { server: `127.0.0.1:${port}` },
 * });
 *
 * const received = Promise.withResolvers<string>();
 * server.setHandler({
 *   onFrame: (from, payload) =>
 *     received.resolve(`${from}: ${new TextDecoder().decode(payload)}`),
 * });
 * client.send("server", new TextEncoder().encode("hello"));
 * assert.equal(await received.promise, "client: hello");
 *
 * await client.close();
 * await server.close();
 * ```
 */
export class TcpTransport implements Transport {
  /** This endpoint's peer id. */
  readonly id: PeerId;
  /** The largest payload, in bytes, that {@linkcode TcpTransport.send} accepts. */
  readonly maxFrameSize: number;

  readonly #idBytes: Uint8Array;
  readonly #key: Uint8Array | undefined;
  readonly #maxQueueBytes: number;
  readonly #acceptUnknown: boolean;
  readonly #handshakeTimeoutMs: number;
  readonly #reconnectMinMs: number;
  readonly #reconnectMaxMs: number;
  readonly #log: Logger;
  readonly #stats: TransportStats = emptyTransportStats();
  readonly #pool = new BufferPool();
  readonly #peers = new Map<PeerId, PeerState>();
  readonly #conns = new Set<Connection>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #pauses = new Set<{ timer: Timer; resolve: () => void }>();
  readonly #warned = new Set<string>();
  /** Ids of dial-in peers whose connection is gone, oldest first (bounded). */
  readonly #departed = new Set<PeerId>();
  #listener: Deno.TcpListener | undefined = undefined;
  #listenAddress: TcpAddress | undefined = undefined;
  #handler: TransportHandler | undefined = undefined;
  #dirty: PeerState[] = [];
  /** The peer of the last `send`, while it is in `#peers`. */
  #lastPeer: PeerState | undefined = undefined;
  #flushScheduled = false;
  #closed = false;
  #closing: Promise<void> | undefined = undefined;

  private constructor(options: TcpTransportOptions) {
    this.#idBytes = peerIdBytes(options.id);
    this.id = options.id;
    this.maxFrameSize = checkMaxFrameSize(
      options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
    );
    this.#maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    const minQueue = this.maxFrameSize + FRAME_HEADER_SIZE;
    if (
      !Number.isSafeInteger(this.#maxQueueBytes) ||
      this.#maxQueueBytes < minQueue
    ) {
      throw new RangeError(
        `Invalid maxQueueBytes ${this.#maxQueueBytes}: must be an integer of at least maxFrameSize + 8 = ${minQueue}`,
      );
    }
    this.#key = options.secret === undefined
      ? undefined
      : secretKey(options.secret);
    this.#acceptUnknown = options.acceptUnknownPeers ?? false;
    this.#handshakeTimeoutMs = positiveNumber(
      "handshakeTimeoutMs",
      options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
    );
    this.#reconnectMinMs = positiveNumber(
      "reconnectMinMs",
      options.reconnectMinMs ?? DEFAULT_RECONNECT_MIN_MS,
    );
    this.#reconnectMaxMs = positiveNumber(
      "reconnectMaxMs",
      options.reconnectMaxMs ??
        Math.max(DEFAULT_RECONNECT_MAX_MS, this.#reconnectMinMs),
    );
    if (this.#reconnectMaxMs < this.#reconnectMinMs) {
      throw new RangeError(
        `Invalid reconnectMaxMs ${this.#reconnectMaxMs}: must be at least reconnectMinMs ${this.#reconnectMinMs}`,
      );
    }
    this.#log = options.logger ?? silentLogger;
    for (const [id, address] of Object.entries(options.peers ?? {})) {
      peerIdBytes(id);
      if (id === this.id) {
        throw new TypeError(
          `Invalid peers: "${id}" is this transport's own id`,
        );
      }
      this.#peers.set(
        id,
        new PeerState(id, parseAddress(id, address), this.#pool),
      );
    }
  }

  /**
   * Starts a transport: binds the listener (if `listen` is given) and
   * begins dialing the configured peers.
   *
   * @example Start a server on a free port
   * ```ts
   * import { TcpTransport } from "@cohort/cohort/transport";
   * import assert from "node:assert/strict";
   *
   * const t = await TcpTransport.start({ id: "n1", listen: { port: 0 } });
   * assert.ok(t.listenAddress!.port > 0);
   * await t.close();
   * ```
   *
   * @param options Identity, addresses, limits and secret.
   * @returns The running transport.
   * @throws {TypeError} if the id, a peer id or a peer address is invalid,
   * or the secret is empty.
   * @throws {RangeError} if a size or delay option is out of range.
   * @throws {Deno.errors.AddrInUse} if the listen port is taken.
   */
  static start(options: TcpTransportOptions): Promise<TcpTransport> {
    try {
      const transport = new TcpTransport(options);
      transport.#begin(options.listen);
      return Promise.resolve(transport);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The address the listener is bound to (the real port when `0` was asked), or `undefined` for a dial-only transport. */
  get listenAddress(): TcpAddress | undefined {
    return this.#listenAddress === undefined
      ? undefined
      : { ...this.#listenAddress };
  }

  /**
   * Installs the handler that receives frames and connection events.
   *
   * @param handler The callbacks; exceptions they throw are logged, not propagated.
   */
  setHandler(handler: TransportHandler): void {
    this.#handler = handler;
  }

  /**
   * Adds a peer or changes its address, and dials it if it is not connected.
   * A changed address is used from the next connection on.
   *
   * @example Add a peer after start
   * ```ts
   * import { TcpTransport } from "@cohort/cohort/transport";
   * import assert from "node:assert/strict";
   *
   * const t = await TcpTransport.start({ id: "n1" });
   * t.addPeer("n2", "127.0.0.1:7002");
   * assert.ok(t.send("n2", new Uint8Array(1)));
   * await t.close();
   * ```
   *
   * @param id The peer's id.
   * @param address Its `"host:port"`.
   * @throws {TypeError} if the id or the address is invalid, or the id is this transport's own.
   */
  addPeer(id: PeerId, address: string): void {
    peerIdBytes(id);
    if (id === this.id) {
      throw new TypeError(
        `Cannot add peer "${id}": it is this transport's own id`,
      );
    }
    const parsed = parseAddress(id, address);
    if (this.#closed) return;
    const peer = this.#peers.get(id);
    if (peer === undefined) {
      const created = new PeerState(id, parsed, this.#pool);
      this.#peers.set(id, created);
      this.#departed.delete(id);
      this.#ensureConnecting(created);
    } else {
      peer.address = parsed;
      this.#ensureConnecting(peer);
    }
  }

  /**
   * Forgets a peer: closes its connection (reported with `onPeerDown`),
   * drops its queued frames (counted in `undeliverableDropped`) and stops
   * dialing it. Later connections from it are treated as from an unknown
   * peer. Does nothing for a peer that is not known.
   *
   * @example Remove a peer
   * ```ts
   * import { TcpTransport } from "@cohort/cohort/transport";
   * import assert from "node:assert/strict";
   *
   * const t = await TcpTransport.start({ id: "n1", peers: { n2: "127.0.0.1:1" } });
   * t.removePeer("n2");
   * assert.throws(() => t.send("n2", new Uint8Array(1)), TypeError);
   * await t.close();
   * ```
   *
   * @param id The peer's id.
   */
  removePeer(id: PeerId): void {
    const peer = this.#peers.get(id);
    if (peer === undefined) return;
    this.#peers.delete(id);
    if (this.#lastPeer === peer) this.#lastPeer = undefined;
    clearTimeout(peer.timer);
    peer.timer = undefined;
    this.#cancelDial(peer);
    for (const c of this.#conns) {
      if (c.peerId === id) this.#closeConnection(c);
    }
    const conn = peer.conn;
    if (conn !== undefined) {
      peer.conn = undefined;
      this.#closeConnection(conn);
      this.#emitDown(id);
    }
    this.#stats.undeliverableDropped += peer.queue.clear();
  }

  /**
   * Bytes queued for a peer (headers included, counting the write in
   * flight); never more than `maxQueueBytes`.
   *
   * @param id The peer's id.
   * @returns The queued bytes, 0 for an unknown peer.
   */
  queuedBytes(id: PeerId): number {
    return this.#peers.get(id)?.queue.bytes ?? 0;
  }

  /**
   * Queues one frame for `to`; it is written at the end of the current task
   * (or earlier once 64 KiB are queued). The payload is copied: the caller
   * may reuse it at once.
   *
   * @example Send with backpressure
   * ```ts
   * import { TcpTransport } from "@cohort/cohort/transport";
   * import assert from "node:assert/strict";
   *
   * const t = await TcpTransport.start({ id: "a", peers: { b: "127.0.0.1:1" } });
   * assert.ok(t.send("b", new Uint8Array(100))); // queued until b is up
   * assert.equal(t.queuedBytes("b"), 108);
   * await t.close();
   * ```
   *
   * @param to The destination peer.
   * @param payload The payload (with `prefix`, at most `maxFrameSize` bytes).
   * @param prefix Bytes that go in front of `payload` in the same frame,
   * without a copy of their own (a multiplexer's tag, for one).
   * @returns `true` if the frame was queued (or dropped because `to` is
   * unreachable: a peer without an address whose connection is gone, or
   * after {@linkcode close}); `false` if the queue to `to` is full: wait for
   * `onDrain`.
   * @throws {RangeError} if the payload is larger than `maxFrameSize`.
   * @throws {TypeError} if `to` is not known (no address, never connected).
   */
  send(to: PeerId, payload: Uint8Array, prefix?: Uint8Array): boolean {
    const length = payload.length + (prefix?.length ?? 0);
    if (length > this.maxFrameSize) {
      this.#stats.oversizeRefusals++;
      throw new RangeError(
        `Cannot send a frame of ${length} bytes to "${to}": the maximum is ${this.maxFrameSize}`,
      );
    }
    // Senders often address one peer many times in a row: skip the lookup.
    let peer = this.#lastPeer;
    if (peer === undefined || peer.id !== to) {
      peer = this.#peers.get(to);
      if (peer === undefined) {
        if (this.#departed.has(to)) {
          this.#stats.undeliverableDropped++;
          return true;
        }
        throw new TypeError(
          `Cannot send to unknown peer "${to}": it has no address and never connected`,
        );
      }
      this.#lastPeer = peer;
    }
    if (
      this.#closed || (peer.address === undefined && peer.conn === undefined)
    ) {
      this.#stats.undeliverableDropped++;
      return true;
    }
    const queue = peer.queue;
    if (queue.bytes + FRAME_HEADER_SIZE + length > this.#maxQueueBytes) {
      this.#stats.backpressureRefusals++;
      peer.refused = true;
      return false;
    }
    const sealed = queue.push(FRAME_KIND_DATA, payload, prefix);
    this.#stats.framesSent++;
    this.#stats.bytesSent += length;
    const conn = peer.conn;
    if (conn === undefined) {
      this.#ensureConnecting(peer);
    } else if (!conn.writing) {
      if (sealed) {
        this.#kick(conn);
      } else if (!peer.dirty) {
        peer.dirty = true;
        this.#dirty.push(peer);
        if (!this.#flushScheduled) {
          this.#flushScheduled = true;
          queueMicrotask(this.#flushDirty);
        }
      }
    }
    return true;
  }

  /**
   * Lists the peers this transport holds state for: every peer with an
   * address, and every dial-in peer while its connection is open.
   *
   * @returns The peer ids, sorted.
   */
  peers(): PeerId[] {
    return [...this.#peers.keys()].sort();
  }

  /**
   * Returns a snapshot of the counters.
   *
   * @returns A copy of the counters.
   */
  stats(): TransportStats {
    return { ...this.#stats };
  }

  /**
   * Closes the listener and every connection and cancels every timer;
   * queued frames are dropped and no handler callback is called any more.
   * Resolves once every socket operation the transport started has
   * finished. Calling it again returns the same promise.
   *
   * @returns A promise that resolves when the transport is fully closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  // ---------------------------------------------------------------- startup

  #begin(listen: TcpListenOptions | undefined): void {
    if (listen !== undefined) {
      const hostname = listen.hostname ?? "127.0.0.1";
      const port = integerInRange("listen port", listen.port, 0, 65535);
      const listener = Deno.listen({ hostname, port });
      this.#listener = listener;
      const addr = listener.addr;
      this.#listenAddress = { hostname: addr.hostname, port: addr.port };
      this.#log.log("info", "tcp_listening", {
        id: this.id,
        hostname: addr.hostname,
        port: addr.port,
      });
      this.#track(this.#acceptLoop(listener));
    }
    for (const peer of this.#peers.values()) this.#ensureConnecting(peer);
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    try {
      this.#listener?.close();
    } catch { /* already closed */ }
    for (const peer of this.#peers.values()) {
      clearTimeout(peer.timer);
      peer.timer = undefined;
      this.#cancelDial(peer);
      peer.queue.clear();
    }
    for (const c of [...this.#conns]) this.#closeConnection(c);
    for (const pause of this.#pauses) {
      clearTimeout(pause.timer);
      pause.resolve();
    }
    this.#pauses.clear();
    while (this.#tasks.size > 0) {
      await Promise.allSettled([...this.#tasks]);
    }
    this.#log.log("info", "tcp_closed", { id: this.id });
  }

  // --------------------------------------------------------------- dialing

  /** Dials `peer` now unless it is connected, being connected, or waiting for a retry. */
  #ensureConnecting(peer: PeerState): void {
    if (
      this.#closed || peer.address === undefined || peer.conn !== undefined ||
      peer.dial !== undefined || peer.timer !== undefined ||
      this.#peers.get(peer.id) !== peer || this.#inboundPending(peer.id)
    ) {
      return;
    }
    const attempt: DialAttempt = {
      abort: new AbortController(),
      cancelled: false,
      conn: undefined,
    };
    peer.dial = attempt;
    this.#track(this.#runDial(peer, peer.address, attempt));
  }

  /** Schedules the next dial of `peer` after a backoff delay. */
  #scheduleReconnect(peer: PeerState): void {
    if (
      this.#closed || peer.address === undefined || peer.conn !== undefined ||
      peer.dial !== undefined || peer.timer !== undefined ||
      this.#peers.get(peer.id) !== peer
    ) {
      return;
    }
    const base = Math.min(
      this.#reconnectMaxMs,
      this.#reconnectMinMs * 2 ** Math.min(peer.attempts, 30),
    );
    peer.attempts++;
    const delay = base / 2 + Math.random() * base / 2;
    peer.timer = setTimeout(() => {
      peer.timer = undefined;
      this.#ensureConnecting(peer);
    }, delay);
  }

  #cancelDial(peer: PeerState): void {
    const attempt = peer.dial;
    if (attempt === undefined) return;
    peer.dial = undefined;
    attempt.cancelled = true;
    if (attempt.conn !== undefined) {
      this.#closeConnection(attempt.conn);
    } else {
      attempt.abort.abort();
    }
  }

  async #runDial(
    peer: PeerState,
    address: TcpAddress,
    attempt: DialAttempt,
  ): Promise<void> {
    let tcp: Deno.TcpConn;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      attempt.abort.abort();
    }, this.#handshakeTimeoutMs);
    try {
      tcp = await Deno.connect({
        hostname: address.hostname,
        port: address.port,
        signal: attempt.abort.signal,
      });
    } catch (error) {
      if (peer.dial === attempt) peer.dial = undefined;
      if (!attempt.cancelled) {
        this.#log.log("debug", "tcp_dial_failed", {
          id: this.id,
          peer: peer.id,
          address: `${address.hostname}:${address.port}`,
          error: timedOut ? "timed out" : String(error),
        });
        this.#scheduleReconnect(peer);
      }
      return;
    } finally {
      clearTimeout(timer);
    }
    if (attempt.cancelled || this.#closed || peer.dial !== attempt) {
      closeQuietly(tcp);
      return;
    }
    const c = this.#openConnection(tcp, "dial", peer.id);
    attempt.conn = c;
    c.nonceA = newNonce();
    this.#writeControl(
      c,
      FRAME_KIND_HELLO,
      encodeHello(c.nonceA, this.#idBytes, c.peerIdBytes!),
    );
    await this.#readLoop(c);
  }

  /** Whether an inbound connection from `id` is in its handshake. */
  #inboundPending(id: PeerId): boolean {
    for (const c of this.#conns) {
      if (c.role === "accept" && c.state === "proof" && c.peerId === id) {
        return true;
      }
    }
    return false;
  }

  // -------------------------------------------------------------- accepting

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    while (!this.#closed) {
      let tcp: Deno.TcpConn;
      try {
        tcp = await listener.accept();
      } catch (error) {
        if (this.#closed) return;
        this.#log.log("error", "tcp_accept_failed", {
          id: this.id,
          error: String(error),
        });
        await this.#pause(100);
        continue;
      }
      if (this.#closed) {
        closeQuietly(tcp);
        return;
      }
      let pending = 0;
      for (const c of this.#conns) {
        if (c.role === "accept" && c.state !== "open") pending++;
      }
      if (pending >= MAX_PENDING_HANDSHAKES) {
        this.#stats.misbehavingDisconnects++;
        this.#warnOnce("pending", "tcp_too_many_handshakes", {
          limit: MAX_PENDING_HANDSHAKES,
        });
        closeQuietly(tcp);
        continue;
      }
      let c: Connection;
      try {
        c = this.#openConnection(tcp, "accept", undefined);
      } catch {
        closeQuietly(tcp);
        continue;
      }
      this.#track(this.#readLoop(c));
    }
  }

  #openConnection(
    tcp: Deno.TcpConn,
    role: "dial" | "accept",
    peerId: PeerId | undefined,
  ): Connection {
    try {
      tcp.setNoDelay(true);
    } catch { /* not fatal */ }
    const c = new Connection(tcp, role, this.maxFrameSize, peerId);
    c.onFrame = (kind, payload) => this.#onFrame(c, kind, payload);
    c.timer = setTimeout(() => {
      c.timer = undefined;
      if (c.state === "closed" || c.state === "open") return;
      if (c.state === "closing") {
        // The peer does not read our REJECT.
        this.#closeConnection(c);
        return;
      }
      this.#stats.misbehavingDisconnects++;
      this.#warnOnce(`timeout:${c.remoteHost}`, "tcp_handshake_timeout", {
        remote: c.remote,
        peer: c.peerId,
        timeoutMs: this.#handshakeTimeoutMs,
      });
      this.#closeConnection(c);
    }, this.#handshakeTimeoutMs);
    this.#conns.add(c);
    return c;
  }

  // ---------------------------------------------------------------- reading

  async #readLoop(c: Connection): Promise<void> {
    // Idle connections hold a small buffer; busy ones grow it.
    let buf = new Uint8Array(READ_BUFFER_MIN);
    let sinceYield = 0;
    try {
      while (c.state !== "closed") {
        const n = await c.tcp.read(buf);
        if (isClosed(c)) break;
        if (n === null) {
          if (c.decoder.buffered > 0) {
            this.#malformed(
              c,
              `connection closed inside a frame (${c.decoder.buffered} bytes held)`,
            );
          }
          break;
        }
        try {
          c.decoder.push(buf.subarray(0, n), c.onFrame);
        } catch (error) {
          this.#malformed(
            c,
            error instanceof FrameError ? error.message : String(error),
          );
          break;
        }
        if (
          c.state !== "open" && !isClosed(c) && c.state !== "closing" &&
          c.handshakeBytes + c.decoder.buffered > PRE_HANDSHAKE_BYTE_LIMIT
        ) {
          this.#misbehaving(
            c,
            `sent ${
              c.handshakeBytes + c.decoder.buffered
            } bytes before completing the handshake`,
          );
          break;
        }
        if (n === buf.length && buf.length < READ_BUFFER_MAX) {
          buf = new Uint8Array(buf.length * 2);
        }
        sinceYield += n;
        if (sinceYield >= READ_YIELD_BYTES) {
          // Let other connections' completed reads run (a flood must not
          // starve them); setImmediate costs microseconds, setTimeout(0) ms.
          sinceYield = 0;
          await turnEventLoop();
        }
      }
    } catch (error) {
      if (c.state !== "closed") {
        this.#log.log("debug", "tcp_read_failed", {
          id: this.id,
          peer: c.peerId,
          remote: c.remote,
          error: String(error),
        });
      }
    } finally {
      this.#closeConnection(c);
    }
  }

  #onFrame(c: Connection, kind: number, payload: Uint8Array): void {
    const state = c.state;
    if (state === "open") {
      if (kind === FRAME_KIND_DATA) {
        const handler = this.#handler;
        if (handler === undefined) return;
        this.#stats.framesReceived++;
        this.#stats.bytesReceived += payload.length;
        try {
          handler.onFrame(c.peerId!, payload);
        } catch (error) {
          this.#handlerFailed("onFrame", error);
        }
      } else if (kind === FRAME_KIND_REJECT && c.role === "dial") {
        // The acceptor refused our proof after we considered the handshake done.
        this.#refused(c, decodeReject(payload));
      } else {
        this.#malformed(c, `unexpected frame kind ${kind} after the handshake`);
      }
      return;
    }
    if (state === "closed" || state === "closing") return;
    c.handshakeBytes += FRAME_HEADER_SIZE + payload.length;
    if (state === "hello") {
      if (kind !== FRAME_KIND_HELLO) {
        this.#misbehaving(c, `sent frame kind ${kind} before HELLO`);
      } else {
        this.#onHello(c, payload);
      }
    } else if (state === "accept") {
      if (kind === FRAME_KIND_ACCEPT) this.#onAccept(c, payload);
      else if (kind === FRAME_KIND_REJECT) {
        this.#refused(c, decodeReject(payload));
      } else this.#misbehaving(c, `sent frame kind ${kind} instead of ACCEPT`);
    } else if (state === "proof") {
      if (kind === FRAME_KIND_PROOF) this.#onProof(c, payload);
      else if (kind === FRAME_KIND_REJECT) {
        this.#refused(c, decodeReject(payload));
      } else this.#misbehaving(c, `sent frame kind ${kind} instead of PROOF`);
    }
  }

  /** Acceptor: the dialer introduced itself. */
  #onHello(c: Connection, payload: Uint8Array): void {
    const hello = decodeHello(payload);
    if (hello === undefined) {
      this.#malformed(c, "invalid HELLO payload");
      return;
    }
    const { from, to } = hello;
    if (to !== this.id) {
      this.#warnOnce(`target:${from}`, "tcp_wrong_target", {
        remote: c.remote,
        peer: from,
        target: to,
      });
      this.#reject(c, "wrong-target");
      return;
    }
    if (from === this.id) {
      this.#reject(c, "bad-hello");
      return;
    }
    const peer = this.#peers.get(from);
    if (peer === undefined && !this.#acceptUnknown) {
      this.#stats.unknownPeerRefusals++;
      this.#warnOnce(`unknown:${from}`, "tcp_unknown_peer", {
        remote: c.remote,
        peer: from,
      });
      this.#reject(c, "unknown-peer");
      return;
    }
    if (peer?.dial !== undefined) {
      // Both sides are dialing. If our HELLO is out, the connection dialed
      // by the smaller id wins (the peer applies the same rule to ours);
      // if our dial has not connected yet, nothing was sent: drop it.
      if (peer.dial.conn !== undefined && from > this.id) {
        this.#reject(c, "duplicate");
        return;
      }
      this.#cancelDial(peer);
    }
    c.peerId = from;
    c.peerIdBytes = peerIdBytes(from);
    c.nonceA = hello.nonce;
    c.nonceB = newNonce();
    c.state = "proof";
    const proof = handshakeProof(
      this.#key,
      "accept",
      c.nonceA,
      c.nonceB,
      c.peerIdBytes,
      this.#idBytes,
    );
    this.#writeControl(c, FRAME_KIND_ACCEPT, encodeAccept(c.nonceB, proof));
  }

  /** Dialer: the acceptor answered and proved the secret. */
  #onAccept(c: Connection, payload: Uint8Array): void {
    const accept = decodeAccept(payload);
    if (accept === undefined) {
      this.#malformed(c, "invalid ACCEPT payload");
      return;
    }
    c.nonceB = accept.nonce;
    const expected = handshakeProof(
      this.#key,
      "accept",
      c.nonceA!,
      c.nonceB,
      this.#idBytes,
      c.peerIdBytes!,
    );
    if (!equalInConstantTime(accept.proof, expected)) {
      this.#authFailed(c, accept.proof.length, expected.length);
      return;
    }
    const proof = handshakeProof(
      this.#key,
      "dial",
      c.nonceA!,
      c.nonceB,
      this.#idBytes,
      c.peerIdBytes!,
    );
    this.#writeControl(c, FRAME_KIND_PROOF, proof);
    this.#establish(c);
  }

  /** Acceptor: the dialer proved the secret. */
  #onProof(c: Connection, payload: Uint8Array): void {
    const expected = handshakeProof(
      this.#key,
      "dial",
      c.nonceA!,
      c.nonceB!,
      c.peerIdBytes!,
      this.#idBytes,
    );
    if (!equalInConstantTime(payload, expected)) {
      this.#authFailed(c, payload.length, expected.length);
      return;
    }
    this.#establish(c);
  }

  #establish(c: Connection): void {
    clearTimeout(c.timer);
    c.timer = undefined;
    const id = c.peerId!;
    let peer = this.#peers.get(id);
    if (peer === undefined) {
      if (c.role === "dial" || !this.#acceptUnknown) {
        // Removed while the handshake was running.
        this.#closeConnection(c);
        return;
      }
      peer = new PeerState(id, undefined, this.#pool);
      this.#peers.set(id, peer);
      this.#departed.delete(id);
    }
    c.state = "open";
    if (peer.dial !== undefined) {
      if (peer.dial.conn === c) peer.dial = undefined;
      else this.#cancelDial(peer);
    }
    clearTimeout(peer.timer);
    peer.timer = undefined;
    peer.attempts = 0;
    const old = peer.conn;
    peer.conn = c;
    this.#stats.connectionsOpened++;
    this.#warned.delete(`auth:${id}`);
    this.#warned.delete(`refused:${id}`);
    if (old !== undefined) {
      this.#closeConnection(old);
      this.#log.log("info", "tcp_connection_replaced", {
        id: this.id,
        peer: id,
        remote: c.remote,
      });
      this.#emitDown(id);
    }
    this.#log.log("info", "tcp_peer_up", {
      id: this.id,
      peer: id,
      remote: c.remote,
      role: c.role,
    });
    const handler = this.#handler;
    if (handler?.onPeerUp !== undefined && !this.#closed) {
      try {
        handler.onPeerUp(id);
      } catch (error) {
        this.#handlerFailed("onPeerUp", error);
      }
    }
    if (peer.conn === c) this.#kick(c);
  }

  // --------------------------------------------------------- handshake ends

  /** Writes a REJECT, then closes; frames that still arrive are ignored. */
  #reject(c: Connection, reason: RejectReason): void {
    c.state = "closing";
    c.closeAfterControl = true;
    this.#writeControl(c, FRAME_KIND_REJECT, encodeReject(reason));
  }

  #refused(c: Connection, reason: RejectReason | undefined): void {
    if (reason === "auth") {
      this.#stats.authFailures++;
      this.#warnOnce(`auth:${c.peerId}`, "tcp_auth_failed", {
        id: this.id,
        peer: c.peerId,
        remote: c.remote,
        detail: "the peer refused our proof of the cluster secret",
      });
    } else if (reason !== "duplicate") {
      this.#warnOnce(`refused:${c.peerId}`, "tcp_refused", {
        id: this.id,
        peer: c.peerId,
        remote: c.remote,
        reason: reason ?? "unknown",
      });
    }
    this.#closeConnection(c);
  }

  #authFailed(c: Connection, got: number, expected: number): void {
    this.#stats.authFailures++;
    this.#warnOnce(`auth:${c.peerId}`, "tcp_auth_failed", {
      id: this.id,
      peer: c.peerId,
      remote: c.remote,
      detail: got === expected
        ? "wrong proof of the cluster secret"
        : expected === 0
        ? "the peer uses a cluster secret and this transport has none"
        : "the peer has no cluster secret",
    });
    this.#reject(c, "auth");
  }

  #malformed(c: Connection, detail: string): void {
    if (c.state === "closed") return;
    this.#stats.malformedDropped++;
    this.#warnOnce(`malformed:${c.remoteHost}`, "tcp_malformed", {
      id: this.id,
      peer: c.peerId,
      remote: c.remote,
      detail,
    });
    this.#closeConnection(c);
  }

  #misbehaving(c: Connection, detail: string): void {
    if (c.state === "closed") return;
    this.#stats.misbehavingDisconnects++;
    this.#warnOnce(`misbehaving:${c.remoteHost}`, "tcp_misbehaving", {
      id: this.id,
      peer: c.peerId,
      remote: c.remote,
      detail,
    });
    this.#closeConnection(c);
  }

  #closeConnection(c: Connection): void {
    if (c.state === "closed") return;
    const wasOpen = c.state === "open";
    c.state = "closed";
    clearTimeout(c.timer);
    c.timer = undefined;
    closeQuietly(c.tcp);
    this.#conns.delete(c);
    if (wasOpen) this.#stats.connectionsClosed++;
    if (this.#closed || c.peerId === undefined) return;
    const peer = this.#peers.get(c.peerId);
    if (peer === undefined) return;
    if (peer.dial !== undefined && peer.dial.conn === c) peer.dial = undefined;
    if (peer.conn === c) {
      peer.conn = undefined;
      this.#log.log("info", "tcp_peer_down", {
        id: this.id,
        peer: peer.id,
        remote: c.remote,
      });
      if (peer.address === undefined) {
        this.#stats.undeliverableDropped += peer.queue.clear();
        this.#checkDrain(peer);
        this.#forgetDialInPeer(peer);
      }
      this.#emitDown(peer.id);
    }
    if (peer.conn === undefined) this.#scheduleReconnect(peer);
  }

  /**
   * Drops the record of a peer that only ever dialed in and is gone, so that
   * a server with many short-lived clients holds memory for the connected
   * ones only. Its id is remembered in a bounded set, so that frames still
   * sent to it are counted as undeliverable rather than refused as unknown.
   */
  #forgetDialInPeer(peer: PeerState): void {
    if (peer.dial !== undefined || peer.timer !== undefined) return;
    this.#peers.delete(peer.id);
    if (this.#lastPeer === peer) this.#lastPeer = undefined;
    if (this.#departed.size >= DEPARTED_LIMIT) {
      this.#departed.delete(this.#departed.values().next().value!);
    }
    this.#departed.add(peer.id);
  }

  // ---------------------------------------------------------------- writing

  #writeControl(c: Connection, kind: number, payload: Uint8Array): void {
    c.control.push(encodeFrame(kind, payload));
    this.#kick(c);
  }

  readonly #flushDirty = (): void => {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const peer of dirty) {
      peer.dirty = false;
      const conn = peer.conn;
      if (conn !== undefined && !conn.writing) this.#kick(conn);
    }
  };

  /** Starts the write loop of `c` if it is idle and has something to write. */
  #kick(c: Connection): void {
    if (c.writing || c.state === "closed") return;
    if (c.control.length === 0) {
      if (c.state !== "open") return;
      const peer = this.#peers.get(c.peerId!);
      if (peer === undefined || peer.conn !== c || peer.queue.isEmpty) return;
    }
    c.writing = true;
    this.#track(this.#pump(c));
  }

  async #pump(c: Connection): Promise<void> {
    try {
      while (c.state !== "closed") {
        const control = c.control.shift();
        if (control !== undefined) {
          await writeAll(c.tcp, control);
          if (c.control.length === 0 && c.closeAfterControl) {
            this.#closeConnection(c);
            return;
          }
          continue;
        }
        if (c.state !== "open") return;
        const peer = this.#peers.get(c.peerId!);
        if (peer === undefined || peer.conn !== c) return;
        const chunk = peer.queue.take();
        if (chunk === undefined) return;
        try {
          await writeAll(c.tcp, chunk.buf.subarray(0, chunk.len));
        } finally {
          peer.queue.release(chunk);
          this.#checkDrain(peer);
        }
      }
    } catch (error) {
      if (c.state !== "closed") {
        this.#log.log("debug", "tcp_write_failed", {
          id: this.id,
          peer: c.peerId,
          remote: c.remote,
          error: String(error),
        });
        this.#closeConnection(c);
      }
    } finally {
      c.writing = false;
    }
  }

  #checkDrain(peer: PeerState): void {
    if (!peer.refused || peer.queue.bytes >= this.#maxQueueBytes / 2) return;
    peer.refused = false;
    const handler = this.#handler;
    if (handler?.onDrain === undefined || this.#closed) return;
    try {
      handler.onDrain(peer.id);
    } catch (error) {
      this.#handlerFailed("onDrain", error);
    }
  }

  // ------------------------------------------------------------ utilities

  #emitDown(id: PeerId): void {
    const handler = this.#handler;
    if (handler?.onPeerDown === undefined || this.#closed) return;
    try {
      handler.onPeerDown(id);
    } catch (error) {
      this.#handlerFailed("onPeerDown", error);
    }
  }

  #handlerFailed(callback: string, error: unknown): void {
    this.#log.log("error", "tcp_handler_failed", {
      id: this.id,
      callback,
      error: error instanceof Error
        ? `${error.name}: ${error.message}`
        : String(error),
    });
  }

  #warnOnce(key: string, event: string, fields: Record<string, unknown>): void {
    const first = !this.#warned.has(key);
    if (first) {
      if (this.#warned.size >= WARNED_LIMIT) this.#warned.clear();
      this.#warned.add(key);
    }
    this.#log.log(first ? "warn" : "debug", event, { id: this.id, ...fields });
  }

  /** Waits `ms` (cut short by close); tracked so close awaits nothing here. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const pause: { timer: Timer; resolve: () => void } = {
        timer: 0 as unknown as Timer,
        resolve: () => {
          this.#pauses.delete(pause);
          resolve();
        },
      };
      pause.timer = setTimeout(pause.resolve, ms);
      this.#pauses.add(pause);
    });
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.then(
      () => this.#tasks.delete(task),
      (error) => {
        this.#tasks.delete(task);
        this.#log.log("error", "tcp_internal_error", {
          id: this.id,
          error: String(error),
        });
      },
    );
  }
}

/**
 * Resolves after one turn of the event loop, in which completed socket
 * operations of other connections run. A message through a fresh
 * `MessageChannel` takes tens of microseconds; `setTimeout(0)` takes a
 * millisecond or more, and microtasks or `setImmediate` do not let I/O in.
 */
function turnEventLoop(): Promise<void> {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
    channel.port2.close();
  });
}

/** Reads the state through a call, so checks after an `await` are not narrowed away. */
function isClosed(c: Connection): boolean {
  return c.state === "closed";
}

/**
 * Parses `"host:port"` (`"[::1]:7000"` for IPv6).
 *
 * @throws {TypeError} if it is not of that form.
 */
function parseAddress(id: PeerId, address: string): TcpAddress {
  const parsed = splitHostPort(address);
  if (parsed === undefined) {
    throw new TypeError(
      `Invalid address ${
        JSON.stringify(address)
      } for peer "${id}": expected "host:port" with a port from 1 to 65535`,
    );
  }
  return parsed;
}

async function writeAll(conn: Deno.TcpConn, data: Uint8Array): Promise<void> {
  let written = await conn.write(data);
  while (written < data.length) {
    written += await conn.write(data.subarray(written));
  }
}

function closeQuietly(conn: Deno.TcpConn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}
