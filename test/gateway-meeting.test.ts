// A whole meeting through the real gateway: protobuf over WebSocket, werift media peers, real
// mediasoup workers, ephemeral ports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pb } from '../gateway/wire.js';
import { stream, testGateway } from './helpers/gateway.js';
import { closeReasonName, publish, subscribe, wireCodeOf, type SignallingClient } from './helpers/signallingClient.js';

const MEETING = 'elternabend';

async function metrics(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  assert.is(res.status, 200);
  return res.text();
}

function metric(text: string, line: string): number | undefined {
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m === undefined ? undefined : Number(m.slice(line.length + 1));
}

test('full meeting: host token, waiting room, admit/deny, media and chat both ways, lock, remove, end', async () => {
  const t = await testGateway();
  const stops: Array<() => void> = [];
  const peers: Array<{ close(): Promise<void> }> = [];
  try {
    // The host joins with a host token and is in at once.
    const host = await t.client();
    const hj = await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await t.hostToken(), e2eeCapable: true });
    assert.is(hj.state, pb.ParticipantState.ADMITTED);
    assert.is(hj.role, pb.Role.HOST);
    assert.ok(hj.rtpCapabilities?.codecs?.length, 'an admitted participant gets the router capabilities');

    // Two guests wait in the waiting room: one signed in (participant token), one anonymous.
    const g1 = await t.client();
    const j1 = await g1.join({ meetingId: MEETING, displayName: 'Herr Yilmaz', joinToken: await t.userToken('yilmaz@eltern.de'), e2eeCapable: true });
    const g2 = await t.client();
    const j2 = await g2.join({ meetingId: MEETING, displayName: 'Gast', e2eeCapable: true });
    assert.is(j1.state, pb.ParticipantState.WAITING_ROOM);
    assert.is(j2.state, pb.ParticipantState.WAITING_ROOM);
    assert.is(j1.role, pb.Role.PARTICIPANT);
    const list = await host.waitFor('waitingList', (l) => (l.participants ?? []).length === 2);
    assert.equal(new Set(list.participants!.map((p) => p.participantId)), new Set([j1.participantId, j2.participantId]));
    // Waiting participants get nothing of the meeting.
    assert.is(await wireCodeOf(g1.call({ createTransport: { direction: pb.TransportDirection.SEND } })), 'NOT_ADMITTED');
    assert.is(await wireCodeOf(g1.call({ getParticipants: {} })), 'NOT_ADMITTED');

    // Admit one, deny the other.
    await host.call({ admit: { participantId: j1.participantId } });
    await g1.admitted();
    await host.call({ deny: { participantId: j2.participantId } });
    await g2.waitFor('waitingStatus', (w) => w.state === pb.ParticipantState.DENIED);
    const c2 = await g2.waitClosed();
    assert.equal(c2, { code: 4000 + pb.CloseReason.DENIED, reason: 'DENIED' });
    assert.is(g2.closingReason, 'DENIED');
    const joined = await host.waitFor('participantJoined', (p) => p.participantId === j1.participantId);
    assert.is(joined.displayName, 'Herr Yilmaz');

    // Host publishes microphone, camera, screen and a chat channel; the guest receives all.
    const hostTracks = [
      { name: 'mic', kind: 'audio' as const, source: 'microphone' as const },
      { name: 'cam', kind: 'video' as const, source: 'camera' as const },
      { name: 'screen', kind: 'video' as const, source: 'screen-video' as const },
    ];
    const hp = await publish(host, hostTracks, 1);
    peers.push(hp.pub);
    for (const id of hp.producers.values()) await g1.waitFor('newProducer', (p) => p.id === id);
    await g1.waitFor('newChat', (c) => c.id === hp.chatId);
    const gs = await subscribe(g1, [...hp.producers.values()], [hp.chatId!]);
    peers.push(gs.sub);
    stops.push(stream(hp.pub, hostTracks, 'host'));
    await gs.sub.waitFor(
      () => [...gs.consumers.values()].every((cid) => gs.sub.packetsOf(cid).length >= 3),
      'host audio, video and screen at the guest',
      20_000,
    );
    for (const [name, producerId] of hp.producers) {
      const got = gs.sub.packetsOf(gs.consumers.get(producerId)!);
      assert.ok(got.every((p) => p.payload.includes(Buffer.from(`host:${name}:`))), `${name} arrives as its own stream`);
    }

    // The guest publishes a microphone and chat; the host receives both.
    const guestTracks = [{ name: 'mic', kind: 'audio' as const, source: 'microphone' as const }];
    const gp = await publish(g1, guestTracks, 1);
    peers.push(gp.pub);
    await host.waitFor('newProducer', (p) => p.id === gp.producers.get('mic'));
    await host.waitFor('newChat', (c) => c.id === gp.chatId);
    const hs = await subscribe(host, [gp.producers.get('mic')!], [gp.chatId!]);
    peers.push(hs.sub);
    stops.push(stream(gp.pub, guestTracks, 'guest'));
    const guestMic = hs.consumers.get(gp.producers.get('mic')!)!;
    await hs.sub.waitFor(() => hs.sub.packetsOf(guestMic).length >= 3, 'guest audio at the host', 20_000);
    assert.ok(hs.sub.packetsOf(guestMic).every((p) => p.payload.includes(Buffer.from('guest:mic:'))));

    await hp.pub.chatOpen();
    await gp.pub.chatOpen();
    hp.pub.sendChat('Willkommen zum Elternabend');
    gp.pub.sendChat('Danke, guten Abend');
    await gs.sub.waitFor(() => gs.sub.chat.some((c) => c.text === 'Willkommen zum Elternabend'), 'host chat at the guest');
    await hs.sub.waitFor(() => hs.sub.chat.some((c) => c.text === 'Danke, guten Abend'), 'guest chat at the host');

    // /metrics reflects the meeting.
    const m1 = await metrics(t.gateway.httpUrl);
    assert.is(metric(m1, 'c4v_meetings_active'), 1);
    assert.is(metric(m1, 'c4v_participants_active'), 2);
    assert.is(metric(m1, 'c4v_participants_waiting'), 0);
    assert.is(metric(m1, 'c4v_joins_total{outcome="admitted"}'), 1);
    assert.is(metric(m1, 'c4v_joins_total{outcome="waiting-room"}'), 2);
    assert.is(metric(m1, 'c4v_producers_active{kind="video"}'), 2);
    assert.is(metric(m1, 'c4v_producers_active{kind="audio"}'), 2);
    assert.is(metric(m1, 'c4v_consumers_active{kind="video"}'), 2);
    assert.is(metric(m1, 'c4v_gateway_errors_total{code="NOT_ADMITTED"}'), 2);
    assert.ok((metric(m1, 'c4v_join_to_media_seconds_count') ?? 0) >= 2);
    assert.match(m1, /c4v_worker_cpu_seconds\{worker="\d+"\} /);

    // Locked: a new guest is refused, even to the waiting room.
    await host.call({ lock: {} });
    await g1.waitFor('meetingLocked', (l) => l.locked === true);
    const g3 = await t.client();
    await g3.hello();
    assert.is(await wireCodeOf(g3.joinOnly({ meetingId: MEETING, displayName: 'Spät', e2eeCapable: true })), 'MEETING_LOCKED');
    assert.is(metric(await metrics(t.gateway.httpUrl), 'c4v_joins_total{outcome="MEETING_LOCKED"}'), 1);
    await host.call({ unlock: {} });

    // Removed: disconnected with REMOVED, and the identity cannot come back.
    await host.call({ remove: { participantId: j1.participantId } });
    assert.equal(await g1.waitClosed(), { code: 4000 + pb.CloseReason.REMOVED, reason: 'REMOVED' });
    assert.is(g1.closingReason, 'REMOVED');
    const left = await host.waitFor('participantLeft', (l) => l.participantId === j1.participantId);
    assert.is(closeReasonName(left.reason), 'REMOVED');
    const again = await t.client();
    await again.hello();
    assert.is(
      await wireCodeOf(again.joinOnly({ meetingId: MEETING, displayName: 'Herr Yilmaz', joinToken: await t.userToken('yilmaz@eltern.de'), e2eeCapable: true })),
      'BANNED',
    );

    // A third guest comes in; then the host ends the meeting: everyone is closed with MEETING_ENDED.
    const g4 = await t.client();
    const j4 = await g4.join({ meetingId: MEETING, displayName: 'Frau Weber', e2eeCapable: true });
    await host.waitFor('waitingList', (l) => (l.participants ?? []).some((p) => p.participantId === j4.participantId));
    await host.call({ admit: { participantId: j4.participantId } });
    await g4.admitted();
    await host.call({ endMeeting: {} });
    const ended = { code: 4000 + pb.CloseReason.MEETING_ENDED, reason: 'MEETING_ENDED' };
    assert.equal(await host.waitClosed(), ended);
    assert.equal(await g4.waitClosed(), ended);
    assert.is(g4.closingReason, 'MEETING_ENDED');
    const late = await t.client();
    await late.hello();
    assert.is(await wireCodeOf(late.joinOnly({ meetingId: MEETING, displayName: 'Zu spät', e2eeCapable: true })), 'MEETING_ENDED');
  } finally {
    for (const s of stops) s();
    for (const p of peers) await p.close();
    await t.close();
  }
});

/** Host, an admitted participant and (optionally) waiting guests, all over the wire. */
async function roomWith(t: Awaited<ReturnType<typeof testGateway>>, waiting: number) {
  const host = await t.client();
  await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
  const p = await t.client();
  const pj = await p.join({ meetingId: MEETING, displayName: 'Teilnehmer', joinToken: await t.userToken('teilnehmer@x.de'), e2eeCapable: true });
  await host.call({ admit: { participantId: pj.participantId } });
  await p.admitted();
  const guests: Array<{ c: SignallingClient; id: string }> = [];
  for (let i = 0; i < waiting; i++) {
    const c = await t.client();
    const j = await c.join({ meetingId: MEETING, displayName: `Gast ${i}`, e2eeCapable: true });
    guests.push({ c, id: j.participantId });
  }
  return { host, p, pid: pj.participantId, guests };
}

test('every host control works over the wire for the host and is NOT_PERMITTED for a participant', async () => {
  const t = await testGateway();
  const peers: Array<{ close(): Promise<void> }> = [];
  try {
    const { host, p, pid, guests } = await roomWith(t, 3);
    const hostId = host.participantId;
    const controls: Array<[string, Parameters<SignallingClient['call']>[0]]> = [
      ['admit', { admit: { participantId: guests[0]!.id } }],
      ['admitAll', { admitAll: {} }],
      ['deny', { deny: { participantId: guests[0]!.id } }],
      ['lock', { lock: {} }],
      ['unlock', { unlock: {} }],
      ['remove', { remove: { participantId: hostId } }],
      ['mute', { mute: { participantId: hostId } }],
      ['muteAll', { muteAll: {} }],
      ['stopScreenShare', { stopScreenShare: { participantId: hostId } }],
      ['makeCohost', { makeCohost: { participantId: pid } }],
      ['transferHost', { transferHost: { participantId: pid } }],
      ['endMeeting', { endMeeting: {} }],
      ['createPoll', { createPoll: { question: 'Termin?', options: ['Mo', 'Di'] } }],
    ];
    for (const [name, req] of controls) {
      assert.is(await wireCodeOf(p.call(req)), 'NOT_PERMITTED', `${name} by a participant`);
    }
    assert.is(t.meeting.waiting.length, 3, 'nothing happened to the waiting guests');
    assert.is(t.meeting.locked, false);

    // The participant publishes microphone and screen so that the media controls have targets.
    const pp = await publish(p, [
      { name: 'mic', kind: 'audio', source: 'microphone' },
      { name: 'screen', kind: 'video', source: 'screen-video' },
    ]);
    peers.push(pp.pub);
    const mic = pp.producers.get('mic')!;
    const screen = pp.producers.get('screen')!;

    // Now the host does each.
    await host.call({ admit: { participantId: guests[0]!.id } });
    await guests[0]!.c.admitted();
    await host.call({ deny: { participantId: guests[1]!.id } });
    assert.is((await guests[1]!.c.waitClosed()).reason, 'DENIED');
    await host.call({ admitAll: {} });
    await guests[2]!.c.admitted();

    await host.call({ lock: {} });
    await p.waitFor('meetingLocked', (l) => l.locked === true);
    await host.call({ unlock: {} });
    await p.waitFor('meetingLocked', (l) => !l.locked);

    await host.call({ mute: { participantId: pid } });
    const muted = await p.waitFor('mutedByHost', (m) => m.id === mic);
    assert.is(muted.paused, true);
    await p.call({ resumeProducer: { producerId: mic } });
    await host.call({ muteAll: {} });
    await p.waitFor('mutedByHost', (m) => m.id === mic && p.notifications.filter((n) => n.mutedByHost?.id === mic).length >= 2);

    await host.call({ stopScreenShare: { participantId: pid } });
    await p.waitFor('producerClosed', (c) => c.producerId === screen);

    const poll = (await host.call({ createPoll: { question: 'Nächster Termin?', options: ['Montag', 'Dienstag'] } })).pollCreated!.pollId!;
    const started = await p.waitFor('pollStarted', (s) => s.pollId === poll);
    assert.equal(started.options, ['Montag', 'Dienstag']);
    await p.call({ answerPoll: { pollId: poll, option: 1 } });
    assert.is(await wireCodeOf(p.call({ answerPoll: { pollId: poll, option: 0 } })), 'ALREADY_ANSWERED');
    assert.is(await wireCodeOf(p.call({ getPollResults: { pollId: poll } })), 'NOT_PERMITTED');
    assert.is(await wireCodeOf(p.call({ closePoll: { pollId: poll } })), 'NOT_PERMITTED');
    await host.call({ closePoll: { pollId: poll } });
    const results = (await host.call({ getPollResults: { pollId: poll } })).pollResults!;
    assert.equal(results.counts, [0, 1]);
    assert.is(results.closed, true);

    await host.call({ makeCohost: { participantId: pid } });
    await host.waitFor('roleChanged', (r) => r.participantId === pid && r.role === pb.Role.COHOST);
    await host.call({ remove: { participantId: guests[0]!.id } });
    assert.is((await guests[0]!.c.waitClosed()).reason, 'REMOVED');
    await host.call({ transferHost: { participantId: pid } });
    await p.waitFor('roleChanged', (r) => r.participantId === pid && r.role === pb.Role.HOST);
    // The old host is no longer host: ending is now refused for it, and allowed for the new host.
    assert.is(await wireCodeOf(host.call({ transferHost: { participantId: hostId } })), 'NOT_PERMITTED');
    await p.call({ endMeeting: {} });
    for (const c of [host, p, guests[2]!.c]) assert.is((await c.waitClosed()).reason, 'MEETING_ENDED');
  } finally {
    for (const x of peers) await x.close();
    await t.close();
  }
});

test('joins: no token without allowGuests, a bad or expired token, a token for another meeting, requests before hello', async () => {
  const t = await testGateway({ settings: { allowGuests: false } });
  try {
    const c = await t.client();
    assert.is(await wireCodeOf(c.call({ join: { meetingId: MEETING, displayName: 'x' } })), 'INVALID_STATE', 'join before hello');
    await c.hello();
    assert.is(await wireCodeOf(c.call({ hello: { protocolVersions: [1] } })), 'INVALID_STATE', 'a second hello');
    assert.is(await wireCodeOf(c.call({ lock: {} })), 'INVALID_STATE', 'a host control before join');
    assert.is(await wireCodeOf(c.joinOnly({ meetingId: MEETING, displayName: 'Gast' })), 'GUESTS_NOT_ALLOWED');
    assert.is(await wireCodeOf(c.joinOnly({ meetingId: MEETING, displayName: 'Gast', joinToken: 'c4v1.e30.AAAA' })), 'INVALID_TOKEN');
    const other = await t.tokens.mint({ identity: 'x@y.de', role: 'participant', meetingId: 'another-meeting' });
    assert.is(await wireCodeOf(c.joinOnly({ meetingId: MEETING, displayName: 'Gast', joinToken: other })), 'INVALID_TOKEN');
    assert.is(await wireCodeOf(c.joinOnly({ meetingId: 'no-such-meeting', displayName: 'Gast', joinToken: other })), 'INVALID_TOKEN');
    assert.is(await wireCodeOf(c.joinOnly({ meetingId: MEETING, displayName: '', joinToken: await t.hostToken() })), 'INVALID_ARGUMENT');
    assert.is(await wireCodeOf(c.joinOnly({ meetingId: MEETING, displayName: 'a\nb', joinToken: await t.hostToken() })), 'INVALID_ARGUMENT');
    // A participant token never makes its bearer host, even with the host's identity in another role.
    const j = await c.joinOnly({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await t.userToken('lehrer@x.de') });
    assert.is(j.role, pb.Role.PARTICIPANT);
    assert.is(j.state, pb.ParticipantState.WAITING_FOR_HOST);
    // Leaving is answered, then the connection closes with LEFT.
    assert.ok((await c.call({ leave: {} })).ok);
    assert.equal(await c.waitClosed(), { code: 4000 + pb.CloseReason.LEFT, reason: 'LEFT' });
    assert.is(t.meeting.waiting.length, 0);
  } finally {
    await t.close();
  }
});

test('a lost connection keeps the participant for the grace period and a resume re-attaches it', async () => {
  const t = await testGateway({ limits: { reconnectGraceMs: 60_000 } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    const g = await t.client();
    const j = await g.join({ meetingId: MEETING, displayName: 'Gast', e2eeCapable: true });
    g.ws.terminate();
    await g.closed;
    // Still waiting (kept for the grace period): the host admits it while it is away.
    assert.is(t.meeting.waiting.length, 1);
    const back = await t.client();
    await back.hello();
    assert.is(await wireCodeOf(back.call({ resume: { participantId: j.participantId, resumeToken: 'wrong' } })), 'INVALID_TOKEN');
    const r = (await back.call({ resume: { participantId: j.participantId, resumeToken: g.resumeToken } })).join!;
    assert.is(r.participantId, j.participantId);
    assert.is(r.state, pb.ParticipantState.WAITING_ROOM);
    await host.call({ admit: { participantId: j.participantId } });
    await back.admitted();
  } finally {
    await t.close();
  }
});

test('without a resume the participant leaves when the grace period is over', async () => {
  const t = await testGateway({ limits: { reconnectGraceMs: 200 } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    const g = await t.client();
    const j = await g.join({ meetingId: MEETING, displayName: 'Gast', joinToken: await t.userToken('g@x.de'), e2eeCapable: true });
    await host.call({ admit: { participantId: j.participantId } });
    await g.admitted();
    g.ws.terminate();
    const left = await host.waitFor('participantLeft', (l) => l.participantId === j.participantId);
    assert.is(closeReasonName(left.reason), 'CONNECTION_LOST');
  } finally {
    await t.close();
  }
});

test('a dead media worker becomes a reconnect notice, and media set up again works on the new worker', async () => {
  const t = await testGateway({ workers: 2 });
  const peers: Array<{ close(): Promise<void> }> = [];
  try {
    const { host, p } = await roomWith(t, 0);
    const first = await publish(host, [{ name: 'mic', kind: 'audio', source: 'microphone' }]);
    peers.push(first.pub);
    const oldMic = first.producers.get('mic')!;
    const watching = await subscribe(p, [oldMic]);
    peers.push(watching.sub);
    const placement = t.meeting.placements.find((p) => !p.to)!;
    const worker = t.core.pool.workers.find((w) => w.id === placement.workerId)!;
    process.kill(worker.pid, 'SIGKILL');
    const notice = await host.waitFor('reconnect', () => true, 15_000);
    // Typed and scoped (issue 11): the reason enum, the transport and the producer that died.
    assert.is(notice.closeReason, pb.CloseReason.WORKER_FAILED);
    assert.is(notice.transportIds?.length, 1);
    assert.equal(notice.producers?.map((x) => x.id), [first.producers.get('mic')]);
    assert.is(notice.producers?.[0]?.source, pb.MediaSource.MICROPHONE);
    // The client re-creates its transport and produces again, now on another worker.
    const again = await publish(host, [{ name: 'mic', kind: 'audio', source: 'microphone' }]);
    peers.push(again.pub);
    assert.ok(again.producers.get('mic'));
    assert.is.not(again.producers.get('mic'), oldMic);
    // The participant who received the old microphone learns which new producer replaces it,
    // and its own reconnect notice names the consumer that died.
    const pNotice = await p.waitFor('reconnect');
    assert.is(pNotice.consumerIds?.length ?? 0, 0, 'the consumer was announced through producer_closed already');
    await p.waitFor('producerClosed', (x) => x.producerId === oldMic);
    const replaced = await p.waitFor('newProducer', (x) => x.replacesProducerId === oldMic);
    assert.is(replaced.id, again.producers.get('mic'));
    assert.is.not(t.meeting.placements.find((p) => !p.to)!.workerId, worker.id);
  } finally {
    for (const x of peers) await x.close();
    await t.close();
  }
});

test('E2EE key messages are relayed as opaque bytes to the addressed participant', async () => {
  const t = await testGateway();
  try {
    const { host, p, pid } = await roomWith(t, 0);
    const key = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f, 0x01]);
    await host.call({ sendKeyMessage: { toParticipantId: pid, data: key } });
    const got = await p.waitFor('keyMessage');
    assert.is(got.fromParticipantId, host.participantId);
    assert.equal(Buffer.from(got.data!), key);
    assert.is(await wireCodeOf(p.call({ sendKeyMessage: { toParticipantId: host.participantId } })), 'INVALID_ARGUMENT');
  } finally {
    await t.close();
  }
});

test('a client that stops answering pings is dropped and, after the grace period, leaves', async () => {
  const t = await testGateway({ limits: { pingIntervalMs: 100, reconnectGraceMs: 100 } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    const g = await t.client();
    const j = await g.join({ meetingId: MEETING, displayName: 'Gast', joinToken: await t.userToken('still@x.de'), e2eeCapable: true });
    await host.call({ admit: { participantId: j.participantId } });
    await g.admitted();
    // The client's machine goes silent: nothing is read, so no pong is sent.
    (g.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const left = await host.waitFor('participantLeft', (l) => l.participantId === j.participantId, 10_000);
    assert.is(closeReasonName(left.reason), 'CONNECTION_LOST');
    // The host, answering pings, is still there.
    await host.call({ getParticipants: {} });
  } finally {
    await t.close();
  }
});

test.run();
