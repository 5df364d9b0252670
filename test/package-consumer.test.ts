// The library as a real npm package: `npm pack` (through its prepack) in a staged copy of the
// sources, the tarball installed into a separate consumer project (npm ci --offline from a lockfile,
// npm's normal hoisting, mediasoup's install script denied by the consumer's allowScripts), a
// strict TypeScript build of the consumer against the shipped types (skipLibCheck off), the
// worker found through `npx c4v-media worker install`, and a meeting run by the consumer through
// public exports only: account with a locked setting, password + waiting room, the gateway on an
// ephemeral port, host and participant tokens, two werift peers exchanging audio after the admit.
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cachedWorkerPath } from '../lib/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'c4v-consumer-'));
const stage = join(scratch, 'stage');
const consumer = join(scratch, 'consumer');
/** Node 22 first on PATH: `npx c4v-media` runs the bin with the `node` it finds there. */
const PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ''}`;
const env = { ...process.env, PATH, CI: 'true' };
const timings: Record<string, number> = {};

function run(what: string, cmd: string, args: string[], cwd: string, extraEnv: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { cwd, env: { ...env, ...extraEnv }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  timings[what] = (Date.now() - t0) / 1000;
  if (r.status !== 0) {
    throw new Error(`${what} failed (${cmd} ${args.join(' ')}: exit ${r.status}, signal ${r.signal})\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  entryCount: number;
  files: Array<{ path: string }>;
}
let pack: PackResult;
let tarball: string;

test('npm pack builds dist/ through prepack and ships the library without tests, bench or native engine', () => {
  // A staged copy of what a clean checkout has (no dist/, no generated code), with the
  // repository's node_modules: packing here cannot disturb the dist/ the other tests run from.
  mkdirSync(stage);
  for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.pack.json', 'README.md', 'lib', 'gateway', 'bin', 'proto', 'native', 'scripts', 'web', 'client']) {
    cpSync(join(root, entry), join(stage, entry), { recursive: true, filter: (src) => !src.includes(`${join('proto', 'gen')}`) });
  }
  symlinkSync(join(root, 'node_modules'), join(stage, 'node_modules'));
  assert.not.ok(existsSync(join(stage, 'dist')), 'the stage starts without dist/');
  const r = run('npm pack', 'npm', ['pack', '--json', '--pack-destination', scratch], stage);
  pack = (JSON.parse(r.stdout) as PackResult[])[0]!;
  tarball = join(scratch, pack.filename);
  const files = pack.files.map((f) => f.path);
  for (const must of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/gateway/index.js', 'dist/gateway/index.d.ts', 'dist/bin/c4v-media.js', 'dist/proto/gen/signalling.js', 'dist/client/c4v-client.js', 'dist/client/index.d.ts', 'dist/client/node/index.js', 'dist/client/node/index.d.ts', 'dist/client/node/sdp.js', 'dist/client/core/meeting.js', 'proto/controlplane.proto', 'native/worker/install.sh', 'native/worker/recipe/build.sh', 'package.json', 'README.md']) {
    assert.ok(files.includes(must), `the tarball has ${must}`);
  }
  for (const f of files) {
    assert.not.ok(/^(dist\/(test|bench)\/|bench\/|test\/|lib\/|gateway\/|binding\.gyp|build\/)/.test(f), `the tarball must not ship ${f}`);
    assert.not.ok(f.endsWith('.map'), `no source maps without sources: ${f}`);
  }
  const manifest = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
  for (const hook of ['preinstall', 'install', 'postinstall']) assert.not.ok(manifest.scripts[hook], `no ${hook} script runs in a consumer's install`);
  assert.ok(manifest.dependencies['@types/ws'], 'the types the .d.ts import are dependencies');
  console.log(`tarball: ${pack.entryCount} files, ${(pack.size / 1024).toFixed(0)} KiB packed, ${(pack.unpackedSize / 1024).toFixed(0)} KiB unpacked; npm pack ${timings['npm pack']!.toFixed(1)} s`);
});

test('the shipped .d.ts carry no internals', () => {
  const x = join(scratch, 'extracted');
  mkdirSync(x);
  execFileSync('tar', ['xzf', tarball, '-C', x]);
  const dts: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.d.ts')) dts.push(join(d, e.name));
    }
  };
  walk(join(x, 'package', 'dist'));
  assert.ok(dts.length > 20, 'declarations are shipped');
  const all = dts.map((f) => readFileSync(f, 'utf8')).join('\n');
  for (const internal of ['_media', '_produce', '_closeParticipant', '_setState', 'native/index']) {
    assert.not.ok(all.includes(internal), `${internal} must not reach the public types`);
  }
});

/**
 * The consumer's lockfile: c4v-media from the tarball, werift and ws for its test peers, every
 * transitive package at the version (and integrity) the repository's lockfile pins, so that
 * `npm ci --offline` installs from the npm cache that the repository's own `npm ci` filled.
 */
function consumerLock(peerDeps: Record<string, string>): { manifest: object; lock: object } {
  type Entry = { version: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; dev?: boolean; devOptional?: boolean; [k: string]: unknown };
  const repoLock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, Entry> };
  const pkg = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; bin: Record<string, string>; engines: Record<string, string>; license: string };
  const resolved = `file:${tarball}`;
  const rootDeps = { 'c4v-media': resolved, ...peerDeps };
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: rootDeps },
    'node_modules/c4v-media': { version: pkg.version, resolved, dependencies: pkg.dependencies, bin: pkg.bin, engines: pkg.engines, license: pkg.license },
  };
  // Node's resolution over the lockfile's paths: nested first, then each folder above.
  const locate = (from: string, name: string): string | undefined => {
    for (let at = from; ; ) {
      const key = `${at ? `${at}/` : ''}node_modules/${name}`;
      if (repoLock.packages[key]) return key;
      if (!at) return undefined;
      const i = at.lastIndexOf('/node_modules/');
      at = i >= 0 ? at.slice(0, i) : '';
    }
  };
  const todo: Array<[string, string]> = [...Object.keys(pkg.dependencies), ...Object.keys(peerDeps)].map((n) => ['', n]);
  while (todo.length > 0) {
    const [from, name] = todo.pop()!;
    const key = locate(from, name);
    if (!key) throw new Error(`the repository's lockfile has no ${name} (needed from ${from || 'the root'})`);
    if (packages[key]) continue;
    const { dev: _dev, devOptional: _devOptional, ...entry } = repoLock.packages[key]!;
    packages[key] = entry;
    for (const d of [...Object.keys(entry.dependencies ?? {}), ...Object.keys(entry.optionalDependencies ?? {})]) todo.push([key, d]);
  }
  const manifest = {
    name: 'consumer',
    private: true,
    type: 'module',
    dependencies: rootDeps,
    // mediasoup's postinstall downloads a prebuilt worker (or pip/meson): denied, the worker comes
    // from `npx c4v-media worker install` instead (README: Embedding c4v-media in your server).
    allowScripts: { mediasoup: false },
  };
  return { manifest, lock: { name: 'consumer', lockfileVersion: 3, requires: true, packages } };
}

test('a consumer installs the tarball offline, compiles strictly against its types and runs a meeting', () => {
  const version = (name: string): string => (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  const { manifest, lock } = consumerLock({ werift: version('werift'), ws: version('ws') });
  mkdirSync(join(consumer, 'src'), { recursive: true });
  writeFileSync(join(consumer, 'package.json'), JSON.stringify(manifest, null, 2));
  writeFileSync(join(consumer, 'package-lock.json'), JSON.stringify(lock, null, 2));
  run('consumer npm ci', 'npm', ['ci', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], consumer);
  // npm's normal hoisting: mediasoup lands next to c4v-media, and its install script did not run.
  assert.ok(existsSync(join(consumer, 'node_modules', 'c4v-media', 'dist', 'lib', 'index.js')));
  assert.ok(existsSync(join(consumer, 'node_modules', 'mediasoup', 'package.json')), 'mediasoup is hoisted');
  assert.not.ok(existsSync(join(consumer, 'node_modules', 'c4v-media', 'node_modules', 'mediasoup')), 'mediasoup is not nested');
  assert.not.ok(existsSync(join(consumer, 'node_modules', 'mediasoup', 'worker', 'out')), "mediasoup's postinstall did not build or download a worker");
  assert.not.ok(existsSync(join(consumer, 'node_modules', 'c4v-media', 'build')), 'nothing native was compiled for the consumer');

  // The consumer's sources: the fixture's server, client and scenario, and the repository's werift
  // peer (no library internals: it imports only werift and mediasoup's types).
  const fixture = join(root, 'test', 'fixtures', 'consumer');
  cpSync(join(fixture, 'tsconfig.json'), join(consumer, 'tsconfig.json'));
  cpSync(join(fixture, 'src'), join(consumer, 'src'), { recursive: true });
  cpSync(join(root, 'test', 'helpers', 'weriftPeer.ts'), join(consumer, 'src', 'weriftPeer.ts'));
  run('consumer tsc', process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], consumer);

  // The worker: the consumer's command finds the cached build (same mediasoup version and recipe).
  const w = run('worker install', 'npx', ['--offline', '--no', 'c4v-media', 'worker', 'install'], consumer);
  const workerPath = w.stdout.trim().split('\n').at(-1)!;
  assert.is(workerPath, cachedWorkerPath());
  const doctor = JSON.parse(run('doctor', 'npx', ['--offline', '--no', 'c4v-media', 'doctor', '--json'], consumer).stdout) as { ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> };
  assert.ok(doctor.ok, JSON.stringify(doctor.checks));
  assert.ok(doctor.checks.find((c) => c.name === 'mediasoup')!.detail.includes(join(consumer, 'node_modules', 'mediasoup')));
  assert.ok(doctor.checks.find((c) => c.name === 'native engine')!.detail.startsWith('not part of the installed package'), 'the bench engine is not shipped');

  const m = run('consumer meeting', process.execPath, [join('dist', 'main.js')], consumer, { MEDIASOUP_WORKER_BIN: workerPath });
  const line = m.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  assert.ok(line, `the consumer printed its result:\n${m.stdout}\n${m.stderr}`);
  const result = JSON.parse(line!.slice('RESULT '.length)) as Record<string, unknown>;
  assert.is(result.lockedRefusal, 'SETTING_LOCKED');
  assert.is(result.hostState, 'ADMITTED');
  assert.is(result.withoutPassword, 'PASSWORD_REQUIRED');
  assert.is(result.participantState, 'WAITING_ROOM');
  assert.is(result.mediaWhileWaiting, 'NOT_ADMITTED');
  assert.is(result.admitted, true);
  assert.ok((result.audioAtParticipant as number) >= 5, 'host audio reached the participant');
  assert.ok((result.audioAtHost as number) >= 5, 'participant audio reached the host');
  assert.is(result.audioTagsRight, true);
  assert.is(result.sdkWrongPassword, 'WRONG_PASSWORD', 'c4v-media/client/node: a refused join is coded');
  assert.is(result.sdkState, 'waiting-room', 'c4v-media/client/node joins');
  console.log(
    `consumer: npm ci --offline ${timings['consumer npm ci']!.toFixed(1)} s, tsc ${timings['consumer tsc']!.toFixed(1)} s, ` +
      `worker install (warm cache) ${timings['worker install']!.toFixed(1)} s, meeting ${timings['consumer meeting']!.toFixed(1)} s`,
  );
});

test.after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

test.run();
