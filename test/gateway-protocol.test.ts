// Protocol additions of issues 10 and 11 through the real gateway, with werift peers and real
// workers: close_transport, get_stats, score notifications, the current active speaker for late
// joiners, set_preferred_layers on audio, and encoding fields that are refused with a code.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pb, rtpParametersToWire } from '../gateway/wire.js';
import { stream, testGateway, type TestGateway } from './helpers/gateway.js';
import { publish, subscribe, wireCodeOf } from './helpers/signallingClient.js';

const MEETING = 'elternabend';

async function room(t: TestGateway) {
  const host = await t.client();
  await host.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
  const guest = await t.client();
  const gj = await guest.join({ meetingId: MEETING, displayName: 'Gast', joinToken: await t.userToken('gast@x.de'), e2eeCapable: true });
  await host.call({ admit: { participantId: gj.participantId } });
  await guest.admitted();
  return { host, guest };
}

const TRACKS = [
  { name: 'mic', kind: 'audio' as const, source: 'microphone' as const },
  { name: 'cam', kind: 'video' as const, source: 'camera' as const },
];

test('close_transport closes the transport with its producers, consumers and chat; others are told', async () => {
  const t = await testGateway();
  const peers: Array<{ close(): Promise<void> }> = [];
  const stops: Array<() => void> = [];
  try {
    const { host, guest } = await room(t);
    const hp = await publish(host, TRACKS, 1);
    peers.push(hp.pub);
    const gs = await subscribe(guest, [...hp.producers.values()], [hp.chatId!]);
    peers.push(gs.sub);
    stops.push(stream(hp.pub, TRACKS, 'host'));
    const camConsumer = gs.consumers.get(hp.producers.get('cam')!)!;
    await gs.sub.waitFor(() => gs.sub.packetsOf(camConsumer).length >= 2, 'host video at the guest', 20_000);

    assert.ok((await host.call({ closeTransport: { transportId: hp.transportId } })).ok);
    for (const producerId of hp.producers.values()) {
      await guest.waitFor('producerClosed', (x) => x.producerId === producerId);
      // The owner hears it too: its producers are gone with the transport.
      await host.waitFor('producerClosed', (x) => x.producerId === producerId);
    }
    await guest.waitFor('chatClosed', (x) => x.dataProducerId === hp.chatId);
    // Gone on the server: the guest's consumer and the host's producer and transport.
    assert.is(await wireCodeOf(guest.call({ getStats: { consumerId: camConsumer } })), 'NOT_FOUND');
    assert.is(await wireCodeOf(host.call({ getStats: { producerId: hp.producers.get('mic')! } })), 'NOT_FOUND');
    assert.is(await wireCodeOf(host.call({ closeTransport: { transportId: hp.transportId } })), 'NOT_FOUND');
    assert.is(await wireCodeOf(host.call({ closeTransport: {} })), 'INVALID_ARGUMENT');
    // The guest cannot close someone else's transport.
    assert.is(await wireCodeOf(guest.call({ closeTransport: { transportId: hp.transportId } })), 'NOT_FOUND');
    // The guest's own receive transport closes as well, and a new one works afterwards.
    assert.ok((await guest.call({ closeTransport: { transportId: gs.transportId } })).ok);
    const again = await publish(host, [TRACKS[0]!]);
    peers.push(again.pub);
    const gs2 = await subscribe(guest, [again.producers.get('mic')!]);
    peers.push(gs2.sub);
    assert.is(gs2.consumers.size, 1);
  } finally {
    for (const s of stops) s();
    for (const p of peers) await p.close();
    await t.close();
  }
});

test('get_stats reports a producer inbound and a consumer outbound; scores arrive as notifications', async () => {
  const t = await testGateway();
  const peers: Array<{ close(): Promise<void> }> = [];
  const stops: Array<() => void> = [];
  try {
    const { host, guest } = await room(t);
    const hp = await publish(host, TRACKS);
    peers.push(hp.pub);
    const gs = await subscribe(guest, [...hp.producers.values()]);
    peers.push(gs.sub);
    stops.push(stream(hp.pub, TRACKS, 'host'));
    const cam = hp.producers.get('cam')!;
    const camConsumer = gs.consumers.get(cam)!;
    await gs.sub.waitFor(() => gs.sub.packetsOf(camConsumer).length >= 5, 'host video at the guest', 20_000);

    const ps = (await host.call({ getStats: { producerId: cam } })).stats!;
    assert.is(ps.streams!.length, 1);
    assert.is(ps.streams![0]!.type, 'inbound-rtp');
    assert.is(ps.streams![0]!.mimeType, 'video/VP8');
    assert.ok(Number(ps.streams![0]!.packetCount) >= 5);
    const cs = (await guest.call({ getStats: { consumerId: camConsumer } })).stats!;
    assert.ok(cs.streams!.some((s) => s.type === 'outbound-rtp' && Number(s.packetCount) >= 5));
    // Only one's own: someone else's producer is NOT_FOUND, and a request needs a target.
    assert.is(await wireCodeOf(guest.call({ getStats: { producerId: cam } })), 'NOT_FOUND');
    assert.is(await wireCodeOf(guest.call({ getStats: {} })), 'INVALID_ARGUMENT');

    // The server scores what it receives (producer_score, to the owner) and what it sends (consumer_score).
    const score = await host.waitFor('producerScore', (x) => x.producerId === cam && (x.scores ?? []).some((s) => (s.score ?? 0) > 0), 20_000);
    assert.ok(score.scores![0]!.ssrc);
    await guest.waitFor('consumerScore', (x) => x.consumerId === camConsumer, 20_000);
    assert.is(host.notifications.filter((n) => n.body === 'consumerScore').length, 0, 'scores go only to the one they concern');
  } finally {
    for (const s of stops) s();
    for (const p of peers) await p.close();
    await t.close();
  }
});

test('a late joiner learns the current active speaker from its admission and get_participants', async () => {
  const t = await testGateway();
  const peers: Array<{ close(): Promise<void> }> = [];
  try {
    const { host, guest } = await room(t);
    const hp = await publish(host, [TRACKS[0]!]);
    peers.push(hp.pub);
    // The speaker observer names the only microphone at once.
    await guest.waitFor('activeSpeaker', (a) => a.participantId === host.participantId);
    const late = await t.client();
    const lj = await late.join({ meetingId: MEETING, displayName: 'Spät', joinToken: await t.userToken('spaet@x.de'), e2eeCapable: true });
    assert.is(lj.activeSpeakerId, '', 'a waiting participant learns nothing of the meeting');
    await host.call({ admit: { participantId: lj.participantId } });
    const admitted = await late.waitFor('waitingStatus', (w) => w.state === pb.ParticipantState.ADMITTED);
    assert.is(admitted.activeSpeakerId, host.participantId);
    const list = (await late.call({ getParticipants: {} })).participants!;
    assert.is(list.activeSpeakerId, host.participantId);
    // The host's own join answer (a fresh connection of the same identity) carries it too.
    const again = await t.client();
    const hj = await again.join({ meetingId: MEETING, displayName: 'Host', joinToken: await t.hostToken(), e2eeCapable: true });
    assert.is(hj.state, pb.ParticipantState.ADMITTED);
    // The replaced host session took its microphone with it: nobody speaks now.
    assert.is(hj.activeSpeakerId, '');
  } finally {
    for (const p of peers) await p.close();
    await t.close();
  }
});

test('set_preferred_layers on an audio consumer is INVALID_STATE; encodings active=false is UNSUPPORTED_PARAMETER', async () => {
  const t = await testGateway();
  const peers: Array<{ close(): Promise<void> }> = [];
  try {
    const { host, guest } = await room(t);
    const hp = await publish(host, [TRACKS[0]!]);
    peers.push(hp.pub);
    const gs = await subscribe(guest, [hp.producers.get('mic')!]);
    peers.push(gs.sub);
    const micConsumer = gs.consumers.get(hp.producers.get('mic')!)!;
    assert.is(await wireCodeOf(guest.call({ setPreferredLayers: { consumerId: micConsumer, spatialLayer: 0 } })), 'INVALID_STATE');

    // A camera whose rtp parameters switch a layer off is refused before anything is created.
    const cam = hp.pub.produceParameters('mic').rtpParameters;
    const wire = rtpParametersToWire(cam);
    wire.encodings = [{ ...(wire.encodings?.[0] ?? {}), active: false }];
    const refused = await wireCodeOf(
      host.call({ produce: { transportId: hp.transportId, source: pb.MediaSource.SCREEN_AUDIO, kind: pb.MediaKind.AUDIO, rtpParameters: wire } }),
    );
    assert.is(refused, 'UNSUPPORTED_PARAMETER');
    assert.is(t.meeting._media.producers.length, 1, 'nothing was produced');
    // The same parameters with the layer on are accepted.
    wire.encodings = [{ ...(wire.encodings?.[0] ?? {}), active: true, ssrc: 777 }];
    wire.mid = '9';
    const ok = await host.call({ produce: { transportId: hp.transportId, source: pb.MediaSource.SCREEN_AUDIO, kind: pb.MediaKind.AUDIO, rtpParameters: wire } });
    assert.ok(ok.producer?.id);
  } finally {
    for (const p of peers) await p.close();
    await t.close();
  }
});

test.run();
