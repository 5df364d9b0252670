// The encoded-transform glue without a browser: the per-frame TransformStream over frame
// objects shaped like RTCEncodedVideoFrame, API detection, and what E2eeTransforms tells its
// worker. (The worker itself runs in a browser only: it is driven by rtctransform events.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  E2eeError,
  FrameCryptor,
  createE2eeTransforms,
  createFrameTransform,
  detectTransformApi,
  generateGroupKey,
  isVp8Keyframe,
  peerConnectionOptions,
  type EncodedFrameLike,
  type FrameDrop,
  type WorkerLike,
} from '../client/e2ee/index.js';
import { opusPacket, vp8Delta, vp8Keyframe } from './helpers/e2ee.js';

class Frame implements EncodedFrameLike {
  constructor(
    public data: ArrayBuffer,
    readonly mime: string,
  ) {}
  getMetadata(): { mimeType: string } {
    return { mimeType: this.mime };
  }
}

function frameOf(bytes: Uint8Array, mime: string): Frame {
  return new Frame(bytes.slice().buffer, mime);
}

async function through(t: TransformStream<Frame, Frame>, frames: Frame[]): Promise<Frame[]> {
  const out: Frame[] = [];
  const done = t.readable.pipeTo(new WritableStream({ write: (f) => void out.push(f) }));
  const w = t.writable.getWriter();
  for (const f of frames) await w.write(f);
  await w.close();
  await done;
  return out;
}

function keyed(id: string, kid: number, key: Uint8Array): FrameCryptor {
  const c = new FrameCryptor(id);
  c.setKey(kid, key);
  c.useKey(kid);
  return c;
}

test('send then receive transforms round-trip VP8 and opus frames; the clear header survives on the wire', async () => {
  const key = generateGroupKey();
  const send = createFrameTransform<Frame>(keyed('alice', 5, key), { direction: 'send' });
  const input = [vp8Keyframe(), vp8Delta(), opusPacket()];
  const wire = await through(send, [frameOf(input[0]!, 'video/VP8'), frameOf(input[1]!, 'video/VP8'), frameOf(input[2]!, 'audio/opus')]);
  assert.is(wire.length, 3);
  assert.ok(isVp8Keyframe(new Uint8Array(wire[0]!.data)));
  assert.is.not(wire[0]!.data.byteLength, input[0]!.byteLength);
  const recv = createFrameTransform<Frame>(keyed('bob', 5, key), { direction: 'receive', participantId: 'alice' });
  const back = await through(recv, wire);
  assert.equal(back.map((f) => [...new Uint8Array(f.data)]), input.map((b) => [...b]));
});

test('a send transform without a key sends nothing; a receive transform drops and reports unknown keys', async () => {
  const none = createFrameTransform<Frame>(new FrameCryptor('alice'), { direction: 'send' });
  assert.equal(await through(none, [frameOf(vp8Delta(), 'video/VP8')]), []);
  const wire = await through(createFrameTransform<Frame>(keyed('alice', 77, generateGroupKey()), { direction: 'send' }), [frameOf(vp8Delta(), 'video/VP8')]);
  const drops: FrameDrop[] = [];
  const recv = createFrameTransform<Frame>(keyed('bob', 1, generateGroupKey()), { direction: 'receive', participantId: 'alice' }, (d) => drops.push(d));
  assert.equal(await through(recv, wire), []);
  assert.equal(drops, [{ participantId: 'alice', reason: 'unknown-key', kid: 77 }]);
});

test('empty frames pass untouched; the mime type falls back to the option', async () => {
  const key = generateGroupKey();
  const send = createFrameTransform<EncodedFrameLike>(keyed('alice', 1, key), { direction: 'send', mimeType: 'video/VP8' });
  const bare: EncodedFrameLike[] = [{ data: new ArrayBuffer(0) }, { data: vp8Keyframe().slice().buffer }];
  const out: EncodedFrameLike[] = [];
  const done = send.readable.pipeTo(new WritableStream({ write: (f) => void out.push(f) }));
  const w = send.writable.getWriter();
  for (const f of bare) await w.write(f);
  await w.close();
  await done;
  assert.is(out[0]!.data.byteLength, 0);
  assert.equal([...new Uint8Array(out[1]!.data).subarray(0, 10)], [...vp8Keyframe().subarray(0, 10)], 'VP8 rule applied from the option');
  assert.throws(() => createFrameTransform(new FrameCryptor('a'), { direction: 'receive' }), /participantId/);
});

test('feature detection prefers RTCRtpScriptTransform, then createEncodedStreams, else none', () => {
  class ScriptTransform {}
  const streams = { prototype: { createEncodedStreams() {} } };
  assert.is(detectTransformApi({ RTCRtpScriptTransform: ScriptTransform, RTCRtpSender: streams, RTCRtpReceiver: streams }), 'script-transform');
  assert.is(detectTransformApi({ RTCRtpSender: streams, RTCRtpReceiver: streams }), 'encoded-streams');
  assert.is(detectTransformApi({ RTCRtpSender: streams }), 'none', 'both directions are needed');
  assert.is(detectTransformApi({}), 'none');
  assert.is(detectTransformApi(globalThis), 'none', 'Node has no encoded transforms');
  assert.equal(peerConnectionOptions('encoded-streams'), { encodedInsertableStreams: true });
  assert.equal(peerConnectionOptions('script-transform'), {});
});

test('createE2eeTransforms refuses an environment without encoded transforms with E2EE_NOT_SUPPORTED', () => {
  try {
    createE2eeTransforms({ selfId: 'a', globals: {} });
    assert.unreachable('created without an API');
  } catch (error) {
    assert.instance(error, E2eeError);
    assert.is((error as E2eeError).code, 'E2EE_NOT_SUPPORTED');
  }
});

/** Records what the page posts; answers stats like the worker. */
class RecordingWorker implements WorkerLike {
  readonly posted: Array<{ m: { op: string } & Record<string, unknown>; transfer?: unknown[] }> = [];
  #listener: ((ev: { data: unknown }) => void) | undefined;
  terminated = false;
  postMessage(m: unknown, transfer?: unknown[]): void {
    this.posted.push(transfer ? { m: m as never, transfer } : { m: m as never });
    const msg = m as { op: string; id?: number };
    if (msg.op === 'stats') this.#listener?.({ data: { op: 'stats', id: msg.id, stats: { encrypted: 3 } } });
  }
  addEventListener(_t: 'message', l: (ev: { data: unknown }) => void): void {
    this.#listener = l;
  }
  emit(data: unknown): void {
    this.#listener?.({ data });
  }
  terminate(): void {
    this.terminated = true;
  }
}

test('with RTCRtpScriptTransform every sender and receiver gets a transform on the one worker', async () => {
  const made: Array<[unknown, unknown]> = [];
  class RTCRtpScriptTransform {
    constructor(worker: unknown, options: unknown) {
      made.push([worker, options]);
    }
  }
  const worker = new RecordingWorker();
  const t = createE2eeTransforms({ selfId: 'alice', worker, globals: { RTCRtpScriptTransform } });
  assert.is(t.api, 'script-transform');
  const sender: { transform?: unknown } = {};
  const receiver: { transform?: unknown } = {};
  t.attachSender(sender, 'video/VP8');
  t.attachReceiver(receiver, 'bob');
  assert.instance(sender.transform, RTCRtpScriptTransform);
  assert.instance(receiver.transform, RTCRtpScriptTransform);
  assert.equal(made, [
    [worker, { direction: 'send', mimeType: 'video/VP8' }],
    [worker, { direction: 'receive', participantId: 'bob' }],
  ]);
  t.setKey(9, new Uint8Array(32));
  t.useKey(9);
  t.retainKeys([9]);
  assert.equal(worker.posted.map((p) => p.m.op), ['init', 'setKey', 'useKey', 'retainKeys']);
  assert.is((await t.stats()).encrypted, 3);
  const missing: Array<[string, number]> = [];
  t.handlers.keymissing = (p, kid) => missing.push([p, kid]);
  worker.emit({ op: 'keymissing', participantId: 'bob', kid: 4 });
  assert.equal(missing, [['bob', 4]]);
  t.close();
  assert.ok(worker.terminated);
});

test('with createEncodedStreams the streams are transferred to the worker', () => {
  const streams = { prototype: { createEncodedStreams() {} } };
  const worker = new RecordingWorker();
  const t = createE2eeTransforms({ selfId: 'alice', worker, globals: { RTCRtpSender: streams, RTCRtpReceiver: streams } });
  assert.is(t.api, 'encoded-streams');
  const pair = { readable: new ReadableStream(), writable: new WritableStream() };
  t.attachReceiver({ createEncodedStreams: () => pair }, 'bob', 'video/H264');
  const last = worker.posted.at(-1)!;
  assert.equal(last.m.op, 'stream');
  assert.equal(last.m.options, { direction: 'receive', participantId: 'bob', mimeType: 'video/H264' });
  assert.equal(last.transfer, [pair.readable, pair.writable]);
  try {
    t.attachSender({});
    assert.unreachable('attached without createEncodedStreams');
  } catch (error) {
    assert.is((error as E2eeError).code, 'E2EE_NOT_SUPPORTED');
  }
});

test.run();
