// Join tokens as JWTs (gateway/tokens.ts): HS256, EdDSA and ES256 with kid, rotation, clock skew,
// and every way a token can be wrong. Tokens from "another backend" are built with jose directly,
// the way a LiveKit or Jitsi integrator's backend would build them.
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_CLOCK_TOLERANCE_S, JoinTokens } from '../gateway/tokens.js';
import { toErrorPayload } from '../lib/errors.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes-long';
const NOW = 1_800_000_000_000;
const nowS = NOW / 1000;

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (error) {
    return toErrorPayload(error).code;
  }
  return 'did not throw';
}

function pem(alg: 'ed25519' | 'ec'): { publicKey: string; privateKey: string } {
  const pair =
    alg === 'ed25519'
      ? generateKeyPairSync('ed25519', { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } })
      : generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  return pair;
}

const claims = { mid: 'm1', role: 'participant', name: 'Anna' };

test('HS256: a minted token is a standard JWT carrying sub, mid, role, name, iat, nbf, exp', async () => {
  const tokens = new JoinTokens({ keys: [{ alg: 'HS256', secret: SECRET }], now: () => NOW });
  const jwt = await tokens.mint({ identity: 'anna@schule-a.de', meetingId: 'm1', role: 'host', displayName: 'Anna' }, { ttlSeconds: 60 });
  const [h, p] = jwt.split('.').slice(0, 2).map((x) => JSON.parse(Buffer.from(x, 'base64url').toString())) as [Record<string, unknown>, Record<string, unknown>];
  assert.equal(h, { alg: 'HS256', typ: 'JWT' });
  assert.equal(p, { mid: 'm1', role: 'host', name: 'Anna', sub: 'anna@schule-a.de', iat: nowS, nbf: nowS, exp: nowS + 60 });
  const c = await tokens.verify(jwt);
  assert.equal(c, { identity: 'anna@schule-a.de', meetingId: 'm1', role: 'host', displayName: 'Anna', expiresAt: nowS + 60, notBefore: nowS, issuedAt: nowS });
});

test('a token minted by another backend with jose verifies (HS256 without kid, EdDSA and ES256 with kid)', async () => {
  const ed = pem('ed25519');
  const ec = pem('ec');
  const { createPrivateKey } = await import('node:crypto');
  const tokens = new JoinTokens({
    keys: [
      { kid: 'hs', alg: 'HS256', secret: SECRET },
      { kid: 'ed-2026', alg: 'EdDSA', publicKey: ed.publicKey },
      { kid: 'ec-2026', alg: 'ES256', publicKey: ec.publicKey },
    ],
    now: () => NOW,
  });
  const base = (): SignJWT => new SignJWT(claims).setSubject('u1').setIssuedAt(nowS).setNotBefore(nowS).setExpirationTime(nowS + 300);
  const hs = await base().setProtectedHeader({ alg: 'HS256', kid: 'hs' }).sign(Buffer.from(SECRET));
  const eddsa = await base().setProtectedHeader({ alg: 'EdDSA', kid: 'ed-2026' }).sign(createPrivateKey(ed.privateKey));
  const es = await base().setProtectedHeader({ alg: 'ES256', kid: 'ec-2026' }).sign(createPrivateKey(ec.privateKey));
  for (const jwt of [hs, eddsa, es]) {
    const c = await tokens.verify(jwt);
    assert.is(c.identity, 'u1');
    assert.is(c.meetingId, 'm1');
    assert.is(c.role, 'participant');
  }
  // A media server with public keys only verifies; it cannot mint.
  const verifier = new JoinTokens({ keys: [{ kid: 'ed-2026', alg: 'EdDSA', publicKey: ed.publicKey }], now: () => NOW });
  assert.not.ok(verifier.canMint);
  assert.is((await verifier.verify(eddsa)).identity, 'u1');
});

test('key rotation: two keys live at once, tokens of both verify; a retired key no longer does', async () => {
  const old = pem('ed25519');
  const next = pem('ed25519');
  const before = new JoinTokens({ keys: [{ kid: 'k1', alg: 'EdDSA', publicKey: old.publicKey, privateKey: old.privateKey }], now: () => NOW });
  const during = new JoinTokens({
    keys: [
      { kid: 'k1', alg: 'EdDSA', publicKey: old.publicKey },
      { kid: 'k2', alg: 'EdDSA', publicKey: next.publicKey, privateKey: next.privateKey },
    ],
    signingKid: 'k2',
    now: () => NOW,
  });
  const after = new JoinTokens({ keys: [{ kid: 'k2', alg: 'EdDSA', publicKey: next.publicKey }], now: () => NOW });
  const oldToken = await before.mint({ identity: 'u', meetingId: 'm1', role: 'participant' });
  const newToken = await during.mint({ identity: 'u', meetingId: 'm1', role: 'participant' });
  assert.is(JSON.parse(Buffer.from(newToken.split('.')[0]!, 'base64url').toString()).kid, 'k2');
  assert.is((await during.verify(oldToken)).identity, 'u');
  assert.is((await during.verify(newToken)).identity, 'u');
  assert.is((await after.verify(newToken)).identity, 'u');
  assert.is(await codeOf(after.verify(oldToken)), 'INVALID_TOKEN');
});

test(`clock skew: exp and nbf are tolerated by ${DEFAULT_CLOCK_TOLERANCE_S} s, not more`, async () => {
  let now = NOW;
  const tokens = new JoinTokens({ keys: [{ alg: 'HS256', secret: SECRET }], now: () => now });
  const jwt = await tokens.mint({ identity: 'x', meetingId: 'm1', role: 'participant' }, { ttlSeconds: 10 });
  now = NOW + (10 + DEFAULT_CLOCK_TOLERANCE_S - 1) * 1000;
  assert.is((await tokens.verify(jwt)).identity, 'x', 'expired by less than the tolerance');
  now = NOW + (10 + DEFAULT_CLOCK_TOLERANCE_S + 1) * 1000;
  assert.is(await codeOf(tokens.verify(jwt)), 'TOKEN_EXPIRED');
  // A backend whose clock runs ahead: nbf slightly in the future is accepted, far in the future not.
  now = NOW;
  const ahead = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setNotBefore(nowS + 20).setExpirationTime(nowS + 600).sign(Buffer.from(SECRET));
  assert.is((await tokens.verify(ahead)).identity, 'x');
  const future = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setNotBefore(nowS + 120).setExpirationTime(nowS + 600).sign(Buffer.from(SECRET));
  assert.is(await codeOf(tokens.verify(future)), 'INVALID_TOKEN');
  const issuedLater = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setIssuedAt(nowS + 3600).setExpirationTime(nowS + 7200).sign(Buffer.from(SECRET));
  assert.is(await codeOf(tokens.verify(issuedLater)), 'INVALID_TOKEN');
});

test('bad tokens are INVALID_TOKEN: alg none, wrong alg for the key, HMAC with the public key, wrong kid, wrong secret, tampered, missing claims', async () => {
  const ed = pem('ed25519');
  const { createPrivateKey } = await import('node:crypto');
  const tokens = new JoinTokens({
    keys: [
      { kid: 'hs', alg: 'HS256', secret: SECRET },
      { kid: 'ed', alg: 'EdDSA', publicKey: ed.publicKey },
    ],
    now: () => NOW,
  });
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const payload = { ...claims, sub: 'u', exp: nowS + 60 };
  const cases: Array<[string, string]> = [
    ['alg none', `${b64({ alg: 'none', kid: 'hs' })}.${b64(payload)}.`],
    ['alg none without kid', `${b64({ alg: 'none' })}.${b64(payload)}.`],
    // The classic confusion: an HS256 token "signed" with the EdDSA key's public PEM as secret.
    ['HS256 with the public key as secret', await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'ed' }).sign(Buffer.from(ed.publicKey))],
    ['ES256 header on the HS256 key', `${b64({ alg: 'ES256', kid: 'hs' })}.${b64(payload)}.${Buffer.alloc(64).toString('base64url')}`],
    ['unknown kid', await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'nope' }).sign(Buffer.from(SECRET))],
    ['no kid with two keys', await new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(Buffer.from(SECRET))],
    ['another secret', await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'hs' }).sign(Buffer.from('another-secret-that-is-32-bytes-long!!'))],
    ['EdDSA by another key', await new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', kid: 'ed' }).sign(createPrivateKey(pem('ed25519').privateKey))],
    ['no mid', await new SignJWT({ role: 'participant' }).setProtectedHeader({ alg: 'HS256', kid: 'hs' }).setSubject('u').setExpirationTime(nowS + 60).sign(Buffer.from(SECRET))],
    ['no exp', await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'hs' }).setSubject('u').sign(Buffer.from(SECRET))],
    ['unknown role', await new SignJWT({ ...claims, role: 'admin' }).setProtectedHeader({ alg: 'HS256', kid: 'hs' }).setSubject('u').setExpirationTime(nowS + 60).sign(Buffer.from(SECRET))],
    ['name with a newline', await new SignJWT({ ...claims, name: 'a\nb' }).setProtectedHeader({ alg: 'HS256', kid: 'hs' }).setSubject('u').setExpirationTime(nowS + 60).sign(Buffer.from(SECRET))],
    ['garbage', 'garbage'],
    ['the old c4v1 format', 'c4v1.eyJzdWIiOiJ4In0.AAAA'],
  ];
  const good = await new SignJWT(payload).setProtectedHeader({ alg: 'HS256', kid: 'hs' }).sign(Buffer.from(SECRET));
  const [gh, gp, gs] = good.split('.') as [string, string, string];
  cases.push(['tampered payload', `${gh}.${b64({ ...payload, role: 'host' })}.${gs}`]);
  cases.push(['signature cut', `${gh}.${gp}.`]);
  assert.is((await tokens.verify(good)).identity, 'u', 'the untampered token verifies');
  for (const [name, jwt] of cases) assert.is(await codeOf(tokens.verify(jwt)), 'INVALID_TOKEN', name);
});

test('keys are checked when configured: short secret, missing kid with two keys, key of the wrong type', () => {
  assert.throws(() => new JoinTokens('short'), /at least 32 bytes/);
  assert.throws(() => new JoinTokens({ keys: [{ alg: 'HS256', secret: SECRET }, { alg: 'HS256', secret: SECRET }] }), /own kid/);
  assert.throws(() => new JoinTokens({ keys: [{ alg: 'ES256', publicKey: pem('ed25519').publicKey }] }), /ec key/);
  assert.throws(() => new JoinTokens({ keys: [{ alg: 'EdDSA' }] }), /publicKey/);
});

test.run();
