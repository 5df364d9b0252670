// A meeting across workers: spread over two workers through pipeToRouter, and moved to another
// worker of an allowed region when its worker dies, with media flowing again and state kept.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { MediaCore, PlacementEntry } from '../lib/index.js';
import { hostOf, testCore, user } from './helpers/core.js';
import { publish, pumpUntil, subscribe, type Published, type Subscribed } from './helpers/meetingPeer.js';
import { nextEvent } from './helpers/util.js';
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

test('a meeting larger than one worker share spreads to a second worker and media reaches a consumer there', async () => {
  const core: MediaCore = await testCore({
    workers: { regions: ['de-fra', 'de-fra'] },
    media: { participantsPerWorker: 1 },
  });
  const closers: Array<() => Promise<void>> = [];
  try {
    core.createAccount({ id: 'a', defaults: { waitingRoom: false, hostRequiredToStart: false } });
    const m = await core.createMeeting({ accountId: 'a', title: 'gross', hostIdentity: 'h@a.de' });
    const placements: PlacementEntry[] = [];
    core.observer.on('placement', (e) => placements.push(e));
    const host = await m.join(hostOf('h@a.de'));
    const guest = await m.join(user('g@a.de'));
    const pub = await publish(
      host,
      [
        { name: 'mic', source: 'microphone' },
        { name: 'cam', source: 'camera' },
      ],
      { chat: true },
    );
    closers.push(() => pub.pub.close());
    const sub = await subscribe(guest, [...pub.producers.values()].map((p) => p.id), [pub.chatId!]);
    closers.push(() => sub.sub.close());
    const hostWorker = m._media.workerOf(host.id);
    const guestWorker = m._media.workerOf(guest.id);
    assert.ok(hostWorker !== undefined && guestWorker !== undefined);
    assert.is.not(hostWorker, guestWorker, 'the guest is served by the second worker');
    assert.equal(new Set(m._media.workerIds), new Set(core.pool.workers.map((w) => w.id)));
    assert.equal(placements.map((p) => [p.workerId, p.region]), [[guestWorker, 'de-fra']], 'the spread is reported as a placement');
    await mediaFlows(pub, sub, 'piped');
    // Chat crosses the pipe too (SCTP between the two routers).
    pub.pub.sendChat('über zwei Worker');
    await sub.sub.waitFor(() => sub.sub.chat.length >= 1, 'the chat message on the second worker');
    assert.equal(sub.sub.chat.map((c) => c.text), ['über zwei Worker']);

    // The guest leaves: the second router is given back and its placement ends.
    guest.leave();
    assert.equal(m._media.workerIds, [hostWorker]);
    assert.is(placements.at(-1)!.endReason, 'released');
  } finally {
    for (const c of closers) await c();
    core.close();
  }
});

test('a killed worker: the meeting moves to another worker in an allowed region, keeps its state, and media flows again', async () => {
  // Two workers in Germany and one in Austria; the meeting may only use Germany.
  const core: MediaCore = await testCore({ workers: { regions: ['de-fra', 'de-fra', 'at-vie'] } });
  const closers: Array<() => Promise<void>> = [];
  try {
    core.createAccount({ id: 'a', defaults: { waitingRoom: true, hostRequiredToStart: true, allowedRegions: ['DE'] } });
    const m = await core.createMeeting({ accountId: 'a', title: 'ausfall', hostIdentity: 'h@a.de' });
    const host = await m.join(hostOf('h@a.de'));
    const guest = await m.join(user('g@a.de'));
    m.admit(host, guest.id);
    const cohost = await m.join(user('co@a.de'));
    m.admit(host, cohost.id);
    m.makeCoHost(host, cohost.id);
    const waiting = await m.join(user('w@a.de'));
    const banned = await m.join(user('x@a.de'));
    m.remove(host, banned.id);
    const pollId = m.createPoll(host, { question: 'Weiter?', options: ['ja', 'nein'] });
    guest.answerPoll(pollId, 0);
    m.lock(host);

    const pub1 = await publish(host, [
      { name: 'mic', source: 'microphone' },
      { name: 'cam', source: 'camera' },
    ]);
    closers.push(() => pub1.pub.close());
    const sub1 = await subscribe(guest, [...pub1.producers.values()].map((p) => p.id));
    closers.push(() => sub1.sub.close());
    await mediaFlows(pub1, sub1, 'vorher');

    const first = m.placements[0]!;
    const dead = core.pool.workers.find((w) => w.id === first.workerId)!;
    assert.is(dead.region, 'de-fra');
    const reconnectHost = nextEvent<[string]>(host, 'reconnect', 20_000);
    const reconnectGuest = nextEvent<[string]>(guest, 'reconnect', 20_000);
    const closedAtGuest = nextEvent<[string]>(guest, 'producerclosed', 20_000);
    process.kill(dead.pid, 'SIGKILL');
    assert.equal(await reconnectHost, ['worker-failed']);
    assert.equal(await reconnectGuest, ['worker-failed']);
    await closedAtGuest;

    // Placement: the old entry ended with the worker, a new one began on another German worker.
    assert.is(m.placements[0]!.endReason, 'worker-died');
    const now = m.placements.at(-1)!;
    assert.is.not(now.workerId, dead.id);
    assert.is(now.region, 'de-fra', 'never another region');
    assert.is(now.to, undefined);

    // Meeting state survived: roles, waiting list, bans, lock, polls.
    assert.is(m.host, host);
    assert.is(cohost.role, 'cohost');
    assert.equal(m.waiting, [waiting]);
    assert.ok(m.banned.includes('x@a.de'));
    assert.ok(m.locked);
    assert.equal(m.pollResults(host, pollId).counts, [1, 0]);
    assert.equal(m.participants.map((p) => p.state), ['admitted', 'admitted', 'admitted']);

    // The clients reconnect: new transports, produce and consume again; media flows.
    const pub2 = await publish(host, [
      { name: 'mic', source: 'microphone' },
      { name: 'cam', source: 'camera' },
    ]);
    closers.push(() => pub2.pub.close());
    const sub2 = await subscribe(guest, [...pub2.producers.values()].map((p) => p.id));
    closers.push(() => sub2.sub.close());
    assert.is(m._media.workerOf(host.id), now.workerId);
    await mediaFlows(pub2, sub2, 'nachher');
  } finally {
    for (const c of closers) await c();
    core.close();
  }
});

test('with no other worker in the region, the meeting waits for the replacement worker and moves there', async () => {
  // One German worker (respawned by the pool when it dies) and one in Austria that must stay unused.
  const core: MediaCore = await testCore({ workers: { regions: ['de-fra', 'at-vie'] } });
  try {
    core.createAccount({ id: 'a', defaults: { waitingRoom: false, hostRequiredToStart: false, allowedRegions: ['de-fra'] } });
    const m = await core.createMeeting({ accountId: 'a', title: 'allein', hostIdentity: 'h@a.de' });
    const host = await m.join(hostOf('h@a.de'));
    await host.createTransport('send');
    const dead = core.pool.workers.find((w) => w.id === m.placements[0]!.workerId)!;
    const reconnect = nextEvent<[string]>(host, 'reconnect', 20_000);
    process.kill(dead.pid, 'SIGKILL');
    assert.equal(await reconnect, ['worker-failed']);
    const now = m.placements.at(-1)!;
    assert.is(now.region, 'de-fra');
    assert.is.not(now.workerId, dead.id);
    assert.ok(core.pool.workers.some((w) => w.id === now.workerId && w.region === 'de-fra'), 'the replacement worker');
    const t = await host.createTransport('send');
    assert.ok(t.id);
    assert.is(m._media.workerOf(host.id), now.workerId);
  } finally {
    core.close();
  }
});

test.run();
