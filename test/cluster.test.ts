// Cluster mode with real processes: one redis-server and three `c4v-media serve` nodes on
// 127.0.0.2 (de-fra), 127.0.0.3 (at-vie) and 127.0.0.4 (ch-zrh); werift participants through
// the real gateways, one meeting (DACH) spread over all three. Region pinning: cluster-regions.test.ts.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JoinTokens } from '../gateway/tokens.js';
import { pb } from '../gateway/wire.js';
import { CLUSTER_SECRET, sample, startNode, startRedis, type NodeProcess, type RedisProcess } from './helpers/cluster.js';
import { poll } from './helpers/util.js';
import { stream } from './helpers/gateway.js';
import { publish, SignallingClient, subscribe, wireCodeOf } from './helpers/signallingClient.js';
import type { TrackSpec } from './helpers/signallingClient.js';

const MEETING = 'elternabend';
const HOST = 'host@schule-a.de';
const tokens = new JoinTokens(CLUSTER_SECRET);
const tracks: TrackSpec[] = [
  { name: 'mic', kind: 'audio', source: 'microphone' },
  { name: 'cam', kind: 'video', source: 'camera' },
];

const hostToken = (): Promise<string> => tokens.mint({ identity: HOST, role: 'host', meetingId: MEETING });
const userToken = (identity: string): Promise<string> => tokens.mint({ identity, role: 'participant', meetingId: MEETING });

let redis: RedisProcess;
/** Who is where after the meeting test (the later tests go on with the same meeting). */
const state: {
  host?: SignallingClient;
  parent?: SignallingClient;
  parent2?: SignallingClient;
  viennese?: SignallingClient;
  hostProducers?: string[];
  received?: Awaited<ReturnType<typeof subscribe>>;
} = {};

/** Runs the real CLI (`c4v-media ...`) with extra environment; resolves with its exit code and output. */
function runCli(args: string[], env: Record<string, string>): Promise<{ code: number; text: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('../bin/c4v-media.js', import.meta.url)), ...args], {
      env: { ...process.env, ...env, C4V_TOKEN_SECRET: CLUSTER_SECRET },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, text }));
  });
}
let nodes: NodeProcess[] = [];
const clients: SignallingClient[] = [];
const peers: Array<{ close(): Promise<void> }> = [];
const stops: Array<() => void> = [];

async function client(n: NodeProcess): Promise<SignallingClient> {
  const c = await SignallingClient.connect(n.url);
  clients.push(c);
  return c;
}

test.before(async () => {
  redis = await startRedis();
  const settings = { waitingRoom: true, hostRequiredToStart: true, allowGuests: true, allowedRegions: ['DE', 'AT', 'CH'] };
  nodes = await Promise.all([
    startNode({ id: 'n2', host: '127.0.0.2', region: 'de-fra', redisUrl: redis.url, settings }),
    startNode({ id: 'n3', host: '127.0.0.3', region: 'at-vie', redisUrl: redis.url, settings }),
    startNode({ id: 'n4', host: '127.0.0.4', region: 'ch-zrh', redisUrl: redis.url, settings }),
  ]);
});

test.after(async () => {
  for (const s of stops) s();
  for (const c of clients) c.ws.terminate();
  for (const p of peers) await p.close().catch(() => undefined);
  await Promise.all(nodes.map((n) => n.stop()));
  await redis?.stop();
});

test('every node registers: /healthz shows the cluster view with all three nodes', async () => {
  const [n2] = nodes;
  let h: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  // The heartbeat is 200 ms: poll /healthz until the third node appears in n2's view.
  for (let i = 0; i < 100; i++) {
    h = await n2!.health();
    if (h.cluster.nodes.length === 3) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.is(h.status, 'ready');
  assert.is(h.cluster.nodeId, 'n2');
  assert.equal(h.cluster.nodes.map((x: { id: string }) => x.id).sort(), ['n2', 'n3', 'n4']);
  assert.equal(h.cluster.nodes.map((x: { region: string }) => x.region).sort(), ['at-vie', 'ch-zrh', 'de-fra']);
  assert.ok(h.cluster.nodes.every((x: { state: string }) => x.state === 'serving'));
  assert.is(sample(await n2!.metrics(), 'c4v_cluster_nodes{state="serving"}'), 3);
});

test('one meeting over three nodes: waiting room and lock from any node, all-to-all audio and video, chat across nodes, one crossing per producer and node pair', async () => {
  const [n2, n3, n4] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  // Zurich is made the busiest node (two idle clients), so that placement by load is predictable
  // here: Vienna gets the host's connection, Frankfurt nothing, so Frankfurt becomes the home.
  for (let i = 0; i < 2; i++) await client(n4);
  await poll('Zurich\'s load in the registry', async () =>
    (await n3.health()).cluster.nodes.find((x: { id: string; participants: number }) => x.id === 'n4')?.participants === 2 ? true : undefined,
  );
  // The host connects to Vienna; the meeting is placed at this first join (one home, by load).
  const host = await client(n3);
  const hj = await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await hostToken(), e2eeCapable: false });
  assert.is(hj.state, pb.ParticipantState.ADMITTED);
  const homes = (await Promise.all(nodes.map(async (n) => [n.id, (await n.health()).cluster.homeMeetings as string[]] as const))).filter(([, m]) => m.includes(MEETING));
  assert.is(homes.length, 1, 'exactly one home');
  assert.is(homes[0]![0], 'n2', 'the least loaded node in an allowed region is the home');

  // A parent at Frankfurt and one at Zurich wait in the waiting room; the host (at Vienna) admits them.
  const admitted = async (n: NodeProcess, identity: string, name: string): Promise<SignallingClient> => {
    const c = await client(n);
    const j = await c.join({ meetingId: MEETING, displayName: name, joinToken: await userToken(identity), e2eeCapable: false });
    assert.is(j.state, pb.ParticipantState.WAITING_ROOM, `${name} waits at ${n.id}`);
    await host.waitFor('waitingList', (l) => (l.participants ?? []).some((p) => p.participantId === j.participantId));
    await host.call({ admit: { participantId: j.participantId } });
    await c.admitted();
    return c;
  };
  const parent = await admitted(n2, 'yilmaz@eltern.de', 'Herr Yilmaz');
  const parent2 = await admitted(n4, 'novak@eltern.ch', 'Frau Novak');

  // Locked from Vienna: a new guest is refused at every node alike.
  await host.call({ lock: {} });
  await parent.waitFor('meetingLocked', (l) => l.locked === true);
  await parent2.waitFor('meetingLocked', (l) => l.locked === true);
  for (const n of [n2, n3, n4]) {
    const late = await client(n);
    await late.hello();
    assert.is(await wireCodeOf(late.joinOnly({ meetingId: MEETING, displayName: 'Spät', e2eeCapable: false })), 'MEETING_LOCKED', `locked at ${n.id}`);
  }
  await host.call({ unlock: {} });
  // One more listener at Frankfurt: a second consumer of the same producers behind one crossing.
  const parent3 = await admitted(n2, 'weber@eltern.de', 'Frau Weber');

  // Media all-to-all: each of the three publishes and receives the other two.
  const people = [
    { who: 'host', c: host },
    { who: 'parent', c: parent },
    { who: 'parent2', c: parent2 },
  ];
  const pubs = new Map<string, Awaited<ReturnType<typeof publish>>>();
  for (const p of people) {
    // The host also opens a chat channel: it crosses to the other nodes like a producer (SCTP over the pipe).
    const pub = await publish(p.c, tracks, p.who === 'host' ? 1 : undefined);
    pubs.set(p.who, pub);
    peers.push(pub.pub);
    stops.push(stream(pub.pub, tracks, p.who));
  }
  const chatId = pubs.get('host')!.chatId!;
  const chatSubs: Array<Awaited<ReturnType<typeof subscribe>>> = [];
  for (const p of people) {
    const others = people.filter((o) => o !== p);
    const ids = others.flatMap((o) => [...pubs.get(o.who)!.producers.values()]);
    for (const id of ids) await p.c.waitFor('newProducer', (x) => x.id === id);
    if (p.who !== 'host') await p.c.waitFor('newChat', (x) => x.id === chatId);
    const s = await subscribe(p.c, ids, p.who !== 'host' ? [chatId] : []);
    if (p.who !== 'host') chatSubs.push(s);
    peers.push(s.sub);
    await s.sub.waitFor(() => [...s.consumers.values()].every((cid) => s.sub.packetsOf(cid).length >= 3), `audio and video at the ${p.who}`, 30_000);
    for (const o of others) {
      for (const producerId of pubs.get(o.who)!.producers.values()) {
        const got = s.sub.packetsOf(s.consumers.get(producerId)!);
        assert.ok(got.every((x) => x.payload.includes(Buffer.from(`${o.who}:`))), `${p.who} gets ${o.who}'s own streams`);
      }
    }
  }
  // Chat from Vienna reaches Frankfurt and Zurich.
  await pubs.get('host')!.pub.chatOpen();
  pubs.get('host')!.pub.sendChat('Willkommen zum Elternabend');
  for (const s of chatSubs) await s.sub.waitFor(() => s.sub.chat.some((c) => c.text === 'Willkommen zum Elternabend'), 'the host\'s chat on another node', 20_000);
  const hostIds = [...pubs.get('host')!.producers.values()];
  const s3 = await subscribe(parent3, hostIds);
  peers.push(s3.sub);
  await s3.sub.waitFor(() => [...s3.consumers.values()].every((cid) => s3.sub.packetsOf(cid).length >= 3), 'the host at the second Frankfurt listener', 30_000);

  // Pipe counters: every producer crosses to each of the two other nodes exactly once (two
  // listeners at Frankfurt share the host's crossing), and packets move on every crossing.
  const ids = { n2, n3, n4 };
  for (const [id, n] of Object.entries(ids)) {
    const m = await n.metrics();
    for (const peer of Object.keys(ids).filter((x) => x !== id)) {
      for (const dir of ['out', 'in']) {
        assert.is(sample(m, `c4v_cluster_pipe_producers{peer="${peer}",direction="${dir}"}`), 2, `${id} ${dir} ${peer}: two producers, once each`);
        assert.ok((sample(m, `c4v_cluster_pipe_packets{peer="${peer}",direction="${dir}"}`) ?? 0) > 0, `${id} ${dir} ${peer}: packets cross`);
      }
    }
  }
  // Relayed requests were measured at the edge.
  assert.ok((sample(await n3.metrics(), 'c4v_cluster_relay_request_seconds_count{type="join",hop="relayed"}') ?? 0) >= 1);
  Object.assign(state, { host, parent, parent2, hostProducers: hostIds });
});

test('a non-home node is killed: the others see its producers end; its participant rejoins at another node and media flows again', async () => {
  const [n2, n3] = nodes as [NodeProcess, NodeProcess];
  const { parent } = state as Required<typeof state>;
  await n3.kill();
  // The home notices the expired registry entry and ends the dead node's producers.
  for (const id of state.hostProducers!) await parent.waitFor('producerClosed', (p) => p.producerId === id, 15_000);
  await poll('n3 gone from the registry', async () => ((await n2.health()).cluster.nodes.length === 2 ? true : undefined));
  // The host's client reconnects to the surviving allowed node (what the SDK does) and goes on.
  const host = await client(n2);
  const hj = await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await hostToken(), e2eeCapable: false });
  assert.is(hj.state, pb.ParticipantState.ADMITTED);
  assert.is(hj.role, pb.Role.HOST);
  const hp = await publish(host, tracks);
  peers.push(hp.pub);
  stops.push(stream(hp.pub, tracks, 'host2'));
  for (const id of hp.producers.values()) await parent.waitFor('newProducer', (p) => p.id === id);
  const s = await subscribe(parent, [...hp.producers.values()]);
  peers.push(s.sub);
  await s.sub.waitFor(() => [...s.consumers.values()].every((cid) => s.sub.packetsOf(cid).length >= 3), 'the rejoined host\'s media', 30_000);
  Object.assign(state, { host, hostProducers: [...hp.producers.values()] });
});

test('the home node is killed: another node takes the home role over and rebuilds lock, bans, roles and polls', async () => {
  const n2 = nodes[0]!;
  // Vienna comes back (a fresh process) so that the meeting has an allowed node left after Frankfurt.
  const n3 = await startNode({ id: 'n3', host: '127.0.0.3', region: 'at-vie', redisUrl: redis.url, settings: { waitingRoom: true, hostRequiredToStart: true, allowGuests: true, allowedRegions: ['DE', 'AT', 'CH'] } });
  nodes[1] = n3;
  await poll('n3 back in the registry', async () => ((await n2.health()).cluster.nodes.some((x: { id: string }) => x.id === 'n3') ? true : undefined));
  const { host, parent } = state as Required<typeof state>;

  // Policy state at the home (Frankfurt): a removed (banned) participant, a co-host, a poll with an answer, the lock.
  const troll = await client(n2);
  const tj = await troll.join({ meetingId: MEETING, displayName: 'Störer', joinToken: await userToken('stoerer@example.de'), e2eeCapable: false });
  await host.waitFor('waitingList', (l) => (l.participants ?? []).some((p) => p.participantId === tj.participantId));
  await host.call({ admit: { participantId: tj.participantId } });
  await troll.admitted();
  await host.call({ remove: { participantId: tj.participantId } });
  const parentId = parent.participantId!;
  await host.call({ makeCohost: { participantId: parentId } });
  const pollId = (await host.call({ createPoll: { question: 'Elternabend im Mai?', options: ['ja', 'nein'] } })).pollCreated!.pollId!;
  await parent.waitFor('pollStarted', (p) => p.pollId === pollId);
  await parent.call({ answerPoll: { pollId, option: 0 } });
  // A participant at Vienna, relayed to the home: it must be told to reconnect when the home dies.
  const viennese = await client(n3);
  const vj = await viennese.join({ meetingId: MEETING, displayName: 'Herr Huber', joinToken: await userToken('huber@eltern.at'), e2eeCapable: false });
  await host.waitFor('waitingList', (l) => (l.participants ?? []).some((p) => p.participantId === vj.participantId));
  await host.call({ admit: { participantId: vj.participantId } });
  await viennese.admitted();
  await host.call({ lock: {} });
  // The home writes its policy through to Redis (the answer at the next lease renewal).
  const { Redis } = await import('ioredis');
  const r = new Redis(redis.url);
  try {
    await poll('the policy state in Redis', async () => {
      const v = await r.get(`c4v:meeting:${MEETING}:policy`);
      const p = v ? JSON.parse(v) : undefined;
      return p?.locked && p.banned.includes('stoerer@example.de') && p.polls[0]?.answers.length === 1 ? p : undefined;
    });
  } finally {
    r.disconnect();
  }

  await n2.kill();
  // Vienna's edge closes its relayed client as a lost connection (1012, no Closing notice: the
  // SDK would resume there; cluster-home-resume.test.ts); Vienna becomes the home.
  const closed = await viennese.waitClosed(15_000);
  assert.is(closed.code, 1012);
  await poll('Vienna holding the home role', async () => ((await n3.health()).cluster.homeMeetings.includes(MEETING) ? true : undefined));

  // Everyone comes back at Vienna (the SDK's reconnect).
  const host2 = await client(n3);
  const hj = await host2.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await hostToken(), e2eeCapable: false });
  assert.is(hj.state, pb.ParticipantState.ADMITTED);
  // The lock survived: a newcomer is refused; the ban survived: refused even before the lock.
  const late = await client(n3);
  await late.hello();
  assert.is(await wireCodeOf(late.joinOnly({ meetingId: MEETING, displayName: 'Neu', joinToken: await userToken('neu@eltern.de'), e2eeCapable: false })), 'MEETING_LOCKED');
  await host2.call({ unlock: {} });
  const troll2 = await client(n3);
  await troll2.hello();
  assert.is(await wireCodeOf(troll2.joinOnly({ meetingId: MEETING, displayName: 'Störer', joinToken: await userToken('stoerer@example.de'), e2eeCapable: false })), 'BANNED');
  // The co-host comes back as co-host, straight in (it was admitted at the old home).
  const parentBack = await client(n3);
  const pj = await parentBack.join({ meetingId: MEETING, displayName: 'Herr Yilmaz', joinToken: await userToken('yilmaz@eltern.de'), e2eeCapable: false });
  assert.is(pj.state, pb.ParticipantState.ADMITTED);
  assert.is(pj.role, pb.Role.COHOST);
  // The poll and its answer survived.
  assert.is(await wireCodeOf(parentBack.call({ answerPoll: { pollId, option: 1 } })), 'ALREADY_ANSWERED');
  const results = (await host2.call({ getPollResults: { pollId } })).pollResults!;
  assert.equal(results.counts, [1, 0]);
  // Media again: the host publishes at the new home, the Viennese participant receives it.
  const vBack = await client(n3);
  const vb = await vBack.join({ meetingId: MEETING, displayName: 'Herr Huber', joinToken: await userToken('huber@eltern.at'), e2eeCapable: false });
  assert.is(vb.state, pb.ParticipantState.ADMITTED);
  const hp = await publish(host2, tracks);
  peers.push(hp.pub);
  stops.push(stream(hp.pub, tracks, 'host3'));
  for (const id of hp.producers.values()) await vBack.waitFor('newProducer', (p) => p.id === id);
  const s = await subscribe(vBack, [...hp.producers.values()]);
  peers.push(s.sub);
  await s.sub.waitFor(() => [...s.consumers.values()].every((cid) => s.sub.packetsOf(cid).length >= 3), 'media at the new home', 30_000);
  Object.assign(state, { host: host2, parent: parentBack, viennese: vBack, received: s });
});

test('Redis restarts (empty): media keeps flowing, the nodes re-register, the home re-takes its lease, joins work again', async () => {
  const [, n3, n4] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  const s = state.received!;
  const cid = [...s.consumers.values()][0]!;
  await redis.restart();
  // Media does not touch Redis: packets keep arriving after the restart.
  const at = s.sub.packetsOf(cid).length;
  await s.sub.waitFor(() => s.sub.packetsOf(cid).length >= at + 10, 'media after the Redis restart', 20_000);
  await poll('both nodes re-registered', async () => {
    const h = await n3.health();
    return h.cluster.redis === 'up' && h.cluster.nodes.length === 2 ? true : undefined;
  });
  const { Redis } = await import('ioredis');
  const r = new Redis(redis.url);
  try {
    const lease = await poll('the home lease re-taken', async () => (await r.get(`c4v:meeting:${MEETING}:lease`)) ?? undefined);
    assert.ok(lease.startsWith('n3|'), 'the same home holds it again (a new token)');
    assert.ok((await r.smembers('c4v:nodes')).sort().join() === 'n3,n4');
  } finally {
    r.disconnect();
  }
  assert.ok(nodes.length === 3 && (await n4.health()).cluster.homeMeetings.length === 0);
  // Signalling through the bus works again: a newcomer waits, the host admits.
  const newcomer = await client(n3);
  const nj = await newcomer.join({ meetingId: MEETING, displayName: 'Frau Berger', joinToken: await userToken('berger@eltern.at'), e2eeCapable: false });
  assert.is(nj.state, pb.ParticipantState.WAITING_ROOM);
  await state.host!.waitFor('waitingList', (l) => (l.participants ?? []).some((p) => p.participantId === nj.participantId));
  await state.host!.call({ admit: { participantId: nj.participantId } });
  await newcomer.admitted();
});

test('c4v-media drain --deadline: the home node stops taking joins, then its meeting moves to another node with its policy', async () => {
  const [, n3, n4] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  const { host, parent } = state as Required<typeof state>;
  const out = await runCli(['drain', 'n3', '--deadline', '1'], { C4V_REDIS_URL: redis.url });
  assert.is(out.code, 0, out.text);
  assert.match(out.text, /node n3 is draining; its meetings move in 1 s/);
  await poll('n3 draining in the registry', async () =>
    (await n4.health()).cluster.nodes.find((x: { id: string; state: string }) => x.id === 'n3')?.state === 'draining' ? true : undefined,
  );
  assert.is(sample(await n4.metrics(), 'c4v_cluster_nodes{state="draining"}'), 1);
  const c = await client(n3);
  await c.hello();
  assert.is(await wireCodeOf(c.joinOnly({ meetingId: MEETING, displayName: 'Gast', e2eeCapable: false })), 'NODE_DRAINING');
  // After the deadline the meeting moves: its participants are told to reconnect, and at Zurich
  // (the only serving node left) the host and the co-host come back as before.
  assert.is((await host.waitClosed(15_000)).code, 4000 + pb.CloseReason.SERVER_SHUTDOWN);
  assert.is((await parent.waitClosed(15_000)).code, 4000 + pb.CloseReason.SERVER_SHUTDOWN);
  await poll('Zurich holding the home role', async () => ((await n4.health()).cluster.homeMeetings.includes(MEETING) ? true : undefined));
  const host2 = await client(n4);
  const hj = await host2.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await hostToken(), e2eeCapable: false });
  assert.is(hj.state, pb.ParticipantState.ADMITTED);
  assert.is(hj.role, pb.Role.HOST);
  const co = await client(n4);
  const cj = await co.join({ meetingId: MEETING, displayName: 'Herr Yilmaz', joinToken: await userToken('yilmaz@eltern.de'), e2eeCapable: false });
  assert.is(cj.state, pb.ParticipantState.ADMITTED);
  assert.is(cj.role, pb.Role.COHOST);
  // A node that is not there: a coded time-out, not a hang.
  const missing = await runCli(['drain', 'n9'], { C4V_REDIS_URL: redis.url, C4V_CLUSTER_REQUEST_TIMEOUT_MS: '500' });
  assert.is(missing.code, 1);
  assert.match(missing.text, /CLUSTER_TIMEOUT/);
});

test.run();
