// Issue 10 (auth and the edge) against the real gateway on an ephemeral port: single-use resume
// tokens, the client address behind trusted proxies, the Origin check, JWT join tokens from
// another backend, the password flood, and INTERNAL for a bug.
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { SignJWT } from 'jose';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { clientAddress, ForwardedHeaderError, TrustedProxies } from '../gateway/clientAddress.js';
import { originAllowed } from '../gateway/origin.js';
import { JoinTokens } from '../gateway/tokens.js';
import { pb } from '../gateway/wire.js';
import { testGateway } from './helpers/gateway.js';
import { SignallingClient, wireCodeOf } from './helpers/signallingClient.js';
import { memoryLogger, until } from './helpers/util.js';

const MEETING = 'elternabend';

function fakeRequest(peer: string, headers: Record<string, string> = {}): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers } as unknown as IncomingMessage;
}

test('client address: headers count only from a trusted peer; chains are walked from the right past trusted hops', () => {
  const none = new TrustedProxies([]);
  const proxies = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
  const xff = (v: string): Record<string, string> => ({ 'x-forwarded-for': v });
  // No trusted proxies: a forged header is ignored.
  assert.is(clientAddress(fakeRequest('198.51.100.7', xff('203.0.113.1')), none), '198.51.100.7');
  // An untrusted peer is the client whatever it claims, also when proxies are configured.
  assert.is(clientAddress(fakeRequest('198.51.100.7', xff('203.0.113.1')), proxies), '198.51.100.7');
  // A trusted proxy's header names the client (IPv4-mapped peers are normalized).
  assert.is(clientAddress(fakeRequest('::ffff:127.0.0.1', xff('203.0.113.1')), proxies), '203.0.113.1');
  // A chain: the client forged the leftmost entry; the rightmost untrusted hop is the real one.
  assert.is(clientAddress(fakeRequest('127.0.0.1', xff('1.1.1.1, 203.0.113.9, 10.1.2.3')), proxies), '203.0.113.9');
  // Two proxy headers are one list, in order.
  assert.is(clientAddress(fakeRequest('10.0.0.1', { 'x-forwarded-for': '203.0.113.5, 10.9.9.9' }), proxies), '203.0.113.5');
  // Every hop trusted: the leftmost.
  assert.is(clientAddress(fakeRequest('127.0.0.1', xff('10.0.0.5, 10.0.0.6')), proxies), '10.0.0.5');
  // No header from a trusted proxy: the proxy itself.
  assert.is(clientAddress(fakeRequest('127.0.0.1'), proxies), '127.0.0.1');
  // RFC 7239 Forwarded, with quotes, IPv6 brackets and ports.
  const fwd = (v: string): Record<string, string> => ({ forwarded: v });
  assert.is(clientAddress(fakeRequest('127.0.0.1', fwd('for=192.0.2.60;proto=https, for="[2001:db8::17]:4711"')), proxies, 'forwarded'), '2001:db8::17');
  assert.is(clientAddress(fakeRequest('127.0.0.1', fwd('for=192.0.2.60:8080;by=10.0.0.1')), proxies, 'forwarded'), '192.0.2.60');
  // The configured header only: a forged Forwarded next to the proxy's X-Forwarded-For is ignored.
  assert.is(clientAddress(fakeRequest('127.0.0.1', { forwarded: 'for=6.6.6.6', 'x-forwarded-for': '203.0.113.2' }), proxies), '203.0.113.2');
  // A hop that is not an address, where one is needed: refused, not guessed.
  assert.throws(() => clientAddress(fakeRequest('127.0.0.1', xff('unknown')), proxies), (e: unknown) => e instanceof ForwardedHeaderError);
  // Bad CIDRs are refused when configured.
  for (const bad of ['10.0.0.0/33', 'example.org', '10.0.0.0/8/1', '::/129']) {
    assert.throws(() => new TrustedProxies([bad]), /not an address or CIDR/, bad);
  }
});

test('origin rule: no Origin and the same origin are allowed by default, others only when listed', () => {
  assert.ok(originAllowed(undefined, 'meet.example.org', []));
  assert.ok(originAllowed('https://meet.example.org', 'meet.example.org', []), 'same origin behind a TLS proxy');
  assert.ok(originAllowed('http://127.0.0.1:8080', '127.0.0.1:8080', []));
  assert.ok(originAllowed('http://[::1]:8080', '[::1]:8080', []));
  assert.not.ok(originAllowed('https://evil.example', 'meet.example.org', []));
  assert.not.ok(originAllowed('http://127.0.0.1:9999', '127.0.0.1:8080', []), 'another port is another origin');
  assert.not.ok(originAllowed('null', 'meet.example.org', []), 'an opaque origin (sandboxed frame, file:)');
  assert.ok(originAllowed('https://app.example.org', 'meet.example.org', ['https://app.example.org']));
  assert.ok(originAllowed('https://any.example', 'meet.example.org', ['*']));
});

test('a resume token is single use, rotated, valid only while disconnected, and bound to its participant', async () => {
  const t = await testGateway({ limits: { reconnectGraceMs: 60_000 }, settings: { waitingRoom: false, hostRequiredToStart: false } });
  try {
    const a = await t.client();
    const ja = await a.join({ meetingId: MEETING, displayName: 'Anna', joinToken: await t.userToken('anna@x.de'), e2eeCapable: true });
    const b = await t.client();
    const jb = await b.join({ meetingId: MEETING, displayName: 'Bernd', joinToken: await t.userToken('bernd@x.de'), e2eeCapable: true });
    const first = ja.resumeToken;

    // While connection 1 is live its own token does not resume it elsewhere.
    const early = await t.client();
    await early.hello();
    assert.is(await wireCodeOf(early.call({ resume: { participantId: ja.participantId, resumeToken: first } })), 'INVALID_TOKEN');
    assert.is(a.closeInfo, undefined, 'the live connection is not disturbed');
    await a.call({ getParticipants: {} });

    // Drop connection 1; resume on connection 2 once the server noticed: a new token comes back.
    a.ws.terminate();
    await until(() => t.gateway.connectionCount === 3, 'the server to notice the dropped connection');
    const two = await t.client();
    await two.hello();
    // Another participant's id with this token: refused (the token is bound to Anna).
    b.ws.terminate();
    await until(() => t.gateway.connectionCount === 2, 'the server to notice the second dropped connection');
    assert.is(await wireCodeOf(two.call({ resume: { participantId: jb.participantId, resumeToken: first } })), 'INVALID_TOKEN');
    const r2 = (await two.call({ resume: { participantId: ja.participantId, resumeToken: first } })).join!;
    assert.is(r2.participantId, ja.participantId);
    assert.ok(r2.resumeToken && r2.resumeToken !== first, 'the resume returned a fresh token');

    // Connection 3 replays the first token, then tries the fresh one while connection 2 is live.
    const three = await t.client();
    await three.hello();
    assert.is(await wireCodeOf(three.call({ resume: { participantId: ja.participantId, resumeToken: first } })), 'INVALID_TOKEN');
    assert.is(await wireCodeOf(three.call({ resume: { participantId: ja.participantId, resumeToken: r2.resumeToken } })), 'INVALID_TOKEN');
    assert.is(two.closeInfo, undefined, 'connection 2 was not replaced');
    assert.is((await two.call({ getParticipants: {} })).participants!.participants!.length, 2);

    // Once connection 2 is gone the fresh token works (once), and only it.
    two.ws.terminate();
    await until(() => t.gateway.connectionCount === 2, 'the server to notice connection 2 is gone');
    const four = await t.client();
    await four.hello();
    assert.is(await wireCodeOf(four.call({ resume: { participantId: ja.participantId, resumeToken: first } })), 'INVALID_TOKEN');
    const r4 = (await four.call({ resume: { participantId: ja.participantId, resumeToken: r2.resumeToken } })).join!;
    assert.is(r4.participantId, ja.participantId);
    assert.ok(r4.resumeToken !== r2.resumeToken);
    assert.is(t.meeting.participant(ja.participantId)?.closed, false);
  } finally {
    await t.close();
  }
});

test('behind a trusted proxy the forwarded client address is what the limits and the export see; a forged header from an untrusted peer is ignored', async () => {
  const t = await testGateway({
    settings: { waitingRoom: false, hostRequiredToStart: false },
    limits: { connectionsPerAddress: 2 },
    edge: { trustedProxies: ['127.0.0.0/8'] },
  });
  const direct = await testGateway({ settings: { waitingRoom: false, hostRequiredToStart: false } });
  try {
    const xff = (a: string): { headers: Record<string, string> } => ({ headers: { 'x-forwarded-for': a } });
    const c = await t.client(xff('203.0.113.10'));
    const j = await c.join({ meetingId: MEETING, displayName: 'Anna', joinToken: await t.userToken('anna@x.de'), e2eeCapable: true });
    assert.is(t.meeting.participant(j.participantId)!.address, '203.0.113.10', 'the exported address is the client behind the proxy');
    // A chain through a second, trusted hop.
    const chained = await t.client(xff('198.51.100.4, 127.0.0.2'));
    const jc = await chained.join({ meetingId: MEETING, displayName: 'Carla', joinToken: await t.userToken('carla@x.de'), e2eeCapable: true });
    assert.is(t.meeting.participant(jc.participantId)!.address, '198.51.100.4');
    // connectionsPerAddress counts per client, not per proxy: 203.0.113.10 gets one more, then 429,
    // while another client behind the same proxy still connects.
    await t.client(xff('203.0.113.10'));
    const refused = await SignallingClient.connect(t.gateway.url, xff('203.0.113.10')).then(
      (x) => {
        x.ws.terminate();
        return 'connected';
      },
      (e: Error) => e.message,
    );
    assert.match(refused, /HTTP 429/);
    (await t.client(xff('203.0.113.11'))).ws.terminate();

    // Without trusted proxies the same header is a forgery: the TCP peer is the client.
    const forger = await direct.client(xff('203.0.113.99'));
    const jf = await forger.join({ meetingId: MEETING, displayName: 'Fred', joinToken: await direct.userToken('fred@x.de'), e2eeCapable: true });
    assert.is(direct.meeting.participant(jf.participantId)!.address, '127.0.0.1');
  } finally {
    await t.close();
    await direct.close();
  }
});

test('a browser upgrade from a foreign Origin is refused with 403; same origin, listed origins and non-browsers connect', async () => {
  const t = await testGateway({ edge: { allowedOrigins: ['https://app.example.org'] } });
  try {
    const origin = (o: string): { origin: string } => ({ origin: o });
    const host = new URL(t.gateway.httpUrl).host;
    const attempt = (o?: string): Promise<string> =>
      SignallingClient.connect(t.gateway.url, o ? origin(o) : {}).then(
        (c) => {
          c.ws.terminate();
          return 'connected';
        },
        (e: Error) => e.message,
      );
    assert.match(await attempt('https://evil.example'), /HTTP 403/);
    assert.match(await attempt('null'), /HTTP 403/);
    assert.is(await attempt(`http://${host}`), 'connected');
    assert.is(await attempt('https://app.example.org'), 'connected');
    assert.is(await attempt(), 'connected');
    assert.match(await t.core.registry.metrics(), /c4v_gateway_upgrades_refused_total\{cause="origin"\} 2/);
  } finally {
    await t.close();
  }
});

test('a join token minted by another backend (EdDSA, kid) lets the host in; tokens of the retired key do not', async () => {
  const next = generateKeyPairSync('ed25519');
  const old = generateKeyPairSync('ed25519');
  const tokens = new JoinTokens({
    keys: [
      { kid: 'k-2026-12', alg: 'EdDSA', publicKey: next.publicKey },
      { kid: 'k-2026-11', alg: 'EdDSA', publicKey: old.publicKey },
    ],
  });
  const t = await testGateway({ tokens });
  try {
    const mint = (kid: string, key: typeof next.privateKey, extra: Record<string, unknown> = {}): Promise<string> =>
      new SignJWT({ mid: MEETING, role: 'host', name: 'Frau Schmidt', ...extra })
        .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })
        .setSubject('host@schule-a.de')
        .setIssuedAt()
        .setNotBefore('0s')
        .setExpirationTime('10m')
        .sign(key);
    const host = await t.client();
    const hj = await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await mint('k-2026-12', next.privateKey), e2eeCapable: true });
    assert.is(hj.role, pb.Role.HOST);
    const other = await t.client();
    await other.hello();
    // The old key during the rotation still verifies; a token for another meeting does not.
    const p = await other.joinOnly({ meetingId: MEETING, displayName: 'Alt', joinToken: await mint('k-2026-11', old.privateKey, { role: 'participant' }), e2eeCapable: true });
    assert.ok(p.participantId);
    const third = await t.client();
    await third.hello();
    assert.is(await wireCodeOf(third.joinOnly({ meetingId: MEETING, displayName: 'X', joinToken: await mint('k-2026-12', next.privateKey, { mid: 'another' }) })), 'INVALID_TOKEN');
    // Signed by a key nobody configured, under a configured kid.
    assert.is(await wireCodeOf(third.joinOnly({ meetingId: MEETING, displayName: 'X', joinToken: await mint('k-2026-12', createPrivateKey(generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }))) })), 'INVALID_TOKEN');
  } finally {
    await t.close();
  }
});

test('200 parallel wrong-password joins from 10 addresses behind the proxy: at most 20 checked, the host and token holders unaffected', async () => {
  const t = await testGateway({
    password: 'richtig-4711',
    settings: { waitingRoom: false, hostRequiredToStart: false, allowGuests: true },
    edge: { trustedProxies: ['127.0.0.1'] },
  });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    const clients = await Promise.all(
      Array.from({ length: 200 }, (_, i) => t.client({ headers: { 'x-forwarded-for': `203.0.113.${i % 10}` } })),
    );
    await Promise.all(clients.map((c) => c.hello()));
    const codes = await Promise.all(
      clients.map((c, i) => wireCodeOf(c.joinOnly({ meetingId: MEETING, displayName: `Gast ${i}`, password: `falsch-${i}`, e2eeCapable: true }))),
    );
    const count = (code: string): number => codes.filter((x) => x === code).length;
    assert.is(count('WRONG_PASSWORD'), 20, 'the meeting guest budget: 20 checked');
    assert.is(count('TOO_MANY_ATTEMPTS'), 180);
    // The host's connection answered throughout, and token holders with the right password get in.
    await host.call({ getParticipants: {} });
    const member = await t.client({ headers: { 'x-forwarded-for': '203.0.113.3' } });
    const mj = await member.join({ meetingId: MEETING, displayName: 'Mitglied', password: 'richtig-4711', joinToken: await t.userToken('mitglied@x.de'), e2eeCapable: true });
    assert.is(mj.state, pb.ParticipantState.ADMITTED);
  } finally {
    await t.close();
  }
});

test('a bug (a TypeError inside a handler) is INTERNAL with a generic reason, logged at error with its stack and counted; a throwing listener is logged', async () => {
  const { logger, lines } = memoryLogger('info');
  const t = await testGateway({ logger, settings: { waitingRoom: false, hostRequiredToStart: false } });
  try {
    const host = await t.client();
    const hj = await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    // Inject the bug into the real meeting: lock() reads a property of undefined.
    const meeting = t.meeting as unknown as { lock: (...a: unknown[]) => unknown };
    meeting.lock = () => (undefined as unknown as { x: { y: number } }).x.y;
    const r = await host.send({ lock: {} });
    assert.is(r.error?.codeName, 'INTERNAL');
    assert.is(r.error?.reason, 'internal error', 'no raw message on the wire');
    const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string; err?: { stack?: string; type?: string } });
    const e = logged.find((l) => l.msg === 'request failed unexpectedly');
    assert.ok(e, 'an error log line');
    assert.is(e!.level, 50);
    // The stack names the error's class (the logger renders every error as an Error with its stack).
    assert.match(e!.err?.stack ?? '', /^TypeError: .*\n\s+at /);
    assert.match(await t.core.registry.metrics(), /c4v_gateway_internal_errors_total\{type="lock"\} 1/);
    // A deliberate validation error stays INVALID_ARGUMENT.
    assert.is(await wireCodeOf(host.call({ mute: {} })), 'INVALID_ARGUMENT');
    // A listener that throws is caught by the model and logged at error, and the state change went on.
    const p = t.meeting.participant(hj.participantId)!;
    p.on('rolechange', () => {
      throw new Error('listener bug');
    });
    const g = await t.client();
    const gj = await g.join({ meetingId: MEETING, displayName: 'Gast', joinToken: await t.userToken('g@x.de'), e2eeCapable: true });
    await host.call({ makeCohost: { participantId: gj.participantId } });
    await until(() => lines.some((l) => l.includes('event listener threw') && l.includes('listener bug')), 'the listener error in the log');
    assert.is(t.meeting.participant(gj.participantId)!.role, 'cohost');
  } finally {
    await t.close();
  }
});

test.run();
