// Configuration of the demo meeting server (`c4v-media serve`): embedded defaults, overridden by
// one YAML or JSON file, overridden by environment variables. Validated as a whole: a bad file is
// a CONFIG_INVALID error naming the file and the field, never a half-started server.
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { SetupError } from '../lib/errors.js';
import { checkDisplayName, DISPLAY_NAME_MAX, SECRET_MIN_BYTES, secretBytes } from '../lib/rules.js';
import { TrustedProxies } from './clientAddress.js';
import { checkAllowedOrigins } from './origin.js';
import { BOOLEAN_WORDS, parseBoolean } from '../lib/env.js';
import type { AccountInit, MeetingSettings } from '../lib/model/types.js';
import { HTTP_SINK_FORMATS, type HttpSinkFormat } from '../lib/controlplane/sinks.js';
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
    /** Issue 10: reverse proxies (CIDR) whose forwarding header names the client; default none. */
    trustedProxies: string[];
    /** Issue 10: the header those proxies write: x-forwarded-for (default) or forwarded. */
    forwardedHeader: 'x-forwarded-for' | 'forwarded';
    /** Issue 10: browser origins allowed besides the gateway's own (`*` for any); default none. */
    allowedOrigins: string[];
  };
  workers: { count: number; region: string; rtcMinPort?: number; rtcMaxPort?: number };
  media: {
    /** Address the WebRTC transports listen on. */
    listenIp: string;
    /** Public address announced in ICE candidates (behind NAT). */
    announcedAddress?: string;
  };
  tokens: {
    /** HS256 secret shared with the meeting server (>= 32 bytes); random per start when empty and no keys. */
    secret?: string;
    ttlSeconds: number;
    /** Issue 10: clock-skew tolerance for exp / nbf / iat in seconds (default 30). */
    clockToleranceSeconds: number;
    /**
     * Issue 10: JWT keys (instead of, or besides, `secret`): HS256 with `secret`, EdDSA / ES256 with
     * a `publicKeyFile` (PEM) and, where tokens are minted, a `privateKeyFile`. Two at once for a
     * rotation, each with its own `kid`.
     */
    keys?: Array<{ kid?: string; alg: 'HS256' | 'EdDSA' | 'ES256'; secret?: string; publicKeyFile?: string; privateKeyFile?: string }>;
    /** Issue 10: the kid `c4v-media token` and the demo host token sign with (default the first that can). */
    signingKid?: string;
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
    format: HttpSinkFormat;
    // Issue 16: data protection.
    /** Remove a meeting's lines from `filePath` when its retention runs out. Default off. */
    purgeFile: boolean;
    /** Refuse to start when a folder or file of personal data lets group or others in. Default off (a warning). */
    strictPermissions: boolean;
    /** The pseudonym key file; empty for `pseudonym.key` next to the outbox. */
    pseudonymKeyPath: string;
  };
  /**
   * Issue 15: the operator API under /api/v1 (accounts, meetings, participants, join tokens) and
   * the durable store of accounts and scheduled meetings.
   */
  api: {
    enabled: boolean;
    /** SQLite file of accounts, meeting definitions and API keys; empty: the outbox file. Needs the control plane on: its retention purges the definitions. */
    storePath: string;
    /** The admin API key id and secret (>= 32 characters); a random pair per start when empty. */
    adminKeyId: string;
    adminSecret?: string;
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
    /** SIGTERM: home meetings still running move to another node after this long (ms). */
    drainDeadlineMs: number;
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
  /**
   * Issue 10: graceful shutdown on SIGTERM / SIGINT. The control-plane outbox gets `timeoutMs` to
   * deliver what the ending meetings produced; what is left stays on disk for the next start.
   */
  shutdown: { timeoutMs: number };
}

/** The embedded defaults: a loopback demo with one meeting, waiting room and host-required start. */
export const DEFAULT_CONFIG: Readonly<ServeConfig> = Object.freeze({
  server: { host: '127.0.0.1', port: 8080, path: '/signalling', allowInsecurePublic: false, trustedProxies: [], forwardedHeader: 'x-forwarded-for' as const, allowedOrigins: [] },
  // One media worker per core, as the media core's own default.
  workers: { count: Math.max(1, availableParallelism()), region: 'de-fra' },
  media: { listenIp: '127.0.0.1' },
  tokens: { ttlSeconds: 3600, clockToleranceSeconds: 30 },
  limits: {},
  logging: { level: 'info', personalData: false },
  controlPlane: {
    enabled: true,
    outboxPath: '.c4v-state/controlplane-outbox.db',
    filePath: '.c4v-state/controlplane-metadata.jsonl',
    format: 'json' as const,
    purgeFile: false,
    strictPermissions: false,
    pseudonymKeyPath: '',
  },
  api: { enabled: true, storePath: '', adminKeyId: 'admin' },
  cluster: { redis: '', nodeId: hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64) || 'node', heartbeatMs: 1000, nodeTtlMs: 3000, leaseMs: 5000, requestTimeoutMs: 5000, drainDeadlineMs: 30_000 },
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
  shutdown: { timeoutMs: 10_000 },
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

  /** A list of strings: a YAML list, or (from the environment) a comma-separated string. */
  list(v: unknown, path: string): string[] {
    const items = typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v;
    if (!Array.isArray(items) || items.some((x) => typeof x !== 'string')) this.fail(path, `expected a list of strings, got ${describe(v)}`);
    return items as string[];
  }

  /** A shared secret: the one secret rule (lib/rules.ts); the value is never echoed. */
  secret(v: unknown, path: string): string {
    if (typeof v !== 'string' || secretBytes(v) < SECRET_MIN_BYTES || v.length > 1024) this.fail(path, `expected a secret of at least ${SECRET_MIN_BYTES} bytes`);
    return v;
  }

  bool(v: unknown, path: string): boolean {
    // The one boolean parser (lib/env.ts): on/off, true/false, 1/0 from a file or a variable.
    let b: boolean | undefined;
    try {
      b = parseBoolean(v, path);
    } catch {
      b = undefined;
    }
    if (b === undefined) this.fail(path, `expected ${BOOLEAN_WORDS}, got ${describe(v)}`);
    return b;
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
  C4V_TRUSTED_PROXIES: 'server.trustedProxies',
  C4V_FORWARDED_HEADER: 'server.forwardedHeader',
  C4V_ALLOWED_ORIGINS: 'server.allowedOrigins',
  C4V_LOG_LEVEL: 'logging.level',
  C4V_LOG_PERSONAL_DATA: 'logging.personalData',
  C4V_MEETING_PASSWORD: 'demo.meeting.password',
  C4V_CONTROL_PLANE: 'controlPlane.enabled',
  C4V_CONTROL_PLANE_OUTBOX: 'controlPlane.outboxPath',
  C4V_CONTROL_PLANE_FILE: 'controlPlane.filePath',
  C4V_CONTROL_PLANE_URL: 'controlPlane.url',
  C4V_CONTROL_PLANE_SECRET: 'controlPlane.secret',
  // Issue 15: operator API and Zoom-format sink.
  C4V_CONTROL_PLANE_FORMAT: 'controlPlane.format',
  C4V_API: 'api.enabled',
  C4V_API_STORE: 'api.storePath',
  C4V_API_KEY: 'api.adminKeyId',
  C4V_API_SECRET: 'api.adminSecret',
  // Issue 16: data protection.
  C4V_CONTROL_PLANE_PURGE_FILE: 'controlPlane.purgeFile',
  C4V_STRICT_PERMISSIONS: 'controlPlane.strictPermissions',
  C4V_PSEUDONYM_KEY: 'controlPlane.pseudonymKeyPath',
  // Issue 10: graceful shutdown.
  C4V_SHUTDOWN_TIMEOUT_MS: 'shutdown.timeoutMs',
  // Issue 13: cluster mode.
  C4V_REDIS_URL: 'cluster.redis',
  C4V_REDIS_PASSWORD: 'cluster.redisPassword',
  C4V_REDIS_TLS_CA: 'cluster.redisTlsCaFile',
  C4V_NODE_ID: 'cluster.nodeId',
  C4V_CLUSTER_HEARTBEAT_MS: 'cluster.heartbeatMs',
  C4V_CLUSTER_NODE_TTL_MS: 'cluster.nodeTtlMs',
  C4V_CLUSTER_LEASE_MS: 'cluster.leaseMs',
  C4V_CLUSTER_REQUEST_TIMEOUT_MS: 'cluster.requestTimeoutMs',
  C4V_CLUSTER_DRAIN_DEADLINE_MS: 'cluster.drainDeadlineMs',
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
  const top = c.object(raw, '(top)', ['server', 'workers', 'media', 'tokens', 'limits', 'logging', 'controlPlane', 'demo', 'api', 'shutdown', 'cluster']);

  const s = c.object(top.server, 'server', ['host', 'port', 'path', 'tls', 'allowInsecurePublic', 'trustedProxies', 'forwardedHeader', 'allowedOrigins']);
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
    trustedProxies: c.list(s.trustedProxies ?? [], 'server.trustedProxies'),
    forwardedHeader: 'x-forwarded-for',
    allowedOrigins: c.list(s.allowedOrigins ?? [], 'server.allowedOrigins'),
  };
  try {
    new TrustedProxies(server.trustedProxies);
  } catch (error) {
    c.fail('server.trustedProxies', (error as Error).message);
  }
  try {
    checkAllowedOrigins(server.allowedOrigins);
  } catch (error) {
    c.fail('server.allowedOrigins', (error as Error).message);
  }
  const fh = c.string(s.forwardedHeader ?? 'x-forwarded-for', 'server.forwardedHeader').toLowerCase();
  if (fh !== 'x-forwarded-for' && fh !== 'forwarded') c.fail('server.forwardedHeader', `expected x-forwarded-for or forwarded, got ${describe(fh)}`);
  server.forwardedHeader = fh as ServeConfig['server']['forwardedHeader'];

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

  const t = c.object(top.tokens, 'tokens', ['secret', 'ttlSeconds', 'clockToleranceSeconds', 'keys', 'signingKid']);
  const tokens: ServeConfig['tokens'] = {
    ttlSeconds: c.int(t.ttlSeconds, 'tokens.ttlSeconds', 1, 7 * 24 * 3600),
    clockToleranceSeconds: c.int(t.clockToleranceSeconds ?? 30, 'tokens.clockToleranceSeconds', 0, 600),
  };
  if (t.secret !== undefined && t.secret !== null && t.secret !== '') tokens.secret = c.secret(t.secret, 'tokens.secret');
  if (t.keys !== undefined) {
    if (!Array.isArray(t.keys) || t.keys.length === 0 || t.keys.length > 4) c.fail('tokens.keys', 'expected a list of 1 to 4 keys');
    tokens.keys = (t.keys as unknown[]).map((raw, i) => {
      const path = `tokens.keys[${i}]`;
      const k = c.object(raw, path, ['kid', 'alg', 'secret', 'publicKeyFile', 'privateKeyFile']);
      const alg = c.string(k.alg, `${path}.alg`);
      if (alg !== 'HS256' && alg !== 'EdDSA' && alg !== 'ES256') c.fail(`${path}.alg`, `expected HS256, EdDSA or ES256, got ${describe(alg)}`);
      const key: NonNullable<ServeConfig['tokens']['keys']>[number] = { alg: alg as 'HS256' | 'EdDSA' | 'ES256' };
      if (k.kid !== undefined) key.kid = c.string(k.kid, `${path}.kid`, { min: 1, max: 64 });
      if (alg === 'HS256') key.secret = c.secret(k.secret, `${path}.secret`);
      else {
        if (k.secret !== undefined) c.fail(`${path}.secret`, `${alg} keys take publicKeyFile / privateKeyFile, not a secret`);
        if (k.publicKeyFile === undefined && k.privateKeyFile === undefined) c.fail(`${path}.publicKeyFile`, `${alg} needs a public key file (PEM)`);
        if (k.publicKeyFile !== undefined) key.publicKeyFile = c.string(k.publicKeyFile, `${path}.publicKeyFile`, { min: 1 });
        if (k.privateKeyFile !== undefined) key.privateKeyFile = c.string(k.privateKeyFile, `${path}.privateKeyFile`, { min: 1 });
      }
      return key;
    });
    if (tokens.keys.length > 1 && new Set(tokens.keys.map((k) => k.kid)).size !== tokens.keys.length) c.fail('tokens.keys', 'with two or more keys, each needs its own kid');
    if (tokens.keys.length > 1 && tokens.keys.some((k) => k.kid === undefined)) c.fail('tokens.keys', 'with two or more keys, each needs its own kid');
  }
  if (t.signingKid !== undefined) {
    tokens.signingKid = c.string(t.signingKid, 'tokens.signingKid', { min: 1, max: 64 });
    if (!tokens.keys?.some((k) => k.kid === tokens.signingKid)) c.fail('tokens.signingKid', 'names no key in tokens.keys');
  }

  const l = c.object(top.limits, 'limits', Object.keys(DEFAULT_LIMITS));
  const limits: Partial<GatewayLimits> = {};
  for (const [k, v] of Object.entries(l)) (limits as Record<string, number>)[k] = c.int(v, `limits.${k}`, 1, 1_000_000_000);

  const g = c.object(top.logging, 'logging', ['level', 'personalData']);
  const level = c.string(g.level, 'logging.level');
  if (!LOG_LEVELS.includes(level)) c.fail('logging.level', `expected one of ${LOG_LEVELS.join(', ')}, got ${describe(level)}`);
  const logging = { level, personalData: c.bool(g.personalData, 'logging.personalData') };

  const cp = c.object(top.controlPlane, 'controlPlane', [
    'enabled', 'outboxPath', 'filePath', 'url', 'secret', 'format',
    // Issue 16: data protection.
    'purgeFile', 'strictPermissions', 'pseudonymKeyPath',
  ]);
  const format = c.string(cp.format, 'controlPlane.format');
  if (!(HTTP_SINK_FORMATS as readonly string[]).includes(format)) {
    c.fail('controlPlane.format', `expected ${HTTP_SINK_FORMATS.join(', ')}, got ${describe(format)}`);
  }
  const controlPlane: ServeConfig['controlPlane'] = {
    enabled: c.bool(cp.enabled, 'controlPlane.enabled'),
    outboxPath: c.string(cp.outboxPath, 'controlPlane.outboxPath', { min: 1 }),
    filePath: c.string(cp.filePath ?? '', 'controlPlane.filePath'),
    format: format as HttpSinkFormat,
    purgeFile: c.bool(cp.purgeFile ?? false, 'controlPlane.purgeFile'),
    strictPermissions: c.bool(cp.strictPermissions ?? false, 'controlPlane.strictPermissions'),
    pseudonymKeyPath: c.string(cp.pseudonymKeyPath ?? '', 'controlPlane.pseudonymKeyPath'),
  };
  if (cp.url !== undefined && cp.url !== '') {
    const url = c.string(cp.url, 'controlPlane.url', { min: 1 });
    if (!/^https?:\/\//.test(url)) c.fail('controlPlane.url', `expected an http(s) URL, got ${describe(url)}`);
    controlPlane.url = url;
    // The secret itself is never echoed in an error.
    if (typeof cp.secret !== 'string' || secretBytes(cp.secret) < SECRET_MIN_BYTES) {
      c.fail('controlPlane.secret', `a control-plane URL needs an HMAC secret of at least ${SECRET_MIN_BYTES} bytes`);
    }
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
    hostName: c.string(mt.hostName, 'demo.meeting.hostName', { min: 1, max: DISPLAY_NAME_MAX }),
    // (checked against the whole display-name rule below)
    settings: c.object(mt.settings ?? {}, 'demo.meeting.settings', SETTING_NAMES) as Partial<MeetingSettings>,
  };
  try {
    meeting.hostName = checkDisplayName(meeting.hostName, 'host name');
  } catch (error) {
    c.fail('demo.meeting.hostName', (error as Error).message);
  }
  if (mt.password !== undefined && mt.password !== null) meeting.password = c.string(String(mt.password), 'demo.meeting.password', { min: 1, max: 256 });

  // Issue 15: the operator API.
  const ap = c.object(top.api, 'api', ['enabled', 'storePath', 'adminKeyId', 'adminSecret']);
  const adminKeyId = c.string(ap.adminKeyId, 'api.adminKeyId', { min: 1, max: 64 });
  if (!/^[\w.:-]+$/.test(adminKeyId)) c.fail('api.adminKeyId', 'may hold only letters, digits and . : - _');
  const api: ServeConfig['api'] = {
    enabled: c.bool(ap.enabled, 'api.enabled'),
    storePath: c.string(ap.storePath ?? '', 'api.storePath'),
    adminKeyId,
  };
  if (ap.adminSecret !== undefined && ap.adminSecret !== null && ap.adminSecret !== '') {
    // The one secret rule (lib/rules.ts); the secret itself is never echoed in an error.
    api.adminSecret = c.secret(ap.adminSecret, 'api.adminSecret');
  }


  // Issue 10: graceful shutdown.
  const sd = c.object(top.shutdown, 'shutdown', ['timeoutMs']);
  const shutdown: ServeConfig['shutdown'] = { timeoutMs: c.int(sd.timeoutMs, 'shutdown.timeoutMs', 0, 600_000) };

  const cl = c.object(top.cluster, 'cluster', ['redis', 'redisPassword', 'redisTlsCaFile', 'nodeId', 'heartbeatMs', 'nodeTtlMs', 'leaseMs', 'requestTimeoutMs', 'drainDeadlineMs']);
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
    drainDeadlineMs: c.int(cl.drainDeadlineMs, 'cluster.drainDeadlineMs', 0, 24 * 3600_000),
  };
  if (cluster.nodeTtlMs <= cluster.heartbeatMs) c.fail('cluster.nodeTtlMs', 'must be longer than cluster.heartbeatMs');
  if (cl.redisPassword !== undefined && cl.redisPassword !== '') cluster.redisPassword = c.string(cl.redisPassword, 'cluster.redisPassword', { min: 1 });
  if (cl.redisTlsCaFile !== undefined && cl.redisTlsCaFile !== '') cluster.redisTlsCaFile = c.string(cl.redisTlsCaFile, 'cluster.redisTlsCaFile', { min: 1 });

  return { server, workers, media, tokens, limits, logging, controlPlane, demo: { account, meeting }, api, shutdown, cluster };
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
