// Capacity: the largest fan-out a path forwards with 0% loss (and, optionally, a p99 bound) over a
// trial of fixed length. RFC 2544 style: grow until a trial fails, then bisect between the last
// pass and the first failure.
import type { ScenarioResult } from './latency.js';

export interface CapacityTrial {
  fanout: number;
  pass: boolean;
  loss: number;
  lastP99Us: number;
  cpuPercent: number;
  deliveredPps: number;
  senderMaxLateUs: number;
  receiverCpuPercent: number;
}

export interface CapacityResult {
  path: string;
  /** Set when the search stopped early because the run's time budget was spent. */
  stoppedEarly?: string;
  /** The largest fan-out that passed (0 when even the first trial failed). */
  capacity: number;
  /** The smallest fan-out that failed; undefined when the search hit its upper bound. */
  firstFailure?: number;
  /** True when the search stopped at `max` without a failure (the capacity is at least this). */
  atLeast: boolean;
  trialSeconds: number;
  criterion: string;
  trials: CapacityTrial[];
  /** With `--repeat K`: every run's capacity, and their spread (issue 14). */
  runs?: number[];
  spread?: { min: number; median: number; max: number; runs: number };
}

export interface SearchOptions {
  path: string;
  start: number;
  max: number;
  trialSeconds: number;
  /** Stop bisecting when the bracket is narrower than this fraction of the passing value. */
  resolution: number;
  /** Extra pass criterion on the last copy's p99 (us). */
  maxP99Us?: number;
  /** Trials at most (bounds the run time). */
  maxTrials: number;
  /** No new trial starts after this time (Date.now() ms): the whole run stays under its budget. */
  deadline?: number;
  trial: (fanout: number, seconds: number) => Promise<ScenarioResult>;
  log?: (line: string) => void;
}

export async function searchCapacity(o: SearchOptions): Promise<CapacityResult> {
  const trials: CapacityTrial[] = [];
  const run = async (n: number): Promise<boolean> => {
    const r = await o.trial(n, o.trialSeconds);
    const pass = r.loss === 0 && r.received > 0 && (o.maxP99Us === undefined || r.last.p99 <= o.maxP99Us);
    trials.push({ fanout: n, pass, loss: r.loss, lastP99Us: r.last.p99, cpuPercent: r.cpuPercent, deliveredPps: r.deliveredPps, senderMaxLateUs: r.senderMaxLateUs, receiverCpuPercent: r.receiverCpuPercent });
    o.log?.(`  capacity ${o.path}: ${n} consumers -> ${pass ? 'pass' : 'FAIL'} (loss ${(r.loss * 100).toFixed(3)}%, last-copy p99 ${(r.last.p99 / 1000).toFixed(2)} ms, CPU ${r.cpuPercent.toFixed(0)}%)`);
    return pass;
  };
  let lo = 0;
  let hi: number | undefined;
  let n = o.start;
  const timeLeft = (): boolean => o.deadline === undefined || Date.now() < o.deadline;
  while (trials.length < o.maxTrials && timeLeft()) {
    if (await run(n)) {
      lo = n;
      if (n >= o.max) break;
      n = Math.min(o.max, n * 2);
    } else {
      hi = n;
      break;
    }
  }
  while (hi !== undefined && trials.length < o.maxTrials && timeLeft() && hi - lo > Math.max(10, lo * o.resolution)) {
    const mid = Math.round((lo + hi) / 2 / 10) * 10 || Math.round((lo + hi) / 2);
    if (mid <= lo || mid >= hi) break;
    if (await run(mid)) lo = mid;
    else hi = mid;
  }
  return {
    path: o.path,
    ...(timeLeft() ? {} : { stoppedEarly: 'time budget of the run spent' }),
    capacity: lo,
    ...(hi !== undefined ? { firstFailure: hi } : {}),
    atLeast: hi === undefined,
    trialSeconds: o.trialSeconds,
    criterion: `0% loss${o.maxP99Us !== undefined ? ` and last-copy p99 <= ${o.maxP99Us / 1000} ms` : ''} over ${o.trialSeconds} s of audio (50 packets/s per consumer)`,
    trials,
  };
}
