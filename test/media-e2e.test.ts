// Real media end to end through one mediasoup worker: werift peer A publishes Opus and VP8 over
// ICE + DTLS-SRTP and a chat message over SCTP; werift peer B consumes all three.
import type { types as ms } from 'mediasoup';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WorkerPool, type PoolWorker } from '../lib/index.js';
import { dtlsConnected, transportInfo } from './helpers/transports.js';
import { silentLogger } from './helpers/util.js';
import { TEST_MEDIA_CODECS, WeriftPublisher, WeriftSubscriber, vp8Payload } from './helpers/weriftPeer.js';

test('Opus + VP8 over DTLS-SRTP and chat over SCTP go A -> worker -> B with payloads intact', async () => {
  const pool = await WorkerPool.create({ workers: 1, logger: silentLogger() });
  const pub = await WeriftPublisher.create([{ name: 'mic', kind: 'audio' }, { name: 'cam', kind: 'video' }], 1);
  const sub = new WeriftSubscriber();
  try {
    const router = await pool.createRouter(pool.pick(['DE']), { mediaCodecs: TEST_MEDIA_CODECS });
    const transportOptions = {
      listenInfos: [{ protocol: 'udp' as const, ip: '127.0.0.1' }],
      enableSctp: true,
      numSctpStreams: { OS: 1024, MIS: 1024 },
    };

    // A publishes.
    const sendT = await router.createWebRtcTransport(transportOptions);
    await sendT.connect({ dtlsParameters: pub.dtlsParameters });
    const mic = await sendT.produce(pub.produceParameters('mic'));
    const cam = await sendT.produce(pub.produceParameters('cam'));
    const chatProducer = await sendT.produceData({ sctpStreamParameters: pub.sctpStreamParameters, label: 'chat' });
    await pub.connect(transportInfo(sendT));

    // B consumes.
    const recvT = await router.createWebRtcTransport(transportOptions);
    const consumers = [
      await recvT.consume({ producerId: mic.id, rtpCapabilities: router.rtpCapabilities, paused: true }),
      await recvT.consume({ producerId: cam.id, rtpCapabilities: router.rtpCapabilities, paused: true }),
    ];
    const chatConsumer = await recvT.consumeData({ dataProducerId: chatProducer.id });
    const dtls = await sub.connect(
      transportInfo(recvT),
      consumers.map((c) => ({ id: c.id, kind: c.kind, rtpParameters: c.rtpParameters })),
      true,
    );
    await recvT.connect({ dtlsParameters: dtls });
    await Promise.all([dtlsConnected(sendT), dtlsConnected(recvT)]);
    for (const c of consumers) await c.resume();
    await sub.openChat(chatConsumer.sctpStreamParameters!.streamId);
    await pub.chatOpen();

    // Every payload is unique so that a lost, duplicated or altered packet shows.
    const AUDIO = 50;
    const VIDEO = 30;
    const audioSent = Array.from({ length: AUDIO }, (_, i) => Buffer.from(`opus-${String(i).padStart(3, '0')}`.padEnd(120, '.')));
    const videoSent = Array.from({ length: VIDEO }, (_, i) => vp8Payload(Buffer.from(`vp8-${i}`.padEnd(1000, '#')), i === 0));
    for (let i = 0; i < Math.max(AUDIO, VIDEO); i++) {
      if (i < AUDIO) pub.send('mic', audioSent[i]!);
      if (i < VIDEO) pub.send('cam', videoSent[i]!, true);
      // Pace a little so that loopback socket buffers never overflow; no assertion depends on it.
      await new Promise((r) => setImmediate(r));
    }
    const [micC, camC] = consumers as [(typeof consumers)[0], (typeof consumers)[0]];
    await sub.waitFor(
      () => sub.packetsOf(micC.id).length >= AUDIO && sub.packetsOf(camC.id).length >= VIDEO,
      `all ${AUDIO} audio and ${VIDEO} video packets at B`,
      15_000,
    );
    const audioGot = sub.packetsOf(micC.id).map((p) => p.payload.toString('hex'));
    const videoGot = sub.packetsOf(camC.id).map((p) => p.payload.toString('hex'));
    assert.equal(new Set(audioGot), new Set(audioSent.map((b) => b.toString('hex'))), 'every Opus payload arrives unchanged');
    assert.equal(new Set(videoGot), new Set(videoSent.map((b) => b.toString('hex'))), 'every VP8 payload arrives unchanged');
    assert.is(sub.packetsOf(micC.id)[0]!.ssrc, micC.rtpParameters.encodings![0]!.ssrc);

    pub.sendChat('Guten Tag aus Frankfurt');
    await sub.waitFor(() => sub.chat.length >= 1, 'the chat message at B');
    assert.equal(sub.chat, [{ streamId: chatConsumer.sctpStreamParameters!.streamId, text: 'Guten Tag aus Frankfurt' }]);

    // The worker counted what it forwarded.
    const stats = await mic.getStats();
    assert.ok(stats[0]!.packetCount >= AUDIO);
    assert.is(sendT.dtlsState, 'connected');
  } finally {
    await pub.close();
    await sub.close();
    pool.close();
  }
});

test('the worker protects and unprotects every SRTP suite it offers (the libsrtp it was built with)', async () => {
  // Two workers, one SRTP PlainTransport pair per suite: worker 1 encrypts what it forwards,
  // worker 2 must authenticate and decrypt it, or its producer counts nothing.
  const pool = await WorkerPool.create({ workers: 2, logger: silentLogger() });
  const pub = await WeriftPublisher.create([{ name: 'mic', kind: 'audio' }]);
  try {
    const [w1, w2] = pool.workers as [PoolWorker, PoolWorker];
    const r1 = await pool.createRouter(w1, { mediaCodecs: TEST_MEDIA_CODECS });
    const r2 = await pool.createRouter(w2, { mediaCodecs: TEST_MEDIA_CODECS });
    const sendT = await r1.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }] });
    await sendT.connect({ dtlsParameters: pub.dtlsParameters });
    const mic = await sendT.produce(pub.produceParameters('mic'));
    await pub.connect(transportInfo(sendT));
    await dtlsConnected(sendT);
    const suites = ['AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32', 'AEAD_AES_128_GCM', 'AEAD_AES_256_GCM'] as const;
    const legs: Array<{ suite: string; p: ms.Producer }> = [];
    for (const suite of suites) {
      const opts = { listenInfo: { protocol: 'udp' as const, ip: '127.0.0.1' }, rtcpMux: true, comedia: false, enableSrtp: true, srtpCryptoSuite: suite };
      const a = await r1.createPlainTransport(opts);
      const b = await r2.createPlainTransport(opts);
      await a.connect({ ip: '127.0.0.1', port: b.tuple.localPort, srtpParameters: b.srtpParameters! });
      await b.connect({ ip: '127.0.0.1', port: a.tuple.localPort, srtpParameters: a.srtpParameters! });
      const c = await a.consume({ producerId: mic.id, rtpCapabilities: r1.rtpCapabilities });
      const p = await b.produce({ kind: 'audio', rtpParameters: c.rtpParameters });
      legs.push({ suite, p });
    }
    const received = async (): Promise<number[]> => Promise.all(legs.map(async (l) => (await l.p.getStats())[0]?.packetCount ?? 0));
    // Send until every leg has counted packets (each send is one 20 ms Opus frame's worth).
    for (let i = 0; i < 500 && (await received()).some((n) => n < 10); i++) {
      pub.send('mic', Buffer.from(`srtp-suite-check-${i}`.padEnd(100, '.')));
      await new Promise((r) => setTimeout(r, 5));
    }
    const counts = await received();
    legs.forEach((l, i) => assert.ok(counts[i]! >= 10, `${l.suite}: worker 2 decrypted ${counts[i]} packets`));
  } finally {
    await pub.close();
    pool.close();
  }
});

test.run();
