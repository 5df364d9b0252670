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
 * Counts failures per key in a sliding window. An attempt is counted *before* the password is
 * checked: `begin(key)` reserves one of the `max` slots (failures in the window plus attempts in
 * flight) or refuses, and `end(key, failed)` turns the reservation into a failure or frees it. So
 * however many attempts arrive at once, at most `max` are ever checked per window.
 * Bounded memory: stale keys are swept, and past `maxKeys` the oldest go.
 */
export class AttemptLimiter {
  readonly #failures = new Map<string, number[]>();
  readonly #inFlight = new Map<string, number>();

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

  /** Failures of `key` within the window. */
  failures(key: string, now = Date.now()): number {
    return this.#recent(key, now).length;
  }

  /** Whether `key` is past the limit now (failures plus attempts in flight). */
  blocked(key: string, now = Date.now()): boolean {
    return this.#recent(key, now).length + (this.#inFlight.get(key) ?? 0) >= this.max;
  }

  /** Reserves an attempt for `key`: false (nothing reserved) when it is past the limit. */
  begin(key: string, now = Date.now()): boolean {
    if (this.blocked(key, now)) return false;
    this.#inFlight.set(key, (this.#inFlight.get(key) ?? 0) + 1);
    return true;
  }

  /** Ends a reserved attempt: a failure is recorded, a success (or no check at all) frees the slot. */
  end(key: string, failed: boolean, now = Date.now()): void {
    const n = (this.#inFlight.get(key) ?? 1) - 1;
    if (n <= 0) this.#inFlight.delete(key);
    else this.#inFlight.set(key, n);
    if (failed) this.fail(key, now);
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

/**
 * The guests' budget of one meeting: `max` attempts per window like AttemptLimiter, and past it
 * exponential back-off instead of a hard lock: one more attempt after `baseMs`, then after twice
 * that, ... up to `maxDelayMs`, one at a time. A flood slows guessing to a trickle without closing
 * the meeting for the whole window, and the budget returns as old failures leave the window.
 */
export class BackoffLimiter {
  readonly #limiter: AttemptLimiter;
  #lastFailure = 0;
  #inFlight = 0;

  constructor(
    readonly max: number,
    readonly windowMs: number,
    readonly baseMs = 1000,
    readonly maxDelayMs = 5 * 60_000,
  ) {
    this.#limiter = new AttemptLimiter(max, windowMs, 1);
    if (!(baseMs > 0) || !(maxDelayMs >= baseMs)) throw new TypeError('BackoffLimiter needs 0 < baseMs <= maxDelayMs');
  }

  /** Milliseconds until the next attempt may begin (0 = now). */
  retryAfterMs(now = Date.now()): number {
    const failures = this.#limiter.failures('m', now);
    if (failures + this.#inFlight < this.max) return 0;
    if (this.#inFlight > 0) return this.baseMs;
    const delay = Math.min(this.maxDelayMs, this.baseMs * 2 ** Math.max(0, failures - this.max));
    return Math.max(0, this.#lastFailure + delay - now);
  }

  /** Reserves an attempt; false when over budget and still backing off. */
  begin(now = Date.now()): boolean {
    if (this.retryAfterMs(now) > 0) return false;
    this.#inFlight++;
    return true;
  }

  end(failed: boolean, now = Date.now()): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (failed) {
      this.#limiter.fail('m', now);
      this.#lastFailure = now;
    }
  }
}

/**
 * Bounds how many password hashes are computed at once (scrypt needs 32 MiB and tens of ms of a
 * libuv thread each): `concurrency` run, up to `maxQueued` wait, beyond that `run()` refuses with
 * `busy` so that a flood cannot queue without bound or starve the thread pool that the rest of
 * the process (file system, DNS) shares.
 */
export class ConcurrencyGate {
  #running = 0;
  readonly #queue: Array<() => void> = [];

  constructor(
    readonly concurrency: number,
    readonly maxQueued: number,
  ) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError('concurrency must be a positive integer');
    if (!Number.isInteger(maxQueued) || maxQueued < 0) throw new TypeError('maxQueued must be an integer >= 0');
  }

  /** Hashes computing now / waiting. */
  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Runs `fn` when a slot is free; resolves 'busy' without running it when the queue is full. */
  async run<T>(fn: () => Promise<T>): Promise<T | 'busy'> {
    if (this.#running >= this.concurrency) {
      if (this.#queue.length >= this.maxQueued) return 'busy';
      await new Promise<void>((resolve) => this.#queue.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await fn();
    } finally {
      const next = this.#queue.shift();
      // The slot passes straight to the next waiter (running stays the same).
      if (next) next();
      else this.#running--;
    }
  }
}
