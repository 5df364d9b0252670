// Folders and files that hold personal data are 0700 / 0600 (outbox, pseudonym key, file sink); an
// existing folder with wider permissions is warned about at start, or refused in strict mode.
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { C4vError, createControlPlaneAdapter, FileSink, type MediaCore } from '../lib/index.js';
import { startCore, tempDir } from './helpers/controlPlane.js';
import { memoryLogger, silentLogger } from './helpers/util.js';

let core: MediaCore;

test.before(async () => {
  core = await startCore();
  core.createAccount({ id: 'acme' });
});

test.after(() => {
  core.close();
});

const mode = (p: string): number => statSync(p).mode & 0o777;

test('the outbox folder and file, the key and the file sink folder and file are created 0700 / 0600', async () => {
  const { dir, cleanup } = tempDir();
  const state = join(dir, 'state', 'cp');
  const sinkDir = join(dir, 'export', 'metadata');
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath: join(state, 'outbox.sqlite'),
    sinks: [new FileSink({ path: join(sinkDir, 'events.jsonl') })],
    logger: silentLogger(),
  });
  try {
    const delivered = new Promise<void>((resolve) => adapter.once('delivered', () => resolve()));
    adapter.publish({ meetingId: 'm-modes', accountId: 'acme', retentionDays: 1 }, { settingsChanged: { changed: { allowChat: false } } });
    await delivered;
    assert.is(mode(join(dir, 'state')), 0o700, 'a missing parent is created 0700 too');
    assert.is(mode(state), 0o700);
    assert.is(mode(join(state, 'outbox.sqlite')), 0o600);
    assert.is(mode(join(state, 'outbox.sqlite-wal')), 0o600);
    assert.is(mode(join(state, 'pseudonym.key')), 0o600);
    assert.is(mode(join(dir, 'export')), 0o700);
    assert.is(mode(sinkDir), 0o700, "the file sink's folder (0755 before)");
    assert.is(mode(join(sinkDir, 'events.jsonl')), 0o600);
  } finally {
    await adapter.close();
    cleanup();
  }
});

test('an existing folder open to others is warned about at start and used', async () => {
  const { dir, cleanup } = tempDir();
  const open = join(dir, 'shared');
  mkdirSync(open, { mode: 0o755 });
  chmodSync(open, 0o755);
  const { logger, lines } = memoryLogger('info');
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath: join(open, 'outbox.sqlite'),
    sinks: [new FileSink({ path: join(open, 'events.jsonl') })],
    logger,
  });
  try {
    const warnings = lines.map((l) => JSON.parse(l) as { level: number; code?: string; mode?: string }).filter((l) => l.code === 'INSECURE_PERMISSIONS');
    assert.ok(warnings.length >= 1, 'a warning at start');
    assert.ok(warnings.every((w) => w.level === 40 && w.mode === '0755'));
    assert.is(mode(open), 0o755, "the operator's folder is not changed behind their back");
    assert.is(mode(join(open, 'outbox.sqlite')), 0o600, 'new files in it are still 0600');
  } finally {
    await adapter.close();
    cleanup();
  }
});

test('strict mode refuses a folder or file open to others with INSECURE_PERMISSIONS and creates nothing', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const open = join(dir, 'shared');
    mkdirSync(open, { mode: 0o750 });
    chmodSync(open, 0o750);
    try {
      createControlPlaneAdapter({ source: core, outboxPath: join(open, 'outbox.sqlite'), sinks: [new FileSink({ path: join(dir, 'x', 'e.jsonl') })], logger: silentLogger(), strictPermissions: true });
      assert.unreachable('started on a 0750 folder');
    } catch (error) {
      assert.instance(error, C4vError);
      assert.is((error as C4vError).code, 'INSECURE_PERMISSIONS');
      assert.match((error as Error).message, /0750/);
    }
    assert.not.ok(existsSync(join(open, 'outbox.sqlite')), 'no outbox was created');

    // The outbox folder is fine, the file sink's folder is not.
    const good = join(dir, 'good');
    const sinkDir = join(dir, 'export');
    mkdirSync(sinkDir, { mode: 0o777 });
    chmodSync(sinkDir, 0o777);
    try {
      createControlPlaneAdapter({ source: core, outboxPath: join(good, 'outbox.sqlite'), sinks: [new FileSink({ path: join(sinkDir, 'e.jsonl') })], logger: silentLogger(), strictPermissions: true });
      assert.unreachable("started with a 0777 file-sink folder");
    } catch (error) {
      assert.is((error as C4vError).code, 'INSECURE_PERMISSIONS');
    }
    assert.not.ok(existsSync(join(sinkDir, 'e.jsonl')));
  } finally {
    cleanup();
  }
});

test('a pseudonym key open to others is warned about, and refused in strict mode', async () => {
  const { dir, cleanup } = tempDir();
  const options = { source: core, outboxPath: join(dir, 'outbox.sqlite'), sinks: [new FileSink({ path: join(dir, 'e.jsonl') })] };
  try {
    await createControlPlaneAdapter({ ...options, logger: silentLogger() }).close();
    chmodSync(join(dir, 'pseudonym.key'), 0o644);
    const { logger, lines } = memoryLogger('info');
    await createControlPlaneAdapter({ ...options, logger }).close();
    assert.ok(lines.some((l) => l.includes('INSECURE_PERMISSIONS') && l.includes('pseudonym key')));
    try {
      createControlPlaneAdapter({ ...options, logger: silentLogger(), strictPermissions: true });
      assert.unreachable('started with a 0644 key');
    } catch (error) {
      assert.is((error as C4vError).code, 'INSECURE_PERMISSIONS');
      assert.match((error as Error).message, /pseudonym key/);
    }
  } finally {
    cleanup();
  }
});

test.run();
