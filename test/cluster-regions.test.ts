// Region pinning across nodes, with real processes: a redis-server, a Frankfurt node (de-fra,
// 127.0.0.2) and a Zurich node (ch-zrh, 127.0.0.4). The meeting allows DE only: a participant
// connecting at Zurich is refused (REGION_UNAVAILABLE, fail-closed) and Zurich never gets a shard
// of the meeting, even though it is the less loaded node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JoinTokens } from '../gateway/tokens.js';
import { pb } from '../gateway/wire.js';
import { CLUSTER_SECRET, sample, startNode, startRedis, type NodeProcess, type RedisProcess } from './helpers/cluster.js';
import { stream } from './helpers/gateway.js';
import { publish, SignallingClient, subscribe, wireCodeOf, type TrackSpec } from './helpers/signallingClient.js';

const MEETING = 'elternabend';
const tokens = new JoinTokens(CLUSTER_SECRET);
const mic: TrackSpec[] = [{ name: 'mic', kind: 'audio', source: 'microphone' }];
let redis: RedisProcess;
let fra: NodeProcess;
let zrh: NodeProcess;
const clients: SignallingClient[] = [];
const peers: Array<{ close(): Promise<void> }> = [];
const stops: Array<() => void> = [];

test.before(async () => {
  redis = await startRedis();
  const settings = { waitingRoom: false, hostRequiredToStart: false, allowGuests: true, allowedRegions: ['DE'] };
  [fra, zrh] = await Promise.all([
    startNode({ id: 'fra', host: '127.0.0.2', region: 'de-fra', redisUrl: redis.url, settings }),
    startNode({ id: 'zrh', host: '127.0.0.4', region: 'ch-zrh', redisUrl: redis.url, settings }),
  ]);
});

test.after(async () => {
  for (const s of stops) s();
  for (const c of clients) c.ws.terminate();
  for (const p of peers) await p.close().catch(() => undefined);
  await Promise.all([fra?.stop(), zrh?.stop()]);
  await redis?.stop();
});

async function client(n: NodeProcess): Promise<SignallingClient> {
  const c = await SignallingClient.connect(n.url);
  clients.push(c);
  return c;
}

test('a DE-only meeting: refused at the CH node (first join and later ones), placed and served in Frankfurt only', async () => {
  // The very first join comes in at Zurich: refused there, and the meeting is placed nowhere in CH.
  const early = await client(zrh);
  await early.hello();
  assert.is(
    await wireCodeOf(early.joinOnly({ meetingId: MEETING, displayName: 'Gast', joinToken: await tokens.mint({ identity: 'gast@schule.ch', role: 'participant', meetingId: MEETING }), e2eeCapable: false })),
    'REGION_UNAVAILABLE',
  );
  const hz = await zrh.health();
  assert.equal(hz.cluster.homeMeetings, []);
  assert.equal(hz.cluster.mediaMeetings, []);
  // The refused connection is still open and may join elsewhere (another meeting); here it just leaves.
  early.ws.close();

  // At Frankfurt the meeting runs, with media.
  const host = await client(fra);
  const hj = await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await tokens.mint({ identity: 'host@schule-a.de', role: 'host', meetingId: MEETING }), e2eeCapable: false });
  assert.is(hj.state, pb.ParticipantState.ADMITTED);
  const parent = await client(fra);
  await parent.join({ meetingId: MEETING, displayName: 'Herr Yilmaz', joinToken: await tokens.mint({ identity: 'yilmaz@eltern.de', role: 'participant', meetingId: MEETING }), e2eeCapable: false });
  const hp = await publish(host, mic);
  peers.push(hp.pub);
  stops.push(stream(hp.pub, [{ name: 'mic', kind: 'audio' }], 'host'));
  const s = await subscribe(parent, [hp.producers.get('mic')!]);
  peers.push(s.sub);
  await s.sub.waitFor(() => s.sub.packetsOf([...s.consumers.values()][0]!).length >= 3, 'audio in Frankfurt', 20_000);
  assert.ok((await fra.health()).cluster.homeMeetings.includes(MEETING));

  // A participant at Zurich while the meeting runs: refused the same way; Zurich still carries nothing.
  const late = await client(zrh);
  await late.hello();
  assert.is(
    await wireCodeOf(late.joinOnly({ meetingId: MEETING, displayName: 'Frau Keller', joinToken: await tokens.mint({ identity: 'keller@eltern.ch', role: 'participant', meetingId: MEETING }), e2eeCapable: false })),
    'REGION_UNAVAILABLE',
  );
  const h = await zrh.health();
  assert.equal(h.cluster.mediaMeetings, [], 'no shard of the DE-only meeting on the CH node');
  assert.equal(h.cluster.homeMeetings, []);
  const m = await zrh.metrics();
  assert.not.match(m, /c4v_cluster_pipe_producers\{/);
  assert.is(sample(await fra.metrics(), 'c4v_cluster_home_meetings'), 1);
});

test.run();
