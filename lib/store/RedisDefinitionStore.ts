// Durable definitions in cluster mode (issue 13c): the operator API's accounts, meeting definitions
// (settings, password hash), meeting-scoped API keys and audit record in the cluster's Redis, so
// that every node reads and writes the same ones. The same contract as the SQLite store of a
// single node (DefinitionStore.ts), asynchronous; key names in lib/cluster/keys.ts, listed in the
// README ("Where data lives").
//
// Atomicity: whatever two nodes could race on is one Lua script (insert-if-absent of an account or
// a meeting, the end mark with its TTLs, the audit append with its cluster-wide order, the purge).
// Nothing is cached here: every read goes to Redis, so a definition written by node A is what node
// B reads next (the cluster glue, gateway/cluster/ClusterApi.ts, tells the other nodes' cores).
//
// Retention (issue 16): as for the SQLite store, the control-plane adapter decides when (the store
// is one of its purge targets) and how (its pseudonym): keys deleted, personal fields deleted, the
// meeting id replaced by its pseudonym in the definition and the audit. Redis adds a backstop the
// file cannot have: at a meeting's end its keys get a TTL of its retention plus one day, so they go
// even when no adapter runs (C4V_CONTROL_PLANE=off) or the home that exported it is gone.
import type { Redis } from 'ioredis';
import { keys, PREFIX } from '../cluster/keys.js';
import type { PurgeContext } from '../controlplane/sinks.js';
import { C4vError } from '../errors.js';
import type { AccountInit } from '../model/types.js';
import type { DefinitionStoreApi } from './DefinitionStoreApi.js';
import { PERSONAL_DEFINITION_FIELDS, type ApiAuditEntry, type MeetingDefinition, type StoredAccount, type StoredApiKey, type StoredMeeting } from './DefinitionStore.js';

/** One day: the TTL margin past retention (the adapter's purge run comes first). */
const BACKSTOP_MARGIN_S = 86_400;

// KEYS: account, account set. ARGV: id, init JSON, now, only-if-absent ('1'). Keeps the creation time.
const PUT_ACCOUNT = `
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local created = redis.call('HGET', KEYS[1], 'created') or ARGV[3]
redis.call('HSET', KEYS[1], 'init', ARGV[2], 'created', created, 'updated', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 1`;

// KEYS: meeting, meeting set, its key set, its audit list. ARGV: id, definition JSON, now,
// retention days, only-if-absent, key prefix. A replacement keeps the creation time and clears the
// end mark and the TTLs of an earlier end (a recurring meeting's id that came back).
const PUT_MEETING = `
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local created = redis.call('HGET', KEYS[1], 'created') or ARGV[3]
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'def', ARGV[2], 'created', created, 'retention', ARGV[4])
redis.call('ZADD', KEYS[2], created, ARGV[1])
redis.call('PERSIST', KEYS[4])
for _, kid in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('PERSIST', ARGV[6] .. 'def:apikey:' .. kid) end
redis.call('PERSIST', KEYS[3])
return 1`;

// KEYS: meeting, its key set, its audit list. ARGV: at, margin s, key prefix. Marks the end once
// and gives the meeting's keys their TTL backstop (retention + margin).
const MEETING_ENDED = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'ended') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'ended', ARGV[1])
local ttl = math.floor(tonumber(redis.call('HGET', KEYS[1], 'retention') or '0') * 86400) + tonumber(ARGV[2])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
for _, kid in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('EXPIRE', ARGV[3] .. 'def:apikey:' .. kid, ttl) end
return 1`;

// KEYS: meeting, meeting set, its key set. ARGV: id, key prefix.
const DELETE_MEETING = `
for _, kid in ipairs(redis.call('SMEMBERS', KEYS[3])) do redis.call('DEL', ARGV[2] .. 'def:apikey:' .. kid) end
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`;

// KEYS: api key, meeting's key set, meeting. ARGV: secret, meeting id, created, key id. A key of an ended
// meeting inherits the meeting's remaining TTL.
const PUT_API_KEY = `
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'meeting', ARGV[2], 'created', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
local t = redis.call('TTL', KEYS[3])
if t > 0 then redis.call('EXPIRE', KEYS[1], t) redis.call('EXPIRE', KEYS[2], t) end
return 1`;

// KEYS: audit list, audit index, sequence, meeting. ARGV: entry JSON (an object without seq), index member.
const ADD_AUDIT = `
local seq = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[1], '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2))
redis.call('SADD', KEYS[2], ARGV[2])
local t = redis.call('TTL', KEYS[4])
if t > 0 then redis.call('EXPIRE', KEYS[1], t) end
return seq`;

// KEYS: meeting, meeting set, its key set, its audit list, the pseudonym's meeting key, the
// pseudonym's audit list, the audit index. ARGV: id, pseudonym, now, key prefix, the definition
// as read ('' when it is not to be purged), the purged definition. -1: the definition changed
// since it was read (read again and retry).
const PURGE = `
local n = 0
for _, kid in ipairs(redis.call('SMEMBERS', KEYS[3])) do n = n + redis.call('DEL', ARGV[4] .. 'def:apikey:' .. kid) end
redis.call('DEL', KEYS[3])
if ARGV[5] ~= '' then
  if redis.call('HGET', KEYS[1], 'def') ~= ARGV[5] or redis.call('HEXISTS', KEYS[1], 'ended') == 0 then return -1 end
  local h = redis.call('HMGET', KEYS[1], 'created', 'ended', 'retention')
  redis.call('DEL', KEYS[5])
  redis.call('HSET', KEYS[5], 'def', ARGV[6], 'created', h[1], 'ended', h[2], 'retention', h[3], 'purged', ARGV[3])
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  n = n + 1
end
local entries = redis.call('LRANGE', KEYS[4], 0, -1)
for _, e in ipairs(entries) do
  local t = cjson.decode(e)
  t.meetingId = ARGV[2]
  t.target = nil
  redis.call('RPUSH', KEYS[6], cjson.encode(t))
  n = n + 1
end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[7], ARGV[1])
if #entries > 0 then redis.call('SADD', KEYS[7], ARGV[2]) end
return n`;

/** The audit list of entries that name no meeting (account actions). */
const NO_MEETING = '-';

function parse<T>(text: unknown, what: string): T {
  try {
    return JSON.parse(String(text)) as T;
  } catch {
    throw new C4vError('INTERNAL', `stored ${what} is not valid JSON`);
  }
}

const isEmpty = (h: Record<string, string>): boolean => Object.keys(h).length === 0;

/** Options of RedisDefinitionStore. */
export interface RedisDefinitionStoreOptions {
  /** The cluster's command connection (owned by the caller: close() does not disconnect it). */
  redis: Redis;
}

/** The definitions of a cluster, in its Redis. */
export class RedisDefinitionStore implements DefinitionStoreApi {
  /** Its name as a purge target, in the purge record and the privacy report. */
  readonly name = 'definitions-redis';
  readonly purgeDetail =
    'API keys deleted; personal fields of the definition deleted; meeting id replaced by its pseudonym in the Redis definition and audit keys (targets removed)';
  readonly #redis: Redis;
  #closed = false;

  constructor(options: RedisDefinitionStoreOptions) {
    this.#redis = options.redis;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #open(): Redis {
    if (this.#closed) throw new C4vError('CLOSED', 'definition store closed');
    return this.#redis;
  }

  async #eval(script: string, keyNames: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await this.#open().eval(script, keyNames.length, ...keyNames, ...args);
    } catch (error) {
      if (error instanceof C4vError) throw error;
      throw new C4vError('CLUSTER_UNAVAILABLE', `definition store unreachable (${error instanceof Error ? error.message : String(error)})`);
    }
  }

  async #call<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = this.#open();
    try {
      return await fn(r);
    } catch (error) {
      if (error instanceof C4vError) throw error;
      throw new C4vError('CLUSTER_UNAVAILABLE', `definition store unreachable (${error instanceof Error ? error.message : String(error)})`);
    }
  }

  // ------------------------------------------------------------------------------------------
  // Accounts

  async putAccount(init: AccountInit, now = Date.now()): Promise<void> {
    await this.#eval(PUT_ACCOUNT, [keys.defAccount(init.id), keys.defAccounts()], [init.id, JSON.stringify(init), now, '0']);
  }

  async addAccount(init: AccountInit, now = Date.now()): Promise<boolean> {
    return (await this.#eval(PUT_ACCOUNT, [keys.defAccount(init.id), keys.defAccounts()], [init.id, JSON.stringify(init), now, '1'])) === 1;
  }

  async account(id: string): Promise<StoredAccount | undefined> {
    const h = await this.#call((r) => r.hgetall(keys.defAccount(id)));
    return isEmpty(h) ? undefined : accountOf(h);
  }

  async accounts(): Promise<StoredAccount[]> {
    const ids = await this.#call((r) => r.smembers(keys.defAccounts()));
    const rows = await this.#hashes(ids.map((id) => keys.defAccount(id)));
    return rows
      .filter((h): h is Record<string, string> => h !== undefined)
      .map(accountOf)
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.init.id.localeCompare(b.init.id));
  }

  async #hashes(names: string[]): Promise<Array<Record<string, string> | undefined>> {
    if (names.length === 0) return [];
    const out = await this.#call(async (r) => {
      const p = r.pipeline();
      for (const n of names) p.hgetall(n);
      return (await p.exec()) ?? [];
    });
    return out.map(([err, h]) => {
      if (err) throw new C4vError('CLUSTER_UNAVAILABLE', `definition store unreachable (${err.message})`);
      const rec = h as Record<string, string>;
      return isEmpty(rec) ? undefined : rec;
    });
  }

  // ------------------------------------------------------------------------------------------
  // Meetings

  async putMeeting(definition: MeetingDefinition, retentionDays: number, now = Date.now()): Promise<void> {
    await this.#putMeeting(definition, retentionDays, now, false);
  }

  async addMeeting(definition: MeetingDefinition, retentionDays: number, now = Date.now()): Promise<boolean> {
    return this.#putMeeting(definition, retentionDays, now, true);
  }

  async #putMeeting(d: MeetingDefinition, retentionDays: number, now: number, ifAbsent: boolean): Promise<boolean> {
    const r = await this.#eval(
      PUT_MEETING,
      [keys.defMeeting(d.id), keys.defMeetings(), keys.defMeetingKeys(d.id), keys.defAudit(d.id)],
      [d.id, JSON.stringify(d), now, retentionDays, ifAbsent ? '1' : '0', PREFIX],
    );
    return r === 1;
  }

  async meeting(id: string): Promise<StoredMeeting | undefined> {
    const h = await this.#call((r) => r.hgetall(keys.defMeeting(id)));
    return isEmpty(h) || h.purged !== undefined ? undefined : meetingOf(h);
  }

  async meetings(options: { activeOnly?: boolean } = {}): Promise<StoredMeeting[]> {
    const ids = await this.#call((r) => r.zrange(keys.defMeetings(), 0, -1));
    const rows = await this.#hashes(ids.map((id) => keys.defMeeting(id)));
    const out: StoredMeeting[] = [];
    const gone: string[] = [];
    rows.forEach((h, i) => {
      // A member whose hash expired (the TTL backstop) is dropped from the set on the way.
      if (!h) return void gone.push(ids[i]!);
      if (h.purged !== undefined) return;
      const m = meetingOf(h);
      if (options.activeOnly && m.endedAt) return;
      out.push(m);
    });
    if (gone.length > 0) await this.#call((r) => r.zrem(keys.defMeetings(), ...gone)).catch(() => undefined);
    return out;
  }

  async meetingEnded(id: string, at = Date.now()): Promise<void> {
    await this.#eval(MEETING_ENDED, [keys.defMeeting(id), keys.defMeetingKeys(id), keys.defAudit(id)], [at, BACKSTOP_MARGIN_S, PREFIX]);
  }

  async deleteMeeting(id: string): Promise<void> {
    await this.#eval(DELETE_MEETING, [keys.defMeeting(id), keys.defMeetings(), keys.defMeetingKeys(id)], [id, PREFIX]);
  }

  /** The retention purge (see DefinitionStore.purgeMeetings): the same result, in Redis. */
  async purgeMeetings(meetingIds: readonly string[], context: PurgeContext): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const id of meetingIds) {
      const p = context.pseudonym(id);
      let n = -1;
      // The definition is rewritten here (JSON stays JSON) and swapped in by the script only if it
      // is still the one read: a concurrent write makes it read again.
      for (let attempt = 0; attempt < 5 && n < 0; attempt++) {
        const h = await this.#call((r) => r.hgetall(keys.defMeeting(id)));
        let read = '';
        let purged = '';
        if (!isEmpty(h) && h.ended !== undefined && h.def !== undefined) {
          read = h.def;
          const kept = parse<Record<string, unknown>>(h.def, 'meeting');
          for (const f of PERSONAL_DEFINITION_FIELDS) delete kept[f];
          kept.id = p;
          purged = JSON.stringify(kept);
        }
        n = Number(
          await this.#eval(
            PURGE,
            [keys.defMeeting(id), keys.defMeetings(), keys.defMeetingKeys(id), keys.defAudit(id), keys.defMeeting(p), keys.defAudit(p), keys.defAuditIndex()],
            [id, p, context.now, PREFIX, read, purged],
          ),
        );
      }
      if (n < 0) throw new C4vError('INTERNAL', `purge of meeting definition ${id}: it kept changing`);
      counts[id] = n;
    }
    return counts;
  }

  // ------------------------------------------------------------------------------------------
  // API keys and the API audit record

  async putApiKey(key: StoredApiKey): Promise<void> {
    await this.#eval(PUT_API_KEY, [keys.defApiKey(key.id), keys.defMeetingKeys(key.meetingId), keys.defMeeting(key.meetingId)], [key.secret, key.meetingId, key.createdAt.getTime(), key.id]);
  }

  async apiKey(id: string): Promise<StoredApiKey | undefined> {
    const h = await this.#call((r) => r.hgetall(keys.defApiKey(id)));
    if (isEmpty(h) || h.secret === undefined || h.meeting === undefined) return undefined;
    return { id, secret: h.secret, meetingId: h.meeting, createdAt: new Date(Number(h.created)) };
  }

  async addAudit(e: ApiAuditEntry): Promise<void> {
    const m = e.meetingId ?? NO_MEETING;
    const entry = {
      at: e.at.getTime(),
      keyId: e.keyId,
      action: e.action,
      ...(e.accountId !== undefined ? { accountId: e.accountId } : {}),
      ...(e.meetingId !== undefined ? { meetingId: e.meetingId } : {}),
      ...(e.target !== undefined ? { target: e.target } : {}),
      outcome: e.outcome,
    };
    await this.#eval(ADD_AUDIT, [keys.defAudit(m), keys.defAuditIndex(), keys.defAuditSeq(), keys.defMeeting(m)], [JSON.stringify(entry), m]);
  }

  /** The API audit record in the cluster's order; of one meeting when `meetingId` is given. */
  async audit(meetingId?: string): Promise<ApiAuditEntry[]> {
    const lists = meetingId !== undefined ? [meetingId] : [NO_MEETING, ...(await this.#call((r) => r.smembers(keys.defAuditIndex()))).filter((x) => x !== NO_MEETING)];
    const raw = await this.#call(async (r) => {
      const p = r.pipeline();
      for (const l of lists) p.lrange(keys.defAudit(l), 0, -1);
      return (await p.exec()) ?? [];
    });
    const entries: Array<{ seq: number } & Record<string, unknown>> = [];
    for (const [err, items] of raw) {
      if (err) throw new C4vError('CLUSTER_UNAVAILABLE', `definition store unreachable (${err.message})`);
      for (const s of items as string[]) entries.push(parse(s, 'audit entry'));
    }
    entries.sort((a, b) => a.seq - b.seq);
    return entries.map((r) => {
      const e: ApiAuditEntry = { at: new Date(Number(r.at)), keyId: String(r.keyId), action: String(r.action), outcome: String(r.outcome) };
      if (r.accountId != null) e.accountId = String(r.accountId);
      if (r.meetingId != null) e.meetingId = String(r.meetingId);
      if (r.target != null) e.target = String(r.target);
      return e;
    });
  }

  /** Stops answering (CLOSED); the Redis connection is the caller's. Idempotent. */
  close(): void {
    this.#closed = true;
  }
}

function accountOf(h: Record<string, string>): StoredAccount {
  return { init: parse<AccountInit>(h.init, 'account'), createdAt: new Date(Number(h.created)), updatedAt: new Date(Number(h.updated)) };
}

function meetingOf(h: Record<string, string>): StoredMeeting {
  const out: StoredMeeting = { definition: parse<MeetingDefinition>(h.def, 'meeting'), createdAt: new Date(Number(h.created)) };
  if (h.ended !== undefined) out.endedAt = new Date(Number(h.ended));
  return out;
}
