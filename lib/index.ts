// Must stay the first import: on Node < 22 it throws NODE_VERSION_UNSUPPORTED before anything else
// of the library is evaluated.
import './node-guard.js';
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

// Meetings: the policy engine (lib/model) and the per-meeting media plane (lib/media).
export type { MediaCoreObserverEvents } from './MediaCore.js';
export { Meeting, DEFAULT_PASSWORD_LIMITS } from './model/Meeting.js';
export type { MeetingEvents, PasswordAttemptLimits } from './model/Meeting.js';
export { Participant } from './model/Participant.js';
export type { ParticipantEvents } from './model/Participant.js';
export { Account, DEFAULT_SETTINGS, validateSettings } from './model/settings.js';
export { decideAdmission } from './model/admission.js';
export type { AdmissionDecision, AdmissionInput, PasswordCheck } from './model/admission.js';
export { hashPassword, verifyPassword, AttemptLimiter } from './model/password.js';
export { DEFAULT_MEDIA_CODECS } from './media/MeetingMedia.js';
export type { MeetingMediaOptions } from './media/MeetingMedia.js';
export type * from './model/types.js';

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

// Gateways (SIP dial-in and other server-side media peers): SRTP-only transports for admitted
// participants. (The benchmark's native packet engine is not part of the library: bench/native.)
export { createGatewayTransport, GatewayTransport } from './media/GatewayTransport.js';
export type { GatewayTransportInfo, GatewayTransportOptions, GatewaySrtpParameters } from './media/GatewayTransport.js';

// Issue 9: installation helpers (the Node version check, the one boolean parser, the worker
// binary's resolution result).
export { REQUIRED_NODE_MAJOR, nodeVersionProblem, assertNodeVersion } from './node-version.js';
export { parseBoolean, envFlag, BOOLEAN_WORDS } from './env.js';
export type { WorkerBinaryResolution } from './media/workerBinary.js';

// Issue 15: the Zoom-format control-plane sink (HttpSink format 'zoom-webhook') and the durable
// store of accounts, meeting definitions and operator API keys.
export { renderZoomWebhook, signZoomWebhook, verifyZoomWebhook, ZOOM_EVENT_NAMES, ZOOM_SIGNATURE_HEADER, ZOOM_TIMESTAMP_HEADER } from './controlplane/zoomWebhook.js';
export type { ZoomWebhook } from './controlplane/zoomWebhook.js';
export { HTTP_SINK_FORMATS } from './controlplane/sinks.js';
export type { HttpSinkFormat } from './controlplane/sinks.js';
export { openDefinitionStore, DefinitionStore, PERSONAL_DEFINITION_FIELDS } from './store/DefinitionStore.js';
export type { StoredAccount, StoredMeeting, MeetingDefinition, StoredApiKey, ApiAuditEntry, DefinitionStoreOptions } from './store/DefinitionStore.js';
export type { MeetingOperator } from './model/Meeting.js';

// Issue 16: data protection. Logging by type, pseudonyms, permissions, the privacy report.
export { logView, personal, PersonalData, redactPersonal, scrubText, REDACTED } from './telemetry/logger.js';
export { privacyReport, privacyReportOf, formatPrivacyReport } from './privacy/report.js';
export type { PrivacyReport, PrivacyReportOptions, ReportDisclosure, ReportHolding, ReportPlacement, ReportHolder } from './privacy/report.js';
export { pseudonymiser, loadOrCreateKey, isPseudonym, PSEUDONYM_PREFIX } from './privacy/pseudonym.js';
export type { Pseudonymiser } from './privacy/pseudonym.js';
export { ensurePrivateDir, ensurePrivateFile } from './privacy/permissions.js';
export type { PermissionPolicy } from './privacy/permissions.js';
export { eventFieldPaths } from './privacy/fields.js';
export type { PurgeTarget, PurgeContext, HeldData } from './controlplane/sinks.js';
export type { QueuedPurge, StoredDisclosure, StoredPurge, MeetingHoldings } from './controlplane/store.js';

// Issue 10 (auth and edge): the one display-name and secret rule, for embedders and the operator API.
export { checkDisplayName, checkSecret, DISPLAY_NAME_MAX, SECRET_MIN_BYTES } from './rules.js';
