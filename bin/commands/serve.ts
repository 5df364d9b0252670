import { loadConfig, ENV_VARS } from '../../gateway/config.js';
import { startDemoServer } from '../../gateway/serve.js';
import { serveCluster } from './cluster.js';
import { UsageError, type CliCommand } from './types.js';

export const serve: CliCommand = {
  name: 'serve',
  summary: 'start the demo meeting server (workers, gateway, one demo meeting)',
  usage: `usage: c4v-media serve [--config FILE]

Starts the demo meeting server: media workers, the signalling gateway on a local port and one
demo account and meeting. Prints the WebSocket URL and a host join token.

  --config FILE   YAML or JSON configuration (default: $C4V_CONFIG, else the embedded defaults)

SIGTERM or SIGINT stops it gracefully: no new joins, every participant gets closing
SERVER_SHUTDOWN, the meetings end, the control-plane outbox gets shutdown.timeoutMs to deliver,
the workers are closed; exit code 0.

Environment: C4V_CONFIG, ${Object.keys(ENV_VARS).join(', ')}`,

  async run(args) {
    let file = process.env.C4V_CONFIG || undefined;
    for (let i = 0; i < args.length; i++) {
      if (args[i] === '--config' && args[i + 1]) file = args[++i];
      else if (args[i]?.startsWith('--config=')) file = args[i]!.slice('--config='.length);
      else throw new UsageError(`unknown argument ${args[i]}`);
    }
    const config = loadConfig({ ...(file ? { file } : {}), env: process.env });
    // Issue 13: with a Redis URL this node joins a cluster (bin/commands/cluster.ts).
    if (config.cluster.redis) return serveCluster(config);
    const server = await startDemoServer(config);
    const { gateway, meeting } = server;
    // Join tokens are JWTs minted with jose (asynchronous).
    const hostToken = await server.hostToken();
    const hostLink = await server.hostLink();
    // What an operator needs to try it: printed, not logged (the token is a secret).
    process.stdout.write(
      [
        `c4v-media serve: ready`,
        `  signalling: ${gateway.url}`,
        `  metrics:    ${gateway.httpUrl}/metrics`,
        `  health:     ${gateway.httpUrl}/healthz`,
        `  meeting:    ${meeting.id} (${meeting.title})`,
        `  workers:    ${server.core.pool.workers.length} (${server.core.pool.regions.join(', ')})`,
        `  metadata:   ${config.controlPlane.enabled ? [config.controlPlane.filePath, config.controlPlane.url].filter(Boolean).join(', ') || 'outbox only' : 'control plane off'}`,
        `  host token: ${hostToken}`,
        // Issue 15: the web app link for the host, and the operator API with its admin key.
        `  host link:  ${hostLink}`,
        // Issue 11: guests open the app without a token (the waiting room decides).
        `  guest link: ${gateway.httpUrl}/?meeting=${encodeURIComponent(meeting.id)}`,
        ...(server.apiKey
          ? [
              `  api:        ${gateway.httpUrl}/api/v1 (OpenAPI: ${gateway.httpUrl}/api/v1/openapi.json)`,
              `  api key:    ${server.apiKey.id}${config.api.adminSecret ? ' (secret from the configuration)' : ` secret ${server.apiKey.secret}`}`,
              `  cli:        C4V_API_URL=${gateway.httpUrl} C4V_API_KEY=${server.apiKey.id} C4V_API_SECRET=... c4v-media meeting list`,
            ]
          : []),
        '',
      ].join('\n'),
    );
    return new Promise<number>((resolve) => {
      let stopping = false;
      // Kept for the whole shutdown: a second signal must not kill the process half-way (with
      // `once`, Node's default action would apply to it) while the outbox is being delivered.
      const stop = (signal: string): void => {
        if (stopping) {
          process.stderr.write(`c4v-media serve: ${signal} again, still stopping (at most ${config.shutdown.timeoutMs} ms for the outbox)\n`);
          return;
        }
        stopping = true;
        process.stderr.write(`c4v-media serve: ${signal}, stopping\n`);
        server.close().then(
          () => resolve(0),
          (error: unknown) => {
            process.stderr.write(`c4v-media serve: shutdown failed: ${String(error)}\n`);
            resolve(1);
          },
        );
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  },
};
