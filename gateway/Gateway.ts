import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { WebSocketServer, type WebSocket } from 'ws';
import { SetupError } from '../lib/errors.js';
import { clientAddress, ForwardedHeaderError, TrustedProxies, type ForwardedHeader } from './clientAddress.js';
import { checkAllowedOrigins, originAllowed } from './origin.js';
import { Connection, type ConnectionContext, type ConnectionLimits, type HotPathTuning } from './Connection.js';
import { KeyedRateLimiter } from './limits.js';
import { GatewayMetrics } from './metrics.js';
import type { GatewayCore, GatewayMeeting, GatewayParticipant } from './model.js';
import { Session, type SessionStore } from './Session.js';
import type { JoinTokens } from './tokens.js';

/** Limits of the gateway: those of each connection plus the per-address ones; every one has a default (see DEFAULT_LIMITS). */
export interface GatewayLimits extends ConnectionLimits {
  /** Requests per second from one address over all its connections, and the burst. */
  addressMessagesPerSecond: number;
  addressMessageBurst: number;
  /** Open connections from one address at most (HTTP 429 at the upgrade beyond). */
  connectionsPerAddress: number;
  /** New connections per second from one address, and the burst (HTTP 429 beyond). */
  connectionAttemptsPerSecond: number;
  connectionAttemptBurst: number;
}

export const DEFAULT_LIMITS: Readonly<GatewayLimits> = Object.freeze({
  maxMessageBytes: 64 * 1024,
  messagesPerSecond: 50,
  messageBurst: 100,
  addressMessagesPerSecond: 500,
  addressMessageBurst: 1000,
  connectionsPerAddress: 100,
  connectionAttemptsPerSecond: 20,
  connectionAttemptBurst: 50,
  maxPendingRequests: 32,
  maxBufferedBytes: 1024 * 1024,
  protocolErrorsBeforeClose: 10,
  floodStrikesBeforeClose: 20,
  pingIntervalMs: 10_000,
  reconnectGraceMs: 15_000,
  joinTimeoutMs: 30_000,
});

export interface GatewayOptions {
  /** The media core with its meetings (MediaCore). */
  core: GatewayCore;
  /** Root logger; the gateway logs through child loggers with connection, meeting and participant ids. */
  logger: Logger;
  /** The metrics registry served on /metrics (never the global one). */
  registry: Registry;
  /** Verifies join tokens (the meeting server issues them with the same secret). */
  tokens: JoinTokens;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Port; default 0 (an ephemeral port: read `gateway.port`). */
  port?: number;
  /** Path of the WebSocket endpoint; default /signalling. */
  path?: string;
  /** TLS certificate and key (PEM): serve HTTPS and WSS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /**
   * Allow plain HTTP on a non-loopback address. Off by default: signalling carries passwords and
   * tokens, so it is encrypted whenever it leaves the machine (or a TLS proxy in front terminates it).
   */
  allowInsecurePublic?: boolean;
  limits?: Partial<GatewayLimits>;
  /** Reported in hello; default the package version. */
  serverVersion?: string;
  /**
   * Reverse proxies (CIDR list, e.g. `['10.0.0.0/8', '::1']`) whose forwarding header names the
   * client. Only when the TCP peer is in this list is `forwardedHeader` read; otherwise the peer
   * is the client. Default none: headers are never believed.
   */
  trustedProxies?: readonly string[];
  /** The header the trusted proxies write: `x-forwarded-for` (default) or RFC 7239 `forwarded`. */
  forwardedHeader?: ForwardedHeader;
  /**
   * Browser origins (`https://meet.example.org`, or `*`) allowed to open signalling connections
   * besides the gateway's own origin, which is always allowed; an upgrade with any other Origin
   * header gets HTTP 403. Clients that send no Origin (apps, servers) are not affected.
   * Default: none besides the same origin.
   */
  allowedOrigins?: readonly string[];
  /** Issue 15: answers every HTTP request under /api/ (the operator API, createOperatorApi()). */
  api?: { handle(req: IncomingMessage, res: ServerResponse, clientAddress?: string): Promise<void> };
  /**
   * Issue 11: further GET routes (the web app). Called for any path the gateway does not serve
   * itself; returns true when it answered the request.
   */
  httpRoutes?: (path: string, req: IncomingMessage, res: ServerResponse) => boolean;
  /** @internal Issue 14: hot-path switches (all on by default); bench/signalling.ts measures each against a baseline. */
  _tuning?: Partial<HotPathTuning>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/**
 * The signalling gateway: an HTTP(S) server with the WebSocket endpoint (`/signalling`),
 * `/metrics` (Prometheus text from the registry) and `/healthz` (200 only while media workers are
 * up). Created with createGateway(); `close()` ends every connection with SERVER_SHUTDOWN.
 */
export class Gateway {
  readonly #options: GatewayOptions;
  readonly #limits: GatewayLimits;
  readonly #logger: Logger;
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  readonly #perAddress = new Map<string, number>();
  readonly #attempts: KeyedRateLimiter;
  readonly #ctx: ConnectionContext;
  readonly #path: string;
  readonly #trusted: TrustedProxies;
  readonly #forwardedHeader: ForwardedHeader;
  readonly #allowedOrigins: readonly string[];
  readonly metrics: GatewayMetrics;
  #pingTimer: NodeJS.Timeout | undefined;
  #nextConnId = 1;
  #closed = false;
  /**
   * @internal Issue 13, cluster mode (gateway/cluster/ClusterEdge.ts): takes each new WebSocket
   * instead of a Connection being opened for it here; the edge later hands it (or a relayed one)
   * back through _attach().
   */
  _socketRouter: ((ws: WebSocket, address: string) => void) | undefined;
  /** @internal Issue 13: more fields for /healthz (the cluster view). */
  _healthExtra: (() => Record<string, unknown>) | undefined;

  /** @internal Issue 13b: cluster mode writes every session's resume record through (see SessionStore). */
  set _sessionStore(store: SessionStore | undefined) {
    this.#ctx.sessionStore = store;
  }

  /**
   * @internal Issue 13b: a session of a participant a previous home had (restored by the cluster
   * node that took the home role over): detached, resumable with the client's latest token (known
   * here only by its hash) for the reconnect grace period, which starts now.
   */
  _restoreSession(meeting: GatewayMeeting, participant: GatewayParticipant, tokenHash: string): Session {
    const logger = this.#logger.child({ meetingId: meeting.id, participantId: participant.id });
    const session = new Session(meeting, participant, this.metrics, logger, process.hrtime.bigint(), (s) => {
      if (this.#ctx.sessions.get(s.participant.id) === s) this.#ctx.sessions.delete(s.participant.id);
    });
    session._restored(tokenHash, this.#limits.reconnectGraceMs);
    this.#ctx.sessions.set(participant.id, session);
    return session;
  }

  /** @internal Use createGateway(). */
  constructor(options: GatewayOptions) {
    const host = options.host ?? '127.0.0.1';
    if (!options.tls && !isLoopback(host) && !options.allowInsecurePublic) {
      throw new SetupError(
        'CONFIG_INVALID',
        `refusing plain HTTP on ${host}: give a TLS certificate and key, listen on loopback, or set allowInsecurePublic behind a TLS proxy`,
      );
    }
    this.#options = { ...options, host };
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    for (const [k, v] of Object.entries(this.#limits)) {
      if (!(typeof v === 'number' && v > 0)) throw new TypeError(`gateway limit ${k} must be a positive number, got ${v}`);
    }
    this.#path = options.path ?? '/signalling';
    this.#trusted = new TrustedProxies(options.trustedProxies ?? []);
    this.#forwardedHeader = options.forwardedHeader ?? 'x-forwarded-for';
    if (this.#forwardedHeader !== 'x-forwarded-for' && this.#forwardedHeader !== 'forwarded') {
      throw new TypeError(`forwardedHeader must be x-forwarded-for or forwarded, got ${String(this.#forwardedHeader)}`);
    }
    this.#allowedOrigins = checkAllowedOrigins(options.allowedOrigins ?? []);
    this.#logger = options.logger.child({ component: 'gateway' });
    this.metrics = new GatewayMetrics(options.registry, options.core);
    this.#attempts = new KeyedRateLimiter(this.#limits.connectionAttemptsPerSecond, this.#limits.connectionAttemptBurst);
    this.#ctx = {
      core: options.core,
      tokens: options.tokens,
      metrics: this.metrics,
      limits: this.#limits,
      addressLimiter: new KeyedRateLimiter(this.#limits.addressMessagesPerSecond, this.#limits.addressMessageBurst),
      serverVersion: options.serverVersion ?? 'c4v-media',
      sessions: new Map<string, Session>(),
      ...(options._tuning ? { tuning: options._tuning } : {}),
    };
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.#onHttp(req, res);
    this.#server = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }, handler) : createHttpServer(handler);
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: this.#limits.maxMessageBytes, perMessageDeflate: false });
    this.#server.on('upgrade', (req, socket, head) => this.#onUpgrade(req, socket, head));
    this.#server.on('clientError', (_err, socket) => socket.destroy());
  }

  /** Starts listening; resolves with the bound port. */
  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port ?? 0, this.#options.host, () => {
        this.#server.off('error', reject);
        // After start-up a server error (e.g. EMFILE) is logged, never an uncaught exception.
        this.#server.on('error', (error) => this.#logger.error({ err: String(error) }, 'http server error'));
        resolve();
      });
    });
    this.#pingTimer = setInterval(() => this.#pingRound(), this.#limits.pingIntervalMs);
    this.#pingTimer.unref();
    this.#logger.info({ url: this.url }, 'signalling gateway listening');
    return this.port;
  }

  get port(): number {
    const a = this.#server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The WebSocket URL (ws:// or wss://). */
  get url(): string {
    const host = this.#options.host!.includes(':') ? `[${this.#options.host}]` : this.#options.host;
    return `${this.#options.tls ? 'wss' : 'ws'}://${host}:${this.port}${this.#path}`;
  }

  /** The HTTP base URL (/metrics, /healthz). */
  get httpUrl(): string {
    return this.url.replace(/^ws/, 'http').replace(this.#path, '');
  }

  /** The server version reported in hello. */
  get serverVersion(): string {
    return this.#options.serverVersion ?? 'c4v-media';
  }

  get limits(): Readonly<GatewayLimits> {
    return this.#limits;
  }

  /** Open signalling connections. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Whether the media core can serve (what /healthz reports). */
  get ready(): boolean {
    const core = this.#options.core;
    return !this.#closed && !core.closed && !core.pool.closed && core.pool.workers.length > 0;
  }

  /** Ends every connection (SERVER_SHUTDOWN) and participant, and stops listening. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pingTimer);
    for (const s of [...this.#ctx.sessions.values()]) s.participant.close('server-shutdown');
    for (const c of [...this.#connections]) c.close('server-shutdown');
    this.#wss.close();
    this.#server.closeAllConnections?.();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (this.#options.api && (path === '/api' || path.startsWith('/api/'))) {
        // The API has its own methods, authentication, limits and error bodies; its per-address
        // limit keys on the client address behind trusted proxies, like the signalling limits.
        let address: string;
        try {
          address = this.clientAddress(req);
        } catch (error) {
          if (!(error instanceof ForwardedHeaderError)) throw error;
          res.writeHead(400, { 'content-type': 'text/plain' }).end('bad forwarding header\n');
          return;
        }
        await this.#options.api.handle(req, res, address);
      } else if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path === '/healthz') {
        const ready = this.ready;
        res
          .writeHead(ready ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
          .end(JSON.stringify({ status: ready ? 'ready' : 'unavailable', workers: this.#options.core.pool.workers.length, ...this._healthExtra?.() }));
      } else if (path === '/metrics') {
        const body = await this.#options.registry.metrics();
        res.writeHead(200, { 'content-type': this.#options.registry.contentType }).end(body);
      } else if (!this.#options.httpRoutes?.(path ?? '/', req, res)) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    } catch (error) {
      this.#logger.error({ err: String(error) }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    }
  }

  #reject(socket: Duplex, status: number, text: string): void {
    socket.end(`HTTP/1.1 ${status} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  }

  /** The client address of a request (trusted proxies applied); what every per-address limit keys on. */
  clientAddress(req: IncomingMessage): string {
    return clientAddress(req, this.#trusted, this.#forwardedHeader);
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.#closed) return this.#reject(socket, 503, 'Service Unavailable');
    if ((req.url ?? '').split('?')[0] !== this.#path) return this.#reject(socket, 404, 'Not Found');
    if (!originAllowed(req.headers.origin, req.headers.host, this.#allowedOrigins)) {
      this.metrics.upgradesRefused.inc({ cause: 'origin' });
      this.#logger.warn({ cause: 'origin' }, 'connection refused: origin not allowed');
      return this.#reject(socket, 403, 'Forbidden');
    }
    let address: string;
    try {
      address = this.clientAddress(req);
    } catch (error) {
      if (!(error instanceof ForwardedHeaderError)) throw error;
      this.metrics.upgradesRefused.inc({ cause: 'forwarded' });
      this.#logger.warn({ cause: 'forwarded' }, `connection refused: ${error.message}`);
      return this.#reject(socket, 400, 'Bad Request');
    }
    if (!this.#attempts.take(address) || (this.#perAddress.get(address) ?? 0) >= this.#limits.connectionsPerAddress) {
      this.metrics.upgradesRefused.inc({ cause: 'rate' });
      this.metrics.errors.inc({ code: 'RATE_LIMITED' });
      this.#logger.warn({ code: 'RATE_LIMITED', address }, 'connection refused: too many connections from one address');
      return this.#reject(socket, 429, 'Too Many Requests');
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => (this._socketRouter ? this._socketRouter(ws, address) : this.#onConnection(ws, address)));
  }

  /**
   * @internal Issue 13: opens a Connection on a socket the cluster edge routed here: a local
   * WebSocket, or a virtual one whose frames cross the cluster bus from the node the client is on.
   */
  _attach(ws: WebSocket, address: string): void {
    if (this.#closed) {
      ws.terminate();
      return;
    }
    this.#onConnection(ws, address);
  }

  #onConnection(ws: WebSocket, address: string): void {
    const id = this.#nextConnId++;
    this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1);
    this.metrics.connections.inc();
    const logger = this.#logger.child({ conn: id });
    logger.debug({ address }, 'connection open');
    const conn = new Connection(ws, address, this.#ctx, logger, (c) => {
      this.#connections.delete(c);
      this.metrics.connections.dec();
      const n = (this.#perAddress.get(address) ?? 1) - 1;
      if (n <= 0) this.#perAddress.delete(address);
      else this.#perAddress.set(address, n);
    });
    this.#connections.add(conn);
  }

  #pingRound(): void {
    for (const c of this.#connections) {
      if (!c.alive) {
        c.terminate('timeout');
        continue;
      }
      c.alive = false;
      try {
        c.ws.ping();
      } catch {
        // The socket is closing; its close event cleans up.
      }
    }
    this.#attempts.sweep();
    this.#ctx.addressLimiter.sweep();
  }
}

/** Creates the gateway and starts listening. */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const gateway = new Gateway(options);
  await gateway.listen();
  return gateway;
}
