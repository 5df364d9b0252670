// Issue 14b: the answers to requests that arrive together (several frames in one read, as from a
// client behind a shared proxy) leave in one write, in order, each exactly as protobufjs encodes
// it; the send-buffer bound still closes a client that does not read, and does not close one that
// reads but asked for a lot at once. Through the real gateway over loopback.
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type WebSocket from 'ws';
import { encodeEnvelope, pb } from '../gateway/wire.js';
import { testGateway } from './helpers/gateway.js';
import type { SignallingClient } from './helpers/signallingClient.js';

const MEETING = 'elternabend';
type RequestProps = Parameters<typeof encodeEnvelope>[0]['request'];

/** One masked client frame per request (zero mask key), all in one buffer: one TCP write. */
function frames(requests: Array<{ id: number; request: RequestProps }>): Buffer {
  return Buffer.concat(
    requests.map(({ id, request }) => {
      const payload = Buffer.from(encodeEnvelope({ id, request }));
      assert.ok(payload.length < 126);
      return Buffer.concat([Buffer.from([0x82, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
    }),
  );
}

function rawSocket(c: SignallingClient): net.Socket {
  return (c.ws as unknown as { _socket: net.Socket })._socket;
}

/** The frames `c` receives for requests (id != 0), as raw bytes. */
function collect(c: SignallingClient): Buffer[] {
  const got: Buffer[] = [];
  (c.ws as WebSocket).on('message', (d: Buffer) => {
    if (pb.Envelope.decode(d).id !== 0) got.push(d);
  });
  return got;
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Counts the writes the server makes on its side of `client`'s connection (the gateway runs in
 * this process): every socket write ends in net.Socket's _write or _writev.
 */
function countServerWrites(client: SignallingClient): { count: () => number; restore: () => void } {
  const port = rawSocket(client).localPort;
  const proto = net.Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
  const original = { _write: proto._write, _writev: proto._writev };
  let n = 0;
  for (const k of ['_write', '_writev'] as const) {
    proto[k] = function (this: net.Socket, ...a: unknown[]) {
      if (this.remotePort === port) n++;
      return original[k].apply(this, a);
    };
  }
  return {
    count: () => n,
    restore: () => Object.assign(proto, original),
  };
}

test('requests that arrive in one read are answered in order, in one write, each byte for byte as protobufjs encodes it', async () => {
  const t = await testGateway({ settings: { waitingRoom: false, hostRequiredToStart: false } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await t.hostToken(), e2eeCapable: true });
    const g = await t.client();
    await g.join({ meetingId: MEETING, displayName: 'Herr Yilmaz', joinToken: await t.userToken('yilmaz@eltern.de'), e2eeCapable: false });
    const got = collect(g);
    // Cheap, roster-sized, refused (a host control from a participant without a target) and typed answers, mixed.
    const kinds: RequestProps[] = [{ ping: {} }, { getParticipants: {} }, { admit: {} }, { getRouterRtpCapabilities: {} }];
    const requests = Array.from({ length: 24 }, (_, i) => ({ id: 1000 + i, request: kinds[i % kinds.length]! }));
    const writes = countServerWrites(g);
    try {
      rawSocket(g).write(frames(requests));
      await until('24 answers', () => got.length >= requests.length);
    } finally {
      writes.restore();
    }
    assert.equal(got.map((d) => pb.Envelope.decode(d).id), requests.map((r) => r.id), 'one answer per request, in request order');
    assert.is(writes.count(), 1, `the 24 answers left in one write (${writes.count()} writes)`);
    got.forEach((d, i) => {
      const env = pb.Envelope.decode(d);
      // Re-encoding the decoded answer with protobufjs gives the same bytes (the hand-framed roster included).
      assert.equal(Buffer.from(pb.Envelope.encode(env).finish()), d, `answer ${env.id}: protobufjs's bytes`);
      const body = env.response!.result;
      assert.is(body, (['ok', 'participants', 'error', 'rtpCapabilities'] as const)[i % 4], `answer ${env.id} is a ${body}`);
    });
    const list = pb.Envelope.decode(got[1]!).response!.participants!;
    assert.equal(list.participants!.map((p) => p.displayName).sort(), ['Frau Schmidt', 'Herr Yilmaz']);
    assert.is(pb.Envelope.decode(got[2]!).response!.error!.codeName, 'INVALID_ARGUMENT');
    assert.is(g.closeInfo, undefined);
  } finally {
    await t.close();
  }
});

test('a client that asks for more than the send-buffer bound in one read, and reads it, is not closed', async () => {
  const maxBufferedBytes = 8 * 1024;
  const t = await testGateway({ settings: { waitingRoom: false, hostRequiredToStart: false }, limits: { maxBufferedBytes, messagesPerSecond: 100_000, messageBurst: 100_000, maxPendingRequests: 1000 } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await t.hostToken(), e2eeCapable: true });
    const got = collect(host);
    const requests = Array.from({ length: 900 }, (_, i) => ({ id: 1000 + i, request: { getParticipants: {} } }));
    rawSocket(host).write(frames(requests));
    await until('900 answers', () => got.length >= requests.length || host.closeInfo !== undefined);
    const bytes = got.reduce((n, d) => n + d.length, 0);
    assert.ok(bytes > 2 * maxBufferedBytes, `${bytes} bytes of answers to one read, above the bound`);
    assert.is(host.closeInfo, undefined, 'not taken for a slow reader');
    assert.equal(got.map((d) => pb.Envelope.decode(d).id), requests.map((r) => r.id));
  } finally {
    await t.close();
  }
});

test('a client that pipelines requests but stops reading is closed with SLOW_READER; the others are answered', async () => {
  const t = await testGateway({ settings: { waitingRoom: false, hostRequiredToStart: false }, limits: { maxBufferedBytes: 64 * 1024, messagesPerSecond: 1e6, messageBurst: 1e6, addressMessagesPerSecond: 1e7, addressMessageBurst: 1e7, maxPendingRequests: 100_000 } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await t.hostToken(), e2eeCapable: true });
    const slow = await t.client();
    await slow.join({ meetingId: MEETING, displayName: 'Langsam', joinToken: await t.userToken('slow@x.de'), e2eeCapable: false });
    rawSocket(slow).pause();
    const slowReader = async (): Promise<boolean> => (await t.gateway.metrics.closes.get()).values.some((v) => v.labels.reason === 'slow-reader' && v.value > 0);
    // Batches of 2,000 get_participants in one write each, until the server gives up on the client
    // (the kernel's loopback buffers take a few MB first).
    let batches = 0;
    let id = 1000;
    while (!(await slowReader()) && batches < 300) {
      rawSocket(slow).write(frames(Array.from({ length: 2000 }, () => ({ id: id++, request: { getParticipants: {} } }))));
      batches++;
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(await slowReader(), `closed as a slow reader after ${batches} batches`);
    assert.ok(batches < 300, 'before 600,000 answers piled up');
    const r = await host.call({ getParticipants: {} });
    assert.is(r.participants!.participants!.length, 2);
    assert.is(host.closeInfo, undefined);
  } finally {
    await t.close();
  }
});

test('ping is answered ok to any joined participant, waiting room included, and refused before the join', async () => {
  const t = await testGateway({ settings: { waitingRoom: true, hostRequiredToStart: false } });
  try {
    const host = await t.client();
    await host.join({ meetingId: MEETING, displayName: 'Frau Schmidt', joinToken: await t.hostToken(), e2eeCapable: true });
    assert.ok((await host.call({ ping: {} })).ok);
    const waiting = await t.client();
    const j = await waiting.join({ meetingId: MEETING, displayName: 'Wartend', joinToken: await t.userToken('w@x.de'), e2eeCapable: false });
    assert.is(j.state, pb.ParticipantState.WAITING_ROOM);
    assert.ok((await waiting.call({ ping: {} })).ok);
    const early = await t.client();
    await early.hello();
    const r = await early.send({ ping: {} });
    assert.is(r.error?.codeName, 'INVALID_STATE');
  } finally {
    await t.close();
  }
});

test.run();
