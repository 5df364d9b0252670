// The meeting model's public contract, shared by the media plane (lib/media), the gateway (edge)
// and the control-plane adapter (lib/controlplane). Implementation: lib/model/*.ts.
//
// CONTRACT NOTE: this file was written before the implementation so that the gateway and the
// control-plane adapter could be built in parallel. Names here are what the other layers use;
// extend it freely, rename only with care (grep the tree).
import type { Region } from '../media/regions.js';

// ---------------------------------------------------------------------------------------------
// Settings and account policy
// ---------------------------------------------------------------------------------------------

export type E2eeMode = 'off' | 'optional' | 'required';

/** What happens when the host leaves and no co-host can take over. */
export type HostLeavePolicy = 'end-meeting' | 'keep-running' | 'wait-for-host';

export interface MeetingSettings {
  /** A join must present the meeting password. */
  passwordRequired: boolean;
  /** Admitted only by the host (or a co-host); stays in force after the host arrives. */
  waitingRoom: boolean;
  /** Nobody is in the meeting before the host joins: all wait with status 'waiting-for-host'. */
  hostRequiredToStart: boolean;
  e2ee: E2eeMode;
  /** Admitted participants (host included) at most. */
  maxParticipants: number;
  allowScreenShare: boolean;
  allowChat: boolean;
  /** Participants' microphones start paused by the server. */
  muteOnEntry: boolean;
  /** Clients without a valid join token may join (as guests). */
  allowGuests: boolean;
  /** Where media may be processed: country codes ('DE') or exact regions ('de-fra'). */
  allowedRegions: string[];
  /** Days personal data is kept after a meeting ends (0 = purge at once). */
  retentionDays: number;
  onHostLeave: HostLeavePolicy;
}

export type SettingName = keyof MeetingSettings;

export interface AccountInit {
  id: string;
  name?: string;
  /** Account defaults; unspecified ones come from the built-in defaults. */
  defaults?: Partial<MeetingSettings>;
  /** Settings meetings of this account cannot override (SETTING_LOCKED). */
  locked?: SettingName[];
}

/** What core.createMeeting() takes. */
export interface MeetingInit {
  /** Meeting id; default a random UUID. */
  id?: string;
  accountId: string;
  title: string;
  /** The identity that joins as host (JoinRequest.asHost with this identity). */
  hostIdentity: string;
  hostName?: string;
  hostEmail?: string;
  /** URL of the host's profile picture, https only (allow-listed: sent in MeetingDescription.host; see lib/model/pictureUrl.ts). */
  hostProfilePictureUrl?: string;
  /** Clear-text password: hashed at once (scrypt), never kept. Makes passwordRequired true. */
  password?: string;
  /** Overrides of the account defaults (SETTING_LOCKED for account-locked ones). */
  settings?: Partial<MeetingSettings>;
  scheduledStart?: Date;
  scheduledDurationMinutes?: number;
  recurrence?: { type: 'daily' | 'weekly' | 'monthly'; durationWeeks?: number };
  hostTimeZone?: string;
  dialInNumbers?: string[];
  /**
   * Issue 15: the scrypt hash (from hashPassword) instead of a clear `password`, for a definition
   * restored from the durable store, which never keeps the clear password. Not with `password`.
   */
  passwordHash?: string;
}

// ---------------------------------------------------------------------------------------------
// Roles, states, reasons
// ---------------------------------------------------------------------------------------------

export type Role = 'host' | 'cohost' | 'participant';

export type ParticipantState =
  /** Host-required start: waiting until the host joins. */
  | 'waiting-for-host'
  /** In the waiting room: waiting for a host or co-host to admit. */
  | 'waiting-room'
  /** In the meeting: media, chat, participant list. */
  | 'admitted'
  | 'closed';

/** Why a participant's session ended. One enum for the library; the gateway maps it to the wire. */
export type CloseReason =
  | 'left'
  | 'removed'
  | 'denied'
  | 'meeting-ended'
  | 'meeting-locked'
  | 'host-left'
  | 'worker-failed'
  | 'connection-lost'
  | 'replaced'
  | 'server-shutdown';

/** Media sources a participant can publish, one producer each. */
export type MediaSource = 'microphone' | 'camera' | 'screen-video' | 'screen-audio';

// ---------------------------------------------------------------------------------------------
// Joining
// ---------------------------------------------------------------------------------------------

export interface JoinRequest {
  /** Stable identity (from a verified join token) or a generated guest id. Bans apply to it. */
  identity: string;
  displayName: string;
  /** True when the identity comes from a verified token; false for guests. */
  authenticated: boolean;
  /** The token asked for the host role (only the meeting's host identity gets it). */
  asHost?: boolean;
  password?: string;
  /** Client address, for per-address rate limits (personal data: never logged by default). */
  address?: string;
  /** A MAC address, only if the client reports one (allow-listed metadata; never logged). */
  macAddress?: string;
  email?: string;
  /** The client declares it can do end-to-end encryption (insertable streams). */
  e2eeCapable: boolean;
}

// ---------------------------------------------------------------------------------------------
// Media plane as seen by a participant (all transports are WebRTC: ICE + DTLS-SRTP)
// ---------------------------------------------------------------------------------------------

export interface TransportInfo {
  id: string;
  direction: 'send' | 'recv';
  iceParameters: { usernameFragment: string; password: string; iceLite?: boolean };
  iceCandidates: Array<{
    foundation: string;
    priority: number;
    address: string;
    protocol: 'udp' | 'tcp';
    port: number;
    type: string;
    tcpType?: string;
  }>;
  dtlsParameters: { role?: 'auto' | 'client' | 'server'; fingerprints: Array<{ algorithm: string; value: string }> };
  sctpParameters?: { port: number; OS: number; MIS: number; maxMessageSize: number };
}

export interface ProducerInfo {
  id: string;
  participantId: string;
  source: MediaSource;
  kind: 'audio' | 'video';
  paused: boolean;
  /**
   * Set on the first producer of a participant and source after a worker death took the previous
   * one (issue 11): the id it replaces, so that receivers can swap streams.
   */
  replacesProducerId?: string;
}

export interface ConsumerInfo {
  id: string;
  producerId: string;
  participantId: string;
  source: MediaSource;
  kind: 'audio' | 'video';
  /** mediasoup RtpParameters of the consumer (mid, codecs, encodings, rtcp). */
  rtpParameters: unknown;
  paused: boolean;
}

export interface DataConsumerInfo {
  id: string;
  dataProducerId: string;
  participantId: string;
  label: string;
  sctpStreamParameters: { streamId: number; ordered?: boolean };
}

// ---------------------------------------------------------------------------------------------
// Polls and audit
// ---------------------------------------------------------------------------------------------

export interface PollInit {
  question: string;
  options: string[];
  anonymous?: boolean;
}

export interface PollResults {
  pollId: string;
  question: string;
  options: string[];
  /** Votes per option, same order as options. */
  counts: number[];
  /** Who answered what (empty for anonymous polls). Personal data: subject to retention. */
  answers: Array<{ identity: string; displayName: string; option: number }>;
  closed: boolean;
}

export type AuditAction =
  | 'admit'
  | 'deny'
  | 'remove'
  | 'lock'
  | 'unlock'
  | 'mute'
  | 'mute-all'
  | 'stop-screen-share'
  | 'make-cohost'
  | 'transfer-host'
  | 'end'
  | 'poll-created'
  | 'poll-closed'
  | 'settings-changed';

export interface AuditEntry {
  meetingId: string;
  at: Date;
  action: AuditAction;
  /** Identity of who acted ('system' for the library itself). */
  actor: string;
  /** Identity acted upon, where there is one. */
  target?: string;
}

/** Where a meeting's media was processed: one entry per router placement. */
export interface PlacementEntry {
  meetingId: string;
  workerId: number;
  region: Region;
  from: Date;
  to?: Date;
  /** Why the placement ended: meeting ended, worker died (moved), spread removed. */
  endReason?: 'meeting-ended' | 'worker-died' | 'released';
}
