// Encoded-transform glue on the page: picks the browser's API by feature detection, runs every
// transform in one E2EE worker (worker.ts, shipped next to this file) and is the KeySink the
// E2eeSession puts keys into.
//
//   RTCRtpScriptTransform (Safari, Firefox, Chromium 141+): `sender.transform = new RTCRtpScriptTransform(worker, options)`
//   createEncodedStreams (older Chromium): the RTCPeerConnection must be created with
//     `encodedInsertableStreams: true` (see peerConnectionOptions); the streams go to the worker.
import { E2eeError } from './errors.js';
import type { FrameTransformOptions } from './frameTransform.js';
import type { CryptorStats, KeySink } from './sframe.js';
import type { FromWorker, ToWorker } from './workerProtocol.js';

/** Which encoded-transform API the browser has. */
export type TransformApi = 'script-transform' | 'encoded-streams' | 'none';

interface TransformGlobals {
  RTCRtpScriptTransform?: unknown;
  RTCRtpSender?: { prototype?: { createEncodedStreams?: unknown } };
  RTCRtpReceiver?: { prototype?: { createEncodedStreams?: unknown } };
}

/**
 * The encoded-transform API of this environment: RTCRtpScriptTransform where present (the
 * standard), else createEncodedStreams on both senders and receivers, else none.
 */
export function detectTransformApi(g: object = globalThis): TransformApi {
  const w = g as TransformGlobals;
  if (typeof w.RTCRtpScriptTransform === 'function') return 'script-transform';
  if (typeof w.RTCRtpSender?.prototype?.createEncodedStreams === 'function' && typeof w.RTCRtpReceiver?.prototype?.createEncodedStreams === 'function') {
    return 'encoded-streams';
  }
  return 'none';
}

/**
 * Extra RTCPeerConnection options E2EE needs with this API: `encodedInsertableStreams: true` for
 * createEncodedStreams (mediasoup-client: pass it as `additionalSettings` of createSendTransport
 * and createRecvTransport), nothing for RTCRtpScriptTransform.
 */
export function peerConnectionOptions(api: TransformApi = detectTransformApi()): Record<string, unknown> {
  return api === 'encoded-streams' ? { encodedInsertableStreams: true } : {};
}

/** The members of a Worker used here. */
export interface WorkerLike {
  postMessage(message: unknown, transfer?: unknown[]): void;
  addEventListener(type: 'message', listener: (ev: { data: unknown }) => void): void;
  terminate(): void;
}

/** The members of an RTCRtpSender / RTCRtpReceiver used here. */
export interface RtpEndpointLike {
  transform?: unknown;
  createEncodedStreams?(): { readable: ReadableStream; writable: WritableStream };
}

/** Options of createE2eeTransforms. */
export interface E2eeTransformsOptions {
  /** This participant's id (its frames are encrypted under it). */
  selfId: string;
  /** The E2EE worker. Default: `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })`. */
  worker?: WorkerLike;
  /** @internal Tests pass the globals to detect the API in. */
  globals?: object;
}

/**
 * Creates the transform glue, or throws E2EE_NOT_SUPPORTED when the browser has no
 * encoded-transform API (such a client must join without E2EE, and is refused by an
 * `e2ee: 'required'` meeting).
 */
export function createE2eeTransforms(options: E2eeTransformsOptions): E2eeTransforms {
  const g = options.globals ?? globalThis;
  const api = detectTransformApi(g);
  if (api === 'none') throw new E2eeError('E2EE_NOT_SUPPORTED', 'this browser has neither RTCRtpScriptTransform nor createEncodedStreams: it cannot encrypt media end to end');
  const worker = options.worker ?? defaultWorker(g);
  return new E2eeTransforms(api, worker, options.selfId, g);
}

function defaultWorker(g: object): WorkerLike {
  const W = (g as { Worker?: new (url: URL, o: { type: 'module'; name: string }) => WorkerLike }).Worker;
  if (typeof W !== 'function') throw new E2eeError('E2EE_NOT_SUPPORTED', 'no Worker in this environment');
  return new W(new URL('./worker.js', import.meta.url), { type: 'module', name: 'c4v-e2ee' });
}

/** Events of E2eeTransforms, as callbacks (the SDK wires them to the session). */
export interface E2eeTransformsHandlers {
  /** A frame from `participantId` named key `kid`, which the worker lacks: call session.keyMissing. */
  keymissing?: (participantId: string, kid: number) => void;
  /** The worker reported an error. */
  error?: (message: string) => void;
}

/** See the file comment. Created by createE2eeTransforms. */
export class E2eeTransforms implements KeySink {
  /** The API in use. */
  readonly api: TransformApi;
  readonly #worker: WorkerLike;
  readonly #g: object;
  readonly handlers: E2eeTransformsHandlers = {};
  readonly #stats = new Map<number, (s: CryptorStats) => void>();
  #nextId = 1;
  #closed = false;

  /** @internal Use createE2eeTransforms. */
  constructor(api: TransformApi, worker: WorkerLike, selfId: string, g: object) {
    this.api = api;
    this.#worker = worker;
    this.#g = g;
    worker.addEventListener('message', (ev) => this.#onMessage(ev.data as FromWorker));
    this.#post({ op: 'init', selfId });
  }

  #post(m: ToWorker, transfer?: unknown[]): void {
    if (this.#closed) return;
    this.#worker.postMessage(m, transfer);
  }

  #onMessage(m: FromWorker): void {
    if (m.op === 'stats') {
      this.#stats.get(m.id)?.(m.stats);
      this.#stats.delete(m.id);
    } else if (m.op === 'keymissing') this.handlers.keymissing?.(m.participantId, m.kid);
    else if (m.op === 'error') this.handlers.error?.(m.message);
  }

  setKey(kid: number, groupKey: Uint8Array): void {
    this.#post({ op: 'setKey', kid, key: groupKey.slice() });
  }

  useKey(kid: number): void {
    this.#post({ op: 'useKey', kid });
  }

  retainKeys(kids: readonly number[]): void {
    this.#post({ op: 'retainKeys', kids: [...kids] });
  }

  /** Encrypts what `sender` sends from now on (`mimeType`: its codec, for browsers whose frames do not say). */
  attachSender(sender: RtpEndpointLike, mimeType?: string): void {
    this.#attach(sender, { direction: 'send', ...(mimeType ? { mimeType } : {}) });
  }

  /** Decrypts what `receiver` receives: frames of `participantId` (the producer's participant). */
  attachReceiver(receiver: RtpEndpointLike, participantId: string, mimeType?: string): void {
    this.#attach(receiver, { direction: 'receive', participantId, ...(mimeType ? { mimeType } : {}) });
  }

  #attach(endpoint: RtpEndpointLike, options: FrameTransformOptions): void {
    if (this.#closed) throw new E2eeError('E2EE_NOT_SUPPORTED', 'the E2EE transforms are closed');
    if (this.api === 'script-transform') {
      const T = (this.#g as { RTCRtpScriptTransform: new (w: WorkerLike, o: FrameTransformOptions) => unknown }).RTCRtpScriptTransform;
      endpoint.transform = new T(this.#worker, options);
      return;
    }
    if (typeof endpoint.createEncodedStreams !== 'function') throw new E2eeError('E2EE_NOT_SUPPORTED', 'this sender/receiver has no createEncodedStreams (was the peer connection created with encodedInsertableStreams?)');
    const { readable, writable } = endpoint.createEncodedStreams();
    this.#post({ op: 'stream', readable, writable, options }, [readable, writable]);
  }

  /** The worker's frame counters (encrypted, decrypted, and drops by reason). */
  stats(): Promise<CryptorStats> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#stats.set(id, resolve);
      this.#post({ op: 'stats', id });
    });
  }

  /** Stops the worker: every transform ends, no key stays in memory there. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
  }
}
