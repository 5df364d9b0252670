// SRTP-only gateway transports (dial-in, the benchmark generator): admitted participants only,
// never unencrypted, and real SRTP media through a meeting from one gateway participant to another.
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { types as ms } from 'mediasoup';
import { createGatewayTransport } from '../lib/media/GatewayTransport.js';
import { packetEngine, readRecords, type SrtpKey } from '../bench/native/index.js';
import { codeOf, hostOf, testCore, user } from './helpers/core.js';
import { within } from './helpers/util.js';

const OPUS = { mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 };
const key = (): SrtpKey => ({ suite: 'AES_CM_128_HMAC_SHA1_80', key: randomBytes(30) });
const gw = (k: SrtpKey) => ({ cryptoSuite: k.suite, keyBase64: k.key.toString('base64') });

async function meetingWithGateways() {
  const core = await testCore();
  core.createAccount({ id: 'acc' });
  const meeting = await core.createMeeting({ accountId: 'acc', title: 'Dial-in', hostIdentity: 'host@example.org' });
  const host = await meeting.join(hostOf('host@example.org'));
  const a = await meeting.join(user('dialin-a@example.org', { e2eeCapable: false }));
  const b = await meeting.join(user('dialin-b@example.org', { e2eeCapable: false }));
  return { core, meeting, host, a, b };
}

test('a gateway transport refuses enableSrtp: false and a connect without SRTP with ENCRYPTION_REQUIRED', async () => {
  const { core, meeting, host, a } = await meetingWithGateways();
  try {
    meeting.admit(host, a.id);
    assert.is(await codeOf(() => createGatewayTransport(a, { direction: 'send', enableSrtp: false })), 'ENCRYPTION_REQUIRED');
    const t = await createGatewayTransport(a, { direction: 'send' });
    assert.is(t.info.srtpParameters.cryptoSuite, 'AES_CM_128_HMAC_SHA1_80');
    assert.is(await codeOf(() => t.connect({} as never)), 'ENCRYPTION_REQUIRED');
    assert.is(await codeOf(() => t.connect({ srtpParameters: { cryptoSuite: 'NONE', keyBase64: '' } } as never)), 'ENCRYPTION_REQUIRED');
    // The refusals left the transport usable: a proper connect still works.
    await t.connect({ srtpParameters: gw(key()) });
  } finally {
    core.close();
  }
});

test('a participant in the waiting room gets no gateway transport (NOT_ADMITTED)', async () => {
  const { core, a } = await meetingWithGateways();
  try {
    assert.is(a.state, 'waiting-room');
    assert.is(await codeOf(() => createGatewayTransport(a, { direction: 'recv' })), 'NOT_ADMITTED');
  } finally {
    core.close();
  }
});

test('SRTP audio goes gateway A -> meeting -> gateway B; plain RTP sent to A is dropped', async () => {
  const { core, meeting, host, a, b } = await meetingWithGateways();
  const engine = packetEngine();
  const tx = await engine.openSocket('127.0.0.1');
  const rx = await engine.openSocket('127.0.0.1');
  try {
    meeting.admitAll(host);
    const inT = await createGatewayTransport(a, { direction: 'send' });
    const ingress = key();
    await inT.connect({ srtpParameters: gw(ingress) });
    const producer = await a.produce({ transportId: inT.id, source: 'microphone', kind: 'audio', rtpParameters: { codecs: [OPUS], encodings: [{ ssrc: 4242 }] } });
    const outT = await createGatewayTransport(b, { direction: 'recv' });
    await outT.connect({ ip: '127.0.0.1', port: rx.port, srtpParameters: gw(key()) });
    const caps = meeting.rtpCapabilities as ms.RtpCapabilities;
    const consumer = await b.consume({ transportId: outT.id, producerId: producer.id, rtpCapabilities: { codecs: caps.codecs!.filter((c) => c.kind === 'audio'), headerExtensions: [] } });
    await b.resumeConsumer(consumer.id);
    const ssrc = (consumer.rtpParameters as ms.RtpParameters).encodings![0]!.ssrc!;
    const sfuKey = outT.info.srtpParameters;
    const receiver = engine.startReceiver({ socket: rx, maxRecords: 100, copies: [{ ssrc, srtp: { suite: sfuKey.cryptoSuite as SrtpKey['suite'], key: Buffer.from(sfuKey.keyBase64, 'base64') } }] });
    const rtp = { payloadType: 100, ssrc: 4242, clockRate: 48000, size: 120 };
    // Frames 0-9 in clear: the SFU must drop them. Frames 10-19 with SRTP: they must arrive.
    await engine.startSender({ socket: tx, host: inT.info.ip, port: inT.info.port, rtp, frameRate: 200, packetsPerFrame: 1, frames: 10 }).finished();
    await engine.startSender({ socket: tx, host: inT.info.ip, port: inT.info.port, rtp, frameRate: 200, packetsPerFrame: 1, frames: 10, firstFrame: 10, srtp: ingress }).finished();
    await within(
      (async () => {
        while (receiver.status().received < 10) await new Promise((r) => setTimeout(r, 10));
      })(),
      5000,
      '10 SRTP packets at gateway B',
    );
    const result = receiver.stop();
    assert.is(result.srtpFailures, 0, 'B decrypts everything with the key the SFU announced');
    assert.equal([...readRecords(result.records).seq].sort((x, y) => x - y), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  } finally {
    tx.close();
    rx.close();
    core.close();
  }
});

test.run();
