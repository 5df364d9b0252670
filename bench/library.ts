// Path (c): the library's own meeting path. A meeting with its policies on (host required to
// start, waiting room, locked once everyone is in, SRTP everywhere) on a MediaCore; the generator
// and the receivers are gateway participants (SRTP-only PlainTransports, lib/media/
// GatewayTransport.ts) that joined, waited and were admitted by the host like anyone else.
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { types as ms } from 'mediasoup';
import type { Logger } from 'pino';
import { createGatewayTransport, type GatewaySrtpParameters } from '../lib/media/GatewayTransport.js';
import type { PoolWorker } from '../lib/media/WorkerPool.js';
import type { MediaCore } from '../lib/MediaCore.js';
import type { Meeting } from '../lib/model/Meeting.js';
import type { Participant } from '../lib/model/Participant.js';
import type { SrtpKey } from './native/index.js';
import { GENERATOR_SSRC, randomSrtpKey, workerCpuMs, type ForwardPath, type Workload } from './paths.js';

const ACCOUNT = 'bench-account';
let meetingCount = 0;

function toGateway(k: SrtpKey): GatewaySrtpParameters {
  return { cryptoSuite: k.suite, keyBase64: k.key.toString('base64') };
}

function fromGateway(p: GatewaySrtpParameters): SrtpKey {
  return { suite: p.cryptoSuite as SrtpKey['suite'], key: Buffer.from(p.keyBase64, 'base64') };
}

/** A meeting with the host in it and `count` more participants admitted through the waiting room. */
export async function benchMeeting(core: MediaCore, count: number): Promise<{ meeting: Meeting; host: Participant; members: Participant[] }> {
  if (!core.getAccount(ACCOUNT)) core.createAccount({ id: ACCOUNT, name: 'benchmark' });
  const n = ++meetingCount;
  const meeting = await core.createMeeting({
    accountId: ACCOUNT,
    title: `bench ${n}`,
    hostIdentity: `host-${n}@bench.invalid`,
    // The strict defaults stay on (host required to start, waiting room); only the size grows.
    // No password: its scrypt check costs tens of ms per join and is not on the media path.
    settings: { maxParticipants: Math.min(10_000, count + 1), waitingRoom: true, hostRequiredToStart: true },
  });
  const host = await meeting.join({ identity: `host-${n}@bench.invalid`, displayName: 'Host', authenticated: true, asHost: true, e2eeCapable: false });
  const members: Participant[] = [];
  for (let i = 0; i < count; i++) {
    const p = await meeting.join({ identity: `gw-${n}-${i}@bench.invalid`, displayName: `Dial-in ${i}`, authenticated: true, e2eeCapable: false });
    members.push(p);
  }
  meeting.admitAll(host);
  for (const p of members) {
    if (p.state !== 'admitted') throw new Error(`participant ${p.id} was not admitted (${p.state})`);
  }
  meeting.lock(host);
  return { meeting, host, members };
}

/**
 * One producer participant sending `w` through a gateway transport, `fanout` participants each
 * receiving it on their own gateway transport (sent to the receiver's port).
 */
export async function libraryPath(core: MediaCore, w: Workload, fanout: number, receiverPort: number, name = 'library'): Promise<ForwardPath> {
  const { meeting, host, members } = await benchMeeting(core, fanout + 1);
  try {
    const [producerP, ...consumers] = members as [Participant, ...Participant[]];
    const inT = await createGatewayTransport(producerP, { direction: 'send' });
    const ingressKey = randomSrtpKey();
    await inT.connect({ srtpParameters: toGateway(ingressKey) });
    const codec =
      w.kind === 'audio'
        ? { mimeType: 'audio/opus', payloadType: w.payloadType, clockRate: 48000, channels: 2 }
        : { mimeType: 'video/VP8', payloadType: w.payloadType, clockRate: 90000 };
    const producer = await producerP.produce({
      transportId: inT.id,
      source: w.kind === 'audio' ? 'microphone' : 'camera',
      kind: w.kind,
      rtpParameters: { codecs: [codec], encodings: [{ ssrc: GENERATOR_SSRC }] },
    });
    const caps = meeting.rtpCapabilities as ms.RtpCapabilities;
    const rtpCapabilities: ms.RtpCapabilities = { codecs: caps.codecs!.filter((c) => c.kind === w.kind), headerExtensions: [] };
    const copies: ForwardPath['copies'] = [];
    const BATCH = 50;
    for (let base = 0; base < consumers.length; base += BATCH) {
      const made = await Promise.all(
        consumers.slice(base, base + BATCH).map(async (p) => {
          const t = await createGatewayTransport(p, { direction: 'recv' });
          await t.connect({ ip: '127.0.0.1', port: receiverPort, srtpParameters: toGateway(randomSrtpKey()) });
          const c = await p.consume({ transportId: t.id, producerId: producer.id, rtpCapabilities });
          await p.resumeConsumer(c.id);
          const rtp = c.rtpParameters as ms.RtpParameters;
          return { ssrc: rtp.encodings![0]!.ssrc!, srtp: fromGateway(t.info.srtpParameters) };
        }),
      );
      copies.push(...made);
    }
    const workers = (): ms.Worker[] => core.pool.workers.filter((pw) => meeting._media.workerIds.includes(pw.id)).map((pw) => pw.worker);
    return {
      name: name as ForwardPath['name'],
      ingress: { host: inT.info.ip, port: inT.info.port, srtp: ingressKey },
      copies,
      cpuMs: async () => (await Promise.all(workers().map(workerCpuMs))).reduce((a, b) => a + b, 0),
      close: async () => {
        if (!meeting.ended) meeting.end(host);
        return undefined;
      },
    };
  } catch (error) {
    if (!meeting.ended) meeting.end(host);
    throw error;
  }
}

/** Where a worker's resident memory is (Linux): VmRSS of /proc/<pid>/status in bytes. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

function gc(): void {
  // NOTE: --expose-gc at run time, so that `npm run bench` needs no node flags
  // (https://nodejs.org/api/v8.html#v8setflagsfromstringflags).
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

export interface MemoryResult {
  participants: number;
  /** What each participant has: two WebRtcTransports, a microphone, and every other microphone consumed. */
  perParticipant: string;
  heapBytesPerParticipant: number;
  workerRssBytesPerParticipant: number;
  heapBytesTotal: number;
  workerRssBytesTotal: number;
}

/** Node heap and worker RSS growth per participant of a meeting of `count` participants. */
export async function memoryPerParticipant(core: MediaCore, count: number, _logger?: Logger): Promise<MemoryResult> {
  const pids = core.pool.workers.map((w) => w.pid);
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = pids.reduce((s, pid) => s + rssOf(pid), 0);
  const { meeting, host, members } = await benchMeeting(core, count - 1);
  const everyone = [host, ...members];
  const sendT = new Map<string, string>();
  const recvT = new Map<string, string>();
  const mics: string[] = [];
  for (const [i, p] of everyone.entries()) {
    sendT.set(p.id, (await p.createTransport('send')).id);
    recvT.set(p.id, (await p.createTransport('recv')).id);
    const prod = await p.produce({
      transportId: sendT.get(p.id)!,
      source: 'microphone',
      kind: 'audio',
      rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 100_000 + i }] },
    });
    mics.push(prod.id);
  }
  const caps = meeting.rtpCapabilities as ms.RtpCapabilities;
  for (const p of everyone) {
    await Promise.all(
      mics.filter((m) => meeting._media.producer(m)?.participantId !== p.id).map((producerId) => p.consume({ transportId: recvT.get(p.id)!, producerId, rtpCapabilities: caps })),
    );
  }
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  const rss1 = pids.reduce((s, pid) => s + rssOf(pid), 0);
  meeting.end(host);
  return {
    participants: count,
    perParticipant: 'two WebRtcTransports, one microphone producer, consumers of every other microphone',
    heapBytesPerParticipant: (heap1 - heap0) / count,
    workerRssBytesPerParticipant: (rss1 - rss0) / count,
    heapBytesTotal: heap1 - heap0,
    workerRssBytesTotal: rss1 - rss0,
  };
}

export type { PoolWorker };
