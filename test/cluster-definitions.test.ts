// Issue 13c: the Redis definition store against a real redis-server (Debian's, ephemeral port):
// the SQLite store's contract (accounts, meetings, keys, audit), races between two connections
// (two nodes) decided by Redis, the TTL backstop at a meeting's end, and the retention purge of
// issue 16 (keys deleted, personal fields deleted, the id replaced by its pseudonym everywhere).
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { connectRedis } from '../lib/cluster/redis.js';
import { keys } from '../lib/cluster/keys.js';
import { pseudonymiser } from '../lib/privacy/pseudonym.js';
import { PERSONAL_DEFINITION_FIELDS } from '../lib/store/DefinitionStore.js';
import { RedisDefinitionStore } from '../lib/store/RedisDefinitionStore.js';
import { join } from 'node:path';
import { signApiRequest } from '../gateway/api/auth.js';
import { loadConfig } from '../gateway/config.js';
import { startClusterServer } from '../gateway/cluster/serve.js';
import { CLUSTER_SECRET, startRedis, type RedisProcess } from './helpers/cluster.js';
import { tempDir } from './helpers/controlPlane.js';
import { silentLogger, within } from './helpers/util.js';

let redis: RedisProcess;
let a: Redis;
let b: Redis;
/** Two nodes: two connections, two stores, one Redis. */
let nodeA: RedisDefinitionStore;
let nodeB: RedisDefinitionStore;
const pseudonym = pseudonymiser(randomBytes(32));

const definition = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  accountId: 'klinik-nord',
  title: 'Visite Station 3',
  hostIdentity: 'dr.weber@klinik-nord.de',
  hostName: 'Dr. Weber',
  hostEmail: 'dr.weber@klinik-nord.de',
  passwordHash: 'scrypt$16384$8$1$c2FsdA$aGFzaA',
  settings: { waitingRoom: true, dialIn: [] as string[] },
  dialInNumbers: [] as string[],
  ...extra,
});

test.before(async () => {
  redis = await startRedis();
  a = connectRedis({ url: redis.url }, 'test-a');
  b = connectRedis({ url: redis.url }, 'test-b');
  nodeA = new RedisDefinitionStore({ redis: a });
  nodeB = new RedisDefinitionStore({ redis: b });
});

test.after(async () => {
  a?.disconnect();
  b?.disconnect();
  await redis?.stop();
});

test('accounts: written at one node, read at the other; two nodes adding the same id: one wins; the creation time stays', async () => {
  const init = { id: 'klinik-nord', name: 'Klinik Nord', defaults: { waitingRoom: true }, locked: [] };
  const [x, y] = await Promise.all([nodeA.addAccount(init, 1000), nodeB.addAccount({ ...init, name: 'Zweiter' }, 1001)]);
  assert.equal([x, y].sort(), [false, true]);
  const read = await nodeB.account('klinik-nord');
  assert.ok(read);
  assert.equal(read.init.locked, [], 'an empty list stays a list');
  await nodeA.putAccount({ ...init, name: 'Klinik Nord-Ost' }, 5000);
  const again = (await nodeB.account('klinik-nord'))!;
  assert.is(again.init.name, 'Klinik Nord-Ost');
  assert.is(again.createdAt.getTime(), read.createdAt.getTime());
  assert.is(again.updatedAt.getTime(), 5000);
  assert.equal((await nodeA.accounts()).map((s) => s.init.id), ['klinik-nord']);
  assert.is(await nodeA.account('nobody'), undefined);
});

test('meetings: one winner per id, ordered by creation, activeOnly, the end mark with its TTL backstop on every key of the meeting', async () => {
  const wins = await Promise.all([nodeA.addMeeting(definition('visite-1'), 0.5, 2000), nodeB.addMeeting(definition('visite-1', { title: 'B' }), 0.5, 2001)]);
  assert.equal(wins.sort(), [false, true]);
  await nodeB.putMeeting(definition('visite-2'), 0, 3000);
  assert.equal((await nodeA.meetings()).map((m) => m.definition.id), ['visite-1', 'visite-2']);
  const key = { id: 'mk_1', secret: 'secret-of-key-one', meetingId: 'visite-1', createdAt: new Date(2500) };
  await nodeA.putApiKey(key);
  assert.equal(await nodeB.apiKey('mk_1'), key);
  await nodeB.addAudit({ at: new Date(2600), keyId: 'admin', action: 'createMeetingKey', meetingId: 'visite-1', target: 'mk_1', outcome: 'ok' });

  for (const k of [keys.defMeeting('visite-1'), keys.defApiKey('mk_1'), keys.defMeetingKeys('visite-1'), keys.defAudit('visite-1')]) assert.is(await a.ttl(k), -1, `${k}: no TTL while defined`);
  await nodeB.meetingEnded('visite-1', 4000);
  const ended = (await nodeA.meeting('visite-1'))!;
  assert.is(ended.endedAt?.getTime(), 4000);
  assert.equal((await nodeA.meetings({ activeOnly: true })).map((m) => m.definition.id), ['visite-2']);
  // Retention 0.5 days plus the one-day margin, on every key naming the meeting.
  for (const k of [keys.defMeeting('visite-1'), keys.defApiKey('mk_1'), keys.defMeetingKeys('visite-1'), keys.defAudit('visite-1')]) {
    const ttl = await a.ttl(k);
    assert.ok(ttl > 0.5 * 86400 && ttl <= 1.5 * 86400, `${k}: TTL ${ttl}`);
  }
  // A second end mark changes nothing; a definition put again (the id came back) is durable again.
  await nodeA.meetingEnded('visite-1', 9000);
  assert.is((await nodeB.meeting('visite-1'))!.endedAt?.getTime(), 4000);
  await nodeA.putMeeting(definition('visite-1'), 0.5, 9500);
  const back = (await nodeB.meeting('visite-1'))!;
  assert.is(back.endedAt, undefined);
  assert.is(back.createdAt.getTime(), ended.createdAt.getTime());
  for (const k of [keys.defMeeting('visite-1'), keys.defApiKey('mk_1')]) assert.is(await a.ttl(k), -1, `${k}: durable again`);
  await nodeA.meetingEnded('visite-1', 10_000);
});

test('audit: entries from two nodes in one order; per meeting and in all', async () => {
  for (let i = 0; i < 6; i++) {
    const s = i % 2 === 0 ? nodeA : nodeB;
    await s.addAudit({ at: new Date(11_000 + i), keyId: i % 2 === 0 ? 'admin' : 'mk_1', action: `act${i}`, meetingId: 'visite-2', outcome: i === 3 ? 'NOT_PERMITTED' : 'ok' });
  }
  await nodeA.addAudit({ at: new Date(12_000), keyId: 'admin', action: 'createAccount', accountId: 'klinik-nord', outcome: 'ok' });
  const of2 = await nodeB.audit('visite-2');
  assert.equal(of2.map((e) => e.action), ['act0', 'act1', 'act2', 'act3', 'act4', 'act5']);
  assert.is(of2[3]!.outcome, 'NOT_PERMITTED');
  const all = await nodeA.audit();
  assert.ok(all.some((e) => e.action === 'createAccount' && e.meetingId === undefined));
  assert.is(all.length, 8);
});

test('retention purge: keys deleted, personal fields deleted, the clear id nowhere in Redis afterwards; an active meeting keeps its definition', async () => {
  const counts = await nodeA.purgeMeetings(['visite-1'], { pseudonym, now: 20_000 });
  assert.ok(counts['visite-1']! >= 3, JSON.stringify(counts));
  assert.is(await nodeB.meeting('visite-1'), undefined);
  assert.is(await nodeB.apiKey('mk_1'), undefined);
  assert.equal(await nodeB.audit('visite-1'), []);
  const p = pseudonym('visite-1');
  const kept = await b.hgetall(keys.defMeeting(p));
  const def = JSON.parse(kept.def!) as Record<string, unknown>;
  for (const f of PERSONAL_DEFINITION_FIELDS) assert.is(def[f], undefined, `${f} deleted`);
  assert.is(def.id, p);
  assert.equal(def.settings, { waitingRoom: true, dialIn: [] });
  assert.is(kept.purged, '20000');
  const audit = await nodeB.audit(p);
  assert.is(audit.length, 1);
  assert.ok(audit.every((e) => e.meetingId === p && e.target === undefined));
  // Nowhere any more: no key name and no value holds the clear id.
  for (const k of await a.keys('c4v:*')) {
    assert.not.ok(k.includes('visite-1'), `key ${k}`);
    const type = await a.type(k);
    const values = type === 'string' ? [await a.get(k)] : type === 'hash' ? Object.values(await a.hgetall(k)) : type === 'list' ? await a.lrange(k, 0, -1) : type === 'set' ? await a.smembers(k) : await a.zrange(k, 0, -1);
    for (const v of values) assert.not.ok(String(v).includes('visite-1'), `${k} holds the clear id`);
  }
  // visite-2 has not ended: its definition stays (its audit is pseudonymised like the SQLite store's).
  await nodeA.purgeMeetings(['visite-2'], { pseudonym, now: 21_000 });
  assert.is((await nodeB.meeting('visite-2'))!.definition.hostName, 'Dr. Weber');
  assert.equal(await nodeB.audit('visite-2'), []);
  // A purged meeting is no definition any more: not listed.
  assert.equal((await nodeA.meetings()).map((m) => m.definition.id), ['visite-2']);
});

test('deleteMeeting drops the definition and its keys; a closed store answers CLOSED; Redis gone: CLUSTER_UNAVAILABLE', async () => {
  await nodeA.addMeeting(definition('visite-3'), 1, 30_000);
  await nodeA.putApiKey({ id: 'mk_3', secret: 's', meetingId: 'visite-3', createdAt: new Date(30_001) });
  await nodeB.deleteMeeting('visite-3');
  assert.is(await nodeA.meeting('visite-3'), undefined);
  assert.is(await nodeA.apiKey('mk_3'), undefined);
  const closed = new RedisDefinitionStore({ redis: a });
  closed.close();
  await closed.account('x').then(
    () => assert.unreachable('closed'),
    (e: { code?: string }) => assert.is(e.code, 'CLOSED'),
  );
  const dead = connectRedis({ url: redis.url }, 'dead');
  dead.disconnect();
  await new RedisDefinitionStore({ redis: dead }).meeting('x').then(
    () => assert.unreachable('disconnected'),
    (e: { code?: string }) => assert.is(e.code, 'CLUSTER_UNAVAILABLE'),
  );
});

test('a cluster node registers the Redis store with its control-plane adapter: past retention the adapter purges an API meeting there', async () => {
  const { dir, cleanup } = tempDir();
  let offset = 0;
  const secret = 'cluster-admin-secret-0123456789abcdef-0123';
  const config = loadConfig({
    env: {
      C4V_PORT: '0',
      C4V_WORKERS: '1',
      C4V_LOG_LEVEL: 'silent',
      C4V_REDIS_URL: redis.url,
      C4V_NODE_ID: 'solo',
      C4V_TOKEN_SECRET: CLUSTER_SECRET,
      C4V_API_SECRET: secret,
      C4V_CONTROL_PLANE_OUTBOX: join(dir, 'outbox.db'),
      C4V_CONTROL_PLANE_FILE: join(dir, 'metadata.jsonl'),
      C4V_CLUSTER_DRAIN_DEADLINE_MS: '0',
    },
  });
  const server = await startClusterServer(config, silentLogger(), { retention: { clock: () => Date.now() + offset, purgeIntervalMs: 25 } });
  try {
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const res = await fetch(`${server.gateway.httpUrl}/api/v1${path}`, {
        method,
        headers: { authorization: `Bearer ${await signApiRequest('admin', secret)}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, json: await res.json() };
    };
    assert.is((await call('POST', '/accounts', { id: 'praxis', defaults: { retentionDays: 1 } })).status, 201);
    const m = await call('POST', '/meetings', { id: 'sprechstunde-9', accountId: 'praxis', title: 'Sprechstunde Frau Kaya', hostIdentity: 'dr.kaya@praxis.example', hostName: 'Dr. Kaya' });
    assert.is(m.status, 201, JSON.stringify(m.json));
    assert.is((await call('POST', '/meetings/sprechstunde-9/keys')).status, 201);
    assert.is((await call('POST', '/meetings/sprechstunde-9/end')).json.status, 'ended');
    const store = server.store!;
    await within(
      (async () => {
        while ((await store.meeting('sprechstunde-9'))?.endedAt === undefined) await new Promise((r) => setTimeout(r, 20));
      })(),
      10_000,
      'the end mark in Redis',
    );
    const purged = new Promise<Record<string, number>>((resolve) => {
      const on = (name: string, counts: Record<string, number>): void => {
        if (name !== 'definitions-redis') return;
        server.controlPlane!.off('targetpurged', on);
        resolve(counts);
      };
      server.controlPlane!.on('targetpurged', on);
    });
    offset = 2 * 86_400_000;
    const counts = await within(purged, 15_000, 'the adapter\'s purge of the Redis store');
    assert.ok((counts['sprechstunde-9'] ?? 0) >= 2, JSON.stringify(counts));
    assert.is(await store.meeting('sprechstunde-9'), undefined);
    const p = server.controlPlane!.store.pseudonym('sprechstunde-9');
    const kept = JSON.parse((await a.hget(keys.defMeeting(p), 'def'))!) as Record<string, unknown>;
    assert.is(kept.hostName, undefined);
    assert.is(kept.id, p);
    const audit = await store.audit(p);
    assert.ok(audit.some((e) => e.action === 'endMeeting'), 'the API audit is kept under the pseudonym');
    assert.equal(await store.audit('sprechstunde-9'), []);
  } finally {
    await server.close();
    cleanup();
  }
});

test.run();
