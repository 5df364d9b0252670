// Real media through the Meeting API: werift peers publish and consume over DTLS-SRTP and SCTP on
// one worker. Host mute, E2EE payloads and key messages, chat only between admitted peers,
// screen-share policy, simulcast layers, active speaker.
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MediaCore, Meeting, Participant } from '../lib/index.js';
import { codeOf, hostOf, testCore, user } from './helpers/core.js';
import { publish, pumpUntil, subscribe, type Published, type Subscribed } from './helpers/meetingPeer.js';
import { nextEvent } from './helpers/util.js';
import { vp8Payload } from './helpers/weriftPeer.js';

let core: MediaCore;
let n = 0;
const peers: Array<Published | Subscribed> = [];

test.before(async () => {
  core = await testCore();
  core.createAccount({ id: 'a', defaults: { waitingRoom: false, hostRequiredToStart: false } });
});

test.after(async () => {
  for (const x of peers) await ('pub' in x ? x.pub.close() : x.sub.close());
  core.close();
});

async function meeting(settings: Record<string, unknown> = {}): Promise<{ m: Meeting; host: Participant }> {
  n++;
  const m = await core.createMeeting({ accountId: 'a', title: `media${n}`, hostIdentity: `host${n}@a.de`, settings });
  return { m, host: await m.join(hostOf(`host${n}@a.de`)) };
}

function track<T extends Published | Subscribed>(x: T): T {
  peers.push(x);
  return x;
}

test('mute by host pauses the audio producer on the server; only the participant can unmute', async () => {
  const { m, host } = await meeting();
  const p = await m.join(user('p@a.de'));
  const pub = track(await publish(p, [{ name: 'mic', source: 'microphone' }]));
  const mic = pub.producers.get('mic')!;
  const sub = track(await subscribe(host, [mic.id]));
  const consumerId = sub.consumers[0]!.id;
  const has = (prefix: string): boolean => sub.sub.packetsOf(consumerId).some((x) => x.payload.toString().startsWith(prefix));

  let i = 0;
  await pumpUntil(() => pub.pub.send('mic', Buffer.from(`before-${i++}`)), () => has('before-'), 'audio before the mute');

  const muted = nextEvent<[{ id: string; paused: boolean }]>(p, 'mutedbyhost');
  const pausedForHost = nextEvent<[{ id: string }]>(host, 'producerpaused');
  await m.mute(host, p.id);
  assert.equal((await muted)[0].id, mic.id);
  assert.equal((await pausedForHost)[0].id, mic.id);
  assert.ok(m._media.producer(mic.id)!.paused, 'paused on the server');

  // The host cannot unmute: the producer belongs to the participant.
  assert.is(await codeOf(() => host.resumeProducer(mic.id)), 'NOT_PERMITTED');

  // Send while muted, and wait until the worker has received those packets (its counters), so
  // that the unmute below cannot overtake them.
  const received = async (): Promise<number> => (await m._media.producerStats(mic.id)).reduce((a, s) => a + s.packetCount, 0);
  const target = (await received()) + 20;
  for (let k = 0; k < 20; k++) pub.pub.send('mic', Buffer.from(`muted-${k}`));
  let count = 0;
  await pumpUntil(() => void received().then((c) => (count = c)), () => count >= target, 'the muted packets at the worker');
  const resumed = nextEvent(host, 'producerresumed');
  await p.resumeProducer(mic.id);
  await resumed;
  let j = 0;
  await pumpUntil(() => pub.pub.send('mic', Buffer.from(`after-${j++}`)), () => has('after-'), 'audio after the participant unmuted');
  assert.not.ok(has('muted-'), 'nothing sent while muted reached the host');
});

test('mute on entry starts a participant microphone paused; the host is not muted', async () => {
  const { m, host } = await meeting({ muteOnEntry: true });
  const p = await m.join(user('q@a.de'));
  const t = await p.createTransport('send');
  const rtp = {
    codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2, parameters: {}, rtcpFeedback: [] }],
    encodings: [{ ssrc: 1111 }],
  };
  const info = await p.produce({ transportId: t.id, source: 'microphone', kind: 'audio', rtpParameters: rtp });
  assert.ok(info.paused);
  const ht = await host.createTransport('send');
  const hinfo = await host.produce({ transportId: ht.id, source: 'microphone', kind: 'audio', rtpParameters: { ...rtp, encodings: [{ ssrc: 2222 }] } });
  assert.not.ok(hinfo.paused);
});

test('E2EE: encrypted payloads arrive byte for byte, and key messages are relayed opaquely', async () => {
  const { m, host } = await meeting({ e2ee: 'required' });
  const p = await m.join(user('e2ee@a.de'));
  const pub = track(await publish(host, [{ name: 'mic', source: 'microphone' }, { name: 'cam', source: 'camera' }]));
  const sub = track(await subscribe(p, [pub.producers.get('mic')!.id, pub.producers.get('cam')!.id]));
  const [micC, camC] = [sub.consumers[0]!, sub.consumers[1]!];

  // Insertable-streams frames: random ciphertext (audio) and ciphertext behind the clear VP8 header
  // that browsers leave unencrypted (video). The SFU must not touch a byte.
  const audio = Array.from({ length: 40 }, () => randomBytes(80));
  const video = Array.from({ length: 20 }, () => vp8Payload(randomBytes(600)));
  let k = 0;
  await pumpUntil(
    () => {
      pub.pub.send('mic', audio[k % audio.length]!);
      pub.pub.send('cam', video[k % video.length]!, true);
      k++;
    },
    () => {
      const a = new Set(sub.sub.packetsOf(micC.id).map((x) => x.payload.toString('hex')));
      const v = new Set(sub.sub.packetsOf(camC.id).map((x) => x.payload.toString('hex')));
      return audio.every((b) => a.has(b.toString('hex'))) && video.every((b) => v.has(b.toString('hex')));
    },
    'every encrypted frame at the receiver',
  );
  const sent = new Set([...audio, ...video].map((b) => b.toString('hex')));
  for (const got of sub.sub.packets) assert.ok(sent.has(got.payload.toString('hex')), 'no altered payload arrived');

  const key = randomBytes(48);
  const got = nextEvent<[string, Uint8Array]>(p, 'keymessage');
  host.sendKeyMessage(p.id, key);
  const [from, data] = await got;
  assert.is(from, host.id);
  assert.equal(Buffer.from(data), key);
  assert.is(await codeOf(() => host.sendKeyMessage('nobody', key)), 'NOT_FOUND');
});

test('key messages need E2EE on, and a waiting participant can neither send nor receive them', async () => {
  const { m, host } = await meeting({ e2ee: 'off' });
  const p = await m.join(user('k@a.de'));
  assert.is(await codeOf(() => host.sendKeyMessage(p.id, new Uint8Array([1]))), 'INVALID_STATE');
  const { m: m2, host: h2 } = await meeting({ e2ee: 'optional', waitingRoom: true });
  const w = await m2.join(user('w@a.de'));
  const heard: unknown[] = [];
  w.on('keymessage', (...a) => heard.push(a));
  h2.sendKeyMessage(undefined, new Uint8Array([1, 2, 3]));
  assert.is(await codeOf(() => w.sendKeyMessage(h2.id, new Uint8Array([1]))), 'NOT_ADMITTED');
  assert.is(await codeOf(() => h2.sendKeyMessage(w.id, new Uint8Array([1]))), 'NOT_FOUND');
  assert.equal(heard, []);
});

test('chat flows between admitted participants over SCTP while a waiting participant receives nothing', async () => {
  const { m, host } = await meeting({ waitingRoom: true });
  const b = await m.join(user('b@a.de'));
  const waiting = await m.join(user('c@a.de'));
  m.admit(host, b.id);
  assert.is(waiting.state, 'waiting-room');
  const waitingHeard: string[] = [];
  for (const e of ['newchat', 'newproducer', 'participantjoined', 'chatclosed'] as const) waiting.on(e, () => waitingHeard.push(e));

  const newchat = nextEvent<[string, string]>(b, 'newchat');
  const pub = track(await publish(host, [{ name: 'mic', source: 'microphone' }], { chat: true }));
  const [chatId, from] = await newchat;
  assert.is(chatId, pub.chatId);
  assert.is(from, host.id);
  assert.equal(b.availableChats(), [[chatId, host.id]]);
  const sub = track(await subscribe(b, [], [chatId]));
  pub.pub.sendChat('Guten Morgen, Frau Dr. Weber');
  await sub.sub.waitFor(() => sub.sub.chat.length >= 1, 'the chat message at B');
  assert.equal(sub.sub.chat.map((c) => c.text), ['Guten Morgen, Frau Dr. Weber']);

  assert.is(await codeOf(() => waiting.consumeChat({ transportId: 'x', dataProducerId: chatId })), 'NOT_ADMITTED');
  assert.is(await codeOf(() => waiting.createTransport('recv')), 'NOT_ADMITTED');
  assert.equal(waitingHeard, []);

  // Switching chat off closes the open channels and refuses new ones.
  const closed = nextEvent<[string]>(b, 'chatclosed');
  m.updateSettings(host, { allowChat: false });
  assert.equal(await closed, [chatId]);
  const t = await b.createTransport('send');
  assert.is(await codeOf(() => b.produceChat({ transportId: t.id, sctpStreamParameters: { streamId: 3 } })), 'CHAT_DISABLED');
});

test('screen share: refused for participants when not allowed, and the host can stop one', async () => {
  const { m, host } = await meeting({ allowScreenShare: false });
  const p = await m.join(user('s@a.de'));
  const t = await p.createTransport('send');
  const vp8 = (ssrc: number) => ({
    codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000, parameters: {}, rtcpFeedback: [] }],
    encodings: [{ ssrc }],
  });
  assert.is(await codeOf(() => p.produce({ transportId: t.id, source: 'screen-video', kind: 'video', rtpParameters: vp8(5) })), 'SCREEN_SHARE_DISABLED');
  assert.is(await codeOf(() => p.produce({ transportId: t.id, source: 'camera', kind: 'audio', rtpParameters: vp8(6) })), 'INVALID_ARGUMENT');
  const cam = await p.produce({ transportId: t.id, source: 'camera', kind: 'video', rtpParameters: vp8(7) });
  assert.is(cam.source, 'camera');

  m.updateSettings(host, { allowScreenShare: true });
  const screen = await p.produce({ transportId: t.id, source: 'screen-video', kind: 'video', rtpParameters: vp8(8) });
  const gone = nextEvent<[string]>(host, 'producerclosed');
  m.stopScreenShare(host, p.id);
  assert.equal(await gone, [screen.id]);
  assert.equal(m._media.producers.map((x) => x.source), ['camera'], 'the camera keeps running');
});

test('simulcast: a consumer of a three-layer producer takes the preferred layers', async () => {
  const { m, host } = await meeting();
  const p = await m.join(user('sim@a.de'));
  const t = await p.createTransport('send');
  const producer = await p.produce({
    transportId: t.id,
    source: 'camera',
    kind: 'video',
    rtpParameters: {
      codecs: [{ mimeType: 'video/VP8', payloadType: 101, clockRate: 90000, parameters: {}, rtcpFeedback: [] }],
      encodings: [
        { ssrc: 1001, scalabilityMode: 'L1T3' },
        { ssrc: 1002, scalabilityMode: 'L1T3' },
        { ssrc: 1003, scalabilityMode: 'L1T3' },
      ],
    },
  });
  const rt = await host.createTransport('recv');
  const c = await host.consume({ transportId: rt.id, producerId: producer.id, rtpCapabilities: m.rtpCapabilities });
  assert.ok(c.paused, 'consumers start paused');
  await host.setPreferredLayers(c.id, { spatialLayer: 1, temporalLayer: 0 });
  const layers = m._media.consumerLayers(host.id, c.id);
  assert.is(layers.type, 'simulcast');
  assert.equal(layers.preferred, { spatialLayer: 1, temporalLayer: 0 });
  assert.is(await codeOf(() => host.setPreferredLayers(c.id, { spatialLayer: -1 })), 'INVALID_ARGUMENT');
});

test('the active speaker is reported to the meeting and its participants', async () => {
  const { m, host } = await meeting();
  const p = await m.join(user('talk@a.de'));
  const t = await p.createTransport('send');
  const onMeeting = nextEvent<[Participant]>(m, 'activespeaker');
  const onHost = nextEvent<[string]>(host, 'activespeaker');
  await p.produce({
    transportId: t.id,
    source: 'microphone',
    kind: 'audio',
    rtpParameters: {
      codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2, parameters: {}, rtcpFeedback: [] }],
      encodings: [{ ssrc: 4242 }],
    },
  });
  assert.is((await onMeeting)[0], p);
  assert.equal(await onHost, [p.id]);
});

test('clients get WebRTC transports only: ICE + DTLS fingerprints, no plain RTP', async () => {
  const { host } = await meeting();
  const t = await host.createTransport('send');
  assert.ok(t.iceParameters.usernameFragment.length > 0);
  assert.ok(t.dtlsParameters.fingerprints.some((f) => f.algorithm === 'sha-256'));
  assert.ok(t.iceCandidates.every((c) => c.address === '127.0.0.1'));
  assert.is(await codeOf(() => host.createTransport('plain' as never)), 'INVALID_ARGUMENT');
});

test.run();
