// The allow-list of what may leave this process for the control plane, enforced at run time.
//
// proto/controlplane.proto is the list: the generated static code (proto/gen/controlplane.js)
// encodes, and the same .proto file, loaded through protobufjs reflection, gives the check below
// its field names. protobufjs' encoders silently drop properties they do not know, which is the
// wrong behaviour for a privacy promise: a caller that smuggles `chatText` into a message must
// hear FIELD_NOT_ALLOWED, not have it quietly dropped today and sent tomorrow when somebody adds a
// field of that name. So every event is walked against the declared fields before it is stored.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { c4v } from '../../proto/gen/controlplane.js';
import { C4vError, SetupError } from '../errors.js';

export const pb = c4v.controlplane.v1;

/** The message kinds the control plane may receive, as named in ControlPlaneEvent's oneof. */
export const MESSAGE_KINDS = [
  'meetingStarted',
  'meetingUpdated',
  'meetingEnded',
  'participantJoined',
  'participantLeft',
  'pollResults',
  'settingsChanged',
] as const;
export type MessageKind = (typeof MESSAGE_KINDS)[number];

/** Property shapes of the allow-listed messages (what the generated code accepts). */
export type MeetingStartedMessage = c4v.controlplane.v1.MeetingStarted.$Properties;
export type MeetingUpdatedMessage = c4v.controlplane.v1.MeetingUpdated.$Properties;
export type MeetingEndedMessage = c4v.controlplane.v1.MeetingEnded.$Properties;
export type ParticipantJoinedMessage = c4v.controlplane.v1.ParticipantJoined.$Properties;
export type ParticipantLeftMessage = c4v.controlplane.v1.ParticipantLeft.$Properties;
export type PollResultsMessage = c4v.controlplane.v1.PollResults.$Properties;
export type SettingsChangedMessage = c4v.controlplane.v1.SettingsChanged.$Properties;
export type MeetingSettingsMessage = c4v.controlplane.v1.MeetingSettings.$Properties;
export type ControlPlaneEventMessage = c4v.controlplane.v1.ControlPlaneEvent.$Properties;

/**
 * The adapter's input: exactly one allow-listed message, keyed by its kind. Nothing else type-checks,
 * and `assertAllowListed` refuses at run time what a cast smuggled past the compiler.
 */
export type ControlPlaneMessage =
  | { meetingStarted: MeetingStartedMessage }
  | { meetingUpdated: MeetingUpdatedMessage }
  | { meetingEnded: MeetingEndedMessage }
  | { participantJoined: ParticipantJoinedMessage }
  | { participantLeft: ParticipantLeftMessage }
  | { pollResults: PollResultsMessage }
  | { settingsChanged: SettingsChangedMessage };

function protoPath(): string {
  // The compiled module (dist/lib/controlplane/) sits three levels below the package root, where
  // proto/ is (package.json ships it); the TypeScript source (lib/controlplane/) two levels.
  const path = fileURLToPath(new URL('../../../proto/controlplane.proto', import.meta.url));
  const fallback = fileURLToPath(new URL('../../proto/controlplane.proto', import.meta.url));
  if (existsSync(path)) return path;
  if (existsSync(fallback)) return fallback;
  throw new SetupError('INTERNAL', `the control-plane allow-list ${path} is missing; reinstall the package`);
}

let reflected: protobuf.Type | undefined;

/** The ControlPlaneEvent type as declared in proto/controlplane.proto (reflection, loaded once). */
export function eventType(): protobuf.Type {
  if (!reflected) {
    const root = protobuf.loadSync(protoPath());
    root.resolveAll();
    reflected = root.lookupType('c4v.controlplane.v1.ControlPlaneEvent');
  }
  return reflected;
}

/** The type of one message kind (reflection). */
function kindType(kind: MessageKind): protobuf.Type {
  const field = eventType().fields[kind];
  if (!field?.resolvedType || !(field.resolvedType instanceof protobuf.Type)) {
    throw new SetupError('INTERNAL', `controlplane.proto has no message field ${kind}`);
  }
  return field.resolvedType;
}

function fieldNotAllowed(path: string): C4vError {
  return new C4vError('FIELD_NOT_ALLOWED', `${path} is not on the control-plane allow-list (proto/controlplane.proto)`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

// Walks `value` against `type`'s declared fields: every own key must be a declared field, nested
// messages recurse, scalars must be scalars. Reports the first offending path.
function walk(value: unknown, type: protobuf.Type, path: string): void {
  if (!isPlainObject(value)) {
    // A class instance (a Participant, a Buffer) could carry anything and be serialised later
    // by someone's toJSON: only plain data objects are accepted.
    throw new TypeError(`${path} must be a plain object, got ${value === null ? 'null' : typeof value}`);
  }
  for (const key of Reflect.ownKeys(value)) {
    if (typeof key === 'symbol') throw fieldNotAllowed(`${path}[symbol]`);
    const field = type.fields[key];
    if (!field) throw fieldNotAllowed(`${path}.${key}`);
    const v = value[key];
    if (v === undefined || v === null) continue;
    const items = field.repeated ? v : [v];
    if (field.repeated && !Array.isArray(v)) throw new TypeError(`${path}.${key} must be an array`);
    (items as unknown[]).forEach((item, i) => {
      const at = field.repeated ? `${path}.${key}[${i}]` : `${path}.${key}`;
      if (field.resolvedType instanceof protobuf.Type) walk(item, field.resolvedType, at);
      else if (typeof item === 'object' && item !== null) {
        // An object where a string or number belongs would be stringified by someone, somewhere.
        throw new TypeError(`${at} must be a ${field.type}, got an object`);
      }
    });
  }
  const problem = type.verify(value);
  if (problem) throw new TypeError(`${path}: ${problem}`);
}

/**
 * Checks that `message` is exactly one allow-listed message with only declared fields, and
 * returns its kind. Throws C4vError FIELD_NOT_ALLOWED for an undeclared field (at any depth) or an
 * unknown message kind, TypeError for a wrong value type. Nothing is stored or sent on a throw.
 */
export function assertAllowListed(message: ControlPlaneMessage): MessageKind {
  if (!isPlainObject(message)) throw new TypeError('a control-plane message must be a plain object');
  const keys = Reflect.ownKeys(message);
  if (keys.length !== 1 || typeof keys[0] !== 'string') {
    throw new TypeError(`a control-plane message carries exactly one message kind, got ${keys.length}`);
  }
  const kind = keys[0];
  if (!(MESSAGE_KINDS as readonly string[]).includes(kind)) throw fieldNotAllowed(`message kind ${kind}`);
  const body = (message as Record<string, unknown>)[kind];
  walk(body, kindType(kind as MessageKind), kind);
  return kind as MessageKind;
}

/** Encodes a checked message into a ControlPlaneEvent (protobuf bytes). */
export function encodeEvent(
  envelope: { eventId: string; meetingId: string; sequence: number; meetingInstanceId?: string },
  message: ControlPlaneMessage,
): Uint8Array {
  return pb.ControlPlaneEvent.encode({ ...envelope, ...message } as ControlPlaneEventMessage).finish();
}

/**
 * A decoded event as plain JSON-safe data: exactly the declared fields that are set (protobuf's
 * JSON mapping with lowerCamelCase names, int64 as numbers), the message under its kind's key.
 */
export interface RenderedEvent {
  eventId: string;
  meetingId: string;
  sequence: number;
  /** Absent for events stored before meeting instances existed. */
  meetingInstanceId?: string;
  [kind: string]: unknown;
}

/**
 * Decodes ControlPlaneEvent bytes and renders them as plain data. Decoding through the generated
 * code is a second guarantee: only declared fields can come out, whatever is stored.
 */
export function renderEvent(bytes: Uint8Array): RenderedEvent {
  const decoded = pb.ControlPlaneEvent.decode(bytes);
  if (!decoded.event) throw new TypeError('a control-plane event without a message');
  const object = pb.ControlPlaneEvent.toObject(decoded, { longs: Number, oneofs: false, defaults: false, arrays: false });
  return { sequence: 0, ...object } as RenderedEvent;
}
