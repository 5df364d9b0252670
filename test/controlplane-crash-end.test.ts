// Issue 10: a meeting server process is SIGKILLed with a meeting open and started again on the
// same outbox. The control plane gets exactly one MeetingEnded for the open meeting, dated at its
// last event; the meeting created again under the same id is a new instance with its own
// sequence, starting with its own first event. Real processes, a real HTTP receiver.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ControlPlaneReceiver, type ReceivedEvent } from './helpers/controlPlaneReceiver.js';
import { tempDir } from './helpers/controlPlane.js';
import { within } from './helpers/util.js';

const CHILD = fileURLToPath(new URL('./fixtures/controlPlaneRestartChild.js', import.meta.url));

/** Starts the fixture and resolves with the child and the first line matching `pattern`. */
async function start(args: string[], pattern: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  const match = await within(
    new Promise<RegExpExecArray>((resolve, reject) => {
      lines.on('line', (line) => {
        const m = pattern.exec(line);
        if (m) resolve(m);
      });
      child.once('exit', (code) => reject(new Error(`child exited (${code}): ${stderr}`)));
    }),
    30_000,
    `the child to print ${pattern}`,
  );
  return { child, match };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await within(exited, 10_000, 'the child to die');
}

const byInstance = (events: ReceivedEvent[]): Map<string, ReceivedEvent[]> => {
  const out = new Map<string, ReceivedEvent[]>();
  for (const e of events) out.set(e.meetingInstanceId, [...(out.get(e.meetingInstanceId) ?? []), e]);
  return out;
};

test('after a crash, the open meeting gets one MeetingEnded at its last event; the re-created one is a new instance', async () => {
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const outbox = join(dir, 'outbox.sqlite');
  const children: ChildProcess[] = [];
  try {
    const first = await start([outbox, receiver.url, receiver.secret, 'first'], /^STORED (\d+) (\d+) (\d+)$/);
    children.push(first.child);
    const [stored, t0, t1] = first.match.slice(1).map(Number) as [number, number, number];
    await receiver.waitFor(() => receiver.accepted.length >= stored, 'the first process to deliver everything');
    await kill(first.child);
    const beforeRestart = receiver.accepted.length;
    assert.is(beforeRestart, stored);
    assert.is(receiver.ofMeeting('crash-open').filter((e) => e.kind === 'meetingEnded').length, 0, 'open when killed');

    const again = await start([outbox, receiver.url, receiver.secret, 'again'], /^READY$/);
    children.push(again.child);
    await receiver.waitFor(
      () => {
        const events = receiver.ofMeeting('crash-open');
        return events.some((e) => e.kind === 'meetingEnded') && events.filter((e) => e.kind === 'participantJoined').length >= 4;
      },
      'the re-created meeting and its host to reach the control plane',
    );

    const instances = byInstance(receiver.ofMeeting('crash-open'));
    assert.is(instances.size, 2, 'two instances of the meeting id');
    const [old, fresh] = [...instances.values()] as [ReceivedEvent[], ReceivedEvent[]];
    assert.ok(old[0]!.meetingInstanceId !== '' && fresh[0]!.meetingInstanceId !== '');

    // The crashed instance: its events 1..n, then exactly one MeetingEnded, dated at its last event.
    assert.equal(old.map((e) => e.sequence), old.map((_, i) => i + 1), 'in order, no gap');
    const ends = old.filter((e) => e.kind === 'meetingEnded');
    assert.is(ends.length, 1, 'exactly one MeetingEnded');
    assert.is(old.at(-1)!.kind, 'meetingEnded', 'and it is the last event');
    const end = ends[0]!.body as { actualEndMs: number; actualStartMs: number; participantCount: number; participantDisplayNames: string[] };
    assert.ok(end.actualEndMs >= t0 && end.actualEndMs <= t1, `ended at its last event (${end.actualEndMs} in [${t0}, ${t1}])`);
    const started = old.find((e) => e.kind === 'meetingStarted')!.body as { actualStartMs: number };
    assert.is(end.actualStartMs, started.actualStartMs);
    assert.equal(new Set(end.participantDisplayNames), new Set(['Dr. Anna Gastgeberin', 'Bob Bauer', 'Carol Christ']));
    assert.is(end.participantCount, 3);

    // The re-created meeting: a new instance with its own sequence, from its own first event.
    assert.equal(fresh.map((e) => e.sequence), fresh.map((_, i) => i + 1));
    assert.equal(fresh.slice(0, 2).map((e) => e.kind), ['meetingUpdated', 'meetingStarted']);
    assert.is((fresh[0]!.body as { meeting: { title: string } }).meeting.title, 'wieder da');
    assert.not.ok(fresh.some((e) => e.kind === 'meetingEnded'), 'the new instance is running');

    // The meeting that ended before the crash is not ended a second time.
    assert.is(receiver.ofMeeting('crash-done').filter((e) => e.kind === 'meetingEnded').length, 1);
    assert.is(receiver.refused.length, 0);
  } finally {
    for (const c of children) await kill(c);
    await receiver.close();
    cleanup();
  }
});

test.run();
