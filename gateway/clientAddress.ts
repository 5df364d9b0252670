// The client's address behind reverse proxies. Every per-address limit, the password limiter and
// the IP address exported to the control plane use the address this module returns, so it must
// never believe a header that the client itself could have written.
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { ArgumentError } from '../lib/errors.js';

/** Which header a trusted proxy writes the client's address into. */
export type ForwardedHeader = 'x-forwarded-for' | 'forwarded';

/** Strips an IPv4-mapped IPv6 prefix (`::ffff:10.0.0.1`) and IPv6 zone ids, lowercases. */
export function normalizeIp(ip: string): string {
  let a = ip.trim().toLowerCase();
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7);
  return a;
}

/**
 * A set of trusted proxy networks in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`; a bare address
 * is a /32 or /128). Throws ArgumentError naming a bad entry.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly cidrs: readonly string[];

  constructor(cidrs: readonly string[] = []) {
    for (const raw of cidrs) {
      const [net, bits, extra] = String(raw).trim().split('/');
      const family = isIP(normalizeIp(net ?? ''));
      const max = family === 4 ? 32 : 128;
      const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
      if (family === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
        throw new ArgumentError(`trusted proxy ${JSON.stringify(raw)} is not an address or CIDR network (like 10.0.0.0/8)`);
      }
      this.#list.addSubnet(normalizeIp(net!), prefix, family === 4 ? 'ipv4' : 'ipv6');
    }
    this.cidrs = Object.freeze([...cidrs]);
  }

  /** Whether `ip` (a numeric address) is inside one of the trusted networks. */
  trusts(ip: string): boolean {
    const a = normalizeIp(ip);
    const family = isIP(a);
    if (family === 0 || this.cidrs.length === 0) return false;
    return this.#list.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** The addresses listed in X-Forwarded-For headers, leftmost (the original client) first. */
function xForwardedFor(values: string | string[] | undefined): string[] {
  if (values === undefined) return [];
  const joined = Array.isArray(values) ? values.join(',') : values;
  return joined.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

/** The `for=` values of RFC 7239 Forwarded headers, first hop first, without quotes, brackets or ports. */
function forwardedFor(values: string | string[] | undefined): string[] {
  if (values === undefined) return [];
  const joined = Array.isArray(values) ? values.join(',') : values;
  const out: string[] = [];
  for (const element of joined.split(',')) {
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0 || pair.slice(0, eq).trim().toLowerCase() !== 'for') continue;
      let v = pair.slice(eq + 1).trim();
      if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
      if (v.startsWith('[')) v = v.slice(1, v.indexOf(']') > 0 ? v.indexOf(']') : undefined); // [2001:db8::1]:4711
      else if (isIP(v) === 0 && /^[\d.]+:\d+$/.test(v)) v = v.slice(0, v.lastIndexOf(':')); // 192.0.2.1:4711
      out.push(v);
    }
  }
  return out;
}

/** Why a forwarded address could not be determined (the upgrade is refused with 400). */
export class ForwardedHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForwardedHeaderError';
  }
}

/**
 * The client address of a request. Without trusted proxies, or when the TCP peer is not one, it
 * is the TCP peer's address and every forwarding header is ignored (a client cannot forge its
 * address). When the peer is a trusted proxy, the chain in `header` is walked from the right
 * (the hop nearest to us) past every trusted proxy; the first untrusted address is the client.
 * When every hop is trusted, the leftmost is. A hop that is not an IP address (`unknown`, an
 * obfuscated identifier, garbage) where an address is needed throws ForwardedHeaderError.
 */
export function clientAddress(req: IncomingMessage, trusted: TrustedProxies, header: ForwardedHeader = 'x-forwarded-for'): string {
  const peer = normalizeIp(req.socket.remoteAddress ?? '');
  if (!peer || !trusted.trusts(peer)) return peer || 'unknown';
  const chain = header === 'forwarded' ? forwardedFor(req.headers.forwarded) : xForwardedFor(req.headers['x-forwarded-for']);
  let client = peer;
  for (let i = chain.length - 1; i >= 0; i--) {
    const hop = normalizeIp(chain[i]!);
    if (isIP(hop) === 0) throw new ForwardedHeaderError(`a trusted proxy forwarded a hop that is not an IP address (${header})`);
    client = hop;
    if (!trusted.trusts(hop)) break;
  }
  return client;
}
