// The Node.js version check. mediasoup 3.27 and the control-plane store (node:sqlite) need
// Node >= 22; on an older Node parts of the library would load and then fail far from the cause
// (`Cannot read properties of undefined (reading 'DatabaseSync')`). This module has no side
// effects: lib/node-guard.ts runs the check when the library is loaded, bin/c4v-media.ts before
// it loads any command.
import { SetupError } from './errors.js';

/** The lowest Node.js major version the library runs on. */
export const REQUIRED_NODE_MAJOR = 22;

/**
 * The SetupError NODE_VERSION_UNSUPPORTED for a Node older than REQUIRED_NODE_MAJOR, naming the
 * required version and how to get it; `undefined` when `version` (default: this process's) is fine.
 */
export function nodeVersionProblem(version: string = process.versions.node, execPath: string = process.execPath): SetupError | undefined {
  const major = Number.parseInt(version.replace(/^v/, '').split('.')[0] ?? '', 10);
  if (Number.isInteger(major) && major >= REQUIRED_NODE_MAJOR) return undefined;
  return new SetupError(
    'NODE_VERSION_UNSUPPORTED',
    `c4v-media needs Node.js >= ${REQUIRED_NODE_MAJOR}, but this is Node.js v${version.replace(/^v/, '')} (${execPath}). ` +
      `Get Node ${REQUIRED_NODE_MAJOR}: \`npm install --save-dev node@${REQUIRED_NODE_MAJOR}\` in your project (npm scripts then run ` +
      `node_modules/.bin/node), or install it from https://nodejs.org/en/download (Debian: NodeSource's node_${REQUIRED_NODE_MAJOR}.x packages, or nvm install ${REQUIRED_NODE_MAJOR}).`,
  );
}

/** Throws nodeVersionProblem() when there is one. */
export function assertNodeVersion(version?: string): void {
  const problem = nodeVersionProblem(version);
  if (problem) throw problem;
}
