// Small byte helpers shared by the E2EE modules. Browser-safe: no Node Buffer.
import { ArgumentError } from '../../lib/errors.js';

/** Concatenates byte arrays into one new array. */
export function concat(...parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s);
}

/** A 32-bit big-endian unsigned integer. */
export function u32(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0);
  return out;
}

/**
 * A string as a length-prefixed (u16) field, so that concatenated fields cannot be re-split
 * differently (`"ab" + "c"` vs `"a" + "bc"`) in a key-derivation context.
 */
export function field(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  if (bytes.byteLength > 0xffff) throw new ArgumentError('a context field is at most 65535 bytes');
  const out = new Uint8Array(2 + bytes.byteLength);
  out[0] = bytes.byteLength >> 8;
  out[1] = bytes.byteLength & 0xff;
  out.set(bytes, 2);
  return out;
}

/** Constant-shape equality of two byte arrays (not timing-critical here: used on public data). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let d = 0;
  for (let i = 0; i < a.byteLength; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** A copy backed by its own ArrayBuffer, as WebCrypto's BufferSource parameters want. */
export function own(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}
