import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ArgumentError, C4vError } from './errors.js';
import { TypedEmitter } from './events.js';
import { MeetingMedia, type MediaPlane, type MeetingMediaOptions } from './media/MeetingMedia.js';
import { WorkerPool, type PoolWorker, type WorkerPoolOptions } from './media/WorkerPool.js';
import { DEFAULT_PASSWORD_LIMITS, Meeting, type PasswordAttemptLimits } from './model/Meeting.js';
import type { Participant } from './model/Participant.js';
import { AttemptLimiter, ConcurrencyGate, assertPassword, hashPassword } from './model/password.js';
import { isPictureUrl, PICTURE_URL_RULE } from './model/pictureUrl.js';

// Issue 15: the shape hashPassword() writes (`scrypt$N$r$p$<salt>$<hash>`).
const PASSWORD_HASH_RE = /^scrypt\$\d{1,8}\$\d{1,3}\$\d{1,3}\$[A-Za-z0-9+/=]{8,128}\$[A-Za-z0-9+/=]{16,256}$/;

function assertPasswordHash(hash: unknown): void {
  if (typeof hash !== 'string' || !PASSWORD_HASH_RE.test(hash)) throw new ArgumentError('passwordHash must be an scrypt hash from hashPassword()');
}
import { Account } from './model/settings.js';
import type {
  AccountInit,
  AuditEntry,
  CloseReason,
  MeetingInit,
  MeetingSettings,
  PlacementEntry,
  PollResults,
} from './model/types.js';

export interface MediaCoreOptions {
  /** The root logger (see createLogger); the core derives child loggers from it. */
  logger: Logger;
  /** The metrics registry (see createMetricsRegistry); nothing is registered globally. */
  registry: Registry;
  /** Worker pool settings (count, regions, ports). */
  workers?: Omit<WorkerPoolOptions, 'logger'>;
  /** Media-plane settings of every meeting (listen addresses, participants per worker, codecs). */
  media?: MeetingMediaOptions;
  /** Limits for wrong meeting passwords (per client address and per meeting). */
  passwordAttempts?: Partial<PasswordAttemptLimits>;
}

export type MediaCoreEvents = {
  workerdied: [PoolWorker, Error];
  close: [];
  listenererror: [string, unknown];
};

/** Every meeting's events with the meeting first: what telemetry and the control plane subscribe to. */
export type MediaCoreObserverEvents = {
  meetingcreated: [Meeting];
  meetingstarted: [Meeting];
  meetingended: [Meeting];
  /** Admitted into the meeting. */
  participantjoined: [Meeting, Participant];
  /** Waiting for the host or in the waiting room. */
  participantwaiting: [Meeting, Participant];
  participantleft: [Meeting, Participant, CloseReason];
  settingschanged: [Meeting, Partial<MeetingSettings>];
  pollclosed: [Meeting, PollResults];
  audit: [AuditEntry];
  placement: [PlacementEntry];
  /** A meeting was released (closed) and dropped from the core. */
  meetingclosed: [Meeting];
  listenererror: [string, unknown];
};

/**
 * The media core a meeting server embeds: mediasoup workers, accounts and meetings. Created with
 * createMediaCore().
 */
export class MediaCore extends TypedEmitter<MediaCoreEvents> {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly pool: WorkerPool;
  /** Every meeting's events (see MediaCoreObserverEvents). */
  readonly observer = new TypedEmitter<MediaCoreObserverEvents>();
  readonly #accounts = new Map<string, Account>();
  readonly #meetings = new Map<string, Meeting>();
  readonly #mediaOptions: MeetingMediaOptions | undefined;
  readonly #limits: PasswordAttemptLimits;
  readonly #addressLimiter: AttemptLimiter;
  readonly #hashGate: ConcurrencyGate;
  #closed = false;
  /**
   * @internal Issue 13, cluster mode (lib/cluster/ClusterNode.ts): creates each new meeting's media
   * plane (a ClusterMedia whose participants may sit on other nodes) instead of a local MeetingMedia.
   */
  _mediaPlaneFactory: ((p: { meetingId: string; allowedRegions: readonly string[] }) => Promise<MediaPlane>) | undefined;

  /** @internal Use createMediaCore(). */
  constructor(options: {
    logger: Logger;
    registry: Registry;
    pool: WorkerPool;
    media?: MeetingMediaOptions;
    passwordAttempts?: Partial<PasswordAttemptLimits>;
  }) {
    super();
    this.logger = options.logger;
    this.registry = options.registry;
    this.pool = options.pool;
    this.#mediaOptions = options.media;
    this.#limits = { ...DEFAULT_PASSWORD_LIMITS, ...options.passwordAttempts };
    // Per client address across meetings: someone guessing through many meetings is slowed too.
    this.#addressLimiter = new AttemptLimiter(this.#limits.perAddress, this.#limits.windowMs);
    // One bound on concurrent password hashes for the whole core: a flood over many meetings
    // cannot occupy more than this many libuv threads.
    this.#hashGate = new ConcurrencyGate(this.#limits.hashConcurrency, this.#limits.hashQueue);
    this.pool.on('workerdied', (w, e) => this.safeEmit('workerdied', w, e));
    // A throwing listener (an embedding app's or the gateway's) must not go unnoticed: safeEmit
    // catches it and reports it here, and here it is logged with its stack.
    const logListenerError = (source: string) => (event: string, error: unknown): void => {
      const e = error instanceof Error ? error : new Error(String(error));
      this.logger.error({ source, event, err: e }, 'event listener threw');
    };
    this.on('listenererror', logListenerError('core'));
    this.observer.on('listenererror', logListenerError('observer'));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal The media-plane options every meeting of this core uses (issue 13: the cluster's per-node media). */
  get _mediaOptions(): MeetingMediaOptions | undefined {
    return this.#mediaOptions;
  }

  /** Creates (or replaces) an account: its default settings and the settings it locks. */
  createAccount(init: AccountInit): Account {
    const account = new Account(init);
    this.#accounts.set(account.id, account);
    return account;
  }

  getAccount(id: string): Account | undefined {
    return this.#accounts.get(id);
  }

  /** Meetings not yet closed (ended ones included, so that a late join hears MEETING_ENDED). */
  get meetings(): Meeting[] {
    return [...this.#meetings.values()];
  }

  getMeeting(id: string): Meeting | undefined {
    return this.#meetings.get(id);
  }

  /**
   * Creates a meeting of an account: effective settings (SETTING_LOCKED when an override touches
   * a locked setting), the password hashed, the first router on a worker in an allowed region
   * (REGION_UNAVAILABLE when there is none).
   */
  async createMeeting(init: MeetingInit): Promise<Meeting> {
    if (this.#closed) throw new C4vError('CLOSED', 'media core closed');
    if (typeof init !== 'object' || init === null) throw new ArgumentError('meeting init must be an object');
    const account = this.#accounts.get(init.accountId);
    if (!account) throw new C4vError('NOT_FOUND', `no account ${String(init.accountId)}`);
    if (typeof init.title !== 'string' || init.title.length > 500) throw new ArgumentError('title must be a string of at most 500 characters');
    if (typeof init.hostIdentity !== 'string' || init.hostIdentity.length === 0 || init.hostIdentity.length > 256) {
      throw new ArgumentError('hostIdentity must be a non-empty string of at most 256 characters');
    }
    if (init.hostProfilePictureUrl !== undefined) assertPictureUrl(init.hostProfilePictureUrl);
    const id = init.id ?? randomUUID();
    if (typeof id !== 'string' || id.length === 0 || id.length > 128) throw new ArgumentError('meeting id must be a string of 1 to 128 characters');
    if (this.#meetings.has(id)) throw new C4vError('INVALID_STATE', `meeting ${id} exists already`);
    let overrides: Partial<MeetingSettings> = { ...init.settings };
    if (init.password !== undefined && init.passwordHash !== undefined) throw new ArgumentError('give password or passwordHash, not both');
    if (init.passwordHash !== undefined) assertPasswordHash(init.passwordHash);
    if (init.password !== undefined) assertPassword(init.password);
    if (init.password !== undefined || init.passwordHash !== undefined) {
      // A meeting with a password requires it (unless the account locked passwordRequired off).
      overrides = { ...overrides, passwordRequired: true };
    }
    const settings = account.effectiveSettings(overrides);
    if (settings.passwordRequired && init.password === undefined && init.passwordHash === undefined) {
      throw new ArgumentError('settings require a meeting password: pass init.password');
    }
    const passwordHash = init.password !== undefined ? await hashPassword(init.password) : init.passwordHash;
    const media = this._mediaPlaneFactory
      ? await this._mediaPlaneFactory({ meetingId: id, allowedRegions: settings.allowedRegions })
      : await MeetingMedia.create({
          meetingId: id,
          pool: this.pool,
          allowedRegions: settings.allowedRegions,
          ...(this.#mediaOptions ? { options: this.#mediaOptions } : {}),
          logger: this.logger,
        });
    if (this.#closed || this.#meetings.has(id)) {
      media.close();
      throw new C4vError(this.#closed ? 'CLOSED' : 'INVALID_STATE', this.#closed ? 'media core closed' : `meeting ${id} exists already`);
    }
    const meeting = new Meeting({
      id,
      init,
      account,
      settings,
      passwordHash,
      media,
      logger: this.logger,
      addressLimiter: this.#addressLimiter,
      hashGate: this.#hashGate,
      limits: this.#limits,
    });
    this.#meetings.set(id, meeting);
    this.#observe(meeting);
    this.observer.safeEmit('meetingcreated', meeting);
    for (const p of meeting.placements) this.observer.safeEmit('placement', { ...p });
    return meeting;
  }

  #observe(m: Meeting): void {
    const o = this.observer;
    m.on('meetingstarted', () => o.safeEmit('meetingstarted', m));
    m.on('meetingended', () => o.safeEmit('meetingended', m));
    m.on('participantjoined', (p) => o.safeEmit('participantjoined', m, p));
    m.on('participantwaiting', (p) => o.safeEmit('participantwaiting', m, p));
    m.on('participantleft', (p, r) => o.safeEmit('participantleft', m, p, r));
    m.on('settingschanged', (s) => o.safeEmit('settingschanged', m, s));
    m.on('pollclosed', (r) => o.safeEmit('pollclosed', m, r));
    m.on('audit', (e) => o.safeEmit('audit', e));
    m.on('placement', (e) => o.safeEmit('placement', e));
    m.once('close', () => {
      this.#meetings.delete(m.id);
      o.safeEmit('meetingclosed', m);
    });
  }

  /** Closes every meeting (participants get 'server-shutdown') and stops every worker. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const m of [...this.#meetings.values()]) m.close();
    this.pool.close();
    this.safeEmit('close');
  }
}

/** Starts the media core: resolves once every worker is up. */
export async function createMediaCore(options: MediaCoreOptions): Promise<MediaCore> {
  const pool = await WorkerPool.create({ ...options.workers, logger: options.logger });
  return new MediaCore({
    logger: options.logger,
    registry: options.registry,
    pool,
    ...(options.media ? { media: options.media } : {}),
    ...(options.passwordAttempts ? { passwordAttempts: options.passwordAttempts } : {}),
  });
}

// The host's profile picture is allow-listed metadata: one rule (lib/model/pictureUrl.ts), shared
// with the operator API's schema, so that nothing else can travel in that field.
function assertPictureUrl(value: unknown): void {
  if (!isPictureUrl(value)) throw new ArgumentError(`hostProfilePictureUrl must be ${PICTURE_URL_RULE}`);
}
