// The key schedule of E2eeSession with several participants. The relay (helpers/e2ee.ts) forwards
// the opaque key messages as the gateway does; test/e2ee-gateway.test.ts runs the same exchange
// through the real server. Pure logic: waits on the relay's delivery promises, no timers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { E2eeError, electLeader, encodeKeyMessage, generateGroupKey, generateKeyPair, importPublicKey, wrapGroupKey, type FrameCryptor } from '../client/e2ee/index.js';
import { KeyRelay, contains, vp8Delta, type RelayPeer } from './helpers/e2ee.js';

/** Whether `to` decrypts a fresh frame of `from`. */
async function decodes(from: RelayPeer, to: { cryptor: FrameCryptor }): Promise<boolean> {
  const enc = await from.cryptor.encrypt('vp8', vp8Delta());
  if (!enc) return false;
  return (await to.cryptor.decrypt(from.id, 'vp8', enc)).ok;
}

async function allDecode(peers: RelayPeer[]): Promise<void> {
  for (const a of peers) for (const b of peers) if (a !== b) assert.ok(await decodes(a, b), `${b.id} decodes ${a.id}`);
}

function codes(peers: RelayPeer[]): string[] {
  return peers.map((p) => p.session.securityCode!);
}

test('electLeader: the host if present, else the earliest admitted, ties by id', () => {
  assert.is(electLeader([]), undefined);
  assert.is(electLeader([{ participantId: 'b', isHost: false, joinOrder: 2 }, { participantId: 'a', isHost: false, joinOrder: 3 }]), 'b');
  assert.is(electLeader([{ participantId: 'b', isHost: false, joinOrder: 1 }, { participantId: 'h', isHost: true, joinOrder: 9 }]), 'h');
  assert.is(electLeader([{ participantId: 'b', isHost: false, joinOrder: 1 }, { participantId: 'a', isHost: false, joinOrder: 1 }]), 'a');
});

test('three participants end up with one key and one security code, and decode each other', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  const b = await relay.join('b');
  const c = await relay.join('c');
  const peers = [a, b, c];
  assert.equal(peers.map((p) => p.session.leaderId), ['a', 'a', 'a'], 'the earliest admitted leads');
  assert.is(new Set(peers.map((p) => p.session.currentKid)).size, 1);
  assert.is(new Set(codes(peers)).size, 1);
  assert.equal(a.session.verifiedMembers, ['a', 'b', 'c']);
  await allDecode(peers);
  assert.equal(relay.errors, []);
});

test('no group key crosses the relay in the clear', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  await relay.join('b');
  await relay.join('c');
  // The group keys are what the cryptors were given; look for them in every relayed byte.
  const cryptorKeys: Uint8Array[] = [];
  const sink = a.cryptor;
  const original = sink.setKey.bind(sink);
  sink.setKey = (kid, key) => (cryptorKeys.push(key.slice()), original(kid, key));
  await relay.join('d');
  assert.ok(cryptorKeys.length > 0);
  for (const key of cryptorKeys) for (const msg of relay.seen) assert.not.ok(contains(msg, [...key.subarray(0, 12)]), 'a group key in a relayed message');
});

test('a join ratchets: the key id changes and the joiner cannot decrypt frames from before it joined', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  const b = await relay.join('b');
  const kidBefore = a.session.currentKid;
  const oldFrame = (await a.cryptor.encrypt('vp8', vp8Delta()))!;
  const codeBefore = a.session.securityCode;
  const c = await relay.join('c');
  assert.is.not(a.session.currentKid, kidBefore);
  assert.is(b.session.currentKid, a.session.currentKid, 'the holders followed the ratchet');
  assert.is(c.session.currentKid, a.session.currentKid, 'the joiner got the ratcheted key');
  assert.equal(await c.cryptor.decrypt('a', 'vp8', oldFrame), { ok: false, reason: 'unknown-key', kid: kidBefore });
  assert.is.not(a.session.securityCode, codeBefore, 'the code changes on join');
  await allDecode([a, b, c]);
});

test('a leave rotates to a fresh key: the leaver, keeping its old key, cannot decode what follows', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  const b = await relay.join('b');
  const c = await relay.join('c');
  const codeBefore = a.session.securityCode;
  const kidBefore = a.session.currentKid;
  assert.ok(await decodes(a, b));
  await relay.leave('b');
  assert.is.not(a.session.currentKid, kidBefore);
  assert.is(c.session.currentKid, a.session.currentKid);
  assert.not.ok(await decodes(a, b), 'the leaver decodes nothing after the rotation');
  assert.not.ok(await decodes(c, b));
  await allDecode([a, c]);
  assert.is.not(a.session.securityCode, codeBefore, 'the code changes on leave');
  assert.is(a.session.securityCode, c.session.securityCode);
});

test('the host leads: a host who arrives late takes over with a fresh key that everyone follows', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  const b = await relay.join('b');
  const h = await relay.join('h', true);
  for (const p of [a, b, h]) assert.is(p.session.leaderId, 'h');
  assert.is(new Set([a, b, h].map((p) => p.session.currentKid)).size, 1);
  await allDecode([a, b, h]);
});

test('the leader leaves: the next earliest admitted rotates, and the old leader cannot decode', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  const b = await relay.join('b');
  const c = await relay.join('c');
  await relay.leave('a');
  assert.equal([b.session.leaderId, c.session.leaderId], ['b', 'b']);
  assert.is(b.session.currentKid, c.session.currentKid);
  await allDecode([b, c]);
  assert.not.ok(await decodes(b, a));
});

test('a lost key message: the frame with the unknown key id is dropped, counted, and the key requested', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  const b = await relay.join('b');
  relay.dropTo.add('c');
  const c = await relay.join('c');
  relay.dropTo.delete('c');
  // c never got a hello or a key: it knows nobody's key and has none.
  assert.is(c.session.currentKid, undefined);
  assert.is(await c.cryptor.encrypt('vp8', vp8Delta()), undefined, 'without a key c sends nothing');
  await c.session.start(); // idempotent: no second hello
  // Its hello did reach the others; the leader keyed it, but that message was lost too.
  assert.is(a.session.verifiedMembers.includes('c'), true);
  const frame = (await b.cryptor.encrypt('vp8', vp8Delta()))!;
  const r = await c.cryptor.decrypt('b', 'vp8', frame);
  assert.is(!r.ok && r.reason, 'unknown-key');
  assert.is(c.cryptor.stats.droppedUnknownKey, 1);
  // c does not know the leader's public key yet (the hellos were lost): it learns it when asking.
  await c.session.keyMissing('b', (r as { kid: number }).kid);
  await relay.settle();
  assert.is(c.session.leaderId, 'a');
  assert.is(c.cryptor.stats.droppedUnknownKey, 1);
  const again = (await b.cryptor.encrypt('vp8', vp8Delta()))!;
  const r2 = await c.cryptor.decrypt('b', 'vp8', again);
  assert.ok(r2.ok, `after the request c decodes (${JSON.stringify(r2)})`);
  assert.equal(relay.errors, []);
});

test('a bad key message is refused with a coded error and changes nothing', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  const b = await relay.join('b');
  const kid = b.session.currentKid;
  const code = b.session.securityCode;
  const seen: string[] = [];
  b.session.on('messageerror', (from, e) => seen.push(`${from}:${(e as E2eeError).code}`));
  for (const [bytes, want] of [
    [new Uint8Array([1, 2, 3]), 'E2EE_MESSAGE_INVALID'],
    [new Uint8Array([1, 1, 0, ...new Uint8Array(65)]), 'E2EE_KEY_INVALID'],
  ] as const) {
    try {
      await b.session.receive('a', bytes);
      assert.unreachable('a bad key message was accepted');
    } catch (error) {
      assert.instance(error, E2eeError);
      assert.is((error as E2eeError).code, want);
    }
  }
  assert.equal(seen, ['a:E2EE_MESSAGE_INVALID', 'a:E2EE_KEY_INVALID']);
  assert.is(b.session.currentKid, kid);
  assert.is(b.session.securityCode, code);
  assert.ok(await decodes(a, b), 'the session still works');
});

test('a valid key wrapped by someone who is not the leader is not used', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  const bPair = await generateKeyPair();
  const b = await relay.join('b', false, bPair);
  const c = await relay.join('c');
  // b wraps a key of its own for c, correctly (with b's real private key): only leadership stops it.
  const kid = c.session.currentKid!;
  const wrapped = await wrapGroupKey(bPair, await importPublicKey(c.session.publicKey), generateGroupKey(), { meetingId: relay.meetingId, fromId: 'b', toId: 'c', kid: 12345 });
  await c.session.receive('b', encodeKeyMessage({ type: 'key', kid: 12345, wrapped }));
  assert.is(c.session.currentKid, kid);
  assert.not.ok(c.cryptor.kids.includes(12345), 'the forged key was not installed');
  await allDecode([a, b, c]);
});

test('setMembers needs this participant and well-formed members', async () => {
  const relay = new KeyRelay();
  const a = await relay.join('a');
  assert.throws(() => a.session.setMembers([{ participantId: 'x', isHost: false, joinOrder: 0 }]), /include this participant/);
  assert.throws(() => a.session.setMembers([{ participantId: 'a', isHost: false, joinOrder: 0 }, { participantId: 'a', isHost: false, joinOrder: 1 }]), /twice/);
});

test.run();
