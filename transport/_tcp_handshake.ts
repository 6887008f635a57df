/**
 * The TCP handshake: frame kinds, payload layouts and the proofs of the
 * cluster secret.
 *
 * ```text
 * dialer                                   acceptor
 *   HELLO  {version, nonceA, dialerId, acceptorId}  ->
 *                  <-  ACCEPT {nonceB, mac("accept")}  or  REJECT {reason}
 *   PROOF  {mac("dial")}  ->                (or REJECT "auth" if the
 *                                            acceptor's mac is wrong)
 * ```
 *
 * `mac(label)` is HMAC-SHA-256 under the cluster secret of
 * `label | nonceA | nonceB | len dialerId | dialerId | len acceptorId |
 * acceptorId`, and is empty when no secret is configured. Each side proves
 * the secret over the other side's fresh nonce, so a recorded handshake
 * cannot be replayed.
 *
 * @module
 */

import { mac, MAC_SIZE } from "./_auth.ts";

/** Frame kind of the dialer's first frame. */
export const FRAME_KIND_HELLO = 1;
/** Frame kind of the acceptor's positive answer. */
export const FRAME_KIND_ACCEPT = 2;
/** Frame kind of a refusal (either side), followed by a close. */
export const FRAME_KIND_REJECT = 3;
/** Frame kind of the dialer's proof of the secret. */
export const FRAME_KIND_PROOF = 4;

/** Version of the handshake carried in HELLO. */
export const HANDSHAKE_VERSION = 1;
/** Length of each side's nonce. */
export const NONCE_SIZE = 16;
/** Longest peer id in UTF-8 bytes. */
export const MAX_PEER_ID_BYTES = 255;
/** Largest handshake payload (HELLO with two maximal ids). */
export const MAX_HANDSHAKE_PAYLOAD = 1 + NONCE_SIZE + 2 *
    (1 + MAX_PEER_ID_BYTES);

/** Why a handshake was refused. */
export type RejectReason =
  | "unknown-peer"
  | "wrong-target"
  | "duplicate"
  | "auth"
  | "bad-hello";

const REJECT_CODES: readonly RejectReason[] = [
  "unknown-peer",
  "wrong-target",
  "duplicate",
  "auth",
  "bad-hello",
];

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
const LABEL_ACCEPT = encoder.encode("cohort-tcp-accept");
const LABEL_DIAL = encoder.encode("cohort-tcp-dial");
const EMPTY = new Uint8Array(0);

/**
 * Encodes a peer id, checking its length.
 *
 * @throws {TypeError} if the id is empty or longer than 255 UTF-8 bytes.
 */
export function peerIdBytes(id: string): Uint8Array {
  if (typeof id !== "string" || id.length === 0) {
    throw new TypeError(
      `Invalid peer id ${JSON.stringify(id)}: it must be a non-empty string`,
    );
  }
  const bytes = encoder.encode(id);
  if (bytes.length > MAX_PEER_ID_BYTES) {
    throw new TypeError(
      `Invalid peer id "${
        id.slice(0, 40)
      }...": ${bytes.length} UTF-8 bytes, at most ${MAX_PEER_ID_BYTES} allowed`,
    );
  }
  return bytes;
}

/** A fresh random nonce. */
export function newNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
}

/** The decoded HELLO payload. */
export interface Hello {
  nonce: Uint8Array;
  from: string;
  to: string;
}

/** Encodes a HELLO payload. Ids must come from {@linkcode peerIdBytes}. */
export function encodeHello(
  nonce: Uint8Array,
  from: Uint8Array,
  to: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(1 + NONCE_SIZE + 2 + from.length + to.length);
  out[0] = HANDSHAKE_VERSION;
  out.set(nonce, 1);
  let at = 1 + NONCE_SIZE;
  out[at++] = from.length;
  out.set(from, at);
  at += from.length;
  out[at++] = to.length;
  out.set(to, at);
  return out;
}

/** Decodes a HELLO payload; `undefined` if it is malformed. */
export function decodeHello(payload: Uint8Array): Hello | undefined {
  if (payload.length < 1 + NONCE_SIZE + 2) return undefined;
  if (payload[0] !== HANDSHAKE_VERSION) return undefined;
  let at = 1 + NONCE_SIZE;
  const fromLength = payload[at++];
  if (fromLength === 0 || at + fromLength + 1 > payload.length) {
    return undefined;
  }
  const fromBytes = payload.subarray(at, at + fromLength);
  at += fromLength;
  const toLength = payload[at++];
  if (toLength === 0 || at + toLength !== payload.length) return undefined;
  const toBytes = payload.subarray(at, at + toLength);
  try {
    return {
      nonce: payload.slice(1, 1 + NONCE_SIZE),
      from: decoder.decode(fromBytes),
      to: decoder.decode(toBytes),
    };
  } catch {
    return undefined;
  }
}

/** Encodes an ACCEPT payload: the acceptor's nonce and its proof. */
export function encodeAccept(nonce: Uint8Array, proof: Uint8Array): Uint8Array {
  const out = new Uint8Array(NONCE_SIZE + proof.length);
  out.set(nonce, 0);
  out.set(proof, NONCE_SIZE);
  return out;
}

/** Decodes an ACCEPT payload; `undefined` if it is malformed. */
export function decodeAccept(
  payload: Uint8Array,
): { nonce: Uint8Array; proof: Uint8Array } | undefined {
  const proofLength = payload.length - NONCE_SIZE;
  if (proofLength !== 0 && proofLength !== MAC_SIZE) return undefined;
  return {
    nonce: payload.slice(0, NONCE_SIZE),
    proof: payload.slice(NONCE_SIZE),
  };
}

/** Encodes a REJECT payload. */
export function encodeReject(reason: RejectReason): Uint8Array {
  return Uint8Array.of(REJECT_CODES.indexOf(reason));
}

/** Decodes a REJECT payload; `undefined` if the reason is not known. */
export function decodeReject(payload: Uint8Array): RejectReason | undefined {
  return payload.length === 1 ? REJECT_CODES[payload[0]] : undefined;
}

/**
 * The proof one side sends: empty without a secret, else the MAC of the
 * label, both nonces and both ids.
 */
export function handshakeProof(
  key: Uint8Array | undefined,
  side: "accept" | "dial",
  nonceA: Uint8Array,
  nonceB: Uint8Array,
  dialer: Uint8Array,
  acceptor: Uint8Array,
): Uint8Array {
  if (key === undefined) return EMPTY;
  return mac(
    key,
    side === "accept" ? LABEL_ACCEPT : LABEL_DIAL,
    nonceA,
    nonceB,
    Uint8Array.of(dialer.length),
    dialer,
    Uint8Array.of(acceptor.length),
    acceptor,
  );
}
