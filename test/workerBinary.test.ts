import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { C4vError, WorkerPool, cachedWorkerPath, resolveWorkerBinary } from '../lib/index.js';
import { silentLogger } from './helpers/util.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const installSh = join(root, 'native', 'worker', 'install.sh');
const scratch = mkdtempSync(join(tmpdir(), 'c4v-bin-'));

test('the library and install.sh agree on where the cached worker lives', () => {
  for (const env of [{ C4V_CACHE_DIR: scratch }, { XDG_CACHE_HOME: scratch }]) {
    const fromShell = execFileSync('bash', [installSh, '--path'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    })
      .toString()
      .trim();
    assert.is(cachedWorkerPath(env), fromShell);
  }
});

test('without MEDIASOUP_WORKER_BIN the cached offline build is used, and it exists after setup', () => {
  const env = { ...process.env };
  delete env.MEDIASOUP_WORKER_BIN;
  const r = resolveWorkerBinary(env);
  assert.is(r.source, 'cache');
  assert.is(r.path, cachedWorkerPath(env));
});

test('MEDIASOUP_WORKER_BIN overrides the cache', () => {
  const fake = join(scratch, 'my-worker');
  writeFileSync(fake, '#!/bin/sh\n');
  chmodSync(fake, 0o755);
  const r = resolveWorkerBinary({ MEDIASOUP_WORKER_BIN: fake });
  assert.equal(r, { path: fake, source: 'env' });
});

test('a missing binary is WORKER_BINARY_MISSING naming the path and the fix', () => {
  const missing = join(scratch, 'nope', 'mediasoup-worker');
  try {
    resolveWorkerBinary({ MEDIASOUP_WORKER_BIN: missing });
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.instance(error, C4vError);
    const e = error as C4vError;
    assert.is(e.code, 'WORKER_BINARY_MISSING');
    assert.ok(e.message.includes(missing), e.message);
    assert.ok(e.message.includes('npx c4v-media worker install'), e.message);
  }
});

test('a non-executable binary is WORKER_BINARY_NOT_EXECUTABLE naming the path and the fix', () => {
  const file = join(scratch, 'not-exec');
  writeFileSync(file, 'x');
  chmodSync(file, 0o644);
  try {
    resolveWorkerBinary({ MEDIASOUP_WORKER_BIN: file });
    assert.unreachable('should have thrown');
  } catch (error) {
    const e = error as C4vError;
    assert.is(e.code, 'WORKER_BINARY_NOT_EXECUTABLE');
    assert.ok(e.message.includes(file), e.message);
    assert.ok(e.message.includes('chmod +x'), e.message);
  }
});

test('WorkerPool.create() refuses a missing binary with the coded error before spawning', async () => {
  const saved = process.env.MEDIASOUP_WORKER_BIN;
  process.env.MEDIASOUP_WORKER_BIN = join(scratch, 'missing-worker');
  try {
    await WorkerPool.create({ workers: 1, logger: silentLogger() });
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.is((error as C4vError).code, 'WORKER_BINARY_MISSING');
  } finally {
    if (saved === undefined) delete process.env.MEDIASOUP_WORKER_BIN;
    else process.env.MEDIASOUP_WORKER_BIN = saved;
  }
});

test.run();
