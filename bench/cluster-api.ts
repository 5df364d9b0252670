// The operator API in cluster mode (issue 13c): what forwarding a meeting's request to its home
// costs. One redis-server, two `c4v-media serve` nodes; one API meeting; the same signed
// `GET /api/v1/meetings/{id}` is timed at the home (answered there, the baseline of the same run)
// and at the other node (forwarded over the cluster bus and answered by the home), alternating.
//
//   node dist/bench/cluster-api.js [--quick] [--out FILE]
import { writeFileSync } from 'node:fs';
import { signApiRequest } from '../gateway/api/auth.js';
import { startNode, startRedis, type NodeProcess } from '../test/helpers/cluster.js';
import { quantile } from './stats.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const outIdx = args.indexOf('--out');
const OUT = outIdx >= 0 ? args[outIdx + 1] : undefined;
const N = QUICK ? 100 : 1000;
const SECRET = 'cluster-admin-secret-0123456789abcdef-0123';
const env = { C4V_API_SECRET: SECRET };

async function timed(n: NodeProcess, path: string, auth: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${n.httpUrl}/api/v1${path}`, { headers: { authorization: auth } });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`${path} at ${n.id}: ${res.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

const redis = await startRedis();
const nodes = await Promise.all([
  startNode({ id: 'b2', host: '127.0.0.2', region: 'de-fra', redisUrl: redis.url, env }),
  startNode({ id: 'b3', host: '127.0.0.3', region: 'de-fra', redisUrl: redis.url, env }),
]);
try {
  for (let i = 0; i < 100 && (await nodes[0]!.health()).cluster.nodes.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  // One token for every request (valid 10 min): the figure is the API's, not the signing's.
  const auth = `Bearer ${await signApiRequest('admin', SECRET, 600)}`;
  const post = async (path: string, body: unknown): Promise<void> => {
    const res = await fetch(`${nodes[0]!.httpUrl}/api/v1${path}`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  };
  await post('/accounts', { id: 'bench' });
  await post('/meetings', { id: 'bench-meeting', accountId: 'bench', title: 'Bench', hostIdentity: 'host@bench.example' });
  const homeOf = async (n: NodeProcess): Promise<boolean> => ((await n.health()).cluster.homeMeetings as string[]).includes('bench-meeting');
  const home = (await homeOf(nodes[0]!)) ? nodes[0]! : nodes[1]!;
  const other = home === nodes[0] ? nodes[1]! : nodes[0]!;
  const path = '/meetings/bench-meeting';
  for (let i = 0; i < 20; i++) await Promise.all([timed(home, path, auth), timed(other, path, auth)]); // warm-up (within the burst)
  const atHome: number[] = [];
  const forwarded: number[] = [];
  for (let i = 0; i < N; i++) {
    // Paced under the API's rate limit (50 requests/s per address and node).
    const due = Date.now() + 25;
    atHome.push(await timed(home, path, auth));
    forwarded.push(await timed(other, path, auth));
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  atHome.sort((x, y) => x - y);
  forwarded.sort((x, y) => x - y);
  const fig = (xs: number[]) => ({ p50: quantile(xs, 0.5), p99: quantile(xs, 0.99) });
  const result = {
    requests: N,
    home: fig(atHome),
    forwarded: fig(forwarded),
    ratio: { p50: quantile(forwarded, 0.5) / quantile(atHome, 0.5), p99: quantile(forwarded, 0.99) / quantile(atHome, 0.99) },
  };
  const ms = (x: number): string => `${x.toFixed(2)} ms`;
  process.stdout.write(
    [
      `GET /api/v1/meetings/{id}, ${N} requests each, alternating`,
      `  at the home:          p50 ${ms(result.home.p50)}  p99 ${ms(result.home.p99)}`,
      `  at another node:      p50 ${ms(result.forwarded.p50)}  p99 ${ms(result.forwarded.p99)}  (forwarded over the bus)`,
      `  ratio forwarded/home: p50 ${result.ratio.p50.toFixed(2)}  p99 ${result.ratio.p99.toFixed(2)}`,
      '',
    ].join('\n'),
  );
  if (OUT) writeFileSync(OUT, JSON.stringify(result, null, 2));
} finally {
  await Promise.all(nodes.map((n) => n.stop()));
  await redis.stop();
}
