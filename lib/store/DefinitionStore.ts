// Durable definitions (issue 15): accounts, meeting definitions (scheduled meetings survive a
// restart; running state does not), the operator API's meeting-scoped keys and its audit record.
//
// SQLite through node:sqlite, by default in the same file as the control-plane outbox: a second
// connection to that file (WAL), with its own tables (def_*, api_*) so that neither side reads
// the other's. Every call is synchronous, so a definition is on disk when the call returns.
import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseSync, SQLInputValue, StatementSync } from 'node:sqlite';
import { C4vError } from '../errors.js';
import type { AccountInit, MeetingInit } from '../model/types.js';

const DAY_MS = 86_400_000;

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
  retention_days REAL NOT NULL DEFAULT 0
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

type Row = Record<string, unknown>;

function parse<T>(text: unknown, what: string): T {
  try {
    return JSON.parse(String(text)) as T;
  } catch {
    throw new C4vError('INTERNAL', `stored ${what} is not valid JSON`);
  }
}

/** The definitions file. Created with openDefinitionStore(); `close()` is idempotent. */
export class DefinitionStore {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #stmts = new Map<string, StatementSync>();
  #closed = false;

  /** @internal Use openDefinitionStore(). */
  constructor(path: string) {
    this.path = path;
    if (path !== ':memory:') {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      // Definitions hold host names and e-mail addresses, keys hold secrets: this user only.
      closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
    }
    const sqlite = process.getBuiltinModule('node:sqlite') as typeof import('node:sqlite');
    this.#db = new sqlite.DatabaseSync(path);
    // The outbox's connection may hold the write lock for a moment: wait rather than fail.
    this.#db.exec('PRAGMA busy_timeout = 5000');
    this.#db.exec('PRAGMA journal_mode = WAL');
    this.#db.exec('PRAGMA synchronous = FULL');
    this.#db.exec('PRAGMA secure_delete = ON');
    this.#db.exec(SCHEMA);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #stmt(sql: string): StatementSync {
    if (this.#closed) throw new C4vError('CLOSED', 'definition store closed');
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  #run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.#stmt(sql).run(...params).changes);
  }

  #all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.#stmt(sql).all(...params) as Row[];
  }

  #get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.#stmt(sql).get(...params) as Row | undefined;
  }

  // ------------------------------------------------------------------------------------------
  // Accounts

  /** Writes an account (insert or replace), keeping its creation time. */
  putAccount(init: AccountInit, now = Date.now()): void {
    this.#run(
      `INSERT INTO def_accounts (id, definition, created_at, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at`,
      init.id,
      JSON.stringify(init),
      now,
      now,
    );
  }

  account(id: string): StoredAccount | undefined {
    const r = this.#get('SELECT * FROM def_accounts WHERE id = ?', id);
    return r ? this.#account(r) : undefined;
  }

  accounts(): StoredAccount[] {
    return this.#all('SELECT * FROM def_accounts ORDER BY created_at, id').map((r) => this.#account(r));
  }

  #account(r: Row): StoredAccount {
    return { init: parse<AccountInit>(r.definition, 'account'), createdAt: new Date(Number(r.created_at)), updatedAt: new Date(Number(r.updated_at)) };
  }

  // ------------------------------------------------------------------------------------------
  // Meetings

  /** Writes a meeting definition (a new one, or a replacement of a not-yet-ended one). */
  putMeeting(definition: MeetingDefinition, retentionDays: number, now = Date.now()): void {
    this.#run(
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
    const r = this.#get('SELECT * FROM def_meetings WHERE id = ?', id);
    return r ? this.#meeting(r) : undefined;
  }

  /** Every stored meeting, oldest first; `activeOnly` leaves out ended ones. */
  meetings(options: { activeOnly?: boolean } = {}): StoredMeeting[] {
    const sql = options.activeOnly
      ? 'SELECT * FROM def_meetings WHERE ended_at IS NULL ORDER BY created_at, id'
      : 'SELECT * FROM def_meetings ORDER BY created_at, id';
    return this.#all(sql).map((r) => this.#meeting(r));
  }

  #meeting(r: Row): StoredMeeting {
    const out: StoredMeeting = { definition: parse<MeetingDefinition>(r.definition, 'meeting'), createdAt: new Date(Number(r.created_at)) };
    if (r.ended_at !== null && r.ended_at !== undefined) out.endedAt = new Date(Number(r.ended_at));
    return out;
  }

  /** Marks a meeting ended (it is not restored after a restart); no-op for an unknown one. */
  meetingEnded(id: string, at = Date.now()): void {
    this.#run('UPDATE def_meetings SET ended_at = ? WHERE id = ? AND ended_at IS NULL', at, id);
  }

  /** Drops a definition that could not be created (the meeting never existed). */
  deleteMeeting(id: string): void {
    this.#run('DELETE FROM api_keys WHERE meeting_id = ?', id);
    this.#run('DELETE FROM def_meetings WHERE id = ?', id);
  }

  /**
   * Retention: ended meetings whose account retention has run out lose their definition (host
   * name and e-mail), their API keys and the meeting ids in the API audit record. Returns their ids.
   */
  purge(now = Date.now()): string[] {
    const due = this.#all('SELECT id FROM def_meetings WHERE ended_at IS NOT NULL AND ended_at + retention_days * ? <= ?', DAY_MS, now).map((r) =>
      String(r.id),
    );
    for (const id of due) {
      this.#run('DELETE FROM api_keys WHERE meeting_id = ?', id);
      this.#run('DELETE FROM def_meetings WHERE id = ?', id);
      this.#run('UPDATE api_audit SET target = NULL WHERE meeting_id = ?', id);
    }
    return due;
  }

  // ------------------------------------------------------------------------------------------
  // API keys and the API audit record

  putApiKey(key: StoredApiKey): void {
    this.#run('INSERT INTO api_keys (id, secret, meeting_id, created_at) VALUES (?, ?, ?, ?)', key.id, key.secret, key.meetingId, key.createdAt.getTime());
  }

  apiKey(id: string): StoredApiKey | undefined {
    const r = this.#get('SELECT * FROM api_keys WHERE id = ?', id);
    if (!r) return undefined;
    return { id: String(r.id), secret: String(r.secret), meetingId: String(r.meeting_id), createdAt: new Date(Number(r.created_at)) };
  }

  addAudit(e: ApiAuditEntry): void {
    this.#run(
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
    const rows = meetingId === undefined ? this.#all('SELECT * FROM api_audit ORDER BY id') : this.#all('SELECT * FROM api_audit WHERE meeting_id = ? ORDER BY id', meetingId);
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
    this.#stmts.clear();
    this.#db.close();
  }
}

/** Opens (creating when missing) the definitions file; ':memory:' for a store that dies with the process. */
export function openDefinitionStore(path: string): DefinitionStore {
  if (typeof path !== 'string' || path.length === 0) throw new TypeError('the definition store needs a file path');
  return new DefinitionStore(path);
}
