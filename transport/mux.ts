/**
 * One transport shared by several users that talk to disjoint sets of
 * peers: for example a node that is an Oracle replica (talking to its
 * siblings and to clients) and, through the same endpoint, a client of its
 * parent Oracle group.
 *
 * @example A replica's endpoint also carries a client of another group
 * ```ts
 * import { MemoryNetwork, TransportMux } from "@cohort/cohort/transport";
 * import assert from "node:assert/strict";
 *
 * const network = new MemoryNetwork();
 * const node = network.connect("a1");
 * const root = network.connect("r1");
 * const mux = new TransportMux(node);
 * const upstream = mux.route(["r1"]); // frames from r1 go here
 * const local = mux.rest(); // everything else goes here
 * const seen: string[] = [];
 * upstream.setHandler({ onFrame: (from) => seen.push(`upstream:${from}`) });
 * local.setHandler({ onFrame: (from) => seen.push(`local:${from}`) });
 * root.setHandler({ onFrame: () => {} });
 * root.send("a1", new Uint8Array([1]));
 * await new Promise((resolve) => setTimeout(resolve, 10));
 * assert.deepEqual(seen, ["upstream:r1"]);
 * await network.close();
 * ```
 *
 * @module
 */

import type {
  PeerId,
  Transport,
  TransportHandler,
  TransportStats,
} from "./transport.ts";

/**
 * Splits one transport's incoming frames and peer events among views by
 * the peer they come from. {@linkcode TransportMux.route} claims a set of
 * peers; {@linkcode TransportMux.rest} receives every peer no route
 * claims. Each view is a {@linkcode Transport} whose `send` goes through
 * the shared one and whose `close` only detaches the view. Frames from a
 * peer whose view has no handler, or that no view claims, are dropped
 * and counted ({@linkcode TransportMux.dropped}).
 */
export class TransportMux {
  readonly #base: Transport;
  readonly #routes = new Map<PeerId, MuxView>();
  #rest: MuxView | undefined;
  #dropped = 0;

  /**
   * Takes over `base`'s handler. The mux never closes `base`: its owner does.
   *
   * @param base The shared transport.
   */
  constructor(base: Transport) {
    this.#base = base;
    base.setHandler({
      onFrame: (from, payload) => {
        const handler = this.#handlerOf(from);
        if (handler === undefined) this.#dropped++;
        else handler.onFrame(from, payload);
      },
      onPeerUp: (peer) => this.#handlerOf(peer)?.onPeerUp?.(peer),
      onPeerDown: (peer) => this.#handlerOf(peer)?.onPeerDown?.(peer),
      onDrain: (peer) => this.#handlerOf(peer)?.onDrain?.(peer),
    });
  }

  /** Frames dropped because no view with a handler claimed their peer. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * A view that receives the frames and peer events of `peers` only.
   *
   * @param peers The peers it claims; none may be claimed already.
   * @returns The view; closing it releases the peers.
   * @throws {TypeError} if `peers` is empty or a peer is already claimed.
   */
  route(peers: Iterable<PeerId>): Transport {
    const claimed = [...new Set(peers)];
    if (claimed.length === 0) {
      throw new TypeError("Cannot route: no peer given");
    }
    for (const peer of claimed) {
      if (this.#routes.has(peer)) {
        throw new TypeError(
          `Cannot route peer ${JSON.stringify(peer)}: another view claims it`,
        );
      }
    }
    const view = new MuxView(this.#base, () => {
      for (const peer of claimed) {
        if (this.#routes.get(peer) === view) this.#routes.delete(peer);
      }
    });
    for (const peer of claimed) this.#routes.set(peer, view);
    return view;
  }

  /**
   * The view that receives every peer no route claims (one per mux).
   *
   * @returns The view.
   * @throws {TypeError} if the rest view is already taken and not closed.
   */
  rest(): Transport {
    if (this.#rest !== undefined) {
      throw new TypeError("Cannot take the rest view: it is already taken");
    }
    const view = new MuxView(this.#base, () => {
      if (this.#rest === view) this.#rest = undefined;
    });
    this.#rest = view;
    return view;
  }

  #handlerOf(peer: PeerId): TransportHandler | undefined {
    return (this.#routes.get(peer) ?? this.#rest)?.handler;
  }
}

/** One view of a {@linkcode TransportMux}. */
class MuxView implements Transport {
  readonly #base: Transport;
  readonly #detach: () => void;
  handler: TransportHandler | undefined;
  #closed = false;

  constructor(base: Transport, detach: () => void) {
    this.#base = base;
    this.#detach = detach;
  }

  get id(): PeerId {
    return this.#base.id;
  }

  get maxFrameSize(): number {
    return this.#base.maxFrameSize;
  }

  setHandler(handler: TransportHandler): void {
    this.handler = handler;
  }

  send(to: PeerId, payload: Uint8Array): boolean {
    if (this.#closed) return false;
    return this.#base.send(to, payload);
  }

  stats(): TransportStats {
    return this.#base.stats();
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.handler = undefined;
      this.#detach();
    }
    return Promise.resolve();
  }
}
