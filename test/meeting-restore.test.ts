// Issue 13b: Meeting._restoreParticipants, the model side of a home takeover (real media core):
// participants come back with their ids, roles, states and admission numbers; records that do
// not fit the restored policy are skipped or demoted. The cluster end to end:
// cluster-home-resume.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MediaCore, Meeting } from '../lib/index.js';
import type { RestoredParticipant } from '../lib/model/Meeting.js';
import { codeOf, testCore, user } from './helpers/core.js';

let core: MediaCore;
let n = 0;

test.before(async () => {
  core = await testCore();
  core.createAccount({ id: 'schule', defaults: { waitingRoom: true, hostRequiredToStart: true } });
});

test.after(() => core.close());

async function meeting(): Promise<Meeting> {
  n++;
  return core.createMeeting({ accountId: 'schule', title: `m${n}`, hostIdentity: 'host@schule.de' });
}

const rec = (id: string, identity: string, extra: Partial<RestoredParticipant> = {}): RestoredParticipant => ({
  id,
  identity,
  displayName: identity.split('@')[0]!,
  role: 'participant',
  state: 'admitted',
  authenticated: true,
  e2eeCapable: false,
  admittedSeq: 0,
  ...extra,
});

test('restored participants keep their ids, roles, states and admission numbers; the host is present at once', async () => {
  const m = await meeting();
  const out = m._restoreParticipants([
    rec('p-bob', 'bob@eltern.de', { admittedSeq: 7 }),
    rec('p-host', 'host@schule.de', { role: 'host', admittedSeq: 2 }),
    rec('p-wait', 'wait@eltern.de', { state: 'waiting-room' }),
  ]);
  assert.equal(out.map((p) => p.id).sort(), ['p-bob', 'p-host', 'p-wait']);
  assert.is(m.host?.id, 'p-host');
  assert.is(m.participant('p-host')!.admittedSeq, 2);
  assert.is(m.participant('p-bob')!.admittedSeq, 7);
  assert.equal(m.waiting.map((p) => p.id), ['p-wait']);
  assert.ok(m.startedAt, 'the meeting is running');
  // The next admission gets a number after the restored ones.
  const next = await m.join(user('neu@eltern.de'));
  assert.is(next.state, 'waiting-room', 'a newcomer still meets the waiting room');
  m.admit(m.participant('p-host')!, next.id);
  assert.is(next.admittedSeq, 8);
  // The waiting participant can be admitted by the restored host.
  m.admit(m.participant('p-host')!, 'p-wait');
  assert.is(m.participant('p-wait')!.state, 'admitted');
  m.close();
});

test('records that do not fit are skipped or demoted: a banned identity, a second session of one identity, a second host', async () => {
  const m = await meeting();
  m._restorePolicy({ ...m._policyState(), banned: ['troll@example.de'], cohosts: ['vize@schule.de'] });
  const out = m._restoreParticipants([
    rec('p-1', 'host@schule.de', { role: 'host', admittedSeq: 1 }),
    rec('p-2', 'vize@schule.de', { role: 'host', admittedSeq: 2 }),
    rec('p-3', 'troll@example.de', { admittedSeq: 3 }),
    rec('p-4', 'host@schule.de', { admittedSeq: 4 }),
  ]);
  assert.equal(out.map((p) => p.id), ['p-1', 'p-2']);
  assert.is(m.participant('p-2')!.role, 'cohost', 'one host only; the second is the co-host it was made');
  assert.is(m.participant('p-3'), undefined);
  // The ban holds for a fresh join too.
  assert.is(await codeOf(() => m.join(user('troll@example.de'))), 'BANNED');
  m.close();
});

test.run();
