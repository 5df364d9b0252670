// Turns a receiver's per-packet records into the figures the report shows: one-way delay
// percentiles of the first and the last copy of each packet, loss, reordering, delivered rate.
import { readRecords } from './native/index.js';

/** Delay percentiles in microseconds. */
export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  samples: number;
}

export interface DelaySummary {
  /** Per packet, the copy that arrived first. */
  first: Percentiles;
  /** Per packet, the copy that arrived last (the fan-out's tail). */
  last: Percentiles;
  /** Copies expected (packets x fan-out). */
  expected: number;
  /** Distinct copies received. */
  received: number;
  /** 1 - received / expected. */
  loss: number;
  /** Copies that arrived after a later packet of the same copy. */
  reordered: number;
  duplicates: number;
  /** Sorted delays (us) of the first and last copies, thinned for the CDF chart. */
  cdf: { first: number[]; last: number[] };
  /**
   * Per packet in sending order, the first and last copy's delay (us): what the bootstrap
   * intervals resample. Not written to results.json (the report strips it).
   */
  samples: { first: Float64Array; last: Float64Array };
}

/** The value at quantile q of an ascending array (nearest rank). */
export function quantile(sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export function percentiles(values: Float64Array): Percentiles {
  const s = Float64Array.from(values).sort();
  return {
    p50: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    p999: quantile(s, 0.999),
    max: s.length ? s[s.length - 1]! : NaN,
    samples: s.length,
  };
}

/** At most `points` values of a sorted array, evenly spread over its ranks (always the last). */
export function thin(sorted: Float64Array, points = 200): number[] {
  if (sorted.length <= points) return [...sorted];
  const out: number[] = [];
  for (let i = 0; i < points; i++) out.push(sorted[Math.round((i * (sorted.length - 1)) / (points - 1))]!);
  return out;
}

/**
 * Summarises records for packets with sequence in [firstSeq, firstSeq + packets) over `copies`
 * copies. Earlier sequences (the warm-up) are ignored.
 */
export function summarise(records: ArrayBuffer, copies: number, firstSeq: number, packets: number): DelaySummary {
  const r = readRecords(records);
  const minD = new Float64Array(packets).fill(Infinity);
  const maxD = new Float64Array(packets).fill(-Infinity);
  const seen = new Uint8Array(packets * copies);
  const highest = new Int32Array(copies).fill(-1);
  let received = 0;
  let reordered = 0;
  let duplicates = 0;
  for (let i = 0; i < r.seq.length; i++) {
    const k = r.seq[i]! - firstSeq;
    const c = r.copy[i]!;
    if (k < 0 || k >= packets || c >= copies) continue;
    if (seen[k * copies + c]) {
      duplicates++;
      continue;
    }
    seen[k * copies + c] = 1;
    received++;
    if (k < highest[c]!) reordered++;
    else highest[c] = k;
    const d = r.delayNs[i]! / 1000;
    if (d < minD[k]!) minD[k] = d;
    if (d > maxD[k]!) maxD[k] = d;
  }
  const firsts = minD.filter((d) => Number.isFinite(d));
  const lasts = maxD.filter((d) => Number.isFinite(d));
  const first = percentiles(firsts);
  const last = percentiles(lasts);
  const expected = packets * copies;
  return {
    first,
    last,
    expected,
    received,
    loss: expected ? 1 - received / expected : 0,
    reordered,
    duplicates,
    cdf: { first: thin(Float64Array.from(firsts).sort()), last: thin(Float64Array.from(lasts).sort()) },
    samples: { first: firsts, last: lasts },
  };
}

// ---- Issue 14: same-run ratios with 95% bootstrap intervals ---------------------------------------

/** A ratio (or any statistic) with its 95% bootstrap interval. */
export interface Interval {
  value: number;
  lo: number;
  hi: number;
  /** Half the interval's width relative to the value: 0.03 means +-3%. */
  halfWidth: number;
  resamples: number;
}

/**
 * A small deterministic PRNG (mulberry32): a bootstrap with a fixed seed gives the same interval
 * for the same data, so a re-run of the report does not move the figures.
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Resamples `values` in blocks of `block` consecutive entries (moving-block bootstrap): delays of
 * packets close in time are correlated (one scheduling hiccup delays a burst), and resampling
 * single packets would pretend they are independent and give too narrow an interval.
 */
function resampleBlocks(values: Float64Array, block: number, rnd: () => number, out: Float64Array): Float64Array {
  const n = values.length;
  // At least ~10 blocks per sample: with fewer, every resample is nearly the sample itself.
  const b = Math.max(1, Math.min(block, Math.floor(n / 10)));
  const starts = n - b + 1;
  let k = 0;
  while (k < n) {
    const s = Math.floor(rnd() * starts);
    for (let j = 0; j < b && k < n; j++) out[k++] = values[s + j]!;
  }
  return out;
}

function intervalOf(value: number, stats: number[], resamples: number): Interval {
  const s = stats.filter(Number.isFinite).sort((x, y) => x - y);
  const lo = quantile(s, 0.025);
  const hi = quantile(s, 0.975);
  return { value, lo, hi, halfWidth: Math.max(value - lo, hi - value) / Math.abs(value), resamples };
}

/**
 * The ratio q(a) / q(b) of quantile q of two samples (per-packet delays of two paths measured in
 * the same run), with a 95% interval from a moving-block bootstrap of each sample independently.
 */
export function quantileRatioInterval(a: Float64Array, b: Float64Array, q: number, options: { block?: number; resamples?: number; seed?: number } = {}): Interval {
  const resamples = options.resamples ?? 1000;
  const block = options.block ?? 50;
  const rnd = prng(options.seed ?? 14);
  const sortedQ = (v: Float64Array): number => quantile(Float64Array.from(v).sort(), q);
  const value = sortedQ(a) / sortedQ(b);
  const ra = new Float64Array(a.length);
  const rb = new Float64Array(b.length);
  const stats: number[] = [];
  for (let i = 0; i < resamples; i++) stats.push(sortedQ(resampleBlocks(a, block, rnd, ra)) / sortedQ(resampleBlocks(b, block, rnd, rb)));
  return intervalOf(value, stats, resamples);
}

/**
 * The ratio of two rates sum(num) / sum(den) of sample A over the same of sample B, where each
 * sample is a list of rounds (e.g. worker CPU ms and copies forwarded per round), with a 95%
 * interval from resampling the rounds of each sample.
 */
export function rateRatioInterval(a: Array<{ num: number; den: number }>, b: Array<{ num: number; den: number }>, options: { resamples?: number; seed?: number } = {}): Interval {
  const resamples = options.resamples ?? 2000;
  const rnd = prng(options.seed ?? 14);
  const rate = (rows: Array<{ num: number; den: number }>): number => rows.reduce((s, r) => s + r.num, 0) / rows.reduce((s, r) => s + r.den, 0);
  const pick = (rows: Array<{ num: number; den: number }>): Array<{ num: number; den: number }> => rows.map(() => rows[Math.floor(rnd() * rows.length)]!);
  const stats: number[] = [];
  for (let i = 0; i < resamples; i++) stats.push(rate(pick(a)) / rate(pick(b)));
  return intervalOf(rate(a) / rate(b), stats, resamples);
}

/** The spread of repeated measurements (capacity searches): min, median, max. */
export function spread(values: number[]): { min: number; median: number; max: number; runs: number } {
  const s = [...values].sort((x, y) => x - y);
  // The middle value, or the mean of the two middle ones for an even count.
  const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { min: s[0] ?? NaN, median: s.length ? mid : NaN, max: s.at(-1) ?? NaN, runs: s.length };
}
