// Cluster mode of `c4v-media serve` (issue 13) and `c4v-media drain`.
import { loadConfig, type ServeConfig } from '../../gateway/config.js';
import { startClusterServer } from '../../gateway/cluster/serve.js';
import { connectRedis } from '../../lib/cluster/redis.js';
import { Bus } from '../../lib/cluster/Bus.js';
import { createLogger, SetupError } from '../../lib/index.js';
import { UsageError, type CliCommand } from './types.js';

/** `serve` with cluster.redis set: runs until SIGINT; SIGTERM drains first (no new placements), then stops. */
export async function serveCluster(config: ServeConfig): Promise<number> {
  const server = await startClusterServer(config);
  process.stdout.write(
    [
      `c4v-media serve: ready (cluster node ${server.node.nodeId}, ${server.node.region})`,
      `  signalling: ${server.gateway.url}`,
      `  metrics:    ${server.gateway.httpUrl}/metrics`,
      `  health:     ${server.gateway.httpUrl}/healthz`,
      `  meeting:    ${server.meetingId} (placed on its home node at the first join)`,
      ...(server.api ? [`  api:        ${server.gateway.httpUrl}/api/v1 (key ${config.api.adminKeyId}; definitions in the cluster's Redis)`] : []),
      `  host token: ${await server.hostToken()}`,
      '',
    ].join('\n'),
  );
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`c4v-media serve: ${signal}, draining and stopping\n`);
      void server.close().finally(() => resolve(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export const drain: CliCommand = {
  name: 'drain',
  summary: 'cluster mode: stop new meeting placements on a node (c4v-media drain NODE_ID [--deadline S])',
  usage: `usage: c4v-media drain NODE_ID [--deadline SECONDS] [--config FILE]

Marks a cluster node as draining: no new meetings are placed there and new joins at it are
refused with NODE_DRAINING; its running meetings go on. With --deadline, the meetings whose home
it is move to another node after that many seconds (policy kept) and its remaining clients are
told to reconnect elsewhere. Reaches the node over the cluster bus, so it needs the same
cluster.redis as the nodes (C4V_REDIS_URL).`,

  async run(args) {
    let file = process.env.C4V_CONFIG || undefined;
    let target: string | undefined;
    let deadlineMs: number | undefined;
    for (let i = 0; i < args.length; i++) {
      if (args[i] === '--config' && args[i + 1]) file = args[++i];
      else if (args[i] === '--deadline' && args[i + 1]) {
        const v = Number(args[++i]);
        if (!Number.isFinite(v) || v < 0) throw new UsageError('--deadline takes seconds >= 0');
        deadlineMs = Math.round(v * 1000);
      }
      else if (!args[i]!.startsWith('-') && !target) target = args[i];
      else throw new UsageError(`unknown argument ${args[i]}`);
    }
    if (!target) throw new UsageError('drain needs a NODE_ID');
    const config = loadConfig({ ...(file ? { file } : {}), env: process.env });
    if (!config.cluster.redis) throw new SetupError('CONFIG_INVALID', 'drain needs cluster.redis (C4V_REDIS_URL)');
    const redis = connectRedis(
      {
        url: config.cluster.redis,
        ...(config.cluster.redisPassword ? { password: config.cluster.redisPassword } : {}),
        // The nodes' TLS trust: a drain against a TLS Redis needs the same CA file.
        ...(config.cluster.redisTlsCaFile ? { tlsCaFile: config.cluster.redisTlsCaFile } : {}),
      },
      'c4v-drain',
    );
    const bus = new Bus({ nodeId: `drain-${process.pid}`, redis, logger: createLogger({ level: 'silent' }), timeoutMs: config.cluster.requestTimeoutMs });
    try {
      await bus.start();
      await bus.request(target, 'cluster.drain', deadlineMs !== undefined ? { deadlineMs } : {});
      process.stdout.write(`c4v-media drain: node ${target} is draining${deadlineMs !== undefined ? `; its meetings move in ${deadlineMs / 1000} s` : ''}\n`);
      return 0;
    } finally {
      bus.close();
      redis.disconnect();
    }
  },
};
