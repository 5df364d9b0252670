// The forwarding paths under test. Each takes packets from the generator at `ingress` and
// delivers `fanout` copies, told apart by SSRC, to the receiver's address.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import type { types as ms } from 'mediasoup';
import type { PacketEngine, ReceiverCopy, SrtpKey, UdpSocket } from './native/index.js';

export type PathName = 'native' | 'mediasoup' | 'mediasoup-srtp' | 'library';

export interface Workload {
  name: 'audio' | 'video';
  kind: 'audio' | 'video';
  frameRate: number;
  packetsPerFrame: number;
  size: number;
  payloadType: number;
  clockRate: number;
  prefix?: Buffer;
  keyPrefix?: Buffer;
}

/** Opus at 50 packets/s of ~120 B. */
export const AUDIO: Workload = { name: 'audio', kind: 'audio', frameRate: 50, packetsPerFrame: 1, size: 120, payloadType: 100, clockRate: 48000 };
/** VP8 at 30 fps and ~1 Mbit/s: bursts of 4 packets of ~1100 B per frame. */
export const VIDEO: Workload = {
  name: 'video',
  kind: 'video',
  frameRate: 30,
  packetsPerFrame: 4,
  size: 1100,
  payloadType: 101,
  clockRate: 90000,
  // The SFU reads the VP8 descriptor (a fresh consumer starts at a key frame): a valid
  // descriptor and frame tag come first, the benchmark header follows.
  keyPrefix: Buffer.from([0x10, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]),
  prefix: Buffer.from([0x10, 0x51, 0x01, 0x00]),
};

export const GENERATOR_SSRC = 0x0c4b0001;

export interface ForwardPath {
  name: PathName;
  /** Where the generator sends, and the SRTP key it must protect with (if any). */
  ingress: { host: string; port: number; srtp?: SrtpKey };
  copies: ReceiverCopy[];
  /** CPU time (ms) the forwarding process(es) used so far; the native forwarder reports at close. */
  cpuMs(): Promise<number>;
  /** Closes the path; returns the forwarder's CPU ms when only then known (native). */
  close(): Promise<number | undefined>;
}

export function randomSrtpKey(): SrtpKey {
  return { suite: 'AES_CM_128_HMAC_SHA1_80', key: randomBytes(30) };
}

function msSrtp(k: SrtpKey): ms.SrtpParameters {
  return { cryptoSuite: k.suite, keyBase64: k.key.toString('base64') };
}

function fromMsSrtp(p: ms.SrtpParameters | undefined): SrtpKey | undefined {
  return p ? { suite: p.cryptoSuite as SrtpKey['suite'], key: Buffer.from(p.keyBase64, 'base64') } : undefined;
}

/** (a) The native forwarder: receive, copy to N destinations with a per-copy SSRC. */
export async function nativePath(engine: PacketEngine, fanout: number, receiverPort: number): Promise<ForwardPath> {
  const input = await engine.openSocket('127.0.0.1');
  const output = await engine.openSocket('127.0.0.1');
  const copies = Array.from({ length: fanout }, (_, i) => ({ ssrc: 0x10000 + i }));
  const fwd = engine.startForwarder({
    input,
    output,
    destinations: copies.map((c) => ({ host: '127.0.0.1', port: receiverPort, ssrc: c.ssrc })),
  });
  let closed: number | undefined;
  return {
    name: 'native',
    ingress: { host: '127.0.0.1', port: input.port },
    copies,
    cpuMs: async () => 0,
    close: async () => {
      if (closed === undefined) {
        closed = fwd.stop().cpuNs / 1e6;
        input.close();
        output.close();
      }
      return closed;
    },
  };
}

/**
 * CPU time (ms, ns resolution) of a process from the scheduler's own accounting: the sum of
 * /proc/<pid>/task/<tid>/schedstat's first field over its threads (Linux). getrusage() through
 * mediasoup reports whole milliseconds, too coarse for per-copy figures of short rounds.
 * Undefined where /proc is not readable.
 */
export function schedCpuMs(pid: number): number | undefined {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    return ns / 1e6;
  } catch {
    return undefined;
  }
}

/** Resource figures of a worker: CPU (user + system) in ms. */
export async function workerCpuMs(worker: ms.Worker): Promise<number> {
  const u = await worker.getResourceUsage();
  return u.ru_utime + u.ru_stime;
}

/**
 * (b) Raw mediasoup: a PlainTransport in (comedia) with one producer, one PlainTransport out per
 * consumer, all on `router`. With `srtp`, every transport is SRTP.
 */
export async function mediasoupPath(
  router: ms.Router,
  workers: ms.Worker[],
  workload: Workload,
  fanout: number,
  receiverPort: number,
  srtp: boolean,
  consumerRouters: ms.Router[] = [router],
): Promise<ForwardPath> {
  const listenInfo = { protocol: 'udp' as const, ip: '127.0.0.1' };
  const closers: Array<() => void> = [];
  const inT = await router.createPlainTransport({ listenInfo, comedia: true, rtcpMux: true, enableSrtp: srtp });
  closers.push(() => inT.close());
  const ingressKey = srtp ? randomSrtpKey() : undefined;
  if (ingressKey) await inT.connect({ srtpParameters: msSrtp(ingressKey) });
  const codec =
    workload.kind === 'audio'
      ? { mimeType: 'audio/opus', payloadType: workload.payloadType, clockRate: 48000, channels: 2 }
      : { mimeType: 'video/VP8', payloadType: workload.payloadType, clockRate: 90000 };
  const producer = await inT.produce({ kind: workload.kind, rtpParameters: { codecs: [codec], encodings: [{ ssrc: GENERATOR_SSRC }] } });
  // Consumers may live on other routers (the whole-machine capacity run): pipe the producer there.
  for (const r of consumerRouters) {
    if (r !== router) await router.pipeToRouter({ producerId: producer.id, router: r, enableSrtp: srtp });
  }
  const caps: ms.RtpCapabilities = { codecs: router.rtpCapabilities.codecs!.filter((c) => c.kind === workload.kind), headerExtensions: [] };
  const copies: ReceiverCopy[] = [];
  // Transports are created in parallel batches: a capacity run creates thousands.
  const BATCH = 50;
  for (let base = 0; base < fanout; base += BATCH) {
    const made = await Promise.all(
      Array.from({ length: Math.min(BATCH, fanout - base) }, async (_, j) => {
        const r = consumerRouters[(base + j) % consumerRouters.length]!;
        const outT = await r.createPlainTransport({ listenInfo, comedia: false, rtcpMux: true, enableSrtp: srtp });
        await outT.connect({ ip: '127.0.0.1', port: receiverPort, ...(srtp ? { srtpParameters: msSrtp(randomSrtpKey()) } : {}) });
        const consumer = await outT.consume({ producerId: producer.id, rtpCapabilities: caps });
        const key = fromMsSrtp(outT.srtpParameters);
        return { outT, copy: { ssrc: consumer.rtpParameters.encodings![0]!.ssrc!, ...(key ? { srtp: key } : {}) } };
      }),
    );
    for (const m of made) {
      closers.push(() => m.outT.close());
      copies.push(m.copy);
    }
  }
  return {
    name: srtp ? 'mediasoup-srtp' : 'mediasoup',
    ingress: { host: inT.tuple.localAddress, port: inT.tuple.localPort, ...(ingressKey ? { srtp: ingressKey } : {}) },
    copies,
    cpuMs: async () => (await Promise.all(workers.map(workerCpuMs))).reduce((a, b) => a + b, 0),
    close: async () => {
      for (const c of closers.reverse()) c();
      return undefined;
    },
  };
}

/** Opens a receiver socket of the engine (closed by the caller). */
export function receiverSocket(engine: PacketEngine): Promise<UdpSocket> {
  return engine.openSocket('127.0.0.1');
}
