// E2EE through the real server: three clients run the key schedule over the gateway's opaque
// `send_key_message`, a real werift peer publishes encrypted VP8 through a real mediasoup worker,
// and a DirectTransport consumer of the same producer (the "server-side tap") shows what the SFU
// sees: ciphertext after the clear header, next to a plain control track where the start code and
// the marker text are visible. A participant leaves: the key rotates, it decodes nothing after.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  FrameCryptor,
  clearPrefixLength,
  createE2eeController,
  isVp8Keyframe,
  type E2eeController,
  type E2eeSession,
  type RosterEntry,
} from '../client/e2ee/index.js';
import { pb } from '../gateway/wire.js';
import { HOST, testGateway, type TestGateway } from './helpers/gateway.js';
import { VP8_START_CODE, contains, entropy, vp8Keyframe } from './helpers/e2ee.js';
import { publish, subscribe, type SignallingClient } from './helpers/signallingClient.js';
import { within } from './helpers/util.js';

const MEETING = 'elternabend';
const MARKER = Buffer.from('vertraulich: Zeugnisse der 5b');

/** A frame body as the SFU must never read it: the marker text and the VP8 start code, repeated. */
function secretBody(n = 900): Uint8Array {
  const unit = Buffer.concat([MARKER, Buffer.from(VP8_START_CODE), Buffer.from([0x20, 0x21, 0x22])]);
  const out = Buffer.alloc(n);
  for (let o = 0; o < n; o += unit.length) unit.copy(out, o);
  return out;
}

/**
 * One meeting client: signalling plus the E2EE controller the SDK plugs in, fed from the wire
 * exactly as the SDK does (key_message, participant list, joins and leaves).
 */
class E2eeClient {
  readonly errors: Error[] = [];
  roster: RosterEntry[] = [];

  private constructor(
    readonly name: string,
    readonly c: SignallingClient,
    readonly controller: E2eeController,
    readonly cryptor: FrameCryptor,
    /** Every group key this client ever used, to look for in what the server relayed. */
    readonly groupKeys: Uint8Array[],
  ) {
    controller.on('error', (e) => void this.errors.push(e));
  }

  get id(): string {
    return this.c.participantId;
  }

  get session(): E2eeSession {
    return this.controller.session;
  }

  static async join(t: TestGateway, name: string, host = false): Promise<E2eeClient> {
    const c = await t.client();
    await c.join({ meetingId: MEETING, displayName: name, joinToken: await (host ? t.hostToken() : t.userToken(`${name}@x.de`)), e2eeCapable: true });
    const cryptor = new FrameCryptor(c.participantId);
    const groupKeys: Uint8Array[] = [];
    const setKey = cryptor.setKey.bind(cryptor);
    cryptor.setKey = (kid, key) => (groupKeys.push(key.slice()), setKey(kid, key));
    const controller = await createE2eeController({
      meetingId: MEETING,
      selfId: c.participantId,
      sink: cryptor,
      send: async (to, data) => void (await c.call({ sendKeyMessage: { toParticipantId: to ?? '', data } })),
    });
    const client = new E2eeClient(name, c, controller, cryptor, groupKeys);
    c.ws.on('message', (raw: Buffer) => client.#onWire(raw));
    const list = (await c.call({ getParticipants: {} })).participants!.participants ?? [];
    for (const p of list) client.#add(p);
    if (!client.roster.some((p) => p.id === client.id)) client.roster.push({ id: client.id, role: host ? 'host' : 'participant', e2eeCapable: true });
    await controller.setParticipants(client.roster);
    return client;
  }

  #add(p: { participantId?: string | null; role?: number | null; e2eeCapable?: boolean | null }): void {
    if (this.roster.some((m) => m.id === p.participantId)) return;
    this.roster.push({ id: p.participantId!, role: p.role === pb.Role.HOST ? 'host' : 'participant', e2eeCapable: p.e2eeCapable ?? false });
  }

  #onWire(raw: Buffer): void {
    const n = pb.Envelope.decode(raw).notification;
    if (n?.keyMessage) {
      void this.controller.receive(n.keyMessage.fromParticipantId!, n.keyMessage.data!);
    } else if (n?.participantJoined) {
      this.#add(n.participantJoined);
      this.controller.setParticipants(this.roster).catch((e: Error) => void this.errors.push(e));
    } else if (n?.participantLeft) {
      this.roster = this.roster.filter((m) => m.id !== n.participantLeft!.participantId);
      this.controller.setParticipants(this.roster).catch((e: Error) => void this.errors.push(e));
    }
  }
}

/** Resolves once every client has the same current key and code over all of them (event-driven). */
function converged(clients: E2eeClient[], what: string): Promise<void> {
  const ok = (): boolean =>
    clients.every(
      (x) =>
        x.session.currentKid !== undefined &&
        x.session.currentKid === clients[0]!.session.currentKid &&
        x.session.securityCode === clients[0]!.session.securityCode &&
        x.session.verifiedMembers.length === clients.length,
    );
  return within(
    new Promise<void>((resolve) => {
      const check = (): void => {
        if (!ok()) return;
        for (const x of clients) for (const e of ['keychanged', 'securitycode', 'leader'] as const) x.session.off(e, check);
        resolve();
      };
      for (const x of clients) for (const e of ['keychanged', 'securitycode', 'leader'] as const) x.session.on(e, check);
      check();
    }),
    20_000,
    what,
  );
}

/** The payload of an RTP packet (after CSRCs and the header extension). */
function rtpPayload(packet: Buffer): Buffer {
  const cc = packet[0]! & 0x0f;
  let o = 12 + 4 * cc;
  if (packet[0]! & 0x10) o += 4 + 4 * packet.readUInt16BE(o + 2);
  const padded = (packet[0]! & 0x20) !== 0;
  return packet.subarray(o, padded ? packet.length - packet[packet.length - 1]! : packet.length);
}

test('three clients agree on one key and one security code over the real gateway; the server relays no key in the clear', async () => {
  const t = await testGateway({ settings: { e2ee: 'required', waitingRoom: false } });
  const relayed: Uint8Array[] = [];
  const spy = (id: string): void => void t.meeting.participant(id)?.on('keymessage', (_from, data) => relayed.push(data.slice()));
  try {
    const host = await E2eeClient.join(t, 'host', true);
    spy(host.id);
    const anna = await E2eeClient.join(t, 'anna');
    spy(anna.id);
    await converged([host, anna], 'two clients to agree');
    const codeOfTwo = host.session.securityCode;
    const ben = await E2eeClient.join(t, 'ben');
    spy(ben.id);
    await converged([host, anna, ben], 'three clients to agree');
    assert.is.not(host.session.securityCode, codeOfTwo, 'the code changes on join');
    assert.equal([host, anna, ben].map((x) => x.session.leaderId), [host.id, host.id, host.id], 'the host leads');
    assert.ok(relayed.length > 0);
    for (const x of [host, anna, ben]) {
      assert.ok(x.groupKeys.length > 0);
      for (const key of x.groupKeys) for (const m of relayed) assert.not.ok(contains(m, [...key.subarray(0, 16)]), 'a group key crossed the server in the clear');
      assert.equal(x.errors, []);
    }
  } finally {
    await t.close();
  }
});

test('the SFU forwards encrypted VP8 (keyframes still detected); its tap sees ciphertext, a plain control shows the start code; a leaver cannot decode after the rotation', async () => {
  const t = await testGateway({ settings: { e2ee: 'required', waitingRoom: false } });
  const peers: Array<{ close(): Promise<void> }> = [];
  try {
    const host = await E2eeClient.join(t, HOST.split('@')[0]!, true);
    const anna = await E2eeClient.join(t, 'anna');
    const ben = await E2eeClient.join(t, 'ben');
    await converged([host, anna, ben], 'three clients to agree');

    const published = await publish(host.c, [
      { name: 'cam', kind: 'video', source: 'camera' },
      { name: 'plain', kind: 'video', source: 'screen-video' },
    ]);
    peers.push(published.pub);
    const camId = published.producers.get('cam')!;
    const plainId = published.producers.get('plain')!;

    // The tap: a DirectTransport consumer of the same producers, on the producer's router.
    const router = await t.meeting._media._routerFor(host.id);
    const direct = await router.createDirectTransport();
    const tapped = new Map<string, Buffer[]>([[camId, []], [plainId, []]]);
    for (const producerId of [camId, plainId]) {
      const consumer = await direct.consume({ producerId, rtpCapabilities: router.rtpCapabilities });
      consumer.on('rtp', (packet) => void tapped.get(producerId)!.push(rtpPayload(packet)));
    }
    const sub = await subscribe(anna.c, [camId]);
    peers.push(sub.sub);
    const annaCam = sub.consumers.get(camId)!;

    const plainFrame = vp8Keyframe(secretBody());
    let sending = true;
    let sent = 0;
    const pump = (async () => {
      while (sending) {
        const enc = await host.cryptor.encrypt('vp8', plainFrame);
        // One frame per packet: the VP8 payload descriptor (S = 1, partition 0), then the frame.
        published.pub.send('cam', Buffer.concat([Buffer.from([0x10]), enc!]), true);
        published.pub.send('plain', Buffer.concat([Buffer.from([0x10]), plainFrame]), true);
        sent++;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const enough = (): boolean => tapped.get(camId)!.length >= 60 && tapped.get(plainId)!.length >= 60 && sub.sub.packetsOf(annaCam).length >= 30;
    await within(
      new Promise<void>((resolve) => {
        const check = (): void => (enough() ? resolve() : void setImmediate(check));
        check();
      }),
      20_000,
      'tapped and received packets',
    ).catch((e: Error) => assert.unreachable(`${e.message}: tap ${tapped.get(camId)!.length}/${tapped.get(plainId)!.length}, anna ${sub.sub.packetsOf(annaCam).length}, sent ${sent}`));

    const framesOf = (id: string): Uint8Array[] => tapped.get(id)!.map((p) => new Uint8Array(p.subarray(1)));
    const bodyOf = (frames: Uint8Array[]): Uint8Array => Buffer.concat(frames.map((f) => f.subarray(clearPrefixLength('vp8', f))));
    const cam = framesOf(camId);
    const plain = framesOf(plainId);
    assert.ok(cam.every(isVp8Keyframe), 'the SFU reads the clear header: every forwarded frame is a keyframe to it');
    const camBody = bodyOf(cam);
    const plainBody = bodyOf(plain);
    assert.ok(entropy(camBody) > 7.9, `encrypted: ${entropy(camBody).toFixed(3)} bits/byte over ${camBody.byteLength} bytes`);
    assert.not.ok(contains(camBody, VP8_START_CODE), 'no VP8 start code after the clear header');
    assert.not.ok(contains(camBody, [...MARKER]), 'no marker text');
    // The control run with the same tap and the same checks: here they do find what is there.
    assert.ok(contains(plainBody, VP8_START_CODE) && contains(plainBody, [...MARKER]), 'the control track shows the start code and the marker');
    assert.ok(entropy(plainBody) < 5, `plain: ${entropy(plainBody).toFixed(3)} bits/byte`);

    // What a subscriber gets through the SFU decrypts to the frame that was sent.
    const received = sub.sub.packetsOf(annaCam).slice(-5);
    for (const p of received) {
      const r = await anna.cryptor.decrypt(host.id, 'vp8', new Uint8Array(p.payload.subarray(1)));
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(Buffer.from((r as { data: Uint8Array }).data), Buffer.from(plainFrame));
    }

    // Ben leaves: the host rotates; anna follows; ben, keeping his old keys, decodes nothing new.
    const codeBefore = host.session.securityCode;
    const kidBefore = host.session.currentKid;
    await ben.c.call({ leave: {} });
    await converged([host, anna], 'the rotation after ben left');
    assert.is.not(host.session.currentKid, kidBefore);
    assert.is.not(host.session.securityCode, codeBefore, 'the code changes on leave');
    const afterRotation = tapped.get(camId)!.length;
    await within(
      new Promise<void>((resolve) => {
        const check = (): void => (tapped.get(camId)!.length >= afterRotation + 20 ? resolve() : void setImmediate(check));
        check();
      }),
      20_000,
      'frames after the rotation',
    );
    sending = false;
    await pump;
    // The last frames were sent well after the rotation (the first few may still be in flight with the old key).
    const newFrames = framesOf(camId).slice(afterRotation).slice(-10);
    let benDecoded = 0;
    let annaDecoded = 0;
    for (const f of newFrames) {
      if ((await ben.cryptor.decrypt(host.id, 'vp8', f)).ok) benDecoded++;
      if ((await anna.cryptor.decrypt(host.id, 'vp8', f)).ok) annaDecoded++;
    }
    assert.is(benDecoded, 0, 'the leaver decodes no frame sent after the rotation');
    assert.is(annaDecoded, 10);
    assert.ok(ben.cryptor.stats.droppedUnknownKey >= 10);
    for (const x of [host, anna]) assert.equal(x.errors, []);
  } finally {
    for (const p of peers) await p.close();
    await t.close();
  }
});

test("ParticipantInfo.admitted_seq is the order of admission, not of the join request, and the same in every client's view", async () => {
  const t = await testGateway({ settings: { e2ee: 'required', waitingRoom: true } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'host', joinToken: await t.hostToken(), e2eeCapable: true });
    // w asks first and waits; d asks after and is let in first.
    const w = await t.client();
    await w.join({ meetingId: MEETING, displayName: 'w', joinToken: await t.userToken('w@x.de'), e2eeCapable: true });
    const d = await t.client();
    await d.join({ meetingId: MEETING, displayName: 'd', joinToken: await t.userToken('d@x.de'), e2eeCapable: true });
    await host.call({ admit: { participantId: d.participantId } });
    await d.admitted();
    await host.call({ admit: { participantId: w.participantId } });
    await w.admitted();
    const joined = await d.waitFor('participantJoined', (p) => p.participantId === w.participantId);
    const seqOf = new Map<string, number>();
    for (const c of [host, w, d]) {
      const list = (await c.call({ getParticipants: {} })).participants!.participants ?? [];
      assert.equal(list.map((p) => p.participantId), [host.participantId, w.participantId, d.participantId], 'the list is in join-request order');
      for (const p of list) {
        if (seqOf.has(p.participantId!)) assert.is(p.admittedSeq, seqOf.get(p.participantId!), 'the same number for everyone');
        else seqOf.set(p.participantId!, p.admittedSeq ?? 0);
      }
    }
    assert.equal([host, d, w].map((c) => seqOf.get(c.participantId)), [1, 2, 3], 'numbered in the order of admission');
    assert.is(joined.admittedSeq, 3, 'the join notification carries it');
    assert.is((await host.call({ getParticipants: {} })).participants!.participants!.length, 3);
  } finally {
    await t.close();
  }
});

test.run();
