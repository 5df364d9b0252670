// The home takeover race (issue 13b), with real processes: the dead home's lease can run out
// before the survivors notice the death (the lease was last renewed up to a third of its TTL
// before the kill; the loss is seen a registry TTL after the last heartbeat, later on a loaded
// machine). Here the lease is made shorter than the registry TTL, so that it always runs out
// first: a surviving node must still take the meeting over by itself, without waiting for a join.
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { JoinTokens } from '../gateway/tokens.js';
import { pb } from '../gateway/wire.js';
import { CLUSTER_SECRET, startNode, startRedis, type NodeProcess, type RedisProcess } from './helpers/cluster.js';
import { poll } from './helpers/util.js';
import { SignallingClient, wireCodeOf } from './helpers/signallingClient.js';

const MEETING = 'elternabend';
const tokens = new JoinTokens(CLUSTER_SECRET);
const SETTINGS = { waitingRoom: false, hostRequiredToStart: false, allowGuests: true, allowedRegions: ['DE', 'AT'] };
// Lease 600 ms (renewed every 200 ms) against a 2 s registry TTL: after a SIGKILL the lease is
// gone about 1.4 s before anyone can see that its holder died.
const ENV = { C4V_CLUSTER_LEASE_MS: '600' };

let redis: RedisProcess;
let nodes: NodeProcess[] = [];
const clients: SignallingClient[] = [];

test.before(async () => {
  redis = await startRedis();
  nodes = await Promise.all([
    startNode({ id: 'n2', host: '127.0.0.2', region: 'de-fra', redisUrl: redis.url, settings: SETTINGS, env: ENV }),
    startNode({ id: 'n3', host: '127.0.0.3', region: 'at-vie', redisUrl: redis.url, settings: SETTINGS, env: ENV }),
  ]);
});

test.after(async () => {
  for (const c of clients) c.ws.terminate();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

test('a home whose lease ran out before its death was noticed is taken over by a survivor at once, policy and sessions included', async () => {
  const [n2, n3] = nodes as [NodeProcess, NodeProcess];
  await poll('both nodes registered', async () => (await n2.health()).cluster.nodes.length === 2);
  // A client at Vienna makes it the busier node: the meeting's home goes to Frankfurt.
  const c = await SignallingClient.connect(n3.url);
  clients.push(c);
  await poll('Vienna\'s load in the registry', async () => (await n2.health()).cluster.nodes.find((x: { id: string }) => x.id === 'n3')?.participants === 1);
  const j = await c.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await tokens.mint({ identity: 'host@schule-a.de', role: 'host', meetingId: MEETING }), e2eeCapable: false });
  assert.is(j.state, pb.ParticipantState.ADMITTED);
  await c.call({ lock: {} });
  assert.ok((await n2.health()).cluster.homeMeetings.includes(MEETING), 'Frankfurt is the home');
  const r = new Redis(redis.url);
  try {
    await poll('the session record in Redis', async () => (await r.hlen(`c4v:meeting:${MEETING}:sessions`)) === 1);
    await n2.kill();
    // The lease runs out first; the registry entry later.
    await poll('the dead home\'s lease expired', async () => (await r.get(`c4v:meeting:${MEETING}:lease`)) === null);
    assert.ok((await r.hget(`c4v:meeting:${MEETING}`, 'home')) === 'n2', 'the placement record still names the dead home');
    // No join: Vienna takes the meeting over by itself once it notices the death.
    await poll('Vienna holding the home role', async () => (await n3.health()).cluster.homeMeetings.includes(MEETING), 20_000);
    const lease = await r.get(`c4v:meeting:${MEETING}:lease`);
    assert.ok(lease?.startsWith('n3|'), `the new lease is Vienna's (${lease})`);
  } finally {
    r.disconnect();
  }
  // The lock came along (policy rebuilt) ...
  const late = await SignallingClient.connect(n3.url);
  clients.push(late);
  await late.hello();
  const newcomer = { meetingId: MEETING, displayName: 'Neu', joinToken: await tokens.mint({ identity: 'neu@eltern.de', role: 'participant', meetingId: MEETING }), e2eeCapable: false };
  assert.is(await wireCodeOf(late.joinOnly(newcomer)), 'MEETING_LOCKED');
  // ... and the host's session: it resumes with its token (a new one comes back), as host.
  const back = await SignallingClient.connect(n3.url);
  clients.push(back);
  await back.hello();
  const ok = (await back.call({ resume: { participantId: j.participantId, resumeToken: j.resumeToken } })).join!;
  assert.is(ok.participantId, j.participantId);
  assert.is(ok.role, pb.Role.HOST);
  assert.is(ok.state, pb.ParticipantState.ADMITTED);
  assert.ok(ok.resumeToken && ok.resumeToken !== j.resumeToken, 'a rotated token');
  assert.ok(await back.waitFor('reconnect'), 'told to build its media again');
});

test('no node can take the home role: a resume waits for a new home within its bound, then gets HOME_UNAVAILABLE; nothing is lost', async () => {
  const n3 = nodes[1]!;
  // A third node in Zurich: outside the meeting's regions (DE, AT), so it can never be its home.
  const n4 = await startNode({ id: 'n4', host: '127.0.0.4', region: 'ch-zrh', redisUrl: redis.url, settings: SETTINGS, env: ENV });
  nodes.push(n4);
  await poll('Zurich in Vienna\'s view', async () => (await n3.health()).cluster.nodes.some((x: { id: string }) => x.id === 'n4'));
  // The host is at Vienna, the home now (let in through the lock).
  const host = await SignallingClient.connect(n3.url);
  clients.push(host);
  const hj = await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await tokens.mint({ identity: 'host@schule-a.de', role: 'host', meetingId: MEETING }), e2eeCapable: false });
  assert.is(hj.role, pb.Role.HOST);
  await n3.kill();
  // Its socket died with Vienna; it resumes at Zurich (what the SDK's failover does). No node in the
  // meeting's regions is left: the resume waits out its bound, then is refused with a code the SDK
  // retries on.
  const back = await SignallingClient.connect(n4.url);
  clients.push(back);
  await back.hello();
  assert.is(await wireCodeOf(back.call({ resume: { participantId: hj.participantId, resumeToken: hj.resumeToken } }, 30_000)), 'HOME_UNAVAILABLE');
  // Refused, not consumed: the record still holds the hash of the unused token (a later home
  // restores the session with it).
  const r = new Redis(redis.url);
  try {
    const rec = await r.hget(`c4v:meeting:${MEETING}:sessions`, hj.participantId!);
    assert.ok(rec && JSON.parse(rec).tokenHash === createHash('sha256').update(hj.resumeToken!).digest('hex'));
  } finally {
    r.disconnect();
  }
});

test.run();
