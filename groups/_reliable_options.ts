/**
 * Validation and defaults of {@linkcode ReliableMulticastOptions}.
 *
 * @module
 */

import { checkMaxFrameSize } from "../transport/frame.ts";
import { positiveInteger } from "../transport/_options.ts";
import {
  dataHeaderSize,
  headerSize,
  MAX_MEMBERS,
  MESSAGE_OVERHEAD,
  NAK_RANGE_SIZE,
} from "./_frame.ts";
import type { ReliableMulticastOptions } from "./reliable.ts";
import type { MemberId } from "./types.ts";

/** The most ranges one NAK asks for. */
const MAX_NAK_RANGES = 64;

/** The checked options, with every default applied. */
export interface ResolvedOptions {
  readonly viewId: number;
  readonly members: readonly MemberId[];
  /** Member id to its index in the view. */
  readonly index: ReadonlyMap<MemberId, number>;
  /** This member's index. */
  readonly me: number;
  readonly window: number;
  readonly maxFrameBytes: number;
  /** The largest payload one message may carry. */
  readonly maxPayload: number;
  /** The most ranges in one NAK. */
  readonly maxNakRanges: number;
  readonly ackDelayMs: number;
  readonly ackIdleMs: number;
  readonly nakDelayMs: number;
  readonly retransmitMs: number;
  readonly heartbeatMs: number;
  readonly suspectAfterMs: number;
  readonly unreachableAfterMs: number;
  readonly slowAfterMs: number;
}

function delay(name: string, value: number, positive: boolean): number {
  if (!Number.isFinite(value) || value < 0 || (positive && value === 0)) {
    throw new RangeError(
      `Invalid ${name} ${value}: must be a finite number of milliseconds ${
        positive ? "> 0" : ">= 0"
      }`,
    );
  }
  return value;
}

/**
 * Checks the options and applies the defaults.
 *
 * @param options The options as given.
 * @returns The resolved options.
 * @throws {TypeError} if `me` is not in the view or a member appears twice.
 * @throws {RangeError} if a number is out of range, the view is empty or
 * too large, or no message fits in `maxFrameBytes`.
 */
export function resolveOptions(
  options: ReliableMulticastOptions,
): ResolvedOptions {
  const { view, me } = options;
  const viewId = view.viewId;
  if (!Number.isInteger(viewId) || viewId < 0 || viewId > 0xffff_ffff) {
    throw new RangeError(
      `Invalid view id ${viewId}: must be an integer from 0 to 4294967295`,
    );
  }
  const members = [...view.members];
  if (members.length === 0 || members.length > MAX_MEMBERS) {
    throw new RangeError(
      `Invalid view ${viewId}: it has ${members.length} members, must have 1 to ${MAX_MEMBERS}`,
    );
  }
  const index = new Map<MemberId, number>();
  for (const [i, member] of members.entries()) {
    if (index.has(member)) {
      throw new TypeError(
        `Invalid view ${viewId}: member ${
          JSON.stringify(member)
        } appears twice`,
      );
    }
    index.set(member, i);
  }
  const mine = index.get(me);
  if (mine === undefined) {
    throw new TypeError(
      `Cannot multicast as ${
        JSON.stringify(me)
      }: not a member of view ${viewId}`,
    );
  }
  const window = positiveInteger("window", options.window ?? 4096);
  const maxFrameBytes = checkMaxFrameSize(options.maxFrameBytes ?? 65_536);
  const n = members.length;
  const maxPayload = maxFrameBytes - dataHeaderSize(n) - MESSAGE_OVERHEAD;
  const maxNakRanges = Math.min(
    MAX_NAK_RANGES,
    Math.floor((maxFrameBytes - headerSize(n) - 4) / NAK_RANGE_SIZE),
  );
  if (maxPayload < 0 || maxNakRanges < 1) {
    throw new RangeError(
      `Invalid maxFrameBytes ${maxFrameBytes}: a frame of view ${viewId} (${n} members) needs at least ${
        Math.max(
          dataHeaderSize(n) + MESSAGE_OVERHEAD,
          headerSize(n) + 4 + NAK_RANGE_SIZE,
        )
      } bytes`,
    );
  }
  const retransmitMs = delay("retransmitMs", options.retransmitMs ?? 50, true);
  const suspectAfterMs = delay(
    "suspectAfterMs",
    options.suspectAfterMs ?? 1000,
    true,
  );
  const unreachableAfterMs = delay(
    "unreachableAfterMs",
    options.unreachableAfterMs ?? Math.min(200, suspectAfterMs),
    true,
  );
  if (unreachableAfterMs > suspectAfterMs) {
    throw new RangeError(
      `Invalid unreachableAfterMs ${unreachableAfterMs}: must be at most suspectAfterMs (${suspectAfterMs})`,
    );
  }
  const ackIdleMs = delay("ackIdleMs", options.ackIdleMs ?? 20, false);
  if (ackIdleMs >= retransmitMs) {
    throw new RangeError(
      `Invalid ackIdleMs ${ackIdleMs}: must be below retransmitMs (${retransmitMs}), or senders resend what arrived`,
    );
  }
  return {
    viewId,
    members,
    index,
    me: mine,
    window,
    maxFrameBytes,
    maxPayload,
    maxNakRanges,
    ackDelayMs: delay("ackDelayMs", options.ackDelayMs ?? 1, false),
    nakDelayMs: delay("nakDelayMs", options.nakDelayMs ?? 2, false),
    ackIdleMs,
    retransmitMs,
    heartbeatMs: delay("heartbeatMs", options.heartbeatMs ?? 100, true),
    suspectAfterMs,
    unreachableAfterMs,
    slowAfterMs: delay("slowAfterMs", options.slowAfterMs ?? 5000, true),
  };
}
