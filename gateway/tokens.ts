import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ProtocolError } from '../lib/errors.js';

/** What a join token asserts about its bearer. */
export interface JoinTokenClaims {
  /** Stable identity (the meeting server's user id); bans and the host check apply to it. */
  identity: string;
  /** 'host' lets the meeting's host identity in as host; anything else joins as participant. */
  role: 'host' | 'participant';
  /** The one meeting the token is valid for. */
  meetingId: string;
  /** Expiry, seconds since the epoch. */
  expiresAt: number;
  /** Suggested display name (personal data: never logged unless the operator allows it). */
  displayName?: string;
}

const PREFIX = 'c4v1';
// Identities and meeting ids end up in logs, metrics-free audit entries and the control plane:
// keep them short and printable.
const ID_RE = /^[\w.@:+-]{1,128}$/;

/**
 * Issues and verifies join tokens: `c4v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`.
 * The meeting server holds the secret; the gateway verifies with the same secret. Verification
 * compares the MAC in constant time and checks expiry, so a token cannot be forged, altered or
 * reused after it expired.
 */
export class JoinTokens {
  readonly #secret: Buffer;
  readonly #now: () => number;

  /**
   * @param secret at least 32 bytes of key material (a string is taken as UTF-8)
   * @param now clock in milliseconds (tests)
   */
  constructor(secret: string | Buffer, now: () => number = Date.now) {
    const key = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret;
    if (key.length < 32) throw new TypeError('join token secret must be at least 32 bytes');
    this.#secret = key;
    this.#now = now;
  }

  /** A fresh random secret, for a demo server started without one. */
  static randomSecret(): string {
    return randomBytes(32).toString('base64url');
  }

  /** Issues a token valid for `ttlSeconds` (default one hour). */
  issue(claims: Omit<JoinTokenClaims, 'expiresAt'>, ttlSeconds = 3600): string {
    if (!ID_RE.test(claims.identity)) throw new TypeError(`invalid identity ${JSON.stringify(claims.identity)}`);
    if (!ID_RE.test(claims.meetingId)) throw new TypeError(`invalid meeting id ${JSON.stringify(claims.meetingId)}`);
    if (!(ttlSeconds > 0)) throw new TypeError(`invalid ttlSeconds ${ttlSeconds}`);
    const body: Record<string, unknown> = {
      sub: claims.identity,
      role: claims.role,
      mtg: claims.meetingId,
      exp: Math.floor(this.#now() / 1000) + Math.floor(ttlSeconds),
    };
    if (claims.displayName !== undefined) body.name = claims.displayName;
    const payload = Buffer.from(JSON.stringify(body)).toString('base64url');
    return `${PREFIX}.${payload}.${this.#mac(payload)}`;
  }

  /**
   * Verifies a token and returns its claims. Throws ProtocolError INVALID_TOKEN (malformed, bad
   * signature, bad claims) or TOKEN_EXPIRED. Reasons never repeat the token.
   */
  verify(token: string): JoinTokenClaims {
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== PREFIX) throw new ProtocolError('INVALID_TOKEN', 'join token is malformed');
    const [, payload, mac] = parts as [string, string, string];
    const expected = Buffer.from(this.#mac(payload), 'base64url');
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ProtocolError('INVALID_TOKEN', 'join token signature does not verify');
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new ProtocolError('INVALID_TOKEN', 'join token payload is not JSON');
    }
    const { sub, role, mtg, exp, name } = body;
    if (
      typeof sub !== 'string' || !ID_RE.test(sub) ||
      typeof mtg !== 'string' || !ID_RE.test(mtg) ||
      (role !== 'host' && role !== 'participant') ||
      typeof exp !== 'number' ||
      (name !== undefined && typeof name !== 'string')
    ) {
      throw new ProtocolError('INVALID_TOKEN', 'join token claims are incomplete');
    }
    if (exp * 1000 <= this.#now()) throw new ProtocolError('TOKEN_EXPIRED', 'join token has expired');
    return { identity: sub, role, meetingId: mtg, expiresAt: exp, ...(name !== undefined ? { displayName: name } : {}) };
  }

  #mac(payload: string): string {
    return createHmac('sha256', this.#secret).update(`${PREFIX}.${payload}`).digest('base64url');
  }
}
