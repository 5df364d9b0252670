// The log rule, unit by unit: personal data is kept out of log lines by type (log views,
// PersonalData, shapes of e-mail / IP / MAC addresses), whatever key it sits under; a participant
// of a real meeting is logged as its opaque id. The full-meeting check through the gateway is in
// dataprotection-e2e.
import { Writable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger, logView, personal, redactPersonal, scrubText, REDACTED } from '../lib/index.js';
import { startCore } from './helpers/controlPlane.js';

function capture(options: { logPersonalData?: boolean } = {}): { logger: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>>; text: () => string } {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination, ...options });
  return { logger, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>), text: () => raw.join('\n') };
}

test('scrubText removes e-mail addresses and e-mail-like identities, IPv4, IPv6 and MAC addresses, and keeps times', () => {
  assert.is(scrubText('host hanna@x.example joined'), `host ${REDACTED} joined`);
  assert.is(scrubText('identity host@demo'), `identity ${REDACTED}`);
  assert.is(scrubText('from 203.0.113.7:4711'), `from ${REDACTED}:4711`);
  assert.is(scrubText('from 2001:db8::1 and ::1'), `from ${REDACTED} and ${REDACTED}`);
  assert.is(scrubText('mac 02:42:ac:11:00:02'), `mac ${REDACTED}`);
  assert.is(scrubText('at 09:30:00, worker 3, version 3.27.1'), 'at 09:30:00, worker 3, version 3.27.1');
});

test('a value with a log view is logged as its view under any key; PersonalData never as itself', () => {
  const participant = { identity: 'anna@praxis.example', displayName: 'Anna', [logView]: () => ({ participantId: 'p-1' }) };
  const out = redactPersonal({ whoever: participant, nested: { list: [participant] }, actor: participant, note: personal('Dr. Anna') }) as Record<string, unknown>;
  assert.equal(out, {
    whoever: { participantId: 'p-1' },
    nested: { list: [{ participantId: 'p-1' }] },
    actor: { participantId: 'p-1' },
    note: REDACTED,
  });
  assert.is(String(personal('Dr. Anna')), REDACTED, 'a template string cannot leak it');
  assert.is(JSON.stringify({ n: personal('Dr. Anna') }), `{"n":"${REDACTED}"}`);
  assert.is(personal('Dr. Anna').reveal(), 'Dr. Anna');
});

test('the logger redacts by type in fields, bindings, messages, format arguments and errors', () => {
  const { logger, text, lines } = capture();
  const child = logger.child({ peer: 'bob@kanzlei.example', from: '198.51.100.23' });
  child.info({ anyKey: 'anna@praxis.example', deep: { deeper: { mac: '02:42:ac:11:00:02', other: '02:42:ac:11:00:03' } } }, 'joined from 203.0.113.7');
  child.warn('user %s at %s', 'carol@guest.example', personal('Carol Christ'));
  child.error({ err: new Error('no participant bob@kanzlei.example in this meeting') }, 'failed');
  child.info({ title: 'Fallbesprechung Müller', identity: 'u-4711', target: 'u-4712', name: personal('Eve') }, 'named fields');
  const all = text();
  for (const s of ['bob@kanzlei.example', '198.51.100.23', 'anna@praxis.example', '02:42:ac:11:00:0', '203.0.113.7', 'carol@guest.example', 'Carol Christ', 'Fallbesprechung', 'u-4711', 'u-4712', 'Eve']) {
    assert.not.ok(all.includes(s), `${s} was logged`);
  }
  const err = lines()[2]!.err as Record<string, unknown>;
  assert.is(err.type, 'Error', 'errors keep their type');
  assert.match(String(err.message), /no participant \[redacted\] in this meeting/);
  // Secrets stay redacted by name as before.
  logger.info({ password: 'Kennwort-4711', token: 'c4v1.abc' }, 'secret');
  assert.not.ok(text().includes('Kennwort-4711') || text().includes('c4v1.abc'));
});

test('with logPersonalData on, wrapped values and shapes show, participants are still logged by their views', () => {
  const { logger, text } = capture({ logPersonalData: true });
  const participant = { identity: 'anna@praxis.example', [logView]: () => ({ participantId: 'p-1' }) };
  logger.info({ who: personal('Dr. Anna'), from: '203.0.113.7', p: participant, password: 'Kennwort-4711' }, 'support case');
  const all = text();
  assert.ok(all.includes('Dr. Anna') && all.includes('203.0.113.7'));
  assert.ok(all.includes('"participantId":"p-1"'));
  assert.not.ok(all.includes('anna@praxis.example'));
  assert.not.ok(all.includes('Kennwort-4711'), 'secrets never');
});

test("a real meeting's host actions name participants by opaque id, not by identity", async () => {
  const { logger, lines, text } = capture();
  const core = await startCore({ logger });
  try {
    core.createAccount({ id: 'acme' });
    const meeting = await core.createMeeting({ id: 'm-log', accountId: 'acme', title: 'Befund Müller', hostIdentity: 'hanna@x.example', settings: { waitingRoom: true } });
    const host = await meeting.join({ identity: 'hanna@x.example', displayName: 'Hanna Host', authenticated: true, asHost: true, e2eeCapable: true, address: '203.0.113.9' });
    const bob = await meeting.join({ identity: 'bob-4711', displayName: 'Bob Bauer', authenticated: true, e2eeCapable: true, address: '203.0.113.10' });
    meeting.admit(host, bob.id);
    meeting.remove(host, bob.id);
    meeting.end(host);
    const actions = lines().filter((l) => l.msg === 'host action');
    assert.equal(
      actions.map((l) => [l.action, l.actor, l.target ?? null]),
      [
        ['admit', { participantId: host.id, role: 'host' }, { participantId: bob.id, role: 'participant' }],
        ['remove', { participantId: host.id, role: 'host' }, { participantId: bob.id, role: 'participant' }],
        ['end', { participantId: host.id, role: 'host' }, null],
      ],
    );
    for (const s of ['hanna@x.example', 'bob-4711', 'Hanna Host', 'Bob Bauer', 'Befund Müller', '203.0.113.']) assert.not.ok(text().includes(s), `${s} was logged`);
  } finally {
    core.close();
  }
});

test.run();
