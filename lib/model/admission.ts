// Admission: the one fixed order in which a join is checked. A pure function of the meeting's
// state and the request, so that the order itself is unit-tested without workers or sockets.
import type { ErrorCode } from '../errors.js';
import type { MeetingSettings } from './types.js';

/** The outcome of a password check done before admission (it is async; admission is not). */
export type PasswordCheck =
  /** No password is required, or the joiner skips it (the meeting's host). */
  | 'not-required'
  | 'ok'
  | 'missing'
  | 'wrong'
  /** Too many failed attempts for this meeting or this client address. */
  | 'rate-limited';

/** Everything admission looks at. Meeting.join fills it in; tests build it by hand. */
export interface AdmissionInput {
  settings: Pick<MeetingSettings, 'waitingRoom' | 'maxParticipants' | 'e2ee' | 'allowGuests'>;
  ended: boolean;
  /** The identity was removed from this meeting. */
  banned: boolean;
  /** The request comes from a verified token (false for guests). */
  authenticated: boolean;
  password: PasswordCheck;
  locked: boolean;
  /** Admitted participants now (the joiner not included). */
  admittedCount: number;
  e2eeCapable: boolean;
  /** The joiner is the meeting's host (verified host identity). */
  isHost: boolean;
  /** The joiner is a co-host identity (skips the waiting room, like the host). */
  isCoHost: boolean;
  /** Nobody may enter yet: host-required start before the host came, or the host left (wait-for-host). */
  awaitingHost: boolean;
  /**
   * The identity is admitted right now and this join replaces that session (a reconnect): it
   * goes back in without waiting again. Every refusal check still applies.
   */
  returning?: boolean;
}

/** What admission decided, with the named reason of a refusal. */
export type AdmissionDecision =
  | { outcome: 'refused'; code: ErrorCode; reason: string }
  | { outcome: 'waiting-for-host' | 'waiting-room' | 'admitted' };

/**
 * Decides a join, in this order: meeting ended -> banned identity -> guests not allowed ->
 * password (TOO_MANY_ATTEMPTS past the limit) -> locked -> capacity -> E2EE capability ->
 * host not present (wait) -> waiting room (wait) -> admitted.
 * The host skips the password, the lock and the waiting room (it is the one who admits), but not
 * an ended meeting, a ban, the capacity or E2EE. A returning (reconnecting) admitted identity
 * passes every check like a newcomer but does not wait again.
 */
export function decideAdmission(input: AdmissionInput): AdmissionDecision {
  const refuse = (code: ErrorCode, reason: string): AdmissionDecision => ({ outcome: 'refused', code, reason });
  if (input.ended) return refuse('MEETING_ENDED', 'the meeting has ended');
  if (input.banned) return refuse('BANNED', 'you were removed from this meeting');
  if (!input.authenticated && !input.settings.allowGuests && !input.isHost) {
    return refuse('GUESTS_NOT_ALLOWED', 'this meeting admits signed-in users only');
  }
  if (!input.isHost) {
    switch (input.password) {
      case 'rate-limited':
        return refuse('TOO_MANY_ATTEMPTS', 'too many wrong passwords; try again later');
      case 'missing':
        return refuse('PASSWORD_REQUIRED', 'this meeting needs a password');
      case 'wrong':
        return refuse('WRONG_PASSWORD', 'wrong meeting password');
      default:
        break;
    }
    if (input.locked) return refuse('MEETING_LOCKED', 'the meeting is locked');
  }
  if (input.admittedCount >= input.settings.maxParticipants) return refuse('MEETING_FULL', 'the meeting is full');
  if (input.settings.e2ee === 'required' && !input.e2eeCapable) {
    return refuse('E2EE_REQUIRED', 'this meeting is end-to-end encrypted and your client does not support it');
  }
  if (input.isHost || input.returning) return { outcome: 'admitted' };
  if (input.awaitingHost) return { outcome: 'waiting-for-host' };
  if (input.settings.waitingRoom && !input.isCoHost) return { outcome: 'waiting-room' };
  return { outcome: 'admitted' };
}
