/**
 * Fault-schedule helper shared by the scenario families.
 *
 * @module
 */

import type { PeerId, Prng } from "../../../sim/mod.ts";

/** Splits `ids` into two non-empty random sides (for a partition). */
export function randomSplit(
  random: Prng,
  ids: readonly PeerId[],
): [PeerId[], PeerId[]] {
  const shuffled = random.shuffle([...ids]);
  const cut = random.intBetween(1, shuffled.length - 1);
  return [shuffled.slice(0, cut), shuffled.slice(cut)];
}
