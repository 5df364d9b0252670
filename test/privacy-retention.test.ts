// Retention covers everything personal: past the boundary the meeting id itself becomes an HMAC
// pseudonym in the meetings, audit and placements tables, and the same purge runs on every other
// store (the file sink's output when opted in, a purge target as the cluster's Redis would use).
// The purge timer does it with a moved clock; a restart after the boundary does it on start.
import { createHmac } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createControlPlaneAdapter, FileSink, HttpSink, isPseudonym, type ControlPlaneAdapter, type MediaCore, type PurgeTarget } from '../lib/index.js';
import { ControlPlaneReceiver } from './helpers/controlPlaneReceiver.js';
import { bytesOnDisk, runMeeting, startCore, tempDir } from './helpers/controlPlane.js';
import { memoryLogger, nextEvent, silentLogger, within } from './helpers/util.js';

const DAY = 86_400_000;

let core: MediaCore;

test.before(async () => {
  core = await startCore();
  core.createAccount({ id: 'short', defaults: { retentionDays: 1 } });
  core.createAccount({ id: 'week', defaults: { retentionDays: 7 } });
  core.createAccount({ id: 'zero', defaults: { retentionDays: 0 } });
});

test.after(() => {
  core.close();
});

/** A purge target standing in for another store of the process: records, and can be made to fail. */
class RecordingTarget implements PurgeTarget {
  readonly name = 'redis';
  readonly purged: string[][] = [];
  failNext = 0;
  async purgeMeetings(ids: readonly string[]): Promise<Record<string, number>> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('store unreachable');
    }
    this.purged.push([...ids]);
    return Object.fromEntries(ids.map((id) => [id, 3]));
  }
}

/** Resolves when every named target reported a purge (each at least once). */
function targetsPurged(adapter: ControlPlaneAdapter, names: string[]): Promise<void> {
  const left = new Set(names);
  return within(
    new Promise<void>((resolve) => {
      const on = (name: string): void => {
        left.delete(name);
        if (left.size === 0) {
          adapter.off('targetpurged', on);
          resolve();
        }
      };
      adapter.on('targetpurged', on);
    }),
    15_000,
    `purges at ${names.join(', ')}`,
  );
}

test('past retention the timer replaces the meeting id by its HMAC pseudonym everywhere and purges the file sink and other stores; a restart after the boundary does it on start', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  let offset = 0;
  const clock = (): number => Date.now() + offset;
  const redis = new RecordingTarget();
  const jsonl = join(dir, 'events.jsonl');
  const open = (interval = 40): ControlPlaneAdapter =>
    createControlPlaneAdapter({
      source: core,
      outboxPath: join(dir, 'outbox.sqlite'),
      sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret }), new FileSink({ path: jsonl, purgeOnRetention: true })],
      purgeTargets: [redis],
      logger: silentLogger(),
      retry: { initialDelayMs: 20, maxDelayMs: 200 },
      clock,
      purgeIntervalMs: interval,
    });
  let adapter = open();
  try {
    await runMeeting(core, 'm-day', { accountId: 'short' });
    await runMeeting(core, 'm-week', { accountId: 'week' });
    await adapter.drained();
    const before = bytesOnDisk(dir);
    assert.ok(before.includes('m-day') && before.includes('m-week'), 'meeting ids are held in clear within retention');
    const lines = (): string[] => readFileSync(jsonl, 'utf8').split('\n').filter(Boolean);
    assert.ok(lines().some((l) => l.includes('"meetingId":"m-day"')));

    // The clock moves past m-day's boundary: the timer (not a call) purges.
    const both = targetsPurged(adapter, ['file', 'redis']);
    const purged = nextEvent<[{ meetingIds: string[]; pseudonymised?: string[] }]>(adapter, 'purged');
    offset = DAY + 1000;
    const [result] = await purged;
    assert.equal(result.meetingIds, ['m-day']);
    assert.equal(result.pseudonymised, ['m-day']);
    await both;

    // The pseudonym is HMAC-SHA256 with the installation's key (0600, next to the outbox).
    const keyFile = join(dir, 'pseudonym.key');
    assert.is(statSync(keyFile).mode & 0o777, 0o600);
    const key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex');
    const pseudonym = 'pmid-' + createHmac('sha256', key).update('m-day').digest('hex').slice(0, 32);
    assert.is(adapter.store.pseudonym('m-day'), pseudonym);
    assert.ok(isPseudonym(pseudonym));

    // Gone in clear from every file of the folder (outbox, WAL, file sink output); the rows stay
    // countable and correlated under the pseudonym.
    const after = bytesOnDisk(dir);
    assert.not.ok(after.includes('m-day'), 'the meeting id is still on disk in clear');
    assert.ok(after.includes(pseudonym));
    assert.ok(adapter.meetingIds().includes(pseudonym) && !adapter.meetingIds().includes('m-day'));
    assert.is(adapter.meetingIds().length, 2, 'still two meetings to count');
    const record = adapter.auditRecord('m-day')!;
    assert.ok(record.actions.length > 0 && record.actions.every((a) => a.purged), 'actions and times kept, identities gone');
    assert.is(record.placements[0]!.region, 'de-fra', 'where the media ran is kept');
    assert.ok(adapter.store.placements(pseudonym).length === 1 && adapter.store.audit(pseudonym).length === record.actions.length);
    // The file sink's lines of m-day are gone, m-week's are there; the other store got m-day.
    assert.not.ok(lines().some((l) => l.includes('m-day')));
    assert.ok(lines().some((l) => l.includes('"meetingId":"m-week"')));
    assert.is(statSync(jsonl).mode & 0o777, 0o600, 'the rewritten file is 0600');
    assert.equal(redis.purged, [['m-day']]);
    assert.equal(adapter.store.queuedPurges(), [], 'no clear id left in the purge queue');
    const steps = adapter.store.purges({ meetingId: 'm-day' }).map((p) => [p.meetingId, p.store]);
    assert.equal(steps.sort(), [
      [pseudonym, 'audit'],
      [pseudonym, 'file'],
      [pseudonym, 'meeting-id'],
      [pseudonym, 'outbox'],
      [pseudonym, 'redis'],
    ]);

    // m-week is untouched until a restart a week later: the purge on start pseudonymises it at
    // once (no timer involved: a one-hour interval).
    assert.ok(bytesOnDisk(dir).includes('m-week'));
    await adapter.close();
    offset += 7 * DAY;
    adapter = open(3_600_000);
    assert.ok(adapter.meetingIds().every(isPseudonym), 'pseudonymised on start');
    assert.is(adapter.store.storedIdOf('m-week'), adapter.store.pseudonym('m-week'));
    // The other stores' purges were queued by the start and run right after it (their
    // confirmations come after an await, so both are still queued here).
    const restarted = targetsPurged(adapter, ['file', 'redis']);
    assert.equal(adapter.store.queuedPurges().map((q) => q.target).sort(), ['file', 'redis']);
    await restarted;
    assert.not.ok(bytesOnDisk(dir).includes('m-week'));
    assert.equal(redis.purged, [['m-day'], ['m-week']]);
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('a store that fails its purge is retried by the next run; meanwhile only the purge queue holds the clear id', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  let offset = 0;
  const redis = new RecordingTarget();
  redis.failNext = 1;
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath: join(dir, 'outbox.sqlite'),
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret })],
    purgeTargets: [redis],
    logger: silentLogger(),
    clock: () => Date.now() + offset,
    purgeIntervalMs: 40,
  });
  try {
    await runMeeting(core, 'm-retry', { accountId: 'short' });
    await adapter.drained();
    const failed = nextEvent<[string, Error]>(adapter, 'targetpurgefailed');
    offset = DAY + 1000;
    const [name, error] = await failed;
    assert.is(name, 'redis');
    assert.match(error.message, /unreachable/);
    const queued = adapter.store.queuedPurges();
    assert.equal(queued.map((q) => [q.meetingId, q.target]), [['m-retry', 'redis']]);
    assert.is(adapter.privacyReport({ meetingId: 'm-retry' }).held.filter((h) => h.store === 'redis').length, 1, 'the report shows it as still held');
    // The next timer run retries and succeeds.
    await targetsPurged(adapter, ['redis']);
    assert.equal(redis.purged, [['m-retry']]);
    assert.equal(adapter.store.queuedPurges(), []);
    assert.not.ok(bytesOnDisk(dir).includes('m-retry'));
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('queued purges of a store that is no longer configured are dropped at start with a warning', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  let offset = 0;
  const redis = new RecordingTarget();
  redis.failNext = 1;
  const options = {
    source: core,
    outboxPath: join(dir, 'outbox.sqlite'),
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret })],
    clock: () => Date.now() + offset,
  };
  let adapter = createControlPlaneAdapter({ ...options, purgeTargets: [redis], logger: silentLogger() });
  try {
    await runMeeting(core, 'm-dropped', { accountId: 'short' });
    await adapter.drained();
    offset = DAY + 1000;
    const failed = nextEvent(adapter, 'targetpurgefailed');
    adapter.purge();
    await failed;
    assert.is(adapter.store.queuedPurges().length, 1);
    await adapter.close();
    const { logger, lines } = memoryLogger('info');
    adapter = createControlPlaneAdapter({ ...options, logger });
    assert.equal(adapter.store.queuedPurges(), [], 'no clear id waits for a store that will never come');
    assert.ok(lines.some((l) => l.includes('dropped queued purges') && l.includes('redis')));
    assert.not.ok(bytesOnDisk(dir).includes('m-dropped'));
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test('a meeting id that comes back after its purge is a new instance: its own sequence, never an (instance, sequence) twice', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath: join(dir, 'outbox.sqlite'),
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret })],
    logger: silentLogger(),
  });
  try {
    // Zero retention: purged (and pseudonymised) as soon as MeetingEnded is delivered.
    let purged = nextEvent(adapter, 'purged');
    await runMeeting(core, 'm-again', { accountId: 'zero' });
    await purged;
    assert.is(core.getMeeting('m-again'), undefined, 'released at retention');
    const first = receiver.ofMeeting('m-again');
    purged = nextEvent(adapter, 'purged');
    await runMeeting(core, 'm-again', { accountId: 'zero' });
    await purged;
    const all = receiver.ofMeeting('m-again');
    assert.ok(all.length > first.length);
    // Issue 10: the second use of the id is a new meeting instance with its own sequence 1, 2, 3 ...
    const instances = [...new Set(all.map((e) => e.meetingInstanceId))];
    assert.is(instances.length, 2, 'two instances of the meeting id');
    assert.ok(instances.every((i) => i !== ''));
    for (const instance of instances) {
      const seqs = all.filter((e) => e.meetingInstanceId === instance).map((e) => e.sequence);
      assert.equal(seqs, seqs.map((_, i) => i + 1), 'one sequence per instance, never a number twice');
    }
    assert.is(adapter.meetingIds().length, 1, 'one meeting row, under its pseudonym');
    assert.ok(isPseudonym(adapter.meetingIds()[0]!));
  } finally {
    await adapter.close();
    await receiver.close();
    cleanup();
  }
});

test.run();
