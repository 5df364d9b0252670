// Issue 10 / 11 wire items against a real mediasoup router: typed codec parameters survive the
// wire byte for byte (every codec the router offers, H264 Baseline / Main / High, VP9 profile-id,
// RTX apt) and mediasoup accepts what comes out; the encoding fields a browser sets are carried or
// refused with a code.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { types as ms } from 'mediasoup';
import {
  codecParametersFromWire,
  codecParametersToWire,
  pb,
  rtpCapabilitiesFromWire,
  rtpCapabilitiesToWire,
  rtpParametersFromWire,
  rtpParametersToWire,
} from '../gateway/wire.js';
import { C4vError, type MediaCore, type Participant } from '../lib/index.js';
import { hostOf, testCore } from './helpers/core.js';

const H264_PROFILES = ['42e01f', '4d001f', '640032'] as const;

const CODECS: ms.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, parameters: { useinbandfec: 1, minptime: 10 } },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
  { kind: 'video', mimeType: 'video/VP9', clockRate: 90000, parameters: { 'profile-id': 0 } },
  { kind: 'video', mimeType: 'video/VP9', clockRate: 90000, parameters: { 'profile-id': 2 } },
  ...H264_PROFILES.map((profile) => ({
    kind: 'video' as const,
    mimeType: 'video/H264',
    clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': profile, 'level-asymmetry-allowed': 1 },
  })),
];

/** Through the wire as bytes, the way a client sees it. */
function viaBytesCaps(c: ms.RtpCapabilities): ms.RtpCapabilities {
  const bytes = pb.RtpCapabilities.encode(rtpCapabilitiesToWire(c)).finish();
  return rtpCapabilitiesFromWire(pb.RtpCapabilities.decode(bytes));
}

function viaBytesParams(p: ms.RtpParameters): ms.RtpParameters {
  const bytes = pb.RtpParameters.encode(rtpParametersToWire(p)).finish();
  return rtpParametersFromWire(pb.RtpParameters.decode(bytes));
}

/** mediasoup writes an absent RTCP feedback parameter as '' or leaves it out: compare them as one. */
function norm(codecs: ms.RtpCodecParameters[]): unknown {
  return codecs.map(({ channels, ...c }) => ({ ...c, ...(channels ? { channels } : {}), parameters: c.parameters ?? {}, rtcpFeedback: (c.rtcpFeedback ?? []).map((f) => ({ type: f.type, parameter: f.parameter ?? '' })) }));
}

async function withMeeting(fn: (core: MediaCore, host: Participant) => Promise<void>): Promise<void> {
  const core = await testCore({ media: { mediaCodecs: CODECS } });
  try {
    core.createAccount({ id: 'a' });
    const meeting = await core.createMeeting({ id: 'm', accountId: 'a', title: 'codecs', hostIdentity: 'host@x.de' });
    const host = await meeting.join(hostOf('host@x.de'));
    await fn(core, host);
  } finally {
    core.close();
  }
}

test('every codec the router offers keeps its parameters and their types through the wire', async () => {
  await withMeeting(async (_core, host) => {
    const caps = host.meeting.rtpCapabilities;
    const back = viaBytesCaps(caps);
    assert.is(back.codecs!.length, caps.codecs!.length);
    caps.codecs!.forEach((c, i) => {
      const b = back.codecs![i]!;
      assert.is(b.mimeType, c.mimeType);
      assert.is(b.preferredPayloadType, c.preferredPayloadType);
      // Same keys, same values, same JS types: "640032" stays a string, apt stays a number.
      assert.equal(b.parameters ?? {}, c.parameters ?? {}, `${c.mimeType} pt ${c.preferredPayloadType}`);
      for (const [k, v] of Object.entries(c.parameters ?? {})) assert.is(typeof b.parameters![k], typeof v, `${c.mimeType} ${k}`);
    });
    const h264 = back.codecs!.filter((c) => c.mimeType === 'video/H264').map((c) => c.parameters!['profile-level-id']);
    assert.equal(h264, [...H264_PROFILES]);
    const vp9 = back.codecs!.filter((c) => c.mimeType === 'video/VP9').map((c) => c.parameters!['profile-id']);
    assert.equal(vp9, [0, 2]);
    const rtx = back.codecs!.filter((c) => c.mimeType === 'video/rtx');
    assert.ok(rtx.length >= 6, 'one RTX per video codec');
    for (const r of rtx) {
      assert.type(r.parameters!.apt, 'number');
      assert.ok(back.codecs!.some((c) => c.preferredPayloadType === r.parameters!.apt && c.mimeType !== 'video/rtx'), 'apt names a codec');
    }
  });
});

test('mediasoup accepts a producer of each H264 profile and VP9 profile whose parameters came over the wire', async () => {
  await withMeeting(async (_core, host) => {
    const caps = viaBytesCaps(host.meeting.rtpCapabilities);
    const transport = await host.createTransport('send');
    const video = caps.codecs!.filter((c) => c.kind === 'video' && c.mimeType !== 'video/rtx');
    let ssrc = 1000;
    for (const codec of video) {
      const rtx = caps.codecs!.find((c) => c.mimeType === 'video/rtx' && c.parameters!.apt === codec.preferredPayloadType)!;
      const params: ms.RtpParameters = {
        mid: String(ssrc),
        codecs: [
          { mimeType: codec.mimeType, payloadType: codec.preferredPayloadType!, clockRate: codec.clockRate, parameters: codec.parameters ?? {} },
          { mimeType: rtx.mimeType, payloadType: rtx.preferredPayloadType!, clockRate: rtx.clockRate, parameters: rtx.parameters ?? {} },
        ],
        headerExtensions: [],
        encodings: [{ ssrc: ssrc++, rtx: { ssrc: ssrc++ } }],
        rtcp: { cname: 'wire-test' },
      };
      const sent = viaBytesParams(params);
      assert.equal(norm(sent.codecs), norm(params.codecs));
      // A second producer of the same source is refused, so each codec gets its own source slot
      // by closing the previous producer first.
      const info = await host.produce({ transportId: transport.id, source: 'camera', kind: 'video', rtpParameters: sent });
      host.closeProducer(info.id);
    }
  });
});

test('consumer RTP parameters of every codec come back from the wire unchanged', async () => {
  await withMeeting(async (core, host) => {
    const meeting = host.meeting;
    const caps = viaBytesCaps(meeting.rtpCapabilities);
    const video = caps.codecs!.filter((c) => c.kind === 'video' && c.mimeType !== 'video/rtx');
    const guest = await meeting.join({ identity: 'g@x.de', displayName: 'G', authenticated: true, e2eeCapable: true });
    if (guest.state !== 'admitted') await meeting.admit(host, guest.id);
    const send = await host.createTransport('send');
    const recv = await guest.createTransport('recv');
    let ssrc = 5000;
    for (const codec of video) {
      const info = await host.produce({
        transportId: send.id,
        source: 'camera',
        kind: 'video',
        rtpParameters: {
          mid: String(ssrc),
          codecs: [{ mimeType: codec.mimeType, payloadType: codec.preferredPayloadType!, clockRate: codec.clockRate, parameters: codec.parameters ?? {} }],
          headerExtensions: [],
          encodings: [{ ssrc: ssrc++ }],
          rtcp: { cname: 'c' },
        },
      });
      // The receiver offers only this codec, so the consumer carries exactly it.
      const only: ms.RtpCapabilities = { codecs: caps.codecs!.filter((c) => c === codec || c.parameters?.apt === codec.preferredPayloadType), headerExtensions: caps.headerExtensions! };
      const consumer = await guest.consume({ transportId: recv.id, producerId: info.id, rtpCapabilities: only });
      const back = viaBytesParams(consumer.rtpParameters as ms.RtpParameters);
      assert.equal(norm(back.codecs), norm((consumer.rtpParameters as ms.RtpParameters).codecs));
      assert.equal(back.codecs[0]!.parameters, codec.parameters ?? {});
      host.closeProducer(info.id);
    }
    assert.ok(core.meetings.length === 1);
  });
});

test('typed codec values: strings stay strings, integers stay numbers, anything else is refused', () => {
  const wire = codecParametersToWire({ 'profile-level-id': '640032', apt: 96, 'sprop-stereo': 1, x: '007' });
  assert.equal(wire, {
    'profile-level-id': { stringValue: '640032' },
    apt: { intValue: 96 },
    'sprop-stereo': { intValue: 1 },
    x: { stringValue: '007' },
  });
  assert.equal(codecParametersFromWire(wire), { 'profile-level-id': '640032', apt: 96, 'sprop-stereo': 1, x: '007' });
  assert.throws(() => codecParametersToWire({ ratio: 1.5 }), /only strings and integers/);
  assert.throws(() => codecParametersToWire({ flag: true }), /only strings and integers/);
  try {
    codecParametersFromWire({ apt: {} });
    assert.unreachable('a value with neither string nor int is refused');
  } catch (error) {
    assert.instance(error, C4vError);
    assert.is((error as C4vError).code, 'PROTOCOL_ERROR');
  }
});

test('encodings: scaleResolutionDownBy and msid are carried, active=false is UNSUPPORTED_PARAMETER', () => {
  const base: ms.RtpParameters = {
    mid: '0',
    msid: 'stream-1 track-1',
    codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000, parameters: {} }],
    headerExtensions: [],
    encodings: [
      { rid: 'r0', scaleResolutionDownBy: 4, active: true },
      { rid: 'r1', scaleResolutionDownBy: 2 },
      { rid: 'r2' },
    ] as ms.RtpEncodingParameters[],
    rtcp: { cname: 'c' },
  };
  const back = viaBytesParams(base);
  assert.is(back.msid, 'stream-1 track-1');
  assert.equal(back.encodings, [{ rid: 'r0', scaleResolutionDownBy: 4, active: true }, { rid: 'r1', scaleResolutionDownBy: 2 }, { rid: 'r2' }]);
  const codeFor = (p: ms.RtpParameters): string => {
    try {
      viaBytesParams(p);
    } catch (error) {
      return error instanceof C4vError ? error.code : String(error);
    }
    return 'no error';
  };
  assert.is(codeFor({ ...base, encodings: [{ rid: 'r0', active: false } as ms.RtpEncodingParameters] }), 'UNSUPPORTED_PARAMETER');
  assert.is(codeFor({ ...base, encodings: [{ rid: 'r0', scaleResolutionDownBy: 0.5 } as ms.RtpEncodingParameters] }), 'UNSUPPORTED_PARAMETER');
  assert.is(codeFor({ ...base, msid: 'bad\nmsid' }), 'UNSUPPORTED_PARAMETER');
});

test.run();
