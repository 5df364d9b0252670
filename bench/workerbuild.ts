// Worker builds side by side (issue 14): the same raw mediasoup SRTP path (one PlainTransport in,
// N SRTP PlainTransports out) on one worker of each build, all in one run, taking turns in rounds
// (rotating order) so that whatever else loads the machine lands on every build alike. The figure
// is the worker's CPU per forwarded copy (getrusage of the worker process over the rounds divided
// by the copies the receiver got), and its ratio to the first build with a 95% bootstrap interval
// over the rounds.
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import type { PacketEngine } from './native/index.js';
import { Scenario, type ScenarioResult } from './latency.js';
import { AUDIO, VIDEO, mediasoupPath, schedCpuMs, type ForwardPath, type Workload } from './paths.js';
import { quantileRatioInterval, rateRatioInterval, type Interval } from './stats.js';

/** A mediasoup-worker binary under test. */
export interface WorkerBuild {
  label: string;
  bin: string;
}

export interface WorkerBuildRow {
  workload: string;
  fanout: number;
  build: string;
  bin: string;
  /** Worker CPU per forwarded copy over all rounds (us). */
  cpuUsPerCopy: number;
  /** Of which user space (us; getrusage, millisecond resolution per round). */
  userUsPerCopy: number;
  copies: number;
  rounds: number;
  loss: number;
  firstP50Us: number;
  lastP50Us: number;
  lastP99Us: number;
}

export interface WorkerBuildRatio {
  workload: string;
  fanout: number;
  of: string;
  to: string;
  /** CPU per copy, build `of` / build `to`. */
  cpuPerCopy: Interval;
  /** User-space CPU per copy, `of` / `to`. */
  userPerCopy: Interval;
  /** Last copy's p50 delay, `of` / `to` (the fan-out's serial tail: per-copy cost shows there). */
  lastP50: Interval;
}

export interface WorkerBuildResult {
  builds: WorkerBuild[];
  rows: WorkerBuildRow[];
  ratios: WorkerBuildRatio[];
}

const MEDIA_CODECS: ms.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];

/**
 * Parses `--worker-bin LABEL=PATH` arguments (repeatable). The first build is the baseline every
 * ratio is taken against.
 */
export function parseWorkerBuilds(argv: string[]): WorkerBuild[] {
  const out: WorkerBuild[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--worker-bin') continue;
    const v = argv[i + 1] ?? '';
    const eq = v.indexOf('=');
    if (eq <= 0 || eq === v.length - 1) throw new TypeError(`--worker-bin wants LABEL=PATH, got ${JSON.stringify(v)}`);
    out.push({ label: v.slice(0, eq), bin: v.slice(eq + 1) });
  }
  return out;
}

/** Runs every build on the audio and the video workload; see the file comment. */
export async function compareWorkerBuilds(
  engine: PacketEngine,
  builds: WorkerBuild[],
  o: { fanout: { audio: number; video: number }; rounds: number; roundSeconds: number; log: (line: string) => void },
): Promise<WorkerBuildResult> {
  if (builds.length < 2) throw new TypeError('compareWorkerBuilds needs at least two builds (the first is the baseline)');
  const workers = await Promise.all(builds.map((b) => mediasoup.createWorker({ workerBin: b.bin, logLevel: 'warn' })));
  const rows: WorkerBuildRow[] = [];
  const ratios: WorkerBuildRatio[] = [];
  try {
    const routers = await Promise.all(workers.map((w) => w.createRouter({ mediaCodecs: MEDIA_CODECS })));
    for (const w of [AUDIO, VIDEO] as Workload[]) {
      const n = w.kind === 'audio' ? o.fanout.audio : o.fanout.video;
      const frames = Math.max(1, Math.round(o.roundSeconds * w.frameRate));
      const open: Scenario[] = [];
      const results: ScenarioResult[] = [];
      // User-space CPU per round (getrusage, ms): the part of the per-copy cost that the
      // compiler can change; the rest is the kernel's UDP send.
      const userMs: number[][] = builds.map(() => []);
      try {
        for (let i = 0; i < builds.length; i++) {
          const worker = workers[i]!;
          const makePath = async (port: number): Promise<ForwardPath> => {
            const path = await mediasoupPath(routers[i]!, [worker], w, n, port, true);
            // Per-copy figures need finer CPU time than getrusage's milliseconds.
            return { ...path, cpuMs: async () => schedCpuMs(worker.pid) ?? (await path.cpuMs()) };
          };
          open.push(await Scenario.open({ engine, makePath, workload: w, fanout: n }, frames * o.rounds));
        }
        for (let r = 0; r < o.rounds; r++) {
          for (let i = 0; i < open.length; i++) {
            const k = (i + r) % open.length;
            const u0 = await workers[k]!.getResourceUsage();
            await open[k]!.round(frames);
            const u1 = await workers[k]!.getResourceUsage();
            userMs[k]!.push(u1.ru_utime - u0.ru_utime);
          }
        }
        for (const sc of open) results.push(await sc.finish());
      } finally {
        for (const sc of open) await sc.close();
      }
      results.forEach((res, i) => {
        const cpuMs = res.roundStats.reduce((s, x) => s + x.cpuMs, 0);
        const copies = res.roundStats.reduce((s, x) => s + x.copies, 0);
        const row: WorkerBuildRow = {
          workload: w.name,
          fanout: n,
          build: builds[i]!.label,
          bin: builds[i]!.bin,
          cpuUsPerCopy: copies ? (cpuMs * 1000) / copies : NaN,
          userUsPerCopy: copies ? (userMs[i]!.reduce((a, b) => a + b, 0) * 1000) / copies : NaN,
          copies,
          rounds: res.roundStats.length,
          loss: res.loss,
          firstP50Us: res.first.p50,
          lastP50Us: res.last.p50,
          lastP99Us: res.last.p99,
        };
        rows.push(row);
        o.log(`build ${w.name} N=${n} ${row.build}: ${row.cpuUsPerCopy.toFixed(2)} us CPU per copy (user ${row.userUsPerCopy.toFixed(2)} us), last-copy p50 ${(row.lastP50Us / 1000).toFixed(2)} ms, loss ${(row.loss * 100).toFixed(2)}%`);
      });
      const base = results[0]!;
      const perRound = (res: ScenarioResult): Array<{ num: number; den: number }> => res.roundStats.map((x) => ({ num: x.cpuMs, den: x.copies }));
      const userPerRound = (k: number): Array<{ num: number; den: number }> => results[k]!.roundStats.map((x, j) => ({ num: userMs[k]![j]!, den: x.copies }));
      for (let i = 1; i < results.length; i++) {
        const res = results[i]!;
        ratios.push({
          workload: w.name,
          fanout: n,
          of: builds[i]!.label,
          to: builds[0]!.label,
          cpuPerCopy: rateRatioInterval(perRound(res), perRound(base)),
          userPerCopy: rateRatioInterval(userPerRound(i), userPerRound(0)),
          lastP50: quantileRatioInterval(res.samples.last, base.samples.last, 0.5),
        });
      }
    }
  } finally {
    for (const w of workers) w.close();
  }
  return { builds, rows, ratios };
}
