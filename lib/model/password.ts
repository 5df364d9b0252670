// Meeting passwords: salted scrypt hashes compared in constant time, and the limiter for failed
// attempts. A password never leaves this module in clear: not in a log, an event or an error.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { ArgumentError } from '../errors.js';

const KEY_LEN = 32;
// N = 2^15, r = 8, p = 1: OWASP's recommended minimum for scrypt (about 32 MiB, tens of ms).
const PARAMS = { N: 32768, r: 8, p: 1 } as const;
const MAXMEM = 64 * 1024 * 1024;

function scrypt(password: string, salt: Buffer, keyLen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, keyLen, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** Checks a clear-text meeting password (TypeError without echoing it). */
export function assertPassword(password: unknown): asserts password is string {
  if (typeof password !== 'string' || password.length < 1 || password.length > 256) {
    throw new ArgumentError('a meeting password must be a string of 1 to 256 characters');
  }
}

/** Hashes a password as `scrypt$N$r$p$<salt base64>$<hash base64>` with a fresh 16-byte salt. */
export async function hashPassword(password: string): Promise<string> {
  assertPassword(password);
  const salt = randomBytes(16);
  const key = await scrypt(password.normalize('NFKC'), salt, KEY_LEN, { ...PARAMS, maxmem: MAXMEM });
  return ['scrypt', PARAMS.N, PARAMS.r, PARAMS.p, salt.toString('base64'), key.toString('base64')].join('$');
}

/** Whether `password` matches `hash` (from hashPassword), compared in constant time. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const parts = hash.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') throw new TypeError('not an scrypt password hash');
  const [, n, r, p, saltB64, keyB64] = parts as [string, string, string, string, string, string];
  const expected = Buffer.from(keyB64, 'base64');
  if (typeof password !== 'string' || password.length > 256) return false;
  const key = await scrypt(password.normalize('NFKC'), Buffer.from(saltB64, 'base64'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: MAXMEM,
  });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * Counts failures per key in a sliding window. `blocked(key)` is true once `max` failures fell
 * within `windowMs`. Bounded memory: stale keys are swept, and past `maxKeys` the oldest go.
 */
export class AttemptLimiter {
  readonly #failures = new Map<string, number[]>();

  constructor(
    readonly max: number,
    readonly windowMs: number,
    readonly maxKeys = 100_000,
  ) {
    if (!Number.isInteger(max) || max < 1) throw new TypeError('AttemptLimiter max must be a positive integer');
    if (!(windowMs > 0)) throw new TypeError('AttemptLimiter windowMs must be positive');
  }

  #recent(key: string, now: number): number[] {
    const list = (this.#failures.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length === 0) this.#failures.delete(key);
    else this.#failures.set(key, list);
    return list;
  }

  /** Whether `key` is past the limit now. */
  blocked(key: string, now = Date.now()): boolean {
    return this.#recent(key, now).length >= this.max;
  }

  /** Records one failure for `key`. */
  fail(key: string, now = Date.now()): void {
    const list = this.#recent(key, now);
    list.push(now);
    this.#failures.set(key, list);
    if (this.#failures.size > this.maxKeys) {
      for (const k of this.#failures.keys()) {
        this.#recent(k, now);
        if (this.#failures.size <= this.maxKeys) break;
      }
      // Still too many live keys: forget the oldest-inserted ones rather than grow without bound.
      for (const k of this.#failures.keys()) {
        if (this.#failures.size <= this.maxKeys) break;
        this.#failures.delete(k);
      }
    }
  }

  /** Forgets every failure of `key`. */
  reset(key: string): void {
    this.#failures.delete(key);
  }
}
