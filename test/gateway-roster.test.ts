// Issue 14: get_participants is answered with cached roster entries (gateway/rosterEncoding.ts).
// The bytes must be exactly what protobufjs encodes for the same message, and a changed
// participant (role, state, name) must never be answered from a stale entry.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { _cachedEntryCount, encodeParticipantList } from '../gateway/rosterEncoding.js';
import { participantToWire } from '../gateway/Session.js';
import { pb, producerToWire } from '../gateway/wire.js';
import type { GatewayParticipant } from '../gateway/model.js';
import type { ProducerInfo } from '../lib/model/types.js';
import { testGateway } from './helpers/gateway.js';

const MEETING = 'elternabend';

type Fake = { id: string; displayName: string; role: GatewayParticipant['role']; state: GatewayParticipant['state']; e2eeCapable: boolean; admittedSeq?: number };

function reference(id: number, ps: Fake[], producers: ProducerInfo[], chats: Array<[string, string]>, activeSpeakerId = ''): Uint8Array {
  return pb.Envelope.encode({
    id,
    response: {
      participants: {
        participants: ps.map((p) => participantToWire(p as unknown as GatewayParticipant)),
        producers: producers.map(producerToWire),
        dataProducers: chats.map(([dpId, participantId]) => ({ id: dpId, participantId })),
        activeSpeakerId,
      },
    },
  }).finish();
}

test('the hand-framed answer is byte for byte what pb.Envelope.encode() writes, and follows every change of a participant', () => {
  const ps: Fake[] = [
    { id: 'p-1', displayName: 'Frau Schmidt', role: 'host', state: 'admitted', e2eeCapable: true },
    { id: 'p-2', displayName: 'Herr Yılmaz', role: 'participant', state: 'admitted', e2eeCapable: false },
    { id: 'p-3', displayName: '', role: 'participant', state: 'admitted', e2eeCapable: true },
  ];
  const producers: ProducerInfo[] = [
    { id: 'pr-1', participantId: 'p-1', source: 'microphone', kind: 'audio', paused: false },
    { id: 'pr-2', participantId: 'p-1', source: 'camera', kind: 'video', paused: true },
  ];
  const chats: Array<[string, string]> = [['dp-1', 'p-2']];
  const as = (list: Fake[]): GatewayParticipant[] => list as unknown as GatewayParticipant[];
  for (const id of [1, 127, 128, 300_000, 2 ** 32 - 1]) {
    assert.equal(encodeParticipantList(id, as(ps), producers, chats, ''), reference(id, ps, producers, chats), `request id ${id}`);
  }
  assert.equal(encodeParticipantList(5, [], [], [], ''), reference(5, [], [], []), 'an empty list');
  assert.equal(encodeParticipantList(6, as(ps), producers, chats, 'p-2'), reference(6, ps, producers, chats, 'p-2'), 'with an active speaker');
  // Entries are cached per participant: every field it carries invalidates the entry.
  ps[1]!.role = 'cohost';
  assert.equal(encodeParticipantList(9, as(ps), producers, chats, ''), reference(9, ps, producers, chats), 'after a role change');
  ps[1]!.displayName = 'Herr Yilmaz';
  ps[2]!.state = 'waiting-room';
  ps[0]!.e2eeCapable = false;
  assert.equal(encodeParticipantList(10, as(ps), producers, chats, ''), reference(10, ps, producers, chats), 'after name, state and e2ee changes');
  const decoded = pb.Envelope.decode(encodeParticipantList(11, as(ps), producers, chats, ''));
  assert.equal(decoded.response!.participants!.participants!.map((p) => p.role), [pb.Role.HOST, pb.Role.COHOST, pb.Role.PARTICIPANT]);
});

test('shared per meeting: every requester gets its own producers left out, and every change of the roster, a producer or a chat shows at once', () => {
  const meeting = {};
  const as = (list: Fake[]): GatewayParticipant[] => list as unknown as GatewayParticipant[];
  const a: Fake = { id: 'p-a', displayName: 'Frau Schmidt', role: 'host', state: 'admitted', e2eeCapable: true, admittedSeq: 1 };
  const b: Fake = { id: 'p-b', displayName: 'Herr Yilmaz', role: 'participant', state: 'admitted', e2eeCapable: false, admittedSeq: 2 };
  const c: Fake = { id: 'p-c', displayName: 'Frau Novak', role: 'participant', state: 'admitted', e2eeCapable: true, admittedSeq: 3 };
  const all: ProducerInfo[] = [
    { id: 'pr-a', participantId: 'p-a', source: 'microphone', kind: 'audio', paused: false },
    { id: 'pr-b', participantId: 'p-b', source: 'camera', kind: 'video', paused: false },
  ];
  const chats: Array<[string, string]> = [['dp-a', 'p-a'], ['dp-b', 'p-b']];
  // What each requester is sent: others' producers and chats only.
  const forA = (): [ProducerInfo[], Array<[string, string]>] => [all.filter((p) => p.participantId !== 'p-a'), chats.filter(([, pid]) => pid !== 'p-a')];
  const forB = (): [ProducerInfo[], Array<[string, string]>] => [all.filter((p) => p.participantId !== 'p-b'), chats.filter(([, pid]) => pid !== 'p-b')];
  let roster: Fake[] = [a, b];
  let id = 100;
  const check = (what: string): void => {
    for (const [who, [prods, ch]] of [['a', forA()], ['b', forB()]] as const) {
      id++;
      assert.equal(encodeParticipantList(id, as(roster), prods, ch, 'p-b', meeting), reference(id, roster, prods, ch, 'p-b'), `${what}, as seen by ${who}`);
      // Asked again unchanged: the same bytes from the cache.
      assert.equal(encodeParticipantList(id, as(roster), prods, ch, 'p-b', meeting), reference(id, roster, prods, ch, 'p-b'), `${what}, again, as seen by ${who}`);
    }
  };
  check('two participants');
  roster = [a, b, c];
  check('after a join');
  c.displayName = 'Frau Nowak';
  check('after a name change');
  b.role = 'cohost';
  check('after a role change');
  roster = [a, c];
  check('after a leave');
  roster = [c, a];
  check('in another order');
  c.admittedSeq = 9;
  check('after a new admission number');
  a.e2eeCapable = false;
  check('after an E2EE capability change');
  all[1] = { ...all[1]!, paused: true };
  check('after a producer paused');
  all.push({ id: 'pr-c', participantId: 'p-c', source: 'screen-video', kind: 'video', paused: false, replacesProducerId: 'pr-x' });
  check('after a new producer');
  all.splice(0, 1);
  chats.splice(1, 1);
  check('after a producer and a chat closed');
  // Many producers come and go: the meeting's entry cache stays bounded by what is open.
  for (let k = 0; k < 500; k++) {
    const one: ProducerInfo[] = [{ id: `tmp-${k}`, participantId: 'p-c', source: 'microphone', kind: 'audio', paused: false }];
    assert.equal(encodeParticipantList(k + 1, as(roster), one, [], '', meeting), reference(k + 1, roster, one, []), `short-lived producer ${k}`);
  }
  assert.ok(_cachedEntryCount(meeting) <= 2 * 1 + 16 + 1, `${_cachedEntryCount(meeting)} entries held for one open producer`);
});

test('through the real gateway: get_participants lists whoever is in the meeting now, with current roles', async () => {
  const t = await testGateway({ settings: { waitingRoom: false, hostRequiredToStart: false } });
  try {
    const host = await t.client();
    const hj = await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await t.hostToken(), e2eeCapable: true });
    const g1 = await t.client();
    const j1 = await g1.join({ meetingId: MEETING, displayName: 'Herr Yilmaz', joinToken: await t.userToken('yilmaz@eltern.de'), e2eeCapable: true });
    const roster = async (): Promise<Map<string, number>> => {
      const r = await g1.call({ getParticipants: {} });
      return new Map(r.participants!.participants!.map((p) => [String(p.participantId), Number(p.role)]));
    };
    assert.equal(await roster(), new Map([[hj.participantId, pb.Role.HOST], [j1.participantId, pb.Role.PARTICIPANT]]));
    // Asked again (from the cache) after a change: the new role, and a newcomer.
    await host.call({ makeCohost: { participantId: j1.participantId } });
    const g2 = await t.client();
    const j2 = await g2.join({ meetingId: MEETING, displayName: 'Frau Novak', joinToken: await t.userToken('novak@eltern.de'), e2eeCapable: false });
    assert.equal(await roster(), new Map([[hj.participantId, pb.Role.HOST], [j1.participantId, pb.Role.COHOST], [j2.participantId, pb.Role.PARTICIPANT]]));
    // Someone leaves: gone from the list.
    await g2.call({ leave: {} });
    assert.equal(await roster(), new Map([[hj.participantId, pb.Role.HOST], [j1.participantId, pb.Role.COHOST]]));
  } finally {
    await t.close();
  }
});

test.run();
