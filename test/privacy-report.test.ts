// The privacy report against a meeting whose history is known (runMeeting: who joined, the host
// actions, a poll, a settings change, the end): what left for which sink with field names only,
// where the media ran, what is held until when, and, after the retention boundary, what was
// purged. The same report from the CLI, as JSON and as tables.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createControlPlaneAdapter, FileSink, HttpSink, type PrivacyReport } from '../lib/index.js';
import { ControlPlaneReceiver } from './helpers/controlPlaneReceiver.js';
import { runMeeting, startCore, tempDir } from './helpers/controlPlane.js';
import { silentLogger } from './helpers/util.js';

const DAY = 86_400_000;
const CLI = fileURLToPath(new URL('../bin/c4v-media.js', import.meta.url));
const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, C4V_CONFIG: '' } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

// JSON as the CLI prints it (Dates become ISO strings), to compare with the library's report.
const asJson = (r: PrivacyReport): unknown => {
  const { generatedAt: _, ...rest } = JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
  return rest;
};

test('the privacy report of a meeting with a known history, before and after its retention boundary, from the library and the CLI', async () => {
  const core = await startCore();
  core.createAccount({ id: 'acme', defaults: { retentionDays: 7 } });
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const outboxPath = join(dir, 'outbox.sqlite');
  let offset = 0;
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath,
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret }), new FileSink({ path: join(dir, 'events.jsonl') })],
    logger: silentLogger(),
    clock: () => Date.now() + offset,
    retry: { initialDelayMs: 20, maxDelayMs: 200 },
  });
  let closed = false;
  try {
    const { meeting } = await runMeeting(core, 'm-dpo');
    await runMeeting(core, 'm-other');
    await adapter.drained();
    const endedAt = meeting.endedAt!.getTime();
    const report = adapter.privacyReport({ meetingId: 'm-dpo' });

    // What left: per sink, exactly the events the control plane got, in order, with field names.
    const kinds = receiver.ofMeeting('m-dpo').map((e) => e.kind);
    assert.equal(kinds, ['meetingUpdated', 'meetingStarted', 'participantJoined', 'participantJoined', 'participantJoined', 'pollResults', 'settingsChanged', 'participantLeft', 'participantLeft', 'participantLeft', 'meetingEnded']);
    for (const sink of ['http', 'file']) {
      const of = report.disclosures.filter((d) => d.sink === sink);
      assert.equal(of.map((d) => d.kind), kinds, `${sink}: the events that left`);
      assert.equal(of.map((d) => d.sequence), kinds.map((_, i) => i + 1));
      for (const d of of) assert.ok(d.deliveredAt! >= d.createdAt && d.meetingId === 'm-dpo');
    }
    const joined = report.disclosures.filter((d) => d.sink === 'http' && d.kind === 'participantJoined');
    // Host and Bob are registered (e-mail sent); Carol is a guest (no e-mail field at all).
    assert.equal(joined.map((d) => d.fields.includes('participantJoined.email')), [true, true, false]);
    assert.ok(joined.every((d) => d.fields.includes('participantJoined.displayName') && d.fields.includes('meetingId')));
    assert.ok(report.disclosures.find((d) => d.kind === 'pollResults')!.fields.includes('pollResults.answers.displayName'));
    assert.equal(report.disclosures.find((d) => d.kind === 'settingsChanged')!.fields.filter((f) => f.startsWith('settingsChanged')), ['settingsChanged.changed.muteOnEntry']);
    assert.equal(report.pending, []);
    // Field names only: no value of the meeting is anywhere in the report.
    const text = JSON.stringify(report);
    for (const v of ['Bob Bauer', 'Carol Christ', 'Dr. Anna Gastgeberin', 'anna.gastgeberin@klinik.example', 'bob.bauer@kanzlei.example', 'Sprechstunde', 'Nächster Termin', 'host@m-dpo', 'Europe/Berlin']) {
      assert.not.ok(text.includes(v), `${v} is in the report`);
    }

    // Where the media ran: the core's one worker in de-fra, until the end.
    assert.equal(report.media.map((m) => [m.meetingId, m.region, m.workerId, m.endReason]), [['m-dpo', 'de-fra', core.pool.workers[0]!.id, 'meeting-ended']]);

    // What is held, and until when: end + 7 days for each item.
    const due = new Date(endedAt + 7 * DAY).getTime();
    const held = Object.fromEntries(report.held.map((h) => [h.store, h]));
    assert.equal(Object.keys(held).sort(), ['audit', 'meeting-id', 'outbox']);
    assert.is(held.outbox!.items, kinds.length);
    assert.is(held.audit!.items, meeting.auditLog.length, 'every audit entry names its actor');
    for (const h of report.held) assert.is(h.dueAt!.getTime(), due, `${h.store} due at end + retention`);
    assert.equal(report.purged, []);
    assert.equal(report.meeting, { meetingId: 'm-dpo', storedAs: 'm-dpo', pseudonymised: false });
    // Bad arguments are refused with a TypeError naming them.
    assert.throws(() => adapter.privacyReport({ since: new Date('not a date') }), (e: Error) => e instanceof TypeError && /since/.test(e.message));
    assert.throws(() => adapter.privacyReport({ meetingId: '' }), (e: Error) => e instanceof TypeError && /meetingId/.test(e.message));
    // Without a filter the other meeting is there too.
    assert.ok(adapter.privacyReport().held.some((h) => h.meetingId === 'm-other'));

    // Past the boundary: purged, and the report says what, where and when, under the pseudonym.
    offset = 7 * DAY + 1000;
    const purgedAt = Date.now() + offset;
    assert.equal(adapter.purge().meetingIds.sort(), ['m-dpo', 'm-other']);
    const after = adapter.privacyReport({ meetingId: 'm-dpo' });
    const pseudonym = adapter.store.pseudonym('m-dpo');
    assert.equal(after.meeting, { meetingId: 'm-dpo', storedAs: pseudonym, pseudonymised: true });
    assert.equal(after.held, [], 'nothing personal held');
    const steps = Object.fromEntries(after.purged.map((p) => [p.store, p]));
    assert.equal(Object.keys(steps).sort(), ['audit', 'meeting-id', 'outbox']);
    assert.is(steps.outbox!.items, kinds.length);
    assert.is(steps.audit!.items, meeting.auditLog.length);
    for (const p of after.purged) {
      assert.is(p.meetingId, pseudonym);
      assert.ok(Math.abs(p.at.getTime() - purgedAt) < 5_000, 'purged when the purge ran');
    }
    assert.is(after.disclosures.length, report.disclosures.length, 'the disclosure record stays');
    assert.ok(after.disclosures.every((d) => d.meetingId === pseudonym), 'under the pseudonym');
    assert.equal(after.media.map((m) => m.meetingId), [pseudonym]);
    // --since: only what happened from then on.
    const later = adapter.privacyReport({ meetingId: 'm-dpo', since: new Date(purgedAt - 1000) });
    assert.equal(later.disclosures, []);
    assert.is(later.purged.length, after.purged.length);

    // The CLI reads the same outbox (the library report is the reference).
    await adapter.close();
    closed = true;
    const json = await cli(['privacy', 'report', '--outbox', outboxPath, '--meeting', 'm-dpo', '--json']);
    assert.is(json.code, 0, json.stderr);
    const fromCli = JSON.parse(json.stdout) as Record<string, unknown>;
    delete fromCli.generatedAt;
    const expected = asJson(after) as Record<string, unknown>;
    assert.equal(fromCli, expected);
    const tables = await cli(['privacy', 'report', '--outbox', outboxPath]);
    assert.is(tables.code, 0, tables.stderr);
    for (const heading of ['What left for which sink', 'Where the media ran', 'Personal data still held', 'Purged']) assert.ok(tables.stdout.includes(heading), heading);
    assert.ok(tables.stdout.includes('participantJoined.email') && tables.stdout.includes(pseudonym) && tables.stdout.includes('de-fra'));
    assert.not.ok(tables.stdout.includes('Bob Bauer'));
    // Bad input: a clear, coded error or a usage error; nothing is created.
    const bad = await cli(['privacy', 'report', '--outbox', outboxPath, '--since', 'yesterday']);
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /--since: expected an ISO 8601 date/);
    const missing = await cli(['privacy', 'report', '--outbox', join(dir, 'nope.sqlite')]);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /NOT_FOUND: no control-plane outbox/);
  } finally {
    if (!closed) await adapter.close();
    core.close();
    await receiver.close();
    cleanup();
  }
});

test('events that could not leave yet are listed as waiting, and the meeting id is held until they are delivered', async () => {
  const core = await startCore();
  const receiver = await ControlPlaneReceiver.start();
  receiver.mode = 'down';
  const { dir, cleanup } = tempDir();
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath: join(dir, 'outbox.sqlite'),
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret })],
    logger: silentLogger(),
    retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
  });
  try {
    const failed = new Promise<void>((resolve) => adapter.once('deliveryfailed', () => resolve()));
    adapter.publish({ meetingId: 'm-wait', accountId: 'acme', retentionDays: 0 }, { participantLeft: { displayName: 'Bob Bauer', participantCount: 1 } });
    await failed;
    const report = adapter.privacyReport({ meetingId: 'm-wait' });
    assert.equal(report.disclosures, [], 'nothing left');
    assert.is(report.pending.length, 1);
    const p = report.pending[0]!;
    assert.equal([p.meetingId, p.sink, p.kind, p.sequence, p.attempts], ['m-wait', 'http', 'participantLeft', 1, 1]);
    assert.ok(p.fields.includes('participantLeft.displayName') && p.fields.includes('participantLeft.participantCount'));
    assert.not.ok(JSON.stringify(report).includes('Bob Bauer'), 'field names, never values');
    const outbox = report.held.find((h) => h.store === 'outbox')!;
    assert.match(outbox.due, /1 undelivered: after delivery/);
  } finally {
    await adapter.close();
    core.close();
    await receiver.close();
    cleanup();
  }
});

test.run();
