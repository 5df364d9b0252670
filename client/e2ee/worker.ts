// The E2EE worker: one per E2eeTransforms, so that all of this participant's tracks share one
// FrameCryptor (and so one counter per key: nonces stay unique). It serves both browser APIs:
// RTCRtpScriptTransform delivers `rtctransform` events here; with createEncodedStreams the page
// transfers each sender's or receiver's streams in a 'stream' message.
import { createFrameTransform, type FrameTransformOptions } from './frameTransform.js';
import { FrameCryptor } from './sframe.js';
import type { FromWorker, ToWorker } from './workerProtocol.js';

interface RtcTransformer {
  readable: ReadableStream;
  writable: WritableStream;
  options: FrameTransformOptions;
}

interface WorkerScope {
  onmessage: ((ev: { data: ToWorker }) => void) | null;
  onrtctransform: ((ev: { transformer: RtcTransformer }) => void) | null;
  postMessage(m: FromWorker): void;
}

const scope = globalThis as unknown as WorkerScope;
let cryptor: FrameCryptor | undefined;
/** Key ids already reported missing: one report each until a key arrives. */
const reported = new Set<number>();

function post(m: FromWorker): void {
  scope.postMessage(m);
}

/** Transforms that arrived before 'init' (an rtctransform event is not ordered with messages). */
const early: Array<[ReadableStream, WritableStream, FrameTransformOptions]> = [];

function pipe(readable: ReadableStream, writable: WritableStream, options: FrameTransformOptions): void {
  if (!cryptor) {
    early.push([readable, writable, options]);
    return;
  }
  const t = createFrameTransform(cryptor, options, (drop) => {
    if (drop.reason === 'unknown-key' && drop.kid !== undefined && !reported.has(drop.kid)) {
      reported.add(drop.kid);
      post({ op: 'keymissing', participantId: drop.participantId, kid: drop.kid });
    }
  });
  // A pipe ends when its track or connection does; nothing to report then.
  readable.pipeThrough(t).pipeTo(writable).catch(() => undefined);
}

scope.onmessage = (ev) => {
  const m = ev.data;
  try {
    switch (m.op) {
      case 'init':
        cryptor = new FrameCryptor(m.selfId);
        for (const args of early.splice(0)) pipe(...args);
        break;
      case 'setKey':
        cryptor!.setKey(m.kid, m.key);
        reported.delete(m.kid);
        break;
      case 'useKey':
        cryptor!.useKey(m.kid);
        break;
      case 'retainKeys':
        cryptor!.retainKeys(m.kids);
        break;
      case 'stats':
        post({ op: 'stats', id: m.id, stats: cryptor!.stats });
        break;
      case 'stream':
        pipe(m.readable, m.writable, m.options);
        break;
    }
  } catch (error) {
    post({ op: 'error', message: error instanceof Error ? error.message : String(error) });
  }
};

scope.onrtctransform = (ev) => pipe(ev.transformer.readable, ev.transformer.writable, ev.transformer.options);
