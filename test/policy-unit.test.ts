// Pure policy logic without workers: the admission order, effective settings with account locks,
// password hashing and the failed-attempt limiter.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BackoffLimiter, ConcurrencyGate } from '../lib/model/password.js';
import {
  Account,
  AttemptLimiter,
  C4vError,
  DEFAULT_SETTINGS,
  decideAdmission,
  hashPassword,
  verifyPassword,
  type AdmissionInput,
} from '../lib/index.js';

/** A join that passes every check; each test turns on the checks it wants to fail. */
function passing(): AdmissionInput {
  return {
    settings: { waitingRoom: false, maxParticipants: 10, e2ee: 'optional', allowGuests: true },
    ended: false,
    banned: false,
    authenticated: true,
    password: 'ok',
    locked: false,
    admittedCount: 0,
    e2eeCapable: true,
    isHost: false,
    isCoHost: false,
    awaitingHost: false,
  };
}

test('admission refuses in the fixed order: ended, banned, password, locked, capacity, E2EE, then waits for host, then waiting room', () => {
  // Everything fails at once; switch the failures off one by one and watch the reason move on.
  const input: AdmissionInput = {
    ...passing(),
    settings: { waitingRoom: true, maxParticipants: 1, e2ee: 'required', allowGuests: true },
    ended: true,
    banned: true,
    password: 'wrong',
    locked: true,
    admittedCount: 1,
    e2eeCapable: false,
    awaitingHost: true,
  };
  const seen: string[] = [];
  const step = (fix: (i: AdmissionInput) => void): void => {
    const d = decideAdmission(input);
    seen.push(d.outcome === 'refused' ? d.code : d.outcome);
    fix(input);
  };
  step((i) => (i.ended = false));
  step((i) => (i.banned = false));
  step((i) => (i.password = 'ok'));
  step((i) => (i.locked = false));
  step((i) => (i.admittedCount = 0));
  step((i) => (i.e2eeCapable = true));
  step((i) => (i.awaitingHost = false));
  step((i) => (i.settings = { ...i.settings, waitingRoom: false }));
  step(() => undefined);
  assert.equal(seen, [
    'MEETING_ENDED',
    'BANNED',
    'WRONG_PASSWORD',
    'MEETING_LOCKED',
    'MEETING_FULL',
    'E2EE_REQUIRED',
    'waiting-for-host',
    'waiting-room',
    'admitted',
  ]);
});

test('admission names each password outcome and refuses past the attempt limit even before checking', () => {
  const code = (password: AdmissionInput['password']): string => {
    const d = decideAdmission({ ...passing(), password });
    return d.outcome === 'refused' ? d.code : d.outcome;
  };
  assert.is(code('missing'), 'PASSWORD_REQUIRED');
  assert.is(code('wrong'), 'WRONG_PASSWORD');
  assert.is(code('rate-limited'), 'TOO_MANY_ATTEMPTS');
  assert.is(code('not-required'), 'admitted');
});

test('admission lets the host past password, lock and waiting room but not past a ban or an ended meeting', () => {
  const host = { ...passing(), isHost: true, password: 'missing' as const, locked: true, awaitingHost: true };
  assert.equal(decideAdmission({ ...host, settings: { ...host.settings, waitingRoom: true } }), { outcome: 'admitted' });
  assert.is((decideAdmission({ ...host, banned: true }) as { code: string }).code, 'BANNED');
  assert.is((decideAdmission({ ...host, ended: true }) as { code: string }).code, 'MEETING_ENDED');
});

test('admission sends co-hosts past the waiting room and refuses guests when guests are not allowed', () => {
  const wr = { ...passing(), settings: { ...passing().settings, waitingRoom: true } };
  assert.equal(decideAdmission({ ...wr, isCoHost: true }), { outcome: 'admitted' });
  assert.equal(decideAdmission(wr), { outcome: 'waiting-room' });
  const noGuests = { ...passing(), authenticated: false, settings: { ...passing().settings, allowGuests: false } };
  assert.is((decideAdmission(noGuests) as { code: string }).code, 'GUESTS_NOT_ALLOWED');
});

test('a returning admitted identity does not wait again but still meets every refusal check', () => {
  const wr = { ...passing(), settings: { ...passing().settings, waitingRoom: true }, awaitingHost: true };
  assert.equal(decideAdmission({ ...wr, returning: true }), { outcome: 'admitted' });
  assert.is((decideAdmission({ ...wr, returning: true, locked: true }) as { code: string }).code, 'MEETING_LOCKED');
  assert.is((decideAdmission({ ...wr, returning: true, password: 'wrong' }) as { code: string }).code, 'WRONG_PASSWORD');
});

test('effective settings: account defaults, meeting overrides, and SETTING_LOCKED on a locked one', () => {
  const account = new Account({ id: 'klinik', defaults: { e2ee: 'required', waitingRoom: true, maxParticipants: 20 }, locked: ['e2ee'] });
  const s = account.effectiveSettings({ maxParticipants: 5 });
  assert.is(s.e2ee, 'required');
  assert.is(s.maxParticipants, 5);
  assert.is(s.allowChat, DEFAULT_SETTINGS.allowChat);
  // Restating the locked value is not an override.
  assert.is(account.effectiveSettings({ e2ee: 'required' }).e2ee, 'required');
  try {
    account.effectiveSettings({ e2ee: 'off' });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, C4vError);
    assert.is((error as C4vError).code, 'SETTING_LOCKED');
  }
});

test('settings validation names the bad setting and unknown ones', () => {
  const account = new Account({ id: 'a' });
  for (const bad of [{ maxParticipants: 0 }, { e2ee: 'sometimes' }, { allowedRegions: [] }, { colour: 'blue' }, { waitingRoom: 'yes' }]) {
    try {
      account.effectiveSettings(bad);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, TypeError);
      assert.ok((error as Error).message.includes(Object.keys(bad)[0]!), (error as Error).message);
    }
  }
  try {
    new Account({ id: 'b', locked: ['nonsense' as never] });
    assert.unreachable();
  } catch (error) {
    assert.instance(error, TypeError);
  }
});

test('passwords are salted scrypt hashes that verify only the right password', async () => {
  const a = await hashPassword('Sommer2026!');
  const b = await hashPassword('Sommer2026!');
  assert.ok(a.startsWith('scrypt$'));
  assert.not.ok(a.includes('Sommer2026!'));
  assert.is.not(a, b, 'a fresh salt each time');
  assert.ok(await verifyPassword('Sommer2026!', a));
  assert.not.ok(await verifyPassword('sommer2026!', a));
  assert.not.ok(await verifyPassword('', a));
});

test('the attempt limiter blocks a key after max failures within the window and forgets them after it', () => {
  const limiter = new AttemptLimiter(3, 1000);
  const t0 = 1_000_000;
  for (let i = 0; i < 3; i++) {
    assert.not.ok(limiter.blocked('10.0.0.1', t0 + i));
    limiter.fail('10.0.0.1', t0 + i);
  }
  assert.ok(limiter.blocked('10.0.0.1', t0 + 10));
  assert.not.ok(limiter.blocked('10.0.0.2', t0 + 10), 'other keys are not affected');
  assert.not.ok(limiter.blocked('10.0.0.1', t0 + 1500), 'failures leave the window');
});

test('the attempt limiter keeps its memory bounded', () => {
  const limiter = new AttemptLimiter(1, 60_000, 100);
  for (let i = 0; i < 1000; i++) limiter.fail(`k${i}`, 5);
  assert.ok(limiter.blocked('k999', 6), 'the newest key is still tracked');
  assert.not.ok(limiter.blocked('k0', 6), 'the oldest keys were dropped');
});

test('an attempt in flight counts against the limit before it is checked, and a success frees its slot', () => {
  const limiter = new AttemptLimiter(2, 1000);
  const t0 = 1_000_000;
  assert.ok(limiter.begin('a', t0));
  assert.ok(limiter.begin('a', t0));
  assert.not.ok(limiter.begin('a', t0), 'two in flight: the third is refused before any check');
  limiter.end('a', false, t0 + 1);
  assert.ok(limiter.begin('a', t0 + 2), 'a success (or no check) gives the slot back');
  limiter.end('a', true, t0 + 3);
  limiter.end('a', true, t0 + 3);
  assert.not.ok(limiter.begin('a', t0 + 4), 'two failures in the window');
  assert.ok(limiter.begin('a', t0 + 1100), 'until they leave the window');
});

test('the guest budget backs off exponentially once spent, one attempt at a time', () => {
  const b = new BackoffLimiter(2, 60_000, 1000, 4000);
  const t0 = 5_000_000;
  for (let i = 0; i < 2; i++) {
    assert.ok(b.begin(t0));
    b.end(true, t0);
  }
  assert.not.ok(b.begin(t0 + 999), 'first back-off: 1 s');
  assert.ok(b.begin(t0 + 1000));
  assert.not.ok(b.begin(t0 + 1000), 'only one attempt at a time past the budget');
  b.end(true, t0 + 1000);
  assert.is(b.retryAfterMs(t0 + 1000), 2000, 'then 2 s');
  assert.ok(b.begin(t0 + 3000));
  b.end(true, t0 + 3000);
  assert.is(b.retryAfterMs(t0 + 3000), 4000, 'then 4 s');
  assert.ok(b.begin(t0 + 7000));
  b.end(true, t0 + 7000);
  assert.is(b.retryAfterMs(t0 + 7000), 4000, 'capped at maxDelayMs');
  assert.is(b.retryAfterMs(t0 + 70_000), 0, 'the budget returns as failures leave the window');
});

test('the hash gate runs at most `concurrency` at once and refuses past its queue', async () => {
  const gate = new ConcurrencyGate(2, 3);
  let running = 0;
  let most = 0;
  const releases: Array<() => void> = [];
  const job = (): Promise<number> =>
    new Promise<number>((resolve) => {
      running++;
      most = Math.max(most, running);
      releases.push(() => {
        running--;
        resolve(1);
      });
    });
  const results = Array.from({ length: 6 }, () => gate.run(job));
  // 2 run, 3 wait, the sixth is refused at once.
  assert.is(await results[5], 'busy');
  assert.is(gate.running, 2);
  assert.is(gate.queued, 3);
  while (releases.length) {
    releases.shift()!();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(await Promise.all(results.slice(0, 5)), [1, 1, 1, 1, 1]);
  assert.is(most, 2);
});

test.run();
