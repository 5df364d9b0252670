// The operator API's request and response shapes (zod v4). These schemas validate every request
// body and are the source of the OpenAPI document (z.toJSONSchema): one definition, two uses, so
// the document cannot drift from what the server accepts.
import { z } from 'zod';
import { isPictureUrl, PICTURE_URL_MAX_LENGTH, PICTURE_URL_RULE } from '../../lib/model/pictureUrl.js';

/** Ids that end up in logs, audit entries and the control plane: short and printable. */
export const Id = z.string().regex(/^[\w.@:+-]{1,128}$/, 'letters, digits and . @ : + - _ (1 to 128)');

/** Settings names of the model (lib/model/types.ts MeetingSettings), in its order. */
export const SETTING_NAMES = [
  'passwordRequired',
  'waitingRoom',
  'hostRequiredToStart',
  'e2ee',
  'maxParticipants',
  'allowScreenShare',
  'allowChat',
  'muteOnEntry',
  'allowGuests',
  'allowedRegions',
  'retentionDays',
  'onHostLeave',
] as const;

/** Meeting settings (the model checks the same limits in validateSettings). */
export const Settings = z
  .object({
    passwordRequired: z.boolean(),
    waitingRoom: z.boolean(),
    hostRequiredToStart: z.boolean(),
    e2ee: z.enum(['off', 'optional', 'required']),
    maxParticipants: z.int().min(1).max(10_000),
    allowScreenShare: z.boolean(),
    allowChat: z.boolean(),
    muteOnEntry: z.boolean(),
    allowGuests: z.boolean(),
    allowedRegions: z
      .array(z.string().regex(/^([a-z]{2}|[a-z]{2}-[a-z0-9]+)$/i, 'a country code ("DE") or a region ("de-fra")'))
      .min(1)
      .describe('Where media may be processed: country codes ("DE") or exact regions ("de-fra").'),
    retentionDays: z.int().min(0).max(3650).describe('Days personal data is kept after a meeting ends (0 = purge at once).'),
    onHostLeave: z.enum(['end-meeting', 'keep-running', 'wait-for-host']),
  })
  .strict()
  .meta({ id: 'Settings', description: 'Meeting settings; account defaults, meeting overrides and the effective result.' });

export const SettingsPatch = Settings.partial().strict().meta({ id: 'SettingsPatch', description: 'Some settings (the others keep their value).' });

export const SettingName = z.enum(SETTING_NAMES);

// ---------------------------------------------------------------------------------------------
// Accounts

export const AccountCreate = z
  .object({
    id: Id,
    name: z.string().max(200).optional(),
    defaults: SettingsPatch.optional().describe('Account defaults on top of the built-in ones, allowedRegions and retentionDays included.'),
    locked: z.array(SettingName).optional().describe('Settings meetings of this account cannot override (SETTING_LOCKED).'),
  })
  .strict()
  .meta({ id: 'AccountCreate' });

export const AccountUpdate = z
  .object({
    name: z.string().max(200).optional(),
    defaults: SettingsPatch.optional().describe('Merged into the current defaults.'),
    locked: z.array(SettingName).optional().describe('Replaces the list of locked settings.'),
  })
  .strict()
  .meta({ id: 'AccountUpdate' });

export const Account = z
  .object({
    id: Id,
    name: z.string().optional(),
    /** Effective account defaults (built-in defaults under the account's own). */
    defaults: Settings,
    locked: z.array(SettingName),
    createdAt: z.iso.datetime(),
    updatedAt: z.iso.datetime(),
  })
  .meta({ id: 'Account' });

export const AccountList = z.object({ accounts: z.array(Account) }).meta({ id: 'AccountList' });

// ---------------------------------------------------------------------------------------------
// Meetings

export const Recurrence = z
  .object({ type: z.enum(['daily', 'weekly', 'monthly']), durationWeeks: z.int().min(1).max(520).optional() })
  .strict()
  .meta({ id: 'Recurrence' });

export const MeetingCreate = z
  .object({
    id: Id.optional().describe('Default: a random UUID.'),
    accountId: Id,
    title: z.string().max(500),
    hostIdentity: Id.describe('The identity that joins as host (host join tokens are minted for it).'),
    hostName: z.string().min(1).max(128).optional(),
    hostEmail: z.email().max(256).optional(),
    // The model's rule, called rather than restated (lib/model/pictureUrl.ts says why https only).
    hostProfilePictureUrl: z
      .string()
      .max(PICTURE_URL_MAX_LENGTH)
      .refine((v) => isPictureUrl(v), PICTURE_URL_RULE)
      .optional()
      .describe(`The host's profile picture: ${PICTURE_URL_RULE}.`),
    password: z.string().min(1).max(256).optional().describe('Clear-text password: hashed at once (scrypt), never stored or returned.'),
    settings: SettingsPatch.optional().describe('Overrides of the account defaults (SETTING_LOCKED for locked ones).'),
    scheduledStart: z.iso.datetime({ offset: true }).optional().describe('ISO 8601 with an offset, e.g. 2026-12-01T18:00:00+01:00: a scheduled meeting.'),
    scheduledDurationMinutes: z.int().min(1).max(24 * 60).optional(),
    recurrence: Recurrence.optional(),
    hostTimeZone: z
      .string()
      .max(64)
      .refine((tz) => isTimeZone(tz), 'an IANA time zone like Europe/Berlin')
      .optional()
      .describe('IANA time zone of the host, e.g. Europe/Berlin.'),
    dialInNumbers: z.array(z.string().regex(/^\+?[0-9 ()-]{3,32}$/, 'a phone number')).max(20).optional(),
  })
  .strict()
  .meta({ id: 'MeetingCreate' });

export const MeetingStatus = z.enum(['scheduled', 'open', 'running', 'ended']);

export const Meeting = z
  .object({
    id: Id,
    accountId: Id,
    title: z.string(),
    hostIdentity: z.string(),
    hostName: z.string().optional(),
    hostEmail: z.string().optional(),
    hostProfilePictureUrl: z.string().optional(),
    /** Whether a password is needed (the password itself is never returned). */
    passwordProtected: z.boolean(),
    /** 'scheduled' before its start time with nobody in, 'open' without a scheduled start, 'running' once started, 'ended'. */
    status: MeetingStatus,
    /** Effective settings (absent for an ended meeting the server no longer holds). */
    settings: Settings.optional(),
    locked: z.boolean().optional(),
    scheduledStart: z.iso.datetime({ offset: true }).optional(),
    scheduledDurationMinutes: z.int().optional(),
    recurrence: Recurrence.optional(),
    hostTimeZone: z.string().optional(),
    dialInNumbers: z.array(z.string()).optional(),
    createdAt: z.iso.datetime(),
    startedAt: z.iso.datetime().optional(),
    endedAt: z.iso.datetime().optional(),
    participantCount: z.int(),
    waitingCount: z.int(),
  })
  .meta({ id: 'Meeting' });

export const MeetingList = z.object({ meetings: z.array(Meeting) }).meta({ id: 'MeetingList' });

// ---------------------------------------------------------------------------------------------
// Participants

export const Participant = z
  .object({
    id: z.string(),
    identity: z.string(),
    displayName: z.string(),
    role: z.enum(['host', 'cohost', 'participant']),
    state: z.enum(['waiting-for-host', 'waiting-room', 'admitted']),
    /** True for a verified join token, false for a guest. */
    authenticated: z.boolean(),
    requestedAt: z.iso.datetime(),
    joinedAt: z.iso.datetime().optional(),
  })
  .meta({ id: 'Participant' });

export const ParticipantList = z
  .object({ admitted: z.array(Participant), waiting: z.array(Participant) })
  .meta({ id: 'ParticipantList' });

// ---------------------------------------------------------------------------------------------
// Tokens and keys

/** Roles a join token can carry; 'host' only for the meeting's host identity. */
export const TOKEN_ROLES = ['host', 'participant'] as const;

export const TokenCreate = z
  .object({
    role: z.enum(TOKEN_ROLES),
    identity: Id.optional().describe("Default: the meeting's host identity for 'host'; required otherwise."),
    displayName: z.string().min(1).max(64).optional(),
    ttlSeconds: z.int().min(60).max(7 * 24 * 3600).optional().describe("Default: the server's token lifetime."),
  })
  .strict()
  .meta({ id: 'TokenCreate' });

export const Token = z
  .object({
    token: z.string(),
    meetingId: Id,
    identity: z.string(),
    role: z.enum(TOKEN_ROLES),
    expiresAt: z.iso.datetime(),
    /** The web app link that joins with this token. */
    joinUrl: z.string(),
  })
  .meta({ id: 'Token' });

export const ApiKey = z
  .object({
    keyId: z.string(),
    /** Shown once; sign API requests with it (HS256 JWT, kid = keyId). */
    secret: z.string(),
    meetingId: Id,
  })
  .meta({ id: 'ApiKey' });

export const AuditEntry = z
  .object({
    at: z.iso.datetime(),
    /** An API key id ("api:<key>") or a participant identity. */
    actor: z.string(),
    action: z.string(),
    /** A participant identity (meeting actions) or id / role (API actions). */
    target: z.string().optional(),
    /** 'ok' or the error code of a refused API action. */
    outcome: z.string(),
    source: z.enum(['meeting', 'api']),
  })
  .meta({ id: 'AuditEntry' });

export const AuditList = z.object({ entries: z.array(AuditEntry) }).meta({ id: 'AuditList' });

export const Ok = z.object({ ok: z.literal(true) }).meta({ id: 'Ok' });

export const ErrorBody = z
  .object({
    error: z.object({
      /** One of the library's error codes (README, "Error codes"). */
      code: z.string(),
      reason: z.string(),
      /** For a schema error: the path of the offending field, e.g. settings.maxParticipants. */
      field: z.string().optional(),
    }),
  })
  .meta({ id: 'Error' });

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export type AccountCreateBody = z.infer<typeof AccountCreate>;
export type AccountUpdateBody = z.infer<typeof AccountUpdate>;
export type AccountResource = z.infer<typeof Account>;
export type MeetingCreateBody = z.infer<typeof MeetingCreate>;
export type MeetingResource = z.infer<typeof Meeting>;
export type ParticipantResource = z.infer<typeof Participant>;
export type ParticipantListResource = z.infer<typeof ParticipantList>;
export type TokenCreateBody = z.infer<typeof TokenCreate>;
export type TokenResource = z.infer<typeof Token>;
export type ApiKeyResource = z.infer<typeof ApiKey>;
export type AuditEntryResource = z.infer<typeof AuditEntry>;
