// The gateway's HTTP side and the demo server: /healthz, /metrics, TLS, the loopback rule, and
// `c4v-media serve` as a real process.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createGateway } from '../gateway/Gateway.js';
import { JoinTokens } from '../gateway/tokens.js';
import { pb } from '../gateway/wire.js';
import { C4vError, createMetricsRegistry } from '../lib/index.js';
import { testCore } from './helpers/core.js';
import { SignallingClient } from './helpers/signallingClient.js';
import { nextEvent, silentLogger, within } from './helpers/util.js';

test('/healthz is 200 while workers run and 503 once they stopped; /metrics serves the registry', async () => {
  const core = await testCore({ workers: { workers: 1, region: 'de-fra', respawn: false } });
  const gateway = await createGateway({ core, logger: silentLogger(), registry: core.registry, tokens: new JoinTokens(JoinTokens.randomSecret()) });
  try {
    const up = await fetch(`${gateway.httpUrl}/healthz`);
    assert.is(up.status, 200);
    assert.equal(await up.json(), { status: 'ready', workers: 1 });
    const m = await fetch(`${gateway.httpUrl}/metrics`);
    assert.is(m.status, 200);
    assert.match(m.headers.get('content-type') ?? '', /text\/plain/);
    const text = await m.text();
    assert.match(text, /# TYPE c4v_joins_total counter/);
    assert.match(text, /# TYPE c4v_join_to_media_seconds histogram/);
    assert.match(text, /c4v_meetings_active 0/);
    assert.match(text, /c4v_worker_memory_max_rss_bytes\{worker="\d+"\} \d+/);
    assert.is((await fetch(`${gateway.httpUrl}/nothing`)).status, 404);
    assert.is((await fetch(`${gateway.httpUrl}/healthz`, { method: 'POST' })).status, 405);
    try {
      await SignallingClient.connect(`${gateway.url.replace('/signalling', '/other')}`);
      assert.unreachable('upgrade on an unknown path');
    } catch (error) {
      assert.match((error as Error).message, /HTTP 404/);
    }

    // The only worker dies (no respawn in this core): not ready any more.
    const died = nextEvent(core.pool, 'workerdied');
    process.kill(core.pool.workers[0]!.pid, 'SIGKILL');
    await died;
    const down = await fetch(`${gateway.httpUrl}/healthz`);
    assert.is(down.status, 503);
    assert.equal(await down.json(), { status: 'unavailable', workers: 0 });
  } finally {
    await gateway.close();
    core.close();
  }
});

test('plain HTTP off loopback is refused; with a certificate the gateway serves HTTPS and WSS', async () => {
  const core = await testCore();
  const tokens = new JoinTokens(JoinTokens.randomSecret());
  try {
    try {
      await createGateway({ core, logger: silentLogger(), registry: createMetricsRegistry(), tokens, host: '0.0.0.0' });
      assert.unreachable('plain HTTP on 0.0.0.0 was accepted');
    } catch (error) {
      assert.instance(error, C4vError);
      assert.is((error as C4vError).code, 'CONFIG_INVALID');
    }
    const dir = mkdtempSync(join(tmpdir(), 'c4v-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    const cert = readFileSync(join(dir, 'cert.pem'));
    const gateway = await createGateway({
      core, logger: silentLogger(), registry: createMetricsRegistry(), tokens,
      tls: { cert, key: readFileSync(join(dir, 'key.pem')) },
    });
    try {
      assert.match(gateway.url, /^wss:\/\/127\.0\.0\.1:\d+\/signalling$/);
      const status = await new Promise<number>((resolve, reject) => {
        httpsGet(`${gateway.httpUrl}/healthz`, { ca: cert }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject);
      });
      assert.is(status, 200);
      const c = await SignallingClient.connect(gateway.url, { ca: cert });
      const hello = await c.hello();
      assert.is(hello.protocolVersion, 1);
      c.close();
    } finally {
      await gateway.close();
    }
  } finally {
    core.close();
  }
});

test('`c4v-media serve` starts from a config file, prints the URL and a host token that lets the host in', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'c4v-serve-'));
  const config = join(dir, 'c4v.yaml');
  writeFileSync(config, [
    'server:', '  port: 0',
    'workers:', '  count: 1',
    'logging:', '  level: warn',
    'controlPlane:', `  outboxPath: ${join(dir, 'outbox.db')}`, `  filePath: ${join(dir, 'metadata.jsonl')}`,
    'demo:', '  meeting:', '    id: sprechstunde', '    title: Sprechstunde',
  ].join('\n'));
  const metadataFile = join(dir, 'metadata.jsonl');
  const bin = fileURLToPath(new URL('../bin/c4v-media.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, C4V_LOG_LEVEL: 'error' } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await within(new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => /host token: \S+\n/.test(out) && resolve());
      child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}`)));
    }), 30_000, 'the demo server to print its host token');
    const url = out.match(/signalling: (\S+)/)![1]!;
    const token = out.match(/host token: (\S+)/)![1]!;
    assert.match(out, /meeting: {4}sprechstunde \(Sprechstunde\)/);
    const host = await SignallingClient.connect(url);
    const j = await host.join({ meetingId: 'sprechstunde', displayName: 'Dr. Berg', joinToken: token, e2eeCapable: true });
    assert.is(j.role, pb.Role.HOST);
    assert.is(j.state, pb.ParticipantState.ADMITTED);
    // The demo server exports the join as metadata (JSON lines), and nothing secret with it.
    const metadata = await within((async () => {
      for (;;) {
        const text = existsSync(metadataFile) ? readFileSync(metadataFile, 'utf8') : '';
        if (text.includes('participantJoined')) return text;
        await new Promise((r) => setTimeout(r, 50));
      }
    })(), 10_000, 'the participantJoined metadata line');
    assert.ok(metadata.includes('Dr. Berg'));
    assert.not.ok(metadata.includes(token), 'the join token is never exported');
    child.kill('SIGTERM');
    const closed = await host.waitClosed();
    assert.is(closed.reason, 'SERVER_SHUTDOWN');
    const code = await within(new Promise<number | null>((r) => child.once('exit', r)), 10_000, 'serve to exit');
    assert.is(code, 0);
  } finally {
    child.kill('SIGKILL');
  }
});

test('`c4v-media serve` with a bad config file exits 1 naming the file and the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'c4v-serve-'));
  const config = join(dir, 'bad.yaml');
  writeFileSync(config, 'server:\n  port: "achtzig"\n');
  const bin = fileURLToPath(new URL('../bin/c4v-media.js', import.meta.url));
  try {
    execFileSync(process.execPath, [bin, 'serve', '--config', config], { stdio: 'pipe' });
    assert.unreachable('serve started with a bad config');
  } catch (error) {
    const e = error as { status: number; stderr: Buffer };
    assert.is(e.status, 1);
    assert.match(e.stderr.toString(), /CONFIG_INVALID: .*bad\.yaml: server\.port: expected an integer/);
  }
});

test.run();
