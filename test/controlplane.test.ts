// The control-plane adapter on a real media core: the allow-list, the HTTP sink's signature, the
// audit record and retention. The control plane is an ordinary local HTTP server.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  C4vError,
  createControlPlaneAdapter,
  FileSink,
  HttpSink,
  signBody,
  verifyControlPlaneRequest,
  type ControlPlaneAdapter,
  type ControlPlaneMessage,
  type MediaCore,
} from '../lib/index.js';
import { ControlPlaneReceiver, EventType } from './helpers/controlPlaneReceiver.js';
import { bytesOnDisk, runMeeting, startCore, tempDir, PASSWORD } from './helpers/controlPlane.js';
import { memoryLogger, nextEvent, silentLogger } from './helpers/util.js';

const DAY = 86_400_000;

let core: MediaCore;

test.before(async () => {
  core = await startCore();
  core.createAccount({ id: 'acme', defaults: { retentionDays: 7 } });
  core.createAccount({ id: 'short', defaults: { retentionDays: 1 } });
});

test.after(() => {
  core.close();
});

function adapterOn(receiver: ControlPlaneReceiver, dir: string, extra: Partial<Parameters<typeof createControlPlaneAdapter>[0]> = {}): ControlPlaneAdapter {
  return createControlPlaneAdapter({
    source: core,
    outboxPath: join(dir, 'outbox.sqlite'),
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret })],
    logger: silentLogger(),
    retry: { initialDelayMs: 20, maxDelayMs: 200 },
    ...extra,
  });
}

test('proto/controlplane.proto declares exactly the allow-listed fields', () => {
  // The customer-facing list (README "Data protection"). Changing the .proto without changing this
  // table fails here on purpose: the allow-list changes only deliberately.
  const expected: Record<string, string[]> = {
    ControlPlaneEvent: ['eventId', 'meetingId', 'sequence', 'meetingInstanceId', 'meetingStarted', 'meetingUpdated', 'meetingEnded', 'participantJoined', 'participantLeft', 'pollResults', 'settingsChanged'],
    MeetingStarted: ['meeting', 'actualStartMs'],
    MeetingUpdated: ['meeting'],
    MeetingDescription: ['title', 'host', 'passwordHash', 'settings', 'scheduledStartMs', 'scheduledDurationMinutes', 'recurrence', 'hostTimeZone', 'dialInNumbers'],
    Host: ['name', 'email', 'profilePictureUrl'],
    Recurrence: ['type', 'durationWeeks'],
    MeetingSettings: ['passwordRequired', 'waitingRoom', 'hostRequiredToStart', 'e2ee', 'maxParticipants', 'allowScreenShare', 'allowChat', 'muteOnEntry', 'allowGuests', 'allowedRegions', 'retentionDays', 'onHostLeave'],
    MeetingEnded: ['actualStartMs', 'actualEndMs', 'actualDurationSeconds', 'participantCount', 'participantDisplayNames'],
    ParticipantJoined: ['displayName', 'email', 'ipAddress', 'macAddress', 'participantCount'],
    ParticipantLeft: ['displayName', 'participantCount'],
    PollResults: ['question', 'options', 'counts', 'answers'],
    PollAnswer: ['displayName', 'option'],
    SettingsChanged: ['changed'],
  };
  const ns = EventType.parent!;
  const declared: Record<string, string[]> = {};
  for (const nested of ns.nestedArray) {
    declared[nested.name] = Object.keys((nested as typeof EventType).fields);
  }
  assert.equal(declared, expected);
});

test('a smuggled field is refused with FIELD_NOT_ALLOWED and neither stored nor sent', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = adapterOn(receiver, dir);
  const meeting = { meetingId: 'smuggle-1', accountId: 'acme', retentionDays: 7 };
  const smuggled = [
    { participantJoined: { displayName: 'Bob', chatText: 'geheim' } },
    { settingsChanged: { changed: { allowChat: true, e2eeKey: 'a2V5' } } },
    { meetingStarted: { meeting: { title: 'T', host: { name: 'H', joinToken: 'eyJhbGciOi' } } } },
    { pollResults: { question: 'Q', answers: [{ displayName: 'B', option: 1, identity: 'bob@x' }] } },
    { chatMessage: { text: 'hallo' } },
  ];
  try {
    for (const message of smuggled) {
      try {
        adapter.publish(meeting, message as unknown as ControlPlaneMessage);
        assert.unreachable(`${JSON.stringify(message)} was accepted`);
      } catch (error) {
        assert.instance(error, C4vError);
        assert.is((error as C4vError).code, 'FIELD_NOT_ALLOWED', JSON.stringify(message));
      }
    }
    // Two kinds in one message, and a class instance where a message belongs, are refused too.
    for (const message of [{ participantLeft: { displayName: 'A' }, participantJoined: { displayName: 'B' } }, { participantLeft: new Date() }]) {
      try {
        adapter.publish(meeting, message as unknown as ControlPlaneMessage);
        assert.unreachable('accepted');
      } catch (error) {
        assert.instance(error, TypeError);
      }
    }
    assert.is(adapter.store.events().length, 0, 'nothing was stored');
    // The outbox holds personal data: only its owner may read it.
    for (const f of readdirSync(dir)) assert.is(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} mode`);
    // A clean message afterwards goes through, so the receiver was there to hear anything.
    const sent = adapter.publish(meeting, { participantLeft: { displayName: 'Bob', participantCount: 1 } });
    await adapter.drained();
    assert.is(receiver.bodies.length, 1, 'only the clean message reached the control plane');
    assert.is(receiver.accepted[0]!.eventId, sent.eventId);
    assert.not.ok(receiver.allBytes.includes('geheim'));
    assert.not.ok(bytesOnDisk(dir).includes('geheim'));
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('verifyControlPlaneRequest accepts a signed request and refuses a tampered, unsigned or stale one', () => {
  const secret = 'x'.repeat(32);
  const body = new TextEncoder().encode('payload');
  const now = Date.UTC(2026, 10, 26, 12, 0, 0);
  const ts = String(now / 1000);
  const headers = { 'x-c4v-timestamp': ts, 'x-c4v-signature': signBody(secret, ts, body), 'idempotency-key': 'e-1' };
  assert.equal(verifyControlPlaneRequest({ secret, headers, body, now }), { ok: true, eventId: 'e-1' });
  const tampered = new TextEncoder().encode('payloaD');
  assert.equal(verifyControlPlaneRequest({ secret, headers, body: tampered, now }), { ok: false, reason: 'bad-signature' });
  assert.equal(verifyControlPlaneRequest({ secret: 'y'.repeat(32), headers, body, now }), { ok: false, reason: 'bad-signature' });
  assert.equal(verifyControlPlaneRequest({ secret, headers: { ...headers, 'x-c4v-signature': undefined }, body, now }), { ok: false, reason: 'missing-headers' });
  // Replay: the same signed request six minutes later is outside the default five-minute window.
  assert.equal(verifyControlPlaneRequest({ secret, headers, body, now: now + 6 * 60_000 }), { ok: false, reason: 'stale-timestamp' });
  assert.equal(verifyControlPlaneRequest({ secret, headers, body, now: now + 6 * 60_000, replayWindowSeconds: 600 }).ok, true);
});

test('the HTTPS sink verifies the control plane certificate: delivered with its CA, refused without', async () => {
  const { dir, cleanup } = tempDir();
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const receiver = await ControlPlaneReceiver.start(undefined, { cert, key: readFileSync(join(dir, 'key.pem'), 'utf8') });
  const meeting = { meetingId: 'tls-1', accountId: 'acme', retentionDays: 7 };
  // Without the private CA the certificate is not trusted: the event is not delivered (and stays).
  const untrusting = adapterOn(receiver, join(dir, 'a'), { sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret })] });
  try {
    const failed = nextEvent<[unknown, string, C4vError]>(untrusting, 'deliveryfailed');
    untrusting.publish(meeting, { participantLeft: { displayName: 'Bob', participantCount: 1 } });
    const [, , error] = await failed;
    assert.is(error.code, 'CONTROL_PLANE_UNREACHABLE');
    assert.is(receiver.bodies.length, 0, 'nothing went over the untrusted connection');
    assert.is(untrusting.pending, 1);
  } finally {
    await untrusting.close();
  }
  // With it, over TLS.
  const trusting = adapterOn(receiver, join(dir, 'b'), { sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret, ca: cert })] });
  try {
    const sent = trusting.publish(meeting, { participantLeft: { displayName: 'Bob', participantCount: 1 } });
    await trusting.drained();
    assert.equal(receiver.accepted.map((e) => e.eventId), [sent.eventId]);
  } finally {
    await trusting.close();
    await receiver.close();
    cleanup();
  }
});

test('the JSON format renders the same allow-listed event', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = adapterOn(receiver, dir, { sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret, format: 'json' })] });
  try {
    const sent = adapter.publish({ meetingId: 'json-1', accountId: 'acme', retentionDays: 7 }, { settingsChanged: { changed: { allowChat: false, maxParticipants: 12 } } });
    await adapter.drained();
    const instance = receiver.accepted[0]?.meetingInstanceId ?? '';
    assert.ok(instance !== '', 'a first event starts an instance of the meeting');
    assert.equal(receiver.accepted, [
      {
        eventId: sent.eventId,
        meetingId: 'json-1',
        sequence: 1,
        meetingInstanceId: instance,
        kind: 'settingsChanged',
        body: { changed: { allowChat: false, maxParticipants: 12 } },
      },
    ]);
    assert.equal(JSON.parse(receiver.bodies[0]!.toString()), {
      eventId: sent.eventId,
      meetingId: 'json-1',
      sequence: 1,
      meetingInstanceId: instance,
      settingsChanged: { changed: { allowChat: false, maxParticipants: 12 } },
    });
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('a meeting reaches the control plane as allow-listed messages, in order, signed, once each', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const jsonl = join(dir, 'events.jsonl');
  const adapter = adapterOn(receiver, dir, {
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret }), new FileSink({ path: jsonl })],
  });
  try {
    const run = await runMeeting(core, 'm-order');
    await adapter.drained();
    const got = receiver.ofMeeting('m-order');
    assert.equal(got.map((e) => e.sequence), got.map((_, i) => i + 1), 'sequence 1..n in arrival order');
    assert.equal(got.map((e) => e.kind), [
      'meetingUpdated', // created
      'meetingStarted', // the host joined
      'participantJoined', // the host
      'participantJoined', // bob, admitted
      'participantJoined', // carol, admitted
      'pollResults',
      'settingsChanged',
      'participantLeft', // carol, removed
      'participantLeft', // the host, at the end
      'participantLeft', // bob, at the end
      'meetingEnded',
    ]);
    assert.is(receiver.undeclared.length, 0, 'every body re-encodes to itself: nothing undeclared in it');
    assert.is(receiver.refused.length, 0);
    assert.ok([...receiver.arrivals.values()].every((n) => n === 1));
    const started = got.find((e) => e.kind === 'meetingStarted')!.body as { meeting: { title: string; host: { name: string; email: string }; passwordHash: string; hostTimeZone: string; recurrence: { type: string; durationWeeks: number }; dialInNumbers: string[] } };
    assert.is(started.meeting.title, 'Sprechstunde m-order');
    assert.is(started.meeting.host.name, 'Dr. Anna Gastgeberin');
    assert.is(started.meeting.host.email, 'anna.gastgeberin@klinik.example');
    assert.ok(started.meeting.passwordHash.length > 20, 'the password hash is exported');
    assert.is(started.meeting.hostTimeZone, 'Europe/Berlin');
    assert.equal(started.meeting.recurrence, { type: 'weekly', durationWeeks: 6 });
    assert.equal(started.meeting.dialInNumbers, ['+49 30 5555 0100']);
    const joined = got.filter((e) => e.kind === 'participantJoined').map((e) => e.body);
    assert.equal(joined.map((b) => b.displayName), ['Dr. Anna Gastgeberin', 'Bob Bauer', 'Carol Christ']);
    assert.equal(joined.map((b) => b.participantCount), [1, 2, 3]);
    // proto3 leaves zero values off the wire: the last count (0) decodes as absent.
    assert.equal(got.filter((e) => e.kind === 'participantLeft').map((e) => [e.body.displayName, e.body.participantCount]), [
      ['Carol Christ', 2],
      ['Dr. Anna Gastgeberin', 1],
      ['Bob Bauer', undefined],
    ]);
    assert.is(joined[1]!.email, 'bob.bauer@kanzlei.example', 'a registered participant has an e-mail');
    assert.is(joined[2]!.email, undefined, "a guest's self-typed e-mail is not exported");
    assert.not.ok(receiver.allBytes.includes('carol.selbst@guest.example'));
    const poll = got.find((e) => e.kind === 'pollResults')!.body;
    assert.equal(poll, {
      question: 'Nächster Termin?',
      options: ['Montag', 'Dienstag'],
      counts: [1, 1],
      // proto3 leaves zero values off the wire: option 0 decodes as absent.
      answers: [{ displayName: 'Bob Bauer', option: 1 }, { displayName: 'Carol Christ' }],
    });
    assert.equal(got.find((e) => e.kind === 'settingsChanged')!.body, { changed: { muteOnEntry: true } });
    const ended = got.find((e) => e.kind === 'meetingEnded')!.body as Record<string, unknown>;
    assert.equal(ended.participantDisplayNames, ['Dr. Anna Gastgeberin', 'Bob Bauer', 'Carol Christ']);
    assert.is(ended.participantCount, 3);
    assert.is(ended.actualStartMs, run.meeting.startedAt!.getTime());
    assert.is(ended.actualEndMs, run.meeting.endedAt!.getTime());
    // The denied guest was never in the meeting and is in no message; the password never is.
    assert.not.ok(receiver.allBytes.includes('Eve Eindringling'));
    assert.not.ok(receiver.allBytes.includes(PASSWORD));
    // The file sink has the same events as JSON lines.
    const lines = readFileSync(jsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { eventId: string });
    assert.equal(lines.map((l) => l.eventId).filter((id) => got.some((e) => e.eventId === id)), got.map((e) => e.eventId));
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('someone who leaves and rejoins is listed once at the end; a guest who only waited is not listed', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = adapterOn(receiver, dir);
  try {
    const meeting = await core.createMeeting({ id: 'm-rejoin', accountId: 'acme', title: 'T', hostIdentity: 'h', settings: { waitingRoom: false } });
    const host = await meeting.join({ identity: 'h', displayName: 'Hanna', authenticated: true, asHost: true, e2eeCapable: true });
    const first = await meeting.join({ identity: 'r', displayName: 'Rita', authenticated: true, e2eeCapable: true });
    first.leave();
    await meeting.join({ identity: 'r', displayName: 'Rita', authenticated: true, e2eeCapable: true });
    meeting.lock(host);
    meeting.end(host);
    await adapter.drained();
    const got = receiver.ofMeeting('m-rejoin');
    assert.equal(got.filter((e) => e.kind === 'participantJoined').map((e) => e.body.displayName), ['Hanna', 'Rita', 'Rita']);
    const ended = got.find((e) => e.kind === 'meetingEnded')!.body;
    assert.equal(ended.participantDisplayNames, ['Hanna', 'Rita']);
    assert.is(ended.participantCount, 2);
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('the audit record shows who admitted, denied, locked, unlocked, muted, made co-host, removed and ended, and where the media ran', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = adapterOn(receiver, dir);
  try {
    const before = Date.now();
    const { meeting } = await runMeeting(core, 'm-audit');
    const record = adapter.auditRecord('m-audit')!;
    assert.ok(record, 'the adapter keeps an audit record');
    assert.is(record.accountId, 'acme');
    const actions = record.actions.map((a) => [a.action, a.actor, a.target ?? null]);
    const host = 'host@m-audit';
    assert.equal(actions, [
      ['admit', host, 'bob@m-audit'],
      ['admit', host, 'carol@m-audit'],
      ['deny', host, 'eve@m-audit'],
      ['lock', host, null],
      ['unlock', host, null],
      ['mute', host, 'bob@m-audit'],
      ['make-cohost', host, 'bob@m-audit'],
      ['poll-created', host, null],
      ['poll-closed', host, null],
      ['settings-changed', host, null],
      ['remove', host, 'carol@m-audit'],
      ['end', host, null],
    ]);
    for (const a of record.actions) assert.ok(a.at.getTime() >= before && a.at.getTime() <= Date.now());
    assert.equal(record.actions, meeting.auditLog.map((e) => ({ ...e, purged: false })), 'the same as the model recorded');
    // Where the media ran: the core's one worker, in de-fra, from creation to the end.
    assert.is(record.placements.length, 1);
    const p = record.placements[0]!;
    assert.is(p.region, 'de-fra');
    assert.is(p.workerId, core.pool.workers[0]!.id);
    assert.is(p.endReason, 'meeting-ended');
    assert.ok(p.to && p.to.getTime() >= p.from.getTime());
    // The audit record survives a restart of the adapter (it is on disk).
    await adapter.close();
    const again = adapterOn(receiver, dir);
    try {
      assert.equal(again.auditRecord('m-audit')!.actions, record.actions);
      assert.equal(again.auditRecord('m-audit')!.placements, record.placements);
    } finally {
      await again.close();
    }
    // Identities of the audit record are not on the allow-list: none reached the control plane.
    for (const id of ['host@m-audit', 'bob@m-audit', 'carol@m-audit', 'eve@m-audit']) {
      assert.not.ok(receiver.allBytes.includes(id), `${id} was sent`);
    }
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('retention: after the account retention, personal data is gone from state and disk (purge on a timer and on start)', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  // The adapter's clock runs with real time plus an offset that the test moves forward (the
  // meetings' end times are real times).
  let offset = 0;
  const clock = (): number => Date.now() + offset;
  const purgedMeetings: string[][] = [];
  const { logger, lines } = memoryLogger();
  let adapter = adapterOn(receiver, dir, { clock, purgeIntervalMs: 50, logger, onPurge: (ids) => purgedMeetings.push(ids) });
  try {
    // 'short' keeps personal data one day after the end; 'acme' seven days.
    await runMeeting(core, 'm-short', { accountId: 'short' });
    await runMeeting(core, 'm-long', { accountId: 'acme' });
    await adapter.drained();
    const personal = ['Bob Bauer', 'Carol Christ', 'bob.bauer@kanzlei.example', 'bob@m-short', 'carol@m-short', 'host@m-short'];
    const disk = bytesOnDisk(dir);
    for (const s of personal) assert.ok(disk.includes(s), `${s} is on disk before the retention ends`);
    assert.ok(core.getMeeting('m-short'), 'the ended meeting is still held');

    // Half a day later nothing is purged yet.
    offset = DAY / 2;
    assert.equal(adapter.purge().meetingIds, []);

    // A day and a bit after the end: the timer's purge removes m-short's personal data.
    offset = DAY + 1000;
    const [result] = await nextEvent<[{ meetingIds: string[] }]>(adapter, 'purged');
    assert.equal(result.meetingIds, ['m-short']);
    assert.is(adapter.store.events('m-short').length, 0, 'delivered outbox entries are gone');
    const audit = adapter.auditRecord('m-short')!;
    assert.ok(audit.actions.length > 0, 'the audit record keeps its actions and times');
    assert.ok(audit.actions.every((a) => a.purged && a.actor === undefined && a.target === undefined), 'but no identities');
    assert.ok(audit.purgedAt);
    assert.is(audit.placements.length, 1, 'placements hold no personal data and stay');
    assert.equal(purgedMeetings, [['m-short']]);
    assert.is(core.getMeeting('m-short'), undefined, "the model's ended meeting (participants, poll answers) is released");
    const after = bytesOnDisk(dir);
    for (const s of ['bob@m-short', 'carol@m-short', 'host@m-short', 'Sprechstunde m-short']) {
      assert.not.ok(after.includes(s), `${s} is still on disk`);
    }
    // m-long is untouched: its own identities and events are still there.
    assert.ok(after.includes('bob@m-long'));
    assert.ok(adapter.store.events('m-long').length > 0);
    assert.ok(core.getMeeting('m-long'));

    // Restarted a week later: the purge on start removes m-long's personal data.
    await adapter.close();
    offset += 7 * DAY;
    adapter = adapterOn(receiver, dir, { clock, logger, onPurge: (ids) => purgedMeetings.push(ids) });
    assert.is(adapter.store.events('m-long').length, 0);
    assert.ok(adapter.auditRecord('m-long')!.actions.every((a) => a.purged));
    assert.is(core.getMeeting('m-long'), undefined);
    const final = bytesOnDisk(dir);
    for (const s of personal.concat(['bob@m-long', 'Dr. Anna Gastgeberin', 'anna.gastgeberin@klinik.example'])) {
      assert.not.ok(final.includes(s), `${s} is still on disk`);
    }
    // The adapter's own log lines never carried personal data either.
    for (const s of personal) assert.not.ok(lines.some((l) => l.includes(s)), `${s} was logged`);
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('zero retention: personal data is purged as soon as the meeting end is delivered', async () => {
  core.createAccount({ id: 'zero', defaults: { retentionDays: 0 } });
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = adapterOn(receiver, dir);
  try {
    const purged = nextEvent<[{ meetingIds: string[] }]>(adapter, 'purged');
    await runMeeting(core, 'm-zero', { accountId: 'zero' });
    assert.equal((await purged)[0].meetingIds, ['m-zero']);
    assert.ok(receiver.ofMeeting('m-zero').some((e) => e.kind === 'meetingEnded'), 'delivered first');
    assert.is(adapter.store.events('m-zero').length, 0);
    assert.not.ok(bytesOnDisk(dir).includes('Bob Bauer'));
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test.run();
