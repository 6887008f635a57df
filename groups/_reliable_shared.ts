/**
 * What the parts of one `ReliableMulticast` share: its options,
 * clock, acknowledgements, held messages, frame writer and counters, and
 * the few actions that belong to the whole.
 *
 * @module
 */

import type { Clock } from "../runtime/clock.ts";
import type { FrameWriter } from "./_frame.ts";
import type { AckMatrix } from "./_reliable_acks.ts";
import type { ResolvedOptions } from "./_reliable_options.ts";
import type { SeqStore } from "./_reliable_store.ts";
import type { ReliableCounters } from "./reliable.ts";

/** The state and actions shared by the sending, receiving and watching parts. */
export interface Shared {
  readonly o: ResolvedOptions;
  readonly clock: Clock;
  /** Who holds what of whom; row `o.me` is my ack vector (my own entry: what I sent). */
  readonly acks: AckMatrix;
  /** Held messages per sender index (own included). */
  readonly stores: readonly SeqStore[];
  /** Encodes every frame; a frame is valid until the next one is started. */
  readonly writer: FrameWriter;
  readonly counters: ReliableCounters;
  /** Whether the instance was closed. */
  isClosed(): boolean;
  /** Hands a frame to member `m`, counting it as sent or refused. */
  sendTo(m: number, frame: Uint8Array): void;
  /** Sends a frame to every other member: it carries my acks, so no standalone ack is due. */
  broadcast(frame: Uint8Array): void;
  /** Delivers a message of sender `s` to the application, counting it. */
  deliver(s: number, seq: number, payload: Uint8Array): void;
  /** My ack vector grew by `delivered` messages: send it soon. */
  ackSoon(delivered: number): void;
  /** Acks or held messages changed: collect, schedule NAKs, reopen the window. */
  settle(): void;
}
