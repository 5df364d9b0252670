// Issue 13c: Redis over TLS in cluster mode, for real. Debian's redis-server listens on a TLS port
// only (plain port 0) with a CA and a server certificate made for this test by the openssl CLI in
// a temporary folder; two `c4v-media serve` nodes connect with rediss:// and cluster.redisTlsCaFile
// (C4V_REDIS_TLS_CA) and run one meeting across both. A node given another CA, or no CA, fails to
// start with CLUSTER_TLS_FAILED; a plain redis:// to the TLS port fails with CLUSTER_REDIS_REFUSED;
// neither hangs.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JoinTokens } from '../gateway/tokens.js';
import { pb } from '../gateway/wire.js';
import { CLUSTER_SECRET, startNode, type NodeProcess } from './helpers/cluster.js';
import { stream } from './helpers/gateway.js';
import { publish, SignallingClient, subscribe, type TrackSpec } from './helpers/signallingClient.js';
import { within } from './helpers/util.js';

const MEETING = 'elternabend';
const tokens = new JoinTokens(CLUSTER_SECRET);
const tracks: TrackSpec[] = [{ name: 'mic', kind: 'audio', source: 'microphone' }];
const SETTINGS = { waitingRoom: false, hostRequiredToStart: false, allowGuests: true, allowedRegions: ['DE', 'AT'] };

const dir = mkdtempSync(join(tmpdir(), 'c4v-redis-tls-'));
const file = (name: string): string => join(dir, name);
let redis: ChildProcess | undefined;
let port = 0;
let nodes: NodeProcess[] = [];
const clients: SignallingClient[] = [];
const peers: Array<{ close(): Promise<void> }> = [];
const stops: Array<() => void> = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA (name.pem / name.key). */
function makeCa(name: string): void {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2', '-subj', `/CN=c4v test ${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** `c4v-media serve` that is expected to fail at start: its exit code and stderr. */
function failingNode(redisUrl: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../bin/c4v-media.js', import.meta.url)), 'serve'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      C4V_HOST: '127.0.0.5',
      C4V_PORT: '0',
      C4V_LISTEN_IP: '127.0.0.5',
      C4V_REGION: 'de-fra',
      C4V_WORKERS: '1',
      C4V_REDIS_URL: redisUrl,
      C4V_NODE_ID: 'bad',
      C4V_TOKEN_SECRET: CLUSTER_SECRET,
      C4V_CONTROL_PLANE: 'false',
      C4V_LOG_LEVEL: 'error',
      ...env,
    },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout!.resume();
  // Not a hang: the start fails within the connection check's deadline (a few seconds).
  return within(
    new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stderr }))),
    30_000,
    'the failing node to exit',
  ).finally(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
}

test.before(async () => {
  makeCa('ca');
  makeCa('other-ca');
  // The server certificate, signed by `ca`, for the address the nodes dial.
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-subj', '/CN=127.0.0.1', '-keyout', 'redis.key', '-out', 'redis.csr');
  writeFileSync(file('san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl('x509', '-req', '-in', 'redis.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-sha256', '-extfile', 'san.cnf', '-out', 'redis.pem');
  port = await freePort();
  writeFileSync(
    file('redis.conf'),
    [
      'port 0',
      `tls-port ${port}`,
      'bind 127.0.0.1',
      `tls-cert-file ${file('redis.pem')}`,
      `tls-key-file ${file('redis.key')}`,
      `tls-ca-cert-file ${file('ca.pem')}`,
      // Server authentication only (what cluster.redisTlsCaFile configures); clients use AUTH if any.
      'tls-auth-clients no',
      `dir ${dir}`,
      'save ""',
      'appendonly no',
    ].join('\n'),
  );
  const r = spawn('redis-server', [file('redis.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  redis = r;
  r.on('error', () => undefined);
  let out = '';
  await within(
    new Promise<void>((resolve, reject) => {
      r.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (/Ready to accept connections/.test(out)) resolve();
      });
      r.once('exit', (code) => reject(new Error(`redis-server with --tls-port exited (${code}): is it built with TLS? ${out.slice(-1500)}`)));
    }),
    15_000,
    'redis-server (TLS)',
  );
  process.once('exit', () => redis?.kill('SIGKILL'));
});

test.after(async () => {
  for (const s of stops) s();
  for (const c of clients) c.ws.terminate();
  for (const p of peers) await p.close().catch(() => undefined);
  await Promise.all(nodes.map((n) => n.stop()));
  if (redis && redis.exitCode === null) {
    const gone = new Promise((r) => redis!.once('exit', r));
    redis.kill('SIGKILL');
    await gone;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('two nodes over rediss:// with the CA file: one meeting across both, audio from one node reaches the other', async () => {
  const url = `rediss://127.0.0.1:${port}`;
  const env = { C4V_REDIS_TLS_CA: file('ca.pem') };
  nodes = await Promise.all([
    startNode({ id: 'n2', host: '127.0.0.2', region: 'de-fra', redisUrl: url, settings: SETTINGS, env }),
    startNode({ id: 'n3', host: '127.0.0.3', region: 'at-vie', redisUrl: url, settings: SETTINGS, env }),
  ]);
  const [n2, n3] = nodes as [NodeProcess, NodeProcess];
  for (let i = 0; i < 100; i++) {
    if ((await n2.health()).cluster.nodes.length === 2) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const h = await n2.health();
  assert.is(h.cluster.redis, 'up');
  assert.equal(h.cluster.nodes.map((x: { id: string }) => x.id).sort(), ['n2', 'n3']);

  const host = await SignallingClient.connect(n2.url);
  clients.push(host);
  const hj = await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await tokens.mint({ identity: 'host@schule-a.de', role: 'host', meetingId: MEETING }), e2eeCapable: false });
  assert.is(hj.state, pb.ParticipantState.ADMITTED);
  const guest = await SignallingClient.connect(n3.url);
  clients.push(guest);
  const gj = await guest.join({ meetingId: MEETING, displayName: 'Herr Yilmaz', joinToken: await tokens.mint({ identity: 'yilmaz@eltern.de', role: 'participant', meetingId: MEETING }), e2eeCapable: false });
  assert.is(gj.state, pb.ParticipantState.ADMITTED);
  const homes = (await Promise.all(nodes.map(async (n) => (await n.health()).cluster.homeMeetings as string[]))).filter((m) => m.includes(MEETING));
  assert.is(homes.length, 1, 'one home');

  const pub = await publish(host, tracks);
  peers.push(pub.pub);
  stops.push(stream(pub.pub, tracks, 'host'));
  const ids = [...pub.producers.values()];
  for (const id of ids) await guest.waitFor('newProducer', (x) => x.id === id);
  const s = await subscribe(guest, ids);
  peers.push(s.sub);
  await s.sub.waitFor(() => s.sub.packetsOf(s.consumers.get(ids[0]!)!).length >= 3, "the host's audio at the other node", 30_000);
  assert.ok(s.sub.packetsOf(s.consumers.get(ids[0]!)!).every((x) => x.payload.includes(Buffer.from('host:'))));
});

test('a node with another CA is refused at start with CLUSTER_TLS_FAILED (not a hang)', async () => {
  const r = await failingNode(`rediss://127.0.0.1:${port}`, { C4V_REDIS_TLS_CA: file('other-ca.pem') });
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /CLUSTER_TLS_FAILED/);
  assert.match(r.stderr, /redisTlsCaFile/);
});

test('a node with rediss:// but no CA file (system CAs only) is refused with CLUSTER_TLS_FAILED', async () => {
  const r = await failingNode(`rediss://127.0.0.1:${port}`, {});
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /CLUSTER_TLS_FAILED/);
});

test('plain redis:// to the TLS port fails clearly with CLUSTER_REDIS_REFUSED', async () => {
  const r = await failingNode(`redis://127.0.0.1:${port}`, {});
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /CLUSTER_REDIS_REFUSED/);
  assert.match(r.stderr, /rediss:\/\//, 'the message points at TLS');
});

test.run();
