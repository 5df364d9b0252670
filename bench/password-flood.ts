// Password flood: 200 parallel wrong-password joins (200 connections from 10 client addresses
// behind a trusted proxy) against a meeting, while an admitted participant keeps making requests.
// Measures that participant's request latency (p50 / p99 / max) in three phases of one run:
//
//   baseline   no flood (the same requests, same process, same meeting)
//   flood      the flood with the default limits (attempts counted before the hash: 20 checked)
//   unlimited  the same flood with the attempt limits lifted, so that every attempt is hashed
//              (only the bounded hash concurrency protects the process); not with --quick
//
//   node dist/bench/password-flood.js [--quick] [--joins N]
//   (also the `password` section of `npm run bench`)
//
// The target: the admitted participant's p99 stays under 50 ms during the flood.
import { createGateway, type Gateway } from '../gateway/Gateway.js';
import { JoinTokens } from '../gateway/tokens.js';
import type { MediaCore } from '../lib/MediaCore.js';
import { testCore } from '../test/helpers/core.js';
import { SignallingClient } from '../test/helpers/signallingClient.js';
import { silentLogger } from '../test/helpers/util.js';
import { quantile } from './stats.js';

/** p99 target for an admitted participant's requests during the flood. */
export const FLOOD_P99_TARGET_MS = 50;

export interface FloodPhase {
  phase: 'baseline' | 'flood' | 'unlimited';
  /** Requests the admitted participant made (and got answered) in the phase. */
  requests: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** p99 / the baseline's p99 (1 for the baseline). */
  p99Ratio: number;
  /** Flood joins answered WRONG_PASSWORD (= hashes computed for them), TOO_MANY_ATTEMPTS, other. */
  wrongPassword: number;
  tooManyAttempts: number;
  other: number;
  /** The other answers' codes. */
  otherCodes: string[];
  /** Wall time of the flood (first join sent to last answer). */
  floodMs: number;
}

export interface PasswordFloodResult {
  joins: number;
  addresses: number;
  targetP99Ms: number;
  phases: FloodPhase[];
  /** The flood phase's p99 is under the target. */
  withinTarget: boolean;
}

const MEETING = 'flood';
const PASSWORD = 'richtig-4711';

async function setup(unlimited: boolean): Promise<{ core: MediaCore; gateway: Gateway; tokens: JoinTokens }> {
  const core = await testCore({
    logger: silentLogger(),
    workers: { workers: 1, region: 'de-fra' },
    ...(unlimited ? { passwordAttempts: { perAddress: 1_000_000, perMeeting: 1_000_000 } } : {}),
  });
  core.createAccount({ id: 'bench' });
  await core.createMeeting({
    id: MEETING,
    accountId: 'bench',
    title: 'Flood',
    hostIdentity: 'host@bench',
    password: PASSWORD,
    settings: { waitingRoom: false, hostRequiredToStart: false, allowGuests: true },
  });
  const tokens = new JoinTokens(JoinTokens.randomSecret());
  const gateway = await createGateway({
    core,
    logger: silentLogger(),
    registry: core.registry,
    tokens,
    trustedProxies: ['127.0.0.1'],
    // Neither the flood nor the probe (requests back to back, faster than a real client) may be
    // cut by the rate limits: what is measured is the latency, not the limiter.
    limits: {
      connectionAttemptBurst: 1000,
      connectionAttemptsPerSecond: 1000,
      messagesPerSecond: 100_000,
      messageBurst: 100_000,
      addressMessagesPerSecond: 100_000,
      addressMessageBurst: 100_000,
      // Every attempt hashed one after the other (unlimited) takes longer than the join timeout.
      joinTimeoutMs: 600_000,
    },
  });
  return { core, gateway, tokens };
}

function summarize(phase: FloodPhase['phase'], ms: number[], baselineP99: number, codes: string[], floodMs: number): FloodPhase {
  const sorted = Float64Array.from(ms).sort();
  const p99 = quantile(sorted, 0.99);
  return {
    phase,
    requests: ms.length,
    p50Ms: +quantile(sorted, 0.5).toFixed(2),
    p99Ms: +p99.toFixed(2),
    maxMs: +(sorted.at(-1) ?? NaN).toFixed(2),
    p99Ratio: phase === 'baseline' ? 1 : +(p99 / baselineP99).toFixed(2),
    wrongPassword: codes.filter((c) => c === 'WRONG_PASSWORD').length,
    tooManyAttempts: codes.filter((c) => c === 'TOO_MANY_ATTEMPTS').length,
    other: codes.filter((c) => c !== 'WRONG_PASSWORD' && c !== 'TOO_MANY_ATTEMPTS').length,
    otherCodes: [...new Set(codes.filter((c) => c !== 'WRONG_PASSWORD' && c !== 'TOO_MANY_ATTEMPTS'))],
    floodMs: +floodMs.toFixed(0),
  };
}

/**
 * The admitted participant's requests until `done()` (and at least `atLeast`), one every
 * `intervalMs` like a busy client (a closed loop as fast as possible would itself starve the
 * server it measures); latencies in ms. A refused request fails the run.
 */
async function probe(c: SignallingClient, done: () => boolean, atLeast: number, intervalMs = 5): Promise<number[]> {
  const out: number[] = [];
  while (!done() || out.length < atLeast) {
    const t0 = process.hrtime.bigint();
    const r = await c.send({ getParticipants: {} }, 60_000);
    if (!r.participants) throw new Error(`the admitted participant's request failed: ${r.error?.codeName ?? 'no participants'}`);
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return out;
}

async function phase(
  kind: FloodPhase['phase'],
  joins: number,
  addresses: number,
  probes: number,
  baselineP99: number,
): Promise<FloodPhase> {
  const { core, gateway, tokens } = await setup(kind === 'unlimited');
  const clients: SignallingClient[] = [];
  try {
    const member = await SignallingClient.connect(gateway.url);
    clients.push(member);
    await member.join({
      meetingId: MEETING,
      displayName: 'Mitglied',
      joinToken: await tokens.mint({ identity: 'host@bench', role: 'host', meetingId: MEETING }),
      e2eeCapable: true,
    });
    // Warm-up, not measured.
    for (let i = 0; i < 20; i++) await member.call({ getParticipants: {} });
    if (kind === 'baseline') {
      const ms = await probe(member, () => true, probes);
      return summarize(kind, ms, 0, [], 0);
    }
    // All flood connections open and hello'd first, so the flood is the joins themselves.
    const flood = await Promise.all(
      Array.from({ length: joins }, (_, i) => SignallingClient.connect(gateway.url, { headers: { 'x-forwarded-for': `203.0.113.${i % addresses}` } })),
    );
    clients.push(...flood);
    await Promise.all(flood.map((c) => c.hello()));
    let finished = false;
    const t0 = performance.now();
    const answers = Promise.all(
      // Every attempt hashed one after the other (unlimited) takes a while: a long response timeout.
      flood.map(async (c, i) => {
        const r = await c.send({ join: { meetingId: MEETING, displayName: `Gast ${i}`, password: `falsch-${i}`, e2eeCapable: true } }, 300_000);
        return r.error?.codeName ?? 'ok';
      }),
    ).then((codes) => {
      finished = true;
      return codes;
    });
    const ms = await probe(member, () => finished, probes);
    const codes = await answers;
    return summarize(kind, ms, baselineP99, codes, performance.now() - t0);
  } finally {
    for (const c of clients) c.ws.terminate();
    await gateway.close();
    core.close();
  }
}

/** Runs the three phases; `log` gets one line per phase. */
export async function passwordFlood(o: { quick: boolean; joins?: number; log?: (line: string) => void }): Promise<PasswordFloodResult> {
  const joins = o.joins ?? 200;
  const addresses = 10;
  const probes = o.quick ? 100 : 400;
  const log = o.log ?? (() => undefined);
  const phases: FloodPhase[] = [];
  const baseline = await phase('baseline', joins, addresses, probes, 0);
  phases.push(baseline);
  // The unlimited phase hashes every attempt (tens of seconds on 2 cores): full runs only.
  for (const kind of o.quick ? (['flood'] as const) : (['flood', 'unlimited'] as const)) phases.push(await phase(kind, joins, addresses, probes, baseline.p99Ms));
  for (const p of phases) {
    log(
      `password flood ${p.phase}: ${p.requests} requests of an admitted participant p50 ${p.p50Ms} ms p99 ${p.p99Ms} ms max ${p.maxMs} ms` +
        (p.phase === 'baseline' ? '' : ` (p99 ${p.p99Ratio}x baseline); ${joins} joins in ${p.floodMs} ms: ${p.wrongPassword} checked (WRONG_PASSWORD), ${p.tooManyAttempts} TOO_MANY_ATTEMPTS, ${p.other} other${p.other ? ` (${p.otherCodes.join(', ')})` : ''}`),
    );
  }
  const flood = phases.find((p) => p.phase === 'flood')!;
  return { joins, addresses, targetP99Ms: FLOOD_P99_TARGET_MS, phases, withinTarget: flood.p99Ms < FLOOD_P99_TARGET_MS };
}

// Standalone: node dist/bench/password-flood.js [--quick] [--joins N]
if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const j = args.indexOf('--joins');
  const result = await passwordFlood({
    quick: args.includes('--quick'),
    ...(j >= 0 ? { joins: Math.max(1, Number(args[j + 1]) || 200) } : {}),
    log: (line) => console.log(line),
  });
  console.log(JSON.stringify(result, null, 2));
  console.log(`target: p99 < ${FLOOD_P99_TARGET_MS} ms during the flood: ${result.withinTarget ? 'met' : 'MISSED'}`);
  process.exit(0);
}
