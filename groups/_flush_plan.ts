/**
 * The arithmetic of a flush: from the receive vectors every survivor of a
 * view announced, the point every survivor delivers up to before the next
 * view, and which survivor echoes which messages to whom, so that each
 * missing message is sent once.
 *
 * A receive vector maps every sender of the old view to the highest
 * sequence number received from it without a gap. Whatever one survivor
 * received, all must deliver (it may have delivered it already); whatever
 * none received is lost with its crashed sender and delivered by none.
 *
 * @module
 */

/** Per sender of the old view: the highest sequence number received without a gap. */
export type ReceiveVector = Readonly<Record<string, number>>;

/** The vector of a flush frame: `received[i]` is for `members[i]`. */
export function vectorOf(
  members: readonly string[],
  received: readonly number[],
): ReceiveVector {
  const vector: Record<string, number> = {};
  members.forEach((m, i) => vector[m] = received[i]);
  return vector;
}

/** One echo duty: send `sender`'s messages `from`..`to` (inclusive) to `to`. */
export interface Echo {
  /** The survivor that lacks them. */
  readonly member: string;
  /** Whose messages. */
  readonly sender: string;
  /** The first sequence number to send. */
  readonly from: number;
  /** The last sequence number to send. */
  readonly to: number;
}

/**
 * The flush target: per sender, the highest sequence number any survivor
 * received. Every survivor delivers exactly up to it.
 *
 * @param senders The old view's members, in view order.
 * @param vectors Every survivor's announced vector (a missing sender counts as 0).
 * @returns The target per sender.
 *
 * @example
 * ```ts
 * import { flushTarget } from "./_flush_plan.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(
 *   flushTarget(["a", "b", "c"], [{ a: 3, b: 1 }, { a: 2, b: 4, c: 1 }]),
 *   { a: 3, b: 4, c: 1 },
 * );
 * ```
 */
export function flushTarget(
  senders: readonly string[],
  vectors: readonly ReceiveVector[],
): Record<string, number> {
  const target: Record<string, number> = {};
  for (const sender of senders) {
    let max = 0;
    for (const vector of vectors) max = Math.max(max, vector[sender] ?? 0);
    target[sender] = max;
  }
  return target;
}

/**
 * What `me` must echo: for each sender and each survivor short of the
 * target, the missing range, if `me` is the first survivor (in
 * `survivors` order) that reached the target for that sender. Exactly one
 * survivor takes each duty.
 *
 * @param me This member (one of `survivors`).
 * @param senders The old view's members, in view order.
 * @param survivors The survivors, in view order, with their vectors.
 * @returns The echoes `me` sends.
 *
 * @example b has a's 3rd message, c lacks it: b echoes it
 * ```ts
 * import { echoDuties } from "./_flush_plan.ts";
 * import assert from "node:assert/strict";
 *
 * const survivors = [["b", { a: 3, b: 2 }], ["c", { a: 2, b: 2 }]] as const;
 * assert.deepEqual(echoDuties("b", ["a", "b", "c"], survivors), [
 *   { member: "c", sender: "a", from: 3, to: 3 },
 * ]);
 * assert.deepEqual(echoDuties("c", ["a", "b", "c"], survivors), []);
 * ```
 */
export function echoDuties(
  me: string,
  senders: readonly string[],
  survivors: readonly (readonly [string, ReceiveVector])[],
): Echo[] {
  const target = flushTarget(senders, survivors.map(([, v]) => v));
  const duties: Echo[] = [];
  for (const sender of senders) {
    const top = target[sender];
    const holder = survivors.find(([, v]) => (v[sender] ?? 0) === top);
    if (holder === undefined || holder[0] !== me || top === 0) continue;
    for (const [member, vector] of survivors) {
      const has = vector[sender] ?? 0;
      if (member !== me && has < top) {
        duties.push({ member, sender, from: has + 1, to: top });
      }
    }
  }
  return duties;
}
