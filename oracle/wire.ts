/**
 * The frames Oracle replicas and clients exchange over a transport, one
 * JSON object per transport frame, told apart by `t`.
 *
 * Client to replica: {@linkcode RequestFrame}, {@linkcode SubscribeFrame},
 * {@linkcode UnsubscribeFrame}, {@linkcode SubscriptionAckFrame}. Replica
 * to client: {@linkcode ResponseFrame}, {@linkcode EventsFrame},
 * {@linkcode SubscriptionEndFrame}. Replica to replica: {@linkcode RaftFrame}.
 *
 * @module
 */

import type {
  ChannelEvent,
  EntryCommand,
  Json,
  OracleErrorResult,
  OracleOp,
} from "./commands.ts";
import type { RaftMessage } from "./raft_types.ts";

/**
 * A client request. Writes carry the session and a request number that a
 * retry keeps, so a retried write applies once.
 */
export interface RequestFrame {
  readonly t: "req";
  /** The session (client id). */
  readonly s: string;
  /** Request number, from 1, increasing per session. */
  readonly r: number;
  /** Every request numbered below this has its reply at the client. */
  readonly a: number;
  readonly op: OracleOp;
}

/** The reply to a {@linkcode RequestFrame}: `ok` or `err`. */
export interface ResponseFrame {
  readonly t: "res";
  readonly r: number;
  readonly ok?: Json | undefined;
  readonly err?: OracleErrorResult | undefined;
}

/**
 * Subscribes to a channel from sequence number `from` (first event wanted),
 * or, with `prefix`, to every channel under `path` from revision `from`.
 * Re-sending a subscription with the same `id` replaces it (resume).
 */
export interface SubscribeFrame {
  readonly t: "sub";
  /** Chosen by the client, unique among its subscriptions. */
  readonly id: number;
  readonly path: string;
  readonly prefix: boolean;
  readonly from: number;
}

/** Ends a subscription. */
export interface UnsubscribeFrame {
  readonly t: "unsub";
  readonly id: number;
}

/**
 * Flow control: the client has processed the subscription's events up to
 * position `upTo` (a sequence number, or a revision for prefix
 * subscriptions). The replica keeps at most a window of unacknowledged
 * events in flight per subscription.
 */
export interface SubscriptionAckFrame {
  readonly t: "suback";
  readonly id: number;
  readonly upTo: number;
}

/** Events for a subscription, in order, without gaps or duplicates. */
export interface EventsFrame {
  readonly t: "ev";
  readonly id: number;
  readonly events: readonly ChannelEvent[];
}

/**
 * A subscription ended on the replica's side, with the reason (for example
 * `compacted` with the first available position, `not_leader`, `moved`
 * with the `delegation` that owns the path now, or `not_owner`). The
 * client resumes it elsewhere or reports the error.
 */
export interface SubscriptionEndFrame {
  readonly t: "subend";
  readonly id: number;
  readonly err: OracleErrorResult;
}

/** A consensus message between replicas. */
export interface RaftFrame {
  readonly t: "raft";
  readonly m: RaftMessage<EntryCommand>;
}

/** Every frame a client sends. */
export type ClientFrame =
  | RequestFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | SubscriptionAckFrame;

/** Every frame a replica sends to a client. */
export type ReplicaToClientFrame =
  | ResponseFrame
  | EventsFrame
  | SubscriptionEndFrame;
