// Large fan-out spread over workers (issue 14): one producer, N audio consumers, through the
// library's meeting path, in one run and taking turns in rounds:
//   - one worker (the baseline);
//   - spread, flat: every worker, consumers on the participant's one router (wave 2: the producer's
//     router sends its local copies and the pipe copies in whatever order its consumer set iterates);
//   - spread, tree: every worker, the producer's router carries only pipes to a fan-out router on
//     every worker (media.spreadTree, the default);
//   - the native forwarder with the same N (the measurement's floor: generator, receiver and a
//     forwarder that does nothing but sendmmsg).
// The figure is the last copy's delay (the serial fan-out's tail) with same-run ratios and 95%
// bootstrap intervals. Copies are timed by the kernel's receive timestamp (when the copy entered
// the receiver's socket: on loopback, inside the worker's send) and read in batches, so that the
// receiver takes little CPU from the workers; at the largest N the same paths are measured again
// with the receiver timing in user space on every wake-up (how wave 2 measured), to show what the
// measurement itself does. Per worker: when its first and last copy of a packet left, and the
// span between (its own serial fan-out), which is what should shrink to N / workers.
import { loadavg } from 'node:os';
import type { types as ms } from 'mediasoup';
import { createGatewayTransport, type GatewaySrtpParameters } from '../lib/media/GatewayTransport.js';
import type { MediaCore } from '../lib/MediaCore.js';
import type { Participant } from '../lib/model/Participant.js';
import { readRecords, type PacketEngine, type SrtpKey } from './native/index.js';
import { Scenario, type ScenarioOptions, type ScenarioResult } from './latency.js';
import { benchMeeting } from './library.js';
import { AUDIO, GENERATOR_SSRC, nativePath, randomSrtpKey, type ForwardPath } from './paths.js';
import { percentiles, quantileRatioInterval, type Interval } from './stats.js';

export type SpreadPath = 'one worker' | 'spread, flat' | 'spread, tree' | 'native forwarder';
export type SpreadTiming = 'kernel' | 'user';

/** One worker's share of a path's copies. */
export interface SpreadWorkerRow {
  workerId: number;
  copies: number;
  /** The producer's worker. */
  producer: boolean;
  /** Per packet, this worker's first copy (when its fan-out started), p50. */
  startP50Us: number;
  /** Per packet, this worker's last copy, p50 and p99. */
  endP50Us: number;
  endP99Us: number;
  /** Per packet, last minus first copy of this worker (its serial fan-out), p50 and p99. */
  spanP50Us: number;
  spanP99Us: number;
  cpuPercent: number;
  /** The worker's CPU time per packet sent (all its work for one packet: receive, pipes, copies). */
  cpuUsPerPacket: number;
}

export interface SpreadRow {
  fanout: number;
  timing: SpreadTiming;
  path: SpreadPath;
  workers: number;
  lastP50Us: number;
  lastP99Us: number;
  firstP50Us: number;
  loss: number;
  /** Every worker of the path together, in % of one core. */
  cpuPercent: number;
  receiverCpuPercent: number;
  packets: number;
  perWorker: SpreadWorkerRow[];
  /**
   * A model, not a measurement: the last copy if every worker had a core of its own, i.e. the
   * latest over the workers of (its start p50 + its CPU time per packet). On a machine with fewer
   * free cores than workers + generator + receiver, the measured figure cannot show that.
   */
  projectedLastUs: number | undefined;
}

export interface SpreadRatio {
  fanout: number;
  timing: SpreadTiming;
  of: SpreadPath;
  to: SpreadPath;
  lastP50: Interval;
  lastP99: Interval;
  /** projectedLastUs of `of` / of `to` (a model; no interval). */
  projected: number | undefined;
}

export interface SpreadResult {
  rows: SpreadRow[];
  ratios: SpreadRatio[];
  /** The machine's 1-minute load average before and after the section. */
  loadAvg: { start: number; end: number };
  rounds: number;
  roundSeconds: number;
}

/** The cores the section compares: one worker, and every worker with the flat and the tree fan-out. */
export interface SpreadCores {
  single: MediaCore;
  flat: MediaCore;
  tree: MediaCore;
}

const WARMUP_FRAMES = 20;
/** The receiver sleeps this long after a burst's first copy, then reads the burst in batches. */
const BATCH_SLEEP_US = 2000;

const toGateway = (k: SrtpKey): GatewaySrtpParameters => ({ cryptoSuite: k.suite, keyBase64: k.key.toString('base64') });
const fromGateway = (p: GatewaySrtpParameters): SrtpKey => ({ suite: p.cryptoSuite as SrtpKey['suite'], key: Buffer.from(p.keyBase64, 'base64') });

interface MeasuredPath extends ForwardPath {
  /** The worker that sends each copy (same order as `copies`); empty for the native forwarder. */
  copyWorker: number[];
  producerWorker: number | undefined;
  /** Per worker, CPU ms and wall ms summed over the rounds (Scenario reads cpuMs() before and after each). */
  cpuByWorker(): Map<number, { cpuMs: number; wallMs: number }>;
}

/** One producer and `fanout` receivers in a meeting of `core` (gateway transports, like bench/library.ts). */
async function meetingPath(core: MediaCore, fanout: number, receiverPort: number): Promise<MeasuredPath> {
  const { meeting, host, members } = await benchMeeting(core, fanout + 1);
  try {
    const [producerP, ...consumers] = members as [Participant, ...Participant[]];
    const inT = await createGatewayTransport(producerP, { direction: 'send' });
    const ingressKey = randomSrtpKey();
    await inT.connect({ srtpParameters: toGateway(ingressKey) });
    const producer = await producerP.produce({
      transportId: inT.id,
      source: 'microphone',
      kind: 'audio',
      rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: AUDIO.payloadType, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: GENERATOR_SSRC }] },
    });
    const caps = meeting.rtpCapabilities as ms.RtpCapabilities;
    const rtpCapabilities: ms.RtpCapabilities = { codecs: caps.codecs!.filter((c) => c.kind === 'audio'), headerExtensions: [] };
    const copies: ForwardPath['copies'] = [];
    const copyWorker: number[] = [];
    // Batches as bench/library.ts does: the order of consumer creation is the one a meeting that
    // fills up quickly has (and the flat fan-out's send order depends on it).
    const BATCH = 50;
    for (let base = 0; base < consumers.length; base += BATCH) {
      const made = await Promise.all(
        consumers.slice(base, base + BATCH).map(async (p) => {
          const t = await createGatewayTransport(p, { direction: 'recv' });
          await t.connect({ ip: '127.0.0.1', port: receiverPort, srtpParameters: toGateway(randomSrtpKey()) });
          const c = await p.consume({ transportId: t.id, producerId: producer.id, rtpCapabilities });
          await p.resumeConsumer(c.id);
          const rtp = c.rtpParameters as ms.RtpParameters;
          return { copy: { ssrc: rtp.encodings![0]!.ssrc!, srtp: fromGateway(t.info.srtpParameters) }, worker: meeting._media.workerOf(p.id)! };
        }),
      );
      for (const m of made) {
        copies.push(m.copy);
        copyWorker.push(m.worker);
      }
    }
    const used = (): PoolWorkerLike[] => core.pool.workers.filter((pw) => meeting._media.workerIds.includes(pw.id));
    const byWorker = new Map<number, { cpuMs: number; wallMs: number }>();
    let open: { at: number; cpu: Map<number, number> } | undefined;
    return {
      name: 'library',
      ingress: { host: inT.info.ip, port: inT.info.port, srtp: ingressKey },
      copies,
      copyWorker,
      producerWorker: meeting._media.workerOf(producerP.id),
      cpuByWorker: () => byWorker,
      cpuMs: async () => {
        const now = new Map<number, number>();
        await Promise.all(
          used().map(async (pw) => {
            const u = await pw.worker.getResourceUsage();
            now.set(pw.id, u.ru_utime + u.ru_stime);
          }),
        );
        const at = Date.now();
        // Scenario reads this before and after each round: the pairs are the rounds.
        if (open) {
          for (const [id, v] of now) {
            const acc = byWorker.get(id) ?? { cpuMs: 0, wallMs: 0 };
            acc.cpuMs += v - (open.cpu.get(id) ?? v);
            acc.wallMs += at - open.at;
            byWorker.set(id, acc);
          }
          open = undefined;
        } else {
          open = { at, cpu: now };
        }
        return [...now.values()].reduce((a, b) => a + b, 0);
      },
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

type PoolWorkerLike = MediaCore['pool']['workers'][number];

/** The per-worker figures of one path from the receiver's records. */
function perWorker(path: MeasuredPath, res: ScenarioResult): SpreadWorkerRow[] {
  if (!res.records || path.copyWorker.length === 0) return [];
  const r = readRecords(res.records);
  const firstSeq = WARMUP_FRAMES * AUDIO.packetsPerFrame;
  const packets = res.packetsSent;
  const ids = [...new Set(path.copyWorker)].sort((a, b) => a - b);
  const slot = new Map(ids.map((id, i) => [id, i]));
  const min = ids.map(() => new Float64Array(packets).fill(Infinity));
  const max = ids.map(() => new Float64Array(packets).fill(-Infinity));
  for (let i = 0; i < r.seq.length; i++) {
    const k = r.seq[i]! - firstSeq;
    const w = path.copyWorker[r.copy[i]!];
    if (k < 0 || k >= packets || w === undefined) continue;
    const j = slot.get(w)!;
    const d = r.delayNs[i]! / 1000;
    if (d < min[j]![k]!) min[j]![k] = d;
    if (d > max[j]![k]!) max[j]![k] = d;
  }
  const cpu = path.cpuByWorker();
  return ids.map((id, j) => {
    const ok = (k: number): boolean => Number.isFinite(min[j]![k]!) && Number.isFinite(max[j]![k]!);
    const keep = [...Array(packets).keys()].filter(ok);
    const start = percentiles(Float64Array.from(keep, (k) => min[j]![k]!));
    const end = percentiles(Float64Array.from(keep, (k) => max[j]![k]!));
    const span = percentiles(Float64Array.from(keep, (k) => max[j]![k]! - min[j]![k]!));
    const c = cpu.get(id);
    return {
      workerId: id,
      copies: path.copyWorker.filter((w) => w === id).length,
      producer: id === path.producerWorker,
      startP50Us: start.p50,
      endP50Us: end.p50,
      endP99Us: end.p99,
      spanP50Us: span.p50,
      spanP99Us: span.p99,
      cpuPercent: c ? (c.cpuMs / Math.max(1, c.wallMs)) * 100 : NaN,
      cpuUsPerPacket: c ? (c.cpuMs * 1000) / Math.max(1, res.packetsSent) : NaN,
    };
  });
}

/**
 * Measures the four paths at each fan-out (kernel timing), and at the largest again with user-space
 * timing. Paths take turns within each fan-out: round r runs them in the order rotated by r.
 */
export async function spreadFanout(
  engine: PacketEngine,
  cores: SpreadCores,
  o: { fanouts: number[]; rounds: number; roundSeconds: number; userTimingAt?: number[]; log: (line: string) => void },
): Promise<SpreadResult> {
  const loadStart = loadavg()[0]!;
  const rows: SpreadRow[] = [];
  const ratios: SpreadRatio[] = [];
  const frames = Math.max(1, Math.round(o.roundSeconds * AUDIO.frameRate));
  const runs: Array<[number, SpreadTiming]> = [...o.fanouts.map((n): [number, SpreadTiming] => [n, 'kernel']), ...(o.userTimingAt ?? []).map((n): [number, SpreadTiming] => [n, 'user'])];
  const makers: Array<[SpreadPath, MediaCore | undefined]> = [
    ['one worker', cores.single],
    ['spread, flat', cores.flat],
    ['spread, tree', cores.tree],
    ['native forwarder', undefined],
  ];
  for (const [n, timing] of runs) {
    const receiver: ScenarioOptions['receiver'] = timing === 'kernel' ? { kernelTimestamps: true, batchSleepUs: BATCH_SLEEP_US } : {};
    const open: Array<{ name: SpreadPath; workers: number; path: MeasuredPath | undefined; sc: Scenario }> = [];
    const done: Array<{ name: SpreadPath; workers: number; path: MeasuredPath | undefined; res: ScenarioResult }> = [];
    try {
      for (const [name, core] of makers) {
        let built: MeasuredPath | undefined;
        const makePath = async (port: number): Promise<ForwardPath> => {
          if (!core) return nativePath(engine, n, port);
          built = await meetingPath(core, n, port);
          return built;
        };
        const sc = await Scenario.open({ engine, makePath, workload: AUDIO, fanout: n, warmupFrames: WARMUP_FRAMES, receiver, keepRecords: true }, frames * o.rounds);
        open.push({ name, workers: core ? core.pool.workers.length : 1, path: built, sc });
      }
      for (let r = 0; r < o.rounds; r++) {
        for (let i = 0; i < open.length; i++) await open[(i + r) % open.length]!.sc.round(frames);
      }
      for (const p of open) done.push({ name: p.name, workers: p.workers, path: p.path, res: await p.sc.finish() });
    } finally {
      for (const p of open) await p.sc.close();
    }
    for (const { name, workers, path, res } of done) {
      // The TypeScript engine (no native addon) cannot read kernel timestamps: say what was measured.
      const measured: SpreadTiming = timing === 'kernel' && (res.kernelStamped ?? 0) >= res.received * 0.99 ? 'kernel' : 'user';
      const row: SpreadRow = {
        fanout: n,
        timing: measured,
        path: name,
        workers,
        lastP50Us: res.last.p50,
        lastP99Us: res.last.p99,
        firstP50Us: res.first.p50,
        loss: res.loss,
        cpuPercent: res.cpuPercent,
        receiverCpuPercent: res.receiverCpuPercent,
        packets: res.samples.last.length,
        perWorker: path ? perWorker(path, res) : [],
        projectedLastUs: undefined,
      };
      if (row.perWorker.length) row.projectedLastUs = Math.max(...row.perWorker.map((w) => w.startP50Us + w.cpuUsPerPacket));
      rows.push(row);
      const ws = row.perWorker.map((w) => `w${w.workerId}${w.producer ? '*' : ''} ${w.copies} copies start ${(w.startP50Us / 1000).toFixed(2)} span ${(w.spanP50Us / 1000).toFixed(2)} ms CPU ${(w.cpuUsPerPacket / 1000).toFixed(2)} ms/packet`).join(', ');
      o.log(`spread N=${n} ${measured} ${name}: last copy p50 ${(res.last.p50 / 1000).toFixed(2)} ms p99 ${(res.last.p99 / 1000).toFixed(2)} ms, loss ${(res.loss * 100).toFixed(2)}%, workers ${res.cpuPercent.toFixed(0)}%, receiver ${res.receiverCpuPercent.toFixed(0)}%${ws ? `; ${ws}` : ''}`);
    }
    const of = (name: SpreadPath): ScenarioResult => done.find((d) => d.name === name)!.res;
    const projected = (name: SpreadPath): number | undefined => rows.find((r) => r.fanout === n && r.path === name && r.timing === rows.at(-1)!.timing)?.projectedLastUs;
    const timingOf = rows.at(-1)!.timing;
    for (const [a, b] of [['spread, tree', 'one worker'], ['spread, flat', 'one worker'], ['spread, tree', 'spread, flat']] as Array<[SpreadPath, SpreadPath]>) {
      ratios.push({
        fanout: n,
        timing: timingOf,
        of: a,
        to: b,
        lastP50: quantileRatioInterval(of(a).samples.last, of(b).samples.last, 0.5),
        lastP99: quantileRatioInterval(of(a).samples.last, of(b).samples.last, 0.99),
        projected: projected(a) !== undefined && projected(b) !== undefined ? projected(a)! / projected(b)! : undefined,
      });
    }
  }
  return { rows, ratios, loadAvg: { start: loadStart, end: loadavg()[0]! }, rounds: o.rounds, roundSeconds: o.roundSeconds };
}
