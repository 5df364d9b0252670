// Cluster figures (issue 13), with real processes: one redis-server and two `c4v-media serve`
// nodes on 127.0.0.2 (de-fra, the meeting's home) and 127.0.0.3 (at-vie).
//
//   node dist/bench/cluster.js [--quick] [--out FILE]
//
// 1. One node hop: two publishers in one meeting send Opus-sized packets in the same timer tick,
//    one from the home node, one from the other node; one subscriber at the home receives both.
//    The one-way delay of each (send -> receive, one clock: everything runs in this process)
//    gives p50 / p99 on one node (the baseline, same run) and across one node boundary (SRTP
//    pipe); the ratio is what the hop adds.
// 2. Signalling: sequential get_participants round trips from a client at the home (local) and
//    at the other node (relayed over the bus to the home).
// 3. Recovery: SIGKILL of the non-home node (-> its producers end at the survivor; -> its
//    publisher, rejoined at the home, is heard again), then SIGKILL of the home (-> the other
//    node holds the home role; -> the relayed client resumes its session there (issue 13b: with
//    its resume token, as the SDK does); -> a rejoined publisher is heard again at it).
//    Issue 13: the same non-home kill also times the SDK's own failover: an SDK publisher given
//    only the killed node's URL (-> resumed at the home; -> its new stream heard by an SDK listener).
import { writeFileSync } from 'node:fs';
import { connect, localTrack, type NodeMeeting } from '../client/node/index.js';
import { JoinTokens } from '../gateway/tokens.js';
import { CLUSTER_SECRET, startNode, startRedis, type NodeProcess } from '../test/helpers/cluster.js';
import { pump } from '../test/helpers/sdk.js';
import { publish, SignallingClient, subscribe, type TrackSpec } from '../test/helpers/signallingClient.js';
import { quantile } from './stats.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const outArg = args.indexOf('--out');
const OUT = outArg >= 0 ? args[outArg + 1] : undefined;
const PACKETS = QUICK ? 250 : 3000;
const REQUESTS = QUICK ? 50 : 500;
const MEETING = 'elternabend';
const SETTINGS = { waitingRoom: false, hostRequiredToStart: false, allowGuests: true, allowedRegions: ['DE', 'AT'] };
const tokens = new JoinTokens(CLUSTER_SECRET);
const mic: TrackSpec[] = [{ name: 'mic', kind: 'audio', source: 'microphone' }];

const ms = (ns: bigint): number => Number(ns) / 1e6;
const stats = (v: number[]): { p50: number; p99: number; n: number } => {
  const s = [...v].sort((a, b) => a - b);
  return { p50: +quantile(s, 0.5).toFixed(3), p99: +quantile(s, 0.99).toFixed(3), n: s.length };
};

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function join(n: NodeProcess, identity: string, host = false): Promise<SignallingClient> {
  const c = await SignallingClient.connect(n.url);
  await c.join({
    meetingId: MEETING,
    displayName: identity,
    joinToken: await tokens.mint({ identity, role: host ? 'host' : 'participant', meetingId: MEETING }),
    e2eeCapable: false,
  });
  return c;
}

/**
 * Issue 13: an SDK publisher connected to `at` (its only URL) and an SDK listener at `listen`, the
 * listener hearing it. `resumed`: the publisher's own failover finished; `heardAgain`: the
 * listener receives the stream that replaces the one lost with the node.
 */
async function sdkPair(at: NodeProcess, listen: NodeProcess, closers: Array<() => unknown>): Promise<{ resumed: Promise<unknown>; heardAgain: Promise<unknown> }> {
  const options = { meetingId: MEETING, chat: false };
  const pub = await connect(at.url, { ...options, displayName: 'sdk-remote' });
  const sub = await connect(listen.url, { ...options, displayName: 'sdk-listener' });
  closers.push(() => pub.leave(), () => sub.leave());
  const track = localTrack('audio');
  closers.push(pump(track, 'sdk'));
  const heard = (m: NodeMeeting, replaces?: string): Promise<void> =>
    new Promise((resolve) => {
      const fits = (t: NodeMeeting['tracks'][number]): boolean => t.participantId === pub.participantId && (replaces === undefined || t.replacesProducerId === replaces);
      const onTrack = (t: NodeMeeting['tracks'][number]): void => {
        if (!fits(t)) return;
        m.off('track', onTrack);
        const s = t.track.onReceiveRtp.subscribe(() => {
          s.unSubscribe();
          resolve();
        });
      };
      const have = m.tracks.find(fits);
      if (have) onTrack(have);
      else m.on('track', onTrack);
    });
  const first = heard(sub);
  await pub.publish('microphone', track);
  await first;
  const old = pub.producerId('microphone');
  return {
    resumed: new Promise((resolve) => pub.on('reconnected', (scope) => scope === 'signalling' && resolve(undefined))),
    heardAgain: heard(sub, old),
  };
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const start = (id: string, host: string, region: string): Promise<NodeProcess> => startNode({ id, host, region, redisUrl: redis.url, settings: SETTINGS });
  let n2 = await start('n2', '127.0.0.2', 'de-fra');
  let n3 = await start('n3', '127.0.0.3', 'at-vie');
  const closers: Array<() => unknown> = [];
  try {
    // The first join is at n2 while n3 is idle... so make n3 the busier one: the host connects there
    // first, which places the meeting's home on n2 (least loaded).
    const host = await join(n3, 'host@bench', true);
    closers.push(() => host.ws.terminate());
    const local = await join(n2, 'local@bench');
    const remote = await join(n3, 'remote@bench');
    const listener = await join(n2, 'listener@bench');
    for (const c of [local, remote, listener]) closers.push(() => c.ws.terminate());
    if (!(await n2.health()).cluster.homeMeetings.includes(MEETING)) throw new Error('expected the home on n2');

    // 1. One node hop.
    const lp = await publish(local, mic);
    const rp = await publish(remote, mic);
    closers.push(() => lp.pub.close(), () => rp.pub.close());
    const s = await subscribe(listener, [lp.producers.get('mic')!, rp.producers.get('mic')!]);
    closers.push(() => s.sub.close());
    const cidLocal = s.consumers.get(lp.producers.get('mic')!)!;
    const cidRemote = s.consumers.get(rp.producers.get('mic')!)!;
    const sent = new Map<string, bigint>();
    let seq = 0;
    const send = (): void => {
      seq++;
      // Alternate which one goes first so that neither path always waits for the other's send.
      const order = seq % 2 === 0 ? ([['L', lp.pub], ['R', rp.pub]] as const) : ([['R', rp.pub], ['L', lp.pub]] as const);
      for (const [tag, pub] of order) {
        const key = `${tag}${seq}`;
        sent.set(key, process.hrtime.bigint());
        pub.send('mic', Buffer.from(`${key}:`.padEnd(100, '.')));
      }
    };
    // Warm-up until both paths deliver, then the measured run.
    const warm = setInterval(send, 20);
    await s.sub.waitFor(() => s.sub.packetsOf(cidLocal).length > 5 && s.sub.packetsOf(cidRemote).length > 5, 'both paths', 30_000);
    clearInterval(warm);
    const firstSeq = seq + 1;
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        send();
        if (seq >= firstSeq + PACKETS - 1) {
          clearInterval(t);
          resolve();
        }
      }, 20);
    });
    await new Promise((r) => setTimeout(r, 300)); // the last packets in flight
    const delays = (cid: string, tag: string): number[] =>
      s.sub.packetsOf(cid).flatMap((p) => {
        const key = p.payload.toString('latin1').split(':')[0]!;
        const n = Number(key.slice(1));
        const at = sent.get(key);
        return key.startsWith(tag) && n >= firstSeq && at ? [ms(p.at - at)] : [];
      });
    const oneNode = stats(delays(cidLocal, 'L'));
    const hop = stats(delays(cidRemote, 'R'));

    // 2. Signalling latency, local vs relayed.
    const rtt = async (c: SignallingClient): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < REQUESTS; i++) {
        const t0 = process.hrtime.bigint();
        await c.call({ getParticipants: {} });
        out.push(ms(process.hrtime.bigint() - t0));
      }
      return out;
    };
    const sigLocal = stats(await rtt(local));
    const sigRelayed = stats(await rtt(remote));

    // 3a. Kill the non-home node. Issue 13: an SDK pair first, publisher at n3, listener at n2.
    const sdk = await sdkPair(n3, n2, closers);
    const t0 = process.hrtime.bigint();
    const sdkResumed = sdk.resumed.then(() => ms(process.hrtime.bigint() - t0));
    const sdkHeard = sdk.heardAgain.then(() => ms(process.hrtime.bigint() - t0));
    await n3.kill();
    await listener.waitFor('producerClosed', (p) => p.producerId === rp.producers.get('mic'), 30_000);
    const tClosed = ms(process.hrtime.bigint() - t0);
    const back = await join(n2, 'remote@bench');
    closers.push(() => back.ws.terminate());
    const bp = await publish(back, mic);
    closers.push(() => bp.pub.close());
    const bs = await subscribe(listener, [bp.producers.get('mic')!]);
    closers.push(() => bs.sub.close());
    const tick = setInterval(() => bp.pub.send('mic', Buffer.from('again'.padEnd(100, '.'))), 20);
    closers.push(() => clearInterval(tick));
    const bcid = bs.consumers.get(bp.producers.get('mic')!)!;
    await bs.sub.waitFor(() => bs.sub.packetsOf(bcid).length > 0, 'media after the non-home kill', 30_000);
    const tNonHomeMedia = ms(process.hrtime.bigint() - t0);
    const [tSdkResumed, tSdkMedia] = await Promise.all([sdkResumed, sdkHeard]);

    // 3b. Kill the home: n3 comes back first, with a subscriber there relayed to the home.
    n3 = await start('n3', '127.0.0.3', 'at-vie');
    await until('n3 registered', async () => (await n2.health()).cluster.nodes.length === 2);
    const viennese = await join(n3, 'huber@bench');
    closers.push(() => viennese.ws.terminate());
    const t1 = process.hrtime.bigint();
    await n2.kill();
    await viennese.waitClosed(30_000);
    const tTold = ms(process.hrtime.bigint() - t1);
    // The client's node is alive: it resumes there at once; the resume waits for the new home.
    const sub2 = await SignallingClient.connect(n3.url);
    closers.push(() => sub2.ws.terminate());
    await sub2.hello();
    const resumed = (await sub2.call({ resume: { participantId: viennese.participantId, resumeToken: viennese.resumeToken } }, 30_000)).join!;
    if (resumed.participantId !== viennese.participantId) throw new Error('resumed as someone else');
    if (resumed.rtpCapabilities) sub2.rtpCapabilities = resumed.rtpCapabilities;
    const tResumed = ms(process.hrtime.bigint() - t1);
    await until('the new home', async () => (await n3.health()).cluster.homeMeetings.includes(MEETING));
    const tHome = ms(process.hrtime.bigint() - t1);
    const pub2 = await join(n3, 'host@bench', true);
    closers.push(() => pub2.ws.terminate());
    const p2 = await publish(pub2, mic);
    closers.push(() => p2.pub.close());
    const tick2 = setInterval(() => p2.pub.send('mic', Buffer.from('home'.padEnd(100, '.'))), 20);
    closers.push(() => clearInterval(tick2));
    const s2 = await subscribe(sub2, [p2.producers.get('mic')!]);
    closers.push(() => s2.sub.close());
    const c2 = s2.consumers.get(p2.producers.get('mic')!)!;
    await s2.sub.waitFor(() => s2.sub.packetsOf(c2).length > 0, 'media after the home kill', 30_000);
    const tHomeMedia = ms(process.hrtime.bigint() - t1);

    const results = {
      meta: { quick: QUICK, packets: PACKETS, requests: REQUESTS, heartbeatMs: 200, nodeTtlMs: 2000, leaseMs: 3000 },
      hop: { oneNode, acrossNodes: hop, ratioP50: +(hop.p50 / oneNode.p50).toFixed(2), ratioP99: +(hop.p99 / oneNode.p99).toFixed(2), addedP50Ms: +(hop.p50 - oneNode.p50).toFixed(3) },
      signalling: { home: sigLocal, relayed: sigRelayed, ratioP50: +(sigRelayed.p50 / sigLocal.p50).toFixed(2) },
      recovery: {
        nonHomeKill: {
          producersClosedMs: Math.round(tClosed),
          mediaAgainMs: Math.round(tNonHomeMedia),
          sdkFailover: { resumedMs: Math.round(tSdkResumed), mediaAgainMs: Math.round(tSdkMedia) },
        },
        homeKill: { relayedClientToldMs: Math.round(tTold), resumedMs: Math.round(tResumed), newHomeMs: Math.round(tHome), mediaAgainMs: Math.round(tHomeMedia) },
      },
    };
    console.table([
      { figure: 'one-way delay, one node (baseline)', p50: oneNode.p50, p99: oneNode.p99, n: oneNode.n },
      { figure: 'one-way delay, across one node hop', p50: hop.p50, p99: hop.p99, n: hop.n },
      { figure: 'ratio hop / one node', p50: results.hop.ratioP50, p99: results.hop.ratioP99 },
      { figure: 'get_participants at the home (ms)', p50: sigLocal.p50, p99: sigLocal.p99, n: sigLocal.n },
      { figure: 'get_participants relayed from the other node (ms)', p50: sigRelayed.p50, p99: sigRelayed.p99, n: sigRelayed.n },
    ]);
    console.table([
      { kill: 'non-home node', 'producers closed (ms)': Math.round(tClosed), 'media again after rejoin (ms)': Math.round(tNonHomeMedia) },
      { kill: 'non-home node, SDK failover', 'resumed elsewhere (ms)': Math.round(tSdkResumed), 'media again (ms)': Math.round(tSdkMedia) },
      {
        kill: 'home node',
        'relayed client told (ms)': Math.round(tTold),
        'session resumed (ms)': Math.round(tResumed),
        'new home (ms)': Math.round(tHome),
        'media again after rejoin (ms)': Math.round(tHomeMedia),
      },
    ]);
    console.log(JSON.stringify(results));
    if (OUT) writeFileSync(OUT, JSON.stringify(results, null, 2));
  } finally {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
    await Promise.all([n2.stop(), n3.stop()]);
    await redis.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
