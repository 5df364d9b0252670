import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** This package's version. */
export const version: string = (require('../../package.json') as { version: string }).version;

export { createMediaCore, MediaCore } from './MediaCore.js';
export type { MediaCoreOptions, MediaCoreEvents } from './MediaCore.js';
export { WorkerPool } from './media/WorkerPool.js';
export type { PoolWorker, WorkerPoolOptions, WorkerUsage } from './media/WorkerPool.js';
export { DEFAULT_ALLOWED_REGIONS, regionAllowed } from './media/regions.js';
export type { Region } from './media/regions.js';
export { resolveWorkerBinary, cachedWorkerPath, recipeHash } from './media/workerBinary.js';
export { createLogger } from './telemetry/logger.js';
export type { Logger, LoggerOptions } from './telemetry/logger.js';
export { createMetricsRegistry } from './telemetry/metrics.js';
export * from './errors.js';
export { TypedEmitter } from './events.js';
