/**
 * The datagram format of the UDP transport: one fragment of one frame per
 * datagram, with the sender's id and, when a cluster secret is set, an
 * HMAC-SHA-256 over everything before it.
 *
 * ```text
 * offset    size  field
 * 0         2     magic 0x43 0x4F ("CO"), as in frame.ts
 * 2         1     version (FRAME_VERSION)
 * 3         1     kind (0 = data)
 * 4         1     flags (bit 0: a 32-byte MAC ends the datagram; other bits 0)
 * 5         1     sender id length n (1 to MAX_SENDER_ID_BYTES)
 * 6         n     sender id, UTF-8
 * 6+n       4     message number, per sender (uint32, big-endian, wraps)
 * 10+n      4     frame length in bytes (uint32)
 * 14+n      4     fragment index, from 0 (uint32)
 * 18+n      4     fragment count, at least 1 (uint32)
 * 22+n      ...   chunk: bytes [index * chunkSize, ...) of the frame
 * end-32    32    MAC, only if flag bit 0 is set
 * ```
 *
 * A frame of length L is cut into `count = max(1, ceil(L / S))` chunks of S
 * bytes (the last one shorter), where S is the sender's chunk capacity. A
 * receiver learns S from the first fragment it sees of a frame and checks
 * every other fragment against it (see `_reassembly.ts`).
 *
 * @module
 */

import { equalInConstantTime, mac, MAC_SIZE } from "./_auth.ts";
import {
  FRAME_MAGIC_0,
  FRAME_MAGIC_1,
  FRAME_VERSION,
  FrameError,
} from "./frame.ts";

/** Datagram kind of a fragment of an application frame. */
export const DATAGRAM_KIND_DATA = 0;
/** Flag bit: the datagram ends with a 32-byte MAC. */
export const DATAGRAM_FLAG_MAC = 1;
/** Longest sender id, in UTF-8 bytes, a datagram may carry. */
export const MAX_SENDER_ID_BYTES = 128;
/** Header bytes of a datagram, not counting the sender id. */
export const DATAGRAM_FIXED_HEADER_SIZE = 22;
/** Largest UDP payload over IPv4 (65,535 - 8 UDP - 20 IP header bytes). */
export const MAX_UDP_PAYLOAD = 65_507;
/** Smallest chunk capacity a sender may be configured with. */
export const MIN_CHUNK_SIZE = 16;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes and checks a sender id.
 *
 * @throws {TypeError} if the id is empty or longer than
 * {@linkcode MAX_SENDER_ID_BYTES} UTF-8 bytes.
 */
export function encodeSenderId(id: string): Uint8Array {
  if (typeof id !== "string" || id.length === 0) {
    throw new TypeError(`Invalid peer id ${JSON.stringify(id)}: it is empty`);
  }
  const bytes = encoder.encode(id);
  if (bytes.length > MAX_SENDER_ID_BYTES) {
    throw new TypeError(
      `Invalid peer id of ${bytes.length} UTF-8 bytes: at most ${MAX_SENDER_ID_BYTES} fit in a datagram`,
    );
  }
  return bytes;
}

/** One fragment of a frame, as a datagram carries it: what the reassembler takes. */
export interface Fragment {
  /** The sender's peer id. */
  sender: string;
  /**
   * The sender's number for the frame this fragment belongs to (unique per
   * sender while in flight).
   */
  messageNumber: number;
  /** Length in bytes of the whole frame. */
  frameLength: number;
  /** Position of this fragment, from 0. */
  fragmentIndex: number;
  /** Number of fragments of the frame. */
  fragmentCount: number;
  /**
   * This fragment's bytes: a view of the datagram (or of any reused
   * buffer), which the reassembler copies if it keeps them.
   */
  chunk: Uint8Array;
}

/**
 * One datagram, parsed and structurally checked, MAC not yet verified: its
 * fragment and where its MAC is.
 */
export interface ParsedDatagram extends Fragment {
  /** Offset of the MAC in the datagram, or -1 if the datagram has none. */
  macOffset: number;
}

/**
 * Parses a datagram's header and checks its structure: magic, version,
 * kind, flags, sender id, fragment numbering and sizes against
 * `maxFrameSize`. It does not verify the MAC (see
 * {@linkcode verifyDatagramMac}), so that a receiver can refuse unknown
 * senders before spending a MAC computation.
 *
 * @throws {FrameError} on any inconsistency.
 */
export function parseDatagram(
  bytes: Uint8Array,
  maxFrameSize: number,
): ParsedDatagram {
  if (bytes.length < DATAGRAM_FIXED_HEADER_SIZE + 1) {
    throw new FrameError(
      "truncated",
      `Datagram of ${bytes.length} bytes is shorter than the smallest header (${
        DATAGRAM_FIXED_HEADER_SIZE + 1
      } bytes)`,
      bytes,
    );
  }
  if (bytes[0] !== FRAME_MAGIC_0 || bytes[1] !== FRAME_MAGIC_1) {
    throw new FrameError(
      "bad-magic",
      `Bad datagram magic 0x${hex(bytes[0])}${hex(bytes[1])}: expected 0x434f`,
      bytes,
    );
  }
  if (bytes[2] !== FRAME_VERSION) {
    throw new FrameError(
      "bad-version",
      `Unsupported datagram version ${bytes[2]}: expected ${FRAME_VERSION}`,
      bytes,
    );
  }
  if (bytes[3] !== DATAGRAM_KIND_DATA) {
    throw new FrameError(
      "malformed",
      `Unknown datagram kind ${bytes[3]}: expected ${DATAGRAM_KIND_DATA}`,
      bytes,
    );
  }
  const flags = bytes[4];
  if ((flags & ~DATAGRAM_FLAG_MAC) !== 0) {
    throw new FrameError(
      "malformed",
      `Unknown datagram flags 0x${hex(flags)}`,
      bytes,
    );
  }
  const idLength = bytes[5];
  if (idLength === 0 || idLength > MAX_SENDER_ID_BYTES) {
    throw new FrameError(
      "malformed",
      `Datagram sender id length ${idLength} is outside 1 to ${MAX_SENDER_ID_BYTES}`,
      bytes,
    );
  }
  const headerSize = DATAGRAM_FIXED_HEADER_SIZE + idLength;
  const macSize = (flags & DATAGRAM_FLAG_MAC) !== 0 ? MAC_SIZE : 0;
  if (bytes.length < headerSize + macSize) {
    throw new FrameError(
      "truncated",
      `Datagram of ${bytes.length} bytes is shorter than its header and MAC (${
        headerSize + macSize
      } bytes)`,
      bytes,
    );
  }
  let sender: string;
  try {
    sender = decoder.decode(bytes.subarray(6, 6 + idLength));
  } catch {
    throw new FrameError(
      "malformed",
      "Datagram sender id is not valid UTF-8",
      bytes,
    );
  }
  let at = 6 + idLength;
  const messageNumber = readUint32(bytes, at);
  const frameLength = readUint32(bytes, at + 4);
  const fragmentIndex = readUint32(bytes, at + 8);
  const fragmentCount = readUint32(bytes, at + 12);
  at += 16;
  const end = bytes.length - macSize;
  const chunk = bytes.subarray(at, end);
  if (frameLength > maxFrameSize) {
    throw new FrameError(
      "too-large",
      `Datagram announces a frame of ${frameLength} bytes, over the maximum of ${maxFrameSize}`,
      bytes,
    );
  }
  checkFragmentShape(
    frameLength,
    fragmentIndex,
    fragmentCount,
    chunk.length,
    bytes,
  );
  return {
    sender,
    messageNumber,
    frameLength,
    fragmentIndex,
    fragmentCount,
    chunk,
    macOffset: macSize === 0 ? -1 : end,
  };
}

/**
 * Checks what can be checked of one fragment on its own.
 *
 * @throws {FrameError} if the numbering or the chunk size is impossible.
 */
export function checkFragmentShape(
  frameLength: number,
  fragmentIndex: number,
  fragmentCount: number,
  chunkLength: number,
  data: Uint8Array,
): void {
  if (fragmentCount < 1 || fragmentCount > Math.max(1, frameLength)) {
    throw new FrameError(
      "malformed",
      `Fragment count ${fragmentCount} is impossible for a frame of ${frameLength} bytes`,
      data,
    );
  }
  if (fragmentIndex >= fragmentCount) {
    throw new FrameError(
      "malformed",
      `Fragment index ${fragmentIndex} is out of range for ${fragmentCount} fragments`,
      data,
    );
  }
  if (fragmentCount === 1 ? chunkLength !== frameLength : chunkLength < 1) {
    throw new FrameError(
      "malformed",
      `Fragment ${fragmentIndex} of ${fragmentCount} carries ${chunkLength} bytes of a ${frameLength}-byte frame`,
      data,
    );
  }
  if (chunkLength > frameLength) {
    throw new FrameError(
      "malformed",
      `Fragment of ${chunkLength} bytes is larger than its ${frameLength}-byte frame`,
      data,
    );
  }
}

/**
 * Verifies the MAC of a parsed datagram.
 *
 * @returns `false` if the datagram has no MAC or the MAC does not match.
 */
export function verifyDatagramMac(
  bytes: Uint8Array,
  parsed: ParsedDatagram,
  key: Uint8Array,
): boolean {
  if (parsed.macOffset < 0) return false;
  const expected = mac(key, bytes.subarray(0, parsed.macOffset));
  return equalInConstantTime(
    expected,
    bytes.subarray(parsed.macOffset, parsed.macOffset + MAC_SIZE),
  );
}

/** Options for {@linkcode DatagramEncoder}. */
export interface DatagramEncoderOptions {
  /** The sender's peer id. */
  sender: string;
  /** Largest datagram, header and MAC included. */
  maxDatagramSize: number;
  /** Key for the MAC; no MAC when absent. */
  key?: Uint8Array | undefined;
}

/** Cuts frames into datagrams for one sender. */
export class DatagramEncoder {
  /** Payload bytes each datagram carries (the last fragment may carry fewer). */
  readonly chunkSize: number;
  readonly #header: Uint8Array;
  readonly #key: Uint8Array | undefined;
  readonly #macSize: number;

  /**
   * Creates an encoder.
   *
   * @throws {TypeError} if the sender id is invalid.
   * @throws {RangeError} if `maxDatagramSize` leaves fewer than
   * {@linkcode MIN_CHUNK_SIZE} bytes for the chunk or exceeds
   * {@linkcode MAX_UDP_PAYLOAD}.
   */
  constructor(options: DatagramEncoderOptions) {
    const id = encodeSenderId(options.sender);
    this.#key = options.key;
    this.#macSize = this.#key === undefined ? 0 : MAC_SIZE;
    const headerSize = DATAGRAM_FIXED_HEADER_SIZE + id.length;
    const size = options.maxDatagramSize;
    const chunkSize = size - headerSize - this.#macSize;
    if (
      !Number.isInteger(size) || size > MAX_UDP_PAYLOAD ||
      chunkSize < MIN_CHUNK_SIZE
    ) {
      throw new RangeError(
        `Invalid maxDatagramSize ${size}: must be an integer of at most ${MAX_UDP_PAYLOAD} that leaves at least ${MIN_CHUNK_SIZE} payload bytes after the ${
          headerSize + this.#macSize
        }-byte header and MAC`,
      );
    }
    this.chunkSize = chunkSize;
    this.#header = new Uint8Array(headerSize);
    this.#header[0] = FRAME_MAGIC_0;
    this.#header[1] = FRAME_MAGIC_1;
    this.#header[2] = FRAME_VERSION;
    this.#header[3] = DATAGRAM_KIND_DATA;
    this.#header[4] = this.#key === undefined ? 0 : DATAGRAM_FLAG_MAC;
    this.#header[5] = id.length;
    this.#header.set(id, 6);
  }

  /**
   * Number of datagrams a frame of `length` bytes takes.
   *
   * @param length The frame length in bytes.
   * @returns At least 1.
   */
  fragmentCount(length: number): number {
    return Math.max(1, Math.ceil(length / this.chunkSize));
  }

  /**
   * Size of a datagram carrying `chunkLength` payload bytes.
   *
   * @param chunkLength Payload bytes in the datagram.
   * @returns Header, chunk and MAC bytes.
   */
  datagramSize(chunkLength: number): number {
    return this.#header.length + chunkLength + this.#macSize;
  }

  /**
   * Cuts one frame into its datagrams, in fragment order.
   *
   * @param messageNumber The sender's number for this frame (uint32).
   * @param payload The frame.
   * @returns One new buffer per datagram.
   */
  encode(messageNumber: number, payload: Uint8Array): Uint8Array[] {
    const count = this.fragmentCount(payload.length);
    const out: Uint8Array[] = new Array(count);
    const headerSize = this.#header.length;
    for (let index = 0; index < count; index++) {
      const start = index * this.chunkSize;
      const chunk = payload.subarray(
        start,
        Math.min(payload.length, start + this.chunkSize),
      );
      const datagram = new Uint8Array(
        headerSize + chunk.length + this.#macSize,
      );
      datagram.set(this.#header, 0);
      const at = headerSize - 16;
      writeUint32(datagram, at, messageNumber);
      writeUint32(datagram, at + 4, payload.length);
      writeUint32(datagram, at + 8, index);
      writeUint32(datagram, at + 12, count);
      datagram.set(chunk, headerSize);
      if (this.#key !== undefined) {
        const end = headerSize + chunk.length;
        datagram.set(mac(this.#key, datagram.subarray(0, end)), end);
      }
      out[index] = datagram;
    }
    return out;
  }
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at] << 24) >>> 0) + (bytes[at + 1] << 16) +
    (bytes[at + 2] << 8) + bytes[at + 3];
}

/**
 * Writes `value` as an unsigned 32-bit big-endian integer.
 *
 * @param target The buffer.
 * @param at Where the 4 bytes start.
 * @param value An integer from 0 to 2^32 - 1.
 */
export function writeUint32(
  target: Uint8Array,
  at: number,
  value: number,
): void {
  target[at] = value >>> 24;
  target[at + 1] = (value >>> 16) & 0xff;
  target[at + 2] = (value >>> 8) & 0xff;
  target[at + 3] = value & 0xff;
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).padStart(2, "0");
}
