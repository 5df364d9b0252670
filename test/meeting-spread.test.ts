// Issue 14: a large meeting spreads over every worker (media.spreadAbove): from that size on, each
// new participant goes to the least-loaded router, so one producer's consumers are served by all
// workers in parallel through pipes. Real workers and real werift peers.
//
// w3-14c: a spread meeting fans out as a tree (media.spreadTree, default on): participants placed
// while the meeting is spread receive on their worker's fan-out router, so a producer's own router
// carries only pipes (one per worker, its own included) and never the local copies. These tests
// read mediasoup's own objects (worker/router/transport observers), not MeetingMedia's bookkeeping,
// and check that the media arrives at every receiver (gateway transports, SRTP).
import { createSocket, type Socket } from 'node:dgram';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { types as ms } from 'mediasoup';
import { createGatewayTransport, type GatewayTransport } from '../lib/media/GatewayTransport.js';
import type { MediaCore, Meeting, Participant } from '../lib/index.js';
import { packetEngine, type SrtpKey, type SrtpSession } from '../bench/native/index.js';
import { hostOf, testCore, user } from './helpers/core.js';
import { publish, pumpUntil, subscribe, type Subscribed } from './helpers/meetingPeer.js';
import { nextEvent } from './helpers/util.js';

const engine = packetEngine();
const OPUS = { mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 };
const SSRC = 0x5e1;

/** Every router, transport, producer and consumer mediasoup creates on the core's workers. */
interface Watched {
  routers: Array<{ router: ms.Router; workerId: number }>;
  producers: Array<{ producer: ms.Producer; transport: ms.Transport; router: ms.Router; workerId: number }>;
  consumers: Array<{ consumer: ms.Consumer; transport: ms.Transport; router: ms.Router; workerId: number }>;
}

function watch(core: MediaCore): Watched {
  const w: Watched = { routers: [], producers: [], consumers: [] };
  for (const pw of core.pool.workers) {
    pw.worker.observer.on('newrouter', (router: ms.Router) => {
      w.routers.push({ router, workerId: pw.id });
      router.observer.on('newtransport', (transport: ms.Transport) => {
        transport.observer.on('newproducer', (producer: ms.Producer) => w.producers.push({ producer, transport, router, workerId: pw.id }));
        transport.observer.on('newconsumer', (consumer: ms.Consumer) => w.consumers.push({ consumer, transport, router, workerId: pw.id }));
      });
    });
  }
  return w;
}

const live = <T extends { consumer?: ms.Consumer; producer?: ms.Producer }>(list: T[]): T[] => list.filter((e) => !(e.consumer ?? e.producer)!.closed);

/** The live consumers of the router that holds the client's producer `producerId`, by transport type. */
function producerRouterConsumers(w: Watched, producerId: string): { router: ms.Router; pipe: number; other: number } {
  const home = w.producers.find((p) => p.producer.id === producerId && p.transport.type !== 'pipe')!;
  const mine = live(w.consumers).filter((c) => c.router === home.router);
  return { router: home.router, pipe: mine.filter((c) => c.transport.type === 'pipe').length, other: mine.filter((c) => c.transport.type !== 'pipe').length };
}

/** A receiving gateway participant: its copies arrive at `rx`, decrypted with its own SRTP key. */
interface Receiver {
  p: Participant;
  t: GatewayTransport;
  consumerId: string;
  ssrc: number;
  srtp: SrtpSession;
}

function srtpKey(t: GatewayTransport): SrtpKey {
  return { suite: t.info.srtpParameters.cryptoSuite as SrtpKey['suite'], key: Buffer.from(t.info.srtpParameters.keyBase64, 'base64') };
}

/** A meeting whose member `producer` sends audio through a gateway transport, and a socket where receivers' copies land. */
class GatewayFanout {
  readonly rx: Socket = createSocket('udp4');
  readonly tx: Socket = createSocket('udp4');
  readonly got = new Map<number, number>();
  readonly receivers: Receiver[] = [];
  #seq = 0;
  #out!: SrtpSession;
  #to!: { ip: string; port: number };
  producerId = '';

  constructor(readonly meeting: Meeting) {}

  async start(producer: Participant): Promise<void> {
    await new Promise<void>((r) => this.rx.bind(0, '127.0.0.1', () => r()));
    this.rx.on('message', (msg) => {
      const ssrc = msg.readUInt32BE(8);
      const r = this.receivers.find((x) => x.ssrc === ssrc);
      if (!r || (msg[1]! >= 192 && msg[1]! <= 223)) return;
      try {
        r.srtp.unprotect(msg);
        this.got.set(ssrc, (this.got.get(ssrc) ?? 0) + 1);
      } catch {
        // A copy that does not decrypt does not count.
      }
    });
    const inT = await createGatewayTransport(producer, { direction: 'send' });
    const key: SrtpKey = { suite: 'AES_CM_128_HMAC_SHA1_80', key: Buffer.alloc(30, 7) };
    await inT.connect({ srtpParameters: { cryptoSuite: key.suite, keyBase64: key.key.toString('base64') } });
    this.#out = engine.createSrtpSession(key, 'outbound');
    this.#to = { ip: inT.info.ip, port: inT.info.port };
    const prod = await producer.produce({ transportId: inT.id, source: 'microphone', kind: 'audio', rtpParameters: { codecs: [OPUS], encodings: [{ ssrc: SSRC }] } });
    this.producerId = prod.id;
  }

  async receive(p: Participant): Promise<Receiver> {
    const t = await createGatewayTransport(p, { direction: 'recv' });
    const rxPort = (this.rx.address() as { port: number }).port;
    await t.connect({ ip: '127.0.0.1', port: rxPort, srtpParameters: { cryptoSuite: 'AES_CM_128_HMAC_SHA1_80', keyBase64: Buffer.alloc(30, 9).toString('base64') } });
    const caps = this.meeting.rtpCapabilities as ms.RtpCapabilities;
    const c = await p.consume({ transportId: t.id, producerId: this.producerId, rtpCapabilities: { codecs: caps.codecs!.filter((x) => x.kind === 'audio'), headerExtensions: [] } });
    await p.resumeConsumer(c.id);
    const ssrc = (c.rtpParameters as ms.RtpParameters).encodings![0]!.ssrc!;
    const r = { p, t, consumerId: c.id, ssrc, srtp: engine.createSrtpSession(srtpKey(t), 'inbound') };
    this.receivers.push(r);
    return r;
  }

  send(): void {
    const seq = this.#seq++;
    const pkt = engine.buildRtp({ payloadType: OPUS.payloadType, ssrc: SSRC, clockRate: 48000, size: 60 }, { rtpSeq: seq, rtpTimestamp: seq * 960, seq });
    this.tx.send(this.#out.protect(pkt), this.#to.port, this.#to.ip);
  }

  /** Sends until every receiver in `rs` got a copy it could decrypt (counted from now on). */
  async flowsTo(rs: Receiver[], what: string): Promise<void> {
    for (const r of rs) this.got.delete(r.ssrc);
    await pumpUntil(() => this.send(), () => rs.every((r) => (this.got.get(r.ssrc) ?? 0) > 0), what);
  }

  close(): void {
    this.rx.close();
    this.tx.close();
  }
}

/** A two-worker core, a meeting with a gateway producer and `n` gateway receivers. */
async function spreadMeeting(o: { n: number; spreadAbove?: number; spreadTree?: boolean }): Promise<{ core: MediaCore; w: Watched; m: Meeting; host: Participant; fan: GatewayFanout; producer: Participant }> {
  const core: MediaCore = await testCore({
    workers: { regions: ['de-fra', 'de-fra'] },
    media: { spreadAbove: o.spreadAbove ?? 1, ...(o.spreadTree === undefined ? {} : { spreadTree: o.spreadTree }) },
  });
  const w = watch(core);
  core.createAccount({ id: 'a', defaults: { waitingRoom: false, hostRequiredToStart: false } });
  const m = await core.createMeeting({ accountId: 'a', title: 'webinar', hostIdentity: 'h@a.de', settings: { maxParticipants: 500 } });
  const host = await m.join(hostOf('h@a.de'));
  const producer = await m.join(user('speaker@a.de'));
  const fan = new GatewayFanout(m);
  await fan.start(producer);
  for (let i = 0; i < o.n; i++) await fan.receive(await m.join(user(`r${i}@a.de`)));
  return { core, w, m, host, fan, producer };
}

function perWorker(m: Meeting, rs: Receiver[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of rs) out.set(m._media.workerOf(r.p.id)!, (out.get(m._media.workerOf(r.p.id)!) ?? 0) + 1);
  return out;
}

test('from spreadAbove participants on, new participants alternate over both workers and the guests on either worker get the media and the chat (WebRTC peers)', async () => {
  const core: MediaCore = await testCore({ workers: { regions: ['de-fra', 'de-fra'] }, media: { spreadAbove: 2 } });
  const closers: Array<() => Promise<void>> = [];
  try {
    core.createAccount({ id: 'a', defaults: { waitingRoom: false, hostRequiredToStart: false } });
    const m = await core.createMeeting({ accountId: 'a', title: 'webinar', hostIdentity: 'h@a.de' });
    const host = await m.join(hostOf('h@a.de'));
    const pub = await publish(host, [{ name: 'mic', source: 'microphone' }], { chat: true });
    closers.push(() => pub.pub.close());
    const micId = pub.producers.get('mic')!.id;
    const guests: Participant[] = [];
    const subs: Subscribed[] = [];
    for (let i = 0; i < 4; i++) {
      const g = await m.join(user(`g${i}@a.de`));
      guests.push(g);
      const s = await subscribe(g, [micId], [pub.chatId!]);
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
    // The chat channel crosses to the fan-out routers too (a data pipe, with its own id there);
    // the guests see the host's channel id.
    assert.ok(subs.every((s) => s.chats[0]!.dataProducerId === pub.chatId));
    await pumpUntil(
      () => pub.pub.sendChat('hallo'),
      () => subs.every((s) => s.sub.chat.some((c) => c.text === 'hallo')),
      'the chat message at all four guests',
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

test('a spread meeting fans out as a tree: the producer\'s router holds only pipes, one per worker, and each worker receives the producer once however many consumers join', async () => {
  const { core, w, m, fan, producer } = await spreadMeeting({ n: 20 });
  try {
    const workers = core.pool.workers.map((x) => x.id);
    // Consumers split evenly by participant over both workers.
    assert.equal([...perWorker(m, fan.receivers).values()], [10, 10]);
    const home = producerRouterConsumers(w, fan.producerId);
    assert.is(home.other, 0, 'no receiver consumes on the producer\'s router');
    assert.is(home.pipe, workers.length, 'one pipe per worker (to its fan-out router, the producer\'s own worker included)');
    // Every receiver consumes on a router other than the producer's, on its own worker.
    const plainConsumers = live(w.consumers).filter((c) => c.transport.type === 'plain');
    assert.is(plainConsumers.length, 20);
    assert.ok(plainConsumers.every((c) => c.router !== home.router));
    for (const r of fan.receivers) {
      const c = plainConsumers.find((x) => x.consumer.id === r.consumerId)!;
      assert.is(c.workerId, m._media.workerOf(r.p.id), 'the consumer is on its participant\'s worker');
    }
    // Each worker holds the producer once (a pipe producer on its fan-out router).
    const piped = (): number[] => workers.map((id) => live(w.producers).filter((p) => p.transport.type === 'pipe' && p.workerId === id).length);
    assert.equal(piped(), [1, 1]);
    await fan.flowsTo(fan.receivers, 'the audio at all 20 receivers');

    // Twenty more receivers: no new pipe, no new pipe producer; still even; media reaches them.
    const more: Receiver[] = [];
    for (let i = 20; i < 40; i++) more.push(await fan.receive(await m.join(user(`r${i}@a.de`))));
    assert.equal([...perWorker(m, fan.receivers).values()], [20, 20]);
    assert.is(producerRouterConsumers(w, fan.producerId).pipe, workers.length);
    assert.equal(piped(), [1, 1]);
    await fan.flowsTo(more, 'the audio at the 20 later receivers');

    // Stats of a consumer on a fan-out router are mediasoup's, as for any consumer.
    const st = await more[0]!.p.consumerStats(more[0]!.consumerId);
    assert.ok(st.stats.some((x) => x.packetCount > 0), 'the consumer counted the packets it sent');
    assert.is(m._media.producer(fan.producerId)!.participantId, producer.id);
  } finally {
    fan.close();
    core.close();
  }
});

test('spreadTree: false keeps the flat fan-out (receivers beside the producer on its router, one pipe to the other worker)', async () => {
  const { core, w, fan } = await spreadMeeting({ n: 10, spreadTree: false });
  try {
    const home = producerRouterConsumers(w, fan.producerId);
    assert.is(home.other, 5, 'the receivers on the producer\'s worker consume on its router');
    assert.is(home.pipe, 1, 'one pipe, to the other worker');
    await fan.flowsTo(fan.receivers, 'the audio at all 10 receivers');
  } finally {
    fan.close();
    core.close();
  }
});

test('a meeting below spreadAbove stays on one router of one worker: no pipes, no fan-out router', async () => {
  const { core, w, m, fan } = await spreadMeeting({ n: 6, spreadAbove: 100 });
  try {
    assert.is(new Set(fan.receivers.map((r) => m._media.workerOf(r.p.id))).size, 1);
    assert.is(w.routers.filter((r) => !r.router.closed).length, 1);
    assert.is(w.consumers.filter((c) => c.transport.type === 'pipe').length, 0);
    const home = producerRouterConsumers(w, fan.producerId);
    assert.is(home.other, 6);
    await fan.flowsTo(fan.receivers, 'the audio at all 6 receivers');
  } finally {
    fan.close();
    core.close();
  }
});

test('a spread meeting recovers from a worker death: receivers there reconnect, are placed again, and the tree is rebuilt without stale pipes', async () => {
  const { core, w, m, fan } = await spreadMeeting({ n: 8 });
  try {
    await fan.flowsTo(fan.receivers, 'the audio before the worker death');
    const home = producerRouterConsumers(w, fan.producerId);
    const homeWorker = w.routers.find((r) => r.router === home.router)!.workerId;
    const dead = core.pool.workers.find((x) => x.id !== homeWorker)!;
    const lost = fan.receivers.filter((r) => m._media.workerOf(r.p.id) === dead.id);
    const kept = fan.receivers.filter((r) => m._media.workerOf(r.p.id) !== dead.id);
    assert.is(lost.length, 4);
    const reconnects = lost.map((r) => nextEvent<[string]>(r.p, 'reconnect', 20_000));
    process.kill(dead.pid, 'SIGKILL');
    for (const ev of reconnects) assert.equal(await ev, ['worker-failed']);
    // The pipe to the dead worker closed with it; the producer's router still has no receivers.
    assert.equal(producerRouterConsumers(w, fan.producerId), { router: home.router, pipe: 1, other: 0 });
    await fan.flowsTo(kept, 'the audio at the receivers on the surviving worker');
    // The lost receivers come back (new transports and consumers) and get the media again.
    fan.receivers.splice(0, fan.receivers.length, ...kept);
    const back: Receiver[] = [];
    for (const r of lost) back.push(await fan.receive(r.p));
    assert.ok(back.every((r) => m._media.workerOf(r.p.id) !== dead.id));
    const again = producerRouterConsumers(w, fan.producerId);
    assert.is(again.other, 0);
    assert.ok(again.pipe >= 1 && again.pipe <= core.pool.workers.filter((x) => !x.worker.closed).length, `one pipe per live worker (${again.pipe})`);
    await fan.flowsTo(back, 'the audio at the receivers placed again');
  } finally {
    fan.close();
    core.close();
  }
});

test('ending a spread meeting closes every router it used, fan-out routers included', async () => {
  const { core, w, m, host, fan } = await spreadMeeting({ n: 4 });
  try {
    assert.ok(w.routers.length >= 3, `member and fan-out routers (${w.routers.length})`);
    m.end(host);
    assert.ok(w.routers.every((r) => r.router.closed), 'every router closed');
  } finally {
    fan.close();
    core.close();
  }
});

test('spreadTree must be a boolean', async () => {
  const core: MediaCore = await testCore({ media: { spreadTree: 'yes' as unknown as boolean } });
  try {
    core.createAccount({ id: 'a' });
    try {
      await core.createMeeting({ accountId: 'a', title: 'x', hostIdentity: 'h@a.de' });
      assert.unreachable('a meeting with spreadTree "yes" was created');
    } catch (error) {
      assert.instance(error, TypeError);
      assert.match(String(error), /spreadTree/);
    }
  } finally {
    core.close();
  }
});

test.run();
