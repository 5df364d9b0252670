// Every worker dies at once (issue 10): the pool respawns them, and each meeting waits for a
// worker of its allowed regions to be back instead of ending; its participants reconnect and
// media flows again. Real workers, real werift peers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MediaCore, Meeting, PoolWorker } from '../lib/index.js';
import { hostOf, testCore, user } from './helpers/core.js';
import { publish, pumpUntil, subscribe, type Published, type Subscribed } from './helpers/meetingPeer.js';
import { memoryLogger, nextEvent, within } from './helpers/util.js';
import { vp8Payload } from './helpers/weriftPeer.js';

/** Sends audio + video from `pub` until `sub` has both, with payloads tagged by `tag`. */
async function mediaFlows(pub: Published, sub: Subscribed, tag: string): Promise<void> {
  const [a, v] = [sub.consumers.find((c) => c.kind === 'audio')!, sub.consumers.find((c) => c.kind === 'video')!];
  const got = (id: string): boolean => sub.sub.packetsOf(id).some((p) => p.payload.includes(Buffer.from(tag)));
  let i = 0;
  await pumpUntil(
    () => {
      pub.pub.send('mic', Buffer.from(`${tag}-a-${i}`));
      pub.pub.send('cam', vp8Payload(Buffer.from(`${tag}-v-${i}`.padEnd(300, '#'))), true);
      i++;
    },
    () => got(a.id) && got(v.id),
    `audio and video tagged ${tag}`,
  );
}

/** Kills every worker of the pool at once and resolves when the pool has replaced all of them. */
async function killEveryWorker(core: MediaCore): Promise<PoolWorker[]> {
  const dead = core.pool.workers;
  const back = within(
    new Promise<void>((resolve) => {
      const onAdded = (): void => {
        if (core.pool.workers.filter((w) => !dead.includes(w)).length < dead.length) return;
        core.pool.off('workeradded', onAdded);
        resolve();
      };
      core.pool.on('workeradded', onAdded);
    }),
    20_000,
    'the pool to respawn every worker',
  );
  for (const w of dead) process.kill(w.pid, 'SIGKILL');
  await back;
  return dead;
}

async function scenario(participantsPerWorker: number): Promise<void> {
  const { logger, lines } = memoryLogger('info');
  const core: MediaCore = await testCore({ logger, workers: { regions: ['de-fra', 'de-fra'] }, media: { participantsPerWorker } });
  const closers: Array<() => Promise<void>> = [];
  try {
    core.createAccount({ id: 'a', defaults: { waitingRoom: false, hostRequiredToStart: false, allowedRegions: ['DE'] } });
    const m: Meeting = await core.createMeeting({ accountId: 'a', title: 'alle weg', hostIdentity: 'h@a.de' });
    const host = await m.join(hostOf('h@a.de'));
    const guest = await m.join(user('g@a.de'));
    m.lock(host);
    const pub1 = await publish(host, [
      { name: 'mic', source: 'microphone' },
      { name: 'cam', source: 'camera' },
    ]);
    closers.push(() => pub1.pub.close());
    const sub1 = await subscribe(guest, [...pub1.producers.values()].map((p) => p.id));
    closers.push(() => sub1.sub.close());
    await mediaFlows(pub1, sub1, 'vorher');
    const spread = new Set(m._media.workerIds).size;
    assert.is(spread, participantsPerWorker === 1 ? 2 : 1, 'the set-up this scenario is about');

    let ended = false;
    m.on('meetingended', () => (ended = true));
    const reconnectHost = nextEvent<[string]>(host, 'reconnect', 30_000);
    const reconnectGuest = nextEvent<[string]>(guest, 'reconnect', 30_000);
    const dead = await killEveryWorker(core);
    assert.equal(await reconnectHost, ['worker-failed']);
    assert.equal(await reconnectGuest, ['worker-failed']);

    // The meeting lives on, on the respawned workers, with its state.
    assert.not.ok(ended, 'the meeting did not end');
    assert.not.ok(m.ended);
    assert.ok(m.locked);
    assert.equal(m.participants.map((p) => p.state), ['admitted', 'admitted']);
    const live = new Set(core.pool.workers.map((w) => w.id));
    assert.ok(m._media.workerIds.length >= 1 && m._media.workerIds.every((id) => live.has(id)), 'routers on live workers only');
    assert.ok(m._media.workerIds.every((id) => !dead.some((d) => d.id === id)));

    // The clients reconnect and media flows again.
    const pub2 = await publish(host, [
      { name: 'mic', source: 'microphone' },
      { name: 'cam', source: 'camera' },
    ]);
    closers.push(() => pub2.pub.close());
    const sub2 = await subscribe(guest, [...pub2.producers.values()].map((p) => p.id));
    closers.push(() => sub2.sub.close());
    await mediaFlows(pub2, sub2, 'nachher');
    assert.not.ok(
      lines.some((l) => l.includes('ending the meeting')),
      'no recovery failure was logged',
    );
  } finally {
    for (const c of closers) await c();
    core.close();
  }
}

test('every worker killed at once: a meeting on one of two workers waits for the respawn, and media flows again', async () => {
  // The reported bug: the replacement picked the other worker, which was dying too.
  await scenario(200);
});

test('every worker killed at once: a meeting spread over both workers comes back, and media flows again', async () => {
  await scenario(1);
});

test('with no worker coming back, the meeting ends with worker-failed after workerRecoveryTimeoutMs', async () => {
  const core: MediaCore = await testCore({
    workers: { regions: ['de-fra'], respawn: false },
    media: { workerRecoveryTimeoutMs: 200 },
  });
  try {
    core.createAccount({ id: 'a', defaults: { waitingRoom: false, hostRequiredToStart: false } });
    const m = await core.createMeeting({ accountId: 'a', title: 'ohne Ersatz', hostIdentity: 'h@a.de' });
    const host = await m.join(hostOf('h@a.de'));
    const closed = nextEvent<[string]>(host, 'close', 20_000);
    process.kill(core.pool.workers[0]!.pid, 'SIGKILL');
    assert.equal(await closed, ['worker-failed']);
    assert.ok(m.ended);
  } finally {
    core.close();
  }
});

test.run();
