// Join tokens are standard JWTs (compact JWS), verified with jose, so that any backend that
// already mints JWTs (LiveKit's, Jitsi's, an identity provider's) can mint ours. This module is the
// small API that the gateway, the demo server, the CLI and the operator API share: mint + verify.
import { createPrivateKey, createPublicKey, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { readFileSync } from 'node:fs';
import { ProtocolError, SetupError } from '../lib/errors.js';
import { checkDisplayName, checkSecret } from '../lib/rules.js';

/** The roles a join token can carry. */
export type JoinRole = 'host' | 'cohost' | 'participant';

/** What a join token asserts about its bearer (the verified claims). */
export interface JoinTokenClaims {
  /** `sub`: stable identity (the meeting server's user id); bans and the host check apply to it. */
  identity: string;
  /** `mid`: the one meeting the token is valid for. */
  meetingId: string;
  /**
   * `role`: 'host' lets the meeting's host identity in as host; 'cohost' and 'participant' join as
   * participants (a co-host identity the meeting already knows keeps its role).
   */
  role: JoinRole;
  /** `name`: suggested display name (personal data: never logged unless the operator allows it). */
  displayName?: string;
  /** `exp`: expiry, seconds since the epoch. */
  expiresAt: number;
  /** `nbf`: not valid before, seconds since the epoch (when the token has it). */
  notBefore?: number;
  /** `iat`: issued at, seconds since the epoch (when the token has it). */
  issuedAt?: number;
}

/** The JWS algorithms accepted: one shared-secret and two public-key ones. */
export type JoinTokenAlgorithm = 'HS256' | 'EdDSA' | 'ES256';

/**
 * One key. HS256 takes a shared `secret` (>= 32 bytes, lib/rules.ts); EdDSA (Ed25519) and ES256
 * (P-256) take a `publicKey` (PEM, SPKI) to verify and, only where tokens are minted, a
 * `privateKey` (PEM, PKCS#8). A media server that only verifies holds no private key.
 */
export interface JoinTokenKey {
  /** Key id, the JWS `kid` header: required when more than one key is configured. */
  kid?: string;
  alg: JoinTokenAlgorithm;
  secret?: string | Uint8Array;
  publicKey?: string | KeyObject;
  privateKey?: string | KeyObject;
}

export interface JoinTokenOptions {
  /**
   * The keys live now: more than one during a rotation (the old one still verifies while the new
   * one signs). Each must have a distinct `kid` when there are several.
   */
  keys: JoinTokenKey[];
  /** The kid of the key `mint()` signs with; default the first key that can sign. */
  signingKid?: string;
  /** Clock-skew tolerance for `exp`, `nbf` and `iat`, in seconds; default 30 (DEFAULT_CLOCK_TOLERANCE_S). */
  clockToleranceSeconds?: number;
  /** Clock in milliseconds (tests). */
  now?: () => number;
}

/** Mint options. */
export interface MintOptions {
  /** Lifetime in seconds; default 3600. */
  ttlSeconds?: number;
  /** Valid from (seconds since the epoch); default now. */
  notBefore?: number;
}

/** The clock skew tolerated between the minting backend and this server, in seconds. */
export const DEFAULT_CLOCK_TOLERANCE_S = 30;

// Identities and meeting ids end up in logs, audit entries and the control plane: keep them short
// and printable.
const ID_RE = /^[\w.@:+-]{1,128}$/;
const ROLES: readonly JoinRole[] = ['host', 'cohost', 'participant'];
const ALGS: readonly JoinTokenAlgorithm[] = ['HS256', 'EdDSA', 'ES256'];

interface LoadedKey {
  kid: string | undefined;
  alg: JoinTokenAlgorithm;
  verifyKey: KeyObject;
  signKey: KeyObject | undefined;
}

function loadKey(k: JoinTokenKey, i: number): LoadedKey {
  const what = `join token key ${k.kid ?? `#${i + 1}`}`;
  if (!ALGS.includes(k.alg)) throw new TypeError(`${what}: alg must be one of ${ALGS.join(', ')}`);
  if (k.kid !== undefined && !/^[\w.:-]{1,64}$/.test(k.kid)) throw new TypeError(`${what}: kid must be 1 to 64 of letters, digits, . : - _`);
  if (k.alg === 'HS256') {
    checkSecret(k.secret, `${what}: secret`);
    const key = createSecretKey(typeof k.secret === 'string' ? Buffer.from(k.secret, 'utf8') : Buffer.from(k.secret!));
    return { kid: k.kid, alg: k.alg, verifyKey: key, signKey: key };
  }
  const expected = k.alg === 'EdDSA' ? 'ed25519' : 'ec';
  const signKey = k.privateKey === undefined ? undefined : typeof k.privateKey === 'string' ? createPrivateKey(k.privateKey) : k.privateKey;
  const pub = k.publicKey ?? signKey;
  if (pub === undefined) throw new TypeError(`${what}: ${k.alg} needs a publicKey (PEM)`);
  const verifyKey = typeof pub === 'string' ? createPublicKey(pub) : pub.type === 'private' ? createPublicKey(pub) : pub;
  for (const key of [verifyKey, signKey]) {
    if (!key) continue;
    if (key.asymmetricKeyType !== expected) throw new TypeError(`${what}: ${k.alg} needs an ${expected} key, got ${key.asymmetricKeyType ?? key.type}`);
    if (k.alg === 'ES256' && key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new TypeError(`${what}: ES256 needs a P-256 key`);
  }
  return { kid: k.kid, alg: k.alg, verifyKey, signKey };
}

/**
 * Mints and verifies join tokens: JWTs with the claims `sub` (identity), `mid` (meeting id),
 * `role` ("host" | "cohost" | "participant"), `name` (display name, optional), `exp`, `nbf`, `iat`,
 * signed HS256 (shared secret), EdDSA (Ed25519) or ES256 (P-256) with a `kid` header.
 *
 * Verification accepts only the configured keys' algorithms (never `none`, never an HMAC made
 * with a public key), picks the key by `kid`, allows DEFAULT_CLOCK_TOLERANCE_S of clock skew, and
 * fails with ProtocolError INVALID_TOKEN (malformed, unknown key, bad signature, bad claims, not
 * yet valid) or TOKEN_EXPIRED. Reasons never repeat the token.
 *
 * `new JoinTokens(secret)` is the one-key HS256 form.
 */
export class JoinTokens {
  readonly #keys: LoadedKey[];
  readonly #signing: LoadedKey | undefined;
  readonly #tolerance: number;
  readonly #now: () => number;

  constructor(options: JoinTokenOptions | string | Uint8Array, now?: () => number) {
    const o: JoinTokenOptions =
      typeof options === 'string' || options instanceof Uint8Array ? { keys: [{ alg: 'HS256', secret: options }], ...(now ? { now } : {}) } : options;
    if (!Array.isArray(o.keys) || o.keys.length === 0) throw new TypeError('join tokens need at least one key');
    this.#keys = o.keys.map(loadKey);
    if (this.#keys.length > 1) {
      const kids = this.#keys.map((k) => k.kid);
      if (kids.some((k) => k === undefined) || new Set(kids).size !== kids.length) {
        throw new TypeError('with more than one join token key, every key needs its own kid');
      }
    }
    this.#signing = o.signingKid !== undefined ? this.#keys.find((k) => k.kid === o.signingKid) : this.#keys.find((k) => k.signKey);
    if (o.signingKid !== undefined && !this.#signing?.signKey) throw new TypeError(`signing key ${o.signingKid} is not configured with a secret or private key`);
    const tolerance = o.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_S;
    if (!(Number.isInteger(tolerance) && tolerance >= 0 && tolerance <= 600)) throw new TypeError('clockToleranceSeconds must be an integer from 0 to 600');
    this.#tolerance = tolerance;
    this.#now = o.now ?? now ?? Date.now;
  }

  /** A fresh random HS256 secret (32 bytes, base64url), for a demo server started without one. */
  static randomSecret(): string {
    return randomBytes(32).toString('base64url');
  }

  /** Whether this instance can mint (it holds a secret or a private key). */
  get canMint(): boolean {
    return this.#signing?.signKey !== undefined;
  }

  /** The clock-skew tolerance in seconds. */
  get clockToleranceSeconds(): number {
    return this.#tolerance;
  }

  /**
   * Mints a token with the signing key. Throws TypeError for claims that verify() would refuse
   * (bad identity or meeting id, unknown role, a display name against the rule).
   */
  async mint(claims: Pick<JoinTokenClaims, 'identity' | 'meetingId' | 'role' | 'displayName'>, options: MintOptions = {}): Promise<string> {
    const key = this.#signing;
    if (!key?.signKey) throw new TypeError('no signing key: this server only verifies join tokens');
    if (!ID_RE.test(claims.identity)) throw new TypeError('invalid identity: 1 to 128 of letters, digits, . @ : + - _');
    if (!ID_RE.test(claims.meetingId)) throw new TypeError('invalid meeting id: 1 to 128 of letters, digits, . @ : + - _');
    if (!ROLES.includes(claims.role)) throw new TypeError(`role must be one of ${ROLES.join(', ')}`);
    const ttl = options.ttlSeconds ?? 3600;
    if (!(Number.isInteger(ttl) && ttl > 0)) throw new TypeError(`invalid ttlSeconds ${ttl}`);
    const now = Math.floor(this.#now() / 1000);
    const nbf = options.notBefore ?? now;
    const payload: JWTPayload = { mid: claims.meetingId, role: claims.role };
    if (claims.displayName !== undefined) payload.name = checkDisplayName(claims.displayName);
    return new SignJWT(payload)
      .setProtectedHeader({ alg: key.alg, typ: 'JWT', ...(key.kid !== undefined ? { kid: key.kid } : {}) })
      .setSubject(claims.identity)
      .setIssuedAt(now)
      .setNotBefore(nbf)
      .setExpirationTime(Math.max(nbf, now) + ttl)
      .sign(key.signKey);
  }

  /** Verifies a token and returns its claims (see the class comment for the errors). */
  async verify(token: string): Promise<JoinTokenClaims> {
    if (typeof token !== 'string' || token.length > 8192) throw new ProtocolError('INVALID_TOKEN', 'join token is malformed');
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new ProtocolError('INVALID_TOKEN', 'join token is not a JWT');
    }
    const key = this.#keyFor(header.kid);
    if (!key) throw new ProtocolError('INVALID_TOKEN', 'join token is signed with an unknown key');
    if (header.alg !== key.alg) throw new ProtocolError('INVALID_TOKEN', 'join token uses an algorithm not configured for its key');
    const nowS = Math.floor(this.#now() / 1000);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, key.verifyKey, {
        algorithms: [key.alg],
        clockTolerance: this.#tolerance,
        currentDate: new Date(nowS * 1000),
        requiredClaims: ['sub', 'exp'],
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new ProtocolError('TOKEN_EXPIRED', 'join token has expired');
      if (error instanceof joseErrors.JWTClaimValidationFailed && error.claim === 'nbf') {
        throw new ProtocolError('INVALID_TOKEN', 'join token is not valid yet');
      }
      if (error instanceof joseErrors.JOSEError) throw new ProtocolError('INVALID_TOKEN', `join token does not verify (${error.code})`);
      throw error;
    }
    const { sub, mid, role, name, exp, nbf, iat } = payload as JWTPayload & { mid?: unknown; role?: unknown; name?: unknown };
    if (typeof sub !== 'string' || !ID_RE.test(sub) || typeof mid !== 'string' || !ID_RE.test(mid) || !ROLES.includes(role as JoinRole)) {
      throw new ProtocolError('INVALID_TOKEN', 'join token claims are incomplete (sub, mid, role)');
    }
    if (typeof iat === 'number' && iat > nowS + this.#tolerance) throw new ProtocolError('INVALID_TOKEN', 'join token is issued in the future');
    let displayName: string | undefined;
    if (name !== undefined) {
      try {
        displayName = checkDisplayName(name);
      } catch {
        throw new ProtocolError('INVALID_TOKEN', 'join token name claim breaks the display-name rule');
      }
    }
    return {
      identity: sub,
      meetingId: mid,
      role: role as JoinRole,
      expiresAt: exp!,
      ...(displayName !== undefined ? { displayName } : {}),
      ...(typeof nbf === 'number' ? { notBefore: nbf } : {}),
      ...(typeof iat === 'number' ? { issuedAt: iat } : {}),
    };
  }

  #keyFor(kid: string | undefined): LoadedKey | undefined {
    if (kid !== undefined) return this.#keys.find((k) => k.kid === kid);
    // A token without kid is accepted only where there is no choice to make.
    return this.#keys.length === 1 ? this.#keys[0] : undefined;
  }
}

/** Creates the join-token minter/verifier (the same as `new JoinTokens(options)`). */
export function createJoinTokens(options: JoinTokenOptions | string | Uint8Array): JoinTokens {
  return new JoinTokens(options);
}

/** The `tokens:` section of the serve configuration (gateway/config.ts), as far as keys go. */
export interface JoinTokenConfig {
  secret?: string;
  clockToleranceSeconds?: number;
  keys?: Array<{ kid?: string; alg: JoinTokenAlgorithm; secret?: string; publicKeyFile?: string; privateKeyFile?: string }>;
  signingKid?: string;
}

/**
 * Builds JoinTokens from the configuration: the `keys` (PEM files read here), plus `secret` as an
 * HS256 key (kid "secret" when there are keys too). With neither, a random secret (a demo server
 * whose tokens only it can mint). Throws SetupError CONFIG_INVALID for unreadable or wrong keys.
 */
export function joinTokensFromConfig(config: JoinTokenConfig): JoinTokens {
  const keys: JoinTokenKey[] = [];
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      throw new SetupError('CONFIG_INVALID', `tokens.keys: ${what}: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  for (const k of config.keys ?? []) {
    const key: JoinTokenKey = { alg: k.alg, ...(k.kid !== undefined ? { kid: k.kid } : {}) };
    if (k.secret !== undefined) key.secret = k.secret;
    if (k.publicKeyFile) key.publicKey = read(k.publicKeyFile, 'publicKeyFile');
    if (k.privateKeyFile) key.privateKey = read(k.privateKeyFile, 'privateKeyFile');
    keys.push(key);
  }
  if (config.secret) keys.push({ alg: 'HS256', secret: config.secret, ...(keys.length ? { kid: 'secret' } : {}) });
  if (keys.length === 0) keys.push({ alg: 'HS256', secret: JoinTokens.randomSecret() });
  try {
    return new JoinTokens({
      keys,
      ...(config.signingKid !== undefined ? { signingKid: config.signingKid } : {}),
      ...(config.clockToleranceSeconds !== undefined ? { clockToleranceSeconds: config.clockToleranceSeconds } : {}),
    });
  } catch (error) {
    if (error instanceof TypeError || (error instanceof Error && 'code' in error)) {
      throw new SetupError('CONFIG_INVALID', `tokens: ${(error as Error).message}`);
    }
    throw error;
  }
}
