// The control-plane adapter's state on disk: the outbox (events and their delivery per sink), the
// meetings it has seen (for sequence numbers and retention) and the audit record.
//
// SQLite through node:sqlite (built into Node 22, no dependency). Durability: WAL with
// synchronous=FULL, so a committed event survives a crash or power loss before it is handed to a
// sink. Erasure: secure_delete=ON overwrites deleted rows with zeros in the database file, and
// every purge ends with a TRUNCATE checkpoint so that no old page image stays behind in the WAL.
import { randomBytes, randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { Statements, type Row } from '../sqlite.js';
import type { AuditAction, AuditEntry, PlacementEntry } from '../model/types.js';
import { ensurePrivateDir, ensurePrivateFile, type PermissionPolicy } from '../privacy/permissions.js';
import { loadOrCreateKey, PSEUDONYM_PREFIX, pseudonymiser, type Pseudonymiser } from '../privacy/pseudonym.js';
import type { MessageKind } from './allowList.js';

const DAY_MS = 86_400_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meetings (
  meeting_id     TEXT PRIMARY KEY,
  account_id     TEXT NOT NULL,
  retention_days REAL NOT NULL,
  next_seq       INTEGER NOT NULL DEFAULT 1,
  ended_at       INTEGER,
  last_event_at  INTEGER,
  purged_at      INTEGER
);
CREATE TABLE IF NOT EXISTS events (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id   TEXT NOT NULL UNIQUE,
  meeting_id TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  kind       TEXT NOT NULL,
  payload    BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (meeting_id, seq)
);
CREATE TABLE IF NOT EXISTS deliveries (
  event       INTEGER NOT NULL REFERENCES events(id) ON DELETE CASCADE,
  sink        TEXT NOT NULL,
  delivered_at INTEGER,
  attempts    INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error  TEXT,
  PRIMARY KEY (event, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries (sink, delivered_at);
CREATE TABLE IF NOT EXISTS audit (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  meeting_id TEXT NOT NULL,
  at         INTEGER NOT NULL,
  action     TEXT NOT NULL,
  actor      TEXT,
  target     TEXT
);
CREATE INDEX IF NOT EXISTS audit_meeting ON audit (meeting_id, id);
CREATE TABLE IF NOT EXISTS placements (
  meeting_id TEXT NOT NULL,
  worker_id  INTEGER NOT NULL,
  region     TEXT NOT NULL,
  from_ms    INTEGER NOT NULL,
  to_ms      INTEGER,
  end_reason TEXT,
  PRIMARY KEY (meeting_id, worker_id, from_ms)
);
-- Issue 16 (additive). What left for which sink: field names only, never values. The meeting id
-- becomes its pseudonym and the event id is dropped when the meeting's retention runs out.
CREATE TABLE IF NOT EXISTS disclosures (
  id           INTEGER PRIMARY KEY AUTOINCREMENT,
  meeting_id   TEXT NOT NULL,
  event_id     TEXT,
  seq          INTEGER NOT NULL,
  kind         TEXT NOT NULL,
  sink         TEXT NOT NULL,
  fields       TEXT NOT NULL,
  created_at   INTEGER NOT NULL,
  delivered_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS disclosures_meeting ON disclosures (meeting_id, id);
-- What the retention purge removed, where and when (counts, never contents).
CREATE TABLE IF NOT EXISTS purge_log (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  meeting_id TEXT NOT NULL,
  at         INTEGER NOT NULL,
  store      TEXT NOT NULL,
  items      INTEGER NOT NULL,
  detail     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS purge_log_meeting ON purge_log (meeting_id, id);
-- Purges still to run on other stores (the file sink's output, Redis, ...). The clear meeting id
-- stays here until that store confirmed, because the store finds its data by it.
CREATE TABLE IF NOT EXISTS purge_queue (
  meeting_id TEXT NOT NULL,
  target     TEXT NOT NULL,
  queued_at  INTEGER NOT NULL,
  attempts   INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  PRIMARY KEY (meeting_id, target)
);
`;

/** One stored event waiting for a sink. */
export interface PendingDelivery {
  id: number;
  eventId: string;
  meetingId: string;
  seq: number;
  kind: MessageKind;
  payload: Uint8Array;
  attempts: number;
  nextAttemptAt: number;
}

/** An action of the audit record; actor and target are personal and become undefined when purged. */
export interface StoredAuditEntry {
  meetingId: string;
  at: Date;
  action: AuditAction;
  actor?: string;
  target?: string;
  /** True once retention removed the identities. */
  purged: boolean;
}

export interface StoredMeeting {
  meetingId: string;
  accountId: string;
  retentionDays: number;
  endedAt?: Date;
  purgedAt?: Date;
}

/** A meeting an earlier process left open (see ControlPlaneStore.orphans). */
export interface OrphanedMeeting {
  meetingId: string;
  accountId: string;
  retentionDays: number;
  /** The instance that was running ('' for a meeting stored before instances existed). */
  instanceId: string;
  /** When its last event was stored (ms); 0 when it has none. */
  lastEventAt: number;
}

export interface PurgeResult {
  /**
   * Meetings whose retention has run out and whose personal data this run removed. A meeting
   * with events not yet delivered is listed again by later runs until they are delivered and gone.
   */
  meetingIds: string[];
  eventsDeleted: number;
  auditEntriesScrubbed: number;
  /**
   * Of `meetingIds`, those whose purge is complete in the outbox: every event gone and the meeting
   * id replaced by its pseudonym in the meetings, audit and placements tables.
   */
  pseudonymised?: string[];
}

/** A purge still to be run on another store (see ControlPlaneAdapterOptions.purgeTargets). */
export interface QueuedPurge {
  meetingId: string;
  target: string;
  queuedAt: Date;
  attempts: number;
  lastError?: string;
}

/** One event that left for a sink: which fields it carried (names only) and when. */
export interface StoredDisclosure {
  /** The meeting id, or its pseudonym once the retention ran out. */
  meetingId: string;
  /** Dropped at the retention boundary (it would link the pseudonym to the control plane's copy). */
  eventId?: string;
  sequence: number;
  kind: MessageKind;
  sink: string;
  /** Dotted field paths that were set, e.g. `participantJoined.email`. */
  fields: string[];
  createdAt: Date;
  deliveredAt: Date;
}

/** One step of a retention purge. */
export interface StoredPurge {
  /** The meeting's pseudonym once its purge completed (the clear id before). */
  meetingId: string;
  at: Date;
  /** 'outbox', 'audit', 'meeting-id' or the name of a purge target ('file', 'redis', ...). */
  store: string;
  items: number;
  detail: string;
}

/** What the store holds about a meeting, for the privacy report. */
export interface MeetingHoldings {
  meetingId: string;
  accountId: string;
  retentionDays: number;
  endedAt?: Date;
  purgedAt?: Date;
  /** Stored events (delivered or not) and the undelivered ones among them. */
  events: number;
  undelivered: number;
  kinds: MessageKind[];
  /** Audit entries that still name an actor or a target. */
  auditIdentities: number;
  placements: number;
}

export interface ControlPlaneStoreOptions {
  /**
   * The installation's pseudonym function; default: HMAC-SHA256 with the key in
   * `pseudonymKeyPath` (created when missing).
   */
  pseudonymise?: Pseudonymiser;
  /** Default: `pseudonym.key` next to the database file (mode 0600). */
  pseudonymKeyPath?: string;
  /** What to do with a folder or file that lets group or others in (warn, or refuse when strict). */
  permissions?: PermissionPolicy;
}

const num = (v: unknown): number => Number(v);

/** The adapter's SQLite file. Synchronous on purpose: an event is on disk when enqueue returns. */
export class ControlPlaneStore {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #q: Statements;
  /** The installation's meeting-id pseudonym (HMAC with its key). */
  readonly pseudonym: Pseudonymiser;
  #closed = false;

  constructor(path: string, options: ControlPlaneStoreOptions = {}) {
    this.path = path;
    const policy = options.permissions ?? {};
    if (path !== ':memory:') {
      ensurePrivateDir(dirname(path), policy);
      // Personal data: readable by this user only. SQLite gives its -wal and -shm files the mode
      // of the database file, so creating that one with 0600 covers all three.
      ensurePrivateFile(path, policy);
    }
    const keyPath = options.pseudonymKeyPath ?? join(dirname(path), 'pseudonym.key');
    // The default key sits in the outbox's folder, which was just checked: warn about it once.
    const folderChecked = path !== ':memory:' && dirname(keyPath) === dirname(path);
    this.pseudonym =
      options.pseudonymise ??
      pseudonymiser(path === ':memory:' && !options.pseudonymKeyPath ? randomBytes(32) : loadOrCreateKey(keyPath, policy, { folderChecked }));
    // Loaded here rather than imported at the top so that embedding the library without the
    // control-plane adapter never loads (or warns about) the experimental node:sqlite module.
    const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite');
    this.#db = new sqlite.DatabaseSync(path);
    this.#q = new Statements(this.#db);
    this.#db.exec('PRAGMA journal_mode = WAL');
    this.#db.exec('PRAGMA synchronous = FULL');
    this.#db.exec('PRAGMA secure_delete = ON');
    this.#db.exec('PRAGMA foreign_keys = ON');
    this.#db.exec(SCHEMA);
    this.#migrate();
  }

  // Issue 10: meeting instances. A meeting id can be used again after its meeting ended (the
  // demo meeting after a restart, a recurring meeting): each use is an instance with its own
  // sequence 1, 2, 3 ... on the wire. Internally `seq` keeps counting per meeting id (delivery
  // order across instances and the (meeting_id, seq) key stay as they were); the wire sequence is
  // `seq - instance_base`. Older outboxes get the columns added; their rows have no instance.
  #migrate(): void {
    const columns = (table: string): Set<string> =>
      new Set((this.#db.prepare(`PRAGMA table_info(${table})`).all() as Row[]).map((r) => String(r.name)));
    const meetings = columns('meetings');
    if (!meetings.has('instance_id')) this.#db.exec('ALTER TABLE meetings ADD COLUMN instance_id TEXT');
    if (!meetings.has('instance_base')) this.#db.exec('ALTER TABLE meetings ADD COLUMN instance_base INTEGER NOT NULL DEFAULT 0');
    const events = columns('events');
    if (!events.has('wire_seq')) this.#db.exec('ALTER TABLE events ADD COLUMN wire_seq INTEGER');
    if (!events.has('instance_id')) this.#db.exec('ALTER TABLE events ADD COLUMN instance_id TEXT');
  }

  get closed(): boolean {
    return this.#closed;
  }





  #tx<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      this.#db.exec('COMMIT');
      return out;
    } catch (error) {
      this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  /**
   * Makes the delivery rows match the configured sinks: a new sink gets every stored event (it
   * must not miss history that is still retained); rows of a sink no longer configured are
   * dropped, because nobody would ever deliver them and they would hold personal data forever.
   * Returns the names of dropped sinks.
   */
  syncSinks(sinks: readonly string[], now: number): string[] {
    return this.#tx(() => {
      const known = this.#q.all('SELECT DISTINCT sink FROM deliveries').map((r) => String(r.sink));
      const dropped = known.filter((s) => !sinks.includes(s));
      for (const s of dropped) this.#q.run('DELETE FROM deliveries WHERE sink = ?', s);
      for (const s of sinks) {
        this.#q.run(
          'INSERT OR IGNORE INTO deliveries (event, sink, next_attempt_at) SELECT id, ?, ? FROM events',
          s,
          now,
        );
      }
      return dropped;
    });
  }

  /** Records that a meeting exists (account and retention), before its first event. */
  upsertMeeting(meetingId: string, accountId: string, retentionDays: number): void {
    // A meeting id that comes back after its purge (a recurring meeting) continues its sequence:
    // the control plane must never see a sequence number twice for one meeting.
    this.#q.run(
      `INSERT INTO meetings (meeting_id, account_id, retention_days, next_seq)
       VALUES (?, ?, ?, COALESCE((SELECT next_seq FROM meetings WHERE meeting_id = ?), 1))
       ON CONFLICT (meeting_id) DO UPDATE SET account_id = excluded.account_id, retention_days = excluded.retention_days`,
      meetingId,
      accountId,
      retentionDays,
      this.pseudonym(meetingId),
    );
  }

  /**
   * Stores one event for every sink in one transaction and returns its (wire) sequence number.
   * `encode` receives the sequence and the meeting instance so that they are part of the stored
   * bytes. `newInstance` starts a new instance of the meeting id (the meeting was created again):
   * its sequence starts at 1 and its end is not yet recorded. A meeting id seen for the first
   * time always starts an instance.
   */
  enqueue(
    meeting: { meetingId: string; accountId: string; retentionDays: number },
    eventId: string,
    kind: MessageKind,
    encode: (seq: number, instanceId: string) => Uint8Array,
    sinks: readonly string[],
    now: number,
    options: { newInstance?: boolean } = {},
  ): number {
    return this.#tx(() => {
      const known = this.#q.get('SELECT next_seq FROM meetings WHERE meeting_id = ?', meeting.meetingId) !== undefined;
      this.upsertMeeting(meeting.meetingId, meeting.accountId, meeting.retentionDays);
      let row = this.#q.get('SELECT next_seq, instance_id, instance_base FROM meetings WHERE meeting_id = ?', meeting.meetingId)!;
      if (!known || options.newInstance) {
        this.#q.run(
          'UPDATE meetings SET instance_id = ?, instance_base = next_seq - 1, ended_at = NULL WHERE meeting_id = ?',
          randomUUID(),
          meeting.meetingId,
        );
        row = this.#q.get('SELECT next_seq, instance_id, instance_base FROM meetings WHERE meeting_id = ?', meeting.meetingId)!;
      }
      const seq = num(row.next_seq);
      const instanceId = row.instance_id === null ? '' : String(row.instance_id);
      const wireSeq = seq - num(row.instance_base);
      const payload = encode(wireSeq, instanceId);
      const id = num(
        this.#q.statement(
          'INSERT INTO events (event_id, meeting_id, seq, kind, payload, created_at, wire_seq, instance_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        ).run(eventId, meeting.meetingId, seq, kind, payload, now, wireSeq, instanceId).lastInsertRowid,
      );
      for (const sink of sinks) {
        this.#q.run('INSERT INTO deliveries (event, sink, next_attempt_at) VALUES (?, ?, ?)', id, sink, now);
      }
      this.#q.run(
        'UPDATE meetings SET next_seq = ?, last_event_at = ?, purged_at = NULL WHERE meeting_id = ?',
        seq + 1,
        now,
        meeting.meetingId,
      );
      return wireSeq;
    });
  }

  /**
   * For one sink, the first undelivered event of every meeting (delivery order per meeting is the
   * sequence order, so only the head of each meeting may go). Sorted by when they are due.
   */
  heads(sink: string, limit: number): PendingDelivery[] {
    const rows = this.#q.all(
      // One pass over the sink's undelivered rows finds each meeting's lowest sequence; the
      // (meeting_id, seq) index then fetches those heads (a backlog costs O(n), not O(n^2)).
      `SELECT e.id, e.event_id, e.meeting_id, COALESCE(e.wire_seq, e.seq) AS seq, e.kind, e.payload, d.attempts, d.next_attempt_at
         FROM (SELECT e2.meeting_id AS meeting_id, MIN(e2.seq) AS seq
                 FROM deliveries d2 JOIN events e2 ON e2.id = d2.event
                WHERE d2.sink = ?1 AND d2.delivered_at IS NULL
                GROUP BY e2.meeting_id) h
         JOIN events e ON e.meeting_id = h.meeting_id AND e.seq = h.seq
         JOIN deliveries d ON d.event = e.id AND d.sink = ?1
        ORDER BY d.next_attempt_at, e.id
        LIMIT ?2`,
      sink,
      limit,
    );
    return rows.map((r) => ({
      id: num(r.id),
      eventId: String(r.event_id),
      meetingId: String(r.meeting_id),
      seq: num(r.seq),
      kind: String(r.kind) as MessageKind,
      payload: r.payload as Uint8Array,
      attempts: num(r.attempts),
      nextAttemptAt: num(r.next_attempt_at),
    }));
  }

  /**
   * Records a delivery. With `fields` (the dotted names of the fields the event carried), it is
   * also written to the disclosure record that the privacy report reads, in the same transaction.
   */
  markDelivered(id: number, sink: string, now: number, fields?: readonly string[]): void {
    if (!fields) {
      this.#q.run('UPDATE deliveries SET delivered_at = ?, last_error = NULL WHERE event = ? AND sink = ?', now, id, sink);
      return;
    }
    this.#tx(() => {
      const changed = this.#q.run(
        'UPDATE deliveries SET delivered_at = ?, last_error = NULL WHERE event = ? AND sink = ? AND delivered_at IS NULL',
        now,
        id,
        sink,
      );
      if (changed === 0) return;
      this.#q.run(
        `INSERT INTO disclosures (meeting_id, event_id, seq, kind, sink, fields, created_at, delivered_at)
         SELECT meeting_id, event_id, seq, kind, ?, ?, created_at, ? FROM events WHERE id = ?`,
        sink,
        fields.join(','),
        now,
        id,
      );
    });
  }

  markFailed(id: number, sink: string, attempts: number, nextAttemptAt: number, error: string): void {
    this.#q.run(
      'UPDATE deliveries SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE event = ? AND sink = ?',
      attempts,
      nextAttemptAt,
      error.slice(0, 500),
      id,
      sink,
    );
  }

  /** Undelivered (event, sink) pairs, for one sink or all. */
  pendingCount(sink?: string): number {
    const row = sink
      ? this.#q.get('SELECT COUNT(*) AS n FROM deliveries WHERE delivered_at IS NULL AND sink = ?', sink)
      : this.#q.get('SELECT COUNT(*) AS n FROM deliveries WHERE delivered_at IS NULL');
    return num(row?.n ?? 0);
  }

  /** Stored events (delivered or not), oldest first; for operators and tests. */
  events(meetingId?: string): Array<{
    eventId: string;
    meetingId: string;
    /** The sequence on the wire (per meeting instance). */
    seq: number;
    /** The meeting instance ('' for events stored before instances existed). */
    instanceId: string;
    kind: MessageKind;
    payload: Uint8Array;
    createdAt: Date;
    delivered: boolean;
  }> {
    const sql = `SELECT e.event_id, e.meeting_id, COALESCE(e.wire_seq, e.seq) AS seq, e.kind, e.payload, e.instance_id, e.created_at,
                        NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event = e.id AND d.delivered_at IS NULL) AS delivered
                   FROM events e ${meetingId === undefined ? '' : 'WHERE e.meeting_id = ?'} ORDER BY e.id`;
    const rows = meetingId === undefined ? this.#q.all(sql) : this.#q.all(sql, meetingId);
    return rows.map((r) => ({
      eventId: String(r.event_id),
      meetingId: String(r.meeting_id),
      seq: num(r.seq),
      instanceId: r.instance_id === null ? '' : String(r.instance_id),
      kind: String(r.kind) as MessageKind,
      payload: r.payload as Uint8Array,
      createdAt: new Date(num(r.created_at)),
      delivered: num(r.delivered) === 1,
    }));
  }

  meetingEnded(meetingId: string, at: number): void {
    this.#q.run('UPDATE meetings SET ended_at = ? WHERE meeting_id = ? AND ended_at IS NULL', at, meetingId);
  }

  /**
   * Meetings of an earlier process that never recorded an end (it crashed): they ended with that
   * process, at their last recorded event. `live` are meetings this process hosts now. Only lists
   * them; the adapter sends their MeetingEnded and then records the end (meetingEnded()).
   */
  orphans(live: ReadonlySet<string>): OrphanedMeeting[] {
    const rows = this.#q.all('SELECT * FROM meetings WHERE ended_at IS NULL ORDER BY rowid');
    return rows
      .filter((r) => !live.has(String(r.meeting_id)))
      .map((r) => ({
        meetingId: String(r.meeting_id),
        accountId: String(r.account_id),
        retentionDays: num(r.retention_days),
        instanceId: r.instance_id === null ? '' : String(r.instance_id),
        lastEventAt: r.last_event_at === null ? 0 : num(r.last_event_at),
      }));
  }

  meeting(meetingId: string): StoredMeeting | undefined {
    const r = this.#q.get('SELECT * FROM meetings WHERE meeting_id = ?', meetingId);
    if (!r) return undefined;
    return {
      meetingId: String(r.meeting_id),
      accountId: String(r.account_id),
      retentionDays: num(r.retention_days),
      ...(r.ended_at === null ? {} : { endedAt: new Date(num(r.ended_at)) }),
      ...(r.purged_at === null ? {} : { purgedAt: new Date(num(r.purged_at)) }),
    };
  }

  meetingIds(): string[] {
    return this.#q.all('SELECT meeting_id FROM meetings ORDER BY rowid').map((r) => String(r.meeting_id));
  }

  addAudit(entry: AuditEntry): void {
    this.#q.run(
      'INSERT INTO audit (meeting_id, at, action, actor, target) VALUES (?, ?, ?, ?, ?)',
      entry.meetingId,
      entry.at.getTime(),
      entry.action,
      entry.actor,
      entry.target ?? null,
    );
  }

  /** Inserts a placement or, for the same meeting, worker and start, records its end. */
  upsertPlacement(p: PlacementEntry): void {
    this.#q.run(
      `INSERT INTO placements (meeting_id, worker_id, region, from_ms, to_ms, end_reason) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (meeting_id, worker_id, from_ms) DO UPDATE SET
         to_ms = COALESCE(excluded.to_ms, to_ms), end_reason = COALESCE(excluded.end_reason, end_reason)`,
      p.meetingId,
      p.workerId,
      p.region,
      p.from.getTime(),
      p.to ? p.to.getTime() : null,
      p.endReason ?? null,
    );
  }

  /** Closes placements still open (the meeting ended or the process is going away). */
  closePlacements(meetingId: string, at: number, reason: NonNullable<PlacementEntry['endReason']>): void {
    this.#q.run(
      'UPDATE placements SET to_ms = ?, end_reason = ? WHERE meeting_id = ? AND to_ms IS NULL',
      at,
      reason,
      meetingId,
    );
  }

  audit(meetingId: string): StoredAuditEntry[] {
    return this.#q.all('SELECT * FROM audit WHERE meeting_id = ? ORDER BY id', meetingId).map((r) => {
      const entry: StoredAuditEntry = {
        meetingId: String(r.meeting_id),
        at: new Date(num(r.at)),
        action: String(r.action) as AuditAction,
        purged: r.actor === null,
      };
      if (r.actor !== null) entry.actor = String(r.actor);
      if (r.target !== null) entry.target = String(r.target);
      return entry;
    });
  }

  placements(meetingId: string): PlacementEntry[] {
    return this.#q.all('SELECT * FROM placements WHERE meeting_id = ? ORDER BY from_ms, worker_id', meetingId).map((r) => {
      const p: PlacementEntry = {
        meetingId: String(r.meeting_id),
        workerId: num(r.worker_id),
        region: String(r.region),
        from: new Date(num(r.from_ms)),
      };
      if (r.to_ms !== null) p.to = new Date(num(r.to_ms));
      if (r.end_reason !== null) p.endReason = String(r.end_reason) as NonNullable<PlacementEntry['endReason']>;
      return p;
    });
  }

  /**
   * Removes personal data of meetings whose retention has run out (ended_at + retention_days <=
   * now): their delivered events are deleted and their audit entries lose actor and target.
   * Undelivered events stay until delivered (delivering them is why they are kept); the next purge
   * after delivery removes them. Once nothing is left, the meeting id itself is replaced by its
   * pseudonym in the meetings, audit, placements and disclosure tables, and a purge of each of
   * `targets` (other stores holding the meeting's data) is queued. Every step is logged in the
   * purge record (counts, never contents).
   */
  purge(now: number, targets: readonly string[] = []): PurgeResult {
    const result: PurgeResult = { meetingIds: [], eventsDeleted: 0, auditEntriesScrubbed: 0, pseudonymised: [] };
    // Rows marked purged by a version before pseudonyms still carry the clear id: finish them.
    const due = this.#q.all(
      `SELECT meeting_id FROM meetings WHERE ended_at IS NOT NULL AND ended_at + retention_days * ? <= ?
          AND (purged_at IS NULL OR substr(meeting_id, 1, ?) <> ?)`,
      DAY_MS,
      now,
      PSEUDONYM_PREFIX.length,
      PSEUDONYM_PREFIX,
    ).map((r) => String(r.meeting_id));
    if (due.length === 0) return result;
    this.#tx(() => {
      for (const id of due) {
        const deleted = this.#q.run(
          `DELETE FROM events WHERE meeting_id = ?
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event = events.id AND d.delivered_at IS NULL)`,
          id,
        );
        const scrubbed = this.#q.run(
          `UPDATE audit SET actor = NULL, target = NULL WHERE meeting_id = ? AND (actor IS NOT NULL OR target IS NOT NULL)`,
          id,
        );
        if (deleted > 0) this.#logPurge(id, now, 'outbox', deleted, 'delivered events deleted');
        if (scrubbed > 0) this.#logPurge(id, now, 'audit', scrubbed, 'actor and target identities removed');
        result.eventsDeleted += deleted;
        result.auditEntriesScrubbed += scrubbed;
        const left = num(this.#q.get('SELECT COUNT(*) AS n FROM events WHERE meeting_id = ?', id)!.n);
        if (left === 0) {
          this.#pseudonymise(id, now);
          for (const t of targets) {
            this.#q.run('INSERT OR IGNORE INTO purge_queue (meeting_id, target, queued_at) VALUES (?, ?, ?)', id, t, now);
          }
          result.pseudonymised!.push(id);
        }
        result.meetingIds.push(id);
      }
    });
    if (result.eventsDeleted > 0 || result.auditEntriesScrubbed > 0 || result.pseudonymised!.length > 0) {
      // Old page images of the deleted rows may still sit in the WAL: fold it into the (zeroed)
      // database file and cut it to length so that they are gone from disk too.
      this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    }
    return result;
  }

  #logPurge(meetingId: string, at: number, store: string, items: number, detail: string): void {
    this.#q.run('INSERT INTO purge_log (meeting_id, at, store, items, detail) VALUES (?, ?, ?, ?, ?)', meetingId, at, store, items, detail);
  }

  // The meeting id becomes its pseudonym everywhere in this file. A pseudonymised row of the same
  // id (the meeting came back after an earlier purge) absorbs the new one.
  #pseudonymise(id: string, now: number): void {
    const p = this.pseudonym(id);
    const clear = this.#q.get('SELECT * FROM meetings WHERE meeting_id = ?', id)!;
    if (this.#q.get('SELECT 1 AS x FROM meetings WHERE meeting_id = ?', p)) {
      this.#q.run(
        `UPDATE meetings SET next_seq = MAX(next_seq, ?), ended_at = ?, last_event_at = ?, retention_days = ?, purged_at = ?
          WHERE meeting_id = ?`,
        num(clear.next_seq),
        clear.ended_at as SQLInputValue,
        clear.last_event_at as SQLInputValue,
        num(clear.retention_days),
        now,
        p,
      );
      this.#q.run('DELETE FROM meetings WHERE meeting_id = ?', id);
    } else {
      this.#q.run('UPDATE meetings SET meeting_id = ?, purged_at = ? WHERE meeting_id = ?', p, now, id);
    }
    this.#q.run('UPDATE audit SET meeting_id = ? WHERE meeting_id = ?', p, id);
    this.#q.run('UPDATE OR REPLACE placements SET meeting_id = ? WHERE meeting_id = ?', p, id);
    this.#q.run('UPDATE disclosures SET meeting_id = ?, event_id = NULL WHERE meeting_id = ?', p, id);
    this.#q.run('UPDATE purge_log SET meeting_id = ? WHERE meeting_id = ?', p, id);
    this.#logPurge(p, now, 'meeting-id', 1, 'meeting id replaced by its pseudonym (meetings, audit, placements, disclosures)');
  }

  /**
   * The id under which this store keeps a meeting's rows: the id itself while it is within
   * retention, its pseudonym after.
   */
  storedIdOf(meetingId: string): string {
    const clear =
      this.#q.get('SELECT 1 AS x FROM meetings WHERE meeting_id = ?', meetingId) ??
      this.#q.get('SELECT 1 AS x FROM audit WHERE meeting_id = ? LIMIT 1', meetingId) ??
      this.#q.get('SELECT 1 AS x FROM placements WHERE meeting_id = ? LIMIT 1', meetingId);
    return clear ? meetingId : this.pseudonym(meetingId);
  }

  /**
   * Whether the outbox has finished a meeting's purge: no row of it under the clear id, and its
   * meetings row under the pseudonym marked purged.
   */
  isPseudonymised(meetingId: string): boolean {
    if (this.#q.get('SELECT 1 AS x FROM meetings WHERE meeting_id = ?', meetingId)) return false;
    return this.#q.get('SELECT 1 AS x FROM meetings WHERE meeting_id = ? AND purged_at IS NOT NULL', this.pseudonym(meetingId)) !== undefined;
  }

  /** Queues a purge of one meeting at another store (run by the adapter's next purge run). */
  queuePurge(meetingId: string, target: string, now: number): void {
    this.#q.run('INSERT OR IGNORE INTO purge_queue (meeting_id, target, queued_at) VALUES (?, ?, ?)', meetingId, target, now);
  }

  /** Purges queued for other stores, oldest first (one target or all). */
  queuedPurges(target?: string): QueuedPurge[] {
    const rows =
      target === undefined
        ? this.#q.all('SELECT * FROM purge_queue ORDER BY queued_at, meeting_id')
        : this.#q.all('SELECT * FROM purge_queue WHERE target = ? ORDER BY queued_at, meeting_id', target);
    return rows.map((r) => ({
      meetingId: String(r.meeting_id),
      target: String(r.target),
      queuedAt: new Date(num(r.queued_at)),
      attempts: num(r.attempts),
      ...(r.last_error === null ? {} : { lastError: String(r.last_error) }),
    }));
  }

  /**
   * Drops queued purges of stores that are no longer configured (their clear ids would otherwise
   * wait forever) and returns the names of those stores.
   */
  dropPurgeTargets(keep: readonly string[]): string[] {
    const dropped = this.#tx(() => {
      const known = this.#q.all('SELECT DISTINCT target FROM purge_queue').map((r) => String(r.target));
      const gone = known.filter((t) => !keep.includes(t));
      for (const t of gone) this.#q.run('DELETE FROM purge_queue WHERE target = ?', t);
      return gone;
    });
    // The queue held clear ids: no page image of them may stay in the WAL.
    if (dropped.length > 0) this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    return dropped;
  }

  /** A target purged a meeting: the clear id leaves the queue, the purge record gets the step. */
  purgeDone(meetingId: string, target: string, now: number, items: number, detail = `purged at ${target}`): void {
    this.#tx(() => {
      if (this.#q.run('DELETE FROM purge_queue WHERE meeting_id = ? AND target = ?', meetingId, target) === 0) return;
      this.#logPurge(this.pseudonym(meetingId), now, target, items, detail);
    });
    this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  }

  /** A target's purge failed; it is tried again by the next purge run. */
  purgeFailed(meetingId: string, target: string, error: string): void {
    this.#q.run(
      'UPDATE purge_queue SET attempts = attempts + 1, last_error = ? WHERE meeting_id = ? AND target = ?',
      error.slice(0, 500),
      meetingId,
      target,
    );
  }

  /** Meeting ids of a filter: the id and its pseudonym (rows are under one or the other). */
  #idFilter(meetingId: string | undefined): { sql: string; params: SQLInputValue[] } {
    if (meetingId === undefined) return { sql: '1', params: [] };
    return { sql: 'meeting_id IN (?, ?)', params: [meetingId, this.pseudonym(meetingId)] };
  }

  /** The disclosure record: what left for which sink (field names only), oldest first. */
  disclosures(filter: { meetingId?: string; since?: number } = {}): StoredDisclosure[] {
    const f = this.#idFilter(filter.meetingId);
    return this.#q.all(
      `SELECT * FROM disclosures WHERE ${f.sql} AND delivered_at >= ? ORDER BY delivered_at, id`,
      ...f.params,
      filter.since ?? 0,
    ).map((r) => ({
      meetingId: String(r.meeting_id),
      ...(r.event_id === null ? {} : { eventId: String(r.event_id) }),
      sequence: num(r.seq),
      kind: String(r.kind) as MessageKind,
      sink: String(r.sink),
      fields: String(r.fields) === '' ? [] : String(r.fields).split(','),
      createdAt: new Date(num(r.created_at)),
      deliveredAt: new Date(num(r.delivered_at)),
    }));
  }

  /** Undelivered (event, sink) pairs with their payload, oldest first: what is still to leave. */
  undelivered(filter: { meetingId?: string } = {}): Array<{ meetingId: string; sequence: number; kind: MessageKind; sink: string; payload: Uint8Array; createdAt: Date; attempts: number }> {
    const f = this.#idFilter(filter.meetingId);
    return this.#q.all(
      `SELECT e.meeting_id, e.seq, e.kind, e.payload, e.created_at, d.sink, d.attempts
         FROM deliveries d JOIN events e ON e.id = d.event
        WHERE d.delivered_at IS NULL AND ${f.sql.replace('meeting_id', 'e.meeting_id')}
        ORDER BY e.id, d.sink`,
      ...f.params,
    ).map((r) => ({
      meetingId: String(r.meeting_id),
      sequence: num(r.seq),
      kind: String(r.kind) as MessageKind,
      sink: String(r.sink),
      payload: r.payload as Uint8Array,
      createdAt: new Date(num(r.created_at)),
      attempts: num(r.attempts),
    }));
  }

  /** The purge record, oldest first. */
  purges(filter: { meetingId?: string; since?: number } = {}): StoredPurge[] {
    const f = this.#idFilter(filter.meetingId);
    return this.#q.all(`SELECT * FROM purge_log WHERE ${f.sql} AND at >= ? ORDER BY at, id`, ...f.params, filter.since ?? 0).map((r) => ({
      meetingId: String(r.meeting_id),
      at: new Date(num(r.at)),
      store: String(r.store),
      items: num(r.items),
      detail: String(r.detail),
    }));
  }

  /** Placements of every meeting (or one), oldest first. */
  allPlacements(filter: { meetingId?: string; since?: number } = {}): PlacementEntry[] {
    const f = this.#idFilter(filter.meetingId);
    return this.#q.all(
      `SELECT * FROM placements WHERE ${f.sql} AND COALESCE(to_ms, 9e15) >= ? ORDER BY from_ms, meeting_id, worker_id`,
      ...f.params,
      filter.since ?? 0,
    ).map((r) => {
      const p: PlacementEntry = { meetingId: String(r.meeting_id), workerId: num(r.worker_id), region: String(r.region), from: new Date(num(r.from_ms)) };
      if (r.to_ms !== null) p.to = new Date(num(r.to_ms));
      if (r.end_reason !== null) p.endReason = String(r.end_reason) as NonNullable<PlacementEntry['endReason']>;
      return p;
    });
  }

  /** What the store holds per meeting (ids as stored: clear or pseudonym). */
  holdings(filter: { meetingId?: string } = {}): MeetingHoldings[] {
    const f = this.#idFilter(filter.meetingId);
    return this.#q.all(
      `SELECT m.*,
              (SELECT COUNT(*) FROM events e WHERE e.meeting_id = m.meeting_id) AS n_events,
              (SELECT COUNT(DISTINCT e.id) FROM events e JOIN deliveries d ON d.event = e.id
                WHERE e.meeting_id = m.meeting_id AND d.delivered_at IS NULL) AS n_undelivered,
              (SELECT group_concat(DISTINCT e.kind) FROM events e WHERE e.meeting_id = m.meeting_id) AS kinds,
              (SELECT COUNT(*) FROM audit a WHERE a.meeting_id = m.meeting_id AND (a.actor IS NOT NULL OR a.target IS NOT NULL)) AS n_identities,
              (SELECT COUNT(*) FROM placements p WHERE p.meeting_id = m.meeting_id) AS n_placements
         FROM meetings m WHERE ${f.sql.replace('meeting_id', 'm.meeting_id')} ORDER BY m.rowid`,
      ...f.params,
    ).map((r) => ({
      meetingId: String(r.meeting_id),
      accountId: String(r.account_id),
      retentionDays: num(r.retention_days),
      ...(r.ended_at === null ? {} : { endedAt: new Date(num(r.ended_at)) }),
      ...(r.purged_at === null ? {} : { purgedAt: new Date(num(r.purged_at)) }),
      events: num(r.n_events),
      undelivered: num(r.n_undelivered),
      kinds: r.kinds === null ? [] : (String(r.kinds).split(',') as MessageKind[]),
      auditIdentities: num(r.n_identities),
      placements: num(r.n_placements),
    }));
  }

  /** Closes the database (checkpointing the WAL). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#q.clear();
    try {
      this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    } finally {
      this.#db.close();
    }
  }
}
