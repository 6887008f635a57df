/**
 * Message authentication with the cluster secret (HMAC-SHA-256), shared by
 * the TCP handshake and the per-datagram MAC of UDP.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";

/** Length in bytes of every MAC this module computes. */
export const MAC_SIZE = 32;

const encoder = new TextEncoder();

/**
 * Turns a configured cluster secret into key bytes.
 *
 * @throws {TypeError} if the secret is empty.
 */
export function secretKey(secret: string | Uint8Array): Uint8Array {
  const key = typeof secret === "string" ? encoder.encode(secret) : secret;
  if (key.length === 0) {
    throw new TypeError("Invalid cluster secret: it must not be empty");
  }
  return key;
}

/** HMAC-SHA-256 of the concatenation of `parts` under `key` (32 bytes). */
export function mac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac("sha256", key);
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
}

/** Compares two byte strings in time independent of where they differ. */
export function equalInConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
