/** A token bucket: `rate` tokens per second, at most `burst` saved up. */
export class TokenBucket {
  #tokens: number;
  #last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(rate > 0) || !(burst >= 1)) throw new TypeError(`invalid token bucket rate ${rate} / burst ${burst}`);
    this.#tokens = burst;
    this.#last = now();
  }

  /** Takes one token; false when the bucket is empty (the caller refuses the action). */
  take(): boolean {
    const t = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((t - this.#last) / 1000) * this.rate);
    this.#last = t;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Whether the bucket is back to full (so a keyed limiter may forget it). */
  get full(): boolean {
    const t = this.now();
    return this.#tokens + ((t - this.#last) / 1000) * this.rate >= this.burst;
  }
}

/**
 * Token buckets per key (client address), forgotten once full again so that the map stays
 * bounded by the number of recently active keys.
 */
export class KeyedRateLimiter {
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(key: string): boolean {
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size > 10_000) this.sweep();
      b = new TokenBucket(this.rate, this.burst, this.now);
      this.#buckets.set(key, b);
    }
    return b.take();
  }

  /** Drops the buckets that refilled completely. */
  sweep(): void {
    for (const [k, b] of this.#buckets) if (b.full) this.#buckets.delete(k);
  }

  get size(): number {
    return this.#buckets.size;
  }
}
