/**
 * Session ids of Oracle clients: the longest id the Oracle accepts and
 * the random ids clients make when none is given.
 *
 * @module
 */

import type { Random } from "../runtime/random.ts";

/** The longest session id the Oracle accepts. */
export const MAX_ID_LENGTH = 128;

/**
 * A new session id: `"c-"` and 32 hex digits from `random`.
 *
 * @param random Where the 16 random bytes come from.
 * @returns The id.
 */
export function newClientId(random: Random): string {
  const bytes = random.fill(new Uint8Array(16));
  let hex = "c-";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}
