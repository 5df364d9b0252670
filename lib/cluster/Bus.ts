// The cluster bus: Redis pub/sub with one channel per node. Request/response with request ids
// and time-outs (CLUSTER_TIMEOUT), and one-way messages (events, relayed signalling frames).
// Pub/sub keeps the order of one publisher's messages to one channel, which the frame relay
// relies on. Nothing is stored: a message to a node that is down is lost, and its request times out.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { C4vError, InvalidStateError, MediaError, PolicyError, ProtocolError, type ErrorCode } from '../errors.js';
import { TypedEmitter } from '../events.js';
import { keys } from './keys.js';

type Wire =
  | { k: 'req'; id: number; from: string; method: string; args: unknown }
  | { k: 'res'; id: number; from: string; ok: true; result: unknown }
  | { k: 'res'; id: number; from: string; ok: false; error: { name: string; code?: string; message: string } }
  | { k: 'msg'; from: string; topic: string; body: unknown };

export type BusEvents = {
  /** A request this node sent was answered or timed out: method, target node, seconds, outcome. */
  request: [string, string, number, 'ok' | 'error' | 'timeout'];
  listenererror: [string, unknown];
};

/** Serialises a thrown value for the other node (coded errors keep class, code and message). */
function errorToBus(error: unknown): { name: string; code?: string; message: string } {
  if (error instanceof C4vError) return { name: error.name, code: error.code, message: error.message };
  if (error instanceof TypeError) return { name: 'TypeError', message: error.message };
  return { name: 'Error', message: 'internal error' };
}

function errorFromBus(e: { name: string; code?: string; message: string }): Error {
  const code = e.code as ErrorCode | undefined;
  if (!code) return e.name === 'TypeError' ? new TypeError(e.message) : new Error(e.message);
  switch (e.name) {
    case 'PolicyError':
      return new PolicyError(code, e.message);
    case 'MediaError':
      return new MediaError(code, e.message);
    case 'InvalidStateError':
      return new InvalidStateError(e.message, code);
    case 'ProtocolError':
      return new ProtocolError(code, e.message);
    default:
      return new C4vError(code, e.message);
  }
}

type Handler = (args: any, from: string) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any
type TopicHandler = (body: any, from: string) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

export class Bus extends TypedEmitter<BusEvents> {
  readonly nodeId: string;
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #handlers = new Map<string, Handler>();
  readonly #topics = new Map<string, TopicHandler>();
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #nextId = 1;
  #closed = false;

  constructor(o: { nodeId: string; redis: Redis; logger: Logger; timeoutMs: number }) {
    super();
    this.nodeId = o.nodeId;
    this.#pub = o.redis;
    // A subscribed connection cannot send commands: the bus has its own.
    this.#sub = o.redis.duplicate();
    this.#sub.on('error', () => undefined);
    this.#logger = o.logger.child({ component: 'bus' });
    this.#timeoutMs = o.timeoutMs;
    this.#sub.on('messageBuffer', (_channel: Buffer, data: Buffer) => this.#onWire(data));
  }

  /** Subscribes to this node's channel (again after a reconnect: ioredis re-subscribes by itself). */
  async start(): Promise<void> {
    await this.#sub.subscribe(keys.bus(this.nodeId));
  }

  /** Serves `method` for other nodes; a thrown error goes back coded. */
  handle(method: string, fn: Handler): void {
    this.#handlers.set(method, fn);
  }

  /** Receives one-way messages of `topic`. */
  listen(topic: string, fn: TopicHandler): void {
    this.#topics.set(topic, fn);
  }

  /** Calls `method` on node `to`; rejects with CLUSTER_TIMEOUT when no answer comes in time. */
  request<T = unknown>(to: string, method: string, args: unknown, timeoutMs = this.#timeoutMs): Promise<T> {
    if (this.#closed) return Promise.reject(new C4vError('CLOSED', 'cluster bus closed'));
    const id = this.#nextId++;
    const start = process.hrtime.bigint();
    const done = (outcome: 'ok' | 'error' | 'timeout'): void => {
      this.safeEmit('request', method, to, Number(process.hrtime.bigint() - start) / 1e9, outcome);
    };
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        done('timeout');
        reject(new C4vError('CLUSTER_TIMEOUT', `node ${to} did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          done('ok');
          resolve(v as T);
        },
        reject: (e) => {
          done('error');
          reject(e);
        },
        timer,
      });
      this.#publish(to, { k: 'req', id, from: this.nodeId, method, args }).catch((error: unknown) => {
        clearTimeout(timer);
        this.#pending.delete(id);
        done('error');
        reject(new C4vError('CLUSTER_UNAVAILABLE', `cluster bus unreachable (${String(error)})`));
      });
    });
  }

  /** Sends a one-way message; resolves once Redis took it (not when the node read it). */
  async send(to: string, topic: string, body: unknown): Promise<void> {
    if (this.#closed) return;
    await this.#publish(to, { k: 'msg', from: this.nodeId, topic, body });
  }

  async #publish(to: string, m: Wire): Promise<void> {
    await this.#pub.publish(keys.bus(to), JSON.stringify(m));
  }

  #onWire(data: Buffer): void {
    let m: Wire;
    try {
      m = JSON.parse(data.toString('utf8')) as Wire;
    } catch {
      this.#logger.warn('undecodable bus message dropped');
      return;
    }
    if (m.k === 'msg') {
      const fn = this.#topics.get(m.topic);
      if (!fn) return;
      try {
        fn(m.body, m.from);
      } catch (error) {
        this.#logger.error({ err: String(error), topic: m.topic }, 'bus message handler failed');
      }
    } else if (m.k === 'req') {
      void this.#serve(m);
    } else if (m.k === 'res') {
      const p = this.#pending.get(m.id);
      if (!p) return; // answered after its time-out
      this.#pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.result);
      else p.reject(errorFromBus(m.error));
    }
  }

  async #serve(m: Extract<Wire, { k: 'req' }>): Promise<void> {
    const fn = this.#handlers.get(m.method);
    let reply: Wire;
    try {
      if (!fn) throw new C4vError('NOT_FOUND', `no bus method ${m.method}`);
      const result = await fn(m.args, m.from);
      reply = { k: 'res', id: m.id, from: this.nodeId, ok: true, result: result ?? null };
    } catch (error) {
      if (!(error instanceof C4vError) && !(error instanceof TypeError)) {
        this.#logger.error({ err: String(error), method: m.method }, 'bus request failed');
      }
      reply = { k: 'res', id: m.id, from: this.nodeId, ok: false, error: errorToBus(error) };
    }
    await this.#publish(m.from, reply).catch(() => undefined);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Fails pending requests with CLOSED and leaves the channel. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new C4vError('CLOSED', 'cluster bus closed'));
    }
    this.#sub.disconnect();
  }
}
