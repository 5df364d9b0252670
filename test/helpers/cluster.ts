// Real processes for the cluster tests: Debian's redis-server on an ephemeral loopback port in a
// temporary folder, and `c4v-media serve` node processes in cluster mode on their own loopback
// addresses (127.0.0.2, .3, .4). Nothing is mocked.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { within } from './util.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const NODE = process.execPath;

// The runner SIGKILLs a finished or timed-out test file; its node and redis processes must not
// outlive it (a process 'exit' handler still runs for a normal exit; the detached-free children
// are killed here by their own pids).
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

function waitForLine(child: ChildProcess, re: RegExp, what: string, ms: number): Promise<RegExpMatchArray> {
  let out = '';
  return within(
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const onData = (d: Buffer): void => {
        out += d.toString();
        const m = out.match(re);
        if (m) {
          child.stdout!.off('data', onData);
          resolve(m);
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready: ${out.slice(-2000)}`)));
    }),
    ms,
    what,
  );
}

export interface RedisProcess {
  url: string;
  port: number;
  password: string | undefined;
  /** Stops it (SIGKILL: a crash, not a clean shutdown). */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence, as a restarted cache). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts redis-server on 127.0.0.1 on a free port, data in a temporary folder, no persistence. */
export async function startRedis(options: { password?: string } = {}): Promise<RedisProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'c4v-redis-'));
  const port = await freePort('127.0.0.1');
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const conf = join(dir, 'redis.conf');
    writeFileSync(
      conf,
      [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', 'protected-mode yes', ...(options.password ? [`requirepass ${options.password}`] : [])].join('\n'),
    );
    const c = track(spawn('redis-server', [conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
    child = c;
    c.on('error', () => undefined);
    await waitForLine(c, /Ready to accept connections/, 'redis-server', 15_000).catch((error: Error) => {
      throw new Error(`redis-server did not start (is Debian's redis-server installed? scripts/setup.d/30-redis.sh): ${error.message}`);
    });
  };
  const kill = async (): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  return {
    url: `redis://${auth}127.0.0.1:${port}`,
    port,
    password: options.password,
    kill,
    restart: async () => {
      await kill();
      await start();
    },
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NodeProcess {
  id: string;
  host: string;
  region: string;
  url: string;
  httpUrl: string;
  child: ChildProcess;
  /** SIGKILL: the node dies without a word to anyone. */
  kill(): Promise<void>;
  /** SIGTERM: drain, then stop. */
  stop(): Promise<void>;
  health(): Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  metrics(): Promise<string>;
}

export const CLUSTER_SECRET = 'cluster-test-secret-0123456789abcdef-0123456789';

/** Starts `c4v-media serve` as a cluster node on `host` (a loopback address) in `region`. */
export async function startNode(o: {
  id: string;
  host: string;
  region: string;
  redisUrl: string;
  settings?: Record<string, unknown>;
  env?: Record<string, string>;
  /** More top-level config sections (e.g. `limits`), merged into the node's config file. */
  config?: Record<string, unknown>;
}): Promise<NodeProcess> {
  const dir = mkdtempSync(join(tmpdir(), `c4v-node-${o.id}-`));
  const config = join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      demo: {
        account: { id: 'schule-a' },
        meeting: { id: 'elternabend', title: 'Elternabend 5b', hostIdentity: 'host@schule-a.de', hostName: 'Frau Schmidt', settings: o.settings ?? {} },
      },
      ...o.config,
    }),
  );
  const child = track(spawn(NODE, [join(ROOT, 'dist/bin/c4v-media.js'), 'serve', '--config', config], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      C4V_HOST: o.host,
      C4V_PORT: '0',
      C4V_LISTEN_IP: o.host,
      C4V_REGION: o.region,
      C4V_WORKERS: '1',
      C4V_REDIS_URL: o.redisUrl,
      C4V_NODE_ID: o.id,
      C4V_TOKEN_SECRET: CLUSTER_SECRET,
      C4V_CONTROL_PLANE: 'false',
      C4V_LOG_LEVEL: process.env.C4V_TEST_NODE_LOG ?? 'error',
      C4V_CLUSTER_HEARTBEAT_MS: '200',
      // A 1 s TTL expired a node that was merely slow under CI load (2 cores, three nodes, Redis,
      // werift peers): 2 s keeps failure detection quick without that false death.
      C4V_CLUSTER_NODE_TTL_MS: '2000',
      C4V_CLUSTER_LEASE_MS: '3000',
      // At the end of a test (SIGTERM) nothing waits for meetings to finish.
      C4V_CLUSTER_DRAIN_DEADLINE_MS: '0',
      // Issue 13c: extra settings of one test (the API's admin secret, a Redis CA file).
      ...o.env,
    },
  }));
  child.stderr!.on('data', (d: Buffer) => {
    if (process.env.C4V_TEST_NODE_LOG) process.stderr.write(`[${o.id}] ${d.toString()}`);
  });
  // The node's log lines (pino writes to stdout) too, when asked for.
  child.stdout!.on('data', (d: Buffer) => {
    if (process.env.C4V_TEST_NODE_LOG) process.stderr.write(d.toString().replace(/^(?=.)/gm, `[${o.id}] `));
  });
  const m = await waitForLine(child, /signalling: (ws:\/\/\S+)/, `node ${o.id}`, 60_000);
  const url = m[1]!;
  const httpUrl = url.replace(/^ws/, 'http').replace(/\/signalling$/, '');
  const exit = (signal: NodeJS.Signals) => async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  return {
    id: o.id,
    host: o.host,
    region: o.region,
    url,
    httpUrl,
    child,
    kill: async () => {
      await exit('SIGKILL')();
      rmSync(dir, { recursive: true, force: true });
    },
    stop: async () => {
      await exit('SIGTERM')();
      rmSync(dir, { recursive: true, force: true });
    },
    health: async () => (await fetch(`${httpUrl}/healthz`)).json(),
    metrics: async () => (await fetch(`${httpUrl}/metrics`)).text(),
  };
}

/** The value of one sample line of Prometheus text (`name{labels}`), or undefined. */
export function sample(text: string, line: string): number | undefined {
  const m = text.split('\n').find((l) => l.startsWith(`${line} `));
  return m === undefined ? undefined : Number(m.slice(line.length + 1));
}
