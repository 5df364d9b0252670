import { once, type EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../lib/index.js';

/** Rejects with a message naming `what` if `promise` does not settle within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The next `event` from `emitter`, or a rejection after `ms`. */
export async function nextEvent<T extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, ms = 10_000): Promise<T> {
  return (await within(once(emitter, event), ms, `event '${event}'`)) as T;
}

/** A logger that keeps its JSON lines in memory, for tests that inspect what was logged. */
export function memoryLogger(level = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger({ level, destination }), lines };
}

/** A logger that writes nothing (most tests). */
export function silentLogger(): Logger {
  return createLogger({ level: 'silent' });
}

/**
 * Resolves once `check()` holds, re-checking every few milliseconds (for state that has no event,
 * such as the server noticing a dropped TCP connection); fails after `ms`.
 */
export async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  await within(
    new Promise<void>((resolve) => {
      const tick = (): void => {
        if (check()) resolve();
        else setTimeout(tick, 5).unref();
      };
      tick();
    }),
    ms,
    what,
  );
}

/**
 * Polls `fn` until it yields a value other than undefined or false and returns that value (for
 * state another process changes: a registry view, a Redis key, an HTTP answer); a rejection counts
 * as not yet, re-checked every `everyMs`. No fixed sleep: it returns as soon as the state is there, and
 * fails after `ms`.
 */
export async function poll<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 20_000, everyMs = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
