// SFrame (RFC 9605) frame encryption with a clear codec prefix.
//
// An encrypted frame is   clear prefix | SFrame header | AES-GCM ciphertext and tag
// where the header carries the key id (KID) and the counter (CTR) as in RFC 9605 §4.3, the key and
// salt come from the base key as in §4.4.2 (cipher suite AES_128_GCM_SHA256_128), the nonce is the
// salt XOR the counter, and the AAD is the header followed by the clear prefix (§4.4.3 with the
// prefix as "metadata"; for H264 only its last two bytes, see authenticatedPrefix). For H264 the
// part after the prefix is escaped (codecs.ts).
//
// Keys: a group key (named by its key id, the KID on the wire) is never used directly. Each
// sender's base key is HKDF(group key, "c4v-media e2ee sender" | sender id | kid), so two senders
// with the same key and counter never share a nonce.
import { ArgumentError } from '../../lib/errors.js';
import { concat, field, own, u32, utf8 } from './bytes.js';
import { authenticatedPrefix, clearPrefixLength, codecOf, h264Escape, h264Unescape, H264_TRAILER, type FrameCodec } from './codecs.js';

type Subtle = typeof globalThis.crypto.subtle;
/** A WebCrypto key (typed through `crypto.subtle`, so this file compiles for browsers and Node). */
export type WebCryptoKey = Awaited<ReturnType<Subtle['importKey']>>;

const subtle = (): Subtle => globalThis.crypto.subtle;

/** RFC 9605 cipher suite AES_128_GCM_SHA256_128: Nk = 16, Nn = 12, tag 16 bytes. */
export const CIPHER_SUITE = 0x0004;
const NK = 16;
const NN = 12;
/** The largest key id and counter this implementation writes or accepts (safe integers). */
export const MAX_KID = 0xffff_ffff;
export const MAX_CTR = Number.MAX_SAFE_INTEGER;

/** A parsed SFrame header. */
export interface SFrameHeader {
  /** Key id: names the group key the frame was sent with. */
  kid: number;
  /** Per-sender frame counter. */
  ctr: number;
  /** Bytes the header takes on the wire. */
  length: number;
}

function minBytes(n: number): number {
  let len = 1;
  while (len < 8 && n >= 2 ** (8 * len)) len++;
  return len;
}

function writeBigEndian(out: Uint8Array, at: number, n: number, len: number): void {
  for (let i = len - 1; i >= 0; i--) {
    out[at + i] = n % 256;
    n = Math.floor(n / 256);
  }
}

/**
 * Encodes an SFrame header (RFC 9605 §4.3): config byte `X K(3) Y C(3)`; a KID or CTR below 8
 * fits in its 3 bits, a larger one follows in the fewest big-endian bytes (length - 1 in the bits).
 */
export function encodeHeader(kid: number, ctr: number): Uint8Array {
  if (!Number.isSafeInteger(kid) || kid < 0 || kid > MAX_KID) throw new ArgumentError(`SFrame key id out of range: ${kid}`);
  if (!Number.isSafeInteger(ctr) || ctr < 0 || ctr > MAX_CTR) throw new ArgumentError(`SFrame counter out of range: ${ctr}`);
  const kLen = kid < 8 ? 0 : minBytes(kid);
  const cLen = ctr < 8 ? 0 : minBytes(ctr);
  const out = new Uint8Array(1 + kLen + cLen);
  const k = kLen === 0 ? kid << 4 : 0x80 | ((kLen - 1) << 4);
  const c = cLen === 0 ? ctr : 0x08 | (cLen - 1);
  out[0] = k | c;
  if (kLen) writeBigEndian(out, 1, kid, kLen);
  if (cLen) writeBigEndian(out, 1 + kLen, ctr, cLen);
  return out;
}

/** Parses an SFrame header at the start of `bytes`; undefined when it is truncated or out of range. */
export function decodeHeader(bytes: Uint8Array): SFrameHeader | undefined {
  if (bytes.byteLength < 1) return undefined;
  const cfg = bytes[0]!;
  const kLen = cfg & 0x80 ? ((cfg >> 4) & 0x07) + 1 : 0;
  const cLen = cfg & 0x08 ? (cfg & 0x07) + 1 : 0;
  if (bytes.byteLength < 1 + kLen + cLen) return undefined;
  const read = (at: number, len: number): number => {
    let n = 0;
    for (let i = 0; i < len; i++) n = n * 256 + bytes[at + i]!;
    return n;
  };
  const kid = kLen ? read(1, kLen) : (cfg >> 4) & 0x07;
  const ctr = cLen ? read(1 + kLen, cLen) : cfg & 0x07;
  if (kid > MAX_KID || ctr > MAX_CTR) return undefined;
  return { kid, ctr, length: 1 + kLen + cLen };
}

/** An SFrame key and salt for one KID (RFC 9605 §4.4.2). */
export interface SFrameKey {
  key: WebCryptoKey;
  salt: Uint8Array<ArrayBuffer>;
}

async function hkdf(ikm: Uint8Array, info: Uint8Array, bytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const base = await subtle().importKey('raw', own(ikm), 'HKDF', false, ['deriveBits']);
  const bits = await subtle().deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: own(info) }, base, bytes * 8);
  return new Uint8Array(bits);
}

/**
 * RFC 9605 §4.4.2 for AES_128_GCM_SHA256_128: sframe_secret = HKDF-Extract("", base_key);
 * key = Expand(secret, "SFrame 1.0 Secret key " | KID (8 bytes) | suite (2 bytes), 16);
 * salt = Expand(secret, "SFrame 1.0 Secret salt " | KID | suite, 12). WebCrypto's HKDF is
 * Extract then Expand, with an empty salt as here.
 */
export async function deriveSFrameKey(baseKey: Uint8Array, kid: number): Promise<SFrameKey> {
  const kidAndSuite = new Uint8Array(10);
  writeBigEndian(kidAndSuite, 0, kid, 8);
  kidAndSuite[8] = CIPHER_SUITE >> 8;
  kidAndSuite[9] = CIPHER_SUITE & 0xff;
  const rawKey = await hkdf(baseKey, concat(utf8('SFrame 1.0 Secret key '), kidAndSuite), NK);
  const salt = await hkdf(baseKey, concat(utf8('SFrame 1.0 Secret salt '), kidAndSuite), NN);
  const key = await subtle().importKey('raw', rawKey, 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { key, salt };
}

/** A sender's base key for a group key: its own branch of it (see the file comment). */
export async function senderBaseKey(groupKey: Uint8Array, senderId: string, kid: number): Promise<Uint8Array<ArrayBuffer>> {
  return hkdf(groupKey, concat(utf8('c4v-media e2ee sender'), field(utf8(senderId)), u32(kid)), 32);
}

function nonceOf(salt: Uint8Array, ctr: number): Uint8Array<ArrayBuffer> {
  const n = new Uint8Array(NN);
  writeBigEndian(n, NN - 8, ctr, 8);
  for (let i = 0; i < NN; i++) n[i] = n[i]! ^ salt[i]!;
  return n;
}

/** Encrypts one frame body with an SFrame key: returns header | ciphertext (RFC 9605 §4.4.3). */
export async function sframeSeal(k: SFrameKey, kid: number, ctr: number, metadata: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  const header = encodeHeader(kid, ctr);
  const ct = await subtle().encrypt({ name: 'AES-GCM', iv: nonceOf(k.salt, ctr), additionalData: concat(header, metadata), tagLength: 128 }, k.key, own(plaintext));
  return concat(header, new Uint8Array(ct));
}

/** Why a frame could not be decrypted. */
export type DropReason = 'unknown-key' | 'auth-failed' | 'malformed';

/** What decrypting a frame gave: the plain frame, or why it was dropped (and the key id it named). */
export type DecryptResult = { ok: true; data: Uint8Array } | { ok: false; reason: DropReason; kid?: number };

/** Counters of a FrameCryptor; every frame it saw is in exactly one of them. */
export interface CryptorStats {
  encrypted: number;
  decrypted: number;
  /** Frames not sent because no key was set yet (never sent in the clear). */
  droppedNoKey: number;
  /** Received frames whose key id this cryptor has no key for. */
  droppedUnknownKey: number;
  /** Received frames that failed authentication (wrong key, altered bytes). */
  droppedAuthFailed: number;
  /** Received frames too short or with a bad header or trailer. */
  droppedMalformed: number;
  /** Milliseconds spent encrypting (all encrypted frames together; for the cost figures). */
  encryptMs: number;
  /** Milliseconds spent decrypting (all decrypted frames together). */
  decryptMs: number;
}

/** Where an E2EE session puts the group keys: a FrameCryptor, or the worker that holds one. */
export interface KeySink {
  /** Installs group key `kid` (32 bytes) for decryption. */
  setKey(kid: number, groupKey: Uint8Array): void;
  /** Sends with group key `kid` (set before) from now on. */
  useKey(kid: number): void;
  /** Forgets every key not listed (old keys go, so that a later leak reveals less). */
  retainKeys(kids: readonly number[]): void;
}

function checkKid(kid: number): void {
  if (!Number.isSafeInteger(kid) || kid < 0 || kid > MAX_KID) throw new ArgumentError(`key id out of range: ${kid}`);
}

/**
 * Encrypts this participant's frames and decrypts the others', with the group keys it was given.
 * One cryptor must serve all of a sender's tracks (one realm: the E2EE worker, or the page),
 * because the counter it keeps per key is what keeps nonces unique.
 */
export class FrameCryptor implements KeySink {
  readonly selfId: string;
  readonly #groupKeys = new Map<number, Uint8Array>();
  readonly #derived = new Map<string, Promise<SFrameKey>>();
  #sendKid: number | undefined;
  #counter = 0;
  readonly #stats: CryptorStats = { encrypted: 0, decrypted: 0, droppedNoKey: 0, droppedUnknownKey: 0, droppedAuthFailed: 0, droppedMalformed: 0, encryptMs: 0, decryptMs: 0 };

  constructor(selfId: string) {
    if (typeof selfId !== 'string' || selfId === '') throw new ArgumentError('FrameCryptor needs this participant id');
    this.selfId = selfId;
  }

  setKey(kid: number, groupKey: Uint8Array): void {
    checkKid(kid);
    if (!(groupKey instanceof Uint8Array) || groupKey.byteLength !== 32) throw new ArgumentError('a group key is 32 bytes');
    this.#groupKeys.set(kid, groupKey.slice());
    // A replaced key must not be used through what was derived from the old one, nor reuse its counters.
    for (const id of [...this.#derived.keys()]) if (id.startsWith(`${kid}/`)) this.#derived.delete(id);
    if (this.#sendKid === kid) this.#counter = 0;
  }

  useKey(kid: number): void {
    if (!this.#groupKeys.has(kid)) throw new ArgumentError(`no group key ${kid}`);
    if (this.#sendKid !== kid) this.#counter = 0;
    this.#sendKid = kid;
  }

  retainKeys(kids: readonly number[]): void {
    const keep = new Set(kids);
    for (const kid of [...this.#groupKeys.keys()]) if (!keep.has(kid)) this.#groupKeys.delete(kid);
    for (const id of [...this.#derived.keys()]) if (!keep.has(Number(id.split('/')[0]))) this.#derived.delete(id);
    if (this.#sendKid !== undefined && !keep.has(this.#sendKid)) this.#sendKid = undefined;
  }

  /** The key id frames are sent with, if any. */
  get sendKid(): number | undefined {
    return this.#sendKid;
  }

  /** The key ids it holds. */
  get kids(): number[] {
    return [...this.#groupKeys.keys()];
  }

  /** A copy of the counters. */
  get stats(): CryptorStats {
    return { ...this.#stats };
  }

  #sframeKey(senderId: string, kid: number): Promise<SFrameKey> | undefined {
    const group = this.#groupKeys.get(kid);
    if (!group) return undefined;
    const id = `${kid}/${senderId}`;
    let k = this.#derived.get(id);
    if (!k) {
      k = senderBaseKey(group, senderId, kid).then((base) => deriveSFrameKey(base, kid));
      this.#derived.set(id, k);
    }
    return k;
  }

  /**
   * Encrypts one of this participant's frames; undefined (and counted) when there is no key yet:
   * a frame is never sent in the clear. `codec` is a FrameCodec or a mime type.
   */
  async encrypt(codec: FrameCodec | string, frame: Uint8Array): Promise<Uint8Array | undefined> {
    const kid = this.#sendKid;
    const k = kid === undefined ? undefined : this.#sframeKey(this.selfId, kid);
    if (kid === undefined || !k) {
      this.#stats.droppedNoKey++;
      return undefined;
    }
    const started = performance.now();
    const c = codecOf(codec);
    // Taken before the first await: concurrent frames never get the same counter.
    const ctr = this.#counter++;
    const n = clearPrefixLength(c, frame);
    const prefix = frame.subarray(0, n);
    const sealed = await sframeSeal(await k, kid, ctr, authenticatedPrefix(c, prefix), frame.subarray(n));
    const out = c === 'h264' ? concat(prefix, h264Escape(sealed, prefix), new Uint8Array([H264_TRAILER])) : concat(prefix, sealed);
    this.#stats.encrypted++;
    this.#stats.encryptMs += performance.now() - started;
    return out;
  }

  /** Decrypts a frame `senderId` sent. A frame that cannot be decrypted is counted under its reason. */
  async decrypt(senderId: string, codec: FrameCodec | string, frame: Uint8Array): Promise<DecryptResult> {
    const started = performance.now();
    const c = codecOf(codec);
    const n = clearPrefixLength(c, frame);
    const prefix = frame.subarray(0, n);
    let body = frame.subarray(n);
    if (c === 'h264') {
      if (body.byteLength === 0 || body[body.byteLength - 1] !== H264_TRAILER) return this.#drop('malformed');
      body = h264Unescape(body.subarray(0, body.byteLength - 1), prefix);
    }
    const header = decodeHeader(body);
    if (!header || body.byteLength < header.length + 16) return this.#drop('malformed');
    const k = this.#sframeKey(senderId, header.kid);
    if (!k) return this.#drop('unknown-key', header.kid);
    const key = await k;
    try {
      const plain = await subtle().decrypt(
        { name: 'AES-GCM', iv: nonceOf(key.salt, header.ctr), additionalData: concat(body.subarray(0, header.length), authenticatedPrefix(c, prefix)), tagLength: 128 },
        key.key,
        own(body.subarray(header.length)),
      );
      const data = concat(prefix, new Uint8Array(plain));
      this.#stats.decrypted++;
      this.#stats.decryptMs += performance.now() - started;
      return { ok: true, data };
    } catch {
      return this.#drop('auth-failed', header.kid);
    }
  }

  #drop(reason: DropReason, kid?: number): DecryptResult {
    if (reason === 'unknown-key') this.#stats.droppedUnknownKey++;
    else if (reason === 'auth-failed') this.#stats.droppedAuthFailed++;
    else this.#stats.droppedMalformed++;
    return kid === undefined ? { ok: false, reason } : { ok: false, reason, kid };
  }
}
