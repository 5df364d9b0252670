// Issue 10: SIGTERM is a graceful shutdown of a real `c4v-media serve` process: no new joins,
// every participant (admitted or waiting) gets `closing SERVER_SHUTDOWN`, the control-plane outbox
// is flushed within shutdown.timeoutMs (or kept on disk past it), the workers are closed without
// an error log, and the exit code is 0.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ControlPlaneStore } from '../lib/controlplane/store.js';
import { ControlPlaneReceiver } from './helpers/controlPlaneReceiver.js';
import { tempDir } from './helpers/controlPlane.js';
import { SignallingClient } from './helpers/signallingClient.js';
import { within } from './helpers/util.js';

const CLI = fileURLToPath(new URL('../bin/c4v-media.js', import.meta.url));
const SECRET = 'shutdown-test-secret-0123456789abcdef';

interface Served {
  child: ChildProcess;
  url: string;
  hostToken: string;
  /** JSON log lines (pino) the process wrote to stdout. */
  logs: Array<{ level: number; msg: string }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `c4v-media serve` in its own process group (as a service manager runs it). */
async function serve(dir: string, receiverUrl: string, env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve'], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      C4V_PORT: '0',
      C4V_WORKERS: '2',
      C4V_LOG_LEVEL: 'info',
      C4V_CONTROL_PLANE_OUTBOX: join(dir, 'outbox.sqlite'),
      C4V_CONTROL_PLANE_FILE: join(dir, 'metadata.jsonl'),
      C4V_CONTROL_PLANE_URL: receiverUrl,
      C4V_CONTROL_PLANE_SECRET: SECRET,
      ...env,
    },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const logs: Served['logs'] = [];
  let url = '';
  let hostToken = '';
  const lines = createInterface({ input: child.stdout! });
  await within(
    new Promise<void>((resolve, reject) => {
      lines.on('line', (line) => {
        if (line.startsWith('{')) logs.push(JSON.parse(line) as Served['logs'][number]);
        url ||= /^\s+signalling: (\S+)$/.exec(line)?.[1] ?? '';
        hostToken ||= /^\s+host token: (\S+)$/.exec(line)?.[1] ?? '';
        if (url && hostToken) resolve();
      });
      void exited.then(({ code }) => reject(new Error(`serve exited (${code}) before it was ready: ${stderr}`)));
    }),
    30_000,
    'c4v-media serve to be ready',
  );
  return { child, url, hostToken, logs, exited };
}

function killGroup(s: Served): void {
  if (s.child.exitCode === null && s.child.signalCode === null) {
    try {
      process.kill(-s.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function joinHostAndGuest(s: Served): Promise<[SignallingClient, SignallingClient]> {
  const host = await SignallingClient.connect(s.url);
  await host.join({ meetingId: 'demo', displayName: 'Demo Host', joinToken: s.hostToken, e2eeCapable: true });
  const guest = await SignallingClient.connect(s.url);
  // The demo meeting has a waiting room: the guest waits, and must be told about the shutdown too.
  await guest.join({ meetingId: 'demo', displayName: 'Gast', e2eeCapable: true });
  return [host, guest];
}

test('SIGTERM to the process group: closing SERVER_SHUTDOWN for everyone, MeetingEnded delivered, no error log, exit 0', async () => {
  const receiver = await ControlPlaneReceiver.start(SECRET);
  const { dir, cleanup } = tempDir();
  let s: Served | undefined;
  try {
    s = await serve(dir, receiver.url);
    const [host, guest] = await joinHostAndGuest(s);
    await receiver.waitFor(() => receiver.ofMeeting('demo').some((e) => e.kind === 'participantJoined'), 'the host join at the control plane');

    // As systemd or a terminal does it: the workers get the signal as well.
    process.kill(-s.child.pid!, 'SIGTERM');
    await host.waitFor('closing');
    await guest.waitFor('closing');
    assert.is(host.closingReason, 'SERVER_SHUTDOWN');
    assert.is(guest.closingReason, 'SERVER_SHUTDOWN');
    await host.waitClosed();
    await guest.waitClosed();
    assert.equal(await within(s.exited, 20_000, 'serve to exit'), { code: 0, signal: null });

    // The outbox was flushed before the exit: the meeting's end is at the control plane.
    const demo = receiver.ofMeeting('demo');
    assert.is(demo.at(-1)!.kind, 'meetingEnded');
    assert.equal(demo.map((e) => e.sequence), demo.map((_, i) => i + 1));
    const errors = s.logs.filter((l) => l.level >= 50);
    assert.equal(errors, [], 'no error was logged');
    assert.ok(s.logs.some((l) => l.msg === 'stopped'));
  } finally {
    if (s) killGroup(s);
    await receiver.close();
    cleanup();
  }
});

test('SIGTERM with the control plane down: no new joins, exit 0 after shutdown.timeoutMs, the outbox kept for the next start', async () => {
  const receiver = await ControlPlaneReceiver.start(SECRET);
  receiver.mode = 'down';
  const { dir, cleanup } = tempDir();
  let s: Served | undefined;
  try {
    s = await serve(dir, receiver.url, { C4V_SHUTDOWN_TIMEOUT_MS: '3000' });
    const [host] = await joinHostAndGuest(s);
    s.child.kill('SIGTERM');
    await host.waitFor('closing');
    assert.is(host.closingReason, 'SERVER_SHUTDOWN');
    // The process is now waiting for the outbox: a new client cannot even connect.
    try {
      const late = await SignallingClient.connect(s.url);
      await late.join({ meetingId: 'demo', displayName: 'Zu spät', e2eeCapable: true });
      assert.unreachable('a join after SIGTERM was accepted');
    } catch (error) {
      assert.instance(error, Error);
      assert.not.match((error as Error).message, /unreachable|accepted/);
    }
    assert.equal(await within(s.exited, 20_000, 'serve to exit'), { code: 0, signal: null });
    assert.equal(s.logs.filter((l) => l.level >= 50), [], 'no error was logged');
    assert.ok(s.logs.some((l) => l.level === 40 && /shutdown deadline/.test(l.msg)), 'the undelivered outbox is reported');

    // Nothing was lost: the meeting's end waits in the outbox for the next start.
    const store = new ControlPlaneStore(join(dir, 'outbox.sqlite'));
    try {
      assert.ok(store.pendingCount() > 0);
      assert.is(store.events('demo').at(-1)!.kind, 'meetingEnded');
    } finally {
      store.close();
    }
  } finally {
    if (s) killGroup(s);
    await receiver.close();
    cleanup();
  }
});

test.run();
