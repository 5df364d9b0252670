// One forwarding scenario: a generator sends a workload to a path at a fixed rate (open loop), a
// receiver on the same engine records every copy's one-way delay, and the path's CPU is sampled.
// A scenario runs in rounds, so that several paths can take turns (A B C, B C A, ...) and share
// whatever else the machine is doing evenly: ratios between paths stay fair on a busy machine.
import type { PacketEngine, Receiver, ReceiverOptions, SenderOptions, UdpSocket } from './native/index.js';
import { GENERATOR_SSRC, type ForwardPath, type Workload } from './paths.js';
import { percentiles, summarise, thin, type DelaySummary } from './stats.js';

export interface ScenarioResult extends Omit<DelaySummary, 'cdf'> {
  path: string;
  workload: string;
  fanout: number;
  /** Seconds of measured sending (all rounds). */
  seconds: number;
  rounds: number;
  packetsSent: number;
  /** Copies delivered per second over the measured window. */
  deliveredPps: number;
  /** CPU of the forwarding process(es) over the measured rounds, in % of one core. */
  cpuPercent: number;
  /** How far behind schedule the generator was at worst (us). */
  senderMaxLateUs: number;
  /** Packets the generator failed to send (counted as loss: the run is open-loop). */
  sendErrors: number;
  /** CPU of the receiver thread over the scenario (native engine), in % of one core. */
  receiverCpuPercent: number;
  srtpFailures: number;
  /** Per round: the forwarder's CPU ms and the copies the receiver got in it (per-copy CPU). */
  roundStats: RoundStat[];
  cdf: DelaySummary['cdf'];
  /** Issue 14: the receiver's raw records (ScenarioOptions.keepRecords); not written to results.json. */
  records?: ArrayBuffer;
  /** Issue 14: copies timed by the kernel's receive timestamp (ScenarioOptions.receiver.kernelTimestamps). */
  kernelStamped?: number;
}

/** One round of a scenario: forwarding CPU and copies delivered while it ran. */
export interface RoundStat {
  cpuMs: number;
  copies: number;
  ms: number;
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
  warmupFrames?: number;
  /** Issue 14: how the receiver times copies (kernel timestamps, batched reads); default user space, per wake-up. */
  receiver?: Pick<ReceiverOptions, 'kernelTimestamps' | 'batchSleepUs'>;
  /** Issue 14: keep the receiver's raw records in the result (per-copy analysis). */
  keepRecords?: boolean;
}

/** A path with its generator and receiver, measured in one or more rounds. */
export class Scenario {
  readonly #o: ScenarioOptions;
  readonly #warm: number;
  #rx: UdpSocket | undefined;
  #tx: UdpSocket | undefined;
  #path: ForwardPath | undefined;
  #pathName = '';
  #receiver: Receiver | undefined;
  #base: Omit<SenderOptions, 'frames'> | undefined;
  #nextFrame = 0;
  #measuredFrames = 0;
  #rounds = 0;
  #sent = 0;
  #sendErrors = 0;
  #maxLateNs = 0;
  #cpuMs = 0;
  #cpuWindowMs = 0;
  #openedAt = 0;
  readonly #roundStats: RoundStat[] = [];

  private constructor(o: ScenarioOptions) {
    this.#o = o;
    this.#warm = o.warmupFrames ?? Math.max(5, Math.round(o.workload.frameRate * 0.4));
  }

  /** Builds the path, starts the receiver and warms up (consumers sync, caches fill). */
  static async open(o: ScenarioOptions, maxMeasuredFrames: number): Promise<Scenario> {
    const s = new Scenario(o);
    s.#openedAt = Date.now();
    try {
      await s.#open(maxMeasuredFrames);
    } catch (error) {
      await s.close();
      throw error;
    }
    return s;
  }

  async #open(maxMeasuredFrames: number): Promise<void> {
    const { engine, workload: w } = this.#o;
    this.#rx = await engine.openSocket('127.0.0.1');
    this.#tx = await engine.openSocket('127.0.0.1');
    const path = await this.#o.makePath(this.#rx.port);
    this.#path = path;
    this.#pathName = path.name;
    const copies = path.copies.length;
    this.#receiver = engine.startReceiver({
      socket: this.#rx,
      maxRecords: Math.ceil((this.#warm + maxMeasuredFrames) * w.packetsPerFrame * copies * 1.05) + 1000,
      copies: path.copies,
      ...this.#o.receiver,
    });
    this.#base = {
      socket: this.#tx,
      host: path.ingress.host,
      port: path.ingress.port,
      rtp: {
        payloadType: w.payloadType,
        ssrc: GENERATOR_SSRC,
        clockRate: w.clockRate,
        size: w.size,
        streamId: 1,
        ...(w.prefix ? { prefix: w.prefix } : {}),
        ...(w.keyPrefix ? { keyPrefix: w.keyPrefix } : {}),
      },
      frameRate: w.frameRate,
      packetsPerFrame: w.packetsPerFrame,
      ...(path.ingress.srtp ? { srtp: path.ingress.srtp } : {}),
    };
    await engine.startSender({ ...this.#base, frames: this.#warm, firstFrame: 0 }).finished();
    this.#nextFrame = this.#warm;
    const receiver = this.#receiver;
    await until(() => receiver.status().received >= this.#warm * w.packetsPerFrame * copies, 2000);
  }

  /** Sends `frames` frames at the workload's rate and waits for the copies to drain. */
  async round(frames: number): Promise<void> {
    const { engine, workload: w } = this.#o;
    const path = this.#path!;
    const receiver = this.#receiver!;
    const cpu0 = await path.cpuMs();
    const received0 = receiver.status().received;
    const t0 = Date.now();
    const sender = engine.startSender({ ...this.#base!, frames, firstFrame: this.#nextFrame, startNs: engine.nowNs() + 5e6 });
    const sent = await sender.finished();
    this.#nextFrame += frames;
    this.#measuredFrames += frames;
    this.#rounds++;
    this.#sent += sent.sent;
    this.#sendErrors += sent.sendErrors;
    this.#maxLateNs = Math.max(this.#maxLateNs, sent.maxLateNs);
    // Drain: until every copy so far arrived, or nothing new came for 100 ms (at most 3 s).
    const expected = this.#nextFrame * w.packetsPerFrame * path.copies.length;
    let last = -1;
    for (let i = 0; i < 30 && receiver.status().received < expected; i++) {
      const now = receiver.status().received;
      if (now === last) break;
      last = now;
      await sleep(100);
    }
    const cpuMs = (await path.cpuMs()) - cpu0;
    this.#cpuMs += cpuMs;
    this.#cpuWindowMs += Date.now() - t0;
    this.#roundStats.push({ cpuMs, copies: receiver.status().received - received0, ms: Date.now() - t0 });
  }

  /** Rounds measured so far. */
  get rounds(): number {
    return this.#rounds;
  }

  /** Stops everything and returns the figures over all rounds. */
  async finish(): Promise<ScenarioResult> {
    const { workload: w, fanout } = this.#o;
    const copies = this.#path!.copies.length;
    const closedCpu = await this.#path!.close();
    const result = this.#receiver!.stop();
    await this.close();
    const s = summarise(result.records, copies, this.#warm * w.packetsPerFrame, this.#measuredFrames * w.packetsPerFrame);
    const measuredMs = (this.#measuredFrames / w.frameRate) * 1000;
    // The native forwarder reports its thread's CPU once, over its whole life (warm-up included).
    const cpuPercent =
      closedCpu !== undefined
        ? (closedCpu / (measuredMs + (this.#warm / w.frameRate) * 1000)) * 100
        : (this.#cpuMs / Math.max(1, this.#cpuWindowMs)) * 100;
    return {
      path: this.#pathName,
      workload: w.name,
      fanout,
      seconds: measuredMs / 1000,
      rounds: this.#rounds,
      packetsSent: this.#sent,
      ...s,
      deliveredPps: s.received / (measuredMs / 1000),
      cpuPercent,
      senderMaxLateUs: this.#maxLateNs / 1000,
      sendErrors: this.#sendErrors,
      receiverCpuPercent: (result.cpuNs / 1e6 / Math.max(1, Date.now() - this.#openedAt)) * 100,
      srtpFailures: result.srtpFailures,
      roundStats: [...this.#roundStats],
      ...(this.#o.keepRecords ? { records: result.records } : {}),
      ...(this.#o.receiver?.kernelTimestamps ? { kernelStamped: result.kernelStamped } : {}),
    };
  }

  /** Releases everything (idempotent; finish() calls it). */
  async close(): Promise<void> {
    const path = this.#path;
    this.#path = undefined;
    if (path) await path.close();
    this.#receiver?.stop();
    this.#tx?.close();
    this.#rx?.close();
  }
}

/** One path, one round of `seconds`: the capacity trials. */
export async function runScenario(o: ScenarioOptions & { seconds: number }): Promise<ScenarioResult> {
  const frames = Math.max(1, Math.round(o.seconds * o.workload.frameRate));
  const s = await Scenario.open(o, frames);
  try {
    await s.round(frames);
    return await s.finish();
  } finally {
    await s.close();
  }
}

/**
 * One result from several measurements of the same path and workload (segments of a latency
 * scenario that is extended until its ratios are precise enough): delays are pooled, counts
 * summed, CPU weighted by measured time.
 */
export function mergeResults(parts: ScenarioResult[]): ScenarioResult {
  if (parts.length === 1) return parts[0]!;
  const cat = (pick: (r: ScenarioResult) => Float64Array): Float64Array => {
    const out = new Float64Array(parts.reduce((s, r) => s + pick(r).length, 0));
    let k = 0;
    for (const r of parts) {
      out.set(pick(r), k);
      k += pick(r).length;
    }
    return out;
  };
  const sum = (pick: (r: ScenarioResult) => number): number => parts.reduce((s, r) => s + pick(r), 0);
  const first = cat((r) => r.samples.first);
  const last = cat((r) => r.samples.last);
  const seconds = sum((r) => r.seconds);
  const expected = sum((r) => r.expected);
  const received = sum((r) => r.received);
  const p0 = parts[0]!;
  return {
    path: p0.path,
    workload: p0.workload,
    fanout: p0.fanout,
    seconds,
    rounds: sum((r) => r.rounds),
    packetsSent: sum((r) => r.packetsSent),
    first: percentiles(first),
    last: percentiles(last),
    expected,
    received,
    loss: expected ? 1 - received / expected : 0,
    reordered: sum((r) => r.reordered),
    duplicates: sum((r) => r.duplicates),
    deliveredPps: received / seconds,
    cpuPercent: sum((r) => r.cpuPercent * r.seconds) / seconds,
    senderMaxLateUs: Math.max(...parts.map((r) => r.senderMaxLateUs)),
    sendErrors: sum((r) => r.sendErrors),
    receiverCpuPercent: sum((r) => r.receiverCpuPercent * r.seconds) / seconds,
    srtpFailures: sum((r) => r.srtpFailures),
    roundStats: parts.flatMap((r) => r.roundStats),
    cdf: { first: thin(Float64Array.from(first).sort()), last: thin(Float64Array.from(last).sort()) },
    samples: { first, last },
  };
}
