// SRTP (RFC 3711) for the TypeScript fallback of the packet engine: AES_CM_128_HMAC_SHA1_80 and
// _32, the suites mediasoup's PlainTransport uses by default. RTP only: the benchmark never sends
// RTCP, and receivers skip RTCP before unprotecting. The native engine uses libsrtp2 instead.
import { createCipheriv, createHmac, timingSafeEqual } from 'node:crypto';
import { C4vError } from '../../lib/errors.js';

/** An SRTP crypto suite as mediasoup names it. */
export type SrtpSuite = 'AES_CM_128_HMAC_SHA1_80' | 'AES_CM_128_HMAC_SHA1_32' | 'AEAD_AES_128_GCM' | 'AEAD_AES_256_GCM';

/** Master key + salt length per suite. */
export const SRTP_KEY_LENGTHS: Record<SrtpSuite, number> = {
  AES_CM_128_HMAC_SHA1_80: 30,
  AES_CM_128_HMAC_SHA1_32: 30,
  AEAD_AES_128_GCM: 28,
  AEAD_AES_256_GCM: 44,
};

/** An SRTP master key: the suite and 'key' = master key followed by master salt. */
export interface SrtpKey {
  suite: SrtpSuite;
  key: Buffer;
}

/** Throws NATIVE_BAD_SRTP_KEY unless `k` names a known suite and has that suite's key length. */
export function assertSrtpKey(k: SrtpKey): void {
  const need = k && SRTP_KEY_LENGTHS[k.suite as SrtpSuite];
  if (!need) throw new C4vError('NATIVE_BAD_SRTP_KEY', `unknown SRTP crypto suite ${String(k?.suite)}`);
  if (!Buffer.isBuffer(k.key) || k.key.length !== need) {
    throw new C4vError('NATIVE_BAD_SRTP_KEY', `an ${k.suite} key is ${need} bytes (master key + salt), got ${Buffer.isBuffer(k.key) ? k.key.length : typeof k.key}`);
  }
}

function aesCm(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const c = createCipheriv('aes-128-ctr', key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

/** RFC 3711 4.3.1 key derivation with key_derivation_rate 0. */
function derive(masterKey: Buffer, masterSalt: Buffer, label: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  masterSalt.copy(iv, 0);
  iv[7]! ^= label;
  return aesCm(masterKey, iv, Buffer.alloc(length));
}

interface StreamState {
  roc: number;
  maxSeq: number;
}

/** One direction of SRTP for any SSRC (each SSRC keeps its own rollover counter). */
export class TsSrtpSession {
  readonly #encKey: Buffer;
  readonly #authKey: Buffer;
  readonly #salt: Buffer;
  readonly #tagLength: number;
  readonly #streams = new Map<number, StreamState>();

  constructor(k: SrtpKey) {
    assertSrtpKey(k);
    if (k.suite !== 'AES_CM_128_HMAC_SHA1_80' && k.suite !== 'AES_CM_128_HMAC_SHA1_32') {
      throw new C4vError('NATIVE_BAD_SRTP_KEY', `the TypeScript SRTP fallback does not implement ${k.suite}; build the native engine`);
    }
    const masterKey = k.key.subarray(0, 16);
    const masterSalt = k.key.subarray(16, 30);
    this.#encKey = derive(masterKey, masterSalt, 0, 16);
    this.#authKey = derive(masterKey, masterSalt, 1, 20);
    this.#salt = derive(masterKey, masterSalt, 2, 14);
    this.#tagLength = k.suite === 'AES_CM_128_HMAC_SHA1_80' ? 10 : 4;
  }

  #iv(ssrc: number, index: number): Buffer {
    const iv = Buffer.alloc(16);
    this.#salt.copy(iv, 0);
    iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
    // The 48-bit packet index goes into bytes 8..13.
    const hi = Math.floor(index / 2 ** 32);
    const lo = index >>> 0;
    iv.writeUInt16BE(iv.readUInt16BE(8) ^ (hi & 0xffff), 8);
    iv.writeUInt32BE((iv.readUInt32BE(10) ^ lo) >>> 0, 10);
    return iv;
  }

  #tag(authenticated: Buffer, roc: number): Buffer {
    const r = Buffer.alloc(4);
    r.writeUInt32BE(roc >>> 0);
    return createHmac('sha1', this.#authKey).update(authenticated).update(r).digest().subarray(0, this.#tagLength);
  }

  /** Encrypts and authenticates one RTP packet; returns a new Buffer. */
  protect(packet: Buffer): Buffer {
    const { headerLength, ssrc, seq } = parseRtp(packet);
    let st = this.#streams.get(ssrc);
    if (!st) this.#streams.set(ssrc, (st = { roc: 0, maxSeq: seq }));
    else if (seq < st.maxSeq && st.maxSeq - seq > 0x8000) st.roc++;
    if (((seq - st.maxSeq) & 0xffff) < 0x8000) st.maxSeq = seq;
    const index = st.roc * 0x10000 + seq;
    const body = aesCm(this.#encKey, this.#iv(ssrc, index), packet.subarray(headerLength));
    const out = Buffer.concat([packet.subarray(0, headerLength), body]);
    return Buffer.concat([out, this.#tag(out, st.roc)]);
  }

  /** Authenticates and decrypts one SRTP packet; NATIVE_BAD_SRTP_KEY when the tag does not match. */
  unprotect(packet: Buffer): Buffer {
    if (packet.length < 12 + this.#tagLength) throw new C4vError('NATIVE_BAD_SRTP_KEY', 'SRTP packet too short');
    const authed = packet.subarray(0, packet.length - this.#tagLength);
    const { headerLength, ssrc, seq } = parseRtp(authed);
    const st = this.#streams.get(ssrc) ?? { roc: 0, maxSeq: seq };
    // RFC 3711 appendix A: guess the rollover counter from the highest sequence number seen.
    let roc = st.roc;
    if (st.maxSeq < 0x8000) {
      if (seq - st.maxSeq > 0x8000) roc = st.roc - 1;
    } else if (st.maxSeq - 0x8000 > seq) {
      roc = st.roc + 1;
    }
    const tag = this.#tag(authed, roc >>> 0);
    if (!timingSafeEqual(tag, packet.subarray(packet.length - this.#tagLength))) {
      throw new C4vError('NATIVE_BAD_SRTP_KEY', 'SRTP authentication failed (wrong key?)');
    }
    if (roc > st.roc || (roc === st.roc && seq > st.maxSeq)) {
      st.roc = roc;
      st.maxSeq = seq;
    }
    this.#streams.set(ssrc, st);
    const index = roc * 0x10000 + seq;
    const body = aesCm(this.#encKey, this.#iv(ssrc, index), authed.subarray(headerLength));
    return Buffer.concat([authed.subarray(0, headerLength), body]);
  }
}

/** Header length (with CSRCs and extension), SSRC and sequence number of an RTP packet. */
export function parseRtp(p: Buffer): { headerLength: number; ssrc: number; seq: number } {
  if (p.length < 12 || p[0]! >> 6 !== 2) throw new C4vError('INVALID_ARGUMENT', 'not an RTP packet');
  let off = 12 + (p[0]! & 0x0f) * 4;
  if (p[0]! & 0x10) {
    if (p.length < off + 4) throw new C4vError('INVALID_ARGUMENT', 'truncated RTP header extension');
    off += 4 + p.readUInt16BE(off + 2) * 4;
  }
  if (off > p.length) throw new C4vError('INVALID_ARGUMENT', 'truncated RTP header');
  return { headerLength: off, ssrc: p.readUInt32BE(8), seq: p.readUInt16BE(2) };
}
