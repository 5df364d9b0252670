import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { GatewayCore } from './model.js';

/**
 * The gateway's metrics, on the registry passed in (never the global one). Label values are
 * bounded: request types (the proto's oneof names), error codes (lib/errors.ts), join outcomes
 * (participant states or error codes), media kinds, close reasons, live worker ids.
 */
export class GatewayMetrics {
  readonly joins: Counter<'outcome'>;
  readonly messages: Counter<'type'>;
  readonly errors: Counter<'code'>;
  /** Issue 10: requests that failed with an unexpected error (a bug): answered INTERNAL, logged at error. */
  readonly internalErrors: Counter<'type'>;
  /** Issue 10: WebSocket upgrades refused, by cause (origin, rate, forwarded header). */
  readonly upgradesRefused: Counter<'cause'>;
  readonly closes: Counter<'reason'>;
  readonly producers: Gauge<'kind'>;
  readonly consumers: Gauge<'kind'>;
  readonly producersCreated: Counter<'kind'>;
  readonly consumersCreated: Counter<'kind'>;
  readonly connections: Gauge;
  readonly joinToMedia: Histogram;

  constructor(registry: Registry, core: GatewayCore, prefix = 'c4v_') {
    const registers = [registry];
    const workerUsage = usageOnce(core);
    // Gauges over the model are computed at scrape time from the core itself, so they can never
    // drift from the truth (a missed event cannot leave a participant counted forever).
    new Gauge({
      name: `${prefix}meetings_active`,
      help: 'Meetings that exist and have not ended',
      registers,
      collect() {
        this.set(core.meetings.filter((m) => !m.ended).length);
      },
    });
    new Gauge({
      name: `${prefix}participants_active`,
      help: 'Participants admitted into a meeting',
      registers,
      collect() {
        this.set(core.meetings.reduce((n, m) => n + (m.ended ? 0 : m.participants.length), 0));
      },
    });
    new Gauge({
      name: `${prefix}participants_waiting`,
      help: 'Participants waiting for the host or in a waiting room',
      registers,
      collect() {
        this.set(core.meetings.reduce((n, m) => n + (m.ended ? 0 : m.waiting.length), 0));
      },
    });
    new Gauge({
      name: `${prefix}worker_cpu_seconds`,
      help: 'CPU time (user + system) used by each live mediasoup worker',
      labelNames: ['worker'],
      registers,
      async collect() {
        this.reset();
        for (const w of await workerUsage()) {
          this.set({ worker: String(w.id) }, (w.usage.ru_utime + w.usage.ru_stime) / 1000);
        }
      },
    });
    new Gauge({
      name: `${prefix}worker_memory_max_rss_bytes`,
      help: 'Peak resident memory of each live mediasoup worker',
      labelNames: ['worker'],
      registers,
      async collect() {
        this.reset();
        for (const w of await workerUsage()) this.set({ worker: String(w.id) }, w.usage.ru_maxrss * 1024);
      },
    });
    this.joins = new Counter({
      name: `${prefix}joins_total`,
      help: 'Join requests by outcome: admitted, waiting-room, waiting-for-host, or the refusal code',
      labelNames: ['outcome'],
      registers,
    });
    this.messages = new Counter({
      name: `${prefix}gateway_messages_total`,
      help: 'Signalling requests received, by type (invalid = did not decode)',
      labelNames: ['type'],
      registers,
    });
    this.errors = new Counter({
      name: `${prefix}gateway_errors_total`,
      help: 'Error responses and refused frames, by code',
      labelNames: ['code'],
      registers,
    });
    this.internalErrors = new Counter({
      name: `${prefix}gateway_internal_errors_total`,
      help: 'Requests that failed unexpectedly (answered INTERNAL, logged at error with the stack), by request type',
      labelNames: ['type'],
      registers,
    });
    this.upgradesRefused = new Counter({
      name: `${prefix}gateway_upgrades_refused_total`,
      help: 'WebSocket upgrades refused, by cause (origin, rate, path, forwarded, shutdown)',
      labelNames: ['cause'],
      registers,
    });
    this.closes = new Counter({
      name: `${prefix}gateway_closes_total`,
      help: 'Connections closed by the server, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.connections = new Gauge({
      name: `${prefix}gateway_connections_active`,
      help: 'Open signalling WebSocket connections',
      registers,
    });
    this.producers = new Gauge({ name: `${prefix}producers_active`, help: 'Open producers by kind', labelNames: ['kind'], registers });
    this.consumers = new Gauge({ name: `${prefix}consumers_active`, help: 'Open consumers by kind', labelNames: ['kind'], registers });
    this.producersCreated = new Counter({
      name: `${prefix}producers_created_total`,
      help: 'Producers created through the gateway, by kind',
      labelNames: ['kind'],
      registers,
    });
    this.consumersCreated = new Counter({
      name: `${prefix}consumers_created_total`,
      help: 'Consumers created through the gateway, by kind',
      labelNames: ['kind'],
      registers,
    });
    this.joinToMedia = new Histogram({
      name: `${prefix}join_to_media_seconds`,
      help: 'From the join request to the first media set up for the participant (first produce or consumer resume)',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    });
  }
}

type Usage = Awaited<ReturnType<GatewayCore['pool']['resourceUsage']>>;

/** One resource-usage query per scrape serves both worker gauges. */
function usageOnce(core: GatewayCore): () => Promise<Usage> {
  let cache: { at: number; value: Promise<Usage> } | undefined;
  return () => {
    if (core.closed || core.pool.closed) return Promise.resolve([]);
    const now = Date.now();
    if (!cache || now - cache.at > 500) cache = { at: now, value: core.pool.resourceUsage().catch(() => []) };
    return cache.value;
  };
}
