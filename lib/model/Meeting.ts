// A meeting: the policy engine (admission, roles, host controls, polls, settings) on top of its
// media plane (lib/media/MeetingMedia). Created by core.createMeeting().
import { randomUUID } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import type { Logger } from 'pino';
import { checkDisplayName } from '../rules.js';
import { ArgumentError, C4vError, InvalidStateError, MediaError, PolicyError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import { logView } from '../telemetry/logger.js';
import type { MediaPlane } from '../media/MeetingMedia.js';
import { decideAdmission, type PasswordCheck } from './admission.js';
import { Participant } from './Participant.js';
import { AttemptLimiter, BackoffLimiter, ConcurrencyGate, verifyPassword } from './password.js';
import type { Account } from './settings.js';
import { validateSettings } from './settings.js';
import type {
  AuditAction,
  AuditEntry,
  CloseReason,
  JoinRequest,
  MediaSource,
  MeetingInit,
  MeetingSettings,
  ParticipantState,
  PlacementEntry,
  PollInit,
  PollResults,
  ProducerInfo,
  Role,
} from './types.js';

/** Events of a Meeting: core.observer's, without the meeting argument, plus activespeaker and close. */
export type MeetingEvents = {
  meetingstarted: [];
  meetingended: [];
  /** Admitted into the meeting. */
  participantjoined: [Participant];
  /** Waiting for the host or in the waiting room. */
  participantwaiting: [Participant];
  participantleft: [Participant, CloseReason];
  settingschanged: [Partial<MeetingSettings>];
  pollclosed: [PollResults];
  audit: [AuditEntry];
  /** A placement began (no `to`) or ended (`to`, `endReason`): the same entry, updated. */
  placement: [PlacementEntry];
  activespeaker: [Participant];
  close: [];
  listenererror: [string, unknown];
};

/**
 * Rate limits for wrong passwords. Every attempt is counted before its hash is computed. Guests
 * (no join token) are limited per client address (hard) and share a per-meeting budget that
 * backs off exponentially once spent; holders of a valid join token are limited per identity
 * only, so no flood from elsewhere locks them out. The host skips the password.
 */
export interface PasswordAttemptLimits {
  /** Failed attempts per client address (guests, across meetings) and per token identity, within the window; default 5. */
  perAddress: number;
  /** Failed guest attempts per meeting within the window before back-off; default 20. */
  perMeeting: number;
  /** Window in ms; default 10 minutes. */
  windowMs: number;
  /** Issue 10: first back-off delay of a meeting's guests past perMeeting, doubling; default 1 s. */
  guestBackoffMs: number;
  /** Issue 10: longest back-off delay; default 5 minutes. */
  guestBackoffMaxMs: number;
  /** Issue 10: password hashes computed at once, process-wide; default 2. */
  hashConcurrency: number;
  /** Issue 10: hashes waiting for a slot before a join is refused with RATE_LIMITED; default 256. */
  hashQueue: number;
}

export const DEFAULT_PASSWORD_LIMITS: PasswordAttemptLimits = {
  perAddress: 5,
  perMeeting: 20,
  windowMs: 10 * 60_000,
  guestBackoffMs: 1000,
  guestBackoffMaxMs: 5 * 60_000,
  hashConcurrency: 2,
  hashQueue: 256,
};

interface Poll {
  id: string;
  question: string;
  options: string[];
  anonymous: boolean;
  closed: boolean;
  answers: Map<string, { displayName: string; option: number }>;
}

/** @internal What the core passes to the Meeting constructor. */
export interface MeetingConstruct {
  id: string;
  init: MeetingInit;
  account: Account;
  settings: MeetingSettings;
  passwordHash: string | undefined;
  media: MediaPlane;
  logger: Logger;
  addressLimiter: AttemptLimiter;
  limits: PasswordAttemptLimits;
  /** The process-wide bound on concurrent password hashes. */
  hashGate: ConcurrencyGate;
}

const MAX_IDENTITY = 256;

function validateJoin(req: JoinRequest): void {
  if (typeof req !== 'object' || req === null) throw new ArgumentError('join request must be an object');
  if (typeof req.identity !== 'string' || req.identity.length === 0 || req.identity.length > MAX_IDENTITY) {
    throw new ArgumentError(`identity must be a non-empty string of at most ${MAX_IDENTITY} characters`);
  }
  // The one display-name rule (lib/rules.ts), the same as at the edge.
  checkDisplayName(req.displayName, 'displayName');
  if (typeof req.authenticated !== 'boolean') throw new ArgumentError('authenticated must be a boolean');
  if (typeof req.e2eeCapable !== 'boolean') throw new ArgumentError('e2eeCapable must be a boolean');
  if (req.password !== undefined && typeof req.password !== 'string') throw new ArgumentError('password must be a string');
  if (req.address !== undefined && typeof req.address !== 'string') throw new ArgumentError('address must be a string');
  if (req.macAddress !== undefined && !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(String(req.macAddress))) {
    throw new ArgumentError(`macAddress must look like 00:11:22:33:44:55, got ${JSON.stringify(req.macAddress)}`);
  }
}

/** Issue 15: host controls in the hands of a server-side operator (see Meeting.operator()). */
export interface MeetingOperator {
  /** Who acts, as the audit entries name it. */
  readonly identity: string;
  admit(participantId: string): void;
  deny(participantId: string): void;
  remove(participantId: string): void;
  mute(participantId: string): Promise<void>;
  lock(): void;
  unlock(): void;
  end(): void;
  updateSettings(changes: Partial<MeetingSettings>): void;
}

// The operator as an actor: recognised by the host-control checks of its own meeting only.
class OperatorActor {
  constructor(
    readonly meeting: Meeting,
    readonly identity: string,
  ) {}

  // Issue 16: logged by its operator identity (`api:<key id>`, an API key's, not a person's).
  [logView](): { operator: string } {
    return { operator: this.identity };
  }
}

/**
 * A meeting. Host controls take the acting Participant first and refuse with NOT_PERMITTED unless
 * it is the host (or, for most of them, a co-host).
 */
export class Meeting extends TypedEmitter<MeetingEvents> {
  readonly id: string;
  readonly title: string;
  readonly accountId: string;
  readonly account: Account;
  readonly createdAt = new Date();
  /** The scrypt hash of the meeting password (metadata-exportable; never the password). */
  readonly passwordHash: string | undefined;
  readonly hostName: string | undefined;
  readonly hostEmail: string | undefined;
  /** The host's profile picture (a URL; allow-listed metadata, personal). */
  readonly hostProfilePictureUrl: string | undefined;
  readonly scheduledStart: Date | undefined;
  readonly scheduledDurationMinutes: number | undefined;
  readonly recurrence: MeetingInit['recurrence'];
  readonly hostTimeZone: string | undefined;
  readonly dialInNumbers: readonly string[];
  /** Every host action, oldest first. */
  readonly auditLog: AuditEntry[] = [];
  /** Where the meeting's media ran (one entry per router placement), oldest first. */
  readonly placements: PlacementEntry[] = [];
  /** @internal The media plane; participants reach it through their own methods. */
  readonly _media: MediaPlane;
  readonly #logger: Logger;
  #settings: MeetingSettings;
  #hostIdentity: string;
  readonly #participants = new Map<string, Participant>();
  readonly #banned = new Set<string>();
  readonly #cohostIdentities = new Set<string>();
  /** Identities whose microphone the host muted: a new microphone of theirs starts paused. */
  readonly #mutedByHost = new Set<string>();
  readonly #polls = new Map<string, Poll>();
  /** Issue 12: the last admission number handed out (Participant.admittedSeq). */
  #admittedSeq = 0;
  /** Issue 11: the participant speaking now (the last dominant speaker still admitted). */
  #activeSpeakerId: string | undefined;
  /** Guests' budget of this meeting (exponential back-off past it). */
  readonly #guestLimiter: BackoffLimiter;
  /** Guests per client address, across meetings (the core's). */
  readonly #addressLimiter: AttemptLimiter;
  /** Token holders per identity: the only limit a join-token holder is subject to. */
  readonly #identityLimiter: AttemptLimiter;
  readonly #hashGate: ConcurrencyGate;
  #locked = false;
  #ended = false;
  #closed = false;
  #startedAt: Date | undefined;
  #endedAt: Date | undefined;
  /** The host left with onHostLeave 'wait-for-host': new joins wait until a host is back. */
  #pausedForHost = false;
  /** Issue 13: identities admitted at the meeting's previous home node; they come back without waiting. */
  readonly #returning = new Set<string>();

  /** @internal Use core.createMeeting(). */
  constructor(c: MeetingConstruct) {
    super();
    this.id = c.id;
    this.title = c.init.title;
    this.accountId = c.account.id;
    this.account = c.account;
    this.#settings = c.settings;
    this.passwordHash = c.passwordHash;
    this.#hostIdentity = c.init.hostIdentity;
    this.hostName = c.init.hostName;
    this.hostEmail = c.init.hostEmail;
    this.hostProfilePictureUrl = c.init.hostProfilePictureUrl;
    this.scheduledStart = c.init.scheduledStart;
    this.scheduledDurationMinutes = c.init.scheduledDurationMinutes;
    this.recurrence = c.init.recurrence;
    this.hostTimeZone = c.init.hostTimeZone;
    this.dialInNumbers = Object.freeze([...(c.init.dialInNumbers ?? [])]);
    this._media = c.media;
    this.#logger = c.logger.child({ component: 'meeting', meetingId: c.id });
    // Listener errors are caught by safeEmit and reported here: logged with the stack, never swallowed.
    this.on('listenererror', (event, error) => this._logListenerError('meeting', event, error));
    this.#guestLimiter = new BackoffLimiter(c.limits.perMeeting, c.limits.windowMs, c.limits.guestBackoffMs, c.limits.guestBackoffMaxMs);
    this.#addressLimiter = c.addressLimiter;
    this.#identityLimiter = new AttemptLimiter(c.limits.perAddress, c.limits.windowMs, 10_000);
    this.#hashGate = c.hashGate;
    for (const p of c.media.placements) this.#onPlacement(p);
    this.#wireMedia();
  }

  /**
   * Reserves a password attempt under the rule for this joiner, or undefined when it is over its
   * limit. Token holders: per identity only. Guests: per client address and the meeting's guest
   * budget (back-off). The returned function ends the attempt (failed or not).
   */
  #beginPasswordAttempt(authenticated: boolean, identity: string, address: string): ((failed: boolean) => void) | undefined {
    if (authenticated) {
      if (!this.#identityLimiter.begin(identity)) return undefined;
      return (failed) => this.#identityLimiter.end(identity, failed);
    }
    if (!this.#addressLimiter.begin(address)) return undefined;
    if (!this.#guestLimiter.begin()) {
      this.#addressLimiter.end(address, false);
      return undefined;
    }
    return (failed) => {
      this.#addressLimiter.end(address, failed);
      this.#guestLimiter.end(failed);
    };
  }

  /** @internal Logs an error thrown by an event listener of this meeting or one of its participants. */
  _logListenerError(source: string, event: string, error: unknown): void {
    const e = error instanceof Error ? error : new Error(String(error));
    this.#logger.error({ source, event, err: e }, 'event listener threw');
  }

  // ---------------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------------

  /** The effective settings (account defaults, meeting overrides, account locks). */
  get settings(): Readonly<MeetingSettings> {
    return Object.freeze({ ...this.#settings, allowedRegions: [...this.#settings.allowedRegions] });
  }

  get locked(): boolean {
    return this.#locked;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** When the meeting started: the host arrived (host-required start) or the first participant got in. */
  get startedAt(): Date | undefined {
    return this.#startedAt;
  }

  get endedAt(): Date | undefined {
    return this.#endedAt;
  }

  /** The identity that joins as host (asHost); changes with transferHost. */
  get hostIdentity(): string {
    return this.#hostIdentity;
  }

  /** How a meeting appears in a log line: its id only, never its title or host (see createLogger). */
  [logView](): { meetingId: string } {
    return { meetingId: this.id };
  }

  /** @internal The next admission number (Participant.admittedSeq); called once per admission. */
  _nextAdmittedSeq(): number {
    return ++this.#admittedSeq;
  }

  /** The participant holding the host role now. */
  get host(): Participant | undefined {
    for (const p of this.#participants.values()) if (p.role === 'host' && p.state === 'admitted') return p;
    return undefined;
  }

  /** Admitted participants, in order of arrival. */
  get participants(): Participant[] {
    return [...this.#participants.values()].filter((p) => p.state === 'admitted');
  }

  /** Waiting participants (waiting for the host, or in the waiting room), in order of arrival. */
  get waiting(): Participant[] {
    return [...this.#participants.values()].filter((p) => p.state === 'waiting-room' || p.state === 'waiting-for-host');
  }

  /** Identities removed from this meeting (they cannot rejoin). */
  get banned(): string[] {
    return [...this.#banned];
  }

  /** The router RTP capabilities clients load their device with. */
  get rtpCapabilities(): ms.RtpCapabilities {
    return this._media.rtpCapabilities;
  }

  /** Issue 11: the id of the participant speaking now (undefined before anyone spoke, or after they left). */
  get activeSpeakerId(): string | undefined {
    return this.#activeSpeakerId;
  }

  /** A participant (any state) by id. */
  participant(id: string): Participant | undefined {
    return this.#participants.get(id);
  }

  #awaitingHost(): boolean {
    if (this.host) return false;
    if (this.#pausedForHost) return true;
    return this.#settings.hostRequiredToStart && !this.#startedAt;
  }

  // ---------------------------------------------------------------------------------------------
  // Joining
  // ---------------------------------------------------------------------------------------------

  /**
   * Asks to join. Refusals (PolicyError) come in this order: MEETING_ENDED, BANNED,
   * GUESTS_NOT_ALLOWED, PASSWORD_REQUIRED / WRONG_PASSWORD (TOO_MANY_ATTEMPTS past the limit),
   * MEETING_LOCKED, MEETING_FULL, E2EE_REQUIRED. Otherwise the participant is 'waiting-for-host',
   * 'waiting-room' or 'admitted'. A second session of the same identity replaces the first.
   */
  async join(req: JoinRequest): Promise<Participant> {
    validateJoin(req);
    const isHost = req.asHost === true && req.authenticated && req.identity === this.#hostIdentity;
    const address = req.address ?? 'unknown';
    let password: PasswordCheck = 'not-required';
    // A join that admission refuses before the password anyway (ended, banned, a guest where guests
    // are not allowed) costs no hash and no attempt.
    const guestRefused = !req.authenticated && !this.#settings.allowGuests;
    if (this.#settings.passwordRequired && !isHost && this.passwordHash && !this.#ended && !this.#banned.has(req.identity) && !guestRefused) {
      // The attempt is reserved before the hash is computed, so that attempts in flight count.
      const attempt = this.#beginPasswordAttempt(req.authenticated, req.identity, address);
      if (!attempt) password = 'rate-limited';
      else if (req.password === undefined || req.password === '') {
        attempt(false);
        password = 'missing';
      } else {
        let result: boolean | 'busy';
        try {
          const hash = this.passwordHash;
          const given = req.password;
          result = await this.#hashGate.run(() => verifyPassword(given, hash));
        } catch (error) {
          attempt(false);
          throw error;
        }
        attempt(result === false);
        if (result === 'busy') throw new PolicyError('RATE_LIMITED', 'too many password checks at once; try again shortly');
        password = result ? 'ok' : 'wrong';
      }
    }
    // Decide on the state as it is now (the password check awaited).
    const existing = [...this.#participants.values()].find((p) => p.identity === req.identity);
    const decision = decideAdmission({
      settings: this.#settings,
      ended: this.#ended || this.#closed,
      banned: this.#banned.has(req.identity),
      authenticated: req.authenticated,
      password,
      locked: this.#locked,
      admittedCount: this.participants.filter((p) => p !== existing).length,
      e2eeCapable: req.e2eeCapable,
      isHost,
      isCoHost: this.#cohostIdentities.has(req.identity),
      awaitingHost: !isHost && this.#awaitingHost(),
      returning: existing?.state === 'admitted' || this.#returning.has(req.identity),
    });
    if (decision.outcome === 'refused') {
      this.#logger.info({ code: decision.code }, 'join refused');
      throw new PolicyError(decision.code, decision.reason);
    }
    if (decision.outcome === 'admitted') this.#returning.delete(req.identity);
    const replacedHost = existing?.role === 'host' && existing.state === 'admitted';
    if (existing) this._closeParticipant(existing, 'replaced', { replaced: true });
    const role: Role = isHost ? 'host' : this.#cohostIdentities.has(req.identity) ? 'cohost' : 'participant';
    const p = new Participant(this, {
      id: randomUUID(),
      identity: req.identity,
      displayName: req.displayName.trim(),
      email: req.email,
      address: req.address,
      macAddress: req.macAddress,
      authenticated: req.authenticated,
      e2eeCapable: req.e2eeCapable,
      role,
      state: decision.outcome,
    });
    p.on('listenererror', (event, error) => this._logListenerError('participant', event, error));
    this.#participants.set(p.id, p);
    this.#logger.info({ participantId: p.id, state: p.state, role }, 'participant joined');
    if (decision.outcome === 'admitted') {
      if (isHost) {
        // The original host takes the role back from a co-host promoted in its absence.
        for (const other of this.participants) {
          if (other !== p && other.role === 'host') this.#setRole(other, 'cohost');
        }
      }
      this.#onAdmitted(p);
      if (isHost) this.#hostArrived();
    } else {
      this.safeEmit('participantwaiting', p);
      this.#sendWaitingList();
    }
    // The host's identity came back without asking for the host role: the role moves on as if
    // the host had left.
    if (replacedHost && !isHost) this.#onHostLeft();
    return p;
  }

  #onAdmitted(p: Participant): void {
    if (!this.#startedAt) {
      this.#startedAt = new Date();
      this.safeEmit('meetingstarted');
    }
    for (const other of this.participants) if (other !== p) other.safeEmit('participantjoined', p);
    this.safeEmit('participantjoined', p);
    if (p.isModerator) p.safeEmit('waitinglist', this.waiting);
  }

  /** The host is in: those waiting for the host go to the waiting room (if on), else in. */
  #hostArrived(): void {
    this.#pausedForHost = false;
    let changed = false;
    for (const w of this.waiting) {
      if (w.state !== 'waiting-for-host') continue;
      changed = true;
      if (this.#settings.waitingRoom && !this.#cohostIdentities.has(w.identity)) w._setState('waiting-room');
      else this.#tryAdmit(w);
    }
    if (changed) this.#sendWaitingList();
  }

  /** Admits a waiting participant if there is room; otherwise it stays in (or moves to) the waiting room. */
  #tryAdmit(p: Participant): boolean {
    if (this.participants.length >= this.#settings.maxParticipants) {
      p._setState('waiting-room');
      return false;
    }
    p._setState('admitted');
    this.#onAdmitted(p);
    return true;
  }

  #sendWaitingList(): void {
    const list = this.waiting;
    for (const p of this.participants) if (p.isModerator) p.safeEmit('waitinglist', list);
  }

  // ---------------------------------------------------------------------------------------------
  // Host controls
  // ---------------------------------------------------------------------------------------------

  /**
   * Issue 15: host controls for a server-side operator (the operator API), who acts with the
   * host's authority without being a participant. `identity` names the operator in the audit
   * entries (e.g. "api:<key id>"). Host-in-meeting actions (co-hosts, host transfer, polls) stay
   * with participants.
   */
  operator(identity: string): MeetingOperator {
    if (typeof identity !== 'string' || identity.length === 0 || identity.length > MAX_IDENTITY) {
      throw new ArgumentError(`operator identity must be a non-empty string of at most ${MAX_IDENTITY} characters`);
    }
    const actor = new OperatorActor(this, identity);
    return Object.freeze({
      identity,
      admit: (participantId: string) => this.#admit(actor, participantId),
      deny: (participantId: string) => this.#deny(actor, participantId),
      remove: (participantId: string) => this.#remove(actor, participantId),
      mute: (participantId: string) => this.#mute(actor, participantId),
      lock: () => this.#lock(actor),
      unlock: () => this.#unlock(actor),
      end: () => this.#endBy(actor),
      updateSettings: (changes: Partial<MeetingSettings>) => this.#updateSettings(actor, changes),
    });
  }

  #requireModerator(actor: Participant | OperatorActor, action: string): void {
    // An operator handle is made by this meeting's operator() only; a participant must be one of
    // this meeting's, admitted, and host or co-host.
    const allowed =
      actor instanceof OperatorActor
        ? actor.meeting === this
        : actor instanceof Participant && actor.meeting === this && actor.state === 'admitted' && actor.isModerator;
    if (!allowed) {
      throw new PolicyError('NOT_PERMITTED', `only the host or a co-host may ${action}`);
    }
    if (this.#ended) throw new PolicyError('MEETING_ENDED', 'the meeting has ended');
  }

  #requireHost(actor: Participant | OperatorActor, action: string, operatorMay = false): void {
    const allowed =
      actor instanceof OperatorActor
        ? operatorMay && actor.meeting === this
        : actor instanceof Participant && actor.meeting === this && actor.state === 'admitted' && actor.role === 'host';
    if (!allowed) {
      throw new PolicyError('NOT_PERMITTED', `only the host may ${action}`);
    }
    if (this.#ended) throw new PolicyError('MEETING_ENDED', 'the meeting has ended');
  }

  #target(participantId: string): Participant {
    const p = typeof participantId === 'string' ? this.#participants.get(participantId) : undefined;
    if (!p) throw new C4vError('NOT_FOUND', `no participant ${String(participantId)} in this meeting`);
    return p;
  }

  #audit(action: AuditAction, actor: Participant | OperatorActor | 'system', target?: Participant | string): void {
    const entry: AuditEntry = {
      meetingId: this.id,
      at: new Date(),
      action,
      actor: actor === 'system' ? 'system' : actor.identity,
      ...(target !== undefined ? { target: typeof target === 'string' ? target : target.identity } : {}),
    };
    this.auditLog.push(entry);
    // Identities are personal data: the log line names participants by their opaque ids (their
    // logView), the audit record (subject to retention) keeps who it was.
    this.#logger.info(
      { action, actor: actor === 'system' ? 'system' : actor, ...(target instanceof Participant ? { target } : {}) },
      'host action',
    );
    this.safeEmit('audit', entry);
  }

  /** Admits one waiting participant (host or co-host). MEETING_FULL when the meeting is full. */
  admit(actor: Participant, participantId: string): void {
    return this.#admit(actor, participantId);
  }

  #admit(actor: Participant | OperatorActor, participantId: string): void {
    this.#requireModerator(actor, 'admit participants');
    const p = this.#target(participantId);
    if (p.state === 'admitted') return;
    if (p.state !== 'waiting-room' && p.state !== 'waiting-for-host') throw new InvalidStateError(`participant is ${p.state}`);
    if (this.participants.length >= this.#settings.maxParticipants) throw new PolicyError('MEETING_FULL', 'the meeting is full');
    this.#audit('admit', actor, p);
    p._setState('admitted');
    this.#onAdmitted(p);
    this.#sendWaitingList();
  }

  /** Admits everyone waiting, in order of arrival, while there is room. Returns how many got in. */
  admitAll(actor: Participant): number {
    this.#requireModerator(actor, 'admit participants');
    let n = 0;
    for (const p of this.waiting) {
      if (this.participants.length >= this.#settings.maxParticipants) break;
      this.#audit('admit', actor, p);
      p._setState('admitted');
      this.#onAdmitted(p);
      n++;
    }
    this.#sendWaitingList();
    return n;
  }

  /** Refuses a waiting participant (closed with 'denied'; it may ask again). */
  deny(actor: Participant, participantId: string): void {
    return this.#deny(actor, participantId);
  }

  #deny(actor: Participant | OperatorActor, participantId: string): void {
    this.#requireModerator(actor, 'deny participants');
    const p = this.#target(participantId);
    if (p.state === 'admitted') throw new InvalidStateError('participant is already admitted: use remove()');
    this.#audit('deny', actor, p);
    this._closeParticipant(p, 'denied');
  }

  /** Locks the meeting: every new join is refused (MEETING_LOCKED), the waiting room included. */
  lock(actor: Participant): void {
    return this.#lock(actor);
  }

  #lock(actor: Participant | OperatorActor): void {
    this.#requireModerator(actor, 'lock the meeting');
    this.#audit('lock', actor);
    this.#setLocked(true);
  }

  unlock(actor: Participant): void {
    return this.#unlock(actor);
  }

  #unlock(actor: Participant | OperatorActor): void {
    this.#requireModerator(actor, 'unlock the meeting');
    this.#audit('unlock', actor);
    this.#setLocked(false);
  }

  #setLocked(locked: boolean): void {
    if (this.#locked === locked) return;
    this.#locked = locked;
    for (const p of this.participants) p.safeEmit('meetinglocked', locked);
  }

  /** Removes a participant; its identity cannot rejoin this meeting (BANNED). */
  remove(actor: Participant, participantId: string): void {
    return this.#remove(actor, participantId);
  }

  #remove(actor: Participant | OperatorActor, participantId: string): void {
    this.#requireModerator(actor, 'remove participants');
    const p = this.#target(participantId);
    if (p === actor) throw new InvalidStateError('use leave() to leave the meeting');
    if (p.role === 'host' && !(actor instanceof OperatorActor) && actor.role !== 'host') {
      throw new PolicyError('NOT_PERMITTED', 'a co-host cannot remove the host');
    }
    this.#audit('remove', actor, p);
    this.#banned.add(p.identity);
    this.#cohostIdentities.delete(p.identity);
    this._closeParticipant(p, 'removed');
  }

  /** Pauses a participant's audio producers on the server; only the participant can unmute. */
  mute(actor: Participant, participantId: string): Promise<void> {
    return this.#mute(actor, participantId);
  }

  async #mute(actor: Participant | OperatorActor, participantId: string): Promise<void> {
    this.#requireModerator(actor, 'mute participants');
    const p = this.#target(participantId);
    if (p.state !== 'admitted') throw new InvalidStateError(`participant is ${p.state}`);
    this.#audit('mute', actor, p);
    await this.#muteParticipant(p);
  }

  /** Mutes everyone but the actor. */
  async muteAll(actor: Participant): Promise<void> {
    this.#requireModerator(actor, 'mute participants');
    this.#audit('mute-all', actor);
    await Promise.all(this.participants.filter((p) => p !== actor).map((p) => this.#muteParticipant(p)));
  }

  async #muteParticipant(p: Participant): Promise<void> {
    this.#mutedByHost.add(p.identity);
    for (const info of this._media.producers) {
      if (info.participantId !== p.id || info.kind !== 'audio' || info.paused) continue;
      const paused = await this._media.pauseProducer(info.id);
      p.safeEmit('mutedbyhost', paused);
      for (const other of this.participants) if (other !== p) other.safeEmit('producerpaused', paused);
    }
  }

  /** Closes a participant's screen-share producers (video and audio). */
  stopScreenShare(actor: Participant, participantId: string): void {
    this.#requireModerator(actor, 'stop a screen share');
    const p = this.#target(participantId);
    this.#audit('stop-screen-share', actor, p);
    for (const info of this._media.producers) {
      if (info.participantId === p.id && (info.source === 'screen-video' || info.source === 'screen-audio')) {
        this._media.closeProducer(info.id);
      }
    }
  }

  /** Makes an admitted participant a co-host (host only). */
  makeCoHost(actor: Participant, participantId: string): void {
    this.#requireHost(actor, 'make co-hosts');
    const p = this.#target(participantId);
    if (p.state !== 'admitted') throw new InvalidStateError(`participant is ${p.state}`);
    if (p.role !== 'participant') throw new InvalidStateError(`participant is already ${p.role}`);
    this.#audit('make-cohost', actor, p);
    this.#cohostIdentities.add(p.identity);
    this.#setRole(p, 'cohost');
  }

  /** Hands the host role to an admitted participant (host only); the old host becomes a co-host. */
  transferHost(actor: Participant, participantId: string): void {
    this.#requireHost(actor, 'hand over the host role');
    const p = this.#target(participantId);
    if (p === actor) return;
    if (p.state !== 'admitted') throw new InvalidStateError(`participant is ${p.state}`);
    this.#audit('transfer-host', actor, p);
    this.#hostIdentity = p.identity;
    this.#cohostIdentities.delete(p.identity);
    this.#cohostIdentities.add(actor.identity);
    this.#setRole(p, 'host');
    this.#setRole(actor, 'cohost');
  }

  #setRole(p: Participant, role: Role): void {
    if (p.role === role) return;
    p._setRole(role);
    for (const other of this.participants) other.safeEmit('rolechange', p);
    if (p.isModerator && p.state === 'admitted') p.safeEmit('waitinglist', this.waiting);
  }

  /** Ends the meeting for everyone (host only). */
  end(actor: Participant): void {
    return this.#endBy(actor);
  }

  #endBy(actor: Participant | OperatorActor): void {
    this.#requireHost(actor, 'end the meeting', true);
    this.#audit('end', actor);
    this.#end('meeting-ended');
  }

  #end(reason: CloseReason): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endedAt = new Date();
    for (const p of [...this.#participants.values()]) this._closeParticipant(p, reason);
    for (const poll of this.#polls.values()) {
      if (!poll.closed) {
        poll.closed = true;
        this.safeEmit('pollclosed', this.#results(poll));
      }
    }
    this._media.close('meeting-ended');
    this.#logger.info({ reason }, 'meeting ended');
    this.safeEmit('meetingended');
  }

  /** Changes settings (host only). Account-locked ones: SETTING_LOCKED; regions and E2EE are fixed at creation. */
  updateSettings(actor: Participant, changes: Partial<MeetingSettings>): void {
    return this.#updateSettings(actor, changes);
  }

  #updateSettings(actor: Participant | OperatorActor, changes: Partial<MeetingSettings>): void {
    this.#requireHost(actor, 'change settings', true);
    const clean = validateSettings(changes);
    this.account.assertOverridable(clean);
    for (const fixed of ['allowedRegions', 'e2ee'] as const) {
      if (clean[fixed] !== undefined && JSON.stringify(clean[fixed]) !== JSON.stringify(this.#settings[fixed])) {
        throw new InvalidStateError(`${fixed} is fixed when the meeting is created`);
      }
    }
    if (clean.passwordRequired === true && !this.passwordHash) {
      throw new InvalidStateError('this meeting has no password; create it with one');
    }
    const before = this.#settings;
    this.#settings = { ...before, ...clean };
    this.#audit('settings-changed', actor);
    if (before.allowChat && !this.#settings.allowChat) this._media.closeChat();
    for (const p of this.participants) p.safeEmit('settingschanged', { ...clean });
    this.safeEmit('settingschanged', { ...clean });
    if (before.waitingRoom && !this.#settings.waitingRoom && !this.#awaitingHost()) {
      for (const w of this.waiting) if (w.state === 'waiting-room') this.#tryAdmit(w);
      this.#sendWaitingList();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Polls
  // ---------------------------------------------------------------------------------------------

  /** Creates a poll (host or co-host); admitted participants get 'pollcreated'. Returns its id. */
  createPoll(actor: Participant, init: PollInit): string {
    this.#requireModerator(actor, 'create polls');
    if (typeof init !== 'object' || init === null) throw new ArgumentError('poll must be an object');
    if (typeof init.question !== 'string' || init.question.trim().length === 0 || init.question.length > 500) {
      throw new ArgumentError('poll question must be a non-empty string of at most 500 characters');
    }
    if (
      !Array.isArray(init.options) ||
      init.options.length < 2 ||
      init.options.length > 20 ||
      !init.options.every((o) => typeof o === 'string' && o.length > 0 && o.length <= 200)
    ) {
      throw new ArgumentError('a poll needs 2 to 20 options of 1 to 200 characters');
    }
    const poll: Poll = {
      id: randomUUID(),
      question: init.question,
      options: [...init.options],
      anonymous: init.anonymous === true,
      closed: false,
      answers: new Map(),
    };
    this.#polls.set(poll.id, poll);
    this.#audit('poll-created', actor);
    const copy: PollInit = { question: poll.question, options: [...poll.options], anonymous: poll.anonymous };
    for (const p of this.participants) p.safeEmit('pollcreated', poll.id, copy);
    return poll.id;
  }

  #poll(pollId: string): Poll {
    const poll = this.#polls.get(pollId);
    if (!poll) throw new C4vError('NOT_FOUND', `no poll ${String(pollId)} in this meeting`);
    return poll;
  }

  /** Closes a poll; its results go out through 'pollclosed' (meeting metadata). */
  closePoll(actor: Participant, pollId: string): PollResults {
    this.#requireModerator(actor, 'close polls');
    const poll = this.#poll(pollId);
    if (poll.closed) return this.#results(poll);
    poll.closed = true;
    this.#audit('poll-closed', actor);
    const results = this.#results(poll);
    this.safeEmit('pollclosed', results);
    return results;
  }

  /** The results so far (host or co-host). */
  pollResults(actor: Participant, pollId: string): PollResults {
    this.#requireModerator(actor, 'see poll results');
    return this.#results(this.#poll(pollId));
  }

  /** Every poll's results, for the control-plane export (metadata). */
  get polls(): PollResults[] {
    return [...this.#polls.values()].map((p) => this.#results(p));
  }

  #results(poll: Poll): PollResults {
    const counts = poll.options.map(() => 0);
    for (const a of poll.answers.values()) counts[a.option]!++;
    return {
      pollId: poll.id,
      question: poll.question,
      options: [...poll.options],
      counts,
      answers: poll.anonymous
        ? []
        : [...poll.answers].map(([identity, a]) => ({ identity, displayName: a.displayName, option: a.option })),
      closed: poll.closed,
    };
  }

  /** @internal */
  _answerPoll(p: Participant, pollId: string, option: number): void {
    const poll = this.#poll(pollId);
    if (poll.closed) throw new InvalidStateError('the poll is closed');
    if (!Number.isInteger(option) || option < 0 || option >= poll.options.length) {
      throw new ArgumentError(`option must be an index in 0..${poll.options.length - 1}`);
    }
    if (poll.answers.has(p.identity)) throw new PolicyError('ALREADY_ANSWERED', 'you already answered this poll');
    poll.answers.set(p.identity, { displayName: p.displayName, option });
  }

  // ---------------------------------------------------------------------------------------------
  // Media, on behalf of participants (policy here, mechanics in MeetingMedia)
  // ---------------------------------------------------------------------------------------------

  /** @internal */
  async _produce(
    p: Participant,
    params: { transportId: string; source: MediaSource; kind: 'audio' | 'video'; rtpParameters: ms.RtpParameters },
  ): Promise<ProducerInfo> {
    if (typeof params !== 'object' || params === null) throw new ArgumentError('produce parameters must be an object');
    const screen = params.source === 'screen-video' || params.source === 'screen-audio';
    if (screen && !this.#settings.allowScreenShare && !p.isModerator) {
      throw new PolicyError('SCREEN_SHARE_DISABLED', 'screen sharing is switched off for participants');
    }
    const startMuted =
      params.source === 'microphone' && (this.#mutedByHost.has(p.identity) || (this.#settings.muteOnEntry && p.role === 'participant'));
    const info = await this._media.produce(p.id, { ...params, paused: startMuted });
    if (p.state !== 'admitted') {
      this._media.closeProducer(info.id);
      throw new PolicyError('NOT_ADMITTED', 'no longer in the meeting');
    }
    for (const other of this.participants) if (other !== p) other.safeEmit('newproducer', { ...info });
    return info;
  }

  /** @internal */
  async _setProducerPaused(p: Participant, producerId: string, paused: boolean): Promise<ProducerInfo> {
    const current = this._media.producer(producerId);
    if (!current) throw new MediaError('NOT_FOUND', `no producer ${String(producerId)} in this meeting`);
    if (current.participantId !== p.id) throw new PolicyError('NOT_PERMITTED', 'only the owner pauses or resumes a producer');
    const info = paused ? await this._media.pauseProducer(producerId) : await this._media.resumeProducer(producerId);
    if (!paused && info.kind === 'audio') this.#mutedByHost.delete(p.identity);
    for (const other of this.participants) {
      if (other !== p) other.safeEmit(paused ? 'producerpaused' : 'producerresumed', { ...info });
    }
    return info;
  }

  /** @internal */
  _closeOwnProducer(p: Participant, producerId: string): void {
    const current = this._media.producer(producerId);
    if (!current) throw new MediaError('NOT_FOUND', `no producer ${String(producerId)} in this meeting`);
    if (current.participantId !== p.id) throw new PolicyError('NOT_PERMITTED', 'only the owner closes a producer');
    this._media.closeProducer(producerId);
  }

  /** @internal */
  async _produceChat(p: Participant, params: { transportId: string; sctpStreamParameters: ms.SctpStreamParameters }): Promise<{ id: string }> {
    if (!this.#settings.allowChat) throw new PolicyError('CHAT_DISABLED', 'chat is switched off in this meeting');
    if (typeof params !== 'object' || params === null || typeof params.sctpStreamParameters !== 'object' || params.sctpStreamParameters === null) {
      throw new ArgumentError('produceChat needs sctpStreamParameters');
    }
    const id = await this._media.produceData(p.id, params.transportId, params.sctpStreamParameters);
    if (p.state !== 'admitted' || !this.#settings.allowChat) {
      this._media.closeDataProducer(id);
      throw new PolicyError(p.state !== 'admitted' ? 'NOT_ADMITTED' : 'CHAT_DISABLED', 'chat channel no longer allowed');
    }
    for (const other of this.participants) if (other !== p) other.safeEmit('newchat', id, p.id);
    return { id };
  }

  /** @internal */
  _relayKeyMessage(from: Participant, to: string | undefined, data: Uint8Array): void {
    if (this.#settings.e2ee === 'off') throw new InvalidStateError('end-to-end encryption is off in this meeting');
    if (!from.e2eeCapable) throw new PolicyError('NOT_PERMITTED', 'this client did not declare E2EE support');
    const recipients =
      to === undefined
        ? this.participants.filter((p) => p !== from && p.e2eeCapable)
        : [this.#participants.get(to)].filter((p): p is Participant => p !== undefined && p.state === 'admitted');
    if (to !== undefined && recipients.length === 0) throw new C4vError('NOT_FOUND', `no admitted participant ${String(to)}`);
    // Each recipient gets its own copy: a listener cannot alter what another one sees.
    for (const r of recipients) r.safeEmit('keymessage', from.id, data.slice());
  }

  #wireMedia(): void {
    const m = this._media;
    m.on('producerclosed', (info) => {
      for (const p of this.participants) p.safeEmit('producerclosed', info.id);
    });
    m.on('chatclosed', (id) => {
      for (const p of this.participants) p.safeEmit('chatclosed', id);
    });
    m.on('dominantspeaker', (pid) => {
      const speaker = this.#participants.get(pid);
      if (!speaker || speaker.state !== 'admitted') return;
      this.#activeSpeakerId = pid;
      this.safeEmit('activespeaker', speaker);
      for (const p of this.participants) p.safeEmit('activespeaker', pid);
    });
    // Issue 11: layer and score changes go to the one participant they concern.
    m.on('consumerlayers', (pid, consumerId, layers) => this.#participants.get(pid)?.safeEmit('consumerlayers', consumerId, layers));
    m.on('consumerscore', (pid, consumerId, score) => this.#participants.get(pid)?.safeEmit('consumerscore', consumerId, score));
    m.on('producerscore', (producerId, pid, scores) => this.#participants.get(pid)?.safeEmit('producerscore', producerId, scores));
    m.on('placement', (entry) => this.#onPlacement(entry));
    m.on('transportstate', (pid, tid, state) => this.#participants.get(pid)?.safeEmit('transportstate', tid, state));
    m.on('reconnect', (pids) => {
      for (const pid of pids) {
        const p = this.#participants.get(pid);
        if (p?.state === 'admitted') p.safeEmit('reconnect', 'worker-failed');
      }
    });
    m.on('recoveryfailed', (error) => {
      this.#logger.error({ err: error.message }, 'no media worker of the allowed regions came back in time: ending the meeting');
      this.#end('worker-failed');
    });
  }

  #onPlacement(entry: PlacementEntry): void {
    const known = this.placements.find((p) => p.workerId === entry.workerId && p.from.getTime() === entry.from.getTime());
    if (known) Object.assign(known, entry);
    else this.placements.push({ ...entry });
    this.safeEmit('placement', { ...entry });
  }

  // ---------------------------------------------------------------------------------------------
  // Leaving and teardown
  // ---------------------------------------------------------------------------------------------

  /** @internal The one path by which a participant's session ends. */
  _closeParticipant(p: Participant, reason: CloseReason, options: { replaced?: boolean } = {}): void {
    const before: ParticipantState = p.state;
    const wasHost = p.role === 'host';
    if (!p._markClosed(reason)) return;
    this.#participants.delete(p.id);
    if (this.#activeSpeakerId === p.id) this.#activeSpeakerId = undefined;
    this._media.releaseParticipant(p.id);
    this.#logger.info({ participantId: p.id, reason }, 'participant left');
    p.safeEmit('statechange', 'closed');
    p.safeEmit('close', reason);
    if (before === 'admitted') {
      for (const other of this.participants) other.safeEmit('participantleft', p, reason);
    } else {
      this.#sendWaitingList();
    }
    this.safeEmit('participantleft', p, reason);
    if (wasHost && before === 'admitted' && !this.#ended && !options.replaced) this.#onHostLeft();
  }

  #onHostLeft(): void {
    const cohost = this.participants.find((p) => p.role === 'cohost');
    if (cohost) {
      this.#setRole(cohost, 'host');
      // The new host may be the one who admits those waiting for a host.
      this.#hostArrived();
      return;
    }
    switch (this.#settings.onHostLeave) {
      case 'end-meeting':
        this.#end('host-left');
        break;
      case 'wait-for-host':
        this.#pausedForHost = true;
        break;
      case 'keep-running':
        break;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Issue 13: policy state for a new home node (lib/cluster). The home writes it through to
  // Redis; a node taking the home role over rebuilds the meeting's policy from it.
  // ---------------------------------------------------------------------------------------------

  /** @internal The policy state of the meeting: lock, bans, roles, mutes, polls, who is admitted or waiting. */
  _policyState(): MeetingPolicyState {
    return {
      locked: this.#locked,
      hostIdentity: this.#hostIdentity,
      startedAt: this.#startedAt?.toISOString(),
      pausedForHost: this.#pausedForHost,
      banned: [...this.#banned],
      cohosts: [...this.#cohostIdentities],
      mutedByHost: [...this.#mutedByHost],
      admitted: [...new Set([...this.participants.map((p) => p.identity), ...this.#returning])],
      waiting: this.waiting.map((p) => p.identity),
      settings: { ...this.#settings, allowedRegions: [...this.#settings.allowedRegions] },
      polls: [...this.#polls.values()].map((p) => ({
        id: p.id,
        question: p.question,
        options: [...p.options],
        anonymous: p.anonymous,
        closed: p.closed,
        answers: [...p.answers].map(([identity, a]) => ({ identity, displayName: a.displayName, option: a.option })),
      })),
    };
  }

  /** @internal Rebuilds the policy from a previous home's state (before anyone joins here). */
  _restorePolicy(s: MeetingPolicyState): void {
    this.#locked = s.locked;
    this.#hostIdentity = s.hostIdentity;
    if (s.startedAt) this.#startedAt = new Date(s.startedAt);
    this.#pausedForHost = s.pausedForHost;
    for (const x of s.banned) this.#banned.add(x);
    for (const x of s.cohosts) this.#cohostIdentities.add(x);
    for (const x of s.mutedByHost) this.#mutedByHost.add(x);
    for (const x of s.admitted) this.#returning.add(x);
    this.#settings = { ...this.#settings, ...s.settings, allowedRegions: [...this.#settings.allowedRegions], e2ee: this.#settings.e2ee };
    for (const p of s.polls) {
      this.#polls.set(p.id, {
        id: p.id,
        question: p.question,
        options: [...p.options],
        anonymous: p.anonymous,
        closed: p.closed,
        answers: new Map(p.answers.map((a) => [a.identity, { displayName: a.displayName, option: a.option }])),
      });
    }
  }

  /**
   * @internal Issue 13b: the participants of a previous home (a takeover), back in the states and
   * roles they had, with their ids and admission numbers, before anyone joins here. Nobody here
   * knew them, so no joined or waiting event is sent; their sessions at the gateway start detached
   * (the reconnect grace). Records that do not fit the restored policy (a banned identity, a second
   * session of one identity, a second host) are skipped or demoted.
   */
  _restoreParticipants(list: readonly RestoredParticipant[]): Participant[] {
    const out: Participant[] = [];
    const identities = new Set([...this.#participants.values()].map((p) => p.identity));
    let host = this.host !== undefined;
    // In admission order, so the numbers handed out below are the ones the old home gave.
    for (const r of [...list].sort((a, b) => (a.admittedSeq || Infinity) - (b.admittedSeq || Infinity))) {
      if (this.#participants.has(r.id) || identities.has(r.identity) || this.#banned.has(r.identity)) continue;
      const admitted = r.state === 'admitted';
      let role: Role = r.role;
      if (role === 'host' && (host || !admitted)) role = this.#cohostIdentities.has(r.identity) ? 'cohost' : 'participant';
      if (role === 'host') host = true;
      // The constructor numbers an admitted participant with the next number: the old one, unless
      // it was given out here already (the counter never goes back).
      if (admitted && r.admittedSeq > 0) this.#admittedSeq = Math.max(this.#admittedSeq, r.admittedSeq - 1);
      const p = new Participant(this, {
        id: r.id,
        identity: r.identity,
        displayName: r.displayName,
        email: undefined,
        address: undefined,
        macAddress: undefined,
        authenticated: r.authenticated,
        e2eeCapable: r.e2eeCapable,
        role,
        state: r.state,
      });
      p.on('listenererror', (event, error) => this._logListenerError('participant', event, error));
      this.#participants.set(p.id, p);
      identities.add(p.identity);
      out.push(p);
    }
    const admitted = out.filter((p) => p.state === 'admitted');
    if (admitted.length > 0 && !this.#startedAt) this.#startedAt = new Date();
    if (admitted.some((p) => p.role === 'host')) this.#pausedForHost = false;
    this.#logger.info({ restored: out.length, admitted: admitted.length }, 'participants restored from the previous home');
    return out;
  }

  /** Ends the meeting (if running, with 'server-shutdown') and releases it. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#end('server-shutdown');
    this._media.close();
    this.safeEmit('close');
  }
}

/** @internal Issue 13b: one participant as a previous home recorded it (see Meeting._restoreParticipants). */
export interface RestoredParticipant {
  id: string;
  identity: string;
  displayName: string;
  role: Role;
  state: 'admitted' | 'waiting-room' | 'waiting-for-host';
  authenticated: boolean;
  e2eeCapable: boolean;
  /** The admission number the old home gave (0 while waiting). */
  admittedSeq: number;
}

/**
 * @internal Issue 13: what a meeting's home writes through to Redis so that another node can take
 * the home role over. Identities and names only where the policy needs them (bans, roles, mutes,
 * poll answers, who may come back without waiting).
 */
export interface MeetingPolicyState {
  locked: boolean;
  hostIdentity: string;
  startedAt: string | undefined;
  pausedForHost: boolean;
  banned: string[];
  cohosts: string[];
  mutedByHost: string[];
  admitted: string[];
  waiting: string[];
  settings: MeetingSettings;
  polls: Array<{
    id: string;
    question: string;
    options: string[];
    anonymous: boolean;
    closed: boolean;
    answers: Array<{ identity: string; displayName: string; option: number }>;
  }>;
}
