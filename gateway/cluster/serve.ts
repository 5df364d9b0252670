// `c4v-media serve` in cluster mode (cluster.redis set): the media core, this node's cluster
// membership (registry, bus, media agent), the gateway with the cluster edge in front, and the
// demo meeting *defined* here and placed on its home node at its first join (any node may be it).
import type { Logger } from 'pino';
import {
  createLogger,
  createMetricsRegistry,
  SetupError,
  type ControlPlaneAdapter,
  type MediaCore,
} from '../../lib/index.js';
import { startClusterNode, type ClusterNode } from '../../lib/cluster/ClusterNode.js';
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
  /** Leaves the cluster (registry entry removed, home leases purged), stops the gateway and workers. */
  close(): Promise<void>;
}

export async function startClusterServer(config: ServeConfig, logger?: Logger): Promise<ClusterServer> {
  const log = logger ?? createLogger({ level: config.logging.level, logPersonalData: config.logging.personalData, base: { service: 'c4v-media', node: config.cluster.nodeId } });
  if (!config.tokens.secret && !config.tokens.keys?.length) {
    // Every node verifies the tokens of every meeting: a per-process random secret cannot work.
    throw new SetupError('CONFIG_INVALID', 'cluster mode needs tokens.secret (C4V_TOKEN_SECRET) or tokens.keys, the same on every node');
  }
  // Read first (the TLS files included), so that a bad path fails before any worker starts.
  const edgeOptions = edgeOptionsFromConfig(config);
  const registry = createMetricsRegistry();
  const core = await createCoreFromConfig(config, log, registry);
  let node: ClusterNode | undefined;
  let controlPlane: ControlPlaneAdapter | undefined;
  try {
    // Each node exports the metadata of the meetings it is home of (their model lives there), as
    // the single-node server does.
    controlPlane = createControlPlaneFromConfig(config, core, log);
    const tokens = joinTokensFromConfig(config.tokens);
    const gateway = await createGateway({
      core,
      logger: log,
      registry,
      tokens,
      ...edgeOptions,
    });
    const cl = config.cluster;
    node = await startClusterNode(
      core,
      {
        redis: { url: cl.redis, ...(cl.redisPassword ? { password: cl.redisPassword } : {}), ...(cl.redisTlsCaFile ? { tlsCaFile: cl.redisTlsCaFile } : {}) },
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
        await gateway.close();
        await n.close();
        core.close();
        await controlPlane?.close();
      },
    };
  } catch (error) {
    await node?.close();
    core.close();
    await controlPlane?.close();
    throw error;
  }
}
