// Shared pieces of the operator API tests (issue 15): the demo server started from environment
// variables only (no config file), raw HTTP requests for refusal tests, and a Zoom webhook
// receiver that checks signatures exactly as Zoom's documentation tells a receiver to.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { ApiClient } from '../../gateway/api/client.js';
import { signApiRequest } from '../../gateway/api/auth.js';
import { loadConfig } from '../../gateway/config.js';
import { startDemoServer, type DemoServer, type DemoServerOptions } from '../../gateway/serve.js';
import { silentLogger, within } from './util.js';

export const ADMIN_SECRET = 'admin-secret-for-tests-0123456789abcdef';
export const ZOOM_SECRET = 'zoom-secret-token-0123456789abcdef';

/** The demo server from environment variables (no file), on an ephemeral port, one worker. */
export async function startServer(dir: string, env: Record<string, string> = {}, options: DemoServerOptions = {}): Promise<DemoServer> {
  const config = loadConfig({
    env: {
      C4V_PORT: '0',
      C4V_WORKERS: '1',
      C4V_LOG_LEVEL: 'silent',
      C4V_CONTROL_PLANE_OUTBOX: join(dir, 'outbox.db'),
      C4V_CONTROL_PLANE_FILE: join(dir, 'metadata.jsonl'),
      C4V_API_SECRET: ADMIN_SECRET,
      ...env,
    },
  });
  return startDemoServer(config, silentLogger(), options);
}

/** An API client with the admin key of startServer(). */
export function adminClient(server: DemoServer): ApiClient {
  return new ApiClient({ url: server.gateway.httpUrl, keyId: 'admin', secret: ADMIN_SECRET });
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  json: { error?: { code: string; reason: string; field?: string } } & Record<string, unknown>;
}

/**
 * One request as any HTTP client could send it. `auth` is a key (signed here), a ready
 * Authorization value, or nothing.
 */
export async function raw(
  server: DemoServer,
  method: string,
  path: string,
  options: { key?: { id: string; secret: string }; authorization?: string; body?: unknown; rawBody?: string; contentType?: string } = {},
): Promise<RawAnswer> {
  const headers: Record<string, string> = {};
  if (options.key) headers.authorization = `Bearer ${await signApiRequest(options.key.id, options.key.secret)}`;
  if (options.authorization !== undefined) headers.authorization = options.authorization;
  let body: string | undefined;
  if (options.rawBody !== undefined) body = options.rawBody;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const res = await fetch(`${server.gateway.httpUrl}/api/v1${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : {} };
}

export const ADMIN = { id: 'admin', secret: ADMIN_SECRET };

/** One webhook as the Zoom-side receiver accepted it. */
export interface ZoomDelivery {
  event: string;
  event_ts: number;
  payload: { account_id?: string; object: Record<string, unknown> };
  headers: IncomingMessage['headers'];
  raw: Buffer;
}

/**
 * A Zoom webhook consumer: verifies each request the way Zoom's "Verify webhook events"
 * documentation describes (message = `v0:{x-zm-request-timestamp}:{raw body}`, HMAC-SHA256 with
 * the secret token, hex, compared with x-zm-signature after "v0="), independently of the
 * library's own helper. Answers 200 to good requests and 401 to anything else.
 */
export class ZoomReceiver {
  readonly accepted: ZoomDelivery[] = [];
  readonly refused: string[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #waiters = new Set<() => void>();
  #port = 0;

  private constructor(readonly secret: string) {
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
  }

  static async start(secret = ZOOM_SECRET): Promise<ZoomReceiver> {
    const r = new ZoomReceiver(secret);
    await new Promise<void>((resolve) => r.#server.listen(0, '127.0.0.1', resolve));
    r.#port = (r.#server.address() as AddressInfo).port;
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/zoom/webhook`;
  }

  /** Accepted webhooks of one meeting (payload.object.id), in arrival order. */
  ofMeeting(id: string): ZoomDelivery[] {
    return this.accepted.filter((d) => d.payload.object.id === id);
  }

  waitFor(predicate: () => boolean, what: string, ms = 20_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return within(
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (predicate()) {
            this.#waiters.delete(check);
            resolve();
          }
        };
        this.#waiters.add(check);
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
      const ts = req.headers['x-zm-request-timestamp'];
      const sig = req.headers['x-zm-signature'];
      const message = `v0:${String(ts)}:${body.toString('utf8')}`;
      const expected = `v0=${createHmac('sha256', this.secret).update(message).digest('hex')}`;
      const fresh = typeof ts === 'string' && Math.abs(Date.now() / 1000 - Number(ts)) <= 300;
      const ok = typeof sig === 'string' && sig.length === expected.length && timingSafeEqual(Buffer.from(sig), Buffer.from(expected));
      if (!ok || !fresh) {
        this.refused.push(!ok ? 'bad-signature' : 'stale-timestamp');
        res.writeHead(401).end();
      } else {
        const parsed = JSON.parse(body.toString('utf8')) as Omit<ZoomDelivery, 'headers' | 'raw'>;
        this.accepted.push({ ...parsed, headers: req.headers, raw: body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }
      for (const w of [...this.#waiters]) w();
    });
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
