/**
 * The Oracle client's counters, all zero.
 *
 * @module
 */

import type { OracleClientStats } from "./client.ts";

/** Counters of a new client: all zero. */
export function emptyStats(): OracleClientStats {
  return {
    requestsSent: 0,
    resends: 0,
    replies: 0,
    staleReplies: 0,
    redirects: 0,
    rotations: 0,
    requestTimeouts: 0,
    deadlineTimeouts: 0,
    badFrames: 0,
    eventsDelivered: 0,
    duplicateEvents: 0,
    gaps: 0,
    resubscribes: 0,
    subscriptionRefreshes: 0,
    staleEvents: 0,
    transportBackpressure: 0,
    inflightWaits: 0,
    overloadRetries: 0,
    waitResends: 0,
    callbackErrors: 0,
  };
}
