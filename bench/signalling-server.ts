// The server side of the signalling load test (issue 14), run as its own process so that its CPU
// is measured apart from the load generator's: a media core with one worker and the real gateway
// on an ephemeral loopback port, like `c4v-media serve`, with `meetings` meetings of `roster`
// participants each (no waiting room), optionally with hot-path switches off (a JSON object). It prints one JSON line, { port, tokens: [...] } with one
// join token per roster seat, and exits when its stdin closes. Lines on stdin start and stop a
// CPU profile of the hot path (bench/profile-split.ts splits it).
//
// The per-connection and per-address rate limits are raised: every connection comes from
// 127.0.0.1, and the point is what the server does at rates far above one client's allowance.
import { Session } from 'node:inspector';
import { createInterface } from 'node:readline';
import { createGateway } from '../gateway/Gateway.js';
import { JoinTokens } from '../gateway/tokens.js';
import { createMediaCore } from '../lib/MediaCore.js';
import { createLogger } from '../lib/telemetry/logger.js';
import { createMetricsRegistry } from '../lib/telemetry/metrics.js';

async function main(): Promise<void> {
  const meetings = Number(process.argv[2] ?? 1);
  const roster = Number(process.argv[3] ?? 10);
  // Issue 14: hot-path switches (gateway/Connection.ts HotPathTuning), to compare builds in one run.
  const tuning = JSON.parse(process.argv[4] ?? '{}') as Record<string, boolean>;
  if (!(Number.isInteger(meetings) && meetings >= 1 && Number.isInteger(roster) && roster >= 1)) throw new TypeError('usage: signalling-server.js MEETINGS ROSTER [TUNING-JSON]');
  const logger = createLogger({ level: 'silent' });
  const registry = createMetricsRegistry();
  const core = await createMediaCore({ logger, registry, workers: { workers: 1 } });
  core.createAccount({ id: 'load', defaults: { waitingRoom: false, hostRequiredToStart: false } });
  const tokens = new JoinTokens(JoinTokens.randomSecret());
  const seats: Array<{ meetingId: string; token: string }> = [];
  for (let m = 0; m < meetings; m++) {
    const meeting = await core.createMeeting({ accountId: 'load', title: `load ${m}`, hostIdentity: `host-${m}@load.invalid`, settings: { maxParticipants: roster + 1 } });
    for (let i = 0; i < roster; i++) {
      seats.push({ meetingId: meeting.id, token: await tokens.mint({ identity: i === 0 ? `host-${m}@load.invalid` : `p${i}-${m}@load.invalid`, role: i === 0 ? 'host' : 'participant', meetingId: meeting.id }) });
    }
  }
  const gateway = await createGateway({
    core,
    logger,
    registry,
    tokens,
    port: 0,
    _tuning: tuning,
    limits: {
      messagesPerSecond: 1e6,
      messageBurst: 1e6,
      addressMessagesPerSecond: 1e7,
      addressMessageBurst: 1e7,
      connectionsPerAddress: 10_000,
      connectionAttemptsPerSecond: 10_000,
      connectionAttemptBurst: 10_000,
      maxPendingRequests: 1024,
      maxBufferedBytes: 64 * 1024 * 1024,
    },
  });
  process.stdout.write(JSON.stringify({ port: new URL(gateway.url).port, url: gateway.url, seats }) + '\n');
  // `profile-start` / `profile-stop` lines on stdin: a V8 CPU profile of exactly the steps in
  // between (not the set-up), answered on stdout with one JSON line: the profile itself.
  const inspector = new Session();
  inspector.connect();
  const post = (method: string, params?: object): Promise<unknown> => new Promise((resolve, reject) => inspector.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));
  createInterface({ input: process.stdin }).on('line', (line) => {
    // Sampled every 100 us (V8's default is 1 ms: too few samples in a step of a second or two).
    if (line === 'profile-start') void post('Profiler.enable').then(() => post('Profiler.setSamplingInterval', { interval: 100 })).then(() => post('Profiler.start')).then(() => process.stdout.write('{"profiling":true}\n'));
    if (line === 'profile-stop') void post('Profiler.stop').then((r) => process.stdout.write(JSON.stringify((r as { profile: unknown }).profile) + '\n'));
  });
  process.stdin.on('end', () => {
    void gateway.close().finally(() => {
      core.close();
      process.exit(0);
    });
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
