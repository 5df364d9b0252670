#!/usr/bin/env node
import { cpus } from 'node:os';
import { createLogger, createMediaCore, createMetricsRegistry, C4vError } from '../lib/index.js';

const USAGE = `usage: c4v-media serve    start the media core (one worker per core)`;

async function serve(): Promise<void> {
  const logger = createLogger({ base: { service: 'c4v-media' } });
  const registry = createMetricsRegistry();
  const core = await createMediaCore({ logger, registry, workers: { workers: cpus().length } });
  logger.info({ workers: core.pool.workers.length, regions: core.pool.regions }, 'media core ready');
  const stop = (signal: string): void => {
    logger.info({ signal }, 'stopping');
    core.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const [command] = process.argv.slice(2);
if (command !== 'serve') {
  console.error(USAGE);
  process.exit(command ? 2 : 0);
}
serve().catch((error: unknown) => {
  if (error instanceof C4vError) console.error(`c4v-media: ${error.code}: ${error.message}`);
  else console.error('c4v-media:', error);
  process.exit(1);
});
