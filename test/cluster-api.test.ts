// Issue 13c: the operator API in cluster mode, with real processes: one redis-server and three
// `c4v-media serve` nodes (127.0.0.2 de-fra, .3 at-vie, .4 ch-zrh) sharing the admin key. An
// account, a meeting and a scoped key are created at n2 over HTTP; join tokens are minted at n3;
// werift participants join at n3 and n4 and media flows; a setting changed at n4 is enforced; the
// meeting is ended through a node that is not its home; the audit names every action; a restarted
// node keeps the definitions; bad input gets coded errors at any node.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signApiRequest } from '../gateway/api/auth.js';
import { pb } from '../gateway/wire.js';
import { JoinTokens } from '../gateway/tokens.js';
import { CLUSTER_SECRET, startNode, startRedis, type NodeProcess, type RedisProcess } from './helpers/cluster.js';
import { poll } from './helpers/util.js';
import { stream } from './helpers/gateway.js';
import { publish, SignallingClient, subscribe, wireCodeOf, type TrackSpec } from './helpers/signallingClient.js';

const ADMIN = { id: 'admin', secret: 'cluster-admin-secret-0123456789abcdef-0123' };
const ENV = { C4V_API_SECRET: ADMIN.secret };
const ACCOUNT = 'schule-b';
const MEETING = 'mathe-7c';
const HOST = 'lehrer@schule-b.de';
const joinTokens = new JoinTokens(CLUSTER_SECRET);
const tracks: TrackSpec[] = [{ name: 'mic', kind: 'audio', source: 'microphone' }];

let redis: RedisProcess;
let nodes: Record<'n2' | 'n3' | 'n4', NodeProcess>;
const specs = {
  n2: { id: 'n2', host: '127.0.0.2', region: 'de-fra' },
  n3: { id: 'n3', host: '127.0.0.3', region: 'at-vie' },
  n4: { id: 'n4', host: '127.0.0.4', region: 'ch-zrh' },
} as const;
const clients: SignallingClient[] = [];
const peers: Array<{ close(): Promise<void> }> = [];
const stops: Array<() => void> = [];
const state: { key?: { id: string; secret: string }; home?: NodeProcess; host?: SignallingClient; pupil?: SignallingClient; waitingId?: string } = {};

interface Answer {
  status: number;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One request as any HTTP client sends it; `key` signs it, `authorization` replaces that. */
async function api(n: NodeProcess, method: string, path: string, o: { key?: { id: string; secret: string }; body?: unknown; rawBody?: string; authorization?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  const key = o.key ?? ADMIN;
  headers.authorization = o.authorization ?? `Bearer ${await signApiRequest(key.id, key.secret)}`;
  const body = o.rawBody ?? (o.body !== undefined ? JSON.stringify(o.body) : undefined);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${n.httpUrl}/api/v1${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : {} };
}

async function client(n: NodeProcess): Promise<SignallingClient> {
  const c = await SignallingClient.connect(n.url);
  clients.push(c);
  return c;
}

async function homesOf(meetingId: string): Promise<NodeProcess[]> {
  const all = Object.values(nodes);
  const views = await Promise.all(all.map(async (n) => ((await n.health()).cluster.homeMeetings as string[]).includes(meetingId)));
  return all.filter((_n, i) => views[i]);
}

test.before(async () => {
  redis = await startRedis();
  const [n2, n3, n4] = await Promise.all([
    startNode({ ...specs.n2, redisUrl: redis.url, env: ENV }),
    startNode({ ...specs.n3, redisUrl: redis.url, env: ENV }),
    startNode({ ...specs.n4, redisUrl: redis.url, env: ENV }),
  ]);
  nodes = { n2: n2!, n3: n3!, n4: n4! };
  await poll('all three nodes in n2\'s registry view', async () => ((await nodes.n2.health()).cluster.nodes.length === 3 ? true : undefined), 20_000, 100);
});

test.after(async () => {
  for (const s of stops) s();
  for (const c of clients) c.ws.terminate();
  for (const p of peers) await p.close().catch(() => undefined);
  await Promise.all(Object.values(nodes ?? {}).map((n) => n.stop()));
  await redis?.stop();
});

test('every node serves /api/v1 and its OpenAPI document; account, meeting and scoped key created at n2; one home', async () => {
  for (const n of Object.values(nodes)) {
    const res = await fetch(`${n.httpUrl}/api/v1/openapi.json`);
    assert.is(res.status, 200, `openapi at ${n.id}`);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, unknown> };
    assert.ok(doc.openapi.startsWith('3.'));
    assert.ok('/api/v1/meetings/{meetingId}/end' in doc.paths);
  }
  const acc = await api(nodes.n2, 'POST', '/accounts', { body: { id: ACCOUNT, name: 'Schule B', defaults: { allowedRegions: ['DE', 'AT', 'CH'], waitingRoom: false }, locked: ['allowedRegions'] } });
  assert.is(acc.status, 201, JSON.stringify(acc.json));
  // The account reached the other nodes' cores: readable there at once.
  for (const n of [nodes.n3, nodes.n4]) assert.is((await api(n, 'GET', `/accounts/${ACCOUNT}`)).json.name, 'Schule B', `account at ${n.id}`);
  // Another node creating the same account at once: exactly one wins (the id is claimed in Redis).
  const race = await Promise.all([nodes.n3, nodes.n4].map((n) => api(n, 'POST', '/accounts', { body: { id: 'race-account' } })));
  assert.equal(race.map((r) => r.status).sort(), [201, 409]);
  assert.is(race.find((r) => r.status === 409)!.json.error.code, 'INVALID_STATE');
  // An account changed at n4 is what n2 and n3 use from then on (their cores were told).
  const upd = await api(nodes.n4, 'PATCH', '/accounts/race-account', { body: { defaults: { maxParticipants: 12 } } });
  assert.is(upd.status, 200, JSON.stringify(upd.json));
  for (const n of [nodes.n2, nodes.n3]) assert.is((await api(n, 'GET', '/accounts/race-account')).json.defaults.maxParticipants, 12, `updated account at ${n.id}`);
  // Two nodes defining the same meeting id at once: one meeting, one refusal.
  const twice = await Promise.all([nodes.n3, nodes.n4].map((n) => api(n, 'POST', '/meetings', { body: { id: 'race-meeting', accountId: 'race-account', title: 'Wettlauf', hostIdentity: HOST } })));
  assert.equal(twice.map((r) => r.status).sort(), [201, 409], JSON.stringify(twice.map((r) => r.json)));
  assert.is((await homesOf('race-meeting')).length, 1);

  const m = await api(nodes.n2, 'POST', '/meetings', {
    body: { id: MEETING, accountId: ACCOUNT, title: 'Mathematik 7c', hostIdentity: HOST, hostName: 'Herr Berger', hostEmail: HOST, password: 'pythagoras-7c', settings: { hostRequiredToStart: false } },
  });
  assert.is(m.status, 201, JSON.stringify(m.json));
  assert.is(m.json.id, MEETING);
  assert.is(m.json.passwordProtected, true);
  assert.is(m.json.settings.waitingRoom, false, "the home's effective settings: the account's default");
  const homes = await homesOf(MEETING);
  assert.is(homes.length, 1, 'exactly one home');
  state.home = homes[0]!;

  const k = await api(nodes.n2, 'POST', `/meetings/${MEETING}/keys`);
  assert.is(k.status, 201, JSON.stringify(k.json));
  state.key = { id: k.json.keyId, secret: k.json.secret };
  // The scoped key works at every node (it lives in Redis), and only for its meeting.
  for (const n of Object.values(nodes)) {
    const g = await api(n, 'GET', `/meetings/${MEETING}`, { key: state.key });
    assert.is(g.status, 200, `scoped key at ${n.id}`);
    assert.is(g.json.hostName, 'Herr Berger');
  }
  const other = await api(nodes.n3, 'GET', '/meetings/elternabend', { key: state.key });
  assert.is(other.status, 403);
  assert.is(other.json.error.code, 'NOT_PERMITTED');
});

test('join tokens minted at n3; participants join at n3 and n4 and media flows; participants listed at n2', async () => {
  const mint = async (body: Record<string, unknown>): Promise<string> => {
    const t = await api(nodes.n3, 'POST', `/meetings/${MEETING}/tokens`, { key: state.key!, body });
    assert.is(t.status, 201, JSON.stringify(t.json));
    assert.ok(String(t.json.joinUrl).includes(`meeting=${MEETING}`));
    return t.json.token as string;
  };
  const host = await client(nodes.n3);
  const hj = await host.join({ meetingId: MEETING, displayName: 'Herr Berger', joinToken: await mint({ role: 'host' }), password: 'pythagoras-7c', e2eeCapable: false });
  assert.is(hj.state, pb.ParticipantState.ADMITTED);
  const pupil = await client(nodes.n4);
  const pj = await pupil.join({ meetingId: MEETING, displayName: 'Lena', joinToken: await mint({ role: 'participant', identity: 'lena@schule-b.de' }), password: 'pythagoras-7c', e2eeCapable: false });
  assert.is(pj.state, pb.ParticipantState.ADMITTED);
  // A wrong password is refused at any node: the hash made at n2 is what the home checks.
  const wrong = await client(nodes.n2);
  await wrong.hello();
  assert.is(await wireCodeOf(wrong.joinOnly({ meetingId: MEETING, displayName: 'X', joinToken: await mint({ role: 'participant', identity: 'x@schule-b.de' }), password: 'falsch', e2eeCapable: false })), 'WRONG_PASSWORD');

  const pub = await publish(host, tracks);
  peers.push(pub.pub);
  stops.push(stream(pub.pub, tracks, 'host'));
  const ids = [...pub.producers.values()];
  for (const id of ids) await pupil.waitFor('newProducer', (x) => x.id === id);
  const s = await subscribe(pupil, ids);
  peers.push(s.sub);
  await s.sub.waitFor(() => [...s.consumers.values()].every((cid) => s.sub.packetsOf(cid).length >= 3), 'the host\'s audio at n4', 30_000);
  assert.ok(s.sub.packetsOf(s.consumers.get(ids[0]!)!).every((x) => x.payload.includes(Buffer.from('host:'))));

  const list = await api(nodes.n2, 'GET', `/meetings/${MEETING}/participants`, { key: state.key! });
  assert.is(list.status, 200);
  assert.equal(list.json.admitted.map((p: { displayName: string }) => p.displayName).sort(), ['Herr Berger', 'Lena']);
  Object.assign(state, { host, pupil });
});

test('a setting changed at n4 is enforced at every node: the waiting room; the API admits from n2', async () => {
  const p = await api(nodes.n4, 'PATCH', `/meetings/${MEETING}/settings`, { key: state.key!, body: { waitingRoom: true } });
  assert.is(p.status, 200, JSON.stringify(p.json));
  assert.is(p.json.settings.waitingRoom, true);
  // A locked setting stays locked whichever node is asked.
  const locked = await api(nodes.n3, 'PATCH', `/meetings/${MEETING}/settings`, { key: state.key!, body: { allowedRegions: ['DE'] } });
  assert.is(locked.status, 403);
  assert.is(locked.json.error.code, 'SETTING_LOCKED');
  const t = await api(nodes.n4, 'POST', `/meetings/${MEETING}/tokens`, { key: state.key!, body: { role: 'participant', identity: 'jonas@schule-b.de' } });
  const late = await client(nodes.n2);
  const lj = await late.join({ meetingId: MEETING, displayName: 'Jonas', joinToken: t.json.token, password: 'pythagoras-7c', e2eeCapable: false });
  assert.is(lj.state, pb.ParticipantState.WAITING_ROOM, 'the waiting room set at n4 holds a join at n2');
  const waiting = await poll('Jonas in the waiting list', async () => {
    const l = await api(nodes.n3, 'GET', `/meetings/${MEETING}/participants`, { key: state.key! });
    return l.json.waiting?.length === 1 ? l.json.waiting[0] : undefined;
  }, 20_000, 100);
  const admit = await api(nodes.n2, 'POST', `/meetings/${MEETING}/participants/${waiting.id}/admit`, { key: state.key! });
  assert.is(admit.status, 200, JSON.stringify(admit.json));
  await late.admitted();
  state.waitingId = waiting.id;
});

test('bad input gets coded errors at any node, and nothing is lost', async () => {
  for (const n of Object.values(nodes)) {
    const unknown = await api(n, 'GET', '/meetings/no-such-meeting');
    assert.is(unknown.status, 404, `unknown meeting at ${n.id}`);
    assert.is(unknown.json.error.code, 'NOT_FOUND');
  }
  const wrongKey = await api(nodes.n3, 'GET', `/meetings/${MEETING}`, { key: { id: state.key!.id, secret: 'not-the-secret-of-this-key-0123456789abcdef' } });
  assert.is(wrongKey.status, 401);
  assert.is(wrongKey.json.error.code, 'INVALID_TOKEN');
  const unknownKey = await api(nodes.n4, 'GET', `/meetings/${MEETING}`, { key: { id: 'mk_nobody', secret: ADMIN.secret } });
  assert.is(unknownKey.json.error.code, 'INVALID_TOKEN');
  // Oversized bodies are refused at the node the client reached, before anything is forwarded.
  const big = 'x'.repeat(70 * 1024);
  const tooLarge = await api(nodes.n4, 'PATCH', `/meetings/${MEETING}/settings`, { key: state.key!, rawBody: JSON.stringify({ waitingRoom: false, pad: big }) });
  assert.is(tooLarge.status, 413);
  assert.is(tooLarge.json.error.code, 'MESSAGE_TOO_LARGE');
  const badField = await api(nodes.n3, 'PATCH', `/meetings/${MEETING}/settings`, { key: state.key!, body: { maxParticipants: -1 } });
  assert.is(badField.status, 400);
  assert.is(badField.json.error.code, 'INVALID_ARGUMENT');
  assert.is(badField.json.error.field, 'maxParticipants');
  const dup = await api(nodes.n4, 'POST', '/meetings', { body: { id: MEETING, accountId: ACCOUNT, title: 'Doppelt', hostIdentity: HOST } });
  assert.is(dup.status, 409);
  assert.is(dup.json.error.code, 'INVALID_STATE');
  const noAccount = await api(nodes.n3, 'POST', '/meetings', { body: { id: 'orphan', accountId: 'no-such-account', title: 'X', hostIdentity: HOST } });
  assert.is(noAccount.json.error.code, 'NOT_FOUND');
  // Nothing was lost: the meeting still runs with its three participants and the waiting room on.
  const g = await api(nodes.n2, 'GET', `/meetings/${MEETING}`, { key: state.key! });
  assert.is(g.json.participantCount, 3);
  assert.is(g.json.settings.waitingRoom, true);
  assert.is(g.json.status, 'running');
});

test('the meeting is ended through a node that is not its home; its audit shows each action', async () => {
  const notHome = Object.values(nodes).find((n) => n !== state.home)!;
  const e = await api(notHome, 'POST', `/meetings/${MEETING}/end`, { key: state.key! });
  assert.is(e.status, 200, JSON.stringify(e.json));
  assert.is(e.json.status, 'ended');
  for (const c of [state.host!, state.pupil!]) {
    await c.waitClosed(15_000);
    assert.is(c.closingReason, 'MEETING_ENDED');
  }
  // Ended everywhere: every node reads it from the store; nothing more can be done with it.
  for (const n of Object.values(nodes)) {
    const g = await poll(`ended at ${n.id}`, async () => {
      const r = await api(n, 'GET', `/meetings/${MEETING}`);
      return r.json.status === 'ended' ? r : undefined;
    }, 20_000, 100);
    assert.ok(g.json.endedAt);
    const t = await api(n, 'POST', `/meetings/${MEETING}/tokens`, { body: { role: 'host' } });
    assert.is(t.status, 409, `no token at ${n.id}`);
    assert.is(t.json.error.code, 'MEETING_ENDED');
  }
  // A late join at any node hears MEETING_ENDED (the home keeps the ended meeting, as one node does).
  for (const n of Object.values(nodes)) {
    const late = await client(n);
    await late.hello();
    const token = await joinTokens.mint({ identity: 'spaet@schule-b.de', role: 'participant', meetingId: MEETING });
    assert.is(await wireCodeOf(late.joinOnly({ meetingId: MEETING, displayName: 'Zu spät', joinToken: token, password: 'pythagoras-7c', e2eeCapable: false })), 'MEETING_ENDED', `late join at ${n.id}`);
  }

  const audit = await api(nodes.n3, 'GET', `/meetings/${MEETING}/audit`);
  assert.is(audit.status, 200);
  const apiEntries = (audit.json.entries as Array<{ actor: string; action: string; outcome: string; source: string; target?: string }>).filter((x) => x.source === 'api');
  const seen = (action: string, outcome = 'ok'): boolean => apiEntries.some((x) => x.action === action && x.outcome === outcome);
  for (const action of ['createMeeting', 'createMeetingKey', 'createJoinToken', 'updateMeetingSettings', 'admitParticipant', 'endMeeting']) assert.ok(seen(action), `audit: ${action}`);
  assert.ok(seen('updateMeetingSettings', 'SETTING_LOCKED'), 'audit: the refused settings change');
  assert.ok(seen('createJoinToken', 'MEETING_ENDED'), 'audit: the refused token after the end');
  assert.ok(apiEntries.some((x) => x.action === 'endMeeting' && x.actor === `api:${state.key!.id}`), 'the end is the scoped key\'s');
  assert.ok(apiEntries.some((x) => x.action === 'admitParticipant' && x.target === state.waitingId));
  // Entries written by different nodes (n2, n3, n4 and the home) are all there: one record.
  assert.is(apiEntries.filter((x) => x.action === 'createJoinToken' && x.outcome === 'ok').length, 4, 'tokens minted at n3 (3) and n4 (1)');
  assert.is(apiEntries.filter((x) => x.action === 'createJoinToken' && x.outcome === 'MEETING_ENDED').length, 3, 'refused at each node after the end');
});

test('a restarted node keeps the definitions: account and a scheduled meeting come back, and the meeting is joinable there', async () => {
  const m2 = await api(nodes.n3, 'POST', '/meetings', {
    body: { id: 'physik-8a', accountId: ACCOUNT, title: 'Physik 8a', hostIdentity: HOST, scheduledStart: new Date(Date.now() + 86_400_000).toISOString() },
  });
  assert.is(m2.status, 201, JSON.stringify(m2.json));
  // n2 dies without a word and comes back with the same id; n3 and n4 go on.
  await nodes.n2.kill();
  nodes.n2 = await startNode({ ...specs.n2, redisUrl: redis.url, env: ENV });
  const acc = await api(nodes.n2, 'GET', `/accounts/${ACCOUNT}`);
  assert.is(acc.status, 200);
  assert.equal(acc.json.locked, ['allowedRegions']);
  const list = await api(nodes.n2, 'GET', `/meetings?accountId=${ACCOUNT}`);
  assert.equal(list.json.meetings.map((m: { id: string }) => m.id).sort(), [MEETING, 'physik-8a']);
  assert.is(list.json.meetings.find((m: { id: string }) => m.id === MEETING).status, 'ended');
  // The restarted node mints and admits: the account is back in its core, the meeting placeable.
  const t = await api(nodes.n2, 'POST', '/meetings/physik-8a/tokens', { body: { role: 'host' } });
  assert.is(t.status, 201, JSON.stringify(t.json));
  const host = await client(nodes.n2);
  const j = await host.join({ meetingId: 'physik-8a', displayName: 'Herr Berger', joinToken: t.json.token, e2eeCapable: false });
  assert.is(j.state, pb.ParticipantState.ADMITTED);
  assert.is((await homesOf('physik-8a')).length, 1);
});

test.run();
