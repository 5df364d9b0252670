// The packet engine on both implementations: the native addon (when built) and the TypeScript
// fallback that C4V_NO_NATIVE=1 forces. Real UDP sockets on 127.0.0.1, ephemeral ports.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { C4vError } from '../lib/index.js';
import { packetEngine, packetEngineInfo, readRecords, resolveNativeBinding, type PacketEngine } from '../bench/native/index.js';

const KEY = { suite: 'AES_CM_128_HMAC_SHA1_80' as const, key: randomBytes(30) };
const nativeBuilt = (() => {
  try {
    return existsSync(resolveNativeBinding());
  } catch {
    return false;
  }
})();

const engines: Array<[string, () => PacketEngine]> = [['typescript', () => packetEngine('typescript')]];
if (nativeBuilt) engines.unshift(['native', () => packetEngine('native')]);
else console.warn('native engine not built: only the TypeScript fallback is tested');

test('the addon path resolves under build/Release and the default engine is native unless C4V_NO_NATIVE=1', () => {
  const info = packetEngineInfo();
  if (process.env.C4V_NO_NATIVE === '1') {
    assert.is(info.kind, 'typescript');
    assert.match(info.reason ?? '', /C4V_NO_NATIVE/);
  } else if (nativeBuilt) {
    assert.is(info.kind, 'native');
    assert.match(info.path ?? '', /build\/Release\/c4v_native\.node$/);
  }
});

for (const [name, make] of engines) {
  test(`${name}: an open-loop sender's packets reach the receiver with sequence and a positive one-way delay`, async () => {
    const e = make();
    const tx = await e.openSocket('127.0.0.1');
    const rx = await e.openSocket('127.0.0.1');
    try {
      const receiver = e.startReceiver({ socket: rx, maxRecords: 1000 });
      const sender = e.startSender({
        socket: tx,
        host: '127.0.0.1',
        port: rx.port,
        rtp: { payloadType: 100, ssrc: 1234, clockRate: 48000, size: 120 },
        frameRate: 500,
        packetsPerFrame: 2,
        frames: 20,
      });
      const s = await sender.finished();
      assert.is(s.sent, 40);
      assert.is(s.sendErrors, 0);
      await waitUntil(() => receiver.status().received >= 40, 'all 40 packets at the receiver');
      const r = receiver.stop();
      const rec = readRecords(r.records);
      assert.equal([...rec.seq].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
      assert.ok(rec.delayNs.every((d) => d > 0), 'delays are measured from the scheduled time, after it');
      assert.ok(rec.copy.every((c) => c === 0));
    } finally {
      tx.close();
      rx.close();
    }
  });

  test(`${name}: SRTP protect and unprotect round-trip, and a wrong key fails with NATIVE_BAD_SRTP_KEY`, () => {
    const e = make();
    const spec = { payloadType: 111, ssrc: 42, clockRate: 48000, size: 120 };
    const plain = e.buildRtp(spec, { rtpSeq: 7, rtpTimestamp: 960, seq: 7 });
    assert.is(plain.length, 120);
    const out = e.createSrtpSession(KEY, 'outbound').protect(plain);
    assert.is(out.length, 130, 'an 80-bit tag is appended');
    assert.not.equal(out.subarray(12, 120), plain.subarray(12), 'the payload is encrypted');
    assert.equal(e.createSrtpSession(KEY, 'inbound').unprotect(out), plain);
    const wrong = e.createSrtpSession({ ...KEY, key: randomBytes(30) }, 'inbound');
    try {
      wrong.unprotect(out);
      assert.unreachable();
    } catch (error) {
      assert.instance(error, C4vError);
      assert.is((error as C4vError).code, 'NATIVE_BAD_SRTP_KEY');
    }
  });

  test(`${name}: a key of the wrong length is refused with NATIVE_BAD_SRTP_KEY`, () => {
    try {
      make().createSrtpSession({ suite: 'AES_CM_128_HMAC_SHA1_80', key: randomBytes(16) }, 'outbound');
      assert.unreachable();
    } catch (error) {
      assert.is((error as C4vError).code, 'NATIVE_BAD_SRTP_KEY');
    }
  });

  test(`${name}: a bad address is refused with NATIVE_BAD_ADDRESS`, async () => {
    const e = make();
    try {
      await e.openSocket('not-an-ip');
      assert.unreachable();
    } catch (error) {
      assert.is((error as C4vError).code, 'NATIVE_BAD_ADDRESS');
    }
    const s = await e.openSocket('127.0.0.1');
    try {
      s.send('127.0.0.1', 70000, [Buffer.alloc(10)]);
      assert.unreachable();
    } catch (error) {
      assert.is((error as C4vError).code, 'NATIVE_BAD_ADDRESS');
    } finally {
      s.close();
    }
  });

  test(`${name}: an oversized packet is refused with NATIVE_PACKET_TOO_LARGE and nothing is sent`, async () => {
    const e = make();
    const tx = await e.openSocket('127.0.0.1');
    const rx = await e.openSocket('127.0.0.1');
    try {
      try {
        tx.send('127.0.0.1', rx.port, [Buffer.alloc(100), Buffer.alloc(9000)]);
        assert.unreachable();
      } catch (error) {
        assert.is((error as C4vError).code, 'NATIVE_PACKET_TOO_LARGE');
      }
      try {
        e.buildRtp({ payloadType: 96, ssrc: 1, clockRate: 90000, size: 2000 }, { rtpSeq: 0, rtpTimestamp: 0, seq: 0 });
        assert.unreachable();
      } catch (error) {
        assert.is((error as C4vError).code, 'NATIVE_PACKET_TOO_LARGE');
      }
      // A good batch afterwards still goes through: the refusal lost nothing.
      assert.is(tx.send('127.0.0.1', rx.port, [Buffer.from('after')]), 1);
      await waitUntil(() => peek(rx).length > 0, 'the datagram sent after the refusal');
      assert.equal(received.map(String), ['after']);
    } finally {
      received.length = 0;
      tx.close();
      rx.close();
    }
  });

  test(`${name}: a receiver decrypts SRTP copies per SSRC and counts a copy under the wrong key as an SRTP failure`, async () => {
    const e = make();
    const tx1 = await e.openSocket('127.0.0.1');
    const tx2 = await e.openSocket('127.0.0.1');
    const rx = await e.openSocket('127.0.0.1');
    try {
      const good = { suite: 'AES_CM_128_HMAC_SHA1_80' as const, key: randomBytes(30) };
      const other = { suite: 'AES_CM_128_HMAC_SHA1_80' as const, key: randomBytes(30) };
      const receiver = e.startReceiver({ socket: rx, maxRecords: 100, copies: [{ ssrc: 11, srtp: good }, { ssrc: 22, srtp: good }] });
      const send = (socket: typeof tx1, ssrc: number, srtp: typeof good) =>
        e.startSender({ socket, host: '127.0.0.1', port: rx.port, rtp: { payloadType: 100, ssrc, clockRate: 48000, size: 160 }, frameRate: 500, packetsPerFrame: 1, frames: 8, srtp }).finished();
      await Promise.all([send(tx1, 11, good), send(tx2, 22, other)]);
      await waitUntil(() => receiver.status().received >= 8 && receiver.status().srtpFailures >= 8, '8 good copies and 8 refused ones');
      const r = receiver.stop();
      const rec = readRecords(r.records);
      assert.is(r.received, 8);
      assert.is(r.srtpFailures, 8);
      assert.ok(rec.copy.every((c) => c === 0), 'only the copy under the right key is recorded');
      assert.equal([...rec.seq].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
    } finally {
      for (const s of [tx1, tx2, rx]) s.close();
    }
  });

  test(`${name}: the forwarder copies each packet to every destination with that destination's SSRC`, async () => {
    const e = make();
    const src = await e.openSocket('127.0.0.1');
    const fin = await e.openSocket('127.0.0.1');
    const fout = await e.openSocket('127.0.0.1');
    const rx = await e.openSocket('127.0.0.1');
    try {
      const copies = [{ ssrc: 5001 }, { ssrc: 5002 }, { ssrc: 5003 }];
      const receiver = e.startReceiver({ socket: rx, maxRecords: 100, copies });
      const fwd = e.startForwarder({ input: fin, output: fout, destinations: copies.map((c) => ({ host: '127.0.0.1', port: rx.port, ssrc: c.ssrc })) });
      const sender = e.startSender({
        socket: src,
        host: '127.0.0.1',
        port: fin.port,
        rtp: { payloadType: 100, ssrc: 1, clockRate: 48000, size: 200 },
        frameRate: 200,
        packetsPerFrame: 1,
        frames: 10,
      });
      await sender.finished();
      await waitUntil(() => receiver.status().received >= 30, '30 copies at the receiver');
      const f = fwd.stop();
      assert.is(f.received, 10);
      assert.is(f.sent, 30);
      const rec = readRecords(receiver.stop().records);
      for (let c = 0; c < 3; c++) {
        assert.equal([...rec.seq].filter((_, i) => rec.copy[i] === c).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      }
    } finally {
      for (const s of [src, fin, fout, rx]) s.close();
    }
  });

  // Issue 14 (w3-14a): the forwarder as an SFU does SRTP: unprotect once, protect every copy.
  test(`${name}: an SRTP forwarder decrypts with the ingress key and protects each copy with its destination's key; a wrong ingress key forwards nothing`, async () => {
    const e = make();
    const src = await e.openSocket('127.0.0.1');
    const fin = await e.openSocket('127.0.0.1');
    const fout = await e.openSocket('127.0.0.1');
    const rx = await e.openSocket('127.0.0.1');
    try {
      const ingress = { suite: 'AES_CM_128_HMAC_SHA1_80' as const, key: randomBytes(30) };
      const copies = [5101, 5102].map((ssrc) => ({ ssrc, srtp: { suite: 'AES_CM_128_HMAC_SHA1_80' as const, key: randomBytes(30) } }));
      const receiver = e.startReceiver({ socket: rx, maxRecords: 100, copies });
      const fwd = e.startForwarder({ input: fin, output: fout, srtp: ingress, destinations: copies.map((c) => ({ host: '127.0.0.1', port: rx.port, ...c })) });
      const send = (srtp: typeof ingress, frames: number, firstFrame = 0) =>
        e.startSender({ socket: src, host: '127.0.0.1', port: fin.port, rtp: { payloadType: 100, ssrc: 1, clockRate: 48000, size: 200 }, frameRate: 200, packetsPerFrame: 1, frames, firstFrame, srtp }).finished();
      // First the stream under another key (the forwarder must refuse every packet), then under
      // the right one: loopback keeps one socket's datagrams in order, so once the good copies
      // arrived the refused packets were seen.
      await send({ ...ingress, key: randomBytes(30) }, 5);
      await send(ingress, 10, 5);
      await waitUntil(() => receiver.status().received >= 20, '20 decrypted copies at the receiver');
      const f = fwd.stop();
      assert.is(f.received, 15);
      assert.is(f.srtpFailures, 5);
      assert.is(f.sent, 20);
      const r = receiver.stop();
      assert.is(r.srtpFailures, 0, 'every copy decrypts with its own key');
      const rec = readRecords(r.records);
      for (let c = 0; c < 2; c++) assert.equal([...rec.seq].filter((_, i) => rec.copy[i] === c).sort((a, b) => a - b), [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    } finally {
      for (const s of [src, fin, fout, rx]) s.close();
    }
  });

  test(`${name}: a forwarder key of a GCM suite is refused with NATIVE_BAD_SRTP_KEY`, async () => {
    const e = make();
    const fin = await e.openSocket('127.0.0.1');
    const fout = await e.openSocket('127.0.0.1');
    try {
      e.startForwarder({ input: fin, output: fout, srtp: { suite: 'AEAD_AES_128_GCM', key: randomBytes(28) }, destinations: [{ host: '127.0.0.1', port: 9 }] });
      assert.unreachable('a GCM key must be refused');
    } catch (error) {
      assert.instance(error, C4vError);
      assert.is((error as C4vError).code, 'NATIVE_BAD_SRTP_KEY');
    } finally {
      fin.close();
      fout.close();
    }
  });
}

if (nativeBuilt) {
  test('native and TypeScript SRTP interoperate in both directions', () => {
    const n = packetEngine('native');
    const t = packetEngine('typescript');
    const spec = { payloadType: 100, ssrc: 0xdeadbeef, clockRate: 90000, size: 1100 };
    for (let seq = 65530; seq < 65540; seq++) {
      const p = n.buildRtp(spec, { rtpSeq: seq & 0xffff, rtpTimestamp: seq * 3000, seq });
      assert.equal(t.createSrtpSession(KEY, 'inbound').unprotect(n.createSrtpSession(KEY, 'outbound').protect(p)), p);
      assert.equal(n.createSrtpSession(KEY, 'inbound').unprotect(t.createSrtpSession(KEY, 'outbound').protect(p)), p);
    }
  });
}

if (nativeBuilt) {
  test("the native sender's SRTP (libcrypto) is what the TypeScript receiver decrypts, across a sequence wrap", async () => {
    const n = packetEngine('native');
    const t = packetEngine('typescript');
    const tx = await n.openSocket('127.0.0.1');
    const rx = await t.openSocket('127.0.0.1');
    try {
      // ssrc * 7 + seq is the first RTP sequence number: start 3 below the 16-bit wrap.
      const ssrc = 9362;
      const startSeq = (ssrc * 7) & 0xffff;
      const first = (65533 - startSeq + 65536) % 65536;
      const receiver = t.startReceiver({ socket: rx, maxRecords: 100, copies: [{ ssrc, srtp: KEY }] });
      await n
        .startSender({ socket: tx, host: '127.0.0.1', port: rx.port, rtp: { payloadType: 100, ssrc, clockRate: 48000, size: 300 }, frameRate: 500, packetsPerFrame: 1, frames: 8, firstFrame: first, srtp: KEY })
        .finished();
      await waitUntil(() => receiver.status().received + receiver.status().srtpFailures >= 8, '8 SRTP packets');
      const r = receiver.stop();
      assert.is(r.srtpFailures, 0);
      assert.equal([...readRecords(r.records).seq].sort((a, b) => a - b), Array.from({ length: 8 }, (_, i) => first + i));
    } finally {
      tx.close();
      rx.close();
    }
  });
}

const received: Buffer[] = [];
function peek(s: { receive(max?: number): Buffer[] }): Buffer[] {
  received.push(...s.receive());
  return received;
}

async function waitUntil(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test.run();
