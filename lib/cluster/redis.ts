// The one place that creates Redis connections for cluster mode (ioredis). AUTH comes from the
// URL (redis://user:password@host:port) or the `password` option; TLS from a rediss:// URL or the
// `tls` option. The data kept there is listed in the README ("Where data lives"); Redis must run in
// the same region as the nodes.
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { SetupError } from '../errors.js';

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
    options.tls = { ...(o.tlsCaFile ? { ca: readFileSync(o.tlsCaFile) } : {}), servername: url.hostname };
  }
  const redis = new Redis(o.url, options);
  // ioredis reports every failed reconnect as an 'error' event; the owner logs state changes.
  redis.on('error', () => undefined);
  return redis;
}
