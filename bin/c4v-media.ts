#!/usr/bin/env node
import { loadConfig, ENV_VARS } from '../gateway/config.js';
import { startDemoServer } from '../gateway/serve.js';
import { C4vError } from '../lib/index.js';

const USAGE = `usage: c4v-media serve [--config FILE]

Starts the demo meeting server: media workers, the signalling gateway on a local port and one
demo account and meeting. Prints the WebSocket URL and a host join token.

  --config FILE   YAML or JSON configuration (default: $C4V_CONFIG, else the embedded defaults)

Environment: C4V_CONFIG, ${Object.keys(ENV_VARS).join(', ')}`;

async function serve(args: string[]): Promise<void> {
  let file = process.env.C4V_CONFIG || undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config' && args[i + 1]) file = args[++i];
    else if (args[i]?.startsWith('--config=')) file = args[i]!.slice('--config='.length);
    else {
      console.error(`c4v-media: unknown argument ${args[i]}\n\n${USAGE}`);
      process.exit(2);
    }
  }
  const config = loadConfig({ ...(file ? { file } : {}), env: process.env });
  const server = await startDemoServer(config);
  const { gateway, meeting } = server;
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
      `  host token: ${server.hostToken()}`,
      '',
    ].join('\n'),
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`c4v-media serve: ${signal}, stopping\n`);
    void server.close().finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const [command, ...rest] = process.argv.slice(2);
if (command !== 'serve') {
  console.error(USAGE);
  process.exit(command && command !== '--help' && command !== '-h' ? 2 : 0);
}
serve(rest).catch((error: unknown) => {
  if (error instanceof C4vError) console.error(`c4v-media: ${error.code}: ${error.message}`);
  else console.error('c4v-media:', error);
  process.exit(1);
});
