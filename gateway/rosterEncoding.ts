// The get_participants answer, encoded from cached parts (issue 14).
//
// Encoding the roster is most of a get_participants request's own cost: with protobufjs about
// 7 us for 10 people and 21 us for 50 (bench/micro.ts), and the answer is re-encoded for every
// request although the roster rarely changes. Here:
// - each participant's encoded ParticipantInfo is kept with the participant (a WeakMap, so it goes
//   with the participant object) and reused while the fields it carries are the same;
// - the whole participants part of the list (every entry with its tag and length) is kept per
//   meeting and reused while the meeting lists the same participants, in the same order, with the
//   same entries: any join, leave, role, state, name or admission change builds it again;
// - producers and chat channels (which differ per requester: one's own are left out) are kept as
//   encoded entries per meeting, checked field by field;
// - the envelope around the parts is framed by hand into one buffer.
// The bytes are exactly those that pb.Envelope.encode() writes for the same message
// (test/gateway-roster.test.ts compares them), so clients see no difference. Nothing is cached
// by time or by event: every request compares what it is about to send with what the cache
// holds, so a change the gateway was not told about cannot leave a stale roster.
import type { GatewayParticipant } from './model.js';
import { participantToWire } from './Session.js';
import { pb, producerToWire } from './wire.js';
import type { ProducerInfo } from '../lib/model/types.js';

interface CachedEntry {
  displayName: string;
  role: GatewayParticipant['role'];
  state: GatewayParticipant['state'];
  e2eeCapable: boolean;
  admittedSeq: number;
  bytes: Uint8Array;
}

const entries = new WeakMap<GatewayParticipant, CachedEntry>();

/** The encoded ParticipantInfo of `p`, from the cache while its fields are unchanged (the same object then). */
function participantBytes(p: GatewayParticipant): Uint8Array {
  const c = entries.get(p);
  const seq = p.admittedSeq ?? 0;
  if (c && c.displayName === p.displayName && c.role === p.role && c.state === p.state && c.e2eeCapable === p.e2eeCapable && c.admittedSeq === seq) return c.bytes;
  const bytes = pb.ParticipantInfo.encode(participantToWire(p)).finish();
  entries.set(p, { displayName: p.displayName, role: p.role, state: p.state, e2eeCapable: p.e2eeCapable, admittedSeq: seq, bytes });
  return bytes;
}

// Wire tags (field number << 3 | wire type 2, length-delimited; 0 for the varint id), as varint bytes.
const ENVELOPE_ID = 1 << 3;
const ENVELOPE_RESPONSE = (3 << 3) | 2;
const RESPONSE_PARTICIPANTS = (12 << 3) | 2;
const LIST_PARTICIPANTS = (1 << 3) | 2;
const LIST_PRODUCERS = (2 << 3) | 2;
const LIST_DATA_PRODUCERS = (3 << 3) | 2;
const LIST_ACTIVE_SPEAKER = (143 << 3) | 2;

function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Writes `v` (an unsigned 32-bit value) as a varint at `at`; returns the next offset. */
function writeVarint(buf: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at++] = v;
  return at;
}

/** One tag + length + bytes field, pre-framed. */
function field(tag: number, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(varintSize(tag) + varintSize(bytes.length) + bytes.length);
  out.set(bytes, writeVarint(out, writeVarint(out, 0, tag), bytes.length));
  return out;
}

interface ParticipantsPart {
  members: GatewayParticipant[];
  entries: Uint8Array[];
  bytes: Buffer;
}

interface ProducerEntry {
  info: ProducerInfo;
  bytes: Buffer;
}

/** What one meeting's answers share: see the file comment. Keyed by the meeting object. */
interface MeetingCache {
  participants?: ParticipantsPart;
  producers: Map<string, ProducerEntry>;
  chats: Map<string, { participantId: string; bytes: Buffer }>;
}

const meetings = new WeakMap<object, MeetingCache>();

function participantsPart(cache: MeetingCache, participants: readonly GatewayParticipant[]): Buffer {
  const held = cache.participants;
  if (held && held.members.length === participants.length) {
    let same = true;
    for (let i = 0; i < participants.length; i++) {
      const p = participants[i]!;
      if (held.members[i] !== p || held.entries[i] !== participantBytes(p)) {
        same = false;
        break;
      }
    }
    if (same) return held.bytes;
  }
  const list = participants.map(participantBytes);
  const bytes = Buffer.concat(list.map((b) => field(LIST_PARTICIPANTS, b)));
  cache.participants = { members: [...participants], entries: list, bytes };
  return bytes;
}

function sameProducer(a: ProducerInfo, b: ProducerInfo): boolean {
  return a.id === b.id && a.participantId === b.participantId && a.source === b.source && a.kind === b.kind && a.paused === b.paused && (a.replacesProducerId ?? '') === (b.replacesProducerId ?? '');
}

/** Drops entries of a meeting's map that are not in `current` once it holds far more than that. */
function prune<V>(map: Map<string, V>, current: Iterable<string>, size: number): void {
  if (map.size <= 2 * size + 16) return;
  const keep = new Set(current);
  for (const k of map.keys()) if (!keep.has(k)) map.delete(k);
}

function producerBytes(cache: MeetingCache | undefined, p: ProducerInfo): Buffer {
  const e = cache?.producers.get(p.id);
  if (e && sameProducer(e.info, p)) return e.bytes;
  const bytes = field(LIST_PRODUCERS, pb.ProducerInfo.encode(producerToWire(p)).finish());
  cache?.producers.set(p.id, { info: { ...p }, bytes });
  return bytes;
}

function chatBytes(cache: MeetingCache | undefined, dataProducerId: string, participantId: string): Buffer {
  const e = cache?.chats.get(dataProducerId);
  if (e && e.participantId === participantId) return e.bytes;
  const bytes = field(LIST_DATA_PRODUCERS, pb.DataProducerInfo.encode({ id: dataProducerId, participantId }).finish());
  cache?.chats.set(dataProducerId, { participantId, bytes });
  return bytes;
}

/**
 * The whole response envelope `{ id, response: { participants: ParticipantList } }` for request
 * `id`: the roster, the producers and the chat data producers a late joiner may consume, and who
 * is speaking now ('' for nobody: left out, as protobufjs leaves out an empty proto3 string).
 * `meeting` is the key the shared parts are cached under (the meeting object); without it
 * nothing is shared beyond the per-participant entries.
 */
export function encodeParticipantList(
  id: number,
  participants: readonly GatewayParticipant[],
  producers: readonly ProducerInfo[],
  dataProducers: ReadonlyArray<readonly [string, string]>,
  activeSpeakerId: string,
  meeting?: object,
): Buffer {
  let cache: MeetingCache | undefined;
  if (meeting) {
    cache = meetings.get(meeting);
    if (!cache) meetings.set(meeting, (cache = { producers: new Map(), chats: new Map() }));
  }
  // Shared per meeting, or (no key) each participant's cached entry framed straight into the answer.
  const people = cache ? participantsPart(cache, participants) : undefined;
  const entries = people ? undefined : participants.map(participantBytes);
  let listLength = people ? people.length : 0;
  if (entries) for (const e of entries) listLength += 1 + varintSize(e.length) + e.length;
  const prods: Buffer[] = [];
  for (const p of producers) {
    const b = producerBytes(cache, p);
    prods.push(b);
    listLength += b.length;
  }
  const chats: Buffer[] = [];
  for (const [dataProducerId, participantId] of dataProducers) {
    const b = chatBytes(cache, dataProducerId, participantId);
    chats.push(b);
    listLength += b.length;
  }
  if (cache) {
    prune(cache.producers, producers.map((p) => p.id), producers.length);
    prune(cache.chats, dataProducers.map(([d]) => d), dataProducers.length);
  }
  const speaker = activeSpeakerId === '' ? undefined : Buffer.from(activeSpeakerId, 'utf8');
  if (speaker) listLength += varintSize(LIST_ACTIVE_SPEAKER) + varintSize(speaker.length) + speaker.length;
  const responseLength = varintSize(RESPONSE_PARTICIPANTS) + varintSize(listLength) + listLength;
  const total = 1 + varintSize(id >>> 0) + 1 + varintSize(responseLength) + responseLength;
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  out[at++] = ENVELOPE_ID;
  at = writeVarint(out, at, id >>> 0);
  out[at++] = ENVELOPE_RESPONSE;
  at = writeVarint(out, at, responseLength);
  out[at++] = RESPONSE_PARTICIPANTS;
  at = writeVarint(out, at, listLength);
  if (people) {
    out.set(people, at);
    at += people.length;
  } else {
    for (const e of entries!) {
      out[at++] = LIST_PARTICIPANTS;
      at = writeVarint(out, at, e.length);
      out.set(e, at);
      at += e.length;
    }
  }
  for (const b of prods) {
    out.set(b, at);
    at += b.length;
  }
  for (const b of chats) {
    out.set(b, at);
    at += b.length;
  }
  if (speaker) {
    at = writeVarint(out, at, LIST_ACTIVE_SPEAKER);
    at = writeVarint(out, at, speaker.length);
    out.set(speaker, at);
  }
  return out;
}

/** @internal For tests: producer and chat entries a meeting's cache holds. */
export function _cachedEntryCount(meeting: object): number {
  const c = meetings.get(meeting);
  return c ? c.producers.size + c.chats.size : 0;
}
