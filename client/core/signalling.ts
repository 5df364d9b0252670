// The signalling connection: protobuf envelopes over one WebSocket, request ids, one response per
// request, notifications. Runs on a browser WebSocket and on Node's `ws` alike (SocketLike).
import { encodeEnvelope, errorFromWire, pb } from '../../gateway/wire.js';
import type { c4v } from '../../proto/gen/signalling.js';
import { Emitter } from './emitter.js';

export type RequestProps = c4v.signalling.v1.Request.$Properties;
export type WireResponse = c4v.signalling.v1.Response;
export type WireNotification = c4v.signalling.v1.Notification;

/** The parts of a WebSocket the SDK uses (browser WebSocket and `ws` both have them). */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** Opens a WebSocket to `url` (browsers: `(u) => new WebSocket(u)`). */
export type SocketFactory = (url: string) => SocketLike;

/** A request the server refused: the wire code name (lib/errors.ts ErrorCodes) and its reason. */
export class ClientError extends Error {
  constructor(
    readonly code: string,
    readonly reason: string,
  ) {
    super(`${code}: ${reason}`);
    this.name = 'ClientError';
  }
}

export type SignallingEvents = {
  notification: [WireNotification];
  /** The socket closed: its status code (4000 + CloseReason for a server close) and text. */
  close: [number, string];
  listenererror: [string, unknown];
};

const OPEN = 1;

/** One signalling WebSocket. */
export class Signalling extends Emitter<SignallingEvents> {
  readonly #ws: SocketLike;
  readonly #pending = new Map<number, { resolve: (r: WireResponse) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }>();
  #nextId = 1;
  #closed = false;
  /** When the socket opened (performance.now() / Date.now()), for join-time measurements. */
  openedAt = 0;

  /** Opens the socket and resolves once it is open (rejects when it closes first). */
  static open(url: string, factory: SocketFactory, timeoutMs = 10_000): Promise<Signalling> {
    return new Promise((resolve, reject) => {
      let ws: SocketLike;
      try {
        ws = factory(url);
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      ws.binaryType = 'arraybuffer';
      const timer = setTimeout(() => {
        ws.close();
        reject(new ClientError('TIMEOUT', `no WebSocket to ${url} within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        const s = new Signalling(ws);
        s.openedAt = now();
        resolve(s);
      };
      ws.onerror = () => undefined;
      ws.onclose = (ev) => {
        clearTimeout(timer);
        reject(new ClientError('CONNECTION_FAILED', `WebSocket to ${url} closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`));
      };
    });
  }

  private constructor(ws: SocketLike) {
    super();
    this.#ws = ws;
    ws.onmessage = (ev) => this.#onMessage(ev.data);
    ws.onerror = () => undefined; // an error always ends in close
    ws.onclose = (ev) => this.#onClose(ev.code, ev.reason);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends a request; resolves with its response, rejects with ClientError on an error response. */
  request(request: RequestProps, timeoutMs = 15_000): Promise<WireResponse> {
    if (this.#closed || this.#ws.readyState !== OPEN) return Promise.reject(new ClientError('CLOSED', 'signalling connection closed'));
    const id = this.#nextId++;
    return new Promise<WireResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ClientError('TIMEOUT', `no response to ${Object.keys(request).join(',')} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#ws.send(encodeEnvelope({ id, request }));
    }).then((r) => {
      if (r.error) throw new ClientError(String(errorFromWire(r.error)), r.error.reason ?? '');
      return r;
    });
  }

  /** Closes the socket (1000). Pending requests reject with CLOSED. */
  close(): void {
    if (this.#closed) return;
    try {
      this.#ws.close(1000, 'client closed');
    } catch {
      // already closing
    }
    this.#onClose(1000, 'client closed');
  }

  #onMessage(data: unknown): void {
    let env: c4v.signalling.v1.Envelope;
    try {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : (data as Uint8Array);
      env = pb.Envelope.decode(bytes);
    } catch {
      return; // a server never sends garbage; nothing sensible to do with it
    }
    if (env.response) {
      const p = this.#pending.get(env.id);
      if (!p) return;
      this.#pending.delete(env.id);
      clearTimeout(p.timer);
      p.resolve(env.response as WireResponse);
    } else if (env.notification) {
      this.emit('notification', env.notification as WireNotification);
    }
  }

  #onClose(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new ClientError('CLOSED', 'signalling connection closed'));
    }
    this.#pending.clear();
    this.emit('close', code, reason);
  }
}

/** Milliseconds from a monotonic clock where there is one. */
export function now(): number {
  return typeof performance !== 'undefined' ? performance.now() : Date.now();
}
