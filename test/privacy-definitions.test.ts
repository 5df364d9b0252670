// The operator API's definition store (issue 15) under the data-protection rules (issue 16): it is
// a purge target of the control-plane adapter, so the adapter's timer and clock decide when, and
// the outbox's HMAC pseudonym how. Through the real demo server and API, on real SQLite files:
// past retention the API audit record keeps only the pseudonym, the definitions lose their
// personal fields, and the privacy report shows what the store held and what was purged.
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../gateway/api/schemas.js';
import { ApiClient, ApiError } from '../gateway/api/client.js';
import { loadConfig } from '../gateway/config.js';
import { startDemoServer } from '../gateway/serve.js';
import { C4vError, createControlPlaneAdapter, FileSink, privacyReport, type ControlPlaneAdapter, type PrivacyReport } from '../lib/index.js';
import { openDefinitionStore, PERSONAL_DEFINITION_FIELDS } from '../lib/store/DefinitionStore.js';
import { adminClient, startServer } from './helpers/api.js';
import { startCore, tempDir } from './helpers/controlPlane.js';
import { memoryLogger, silentLogger, within } from './helpers/util.js';

const DAY = 86_400_000;
const CLI = fileURLToPath(new URL('../bin/c4v-media.js', import.meta.url));
const execFileP = promisify(execFile);

/** The privacy report as `c4v-media privacy report --json` prints it. */
async function cliReport(args: string[]): Promise<PrivacyReport> {
  const { stdout } = await execFileP(process.execPath, [CLI, 'privacy', 'report', '--json', ...args], { env: { ...process.env, C4V_CONFIG: '' } });
  return JSON.parse(stdout) as PrivacyReport;
}
const MEETING = 'mandant-2031';
const PERSONAL = {
  title: 'Scheidung Familie Brandt',
  hostIdentity: 'ra.weber@kanzlei.example',
  hostName: 'Rechtsanwältin Weber',
  hostEmail: 'weber@kanzlei.example',
  hostProfilePictureUrl: 'https://kanzlei.example/team/weber.png',
};

type Row = Record<string, unknown>;
function rows(path: string, sql: string): Row[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare(sql).all() as Row[];
  } finally {
    db.close();
  }
}

/** Resolves with the counts of the adapter's next purge of the definition store. */
function definitionsPurged(adapter: ControlPlaneAdapter): Promise<Record<string, number>> {
  return within(
    new Promise((resolve) => {
      const on = (name: string, counts: Record<string, number>): void => {
        if (name !== 'definitions') return;
        adapter.off('targetpurged', on);
        resolve(counts);
      };
      adapter.on('targetpurged', on);
    }),
    15_000,
    'the purge of the definition store',
  );
}

test('past retention the adapter timer pseudonymises api_audit and deletes the personal fields of definitions; the report shows both sides', async () => {
  const { dir, cleanup } = tempDir();
  const outbox = join(dir, 'outbox.db');
  let offset = 0;
  // The real demo server (its wiring registers the store as a purge target), with the adapter's
  // clock injected and a short timer: the test moves the clock, the timer does the rest.
  const server = await startServer(dir, {}, { retention: { clock: () => Date.now() + offset, purgeIntervalMs: 25 } });
  try {
    const api = adminClient(server);
    const adapter = server.controlPlane!;
    await api.createAccount({ id: 'kanzlei', defaults: { retentionDays: 1 } });
    await api.createMeeting({ id: MEETING, accountId: 'kanzlei', password: 'Mandat-Geheim-1', ...PERSONAL });
    await api.createMeetingKey(MEETING);
    await api.createToken(MEETING, { role: 'host' });
    await api.endMeeting(MEETING);
    await adapter.drained();

    // Before the boundary: the store holds the meeting in clear, and the report says so.
    assert.ok(rows(outbox, 'SELECT meeting_id FROM api_audit').some((r) => r.meeting_id === MEETING));
    const endedAt = Date.parse((await api.getMeeting(MEETING)).endedAt!);
    const before = adapter.privacyReport({ meetingId: MEETING });
    const held = before.held.filter((h) => h.store === 'definitions');
    assert.equal(held.map((h) => h.what), ['meeting definition (def_meetings)', 'meeting-scoped API keys (api_keys)', 'operator API audit entries (api_audit)']);
    assert.equal(held[0]!.fields, ['id', ...PERSONAL_DEFINITION_FIELDS]);
    assert.equal(held[2]!.fields, ['meeting_id', 'target']);
    assert.is(held[2]!.items, 4, 'create, key, token, end');
    for (const h of held) assert.is(h.dueAt?.getTime(), endedAt + DAY, `${h.what}: due at the end + 1 day`);
    // Names only: none of the values is in the report.
    const text = JSON.stringify(before);
    for (const v of Object.values(PERSONAL)) assert.not.ok(text.includes(v), `${v} is in the report`);

    // The CLI (which opens the store itself: here, the outbox file) lists the same.
    const fromCli = (await cliReport(['--outbox', outbox, '--meeting', MEETING])).held.filter((h) => h.store === 'definitions');
    assert.equal(fromCli, JSON.parse(JSON.stringify(held)));

    // One minute before the boundary a purge run (called directly here: deterministic, and it
    // runs the very code the timer runs) leaves the store alone.
    offset = endedAt + DAY - 60_000 - Date.now();
    assert.equal(adapter.purge().meetingIds, []);
    assert.equal(adapter.store.queuedPurges(), []);
    assert.is(rows(outbox, `SELECT COUNT(*) AS n FROM api_audit WHERE meeting_id = '${MEETING}'`)[0]!.n, 4);

    // One minute after: the timer (nothing else runs a purge now) does it.
    const purged = definitionsPurged(adapter);
    offset = endedAt + DAY + 60_000 - Date.now();
    const counts = await purged;
    assert.ok(counts[MEETING]! >= 6, `rows changed: ${counts[MEETING]}`);

    const key = readFileSync(join(dir, 'pseudonym.key'), 'utf8').trim();
    const pseudonym = 'pmid-' + createHmac('sha256', Buffer.from(key, 'hex')).update(MEETING).digest('hex').slice(0, 32);
    assert.is(pseudonym, adapter.store.pseudonym(MEETING), 'the outbox pseudonym');
    const audit = rows(outbox, 'SELECT meeting_id, target FROM api_audit WHERE meeting_id IS NOT NULL');
    assert.is(audit.length, 4);
    assert.ok(audit.every((r) => r.meeting_id === pseudonym && r.target === null), 'api_audit: the pseudonym, no targets');
    const defs = rows(outbox, 'SELECT id, definition, purged_at FROM def_meetings');
    assert.is(defs.length, 1);
    assert.is(defs[0]!.id, pseudonym);
    assert.ok(Number(defs[0]!.purged_at) >= endedAt + DAY, 'purged_at on the adapter\'s clock');
    const kept = JSON.parse(String(defs[0]!.definition)) as Record<string, unknown>;
    for (const f of PERSONAL_DEFINITION_FIELDS) assert.is(kept[f], undefined, `${f} deleted`);
    assert.is(kept.accountId, 'kanzlei', 'non-personal metadata stays');
    assert.equal(rows(outbox, 'SELECT * FROM api_keys'), [], 'the scoped key is gone');
    // Nothing of it is left on disk in clear (database and WAL, secure_delete and checkpoint).
    // (The file sink's output is the operator's without purgeOnRetention: only the outbox file.)
    const disk = ['', '-wal', '-shm']
      .map((suffix) => {
        try {
          return readFileSync(outbox + suffix).toString('latin1');
        } catch {
          return '';
        }
      })
      .join('');
    for (const v of [MEETING, PERSONAL.title, PERSONAL.hostEmail, PERSONAL.hostIdentity, PERSONAL.hostProfilePictureUrl]) {
      assert.not.ok(disk.includes(v), `${v} still on disk`);
    }
    // The API no longer knows the definition.
    try {
      await api.getMeeting(MEETING);
      assert.unreachable('the purged meeting was found');
    } catch (error) {
      assert.instance(error, ApiError);
      assert.is((error as ApiError).code, 'NOT_FOUND');
    }

    // After: nothing held by the store, and the purge record names it, under the pseudonym.
    const after = adapter.privacyReport({ meetingId: MEETING });
    assert.equal(after.held.filter((h) => h.store === 'definitions'), []);
    const step = after.purged.find((p) => p.store === 'definitions');
    assert.ok(step, 'the purge record has the definitions step');
    assert.is(step!.meetingId, pseudonym);
    assert.is(step!.items, counts[MEETING]);
    assert.match(step!.detail, /personal fields of the definition deleted/);
    const cliAfter = await cliReport(['--outbox', outbox, '--meeting', MEETING]);
    assert.equal(cliAfter.held.filter((h) => h.store === 'definitions'), []);
    assert.ok(cliAfter.purged.some((p) => p.store === 'definitions' && p.meetingId === pseudonym));
  } finally {
    await server.close();
    cleanup();
  }
});

test('a store that still holds a meeting the outbox already pseudonymised (a file from before this fix) is purged when the adapter starts', async () => {
  const core = await startCore();
  const { dir, cleanup } = tempDir();
  const outbox = join(dir, 'outbox.db');
  let offset = 0;
  const clock = (): number => Date.now() + offset;
  const store = openDefinitionStore(outbox);
  try {
    core.createAccount({ id: 'alt', defaults: { retentionDays: 1 } });
    // The outbox's purge ran without the store as a target, as before this fix.
    const first = createControlPlaneAdapter({ source: core, outboxPath: outbox, sinks: [new FileSink({ path: join(dir, 'm.jsonl') })], logger: silentLogger(), clock });
    const m = await core.createMeeting({ id: 'alt-1', accountId: 'alt', ...PERSONAL });
    store.putMeeting({ id: 'alt-1', accountId: 'alt', ...PERSONAL }, 1);
    store.addAudit({ at: new Date(), keyId: 'admin', action: 'createMeeting', accountId: 'alt', meetingId: 'alt-1', outcome: 'ok' });
    m.operator('api:admin').end();
    store.meetingEnded('alt-1', m.endedAt!.getTime());
    await first.drained();
    offset = DAY + 60_000;
    assert.equal(first.purge().pseudonymised, ['alt-1']);
    assert.ok(first.store.isPseudonymised('alt-1'));
    const overdue = privacyReport(first.store, { holders: [store] }).held.filter((h) => h.store === 'definitions');
    assert.equal(overdue.map((h) => h.meetingId), ['alt-1', 'alt-1']);
    assert.ok(overdue.every((h) => /overdue/.test(h.due)), 'the report calls it overdue');
    await first.close();

    // The next start, with the store registered, catches up at once.
    const second = createControlPlaneAdapter({
      source: core,
      outboxPath: outbox,
      sinks: [new FileSink({ path: join(dir, 'm.jsonl') })],
      logger: silentLogger(),
      clock,
      purgeTargets: [store],
    });
    try {
      const counts = await definitionsPurged(second);
      assert.ok(counts['alt-1']! >= 2);
      assert.equal(store.heldData(), []);
      const pseudonym = second.store.pseudonym('alt-1');
      assert.ok(rows(outbox, 'SELECT meeting_id FROM api_audit').every((r) => r.meeting_id === pseudonym));
      assert.equal(rows(outbox, 'SELECT id FROM def_meetings').map((r) => r.id), [pseudonym]);
    } finally {
      await second.close();
    }
  } finally {
    store.close();
    core.close();
    cleanup();
  }
});

test('the definition store in a folder of its own: 0700 / 0600, a wider folder warned about, refused in strict mode', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const fresh = join(dir, 'neu', 'definitions.db');
    openDefinitionStore(fresh).close();
    assert.is(statSync(join(dir, 'neu')).mode & 0o777, 0o700);
    assert.is(statSync(fresh).mode & 0o777, 0o600);

    const wide = join(dir, 'offen');
    mkdirSync(wide, { mode: 0o755 });
    chmodSync(wide, 0o755);
    const { logger, lines } = memoryLogger('warn');
    openDefinitionStore(join(wide, 'definitions.db'), { permissions: { logger } }).close();
    assert.ok(lines.some((l) => l.includes('INSECURE_PERMISSIONS')), 'warned');
    assert.is(statSync(wide).mode & 0o777, 0o755, 'the operator\'s folder is not changed behind their back');
    try {
      openDefinitionStore(join(wide, 'definitions.db'), { permissions: { strict: true } });
      assert.unreachable('strict mode accepted a 0755 folder');
    } catch (error) {
      assert.instance(error, C4vError);
      assert.is((error as C4vError).code, 'INSECURE_PERMISSIONS');
    }

    // An existing file open to others: refused in strict mode too (through the demo server's config).
    const file = join(dir, 'privat', 'definitions.db');
    mkdirSync(join(dir, 'privat'), { mode: 0o700 });
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    const config = loadConfig({
      env: { C4V_PORT: '0', C4V_WORKERS: '1', C4V_CONTROL_PLANE_OUTBOX: join(dir, 'outbox.db'), C4V_CONTROL_PLANE_FILE: join(dir, 'm.jsonl'), C4V_API_STORE: file, C4V_STRICT_PERMISSIONS: 'on' },
    });
    try {
      const server = await startDemoServer(config, silentLogger());
      await server.close();
      assert.unreachable('strict mode accepted a 0644 definitions file');
    } catch (error) {
      assert.is((error as C4vError).code, 'INSECURE_PERMISSIONS');
    }
  } finally {
    cleanup();
  }
});

test('with the control plane off the API keeps its definitions in memory only: nothing is written to disk', async () => {
  const { dir, cleanup } = tempDir();
  const storePath = join(dir, 'state', 'definitions.db');
  const config = loadConfig({ env: { C4V_PORT: '0', C4V_WORKERS: '1', C4V_CONTROL_PLANE: 'off', C4V_API_STORE: storePath } });
  const server = await startDemoServer(config, silentLogger());
  try {
    assert.is(server.controlPlane, undefined);
    const api = new ApiClient({ url: server.gateway.httpUrl, keyId: server.apiKey!.id, secret: server.apiKey!.secret });
    await api.createAccount({ id: 'schule' });
    const m = await api.createMeeting({ accountId: 'schule', title: 'Elternabend', hostIdentity: 'leitung@schule.example' });
    assert.ok((await api.getMeeting(m.id)).id === m.id, 'the API works');
    assert.not.ok(existsSync(storePath), 'no definitions file was created');
    assert.not.ok(existsSync(join(dir, 'state')), 'no folder was created');
  } finally {
    await server.close();
    cleanup();
  }
});

test('hostProfilePictureUrl: the API schema and the model accept and refuse exactly the same values (https only)', async () => {
  const core = await startCore();
  try {
    core.createAccount({ id: 'acme' });
    const values = [
      'https://cdn.example/a.png',
      'HTTPS://cdn.example/b.png',
      'http://cdn.example/a.png',
      'javascript:alert(1)',
      'data:image/png;base64,AAAA',
      'https://user:pw@cdn.example/a.png',
      'ftp://cdn.example/a.png',
      'not a url',
      '',
      'https://cdn.example/' + 'a'.repeat(2029),
      'https://cdn.example/' + 'a'.repeat(2028),
    ];
    const verdicts: Array<[string, boolean, boolean]> = [];
    for (const [i, v] of values.entries()) {
      const api = S.MeetingCreate.safeParse({ accountId: 'acme', title: 't', hostIdentity: 'h', hostProfilePictureUrl: v }).success;
      let model = true;
      try {
        (await core.createMeeting({ id: `pic-${i}`, accountId: 'acme', title: 't', hostIdentity: 'h', hostProfilePictureUrl: v })).close();
      } catch (error) {
        assert.instance(error, TypeError);
        model = false;
      }
      verdicts.push([v.slice(0, 40), api, model]);
    }
    for (const [v, api, model] of verdicts) assert.is(api, model, `${v}: API ${api}, model ${model}`);
    assert.equal(verdicts.map(([, a]) => a), [true, true, false, false, false, false, false, false, false, false, true]);
  } finally {
    core.close();
  }
});

test.run();
