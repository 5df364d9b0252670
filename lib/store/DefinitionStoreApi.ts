// What the operator API needs of a definition store: the SQLite one of a single node
// (DefinitionStore.ts, synchronous) and the Redis one of cluster mode (RedisDefinitionStore.ts,
// asynchronous) both fit it, so the API awaits every call and works with either.
import type { PurgeTarget } from '../controlplane/sinks.js';
import type { AccountInit } from '../model/types.js';
import type { ApiAuditEntry, MeetingDefinition, StoredAccount, StoredApiKey, StoredMeeting } from './DefinitionStore.js';

export type Awaitable<T> = T | Promise<T>;

export interface DefinitionStoreApi extends PurgeTarget {
  putAccount(init: AccountInit, now?: number): Awaitable<void>;
  /**
   * Inserts an account only when its id is free (false: it exists). A store shared by several
   * nodes has it, so that two nodes creating the same id at once agree on one winner.
   */
  addAccount?(init: AccountInit, now?: number): Awaitable<boolean>;
  account(id: string): Awaitable<StoredAccount | undefined>;
  accounts(): Awaitable<StoredAccount[]>;
  putMeeting(definition: MeetingDefinition, retentionDays: number, now?: number): Awaitable<void>;
  /** Inserts a meeting definition only when its id is free (false: it exists); see addAccount. */
  addMeeting?(definition: MeetingDefinition, retentionDays: number, now?: number): Awaitable<boolean>;
  meeting(id: string): Awaitable<StoredMeeting | undefined>;
  meetings(options?: { activeOnly?: boolean }): Awaitable<StoredMeeting[]>;
  meetingEnded(id: string, at?: number): Awaitable<void>;
  deleteMeeting(id: string): Awaitable<void>;
  putApiKey(key: StoredApiKey): Awaitable<void>;
  apiKey(id: string): Awaitable<StoredApiKey | undefined>;
  addAudit(entry: ApiAuditEntry): Awaitable<void>;
  audit(meetingId?: string): Awaitable<ApiAuditEntry[]>;
  close(): Awaitable<void>;
}
