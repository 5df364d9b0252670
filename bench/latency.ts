// One forwarding scenario: a generator sends a workload to a path at a fixed rate (open loop), a
// receiver on the same engine records every copy's one-way delay, and the path's CPU is sampled.
import type { PacketEngine } from '../lib/native/index.js';
import { GENERATOR_SSRC, type ForwardPath, type Workload } from './paths.js';
import { summarise, type DelaySummary } from './stats.js';

export interface ScenarioResult extends Omit<DelaySummary, 'cdf'> {
  path: string;
  workload: string;
  fanout: number;
  seconds: number;
  packetsSent: number;
  /** Copies delivered per second over the measured window. */
  deliveredPps: number;
  /** CPU of the forwarding process(es) over the run, in % of one core. */
  cpuPercent: number;
  /** How far behind schedule the generator was at worst (us). */
  senderMaxLateUs: number;
  srtpFailures: number;
  cdf: DelaySummary['cdf'];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms for at most `ms`; true when it held. Bench-only (tests use events). */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

export interface ScenarioOptions {
  engine: PacketEngine;
  /** Builds the path with the receiver's port. */
  makePath: (receiverPort: number) => Promise<ForwardPath>;
  workload: Workload;
  fanout: number;
  seconds: number;
  warmupFrames?: number;
  /** The payload of the generator's stream id (several paths at once use distinct ids). */
  streamId?: number;
}

/** Runs one scenario and returns its figures. */
export async function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  const { engine, workload: w, fanout } = o;
  const warm = o.warmupFrames ?? Math.max(5, Math.round(w.frameRate * 0.4));
  const frames = Math.max(1, Math.round(o.seconds * w.frameRate));
  const rx = await engine.openSocket('127.0.0.1');
  const tx = await engine.openSocket('127.0.0.1');
  let path: ForwardPath | undefined;
  try {
    path = await o.makePath(rx.port);
    const pathName = path.name;
    const copies = path.copies.length;
    const receiver = engine.startReceiver({ socket: rx, maxRecords: Math.ceil((warm + frames) * w.packetsPerFrame * copies * 1.05) + 1000, copies: path.copies });
    const rtp = {
      payloadType: w.payloadType,
      ssrc: GENERATOR_SSRC,
      clockRate: w.clockRate,
      size: w.size,
      streamId: o.streamId ?? 1,
      ...(w.prefix ? { prefix: w.prefix } : {}),
      ...(w.keyPrefix ? { keyPrefix: w.keyPrefix } : {}),
    };
    const base = { socket: tx, host: path.ingress.host, port: path.ingress.port, rtp, frameRate: w.frameRate, packetsPerFrame: w.packetsPerFrame, ...(path.ingress.srtp ? { srtp: path.ingress.srtp } : {}) };
    // Warm-up: consumers sync (a video consumer waits for a key frame), caches fill.
    await engine.startSender({ ...base, frames: warm, firstFrame: 0 }).finished();
    await until(() => receiver.status().received >= warm * w.packetsPerFrame * copies, 2000);
    const cpu0 = await path.cpuMs();
    const t0 = Date.now();
    const sender = engine.startSender({ ...base, frames, firstFrame: warm, startNs: engine.nowNs() + 5e6 });
    const sent = await sender.finished();
    // Drain: until every copy arrived, or nothing new came for 300 ms.
    const expectedTotal = (warm + frames) * w.packetsPerFrame * copies;
    let last = -1;
    for (let i = 0; i < 30 && receiver.status().received < expectedTotal; i++) {
      const now = receiver.status().received;
      if (now === last) break;
      last = now;
      await sleep(100);
    }
    const wallMs = Date.now() - t0;
    const cpu1 = await path.cpuMs();
    const closedCpu = await path.close();
    path = undefined;
    const result = receiver.stop();
    const s = summarise(result.records, copies, warm * w.packetsPerFrame, frames * w.packetsPerFrame);
    const measuredMs = (frames / w.frameRate) * 1000;
    const cpuMs = closedCpu !== undefined ? closedCpu : cpu1 - cpu0;
    // The native forwarder reports CPU over its whole life (warm-up included).
    const cpuWindowMs = closedCpu !== undefined ? measuredMs + (warm / w.frameRate) * 1000 : wallMs;
    return {
      path: pathName,
      workload: w.name,
      fanout,
      seconds: measuredMs / 1000,
      packetsSent: sent.sent,
      ...s,
      deliveredPps: s.received / (measuredMs / 1000),
      cpuPercent: (cpuMs / cpuWindowMs) * 100,
      senderMaxLateUs: sent.maxLateNs / 1000,
      srtpFailures: result.srtpFailures,
    };
  } finally {
    await path?.close();
    tx.close();
    rx.close();
  }
}
