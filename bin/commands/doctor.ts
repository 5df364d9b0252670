import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { C4vError } from '../../lib/errors.js';
import { cacheDir, resolveWorkerBinary, WORKER_INSTALL_COMMAND } from '../../lib/media/workerBinary.js';
import { nodeVersionProblem, REQUIRED_NODE_MAJOR } from '../../lib/node-version.js';
import { UsageError, type CliCommand } from './types.js';

/** The package root (dist/bin/commands/ -> three levels up). */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** One line of the report. `required` checks decide the exit code; the others are information. */
interface Check {
  name: string;
  ok: boolean;
  required: boolean;
  detail: string;
  fix?: string;
}

function missingPackages(group: 'worker' | 'native'): string[] | undefined {
  try {
    const out = execFileSync('bash', [join(PACKAGE_ROOT, 'native', 'worker', 'debian-packages.sh'), 'missing', group], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out.toString().split('\n').filter(Boolean);
  } catch {
    return undefined;
  }
}

/** Everything `c4v-media doctor` reports (exported for its test through the CLI's --json). */
function checks(): Check[] {
  const out: Check[] = [];
  const nodeProblem = nodeVersionProblem();
  out.push({
    name: 'node',
    ok: !nodeProblem,
    required: true,
    detail: `v${process.versions.node} (${process.execPath}); needs >= ${REQUIRED_NODE_MAJOR}`,
    ...(nodeProblem ? { fix: nodeProblem.message } : {}),
  });

  const require = createRequire(import.meta.url);
  let mediasoup: { version: string; dir: string } | undefined;
  try {
    // mediasoup's exports do not include package.json: walk up from its entry to its folder.
    let dir = dirname(require.resolve('mediasoup'));
    while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
    mediasoup = { version: (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version, dir };
  } catch {
    mediasoup = undefined;
  }
  out.push({
    name: 'mediasoup',
    ok: !!mediasoup,
    required: true,
    detail: mediasoup ? `${mediasoup.version} (${mediasoup.dir})` : 'not installed',
    ...(mediasoup ? {} : { fix: 'npm install (c4v-media depends on it)' }),
  });

  try {
    const r = resolveWorkerBinary();
    out.push({ name: 'worker', ok: true, required: true, detail: `${r.path} (from ${r.source === 'env' ? 'MEDIASOUP_WORKER_BIN' : 'the build cache'})` });
  } catch (error) {
    if (!(error instanceof C4vError)) throw error;
    out.push({ name: 'worker', ok: false, required: true, detail: `${error.code}: ${error.message}`, fix: WORKER_INSTALL_COMMAND });
  }
  out.push({ name: 'cache', ok: true, required: false, detail: cacheDir() });

  // Only looked at, never loaded: the library never loads a native addon.
  const addon = join(PACKAGE_ROOT, 'bench', 'native', 'build', 'Release', 'c4v_native.node');
  const haveBench = existsSync(join(PACKAGE_ROOT, 'bench', 'native', 'binding.gyp'));
  out.push({
    name: 'native engine',
    ok: existsSync(addon),
    required: false,
    detail: existsSync(addon)
      ? `${addon} (benchmark only)`
      : haveBench
        ? 'not built: the benchmark uses its TypeScript fallback (optional)'
        : 'not part of the installed package (benchmark only, in a clone of the repository)',
    ...(haveBench && !existsSync(addon) ? { fix: 'npm run setup (as root, it installs libsrtp2-dev and builds it)' } : {}),
  });

  for (const group of ['worker', 'native'] as const) {
    const missing = missingPackages(group);
    const what = group === 'worker' ? 'needed only for a cold worker build' : 'needed only for the native engine';
    out.push({
      name: `debian packages (${group})`,
      ok: missing !== undefined && missing.length === 0,
      required: false,
      detail: missing === undefined ? 'cannot tell (no bash or dpkg)' : missing.length === 0 ? 'all installed' : `missing: ${missing.join(' ')} (${what})`,
      ...(missing && missing.length > 0 ? { fix: `apt-get install -y --no-install-recommends ${missing.join(' ')}` } : {}),
    });
  }
  return out;
}

export const doctor: CliCommand = {
  name: 'doctor',
  summary: 'report Node, mediasoup, the worker binary, the optional native engine and Debian packages',
  usage: `usage: c4v-media doctor [--json]

Reports what the library needs and where it stands: the Node version (>= ${REQUIRED_NODE_MAJOR}), mediasoup, the
mediasoup-worker binary (MEDIASOUP_WORKER_BIN or the build cache), the benchmark's optional native
engine and the Debian packages a worker build needs. Exit code 0 when the library can run (Node,
mediasoup and the worker are fine), 1 otherwise.

  --json   one JSON object instead of the table`,

  async run(args) {
    const json = args.includes('--json');
    const unknown = args.find((a) => a !== '--json');
    if (unknown) throw new UsageError(`unknown argument ${unknown}`);
    const list = checks();
    const ok = list.every((c) => c.ok || !c.required);
    if (json) {
      process.stdout.write(`${JSON.stringify({ ok, checks: list }, null, 2)}\n`);
    } else {
      const width = Math.max(...list.map((c) => c.name.length));
      for (const c of list) {
        const mark = c.ok ? 'ok  ' : c.required ? 'FAIL' : 'note';
        process.stdout.write(`${mark}  ${c.name.padEnd(width)}  ${c.detail}\n`);
        if (!c.ok && c.fix) process.stdout.write(`      ${''.padEnd(width)}  fix: ${c.fix}\n`);
      }
      process.stdout.write(ok ? 'c4v-media doctor: ready\n' : 'c4v-media doctor: not ready (see FAIL above)\n');
    }
    return ok ? 0 : 1;
  },
};
