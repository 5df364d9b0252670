// The benchmark suite: forwarding latency on three paths in one run (native forwarder = physical
// limit, raw mediasoup plain and SRTP, the library's meeting path), the generator's headroom,
// capacity searches, control-plane micro-benchmarks and memory per participant.
//
//   npm run bench                 everything (under 10 minutes on 2 cores)
//   npm run bench -- --quick      a reduced set (under a minute)
//   node dist/bench/run.js [--quick] [--out DIR] [--only latency,capacity,...]
//
// Output: a console table, DIR/results.json and DIR/cdf-<workload>-n<fanout>.svg
// (DIR defaults to bench/results/). Figures are compared as ratios to baselines measured in the
// same run; on a shared machine absolute figures are noisy.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, release } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { version as mediasoupVersion } from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { createMediaCore, type MediaCore } from '../lib/MediaCore.js';
import { createLogger } from '../lib/telemetry/logger.js';
import { createMetricsRegistry } from '../lib/telemetry/metrics.js';
import { packetEngine, packetEngineInfo, readRecords, type PacketEngine } from './native/index.js';
import { searchCapacity, type CapacityResult } from './capacity.js';
import { mergeResults, runScenario, Scenario, type ScenarioResult } from './latency.js';
import { libraryPath, memoryPerParticipant } from './library.js';
import { runMicro, type MicroResult } from './micro.js';
import { passwordFlood } from './password-flood.js';
import { AUDIO, VIDEO, mediasoupPath, nativePath, type ForwardPath, type PathName, type Workload } from './paths.js';
import { percentiles, quantileRatioInterval, spread, type Interval } from './stats.js';
import { cdfChart } from './svg.js';
import { spreadFanout, type SpreadResult } from './spread.js';
import { signallingReport, signallingSection, type SignallingSection } from './signalling-section.js';
import { compareWorkerBuilds, parseWorkerBuilds, type WorkerBuild, type WorkerBuildResult } from './workerbuild.js';
import { resolveWorkerBinary } from '../lib/media/workerBinary.js';
import { meetingMix, meetingsReport, type MeetingsResult } from './meetings.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECTIONS = ['latency', 'generator', 'capacity', 'machine', 'micro', 'memory', 'password', 'build', 'spread', 'signalling', 'meetings'] as const;
/** Per-worker capacity: the last copy's p99 must stay under this (a real-time bound). */
const REALTIME_P99_US = 200_000;
type Section = (typeof SECTIONS)[number];

export interface BenchOptions {
  quick: boolean;
  outDir: string;
  only: Section[];
  log: (line: string) => void;
  /** Capacity searches run this many times each (`--repeat K`, default 1); K > 1 reports their spread. */
  repeat: number;
  /** Worker binaries for the 'build' section (`--worker-bin LABEL=PATH`, repeatable); the first is the baseline. */
  workerBuilds: WorkerBuild[];
}

function parseArgs(argv: string[]): BenchOptions {
  const quick = argv.includes('--quick');
  const outIdx = argv.indexOf('--out');
  const onlyIdx = argv.indexOf('--only');
  const repeatIdx = argv.indexOf('--repeat');
  if (repeatIdx >= 0 && !(Number.isInteger(Number(argv[repeatIdx + 1])) && Number(argv[repeatIdx + 1]) >= 1)) throw new TypeError('--repeat wants a whole number >= 1');
  const only = onlyIdx >= 0 ? (argv[onlyIdx + 1] ?? '').split(',').filter(Boolean) : [...SECTIONS];
  for (const s of only) {
    if (!(SECTIONS as readonly string[]).includes(s)) throw new TypeError(`unknown section ${s}; known: ${SECTIONS.join(', ')}`);
  }
  return {
    quick,
    outDir: resolve(outIdx >= 0 ? argv[outIdx + 1]! : join(ROOT, 'bench', 'results')),
    only: only as Section[],
    log: (line) => console.log(line),
    workerBuilds: parseWorkerBuilds(argv),
    repeat: repeatIdx >= 0 ? Number(argv[repeatIdx + 1]) : 1,
  };
}

const MEDIA_CODECS: ms.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
];

function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return '-';
  return us >= 10_000 ? `${(us / 1000).toFixed(1)}ms` : us >= 1000 ? `${(us / 1000).toFixed(2)}ms` : `${us.toFixed(0)}us`;
}

/** A ratio with its 95% interval: `0.87x [0.84, 0.90]`. */
function fmtInterval(i: Interval): string {
  return `${i.value.toFixed(2)}x [${i.lo.toFixed(2)}, ${i.hi.toFixed(2)}]`;
}

function table(rows: Array<Record<string, string | number>>): string {
  if (rows.length === 0) return '(none)';
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => c.padEnd(width[i]!)).join(' | ') + ' |';
  return [line(cols), '|' + width.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map((r) => line(cols.map((c) => String(r[c]))))].join('\n');
}

/** Runs the suite; returns the results object that is also written to results.json. */
export async function runBench(o: BenchOptions): Promise<Record<string, unknown>> {
  const started = Date.now();
  const engine = packetEngine();
  const logger = createLogger({ level: 'silent' });
  // One worker for the single-worker comparisons: the raw mediasoup router and the library's
  // meetings share it (participantsPerWorker high so that a meeting never spreads).
  const core = await createMediaCore({
    logger,
    registry: createMetricsRegistry(),
    workers: { workers: 1 },
    media: { mediaCodecs: MEDIA_CODECS, participantsPerWorker: 10_000 },
  });
  const pool = core.pool;
  let machineCore: MediaCore | undefined;
  const has = (s: Section): boolean => o.only.includes(s);
  mkdirSync(o.outDir, { recursive: true });
  const results: Record<string, unknown> = {
    meta: {
      date: new Date().toISOString(),
      quick: o.quick,
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: +(totalmem() / 2 ** 30).toFixed(1), kernel: release(), loadAvgAtStart: loadavg() },
      node: process.version,
      mediasoup: mediasoupVersion,
      engine: packetEngineInfo(),
      workersSingle: pool.workers.length,
      workersMachine: cpus().length,
    },
  };
  try {
    const w1 = pool.workers[0]!;
    const router = await pool.createRouter(w1, { mediaCodecs: MEDIA_CODECS });

    const makers = (w: Workload, n: number): Array<[PathName, (port: number) => Promise<ForwardPath>]> => {
      const list: Array<[PathName, (port: number) => Promise<ForwardPath>]> = [
        ['native', (p) => nativePath(engine, n, p)],
        ['mediasoup', (p) => mediasoupPath(router, [w1.worker], w, n, p, false)],
        ['mediasoup-srtp', (p) => mediasoupPath(router, [w1.worker], w, n, p, true)],
      ];
      list.push(['library', (p) => libraryPath(core, w, n, p)]);
      return list;
    };

    // ---- latency -------------------------------------------------------------------------------
    const latency: Array<Omit<ScenarioResult, 'cdf' | 'samples'> & { segments?: number; precision?: { target: number; halfWidth: number; met: boolean } }> = [];
    const full: ScenarioResult[] = [];
    if (has('latency')) {
      const fanouts = o.quick ? [1, 10] : [1, 10, 50, 100];
      // Paths take turns in rounds (rotating the order), so that whatever else loads the machine
      // lands on all of them alike.
      const rounds = o.quick ? 2 : 4;
      const roundSeconds = o.quick ? 0.5 : 1;
      // Issue 14: a scenario is measured in segments (paths opened afresh, `rounds` rounds each,
      // delays pooled) until the library / raw-SRTP p50 ratio's 95% interval is within +-3%, or
      // the segment budget is spent; `precision` in the results says which.
      const maxSegments = o.quick ? 1 : 4;
      for (const w of [AUDIO, VIDEO]) {
        for (const n of fanouts) {
          const series: Array<{ label: string; values: number[] }> = [];
          const frames = Math.round(roundSeconds * w.frameRate);
          const parts = new Map<PathName, ScenarioResult[]>();
          let segments = 0;
          let precision: Interval | undefined;
          while (segments < maxSegments) {
            const open: Array<[PathName, Scenario]> = [];
            try {
              for (const [name, make] of makers(w, n)) open.push([name, await Scenario.open({ engine, makePath: make, workload: w, fanout: n }, frames * rounds)]);
              for (let r = 0; r < rounds; r++) {
                for (let i = 0; i < open.length; i++) await open[(i + r + segments) % open.length]![1].round(frames);
              }
              for (const [name, sc] of open) parts.set(name, [...(parts.get(name) ?? []), await sc.finish()]);
            } finally {
              for (const [, sc] of open) await sc.close();
            }
            segments++;
            const lib = parts.get('library');
            const raw = parts.get('mediasoup-srtp');
            if (!lib || !raw) break;
            precision = quantileRatioInterval(mergeResults(lib).samples.first, mergeResults(raw).samples.first, 0.5);
            if (precision.halfWidth <= 0.03) break;
          }
          for (const [name, list] of parts) {
            const res = mergeResults(list);
            full.push(res);
            const { cdf, samples, ...rest } = res;
            latency.push({ ...rest, segments, ...(name === 'library' && precision ? { precision: { target: 0.03, halfWidth: precision.halfWidth, met: precision.halfWidth <= 0.03 } } : {}) });
            series.push({ label: `${name}: first copy`, values: cdf.first });
            if (n > 1) series.push({ label: `${name}: last copy`, values: cdf.last });
            o.log(`latency ${w.name} N=${n} ${name}: p50 ${fmtUs(res.first.p50)} p99 ${fmtUs(res.first.p99)} (last copy p50 ${fmtUs(res.last.p50)} p99 ${fmtUs(res.last.p99)}), loss ${(res.loss * 100).toFixed(2)}%, CPU ${res.cpuPercent.toFixed(1)}%, ${segments} segment(s)`);
          }
          writeFileSync(join(o.outDir, `cdf-${w.name}-n${n}.svg`), cdfChart(`One-way delay CDF: ${w.name}, fan-out ${n} (${o.quick ? 'quick' : 'full'} run)`, series));
        }
      }
      results.latency = latency;
      results.ratios = ratios(full);
    }

    // ---- generator headroom --------------------------------------------------------------------
    if (has('generator')) {
      const used = Math.max(
        0,
        ...latency.map((r) => r.deliveredPps),
      );
      results.generator = await generatorCheck(engine, Math.max(used, 1000), o.quick ? 1 : 3);
      const g = results.generator as GeneratorResult;
      g.srtp = await generatorSrtpCost(engine, o.quick ? 25 : 250);
      o.log(`generator SRTP: p50 ${fmtUs(g.srtp.plainP50Us)} plain vs ${fmtUs(g.srtp.srtpP50Us)} with SRTP on both ends (sender -> receiver, no forwarder); protect ${(g.srtp.protectNsPerPacket / 1000).toFixed(1)} us per packet`);
      o.log(`generator: ${g.achievedPps.toFixed(0)} packets/s sent and received with ${(g.loss * 100).toFixed(3)}% loss = ${g.headroom.toFixed(1)}x the highest rate used (${g.highestRateUsed.toFixed(0)}/s)`);
    }

    // ---- join time -----------------------------------------------------------------------------
    // WebSocket open -> first media packet through the gateway needs the gateway (issue 4) and a
    // WebRTC client driving its protocol; not on this branch yet.
    results.join = { skipped: 'join time (WebSocket open -> first media packet) needs the signalling gateway of issue 4; not measured on this branch' };

    // ---- micro-benchmarks ----------------------------------------------------------------------
    if (has('micro')) {
      const micro: MicroResult = await runMicro(o.quick);
      results.micro = micro;
      for (const s of micro.skipped) o.log(`micro: skipped ${s}`);
    }

    // ---- password flood (issue 10) ---------------------------------------------------------------
    if (has('password')) {
      // Its own core and gateway: 200 wrong-password joins while an admitted participant works.
      results.passwordFlood = await passwordFlood({ quick: o.quick, log: o.log });
    }

    // ---- memory --------------------------------------------------------------------------------
    if (has('memory')) {
      results.memory = await memoryPerParticipant(core, o.quick ? 10 : 100);
    }
    // ---- capacity per path (one worker) --------------------------------------------------------
    const capacity: CapacityResult[] = [];
    // The full run stays under 10 minutes: capacity searches share what the latency part left.
    // With --repeat K every search runs K times (issue 14: the spread of capacity figures); the
    // time budget grows with K.
    const deadline = started + (o.quick ? 50 : 520) * 1000 * o.repeat;
    const repeated = async (run: () => Promise<CapacityResult>): Promise<CapacityResult> => {
      const runs: CapacityResult[] = [];
      for (let i = 0; i < o.repeat; i++) runs.push(await run());
      const first = runs[0]!;
      return o.repeat > 1 ? { ...first, runs: runs.map((r) => r.capacity), spread: spread(runs.map((r) => r.capacity)) } : first;
    };
    if (has('capacity')) {
      const trialSeconds = o.quick ? 1 : 10;
      // [path, first trial, upper bound]: first trials near the expected capacity keep the
      // search to a few 10-second trials.
      const paths: Array<[PathName, number, number]> = o.quick
        ? [['native', 50, 100], ['mediasoup', 50, 100]]
        : [['native', 1000, 4000], ['mediasoup', 1000, 4000], ['mediasoup-srtp', 400, 4000], ['library', 400, 4000]];
      for (const [name, start, max] of paths) {
        capacity.push(
          await repeated(() => searchCapacity({
            path: name,
            start,
            max,
            trialSeconds,
            resolution: 0.1,
            maxTrials: o.quick ? 2 : 4,
            // A copy that comes seconds late is as good as lost for a call: the forwarder only
            // passes while it keeps up in real time.
            maxP99Us: REALTIME_P99_US,
            deadline: deadline - (o.quick ? 0 : 100_000),
            trial: (n, seconds) => runScenario({ engine, makePath: makers(AUDIO, n).find(([p]) => p === name)![1], workload: AUDIO, fanout: n, seconds, warmupFrames: 25 }),
            log: o.log,
          })),
        );
      }
      results.capacity = capacity;
    }

    // ---- whole machine: one producer, consumers over every worker (pipes) ----------------------
    if (has('machine')) {
      const trialSeconds = o.quick ? 1 : 10;
      // A core with one worker per CPU and the library's default placement (participants spread
      // to further workers, one producer piped to each).
      machineCore = await createMediaCore({ logger, registry: createMetricsRegistry(), workers: { workers: cpus().length }, media: { mediaCodecs: MEDIA_CODECS } });
      const mpool = machineCore.pool;
      const routers = await Promise.all(mpool.workers.map((w) => mpool.createRouter(w, { mediaCodecs: MEDIA_CODECS })));
      const allWorkers = mpool.workers.map((w) => w.worker);
      const machine: CapacityResult[] = [];
      const search = (name: string, make: (n: number, port: number) => Promise<ForwardPath>, start: number, share: number): Promise<CapacityResult> =>
        searchCapacity({
          path: name,
          start,
          max: o.quick ? start * 2 : 6000,
          trialSeconds,
          resolution: 0.1,
          maxTrials: o.quick ? 1 : 4,
          maxP99Us: 20_000,
          deadline: deadline - share,
          trial: (n, seconds) => runScenario({ engine, makePath: (p) => make(n, p), workload: AUDIO, fanout: n, seconds, warmupFrames: 25 }),
          log: o.log,
        });
      machine.push(await repeated(() => search('library, all workers (pipes)', (n, p) => libraryPath(machineCore!, AUDIO, n, p, 'library-machine'), o.quick ? 100 : 900, o.quick ? 0 : 50_000)));
      machine.push(await repeated(() => search('mediasoup-srtp, all workers (pipes)', (n, p) => mediasoupPath(routers[0]!, allWorkers, AUDIO, n, p, true, routers), o.quick ? 100 : 900, 0)));
      for (const r of routers) r.close();
      machineCore.close();
      machineCore = undefined;
      results.machine = machine;
    }

    // ---- signalling throughput (issue 14) --------------------------------------------------------
    if (has('signalling')) {
      results.signalling = await signallingSection(o);
    }

    // ---- large fan-out spread over workers (issue 14) --------------------------------------------
    if (has('spread')) {
      // spreadAbove 1: the consumers are spread from the first one on (the default, 100, keeps a
      // smaller meeting on one worker without pipes). Issue 14, w3-14c: the flat fan-out of wave 2
      // (spreadTree false) and the tree (the default) side by side with one worker.
      const spreadCore = (tree: boolean): Promise<MediaCore> =>
        createMediaCore({ logger, registry: createMetricsRegistry(), workers: { workers: cpus().length }, media: { mediaCodecs: MEDIA_CODECS, spreadAbove: 1, spreadTree: tree, participantsPerWorker: 10_000 } });
      const flat = await spreadCore(false);
      const tree = await spreadCore(true).catch((error: unknown) => {
        flat.close();
        throw error;
      });
      try {
        results.spread = await spreadFanout(engine, { single: core, flat, tree }, {
          fanouts: o.quick ? [20] : [100, 500, 1000],
          userTimingAt: o.quick ? [20] : [1000],
          rounds: o.quick ? 2 : 8,
          roundSeconds: o.quick ? 0.5 : 1,
          log: o.log,
        });
      } finally {
        flat.close();
        tree.close();
      }
    }

    // ---- capacity for real meetings (issue 14, w3-14a) -------------------------------------------
    if (has('meetings')) {
      // Its own core with the default worker count; searches only in the full run (--quick: the
      // same-load comparison at 2 meetings). The full searches take about 6-9 minutes per repeat.
      results.meetings = await meetingMix(engine, { quick: o.quick, repeat: o.repeat, logger, mediaCodecs: MEDIA_CODECS, log: o.log, deadline: Date.now() + 560_000 * o.repeat });
    }

    // ---- worker builds side by side (issue 14) ---------------------------------------------------
    if (has('build')) {
      // Without --worker-bin the installed build runs against itself: an A/A comparison that shows
      // how far apart two identical binaries measure in this run (the noise floor of the ratio).
      const current = resolveWorkerBinary().path;
      const builds = o.workerBuilds.length >= 2 ? o.workerBuilds : o.workerBuilds.length === 1 ? [{ label: 'current', bin: current }, o.workerBuilds[0]!] : [{ label: 'current', bin: current }, { label: 'current (A/A)', bin: current }];
      results.build = await compareWorkerBuilds(engine, builds, {
        fanout: o.quick ? { audio: 20, video: 10 } : { audio: 200, video: 50 },
        rounds: o.quick ? 2 : 12,
        roundSeconds: o.quick ? 0.5 : 1,
        log: o.log,
      });
    }
  } finally {
    machineCore?.close();
    core.close();
  }
  (results.meta as Record<string, unknown>).seconds = (Date.now() - started) / 1000;
  (results.meta as Record<string, unknown>).realtimeGenerator = engine.realtime();
  writeFileSync(join(o.outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  o.log('\n' + report(results));
  o.log(`\nresults: ${join(o.outDir, 'results.json')} and cdf-*.svg (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return results;
}

interface GeneratorResult {
  targetPps: number;
  achievedPps: number;
  loss: number;
  senderMaxLateUs: number;
  p99Us: number;
  highestRateUsed: number;
  headroom: number;
  /** The generator's own SRTP cost: what an SRTP path's delay includes before any forwarder. */
  srtp?: { plainP50Us: number; srtpP50Us: number; protectNsPerPacket: number; packets: number };
}

/**
 * Sender -> receiver at the audio rate, plain and with SRTP on both ends, alternating: the delay
 * the generator's SRTP adds by itself (part of every SRTP path's figure).
 */
async function generatorSrtpCost(engine: PacketEngine, packets: number): Promise<NonNullable<GeneratorResult['srtp']>> {
  const delays: Record<'plain' | 'srtp', number[]> = { plain: [], srtp: [] };
  let protectNs = 0;
  let protected_ = 0;
  const rounds = 4;
  for (let r = 0; r < rounds; r++) {
    for (const mode of ['plain', 'srtp'] as const) {
      const key = mode === 'srtp' ? { suite: 'AES_CM_128_HMAC_SHA1_80' as const, key: Buffer.from(Array.from({ length: 30 }, (_, i) => (i * 7 + r) & 0xff)) } : undefined;
      const tx = await engine.openSocket('127.0.0.1');
      const rx = await engine.openSocket('127.0.0.1');
      try {
        const receiver = engine.startReceiver({ socket: rx, maxRecords: packets + 10, copies: [{ ssrc: 9, ...(key ? { srtp: key } : {}) }] });
        const n = Math.ceil(packets / rounds);
        const s = await engine
          .startSender({ socket: tx, host: '127.0.0.1', port: rx.port, rtp: { payloadType: 100, ssrc: 9, clockRate: 48000, size: 120 }, frameRate: 50, packetsPerFrame: 1, frames: n, ...(key ? { srtp: key } : {}) })
          .finished();
        for (let i = 0; i < 20 && receiver.status().received < s.sent; i++) await new Promise((res) => setTimeout(res, 10));
        // The first packet of a fresh SRTP session pays for key derivation: leave it out.
        delays[mode].push(...[...readRecords(receiver.stop().records).delayNs].slice(1).map((d) => d / 1000));
        if (key) {
          protectNs += s.protectNs;
          protected_ += s.sent;
        }
      } finally {
        tx.close();
        rx.close();
      }
    }
  }
  return {
    plainP50Us: percentiles(Float64Array.from(delays.plain)).p50,
    srtpP50Us: percentiles(Float64Array.from(delays.srtp)).p50,
    protectNsPerPacket: protected_ ? protectNs / protected_ : 0,
    packets: delays.srtp.length,
  };
}

/**
 * The generator alone (sender -> receiver, no forwarder) at 5x the highest rate used: it must
 * sustain it without loss, so that what the forwarders show is theirs.
 */
async function generatorCheck(engine: PacketEngine, highestRateUsed: number, seconds: number): Promise<GeneratorResult> {
  const target = highestRateUsed * 5;
  const frameRate = 1000;
  const ppf = Math.max(1, Math.ceil(target / frameRate));
  const frames = seconds * frameRate;
  const tx = await engine.openSocket('127.0.0.1');
  const rx = await engine.openSocket('127.0.0.1');
  try {
    const receiver = engine.startReceiver({ socket: rx, maxRecords: frames * ppf + 1000 });
    const sender = engine.startSender({ socket: tx, host: '127.0.0.1', port: rx.port, rtp: { payloadType: 100, ssrc: 7, clockRate: 48000, size: 120 }, frameRate, packetsPerFrame: ppf, frames });
    const s = await sender.finished();
    for (let i = 0; i < 20 && receiver.status().received < s.sent; i++) await new Promise((r) => setTimeout(r, 50));
    const r = receiver.stop();
    const rec = readRecords(r.records);
    const p = percentiles(rec.delayNs.map((d) => d / 1000));
    const expected = frames * ppf;
    return {
      targetPps: target,
      achievedPps: r.received / seconds,
      loss: 1 - r.received / expected,
      senderMaxLateUs: s.maxLateNs / 1000,
      p99Us: p.p99,
      highestRateUsed,
      headroom: r.received / seconds / highestRateUsed,
    };
  } finally {
    tx.close();
    rx.close();
  }
}

interface Ratio {
  workload: string;
  fanout: number;
  of: string;
  to: string;
  p50: number;
  p99: number;
  /** 95% moving-block bootstrap intervals of the two ratios (issue 14). */
  p50ci: Interval;
  p99ci: Interval;
}

/** p50 / p99 (first copy) ratios: mediasoup vs native, SRTP vs plain, library vs mediasoup SRTP. */
function ratios(rows: ScenarioResult[]): Ratio[] {
  const out: Ratio[] = [];
  const find = (w: string, n: number, p: string) => rows.find((r) => r.workload === w && r.fanout === n && r.path === p);
  const pairs: Array<[string, string]> = [['mediasoup', 'native'], ['mediasoup-srtp', 'mediasoup'], ['library', 'mediasoup-srtp']];
  for (const r of rows.filter((x) => x.path === 'native')) {
    for (const [of, to] of pairs) {
      const a = find(r.workload, r.fanout, of);
      const b = find(r.workload, r.fanout, to);
      if (a && b) {
        const p50ci = quantileRatioInterval(a.samples.first, b.samples.first, 0.5);
        const p99ci = quantileRatioInterval(a.samples.first, b.samples.first, 0.99);
        out.push({ workload: r.workload, fanout: r.fanout, of, to, p50: p50ci.value, p99: p99ci.value, p50ci, p99ci });
      }
    }
  }
  return out;
}

/** The console / README table. */
export function report(results: Record<string, unknown>): string {
  const parts: string[] = [];
  const latency = (results.latency ?? []) as Array<Omit<ScenarioResult, 'cdf' | 'samples'>>;
  if (latency.length) {
    parts.push('Forwarding latency (one-way, generator -> path -> receiver, first / last copy of each packet)\n');
    parts.push(
      table(
        latency.map((r) => ({
          workload: r.workload,
          N: r.fanout,
          path: r.path,
          'p50': fmtUs(r.first.p50),
          'p90': fmtUs(r.first.p90),
          'p99': fmtUs(r.first.p99),
          'p99.9': fmtUs(r.first.p999),
          'max': fmtUs(r.first.max),
          'last p50': fmtUs(r.last.p50),
          'last p99': fmtUs(r.last.p99),
          'loss': `${(r.loss * 100).toFixed(2)}%`,
          'reord': r.reordered,
          'pkt/s': r.deliveredPps.toFixed(0),
          'CPU': `${r.cpuPercent.toFixed(1)}%`,
        })),
      ),
    );
  }
  const rat = (results.ratios ?? []) as Ratio[];
  if (rat.length) {
    parts.push('\nRatios (first copy, same run; 95% bootstrap interval)\n');
    parts.push(table(rat.map((r) => ({ workload: r.workload, N: r.fanout, ratio: `${r.of} / ${r.to}`, p50: fmtInterval(r.p50ci), p99: fmtInterval(r.p99ci) }))));
  }
  const cap = [...((results.capacity ?? []) as CapacityResult[]), ...((results.machine ?? []) as CapacityResult[])];
  if (cap.length) {
    parts.push('\nCapacity (audio consumers of one producer)\n');
    parts.push(
      table(
        cap.map((c) => {
          const best = c.trials.filter((t) => t.pass).at(-1);
          return {
            path: c.path,
            capacity: `${c.atLeast ? '>= ' : ''}${c.capacity}${c.stoppedEarly ? ' (search cut short)' : ''}`,
            'first failure': c.firstFailure ?? '-',
            ...(c.spread ? { 'runs (min / median / max)': `${c.spread.min} / ${c.spread.median} / ${c.spread.max}` } : {}),
            'last p99 at capacity': best ? fmtUs(best.lastP99Us) : '-',
            'worker CPU': best ? `${best.cpuPercent.toFixed(0)}%` : '-',
            'receiver CPU': best ? `${best.receiverCpuPercent.toFixed(0)}%` : '-',
            criterion: c.criterion,
          };
        }),
      ),
    );
  }
  const sig = results.signalling as SignallingSection | undefined;
  if (sig) parts.push(signallingReport(sig, { table, interval: fmtInterval }));
  const spreadRes = results.spread as SpreadResult | undefined;
  if (spreadRes?.rows.length) {
    parts.push(`\nLarge fan-out: one producer, N audio consumers: one worker, spread flat, spread tree, native forwarder (same run; load average ${spreadRes.loadAvg.start.toFixed(1)} -> ${spreadRes.loadAvg.end.toFixed(1)})\n`);
    parts.push(table(spreadRes.rows.map((r) => ({ N: r.fanout, timing: r.timing, path: r.path, 'last p50': fmtUs(r.lastP50Us), 'last p99': fmtUs(r.lastP99Us), 'first p50': fmtUs(r.firstP50Us), loss: `${(r.loss * 100).toFixed(2)}%`, 'worker CPU': `${r.cpuPercent.toFixed(0)}%`, 'receiver CPU': `${r.receiverCpuPercent.toFixed(0)}%`, packets: r.packets }))));
    parts.push('\nPer worker (start: its first copy of a packet, span: its last minus its first, p50; * = the producer\'s worker)\n');
    parts.push(table(spreadRes.rows.flatMap((r) => r.perWorker.map((w) => ({ N: r.fanout, timing: r.timing, path: r.path, worker: `${w.workerId}${w.producer ? '*' : ''}`, copies: w.copies, start: fmtUs(w.startP50Us), 'span p50': fmtUs(w.spanP50Us), 'span p99': fmtUs(w.spanP99Us), 'end p50': fmtUs(w.endP50Us), CPU: `${w.cpuPercent.toFixed(0)}%`, 'CPU/packet': fmtUs(w.cpuUsPerPacket), 'projected last': fmtUs(r.projectedLastUs ?? NaN) })))));
    parts.push('');
    parts.push(table(spreadRes.ratios.map((r) => ({ N: r.fanout, timing: r.timing, ratio: `${r.of} / ${r.to}`, 'last p50': fmtInterval(r.lastP50), 'last p99': fmtInterval(r.lastP99), 'projected (core per worker)': r.projected === undefined ? '-' : `${r.projected.toFixed(2)}x` }))));
  }
  const build = results.build as WorkerBuildResult | undefined;
  if (build?.rows.length) {
    parts.push('\nWorker builds side by side (raw mediasoup SRTP, one worker per build, same run)\n');
    parts.push(table(build.rows.map((r) => ({ workload: r.workload, N: r.fanout, build: r.build, 'CPU/copy': `${r.cpuUsPerCopy.toFixed(2)}us`, 'user/copy': `${r.userUsPerCopy.toFixed(2)}us`, 'last p50': fmtUs(r.lastP50Us), 'last p99': fmtUs(r.lastP99Us), loss: `${(r.loss * 100).toFixed(2)}%`, rounds: r.rounds }))));
    parts.push('');
    parts.push(table(build.ratios.map((r) => ({ workload: r.workload, N: r.fanout, ratio: `${r.of} / ${r.to}`, 'CPU/copy': fmtInterval(r.cpuPerCopy), 'user/copy': fmtInterval(r.userPerCopy), 'last p50': fmtInterval(r.lastP50) }))));
  }
  if (results.meetings) parts.push(meetingsReport(results.meetings as MeetingsResult));
  const g = results.generator as GeneratorResult | undefined;
  if (g) parts.push(`\nGenerator alone: ${g.achievedPps.toFixed(0)} packets/s, loss ${(g.loss * 100).toFixed(3)}%, p99 ${fmtUs(g.p99Us)}: ${g.headroom.toFixed(1)}x the highest rate used (${g.highestRateUsed.toFixed(0)}/s)`);
  if (g?.srtp) parts.push(`Generator SRTP (sender -> receiver, no forwarder): p50 ${fmtUs(g.srtp.plainP50Us)} plain, ${fmtUs(g.srtp.srtpP50Us)} with SRTP; protect ${(g.srtp.protectNsPerPacket / 1000).toFixed(1)} us/packet`);
  const micro = results.micro as MicroResult | undefined;
  if (micro?.tasks.length) {
    parts.push('\nControl plane (tinybench)\n');
    parts.push(table(micro.tasks.map((t: MicroResult['tasks'][number]) => ({ task: t.name, 'ops/s': t.opsPerSecond.toFixed(0), 'mean': `${(t.meanNs / 1000).toFixed(2)}us`, 'p99': `${(t.p99Ns / 1000).toFixed(2)}us`, samples: t.samples }))));
  }
  const mem = results.memory as Record<string, number> | undefined;
  if (mem && 'participants' in mem) {
    parts.push(`\nMemory at ${mem.participants} participants: Node heap ${(mem.heapBytesPerParticipant! / 1024).toFixed(1)} KiB and worker RSS ${(mem.workerRssBytesPerParticipant! / 1024).toFixed(1)} KiB per participant`);
  }
  return parts.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  runBench(parseArgs(process.argv.slice(2))).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
