/**
 * The wire form of actor messages inside group messages: UTF-8 JSON.
 *
 * - a message to a handler: `{ h: name, m: body }`, with `q` (a query id
 *   the sender waits for replies to) when it is a query;
 * - a reply to a query, point to point: `{ r: queryId, v: value }` or
 *   `{ r: queryId, e: error }`.
 *
 * @module
 */

/** A message to a handler. */
export interface HandlerEnvelope {
  /** The handler's name. */
  readonly h: string;
  /** The message, as the sender's schema produced it. */
  readonly m: unknown;
  /** The query id, when the sender waits for replies. */
  readonly q?: number | undefined;
}

/** A reply to a query. */
export type ReplyEnvelope =
  | { readonly r: number; readonly v: unknown }
  | { readonly r: number; readonly e: string };

/** Either kind. */
export type Envelope = HandlerEnvelope | ReplyEnvelope;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes an envelope.
 *
 * @throws {TypeError} if it does not serialize to JSON.
 */
export function encodeEnvelope(envelope: Envelope): Uint8Array {
  let text: string | undefined;
  try {
    text = JSON.stringify(envelope);
  } catch (error) {
    throw new TypeError(`A message must serialize to JSON: ${String(error)}`);
  }
  return encoder.encode(text);
}

/** Decodes an envelope, or says why it is malformed. */
export function decodeEnvelope(
  bytes: Uint8Array,
): { envelope: Envelope } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    return { error: `not UTF-8 JSON: ${String(error)}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: "not a JSON object" };
  }
  const v = value as Record<string, unknown>;
  if (typeof v.h === "string" && "m" in v) {
    if (v.q !== undefined && !Number.isSafeInteger(v.q)) {
      return { error: "a query id must be an integer" };
    }
    return { envelope: { h: v.h, m: v.m, q: v.q as number | undefined } };
  }
  if (Number.isSafeInteger(v.r) && ("v" in v || typeof v.e === "string")) {
    return {
      envelope: "v" in v
        ? { r: v.r as number, v: v.v }
        : { r: v.r as number, e: v.e as string },
    };
  }
  return { error: "neither a handler message nor a reply" };
}
