// A control plane for tests: an ordinary local HTTP server that records every byte it is sent,
// checks the HMAC signature and the timestamp like a real receiver would, and keeps the first
// delivery of each idempotency key. It decodes with protobufjs reflection of
// proto/controlplane.proto, independently of the library's generated code.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { verifyControlPlaneRequest } from '../../lib/index.js';
import { within } from './util.js';

const root = protobuf.loadSync(fileURLToPath(new URL('../../../proto/controlplane.proto', import.meta.url)));
export const EventType = root.lookupType('c4v.controlplane.v1.ControlPlaneEvent');

/** One accepted event as the receiver decoded it. */
export interface ReceivedEvent {
  eventId: string;
  meetingId: string;
  sequence: number;
  /** The meeting instance ('' when the event carries none). */
  meetingInstanceId: string;
  kind: string;
  body: Record<string, unknown>;
}

/**
 * How the receiver answers: 'up' accepts, 'down' answers 503 without looking at the body,
 * 'lose-answer' accepts (records the event) and then cuts the connection before answering, as if
 * the answer got lost: the sender must retry and the receiver must recognise the duplicate.
 */
export type ReceiverMode = 'up' | 'down' | 'lose-answer';

export class ControlPlaneReceiver {
  readonly secret: string;
  mode: ReceiverMode = 'up';
  /** Modes for the next requests, one each, before `mode` applies again. */
  readonly script: ReceiverMode[] = [];
  /** Every request body as received, in order (accepted or not). */
  readonly bodies: Buffer[] = [];
  /** First delivery of each idempotency key, in arrival order. */
  readonly accepted: ReceivedEvent[] = [];
  /** How many times each key arrived (accepted deliveries only). */
  readonly arrivals = new Map<string, number>();
  /** Requests refused for a bad signature or timestamp. */
  readonly refused: string[] = [];
  /** Bodies that did not re-encode to the same bytes (they carried something undeclared). */
  readonly undeclared: Buffer[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #tls = false;

  private constructor(secret: string, tls?: { cert: string; key: string }) {
    this.secret = secret;
    const handler = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res);
    this.#server = tls ? createHttpsServer(tls, handler) : createServer(handler);
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  /** Starts on an ephemeral port of 127.0.0.1; HTTPS when `tls` is given. */
  static async start(secret = 'test-secret-0123456789abcdef-0123456789', tls?: { cert: string; key: string }): Promise<ControlPlaneReceiver> {
    const r = new ControlPlaneReceiver(secret, tls);
    r.#tls = tls !== undefined;
    await new Promise<void>((resolve) => r.#server.listen(0, '127.0.0.1', resolve));
    r.#port = (r.#server.address() as AddressInfo).port;
    return r;
  }

  get url(): string {
    return `${this.#tls ? 'https' : 'http'}://127.0.0.1:${this.#port}/v1/events`;
  }

  /** Every byte received, for "this text never left the process" checks. */
  get allBytes(): Buffer {
    return Buffer.concat(this.bodies);
  }

  /** Accepted events of one meeting, in arrival order. */
  ofMeeting(meetingId: string): ReceivedEvent[] {
    return this.accepted.filter((e) => e.meetingId === meetingId);
  }

  waitFor(predicate: () => boolean, what: string, ms = 15_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (predicate()) {
            this.#server.off('request', onRequest);
            resolve();
          }
        };
        // Checked after the handler below has recorded the request.
        const onRequest = (_req: IncomingMessage, res: ServerResponse): void => {
          res.once('close', check);
        };
        this.#server.on('request', onRequest);
      }),
      ms,
      what,
    );
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      this.bodies.push(body);
      const mode = this.script.shift() ?? this.mode;
      if (mode === 'down') {
        res.writeHead(503).end();
        return;
      }
      const check = verifyControlPlaneRequest({ secret: this.secret, headers: req.headers, body });
      if (!check.ok) {
        this.refused.push(check.reason);
        res.writeHead(401).end();
        return;
      }
      const json = String(req.headers['content-type']).includes('json');
      const decoded = json ? EventType.fromObject(JSON.parse(body.toString())) : EventType.decode(body);
      if (!json && !Buffer.from(EventType.encode(decoded).finish()).equals(body)) this.undeclared.push(body);
      const obj = EventType.toObject(decoded, { longs: Number, oneofs: true }) as Record<string, unknown>;
      const kind = String(obj.event);
      const count = (this.arrivals.get(check.eventId) ?? 0) + 1;
      this.arrivals.set(check.eventId, count);
      if (count === 1) {
        this.accepted.push({
          eventId: String(obj.eventId),
          meetingId: String(obj.meetingId),
          sequence: Number(obj.sequence),
          meetingInstanceId: typeof obj.meetingInstanceId === 'string' ? obj.meetingInstanceId : '',
          kind,
          body: obj[kind] as Record<string, unknown>,
        });
      }
      if (mode === 'lose-answer') {
        req.socket.destroy();
        return;
      }
      res.writeHead(204).end();
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
