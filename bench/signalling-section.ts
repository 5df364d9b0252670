// The signalling section of the benchmark suite (issue 14; bench/run.ts calls it): rising-rate
// searches for the cheap request (ping) and get_participants with 10- and 50-person rosters, each
// reported as requests per second per server core at p99 <= 10 ms, and same-run comparisons of the
// hot-path switches (server CPU per request against the baseline, with 95% intervals).
import { loadavg } from 'node:os';
import { PARTS } from './profile-split.js';
import type { Interval } from './stats.js';
import { compareSignalling, signallingThroughput, type SignallingComparison, type SignallingRequest, type SignallingResult, type SignallingVariant } from './signalling.js';

export interface SignallingSection {
  /** Connections per scenario: every seat of `meetings` meetings of `roster`. */
  scenarios: Array<{ request: SignallingRequest; roster: number; meetings: number }>;
  pipeline: number;
  throughput: SignallingResult[];
  comparisons: SignallingComparison[];
  /** The machine's 1-minute load average at the start and the end of the section (the generator shares the machine). */
  loadAvg: { start: number; end: number };
}

/** The baseline (wave 2's hot path: one write per send, per-participant roster entries only), then each switch on in turn. */
export const VARIANTS: SignallingVariant[] = [
  { label: 'baseline', tuning: { batchWrites: false, rosterCache: false } },
  { label: '+ batched writes', tuning: { batchWrites: true, rosterCache: false } },
  { label: '+ shared roster', tuning: { batchWrites: true, rosterCache: true } },
];

export async function signallingSection(o: { quick: boolean; log: (line: string) => void }): Promise<SignallingSection> {
  const start = loadavg()[0]!;
  const pipeline = 8;
  // About 200 connections each on the full run; the quick run only checks that everything works.
  const scenarios: SignallingSection['scenarios'] = o.quick
    ? [
        { request: 'ping', roster: 10, meetings: 1 },
        { request: 'get_participants', roster: 10, meetings: 1 },
      ]
    : [
        { request: 'ping', roster: 10, meetings: 20 },
        { request: 'get_participants', roster: 10, meetings: 20 },
        { request: 'get_participants', roster: 50, meetings: 4 },
      ];
  const throughput: SignallingResult[] = [];
  for (const s of scenarios) {
    throughput.push(
      await signallingThroughput({ ...s, pipeline, profile: true, startRps: o.quick ? 500 : 2000, factor: o.quick ? 2 : 1.5, maxSteps: o.quick ? 2 : 12, stepSeconds: o.quick ? 0.5 : 2, log: o.log }),
    );
  }
  const comparisons: SignallingComparison[] = [];
  for (const s of o.quick ? scenarios.slice(1) : scenarios) {
    comparisons.push(await compareSignalling({ ...s, pipeline, rps: o.quick ? 1000 : 8000, rounds: o.quick ? 2 : 10, roundSeconds: o.quick ? 0.3 : 1, variants: VARIANTS, log: o.log }));
  }
  return { scenarios, pipeline, throughput, comparisons, loadAvg: { start, end: loadavg()[0]! } };
}

/** The section's tables for the console report. */
export function signallingReport(
  sig: SignallingSection,
  fmt: { table: (rows: Array<Record<string, string | number>>) => string; interval: (i: Interval) => string },
): string {
  const parts: string[] = [];
  parts.push(`\nSignalling throughput: ping and get_participants against the gateway in its own process (one worker), open loop, rising rates, up to ${sig.pipeline} requests per write; load average ${sig.loadAvg.start.toFixed(1)} -> ${sig.loadAvg.end.toFixed(1)}\n`);
  parts.push(
    fmt.table(
      sig.throughput.flatMap((r) =>
        r.steps.map((x) => ({
          request: r.request,
          roster: r.roster,
          connections: r.connections,
          'target/s': x.targetRps.toFixed(0),
          'answered/s': x.achievedRps.toFixed(0),
          'per write': x.requestsPerWrite.toFixed(1),
          p50: `${x.p50Ms.toFixed(2)}ms`,
          p99: `${x.p99Ms.toFixed(2)}ms`,
          'server CPU': `${x.serverCpuPercent.toFixed(0)}%`,
          'us/req': x.serverUsPerRequest.toFixed(1),
          'req/s per server core': x.rpsPerServerCore.toFixed(0),
          'generator CPU': `${x.generatorCpuPercent.toFixed(0)}%`,
          wrong: x.wrong,
        })),
      ),
    ),
  );
  for (const r of sig.throughput) {
    parts.push(
      r.best
        ? `${r.request} roster ${r.roster}: ${r.best.rpsPerServerCore.toFixed(0)} req/s per server core at ${r.best.achievedRps.toFixed(0)} req/s with p99 ${r.best.p99Ms.toFixed(2)} ms (<= ${r.p99BoundMs} ms); response ${r.responseBytes} B`
        : `${r.request} roster ${r.roster}: no step had p99 <= ${r.p99BoundMs} ms`,
    );
  }
  const profiled = sig.throughput.filter((r) => r.profile);
  if (profiled.length) {
    parts.push('\nWhere the server CPU goes (V8 CPU profile of one more step at the best rate, us per request; the profiler itself adds some)\n');
    parts.push(
      fmt.table(
        profiled.map((r) => {
          const p = r.profile!;
          const busy = p.total - p.parts.idle;
          return {
            request: r.request,
            roster: r.roster,
            'rate/s': p.rps.toFixed(0),
            ...Object.fromEntries(PARTS.filter((k) => k !== 'idle').map((k) => [k, `${((p.parts[k] * 1000) / p.requests).toFixed(1)} (${((p.parts[k] / busy) * 100).toFixed(0)}%)`])),
            total: ((busy * 1000) / p.requests).toFixed(1),
          };
        }),
      ),
    );
  }
  if (sig.comparisons.length) {
    parts.push('\nSignalling hot path, same run: server CPU per request of each build at one rate, rounds interleaved (ratio to the baseline, 95% interval)\n');
    parts.push(
      fmt.table(
        sig.comparisons.flatMap((c) =>
          c.rows.map((row, i) => ({
            request: c.request,
            roster: c.roster,
            'rate/s': c.rps,
            build: row.label,
            'us/req': row.serverUsPerRequest.toFixed(1),
            'ratio to baseline': i === 0 ? '1' : fmt.interval(c.ratios[i - 1]!.cpuPerRequest),
            'p99 (median round)': `${row.p99Ms.toFixed(2)}ms`,
            wrong: row.wrong,
          })),
        ),
      ),
    );
  }
  return parts.join('\n');
}
