// Every item of the allow-list customers were given has a source in the model: the README's
// field-by-field table is read, and for a meeting that has every item, each listed field arrives
// at a real control plane (a local HTTP server decoding with its own reflection of the .proto).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createControlPlaneAdapter, HttpSink } from '../lib/index.js';
import { ControlPlaneReceiver, type ReceivedEvent } from './helpers/controlPlaneReceiver.js';
import { PASSWORD, startCore, tempDir } from './helpers/controlPlane.js';
import { silentLogger } from './helpers/util.js';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

/** The README's "Field by field" table: seed's item -> dotted paths (`{a, b}` expanded). */
function seedList(): Array<{ item: string; paths: string[] }> {
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf('### Field by field');
  assert.ok(start >= 0, 'the README has the field-by-field table');
  const section = text.slice(start, text.indexOf('\n### ', start + 1));
  const rows = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| the seed') && !l.startsWith('| ---'));
  return rows.map((row) => {
    const [, item, where] = row.split('|').map((c) => c.trim());
    const paths: string[] = [];
    for (const [, code] of where!.matchAll(/`([^`]+)`/g)) {
      // Only field paths: message names in the text (`ControlPlaneEvent`, `MeetingInit...`) start upper-case.
      if (!/^[a-z]/.test(code!)) continue;
      const brace = /^(.*)\.\{([^}]+)\}$/.exec(code!);
      if (brace) for (const f of brace[2]!.split(',')) paths.push(`${brace[1]}.${f.trim()}`);
      else paths.push(code!);
    }
    return { item: item!, paths };
  });
}

/** Dotted paths of the set fields of a received event (as the receiver decoded it). */
function pathsOf(e: ReceivedEvent): Set<string> {
  const out = new Set<string>(['meetingId']);
  const walk = (v: unknown, prefix: string): void => {
    if (Array.isArray(v)) {
      if (v.some((x) => x === null || typeof x !== 'object')) out.add(prefix);
      for (const x of v) if (x !== null && typeof x === 'object') walk(x, prefix);
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) walk(x, `${prefix}.${k}`);
    } else if (v !== '' && v !== undefined) out.add(prefix);
  };
  walk(e.body, e.kind);
  return out;
}

test('every field of the seed list (README table) arrives at the control plane when the meeting has it', async () => {
  const list = seedList();
  assert.ok(list.length >= 20, `the table lists the seed's items (${list.length})`);
  for (const row of list) assert.ok(row.paths.length > 0, `${row.item}: no field named`);

  const core = await startCore();
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath: join(dir, 'outbox.sqlite'),
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret })],
    logger: silentLogger(),
    retry: { initialDelayMs: 20, maxDelayMs: 200 },
  });
  try {
    core.createAccount({ id: 'praxis', defaults: { retentionDays: 7 } });
    const picture = 'https://cdn.praxis.example/hosts/anna.png';
    const meeting = await core.createMeeting({
      id: 'm-fields',
      accountId: 'praxis',
      title: 'Sprechstunde Dr. Anna',
      hostIdentity: 'anna@praxis.example',
      hostName: 'Dr. Anna Gastgeberin',
      hostEmail: 'anna@praxis.example',
      hostProfilePictureUrl: picture,
      password: PASSWORD,
      settings: { waitingRoom: true },
      scheduledStart: new Date('2026-12-01T09:00:00Z'),
      scheduledDurationMinutes: 45,
      recurrence: { type: 'weekly', durationWeeks: 6 },
      hostTimeZone: 'Europe/Berlin',
      dialInNumbers: ['+49 30 5555 0100'],
    });
    const host = await meeting.join({
      identity: 'anna@praxis.example',
      displayName: 'Dr. Anna Gastgeberin',
      authenticated: true,
      asHost: true,
      email: 'anna@praxis.example',
      address: '203.0.113.7',
      e2eeCapable: true,
    });
    const bob = await meeting.join({
      identity: 'bob@kanzlei.example',
      displayName: 'Bob Bauer',
      authenticated: true,
      email: 'bob@kanzlei.example',
      address: '198.51.100.23',
      macAddress: '02:42:ac:11:00:02',
      password: PASSWORD,
      e2eeCapable: true,
    });
    const carol = await meeting.join({ identity: 'carol-guest', displayName: 'Carol Christ', authenticated: false, password: PASSWORD, e2eeCapable: true });
    meeting.admit(host, bob.id);
    meeting.admit(host, carol.id);
    const pollId = meeting.createPoll(host, { question: 'Nächster Termin?', options: ['Montag', 'Dienstag'] });
    bob.answerPoll(pollId, 1);
    carol.answerPoll(pollId, 0);
    meeting.closePoll(host, pollId);
    meeting.updateSettings(host, { muteOnEntry: true });
    meeting.remove(host, carol.id);
    // The model's times are real: the meeting must last a second for its duration to be one
    // (a 0 s duration is 0, which proto3 does not encode). This waits for data to exist, it does
    // not time anything.
    await new Promise((r) => setTimeout(r, 1100));
    meeting.end(host);
    await adapter.drained();

    const got = receiver.ofMeeting('m-fields');
    const present = new Set<string>();
    for (const e of got) for (const p of pathsOf(e)) present.add(p);
    const missing = list.flatMap((row) => row.paths.filter((p) => !present.has(p)).map((p) => `${row.item}: ${p}`));
    assert.equal(missing, [], 'every listed field arrived');
    // And nothing arrived that the table does not list (the table is complete). MeetingStarted
    // carries the same MeetingDescription as MeetingUpdated; a settings change any setting.
    const listed = new Set(list.flatMap((r) => r.paths));
    const unlisted = [...present]
      .map((p) => p.replace(/^meetingStarted\.meeting\./, 'meetingUpdated.meeting.'))
      .filter((p) => !listed.has(p) && !p.startsWith('settingsChanged.changed.'));
    assert.equal(unlisted, [], 'every field that arrived is in the table');

    // The new source in particular: the host's picture, in both descriptions.
    const described = got.filter((e) => e.kind === 'meetingUpdated' || e.kind === 'meetingStarted');
    assert.ok(described.length >= 2);
    for (const e of described) assert.is((e.body.meeting as { host: { profilePictureUrl: string } }).host.profilePictureUrl, picture);
    const joined = got.filter((e) => e.kind === 'participantJoined').map((e) => e.body);
    assert.equal(joined.map((b) => b.macAddress ?? ''), ['', '02:42:ac:11:00:02', '']);
    assert.equal(joined.map((b) => b.email ?? ''), ['anna@praxis.example', 'bob@kanzlei.example', ''], "a guest's e-mail is never sent");
  } finally {
    await adapter.close();
    core.close();
    await receiver.close();
    cleanup();
  }
});

test('createMeeting refuses a profile picture that is not an https URL', async () => {
  const core = await startCore();
  try {
    core.createAccount({ id: 'acme' });
    for (const bad of ['http://x.example/a.png', 'javascript:alert(1)', 'not a url', '', 'https://x.example/' + 'a'.repeat(2100)]) {
      try {
        await core.createMeeting({ accountId: 'acme', title: 't', hostIdentity: 'h', hostProfilePictureUrl: bad });
        assert.unreachable(`accepted ${bad.slice(0, 30)}`);
      } catch (error) {
        assert.instance(error, TypeError);
        assert.match((error as Error).message, /hostProfilePictureUrl/);
      }
    }
    assert.is(core.meetings.length, 0, 'nothing was created');
  } finally {
    core.close();
  }
});

test.run();
