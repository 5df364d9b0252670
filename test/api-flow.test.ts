// The whole operator flow with no config file (environment variables only): create an account,
// a meeting and join tokens through the API, join with werift peers over the real gateway and
// exchange media, mute and end through the API, and receive the meeting's Zoom-format webhooks
// signed and in order at a receiver that verifies them as Zoom documents.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../gateway/api/schemas.js';
import { pb } from '../gateway/wire.js';
import { adminClient, startServer, ZoomReceiver, ZOOM_SECRET } from './helpers/api.js';
import { tempDir } from './helpers/controlPlane.js';
import { stream } from './helpers/gateway.js';
import { publish, SignallingClient, subscribe } from './helpers/signallingClient.js';

test('no config file: account, meeting, tokens via the API; werift peers join; end via the API; Zoom webhooks arrive signed and in order', async () => {
  const receiver = await ZoomReceiver.start();
  const { dir, cleanup } = tempDir();
  const server = await startServer(dir, {
    C4V_CONTROL_PLANE_URL: receiver.url,
    C4V_CONTROL_PLANE_SECRET: ZOOM_SECRET,
    C4V_CONTROL_PLANE_FORMAT: 'zoom-webhook',
  });
  const clients: SignallingClient[] = [];
  const peers: Array<{ close(): Promise<void> }> = [];
  const stops: Array<() => void> = [];
  try {
    const api = adminClient(server);
    await api.createAccount({ id: 'klinik', name: 'Klinikum', defaults: { allowedRegions: ['DE'], waitingRoom: false, retentionDays: 30 }, locked: ['allowedRegions'] });
    const scheduledStart = new Date(Date.now() + 3_600_000);
    scheduledStart.setUTCMilliseconds(0);
    const meeting = S.Meeting.parse(
      await api.createMeeting({
        id: 'visite-3',
        accountId: 'klinik',
        title: 'Visite Station 3',
        hostIdentity: 'dr.berg',
        hostName: 'Dr. Berg',
        scheduledStart: scheduledStart.toISOString(),
        scheduledDurationMinutes: 30,
        hostTimeZone: 'Europe/Berlin',
      }),
    );
    assert.is(meeting.status, 'scheduled');
    const hostToken = S.Token.parse(await api.createToken('visite-3', { role: 'host' }));
    const nurseToken = S.Token.parse(await api.createToken('visite-3', { role: 'participant', identity: 'pflege.jan', displayName: 'Pfleger Jan' }));

    // The host joins and publishes microphone and camera; the nurse joins and receives both.
    const host = await SignallingClient.connect(server.gateway.url);
    clients.push(host);
    const hj = await host.join({ meetingId: 'visite-3', displayName: 'Dr. Berg', joinToken: hostToken.token, e2eeCapable: true });
    assert.is(hj.role, pb.Role.HOST);
    const tracks = [
      { name: 'mic', kind: 'audio' as const, source: 'microphone' as const },
      { name: 'cam', kind: 'video' as const, source: 'camera' as const },
    ];
    const hp = await publish(host, tracks);
    peers.push(hp.pub);
    const nurse = await SignallingClient.connect(server.gateway.url);
    clients.push(nurse);
    const nj = await nurse.join({ meetingId: 'visite-3', displayName: 'Pfleger Jan', joinToken: nurseToken.token, e2eeCapable: true });
    assert.is(nj.state, pb.ParticipantState.ADMITTED);
    const ns = await subscribe(nurse, [...hp.producers.values()]);
    peers.push(ns.sub);
    stops.push(stream(hp.pub, tracks, 'berg'));
    await ns.sub.waitFor(() => [...ns.consumers.values()].every((c) => ns.sub.packetsOf(c).length >= 3), 'the host\'s audio and video at the nurse', 20_000);
    const running = S.Meeting.parse(await api.getMeeting('visite-3'));
    assert.is(running.status, 'running');
    assert.is(running.participantCount, 2);

    // The nurse publishes a microphone; the API mutes it like the host would.
    const np = await publish(nurse, [{ name: 'mic', kind: 'audio', source: 'microphone' }]);
    peers.push(np.pub);
    await api.participantAction('visite-3', nj.participantId, 'mute');
    const muted = await nurse.waitFor('mutedByHost', (m) => m.id === np.producers.get('mic'));
    assert.ok(muted.paused);

    // The API ends the meeting: everyone is closed with MEETING_ENDED.
    const ended = S.Meeting.parse(await api.endMeeting('visite-3'));
    assert.is(ended.status, 'ended');
    for (const c of [host, nurse]) {
      await c.waitClosed();
      assert.is(c.closingReason, 'MEETING_ENDED');
    }

    // The control plane hears the meeting in Zoom's format, signed, in the order it happened.
    await receiver.waitFor(() => receiver.ofMeeting('visite-3').some((d) => d.event === 'meeting.ended'), 'meeting.ended at the Zoom receiver');
    assert.equal(receiver.refused, [], 'every request carried a valid x-zm-signature');
    const events = receiver.ofMeeting('visite-3');
    assert.equal(events.map((d) => d.event), [
      'meeting.created',
      'meeting.started',
      'meeting.participant_joined',
      'meeting.participant_joined',
      'meeting.participant_left',
      'meeting.participant_left',
      'meeting.ended',
    ]);
    const [created, started, hostJoined, nurseJoined] = events.map((d) => d.payload.object);
    assert.is(created!.topic, 'Visite Station 3');
    assert.is(created!.type, 2);
    assert.is(created!.start_time, scheduledStart.toISOString().replace('.000Z', 'Z'));
    assert.is(created!.duration, 30);
    assert.is(created!.timezone, 'Europe/Berlin');
    assert.ok(Date.parse(String(started!.start_time)) <= Date.now(), 'meeting.started carries the actual start');
    assert.equal(hostJoined!.participant, { user_name: 'Dr. Berg' });
    assert.equal(nurseJoined!.participant, { user_name: 'Pfleger Jan' });
    const last = events.at(-1)!.payload.object;
    assert.ok(Date.parse(String(last.end_time)) >= Date.parse(String(last.start_time)));
    const bytes = Buffer.concat(events.map((d) => d.raw)).toString();
    for (const secret of [hostToken.token, nurseToken.token, 'pflege.jan', 'dr.berg', '127.0.0.1']) {
      assert.not.ok(bytes.includes(secret), `${secret.slice(0, 12)}... never reaches the control plane`);
    }
    const audit = S.AuditList.parse(await api.meetingAudit('visite-3'));
    assert.equal(audit.entries.filter((e) => e.source === 'meeting').map((e) => `${e.actor} ${e.action}`), ['api:admin mute', 'api:admin end']);
  } finally {
    for (const s of stops) s();
    for (const c of clients) c.ws.terminate();
    for (const p of peers) await p.close().catch(() => undefined);
    await server.close();
    await receiver.close();
    cleanup();
  }
});

test.run();
