// The Zoom-format control-plane sink (HttpSink format 'zoom-webhook'): the real adapter with its
// outbox, a real HTTP sink, and a receiver that verifies x-zm-signature the way Zoom's
// documentation tells a webhook consumer to. The allow-list check applies before anything is
// stored, and the renderer carries only fields that have an allow-listed source.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  C4vError,
  createControlPlaneAdapter,
  HttpSink,
  renderZoomWebhook,
  signZoomWebhook,
  TypedEmitter,
  verifyZoomWebhook,
  type ControlPlaneAdapter,
  type ControlPlaneMessage,
  type ControlPlaneSourceEvents,
} from '../lib/index.js';
import { encodeEvent } from '../lib/controlplane/allowList.js';
import { ZoomReceiver, ZOOM_SECRET } from './helpers/api.js';
import { tempDir } from './helpers/controlPlane.js';
import { nextEvent, silentLogger } from './helpers/util.js';

const MEETING = { meetingId: 'visite-3', accountId: 'klinik', retentionDays: 7 };
const T0 = Date.parse('2030-05-06T07:30:00Z');

function adapterOn(receiver: ZoomReceiver, dir: string, secret = receiver.secret): ControlPlaneAdapter {
  return createControlPlaneAdapter({
    // No media core: this file is about the sink; the adapter only needs an event source.
    source: { observer: new TypedEmitter<ControlPlaneSourceEvents>() },
    outboxPath: join(dir, 'outbox.db'),
    sinks: [new HttpSink({ url: receiver.url, secret, format: 'zoom-webhook' })],
    logger: silentLogger(),
    retry: { initialDelayMs: 20, maxDelayMs: 100 },
  });
}

const description = {
  title: 'Visite Station 3',
  host: { name: 'Dr. Berg', email: 'berg@klinik.example', profilePictureUrl: 'https://klinik.example/berg.png' },
  passwordHash: 'scrypt$32768$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==',
  settings: { waitingRoom: true, hostRequiredToStart: true, muteOnEntry: false, e2ee: 'required', allowGuests: false, retentionDays: 7, allowedRegions: ['DE'] },
  scheduledStartMs: T0,
  scheduledDurationMinutes: 30,
  recurrence: { type: 'weekly', durationWeeks: 4 },
  hostTimeZone: 'Europe/Berlin',
  dialInNumbers: ['+49 30 1234567'],
};

test('the allow-listed events arrive as Zoom webhooks, signed, in order, with only fields that have an allow-listed source', async () => {
  const receiver = await ZoomReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = adapterOn(receiver, dir);
  try {
    const messages: ControlPlaneMessage[] = [
      { meetingUpdated: { meeting: description } },
      { meetingStarted: { meeting: description, actualStartMs: T0 + 60_000 } },
      { participantJoined: { displayName: 'Pfleger Jan', email: 'jan@klinik.example', ipAddress: '10.1.2.3', macAddress: '00:11:22:33:44:55', participantCount: 2 } },
      { settingsChanged: { changed: { waitingRoom: false, allowChat: false, retentionDays: 3 } } },
      { pollResults: { question: 'Schmerzen?', options: ['ja', 'nein'], counts: [1, 0], answers: [{ displayName: 'Pfleger Jan', option: 0 }] } },
      { participantLeft: { displayName: 'Pfleger Jan', participantCount: 1 } },
      { meetingUpdated: { meeting: { ...description, title: 'Visite Station 3 (neu)' } } },
      { meetingEnded: { actualStartMs: T0 + 60_000, actualEndMs: T0 + 31 * 60_000, actualDurationSeconds: 1800, participantCount: 2, participantDisplayNames: ['Dr. Berg', 'Pfleger Jan'] } },
    ];
    for (const m of messages) adapter.publish(MEETING, m);
    await adapter.drained(20_000);
    assert.equal(receiver.refused, []);
    const got = receiver.ofMeeting('visite-3');
    // Poll results have no Zoom meeting event: not sent, and they hold up nothing after them.
    assert.equal(got.map((d) => d.event), [
      'meeting.created',
      'meeting.started',
      'meeting.participant_joined',
      'meeting.updated',
      'meeting.participant_left',
      'meeting.updated',
      'meeting.ended',
    ]);
    for (const d of got) {
      assert.is(d.headers['content-type'], 'application/json');
      assert.match(String(d.headers['x-zm-request-timestamp']), /^\d{10}$/);
      assert.match(String(d.headers['x-zm-signature']), /^v0=[0-9a-f]{64}$/);
      assert.equal(Object.keys(d).filter((k) => k !== 'headers' && k !== 'raw').sort(), ['event', 'event_ts', 'payload']);
      // account_id has no allow-listed source (the account id is not on the list): left out.
      assert.equal(Object.keys(d.payload), ['object']);
      assert.ok(Math.abs(d.event_ts - Date.now()) < 60_000);
    }
    const [created, started, joined, changed, left, updated, ended] = got.map((d) => d.payload.object);
    // Every event of this instance carries the same uuid: its meeting_instance_id.
    const uuid = String((created as { uuid: string }).uuid);
    assert.match(uuid, /^[0-9a-f-]{36}$/);
    assert.not.equal(uuid, 'visite-3');
    const recurrence = { type: 2, end_date_time: '2030-06-03T07:30:00Z' };
    const settings = { waiting_room: true, join_before_host: false, mute_upon_entry: false, encryption_type: 'e2ee', meeting_authentication: true };
    assert.equal(created, {
      id: 'visite-3', uuid, topic: 'Visite Station 3', type: 8, start_time: '2030-05-06T07:30:00Z',
      duration: 30, timezone: 'Europe/Berlin', recurrence, settings,
    });
    assert.equal(started, { ...created, start_time: '2030-05-06T07:31:00Z' });
    // No user_id, id, join_time: the allow-list carries none of them. No IP or MAC address: Zoom
    // has no field for them.
    assert.equal(joined, { id: 'visite-3', uuid, participant: { user_name: 'Pfleger Jan', email: 'jan@klinik.example' } });
    // Only the changed settings that have a Zoom field.
    assert.equal(changed, { id: 'visite-3', uuid, settings: { waiting_room: false } });
    assert.equal(left, { id: 'visite-3', uuid, participant: { user_name: 'Pfleger Jan' } });
    assert.is(updated!.topic, 'Visite Station 3 (neu)');
    assert.equal(ended, { id: 'visite-3', uuid, start_time: '2030-05-06T07:31:00Z', end_time: '2030-05-06T08:01:00Z' });
    const bytes = Buffer.concat(got.map((d) => d.raw)).toString();
    for (const absent of ['10.1.2.3', '00:11:22:33:44:55', 'scrypt$', 'Schmerzen', 'berg@klinik.example', 'klinik"', '+49 30']) {
      assert.not.ok(bytes.includes(absent), `${absent} is not sent in Zoom format`);
    }
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('the allow-list check applies to the Zoom format: an undeclared field is refused before it is stored or sent', async () => {
  const receiver = await ZoomReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = adapterOn(receiver, dir);
  try {
    const smuggled = [
      { participantJoined: { displayName: 'Eve', userId: 'eve-123' } },
      { meetingStarted: { meeting: { ...description, host: { ...description.host, hostId: 'u-1' } }, actualStartMs: T0 } },
      { meetingUpdated: { meeting: description, accountId: 'klinik' } },
    ];
    for (const m of smuggled) {
      try {
        adapter.publish(MEETING, m as unknown as ControlPlaneMessage);
        assert.unreachable('an undeclared field was accepted');
      } catch (error) {
        assert.instance(error, C4vError);
        assert.is((error as C4vError).code, 'FIELD_NOT_ALLOWED');
      }
    }
    assert.is(adapter.pending, 0, 'nothing was stored');
    adapter.publish(MEETING, { participantLeft: { displayName: 'Bob', participantCount: 0 } });
    await adapter.drained(20_000);
    assert.equal(receiver.accepted.map((d) => d.event), ['meeting.participant_left'], 'only the allowed event went out');
    assert.not.ok(receiver.accepted[0]!.raw.toString().includes('eve-123'));
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('a receiver with another secret refuses the signature; the event stays in the outbox and is retried', async () => {
  const receiver = await ZoomReceiver.start('a-different-zoom-secret-0123456789');
  const { dir, cleanup } = tempDir();
  const adapter = adapterOn(receiver, dir, ZOOM_SECRET);
  try {
    const failed = nextEvent(adapter, 'deliveryfailed');
    adapter.publish(MEETING, { participantLeft: { displayName: 'Bob', participantCount: 0 } });
    const [, , err] = await failed;
    assert.match(String((err as Error).message), /401/);
    assert.is(receiver.accepted.length, 0);
    assert.ok(receiver.refused.includes('bad-signature'));
    assert.is(adapter.pending, 1, 'kept for a retry');
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('renderZoomWebhook: meeting types, created vs updated by sequence; verifyZoomWebhook follows Zoom\'s recipe', () => {
  const bytes = (sequence: number, m: ControlPlaneMessage): Uint8Array => encodeEvent({ eventId: `e${sequence}`, meetingId: 'm', sequence }, m);
  const instant = { title: 'Sofort', settings: {} };
  assert.is(renderZoomWebhook(bytes(1, { meetingUpdated: { meeting: instant } }), 5)!.event, 'meeting.created');
  assert.is(renderZoomWebhook(bytes(4, { meetingUpdated: { meeting: instant } }), 5)!.event, 'meeting.updated');
  assert.equal(renderZoomWebhook(bytes(1, { meetingUpdated: { meeting: instant } }), 5), {
    event: 'meeting.created',
    event_ts: 5,
    payload: { object: { id: 'm', uuid: 'm', topic: 'Sofort', type: 1 } },
  });
  // An instance id (a meeting id used again is a new instance, issue 10) becomes Zoom's uuid.
  const instance = encodeEvent({ eventId: 'e9', meetingId: 'm', sequence: 1, meetingInstanceId: 'inst-2' }, { meetingUpdated: { meeting: instant } });
  assert.equal(renderZoomWebhook(instance, 5)!.payload.object, { id: 'm', uuid: 'inst-2', topic: 'Sofort', type: 1 });
  const scheduled = renderZoomWebhook(bytes(2, { meetingUpdated: { meeting: { ...instant, scheduledStartMs: T0 } } }))!;
  assert.is(scheduled.payload.object.type, 2);
  assert.is(renderZoomWebhook(bytes(3, { pollResults: { question: 'q', options: ['a', 'b'], counts: [0, 0] } })), undefined);
  // A guest's participant_joined has no email (the allow-list keeps only registered addresses).
  const guest = renderZoomWebhook(bytes(5, { participantJoined: { displayName: 'Gast', email: '' } }))!;
  assert.equal(guest.payload.object.participant, { user_name: 'Gast' });

  const body = Buffer.from(JSON.stringify(guest));
  const ts = String(Math.floor(Date.now() / 1000));
  const headers = { 'x-zm-request-timestamp': ts, 'x-zm-signature': signZoomWebhook(ZOOM_SECRET, ts, body) };
  assert.equal(verifyZoomWebhook({ secret: ZOOM_SECRET, headers, body }), { ok: true });
  assert.equal(verifyZoomWebhook({ secret: ZOOM_SECRET, headers, body: Buffer.from(body.toString().replace('Gast', 'Gott')) }), { ok: false, reason: 'bad-signature' });
  assert.equal(verifyZoomWebhook({ secret: 'another-secret-0123456789abcdef', headers, body }), { ok: false, reason: 'bad-signature' });
  assert.equal(verifyZoomWebhook({ secret: ZOOM_SECRET, headers, body, now: Date.now() + 3_600_000 }), { ok: false, reason: 'stale-timestamp' });
  assert.equal(verifyZoomWebhook({ secret: ZOOM_SECRET, headers: {}, body }), { ok: false, reason: 'missing-headers' });
});

test.run();
