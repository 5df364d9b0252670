import { createHash } from 'node:crypto';
import { accessSync, constants, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { version as mediasoupVersion } from 'mediasoup';
import { SetupError } from '../errors.js';

// This is the one module that decides which mediasoup-worker binary the library runs.
// mediasoup's own postinstall (which downloads a prebuilt worker) is blocked in package.json
// (and in a consumer's, see the README's "Embedding" section);
// native/worker/install.sh builds the worker offline and caches it under a key that this module
// computes the same way.

/** The package root: dist/lib/media/ -> three levels up. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The command that builds (or finds) the cached worker: named by WORKER_BINARY_MISSING. */
export const WORKER_INSTALL_COMMAND = 'npx c4v-media worker install';

/** The package's worker build script (shipped in the package: native/worker/install.sh). */
export function workerInstallScript(): string {
  return join(PACKAGE_ROOT, 'native', 'worker', 'install.sh');
}

/** Which mediasoup-worker the library runs, and where that choice came from. */
export interface WorkerBinaryResolution {
  /** The binary's path. */
  path: string;
  /** Where the path came from: the MEDIASOUP_WORKER_BIN variable or the build cache. */
  source: 'env' | 'cache';
}

/**
 * sha256 over every file under native/worker/recipe/, in byte order of the relative path, each
 * contributing "<relative path>\0<content>". Mirrors recipe_hash() in native/worker/install.sh.
 */
export function recipeHash(recipeDir = join(PACKAGE_ROOT, 'native', 'worker', 'recipe')): string {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) files.push(relative(recipeDir, full));
    }
  };
  walk(recipeDir);
  files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash('sha256');
  for (const f of files) {
    hash.update(f);
    hash.update('\0');
    hash.update(readFileSync(join(recipeDir, f)));
  }
  return hash.digest('hex').slice(0, 16);
}

/** The cache folder: $C4V_CACHE_DIR, else $XDG_CACHE_HOME/c4v-media, else ~/.cache/c4v-media. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.C4V_CACHE_DIR) return env.C4V_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'c4v-media');
}

/** The path where install.sh puts the worker for this mediasoup version and recipe. */
export function cachedWorkerPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'mediasoup-worker', `${mediasoupVersion}-${recipeHash()}`, 'mediasoup-worker');
}

/**
 * Resolves the worker binary: MEDIASOUP_WORKER_BIN when set (an operator's own build), else the
 * cached offline build. Throws a SetupError naming the path and the fix when the file is missing
 * (WORKER_BINARY_MISSING) or cannot be executed (WORKER_BINARY_NOT_EXECUTABLE).
 */
export function resolveWorkerBinary(env: NodeJS.ProcessEnv = process.env): WorkerBinaryResolution {
  const fromEnv = env.MEDIASOUP_WORKER_BIN;
  const resolution: WorkerBinaryResolution = fromEnv
    ? { path: fromEnv, source: 'env' }
    : { path: cachedWorkerPath(env), source: 'cache' };
  // The command works both in a consumer's project (npx runs the package's bin) and in a clone
  // of this repository (where `npm run setup` does it too).
  const fix =
    resolution.source === 'env'
      ? `fix MEDIASOUP_WORKER_BIN or unset it to use the offline build (${WORKER_INSTALL_COMMAND})`
      : `run \`${WORKER_INSTALL_COMMAND}\` (it builds the worker offline into the cache), or set MEDIASOUP_WORKER_BIN to a mediasoup-worker binary`;
  let isFile = false;
  try {
    isFile = statSync(resolution.path).isFile();
  } catch {
    isFile = false;
  }
  if (!isFile) {
    throw new SetupError(
      'WORKER_BINARY_MISSING',
      `mediasoup-worker not found at ${resolution.path} (from ${resolution.source === 'env' ? 'MEDIASOUP_WORKER_BIN' : 'the build cache'}): ${fix}`,
    );
  }
  try {
    accessSync(resolution.path, constants.X_OK);
  } catch {
    throw new SetupError(
      'WORKER_BINARY_NOT_EXECUTABLE',
      `mediasoup-worker at ${resolution.path} is not executable: chmod +x it, or ${fix}`,
    );
  }
  return resolution;
}
