// The E2EE key messages, carried as the opaque bytes of the gateway's `send_key_message` (the
// server relays them and never reads them). A small fixed binary layout, checked exactly on
// receipt: a message that does not parse is refused with E2EE_MESSAGE_INVALID and changes nothing.
//
//   byte 0: version (1)   byte 1: type   then per type:
//   hello   (1): flags (bit 0: please answer with your hello) | public key (65 bytes)
//   key     (2): kid (u32) | salt (16) | iv (12) | ciphertext (48: key + tag)
//   ratchet (3): from kid (u32) | kid (u32): everyone derives key `kid` from key `from kid`
//   request (4): kid (u32): the sender lacks this key (it saw a frame with it)
// A kid (key id) names one group key; it is the SFrame KID of the frames sent with it.
import { ArgumentError } from '../../lib/errors.js';
import { E2eeError } from './errors.js';
import { PUBLIC_KEY_BYTES, GROUP_KEY_BYTES, type WrappedKey } from './keys.js';

/** The key-message format version this code writes and reads. */
export const KEY_MESSAGE_VERSION = 1;

const TYPE = { hello: 1, key: 2, ratchet: 3, request: 4 } as const;
const WRAPPED_BYTES = GROUP_KEY_BYTES + 16;

/** One E2EE key message. */
export type KeyMessage =
  | { type: 'hello'; publicKey: Uint8Array; wantsReply: boolean }
  | { type: 'key'; kid: number; wrapped: WrappedKey }
  | { type: 'ratchet'; fromKid: number; kid: number }
  | { type: 'request'; kid: number };

function checkKid(kid: number): void {
  if (!Number.isInteger(kid) || kid < 0 || kid > 0xffff_ffff) throw new ArgumentError(`key id out of range: ${kid}`);
}

/** Encodes a key message. */
export function encodeKeyMessage(m: KeyMessage): Uint8Array {
  switch (m.type) {
    case 'hello': {
      if (m.publicKey.byteLength !== PUBLIC_KEY_BYTES) throw new ArgumentError(`a public key is ${PUBLIC_KEY_BYTES} bytes`);
      const out = new Uint8Array(3 + PUBLIC_KEY_BYTES);
      out.set([KEY_MESSAGE_VERSION, TYPE.hello, m.wantsReply ? 1 : 0]);
      out.set(m.publicKey, 3);
      return out;
    }
    case 'key': {
      checkKid(m.kid);
      const { salt, iv, ciphertext } = m.wrapped;
      if (salt.byteLength !== 16 || iv.byteLength !== 12 || ciphertext.byteLength !== WRAPPED_BYTES) throw new ArgumentError('a wrapped key has salt 16, iv 12 and ciphertext 48 bytes');
      const out = new Uint8Array(6 + 16 + 12 + WRAPPED_BYTES);
      out.set([KEY_MESSAGE_VERSION, TYPE.key]);
      new DataView(out.buffer).setUint32(2, m.kid);
      out.set(salt, 6);
      out.set(iv, 22);
      out.set(ciphertext, 34);
      return out;
    }
    case 'ratchet': {
      checkKid(m.fromKid);
      checkKid(m.kid);
      const out = new Uint8Array(10);
      out.set([KEY_MESSAGE_VERSION, TYPE.ratchet]);
      new DataView(out.buffer).setUint32(2, m.fromKid);
      new DataView(out.buffer).setUint32(6, m.kid);
      return out;
    }
    case 'request': {
      checkKid(m.kid);
      const out = new Uint8Array(6);
      out.set([KEY_MESSAGE_VERSION, TYPE.request]);
      new DataView(out.buffer).setUint32(2, m.kid);
      return out;
    }
  }
}

function invalid(why: string): never {
  throw new E2eeError('E2EE_MESSAGE_INVALID', `key message refused: ${why}`);
}

/** Decodes a key message; anything but an exact, known layout throws E2EE_MESSAGE_INVALID. */
export function decodeKeyMessage(bytes: Uint8Array): KeyMessage {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < 2) invalid('shorter than its 2-byte header');
  if (bytes[0] !== KEY_MESSAGE_VERSION) invalid(`unknown version ${bytes[0]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const expect = (n: number, what: string): void => {
    if (bytes.byteLength !== n) invalid(`a ${what} message is ${n} bytes, got ${bytes.byteLength}`);
  };
  switch (bytes[1]) {
    case TYPE.hello: {
      expect(3 + PUBLIC_KEY_BYTES, 'hello');
      if (bytes[2]! > 1) invalid('unknown hello flags');
      return { type: 'hello', wantsReply: bytes[2] === 1, publicKey: bytes.slice(3) };
    }
    case TYPE.key:
      expect(6 + 16 + 12 + WRAPPED_BYTES, 'key');
      return {
        type: 'key',
        kid: view.getUint32(2),
        wrapped: { salt: bytes.slice(6, 22), iv: bytes.slice(22, 34), ciphertext: bytes.slice(34) },
      };
    case TYPE.ratchet:
      expect(10, 'ratchet');
      return { type: 'ratchet', fromKid: view.getUint32(2), kid: view.getUint32(6) };
    case TYPE.request:
      expect(6, 'request');
      return { type: 'request', kid: view.getUint32(2) };
    default:
      return invalid(`unknown type ${bytes[1]}`);
  }
}
