/**
 * Bearer-token checks for the admin endpoint, in constant time: both
 * tokens are hashed to 32 bytes first, so neither their contents nor
 * their lengths show in how long a comparison takes.
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";

const encoder = new TextEncoder();

/** The shortest token accepted: guessing one must be hopeless. */
export const MIN_TOKEN_LENGTH = 16;

/** Compares presented tokens with the configured one. */
export class TokenCheck {
  readonly #expected: Promise<Uint8Array>;

  /**
   * @param token The configured token (at least 16 characters).
   * @throws {TypeError} if the token is too short.
   */
  constructor(token: string) {
    if (typeof token !== "string" || token.length < MIN_TOKEN_LENGTH) {
      throw new TypeError(
        `Invalid admin token: use at least ${MIN_TOKEN_LENGTH} characters (or turn auth off explicitly)`,
      );
    }
    this.#expected = digest(token);
  }

  /**
   * Whether an `Authorization` header carries the token (`Bearer <token>`).
   *
   * @param header The header's value, if any.
   */
  async accepts(header: string | undefined | null): Promise<boolean> {
    const match = /^Bearer +(\S+) *$/i.exec(header ?? "");
    const presented = await digest(match?.[1] ?? "");
    const same = timingSafeEqual(await this.#expected, presented);
    return same && match !== null;
  }
}

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.digest("SHA-256", encoder.encode(text)),
  );
}
