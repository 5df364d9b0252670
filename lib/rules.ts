// The value rules that more than one layer enforces, defined once: the edge (gateway), the model
// (Meeting.join), the configuration and the control-plane HTTP sink all call these, so that a
// display name or a secret accepted by one layer is never refused (or let through) by another.
import { ArgumentError } from './errors.js';

/** Longest display name, in UTF-16 code units after trimming. */
export const DISPLAY_NAME_MAX = 64;

// Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: in a display
// name they would let one participant forge lines in another's UI or in logs.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * The display-name rule: a string that is not empty after trimming, at most DISPLAY_NAME_MAX
 * characters, without control characters. Returns the trimmed name; throws ArgumentError
 * (INVALID_ARGUMENT) naming what is wrong (never echoing the name: it is personal data).
 */
export function checkDisplayName(raw: unknown, what = 'display name'): string {
  if (typeof raw !== 'string') throw new ArgumentError(`${what} must be a string`);
  const name = raw.trim();
  if (!name) throw new ArgumentError(`${what} is empty`);
  if (name.length > DISPLAY_NAME_MAX) throw new ArgumentError(`${what} is longer than ${DISPLAY_NAME_MAX} characters`);
  if (CONTROL_RE.test(name)) throw new ArgumentError(`${what} contains control characters`);
  return name;
}

/** Shortest shared secret (HMAC key), in bytes: 256 bits, the output size of SHA-256. */
export const SECRET_MIN_BYTES = 32;

/** Length of a secret in bytes (a string counts its UTF-8 encoding). */
export function secretBytes(secret: string | Uint8Array): number {
  return typeof secret === 'string' ? Buffer.byteLength(secret, 'utf8') : secret.byteLength;
}

/**
 * The secret rule for every shared HMAC secret (join tokens, control-plane signatures): at least
 * SECRET_MIN_BYTES bytes. Throws ArgumentError naming `what`, never the secret.
 */
export function checkSecret(secret: unknown, what = 'secret'): void {
  if (!(typeof secret === 'string' || secret instanceof Uint8Array)) throw new ArgumentError(`${what} must be a string or bytes`);
  if (secretBytes(secret) < SECRET_MIN_BYTES) throw new ArgumentError(`${what} must be at least ${SECRET_MIN_BYTES} bytes`);
}
