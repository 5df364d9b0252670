// The E2EE core without a browser: SFrame headers and the RFC 9605 test vector, the clear codec
// prefixes, frame encryption and its drops, key wrapping, the key-message layout and the
// security code. Pure logic, WebCrypto of Node 22 (the same API the browser has).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  E2eeError,
  FrameCryptor,
  clearPrefixLength,
  decodeHeader,
  decodeKeyMessage,
  deriveSFrameKey,
  encodeHeader,
  encodeKeyMessage,
  generateGroupKey,
  generateKeyPair,
  h264Escape,
  h264NalHeaderOffsets,
  h264Unescape,
  importPublicKey,
  isVp8Keyframe,
  ratchetGroupKey,
  securityCode,
  unwrapGroupKey,
  wrapGroupKey,
} from '../client/e2ee/index.js';
import { sframeSeal } from '../client/e2ee/sframe.js';
import { ErrorCodes } from '../lib/errors.js';
import { VP8_START_CODE, contains, entropy, h264Idr, hex, opusPacket, repeating, toHex, vp8Delta, vp8Keyframe } from './helpers/e2ee.js';

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (error) {
    assert.instance(error, E2eeError);
    assert.is((error as E2eeError).code, code);
    return;
  }
  assert.unreachable(`expected ${code}, nothing was thrown`);
}

/** Two cryptors of one meeting that share group key `kid`, as after a key exchange. */
function pair(kid = 0x1234_5678, key = generateGroupKey()): { alice: FrameCryptor; bob: FrameCryptor } {
  const alice = new FrameCryptor('alice');
  const bob = new FrameCryptor('bob');
  for (const c of [alice, bob]) {
    c.setKey(kid, key);
    c.useKey(kid);
  }
  return { alice, bob };
}

test('the E2EE error codes are library error codes', () => {
  for (const code of ['E2EE_MESSAGE_INVALID', 'E2EE_KEY_INVALID', 'E2EE_NOT_SUPPORTED']) assert.ok((ErrorCodes as readonly string[]).includes(code), code);
});

test('SFrame headers follow RFC 9605 §4.3: small values in the config byte, larger ones in the fewest bytes', () => {
  assert.is(toHex(encodeHeader(7, 0)), '70');
  assert.is(toHex(encodeHeader(0, 5)), '05');
  // RFC 9605 test vector: KID 0x123, CTR 0x4567 -> 99 0123 4567.
  assert.is(toHex(encodeHeader(0x123, 0x4567)), '9901234567');
  assert.is(toHex(encodeHeader(0xffff_ffff, 256)), 'b9ffffffff0100');
  for (const [kid, ctr] of [[0, 0], [7, 7], [8, 8], [255, 256], [0x1234_5678, 2 ** 40 + 3], [0xffff_ffff, Number.MAX_SAFE_INTEGER]] as const) {
    const h = encodeHeader(kid, ctr);
    assert.equal(decodeHeader(h), { kid, ctr, length: h.byteLength });
  }
  assert.is(decodeHeader(new Uint8Array([0x99, 0x01])), undefined, 'a truncated header does not parse');
  assert.is(decodeHeader(new Uint8Array(0)), undefined);
  assert.throws(() => encodeHeader(-1, 0), /key id/);
  assert.throws(() => encodeHeader(0, 1.5), /counter/);
});

test('key derivation and sealing match the RFC 9605 test vector for AES_128_GCM_SHA256_128', async () => {
  // test-vectors/sframe.md of the SFrame working group, cipher suite 0x0004.
  const k = await deriveSFrameKey(hex('000102030405060708090a0b0c0d0e0f'), 0x123);
  assert.is(toHex(k.salt), '75234edefe07819026751816');
  const ct = await sframeSeal(k, 0x123, 0x4567, hex('4945544620534672616d65205747'), hex('64726166742d696574662d736672616d652d656e63'));
  assert.is(toHex(ct), '9901234567b7412c2513a1b66dbb48841bbaf17f598751176ad847681a69c6d0b091c07018ce4adb34eb');
});

test('a VP8 keyframe keeps its 10-byte header (tag, start code, size) in the clear, the rest is ciphertext', async () => {
  const { alice, bob } = pair();
  const frame = vp8Keyframe(new Uint8Array(64 * 1024));
  assert.ok(isVp8Keyframe(frame));
  assert.is(clearPrefixLength('vp8', frame), 10);
  const enc = (await alice.encrypt('video/VP8', frame))!;
  assert.equal([...enc.subarray(0, 10)], [...frame.subarray(0, 10)], 'the SFU and the decoder read these bytes');
  assert.ok(isVp8Keyframe(enc), 'mediasoup still sees a keyframe');
  const body = enc.subarray(10);
  assert.not.ok(contains(body, VP8_START_CODE), 'no start code after the clear header');
  assert.ok(entropy(body) > 7.99, `entropy of the encrypted part of an all-zero frame: ${entropy(body)}`);
  const dec = await bob.decrypt('alice', 'vp8', enc);
  assert.ok(dec.ok);
  assert.equal(dec.ok && [...dec.data], [...frame]);
});

test('a VP8 delta frame keeps its 3-byte tag in the clear and is no keyframe to the SFU', async () => {
  const { alice, bob } = pair();
  const frame = vp8Delta();
  const enc = (await alice.encrypt('vp8', frame))!;
  assert.is(clearPrefixLength('vp8', frame), 3);
  assert.equal([...enc.subarray(0, 3)], [...frame.subarray(0, 3)]);
  assert.not.ok(isVp8Keyframe(enc));
  assert.is.not(Buffer.from(enc.subarray(3, 23)).toString('hex'), Buffer.from(frame.subarray(3, 23)).toString('hex'), 'the payload is not sent as is');
  const dec = await bob.decrypt('alice', 'vp8', enc);
  assert.equal(dec.ok && [...dec.data], [...frame]);
});

test('an H264 frame keeps SPS, PPS and the slice NAL header in the clear, and gains no start code', async () => {
  const { alice, bob } = pair();
  const frame = h264Idr();
  const nals = h264NalHeaderOffsets(frame);
  assert.equal(nals.map((h) => frame[h]! & 0x1f), [7, 8, 5]);
  const clear = clearPrefixLength('h264', frame);
  assert.is(clear, nals[2]! + 2, 'up to the IDR NAL header and the byte after it');
  for (let i = 0; i < 50; i++) {
    const enc = (await alice.encrypt('video/H264', frame))!;
    assert.equal([...enc.subarray(0, clear)], [...frame.subarray(0, clear)]);
    // The packetizer cuts at start codes: the encrypted frame has exactly the same NAL units.
    assert.equal(h264NalHeaderOffsets(enc), nals);
    const dec = await bob.decrypt('alice', 'h264', enc);
    assert.equal(dec.ok && [...dec.data], [...frame]);
  }
});

test('an H264 frame whose parameter sets and start codes the receiver rebuilt still decrypts; its slice header is authenticated', async () => {
  const { alice, bob } = pair();
  const frame = h264Idr();
  const enc = (await alice.encrypt('h264', frame))!;
  // What a depacketizer hands over: 4-byte start codes everywhere, SPS and PPS in front again.
  const idrAt = h264NalHeaderOffsets(enc)[2]! - 3;
  const rebuilt = new Uint8Array([...enc.subarray(0, idrAt), 0, ...enc.subarray(idrAt)]);
  const dec = await bob.decrypt('alice', 'h264', rebuilt);
  assert.ok(dec.ok, JSON.stringify(dec));
  const tampered = enc.slice();
  tampered[idrAt + 3] = 0x61; // the IDR slice claims to be a non-IDR one
  assert.is((await bob.decrypt('alice', 'h264', tampered)).ok, false);
});

test('H264 escaping removes every start code, also across the clear boundary, and is reversible', () => {
  const data = new Uint8Array([0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0, 2, 5, 0]);
  for (const before of [new Uint8Array([0x65]), new Uint8Array([0x65, 0]), new Uint8Array([0, 0])]) {
    const esc = h264Escape(data, before);
    const joined = new Uint8Array([...before, ...esc]);
    for (let i = 0; i + 2 < joined.length; i++) assert.not.ok(joined[i] === 0 && joined[i + 1] === 0 && joined[i + 2]! <= 3 && !(joined[i + 2] === 3), `start-code-like bytes at ${i}`);
    assert.equal([...h264Unescape(esc, before)], [...data]);
  }
});

test('opus keeps its TOC byte in the clear', async () => {
  const { alice, bob } = pair();
  const pkt = opusPacket();
  const enc = (await alice.encrypt('audio/opus', pkt))!;
  assert.is(enc[0], pkt[0]);
  assert.is(enc.byteLength, pkt.byteLength + 5 + 16, 'overhead: the header (config byte and a 4-byte kid; counter 0 fits the config byte) and the GCM tag');
  const dec = await bob.decrypt('alice', 'opus', enc);
  assert.equal(dec.ok && [...dec.data], [...pkt]);
});

test('a clear header altered on the way fails authentication and is counted', async () => {
  const { alice, bob } = pair();
  const enc = (await alice.encrypt('vp8', vp8Keyframe()))!;
  enc[6] = enc[6]! ^ 0x01; // the width
  const dec = await bob.decrypt('alice', 'vp8', enc);
  assert.equal(dec, { ok: false, reason: 'auth-failed', kid: 0x1234_5678 });
  assert.is(bob.stats.droppedAuthFailed, 1);
});

test('a frame decrypted as if from another sender fails: each sender has its own key branch', async () => {
  const { alice, bob } = pair();
  const enc = (await alice.encrypt('vp8', vp8Delta()))!;
  const dec = await bob.decrypt('carol', 'vp8', enc);
  assert.is(dec.ok, false);
  assert.is(!dec.ok && dec.reason, 'auth-failed');
});

test('without a key nothing is sent (never in the clear); an unknown key id is dropped and counted', async () => {
  const lonely = new FrameCryptor('alice');
  assert.is(await lonely.encrypt('vp8', vp8Delta()), undefined);
  assert.is(lonely.stats.droppedNoKey, 1);
  const { alice } = pair(42);
  const enc = (await alice.encrypt('vp8', vp8Delta()))!;
  const dec = await lonely.decrypt('alice', 'vp8', enc);
  assert.equal(dec, { ok: false, reason: 'unknown-key', kid: 42 });
  assert.is(lonely.stats.droppedUnknownKey, 1);
  assert.equal(await lonely.decrypt('alice', 'vp8', new Uint8Array([0x51, 0, 0, 0x99])), { ok: false, reason: 'malformed' });
  assert.equal(await lonely.decrypt('alice', 'h264', h264Idr()), { ok: false, reason: 'malformed' }, 'a clear H264 frame lacks the trailer');
  assert.is(lonely.stats.droppedMalformed, 2);
});

test('after a rotation an old key cannot decrypt: not by its id, and not when forced in under the new id', async () => {
  const oldKey = generateGroupKey();
  const { alice, bob } = pair(1, oldKey);
  const leaver = new FrameCryptor('leaver');
  leaver.setKey(1, oldKey);
  const before = (await alice.encrypt('vp8', vp8Delta()))!;
  assert.ok((await leaver.decrypt('alice', 'vp8', before)).ok, 'the leaver could decrypt before');
  const newKey = generateGroupKey();
  for (const c of [alice, bob]) {
    c.setKey(2, newKey);
    c.useKey(2);
    c.retainKeys([2]);
  }
  const after = (await alice.encrypt('vp8', vp8Delta()))!;
  assert.equal(await leaver.decrypt('alice', 'vp8', after), { ok: false, reason: 'unknown-key', kid: 2 });
  leaver.setKey(2, oldKey);
  assert.equal(await leaver.decrypt('alice', 'vp8', after), { ok: false, reason: 'auth-failed', kid: 2 });
  assert.ok((await bob.decrypt('alice', 'vp8', after)).ok);
  assert.equal(await bob.decrypt('alice', 'vp8', before), { ok: false, reason: 'unknown-key', kid: 1 }, 'the old key is gone here too');
});

test('counters never repeat under one key, across frames and tracks of a sender', async () => {
  const { alice } = pair(9);
  const frames = await Promise.all(Array.from({ length: 40 }, (_, i) => alice.encrypt(i % 2 ? 'opus' : 'vp8', i % 2 ? opusPacket() : vp8Delta())));
  const ctrs = frames.map((f, i) => decodeHeader(f!.subarray(i % 2 ? 1 : 3))!.ctr);
  assert.is(new Set(ctrs).size, 40);
});

test('a group key wrapped for one participant opens only for it, from its sender, in its meeting and key id', async () => {
  const leader = await generateKeyPair();
  const bob = await generateKeyPair();
  const eve = await generateKeyPair();
  const key = generateGroupKey();
  const ctx = { meetingId: 'm1', fromId: 'leader', toId: 'bob', kid: 7 };
  const wrapped = await wrapGroupKey(leader, bob.publicKey, key, ctx);
  assert.not.ok(contains(wrapped.ciphertext, [...key.subarray(0, 8)]), 'the key is not in the message');
  assert.equal([...(await unwrapGroupKey(bob, leader.publicKey, wrapped, ctx))], [...key]);
  await expectCode(unwrapGroupKey(eve, leader.publicKey, wrapped, ctx), 'E2EE_KEY_INVALID');
  await expectCode(unwrapGroupKey(bob, eve.publicKey, wrapped, ctx), 'E2EE_KEY_INVALID');
  await expectCode(unwrapGroupKey(bob, leader.publicKey, wrapped, { ...ctx, meetingId: 'm2' }), 'E2EE_KEY_INVALID');
  await expectCode(unwrapGroupKey(bob, leader.publicKey, wrapped, { ...ctx, kid: 8 }), 'E2EE_KEY_INVALID');
  const flipped = { ...wrapped, ciphertext: wrapped.ciphertext.slice() };
  flipped.ciphertext[0] = flipped.ciphertext[0]! ^ 1;
  await expectCode(unwrapGroupKey(bob, leader.publicKey, flipped, ctx), 'E2EE_KEY_INVALID');
  const again = await wrapGroupKey(leader, bob.publicKey, key, ctx);
  assert.is.not(toHex(again.ciphertext), toHex(wrapped.ciphertext), 'every wrap has its own salt and iv');
});

test('a public key that is not a P-256 point is refused with E2EE_KEY_INVALID', async () => {
  const good = (await generateKeyPair()).publicRaw;
  await importPublicKey(good);
  await expectCode(importPublicKey(good.subarray(0, 33)), 'E2EE_KEY_INVALID');
  const offCurve = good.slice();
  offCurve[64] = offCurve[64]! ^ 1;
  await expectCode(importPublicKey(offCurve), 'E2EE_KEY_INVALID');
});

test('a ratchet is deterministic for key holders and different from the key it came from', async () => {
  const key = generateGroupKey();
  const a = await ratchetGroupKey(key, 5);
  assert.equal([...a], [...(await ratchetGroupKey(key, 5))]);
  assert.is.not(toHex(a), toHex(key));
  assert.is.not(toHex(a), toHex(await ratchetGroupKey(key, 6)));
});

test('key messages round-trip, and anything but the exact layout is refused with E2EE_MESSAGE_INVALID', async () => {
  const pub = (await generateKeyPair()).publicRaw;
  const wrapped = { salt: new Uint8Array(16).fill(1), iv: new Uint8Array(12).fill(2), ciphertext: new Uint8Array(48).fill(3) };
  for (const m of [
    { type: 'hello', publicKey: pub, wantsReply: true },
    { type: 'hello', publicKey: pub, wantsReply: false },
    { type: 'key', kid: 0xffff_ffff, wrapped },
    { type: 'ratchet', fromKid: 1, kid: 2 },
    { type: 'request', kid: 3 },
  ] as const) {
    assert.equal(decodeKeyMessage(encodeKeyMessage(m)), m);
  }
  const ok = encodeKeyMessage({ type: 'request', kid: 3 });
  await expectCode(() => decodeKeyMessage(new Uint8Array([1])), 'E2EE_MESSAGE_INVALID');
  await expectCode(() => decodeKeyMessage(new Uint8Array([2, ...ok.subarray(1)])), 'E2EE_MESSAGE_INVALID');
  await expectCode(() => decodeKeyMessage(new Uint8Array([1, 9, 0, 0, 0, 0])), 'E2EE_MESSAGE_INVALID');
  await expectCode(() => decodeKeyMessage(new Uint8Array([...ok, 0])), 'E2EE_MESSAGE_INVALID');
  await expectCode(() => decodeKeyMessage(encodeKeyMessage({ type: 'key', kid: 1, wrapped }).subarray(0, 60)), 'E2EE_MESSAGE_INVALID');
});

test('the security code: same for the same view in any order, different on join, leave, key swap or another meeting', async () => {
  const keys = await Promise.all([0, 1, 2].map(() => generateKeyPair()));
  const members = keys.map((k, i) => ({ participantId: `p${i}`, publicKey: k.publicRaw }));
  const code = await securityCode('m1', members);
  assert.match(code, /^\d{4}( \d{4}){5}$/);
  assert.is(await securityCode('m1', [...members].reverse()), code);
  assert.is.not(await securityCode('m1', members.slice(0, 2)), code, 'a leave changes it');
  const joiner = { participantId: 'p3', publicKey: (await generateKeyPair()).publicRaw };
  assert.is.not(await securityCode('m1', [...members, joiner]), code, 'a join changes it');
  const swapped = members.map((m, i) => (i === 1 ? { ...m, publicKey: joiner.publicKey } : m));
  assert.is.not(await securityCode('m1', swapped), code, 'a key swapped in between changes it');
  assert.is.not(await securityCode('m2', members), code);
  try {
    await securityCode('', members);
    assert.unreachable('a code without a meeting id');
  } catch (error) {
    assert.instance(error, TypeError);
  }
});

test('a long low-entropy frame encrypts to about 8 bits per byte in every codec', async () => {
  const { alice } = pair();
  for (const [codec, frame] of [
    ['vp8', vp8Keyframe(repeating(32 * 1024))],
    ['h264', h264Idr()],
    ['opus', new Uint8Array([0x48, ...repeating(32 * 1024)])],
  ] as const) {
    const enc = (await alice.encrypt(codec, frame))!;
    const body = enc.subarray(clearPrefixLength(codec, frame) + 6);
    // H264's escaping adds a few 0x03 bytes; a 600-byte sample has less entropy by its size alone.
    assert.ok(entropy(body) > (codec === 'h264' ? 7.5 : 7.99), `${codec}: ${entropy(body)} bits/byte`);
  }
});

test.run();
