// Nothing is lost: the control plane goes down during meetings, the meeting server process is
// killed (SIGKILL, no clean shutdown), the control plane comes back and the adapter is started
// again on the same outbox. Every event arrives exactly once by idempotency key, in order per meeting.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createControlPlaneAdapter, HttpSink, TypedEmitter } from '../lib/index.js';
import { ControlPlaneReceiver } from './helpers/controlPlaneReceiver.js';
import { tempDir } from './helpers/controlPlane.js';
import { silentLogger, within } from './helpers/util.js';

const CHILD = fileURLToPath(new URL('./fixtures/controlPlaneChild.js', import.meta.url));

test('control plane down, process killed, control plane back: every event arrives exactly once, in order per meeting', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const outboxPath = join(dir, 'outbox.sqlite');
  // Three events get through, the fourth is accepted but its answer is lost (so it will come
  // again), then the control plane is down.
  receiver.script.push('up', 'up', 'up', 'lose-answer');
  receiver.mode = 'down';
  const child = spawn(process.execPath, [CHILD, outboxPath, receiver.url, receiver.secret], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  let adapter: ReturnType<typeof createControlPlaneAdapter> | undefined;
  try {
    let stored = 0;
    const lines = createInterface({ input: child.stdout });
    await within(
      new Promise<void>((resolve, reject) => {
        lines.on('line', (line) => {
          const m = /^STORED (\d+)$/.exec(line);
          if (m) {
            stored = Number(m[1]);
            resolve();
          }
        });
        child.once('exit', (code) => reject(new Error(`child exited (${code}) before storing: ${stderr}`)));
      }),
      20_000,
      'the child to run its meetings',
    );
    assert.ok(stored >= 15, `the meetings produced events (${stored})`);
    // The adapter keeps retrying against the dead control plane: let it fail a few times.
    await receiver.waitFor(() => receiver.bodies.length >= 8, 'retries against the control plane while it is down');
    assert.is(receiver.accepted.length, 4, 'only what got through before the outage');
    child.kill('SIGKILL');
    assert.is(await within(exited, 10_000, 'the child to die'), 'SIGKILL');

    // The control plane is back; a new process (here: this one, with no meetings yet) starts the
    // adapter on the same outbox.
    receiver.mode = 'up';
    adapter = createControlPlaneAdapter({
      source: { observer: new TypedEmitter() },
      outboxPath,
      sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret })],
      logger: silentLogger(),
      retry: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    await adapter.drained(20_000);

    const storedEvents = adapter.store.events();
    // Issue 10: the restart adds one event, crash-b's MeetingEnded (the meeting died with the process).
    assert.is(storedEvents.length, stored + 1, 'the outbox lost nothing in the crash');
    assert.ok(storedEvents.every((e) => e.delivered));
    // Exactly once by idempotency key: every stored event was accepted once, nothing else was.
    assert.equal(new Set(receiver.accepted.map((e) => e.eventId)), new Set(storedEvents.map((e) => e.eventId)));
    assert.is(receiver.accepted.length, stored + 1);
    assert.ok([...receiver.arrivals.values()].some((n) => n > 1), 'a duplicate did arrive (the lost answer) and was recognised');
    assert.is(receiver.refused.length, 0, 'every request was signed and fresh');
    // In order per meeting: first arrivals are 1, 2, 3 ... for each meeting.
    for (const meetingId of ['crash-a', 'crash-b']) {
      const seqs = receiver.ofMeeting(meetingId).map((e) => e.sequence);
      assert.ok(seqs.length > 5, `${meetingId} has events`);
      assert.equal(seqs, seqs.map((_, i) => i + 1), `${meetingId} in order`);
    }
    assert.is(receiver.ofMeeting('crash-a').at(-1)!.kind, 'meetingEnded');
    assert.is(receiver.ofMeeting('crash-b').at(-1)!.kind, 'meetingEnded', 'the meeting the crash left open is ended once');
    assert.is(receiver.ofMeeting('crash-b').filter((e) => e.kind === 'meetingEnded').length, 1);
    // crash-b died with the process: its record is closed so that its retention clock runs.
    assert.ok(adapter.auditRecord('crash-b')!.endedAt, 'the orphaned meeting is marked ended');
    assert.ok(adapter.auditRecord('crash-b')!.actions.length > 0, 'its audit record survived the crash');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await adapter?.close();
    await receiver.close();
    cleanup();
  }
});

test.run();
