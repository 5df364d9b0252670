// Installation behaviour that needs no consumer project: the Node version guard (with a real
// older Node where the machine has one), the one boolean parser and the settings that use it, the
// build progress filter, the Debian package list, and the worker / doctor commands.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../gateway/config.js';
import * as lib from '../lib/index.js';
import { C4vError, cachedWorkerPath, nodeVersionProblem, parseBoolean, envFlag } from '../lib/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dist = join(root, 'dist');
const cli = join(dist, 'bin', 'c4v-media.js');

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return error instanceof C4vError ? error.code : `not coded: ${String(error)}`;
  }
  return 'no error';
}

test('parseBoolean() accepts on/off, true/false, 1/0 in any case and refuses anything else with CONFIG_INVALID', () => {
  for (const v of ['on', 'ON', 'true', 'True', '1', ' yes ', true, 1]) assert.is(parseBoolean(v, 'X'), true, String(v));
  for (const v of ['off', 'Off', 'false', 'FALSE', '0', 'no', false, 0]) assert.is(parseBoolean(v, 'X'), false, String(v));
  assert.is(parseBoolean(undefined, 'X'), undefined);
  assert.is(parseBoolean('', 'X'), undefined);
  try {
    parseBoolean('maybe', 'C4V_SOMETHING');
    assert.unreachable('should have thrown');
  } catch (error) {
    assert.is((error as C4vError).code, 'CONFIG_INVALID');
    assert.ok((error as Error).message.includes('C4V_SOMETHING'), 'names the variable');
    assert.ok((error as Error).message.includes('on/off'), 'names the accepted words');
  }
  assert.is(envFlag('C4V_X', true, {}), true, 'unset: the fallback');
  assert.is(envFlag('C4V_X', true, { C4V_X: 'off' }), false);
});

test('C4V_CONTROL_PLANE=off switches the control plane off (and on/1/0 work for every boolean variable)', () => {
  assert.is(loadConfig({ env: { C4V_CONTROL_PLANE: 'off' } }).controlPlane.enabled, false);
  assert.is(loadConfig({ env: { C4V_CONTROL_PLANE: 'on' } }).controlPlane.enabled, true);
  assert.is(loadConfig({ env: { C4V_CONTROL_PLANE: '0' } }).controlPlane.enabled, false);
  assert.is(loadConfig({ env: { C4V_LOG_PERSONAL_DATA: 'on' } }).logging.personalData, true);
  assert.is(loadConfig({ env: { C4V_LOG_PERSONAL_DATA: 'false' } }).logging.personalData, false);
  assert.is(codeOf(() => loadConfig({ env: { C4V_CONTROL_PLANE: 'sometimes' } })), 'CONFIG_INVALID');
});

test('the benchmark engine switch C4V_NO_NATIVE goes through the same parser', () => {
  const kind = (value: string): { kind: string; reason?: string } => {
    const url = pathToFileURL(join(dist, 'bench', 'native', 'index.js')).href;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(url)}); console.log(JSON.stringify(m.packetEngineInfo()))`], {
      env: { ...process.env, C4V_NO_NATIVE: value },
      encoding: 'utf8',
    });
    assert.is(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { kind: string; reason?: string };
  };
  assert.is(kind('on').reason, 'C4V_NO_NATIVE is set');
  assert.is(kind('1').reason, 'C4V_NO_NATIVE is set');
  assert.is.not(kind('off').reason, 'C4V_NO_NATIVE is set');
  assert.is.not(kind('0').reason, 'C4V_NO_NATIVE is set');
});

test('the library entry exports no native engine and never loads node-gyp-build', () => {
  for (const name of ['packetEngine', 'packetEngineInfo', 'resolveNativeBinding', 'MAX_PACKET_SIZE']) {
    assert.not.ok(name in lib, `${name} is not a library export`);
  }
  const offenders: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const f = join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.js') && readFileSync(f, 'utf8').includes('node-gyp-build')) offenders.push(f);
    }
  };
  for (const d of ['lib', 'gateway', 'bin']) walk(join(dist, d));
  assert.equal(offenders, []);
});

test('nodeVersionProblem() names the required version and how to get it', () => {
  const e = nodeVersionProblem('20.20.2', '/usr/bin/node');
  assert.ok(e);
  assert.is(e!.code, 'NODE_VERSION_UNSUPPORTED');
  assert.ok(e!.message.includes('>= 22'), e!.message);
  assert.ok(e!.message.includes('v20.20.2'), e!.message);
  assert.ok(e!.message.includes('node@22'), 'says how to get Node 22');
  assert.is(nodeVersionProblem('22.0.0'), undefined);
  assert.is(nodeVersionProblem('24.1.0'), undefined);
});

// The machine's own Node (Debian's, or an old one on PATH) when it is older than 22: the real
// check of the built entries. On a machine without one, the unit test above is all there is.
const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((n) => {
  const r = spawnSync(n, ['-p', 'process.versions.node'], { encoding: 'utf8' });
  return r.status === 0 && Number(r.stdout.split('.')[0]) < 22;
});

test('on Node < 22, loading the library, the gateway entry or the CLI fails at once with NODE_VERSION_UNSUPPORTED', () => {
  if (!oldNode) {
    console.log('  (no Node < 22 on this machine: the built entries were not run on one)');
    return;
  }
  for (const entry of [join(dist, 'lib', 'index.js'), join(dist, 'gateway', 'index.js')]) {
    const script = `try { await import(${JSON.stringify(pathToFileURL(entry).href)}); console.log('loaded') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }`;
    const r = spawnSync(oldNode, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const out = JSON.parse(r.stdout) as { code: string; message: string };
    assert.is(out.code, 'NODE_VERSION_UNSUPPORTED', entry);
    assert.ok(out.message.includes('>= 22'), out.message);
  }
  const r = spawnSync(oldNode, [cli, 'serve'], { encoding: 'utf8', env: { ...process.env, C4V_PORT: '0' } });
  assert.is(r.status, 1);
  assert.ok(r.stderr.startsWith('c4v-media: NODE_VERSION_UNSUPPORTED: c4v-media needs Node.js >= 22'), r.stderr);
});

test('progress.sh turns ninja output into one line per step in CI and keeps the whole output in the log', () => {
  const log = join(mkdtempSync(join(tmpdir(), 'c4v-progress-')), 'build.log');
  const input = [
    'The Meson build system',
    'Version: 1.5.0',
    '[1/4] Compiling C object subprojects/libsrtp2-debian/libsrtp2.a.p/srtp_srtp.c.o',
    '[2/4] Compiling C++ object mediasoup-worker.p/src_RTC_Transport.cpp.o',
    'some compiler warning',
    '[3/4] Compiling C++ object mediasoup-worker.p/src_Worker.cpp.o',
    '[4/4] Linking target mediasoup-worker',
  ].join('\n');
  const r = spawnSync('bash', [join(root, 'native', 'worker', 'progress.sh'), log], { input, encoding: 'utf8', env: { ...process.env, CI: 'true' } });
  assert.is(r.status, 0);
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.includes('c4v worker install: configuring the build (meson setup)'), r.stderr);
  assert.ok(lines.some((l) => l.startsWith('c4v worker install: libsrtp:')), 'the libsrtp step is named');
  for (const step of ['[1/4] 25%', '[2/4] 50%', '[3/4] 75%', '[4/4] 100% Linking target mediasoup-worker']) {
    assert.ok(lines.some((l) => l.includes(step)), `a line for ${step}`);
  }
  assert.not.ok(r.stderr.includes('\r'), 'no in-place bar in CI');
  assert.is(readFileSync(log, 'utf8'), `${input}\n`);
});

test('the Debian package list names what the worker build needs, and nothing is missing after setup', () => {
  const list = spawnSync('bash', [join(root, 'native', 'worker', 'debian-packages.sh'), 'list', 'worker'], { encoding: 'utf8' }).stdout.split('\n');
  for (const p of ['libsrtp2-dev', 'libuv1-dev', 'libabsl-dev', 'libflatbuffers-dev', 'flatbuffers-compiler', 'build-essential']) assert.ok(list.includes(p), p);
  const missing = spawnSync('bash', [join(root, 'native', 'worker', 'debian-packages.sh'), 'missing', 'worker'], { encoding: 'utf8' });
  assert.is(missing.status, 0);
  assert.is(missing.stdout.trim(), '', 'setup installed every worker package');
});

test('c4v-media worker path prints the cached worker; doctor reports it; bad arguments are usage errors', () => {
  const env = { ...process.env };
  delete env.MEDIASOUP_WORKER_BIN;
  const p = spawnSync(process.execPath, [cli, 'worker', 'path'], { encoding: 'utf8', env });
  assert.is(p.status, 0, p.stderr);
  assert.is(p.stdout.trim(), cachedWorkerPath(env));
  const missing = spawnSync(process.execPath, [cli, 'worker', 'path'], { encoding: 'utf8', env: { ...env, MEDIASOUP_WORKER_BIN: '/nonexistent/mediasoup-worker' } });
  assert.is(missing.status, 1);
  assert.ok(missing.stderr.includes('WORKER_BINARY_MISSING'), missing.stderr);
  assert.ok(missing.stderr.includes('npx c4v-media worker install'), 'names the command that fixes it');
  assert.is(spawnSync(process.execPath, [cli, 'worker', 'frobnicate'], { encoding: 'utf8' }).status, 2);
  const d = spawnSync(process.execPath, [cli, 'doctor', '--json'], { encoding: 'utf8', env });
  assert.is(d.status, 0, d.stdout);
  const report = JSON.parse(d.stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> };
  assert.ok(report.ok);
  const names = report.checks.map((c) => c.name);
  for (const n of ['node', 'mediasoup', 'worker', 'native engine', 'debian packages (worker)', 'debian packages (native)']) assert.ok(names.includes(n), n);
  assert.ok(report.checks.find((c) => c.name === 'worker')!.detail.includes(cachedWorkerPath(env)));
  const bad = spawnSync(process.execPath, [cli, 'doctor'], { encoding: 'utf8', env: { ...env, MEDIASOUP_WORKER_BIN: '/nonexistent/mediasoup-worker' } });
  assert.is(bad.status, 1, 'not ready without a worker');
  assert.ok(bad.stdout.includes('FAIL  worker'), bad.stdout);
});

test.run();
