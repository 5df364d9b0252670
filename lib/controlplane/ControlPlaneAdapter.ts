import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { C4vError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import type { AuditEntry, CloseReason, MeetingSettings, PlacementEntry, PollResults } from '../model/types.js';
import { assertAllowListed, encodeEvent, eventType, renderEvent, type ControlPlaneMessage } from './allowList.js';
import * as map from './mapping.js';
import type { MeetingView, ParticipantView } from './mapping.js';
import { eventFieldPaths } from '../privacy/fields.js';
import { privacyReport, type PrivacyReport, type PrivacyReportOptions } from '../privacy/report.js';
import type { ControlPlaneSink, OutgoingEvent, PurgeTarget } from './sinks.js';
import { ControlPlaneStore, type OrphanedMeeting, type PendingDelivery, type PurgeResult, type StoredAuditEntry } from './store.js';

/** The observer events the adapter listens to (a subset of MediaCore's `observer`). */
export type ControlPlaneSourceEvents = {
  meetingcreated: [MeetingView];
  meetingstarted: [MeetingView];
  meetingended: [MeetingView];
  participantjoined: [MeetingView, ParticipantView];
  participantleft: [MeetingView, ParticipantView, CloseReason];
  settingschanged: [MeetingView, Partial<MeetingSettings>];
  pollclosed: [MeetingView, PollResults];
  audit: [AuditEntry];
  placement: [PlacementEntry];
};

/** What the adapter is attached to: the media core (its `observer`, and its live meetings). */
export interface ControlPlaneSource {
  readonly observer: Pick<TypedEmitter<ControlPlaneSourceEvents>, 'on' | 'off'>;
  readonly meetings?: readonly MeetingView[];
  /**
   * Used by the retention purge to release an ended meeting the core still holds (with its
   * participant records and poll answers) once the account's retention has run out.
   */
  getMeeting?(id: string): { readonly ended: boolean; close(): void } | undefined;
}

export interface ControlPlaneAdapterOptions {
  /** The media core; the adapter subscribes to `source.observer` and is never called by meetings. */
  source: ControlPlaneSource;
  /** The SQLite outbox file (created when missing). Keep it on an encrypted local disk. */
  outboxPath: string;
  /** Where events go; each has a stable name (its delivery state in the outbox is per name). */
  sinks: ControlPlaneSink[];
  logger: Logger;
  /** Delivery retry backoff: doubles from `initialDelayMs` (default 500) up to `maxDelayMs` (default 60 s). */
  retry?: { initialDelayMs?: number; maxDelayMs?: number };
  /** How often the retention purge runs (it also runs on start); default one hour. */
  purgeIntervalMs?: number;
  /** Meetings delivered at the same time per sink (order within a meeting is always kept); default 8. */
  concurrency?: number;
  /**
   * Called with the ids of meetings whose retention ran out, for personal data held elsewhere in
   * the process (e.g. the model's ended-meeting records). Must not throw.
   */
  onPurge?: (meetingIds: string[]) => void;
  /** Clock in ms (tests move it forward to cross a retention boundary); default Date.now. */
  clock?: () => number;
  /**
   * Other stores that hold meeting data and must forget a meeting at its retention boundary
   * (Redis in cluster mode, ...). Sinks that keep what they received and opted in to purging (a
   * FileSink with `purgeOnRetention`) are added automatically.
   */
  purgeTargets?: PurgeTarget[];
  /**
   * The installation's pseudonym key (32+ random bytes, hex; created with mode 0600 when
   * missing). Default: `pseudonym.key` next to the outbox.
   */
  pseudonymKeyPath?: string;
  /**
   * Refuse to start (INSECURE_PERMISSIONS) when a folder or file of personal data lets group or
   * others in; by default that is a warning in the log.
   */
  strictPermissions?: boolean;
}

export type ControlPlaneAdapterEvents = {
  /** An event is in the outbox (on disk). */
  enqueued: [OutgoingEvent];
  /** A sink accepted an event. */
  delivered: [OutgoingEvent, string];
  /** A delivery failed; it is retried after a backoff. */
  deliveryfailed: [OutgoingEvent, string, Error, number];
  /** An observer event could not be stored (the outbox is unwritable). */
  enqueuefailed: [Error];
  /** Every stored event has been delivered to every sink. */
  drained: [];
  /** A retention purge removed personal data. */
  purged: [PurgeResult];
  /** A purge target removed the data of these meetings (clear ids; how many items each). */
  targetpurged: [string, Record<string, number>];
  /** A purge target failed; the purge is retried by the next run. */
  targetpurgefailed: [string, Error];
  close: [];
  listenererror: [string, unknown];
};

/** The audit record of one meeting, as kept by the adapter (readable after the meeting ended). */
export interface AuditRecord {
  meetingId: string;
  accountId: string;
  endedAt?: Date;
  /** When retention removed the identities from `actions` (their times and kinds stay). */
  purgedAt?: Date;
  /** Which workers in which regions carried the meeting, and when. */
  placements: PlacementEntry[];
  /** Host actions: who did what to whom, and when. */
  actions: StoredAuditEntry[];
}

interface LiveMeeting {
  view: MeetingView;
  /**
   * Display names of everyone admitted, by identity (someone who rejoins is listed once), for the
   * meeting-ended participant list.
   */
  attendees: Map<string, string>;
  /** Participant ids admitted and not yet gone. */
  present: Set<string>;
}

interface SinkState {
  sink: ControlPlaneSink;
  running: boolean;
  again: boolean;
  timer: NodeJS.Timeout | undefined;
  inflight: Set<Promise<void>>;
}

/**
 * Sends meeting metadata, and only the allow-listed metadata, to the control plane: observer
 * events become protobuf messages (proto/controlplane.proto), are stored in a durable outbox
 * before anything is sent, and are delivered to every sink with retries, in order per meeting,
 * exactly once per idempotency key at the receiver. Keeps the audit record and applies the
 * accounts' retention to everything it holds. Created with createControlPlaneAdapter().
 */
export class ControlPlaneAdapter extends TypedEmitter<ControlPlaneAdapterEvents> {
  readonly store: ControlPlaneStore;
  readonly #options: ControlPlaneAdapterOptions;
  readonly #logger: Logger;
  readonly #clock: () => number;
  readonly #sinks: SinkState[];
  readonly #live = new Map<string, LiveMeeting>();
  readonly #listeners: Array<[keyof ControlPlaneSourceEvents, (...args: never[]) => void]> = [];
  #purgeTimer: NodeJS.Timeout | undefined;
  readonly #targets: PurgeTarget[];
  #targetRun: Promise<void> | undefined;
  #targetAgain = false;
  #closing: Promise<void> | undefined;
  #closed = false;

  /** @internal Use createControlPlaneAdapter(). */
  constructor(options: ControlPlaneAdapterOptions) {
    super();
    const names = options.sinks.map((s) => s.name);
    if (names.length === 0) throw new TypeError('the control-plane adapter needs at least one sink');
    if (new Set(names).size !== names.length) throw new TypeError(`sink names must be unique, got ${names.join(', ')}`);
    const interval = options.purgeIntervalMs ?? 3_600_000;
    if (!Number.isFinite(interval) || interval <= 0) throw new TypeError(`purgeIntervalMs must be a positive number, got ${interval}`);
    this.#options = options;
    this.#logger = options.logger.child({ component: 'controlplane' });
    this.#clock = options.clock ?? Date.now;
    // Load the allow-list now: a broken installation fails at start, not on the first event.
    eventType();
    const permissions = { strict: options.strictPermissions === true, logger: this.#logger };
    this.store = new ControlPlaneStore(options.outboxPath, {
      permissions,
      ...(options.pseudonymKeyPath ? { pseudonymKeyPath: options.pseudonymKeyPath } : {}),
    });
    try {
      for (const sink of options.sinks) sink.preparePrivatePaths?.(permissions);
    } catch (error) {
      this.store.close();
      throw error;
    }
    this.#targets = [
      ...(options.purgeTargets ?? []),
      ...options.sinks.filter((s) => typeof s.purgeMeetings === 'function').map((s) => ({
        name: s.name,
        purgeMeetings: (ids: readonly string[]) => s.purgeMeetings!(ids),
      })),
    ];
    const targetNames = this.#targets.map((t) => t.name);
    if (new Set(targetNames).size !== targetNames.length) {
      this.store.close();
      throw new TypeError(`purge target names must be unique, got ${targetNames.join(', ')}`);
    }
    const droppedTargets = this.store.dropPurgeTargets(targetNames);
    if (droppedTargets.length > 0) {
      this.#logger.warn({ targets: droppedTargets }, 'dropped queued purges of stores no longer configured; purge them by hand');
    }
    this.#sinks = options.sinks.map((sink) => ({ sink, running: false, again: false, timer: undefined, inflight: new Set() }));

    const now = this.#clock();
    const dropped = this.store.syncSinks(names, now);
    if (dropped.length > 0) this.#logger.warn({ sinks: dropped }, 'dropped undelivered events of sinks no longer configured');
    for (const m of options.source.meetings ?? []) this.#track(m);
    const orphans = this.store.orphans(new Set(this.#live.keys()));
    for (const orphan of orphans) this.#endOrphan(orphan);
    if (orphans.length > 0) this.#logger.info({ meetings: orphans.length }, 'meetings an earlier process left open were ended');
    this.#subscribe();
    // A store that still holds a meeting the outbox has already pseudonymised (a purge cut short by
    // a crash, or a store that became a purge target later) gets that purge queued again.
    for (const target of this.#targets) {
      try {
        const held = new Set((target.heldData?.() ?? []).map((h) => h.meetingId));
        for (const id of held) if (this.store.isPseudonymised(id)) this.store.queuePurge(id, target.name, now);
      } catch (error) {
        // The store cannot say what it holds now: its queued purges still run; start anyway.
        this.#logger.warn({ target: target.name, err: error instanceof Error ? error.message : String(error) }, 'purge target could not list its holdings');
      }
    }
    this.purge();
    this.#purgeTimer = setInterval(() => this.purge(), interval);
    this.#purgeTimer.unref();
    const pending = this.store.pendingCount();
    if (pending > 0) this.#logger.info({ pending }, 'replaying the outbox');
    for (const s of this.#sinks) this.#wake(s);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Undelivered (event, sink) pairs in the outbox. */
  get pending(): number {
    return this.store.pendingCount();
  }

  /**
   * Stores one allow-listed message for `meeting` and delivers it to every sink. For embedding
   * servers that hold metadata the model does not (e.g. a scheduling system's MeetingUpdated).
   * Throws FIELD_NOT_ALLOWED for any undeclared field; nothing is stored or sent then.
   */
  publish(meeting: { meetingId: string; accountId: string; retentionDays: number }, message: ControlPlaneMessage): OutgoingEvent {
    return this.#publish(meeting, message, {});
  }

  #publish(
    meeting: { meetingId: string; accountId: string; retentionDays: number },
    message: ControlPlaneMessage,
    options: { newInstance?: boolean },
  ): OutgoingEvent {
    if (this.#closed) throw new C4vError('CLOSED', 'control-plane adapter closed');
    if (typeof meeting.meetingId !== 'string' || meeting.meetingId === '') throw new TypeError('meetingId must be a non-empty string');
    if (!Number.isFinite(meeting.retentionDays) || meeting.retentionDays < 0) throw new TypeError('retentionDays must be >= 0');
    const kind = assertAllowListed(message);
    const eventId = randomUUID();
    let payload: Uint8Array = new Uint8Array();
    const sequence = this.store.enqueue(
      meeting,
      eventId,
      kind,
      (seq, instanceId) =>
        (payload = encodeEvent(
          { eventId, meetingId: meeting.meetingId, sequence: seq, ...(instanceId ? { meetingInstanceId: instanceId } : {}) },
          message,
        )),
      this.#sinks.map((s) => s.sink.name),
      this.#clock(),
      options,
    );
    const event: OutgoingEvent = { eventId, meetingId: meeting.meetingId, sequence, kind, payload };
    this.#logger.debug({ eventId, meetingId: meeting.meetingId, sequence, kind }, 'control-plane event stored');
    this.safeEmit('enqueued', event);
    for (const s of this.#sinks) this.#wake(s);
    return event;
  }

  /**
   * The audit record of a meeting (live or ended), or undefined if the adapter never saw it. Past
   * retention the store keeps it under the meeting's pseudonym; it is found by the id all the same.
   */
  auditRecord(meetingId: string): AuditRecord | undefined {
    const stored = this.store.storedIdOf(meetingId);
    const m = this.store.meeting(stored);
    const actions = this.store.audit(stored).map((a) => ({ ...a, meetingId }));
    const placements = this.store.placements(stored).map((p) => ({ ...p, meetingId }));
    if (!m && actions.length === 0 && placements.length === 0) return undefined;
    const record: AuditRecord = {
      meetingId,
      accountId: m?.accountId ?? this.#live.get(meetingId)?.view.accountId ?? '',
      placements,
      actions,
    };
    if (m?.endedAt) record.endedAt = m.endedAt;
    if (m?.purgedAt) record.purgedAt = m.purgedAt;
    return record;
  }

  /**
   * The privacy report from this adapter's outbox and audit record (see privacyReport()): what
   * left for which sink, where the media ran, what personal data is held until when, what was
   * purged. Due dates use the adapter's clock; this adapter's purge targets are listed as holders.
   */
  privacyReport(options: Omit<PrivacyReportOptions, 'purgeTargets'> = {}): PrivacyReport {
    return privacyReport(this.store, {
      now: new Date(this.#clock()),
      ...options,
      purgeTargets: this.#targets.map((t) => t.name),
      holders: this.#targets.filter((t): t is PurgeTarget & Required<Pick<PurgeTarget, 'heldData'>> => typeof t.heldData === 'function'),
    });
  }

  /** Ids of every meeting with a record in the adapter's store. */
  meetingIds(): string[] {
    return this.store.meetingIds();
  }

  /**
   * Runs the retention purge now (it also runs on start and on a timer): personal data of meetings
   * whose account retention ran out is removed from the outbox and the audit record, on disk too.
   */
  purge(): PurgeResult {
    if (this.#closed) return { meetingIds: [], eventsDeleted: 0, auditEntriesScrubbed: 0, pseudonymised: [] };
    const result = this.store.purge(
      this.#clock(),
      this.#targets.map((t) => t.name),
    );
    // Queued target purges (this run's, or an earlier run's that failed or was cut by a restart).
    this.#runTargets();
    if (result.meetingIds.length === 0) return result;
    this.#logger.info(
      { meetings: result.meetingIds.length, events: result.eventsDeleted, auditEntries: result.auditEntriesScrubbed },
      'retention purge',
    );
    for (const id of result.meetingIds) {
      this.#live.delete(id);
      // The core keeps an ended meeting (participants, poll answers) until it is released; the
      // retention is the latest moment for that.
      const held = this.#options.source.getMeeting?.(id);
      if (held?.ended) held.close();
    }
    try {
      this.#options.onPurge?.(result.meetingIds);
    } catch (error) {
      this.#logger.error({ err: String(error) }, 'onPurge hook threw');
    }
    this.safeEmit('purged', result);
    return result;
  }

  // Runs the queued purges of the other stores, one run at a time; a failure stays queued for the
  // next purge run.
  #runTargets(): void {
    if (this.#targets.length === 0 || this.#closed) return;
    if (this.#targetRun) {
      this.#targetAgain = true;
      return;
    }
    this.#targetRun = (async () => {
      do {
        this.#targetAgain = false;
        for (const target of this.#targets) {
          if (this.#closed) return;
          const ids = this.store.queuedPurges(target.name).map((q) => q.meetingId);
          if (ids.length === 0) continue;
          try {
            const counts = await target.purgeMeetings(ids, { pseudonym: this.store.pseudonym, now: this.#clock() });
            if (this.store.closed) return;
            for (const id of ids) this.store.purgeDone(id, target.name, this.#clock(), counts[id] ?? 0, target.purgeDetail);
            this.#logger.info({ target: target.name, meetings: ids.length }, 'retention purge of another store');
            this.safeEmit('targetpurged', target.name, counts);
          } catch (error) {
            if (this.store.closed) return;
            const err = error instanceof Error ? error : new Error(String(error));
            for (const id of ids) this.store.purgeFailed(id, target.name, err.message);
            this.#logger.warn({ target: target.name, meetings: ids.length, err }, 'retention purge of another store failed; retried by the next run');
            this.safeEmit('targetpurgefailed', target.name, err);
          }
        }
      } while (this.#targetAgain && !this.#closed);
    })().finally(() => {
      this.#targetRun = undefined;
    });
  }

  /** Resolves once every stored event reached every sink (or rejects after `timeoutMs`). */
  drained(timeoutMs = 30_000): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('drained', onDrained);
        reject(new Error(`control-plane outbox not drained after ${timeoutMs} ms (${this.pending} pending)`));
      }, timeoutMs);
      const onDrained = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.once('drained', onDrained);
    });
  }

  /**
   * Stops listening, waits for deliveries in flight, closes the sinks and the outbox. What is not
   * delivered stays in the outbox for the next start. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    this.#closing = this.#teardown();
    return this.#closing;
  }

  async #teardown(): Promise<void> {
    for (const [event, listener] of this.#listeners) this.#options.source.observer.off(event, listener as never);
    this.#listeners.length = 0;
    clearInterval(this.#purgeTimer);
    for (const s of this.#sinks) clearTimeout(s.timer);
    await Promise.allSettled([...this.#sinks.flatMap((s) => [...s.inflight]), ...(this.#targetRun ? [this.#targetRun] : [])]);
    for (const s of this.#sinks) {
      try {
        await s.sink.close?.();
      } catch (error) {
        this.#logger.warn({ sink: s.sink.name, err: String(error) }, 'closing a sink failed');
      }
    }
    this.store.close();
    this.#live.clear();
    this.safeEmit('close');
  }

  // ------------------------------------------------------------------------------------------
  // Observer events -> messages

  #on<K extends keyof ControlPlaneSourceEvents>(event: K, handler: (...args: ControlPlaneSourceEvents[K]) => void): void {
    const listener = (...args: ControlPlaneSourceEvents[K]): void => {
      if (this.#closed) return;
      try {
        handler(...args);
      } catch (error) {
        // The meeting must never notice the adapter: log, report, carry on.
        this.#logger.error({ event, err: error instanceof Error ? error.message : String(error) }, 'control-plane adapter could not record an event');
        this.safeEmit('enqueuefailed', error instanceof Error ? error : new Error(String(error)));
      }
    };
    this.#options.source.observer.on(event, listener);
    this.#listeners.push([event, listener as unknown as (...args: never[]) => void]);
  }

  #track(m: MeetingView): LiveMeeting {
    let live = this.#live.get(m.id);
    if (!live) {
      live = { view: m, attendees: new Map(), present: new Set() };
      this.#live.set(m.id, live);
      for (const p of m.participants) {
        live.attendees.set(p.identity, p.displayName);
        live.present.add(p.id);
      }
    }
    return live;
  }

  #publishFor(m: MeetingView, message: ControlPlaneMessage, options: { newInstance?: boolean } = {}): void {
    this.#publish({ meetingId: m.id, accountId: m.accountId, retentionDays: m.settings.retentionDays }, message, options);
  }

  /**
   * Issue 10: a meeting an earlier process left open (it crashed or was killed) ended with that
   * process. The control plane gets its MeetingEnded now, dated at its last stored event (the
   * last moment it is known to have run); start and attendees come from the instance's own stored
   * events, which the retention purge has not touched because the meeting had not ended.
   */
  #endOrphan(o: OrphanedMeeting): void {
    let startedAt = 0;
    let lastKind: string | undefined;
    const names = new Set<string>();
    for (const e of this.store.events(o.meetingId)) {
      if (e.instanceId !== o.instanceId) continue;
      lastKind = e.kind;
      if (e.kind !== 'meetingStarted' && e.kind !== 'participantJoined') continue;
      const r = renderEvent(e.payload);
      if (e.kind === 'meetingStarted') startedAt = Number((r.meetingStarted as { actualStartMs?: number }).actualStartMs ?? 0);
      else {
        const name = (r.participantJoined as { displayName?: string }).displayName;
        if (name) names.add(name);
      }
    }
    const endedAt = o.lastEventAt > 0 ? o.lastEventAt : this.#clock();
    // Killed between storing its MeetingEnded and recording the end: the message is out already.
    if (lastKind !== 'meetingEnded') this.#publish(
      { meetingId: o.meetingId, accountId: o.accountId, retentionDays: o.retentionDays },
      {
        meetingEnded: map.meetingEnded(
          { startedAt: startedAt > 0 ? new Date(startedAt) : undefined, endedAt: new Date(endedAt) },
          [...names],
        ),
      },
      {},
    );
    this.store.meetingEnded(o.meetingId, endedAt);
    this.store.closePlacements(o.meetingId, endedAt, 'meeting-ended');
  }

  #subscribe(): void {
    this.#on('meetingcreated', (m) => {
      this.#track(m);
      // A created meeting is a new instance of its id, even where the id was used before.
      this.#publishFor(m, { meetingUpdated: map.meetingUpdated(m) }, { newInstance: true });
    });
    this.#on('meetingstarted', (m) => {
      this.#track(m);
      this.#publishFor(m, { meetingStarted: map.meetingStarted(m) });
    });
    this.#on('participantjoined', (m, p) => {
      const live = this.#track(m);
      live.attendees.set(p.identity, p.displayName);
      live.present.add(p.id);
      this.#publishFor(m, { participantJoined: map.participantJoined(m, p) });
    });
    this.#on('participantleft', (m, p) => {
      const live = this.#track(m);
      // Only admitted participants were announced; a waiting one who gives up was never "in".
      if (!live.present.delete(p.id)) return;
      this.#publishFor(m, { participantLeft: { displayName: p.displayName, participantCount: live.present.size } });
    });
    this.#on('settingschanged', (m, changed) => {
      this.#track(m);
      this.#publishFor(m, { settingsChanged: { changed: map.settingsMessage(changed) } });
    });
    this.#on('pollclosed', (m, results) => {
      this.#publishFor(m, { pollResults: map.pollResults(results) });
    });
    this.#on('meetingended', (m) => {
      const live = this.#track(m);
      this.#publishFor(m, { meetingEnded: map.meetingEnded(m, [...live.attendees.values()]) });
      const endedAt = (m.endedAt ?? new Date(this.#clock())).getTime();
      this.store.meetingEnded(m.id, endedAt);
      this.store.closePlacements(m.id, endedAt, 'meeting-ended');
      // The attendee list was needed for the message above only; drop it now rather than at
      // the retention boundary.
      this.#live.delete(m.id);
    });
    this.#on('audit', (entry) => {
      this.store.addAudit(entry);
      if (entry.action === 'transfer-host') {
        // The model records the action before it moves the role: name the new host explicitly.
        const live = this.#live.get(entry.meetingId);
        const next = live?.view.participants.find((p) => p.identity === entry.target);
        if (live) this.#publishFor(live.view, { meetingUpdated: map.meetingUpdated(live.view, next) });
      }
    });
    this.#on('placement', (p) => {
      this.store.upsertPlacement(p);
    });
  }

  // ------------------------------------------------------------------------------------------
  // Delivery

  #wake(s: SinkState): void {
    if (this.#closed) return;
    if (s.running) {
      s.again = true;
      return;
    }
    clearTimeout(s.timer);
    s.timer = undefined;
    void this.#pump(s);
  }

  async #pump(s: SinkState): Promise<void> {
    s.running = true;
    const concurrency = this.#options.concurrency ?? 8;
    try {
      while (!this.#closed) {
        s.again = false;
        const heads = this.store.heads(s.sink.name, 1000);
        const now = this.#clock();
        const due = heads.filter((h) => h.nextAttemptAt <= now).slice(0, concurrency);
        if (due.length === 0) {
          if (heads.length === 0 && this.store.pendingCount() === 0) this.safeEmit('drained');
          if (s.again) continue;
          if (heads.length > 0) {
            const next = Math.min(...heads.map((h) => h.nextAttemptAt));
            s.timer = setTimeout(() => this.#wake(s), Math.max(0, next - now));
            // Pending events are safe on disk: a retry must not keep a finished process alive.
            s.timer.unref();
          }
          return;
        }
        // Heads are of distinct meetings, so delivering them at once keeps every meeting's order.
        const batch = Promise.all(due.map((h) => this.#deliverOne(s, h))).then(() => undefined);
        s.inflight.add(batch);
        await batch;
        s.inflight.delete(batch);
      }
    } finally {
      s.running = false;
    }
  }

  async #deliverOne(s: SinkState, h: PendingDelivery): Promise<void> {
    const event: OutgoingEvent = { eventId: h.eventId, meetingId: h.meetingId, sequence: h.seq, kind: h.kind, payload: h.payload };
    try {
      await s.sink.deliver(event);
    } catch (error) {
      if (this.store.closed) return;
      const attempts = h.attempts + 1;
      const err = error instanceof Error ? error : new Error(String(error));
      const initial = this.#options.retry?.initialDelayMs ?? 500;
      const max = this.#options.retry?.maxDelayMs ?? 60_000;
      // Exponential backoff with jitter, so that many meetings do not retry in lockstep.
      const delay = Math.min(max, initial * 2 ** Math.min(attempts - 1, 30)) * (0.5 + Math.random() / 2);
      this.store.markFailed(h.id, s.sink.name, attempts, this.#clock() + delay, err.message);
      const fields = { sink: s.sink.name, eventId: h.eventId, meetingId: h.meetingId, attempts, err: err.message };
      if (attempts === 1 || attempts % 10 === 0) this.#logger.warn(fields, 'control-plane delivery failed; will retry');
      else this.#logger.debug(fields, 'control-plane delivery failed; will retry');
      this.safeEmit('deliveryfailed', event, s.sink.name, err, attempts);
      return;
    }
    if (this.store.closed) return;
    // The disclosure record keeps the names of the fields that left (never their values).
    this.store.markDelivered(h.id, s.sink.name, this.#clock(), eventFieldPaths(h.payload));
    this.#logger.debug({ sink: s.sink.name, eventId: h.eventId, meetingId: h.meetingId, sequence: h.seq }, 'control-plane event delivered');
    this.safeEmit('delivered', event, s.sink.name);
    // MeetingEnded is a meeting's last event: with zero retention its data goes as soon as it is
    // out (with several sinks, the last sink's delivery is the one that lets the purge act).
    if (h.kind === 'meetingEnded') this.purge();
  }
}

/** Starts the control-plane adapter on `options.source` (the media core). Replays the outbox. */
export function createControlPlaneAdapter(options: ControlPlaneAdapterOptions): ControlPlaneAdapter {
  return new ControlPlaneAdapter(options);
}
