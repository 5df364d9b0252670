import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { C4vError, WorkerPool, type PoolWorker } from '../lib/index.js';
import { nextEvent, silentLogger } from './helpers/util.js';

test('a pool starts N workers from the built binary and reports their resource usage', async () => {
  const pool = await WorkerPool.create({ workers: 2, logger: silentLogger() });
  try {
    assert.is(pool.workers.length, 2);
    const pids = new Set(pool.workers.map((w) => w.pid));
    assert.is(pids.size, 2);
    const usage = await pool.resourceUsage();
    assert.is(usage.length, 2);
    for (const u of usage) {
      assert.ok(pids.has(u.pid));
      assert.is(u.region, 'de-fra');
      assert.type(u.usage.ru_maxrss, 'number');
      assert.ok(u.usage.ru_maxrss > 0, 'a running worker uses some memory');
    }
  } finally {
    pool.close();
  }
  assert.ok(pool.closed);
  assert.is(pool.workers.length, 0);
});

test('a killed worker is noticed (workerdied), the process survives, and a replacement starts', async () => {
  const pool = await WorkerPool.create({ workers: 2, logger: silentLogger() });
  try {
    const victim = pool.workers[0]!;
    const died = nextEvent<[PoolWorker, Error]>(pool, 'workerdied');
    const added = nextEvent<[PoolWorker]>(pool, 'workeradded');
    process.kill(victim.pid, 'SIGKILL');
    const [dead, error] = await died;
    assert.is(dead.pid, victim.pid);
    assert.ok(dead.closed);
    assert.instance(error, Error);
    const [fresh] = await added;
    assert.is.not(fresh.pid, victim.pid);
    assert.is(fresh.region, victim.region);
    assert.is(pool.workers.length, 2);
    assert.not.ok(pool.workers.some((w) => w.pid === victim.pid));
    // The replacement really works.
    const router = await pool.createRouter(fresh, { mediaCodecs: [] });
    assert.not.ok(router.closed);
  } finally {
    pool.close();
  }
});

test('pick() places by region and load, and refuses with REGION_UNAVAILABLE instead of falling back', async () => {
  const pool = await WorkerPool.create({ regions: ['de-fra', 'ch-zrh'], logger: silentLogger(), respawn: false });
  try {
    assert.is(pool.pick(['CH']).region, 'ch-zrh');
    assert.is(pool.pick(['de-fra']).region, 'de-fra');
    const de = pool.pick(['DE']);
    await pool.createRouter(de, { mediaCodecs: [] });
    assert.is(de.load, 1);
    // Both allowed: the less-loaded one wins.
    assert.is(pool.pick(['DE', 'CH']).region, 'ch-zrh');
    try {
      pool.pick(['AT']);
      assert.unreachable('should have thrown');
    } catch (error) {
      assert.is((error as C4vError).code, 'REGION_UNAVAILABLE');
    }
  } finally {
    pool.close();
  }
});

test('bad regions are a TypeError naming the value', async () => {
  try {
    await WorkerPool.create({ regions: ['Germany'], logger: silentLogger() });
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.instance(error, TypeError);
    assert.ok((error as Error).message.includes('Germany'));
  }
});

test.run();
