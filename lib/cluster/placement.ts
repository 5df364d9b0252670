// Home placement: a meeting has at most one home node, held as a lease with a fencing token.
// Choosing the home (least loaded serving node in the allowed regions) is a read; taking the
// lease is one Lua script, so two nodes placing the same meeting at once never both win: the
// second one reads the first one's home.
import type { Redis } from 'ioredis';
import { C4vError } from '../errors.js';
import { regionAllowed } from '../media/regions.js';
import { keys, MEETING_RECORD_TTL_S } from './keys.js';
import type { NodeInfo } from './NodeRegistry.js';

/** A meeting's home as Redis has it. */
export interface HomeLease {
  meetingId: string;
  nodeId: string;
  /** Fencing token: grows with every new lease of the meeting. */
  token: number;
  allowedRegions: string[];
}

// KEYS: lease, epoch, record. ARGV: node, regions (JSON), lease ms, record TTL s.
// Takes the lease only when nobody holds it; returns the holder either way.
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local token = redis.call('INCR', KEYS[2])
local v = ARGV[1] .. '|' .. token
redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
redis.call('HSET', KEYS[3], 'home', ARGV[1], 'token', token, 'regions', ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, v}`;

// KEYS: lease. ARGV: expected value, lease ms. Renews only the caller's own lease.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

// KEYS: lease, epoch, record, policy, sessions. ARGV: expected value, participant key prefix.
// Purges only while the caller holds the lease; the participants' routing keys go with the
// sessions (their ids are the sessions' fields; a standalone Redis, so keys built here are fine).
const PURGE = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
for _, id in ipairs(redis.call('HKEYS', KEYS[5])) do redis.call('DEL', ARGV[2] .. id) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1`;

// KEYS: lease, epoch, record. ARGV: the dead holder's value, new node, lease ms, record TTL s.
// Takes the lease over from a holder the registry lost, only if that holder still has it.
const TAKEOVER = `
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return {0, cur} end
local token = redis.call('INCR', KEYS[2])
local v = ARGV[2] .. '|' .. token
redis.call('SET', KEYS[1], v, 'PX', ARGV[3])
redis.call('HSET', KEYS[3], 'home', ARGV[2], 'token', token)
redis.call('EXPIRE', KEYS[3], ARGV[4])
return {1, v}`;

// KEYS: lease, policy. ARGV: expected lease value, state JSON, TTL s. A fenced write: a home that
// lost its lease (a newer token holds it) cannot overwrite the new home's state.
const WRITE_POLICY = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1`;

/** The least loaded serving node of `nodes` in `allowedRegions` (ties: lowest id); REGION_UNAVAILABLE when none. */
export function chooseHome(nodes: readonly NodeInfo[], allowedRegions: readonly string[]): NodeInfo {
  const candidates = nodes
    .filter((n) => n.state === 'serving' && regionAllowed(n.region, allowedRegions))
    .sort((a, b) => a.participants - b.participants || a.cpu - b.cpu || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const best = candidates[0];
  if (!best) throw new C4vError('REGION_UNAVAILABLE', `no serving node in the allowed regions (${allowedRegions.join(', ')})`);
  return best;
}

function parseLease(meetingId: string, value: string, allowedRegions: string[]): HomeLease {
  const i = value.lastIndexOf('|');
  return { meetingId, nodeId: value.slice(0, i), token: Number(value.slice(i + 1)), allowedRegions };
}

/** Takes the home lease for `nodeId` unless someone holds it; returns the holder and whether it was taken now. */
export async function claimHome(
  redis: Redis,
  meetingId: string,
  nodeId: string,
  allowedRegions: readonly string[],
  leaseMs: number,
): Promise<{ lease: HomeLease; won: boolean }> {
  const [won, value] = (await redis.eval(
    CLAIM,
    3,
    keys.lease(meetingId),
    keys.epoch(meetingId),
    keys.meeting(meetingId),
    nodeId,
    JSON.stringify(allowedRegions),
    String(leaseMs),
    String(MEETING_RECORD_TTL_S),
  )) as [number, string];
  return { lease: parseLease(meetingId, value, [...allowedRegions]), won: won === 1 };
}

/** The current home of a meeting, or undefined when no lease is held. */
export async function readHome(redis: Redis, meetingId: string): Promise<HomeLease | undefined> {
  const [value, regions] = await Promise.all([redis.get(keys.lease(meetingId)), redis.hget(keys.meeting(meetingId), 'regions')]);
  if (!value) return undefined;
  return parseLease(meetingId, value, regions ? (JSON.parse(regions) as string[]) : []);
}

/** Renews the caller's lease; false when it was lost (expired and taken, or purged): the caller is fenced off. */
export async function renewHome(redis: Redis, lease: HomeLease, leaseMs: number): Promise<boolean> {
  const r = await redis.eval(RENEW, 1, keys.lease(lease.meetingId), `${lease.nodeId}|${lease.token}`, String(leaseMs));
  return r === 1;
}

/** Deletes the meeting's records at its end (only by the lease holder). */
export async function purgeMeeting(redis: Redis, lease: HomeLease): Promise<boolean> {
  const m = lease.meetingId;
  const r = await redis.eval(
    PURGE,
    5,
    keys.lease(m),
    keys.epoch(m),
    keys.meeting(m),
    keys.policy(m),
    keys.sessions(m),
    `${lease.nodeId}|${lease.token}`,
    keys.participant(''),
  );
  return r === 1;
}

/** Moves the lease from `dead` (a holder the registry lost) to `nodeId`; returns the holder afterwards. */
export async function takeOverHome(redis: Redis, dead: HomeLease, nodeId: string, leaseMs: number): Promise<{ lease: HomeLease; won: boolean }> {
  const m = dead.meetingId;
  const [won, value] = (await redis.eval(
    TAKEOVER,
    3,
    keys.lease(m),
    keys.epoch(m),
    keys.meeting(m),
    `${dead.nodeId}|${dead.token}`,
    nodeId,
    String(leaseMs),
    String(MEETING_RECORD_TTL_S),
  )) as [number, string];
  return { lease: parseLease(m, value, dead.allowedRegions), won: won === 1 };
}

/** Writes the meeting's policy state, only while `lease` is the current one (fencing). */
export async function writePolicy(redis: Redis, lease: HomeLease, state: unknown): Promise<boolean> {
  const m = lease.meetingId;
  const r = await redis.eval(WRITE_POLICY, 2, keys.lease(m), keys.policy(m), `${lease.nodeId}|${lease.token}`, JSON.stringify(state), String(MEETING_RECORD_TTL_S));
  return r === 1;
}

/** The policy state the meeting's last home wrote, if any. */
export async function readPolicy<T>(redis: Redis, meetingId: string): Promise<T | undefined> {
  const v = await redis.get(keys.policy(meetingId));
  return v ? (JSON.parse(v) as T) : undefined;
}

// Issue 13b: session write-through ------------------------------------------------------------

// KEYS: lease, sessions. ARGV: expected lease value, TTL s, then field/value pairs to set, '', then
// fields to delete. Fenced like the policy: a home that lost its lease writes nothing.
const WRITE_SESSIONS = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local i = 3
while ARGV[i] ~= '' do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for j = i + 1, #ARGV do redis.call('HDEL', KEYS[2], ARGV[j]) end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return 1`;

/**
 * Sets (`set`: participant id -> record JSON) and deletes (`del`) session records of the meeting,
 * in one fenced step: only while `lease` is the current lease.
 */
export async function writeSessions(redis: Redis, lease: HomeLease, set: ReadonlyMap<string, string>, del: readonly string[]): Promise<boolean> {
  const m = lease.meetingId;
  const pairs: string[] = [];
  for (const [id, json] of set) pairs.push(id, json);
  const r = await redis.eval(WRITE_SESSIONS, 2, keys.lease(m), keys.sessions(m), `${lease.nodeId}|${lease.token}`, String(MEETING_RECORD_TTL_S), ...pairs, '', ...del);
  return r === 1;
}

/** The session records the meeting's last home wrote (participant id -> record JSON). */
export async function readSessions(redis: Redis, meetingId: string): Promise<Map<string, string>> {
  return new Map(Object.entries(await redis.hgetall(keys.sessions(meetingId))));
}

/**
 * The home the meeting's placement record names, even when its lease expired (the record
 * outlives the lease): who was home last, for a takeover after the lease ran out.
 */
export async function readRecordedHome(redis: Redis, meetingId: string): Promise<{ nodeId: string; token: number; allowedRegions: string[] } | undefined> {
  const [home, token, regions] = await redis.hmget(keys.meeting(meetingId), 'home', 'token', 'regions');
  if (!home) return undefined;
  return { nodeId: home, token: Number(token ?? 0), allowedRegions: regions ? (JSON.parse(regions) as string[]) : [] };
}
