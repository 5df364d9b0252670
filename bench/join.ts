// Join time: WebSocket open -> first media packet at the consumer, over 20 joins on loopback.
//
//   node dist/bench/join.js [--joins N]
//
// Each join is a new client doing what a browser does: open the WebSocket, hello, join (the
// meeting lets it straight in), list participants, create a receive transport, consume the
// publisher's microphone, connect (ICE + DTLS), resume, and wait for the first RTP packet. A host
// publishes Opus packets every 20 ms throughout. The baseline, measured in the same run and
// taking turns with the gateway path, is the same sequence through the library API (no
// WebSocket, no protobuf): the difference is what the gateway adds.
import { mkdirSync, writeFileSync } from 'node:fs';
import { JoinTokens } from '../gateway/tokens.js';
import { createGateway } from '../gateway/Gateway.js';
import { pb } from '../gateway/wire.js';
import { testCore } from '../test/helpers/core.js';
import { stream } from '../test/helpers/gateway.js';
import { publish as publishLib } from '../test/helpers/meetingPeer.js';
import { SignallingClient, subscribe } from '../test/helpers/signallingClient.js';
import { WeriftSubscriber } from '../test/helpers/weriftPeer.js';
import { silentLogger } from '../test/helpers/util.js';

const args = process.argv.slice(2);
const joinsArg = args.indexOf('--joins');
const JOINS = joinsArg >= 0 ? Math.max(1, Number(args[joinsArg + 1]) || 20) : 20;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function summary(name: string, ms: number[]): Record<string, string | number> {
  const s = [...ms].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return {
    path: name,
    joins: s.length,
    'p50 ms': +percentile(s, 50).toFixed(1),
    'p99 ms': +percentile(s, 99).toFixed(1),
    'mean ms': +mean.toFixed(1),
    'min ms': +s[0]!.toFixed(1),
    'max ms': +s.at(-1)!.toFixed(1),
  };
}

async function main(): Promise<void> {
  const logger = silentLogger();
  const core = await testCore({ logger, workers: { workers: 1, region: 'de-fra' } });
  core.createAccount({ id: 'bench' });
  const meeting = await core.createMeeting({
    id: 'bench',
    accountId: 'bench',
    title: 'Join benchmark',
    hostIdentity: 'host@bench',
    settings: { waitingRoom: false, hostRequiredToStart: false, maxParticipants: 1000 },
  });
  const tokens = new JoinTokens(JoinTokens.randomSecret());
  const gateway = await createGateway({
    core,
    logger,
    registry: core.registry,
    tokens,
    limits: { connectionAttemptBurst: 1000, connectionsPerAddress: 1000 },
  });
  // The publisher: the host through the library, streaming audio all along.
  const host = await meeting.join({ identity: 'host@bench', displayName: 'Host', authenticated: true, asHost: true, e2eeCapable: true });
  const hp = await publishLib(host, [{ name: 'mic', source: 'microphone' }]);
  const micId = hp.producers.get('mic')!.id;
  const stop = stream(hp.pub, [{ name: 'mic', kind: 'audio' }], 'bench');

  const gatewayMs: number[] = [];
  const libraryMs: number[] = [];
  try {
    for (let i = 0; i < JOINS; i++) {
      // Gateway path: from the WebSocket 'open' event.
      {
        const c = await SignallingClient.connect(gateway.url);
        const opened = process.hrtime.bigint();
        await c.join({ meetingId: 'bench', displayName: `Bench ${i}`, e2eeCapable: true });
        const list = (await c.call({ getParticipants: {} })).participants!;
        const producerId = list.producers!.find((p) => p.kind === pb.MediaKind.AUDIO)!.id!;
        const s = await subscribe(c, [producerId]);
        const consumerId = s.consumers.get(producerId)!;
        await s.sub.waitFor(() => s.sub.packetsOf(consumerId).length > 0, 'first packet', 20_000);
        const first = s.sub.packetsOf(consumerId)[0]!.at;
        gatewayMs.push(Number(first - opened) / 1e6);
        await c.call({ leave: {} }).catch(() => undefined);
        c.close();
        await s.sub.close();
      }
      // Baseline: the library API directly.
      {
        const started = process.hrtime.bigint();
        const p = await meeting.join({ identity: `lib-${i}`, displayName: `Lib ${i}`, authenticated: true, e2eeCapable: true });
        const sub = new WeriftSubscriber();
        const t = await p.createTransport('recv');
        const consumer = await p.consume({ transportId: t.id, producerId: micId, rtpCapabilities: meeting.rtpCapabilities });
        const dtls = await sub.connect(t, [{ id: consumer.id, kind: consumer.kind, rtpParameters: consumer.rtpParameters as never }], false);
        await p.connectTransport(t.id, dtls);
        await p.resumeConsumer(consumer.id);
        await sub.waitFor(() => sub.packetsOf(consumer.id).length > 0, 'first packet (library)', 20_000);
        libraryMs.push(Number(sub.packetsOf(consumer.id)[0]!.at - started) / 1e6);
        p.leave();
        await sub.close();
      }
    }
  } finally {
    stop();
    await hp.pub.close();
    await gateway.close();
    core.close();
  }
  const rows = [summary('gateway: WebSocket open -> first packet', gatewayMs), summary('baseline: library join -> first packet', libraryMs)];
  console.log(`\nJoin to first media packet, loopback, ${JOINS} joins each (node ${process.version})`);
  console.table(rows);
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/join.json', JSON.stringify({ at: new Date().toISOString(), joins: JOINS, rows, gatewayMs, libraryMs }, null, 2));
  // werift keeps handles open; the figures are printed.
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
