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
function thin(sorted: Float64Array, points = 200): number[] {
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
  };
}
