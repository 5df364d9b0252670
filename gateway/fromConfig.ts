// What the single-node demo server (serve.ts) and a cluster node (cluster/serve.ts) build the same
// way from a validated configuration: the media core, the control-plane adapter and the gateway's
// edge options. One copy, so that a setting added to the config reaches both servers.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  createControlPlaneAdapter,
  createMediaCore,
  FileSink,
  HttpSink,
  SetupError,
  type ControlPlaneAdapter,
  type ControlPlaneAdapterOptions,
  type ControlPlaneSink,
  type MediaCore,
} from '../lib/index.js';
import type { ServeConfig } from './config.js';
import type { GatewayOptions } from './Gateway.js';

const require = createRequire(import.meta.url);
const VERSION = (require('../../package.json') as { version: string }).version;

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new SetupError('CONFIG_INVALID', `server.tls.${what}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The media core: workers of this server's region, UDP on the configured (announced) address. */
export function createCoreFromConfig(config: ServeConfig, logger: Logger, registry: Registry): Promise<MediaCore> {
  return createMediaCore({
    logger,
    registry,
    workers: {
      workers: config.workers.count,
      region: config.workers.region,
      ...(config.workers.rtcMinPort ? { rtcMinPort: config.workers.rtcMinPort } : {}),
      ...(config.workers.rtcMaxPort ? { rtcMaxPort: config.workers.rtcMaxPort } : {}),
    },
    media: {
      listenInfos: [
        {
          protocol: 'udp',
          ip: config.media.listenIp,
          ...(config.media.announcedAddress ? { announcedAddress: config.media.announcedAddress } : {}),
        },
      ],
    },
  });
}

/**
 * The metadata-only control-plane adapter with the configured sinks, or undefined when the
 * control plane is off. `extra` adds what a configuration file does not set (purge targets, a
 * test clock).
 */
export function createControlPlaneFromConfig(
  config: ServeConfig,
  core: MediaCore,
  logger: Logger,
  extra: Partial<ControlPlaneAdapterOptions> = {},
): ControlPlaneAdapter | undefined {
  const cp = config.controlPlane;
  if (!cp.enabled) return undefined;
  const sinks: ControlPlaneSink[] = [];
  if (cp.filePath) sinks.push(new FileSink({ path: cp.filePath, purgeOnRetention: cp.purgeFile }));
  if (cp.url && cp.secret) sinks.push(new HttpSink({ url: cp.url, secret: cp.secret, format: cp.format }));
  return createControlPlaneAdapter({
    source: core,
    outboxPath: cp.outboxPath,
    sinks,
    logger,
    strictPermissions: cp.strictPermissions,
    ...(cp.pseudonymKeyPath ? { pseudonymKeyPath: cp.pseudonymKeyPath } : {}),
    ...extra,
  });
}

/** The gateway's listening, TLS, proxy, origin and limit options from the `server` and `limits` sections. */
export function edgeOptionsFromConfig(
  config: ServeConfig,
): Pick<GatewayOptions, 'host' | 'port' | 'path' | 'allowInsecurePublic' | 'trustedProxies' | 'forwardedHeader' | 'allowedOrigins' | 'limits' | 'serverVersion' | 'tls'> {
  const s = config.server;
  return {
    host: s.host,
    port: s.port,
    path: s.path,
    allowInsecurePublic: s.allowInsecurePublic,
    trustedProxies: s.trustedProxies,
    forwardedHeader: s.forwardedHeader,
    allowedOrigins: s.allowedOrigins,
    limits: config.limits,
    serverVersion: `c4v-media/${VERSION}`,
    ...(s.tls ? { tls: { cert: readPem(s.tls.certFile, 'certFile'), key: readPem(s.tls.keyFile, 'keyFile') } } : {}),
  };
}
