// Capacity for real meetings (issue 14): the meeting mix a school or a clinic runs. Meetings of 10
// participants, everyone sends opus (50 packets/s of 120 B), 3 per meeting also send video (VIDEO:
// 30 fps in bursts of 4 packets of 1100 B, about 1 Mbit/s), and everyone receives everyone else:
// 13 generator streams and 117 receiver copies per meeting (10 x 9 audio + 3 x 9 video).
//
// Three paths, one search each, the same trial and the same criterion (0% loss on every copy and
// every copy's p99 <= 30 ms, one-way from the scheduled send time to the receiver):
//   native          the engine's forwarder, one thread per stream copying to the 9 others, SRTP
//                   like an SFU (unprotect once with the stream's key, protect each copy with its
//                   receiver's key; libcrypto AES-CM): the physical reference
//   mediasoup-srtp  raw mediasoup on the library's workers: one router per meeting, meetings
//                   round-robin over the workers (never a pipe), per participant one SRTP
//                   PlainTransport in (its producers) and one out (its consumers)
//   library         MediaCore with its default worker count and its own placement; the
//                   participants join, wait, are admitted by the host, and produce and consume
//                   through SRTP-only gateway transports, as the product's gateways do
// Copies are told apart by SSRC at one receiver thread, each with its own SRTP key; every copy
// knows its (meeting, receiver, sender, kind), so loss and p99 are counted per copy.
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { types as ms } from 'mediasoup';
import type { Logger } from 'pino';
import { createGatewayTransport, type GatewaySrtpParameters } from '../lib/media/GatewayTransport.js';
import { createMediaCore, type MediaCore } from '../lib/MediaCore.js';
import { createMetricsRegistry } from '../lib/telemetry/metrics.js';
import type { Participant } from '../lib/model/Participant.js';
import { benchMeeting } from './library.js';
import { readRecords, type PacketEngine, type Receiver, type ReceiverCopy, type Sender, type SrtpKey, type UdpSocket } from './native/index.js';
import { AUDIO, VIDEO, randomSrtpKey, schedCpuMs, type Workload } from './paths.js';
import { percentiles, quantileRatioInterval, rateRatioInterval, spread, type Interval, type Percentiles } from './stats.js';

export const MEETING_SIZE = 10;
export const VIDEO_SENDERS = 3;
/** Every copy's p99 must stay under this (one-way, generator to receiver). */
export const P99_BOUND_US = 30_000;

export type MixPathName = 'native' | 'mediasoup-srtp' | 'library';
export const MIX_PATHS: readonly MixPathName[] = ['native', 'mediasoup-srtp', 'library'];

/** One generator stream: a participant's microphone or camera. */
interface MixStream {
  meeting: number;
  participant: number;
  workload: Workload;
  ssrc: number;
  ingress: { host: string; port: number; srtp?: SrtpKey };
}

/** One copy the receiver expects: `from`'s stream, delivered to `receiver`. */
export interface MixCopy extends ReceiverCopy {
  meeting: number;
  receiver: number;
  from: number;
  kind: 'audio' | 'video';
}

interface MixPath {
  name: MixPathName;
  streams: MixStream[];
  copies: MixCopy[];
  /** CPU ms the forwarding process(es) or threads used so far (schedstat, ns resolution). */
  cpuMs(): number;
  close(): Promise<void>;
}

const listenInfo = { protocol: 'udp' as const, ip: '127.0.0.1' };

function ssrcOf(meeting: number, participant: number, kind: 'audio' | 'video'): number {
  // Distinct per stream of the run; the native forwarder rewrites copies to other SSRCs.
  return (0x0c400000 + meeting * 64 + participant * 2 + (kind === 'video' ? 1 : 0)) >>> 0;
}

function workloadsOf(participant: number): Workload[] {
  return participant < VIDEO_SENDERS ? [AUDIO, VIDEO] : [AUDIO];
}

function codecOf(w: Workload): ms.RtpCodecParameters {
  return w.kind === 'audio'
    ? { mimeType: 'audio/opus', payloadType: w.payloadType, clockRate: 48000, channels: 2 }
    : { mimeType: 'video/VP8', payloadType: w.payloadType, clockRate: 90000 };
}

const msKey = (k: SrtpKey): GatewaySrtpParameters => ({ cryptoSuite: k.suite, keyBase64: k.key.toString('base64') });
const fromMsKey = (p: GatewaySrtpParameters): SrtpKey => ({ suite: p.cryptoSuite as SrtpKey['suite'], key: Buffer.from(p.keyBase64, 'base64') });

/** Thread ids of this process (Linux): the native forwarder's threads are the ones it adds. */
function threadIds(): Set<string> {
  try {
    return new Set(readdirSync('/proc/self/task'));
  } catch {
    return new Set();
  }
}

function threadCpuMs(tids: string[]): number {
  let ns = 0;
  for (const tid of tids) {
    try {
      ns += Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // A thread that ended (its forwarder stopped) no longer counts.
    }
  }
  return ns / 1e6;
}

/**
 * (a) The native forwarder: one thread per stream, copying to the meeting's 9 other participants
 * with SRTP in and out (every copy under its own key), so that all three paths do the same crypto.
 */
async function nativeMix(engine: PacketEngine, meetings: number, receiverPort: number): Promise<MixPath> {
  const streams: MixStream[] = [];
  const copies: MixCopy[] = [];
  const sockets: UdpSocket[] = [];
  const plans: Array<{ input: UdpSocket; output: UdpSocket; srtp: SrtpKey; destinations: Array<{ host: string; port: number; ssrc: number; srtp: SrtpKey }> }> = [];
  for (let m = 0; m < meetings; m++) {
    const output = await engine.openSocket('127.0.0.1');
    sockets.push(output);
    for (let p = 0; p < MEETING_SIZE; p++) {
      for (const w of workloadsOf(p)) {
        const input = await engine.openSocket('127.0.0.1');
        sockets.push(input);
        const key = randomSrtpKey();
        streams.push({ meeting: m, participant: p, workload: w, ssrc: ssrcOf(m, p, w.kind), ingress: { host: '127.0.0.1', port: input.port, srtp: key } });
        const destinations: Array<{ host: string; port: number; ssrc: number; srtp: SrtpKey }> = [];
        for (let q = 0; q < MEETING_SIZE; q++) {
          if (q === p) continue;
          const ssrc = 0x20000000 + copies.length;
          const srtp = randomSrtpKey();
          copies.push({ ssrc, srtp, meeting: m, receiver: q, from: p, kind: w.kind });
          destinations.push({ host: '127.0.0.1', port: receiverPort, ssrc, srtp });
        }
        plans.push({ input, output, srtp: key, destinations });
      }
    }
  }
  // The forwarders start in one synchronous loop: the threads that appear meanwhile are theirs
  // (no await, so nothing else of this process starts a thread in between).
  const before = threadIds();
  const forwarders = plans.map((plan) => engine.startForwarder(plan));
  const tids = [...threadIds()].filter((t) => !before.has(t));
  let closed = false;
  return {
    name: 'native',
    streams,
    copies,
    cpuMs: () => threadCpuMs(tids),
    close: async () => {
      if (closed) return;
      closed = true;
      for (const f of forwarders) f.stop();
      for (const s of sockets) s.close();
    },
  };
}

/**
 * (b) Raw mediasoup with SRTP: one router per meeting, meetings round-robin over `workers` (the
 * most favourable placement for meetings of 10: no pipes, the load evenly split), per participant
 * a PlainTransport in with its producers and one out with its consumers.
 */
async function mediasoupMix(workers: ms.Worker[], mediaCodecs: ms.RouterRtpCodecCapability[], meetings: number, receiverPort: number): Promise<MixPath> {
  const streams: MixStream[] = [];
  const copies: MixCopy[] = [];
  const routers: ms.Router[] = [];
  const close = async (): Promise<void> => {
    for (const r of routers.splice(0)) r.close();
  };
  try {
    for (let m = 0; m < meetings; m++) {
      const router = await workers[m % workers.length]!.createRouter({ mediaCodecs });
      routers.push(router);
      const caps: ms.RtpCapabilities = { codecs: router.rtpCapabilities.codecs!, headerExtensions: [] };
      const producers: Array<{ participant: number; kind: 'audio' | 'video'; id: string }> = [];
      const outs = await Promise.all(
        Array.from({ length: MEETING_SIZE }, async (_, p) => {
          const inT = await router.createPlainTransport({ listenInfo, comedia: true, rtcpMux: true, enableSrtp: true });
          const key = randomSrtpKey();
          await inT.connect({ srtpParameters: msKey(key) });
          for (const w of workloadsOf(p)) {
            const ssrc = ssrcOf(m, p, w.kind);
            const producer = await inT.produce({ kind: w.kind, rtpParameters: { codecs: [codecOf(w)], encodings: [{ ssrc }] } });
            producers.push({ participant: p, kind: w.kind, id: producer.id });
            streams.push({ meeting: m, participant: p, workload: w, ssrc, ingress: { host: inT.tuple.localAddress, port: inT.tuple.localPort, srtp: key } });
          }
          const outT = await router.createPlainTransport({ listenInfo, comedia: false, rtcpMux: true, enableSrtp: true });
          await outT.connect({ ip: '127.0.0.1', port: receiverPort, srtpParameters: msKey(randomSrtpKey()) });
          return outT;
        }),
      );
      await Promise.all(
        outs.map(async (outT, q) => {
          const key = fromMsKey(outT.srtpParameters!);
          for (const pr of producers) {
            if (pr.participant === q) continue;
            const c = await outT.consume({ producerId: pr.id, rtpCapabilities: caps });
            copies.push({ ssrc: c.rtpParameters.encodings![0]!.ssrc!, srtp: key, meeting: m, receiver: q, from: pr.participant, kind: pr.kind });
          }
        }),
      );
    }
  } catch (error) {
    await close();
    throw error;
  }
  return {
    name: 'mediasoup-srtp',
    streams,
    copies,
    cpuMs: () => workers.reduce((s, w) => s + (schedCpuMs(w.pid) ?? 0), 0),
    close,
  };
}

/**
 * (c) The library: `meetings` meetings on the core (its placement over its workers), each with
 * a host and 9 participants admitted from the waiting room; every participant produces through
 * its gateway send transport and consumes the others on its gateway receive transport.
 */
async function libraryMix(core: MediaCore, meetings: number, receiverPort: number): Promise<MixPath> {
  const streams: MixStream[] = [];
  const copies: MixCopy[] = [];
  const ends: Array<() => void> = [];
  const close = async (): Promise<void> => {
    for (const end of ends.splice(0)) end();
  };
  try {
    for (let m = 0; m < meetings; m++) {
      const { meeting, host, members } = await benchMeeting(core, MEETING_SIZE - 1);
      ends.push(() => {
        if (!meeting.ended) meeting.end(host);
      });
      const everyone: Participant[] = [host, ...members];
      const caps = meeting.rtpCapabilities as ms.RtpCapabilities;
      const rtpCapabilities: ms.RtpCapabilities = { codecs: caps.codecs!, headerExtensions: [] };
      const producers: Array<{ participant: number; kind: 'audio' | 'video'; id: string }> = [];
      // Placement runs one participant at a time inside the meeting (MeetingMedia#shardFor), so
      // the transports can be asked for in parallel.
      const recv = await Promise.all(
        everyone.map(async (part, p) => {
          const inT = await createGatewayTransport(part, { direction: 'send' });
          const key = randomSrtpKey();
          await inT.connect({ srtpParameters: msKey(key) });
          for (const w of workloadsOf(p)) {
            const ssrc = ssrcOf(m, p, w.kind);
            const producer = await part.produce({ transportId: inT.id, source: w.kind === 'audio' ? 'microphone' : 'camera', kind: w.kind, rtpParameters: { codecs: [codecOf(w)], encodings: [{ ssrc }] } });
            producers.push({ participant: p, kind: w.kind, id: producer.id });
            streams.push({ meeting: m, participant: p, workload: w, ssrc, ingress: { host: inT.info.ip, port: inT.info.port, srtp: key } });
          }
          const outT = await createGatewayTransport(part, { direction: 'recv' });
          await outT.connect({ ip: '127.0.0.1', port: receiverPort, srtpParameters: msKey(randomSrtpKey()) });
          return outT;
        }),
      );
      await Promise.all(
        everyone.map(async (part, q) => {
          const outT = recv[q]!;
          const key = fromMsKey(outT.info.srtpParameters);
          for (const pr of producers) {
            if (pr.participant === q) continue;
            const c = await part.consume({ transportId: outT.id, producerId: pr.id, rtpCapabilities });
            await part.resumeConsumer(c.id);
            copies.push({ ssrc: (c.rtpParameters as ms.RtpParameters).encodings![0]!.ssrc!, srtp: key, meeting: m, receiver: q, from: pr.participant, kind: pr.kind });
          }
        }),
      );
    }
  } catch (error) {
    await close();
    throw error;
  }
  const pids = core.pool.workers.map((w) => w.pid);
  return {
    name: 'library',
    streams,
    copies,
    cpuMs: () => pids.reduce((s, pid) => s + (schedCpuMs(pid) ?? 0), 0),
    close,
  };
}

// ------------------------------------------------------------------------------------------------
// measuring
// ------------------------------------------------------------------------------------------------

/** Busy and total jiffies of the whole machine (/proc/stat): shows when every core was busy. */
function machineTicks(): { busy: number; total: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One round of a trial: forwarding CPU and copies delivered while it ran. */
export interface MixRound {
  cpuMs: number;
  copies: number;
  ms: number;
}

export interface MixTrialResult {
  path: MixPathName;
  meetings: number;
  participants: number;
  streams: number;
  copies: number;
  seconds: number;
  rounds: number;
  /** Copies expected and received over the measured rounds (all copies). */
  expected: number;
  received: number;
  loss: number;
  /** Copies that lost at least one packet. */
  copiesWithLoss: number;
  /** The worst copy's p99 (us) and which copy it was. */
  worstCopyP99Us: number;
  worstCopy: { meeting: number; receiver: number; from: number; kind: 'audio' | 'video' } | undefined;
  /** Copies whose p99 is over the bound. */
  copiesOverBound: number;
  /** Every copy's delays pooled (us). */
  all: Percentiles;
  audio: Percentiles;
  video: Percentiles;
  pass: boolean;
  /** Forwarding CPU over the measured rounds: % of one core, and ms CPU per second per participant. */
  cpuPercent: number;
  cpuMsPerSecondPerParticipant: number;
  /** The measuring side: receiver thread and sender threads, % of one core; sender lateness. */
  receiverCpuPercent: number;
  senderCpuPercent: number;
  senderMaxLateUs: number;
  sendErrors: number;
  srtpFailures: number;
  /** Every core of the machine, busy % over the measured rounds (all processes: the machine is shared). */
  machineBusyPercent: number;
  roundStats: MixRound[];
  /** A thinned sample of all delays in arrival order, for the bootstrap (not written out). */
  sample?: Float64Array;
}

interface TrialOptions {
  engine: PacketEngine;
  name: MixPathName;
  meetings: number;
  build: (receiverPort: number) => Promise<MixPath>;
  warmupSeconds: number;
}

/** A meeting mix on one path with its generator and receiver, measured in one or more rounds. */
export class MixTrial {
  readonly #o: TrialOptions;
  #path: MixPath | undefined;
  #rx: UdpSocket | undefined;
  readonly #tx: UdpSocket[] = [];
  #receiver: Receiver | undefined;
  #warmFrames = new Map<Workload, number>();
  #nextFrame = new Map<Workload, number>();
  #measuredFrames = new Map<Workload, number>();
  #rounds: MixRound[] = [];
  #senderCpuNs = 0;
  #senderMaxLateNs = 0;
  #sendErrors = 0;
  #windowMs = 0;
  #machine = { busy: 0, total: 0 };
  #receiverTids: string[] = [];
  #receiverCpuMs = 0;

  private constructor(o: TrialOptions) {
    this.#o = o;
  }

  static async open(o: TrialOptions, maxMeasuredSeconds: number): Promise<MixTrial> {
    const t = new MixTrial(o);
    try {
      await t.#open(maxMeasuredSeconds);
    } catch (error) {
      await t.close();
      throw error;
    }
    return t;
  }

  async #open(maxSeconds: number): Promise<void> {
    const { engine } = this.#o;
    this.#rx = await engine.openSocket('127.0.0.1');
    const path = await this.#o.build(this.#rx.port);
    this.#path = path;
    const seen = new Set<number>();
    for (const c of path.copies) {
      // mediasoup picks consumer SSRCs at random: two equal ones could not be told apart.
      if (seen.has(c.ssrc)) throw new Error(`two copies share SSRC ${c.ssrc}: cannot tell them apart`);
      seen.add(c.ssrc);
    }
    // One sending socket per participant: its microphone and camera come from one address, as
    // the comedia transport of a participant expects.
    for (let i = 0; i < this.#o.meetings * MEETING_SIZE; i++) this.#tx.push(await engine.openSocket('127.0.0.1'));
    const perSecond = path.copies.reduce((s, c) => s + (c.kind === 'audio' ? AUDIO.frameRate * AUDIO.packetsPerFrame : VIDEO.frameRate * VIDEO.packetsPerFrame), 0);
    // The receiver's thread is the one startReceiver adds (synchronously): its CPU is read per
    // round from schedstat, so that set-up and idle time do not dilute it.
    const before = threadIds();
    this.#receiver = engine.startReceiver({ socket: this.#rx, copies: path.copies, maxRecords: Math.ceil(perSecond * (this.#o.warmupSeconds + maxSeconds) * 1.05) + 10_000 });
    this.#receiverTids = [...threadIds()].filter((t) => !before.has(t));
    for (const w of [AUDIO, VIDEO]) {
      this.#warmFrames.set(w, Math.max(5, Math.round(this.#o.warmupSeconds * w.frameRate)));
      this.#nextFrame.set(w, 0);
      this.#measuredFrames.set(w, 0);
    }
    // Warm-up: consumers sync, the first (key) frame passes, caches fill; not measured.
    await this.#send((w) => this.#warmFrames.get(w)!);
    const expected = path.copies.reduce((s, c) => s + this.#warmFrames.get(c.kind === 'audio' ? AUDIO : VIDEO)! * (c.kind === 'audio' ? AUDIO : VIDEO).packetsPerFrame, 0);
    const receiver = this.#receiver;
    for (let i = 0; i < 200 && receiver.status().received < expected; i++) await sleep(10);
  }

  /** Sends `frames(w)` frames on every stream (phases spread over the frame period) and waits for them to leave. */
  async #send(frames: (w: Workload) => number): Promise<{ cpuNs: number; maxLateNs: number; sendErrors: number }> {
    const { engine } = this.#o;
    const path = this.#path!;
    // Every sender thread must exist before its first frame is due (creating hundreds, each with
    // its SRTP session, takes a while): 20 ms plus 0.25 ms per stream.
    const base = engine.nowNs() + 20e6 + path.streams.length * 0.25e6;
    const senders: Sender[] = path.streams.map((s, k) => {
      const w = s.workload;
      // Streams start at spread phases (golden-ratio steps over one frame period), as real
      // participants do: not all 13 x M streams in the same instant.
      const phase = ((k * 0.6180339887) % 1) * (1e9 / w.frameRate);
      return engine.startSender({
        socket: this.#tx[s.meeting * MEETING_SIZE + s.participant]!,
        host: s.ingress.host,
        port: s.ingress.port,
        rtp: { payloadType: w.payloadType, ssrc: s.ssrc, clockRate: w.clockRate, size: w.size, streamId: k, ...(w.prefix ? { prefix: w.prefix } : {}), ...(w.keyPrefix ? { keyPrefix: w.keyPrefix } : {}) },
        frameRate: w.frameRate,
        packetsPerFrame: w.packetsPerFrame,
        frames: frames(w),
        firstFrame: this.#nextFrame.get(w)!,
        startNs: base + phase,
        ...(s.ingress.srtp ? { srtp: s.ingress.srtp } : {}),
      });
    });
    const done = await Promise.all(senders.map((s) => s.finished()));
    for (const w of [AUDIO, VIDEO]) this.#nextFrame.set(w, this.#nextFrame.get(w)! + frames(w));
    return {
      cpuNs: done.reduce((a, s) => a + s.cpuNs, 0),
      maxLateNs: Math.max(0, ...done.map((s) => s.maxLateNs)),
      sendErrors: done.reduce((a, s) => a + s.sendErrors, 0),
    };
  }

  #expectedSoFar(): number {
    return this.#path!.copies.reduce((s, c) => {
      const w = c.kind === 'audio' ? AUDIO : VIDEO;
      return s + this.#nextFrame.get(w)! * w.packetsPerFrame;
    }, 0);
  }

  /** One measured round of `seconds` on every stream, then the drain. */
  async round(seconds: number): Promise<void> {
    const path = this.#path!;
    const receiver = this.#receiver!;
    const cpu0 = path.cpuMs();
    const rcpu0 = threadCpuMs(this.#receiverTids);
    const m0 = machineTicks();
    const received0 = receiver.status().received;
    const t0 = Date.now();
    const frames = (w: Workload): number => Math.max(1, Math.round(seconds * w.frameRate));
    const sent = await this.#send(frames);
    for (const w of [AUDIO, VIDEO]) this.#measuredFrames.set(w, this.#measuredFrames.get(w)! + frames(w));
    this.#senderCpuNs += sent.cpuNs;
    this.#senderMaxLateNs = Math.max(this.#senderMaxLateNs, sent.maxLateNs);
    this.#sendErrors += sent.sendErrors;
    // Drain: until every copy so far arrived, or nothing new came for 100 ms (at most 3 s).
    const expected = this.#expectedSoFar();
    let last = -1;
    for (let i = 0; i < 30 && receiver.status().received < expected; i++) {
      const now = receiver.status().received;
      if (now === last) break;
      last = now;
      await sleep(100);
    }
    const m1 = machineTicks();
    this.#receiverCpuMs += threadCpuMs(this.#receiverTids) - rcpu0;
    this.#machine.busy += m1.busy - m0.busy;
    this.#machine.total += m1.total - m0.total;
    const ms = Date.now() - t0;
    this.#windowMs += ms;
    this.#rounds.push({ cpuMs: path.cpuMs() - cpu0, copies: receiver.status().received - received0, ms });
  }

  /** Stops everything and returns the figures over the measured rounds. */
  async finish(): Promise<MixTrialResult> {
    const path = this.#path!;
    const result = this.#receiver!.stop();
    await this.close();
    const ranges = new Map<'audio' | 'video', { first: number; packets: number }>();
    for (const w of [AUDIO, VIDEO]) ranges.set(w.kind, { first: this.#warmFrames.get(w)! * w.packetsPerFrame, packets: this.#measuredFrames.get(w)! * w.packetsPerFrame });
    const s = summariseCopies(result.records, path.copies, ranges);
    const participants = this.#o.meetings * MEETING_SIZE;
    const cpuMs = this.#rounds.reduce((a, r) => a + r.cpuMs, 0);
    const seconds = this.#measuredFrames.get(AUDIO)! / AUDIO.frameRate;
    const pass = s.loss === 0 && s.received > 0 && s.copiesOverBound === 0 && this.#sendErrors === 0 && result.srtpFailures === 0;
    return {
      path: path.name,
      meetings: this.#o.meetings,
      participants,
      streams: path.streams.length,
      copies: path.copies.length,
      seconds,
      rounds: this.#rounds.length,
      ...s,
      pass,
      cpuPercent: (cpuMs / Math.max(1, this.#windowMs)) * 100,
      cpuMsPerSecondPerParticipant: cpuMs / (Math.max(1, this.#windowMs) / 1000) / participants,
      receiverCpuPercent: (this.#receiverCpuMs / Math.max(1, this.#windowMs)) * 100,
      senderCpuPercent: (this.#senderCpuNs / 1e6 / Math.max(1, this.#windowMs)) * 100,
      senderMaxLateUs: this.#senderMaxLateNs / 1000,
      sendErrors: this.#sendErrors,
      srtpFailures: result.srtpFailures,
      machineBusyPercent: this.#machine.total ? (this.#machine.busy / this.#machine.total) * 100 : NaN,
      roundStats: [...this.#rounds],
    };
  }

  /** Releases everything (idempotent; finish() calls it). */
  async close(): Promise<void> {
    const path = this.#path;
    this.#path = undefined;
    this.#receiver?.stop();
    if (path) await path.close();
    for (const t of this.#tx.splice(0)) t.close();
    this.#rx?.close();
  }
}

/**
 * Per copy: distinct packets received in its stream's measured range (loss) and its p99; pooled
 * percentiles of all, audio and video copies. Warm-up packets (earlier sequences) are ignored.
 */
export function summariseCopies(
  records: ArrayBuffer,
  copies: MixCopy[],
  ranges: Map<'audio' | 'video', { first: number; packets: number }>,
): Omit<MixTrialResult, 'path' | 'meetings' | 'participants' | 'streams' | 'copies' | 'seconds' | 'rounds' | 'pass' | 'cpuPercent' | 'cpuMsPerSecondPerParticipant' | 'receiverCpuPercent' | 'senderCpuPercent' | 'senderMaxLateUs' | 'sendErrors' | 'srtpFailures' | 'machineBusyPercent' | 'roundStats'> {
  const r = readRecords(records);
  const range = copies.map((c) => ranges.get(c.kind)!);
  // Offsets of each copy's slots in one seen-bitmap and one delay array.
  const offset = new Int32Array(copies.length + 1);
  for (let c = 0; c < copies.length; c++) offset[c + 1] = offset[c]! + range[c]!.packets;
  const seen = new Uint8Array(offset[copies.length]!);
  const delays = new Float64Array(offset[copies.length]!);
  const count = new Int32Array(copies.length);
  const inOrder: number[] = [];
  for (let i = 0; i < r.seq.length; i++) {
    const c = r.copy[i]!;
    if (c >= copies.length) continue;
    const k = r.seq[i]! - range[c]!.first;
    if (k < 0 || k >= range[c]!.packets || seen[offset[c]! + k]) continue;
    seen[offset[c]! + k] = 1;
    const d = r.delayNs[i]! / 1000;
    delays[offset[c]! + count[c]!] = d;
    count[c]!++;
    inOrder.push(d);
  }
  let expected = 0;
  let received = 0;
  let copiesWithLoss = 0;
  let copiesOverBound = 0;
  let worstCopyP99Us = 0;
  let worst: number | undefined;
  const byKind = { audio: [] as Float64Array[], video: [] as Float64Array[] };
  for (let c = 0; c < copies.length; c++) {
    expected += range[c]!.packets;
    received += count[c]!;
    if (count[c]! < range[c]!.packets) copiesWithLoss++;
    const mine = delays.subarray(offset[c]!, offset[c]! + count[c]!);
    byKind[copies[c]!.kind].push(mine);
    const p99 = percentiles(mine).p99;
    if (!(p99 <= P99_BOUND_US)) copiesOverBound++;
    if (Number.isFinite(p99) && p99 >= worstCopyP99Us) {
      worstCopyP99Us = p99;
      worst = c;
    }
  }
  const cat = (parts: Float64Array[]): Float64Array => {
    const out = new Float64Array(parts.reduce((s, p) => s + p.length, 0));
    let k = 0;
    for (const p of parts) {
      out.set(p, k);
      k += p.length;
    }
    return out;
  };
  const w = worst !== undefined ? copies[worst]! : undefined;
  // At most 10,000 delays, evenly over the arrival order, for the bootstrap of the ratios.
  const step = Math.max(1, Math.floor(inOrder.length / 10_000));
  const sample = Float64Array.from(inOrder.filter((_, i) => i % step === 0));
  return {
    expected,
    received,
    loss: expected ? 1 - received / expected : 0,
    copiesWithLoss,
    worstCopyP99Us,
    worstCopy: w ? { meeting: w.meeting, receiver: w.receiver, from: w.from, kind: w.kind } : undefined,
    copiesOverBound,
    all: percentiles(Float64Array.from(inOrder)),
    audio: percentiles(cat(byKind.audio)),
    video: percentiles(cat(byKind.video)),
    sample,
  };
}

// ------------------------------------------------------------------------------------------------
// the section: searches, the same-load comparison, the measuring side's headroom
// ------------------------------------------------------------------------------------------------

export interface MixSearchTrial {
  meetings: number;
  pass: boolean;
  loss: number;
  copiesWithLoss: number;
  worstCopyP99Us: number;
  cpuPercent: number;
  cpuMsPerSecondPerParticipant: number;
  receiverCpuPercent: number;
  senderCpuPercent: number;
  senderMaxLateUs: number;
  machineBusyPercent: number;
}

export interface MixSearch {
  path: MixPathName;
  /** The most meetings that passed (0 when even the first trial failed). */
  meetings: number;
  participants: number;
  /** The fewest meetings that failed; undefined when the search hit its upper bound. */
  firstFailure?: number;
  atLeast: boolean;
  stoppedEarly?: string;
  /** What stopped the path at its first failure (from that trial's figures). */
  limit: string;
  trials: MixSearchTrial[];
}

export interface MeetingsResult {
  scenario: string;
  criterion: string;
  workers: number;
  trialSeconds: number;
  loadAvg: { start: number[]; end: number[] };
  /** Capacity searches (full run only), one list per repetition (`--repeat K`). */
  searches: MixSearch[][];
  /** Per path: meetings at capacity over the repetitions, and participants per machine. */
  capacity: Array<{ path: MixPathName; runs: number[]; spread: ReturnType<typeof spread>; participantsMedian: number }>;
  /** library / native and library / raw capacity per repetition, and their spread. */
  capacityRatios: Array<{ of: MixPathName; to: MixPathName; runs: number[]; spread: ReturnType<typeof spread> }>;
  /** Every path at the same number of meetings, rounds rotating (same-run ratios with intervals). */
  comparison: { meetings: number; rounds: number; roundSeconds: number; rows: Array<Omit<MixTrialResult, 'sample'>> };
  ratios: Array<{ of: MixPathName; to: MixPathName; cpuPerCopy: Interval; p50: Interval; p99: Interval }>;
  /** The measuring side alone (sender -> receiver, no forwarder) at the highest copy rate any trial passed. */
  headroom: { targetPps: number; achievedPps: number; loss: number; p99Us: number; receiverCpuPercent: number; pass: boolean; factor: number };
  seconds: number;
}

/**
 * RFC 2544-style search over meeting counts: double from `start` while trials pass; after a
 * failure, halve until one passes (when none has yet); then bisect to one meeting (or 10% of the
 * passing count). `next` is the count to try, undefined when the search is done.
 */
export class MeetingSearch {
  lo = 0;
  hi: number | undefined;
  next: number | undefined;
  readonly #max: number;

  constructor(start: number, max: number) {
    this.next = Math.max(1, Math.min(start, max));
    this.#max = max;
  }

  report(n: number, pass: boolean): void {
    if (pass) this.lo = Math.max(this.lo, n);
    else this.hi = Math.min(this.hi ?? Infinity, n);
    const hi = this.hi;
    if (hi === undefined) this.next = this.lo >= this.#max ? undefined : Math.min(this.#max, this.lo * 2);
    else if (this.lo === 0) this.next = hi <= 1 ? undefined : Math.max(1, Math.floor(hi / 2));
    else this.next = hi - this.lo > Math.max(1, Math.floor(this.lo * 0.1)) ? Math.floor((this.lo + hi) / 2) : undefined;
  }
}

export interface MeetingsOptions {
  quick: boolean;
  repeat: number;
  logger: Logger;
  mediaCodecs: ms.RouterRtpCodecCapability[];
  log: (line: string) => void;
  /** No new search trial starts after this (Date.now() ms). */
  deadline?: number;
}

function limitOf(t: MixTrialResult | undefined, workers: number): string {
  if (!t) return 'none found (the search reached its upper bound)';
  if (t.machineBusyPercent >= 80) return `the machine's CPU (${t.machineBusyPercent.toFixed(0)}% of every core busy: forwarder ${t.cpuPercent.toFixed(0)}%, receiver ${t.receiverCpuPercent.toFixed(0)}%, senders ${t.senderCpuPercent.toFixed(0)}% of a core, the rest other load)`;
  if (t.senderMaxLateUs > 5000) return `the generator (${(t.senderMaxLateUs / 1000).toFixed(1)} ms late at worst, machine ${t.machineBusyPercent.toFixed(0)}% busy)`;
  if (t.cpuPercent >= workers * 90) return `forwarding CPU (${t.cpuPercent.toFixed(0)}% over ${workers} worker(s))`;
  return `tail latency / loss before the CPU is saturated (machine ${t.machineBusyPercent.toFixed(0)}% busy; worst copy p99 ${(t.worstCopyP99Us / 1000).toFixed(1)} ms, ${t.copiesWithLoss} copies with loss)`;
}

const strip = ({ sample: _s, ...rest }: MixTrialResult): Omit<MixTrialResult, 'sample'> => rest;

/** The meeting-mix section: one MediaCore with the default worker count serves the raw and library paths. */
export async function meetingMix(engine: PacketEngine, o: MeetingsOptions): Promise<MeetingsResult> {
  const started = Date.now();
  const loadStart = loadavg();
  const core = await createMediaCore({ logger: o.logger, registry: createMetricsRegistry(), media: { mediaCodecs: o.mediaCodecs } });
  try {
    const workers = core.pool.workers.map((w) => w.worker);
    const builders: Record<MixPathName, (meetings: number) => (port: number) => Promise<MixPath>> = {
      native: (n) => (port) => nativeMix(engine, n, port),
      'mediasoup-srtp': (n) => (port) => mediasoupMix(workers, o.mediaCodecs, n, port),
      library: (n) => (port) => libraryMix(core, n, port),
    };
    const warmupSeconds = o.quick ? 0.4 : 1;
    const trialSeconds = o.quick ? 1 : 5;
    const trial = async (name: MixPathName, meetings: number): Promise<MixTrialResult> => {
      const t = await MixTrial.open({ engine, name, meetings, build: builders[name](meetings), warmupSeconds }, trialSeconds);
      try {
        await t.round(trialSeconds);
        return await t.finish();
      } finally {
        await t.close();
      }
    };
    let bestPps = 0;
    const note = (r: MixTrialResult): void => {
      if (r.pass) bestPps = Math.max(bestPps, r.received / r.seconds);
      o.log(
        `  meetings ${r.path}: ${r.meetings} meetings (${r.participants} participants, ${r.copies} copies) -> ${r.pass ? 'pass' : 'FAIL'} ` +
          `(loss ${(r.loss * 100).toFixed(3)}% on ${r.copiesWithLoss} copies, worst copy p99 ${(r.worstCopyP99Us / 1000).toFixed(2)} ms, ${r.copiesOverBound} over ${P99_BOUND_US / 1000} ms; ` +
          `forwarding CPU ${r.cpuPercent.toFixed(0)}% = ${r.cpuMsPerSecondPerParticipant.toFixed(2)} ms/s per participant; receiver ${r.receiverCpuPercent.toFixed(0)}%, senders ${r.senderCpuPercent.toFixed(0)}%, late ${(r.senderMaxLateUs / 1000).toFixed(1)} ms; machine ${r.machineBusyPercent.toFixed(0)}% busy)`,
      );
    };

    // ---- capacity searches (full run) -------------------------------------------------------------
    // The three searches run in lockstep (one trial of each path in turn, rotating the order), so
    // that a change in the machine's other load lands on all of them alike, as in the latency rounds.
    const searches: MixSearch[][] = [];
    if (!o.quick) {
      const starts: Record<MixPathName, number> = { native: 8, 'mediasoup-srtp': 4, library: 4 };
      const timeLeft = (): boolean => o.deadline === undefined || Date.now() < o.deadline;
      for (let rep = 0; rep < o.repeat; rep++) {
        const states = MIX_PATHS.map((name) => ({ name, search: new MeetingSearch(starts[name], 64), trials: [] as MixTrialResult[] }));
        for (let turn = 0; timeLeft(); turn++) {
          const active = states.filter((x) => x.search.next !== undefined && x.trials.length < 8);
          if (active.length === 0) break;
          for (let i = 0; i < active.length && timeLeft(); i++) {
            const x = active[(i + turn) % active.length]!;
            const n = x.search.next!;
            const r = await trial(x.name, n);
            note(r);
            x.trials.push(r);
            x.search.report(n, r.pass);
          }
        }
        const list: MixSearch[] = states.map(({ name, search, trials }) => {
          const failures = trials.filter((t) => !t.pass);
          const firstFail = failures.length ? failures.reduce((a, b) => (a.meetings <= b.meetings ? a : b)) : undefined;
          o.log(`meetings ${name}: ${search.lo} meetings (${search.lo * MEETING_SIZE} participants) per machine${search.hi !== undefined ? `, first failure ${search.hi}` : ' (upper bound reached)'}`);
          return {
            path: name,
            meetings: search.lo,
            participants: search.lo * MEETING_SIZE,
            ...(search.hi !== undefined ? { firstFailure: search.hi } : {}),
            atLeast: search.hi === undefined,
            ...(search.next !== undefined ? { stoppedEarly: timeLeft() ? 'trial budget (8) spent' : 'time budget of the run spent' } : {}),
            limit: limitOf(firstFail, name === 'native' ? 1 : workers.length),
            trials: trials.map((t) => ({
              meetings: t.meetings,
              pass: t.pass,
              loss: t.loss,
              copiesWithLoss: t.copiesWithLoss,
              worstCopyP99Us: t.worstCopyP99Us,
              cpuPercent: t.cpuPercent,
              cpuMsPerSecondPerParticipant: t.cpuMsPerSecondPerParticipant,
              receiverCpuPercent: t.receiverCpuPercent,
              senderCpuPercent: t.senderCpuPercent,
              senderMaxLateUs: t.senderMaxLateUs,
              machineBusyPercent: t.machineBusyPercent,
            })),
          };
        });
        searches.push(list);
      }
    }
    const capacity = MIX_PATHS.map((path) => {
      const runs = searches.map((l) => l.find((s) => s.path === path)!.meetings);
      const sp = spread(runs);
      return { path, runs, spread: sp, participantsMedian: sp.median * MEETING_SIZE };
    });
    const capacityRatios = (['native', 'mediasoup-srtp'] as const).map((to) => {
      const runs = searches.map((l) => l.find((s) => s.path === 'library')!.meetings / Math.max(1e-9, l.find((s) => s.path === to)!.meetings));
      return { of: 'library' as const, to, runs, spread: spread(runs) };
    });

    // ---- the same load on every path, rounds rotating ------------------------------------------
    // At half the fewest meetings any path passed (quick: 2): every path carries the same
    // traffic, below every path's edge, so CPU per copy and delay compare directly, with
    // bootstrap intervals over rounds (CPU) and packets (delay).
    const passed = searches.flat().map((s) => s.meetings).filter((n) => n > 0);
    const compareMeetings = o.quick ? 2 : Math.max(1, Math.floor((passed.length ? Math.min(...passed) : 4) / 2));
    const rounds = o.quick ? 2 : 4;
    const roundSeconds = o.quick ? 0.5 : 2;
    const open: MixTrial[] = [];
    const rows: MixTrialResult[] = [];
    try {
      for (const name of MIX_PATHS) open.push(await MixTrial.open({ engine, name, meetings: compareMeetings, build: builders[name](compareMeetings), warmupSeconds }, rounds * roundSeconds));
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < open.length; i++) await open[(i + r) % open.length]!.round(roundSeconds);
      }
      for (const t of open) {
        const res = await t.finish();
        note(res);
        rows.push(res);
      }
    } finally {
      for (const t of open) await t.close();
    }
    const row = (p: MixPathName): MixTrialResult => rows.find((r) => r.path === p)!;
    const perCopy = (r: MixTrialResult): Array<{ num: number; den: number }> => r.roundStats.map((s) => ({ num: s.cpuMs, den: Math.max(1, s.copies) }));
    const ratios = (['native', 'mediasoup-srtp'] as const).map((to) => ({
      of: 'library' as const,
      to,
      cpuPerCopy: rateRatioInterval(perCopy(row('library')), perCopy(row(to))),
      p50: quantileRatioInterval(row('library').sample!, row(to).sample!, 0.5, { resamples: 400 }),
      p99: quantileRatioInterval(row('library').sample!, row(to).sample!, 0.99, { resamples: 400 }),
    }));

    // ---- the measuring side alone ----------------------------------------------------------------
    const highest = Math.max(bestPps, ...rows.map((r) => r.received / r.seconds), 1000);
    const headroom = await measuringSideAlone(engine, highest, o.quick ? 1 : 3);
    o.log(`meetings: measuring side alone ${headroom.achievedPps.toFixed(0)} packets/s (${headroom.factor.toFixed(1)}x the highest copy rate, ${highest.toFixed(0)}/s), loss ${(headroom.loss * 100).toFixed(3)}%, p99 ${(headroom.p99Us / 1000).toFixed(2)} ms`);

    return {
      scenario: `meetings of ${MEETING_SIZE}: everyone sends opus (${AUDIO.frameRate} packets/s of ${AUDIO.size} B), ${VIDEO_SENDERS} per meeting also video (${VIDEO.frameRate} fps x ${VIDEO.packetsPerFrame} packets of ${VIDEO.size} B = ${((VIDEO.frameRate * VIDEO.packetsPerFrame * VIDEO.size * 8) / 1e6).toFixed(2)} Mbit/s); everyone receives the other ${MEETING_SIZE - 1}: 13 streams, 117 copies per meeting`,
      criterion: `0% loss on every copy and every copy's p99 <= ${P99_BOUND_US / 1000} ms (one-way), over ${trialSeconds} s trials after ${warmupSeconds} s of warm-up`,
      workers: workers.length,
      trialSeconds,
      loadAvg: { start: loadStart, end: loadavg() },
      searches,
      capacity,
      capacityRatios,
      comparison: { meetings: compareMeetings, rounds, roundSeconds, rows: rows.map(strip) },
      ratios,
      headroom,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    core.close();
  }
}

/**
 * The generator and receiver alone (no forwarder) at 1.5x `highestPps`, SRTP on both ends, in
 * packets of the mix's mean size (90 audio copies of 120 B at 50/s and 27 video copies of 1100 B
 * at 120/s per meeting: about 530 B): when the measuring side cannot carry the rate a path was
 * measured at, that path's figure is the measuring side's, not the forwarder's.
 */
async function measuringSideAlone(engine: PacketEngine, highestPps: number, seconds: number): Promise<MeetingsResult['headroom']> {
  const frameRate = 1000;
  const ppf = Math.max(1, Math.ceil((highestPps * 1.5) / frameRate));
  const frames = seconds * frameRate;
  const tx = await engine.openSocket('127.0.0.1');
  const rx = await engine.openSocket('127.0.0.1');
  try {
    const t0 = Date.now();
    const srtp = randomSrtpKey();
    const perMeeting = { audio: 90 * AUDIO.frameRate, video: 27 * VIDEO.frameRate * VIDEO.packetsPerFrame };
    const size = Math.round((perMeeting.audio * AUDIO.size + perMeeting.video * VIDEO.size) / (perMeeting.audio + perMeeting.video));
    const receiver = engine.startReceiver({ socket: rx, maxRecords: frames * ppf + 1000, copies: [{ ssrc: 7, srtp }] });
    const s = await engine.startSender({ socket: tx, host: '127.0.0.1', port: rx.port, rtp: { payloadType: 100, ssrc: 7, clockRate: 48000, size }, frameRate, packetsPerFrame: ppf, frames, srtp }).finished();
    for (let i = 0; i < 30 && receiver.status().received < s.sent; i++) await sleep(50);
    const r = receiver.stop();
    const p = percentiles(readRecords(r.records).delayNs.map((d) => d / 1000));
    const expected = frames * ppf;
    const loss = 1 - r.received / expected;
    return {
      targetPps: expected / seconds,
      achievedPps: r.received / seconds,
      loss,
      p99Us: p.p99,
      receiverCpuPercent: (r.cpuNs / 1e6 / Math.max(1, Date.now() - t0)) * 100,
      pass: loss === 0 && p.p99 <= P99_BOUND_US,
      factor: r.received / seconds / highestPps,
    };
  } finally {
    tx.close();
    rx.close();
  }
}

/** The console table of the section. */
export function meetingsReport(m: MeetingsResult): string {
  const fmt = (us: number): string => (Number.isFinite(us) ? (us >= 1000 ? `${(us / 1000).toFixed(2)}ms` : `${us.toFixed(0)}us`) : '-');
  const iv = (i: Interval): string => `${i.value.toFixed(2)}x [${i.lo.toFixed(2)}, ${i.hi.toFixed(2)}]`;
  const lines: string[] = [`\nMeeting mix (${m.scenario})\ncriterion: ${m.criterion}; ${m.workers} workers; load average ${m.loadAvg.start.map((x) => x.toFixed(1)).join(' ')} at start, ${m.loadAvg.end.map((x) => x.toFixed(1)).join(' ')} at end\n`];
  const rows: Array<Record<string, string | number>> = [];
  for (const c of m.capacity) {
    if (c.runs.length === 0) continue;
    const runs = m.searches.map((l) => l.find((x) => x.path === c.path)!);
    // The figures at capacity and the limit are those of the run nearest the median.
    const s = runs.reduce((a, b) => (Math.abs(b.meetings - c.spread.median) < Math.abs(a.meetings - c.spread.median) ? b : a));
    const best = s.trials.filter((t) => t.pass && t.meetings === s.meetings).at(-1);
    rows.push({
      path: c.path,
      'meetings (median)': `${s.atLeast ? '>= ' : ''}${c.spread.median}`,
      runs: runs.map((r) => `${r.atLeast ? '>=' : ''}${r.meetings}`).join(', '),
      participants: c.participantsMedian,
      'first failures': runs.map((r) => r.firstFailure ?? '-').join(', '),
      'worst copy p99': best ? fmt(best.worstCopyP99Us) : '-',
      'CPU ms/s per participant': best ? best.cpuMsPerSecondPerParticipant.toFixed(2) : '-',
      'forwarding CPU': best ? `${best.cpuPercent.toFixed(0)}%` : '-',
      'limit (median run)': s.limit,
    });
  }
  if (rows.length) lines.push(table(rows));
  for (const r of m.capacityRatios) if (r.runs.length) lines.push(`capacity ${r.of} / ${r.to}: median ${r.spread.median.toFixed(2)} (runs ${r.runs.map((x) => x.toFixed(2)).join(', ')})`);
  lines.push(`\nSame load on every path: ${m.comparison.meetings} meeting(s), ${m.comparison.rounds} rounds of ${m.comparison.roundSeconds} s rotating\n`);
  lines.push(
    table(
      m.comparison.rows.map((r) => ({
        path: r.path,
        pass: r.pass ? 'yes' : 'no',
        loss: `${(r.loss * 100).toFixed(3)}%`,
        'p50': fmt(r.all.p50),
        'p99': fmt(r.all.p99),
        'worst copy p99': fmt(r.worstCopyP99Us),
        'audio p99': fmt(r.audio.p99),
        'video p99': fmt(r.video.p99),
        'CPU ms/s per participant': r.cpuMsPerSecondPerParticipant.toFixed(2),
        'receiver CPU': `${r.receiverCpuPercent.toFixed(0)}%`,
        'machine busy': `${r.machineBusyPercent.toFixed(0)}%`,
      })),
    ),
  );
  lines.push('');
  lines.push(table(m.ratios.map((r) => ({ ratio: `${r.of} / ${r.to}`, 'CPU per copy': iv(r.cpuPerCopy), 'p50 (all copies)': iv(r.p50), 'p99 (all copies)': iv(r.p99) }))));
  const h = m.headroom;
  lines.push(`measuring side alone: ${h.achievedPps.toFixed(0)} packets/s at ${(h.loss * 100).toFixed(3)}% loss, p99 ${fmt(h.p99Us)} = ${h.factor.toFixed(1)}x the highest copy rate measured (${h.pass ? 'headroom' : 'NO headroom: the measuring side limits'})`);
  return lines.join('\n');
}

function table(rows: Array<Record<string, string | number>>): string {
  if (rows.length === 0) return '(none)';
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(width[i]!)).join(' | ') + ' |';
  return [line(cols), '|' + width.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map((r) => line(cols.map((c) => String(r[c]))))].join('\n');
}

