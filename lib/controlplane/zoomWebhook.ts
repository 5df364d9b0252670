// The control-plane events in Zoom's webhook format (`format: 'zoom-webhook'` on the HTTP sink).
//
// The renderer is given the stored event bytes only, and decodes them through the generated code
// of proto/controlplane.proto: whatever it writes comes from a declared (allow-listed) field of
// that one event. It keeps no state and looks nothing up, so a Zoom field whose source is not on
// the allow-list (host_id, account_id, a participant's join_time or user id, ...) is left out,
// never filled from elsewhere. The README's "Zoom webhook mapping" table lists every field.
import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  renderEvent,
  type MeetingEndedMessage,
  type MeetingSettingsMessage,
  type MeetingStartedMessage,
  type MeetingUpdatedMessage,
  type MessageKind,
  type ParticipantJoinedMessage,
  type ParticipantLeftMessage,
  type SettingsChangedMessage,
} from './allowList.js';

type Description = NonNullable<MeetingUpdatedMessage['meeting']>;

/** Zoom's webhook request headers. */
export const ZOOM_SIGNATURE_HEADER = 'x-zm-signature';
export const ZOOM_TIMESTAMP_HEADER = 'x-zm-request-timestamp';

/** A Zoom-style webhook body: `event`, `event_ts` and `payload.object`. */
export interface ZoomWebhook {
  /** Zoom's event name, e.g. "meeting.started". */
  event: string;
  /** Milliseconds since the epoch: when this webhook was rendered (sent), see the README. */
  event_ts: number;
  payload: { object: Record<string, unknown> };
}

/** The Zoom event name each allow-listed message kind becomes; poll results have none. */
export const ZOOM_EVENT_NAMES: Readonly<Record<MessageKind, string | undefined>> = Object.freeze({
  meetingUpdated: 'meeting.updated', // 'meeting.created' for a meeting's first event (sequence 1)
  meetingStarted: 'meeting.started',
  meetingEnded: 'meeting.ended',
  participantJoined: 'meeting.participant_joined',
  participantLeft: 'meeting.participant_left',
  settingsChanged: 'meeting.updated',
  pollResults: undefined,
});

// Zoom's meeting types: 1 instant, 2 scheduled, 8 recurring with a fixed time.
const INSTANT = 1;
const SCHEDULED = 2;
const RECURRING_FIXED_TIME = 8;
// Zoom's recurrence types.
const RECURRENCE_TYPES: Record<string, number> = { daily: 1, weekly: 2, monthly: 3 };
const WEEK_MS = 7 * 86_400_000;

const iso = (ms: unknown): string | undefined => {
  const n = Number(ms);
  // Zoom writes times as ISO 8601 UTC without milliseconds.
  return n > 0 ? new Date(n).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
};

/** Sets `key` only when the value is there: an unset proto field stays out of the webhook. */
function put(out: Record<string, unknown>, key: string, value: unknown): void {
  if (value === undefined || value === null || value === '') return;
  out[key] = value;
}

function zoomSettings(s: MeetingSettingsMessage | null | undefined): Record<string, unknown> | undefined {
  if (!s) return undefined;
  const out: Record<string, unknown> = {};
  // renderEvent gives only the fields that are set: a change carries only what changed.
  if (s.waitingRoom != null) out.waiting_room = s.waitingRoom;
  if (s.hostRequiredToStart != null) out.join_before_host = !s.hostRequiredToStart;
  if (s.muteOnEntry != null) out.mute_upon_entry = s.muteOnEntry;
  // Transport encryption is always on; only 'required' end-to-end encryption is Zoom's "e2ee".
  if (s.e2ee != null) out.encryption_type = s.e2ee === 'required' ? 'e2ee' : 'enhanced_encryption';
  if (s.allowGuests != null) out.meeting_authentication = !s.allowGuests;
  return Object.keys(out).length > 0 ? out : undefined;
}

function describeMeeting(out: Record<string, unknown>, d: Description | null | undefined, startMs?: number): void {
  if (!d) return;
  put(out, 'topic', d.title);
  const scheduled = Number(d.scheduledStartMs) > 0;
  const recurring = Boolean(d.recurrence?.type);
  out.type = recurring && scheduled ? RECURRING_FIXED_TIME : scheduled ? SCHEDULED : INSTANT;
  put(out, 'start_time', iso(startMs ?? d.scheduledStartMs));
  if (d.scheduledDurationMinutes) out.duration = d.scheduledDurationMinutes;
  put(out, 'timezone', d.hostTimeZone);
  if (recurring) {
    const r: Record<string, unknown> = {};
    put(r, 'type', RECURRENCE_TYPES[d.recurrence!.type!]);
    if (scheduled && d.recurrence!.durationWeeks) {
      put(r, 'end_date_time', iso(Number(d.scheduledStartMs) + d.recurrence!.durationWeeks * WEEK_MS));
    }
    if (Object.keys(r).length > 0) out.recurrence = r;
  }
  put(out, 'settings', zoomSettings(d.settings));
}

/**
 * Renders one stored control-plane event (ControlPlaneEvent bytes) as a Zoom-style webhook body,
 * or undefined for a kind Zoom has no meeting event for (poll results). `now` is the event_ts.
 */
export function renderZoomWebhook(bytes: Uint8Array, now: number = Date.now()): ZoomWebhook | undefined {
  // Decoded through the generated code: only declared fields can come out, whatever is stored.
  const e = renderEvent(bytes);
  const kind = (Object.keys(ZOOM_EVENT_NAMES) as MessageKind[]).find((k) => e[k] !== undefined);
  if (!kind) throw new TypeError('a control-plane event without a message');
  let name = ZOOM_EVENT_NAMES[kind];
  if (!name) return undefined;
  // Zoom's uuid names one instance of a meeting id: our meeting_instance_id (a random id per
  // instance, issue 10), or the meeting id itself for events stored before instances existed.
  const object: Record<string, unknown> = { id: e.meetingId, uuid: e.meetingInstanceId || e.meetingId };
  switch (kind) {
    case 'meetingUpdated':
      // The adapter's first event of a meeting is the MeetingUpdated of its creation.
      if (Number(e.sequence) === 1) name = 'meeting.created';
      describeMeeting(object, (e.meetingUpdated as MeetingUpdatedMessage).meeting);
      break;
    case 'meetingStarted': {
      const m = e.meetingStarted as MeetingStartedMessage;
      describeMeeting(object, m.meeting, Number(m.actualStartMs) || undefined);
      break;
    }
    case 'meetingEnded': {
      const m = e.meetingEnded as MeetingEndedMessage;
      put(object, 'start_time', iso(m.actualStartMs));
      put(object, 'end_time', iso(m.actualEndMs));
      break;
    }
    case 'participantJoined': {
      const m = e.participantJoined as ParticipantJoinedMessage;
      const participant: Record<string, unknown> = {};
      put(participant, 'user_name', m.displayName);
      // Empty for guests: the allow-list carries a registered participant's address only.
      put(participant, 'email', m.email);
      object.participant = participant;
      break;
    }
    case 'participantLeft': {
      const participant: Record<string, unknown> = {};
      put(participant, 'user_name', (e.participantLeft as ParticipantLeftMessage).displayName);
      object.participant = participant;
      break;
    }
    case 'settingsChanged':
      // Zoom's meeting.updated carries the changed fields in payload.object.
      put(object, 'settings', zoomSettings((e.settingsChanged as SettingsChangedMessage).changed));
      break;
    default:
      return undefined;
  }
  return { event: name, event_ts: now, payload: { object } };
}

/** `v0=<hex HMAC-SHA256(secret, "v0:" + timestamp + ":" + body)>`, as Zoom signs its webhooks. */
export function signZoomWebhook(secret: string | Uint8Array, timestamp: string, body: Uint8Array | string): string {
  const mac = createHmac('sha256', secret);
  mac.update(`v0:${timestamp}:`);
  mac.update(body);
  return `v0=${mac.digest('hex')}`;
}

/**
 * What a receiver does, following Zoom's "Verify webhook events" documentation: rebuild
 * `v0:{x-zm-request-timestamp}:{raw body}`, HMAC-SHA256 it with the secret token, compare
 * `v0=<hex>` with x-zm-signature (in constant time), and refuse a timestamp outside the window.
 */
export function verifyZoomWebhook(options: {
  secret: string | Uint8Array;
  headers: Record<string, string | string[] | undefined>;
  body: Uint8Array;
  replayWindowSeconds?: number;
  now?: number;
}): { ok: true } | { ok: false; reason: 'missing-headers' | 'stale-timestamp' | 'bad-signature' } {
  const header = (n: string): string | undefined => {
    const v = options.headers[n];
    return Array.isArray(v) ? v[0] : v;
  };
  const ts = header(ZOOM_TIMESTAMP_HEADER);
  const sig = header(ZOOM_SIGNATURE_HEADER);
  if (!ts || !sig || !/^\d+$/.test(ts)) return { ok: false, reason: 'missing-headers' };
  const now = (options.now ?? Date.now()) / 1000;
  if (Math.abs(now - Number(ts)) > (options.replayWindowSeconds ?? 300)) return { ok: false, reason: 'stale-timestamp' };
  const expected = Buffer.from(signZoomWebhook(options.secret, ts, options.body));
  const got = Buffer.from(sig);
  if (expected.length !== got.length || !timingSafeEqual(expected, got)) return { ok: false, reason: 'bad-signature' };
  return { ok: true };
}
