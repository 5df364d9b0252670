// Home placement, fencing and the bus against a real redis-server (ephemeral port, temp folder).
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bus } from '../lib/cluster/Bus.js';
import type { NodeInfo } from '../lib/cluster/NodeRegistry.js';
import { chooseHome, claimHome, purgeMeeting, readHome, readPolicy, renewHome, takeOverHome, writePolicy } from '../lib/cluster/placement.js';
import { C4vError, PolicyError } from '../lib/errors.js';
import { startRedis, type RedisProcess } from './helpers/cluster.js';
import { silentLogger } from './helpers/util.js';

let redis: RedisProcess;
const conns: Redis[] = [];
const connect = (): Redis => {
  const r = new Redis(redis.url);
  conns.push(r);
  return r;
};

test.before(async () => {
  redis = await startRedis({ password: 'redis-test-password-123' });
});
test.after(async () => {
  for (const c of conns) c.disconnect();
  await redis.stop();
});

const node = (id: string, region: string, participants = 0, state: NodeInfo['state'] = 'serving'): NodeInfo => ({
  id,
  region,
  url: '',
  mediaAddress: '',
  participants,
  cpu: 0,
  state,
  at: 0,
});

test('chooseHome: least loaded serving node in the allowed regions; REGION_UNAVAILABLE when there is none', () => {
  const nodes = [node('fra', 'de-fra', 5), node('vie', 'at-vie', 2), node('zrh', 'ch-zrh', 0), node('ber', 'de-ber', 1, 'draining')];
  assert.is(chooseHome(nodes, ['DE', 'AT']).id, 'vie');
  assert.is(chooseHome(nodes, ['DE']).id, 'fra', 'a draining node is never chosen');
  try {
    chooseHome(nodes, ['it-mil']);
    assert.unreachable('no node in the region');
  } catch (error) {
    assert.instance(error, C4vError);
    assert.is((error as C4vError).code, 'REGION_UNAVAILABLE');
  }
});

test('twenty nodes claim one meeting at once: exactly one home, and every claimer reads the same lease', async () => {
  const rs = Array.from({ length: 20 }, () => connect());
  const results = await Promise.all(rs.map((r, i) => claimHome(r, 'm1', `node-${i}`, ['DE'], 5000)));
  assert.is(results.filter((x) => x.won).length, 1);
  const holders = new Set(results.map((x) => `${x.lease.nodeId}|${x.lease.token}`));
  assert.is(holders.size, 1);
  const home = await readHome(rs[0]!, 'm1');
  assert.equal(home, results.find((x) => x.won)!.lease);
  assert.equal(home!.allowedRegions, ['DE']);
});

test('fencing: only the holder renews and writes policy; a takeover gets a higher token and fences the old home off', async () => {
  const r = connect();
  const { lease } = await claimHome(r, 'm2', 'fra', ['DE', 'AT'], 5000);
  assert.ok(await renewHome(r, lease, 5000));
  assert.not.ok(await renewHome(r, { ...lease, nodeId: 'vie' }, 5000), 'another node cannot renew it');
  assert.ok(await writePolicy(r, lease, { locked: true }));
  // A takeover naming a holder that is not the current one changes nothing.
  const wrong = await takeOverHome(r, { ...lease, token: lease.token + 7 }, 'vie', 5000);
  assert.not.ok(wrong.won);
  assert.is(wrong.lease.nodeId, 'fra');
  const taken = await takeOverHome(r, lease, 'vie', 5000);
  assert.ok(taken.won);
  assert.is(taken.lease.nodeId, 'vie');
  assert.ok(taken.lease.token > lease.token);
  // The old home is fenced off: it can neither renew nor overwrite the new home's state.
  assert.not.ok(await renewHome(r, lease, 5000));
  assert.not.ok(await writePolicy(r, lease, { locked: false }));
  assert.equal(await readPolicy(r, 'm2'), { locked: true });
  // Meeting end: only the holder purges, and then nothing of the meeting is left.
  assert.not.ok(await purgeMeeting(r, lease));
  assert.ok(await purgeMeeting(r, taken.lease));
  assert.equal((await r.keys('c4v:meeting:m2*')).sort(), []);
});

test('every meeting key carries a TTL (the backstop when no purge comes)', async () => {
  const r = connect();
  const { lease } = await claimHome(r, 'm3', 'fra', ['DE'], 5000);
  await writePolicy(r, lease, { locked: false });
  for (const key of await r.keys('c4v:meeting:m3*')) assert.ok((await r.pttl(key)) > 0, `${key} has a TTL`);
});

test('Redis AUTH is enforced: a client without the password is refused', async () => {
  const r = new Redis(redis.url.replace(/\/\/[^@]*@/, '//'), { maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.get('x');
    assert.unreachable('no AUTH');
  } catch (error) {
    assert.match(String(error), /NOAUTH|Authentication/i);
  } finally {
    r.disconnect();
  }
});

test('bus: coded errors cross with their class, and an unanswered request fails with CLUSTER_TIMEOUT', async () => {
  const a = new Bus({ nodeId: 'a', redis: connect(), logger: silentLogger(), timeoutMs: 300 });
  const b = new Bus({ nodeId: 'b', redis: connect(), logger: silentLogger(), timeoutMs: 300 });
  try {
    await Promise.all([a.start(), b.start()]);
    b.handle('echo', (x: unknown) => x);
    b.handle('refuse', () => {
      throw new PolicyError('MEETING_LOCKED', 'the meeting is locked');
    });
    assert.equal(await a.request('b', 'echo', { n: 1 }), { n: 1 });
    try {
      await a.request('b', 'refuse', {});
      assert.unreachable('refused');
    } catch (error) {
      assert.instance(error, PolicyError);
      assert.is((error as PolicyError).code, 'MEETING_LOCKED');
    }
    try {
      await a.request('nobody', 'echo', {});
      assert.unreachable('nobody answers');
    } catch (error) {
      assert.is((error as C4vError).code, 'CLUSTER_TIMEOUT');
    }
  } finally {
    a.close();
    b.close();
  }
});

test.run();
