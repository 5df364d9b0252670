// Durable definitions (issue 15): accounts, meeting definitions (scheduled meetings survive a
// restart; running state does not), the operator API's meeting-scoped keys and its audit record.
//
// SQLite through node:sqlite, by default in the same file as the control-plane outbox: a second
// connection to that file (WAL), with its own tables (def_*, api_*) so that neither side reads
// the other's. Every call is synchronous, so a definition is on disk when the call returns.
//
// Retention (fix of issues 15/16): the store has no purge timer of its own. It is a PurgeTarget of
// the control-plane adapter, so the outbox's one rule (ended + retention days, on the adapter's
// injectable timer and clock) decides when, and the adapter's pseudonym function how: past
// retention a meeting's API keys are deleted, the personal fields of its definition are deleted,
// and its id becomes the outbox's HMAC pseudonym in def_meetings and api_audit.
import { dirname } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { Statements, type Row } from '../sqlite.js';
import type { HeldData, PurgeContext, PurgeTarget } from '../controlplane/sinks.js';
import { C4vError } from '../errors.js';
import type { AccountInit, MeetingInit } from '../model/types.js';
import { ensurePrivateDir, ensurePrivateFile, type PermissionPolicy } from '../privacy/permissions.js';
import { PSEUDONYM_PREFIX } from '../privacy/pseudonym.js';

/**
 * Fields of a stored meeting definition that are personal data (or a credential): deleted at the
 * retention boundary. What stays (account, settings, schedule, recurrence, time zone, dial-in
 * numbers, times) is meeting metadata the README lists as not personal.
 */
export const PERSONAL_DEFINITION_FIELDS = ['title', 'hostIdentity', 'hostName', 'hostEmail', 'hostProfilePictureUrl', 'passwordHash'] as const;

/** Options of openDefinitionStore(). */
export interface DefinitionStoreOptions {
  /** What to do with a folder or file that lets group or others in (warn, or refuse when strict). */
  permissions?: PermissionPolicy;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS def_accounts (
  id          TEXT PRIMARY KEY,
  definition  TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS def_meetings (
  id             TEXT PRIMARY KEY,
  account_id     TEXT NOT NULL,
  definition     TEXT NOT NULL,
  created_at     INTEGER NOT NULL,
  ended_at       INTEGER,
  retention_days REAL NOT NULL DEFAULT 0,
  purged_at      INTEGER
);
CREATE TABLE IF NOT EXISTS api_keys (
  id         TEXT PRIMARY KEY,
  secret     TEXT NOT NULL,
  meeting_id TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_audit (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  at         INTEGER NOT NULL,
  key_id     TEXT NOT NULL,
  action     TEXT NOT NULL,
  account_id TEXT,
  meeting_id TEXT,
  target     TEXT,
  outcome    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_audit_meeting ON api_audit (meeting_id, id);
`;

/** A stored account: what core.createAccount() takes, plus when it was written. */
export interface StoredAccount {
  init: AccountInit;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * A meeting definition as stored: MeetingInit without the clear password (its scrypt hash
 * instead), the scheduled start as an ISO string, and the host's profile picture URL.
 */
export type MeetingDefinition = Omit<MeetingInit, 'password' | 'scheduledStart' | 'id'> & {
  id: string;
  scheduledStart?: string;
  hostProfilePictureUrl?: string;
};

export interface StoredMeeting {
  definition: MeetingDefinition;
  createdAt: Date;
  /** Set once the meeting ended: it is not restored after a restart, and goes after retention. */
  endedAt?: Date;
}

/** A meeting-scoped API key (the admin key comes from the configuration, never from here). */
export interface StoredApiKey {
  id: string;
  secret: string;
  meetingId: string;
  createdAt: Date;
}

/** One action of the operator API: who (key id) did what to which account or meeting. */
export interface ApiAuditEntry {
  at: Date;
  keyId: string;
  action: string;
  accountId?: string;
  meetingId?: string;
  /** A participant id or a token role; never an identity or a secret. */
  target?: string;
  /** 'ok' or the error code of the refusal. */
  outcome: string;
}


function parse<T>(text: unknown, what: string): T {
  try {
    return JSON.parse(String(text)) as T;
  } catch {
    throw new C4vError('INTERNAL', `stored ${what} is not valid JSON`);
  }
}

/** The definitions file. Created with openDefinitionStore(); `close()` is idempotent. */
export class DefinitionStore implements PurgeTarget {
  /** Its name as a purge target, in the purge record and the privacy report. */
  readonly name = 'definitions';
  readonly purgeDetail =
    'API keys deleted; personal fields of the definition deleted; meeting id replaced by its pseudonym in def_meetings and api_audit (targets removed)';
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #q: Statements;
  #closed = false;

  /** @internal Use openDefinitionStore(). */
  constructor(path: string, options: DefinitionStoreOptions = {}) {
    this.path = path;
    if (path !== ':memory:') {
      // Definitions hold host names and e-mail addresses, keys hold secrets: this user only. The
      // same rule and check as the outbox (a wider existing one: warning, or refusal when strict).
      const policy = options.permissions ?? {};
      ensurePrivateDir(dirname(path), policy);
      ensurePrivateFile(path, policy);
    }
    const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite');
    this.#db = new sqlite.DatabaseSync(path);
    this.#q = new Statements(this.#db, () => {
      if (this.#closed) throw new C4vError('CLOSED', 'definition store closed');
    });
    // The outbox's connection may hold the write lock for a moment: wait rather than fail.
    this.#db.exec('PRAGMA busy_timeout = 5000');
    this.#db.exec('PRAGMA journal_mode = WAL');
    this.#db.exec('PRAGMA synchronous = FULL');
    this.#db.exec('PRAGMA secure_delete = ON');
    this.#db.exec(SCHEMA);
    // Files written before retention was the adapter's have no purged_at column yet.
    const columns = (this.#db.prepare('PRAGMA table_info(def_meetings)').all() as Row[]).map((r) => String(r.name));
    if (!columns.includes('purged_at')) this.#db.exec('ALTER TABLE def_meetings ADD COLUMN purged_at INTEGER');
  }

  get closed(): boolean {
    return this.#closed;
  }





  // ------------------------------------------------------------------------------------------
  // Accounts

  /** Writes an account (insert or replace), keeping its creation time. */
  putAccount(init: AccountInit, now = Date.now()): void {
    this.#q.run(
      `INSERT INTO def_accounts (id, definition, created_at, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at`,
      init.id,
      JSON.stringify(init),
      now,
      now,
    );
  }

  account(id: string): StoredAccount | undefined {
    const r = this.#q.get('SELECT * FROM def_accounts WHERE id = ?', id);
    return r ? this.#account(r) : undefined;
  }

  accounts(): StoredAccount[] {
    return this.#q.all('SELECT * FROM def_accounts ORDER BY created_at, id').map((r) => this.#account(r));
  }

  #account(r: Row): StoredAccount {
    return { init: parse<AccountInit>(r.definition, 'account'), createdAt: new Date(Number(r.created_at)), updatedAt: new Date(Number(r.updated_at)) };
  }

  // ------------------------------------------------------------------------------------------
  // Meetings

  /** Writes a meeting definition (a new one, or a replacement of a not-yet-ended one). */
  putMeeting(definition: MeetingDefinition, retentionDays: number, now = Date.now()): void {
    this.#q.run(
      `INSERT INTO def_meetings (id, account_id, definition, created_at, retention_days) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, definition = excluded.definition,
         retention_days = excluded.retention_days, ended_at = NULL`,
      definition.id,
      definition.accountId,
      JSON.stringify(definition),
      now,
      retentionDays,
    );
  }

  meeting(id: string): StoredMeeting | undefined {
    const r = this.#q.get('SELECT * FROM def_meetings WHERE id = ? AND purged_at IS NULL', id);
    return r ? this.#meeting(r) : undefined;
  }

  /** Every stored meeting, oldest first; `activeOnly` leaves out ended ones. */
  meetings(options: { activeOnly?: boolean } = {}): StoredMeeting[] {
    // Purged rows (pseudonym, no personal fields) are no definitions any more: counts only.
    const sql = options.activeOnly
      ? 'SELECT * FROM def_meetings WHERE ended_at IS NULL AND purged_at IS NULL ORDER BY created_at, id'
      : 'SELECT * FROM def_meetings WHERE purged_at IS NULL ORDER BY created_at, id';
    return this.#q.all(sql).map((r) => this.#meeting(r));
  }

  #meeting(r: Row): StoredMeeting {
    const out: StoredMeeting = { definition: parse<MeetingDefinition>(r.definition, 'meeting'), createdAt: new Date(Number(r.created_at)) };
    if (r.ended_at !== null && r.ended_at !== undefined) out.endedAt = new Date(Number(r.ended_at));
    return out;
  }

  /** Marks a meeting ended (it is not restored after a restart); no-op for an unknown one. */
  meetingEnded(id: string, at = Date.now()): void {
    this.#q.run('UPDATE def_meetings SET ended_at = ? WHERE id = ? AND ended_at IS NULL', at, id);
  }

  /** Drops a definition that could not be created (the meeting never existed). */
  deleteMeeting(id: string): void {
    this.#q.run('DELETE FROM api_keys WHERE meeting_id = ?', id);
    this.#q.run('DELETE FROM def_meetings WHERE id = ?', id);
  }

  /**
   * The retention purge of these meetings (called by the control-plane adapter once the outbox's
   * retention ran out for them; see PurgeTarget): their API keys are deleted, the personal fields
   * of their ended definitions are deleted, and their ids become `context.pseudonym(id)` in
   * def_meetings and api_audit (whose targets, participant ids and key ids, are removed). A
   * definition that has not ended (the id came back as a new meeting) is left alone. Resolves with
   * the rows changed per meeting.
   */
  async purgeMeetings(meetingIds: readonly string[], context: PurgeContext): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    if (this.#closed) throw new C4vError('CLOSED', 'definition store closed');
    this.#db.exec('BEGIN IMMEDIATE');
    try {
      for (const id of meetingIds) {
        const p = context.pseudonym(id);
        let n = this.#q.run('DELETE FROM api_keys WHERE meeting_id = ?', id);
        const row = this.#q.get('SELECT definition FROM def_meetings WHERE id = ? AND ended_at IS NOT NULL', id);
        if (row) {
          const kept = parse<Record<string, unknown>>(row.definition, 'meeting');
          for (const f of PERSONAL_DEFINITION_FIELDS) delete kept[f];
          kept.id = p;
          // A meeting id that came back (a recurring meeting) has one pseudonymised row: the latest.
          this.#q.run('DELETE FROM def_meetings WHERE id = ?', p);
          n += this.#q.run('UPDATE def_meetings SET id = ?, definition = ?, purged_at = ? WHERE id = ?', p, JSON.stringify(kept), context.now, id);
        }
        n += this.#q.run('UPDATE api_audit SET meeting_id = ?, target = NULL WHERE meeting_id = ?', p, id);
        counts[id] = n;
      }
      this.#db.exec('COMMIT');
    } catch (error) {
      this.#db.exec('ROLLBACK');
      throw error;
    }
    // secure_delete zeroed the old rows in the database file; old page images may still sit in
    // the WAL: fold it in and cut it to length so the clear ids are gone from disk too.
    this.#db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    return counts;
  }

  /**
   * What the store holds per meeting that is personal (clear ids; field names, never values): the
   * definition's personal fields, scoped keys, and API audit entries naming the meeting.
   */
  heldData(): HeldData[] {
    const out: HeldData[] = [];
    for (const r of this.#q.all('SELECT id, definition FROM def_meetings WHERE purged_at IS NULL ORDER BY created_at, id')) {
      const d = parse<Record<string, unknown>>(r.definition, 'meeting');
      const fields = ['id', ...PERSONAL_DEFINITION_FIELDS.filter((f) => d[f] !== undefined)];
      out.push({ meetingId: String(r.id), what: 'meeting definition (def_meetings)', fields, items: 1 });
    }
    for (const r of this.#q.all('SELECT meeting_id, COUNT(*) AS n FROM api_keys GROUP BY meeting_id ORDER BY meeting_id')) {
      out.push({ meetingId: String(r.meeting_id), what: 'meeting-scoped API keys (api_keys)', fields: ['meeting_id', 'secret'], items: Number(r.n) });
    }
    for (const r of this.#q.all(
      `SELECT meeting_id, COUNT(*) AS n, COUNT(target) AS t FROM api_audit
        WHERE meeting_id IS NOT NULL AND substr(meeting_id, 1, ?) <> ?
        GROUP BY meeting_id ORDER BY MIN(id)`,
      PSEUDONYM_PREFIX.length,
      PSEUDONYM_PREFIX,
    )) {
      out.push({ meetingId: String(r.meeting_id), what: 'operator API audit entries (api_audit)', fields: Number(r.t) > 0 ? ['meeting_id', 'target'] : ['meeting_id'], items: Number(r.n) });
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // API keys and the API audit record

  putApiKey(key: StoredApiKey): void {
    this.#q.run('INSERT INTO api_keys (id, secret, meeting_id, created_at) VALUES (?, ?, ?, ?)', key.id, key.secret, key.meetingId, key.createdAt.getTime());
  }

  apiKey(id: string): StoredApiKey | undefined {
    const r = this.#q.get('SELECT * FROM api_keys WHERE id = ?', id);
    if (!r) return undefined;
    return { id: String(r.id), secret: String(r.secret), meetingId: String(r.meeting_id), createdAt: new Date(Number(r.created_at)) };
  }

  addAudit(e: ApiAuditEntry): void {
    this.#q.run(
      'INSERT INTO api_audit (at, key_id, action, account_id, meeting_id, target, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)',
      e.at.getTime(),
      e.keyId,
      e.action,
      e.accountId ?? null,
      e.meetingId ?? null,
      e.target ?? null,
      e.outcome,
    );
  }

  /** The API audit record, oldest first; of one meeting when `meetingId` is given. */
  audit(meetingId?: string): ApiAuditEntry[] {
    const rows = meetingId === undefined ? this.#q.all('SELECT * FROM api_audit ORDER BY id') : this.#q.all('SELECT * FROM api_audit WHERE meeting_id = ? ORDER BY id', meetingId);
    return rows.map((r) => {
      const e: ApiAuditEntry = { at: new Date(Number(r.at)), keyId: String(r.key_id), action: String(r.action), outcome: String(r.outcome) };
      if (r.account_id != null) e.accountId = String(r.account_id);
      if (r.meeting_id != null) e.meetingId = String(r.meeting_id);
      if (r.target != null) e.target = String(r.target);
      return e;
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#q.clear();
    this.#db.close();
  }
}

/** Opens (creating when missing) the definitions file; ':memory:' for a store that dies with the process. */
export function openDefinitionStore(path: string, options: DefinitionStoreOptions = {}): DefinitionStore {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('the definition store needs a file path');
  return new DefinitionStore(path, options);
}
