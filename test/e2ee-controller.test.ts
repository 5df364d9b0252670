// The SDK-facing E2EE pieces that need no browser: the meeting header label (an 'optional'
// meeting with non-E2EE participants is labelled mixed, never silently), the refusal text of an
// 'required' meeting, and the controller's roster handling (join order, host, non-E2EE members).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameCryptor, createE2eeController, e2eeLabel, e2eeRefusalText, type RosterEntry } from '../client/e2ee/index.js';

const everyone: RosterEntry[] = [
  { id: 'h', role: 'host', e2eeCapable: true },
  { id: 'a', role: 'participant', e2eeCapable: true },
];

test("the header label: E2EE when everyone encrypts, 'mixed' naming the others in an optional meeting, none otherwise", () => {
  assert.equal(e2eeLabel('required', true, everyone), { state: 'e2ee', text: 'End-to-end encrypted', unencrypted: [] });
  const mixed = e2eeLabel('optional', true, [...everyone, { id: 'x', role: 'participant', e2eeCapable: false }]);
  assert.is(mixed.state, 'mixed');
  assert.equal(mixed.unencrypted, ['x']);
  assert.match(mixed.text, /1 participant without end-to-end encryption/);
  assert.is(e2eeLabel('optional', false, everyone).state, 'none', 'a client that does not encrypt says so');
  assert.is(e2eeLabel('off', true, everyone).state, 'none');
});

test('the refusal text says why a client stays out of a required meeting', () => {
  assert.match(e2eeRefusalText('E2EE_REQUIRED')!, /end-to-end encrypted/);
  assert.match(e2eeRefusalText('E2EE_NOT_SUPPORTED')!, /cannot encrypt/);
  assert.is(e2eeRefusalText('MEETING_LOCKED'), undefined);
});

test('the controller leaves non-E2EE participants out of the key schedule and the code, and publishes its key once', async () => {
  const sent: Array<[string | undefined, number]> = [];
  const ctl = await createE2eeController({ meetingId: 'm', selfId: 'a', sink: new FrameCryptor('a'), send: (to, d) => void sent.push([to, d[1]!]) });
  const codes: string[] = [];
  ctl.on('securitycode', (c) => codes.push(c));
  await ctl.setParticipants([...everyone, { id: 'x', role: 'participant', e2eeCapable: false }]);
  await ctl.setParticipants(everyone);
  assert.equal(sent, [[undefined, 1]], 'one hello to everyone');
  assert.is(ctl.session.leaderId, 'h', 'the host leads');
  assert.equal(ctl.session.verifiedMembers, ['a'], 'nobody else has shown a key yet');
  assert.is(codes.length, 1);
  assert.is(ctl.securityCode, codes[0]);
  ctl.close();
});

test.run();
