import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { TypedEmitter } from './events.js';
import { WorkerPool, type PoolWorker, type WorkerPoolOptions } from './media/WorkerPool.js';

export interface MediaCoreOptions {
  /** The root logger (see createLogger); the core derives child loggers from it. */
  logger: Logger;
  /** The metrics registry (see createMetricsRegistry); nothing is registered globally. */
  registry: Registry;
  /** Worker pool settings (count, regions, ports). */
  workers?: Omit<WorkerPoolOptions, 'logger'>;
}

export type MediaCoreEvents = {
  workerdied: [PoolWorker, Error];
  close: [];
  listenererror: [string, unknown];
};

/**
 * The media core a meeting server embeds: mediasoup workers plus (in later layers) meetings, the
 * gateway and the control-plane adapter. Created with createMediaCore().
 */
export class MediaCore extends TypedEmitter<MediaCoreEvents> {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly pool: WorkerPool;
  #closed = false;

  /** @internal Use createMediaCore(). */
  constructor(options: { logger: Logger; registry: Registry; pool: WorkerPool }) {
    super();
    this.logger = options.logger;
    this.registry = options.registry;
    this.pool = options.pool;
    this.pool.on('workerdied', (w, e) => this.safeEmit('workerdied', w, e));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Stops every worker. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.pool.close();
    this.safeEmit('close');
  }
}

/** Starts the media core: resolves once every worker is up. */
export async function createMediaCore(options: MediaCoreOptions): Promise<MediaCore> {
  const pool = await WorkerPool.create({ ...options.workers, logger: options.logger });
  return new MediaCore({ logger: options.logger, registry: options.registry, pool });
}
