import { spawn } from 'node:child_process';
import { SetupError } from '../../lib/errors.js';
import { cachedWorkerPath, resolveWorkerBinary, workerInstallScript } from '../../lib/media/workerBinary.js';
import { UsageError, type CliCommand } from './types.js';

export const worker: CliCommand = {
  name: 'worker',
  summary: 'build (or find) the mediasoup-worker binary the library runs',
  usage: `usage: c4v-media worker install | path

  install   Builds mediasoup-worker offline from the installed mediasoup package's sources
            against Debian 12 libraries (installing the Debian packages it needs when run as
            root), caches it and prints its path. Instant when the cache has it already.
            Progress goes to stderr: one updating line on a terminal, a line per step in CI.
  path      Prints the path the library uses (MEDIASOUP_WORKER_BIN, else the cache); exit
            code 1 (and the reason on stderr) when no binary is there yet.

Environment: MEDIASOUP_WORKER_BIN (your own worker build), C4V_CACHE_DIR (the cache, default
~/.cache/c4v-media), C4V_BUILD_JOBS (parallel compile jobs, default: the number of cores).`,

  async run(args) {
    const [sub, ...rest] = args;
    if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
    if (sub === 'path') {
      try {
        process.stdout.write(`${resolveWorkerBinary().path}\n`);
        return 0;
      } catch (error) {
        if (!(error instanceof SetupError)) throw error;
        process.stderr.write(`c4v-media worker: ${error.code}: ${error.message}\n`);
        return 1;
      }
    }
    if (sub !== 'install') throw new UsageError(sub ? `unknown subcommand '${sub}'` : 'missing subcommand (install or path)');
    if (process.env.MEDIASOUP_WORKER_BIN) {
      // An operator's own build wins; check it rather than building one that would not be used.
      process.stdout.write(`${resolveWorkerBinary().path}\n`);
      return 0;
    }
    const path = await runInstallScript();
    if (path !== cachedWorkerPath()) {
      // install.sh and workerBinary.ts compute the cache path independently; a mismatch would make
      // the library look in the wrong place, so it is an error here rather than a surprise later.
      throw new SetupError('WORKER_BUILD_FAILED', `the worker build reported ${path}, but the library looks for ${cachedWorkerPath()}`);
    }
    resolveWorkerBinary();
    process.stdout.write(`${path}\n`);
    return 0;
  },
};

/** Runs native/worker/install.sh: its progress straight to our stderr, its last stdout line is the path. */
function runInstallScript(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [workerInstallScript()], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (error) => reject(new SetupError('WORKER_BUILD_FAILED', `could not run bash ${workerInstallScript()}: ${error.message}`)));
    child.on('close', (code, signal) => {
      const path = out.trim().split('\n').at(-1) ?? '';
      if (code === 0 && path) resolve(path);
      else reject(new SetupError('WORKER_BUILD_FAILED', `the mediasoup-worker build stopped (${signal ?? `exit code ${code}`}); its reason is printed above`));
    });
  });
}
