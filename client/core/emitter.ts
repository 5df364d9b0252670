// A typed event emitter that runs in browsers and Node alike (no node:events). A throwing
// listener never breaks the SDK's own state changes: it is caught and reported as `listenererror`.

/** Maps event names to their argument tuples. */
export type EventMap = Record<string, unknown[]>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyListener = (...args: any[]) => void;

/** A small typed emitter: `on`, `once`, `off`, and an `emit` that isolates listeners. */
export class Emitter<E extends EventMap> {
  readonly #listeners = new Map<keyof E, Set<AnyListener>>();

  on<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as AnyListener);
    return this;
  }

  once<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    const wrapped = (...args: E[K]): void => {
      this.off(event, wrapped);
      listener(...args);
    };
    return this.on(event, wrapped);
  }

  off<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#listeners.get(event)?.delete(listener as AnyListener);
    return this;
  }

  /** @internal Calls every listener; a throwing one is reported, never propagated. */
  protected emit<K extends keyof E & string>(event: K, ...args: E[K]): void {
    for (const l of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (l as (...a: E[K]) => void)(...args);
      } catch (error) {
        if (event === 'listenererror') continue;
        const onError = this.#listeners.get('listenererror');
        if (onError?.size) for (const h of [...onError]) (h as (e: string, err: unknown) => void)(event, error);
        // No listener for errors: the console still shows it (a silent loss would hide bugs).
        else console.error(`c4v client: a '${event}' listener threw`, error);
      }
    }
  }
}

/** Resolves with the next emission of `event` (and its arguments). */
export function nextEmit<E extends EventMap, K extends keyof E & string>(
  emitter: Emitter<E>,
  event: K,
  pred: (...args: E[K]) => boolean = () => true,
): Promise<E[K]> {
  return new Promise((resolve) => {
    const on = (...args: E[K]): void => {
      if (!pred(...args)) return;
      emitter.off(event, on);
      resolve(args);
    };
    emitter.on(event, on);
  });
}
