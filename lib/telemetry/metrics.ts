import { Registry, collectDefaultMetrics } from 'prom-client';

export { Registry };

export interface MetricsOptions {
  /** Also collect Node's process metrics (CPU, heap, event loop lag). Default true. */
  processMetrics?: boolean;
  /** Prefix for every metric name; default 'c4v_'. */
  prefix?: string;
}

/**
 * Creates the process's metrics registry. Like the logger it is created once at the edge and
 * passed down; the library never touches prom-client's global registry, so two media cores in one
 * process (as in the tests) keep separate figures.
 */
export function createMetricsRegistry(options: MetricsOptions = {}): Registry {
  const registry = new Registry();
  if (options.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry, prefix: options.prefix ?? 'c4v_' });
  }
  return registry;
}
