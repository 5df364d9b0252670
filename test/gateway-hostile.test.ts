// Hostile and malformed input against the real gateway: each frame gets its documented error
// response or close, is logged as a warning, and never disturbs the media of the meeting.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SignJWT } from 'jose';
import { JoinTokens } from '../gateway/tokens.js';
import { encodeEnvelope, pb } from '../gateway/wire.js';
import { stream, testGateway } from './helpers/gateway.js';
import { publish, SignallingClient, subscribe, wireCodeOf } from './helpers/signallingClient.js';
import { memoryLogger, until, within } from './helpers/util.js';

const MEETING = 'elternabend';

/** Waits for the next id-0 error (a frame that did not decode far enough to have an id). */
async function frameError(c: SignallingClient, count: number): Promise<string> {
  await within(
    new Promise<void>((resolve) => {
      const check = (): void => {
        if (c.frameErrors.length >= count) resolve();
        else setImmediate(check);
      };
      check();
    }),
    5000,
    'an error response with id 0',
  );
  return c.frameErrors[count - 1]!.codeName;
}

test('malformed and hostile frames get their coded error or close while the meeting keeps its media', async () => {
  const { logger, lines } = memoryLogger('info');
  const t = await testGateway({ logger, limits: { messageBurst: 40, messagesPerSecond: 20, floodStrikesBeforeClose: 10, protocolErrorsBeforeClose: 6, maxMessageBytes: 16 * 1024 } });
  const stops: Array<() => void> = [];
  const peers: Array<{ close(): Promise<void> }> = [];
  try {
    // A meeting with media flowing: host publishes, an admitted guest receives.
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    const guest = await t.client();
    const gj = await guest.join({ meetingId: MEETING, displayName: 'Gast', joinToken: await t.userToken('gast@x.de'), e2eeCapable: true });
    await host.call({ admit: { participantId: gj.participantId } });
    await guest.admitted();
    const tracks = [{ name: 'mic', kind: 'audio' as const, source: 'microphone' as const }];
    const hp = await publish(host, tracks);
    peers.push(hp.pub);
    const gs = await subscribe(guest, [hp.producers.get('mic')!]);
    peers.push(gs.sub);
    stops.push(stream(hp.pub, tracks, 'host'));
    const consumerId = gs.consumers.get(hp.producers.get('mic')!)!;
    await gs.sub.waitFor(() => gs.sub.packetsOf(consumerId).length >= 3, 'media before the attacks', 20_000);

    // An attacker in the same meeting (admitted, so that wrong-state and flood hit a joined session).
    const bad = await t.client();
    const bj = await bad.join({ meetingId: MEETING, displayName: 'Störer', joinToken: await t.userToken('stoerer@x.de'), e2eeCapable: true });
    await host.call({ admit: { participantId: bj.participantId } });
    await bad.admitted();

    const hello = Buffer.from(encodeEnvelope({ id: 9, request: { hello: { protocolVersions: [1] } } }));
    // Frame-level errors: answered with id 0 (or the envelope's id when it decoded that far).
    const table: Array<[string, Buffer | string, boolean]> = [
      ['garbage bytes', Buffer.from([0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa]), true],
      ['truncated envelope', hello.subarray(0, hello.length - 3), true],
      ['huge length prefix', Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]), true],
      ['text frame', '{"join": "meeting"}', false],
    ];
    let n = 0;
    for (const [name, frame, binary] of table) {
      bad.sendRaw(frame, binary);
      assert.is(await frameError(bad, ++n), 'PROTOCOL_ERROR', name);
    }
    // Unknown oneof member (field 99 of Request) in an envelope with id 5: answered on id 5.
    const unknownOneof = Buffer.from([0x08, 0x05, 0x12, 0x03, 0x9a, 0x06, 0x00]);
    const answered = new Promise<void>((resolve) => bad.ws.on('message', (d: Buffer) => {
      const env = pb.Envelope.decode(d);
      if (env.id === 5 && env.response?.error?.codeName === 'PROTOCOL_ERROR') resolve();
    }));
    bad.sendRaw(unknownOneof);
    await within(answered, 5000, 'PROTOCOL_ERROR on id 5 for an unknown request type');
    // Wrong state: a second join, and hello again.
    assert.is(await wireCodeOf(bad.call({ join: { meetingId: MEETING, displayName: 'x' } })), 'INVALID_STATE');
    assert.is(await wireCodeOf(bad.call({ hello: { protocolVersions: [1] } })), 'INVALID_STATE');
    // Bad arguments inside a well-formed request.
    assert.is(await wireCodeOf(bad.call({ createTransport: { direction: 7 as never } })), 'PROTOCOL_ERROR');
    assert.is(await wireCodeOf(bad.call({ consume: { transportId: 'nope', producerId: 'nope', rtpCapabilities: bad.rtpCapabilities } })), 'NOT_FOUND');
    assert.ok(bad.closeInfo === undefined, 'the connection survives single bad frames');

    // Flood: past the burst requests are refused with RATE_LIMITED, and a client that keeps
    // flooding is closed with FLOODING.
    const flood = Array.from({ length: 80 }, () => bad.send({ getRouterRtpCapabilities: {} }).catch(() => undefined));
    const floodResults = await Promise.all(flood);
    assert.ok(floodResults.some((r) => r?.error?.codeName === 'RATE_LIMITED'), 'flood answered with RATE_LIMITED');
    assert.equal(await bad.waitClosed(), { code: 4000 + pb.CloseReason.FLOODING, reason: 'FLOODING' });

    // Repeated garbage on a fresh connection: PROTOCOL_VIOLATION after the configured count.
    const junk = await t.client();
    for (let i = 0; i < 6; i++) junk.sendRaw(Buffer.from([0xff, i]));
    assert.equal(await junk.waitClosed(), { code: 4000 + pb.CloseReason.PROTOCOL_VIOLATION, reason: 'PROTOCOL_VIOLATION' });
    assert.is(junk.frameErrors.length, 6, 'every bad frame was answered before the close');

    // Unknown protocol version: UNSUPPORTED_VERSION, then a close.
    const future = await t.client();
    assert.is(await wireCodeOf(future.call({ hello: { protocolVersions: [7, 8] } })), 'UNSUPPORTED_VERSION');
    assert.equal(await future.waitClosed(), { code: 4000 + pb.CloseReason.VERSION_MISMATCH, reason: 'VERSION_MISMATCH' });

    // Oversized frame: ws refuses it above maxPayload and closes with 1009.
    const big = await t.client();
    big.sendRaw(Buffer.alloc(20 * 1024, 1));
    assert.is((await big.waitClosed()).code, 1009);

    // A waiting participant asking for media: NOT_ADMITTED.
    const waiting = await t.client();
    await waiting.join({ meetingId: MEETING, displayName: 'Wartend', e2eeCapable: true });
    assert.is(await wireCodeOf(waiting.call({ produce: { transportId: 'x', source: 1, kind: 1, rtpParameters: { codecs: [{ mimeType: 'audio/opus' }] } } })), 'NOT_ADMITTED');

    // Through all of this the guest kept receiving the host's audio.
    const before = gs.sub.packetsOf(consumerId).length;
    await gs.sub.waitFor(() => gs.sub.packetsOf(consumerId).length >= before + 10, 'media after the attacks', 20_000);
    assert.is(guest.closeInfo, undefined);
    assert.is(host.closeInfo, undefined);

    // Each refusal was a warning log with its code; no password or token in any line.
    const warns = lines.map((l) => JSON.parse(l) as { level: number; code?: string; reason?: string }).filter((l) => l.level === 40);
    for (const code of ['PROTOCOL_ERROR', 'RATE_LIMITED', 'UNSUPPORTED_VERSION', 'MESSAGE_TOO_LARGE']) {
      assert.ok(warns.some((w) => w.code === code), `a warning for ${code}`);
    }
    assert.ok(warns.some((w) => w.reason === 'flooding'));
    assert.ok(warns.some((w) => w.reason === 'protocol-violation'));
  } finally {
    for (const s of stops) s();
    for (const p of peers) await p.close();
    await t.close();
  }
});

test('issue 10: hostile auth input (resume replays, forged proxy headers, foreign origins, bad JWTs) is refused with its code; the live session is untouched', async () => {
  const SECRET = 'hostile-table-secret-of-at-least-32-bytes';
  const tokens = new JoinTokens({ keys: [{ kid: 'k1', alg: 'HS256', secret: SECRET }] });
  const t = await testGateway({ tokens, limits: { reconnectGraceMs: 60_000 }, settings: { waitingRoom: false, hostRequiredToStart: false } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    // A participant that dropped and resumed once: its first token is used up.
    const victim = await t.client();
    const vj = await victim.join({ meetingId: MEETING, displayName: 'Opfer', joinToken: await t.userToken('opfer@x.de'), e2eeCapable: true });
    victim.ws.terminate();
    await until(() => t.gateway.connectionCount === 1, 'the server to notice the drop');
    const resumed = await t.client();
    await resumed.hello();
    const fresh = (await resumed.call({ resume: { participantId: vj.participantId, resumeToken: vj.resumeToken } })).join!.resumeToken ?? '';

    const now = Math.floor(Date.now() / 1000);
    const jwt = (header: Record<string, unknown>, claims: Record<string, unknown>, key: Uint8Array = Buffer.from(SECRET)): Promise<string> =>
      new SignJWT({ mid: MEETING, role: 'host', ...claims }).setProtectedHeader({ alg: 'HS256', kid: 'k1', ...header } as { alg: string }).setSubject('host@schule-a.de').sign(key);
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const joinCode = async (token: string): Promise<string> => {
      const c = await t.client();
      await c.hello();
      return wireCodeOf(c.joinOnly({ meetingId: MEETING, displayName: 'Angreifer', joinToken: token }));
    };
    const resumeCode = async (participantId: string, resumeToken: string): Promise<string> => {
      const c = await t.client();
      await c.hello();
      return wireCodeOf(c.call({ resume: { participantId, resumeToken } }));
    };
    const upgrade = (headers: Record<string, string>): Promise<string> =>
      SignallingClient.connect(t.gateway.url, { headers }).then(
        async (c) => {
          const j = await c.join({ meetingId: MEETING, displayName: 'Proxy', joinToken: await t.userToken(`p${Math.random()}@x.de`.replace('0.', '')), e2eeCapable: true });
          const address = t.meeting.participant(j.participantId)?.address;
          c.ws.terminate();
          return `address ${address}`;
        },
        (e: Error) => e.message,
      );
    const table: Array<[string, () => Promise<string>, string | RegExp]> = [
      ['replayed resume token', () => resumeCode(vj.participantId, vj.resumeToken), 'INVALID_TOKEN'],
      ['resume while connected (the current token)', () => resumeCode(vj.participantId, fresh), 'INVALID_TOKEN'],
      ["resume token on another participant's id", () => resumeCode(host.participantId, fresh), 'INVALID_TOKEN'],
      ['forged X-Forwarded-For from an untrusted peer', () => upgrade({ 'x-forwarded-for': '203.0.113.66' }), 'address 127.0.0.1'],
      ['forged Forwarded from an untrusted peer', () => upgrade({ forwarded: 'for=203.0.113.66' }), 'address 127.0.0.1'],
      ['foreign Origin', () => upgrade({ origin: 'https://evil.example' }), /HTTP 403/],
      ['JWT alg none', async () => joinCode(`${b64({ alg: 'none', kid: 'k1' })}.${b64({ sub: 'host@schule-a.de', mid: MEETING, role: 'host', exp: now + 60 })}.`), 'INVALID_TOKEN'],
      ['JWT wrong alg (HS512 on the HS256 key)', async () => joinCode(await jwt({ alg: 'HS512' }, { exp: now + 60 }, Buffer.from(SECRET.repeat(2)))), 'INVALID_TOKEN'],
      ['JWT expired', async () => joinCode(await jwt({}, { exp: now - 3600 })), 'TOKEN_EXPIRED'],
      ['JWT nbf in the future', async () => joinCode(await jwt({}, { nbf: now + 3600, exp: now + 7200 })), 'INVALID_TOKEN'],
      ['JWT wrong kid', async () => joinCode(await jwt({ kid: 'k2' }, { exp: now + 60 })), 'INVALID_TOKEN'],
      ['JWT wrong secret', async () => joinCode(await jwt({}, { exp: now + 60 }, Buffer.from('x'.repeat(40)))), 'INVALID_TOKEN'],
      ['JWT for another meeting', async () => joinCode(await jwt({}, { mid: 'another-meeting', exp: now + 60 })), 'INVALID_TOKEN'],
      ['JWT without exp', async () => joinCode(await jwt({}, {})), 'INVALID_TOKEN'],
    ];
    for (const [name, run, expected] of table) {
      const got = await run();
      if (typeof expected === 'string') assert.is(got, expected, name);
      else assert.match(got, expected, name);
    }
    // Through all of it the resumed connection and the host stayed attached and answer.
    assert.is(resumed.closeInfo, undefined);
    assert.is(host.closeInfo, undefined);
    assert.is((await resumed.call({ getParticipants: {} })).participants!.participants!.length >= 2, true);
    assert.is(t.meeting.participant(vj.participantId)?.closed, false);
  } finally {
    await t.close();
  }
});

test('logs carry meeting and participant ids but no passwords, tokens, names or addresses', async () => {
  const { logger, lines } = memoryLogger('debug');
  const t = await testGateway({ logger, settings: { passwordRequired: true } , password: 'Geheim-2024!' });
  try {
    const token = await t.hostToken();
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: token, e2eeCapable: true });
    const g = await t.client();
    await g.hello();
    assert.is(await wireCodeOf(g.joinOnly({ meetingId: MEETING, displayName: 'Herr Meier', password: 'falsch-123', e2eeCapable: true })), 'WRONG_PASSWORD');
    const j = await g.joinOnly({ meetingId: MEETING, displayName: 'Herr Meier', password: 'Geheim-2024!', e2eeCapable: true });
    await host.call({ admit: { participantId: j.participantId } });
    await g.admitted();
    // The server's own listening URL may name its address; nothing about a client may.
    const all = lines.filter((l) => !l.includes('signalling gateway listening')).join('\n');
    for (const secret of ['Geheim-2024!', 'falsch-123', token, token.split('.')[2]!, 'Frau Schmidt', 'Herr Meier', '127.0.0.1']) {
      assert.not.ok(all.includes(secret), `logs must not contain ${secret.slice(0, 12)}`);
    }
    assert.ok(lines.some((l) => l.includes(`"participantId":"${j.participantId}"`) && l.includes(`"meetingId":"${MEETING}"`)));
  } finally {
    await t.close();
  }
});

test('too many connections from one address are refused with HTTP 429', async () => {
  const t = await testGateway({ limits: { connectionsPerAddress: 2 } });
  try {
    await t.client();
    await t.client();
    try {
      await SignallingClient.connect(t.gateway.url);
      assert.unreachable('a third connection from the same address was accepted');
    } catch (error) {
      assert.match((error as Error).message, /HTTP 429/);
    }
  } finally {
    await t.close();
  }
});

test('requests from one address are limited over all its connections', async () => {
  const t = await testGateway({ limits: { addressMessagesPerSecond: 5, addressMessageBurst: 30, messageBurst: 1000, messagesPerSecond: 1000 } });
  try {
    const a = await t.client();
    const b = await t.client();
    await a.hello();
    await b.hello();
    // Each connection alone stays far below its own limit; together they pass the address's.
    const all = await Promise.all(
      Array.from({ length: 20 }, () => [a.send({ getRouterRtpCapabilities: {} }), b.send({ getRouterRtpCapabilities: {} })]).flat(),
    );
    const limited = all.filter((r) => r.error?.codeName === 'RATE_LIMITED');
    assert.ok(limited.length >= 5, `expected RATE_LIMITED past the address burst, got ${limited.length}`);
    assert.ok(limited.every((r) => /address limit/.test(r.error!.reason!)));
    assert.is(a.closeInfo, undefined);
    assert.is(b.closeInfo, undefined);
  } finally {
    await t.close();
  }
});

test('a client that stops reading is closed with SLOW_READER; the sender is unaffected', async () => {
  const t = await testGateway({ limits: { maxBufferedBytes: 256 * 1024, messagesPerSecond: 100_000, messageBurst: 100_000, maxPendingRequests: 100_000 } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    const slow = await t.client();
    const sj = await slow.join({ meetingId: MEETING, displayName: 'Langsam', joinToken: await t.userToken('slow@x.de'), e2eeCapable: true });
    await host.call({ admit: { participantId: sj.participantId } });
    await slow.admitted();
    // The slow client stops reading from its socket.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const data = Buffer.alloc(60 * 1024, 7);
    // Key messages are relayed as notifications: the slow client's send buffer fills up.
    let sent = 0;
    const closedSlow = async (): Promise<boolean> =>
      (await t.gateway.metrics.closes.get()).values.some((v) => v.labels.reason === 'slow-reader');
    while (!(await closedSlow()) && sent < 1000) {
      await host.call({ sendKeyMessage: { toParticipantId: sj.participantId, data } });
      sent++;
    }
    assert.ok(sent < 1000, 'the slow reader was cut off before 60 MB piled up');
    assert.match(await (await fetch(`${t.gateway.httpUrl}/metrics`)).text(), /c4v_gateway_closes_total\{reason="slow-reader"\} 1/);
    // The host's connection is fine.
    await host.call({ getParticipants: {} });
  } finally {
    await t.close();
  }
});

test.run();
