/**
 * Waiting in tests: polls a condition until it holds, bounded in time and
 * in count.
 *
 * @module
 */

/**
 * Polls `condition` every `everyMs` until it holds.
 *
 * @param what What is awaited, for the error; a function builds it only
 * then (for example from the output seen so far).
 * @param condition Checked at once, then after each pause.
 * @param ms How long to wait at most. Default 30,000.
 * @param everyMs The pause between checks. Default 20.
 * @throws {Error} `Timed out after <ms> ms waiting for <what>`.
 */
export async function until(
  what: string | (() => string),
  condition: () => boolean | Promise<boolean>,
  ms = 30_000,
  everyMs = 20,
): Promise<void> {
  const deadline = performance.now() + ms;
  for (let i = 0; i < 1_000_000; i++) {
    if (await condition()) return;
    if (performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  const text = typeof what === "string" ? what : what();
  throw new Error(`Timed out after ${ms} ms waiting for ${text}`);
}
