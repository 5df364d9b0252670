// Runs a browser test inside its own network namespace with only `lo` (unshare -n, then
// `ip link set lo up`), with the server in the same namespace: outside one, Chromium also uses the
// machine's other interfaces. Adopted from the verified recipe (shared/reference/browser-chromium-netns).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The variable that marks the re-executed child inside the namespace. */
const INSIDE = 'C4V_IN_NETNS';

/** Chromium from Debian; the set-up installs it (scripts/setup.d/35-chromium.sh). */
export const CHROMIUM = ['/usr/bin/chromium', '/usr/lib/chromium/chromium'].find((p) => existsSync(p));

/**
 * The flags the browser tests and the join bench launch Chromium with (each one's need is in the
 * recipe's README): fake camera, microphone and screen, no permission prompt, loopback ICE
 * candidates, autoplay without a gesture, and nothing that talks to the network on its own.
 */
export const CHROMIUM_ARGS = [
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--autoplay-policy=no-user-gesture-required',
  '--auto-select-desktop-capture-source=Entire screen',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Re-executes this script inside a fresh network namespace and exits with its status, unless it
 * already runs inside one (then returns). Fails loudly when no namespace can be made: a browser
 * test outside one would reach the machine's other interfaces.
 */
export function inNetworkNamespace(script: string): void {
  if (process.env[INSIDE] === '1') {
    const up = spawnSync('ip', ['link', 'set', 'lo', 'up'], { stdio: 'inherit' });
    if (up.status !== 0) throw new Error('ip link set lo up failed inside the network namespace');
    return;
  }
  if (!CHROMIUM) {
    console.error('browser test: Debian chromium is not installed (bash scripts/setup.sh installs it as root)');
    process.exit(1);
  }
  const r = spawnSync('unshare', ['-n', process.execPath, fileURLToPath(script), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, [INSIDE]: '1' },
  });
  if (r.error || r.status === null) {
    console.error(`browser test: could not create a network namespace (unshare -n needs root): ${String(r.error ?? r.signal)}`);
    process.exit(1);
  }
  process.exit(r.status);
}

/** Where screenshots go (gitignored): test-artifacts/browser/ in the repository. */
export function artifactsDir(name: string): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
  const dir = join(root, 'test-artifacts', 'browser', name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
