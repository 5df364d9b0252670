// A small typed event emitter for the browser-side SDK code (no node:events). Same contract as
// lib/events.ts: a throwing listener is caught and reported as `listenererror`, so application
// code can never break the E2EE state halfway through a key change.

/** Maps event names to their argument tuples. */
export type EventMap = Record<string, unknown[]>;

type Listener = (...args: unknown[]) => void;

/** A typed emitter with `on` / `off` / `once` and a listener-safe `emit`. */
export class Emitter<E extends EventMap> {
  readonly #listeners = new Map<keyof E, Set<Listener>>();

  /** Adds a listener. */
  on<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as unknown as Listener);
    return this;
  }

  /** Removes a listener. */
  off<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#listeners.get(event)?.delete(listener as unknown as Listener);
    return this;
  }

  /** Adds a listener that runs once. */
  once<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    const wrapper = (...args: E[K]): void => {
      this.off(event, wrapper);
      listener(...args);
    };
    return this.on(event, wrapper);
  }

  /** @internal Emits to every listener; one that throws is reported as `listenererror`. */
  protected emit<K extends keyof E & string>(event: K, ...args: E[K]): void {
    for (const l of [...(this.#listeners.get(event) ?? [])]) {
      try {
        l(...args);
      } catch (error) {
        if (event !== 'listenererror') this.emit('listenererror' as K, ...([event, error] as unknown as E[K]));
      }
    }
  }
}
