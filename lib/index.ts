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

// Control-plane adapter (metadata only): allow-list, outbox, sinks, retention, audit record.
export { createControlPlaneAdapter, ControlPlaneAdapter } from './controlplane/ControlPlaneAdapter.js';
export type {
  ControlPlaneAdapterOptions,
  ControlPlaneAdapterEvents,
  ControlPlaneSource,
  ControlPlaneSourceEvents,
  AuditRecord,
} from './controlplane/ControlPlaneAdapter.js';
export { HttpSink, FileSink, verifyControlPlaneRequest, signBody, SIGNATURE_HEADER, TIMESTAMP_HEADER, IDEMPOTENCY_HEADER, DEFAULT_REPLAY_WINDOW_S } from './controlplane/sinks.js';
export type { ControlPlaneSink, OutgoingEvent, HttpSinkOptions, FileSinkOptions, VerifyOptions, VerifyResult } from './controlplane/sinks.js';
export { assertAllowListed, renderEvent, MESSAGE_KINDS } from './controlplane/allowList.js';
export type { ControlPlaneMessage, MessageKind, RenderedEvent } from './controlplane/allowList.js';
export type { MeetingView, ParticipantView } from './controlplane/mapping.js';
export type { PurgeResult, StoredAuditEntry } from './controlplane/store.js';
