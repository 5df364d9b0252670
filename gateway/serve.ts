// The demo meeting server behind `c4v-media serve`: media workers, the gateway on a local port,
// and one demo account and meeting from the configuration, with a host join token to print.
import type { Logger } from 'pino';
import {
  createLogger,
  createMetricsRegistry,
  SetupError,
  C4vError,
  type ControlPlaneAdapter,
  type MediaCore,
  type Meeting,
} from '../lib/index.js';
import type { ServeConfig } from './config.js';
import { createGateway, type Gateway } from './Gateway.js';
import { createControlPlaneFromConfig, createCoreFromConfig, edgeOptionsFromConfig } from './fromConfig.js';
import { joinTokensFromConfig, type JoinTokens } from './tokens.js';
import { openDefinitionStore, type DefinitionStore } from '../lib/store/DefinitionStore.js';
import { createOperatorApi, joinUrl, type OperatorApi } from './api/OperatorApi.js';
import { randomApiSecret } from './api/auth.js';

import { webAppRoutes } from '../web/server.js';

export interface DemoServer {
  core: MediaCore;
  gateway: Gateway;
  meeting: Meeting;
  tokens: JoinTokens;
  /** The metadata-only control-plane adapter (undefined when switched off in the config). */
  controlPlane: ControlPlaneAdapter | undefined;
  /** A fresh host token for the demo meeting. */
  hostToken(): Promise<string>;
  /** Issue 15: the operator API (undefined when switched off), its admin key and its store. */
  api: OperatorApi | undefined;
  apiKey: { id: string; secret: string } | undefined;
  store: DefinitionStore | undefined;
  /** The web app link that joins the demo meeting as host (with a fresh host token). */
  hostLink(): Promise<string>;
  /**
   * Graceful shutdown (what SIGTERM does): no new joins; every participant gets `closing
   * SERVER_SHUTDOWN`; the meetings end; the control-plane outbox gets `shutdown.timeoutMs` to
   * deliver (what is left stays on disk for the next start); the workers are closed. Idempotent.
   */
  close(): Promise<void>;
}

/** Options of startDemoServer() that a configuration file does not set. */
export interface DemoServerOptions {
  /** The control-plane adapter's retention timer and clock (tests move the clock past a boundary). */
  retention?: { clock?: () => number; purgeIntervalMs?: number };
}

/** Starts the demo server from a validated configuration (see loadConfig). */
export async function startDemoServer(config: ServeConfig, logger?: Logger, options: DemoServerOptions = {}): Promise<DemoServer> {
  const log = logger ?? createLogger({ level: config.logging.level, logPersonalData: config.logging.personalData, base: { service: 'c4v-media' } });
  // Fix 15/16: the API's definitions (host names, e-mail addresses, meeting ids) are purged by
  // the control-plane adapter's retention, the one rule for every store. Without the adapter
  // nothing would purge a file, so the definitions then live in memory only: the API still works
  // (C4V_CONTROL_PLANE=off must start, issue 9), but definitions do not survive a restart.
  const definitionsInMemory = config.api.enabled && !config.controlPlane.enabled;
  if (definitionsInMemory) {
    log.warn('control plane off: the operator API keeps its definitions in memory only (lost on restart, nothing written to disk)');
  }
  // Read first (the TLS files included), so that a bad path fails before any worker starts.
  const edge = edgeOptionsFromConfig(config);
  const registry = createMetricsRegistry();
  const core = await createCoreFromConfig(config, log, registry);
  let controlPlane: ControlPlaneAdapter | undefined;
  let store: DefinitionStore | undefined;
  let api: OperatorApi | undefined;
  let gatewayRef: Gateway | undefined;
  try {
    // Issue 10: JWT keys (tokens.keys) and/or the HS256 secret; a random secret when neither is set.
    const tokens = joinTokensFromConfig(config.tokens);
    // Issue 15: accounts and meeting definitions come back before the control-plane adapter
    // starts, so that it counts restored meetings as live rather than as an earlier process's.
    const apiKey = config.api.enabled ? { id: config.api.adminKeyId, secret: config.api.adminSecret ?? randomApiSecret() } : undefined;
    if (apiKey) {
      const storePath = definitionsInMemory ? ':memory:' : config.api.storePath || config.controlPlane.outboxPath;
      // The outbox's permission rule and strict check apply to the definitions' folder and file too.
      store = openDefinitionStore(storePath, { permissions: { strict: config.controlPlane.strictPermissions, logger: log } });
      api = createOperatorApi({
        core,
        store,
        tokens,
        logger: log,
        adminKey: apiKey,
        tokenTtlSeconds: config.tokens.ttlSeconds,
        webAppUrl: () => gatewayRef?.httpUrl ?? '',
      });
      const restored = await api.restore();
      if (restored.accounts + restored.meetings > 0 || restored.failed.length > 0) log.info(restored, 'definitions restored');
    }
    // The adapter subscribes before the demo meeting exists, so its creation is exported too.
    controlPlane = createControlPlaneFromConfig(config, core, log, {
      // The definitions follow the outbox's retention (timer, clock and pseudonym).
      ...(store ? { purgeTargets: [store] } : {}),
      ...(options.retention?.clock ? { clock: options.retention.clock } : {}),
      ...(options.retention?.purgeIntervalMs ? { purgeIntervalMs: options.retention.purgeIntervalMs } : {}),
    });
    const d = config.demo;
    let meeting: Meeting;
    try {
      core.createAccount(d.account);
      // A restart restores the API's meetings; the demo meeting of the configuration is made anew.
      meeting = core.getMeeting(d.meeting.id) ?? await core.createMeeting({
        id: d.meeting.id,
        accountId: d.account.id,
        title: d.meeting.title,
        hostIdentity: d.meeting.hostIdentity,
        hostName: d.meeting.hostName,
        settings: d.meeting.settings,
        ...(d.meeting.password ? { password: d.meeting.password } : {}),
      });
    } catch (error) {
      // The model checks setting values; for the operator that is a config error.
      if (error instanceof TypeError || (error instanceof C4vError && error.code === 'SETTING_LOCKED')) {
        throw new SetupError('CONFIG_INVALID', `demo meeting: ${error.message}`);
      }
      throw error;
    }
    const gateway = await createGateway({
      core,
      logger: log,
      registry,
      tokens,
      ...edge,
      ...(api ? { api } : {}),
      // Issue 11: the meeting web app at /.
      httpRoutes: webAppRoutes(),
    });
    gatewayRef = gateway;
    const hostToken = (): Promise<string> =>
      tokens.mint({ identity: d.meeting.hostIdentity, role: 'host', meetingId: meeting.id, displayName: d.meeting.hostName }, { ttlSeconds: config.tokens.ttlSeconds });
    let closing: Promise<void> | undefined;
    const shutdown = async (): Promise<void> => {
      // First and synchronously: worker exits from here on are the shutdown, not a failure (a
      // service manager signals the workers too, and they may go before close() reaches them).
      core.pool.beginShutdown();
      log.info({ meetings: core.meetings.length }, 'shutting down');
      // Issue 15: the operator API closes first, so that no meeting is created during the shutdown.
      api?.close();
      // No new joins: the gateway stops accepting, then closes every session and connection.
      await gateway.close();
      // The meetings end (their MeetingEnded goes to the outbox), then the workers are closed.
      core.close();
      if (controlPlane) {
        try {
          await controlPlane.drained(config.shutdown.timeoutMs);
        } catch {
          log.warn(
            { pending: controlPlane.pending, timeoutMs: config.shutdown.timeoutMs },
            'control-plane outbox not delivered within the shutdown deadline; it is kept for the next start',
          );
        }
        await controlPlane.close();
      }
      store?.close();
      log.info('stopped');
    };
    return {
      core,
      gateway,
      meeting,
      tokens,
      controlPlane,
      api,
      apiKey,
      store,
      hostToken,
      hostLink: async () => joinUrl(gateway.httpUrl, meeting.id, await hostToken()),
      close() {
        closing ??= shutdown();
        return closing;
      },
    };
  } catch (error) {
    api?.close();
    core.close();
    await controlPlane?.close();
    store?.close();
    throw error;
  }
}
