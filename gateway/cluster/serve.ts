// `c4v-media serve` in cluster mode (cluster.redis set): the media core, this node's cluster
// membership (registry, bus, media agent), the gateway with the cluster edge in front, and the
// demo meeting *defined* here and placed on its home node at its first join (any node may be it).
// Issue 13c: the operator API (/api/v1) on every node, its definitions in the cluster's Redis.
import type { Logger } from 'pino';
import {
  createLogger,
  createMetricsRegistry,
  SetupError,
  type ControlPlaneAdapter,
  type MediaCore,
} from '../../lib/index.js';
import { startClusterNode, type ClusterNode } from '../../lib/cluster/ClusterNode.js';
import { checkRedis, type RedisConnectOptions } from '../../lib/cluster/redis.js';
import { RedisDefinitionStore } from '../../lib/store/RedisDefinitionStore.js';
import { createOperatorApi, type OperatorApi } from '../api/OperatorApi.js';
import { ClusterApi } from './ClusterApi.js';
import type { ServeConfig } from '../config.js';
import { createGateway, type Gateway } from '../Gateway.js';
import { createControlPlaneFromConfig, createCoreFromConfig, edgeOptionsFromConfig } from '../fromConfig.js';
import { joinTokensFromConfig, type JoinTokens } from '../tokens.js';
import { ClusterEdge } from './ClusterEdge.js';

export interface ClusterServer {
  core: MediaCore;
  gateway: Gateway;
  node: ClusterNode;
  edge: ClusterEdge;
  tokens: JoinTokens;
  /** The demo meeting's id (its home may be another node). */
  meetingId: string;
  hostToken(): Promise<string>;
  /** The metadata-only control-plane adapter of this node (undefined when switched off). */
  controlPlane: ControlPlaneAdapter | undefined;
  /** Issue 13c: the operator API of this node (undefined when off, or without api.adminSecret). */
  api: OperatorApi | undefined;
  /** The cluster's definition store (Redis), when the API runs. */
  store: RedisDefinitionStore | undefined;
  /** Leaves the cluster (registry entry removed, home leases purged), stops the gateway and workers. */
  close(): Promise<void>;
}

/** Options of startClusterServer() that a configuration file does not set. */
export interface ClusterServerOptions {
  /** The control-plane adapter's retention timer and clock (tests move the clock past a boundary). */
  retention?: { clock?: () => number; purgeIntervalMs?: number };
}

export async function startClusterServer(config: ServeConfig, logger?: Logger, options: ClusterServerOptions = {}): Promise<ClusterServer> {
  const log = logger ?? createLogger({ level: config.logging.level, logPersonalData: config.logging.personalData, base: { service: 'c4v-media', node: config.cluster.nodeId } });
  if (!config.tokens.secret && !config.tokens.keys?.length) {
    // Every node verifies the tokens of every meeting: a per-process random secret cannot work.
    throw new SetupError('CONFIG_INVALID', 'cluster mode needs tokens.secret (C4V_TOKEN_SECRET) or tokens.keys, the same on every node');
  }
  // Read first (the TLS files included), so that a bad path fails before any worker starts.
  const edgeOptions = edgeOptionsFromConfig(config);
  const cl = config.cluster;
  const redisOptions: RedisConnectOptions = { url: cl.redis, ...(cl.redisPassword ? { password: cl.redisPassword } : {}), ...(cl.redisTlsCaFile ? { tlsCaFile: cl.redisTlsCaFile } : {}) };
  // One attempt before anything starts: an untrusted certificate, plain redis:// to a TLS port or
  // a wrong password fail the start with a coded error (the working connections retry forever).
  await checkRedis(redisOptions, Math.max(2000, cl.requestTimeoutMs));
  // Every node answers API requests signed with the admin key: a per-process random secret would
  // differ from node to node, so the API runs only with one from the configuration.
  const apiKey = config.api.enabled && config.api.adminSecret ? { id: config.api.adminKeyId, secret: config.api.adminSecret } : undefined;
  if (config.api.enabled && !apiKey) log.warn('operator API off: cluster mode needs api.adminSecret (C4V_API_SECRET), the same on every node');
  const registry = createMetricsRegistry();
  const core = await createCoreFromConfig(config, log, registry);
  let node: ClusterNode | undefined;
  let controlPlane: ControlPlaneAdapter | undefined;
  let api: OperatorApi | undefined;
  let store: RedisDefinitionStore | undefined;
  try {
    // Each node exports the metadata of the meetings it is home of (their model lives there), as
    // the single-node server does.
    // The store exists once the node is connected; the adapter is made first (it subscribes to the
    // core before any meeting), so its purge target is resolved at purge time.
    const purgeTarget = {
      name: 'definitions-redis',
      purgeDetail: 'API keys deleted; personal fields of the definition deleted; meeting id replaced by its pseudonym in the Redis definition and audit keys (targets removed)',
      purgeMeetings: (ids: readonly string[], context: Parameters<RedisDefinitionStore['purgeMeetings']>[1]) =>
        store ? store.purgeMeetings(ids, context) : Promise.reject(new Error('definition store not open')),
    };
    controlPlane = createControlPlaneFromConfig(config, core, log, {
      ...(apiKey ? { purgeTargets: [purgeTarget] } : {}),
      ...(options.retention?.clock ? { clock: options.retention.clock } : {}),
      ...(options.retention?.purgeIntervalMs ? { purgeIntervalMs: options.retention.purgeIntervalMs } : {}),
    });
    const tokens = joinTokensFromConfig(config.tokens);
    const gateway = await createGateway({
      core,
      logger: log,
      registry,
      tokens,
      ...edgeOptions,
      // The API needs the node (its bus, its Redis), which needs the gateway's URL: until the node
      // is up, /api/ answers 503 CLOSED.
      ...(apiKey
        ? {
            api: {
              handle: async (req, res, address) => {
                if (api) return api.handle(req, res, address);
                const text = JSON.stringify({ error: { code: 'CLOSED', reason: 'the operator API is starting' } });
                res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
              },
            },
          }
        : {}),
    });
    node = await startClusterNode(
      core,
      {
        redis: redisOptions,
        nodeId: cl.nodeId,
        region: config.workers.region,
        url: gateway.url,
        pipe: { ip: config.media.listenIp, ...(config.media.announcedAddress ? { announcedAddress: config.media.announcedAddress } : {}) },
        heartbeatMs: cl.heartbeatMs,
        nodeTtlMs: cl.nodeTtlMs,
        leaseMs: cl.leaseMs,
        requestTimeoutMs: cl.requestTimeoutMs,
      },
      log,
    );
    const edge = new ClusterEdge({ node, gateway, logger: log, registry, requestTimeoutMs: cl.requestTimeoutMs * 3 });
    const d = config.demo;
    core.createAccount(d.account);
    if (apiKey) {
      store = new RedisDefinitionStore({ redis: node.redis });
      const clusterApi = new ClusterApi({ node, core, store, logger: log, timeoutMs: cl.requestTimeoutMs * 2 });
      const a = createOperatorApi({
        core,
        store,
        tokens,
        logger: log,
        adminKey: apiKey,
        tokenTtlSeconds: config.tokens.ttlSeconds,
        webAppUrl: () => gateway.httpUrl,
        cluster: clusterApi,
      });
      clusterApi.attach(a);
      const loaded = await clusterApi.load();
      if (loaded.accounts + loaded.meetings > 0) log.info(loaded, 'definitions loaded from the cluster store');
      api = a;
    }
    node.defineMeeting({
      id: d.meeting.id,
      accountId: d.account.id,
      title: d.meeting.title,
      hostIdentity: d.meeting.hostIdentity,
      hostName: d.meeting.hostName,
      settings: d.meeting.settings,
      ...(d.meeting.password ? { password: d.meeting.password } : {}),
    });
    const n = node;
    return {
      core,
      gateway,
      node: n,
      edge,
      tokens,
      meetingId: d.meeting.id,
      controlPlane,
      api,
      store,
      hostToken: () => tokens.mint({ identity: d.meeting.hostIdentity, role: 'host', meetingId: d.meeting.id, displayName: d.meeting.hostName }, { ttlSeconds: config.tokens.ttlSeconds }),
      async close() {
        // SIGTERM: drain; home meetings still running move to another node after the deadline.
        if (n.homeMeetings.length > 0) {
          const drained = n.whenDrained();
          await n.drain(cl.drainDeadlineMs).catch(() => undefined);
          await drained;
        } else {
          await n.drain().catch(() => undefined);
        }
        api?.close();
        await gateway.close();
        store?.close();
        await n.close();
        core.close();
        await controlPlane?.close();
      },
    };
  } catch (error) {
    api?.close();
    await node?.close();
    core.close();
    await controlPlane?.close();
    throw error;
  }
}
