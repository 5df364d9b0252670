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

test("without a host, the server's admission numbers elect the leader: two clients that learned the roster in different orders agree", async () => {
  // 'w' asked first but waited in the waiting room; 'd' was admitted directly before 'w' was let
  // in. Client 1 learned the list in join-request order (w before d), client 2 the other way.
  const roster = (order: string[]): RosterEntry[] =>
    order.map((id) => ({ id, role: 'participant' as const, e2eeCapable: true, admittedSeq: { d: 1, w: 2, self1: 3, self2: 4 }[id]! }));
  const one = await createE2eeController({ meetingId: 'm', selfId: 'self1', sink: new FrameCryptor('self1'), send: () => undefined });
  const two = await createE2eeController({ meetingId: 'm', selfId: 'self2', sink: new FrameCryptor('self2'), send: () => undefined });
  await one.setParticipants(roster(['w', 'd', 'self1', 'self2']));
  await two.setParticipants(roster(['self2', 'd', 'self1', 'w']));
  assert.is(one.session.leaderId, 'd', 'the earliest admitted leads, not the earliest listed');
  assert.is(two.session.leaderId, 'd');
  // The check can fail: without the numbers, the order each client learned decides, and they differ.
  const strip = (r: RosterEntry[]): RosterEntry[] => r.map(({ admittedSeq: _, ...e }) => e);
  const three = await createE2eeController({ meetingId: 'm', selfId: 'self1', sink: new FrameCryptor('self1'), send: () => undefined });
  await three.setParticipants(strip(roster(['w', 'd', 'self1', 'self2'])));
  assert.is(three.session.leaderId, 'w');
  for (const c of [one, two, three]) c.close();
});

test.run();
