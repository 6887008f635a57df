/**
 * Codecs turn values into payload bytes and back. JSON is the default.
 *
 * @module
 */

/**
 * Encodes values to bytes and decodes them back.
 *
 * @typeParam T The type of value the codec carries.
 */
export interface Codec<T> {
  /** A short name for logs and metrics, for example `"json"`. */
  readonly name: string;
  /**
   * Encodes a value. The returned bytes may be a view of a buffer the codec
   * reuses: they are valid until the next call to `encode`, so send or copy
   * them before encoding again.
   */
  encode(value: T): Uint8Array;
  /**
   * Decodes bytes produced by `encode`.
   *
   * @throws {SyntaxError} if the bytes are not a valid encoding.
   */
  decode(bytes: Uint8Array): T;
}

/** Options for {@linkcode JsonCodec}. */
export interface JsonCodecOptions {
  /** Initial size of the reused encode buffer in bytes. Default 4096. */
  initialBufferSize?: number | undefined;
}

/**
 * JSON over UTF-8, encoding into one reused, growing buffer so that a hot
 * send path allocates no output buffer per message.
 *
 * @example Round-trip a value
 * ```ts
 * import { JsonCodec } from "@cohort/cohort/transport";
 * import assert from "node:assert/strict";
 *
 * const codec = new JsonCodec<{ n: number }>();
 * const bytes = codec.encode({ n: 7 });
 * assert.deepEqual(codec.decode(bytes), { n: 7 });
 * ```
 *
 * @typeParam T The type of value the codec carries.
 */
export class JsonCodec<T = unknown> implements Codec<T> {
  /** Always `"json"`. */
  readonly name = "json";
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  #buffer: Uint8Array;

  /**
   * Creates a JSON codec.
   *
   * @param options Buffer sizing.
   */
  constructor(options: JsonCodecOptions = {}) {
    this.#buffer = new Uint8Array(options.initialBufferSize ?? 4096);
  }

  /**
   * Encodes `value` as UTF-8 JSON into the reused buffer.
   *
   * @param value A JSON-serialisable value.
   * @returns A view of the reused buffer, valid until the next `encode`.
   * @throws {TypeError} if the value cannot be serialised (for example a cycle or a BigInt).
   */
  encode(value: T): Uint8Array {
    const text = JSON.stringify(value);
    if (text === undefined) {
      throw new TypeError(`Cannot encode ${typeof value} as JSON`);
    }
    // UTF-8 needs at most 3 bytes per UTF-16 code unit.
    const worst = text.length * 3;
    if (worst > this.#buffer.length) {
      this.#buffer = new Uint8Array(Math.max(worst, this.#buffer.length * 2));
    }
    const { written } = this.#encoder.encodeInto(text, this.#buffer);
    return this.#buffer.subarray(0, written);
  }

  /**
   * Decodes UTF-8 JSON.
   *
   * @param bytes The encoded value.
   * @returns The decoded value. It is not validated: check it against a schema.
   * @throws {SyntaxError} if the bytes are not valid UTF-8 JSON.
   */
  decode(bytes: Uint8Array): T {
    let text: string;
    try {
      text = this.#decoder.decode(bytes);
    } catch (cause) {
      throw new SyntaxError("Cannot decode payload: not valid UTF-8", {
        cause,
      });
    }
    return JSON.parse(text) as T;
  }
}
