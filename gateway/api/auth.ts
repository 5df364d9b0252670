// Authentication of the operator API: every request carries `Authorization: Bearer <JWT>`, a
// short-lived JWT that the caller signs itself with its API key's secret (HS256, `kid` = key id,
// `aud` = API_AUDIENCE). The secret never travels; a captured token is good for its few minutes
// only. Verification is jose's (the same library as the join tokens).
import { randomBytes } from 'node:crypto';
import { errors as joseErrors, jwtVerify, SignJWT, type JWTHeaderParameters } from 'jose';
import { C4vError, ProtocolError } from '../../lib/errors.js';

/** The `aud` claim of API request tokens. */
export const API_AUDIENCE = 'c4v-media/api/v1';
/** The longest lifetime (exp - iat) the server accepts for one request token, in seconds. */
export const MAX_REQUEST_TOKEN_SECONDS = 600;

/** Who is calling: an admin key (every account and meeting) or a key scoped to one meeting. */
export interface ApiPrincipal {
  keyId: string;
  /** Set for a meeting-scoped key: the one meeting it may act on. */
  meetingId?: string;
}

/** What the server knows of a key: its secret and, for a scoped key, its meeting. */
export interface ApiKeyRecord {
  secret: string;
  meetingId?: string;
}

/** A fresh key secret (32 random bytes, base64url). */
export function randomApiSecret(): string {
  return randomBytes(32).toString('base64url');
}

const encoder = new TextEncoder();

/**
 * Signs a request token for `keyId` with its secret: what a client (the CLI, ApiClient) puts in
 * the Authorization header. Valid for `ttlSeconds` (default 120).
 */
export async function signApiRequest(keyId: string, secret: string, ttlSeconds = 120): Promise<string> {
  if (!(ttlSeconds > 0 && ttlSeconds <= MAX_REQUEST_TOKEN_SECONDS)) throw new TypeError(`ttlSeconds must be in 1..${MAX_REQUEST_TOKEN_SECONDS}`);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: keyId, typ: 'JWT' })
    .setIssuer(keyId)
    .setAudience(API_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(`${Math.floor(ttlSeconds)}s`)
    .sign(encoder.encode(secret));
}

/**
 * Verifies an Authorization header value. Throws ProtocolError INVALID_TOKEN (missing, malformed,
 * unknown key, bad signature, wrong audience, too long a lifetime) or TOKEN_EXPIRED; the reason
 * never repeats the token.
 */
export async function verifyApiRequest(authorization: string | undefined, lookup: (keyId: string) => ApiKeyRecord | undefined | Promise<ApiKeyRecord | undefined>): Promise<ApiPrincipal> {
  const m = /^Bearer ([\w-]+\.[\w-]+\.[\w-]+)$/.exec(authorization ?? '');
  if (!m) throw new ProtocolError('INVALID_TOKEN', 'missing or malformed Authorization: Bearer <JWT signed with an API key>');
  let keyId = '';
  let record: ApiKeyRecord | undefined;
  try {
    const { payload } = await jwtVerify(
      m[1]!,
      // The lookup may read a shared store (cluster mode: Redis), hence asynchronous.
      async (header: JWTHeaderParameters) => {
        keyId = typeof header.kid === 'string' ? header.kid : '';
        record = keyId ? await lookup(keyId) : undefined;
        if (!record) throw new ProtocolError('INVALID_TOKEN', 'unknown API key');
        return encoder.encode(record.secret);
      },
      { algorithms: ['HS256'], audience: API_AUDIENCE, requiredClaims: ['iat', 'exp'], clockTolerance: 30 },
    );
    // A long-lived request token would be a password in disguise: refuse it.
    if (Number(payload.exp) - Number(payload.iat) > MAX_REQUEST_TOKEN_SECONDS) {
      throw new ProtocolError('INVALID_TOKEN', `request token lives longer than ${MAX_REQUEST_TOKEN_SECONDS} s`);
    }
    if (payload.iss !== undefined && payload.iss !== keyId) throw new ProtocolError('INVALID_TOKEN', 'request token issuer is not its key');
  } catch (error) {
    // ProtocolError, and a store that could not be read (CLUSTER_UNAVAILABLE) is no bad token.
    if (error instanceof C4vError) throw error;
    if (error instanceof joseErrors.JWTExpired) throw new ProtocolError('TOKEN_EXPIRED', 'request token has expired');
    throw new ProtocolError('INVALID_TOKEN', 'request token does not verify');
  }
  return record!.meetingId !== undefined ? { keyId, meetingId: record!.meetingId } : { keyId };
}
