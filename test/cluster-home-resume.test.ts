// Sessions survive a home takeover (issue 13b), with real processes: one redis-server and three
// `c4v-media serve` nodes (de-fra, at-vie, ch-zrh), participants through the Node SDK
// (`c4v-media/client/node`, werift media), which resumes by itself. The meeting's home (Frankfurt)
// is SIGKILLed; the participants at Vienna and Zurich come back on their own with the same ids,
// roles and admission states, and media flows again both ways.
import { createHash } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { connect, localTrack, type NodeMeeting } from '../client/node/index.js';
import { JoinTokens } from '../gateway/tokens.js';
import { pb } from '../gateway/wire.js';
import { CLUSTER_SECRET, startNode, startRedis, type NodeProcess, type RedisProcess } from './helpers/cluster.js';
import { SignallingClient, wireCodeOf } from './helpers/signallingClient.js';
import { inState, next, packets, pump, trackOf } from './helpers/sdk.js';
import { within, poll } from './helpers/util.js';

const MEETING = 'elternabend';
// The SDK waits of this file: a takeover under CI load takes longer than the helpers' default.
const T = 30_000;
const HOST = 'host@schule-a.de';
const SETTINGS = { waitingRoom: true, hostRequiredToStart: true, allowGuests: true, allowedRegions: ['DE', 'AT', 'CH'] };
const tokens = new JoinTokens(CLUSTER_SECRET);
const token = (identity: string, role: 'host' | 'participant' = 'participant'): Promise<string> => tokens.mint({ identity, role, meetingId: MEETING });

let redis: RedisProcess;
let nodes: NodeProcess[] = [];
const sdk: NodeMeeting[] = [];
const raw: SignallingClient[] = [];
const stops: Array<() => void> = [];

test.before(async () => {
  redis = await startRedis();
  nodes = await Promise.all([
    startNode({ id: 'n2', host: '127.0.0.2', region: 'de-fra', redisUrl: redis.url, settings: SETTINGS }),
    startNode({ id: 'n3', host: '127.0.0.3', region: 'at-vie', redisUrl: redis.url, settings: SETTINGS }),
    startNode({ id: 'n4', host: '127.0.0.4', region: 'ch-zrh', redisUrl: redis.url, settings: SETTINGS }),
  ]);
});

test.after(async () => {
  for (const s of stops) s();
  for (const m of sdk) await m.leave().catch(() => undefined);
  for (const c of raw) c.ws.terminate();
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

async function rawClient(n: NodeProcess): Promise<SignallingClient> {
  const c = await SignallingClient.connect(n.url);
  raw.push(c);
  return c;
}

async function sdkClient(n: NodeProcess, identity: string, name: string, role: 'host' | 'participant' = 'participant'): Promise<NodeMeeting> {
  const m = await connect(n.url, { meetingId: MEETING, displayName: name, token: await token(identity, role), chat: false });
  sdk.push(m);
  return m;
}

/** Every string value in Redis (strings, hashes: fields and values, sets), with its key. */
async function everyValue(r: Redis): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  let cursor = '0';
  do {
    const [c, ks] = await r.scan(cursor, 'COUNT', 1000);
    cursor = c;
    for (const k of ks) {
      out.push([k, k]);
      const type = await r.type(k);
      if (type === 'string') out.push([k, (await r.get(k)) ?? '']);
      else if (type === 'hash') for (const [f, v] of Object.entries(await r.hgetall(k))) out.push([k, f], [k, v]);
      else if (type === 'set') for (const v of await r.smembers(k)) out.push([k, v]);
    }
  } while (cursor !== '0');
  return out;
}

test('the home is SIGKILLed: participants at the surviving nodes resume by themselves with their ids, roles and admission, media flows again both ways, lock and ban hold, used tokens stay dead, Redis keeps only token hashes', async () => {
  const [n2, n3, n4] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  // Placement by load: an idle client at Zurich and the host's at Vienna leave Frankfurt the
  // least loaded node, so Frankfurt becomes the home and nobody's media is on it.
  await rawClient(n4);
  await poll('Zurich\'s load in the registry', async () => (await n3.health()).cluster.nodes.find((x: { id: string }) => x.id === 'n4')?.participants === 1);
  const host = await sdkClient(n3, HOST, 'Frau Schmidt', 'host');
  assert.is(host.state, 'admitted');
  assert.ok((await n2.health()).cluster.homeMeetings.includes(MEETING), 'Frankfurt is the home');

  const admitRaw = async (c: SignallingClient, identity: string, name: string): Promise<void> => {
    const j = await c.join({ meetingId: MEETING, displayName: name, joinToken: await token(identity), e2eeCapable: false });
    assert.is(j.state, pb.ParticipantState.WAITING_ROOM);
    await poll(`${name} on the host's waiting list`, async () => host.waiting.some((p) => p.id === j.participantId));
    await host.admit(j.participantId!);
    await c.admitted();
  };
  // Alice (SDK) at Zurich, admitted from the waiting room.
  const alice = await sdkClient(n4, 'alice@eltern.ch', 'Frau Novak');
  assert.is(alice.state, 'waiting-room');
  await poll('Alice on the host\'s waiting list', async () => host.waiting.some((p) => p.id === alice.participantId));
  await host.admit(alice.participantId);
  await inState(alice, 'admitted', T);
  // Carol (raw signalling) at Zurich, admitted; she resumes once at the old home, so her first token is used.
  const carol = await rawClient(n4);
  await admitRaw(carol, 'carol@eltern.ch', 'Frau Keller');
  const carolId = carol.participantId!;
  const t0 = carol.resumeToken!;
  carol.ws.terminate();
  const carol1 = await rawClient(n4);
  await carol1.hello();
  const t1 = (await carol1.call({ resume: { participantId: carolId, resumeToken: t0 } })).join!.resumeToken!;
  assert.ok(t1 && t1 !== t0);
  // Dave (raw) at Vienna, admitted: he will not come back after the kill.
  const dave = await rawClient(n3);
  await admitRaw(dave, 'dave@eltern.at', 'Herr Gruber');
  // A troll at Vienna, admitted and removed: banned.
  const troll = await rawClient(n3);
  await admitRaw(troll, 'stoerer@example.de', 'Störer');
  await host.remove(troll.participantId!);
  // Bob (SDK) at Vienna waits in the waiting room; the meeting is locked.
  const bob = await sdkClient(n3, 'bob@eltern.at', 'Herr Huber');
  assert.is(bob.state, 'waiting-room');
  await poll('Bob on the host\'s waiting list', async () => host.waiting.some((p) => p.id === bob.participantId));
  await host.lock();

  // Media both ways: Vienna (host) <-> Zurich (Alice), through the old home's media plane.
  const hostMic = localTrack('audio');
  const aliceMic = localTrack('audio');
  stops.push(pump(hostMic, 'host'), pump(aliceMic, 'alice'));
  await host.publish('microphone', hostMic);
  await alice.publish('microphone', aliceMic);
  const before = [await trackOf(alice, host.participantId, 'microphone', undefined, T), await trackOf(host, alice.participantId, 'microphone', undefined, T)];
  await packets(before[0]!, 'host', 3, T);
  await packets(before[1]!, 'alice', 3, T);
  const oldProducers = new Set(before.map((t) => t.producerId));

  const r = new Redis(redis.url);
  try {
    // Written through before the kill: five sessions (the troll's went with the removal), the policy.
    await poll('five session records and the policy in Redis', async () => {
      const p = JSON.parse((await r.get(`c4v:meeting:${MEETING}:policy`)) ?? '{}');
      return (await r.hlen(`c4v:meeting:${MEETING}:sessions`)) === 5 && p.locked === true && p.banned?.includes('stoerer@example.de');
    });
    const ids = { host: host.participantId, alice: alice.participantId, bob: bob.participantId };
    const daveLeft = next(host, 'participantleft', (p) => p.id === dave.participantId, 60_000);
    const resumed = Promise.all([host, alice, bob].map((m, i) => within(next(m, 'reconnected', (s) => s === 'signalling', 60_000), 40_000, `${['host', 'alice', 'bob'][i]} resuming`)));
    const mediaBack = Promise.all([host, alice].map((m, i) => within(next(m, 'reconnected', (s) => s === 'media', 60_000), 40_000, `${['host', 'alice'][i]}'s media rebuilt`)));
    const hostAtAlice = next(alice, 'track', (t) => t.participantId === ids.host && t.source === 'microphone', 60_000);
    const aliceAtHost = next(host, 'track', (t) => t.participantId === ids.alice && t.source === 'microphone', 60_000);

    await n2.kill();

    // Everyone at the surviving nodes resumes by themselves: same ids, roles and admission states.
    await resumed;
    assert.equal({ host: host.participantId, alice: alice.participantId, bob: bob.participantId }, ids);
    assert.is(host.role, 'host');
    assert.is(alice.role, 'participant');
    assert.is(host.state, 'admitted');
    assert.is(alice.state, 'admitted');
    assert.is(bob.state, 'waiting-room', 'Bob is still waiting (no admission by a takeover)');
    const newHome = await poll('a new home', async () => {
      for (const n of [n3, n4]) if ((await n.health()).cluster.homeMeetings.includes(MEETING)) return n.id;
      return undefined;
    });
    // Media again both ways, through the new home's media plane (the clients built it again).
    await mediaBack;
    await packets((await hostAtAlice)[0], 'host', 3, T);
    await packets((await aliceAtHost)[0], 'alice', 3, T);

    // The host admits Bob after the takeover.
    await poll('Bob on the host\'s waiting list again', async () => host.waiting.some((p) => p.id === ids.bob));
    await host.admit(ids.bob);
    await inState(bob, 'admitted', T);

    // The lock and the ban still hold (at either surviving node).
    const late = await rawClient(n4);
    await late.hello();
    assert.is(await wireCodeOf(late.joinOnly({ meetingId: MEETING, displayName: 'Neu', joinToken: await token('neu@eltern.de'), e2eeCapable: false })), 'MEETING_LOCKED');
    await host.unlock();
    const troll2 = await rawClient(n3);
    await troll2.hello();
    assert.is(await wireCodeOf(troll2.joinOnly({ meetingId: MEETING, displayName: 'Störer', joinToken: await token('stoerer@example.de'), e2eeCapable: false })), 'BANNED');
    await host.lock();

    // Single use across the takeover: Carol's used token is refused at the new home, her latest
    // one resumes her (a new token comes back) and is dead from then on.
    await carol1.waitClosed(30_000);
    const replay = await rawClient(n4);
    await replay.hello();
    assert.is(await wireCodeOf(replay.call({ resume: { participantId: carolId, resumeToken: t0 } })), 'INVALID_TOKEN');
    const carol2 = await rawClient(n4);
    await carol2.hello();
    const ok = (await carol2.call({ resume: { participantId: carolId, resumeToken: t1 } })).join!;
    assert.is(ok.participantId, carolId);
    assert.is(ok.state, pb.ParticipantState.ADMITTED);
    assert.is(ok.role, pb.Role.PARTICIPANT);
    const t2 = ok.resumeToken!;
    assert.ok(t2 && t2 !== t1);
    await carol2.waitFor('reconnect');
    // No stale producer is announced: the new home knows exactly the two published again.
    const list = (await carol2.call({ getParticipants: {} })).participants!;
    const live = (list.producers ?? []).map((p) => p.id!);
    assert.is(live.length, 2, `two producers at the new home (${live.join(', ')})`);
    assert.not.ok(live.some((id) => oldProducers.has(id)), 'none of the dead home\'s producers');
    assert.equal(new Set((list.producers ?? []).map((p) => p.participantId)), new Set([ids.host, ids.alice]));
    const replay2 = await rawClient(n3);
    await replay2.hello();
    assert.is(await wireCodeOf(replay2.call({ resume: { participantId: carolId, resumeToken: t1 } })), 'INVALID_TOKEN');

    // Redis holds no token in clear: only the SHA-256 of Carol's current one.
    const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
    await poll('Carol\'s record with the hash of her latest token', async () => {
      const rec = await r.hget(`c4v:meeting:${MEETING}:sessions`, carolId);
      return rec !== null && JSON.parse(rec).tokenHash === sha(t2);
    });
    const values = await everyValue(r);
    for (const t of [t0, t1, t2]) assert.not.ok(values.some(([, v]) => v.includes(t)), 'no resume token in clear in Redis');
    for (const [id, rec] of Object.entries(await r.hgetall(`c4v:meeting:${MEETING}:sessions`))) {
      const x = JSON.parse(rec) as Record<string, unknown>;
      assert.match(String(x.tokenHash), /^[0-9a-f]{64}$/, `session record ${id} holds a hash`);
      assert.not.ok('resumeToken' in x || 'token' in x);
    }

    // Dave never came back: removed at the end of the grace period, which began at the takeover.
    await daveLeft;
    assert.not.ok(host.participants.some((p) => p.id === dave.participantId));
    await poll('his record gone with him', async () => (await r.hget(`c4v:meeting:${MEETING}:sessions`, dave.participantId!)) === null);
    assert.ok(newHome === 'n3' || newHome === 'n4');
  } finally {
    r.disconnect();
  }
});

test.run();
