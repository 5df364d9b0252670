// Large fan-out spread over workers (issue 14): one producer, N consumers, through the library's
// meeting path, once with the meeting on one worker and once spread over every worker (pipes),
// taking turns in rounds in the same run. The figure is the last copy's delay (the serial
// fan-out's tail) and its ratio spread / one worker with a 95% bootstrap interval.
import type { PacketEngine } from './native/index.js';
import type { MediaCore } from '../lib/MediaCore.js';
import { Scenario, type ScenarioResult } from './latency.js';
import { libraryPath } from './library.js';
import { AUDIO } from './paths.js';
import { quantileRatioInterval, type Interval } from './stats.js';

export interface SpreadRow {
  fanout: number;
  path: string;
  workers: number;
  lastP50Us: number;
  lastP99Us: number;
  firstP50Us: number;
  loss: number;
  cpuPercent: number;
  packets: number;
}

export interface SpreadRatio {
  fanout: number;
  /** Last copy, spread over all workers / one worker. */
  lastP50: Interval;
  lastP99: Interval;
}

export interface SpreadResult {
  rows: SpreadRow[];
  ratios: SpreadRatio[];
}

/**
 * `single` has one worker; `spread` has every worker and `media.spreadAbove` low enough that the
 * consumers are spread from the first one on.
 */
export async function spreadFanout(
  engine: PacketEngine,
  single: MediaCore,
  spread: MediaCore,
  o: { fanouts: number[]; rounds: number; roundSeconds: number; log: (line: string) => void },
): Promise<SpreadResult> {
  const rows: SpreadRow[] = [];
  const ratios: SpreadRatio[] = [];
  const frames = Math.max(1, Math.round(o.roundSeconds * AUDIO.frameRate));
  for (const n of o.fanouts) {
    const open: Array<[string, number, Scenario]> = [];
    const done: Array<[string, number, ScenarioResult]> = [];
    try {
      open.push(['library, one worker', single.pool.workers.length, await Scenario.open({ engine, makePath: (p) => libraryPath(single, AUDIO, n, p, 'library-one-worker'), workload: AUDIO, fanout: n }, frames * o.rounds)]);
      open.push([`library, spread over ${spread.pool.workers.length} workers`, spread.pool.workers.length, await Scenario.open({ engine, makePath: (p) => libraryPath(spread, AUDIO, n, p, 'library-spread'), workload: AUDIO, fanout: n }, frames * o.rounds)]);
      for (let r = 0; r < o.rounds; r++) {
        for (let i = 0; i < open.length; i++) await open[(i + r) % open.length]![2].round(frames);
      }
      for (const [name, workers, sc] of open) done.push([name, workers, await sc.finish()]);
    } finally {
      for (const [, , sc] of open) await sc.close();
    }
    for (const [name, workers, res] of done) {
      rows.push({ fanout: n, path: name, workers, lastP50Us: res.last.p50, lastP99Us: res.last.p99, firstP50Us: res.first.p50, loss: res.loss, cpuPercent: res.cpuPercent, packets: res.samples.last.length });
      o.log(`spread N=${n} ${name}: last copy p50 ${(res.last.p50 / 1000).toFixed(2)} ms p99 ${(res.last.p99 / 1000).toFixed(2)} ms, loss ${(res.loss * 100).toFixed(2)}%, CPU ${res.cpuPercent.toFixed(0)}%`);
    }
    const [one, all] = [done[0]![2], done[1]![2]];
    ratios.push({ fanout: n, lastP50: quantileRatioInterval(all.samples.last, one.samples.last, 0.5), lastP99: quantileRatioInterval(all.samples.last, one.samples.last, 0.99) });
  }
  return { rows, ratios };
}
