import { EventEmitter } from 'node:events';

/** Maps event names to their argument tuples, e.g. `{ died: [Error]; close: [] }`. */
export type EventMap = Record<string, unknown[]>;

/**
 * A typed EventEmitter. `safeEmit` is what the library uses: a throwing listener is caught and
 * reported through `listenererror` so that user code can never break the library's own state
 * changes halfway through.
 */
export class TypedEmitter<E extends EventMap> extends EventEmitter {
  constructor() {
    super();
    this.setMaxListeners(Infinity);
  }

  override on<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  override once<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    return super.once(event, listener as (...args: unknown[]) => void);
  }

  override off<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  override emit<K extends keyof E & string>(event: K, ...args: E[K]): boolean {
    return super.emit(event, ...args);
  }

  /** Emits, catching listener errors; returns whether there were listeners. */
  safeEmit<K extends keyof E & string>(event: K, ...args: E[K]): boolean {
    const listeners = this.rawListeners(event);
    for (const listener of listeners) {
      try {
        (listener as (...a: unknown[]) => void).apply(this, args);
      } catch (error) {
        if (event !== 'listenererror' && this.listenerCount('listenererror') > 0) {
          super.emit('listenererror', event, error);
        }
      }
    }
    // once() wrappers remove themselves when called through apply; rawListeners returns them.
    return listeners.length > 0;
  }
}
