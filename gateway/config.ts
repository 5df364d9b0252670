// Configuration of the demo meeting server (`c4v-media serve`): embedded defaults, overridden by
// one YAML or JSON file, overridden by environment variables. Validated as a whole: a bad file is
// a CONFIG_INVALID error naming the file and the field, never a half-started server.
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { SetupError } from '../lib/errors.js';
import type { AccountInit, MeetingSettings } from '../lib/model/types.js';
import { DEFAULT_LIMITS, type GatewayLimits } from './Gateway.js';

export interface ServeConfig {
  server: {
    /** Listen address; plain HTTP is refused off loopback unless allowInsecurePublic. */
    host: string;
    port: number;
    path: string;
    /** PEM files for HTTPS/WSS. */
    tls?: { certFile: string; keyFile: string };
    allowInsecurePublic: boolean;
  };
  workers: { count: number; region: string; rtcMinPort?: number; rtcMaxPort?: number };
  media: {
    /** Address the WebRTC transports listen on. */
    listenIp: string;
    /** Public address announced in ICE candidates (behind NAT). */
    announcedAddress?: string;
  };
  tokens: {
    /** HMAC secret shared with the meeting server (>= 32 bytes); random per start when empty. */
    secret?: string;
    ttlSeconds: number;
  };
  limits: Partial<GatewayLimits>;
  logging: { level: string; personalData: boolean };
  /**
   * The metadata-only control-plane adapter: a durable outbox, plus a JSON-lines file (what an
   * operator or a data-protection officer reads) and/or an HTTP(S) control plane.
   */
  controlPlane: {
    enabled: boolean;
    outboxPath: string;
    /** JSON-lines file of every exported event; empty for none. */
    filePath: string;
    /** Control-plane endpoint; with `secret` (HMAC, >= 32 characters). */
    url?: string;
    secret?: string;
    format: 'protobuf' | 'json';
  };
  /**
   * Issue 13: cluster mode, on when `redis` is set (C4V_REDIS_URL). The node's region is
   * workers.region; the address other nodes' media pipes reach is media.announcedAddress (else
   * media.listenIp).
   */
  cluster: {
    /** redis:// or rediss:// URL; empty = single node (the default). */
    redis: string;
    /** AUTH password when not in the URL. */
    redisPassword?: string;
    /** CA file to trust for a rediss:// Redis. */
    redisTlsCaFile?: string;
    /** This node's id (unique, stable); default the host name. */
    nodeId: string;
    heartbeatMs: number;
    nodeTtlMs: number;
    leaseMs: number;
    requestTimeoutMs: number;
  };
  demo: {
    account: AccountInit;
    meeting: {
      id: string;
      title: string;
      hostIdentity: string;
      hostName: string;
      password?: string;
      settings: Partial<MeetingSettings>;
    };
  };
}

/** The embedded defaults: a loopback demo with one meeting, waiting room and host-required start. */
export const DEFAULT_CONFIG: Readonly<ServeConfig> = Object.freeze({
  server: { host: '127.0.0.1', port: 8080, path: '/signalling', allowInsecurePublic: false },
  // One media worker per core, as the media core's own default.
  workers: { count: Math.max(1, availableParallelism()), region: 'de-fra' },
  media: { listenIp: '127.0.0.1' },
  tokens: { ttlSeconds: 3600 },
  limits: {},
  logging: { level: 'info', personalData: false },
  controlPlane: {
    enabled: true,
    outboxPath: '.c4v-state/controlplane-outbox.db',
    filePath: '.c4v-state/controlplane-metadata.jsonl',
    format: 'json' as const,
  },
  cluster: { redis: '', nodeId: hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64) || 'node', heartbeatMs: 1000, nodeTtlMs: 3000, leaseMs: 5000, requestTimeoutMs: 5000 },
  demo: {
    account: { id: 'demo', name: 'Demo GmbH', defaults: {}, locked: [] },
    meeting: {
      id: 'demo',
      title: 'Demo meeting',
      hostIdentity: 'host@demo',
      hostName: 'Demo Host',
      settings: { waitingRoom: true, hostRequiredToStart: true, allowGuests: true },
    },
  },
});

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

class Checker {
  constructor(readonly source: string) {}

  fail(path: string, message: string): never {
    throw new SetupError('CONFIG_INVALID', `${this.source}: ${path}: ${message}`);
  }

  object(v: unknown, path: string, allowed: readonly string[]): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `expected a mapping, got ${describe(v)}`);
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) this.fail(`${path}.${k}`, `unknown setting (allowed: ${allowed.join(', ')})`);
    }
    return v as Record<string, unknown>;
  }

  string(v: unknown, path: string, { min = 0, max = 1024 } = {}): string {
    if (typeof v !== 'string' || v.length < min || v.length > max) this.fail(path, `expected a string of ${min} to ${max} characters, got ${describe(v)}`);
    return v;
  }

  int(v: unknown, path: string, min: number, max: number): number {
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) this.fail(path, `expected an integer from ${min} to ${max}, got ${describe(v)}`);
    return n;
  }

  bool(v: unknown, path: string): boolean {
    if (v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    if (typeof v !== 'boolean') this.fail(path, `expected true or false, got ${describe(v)}`);
    return v;
  }
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s && s.length > 40 ? `${s.slice(0, 40)}...` : String(s);
}

/** Deep merge of plain objects; arrays and scalars replace. */
function merge<T>(base: T, over: unknown): T {
  if (typeof over !== 'object' || over === null || Array.isArray(over)) return (over === undefined ? base : over) as T;
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return over as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) out[k] = merge(out[k], v);
  return out as T;
}

/** Parses a config file's text (YAML, of which JSON is a subset) into a plain value. */
export function parseConfigText(text: string, source: string): unknown {
  try {
    return parseYaml(text, { prettyErrors: true, uniqueKeys: true }) ?? {};
  } catch (error) {
    throw new SetupError('CONFIG_INVALID', `${source}: not valid YAML/JSON: ${(error as Error).message.split('\n')[0]}`);
  }
}

/** The environment variables read, and the setting each overrides. */
export const ENV_VARS: Readonly<Record<string, string>> = Object.freeze({
  C4V_HOST: 'server.host',
  C4V_PORT: 'server.port',
  C4V_TLS_CERT: 'server.tls.certFile',
  C4V_TLS_KEY: 'server.tls.keyFile',
  C4V_WORKERS: 'workers.count',
  C4V_REGION: 'workers.region',
  C4V_LISTEN_IP: 'media.listenIp',
  C4V_ANNOUNCED_ADDRESS: 'media.announcedAddress',
  C4V_TOKEN_SECRET: 'tokens.secret',
  C4V_LOG_LEVEL: 'logging.level',
  C4V_LOG_PERSONAL_DATA: 'logging.personalData',
  C4V_MEETING_PASSWORD: 'demo.meeting.password',
  C4V_CONTROL_PLANE: 'controlPlane.enabled',
  C4V_CONTROL_PLANE_OUTBOX: 'controlPlane.outboxPath',
  C4V_CONTROL_PLANE_FILE: 'controlPlane.filePath',
  C4V_CONTROL_PLANE_URL: 'controlPlane.url',
  C4V_CONTROL_PLANE_SECRET: 'controlPlane.secret',
  // Issue 13: cluster mode.
  C4V_REDIS_URL: 'cluster.redis',
  C4V_REDIS_PASSWORD: 'cluster.redisPassword',
  C4V_REDIS_TLS_CA: 'cluster.redisTlsCaFile',
  C4V_NODE_ID: 'cluster.nodeId',
  C4V_CLUSTER_HEARTBEAT_MS: 'cluster.heartbeatMs',
  C4V_CLUSTER_NODE_TTL_MS: 'cluster.nodeTtlMs',
  C4V_CLUSTER_LEASE_MS: 'cluster.leaseMs',
  C4V_CLUSTER_REQUEST_TIMEOUT_MS: 'cluster.requestTimeoutMs',
});

function envOverrides(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, path] of Object.entries(ENV_VARS)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    const keys = path.split('.');
    let o = out;
    for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
    o[keys.at(-1)!] = v;
  }
  return out;
}

/**
 * Loads the serve configuration: defaults, then the file (when given), then environment variables.
 * Throws SetupError CONFIG_INVALID naming the source and the field on anything wrong.
 */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv } = {}): ServeConfig {
  const env = options.env ?? {};
  let fromFile: unknown = {};
  const file = options.file;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new SetupError('CONFIG_INVALID', `${file}: cannot read the config file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    fromFile = parseConfigText(text, file);
  }
  // The file is checked on its own first so that an error names the file, then the merged whole.
  validate(merge(structuredClone(DEFAULT_CONFIG) as ServeConfig, fromFile), file ?? 'config');
  const merged = merge(merge(structuredClone(DEFAULT_CONFIG) as ServeConfig, fromFile), envOverrides(env));
  return validate(merged, 'environment');
}

function validate(raw: unknown, source: string): ServeConfig {
  const c = new Checker(source);
  const top = c.object(raw, '(top)', ['server', 'workers', 'media', 'tokens', 'limits', 'logging', 'controlPlane', 'cluster', 'demo']);

  const s = c.object(top.server, 'server', ['host', 'port', 'path', 'tls', 'allowInsecurePublic']);
  let tls: ServeConfig['server']['tls'];
  if (s.tls !== undefined) {
    const t = c.object(s.tls, 'server.tls', ['certFile', 'keyFile']);
    tls = { certFile: c.string(t.certFile, 'server.tls.certFile', { min: 1 }), keyFile: c.string(t.keyFile, 'server.tls.keyFile', { min: 1 }) };
  }
  const path = c.string(s.path, 'server.path', { min: 1, max: 200 });
  if (!path.startsWith('/')) c.fail('server.path', 'must start with /');
  const server: ServeConfig['server'] = {
    host: c.string(s.host, 'server.host', { min: 1, max: 255 }),
    port: c.int(s.port, 'server.port', 0, 65535),
    path,
    ...(tls ? { tls } : {}),
    allowInsecurePublic: c.bool(s.allowInsecurePublic, 'server.allowInsecurePublic'),
  };

  const w = c.object(top.workers, 'workers', ['count', 'region', 'rtcMinPort', 'rtcMaxPort']);
  const region = c.string(w.region, 'workers.region', { min: 1, max: 64 });
  if (!/^[a-z]{2}-[a-z0-9]+$/.test(region)) c.fail('workers.region', `expected "<country>-<site>" like "de-fra", got ${describe(region)}`);
  const workers: ServeConfig['workers'] = { count: c.int(w.count, 'workers.count', 1, 256), region };
  if (w.rtcMinPort !== undefined) workers.rtcMinPort = c.int(w.rtcMinPort, 'workers.rtcMinPort', 1024, 65535);
  if (w.rtcMaxPort !== undefined) workers.rtcMaxPort = c.int(w.rtcMaxPort, 'workers.rtcMaxPort', 1024, 65535);
  if (workers.rtcMinPort && workers.rtcMaxPort && workers.rtcMinPort > workers.rtcMaxPort) c.fail('workers.rtcMaxPort', 'is below rtcMinPort');

  const m = c.object(top.media, 'media', ['listenIp', 'announcedAddress']);
  const media: ServeConfig['media'] = { listenIp: c.string(m.listenIp, 'media.listenIp', { min: 1, max: 64 }) };
  if (m.announcedAddress !== undefined) media.announcedAddress = c.string(m.announcedAddress, 'media.announcedAddress', { min: 1, max: 255 });

  const t = c.object(top.tokens, 'tokens', ['secret', 'ttlSeconds']);
  const tokens: ServeConfig['tokens'] = { ttlSeconds: c.int(t.ttlSeconds, 'tokens.ttlSeconds', 1, 7 * 24 * 3600) };
  if (t.secret !== undefined && t.secret !== null && t.secret !== '') {
    tokens.secret = c.string(t.secret, 'tokens.secret', { min: 32, max: 1024 });
  }

  const l = c.object(top.limits, 'limits', Object.keys(DEFAULT_LIMITS));
  const limits: Partial<GatewayLimits> = {};
  for (const [k, v] of Object.entries(l)) (limits as Record<string, number>)[k] = c.int(v, `limits.${k}`, 1, 1_000_000_000);

  const g = c.object(top.logging, 'logging', ['level', 'personalData']);
  const level = c.string(g.level, 'logging.level');
  if (!LOG_LEVELS.includes(level)) c.fail('logging.level', `expected one of ${LOG_LEVELS.join(', ')}, got ${describe(level)}`);
  const logging = { level, personalData: c.bool(g.personalData, 'logging.personalData') };

  const cp = c.object(top.controlPlane, 'controlPlane', ['enabled', 'outboxPath', 'filePath', 'url', 'secret', 'format']);
  const format = c.string(cp.format, 'controlPlane.format');
  if (format !== 'protobuf' && format !== 'json') c.fail('controlPlane.format', `expected protobuf or json, got ${describe(format)}`);
  const controlPlane: ServeConfig['controlPlane'] = {
    enabled: c.bool(cp.enabled, 'controlPlane.enabled'),
    outboxPath: c.string(cp.outboxPath, 'controlPlane.outboxPath', { min: 1 }),
    filePath: c.string(cp.filePath ?? '', 'controlPlane.filePath'),
    format: format as 'protobuf' | 'json',
  };
  if (cp.url !== undefined && cp.url !== '') {
    const url = c.string(cp.url, 'controlPlane.url', { min: 1 });
    if (!/^https?:\/\//.test(url)) c.fail('controlPlane.url', `expected an http(s) URL, got ${describe(url)}`);
    controlPlane.url = url;
    // The secret itself is never echoed in an error.
    if (typeof cp.secret !== 'string' || cp.secret.length < 32) c.fail('controlPlane.secret', 'a control-plane URL needs an HMAC secret of at least 32 characters');
    controlPlane.secret = cp.secret as string;
  }

  const d = c.object(top.demo, 'demo', ['account', 'meeting']);
  const a = c.object(d.account, 'demo.account', ['id', 'name', 'defaults', 'locked']);
  const account: AccountInit = {
    id: c.string(a.id, 'demo.account.id', { min: 1, max: 128 }),
    ...(a.name !== undefined ? { name: c.string(a.name, 'demo.account.name', { max: 200 }) } : {}),
    defaults: c.object(a.defaults ?? {}, 'demo.account.defaults', SETTING_NAMES) as Partial<MeetingSettings>,
  };
  if (a.locked !== undefined) {
    if (!Array.isArray(a.locked) || a.locked.some((x) => !SETTING_NAMES.includes(x as string))) {
      c.fail('demo.account.locked', `expected a list of setting names (${SETTING_NAMES.join(', ')})`);
    }
    account.locked = a.locked as AccountInit['locked'];
  }
  const mt = c.object(d.meeting, 'demo.meeting', ['id', 'title', 'hostIdentity', 'hostName', 'password', 'settings']);
  const meetingId = c.string(mt.id, 'demo.meeting.id', { min: 1, max: 128 });
  const hostIdentity = c.string(mt.hostIdentity, 'demo.meeting.hostIdentity', { min: 1, max: 128 });
  for (const [v, p] of [[meetingId, 'demo.meeting.id'], [hostIdentity, 'demo.meeting.hostIdentity']] as const) {
    if (!/^[\w.@:+-]+$/.test(v)) c.fail(p, 'may hold only letters, digits and . @ : + - _');
  }
  const meeting: ServeConfig['demo']['meeting'] = {
    id: meetingId,
    title: c.string(mt.title, 'demo.meeting.title', { max: 500 }),
    hostIdentity,
    hostName: c.string(mt.hostName, 'demo.meeting.hostName', { min: 1, max: 64 }),
    settings: c.object(mt.settings ?? {}, 'demo.meeting.settings', SETTING_NAMES) as Partial<MeetingSettings>,
  };
  if (mt.password !== undefined && mt.password !== null) meeting.password = c.string(String(mt.password), 'demo.meeting.password', { min: 1, max: 256 });

  const cl = c.object(top.cluster, 'cluster', ['redis', 'redisPassword', 'redisTlsCaFile', 'nodeId', 'heartbeatMs', 'nodeTtlMs', 'leaseMs', 'requestTimeoutMs']);
  const redis = c.string(cl.redis ?? '', 'cluster.redis', { max: 1024 });
  if (redis !== '' && !/^rediss?:\/\/[^/]/.test(redis)) c.fail('cluster.redis', 'expected a redis:// or rediss:// URL (the value is not echoed: it may hold a password)');
  const nodeId = c.string(cl.nodeId, 'cluster.nodeId', { min: 1, max: 64 });
  if (!/^[A-Za-z0-9_.-]+$/.test(nodeId)) c.fail('cluster.nodeId', 'may hold only letters, digits and . - _');
  const cluster: ServeConfig['cluster'] = {
    redis,
    nodeId,
    heartbeatMs: c.int(cl.heartbeatMs, 'cluster.heartbeatMs', 50, 60_000),
    nodeTtlMs: c.int(cl.nodeTtlMs, 'cluster.nodeTtlMs', 100, 600_000),
    leaseMs: c.int(cl.leaseMs, 'cluster.leaseMs', 100, 600_000),
    requestTimeoutMs: c.int(cl.requestTimeoutMs, 'cluster.requestTimeoutMs', 100, 600_000),
  };
  if (cluster.nodeTtlMs <= cluster.heartbeatMs) c.fail('cluster.nodeTtlMs', 'must be longer than cluster.heartbeatMs');
  if (cl.redisPassword !== undefined && cl.redisPassword !== '') cluster.redisPassword = c.string(cl.redisPassword, 'cluster.redisPassword', { min: 1 });
  if (cl.redisTlsCaFile !== undefined && cl.redisTlsCaFile !== '') cluster.redisTlsCaFile = c.string(cl.redisTlsCaFile, 'cluster.redisTlsCaFile', { min: 1 });

  return { server, workers, media, tokens, limits, logging, controlPlane, cluster, demo: { account, meeting } };
}

// The setting names of the contract (types.ts MeetingSettings); their values are checked by the
// model when the demo meeting is created, and a refusal there is reported as CONFIG_INVALID too.
const SETTING_NAMES: readonly string[] = [
  'passwordRequired',
  'waitingRoom',
  'hostRequiredToStart',
  'e2ee',
  'maxParticipants',
  'allowScreenShare',
  'allowChat',
  'muteOnEntry',
  'allowGuests',
  'allowedRegions',
  'retentionDays',
  'onHostLeave',
];
