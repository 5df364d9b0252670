// The one place that creates Redis connections for cluster mode (ioredis). AUTH comes from the
// URL (redis://user:password@host:port) or the `password` option; TLS from a rediss:// URL or the
// `tls` option. The data kept there is listed in the README ("Where data lives"); Redis must run in
// the same region as the nodes.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { C4vError, SetupError } from '../errors.js';

/** How a node reaches Redis. */
export interface RedisConnectOptions {
  /** redis://[user:password@]host:port[/db] or rediss://... (TLS). */
  url: string;
  /** AUTH password when not in the URL (never logged). */
  password?: string;
  /** TLS: a CA file to trust (PEM) besides the system CAs; implies TLS. */
  tlsCaFile?: string;
}

/** Opens a connection; commands queue while it (re)connects, so a Redis restart is ridden out. */
export function connectRedis(o: RedisConnectOptions, name: string): Redis {
  const redis = new Redis(o.url, redisOptions(o, name));
  // ioredis reports every failed reconnect as an 'error' event; the owner logs state changes.
  redis.on('error', () => undefined);
  return redis;
}

function redisOptions(o: RedisConnectOptions, name: string): RedisOptions {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new SetupError('CONFIG_INVALID', 'cluster.redis: not a URL (expected redis://host:port or rediss://host:port)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new SetupError('CONFIG_INVALID', `cluster.redis: expected a redis:// or rediss:// URL, got ${url.protocol}`);
  }
  const options: RedisOptions = {
    connectionName: name,
    // Reconnect forever with a short, capped back-off: a restarted Redis is found again quickly.
    retryStrategy: (times) => Math.min(50 * times, 500),
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    lazyConnect: false,
    ...(o.password ? { password: o.password } : {}),
  };
  if (url.protocol === 'rediss:' || o.tlsCaFile) {
    // SNI carries host names only (RFC 6066): an IP address is checked against the certificate's
    // IP entries without it (Node warns when an address is given as the server name).
    const host = url.hostname.replace(/^\[|\]$/g, '');
    options.tls = { ...(o.tlsCaFile ? { ca: readFileSync(o.tlsCaFile) } : {}), ...(isIP(host) ? {} : { servername: host }) };
  }
  return options;
}

// TLS failures Node reports by code (certificate chain, name, protocol): a wrong CA or a TLS
// client on a plain port. Anything else that ends the first connection is a refusal.
const TLS_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS|ERR_SSL|HOSTNAME|ALTNAME|wrong version number|ssl3|tlsv1|packet length too long/i;

/**
 * One connection attempt, without the reconnect loop: resolves once Redis answered (AUTH and the
 * ready check passed), rejects with a coded SetupError otherwise. A node calls it before it joins
 * the cluster: the working connections retry forever (a Redis restart is ridden out), so a
 * configuration that can never work (an untrusted certificate, plain redis:// to a TLS port, a
 * wrong password) would otherwise hang the start instead of failing it.
 */
export async function checkRedis(o: RedisConnectOptions, timeoutMs = 10_000): Promise<void> {
  const options = redisOptions(o, 'c4v-check');
  const redis = new Redis(o.url, { ...options, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: timeoutMs, enableOfflineQueue: false });
  let last: (Error & { code?: string }) | undefined;
  redis.on('error', (e: Error) => (last = e));
  const tls = options.tls !== undefined;
  const deadline = new Promise<never>((_r, reject) => {
    const t = setTimeout(() => reject(new SetupError('CLUSTER_REDIS_REFUSED', `cluster.redis: no answer from Redis within ${timeoutMs} ms`)), timeoutMs + 1000);
    t.unref();
  });
  try {
    await Promise.race([redis.connect(), deadline]);
    await Promise.race([redis.ping(), deadline]);
  } catch (error) {
    const e = last ?? (error as Error & { code?: string });
    if (e instanceof C4vError) throw e;
    const what = `${e.code ?? ''} ${e.message ?? String(e)}`.trim();
    if (tls && TLS_ERROR.test(what)) {
      throw new SetupError('CLUSTER_TLS_FAILED', `cluster.redis: TLS with Redis failed (${what}); check cluster.redisTlsCaFile (the CA that signed the Redis certificate) and the host name in the URL`);
    }
    if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(what)) {
      throw new SetupError('CLUSTER_REDIS_REFUSED', 'cluster.redis: Redis refused the credentials (AUTH); check the password in the URL or cluster.redisPassword');
    }
    const hint = tls ? '' : ' (a TLS port? then use rediss:// and cluster.redisTlsCaFile)';
    throw new SetupError('CLUSTER_REDIS_REFUSED', `cluster.redis: Redis ended the connection before it answered: ${what}${hint}`);
  } finally {
    redis.disconnect();
  }
}
