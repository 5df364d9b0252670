// Issue 14: a large meeting spreads over every worker (media.spreadAbove): from that size on, each
// new participant goes to the least-loaded router, so one producer's consumers are served by all
// workers in parallel through pipes. Real workers and real werift peers.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MediaCore, Participant } from '../lib/index.js';
import { hostOf, testCore, user } from './helpers/core.js';
import { publish, pumpUntil, subscribe, type Subscribed } from './helpers/meetingPeer.js';

test('from spreadAbove participants on, new participants alternate over both workers and a consumer on the second worker gets the media', async () => {
  const core: MediaCore = await testCore({ workers: { regions: ['de-fra', 'de-fra'] }, media: { spreadAbove: 2 } });
  const closers: Array<() => Promise<void>> = [];
  try {
    core.createAccount({ id: 'a', defaults: { waitingRoom: false, hostRequiredToStart: false } });
    const m = await core.createMeeting({ accountId: 'a', title: 'webinar', hostIdentity: 'h@a.de' });
    const host = await m.join(hostOf('h@a.de'));
    const pub = await publish(host, [{ name: 'mic', source: 'microphone' }]);
    closers.push(() => pub.pub.close());
    const micId = pub.producers.get('mic')!.id;
    const guests: Participant[] = [];
    const subs: Subscribed[] = [];
    for (let i = 0; i < 4; i++) {
      const g = await m.join(user(`g${i}@a.de`));
      guests.push(g);
      const s = await subscribe(g, [micId]);
      closers.push(() => s.sub.close());
      subs.push(s);
    }
    const first = m._media.workerOf(host.id)!;
    const workerOfGuest = guests.map((g) => m._media.workerOf(g.id));
    // Host and g0 were placed while the meeting was below 2 participants: the first worker. From
    // then on the least-loaded router: g1 opens the second worker, g2 goes there too (1 < 2), g3
    // back to the first (2 = 2).
    assert.is(workerOfGuest[0], first);
    assert.is.not(workerOfGuest[1], first);
    assert.is(workerOfGuest[2], workerOfGuest[1]);
    assert.is(workerOfGuest[3], first);
    assert.equal(new Set(m._media.workerIds), new Set(core.pool.workers.map((w) => w.id)));

    // Media crosses the pipe to the consumers on the second worker.
    const tag = Buffer.from('spread');
    const got = (s: Subscribed): boolean => s.sub.packetsOf(s.consumers[0]!.id).some((p) => p.payload.includes(tag));
    let i = 0;
    await pumpUntil(
      () => pub.pub.send('mic', Buffer.concat([tag, Buffer.from(`-${i++}`)])),
      () => subs.every(got),
      'the tagged audio at all four consumers',
    );
  } finally {
    for (const c of closers) await c();
    core.close();
  }
});

test('spreadAbove must be at least 1', async () => {
  const core: MediaCore = await testCore({ media: { spreadAbove: 0 } });
  try {
    core.createAccount({ id: 'a' });
    try {
      await core.createMeeting({ accountId: 'a', title: 'x', hostIdentity: 'h@a.de' });
      assert.unreachable('a meeting with spreadAbove 0 was created');
    } catch (error) {
      assert.instance(error, TypeError);
      assert.match(String(error), /spreadAbove/);
    }
  } finally {
    core.close();
  }
});

test.run();
