/**
 * Small, stable, non-cryptographic hashes for the simulator: a 32-bit string
 * hash and an incremental 64-bit hash (two 32-bit lanes) over the trace.
 *
 * @module
 */

/** Final avalanche of murmur3. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over UTF-16 code units, then murmur3's finaliser. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h ^ text.length);
}

/** FNV-1a over bytes, then murmur3's finaliser. */
export function hashBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h ^ bytes.length);
}

const floatView = new DataView(new ArrayBuffer(8));

/**
 * An incremental 64-bit hash: two murmur3-style 32-bit lanes with different
 * seeds and constants, cross-mixed. Stable across runs and platforms.
 */
export class TraceHasher {
  #h1 = 0x9747b28c;
  #h2 = 0x2f0e1ba5;
  #count = 0;

  /** Absorbs one 32-bit word. */
  word(k: number): void {
    let k1 = Math.imul(k | 0, 0xcc9e2d51);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, 0x1b873593);
    let h1 = this.#h1 ^ k1;
    h1 = (h1 << 13) | (h1 >>> 19);
    this.#h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;

    let k2 = Math.imul((k ^ this.#h1) | 0, 0x85ebca77);
    k2 = (k2 << 17) | (k2 >>> 15);
    k2 = Math.imul(k2, 0xc2b2ae3d);
    let h2 = this.#h2 ^ k2;
    h2 = (h2 << 19) | (h2 >>> 13);
    this.#h2 = (Math.imul(h2, 9) + 0x27d4eb2f) | 0;
    this.#count++;
  }

  /** Absorbs a float64 exactly (both 32-bit halves of its bits). */
  float(x: number): void {
    floatView.setFloat64(0, x);
    this.word(floatView.getUint32(0));
    this.word(floatView.getUint32(4));
  }

  /** The current digest as 16 lowercase hex digits. */
  hex(): string {
    const n = this.#count;
    const a = fmix32((this.#h1 ^ n) + this.#h2);
    const b = fmix32((this.#h2 ^ Math.imul(n, 0x9e3779b1)) + a);
    return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
  }
}
