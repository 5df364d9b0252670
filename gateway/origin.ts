// The Origin check of browser WebSocket upgrades: a page on another site must not be able to open
// a signalling connection with the visitor's browser (cross-site WebSocket hijacking).
import { ArgumentError } from '../lib/errors.js';

function defaultPort(scheme: string): string {
  return scheme === 'https:' || scheme === 'wss:' ? '443' : scheme === 'http:' || scheme === 'ws:' ? '80' : '';
}

/** `scheme://host[:port]` in lowercase without a default port, or undefined for a non-URL. */
export function normalizeOrigin(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    const port = u.port && u.port !== defaultPort(u.protocol) ? `:${u.port}` : '';
    return `${u.protocol}//${u.hostname.toLowerCase()}${port}`;
  } catch {
    return undefined;
  }
}

/** Checks an `allowedOrigins` list: `*`, or origins like `https://meet.example.org`. */
export function checkAllowedOrigins(list: readonly string[]): string[] {
  return list.map((o) => {
    if (o === '*') return o;
    const n = normalizeOrigin(o);
    if (!n || new URL(o).pathname !== '/') throw new ArgumentError(`allowed origin ${JSON.stringify(o)} is not an origin like https://meet.example.org`);
    return n;
  });
}

/**
 * Whether a WebSocket upgrade with this Origin header may proceed:
 * - no Origin header: yes (not a browser; such a client can send any header anyway, so the check
 *   protects browsers' users, not the server);
 * - same origin (the Origin's host and port equal the Host header's): yes, always, so the web app
 *   served from the gateway's own address works without configuration, also behind a TLS proxy
 *   that keeps the Host header;
 * - otherwise only an origin listed in `allowed` (normalized), or any with `*`.
 */
export function originAllowed(origin: string | undefined, host: string | undefined, allowed: readonly string[]): boolean {
  if (origin === undefined) return true;
  if (allowed.includes('*')) return true;
  const n = normalizeOrigin(origin);
  if (!n) return false;
  if (allowed.includes(n)) return true;
  if (!host) return false;
  const u = new URL(n);
  const originHost = `${u.hostname}:${u.port || defaultPort(u.protocol)}`;
  // The Host header has no scheme: compare host and port, taking a missing port as the Origin's
  // scheme's default (the browser talks to the same place the page came from).
  const h = host.toLowerCase();
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(h);
  if (!m) return false;
  const hostName = m[1]!;
  return originHost === `${hostName}:${m[2] ?? (u.port || defaultPort(u.protocol))}`;
}
