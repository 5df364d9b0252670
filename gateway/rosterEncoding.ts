// The get_participants answer, encoded with the roster entries cached (issue 14).
//
// Encoding the roster is most of a get_participants request's own cost: with protobufjs about
// 7 us for 10 people and 21 us for 50 (bench/micro.ts), and the answer is re-encoded for every
// request although the roster rarely changes. Here each participant's encoded ParticipantInfo is
// kept with the participant (a WeakMap, so it goes with the participant object) and reused while
// the fields it carries are the same; the envelope around the entries is framed by hand. The
// bytes are exactly those that pb.Envelope.encode() writes for the same message
// (test/gateway-roster.test.ts compares them), so clients see no difference.
import protobuf from 'protobufjs/minimal.js';
import type { GatewayParticipant } from './model.js';
import { participantToWire } from './Session.js';
import { pb, producerToWire } from './wire.js';
import type { ProducerInfo } from '../lib/model/types.js';

interface CachedEntry {
  displayName: string;
  role: GatewayParticipant['role'];
  state: GatewayParticipant['state'];
  e2eeCapable: boolean;
  bytes: Uint8Array;
}

const entries = new WeakMap<GatewayParticipant, CachedEntry>();

/** The encoded ParticipantInfo of `p`, from the cache while its fields are unchanged. */
function participantBytes(p: GatewayParticipant): Uint8Array {
  const c = entries.get(p);
  if (c && c.displayName === p.displayName && c.role === p.role && c.state === p.state && c.e2eeCapable === p.e2eeCapable) return c.bytes;
  const bytes = pb.ParticipantInfo.encode(participantToWire(p)).finish();
  entries.set(p, { displayName: p.displayName, role: p.role, state: p.state, e2eeCapable: p.e2eeCapable, bytes });
  return bytes;
}

// Wire tags (field number << 3 | wire type 2, length-delimited; 0 for the varint id).
const ENVELOPE_ID = (1 << 3) | 0;
const ENVELOPE_RESPONSE = (3 << 3) | 2;
const RESPONSE_PARTICIPANTS = (12 << 3) | 2;
const LIST_PARTICIPANTS = (1 << 3) | 2;
const LIST_PRODUCERS = (2 << 3) | 2;
const LIST_DATA_PRODUCERS = (3 << 3) | 2;
const LIST_ACTIVE_SPEAKER = (143 << 3) | 2;

/**
 * The whole response envelope `{ id, response: { participants: ParticipantList } }` for request
 * `id`: the roster (cached entries), the producers and the chat data producers a late joiner may
 * consume, and who is speaking now ('' for nobody: left out, as protobufjs leaves out an empty
 * proto3 string).
 */
export function encodeParticipantList(
  id: number,
  participants: readonly GatewayParticipant[],
  producers: readonly ProducerInfo[],
  dataProducers: ReadonlyArray<readonly [string, string]>,
  activeSpeakerId: string,
): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32(ENVELOPE_ID).uint32(id);
  w.uint32(ENVELOPE_RESPONSE).fork();
  w.uint32(RESPONSE_PARTICIPANTS).fork();
  for (const p of participants) w.uint32(LIST_PARTICIPANTS).bytes(participantBytes(p));
  for (const p of producers) pb.ProducerInfo.encode(producerToWire(p), w.uint32(LIST_PRODUCERS).fork()).ldelim();
  for (const [dataProducerId, participantId] of dataProducers) {
    pb.DataProducerInfo.encode({ id: dataProducerId, participantId }, w.uint32(LIST_DATA_PRODUCERS).fork()).ldelim();
  }
  if (activeSpeakerId !== '') w.uint32(LIST_ACTIVE_SPEAKER).string(activeSpeakerId);
  w.ldelim();
  w.ldelim();
  return w.finish();
}
