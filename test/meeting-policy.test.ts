// The meeting security model through the library API, on a real worker (no media flowing here:
// test/meeting-media.test.ts and test/meeting-workers.test.ts do that).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEntry, MediaCore, Meeting, Participant } from '../lib/index.js';
import { codeOf, hostOf, testCore, user } from './helpers/core.js';
import { memoryLogger } from './helpers/util.js';

let core: MediaCore;
let n = 0;

test.before(async () => {
  core = await testCore();
  core.createAccount({ id: 'schule', defaults: { waitingRoom: true, hostRequiredToStart: true } });
  core.createAccount({ id: 'offen', defaults: { waitingRoom: false, hostRequiredToStart: false } });
  core.createAccount({
    id: 'klinik',
    defaults: { e2ee: 'required', allowChat: false, allowedRegions: ['DE'] },
    locked: ['e2ee', 'allowChat', 'allowedRegions'],
  });
});

test.after(() => core.close());

function meeting(accountId: string, extra: Record<string, unknown> = {}): Promise<Meeting> {
  n++;
  return core.createMeeting({ accountId, title: `m${n}`, hostIdentity: `host${n}@schule.de`, ...extra });
}

const hostId = (m: Meeting): string => m.hostIdentity;

test('host-required start: a guest waits for the host, then sits in the waiting room until the host admits them', async () => {
  const m = await meeting('schule');
  const guest = await m.join(user('gast', { authenticated: false }));
  assert.is(guest.state, 'waiting-for-host');
  assert.is(m.participants.length, 0, 'nobody is in the meeting before the host');
  assert.is(await codeOf(() => guest.createTransport('send')), 'NOT_ADMITTED');

  const states: string[] = [];
  guest.on('statechange', (s) => states.push(s));
  const host = await m.join(hostOf(hostId(m)));
  assert.is(host.role, 'host');
  assert.is(host.state, 'admitted');
  // The waiting room stays in force after the host arrives: nobody is let in by that alone.
  assert.is(guest.state, 'waiting-room');
  assert.equal(m.waiting, [guest]);
  assert.equal(m.participants, [host]);

  m.admit(host, guest.id);
  assert.is(guest.state, 'admitted');
  assert.equal(states, ['waiting-room', 'admitted']);
  assert.equal(new Set(m.participants), new Set([host, guest]));
  assert.ok(m.startedAt instanceof Date);
});

test('host-required start without a waiting room lets those waiting in when the host joins', async () => {
  const m = await meeting('schule', { settings: { waitingRoom: false } });
  const a = await m.join(user('a@x.de'));
  assert.is(a.state, 'waiting-for-host');
  await m.join(hostOf(hostId(m)));
  assert.is(a.state, 'admitted');
});

test('waiting participants see only their own status: no participant list, no roster events, no polls', async () => {
  const m = await meeting('schule');
  const host = await m.join(hostOf(hostId(m)));
  const waiting = await m.join(user('w@x.de'));
  const heard: string[] = [];
  for (const e of ['participantjoined', 'participantleft', 'pollcreated', 'newproducer', 'waitinglist', 'meetinglocked'] as const) {
    waiting.on(e, () => heard.push(e));
  }
  const lists: Participant[][] = [];
  host.on('waitinglist', (l) => lists.push(l));
  const other = await m.join(user('o@x.de'));
  m.admit(host, other.id);
  m.createPoll(host, { question: 'Pause?', options: ['ja', 'nein'] });
  m.lock(host);
  assert.equal(heard, []);
  assert.is(await codeOf(() => waiting.availableProducers()), 'NOT_ADMITTED');
  assert.is(await codeOf(() => waiting.participants()), 'NOT_ADMITTED');
  assert.equal(new Set(other.participants()), new Set([host, other]));
  assert.is(await codeOf(() => waiting.produceChat({ transportId: 'x', sctpStreamParameters: { streamId: 1 } })), 'NOT_ADMITTED');
  assert.ok(lists.length >= 2, 'the host hears the waiting list change');
  assert.equal(lists.at(-1), [waiting]);
});

test('a locked meeting refuses every new join, the waiting room included, and admits again once unlocked', async () => {
  const m = await meeting('schule');
  const host = await m.join(hostOf(hostId(m)));
  m.lock(host);
  assert.ok(m.locked);
  assert.is(await codeOf(() => m.join(user('late@x.de'))), 'MEETING_LOCKED');
  assert.is(m.waiting.length, 0, 'not even queued in the waiting room');
  m.unlock(host);
  assert.is((await m.join(user('late@x.de'))).state, 'waiting-room');
});

test('a removed identity is refused on rejoin with BANNED', async () => {
  const m = await meeting('offen');
  const host = await m.join(hostOf(hostId(m)));
  const p = await m.join(user('stoerer@x.de'));
  const closed = new Promise((r) => p.once('close', r));
  const left: string[] = [];
  host.on('participantleft', (who, reason) => left.push(`${who.identity}:${reason}`));
  m.remove(host, p.id);
  assert.is(await closed, 'removed');
  assert.equal(left, ['stoerer@x.de:removed']);
  assert.is(await codeOf(() => m.join(user('stoerer@x.de'))), 'BANNED');
  assert.is(await codeOf(() => m.join(user('stoerer@x.de', { displayName: 'anders' }))), 'BANNED');
});

test('every host action from a non-host is refused with NOT_PERMITTED', async () => {
  const m = await meeting('offen');
  const host = await m.join(hostOf(hostId(m)));
  const p = await m.join(user('p@x.de'));
  const q = await m.join(user('q@x.de'));
  const poll = m.createPoll(host, { question: 'Q', options: ['a', 'b'] });
  const actions: Array<[string, () => unknown]> = [
    ['admit', () => m.admit(p, q.id)],
    ['admitAll', () => m.admitAll(p)],
    ['deny', () => m.deny(p, q.id)],
    ['lock', () => m.lock(p)],
    ['unlock', () => m.unlock(p)],
    ['remove', () => m.remove(p, q.id)],
    ['mute', () => m.mute(p, q.id)],
    ['muteAll', () => m.muteAll(p)],
    ['stopScreenShare', () => m.stopScreenShare(p, q.id)],
    ['makeCoHost', () => m.makeCoHost(p, q.id)],
    ['transferHost', () => m.transferHost(p, q.id)],
    ['end', () => m.end(p)],
    ['createPoll', () => m.createPoll(p, { question: 'Q', options: ['a', 'b'] })],
    ['closePoll', () => m.closePoll(p, poll)],
    ['pollResults', () => m.pollResults(p, poll)],
    ['updateSettings', () => m.updateSettings(p, { allowChat: false })],
  ];
  for (const [name, act] of actions) assert.is(await codeOf(act), 'NOT_PERMITTED', name);
  // Nor may the host of another meeting act here.
  const other = await meeting('offen');
  const otherHost = await other.join(hostOf(hostId(other)));
  assert.is(await codeOf(() => m.lock(otherHost)), 'NOT_PERMITTED');
  m.lock(host);
  m.unlock(host);
  // Nothing changed and nothing was audited for the refused calls.
  assert.not.ok(m.locked);
  assert.not.ok(m.ended);
  assert.equal(m.participants.map((x) => x.role), ['host', 'participant', 'participant']);
  assert.equal(m.auditLog.map((e) => e.action), ['poll-created', 'lock', 'unlock']);
  // A co-host may do the moderator actions but not the host-only ones.
  m.makeCoHost(host, p.id);
  m.lock(p);
  m.unlock(p);
  assert.is(await codeOf(() => m.end(p)), 'NOT_PERMITTED');
  assert.is(await codeOf(() => m.remove(p, host.id)), 'NOT_PERMITTED');
});

test('a wrong password is refused, and past the limit even the right one is refused with TOO_MANY_ATTEMPTS', async () => {
  const { logger, lines } = memoryLogger('debug');
  const c = await testCore({ logger, passwordAttempts: { perAddress: 3, perMeeting: 100 } });
  try {
    c.createAccount({ id: 'kanzlei', defaults: { waitingRoom: false, hostRequiredToStart: false } });
    const events: unknown[] = [];
    c.observer.on('meetingcreated', (m) => events.push(m.settings));
    c.observer.on('participantjoined', (_m, p) => events.push(p.identity));
    const m = await c.createMeeting({ accountId: 'kanzlei', title: 'Mandat', hostIdentity: 'ra@k.de', password: 'Geheim-4711' });
    assert.ok(m.settings.passwordRequired);
    assert.ok(m.passwordHash!.startsWith('scrypt$'));
    assert.is(await codeOf(() => m.join(user('a@x.de', { address: '192.0.2.7' }))), 'PASSWORD_REQUIRED');
    for (let i = 0; i < 3; i++) {
      assert.is(await codeOf(() => m.join(user('a@x.de', { address: '192.0.2.7', password: `rate${i}` }))), 'WRONG_PASSWORD');
    }
    assert.is(await codeOf(() => m.join(user('a@x.de', { address: '192.0.2.7', password: 'Geheim-4711' }))), 'TOO_MANY_ATTEMPTS');
    // Another address is not blocked by this one's failures.
    const ok = await m.join(user('b@x.de', { address: '198.51.100.1', password: 'Geheim-4711' }));
    assert.is(ok.state, 'admitted');
    // The password appears in no log line and no event.
    const everything = lines.join('\n') + JSON.stringify(events);
    assert.not.ok(everything.includes('Geheim-4711'));
    assert.not.ok(everything.includes('rate1'));
  } finally {
    c.close();
  }
});

test('failed guest passwords are also limited per meeting, whatever the address; token holders are not', async () => {
  const c = await testCore({ passwordAttempts: { perAddress: 100, perMeeting: 2, guestBackoffMs: 60_000 } });
  try {
    c.createAccount({ id: 'k', defaults: { waitingRoom: false, hostRequiredToStart: false, allowGuests: true } });
    const m = await c.createMeeting({ accountId: 'k', title: 't', hostIdentity: 'h@k.de', password: 'pw-123' });
    const guest = (id: string, address: string, password: string) => user(id, { authenticated: false, address, password });
    assert.is(await codeOf(() => m.join(guest('g-a', '10.0.0.1', 'x'))), 'WRONG_PASSWORD');
    assert.is(await codeOf(() => m.join(guest('g-b', '10.0.0.2', 'y'))), 'WRONG_PASSWORD');
    // The guests' budget is spent: even the right password waits for the back-off.
    assert.is(await codeOf(() => m.join(guest('g-c', '10.0.0.3', 'pw-123'))), 'TOO_MANY_ATTEMPTS');
    // A join-token holder with the right password is not meeting-locked, and the host needs none.
    assert.is((await m.join(user('t@k.de', { address: '10.0.0.3', password: 'pw-123' }))).state, 'admitted');
    assert.is((await m.join(hostOf('h@k.de'))).role, 'host');
  } finally {
    c.close();
  }
});

test('200 wrong passwords in flight at once from 10 addresses: at most the limit is checked, and token holders and the host still get in', async () => {
  const c = await testCore({ passwordAttempts: { perAddress: 5, perMeeting: 20, guestBackoffMs: 60_000 } });
  try {
    c.createAccount({ id: 'k', defaults: { waitingRoom: false, hostRequiredToStart: false, allowGuests: true } });
    const m = await c.createMeeting({ accountId: 'k', title: 't', hostIdentity: 'h@k.de', password: 'richtig-4711' });
    const flood = Array.from({ length: 200 }, (_, i) =>
      codeOf(() => m.join(user(`guest-${i}`, { authenticated: false, address: `203.0.113.${i % 10}`, password: `falsch-${i}` }))),
    );
    const codes = await Promise.all(flood);
    const count = (code: string): number => codes.filter((x) => x === code).length;
    // Every attempt is counted before its hash: 20 (the meeting's guest budget) were checked.
    assert.is(count('WRONG_PASSWORD'), 20);
    assert.is(count('TOO_MANY_ATTEMPTS'), 180);
    // Neither the host nor the holders of join tokens are locked out by the flood.
    assert.is((await m.join(hostOf('h@k.de'))).role, 'host');
    for (const id of ['anna@k.de', 'bernd@k.de']) {
      assert.is((await m.join(user(id, { address: '203.0.113.1', password: 'richtig-4711' }))).state, 'admitted');
    }
    // A token holder's own wrong guesses are limited per identity.
    for (let i = 0; i < 5; i++) assert.is(await codeOf(() => m.join(user('eve@k.de', { password: `x${i}` }))), 'WRONG_PASSWORD');
    assert.is(await codeOf(() => m.join(user('eve@k.de', { password: 'richtig-4711' }))), 'TOO_MANY_ATTEMPTS');
  } finally {
    c.close();
  }
});

test('an account-locked setting cannot be overridden by a meeting or by its host', async () => {
  assert.is(await codeOf(() => meeting('klinik', { settings: { allowChat: true } })), 'SETTING_LOCKED');
  assert.is(await codeOf(() => meeting('klinik', { settings: { e2ee: 'off' } })), 'SETTING_LOCKED');
  assert.is(await codeOf(() => meeting('klinik', { settings: { allowedRegions: ['AT'] } })), 'SETTING_LOCKED');
  const m = await meeting('klinik', { settings: { hostRequiredToStart: false } });
  assert.is(m.settings.e2ee, 'required');
  assert.not.ok(m.settings.allowChat);
  const host = await m.join(hostOf(hostId(m)));
  assert.is(await codeOf(() => m.updateSettings(host, { allowChat: true })), 'SETTING_LOCKED');
  assert.not.ok(m.settings.allowChat, 'unchanged');
  // An unlocked setting the host may change.
  m.updateSettings(host, { muteOnEntry: true });
  assert.ok(m.settings.muteOnEntry);
});

test('E2EE required refuses a client without E2EE support', async () => {
  const m = await meeting('klinik', { settings: { hostRequiredToStart: false, waitingRoom: false } });
  assert.is(await codeOf(() => m.join(user('alt@x.de', { e2eeCapable: false }))), 'E2EE_REQUIRED');
  assert.is((await m.join(user('neu@x.de', { e2eeCapable: true }))).state, 'admitted');
});

test('a full meeting refuses with MEETING_FULL; an ended one with MEETING_ENDED', async () => {
  const m = await meeting('offen', { settings: { maxParticipants: 2 } });
  const host = await m.join(hostOf(hostId(m)));
  await m.join(user('a@x.de'));
  assert.is(await codeOf(() => m.join(user('b@x.de'))), 'MEETING_FULL');
  const closed: string[] = [];
  for (const p of m.participants) p.on('close', (r) => closed.push(r));
  m.end(host);
  assert.equal(closed, ['meeting-ended', 'meeting-ended']);
  assert.ok(m.ended);
  assert.is(await codeOf(() => m.join(user('b@x.de'))), 'MEETING_ENDED');
});

test('a meeting in no allowed region with a live worker is refused with REGION_UNAVAILABLE', async () => {
  assert.is(await codeOf(() => meeting('offen', { settings: { allowedRegions: ['AT', 'ch-zrh'] } })), 'REGION_UNAVAILABLE');
  assert.is(core.getMeeting('never'), undefined);
});

test('when the host leaves, a co-host becomes host; without one the meeting follows onHostLeave', async () => {
  const m = await meeting('offen');
  const host = await m.join(hostOf(hostId(m)));
  const co = await m.join(user('co@x.de'));
  m.makeCoHost(host, co.id);
  assert.is(co.role, 'cohost');
  host.leave();
  assert.is(co.role, 'host');
  assert.is(m.host, co);

  const ending = await meeting('offen', { settings: { onHostLeave: 'end-meeting' } });
  const h2 = await ending.join(hostOf(hostId(ending)));
  const p2 = await ending.join(user('p2@x.de'));
  const reason = new Promise((r) => p2.once('close', r));
  h2.leave();
  assert.is(await reason, 'host-left');
  assert.ok(ending.ended);

  const waiting = await meeting('offen', { settings: { onHostLeave: 'wait-for-host' } });
  const h3 = await waiting.join(hostOf(hostId(waiting)));
  const stay = await waiting.join(user('stay@x.de'));
  h3.leave();
  assert.is(stay.state, 'admitted', 'those inside stay');
  const late = await waiting.join(user('late@x.de'));
  assert.is(late.state, 'waiting-for-host', 'new joins wait for the host');
  await waiting.join(hostOf(hostId(waiting)));
  assert.is(late.state, 'admitted');

  const running = await meeting('offen', { settings: { onHostLeave: 'keep-running' } });
  const h4 = await running.join(hostOf(hostId(running)));
  const r1 = await running.join(user('r1@x.de'));
  h4.leave();
  assert.not.ok(running.ended);
  assert.is(running.host, undefined);
  assert.is(await codeOf(() => running.lock(r1)), 'NOT_PERMITTED', 'no host actions without a host');
  assert.is((await running.join(user('r2@x.de'))).state, 'admitted');
});

test('transferHost hands the host role over; the old host becomes a co-host', async () => {
  const m = await meeting('offen');
  const host = await m.join(hostOf(hostId(m)));
  const p = await m.join(user('neu@x.de'));
  const changes: string[] = [];
  p.on('rolechange', (who) => changes.push(`${who.identity}=${who.role}`));
  m.transferHost(host, p.id);
  assert.is(p.role, 'host');
  assert.is(host.role, 'cohost');
  assert.is(m.hostIdentity, 'neu@x.de');
  assert.equal(changes.sort(), [`${host.identity}=cohost`, 'neu@x.de=host'].sort());
  assert.is(await codeOf(() => m.end(host)), 'NOT_PERMITTED');
});

test('polls: the host creates, participants answer once, results go to the host and out as metadata', async () => {
  const m = await meeting('offen');
  const host = await m.join(hostOf(hostId(m)));
  const a = await m.join(user('a@x.de'));
  const b = await m.join(user('b@x.de'));
  const announced = new Promise<unknown[]>((r) => a.once('pollcreated', (...args) => r(args)));
  const closedOnCore = new Promise<unknown>((r) => core.observer.once('pollclosed', (_m, results) => r(results)));
  const pollId = m.createPoll(host, { question: 'Termin?', options: ['Mo', 'Di', 'Mi'] });
  assert.equal(await announced, [pollId, { question: 'Termin?', options: ['Mo', 'Di', 'Mi'], anonymous: false }]);
  a.answerPoll(pollId, 1);
  b.answerPoll(pollId, 1);
  assert.is(await codeOf(() => a.answerPoll(pollId, 2)), 'ALREADY_ANSWERED');
  assert.is(await codeOf(() => a.answerPoll(pollId, 7)), 'INVALID_ARGUMENT');
  assert.equal(m.pollResults(host, pollId).counts, [0, 2, 0]);
  const results = m.closePoll(host, pollId);
  assert.equal(await closedOnCore, results);
  assert.equal(results.answers.map((x) => x.identity), ['a@x.de', 'b@x.de']);
  assert.ok(results.closed);
  assert.equal(m.polls, [results]);
});

test('every host action leaves an audit entry (who, whom, when) on the meeting and on core.observer', async () => {
  const m = await meeting('schule');
  const seen: AuditEntry[] = [];
  core.observer.on('audit', (e) => {
    if (e.meetingId === m.id) seen.push(e);
  });
  const host = await m.join(hostOf(hostId(m)));
  const w = await m.join(user('w@x.de'));
  const d = await m.join(user('d@x.de'));
  m.admit(host, w.id);
  m.deny(host, d.id);
  m.lock(host);
  m.unlock(host);
  await m.mute(host, w.id);
  m.makeCoHost(host, w.id);
  m.remove(host, w.id);
  m.end(host);
  assert.equal(
    seen.map((e) => `${e.action}:${e.actor}>${e.target ?? ''}`),
    [
      `admit:${host.identity}>w@x.de`,
      `deny:${host.identity}>d@x.de`,
      `lock:${host.identity}>`,
      `unlock:${host.identity}>`,
      `mute:${host.identity}>w@x.de`,
      `make-cohost:${host.identity}>w@x.de`,
      `remove:${host.identity}>w@x.de`,
      `end:${host.identity}>`,
    ],
  );
  assert.ok(seen.every((e) => e.at instanceof Date));
  assert.equal(m.auditLog, seen);
});

test('core.observer reports the meeting lifecycle and placement on an allowed worker', async () => {
  const log: string[] = [];
  const o = core.observer;
  const onCreated = (m: Meeting): void => void log.push(`created:${m.title}`);
  o.on('meetingcreated', onCreated);
  o.on('meetingstarted', (m) => log.push(`started:${m.title}`));
  o.on('participantwaiting', (m, p) => log.push(`waiting:${p.identity}`));
  o.on('participantjoined', (m, p) => log.push(`joined:${p.identity}`));
  o.on('participantleft', (m, p, r) => log.push(`left:${p.identity}:${r}`));
  o.on('meetingended', (m) => log.push(`ended:${m.title}`));
  const m = await meeting('schule');
  const g = await m.join(user('g@x.de'));
  const host = await m.join(hostOf(hostId(m)));
  m.admit(host, g.id);
  g.leave();
  m.end(host);
  assert.equal(log, [
    `created:${m.title}`,
    'waiting:g@x.de',
    `started:${m.title}`,
    `joined:${host.identity}`,
    'joined:g@x.de',
    'left:g@x.de:left',
    `left:${host.identity}:meeting-ended`,
    `ended:${m.title}`,
  ]);
  assert.is(m.placements.length, 1);
  assert.is(m.placements[0]!.region, 'de-fra');
  assert.is(m.placements[0]!.endReason, 'meeting-ended');
  assert.ok(m.placements[0]!.to instanceof Date);
});

test('bad input is refused with a coded error and changes nothing', async () => {
  const m = await meeting('offen');
  assert.is(await codeOf(() => m.join({ identity: '', displayName: 'x', authenticated: true, e2eeCapable: true })), 'INVALID_ARGUMENT');
  assert.is(await codeOf(() => m.join({ identity: 'a', displayName: 'x', authenticated: true } as never)), 'INVALID_ARGUMENT');
  const host = await m.join(hostOf(hostId(m)));
  assert.is(await codeOf(() => m.updateSettings(host, { maxParticipants: -1 })), 'INVALID_ARGUMENT');
  assert.is(await codeOf(() => m.createPoll(host, { question: 'only one option', options: ['a'] })), 'INVALID_ARGUMENT');
  assert.is(await codeOf(() => m.admit(host, 'nobody')), 'NOT_FOUND');
  assert.is(await codeOf(() => core.createMeeting({ accountId: 'nope', title: 't', hostIdentity: 'h' })), 'NOT_FOUND');
  assert.is(m.settings.maxParticipants, 100);
  assert.is(m.participants.length, 1);
});

test('a second session of the same identity replaces the first; an admitted one does not wait again', async () => {
  const m = await meeting('schule');
  const host = await m.join(hostOf(hostId(m)));
  const first = await m.join(user('dup@x.de'));
  m.admit(host, first.id);
  const reason = new Promise((r) => first.once('close', r));
  const second = await m.join(user('dup@x.de'));
  assert.is(await reason, 'replaced');
  assert.equal(m.participants, [host, second]);
  assert.is(second.state, 'admitted', 'a reconnect does not go through the waiting room again');
  const third = await m.join(user('waits@x.de'));
  assert.is(third.state, 'waiting-room');
  assert.is((await m.join(user('waits@x.de'))).state, 'waiting-room', 'a waiting identity keeps waiting');
  // A host reconnecting keeps the meeting running and keeps the host role.
  const host2 = await m.join(hostOf(hostId(m)));
  assert.is(host.closeReason, 'replaced');
  assert.is(m.host, host2);
  assert.not.ok(m.ended);
});

test.run();
