/**
 * Base64 (snapshot chunks, gbcast messages), over `btoa`/`atob` (no dependency).
 *
 * @module
 */

const SLICE = 0x2000;

/** Encodes bytes as base64. */
export function toBase64(bytes: Uint8Array): string {
  const parts: string[] = [];
  for (let i = 0; i < bytes.length; i += SLICE) {
    parts.push(
      String.fromCharCode(
        ...bytes.subarray(i, Math.min(i + SLICE, bytes.length)),
      ),
    );
  }
  return btoa(parts.join(""));
}

/** Decodes base64, or returns `undefined` if `text` is not base64. */
export function fromBase64(text: string): Uint8Array | undefined {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    return undefined;
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
