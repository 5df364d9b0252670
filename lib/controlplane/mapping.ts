// From the meeting model's objects to allow-listed control-plane messages. This is the one place
// that reads model objects for the control plane, and it copies named fields one by one: nothing is
// spread, so a field added to Meeting or Participant tomorrow cannot leak by accident.
import type { MeetingSettings, PollResults } from '../model/types.js';
import type {
  MeetingEndedMessage,
  MeetingSettingsMessage,
  MeetingStartedMessage,
  MeetingUpdatedMessage,
  ParticipantJoinedMessage,
  ParticipantLeftMessage,
  PollResultsMessage,
} from './allowList.js';

/**
 * What the adapter reads from a participant. The model's Participant satisfies it; the optional
 * fields are read when the model provides them.
 */
export interface ParticipantView {
  readonly id: string;
  readonly identity: string;
  readonly displayName: string;
  /** Verified join token: only then is the e-mail a registered participant's. */
  readonly authenticated?: boolean;
  readonly email?: string | undefined;
  /** Client IP address. */
  readonly address?: string | undefined;
  /** MAC address, only if the client reported one. */
  readonly macAddress?: string | undefined;
  readonly profilePictureUrl?: string | undefined;
}

/** What the adapter reads from a meeting. The model's Meeting satisfies it. */
export interface MeetingView {
  readonly id: string;
  readonly accountId: string;
  readonly title: string;
  readonly settings: Readonly<MeetingSettings>;
  readonly startedAt?: Date | undefined;
  readonly endedAt?: Date | undefined;
  readonly passwordHash?: string | undefined;
  readonly host: ParticipantView | undefined;
  readonly participants: readonly ParticipantView[];
  // From MeetingInit, where the model keeps them.
  readonly hostIdentity?: string;
  readonly hostName?: string | undefined;
  readonly hostEmail?: string | undefined;
  readonly hostProfilePictureUrl?: string | undefined;
  readonly scheduledStart?: Date | undefined;
  readonly scheduledDurationMinutes?: number | undefined;
  readonly recurrence?: { type: string; durationWeeks?: number | undefined } | undefined;
  readonly hostTimeZone?: string | undefined;
  readonly dialInNumbers?: readonly string[] | undefined;
}

const ms = (d: Date | undefined): number => (d ? d.getTime() : 0);

/** Settings (all, or only the given ones) as the allow-listed message. */
export function settingsMessage(settings: Partial<MeetingSettings>): MeetingSettingsMessage {
  const out: MeetingSettingsMessage = {};
  if (settings.passwordRequired !== undefined) out.passwordRequired = settings.passwordRequired;
  if (settings.waitingRoom !== undefined) out.waitingRoom = settings.waitingRoom;
  if (settings.hostRequiredToStart !== undefined) out.hostRequiredToStart = settings.hostRequiredToStart;
  if (settings.e2ee !== undefined) out.e2ee = settings.e2ee;
  if (settings.maxParticipants !== undefined) out.maxParticipants = settings.maxParticipants;
  if (settings.allowScreenShare !== undefined) out.allowScreenShare = settings.allowScreenShare;
  if (settings.allowChat !== undefined) out.allowChat = settings.allowChat;
  if (settings.muteOnEntry !== undefined) out.muteOnEntry = settings.muteOnEntry;
  if (settings.allowGuests !== undefined) out.allowGuests = settings.allowGuests;
  if (settings.allowedRegions !== undefined) out.allowedRegions = [...settings.allowedRegions];
  if (settings.retentionDays !== undefined) out.retentionDays = settings.retentionDays;
  if (settings.onHostLeave !== undefined) out.onHostLeave = settings.onHostLeave;
  return out;
}

function description(m: MeetingView, host = m.host): NonNullable<MeetingUpdatedMessage['meeting']> {
  const out: NonNullable<MeetingUpdatedMessage['meeting']> = {
    title: m.title,
    host: {
      name: host?.displayName ?? m.hostName ?? '',
      email: host?.email ?? m.hostEmail ?? '',
      profilePictureUrl: host?.profilePictureUrl ?? m.hostProfilePictureUrl ?? '',
    },
    passwordHash: m.passwordHash ?? '',
    settings: settingsMessage(m.settings),
    scheduledStartMs: ms(m.scheduledStart),
    scheduledDurationMinutes: m.scheduledDurationMinutes ?? 0,
    hostTimeZone: m.hostTimeZone ?? '',
    dialInNumbers: [...(m.dialInNumbers ?? [])],
  };
  if (m.recurrence) out.recurrence = { type: m.recurrence.type, durationWeeks: m.recurrence.durationWeeks ?? 0 };
  return out;
}

export function meetingStarted(m: MeetingView): MeetingStartedMessage {
  return { meeting: description(m), actualStartMs: ms(m.startedAt ?? new Date()) };
}

/** The meeting's description; `host` overrides who is named host (a transfer in progress). */
export function meetingUpdated(m: MeetingView, host?: ParticipantView): MeetingUpdatedMessage {
  return { meeting: description(m, host ?? m.host) };
}

export function meetingEnded(m: Pick<MeetingView, 'startedAt' | 'endedAt'>, displayNames: readonly string[]): MeetingEndedMessage {
  const start = ms(m.startedAt);
  const end = ms(m.endedAt ?? new Date());
  return {
    actualStartMs: start,
    actualEndMs: end,
    actualDurationSeconds: start > 0 ? Math.max(0, Math.round((end - start) / 1000)) : 0,
    participantCount: displayNames.length,
    participantDisplayNames: [...displayNames],
  };
}

export function participantJoined(m: MeetingView, p: ParticipantView): ParticipantJoinedMessage {
  return {
    displayName: p.displayName,
    // Only a registered participant's address is on the list; a guest's self-typed one is not.
    email: p.authenticated === true && p.email ? p.email : '',
    ipAddress: p.address ?? '',
    macAddress: p.macAddress ?? '',
    participantCount: m.participants.length,
  };
}

export function participantLeft(m: MeetingView, p: ParticipantView): ParticipantLeftMessage {
  return {
    displayName: p.displayName,
    participantCount: m.participants.filter((x) => x.id !== p.id).length,
  };
}

export function pollResults(r: PollResults): PollResultsMessage {
  return {
    question: r.question,
    options: [...r.options],
    counts: [...r.counts],
    answers: r.answers.map((a) => ({ displayName: a.displayName, option: a.option })),
  };
}
