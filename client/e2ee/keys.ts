// Participant key pairs, group keys and key wrapping. WebCrypto only, so the same code runs in
// browsers and in Node 22.
//
// Wrapping (a leader sends a group key to one participant):
//   secret = ECDH-P256(sender private, recipient public)                       32 bytes
//   kek    = HKDF-SHA256(secret, salt, "c4v-media e2ee wrap" | meeting | from | to | kid)
//   wrapped = AES-256-GCM(kek, iv, group key, aad = the same context)
// with a fresh random salt and iv per wrap, so no two wraps share a key-encryption key even
// though the ECDH secret of a pair stays the same.
import { ArgumentError } from '../../lib/errors.js';
import { concat, field, own, u32, utf8 } from './bytes.js';
import { E2eeError } from './errors.js';
import type { WebCryptoKey } from './sframe.js';

type Subtle = typeof globalThis.crypto.subtle;
const subtle = (): Subtle => globalThis.crypto.subtle;

/** Bytes of a P-256 public key in uncompressed form (0x04 | x | y). */
export const PUBLIC_KEY_BYTES = 65;
/** Bytes of a group key. */
export const GROUP_KEY_BYTES = 32;
const SALT_BYTES = 16;
const IV_BYTES = 12;

/** This participant's ECDH key pair; the private key is not extractable. */
export interface ParticipantKeyPair {
  privateKey: WebCryptoKey;
  publicKey: WebCryptoKey;
  /** The public key as published (65 bytes, uncompressed P-256). */
  publicRaw: Uint8Array;
}

/** Creates an ECDH P-256 key pair whose private key never leaves WebCrypto. */
export async function generateKeyPair(): Promise<ParticipantKeyPair> {
  const pair = (await subtle().generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits'])) as {
    privateKey: WebCryptoKey;
    publicKey: WebCryptoKey;
  };
  const publicRaw = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, publicRaw };
}

/**
 * Imports a published public key. WebCrypto checks that the point is on the curve, so a bad key
 * is refused here (E2EE_KEY_INVALID) and never reaches a key derivation.
 */
export async function importPublicKey(raw: Uint8Array): Promise<WebCryptoKey> {
  if (!(raw instanceof Uint8Array) || raw.byteLength !== PUBLIC_KEY_BYTES || raw[0] !== 0x04) {
    throw new E2eeError('E2EE_KEY_INVALID', `a public key is ${PUBLIC_KEY_BYTES} bytes of uncompressed P-256`);
  }
  try {
    return await subtle().importKey('raw', own(raw), { name: 'ECDH', namedCurve: 'P-256' }, true, []);
  } catch (cause) {
    throw new E2eeError('E2EE_KEY_INVALID', 'the public key is not a valid P-256 point', { cause });
  }
}

/** A fresh random group key. */
export function generateGroupKey(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(GROUP_KEY_BYTES));
}

/**
 * The group key that follows `groupKey` after a join, under the new key id `nextKid`: HKDF of the
 * current one. Everyone who holds the current key can follow; the joiner, given only the result,
 * cannot go back to what was sent before it joined.
 */
export async function ratchetGroupKey(groupKey: Uint8Array, nextKid: number): Promise<Uint8Array> {
  const base = await subtle().importKey('raw', own(groupKey), 'HKDF', false, ['deriveBits']);
  const bits = await subtle().deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: concat(utf8('c4v-media e2ee ratchet'), u32(nextKid)) },
    base,
    GROUP_KEY_BYTES * 8,
  );
  return new Uint8Array(bits);
}

/** Who wraps for whom, in which meeting, which key id: bound into the key derivation and the AAD. */
export interface WrapContext {
  meetingId: string;
  fromId: string;
  toId: string;
  kid: number;
}

function contextBytes(c: WrapContext): Uint8Array<ArrayBuffer> {
  return concat(utf8('c4v-media e2ee wrap'), field(utf8(c.meetingId)), field(utf8(c.fromId)), field(utf8(c.toId)), u32(c.kid));
}

async function keyEncryptionKey(own_: WebCryptoKey, peer: WebCryptoKey, salt: Uint8Array, context: Uint8Array): Promise<WebCryptoKey> {
  const secret = await subtle().deriveBits({ name: 'ECDH', public: peer }, own_, 256);
  const ikm = await subtle().importKey('raw', secret, 'HKDF', false, ['deriveKey']);
  return subtle().deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: own(salt), info: own(context) },
    ikm,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

/** A group key wrapped for one recipient. */
export interface WrappedKey {
  salt: Uint8Array;
  iv: Uint8Array;
  /** AES-GCM ciphertext and tag of the group key. */
  ciphertext: Uint8Array;
}

/** Wraps a group key for `recipient` (ECDH + HKDF + AES-GCM, see the file comment). */
export async function wrapGroupKey(sender: ParticipantKeyPair, recipient: WebCryptoKey, groupKey: Uint8Array, context: WrapContext): Promise<WrappedKey> {
  if (groupKey.byteLength !== GROUP_KEY_BYTES) throw new ArgumentError(`a group key is ${GROUP_KEY_BYTES} bytes`);
  const salt = globalThis.crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ctx = contextBytes(context);
  const kek = await keyEncryptionKey(sender.privateKey, recipient, salt, ctx);
  const ciphertext = new Uint8Array(await subtle().encrypt({ name: 'AES-GCM', iv, additionalData: ctx }, kek, own(groupKey)));
  return { salt, iv, ciphertext };
}

/**
 * Unwraps a group key sent to `recipient` by the holder of `senderPublic`. A wrap for someone
 * else, from someone else, for another meeting or key id, or altered on the way fails with
 * E2EE_KEY_INVALID.
 */
export async function unwrapGroupKey(recipient: ParticipantKeyPair, senderPublic: WebCryptoKey, wrapped: WrappedKey, context: WrapContext): Promise<Uint8Array> {
  if (wrapped.salt.byteLength !== SALT_BYTES || wrapped.iv.byteLength !== IV_BYTES) {
    throw new E2eeError('E2EE_MESSAGE_INVALID', 'a wrapped key has a 16-byte salt and a 12-byte iv');
  }
  const ctx = contextBytes(context);
  const kek = await keyEncryptionKey(recipient.privateKey, senderPublic, wrapped.salt, ctx);
  let plain: ArrayBuffer;
  try {
    plain = await subtle().decrypt({ name: 'AES-GCM', iv: own(wrapped.iv), additionalData: ctx }, kek, own(wrapped.ciphertext));
  } catch (cause) {
    throw new E2eeError('E2EE_KEY_INVALID', 'the wrapped key does not open with this participant key (wrong recipient, sender, key id or altered)', { cause });
  }
  if (plain.byteLength !== GROUP_KEY_BYTES) throw new E2eeError('E2EE_KEY_INVALID', `an unwrapped group key must be ${GROUP_KEY_BYTES} bytes`);
  return new Uint8Array(plain);
}
