// Region pinning end to end: real workers in two regions (de-fra, ch-zrh), accounts that allow only
// one of them. A meeting is never placed, spread or moved outside its allowed regions, and the
// audit record shows where it ran.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { C4vError, createControlPlaneAdapter, FileSink, type MediaCore, type PlacementEntry } from '../lib/index.js';
import { startCore, tempDir } from './helpers/controlPlane.js';
import { nextEvent, silentLogger, within } from './helpers/util.js';

function placementsOf(core: MediaCore, meetingId: string): PlacementEntry[] {
  const seen: PlacementEntry[] = [];
  core.observer.on('placement', (p) => {
    if (p.meetingId === meetingId) seen.push(p);
  });
  return seen;
}

function untilPlacement(core: MediaCore, pred: (p: PlacementEntry) => boolean, what: string): Promise<PlacementEntry> {
  return within(
    new Promise<PlacementEntry>((resolve) => {
      const on = (p: PlacementEntry): void => {
        if (!pred(p)) return;
        core.observer.off('placement', on);
        resolve(p);
      };
      core.observer.on('placement', on);
    }),
    20_000,
    what,
  );
}

test('a meeting is placed, spread and moved after a worker death only inside its allowed regions', async () => {
  const core = await startCore({ regions: ['de-fra', 'ch-zrh'], participantsPerWorker: 1 });
  const { dir, cleanup } = tempDir();
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath: join(dir, 'outbox.sqlite'),
    sinks: [new FileSink({ path: join(dir, 'events.jsonl') })],
    logger: silentLogger(),
  });
  try {
    core.createAccount({ id: 'de-only', defaults: { allowedRegions: ['DE'], waitingRoom: false } });
    const seen = placementsOf(core, 'pin-move');
    const meeting = await core.createMeeting({ id: 'pin-move', accountId: 'de-only', title: 'T', hostIdentity: 'h' });
    const de = core.pool.workers.find((w) => w.region === 'de-fra')!;
    const ch = core.pool.workers.find((w) => w.region === 'ch-zrh')!;
    assert.equal(meeting.placements.map((p) => p.region), ['de-fra']);

    // Spreading: one participant per worker is configured, but the only other worker is in CH, so
    // the second participant's media stays on the DE router instead.
    const host = await meeting.join({ identity: 'h', displayName: 'H', authenticated: true, asHost: true, e2eeCapable: true });
    const guest = await meeting.join({ identity: 'g', displayName: 'G', authenticated: true, e2eeCapable: true });
    assert.is(guest.state, 'admitted');
    await host.createTransport('send');
    await guest.createTransport('send');
    assert.is(ch.load, 0, 'nothing of the DE meeting went to the CH worker');
    assert.equal(meeting.placements.map((p) => p.region), ['de-fra']);

    // The DE worker dies: the pool starts a replacement in de-fra and the meeting moves there,
    // never to the live CH worker.
    const moved = untilPlacement(core, (p) => p.meetingId === 'pin-move' && p.workerId !== de.id && !p.to, 'the meeting placed again');
    process.kill(de.pid, 'SIGKILL');
    const again = await moved;
    assert.is(again.region, 'de-fra');
    assert.is(ch.load, 0);
    assert.ok(seen.every((p) => p.region === 'de-fra'), `every placement in DE: ${seen.map((p) => p.region).join(', ')}`);

    // The audit record: the first worker until its death, then the replacement.
    const record = adapter.auditRecord('pin-move')!;
    assert.equal(
      record.placements.map((p) => [p.workerId, p.region, p.endReason ?? null]),
      [
        [de.id, 'de-fra', 'worker-died'],
        [again.workerId, 'de-fra', null],
      ],
    );
    assert.ok(record.placements[0]!.to! <= record.placements[1]!.from, 'the move follows the death');
  } finally {
    await adapter.close();
    core.close();
    cleanup();
  }
});

test('with the allowed region stopped, a meeting fails closed with REGION_UNAVAILABLE although another region is up', async () => {
  const core = await startCore({ regions: ['de-fra', 'ch-zrh'], respawn: false });
  try {
    core.createAccount({ id: 'de-only', defaults: { allowedRegions: ['DE'] } });
    core.createAccount({ id: 'ch-only', defaults: { allowedRegions: ['CH'] } });
    core.createAccount({ id: 'de-fra-only', defaults: { allowedRegions: ['de-fra'] } });
    const seen = placementsOf(core, 'pin-live');
    await core.createMeeting({ id: 'pin-live', accountId: 'de-only', title: 'T', hostIdentity: 'h' });
    const de = core.pool.workers.find((w) => w.region === 'de-fra')!;

    // Stop the only DE worker.
    const died = nextEvent(core, 'workerdied');
    const ended = untilPlacement(core, (p) => p.meetingId === 'pin-live' && p.endReason === 'worker-died', 'the DE placement to end');
    process.kill(de.pid, 'SIGKILL');
    await died;
    await ended;
    assert.equal(core.pool.regions, ['ch-zrh'], 'only CH is up');

    for (const accountId of ['de-only', 'de-fra-only']) {
      try {
        await core.createMeeting({ accountId, title: 'T', hostIdentity: 'h' });
        assert.unreachable(`a ${accountId} meeting was placed`);
      } catch (error) {
        assert.instance(error, C4vError);
        assert.is((error as C4vError).code, 'REGION_UNAVAILABLE');
      }
    }
    // CH is up and serves a CH meeting; the DE meeting was not moved there.
    const chMeeting = await core.createMeeting({ id: 'pin-ch', accountId: 'ch-only', title: 'T', hostIdentity: 'h' });
    assert.equal(chMeeting.placements.map((p) => p.region), ['ch-zrh']);
    const ch = core.pool.workers.find((w) => w.region === 'ch-zrh')!;
    assert.is(ch.load, 1, 'the CH worker carries the CH meeting only');
    assert.ok(seen.every((p) => p.region === 'de-fra'), `the DE meeting was only ever in DE: ${seen.map((p) => p.region).join(', ')}`);
  } finally {
    core.close();
  }
});

test.run();
