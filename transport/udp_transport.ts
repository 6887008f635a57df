/**
 * A {@linkcode Transport} over UDP datagrams (`node:dgram`), with
 * fragmentation of large frames, an optional per-datagram MAC under the
 * cluster secret, send pacing, and optional IP multicast.
 *
 * @module
 */

import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { clearImmediate, setImmediate } from "node:timers";
import { secretKey } from "./_auth.ts";
import {
  DatagramEncoder,
  encodeSenderId,
  parseDatagram,
  type ParsedDatagram,
  verifyDatagramMac,
} from "./_datagram.ts";
import { integerInRange, positiveInteger, splitHostPort } from "./_options.ts";
import { Reassembler } from "./_reassembly.ts";
import {
  checkMaxFrameSize,
  DEFAULT_MAX_FRAME_SIZE,
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
import {
  type LogFields,
  type Logger,
  type LogLevel,
  silentLogger,
} from "../runtime/log.ts";

/**
 * Default largest datagram, header and MAC included: 1400 bytes, which
 * fits one Ethernet frame (1500-byte MTU) with room for IP and UDP headers
 * and some tunnel overhead. Lower it on links with a smaller MTU, so that
 * IP never fragments.
 */
export const DEFAULT_MAX_DATAGRAM_SIZE: number = 1400;

const DEFAULT_REASSEMBLY_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_INCOMPLETE_FRAMES = 256;
const DEFAULT_MAX_QUEUE_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_LEARNED_PEERS = 1024;
const DEFAULT_SEND_RATE = 12 * 1024 * 1024;
const DEFAULT_SEND_BURST = 16 * 1024;
/**
 * What a datagram costs at least against the pacing budget, in bytes: a
 * receiver's cost is mostly per datagram (Linux charges its socket buffer
 * about 800 bytes for even the smallest one).
 */
const MIN_DATAGRAM_COST = 1024;
/** Interval between two log lines of one kind about one peer. */
const LOG_INTERVAL_MS = 10_000;
/** Bounds the keys the log limiter tracks; beyond, they share one key. */
const LOG_KEYS_LIMIT = 256;

/** Where a {@linkcode UdpTransport} binds its socket. */
export interface UdpBindOptions {
  /** IP address to bind (`"localhost"` means `"127.0.0.1"`). Default `"127.0.0.1"`. */
  hostname?: string | undefined;
  /** Port to bind; `0` (the default) picks a free one (read it from {@linkcode UdpTransport.address}). */
  port?: number | undefined;
}

/** A UDP endpoint address. */
export interface UdpAddress {
  /** IP address. */
  hostname: string;
  /** Port number. */
  port: number;
}

/** IP multicast settings of a {@linkcode UdpTransport} (IPv4 only). */
export interface UdpMulticastOptions {
  /** The group, an IPv4 multicast address (`224.0.0.0` to `239.255.255.255`), for example `"239.1.2.3"`. */
  group: string;
  /** The UDP port every member of the group receives on (1 to 65535). */
  port: number;
  /**
   * Address of the local interface to send and receive group traffic on.
   * Default: the bound hostname (so `"127.0.0.1"` keeps the group on the
   * loopback interface), or the system's choice when bound to `0.0.0.0`.
   */
  interface?: string | undefined;
  /** IP time to live of multicast datagrams (0 to 255). Default 1: the local network only. */
  ttl?: number | undefined;
}

/**
 * Options for {@linkcode UdpTransport.start}: those of every transport,
 * which read as follows for UDP, plus the UDP-specific ones below.
 *
 * - `id`: at most 128 UTF-8 bytes (it travels in every datagram).
 * - `peers`: each address is `"ip:port"` (`"[::1]:7000"` for IPv6;
 *   `"localhost"` is accepted, other host names are not, so that no send
 *   waits for a DNS lookup).
 * - `secret`: every datagram carries an HMAC-SHA-256 under it, and
 *   datagrams without one or with a wrong one are refused (counted in
 *   `authFailures`). The MAC proves origin and integrity, not freshness: a
 *   recorded datagram can be replayed, and the layers above drop
 *   duplicates.
 * - `maxQueueBytes`: bound on the datagram bytes accepted by `send` and
 *   `multicast` and not yet handed over by the socket (paced, or in the
 *   socket), for all peers together. At the bound, `send` returns `false`;
 *   `onDrain` follows when it falls below half. A frame larger than the
 *   bound is accepted when nothing is queued. Default 4 MiB.
 * - `acceptUnknownPeers`: accept datagrams from senders that are not in
 *   `peers`, and learn their address from the datagram (so they can be
 *   answered). Otherwise such datagrams are dropped and counted in
 *   `unknownPeerRefusals`.
 */
export interface UdpTransportOptions extends TransportOptions {
  /** Where to bind. Default: `127.0.0.1`, a free port. */
  bind?: UdpBindOptions | undefined;
  /**
   * Largest datagram sent, header and MAC included, in bytes. Default
   * {@linkcode DEFAULT_MAX_DATAGRAM_SIZE}; at most 65,507, and it must
   * leave at least 16 payload bytes after the header and MAC.
   */
  maxDatagramSize?: number | undefined;
  /**
   * Bound on the bytes reserved by frames whose fragments are still
   * arriving (each reserves its full length at its first fragment). The
   * oldest incomplete frames are dropped to make room. Default four times
   * `maxFrameSize`, capped at 64 MiB but never below `maxFrameSize`; it
   * must be at least `maxFrameSize`. With a secret, only authenticated
   * fragments reserve memory; without one, anyone who can reach the port
   * can make the transport hold up to this bound.
   */
  maxReassemblyBytes?: number | undefined;
  /** Bound on the number of incomplete frames held at once. Default 256. */
  maxIncompleteFrames?: number | undefined;
  /**
   * Time after its first fragment when a frame still incomplete (a
   * fragment was lost) is dropped, in ms. Default 5000.
   */
  reassemblyTimeoutMs?: number | undefined;
  /**
   * Pacing: the rate, in bytes per second, at which datagrams (all
   * destinations together) are handed to the socket, so that a large frame
   * does not arrive as a burst that overflows the receiver's socket buffer:
   * one lost fragment loses the whole frame. Each datagram counts as at
   * least 1 KiB, since a receiver's cost is mostly per datagram. `Infinity`
   * turns pacing off. Default 12 MiB/s.
   *
   * Measured on 127.0.0.1 with 1400-byte datagrams: a Deno receiver keeps
   * up with about 16 MiB/s, and loses a few percent at 24 MiB/s even when
   * it does nothing with what it reads. Larger datagrams
   * (`maxDatagramSize`, where the path's MTU allows) carry more per
   * second. Several senders to one receiver add up: the layers above need
   * flow control.
   */
  sendRate?: number | undefined;
  /** Pacing: the most bytes handed to the socket at once. Default 16 KiB. */
  sendBurst?: number | undefined;
  /** With `acceptUnknownPeers`, bound on the number of learned peers. Default 1024. */
  maxLearnedPeers?: number | undefined;
  /** IP multicast: join this group and enable {@linkcode UdpTransport.multicast}. */
  multicast?: UdpMulticastOptions | undefined;
}

/**
 * The counters of a {@linkcode UdpTransport}: those of every transport plus
 * datagram, multicast and reassembly figures. Fields documented as gauges
 * are current values; every other field only grows.
 */
export interface UdpTransportStats extends TransportStats {
  /** Datagrams the socket confirmed as sent. */
  datagramsSent: number;
  /** Datagrams received, valid or not. */
  datagramsReceived: number;
  /** Frames accepted by {@linkcode UdpTransport.multicast}. */
  multicastFramesSent: number;
  /** Payload bytes accepted by {@linkcode UdpTransport.multicast}. */
  multicastBytesSent: number;
  /** Datagram bytes accepted and not yet confirmed by the socket (gauge). */
  queuedBytes: number;
  /** Bytes reserved by incomplete frames (gauge). */
  reassemblyBytes: number;
  /** Frames whose fragments are still arriving (gauge). */
  incompleteFrames: number;
  /** Incomplete frames dropped because a fragment did not come in time. */
  reassemblyTimeouts: number;
  /** Incomplete frames dropped to respect the reassembly bounds. */
  reassemblyEvictions: number;
  /** Fragments ignored because they had already been received. */
  duplicateFragments: number;
}

interface PeerAddress {
  readonly hostname: string;
  readonly port: number;
  /** Learned from a datagram rather than configured. */
  readonly learned: boolean;
}

/** Shared by the datagrams of one frame. */
interface FrameSend {
  failed: boolean;
  readonly to: PeerId;
}

interface QueuedDatagram {
  readonly data: Uint8Array;
  readonly hostname: string;
  readonly port: number;
  readonly frame: FrameSend;
}

interface MulticastConfig {
  readonly group: string;
  readonly port: number;
  readonly iface: string | undefined;
  readonly ttl: number;
}

/**
 * Moves frames as UDP datagrams.
 *
 * What UDP gives and does not give, plainly:
 * - **Frames may be lost, duplicated and reordered.** A frame larger than
 *   one datagram is cut into fragments and delivered only when every
 *   fragment arrived: whole frames, never partial ones. If one fragment is
 *   lost, the whole frame is lost (its other fragments are dropped after
 *   `reassemblyTimeoutMs`). The layers above must number, acknowledge and
 *   retransmit; this transport does not.
 * - **There are no connections.** `onPeerUp` is called the first time a
 *   valid (and, with a secret, authenticated) datagram arrives from a peer
 *   while a handler is installed, once per peer; `onPeerDown` only when
 *   {@linkcode UdpTransport.removePeer} removes a peer that was up. A silent
 *   or crashed peer is never reported down: failure detection is the job
 *   of the layers above (heartbeats). `connectionsOpened` and
 *   `connectionsClosed` stay at zero.
 * - **Senders are named, not proven, unless a secret is set.** Every
 *   datagram carries its sender's id; without a secret anyone who can reach
 *   the port can claim any configured id. Datagrams naming this
 *   transport's own id (its multicast coming back) are ignored.
 * - **`true` from `send` means accepted, not delivered.** Datagrams are
 *   queued and handed to the socket at `sendRate` bytes per second, in
 *   bursts of at most `sendBurst`, for every destination together. The
 *   queue is shared, so when it drains below half of `maxQueueBytes`,
 *   `onDrain` is called for every peer that was refused since the last
 *   drain (with this transport's own id for a refused multicast).
 *
 * Nothing a datagram contains can throw out of the transport: malformed
 * datagrams are dropped and counted in `malformedDropped`, failed MACs in
 * `authFailures` (logged at `warn`, at most once per peer per 10 s), unknown
 * senders in `unknownPeerRefusals`. Exceptions thrown by the handler are
 * caught and logged.
 *
 * @example Send a frame between two endpoints
 * ```ts
 * import { UdpTransport } from "@cohort/cohort/transport";
 * import assert from "node:assert/strict";
 *
 * const a = await UdpTransport.start({ id: "a", secret: "s3cret" });
 * const b = await UdpTransport.start({ id: "b", secret: "s3cret" });
 * a.addPeer("b", `127.0.0.1:${b.address.port}`);
 * b.addPeer("a", `127.0.0.1:${a.address.port}`);
 * const got = new Promise<string>((resolve) =>
 *   b.setHandler({
 *     onFrame: (from, payload) =>
 *       resolve(`${from}: ${new TextDecoder().decode(payload)}`),
 *   })
 * );
 * a.send("b", new TextEncoder().encode("hello"));
 * assert.equal(await got, "a: hello");
 * await a.close();
 * await b.close();
 * ```
 */
export class UdpTransport implements Transport {
  /** This endpoint's own peer id. */
  readonly id: PeerId;
  /** The largest payload, in bytes, that `send` and `multicast` accept. */
  readonly maxFrameSize: number;

  readonly #socket: Socket;
  readonly #multicastSocket: Socket | undefined;
  readonly #multicast: MulticastConfig | undefined;
  readonly #address: UdpAddress;
  readonly #family: 4 | 6;
  readonly #key: Uint8Array | undefined;
  readonly #encoder: DatagramEncoder;
  readonly #reassembler: Reassembler;
  readonly #log: Logger;
  readonly #limiter: LogLimiter;
  readonly #maxQueueBytes: number;
  readonly #sendRate: number;
  readonly #sendBurst: number;
  readonly #acceptUnknownPeers: boolean;
  readonly #maxLearnedPeers: number;
  readonly #peers = new Map<PeerId, PeerAddress>();
  readonly #up = new Set<PeerId>();
  /** Peers (or this transport's id, for multicast) refused by backpressure. */
  readonly #refused = new Set<PeerId>();
  readonly #stats = {
    ...emptyTransportStats(),
    datagramsSent: 0,
    datagramsReceived: 0,
    multicastFramesSent: 0,
    multicastBytesSent: 0,
  };
  #handler: TransportHandler | undefined;
  #learnedPeers = 0;
  #messageNumber: number;
  #queue: (QueuedDatagram | undefined)[] = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #tokens: number;
  #tokensAt: number;
  #pacingTimer:
    | { immediate: ReturnType<typeof setImmediate> }
    | { timeout: ReturnType<typeof setTimeout> }
    | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(
    config: ResolvedOptions,
    socket: Socket,
    multicastSocket: Socket | undefined,
  ) {
    this.id = config.id;
    this.maxFrameSize = config.maxFrameSize;
    this.#socket = socket;
    this.#multicastSocket = multicastSocket;
    this.#multicast = config.multicast;
    this.#family = config.family;
    this.#key = config.key;
    this.#encoder = config.encoder;
    this.#reassembler = config.reassembler;
    this.#log = config.logger;
    this.#limiter = new LogLimiter(config.logger);
    this.#maxQueueBytes = config.maxQueueBytes;
    this.#sendRate = config.sendRate;
    this.#sendBurst = config.sendBurst;
    this.#tokens = config.sendBurst;
    this.#tokensAt = performance.now();
    this.#acceptUnknownPeers = config.acceptUnknownPeers;
    this.#maxLearnedPeers = config.maxLearnedPeers;
    for (const [id, address] of config.peers) this.#peers.set(id, address);
    this.#messageNumber = crypto.getRandomValues(new Uint32Array(1))[0];
    const bound = socket.address();
    this.#address = { hostname: bound.address, port: bound.port };
    socket.on("message", (msg, rinfo) => this.#onDatagram(msg, rinfo));
    multicastSocket?.on(
      "message",
      (msg, rinfo) => this.#onDatagram(msg, rinfo),
    );
    const sweepMs = Math.min(
      1000,
      Math.max(10, config.reassemblyTimeoutMs / 4),
    );
    this.#sweepTimer = setInterval(() => this.#sweep(), sweepMs);
  }

  /**
   * Binds a UDP socket (and, with `multicast`, a second socket that joins
   * the group) and returns the running transport.
   *
   * @example Start on a free port of 127.0.0.1
   * ```ts
   * import { UdpTransport } from "@cohort/cohort/transport";
   * import assert from "node:assert/strict";
   *
   * const t = await UdpTransport.start({ id: "n1", peers: { n2: "127.0.0.1:7002" } });
   * assert.equal(t.address.hostname, "127.0.0.1");
   * assert.ok(t.address.port > 0);
   * await t.close();
   * ```
   *
   * @param options Identity, addresses, limits, secret and multicast group.
   * @returns The running transport.
   * @throws {TypeError} (as a rejection) if the id, a peer id, an address or
   * the multicast group is invalid, or the secret is empty.
   * @throws {RangeError} (as a rejection) if a size, rate or delay option is
   * out of range.
   * @throws {Error} (as a rejection) the socket's error if binding or joining
   * the group fails (for example `EADDRINUSE`).
   */
  static async start(options: UdpTransportOptions): Promise<UdpTransport> {
    const config = resolveOptions(options);
    const type = config.family === 6 ? "udp6" : "udp4";
    // An "error" event without a listener would throw: listen from the start.
    const route: { to?: UdpTransport } = {};
    const onError = (error: Error) => {
      if (route.to !== undefined) route.to.#onSocketError(error);
    };
    const socket = createSocket({ type }).on("error", onError);
    let multicastSocket: Socket | undefined;
    try {
      await bindSocket(socket, config.bindPort, config.bindHostname);
      const mc = config.multicast;
      if (mc !== undefined) {
        socket.setMulticastTTL(mc.ttl);
        socket.setMulticastLoopback(true);
        if (mc.iface !== undefined) socket.setMulticastInterface(mc.iface);
        multicastSocket = createSocket({ type: "udp4", reuseAddr: true })
          .on("error", onError);
        await bindSocket(multicastSocket, mc.port, mc.group);
        multicastSocket.addMembership(mc.group, mc.iface);
      }
    } catch (error) {
      await closeSocket(socket);
      if (multicastSocket !== undefined) await closeSocket(multicastSocket);
      throw error;
    }
    route.to = new UdpTransport(config, socket, multicastSocket);
    return route.to;
  }

  /** The address the socket is bound to (the real port when `0` was asked). */
  get address(): UdpAddress {
    return { ...this.#address };
  }

  /**
   * Installs the handler that receives frames and peer events.
   *
   * @param handler The callbacks; exceptions they throw are logged, not propagated.
   */
  setHandler(handler: TransportHandler): void {
    this.#handler = handler;
  }

  /**
   * Adds a peer or changes its address.
   *
   * @example Add a peer after start
   * ```ts
   * import { UdpTransport } from "@cohort/cohort/transport";
   *
   * const t = await UdpTransport.start({ id: "n1" });
   * t.addPeer("n2", "127.0.0.1:7002");
   * console.assert(t.send("n2", new Uint8Array([1])));
   * await t.close();
   * ```
   *
   * @param id The peer's id.
   * @param address Its `"ip:port"` (`"[::1]:7000"` for IPv6, or `"localhost:port"`).
   * @throws {TypeError} if the id or the address is invalid, the address is
   * not of this socket's IP family, or the id is this transport's own.
   */
  addPeer(id: PeerId, address: string): void {
    if (id === this.id) {
      throw new TypeError(
        `Cannot add peer "${id}": it is this transport's own id`,
      );
    }
    const parsed = parsePeer(id, address, this.#family);
    const previous = this.#peers.get(id);
    if (previous?.learned === true) this.#learnedPeers--;
    this.#peers.set(id, parsed);
  }

  /**
   * Forgets a peer (configured or learned): sending to it throws again, and
   * its datagrams count as from an unknown peer unless `acceptUnknownPeers`.
   * If it was up, `onPeerDown` is called.
   *
   * @example Remove a peer
   * ```ts
   * import { UdpTransport } from "@cohort/cohort/transport";
   * import assert from "node:assert/strict";
   *
   * const t = await UdpTransport.start({ id: "n1", peers: { n2: "127.0.0.1:7002" } });
   * assert.equal(t.removePeer("n2"), true);
   * assert.throws(() => t.send("n2", new Uint8Array(1)), TypeError);
   * await t.close();
   * ```
   *
   * @param id The peer's id.
   * @returns `true` if the peer was known.
   */
  removePeer(id: PeerId): boolean {
    const previous = this.#peers.get(id);
    if (previous === undefined) return false;
    if (previous.learned) this.#learnedPeers--;
    this.#peers.delete(id);
    this.#refused.delete(id);
    if (this.#up.delete(id) && !this.#closed) {
      this.#call("onPeerDown", id, (h) => h.onPeerDown?.(id));
    }
    return true;
  }

  /**
   * Queues one frame for `to`. It is cut into datagrams if it does not fit
   * in one, and paced out at `sendRate`.
   *
   * @param to The peer, configured or learned.
   * @param payload The payload (with `prefix`, at most `maxFrameSize`
   * bytes); it is copied.
   * @param prefix Bytes that go in front of `payload` in the same datagram.
   * @returns `true` if the frame was accepted (which does not mean it will
   * arrive; after {@linkcode close} it is dropped and counted in
   * `undeliverableDropped`); `false` if the queue is at `maxQueueBytes`:
   * wait for `onDrain(to)`.
   * @throws {RangeError} if the payload is larger than `maxFrameSize`.
   * @throws {TypeError} if `to` has no known address.
   */
  send(to: PeerId, payload: Uint8Array, prefix?: Uint8Array): boolean {
    if (prefix !== undefined && prefix.length > 0) {
      const whole = new Uint8Array(prefix.length + payload.length);
      whole.set(prefix);
      whole.set(payload, prefix.length);
      payload = whole;
    }
    this.#checkSize(payload, `to "${to}"`);
    const peer = this.#peers.get(to);
    if (peer === undefined) {
      throw new TypeError(
        `Cannot send to unknown peer "${to}": no address is configured or learned`,
      );
    }
    if (this.#closed) {
      this.#stats.undeliverableDropped++;
      return true;
    }
    if (!this.#enqueue(payload, peer.hostname, peer.port, to)) {
      this.#stats.backpressureRefusals++;
      this.#refused.add(to);
      return false;
    }
    this.#stats.framesSent++;
    this.#stats.bytesSent += payload.length;
    return true;
  }

  /**
   * Sends one frame to every member of the multicast group (every
   * transport that joined it, this one excepted), with the same guarantees
   * as {@linkcode send}: it may be lost, duplicated or reordered, per
   * member. Members refuse it unless they know this sender (or accept
   * unknown peers) and share the secret.
   *
   * @example Multicast to a group on the loopback interface
   * ```ts
   * import { UdpTransport } from "@cohort/cohort/transport";
   * import assert from "node:assert/strict";
   *
   * const multicast = { group: "239.42.0.1", port: 47301 };
   * const a = await UdpTransport.start({ id: "a", multicast, acceptUnknownPeers: true });
   * const b = await UdpTransport.start({ id: "b", multicast, acceptUnknownPeers: true });
   * const got = new Promise<string>((resolve) =>
   *   b.setHandler({ onFrame: (from) => resolve(from) })
   * );
   * assert.equal(a.multicast(new Uint8Array([1, 2, 3])), true);
   * assert.equal(await got, "a");
   * await a.close();
   * await b.close();
   * ```
   *
   * @param payload The payload, at most `maxFrameSize` bytes; it is copied.
   * @returns `true` if accepted; `false` if the queue is at `maxQueueBytes`:
   * wait for `onDrain` called with this transport's own id.
   * @throws {TypeError} if the transport was started without `multicast`.
   * @throws {RangeError} if the payload is larger than `maxFrameSize`.
   */
  multicast(payload: Uint8Array): boolean {
    const mc = this.#multicast;
    if (mc === undefined) {
      throw new TypeError(
        `Cannot multicast from "${this.id}": the transport was started without the multicast option`,
      );
    }
    this.#checkSize(payload, `to group ${mc.group}:${mc.port}`);
    if (this.#closed) {
      this.#stats.undeliverableDropped++;
      return true;
    }
    if (!this.#enqueue(payload, mc.group, mc.port, this.id)) {
      this.#stats.backpressureRefusals++;
      this.#refused.add(this.id);
      return false;
    }
    this.#stats.multicastFramesSent++;
    this.#stats.multicastBytesSent += payload.length;
    return true;
  }

  /**
   * Returns a snapshot of the counters.
   *
   * @example Watch the memory held for incomplete frames
   * ```ts
   * import { UdpTransport } from "@cohort/cohort/transport";
   * import assert from "node:assert/strict";
   *
   * const t = await UdpTransport.start({ id: "n1" });
   * const s = t.stats();
   * assert.equal(s.reassemblyBytes, 0);
   * assert.equal(s.malformedDropped, 0);
   * await t.close();
   * ```
   *
   * @returns The counters of every transport plus the UDP-specific ones.
   */
  stats(): UdpTransportStats {
    const r = this.#reassembler.stats();
    return {
      ...this.#stats,
      queuedBytes: this.#queuedBytes,
      reassemblyBytes: r.heldBytes,
      incompleteFrames: r.incompleteFrames,
      reassemblyTimeouts: r.framesExpired,
      reassemblyEvictions: r.framesEvicted,
      duplicateFragments: r.duplicateFragments,
    };
  }

  /**
   * Closes the sockets and stops the timers. Queued datagrams and
   * incomplete frames are dropped. Calling it again returns the same
   * promise.
   *
   * @returns A promise that resolves when both sockets are closed.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    const pacing = this.#pacingTimer;
    if (pacing !== undefined) {
      if ("immediate" in pacing) clearImmediate(pacing.immediate);
      else clearTimeout(pacing.timeout);
    }
    this.#pacingTimer = undefined;
    this.#queue = [];
    this.#queueHead = 0;
    this.#queuedBytes = 0;
    this.#refused.clear();
    this.#reassembler.clear();
    this.#limiter.flush();
    const sockets = [this.#socket];
    if (this.#multicastSocket !== undefined) {
      sockets.push(this.#multicastSocket);
    }
    this.#closing = Promise.all(sockets.map(closeSocket)).then(() => {
      this.#log.log("info", "udp_closed", { id: this.id });
    });
    return this.#closing;
  }

  #checkSize(payload: Uint8Array, where: string): void {
    if (!(payload instanceof Uint8Array)) {
      throw new TypeError(
        `Cannot send ${where}: the payload must be a Uint8Array`,
      );
    }
    if (payload.length > this.maxFrameSize) {
      this.#stats.oversizeRefusals++;
      throw new RangeError(
        `Cannot send a frame of ${payload.length} bytes ${where}: the maximum is ${this.maxFrameSize}`,
      );
    }
  }

  /** Cuts a frame into datagrams and queues them, unless the queue is full. */
  #enqueue(
    payload: Uint8Array,
    hostname: string,
    port: number,
    to: PeerId,
  ): boolean {
    const encoder = this.#encoder;
    const count = encoder.fragmentCount(payload.length);
    const overhead = encoder.datagramSize(0);
    const bytes = payload.length + count * overhead;
    if (
      this.#queuedBytes > 0 && this.#queuedBytes + bytes > this.#maxQueueBytes
    ) return false;
    const number = this.#messageNumber;
    this.#messageNumber = (number + 1) >>> 0;
    const frame: FrameSend = { failed: false, to };
    for (const data of encoder.encode(number, payload)) {
      this.#queue.push({ data, hostname, port, frame });
      this.#queuedBytes += data.length;
    }
    this.#pump();
    return true;
  }

  /**
   * Hands queued datagrams to the socket as the pacing budget allows. Runs
   * on every send, every send confirmation and a timer, so that the budget
   * refills in small steps rather than in timer-sized bursts.
   */
  #pump(): void {
    if (this.#closed) return;
    const paced = this.#sendRate !== Infinity;
    if (paced) {
      const now = performance.now();
      this.#tokens = Math.min(
        this.#sendBurst,
        this.#tokens + (now - this.#tokensAt) * this.#sendRate / 1000,
      );
      this.#tokensAt = now;
    }
    const queue = this.#queue;
    let waitMs = 0;
    while (this.#queueHead < queue.length) {
      const item = queue[this.#queueHead]!;
      if (paced) {
        const cost = Math.max(item.data.length, MIN_DATAGRAM_COST);
        const needed = Math.min(cost, this.#sendBurst);
        if (this.#tokens < needed) {
          waitMs = (needed - this.#tokens) * 1000 / this.#sendRate;
          break;
        }
        this.#tokens -= cost;
      }
      queue[this.#queueHead++] = undefined;
      try {
        this.#socket.send(
          item.data,
          item.port,
          item.hostname,
          (error) => this.#onSent(item, error),
        );
      } catch (error) {
        const failure = error instanceof Error
          ? error
          : new Error(String(error));
        queueMicrotask(() => this.#onSent(item, failure));
      }
    }
    if (this.#queueHead === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else {
      if (this.#queueHead > 1024 && this.#queueHead * 2 > queue.length) {
        this.#queue = queue.slice(this.#queueHead);
        this.#queueHead = 0;
      }
      if (this.#pacingTimer === undefined) this.#schedulePump(waitMs);
    }
  }

  /**
   * Runs the pump again in `waitMs`. Timers fire about 2 ms late at best,
   * which would cap the rate at `sendBurst` per 2 ms, so short waits use
   * `setImmediate` (which lets received datagrams be handled in between).
   */
  #schedulePump(waitMs: number): void {
    const run = () => {
      this.#pacingTimer = undefined;
      this.#pump();
    };
    this.#pacingTimer = waitMs < 2
      ? { immediate: setImmediate(run) }
      : { timeout: setTimeout(run, Math.ceil(waitMs)) };
  }

  #onSent(item: QueuedDatagram, error: Error | null): void {
    if (this.#closed) return;
    this.#queuedBytes -= item.data.length;
    if (this.#queueHead < this.#queue.length) this.#pump();
    if (error === null) {
      this.#stats.datagramsSent++;
    } else if (!item.frame.failed) {
      item.frame.failed = true;
      this.#stats.undeliverableDropped++;
      this.#limiter.log("warn", "udp_send_failed", item.frame.to, {
        peer: item.frame.to,
        address: `${item.hostname}:${item.port}`,
        error: String(error),
      });
    }
    if (
      this.#refused.size > 0 && this.#queuedBytes < this.#maxQueueBytes / 2
    ) {
      const refused = [...this.#refused];
      this.#refused.clear();
      for (const peer of refused) {
        this.#call("onDrain", peer, (h) => h.onDrain?.(peer));
      }
    }
  }

  #onDatagram(msg: Uint8Array, rinfo: RemoteInfo): void {
    if (this.#closed) return;
    this.#stats.datagramsReceived++;
    try {
      this.#receive(
        new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength),
        rinfo,
      );
    } catch (error) {
      // Only a bug can land here: parse errors are handled in #receive.
      this.#limiter.log("error", "udp_receive_failed", "*", {
        address: `${rinfo.address}:${rinfo.port}`,
        error: String(error),
      });
    }
  }

  #receive(bytes: Uint8Array, rinfo: RemoteInfo): void {
    let parsed: ParsedDatagram;
    try {
      parsed = parseDatagram(bytes, this.maxFrameSize);
    } catch (error) {
      this.#malformed(error, rinfo, undefined);
      return;
    }
    const sender = parsed.sender;
    // Our own multicast datagrams come back through the loopback.
    if (sender === this.id) return;
    const known = this.#peers.get(sender);
    if (known === undefined) {
      const why = !this.#acceptUnknownPeers
        ? "not a configured peer"
        : this.#learnedPeers >= this.#maxLearnedPeers
        ? `already ${this.#learnedPeers} learned peers`
        : undefined;
      if (why !== undefined) {
        this.#stats.unknownPeerRefusals++;
        this.#limiter.log("info", "udp_unknown_peer", sender, {
          peer: sender,
          address: `${rinfo.address}:${rinfo.port}`,
          reason: why,
        });
        return;
      }
    }
    const authError = this.#authenticate(bytes, parsed);
    if (authError !== undefined) {
      this.#stats.authFailures++;
      this.#limiter.log("warn", "udp_auth_refused", sender, {
        peer: sender,
        address: `${rinfo.address}:${rinfo.port}`,
        reason: authError,
      });
      return;
    }
    if (
      known === undefined ||
      (known.learned &&
        (known.hostname !== rinfo.address || known.port !== rinfo.port))
    ) {
      if (known === undefined) this.#learnedPeers++;
      this.#peers.set(sender, {
        hostname: rinfo.address,
        port: rinfo.port,
        learned: true,
      });
    }
    if (this.#handler !== undefined && !this.#up.has(sender)) {
      this.#up.add(sender);
      this.#call("onPeerUp", sender, (h) => h.onPeerUp?.(sender));
      if (this.#closed) return;
    }
    let frame: Uint8Array | undefined;
    try {
      frame = this.#reassembler.accept(parsed, performance.now());
    } catch (error) {
      this.#malformed(error, rinfo, sender);
      return;
    }
    if (frame === undefined) return;
    const handler = this.#handler;
    if (handler === undefined) return;
    this.#stats.framesReceived++;
    this.#stats.bytesReceived += frame.length;
    this.#call("onFrame", sender, (h) => h.onFrame(sender, frame));
  }

  /** Returns why the datagram fails authentication, or `undefined`. */
  #authenticate(bytes: Uint8Array, parsed: ParsedDatagram): string | undefined {
    if (this.#key === undefined) {
      return parsed.macOffset < 0
        ? undefined
        : "the peer uses a cluster secret and this transport has none";
    }
    if (parsed.macOffset < 0) {
      return "missing MAC: the peer has no cluster secret";
    }
    return verifyDatagramMac(bytes, parsed, this.#key)
      ? undefined
      : "wrong MAC: the peer has another cluster secret, or the datagram was altered";
  }

  #malformed(
    error: unknown,
    rinfo: RemoteInfo,
    sender: PeerId | undefined,
  ): void {
    if (!(error instanceof FrameError)) throw error;
    this.#stats.malformedDropped++;
    this.#limiter.log("debug", "udp_malformed", "*", {
      peer: sender,
      address: `${rinfo.address}:${rinfo.port}`,
      reason: error.reason,
      error: error.message,
    });
  }

  /** Calls a handler callback, logging what it throws. */
  #call(
    callback: string,
    peer: PeerId,
    call: (handler: TransportHandler) => void,
  ): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    try {
      call(handler);
    } catch (error) {
      this.#limiter.log("error", "udp_handler_error", callback, {
        callback,
        peer,
        error: error instanceof Error
          ? (error.stack ?? error.message)
          : String(error),
      });
    }
  }

  #onSocketError(error: Error): void {
    this.#limiter.log("error", "udp_socket_error", "*", {
      id: this.id,
      error: String(error),
    });
  }

  #sweep(): void {
    const now = performance.now();
    const expired = this.#reassembler.sweep(now);
    if (expired > 0) {
      this.#limiter.log("debug", "udp_reassembly_timeout", "*", {
        frames: expired,
      });
    }
    this.#limiter.prune(now);
  }
}

interface ResolvedOptions {
  id: PeerId;
  family: 4 | 6;
  bindHostname: string;
  bindPort: number;
  peers: Map<PeerId, PeerAddress>;
  key: Uint8Array | undefined;
  maxFrameSize: number;
  encoder: DatagramEncoder;
  reassembler: Reassembler;
  reassemblyTimeoutMs: number;
  maxQueueBytes: number;
  sendRate: number;
  sendBurst: number;
  acceptUnknownPeers: boolean;
  maxLearnedPeers: number;
  multicast: MulticastConfig | undefined;
  logger: Logger;
}

/**
 * Validates the options and fills in the defaults.
 *
 * @throws {TypeError} or {RangeError} on an invalid option.
 */
function resolveOptions(options: UdpTransportOptions): ResolvedOptions {
  const id = options.id;
  encodeSenderId(id);
  let bindHostname = options.bind?.hostname ?? "127.0.0.1";
  if (bindHostname === "localhost") bindHostname = "127.0.0.1";
  const family = isIP(bindHostname);
  if (family === 0) {
    throw new TypeError(
      `Invalid bind hostname ${
        JSON.stringify(bindHostname)
      }: expected an IP address`,
    );
  }
  const bindPort = integerInRange(
    "bind port",
    options.bind?.port ?? 0,
    0,
    65535,
  );
  const peers = new Map<PeerId, PeerAddress>();
  for (const [peer, address] of Object.entries(options.peers ?? {})) {
    encodeSenderId(peer);
    if (peer === id) {
      throw new TypeError(
        `Invalid peer "${peer}": it is this transport's own id`,
      );
    }
    peers.set(peer, parsePeer(peer, address, family as 4 | 6));
  }
  const key = options.secret === undefined
    ? undefined
    : secretKey(options.secret);
  const maxFrameSize = checkMaxFrameSize(
    options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
  );
  const encoder = new DatagramEncoder({
    sender: id,
    maxDatagramSize: options.maxDatagramSize ?? DEFAULT_MAX_DATAGRAM_SIZE,
    key,
  });
  const reassemblyTimeoutMs = options.reassemblyTimeoutMs ??
    DEFAULT_REASSEMBLY_TIMEOUT_MS;
  const reassembler = new Reassembler({
    maxFrameSize,
    maxBytes: options.maxReassemblyBytes ??
      Math.max(maxFrameSize, Math.min(4 * maxFrameSize, 64 * 1024 * 1024)),
    maxFrames: options.maxIncompleteFrames ?? DEFAULT_MAX_INCOMPLETE_FRAMES,
    timeoutMs: reassemblyTimeoutMs,
  });
  const maxQueueBytes = positiveInteger(
    "maxQueueBytes",
    options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES,
  );
  const sendRate = options.sendRate ?? DEFAULT_SEND_RATE;
  if (!(sendRate > 0)) {
    throw new RangeError(
      `Invalid sendRate ${sendRate}: must be a positive number of bytes per second, or Infinity`,
    );
  }
  const sendBurst = positiveInteger(
    "sendBurst",
    options.sendBurst ?? DEFAULT_SEND_BURST,
  );
  const maxLearnedPeers = positiveInteger(
    "maxLearnedPeers",
    options.maxLearnedPeers ?? DEFAULT_MAX_LEARNED_PEERS,
  );
  let multicast: MulticastConfig | undefined;
  if (options.multicast !== undefined) {
    multicast = resolveMulticast(options.multicast, family, bindHostname);
  }
  return {
    id,
    family: family as 4 | 6,
    bindHostname,
    bindPort,
    peers,
    key,
    maxFrameSize,
    encoder,
    reassembler,
    reassemblyTimeoutMs,
    maxQueueBytes,
    sendRate,
    sendBurst,
    acceptUnknownPeers: options.acceptUnknownPeers ?? false,
    maxLearnedPeers,
    multicast,
    logger: options.logger ?? silentLogger,
  };
}

function resolveMulticast(
  options: UdpMulticastOptions,
  family: number,
  bindHostname: string,
): MulticastConfig {
  const { group, port } = options;
  const first = typeof group === "string" && isIP(group) === 4
    ? Number(group.split(".")[0])
    : -1;
  if (first < 224 || first > 239) {
    throw new TypeError(
      `Invalid multicast group ${
        JSON.stringify(group)
      }: expected an IPv4 multicast address (224.0.0.0 to 239.255.255.255)`,
    );
  }
  if (family !== 4) {
    throw new TypeError(
      `Cannot join multicast group ${group}: the transport is bound to IPv6 address ${bindHostname}; multicast needs IPv4`,
    );
  }
  integerInRange("multicast port", port, 1, 65535);
  const iface = options.interface ??
    (bindHostname === "0.0.0.0" ? undefined : bindHostname);
  if (iface !== undefined && isIP(iface) !== 4) {
    throw new TypeError(
      `Invalid multicast interface ${
        JSON.stringify(iface)
      }: expected an IPv4 address`,
    );
  }
  const ttl = integerInRange("multicast ttl", options.ttl ?? 1, 0, 255);
  return { group, port, iface, ttl };
}

/**
 * Parses `"ip:port"` (`"[::1]:7000"` for IPv6, `"localhost:port"`).
 *
 * @throws {TypeError} if it is not of that form or not of `family`.
 */
function parsePeer(id: PeerId, address: string, family: 4 | 6): PeerAddress {
  encodeSenderId(id);
  const parsed = splitHostPort(address);
  let hostname = parsed?.hostname ?? "";
  if (hostname === "localhost") hostname = family === 6 ? "::1" : "127.0.0.1";
  if (parsed === undefined || isIP(hostname) !== family) {
    throw new TypeError(
      `Invalid address ${
        JSON.stringify(address)
      } for peer "${id}": expected "ip:port" with an IPv${family} address and a port from 1 to 65535`,
    );
  }
  return { hostname, port: parsed.port, learned: false };
}

function bindSocket(
  socket: Socket,
  port: number,
  hostname: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    socket.once("error", onError);
    socket.bind(port, hostname, () => {
      socket.off("error", onError);
      resolve();
    });
  });
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // never bound, or already closed
    }
  });
}

interface LimitedEntry {
  at: number;
  suppressed: number;
  level: LogLevel;
  event: string;
  fields: LogFields;
}

/**
 * Logs an event at most once per key per {@linkcode LOG_INTERVAL_MS},
 * counting what it suppressed, so a flood of bad datagrams cannot flood the
 * log. Tracks at most {@linkcode LOG_KEYS_LIMIT} keys; beyond, new keys
 * share one.
 */
class LogLimiter {
  readonly #logger: Logger;
  readonly #entries = new Map<string, LimitedEntry>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  log(level: LogLevel, event: string, key: string, fields: LogFields): void {
    const now = performance.now();
    let id = `${event}\u0000${key}`;
    let entry = this.#entries.get(id);
    if (entry === undefined && this.#entries.size >= LOG_KEYS_LIMIT) {
      id = `${event}\u0000\u0000overflow`;
      entry = this.#entries.get(id);
    }
    if (entry !== undefined && now - entry.at < LOG_INTERVAL_MS) {
      entry.suppressed++;
      entry.fields = fields;
      return;
    }
    this.#logger.log(level, event, {
      ...fields,
      suppressed: entry?.suppressed ?? 0,
    });
    this.#entries.set(id, { at: now, suppressed: 0, level, event, fields });
  }

  /** Forgets keys whose interval passed, reporting what they suppressed. */
  prune(now: number): void {
    for (const [id, entry] of this.#entries) {
      if (now - entry.at < LOG_INTERVAL_MS) continue;
      this.#entries.delete(id);
      this.#report(entry);
    }
  }

  /** Reports everything suppressed and forgets every key. */
  flush(): void {
    for (const entry of this.#entries.values()) this.#report(entry);
    this.#entries.clear();
  }

  #report(entry: LimitedEntry): void {
    if (entry.suppressed === 0) return;
    this.#logger.log(entry.level, entry.event, {
      ...entry.fields,
      suppressed: entry.suppressed,
    });
  }
}
