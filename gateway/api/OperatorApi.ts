// The operator API under /api/v1 on the gateway's HTTP server: accounts, meetings, participants,
// join tokens and meeting-scoped API keys, in JSON. Every route is one entry of ROUTES (method,
// path, scope, body schema, response schema, handler): the dispatcher validates with the body
// schema, and the OpenAPI document (GET /api/v1/openapi.json) is generated from the same table.
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { z } from 'zod';
import { C4vError, PolicyError, toErrorPayload, type ErrorCode } from '../../lib/errors.js';
import { checkSecret } from '../../lib/rules.js';
import type { MediaCore } from '../../lib/MediaCore.js';
import type { Meeting } from '../../lib/model/Meeting.js';
import type { Participant } from '../../lib/model/Participant.js';
import type { AccountInit, MeetingInit, MeetingSettings } from '../../lib/model/types.js';
import type { MeetingDefinition, StoredMeeting } from '../../lib/store/DefinitionStore.js';
import type { DefinitionStoreApi } from '../../lib/store/DefinitionStoreApi.js';
import { assertPassword, hashPassword } from '../../lib/model/password.js';
import { Account } from '../../lib/model/settings.js';
import { KeyedRateLimiter } from '../limits.js';
import type { JoinTokens } from '../tokens.js';
import { randomApiSecret, verifyApiRequest, type ApiKeyRecord, type ApiPrincipal } from './auth.js';
import { buildOpenApiDocument } from './openapi.js';
import * as S from './schemas.js';

/** The path prefix of the API. */
export const API_PREFIX = '/api/v1';
const MAX_BODY_BYTES = 64 * 1024;

export interface OperatorApiOptions {
  /** The media core whose accounts and meetings the API manages. */
  core: MediaCore;
  /**
   * Durable accounts, meeting definitions, scoped keys and the API audit record. It has no
   * retention timer of its own: register it in the control-plane adapter's `purgeTargets` (as
   * gateway/serve.ts does) so that the outbox's retention rule purges it too.
   */
  store: DefinitionStoreApi;
  /**
   * Issue 13c, cluster mode: where a meeting's requests are answered (its home node) and how a
   * meeting is created (defined on every node, placed on one home). Without it: this node only.
   */
  cluster?: OperatorApiCluster;
  /** Mints join tokens (the gateway verifies them with the same secret). */
  tokens: JoinTokens;
  logger: Logger;
  /** The admin key: every account and meeting. */
  adminKey: { id: string; secret: string };
  /** Lifetime of a minted join token unless the request says otherwise; default one hour. */
  tokenTtlSeconds?: number;
  /** The web app's base URL (what join links start with), asked at each mint: the port is known late. */
  webAppUrl: () => string;
  /** Requests per second per client address, and the burst; default 50 / 200. */
  rateLimit?: { perSecond: number; burst: number };
}

/** One API request as it crosses the cluster bus to the node that answers it. */
export interface ApiRequest {
  method: string;
  /** Path and query, as the client sent them. */
  url: string;
  authorization?: string;
  contentType?: string;
  /** The body, base64. */
  body: string;
  clientAddress?: string;
}

/** The answer to an ApiRequest. */
export interface ApiAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/** What the API asks of the cluster (gateway/cluster/ClusterApi.ts). */
export interface OperatorApiCluster {
  /** The node that answers requests on this meeting (its home), or undefined: this node answers. */
  homeOf(meetingId: string): Promise<string | undefined>;
  /** Answers the request at `nodeId` (its OperatorApi.answerForwarded()). */
  forward(nodeId: string, request: ApiRequest): Promise<ApiAnswer>;
  /** Defines a new meeting on every node and places it; resolves with its home's node id. */
  createMeeting(init: MeetingInit & { id: string }): Promise<string>;
  /** Tells the other nodes that an account or a meeting definition changed (awaits their answer). */
  changed(kind: 'account' | 'meeting', id: string): Promise<void>;
}

/** A handler's answer that another node gave (cluster mode). */
class Forwarded {
  constructor(readonly answer: ApiAnswer) {}
}

/** @internal What a handler gets. */
interface Call {
  principal: ApiPrincipal;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  /** Filled by handlers for the audit entry. */
  audit: { accountId?: string; meetingId?: string; target?: string };
  /** The request as it came (cluster mode forwards it). */
  request: ApiRequest;
}

/** @internal One route of the API. */
export interface Route {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Under API_PREFIX, with {param} segments. */
  path: string;
  operationId: string;
  summary: string;
  /** 'admin': admin keys only; 'meeting': admin keys, or a key scoped to the {meetingId} of the path. */
  scope: 'admin' | 'meeting';
  body?: z.ZodType;
  response: z.ZodType;
  status: 200 | 201;
  /** Refusals the route documents besides 400 / 401 / 429. */
  refusals: number[];
  handle(call: Call): unknown;
}

type CompiledRoute = Route & { re: RegExp; names: string[] };

/** HTTP status for each error code the API answers with (anything else: 400 or 500). */
const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: 400,
  PROTOCOL_ERROR: 400,
  INVALID_TOKEN: 401,
  TOKEN_EXPIRED: 401,
  NOT_PERMITTED: 403,
  SETTING_LOCKED: 403,
  NOT_FOUND: 404,
  INVALID_STATE: 409,
  MEETING_ENDED: 409,
  MEETING_FULL: 409,
  MESSAGE_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  REGION_UNAVAILABLE: 503,
  NO_WORKER_AVAILABLE: 503,
  CLOSED: 503,
  // Cluster mode: the meeting's home (or Redis) could not answer; the client may retry.
  CLUSTER_UNAVAILABLE: 503,
  NODE_DRAINING: 503,
  HOME_LOST: 503,
  CLUSTER_TIMEOUT: 504,
};

/** A schema refusal: 400 INVALID_ARGUMENT naming the field. */
class FieldError extends C4vError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('INVALID_ARGUMENT', message);
    this.name = 'FieldError';
  }
}

function fieldErrorOf(error: z.ZodError): FieldError {
  const issue = error.issues[0]!;
  let path = issue.path.map(String);
  // An unknown key is reported on its parent: name the key itself.
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) path = [...path, issue.keys[0]!];
  const field = path.join('.') || '(body)';
  const message = issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message;
  return new FieldError(field, `${field}: ${message}`);
}

const iso = (d: Date | undefined): string | undefined => d?.toISOString();

/**
 * The operator API. Created with createOperatorApi(); mount it on the gateway (GatewayOptions.api)
 * so that it answers under /api/v1. `restore()` brings stored accounts and meetings back into the
 * core after a restart.
 */
export class OperatorApi {
  readonly #o: OperatorApiOptions;
  readonly #logger: Logger;
  readonly #routes: CompiledRoute[];
  readonly #limiter: KeyedRateLimiter;
  readonly #sweepTimer: NodeJS.Timeout;
  readonly #onEnded: (m: Meeting) => void;
  #openapi: string | undefined;
  #closed = false;

  /** @internal Use createOperatorApi(). */
  constructor(options: OperatorApiOptions) {
    if (!/^[\w.:-]{1,64}$/.test(options.adminKey.id)) throw new TypeError('admin key id: letters, digits and . : - _ (1 to 64)');
    // The one secret rule (lib/rules.ts): at least 32 bytes.
    checkSecret(options.adminKey.secret, 'admin key secret');
    this.#o = options;
    this.#logger = options.logger.child({ component: 'api' });
    this.#routes = this.#table().map((r) => {
      const names: string[] = [];
      const re = new RegExp(`^${r.path.replace(/\{(\w+)\}/g, (_m, n: string) => (names.push(n), '([^/]+)'))}$`);
      return { ...r, re, names };
    });
    this.#limiter = new KeyedRateLimiter(options.rateLimit?.perSecond ?? 50, options.rateLimit?.burst ?? 200);
    // A meeting that ended is not restored after a restart; its definition goes after retention.
    // When it goes is the control-plane adapter's call: the store is one of its purge targets
    // (gateway/serve.ts), on the adapter's timer and clock, so there is one retention rule.
    this.#onEnded = (m) => {
      if (this.#closed) return;
      void (async () => {
        await this.#o.store.meetingEnded(m.id, (m.endedAt ?? new Date()).getTime());
        // Cluster mode: the other nodes forget the definition, so that no join re-creates it.
        await this.#o.cluster?.changed('meeting', m.id);
      })().catch((error: unknown) => this.#logger.error({ meetingId: m.id, err: String(error) }, 'meeting end not stored'));
    };
    options.core.observer.on('meetingended', this.#onEnded);
    // Full buckets are forgotten, so the limiter holds only recently active addresses.
    this.#sweepTimer = setInterval(() => this.#limiter.sweep(), 60_000);
    this.#sweepTimer.unref();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The OpenAPI 3.1 document of this API (generated from the route table and its schemas). */
  openApiDocument(): Record<string, unknown> {
    return buildOpenApiDocument(this.#routes, API_PREFIX);
  }

  /**
   * Brings the stored accounts and the meeting definitions that have not ended back into the core
   * (after a restart). A definition the core refuses now (its account locked a setting since, no
   * worker in its regions) is logged and left in the store. Returns what was restored.
   */
  async restore(): Promise<{ accounts: number; meetings: number; failed: string[] }> {
    const { core, store } = this.#o;
    let accounts = 0;
    for (const a of await store.accounts()) {
      try {
        core.createAccount(a.init);
        accounts++;
      } catch (error) {
        this.#logger.warn({ accountId: a.init.id, err: toErrorPayload(error).reason }, 'stored account not restored');
      }
    }
    let meetings = 0;
    const failed: string[] = [];
    for (const m of await store.meetings({ activeOnly: true })) {
      if (core.getMeeting(m.definition.id)) continue;
      try {
        await core.createMeeting(this.#init(m.definition));
        meetings++;
      } catch (error) {
        failed.push(m.definition.id);
        this.#logger.warn({ meetingId: m.definition.id, code: toErrorPayload(error).code }, 'stored meeting not restored');
      }
    }
    return { accounts, meetings, failed };
  }

  /** Stops answering (503) and stops its timers; the store is the caller's. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#o.core.observer.off('meetingended', this.#onEnded);
  }

  // ------------------------------------------------------------------------------------------
  // HTTP

  /**
   * Answers one request under /api/v1 (the gateway calls it for every path starting /api/).
   * `clientAddress`: the caller's address behind trusted proxies (issue 10); default the TCP peer.
   */
  async handle(req: IncomingMessage, res: ServerResponse, clientAddress?: string): Promise<void> {
    const request: ApiRequest = { method: req.method ?? 'GET', url: req.url ?? '/', body: '', clientAddress: clientAddress ?? req.socket.remoteAddress ?? 'unknown' };
    const authorization = header(req, 'authorization');
    const contentType = header(req, 'content-type');
    if (authorization !== undefined) request.authorization = authorization;
    if (contentType !== undefined) request.contentType = contentType;
    const answer = await this.#dispatch(request, () => readBody(req), false);
    if (res.headersSent) res.destroy();
    else res.writeHead(answer.status, answer.headers).end(request.method === 'HEAD' ? undefined : answer.text);
  }

  /**
   * Answers a request that another node of the cluster forwarded here (this node is the meeting's
   * home): the same checks, without a second rate limit or a second forward.
   */
  answerForwarded(request: ApiRequest): Promise<ApiAnswer> {
    return this.#dispatch(request, () => Promise.resolve(Buffer.from(request.body, 'base64')), true);
  }

  async #dispatch(request: ApiRequest, readRaw: () => Promise<Buffer>, forwarded: boolean): Promise<ApiAnswer> {
    const url = new URL(request.url, 'http://api.invalid');
    const method = request.method;
    let principal: ApiPrincipal | undefined;
    let route: CompiledRoute | undefined;
    const call: Call = { principal: { keyId: '' }, params: {}, query: url.searchParams, body: undefined, audit: {}, request };
    try {
      if (this.#closed) throw new C4vError('CLOSED', 'the API is shutting down');
      if (!forwarded && !this.#limiter.take(request.clientAddress ?? 'unknown')) throw new C4vError('RATE_LIMITED', 'too many API requests from this address');
      if (!url.pathname.startsWith(`${API_PREFIX}/`)) throw new C4vError('NOT_FOUND', `no API at ${url.pathname}; this server's API is ${API_PREFIX}`);
      const path = url.pathname.slice(API_PREFIX.length);
      if (path === '/openapi.json' && (method === 'GET' || method === 'HEAD')) {
        this.#openapi ??= JSON.stringify(this.openApiDocument());
        return { status: 200, headers: { 'content-type': 'application/json', 'cache-control': 'no-cache' }, text: this.#openapi };
      }
      const matches = this.#routes.filter((r) => r.re.test(path));
      if (matches.length === 0) throw new C4vError('NOT_FOUND', `no API route ${path}`);
      route = matches.find((r) => r.method === method);
      if (!route) {
        return this.#answer(405, { error: { code: 'PROTOCOL_ERROR', reason: `${method} is not allowed on ${path}` } }, { allow: matches.map((r) => r.method).join(', ') });
      }
      const m = route.re.exec(path)!;
      route.names.forEach((n, i) => (call.params[n] = decodeURIComponent(m[i + 1]!)));
      principal = await verifyApiRequest(request.authorization, (id) => this.#key(id));
      call.principal = principal;
      if (call.params.meetingId) call.audit.meetingId = call.params.meetingId;
      if (call.params.accountId) call.audit.accountId = call.params.accountId;
      this.#authorize(route, principal, call.params);
      const raw = await readRaw();
      // Cluster mode: a meeting's requests are answered by its home, where the meeting lives (the
      // home writes the audit entry to the shared store).
      const cluster = forwarded ? undefined : this.#o.cluster;
      const home = cluster && call.params.meetingId !== undefined ? await cluster.homeOf(call.params.meetingId) : undefined;
      if (home !== undefined) return await cluster!.forward(home, { ...request, body: raw.toString('base64') });
      if (route.body) {
        let json: unknown;
        if (raw.length === 0) json = {};
        else {
          if (!/^application\/json\b/i.test(request.contentType ?? '')) throw new FieldError('(body)', 'the body must be application/json');
          try {
            json = JSON.parse(raw.toString('utf8'));
          } catch {
            throw new FieldError('(body)', 'the body is not valid JSON');
          }
        }
        const parsed = route.body.safeParse(json);
        if (!parsed.success) throw fieldErrorOf(parsed.error);
        call.body = parsed.data;
      }
      const out = await route.handle(call);
      if (route.method !== 'GET') await this.#audit(route, call, 'ok');
      return out instanceof Forwarded ? out.answer : this.#answer(route.status, out);
    } catch (error) {
      const { code, reason } = toErrorPayload(error);
      const status = STATUS[code] ?? (error instanceof TypeError ? 400 : 500);
      if (status >= 500) this.#logger.error({ code, err: error instanceof Error ? error.message : String(error) }, 'API request failed');
      else this.#logger.debug({ code, route: route?.operationId }, 'API request refused');
      // Refusals of an authenticated caller are actions too (a scoped key trying another meeting).
      if (principal && route && route.method !== 'GET') await this.#audit(route, call, code);
      const body: { error: { code: string; reason: string; field?: string } } = { error: { code, reason } };
      if (error instanceof FieldError) body.error.field = error.field;
      return this.#answer(status, body, status === 401 ? { 'www-authenticate': 'Bearer realm="c4v-media"' } : {});
    }
  }

  #answer(status: number, body: unknown, headers: Record<string, string> = {}): ApiAnswer {
    const text = JSON.stringify(body);
    return { status, headers: { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(text)) }, text };
  }

  async #key(id: string): Promise<ApiKeyRecord | undefined> {
    if (id === this.#o.adminKey.id) return { secret: this.#o.adminKey.secret };
    const k = await this.#o.store.apiKey(id);
    return k ? { secret: k.secret, meetingId: k.meetingId } : undefined;
  }

  #authorize(route: Route, p: ApiPrincipal, params: Record<string, string>): void {
    if (p.meetingId === undefined) return;
    if (route.scope === 'admin') throw new PolicyError('NOT_PERMITTED', 'this API key is scoped to one meeting; the action needs an admin key');
    if (params.meetingId !== undefined && params.meetingId !== p.meetingId) {
      throw new PolicyError('NOT_PERMITTED', 'this API key is scoped to another meeting');
    }
  }

  async #audit(route: Route, call: Call, outcome: string): Promise<void> {
    try {
      await this.#o.store.addAudit({ at: new Date(), keyId: call.principal.keyId, action: route.operationId, ...call.audit, outcome });
    } catch (error) {
      this.#logger.error({ err: String(error) }, 'API audit entry not stored');
    }
  }

  // ------------------------------------------------------------------------------------------
  // Resources

  #init(d: MeetingDefinition, password?: string): MeetingInit {
    return meetingInitOf(d, password);
  }

  /**
   * createMeeting in cluster mode: the definition is claimed in the shared store (one winner when
   * two nodes race on an id), defined on every node and placed on its home, which creates it (its
   * refusal drops the definition again). The password is hashed here: the clear one is neither
   * stored nor sent across the cluster. The answer is the home's view of the new meeting.
   */
  async #createClusterMeeting(c: Call, definition: MeetingDefinition, password: string | undefined): Promise<Forwarded | S.MeetingResource> {
    const { core, store } = this.#o;
    const cluster = this.#o.cluster!;
    const account = core.getAccount(definition.accountId)!;
    // The account's locks and the retention are decided before anything is stored.
    const settings = account.effectiveSettings({ ...definition.settings, ...(password !== undefined ? { passwordRequired: true } : {}) });
    if (password !== undefined) assertPassword(password);
    const stored: MeetingDefinition = { ...definition, ...(password !== undefined ? { passwordHash: await hashPassword(password) } : {}) };
    if (!(await store.addMeeting!(stored, settings.retentionDays))) throw new C4vError('INVALID_STATE', `meeting ${definition.id} exists already`);
    let home: string;
    try {
      // The home must know the account too: told again (and awaited) before the placement.
      await cluster.changed('account', account.id);
      home = await cluster.createMeeting({ ...this.#init(stored), id: stored.id });
    } catch (error) {
      await store.deleteMeeting(stored.id);
      await cluster.changed('meeting', stored.id).catch(() => undefined);
      throw error;
    }
    if (core.getMeeting(stored.id)) return this.#meeting(stored.id);
    const answer = await cluster.forward(home, { ...c.request, method: 'GET', url: `${API_PREFIX}/meetings/${encodeURIComponent(stored.id)}`, body: '' });
    return new Forwarded(answer.status === 200 ? { ...answer, status: 201 } : answer);
  }

  async #account(id: string): Promise<S.AccountResource> {
    const a = this.#o.core.getAccount(id);
    if (!a) throw new C4vError('NOT_FOUND', `no account ${id}`);
    const stored = await this.#o.store.account(id);
    const now = new Date().toISOString();
    return {
      id: a.id,
      ...(a.name !== undefined ? { name: a.name } : {}),
      defaults: { ...a.defaults, allowedRegions: [...a.defaults.allowedRegions] },
      locked: [...a.locked],
      createdAt: iso(stored?.createdAt) ?? now,
      updatedAt: iso(stored?.updatedAt) ?? now,
    };
  }

  /** The live meeting, or a coded refusal: MEETING_ENDED for one that ended, NOT_FOUND otherwise. */
  async #live(id: string): Promise<Meeting> {
    const m = this.#o.core.getMeeting(id);
    if (m && !m.ended) return m;
    if (m?.ended || (await this.#o.store.meeting(id))?.endedAt) throw new PolicyError('MEETING_ENDED', `meeting ${id} has ended`);
    throw new C4vError('NOT_FOUND', `no meeting ${id}`);
  }

  async #meeting(id: string): Promise<S.MeetingResource> {
    const live = this.#o.core.getMeeting(id);
    const stored = await this.#o.store.meeting(id);
    if (!live && !stored) throw new C4vError('NOT_FOUND', `no meeting ${id}`);
    return this.#resource(live, stored);
  }

  #resource(live: Meeting | undefined, stored: StoredMeeting | undefined): S.MeetingResource {
    const d = stored?.definition;
    const ended = live ? live.ended : stored?.endedAt !== undefined;
    const scheduledStart = live?.scheduledStart ?? (d?.scheduledStart ? new Date(d.scheduledStart) : undefined);
    const startedAt = live?.startedAt;
    const status: S.MeetingResource['status'] = ended ? 'ended' : startedAt ? 'running' : scheduledStart ? 'scheduled' : 'open';
    const recurrence = live?.recurrence ?? d?.recurrence;
    const hostName = live?.hostName ?? d?.hostName;
    const hostEmail = live?.hostEmail ?? d?.hostEmail;
    const picture = live?.hostProfilePictureUrl ?? d?.hostProfilePictureUrl;
    const tz = live?.hostTimeZone ?? d?.hostTimeZone;
    const duration = live?.scheduledDurationMinutes ?? d?.scheduledDurationMinutes;
    const dialIn = live ? [...live.dialInNumbers] : d?.dialInNumbers;
    const endedAt = live?.endedAt ?? stored?.endedAt;
    const out: S.MeetingResource = {
      id: live?.id ?? d!.id,
      accountId: live?.accountId ?? d!.accountId,
      title: live?.title ?? d!.title,
      hostIdentity: live?.hostIdentity ?? d!.hostIdentity,
      passwordProtected: Boolean(live ? live.passwordHash : d?.passwordHash),
      status,
      createdAt: (stored?.createdAt ?? live!.createdAt).toISOString(),
      participantCount: live?.participants.length ?? 0,
      waitingCount: live?.waiting.length ?? 0,
    };
    if (hostName !== undefined) out.hostName = hostName;
    if (hostEmail !== undefined) out.hostEmail = hostEmail;
    if (picture !== undefined) out.hostProfilePictureUrl = picture;
    if (live) {
      out.settings = { ...live.settings, allowedRegions: [...live.settings.allowedRegions] };
      out.locked = live.locked;
    }
    if (scheduledStart) out.scheduledStart = scheduledStart.toISOString();
    if (duration !== undefined) out.scheduledDurationMinutes = duration;
    if (recurrence) out.recurrence = { type: recurrence.type, ...(recurrence.durationWeeks !== undefined ? { durationWeeks: recurrence.durationWeeks } : {}) };
    if (tz !== undefined) out.hostTimeZone = tz;
    if (dialIn && dialIn.length > 0) out.dialInNumbers = [...dialIn];
    if (startedAt) out.startedAt = startedAt.toISOString();
    if (endedAt) out.endedAt = endedAt.toISOString();
    return out;
  }

  #participant(p: Participant): S.ParticipantResource {
    return {
      id: p.id,
      identity: p.identity,
      displayName: p.displayName,
      role: p.role,
      state: p.state as S.ParticipantResource['state'],
      authenticated: p.authenticated,
      requestedAt: p.requestedAt.toISOString(),
      ...(p.joinedAt ? { joinedAt: p.joinedAt.toISOString() } : {}),
    };
  }

  #operator(call: Call, m: Meeting): ReturnType<Meeting['operator']> {
    return m.operator(`api:${call.principal.keyId}`);
  }

  // ------------------------------------------------------------------------------------------
  // The route table

  #table(): Route[] {
    const { core, store } = this.#o;
    const participantAction = (
      operationId: string,
      summary: string,
      act: (op: ReturnType<Meeting['operator']>, pid: string) => unknown,
      method: Route['method'] = 'POST',
      suffix = `/${operationId.replace(/Participant$/, '')}`,
    ): Route => ({
      method,
      path: `/meetings/{meetingId}/participants/{participantId}${method === 'DELETE' ? '' : suffix}`,
      operationId,
      summary,
      scope: 'meeting',
      response: S.Ok,
      status: 200,
      refusals: [403, 404, 409],
      handle: async (c) => {
        const m = await this.#live(c.params.meetingId!);
        c.audit.target = c.params.participantId!;
        await act(this.#operator(c, m), c.params.participantId!);
        return { ok: true };
      },
    });

    return [
      // Accounts
      {
        method: 'POST',
        path: '/accounts',
        operationId: 'createAccount',
        summary: 'Create an account: its default settings (allowed regions and retention included) and the settings it locks.',
        scope: 'admin',
        body: S.AccountCreate,
        response: S.Account,
        status: 201,
        refusals: [403, 409],
        handle: async (c) => {
          const b = c.body as S.AccountCreateBody;
          c.audit.accountId = b.id;
          if (core.getAccount(b.id)) throw new C4vError('INVALID_STATE', `account ${b.id} exists already`);
          const init: AccountInit = { id: b.id, ...(b.name !== undefined ? { name: b.name } : {}), defaults: b.defaults ?? {}, locked: b.locked ?? [] };
          if (store.addAccount) {
            // A shared store (cluster): the id is claimed there first, so two nodes cannot both create it.
            void new Account(init);
            if (!(await store.addAccount(init))) throw new C4vError('INVALID_STATE', `account ${b.id} exists already`);
            core.createAccount(init);
            await this.#o.cluster?.changed('account', b.id);
          } else {
            core.createAccount(init);
            await store.putAccount(init);
          }
          return this.#account(b.id);
        },
      },
      {
        method: 'GET',
        path: '/accounts',
        operationId: 'listAccounts',
        summary: 'List the accounts.',
        scope: 'admin',
        response: S.AccountList,
        status: 200,
        refusals: [403],
        handle: async () => {
          const ids = new Set([...(await store.accounts()).map((a) => a.init.id)]);
          // Accounts of the configuration (the demo account) are in the core only.
          for (const m of core.meetings) ids.add(m.accountId);
          return { accounts: await Promise.all([...ids].filter((id) => core.getAccount(id)).map((id) => this.#account(id))) };
        },
      },
      {
        method: 'GET',
        path: '/accounts/{accountId}',
        operationId: 'getAccount',
        summary: 'Read an account.',
        scope: 'admin',
        response: S.Account,
        status: 200,
        refusals: [403, 404],
        handle: (c) => this.#account(c.params.accountId!),
      },
      {
        method: 'PATCH',
        path: '/accounts/{accountId}',
        operationId: 'updateAccount',
        summary: 'Update an account: defaults are merged, `locked` replaces the list. Applies to meetings created afterwards.',
        scope: 'admin',
        body: S.AccountUpdate,
        response: S.Account,
        status: 200,
        refusals: [403, 404],
        handle: async (c) => {
          const id = c.params.accountId!;
          const a = core.getAccount(id);
          if (!a) throw new C4vError('NOT_FOUND', `no account ${id}`);
          const b = c.body as S.AccountUpdateBody;
          const name = b.name ?? a.name;
          const init: AccountInit = {
            id,
            ...(name !== undefined ? { name } : {}),
            defaults: { ...a.defaults, ...b.defaults },
            locked: b.locked ?? [...a.locked],
          };
          core.createAccount(init);
          await store.putAccount(init);
          await this.#o.cluster?.changed('account', id);
          return this.#account(id);
        },
      },
      // Meetings
      {
        method: 'POST',
        path: '/meetings',
        operationId: 'createMeeting',
        summary: 'Create (and schedule) a meeting of an account. The definition is stored and survives a restart until the meeting ends.',
        scope: 'admin',
        body: S.MeetingCreate,
        response: S.Meeting,
        status: 201,
        refusals: [403, 404, 409, 503],
        handle: async (c) => {
          const b = c.body as S.MeetingCreateBody;
          const id = b.id ?? randomUUID();
          c.audit.accountId = b.accountId;
          c.audit.meetingId = id;
          if (!core.getAccount(b.accountId)) throw new C4vError('NOT_FOUND', `no account ${b.accountId}`);
          if (core.getMeeting(id) || (await store.meeting(id))) throw new C4vError('INVALID_STATE', `meeting ${id} exists already`);
          const { password, scheduledStart, ...rest } = b;
          const definition: MeetingDefinition = { ...rest, id, ...(scheduledStart ? { scheduledStart: new Date(scheduledStart).toISOString() } : {}) };
          if (this.#o.cluster && store.addMeeting) return this.#createClusterMeeting(c, definition, password);
          const meeting = await core.createMeeting(this.#init(definition, password));
          try {
            // The hash, never the password: a restart restores the meeting from it.
            await store.putMeeting({ ...definition, ...(meeting.passwordHash ? { passwordHash: meeting.passwordHash } : {}) }, meeting.settings.retentionDays);
          } catch (error) {
            meeting.close();
            throw error;
          }
          return this.#meeting(id);
        },
      },
      {
        method: 'GET',
        path: '/meetings',
        operationId: 'listMeetings',
        summary: 'List meetings (a meeting-scoped key sees its own). Filters: ?accountId=, ?status=scheduled|open|running|ended.',
        scope: 'meeting',
        response: S.MeetingList,
        status: 200,
        refusals: [],
        handle: async (c) => {
          const stored = new Map((await store.meetings()).map((m) => [m.definition.id, m]));
          const ids = new Set([...stored.keys(), ...core.meetings.map((m) => m.id)]);
          let list = [...ids].map((id) => this.#resource(core.getMeeting(id), stored.get(id)));
          if (c.principal.meetingId !== undefined) list = list.filter((m) => m.id === c.principal.meetingId);
          const accountId = c.query.get('accountId');
          if (accountId) list = list.filter((m) => m.accountId === accountId);
          const status = c.query.get('status');
          if (status) {
            if (!S.MeetingStatus.safeParse(status).success) throw new FieldError('status', 'status: expected scheduled, open, running or ended');
            list = list.filter((m) => m.status === status);
          }
          return { meetings: list };
        },
      },
      {
        method: 'GET',
        path: '/meetings/{meetingId}',
        operationId: 'getMeeting',
        summary: 'Read a meeting: its definition, effective settings, status and head counts.',
        scope: 'meeting',
        response: S.Meeting,
        status: 200,
        refusals: [403, 404],
        handle: (c) => this.#meeting(c.params.meetingId!),
      },
      {
        method: 'POST',
        path: '/meetings/{meetingId}/end',
        operationId: 'endMeeting',
        summary: 'End the meeting for everyone (like the host\'s "end"); it is not restored after a restart.',
        scope: 'meeting',
        response: S.Meeting,
        status: 200,
        refusals: [403, 404, 409],
        handle: async (c) => {
          const m = await this.#live(c.params.meetingId!);
          this.#operator(c, m).end();
          return this.#meeting(m.id);
        },
      },
      {
        method: 'PATCH',
        path: '/meetings/{meetingId}/settings',
        operationId: 'updateMeetingSettings',
        summary: 'Change settings of a meeting (like the host); account-locked ones: SETTING_LOCKED.',
        scope: 'meeting',
        body: S.SettingsPatch,
        response: S.Meeting,
        status: 200,
        refusals: [403, 404, 409],
        handle: async (c) => {
          const m = await this.#live(c.params.meetingId!);
          this.#operator(c, m).updateSettings(c.body as Partial<MeetingSettings>);
          return this.#meeting(m.id);
        },
      },
      {
        method: 'GET',
        path: '/meetings/{meetingId}/audit',
        operationId: 'getMeetingAudit',
        summary: "The meeting's audit record: host actions (participants' and the API's) and API actions on it.",
        scope: 'meeting',
        response: S.AuditList,
        status: 200,
        refusals: [403, 404],
        handle: async (c) => {
          const id = c.params.meetingId!;
          const live = core.getMeeting(id);
          if (!live && !(await store.meeting(id))) throw new C4vError('NOT_FOUND', `no meeting ${id}`);
          const entries: S.AuditEntryResource[] = [
            ...(live?.auditLog ?? []).map((e) => ({
              at: e.at.toISOString(),
              actor: e.actor,
              action: e.action,
              ...(e.target !== undefined ? { target: e.target } : {}),
              outcome: 'ok',
              source: 'meeting' as const,
            })),
            ...(await store.audit(id)).map((e) => ({
              at: e.at.toISOString(),
              actor: `api:${e.keyId}`,
              action: e.action,
              ...(e.target !== undefined ? { target: e.target } : {}),
              outcome: e.outcome,
              source: 'api' as const,
            })),
          ];
          entries.sort((a, b) => a.at.localeCompare(b.at));
          return { entries };
        },
      },
      // Participants
      {
        method: 'GET',
        path: '/meetings/{meetingId}/participants',
        operationId: 'listParticipants',
        summary: 'Participants: admitted, and waiting (for the host or in the waiting room).',
        scope: 'meeting',
        response: S.ParticipantList,
        status: 200,
        refusals: [403, 404, 409],
        handle: async (c) => {
          const m = await this.#live(c.params.meetingId!);
          return { admitted: m.participants.map((p) => this.#participant(p)), waiting: m.waiting.map((p) => this.#participant(p)) };
        },
      },
      participantAction('admitParticipant', 'Admit a waiting participant (MEETING_FULL when full).', (op, pid) => op.admit(pid)),
      participantAction('denyParticipant', 'Refuse a waiting participant.', (op, pid) => op.deny(pid)),
      participantAction('muteParticipant', 'Mute a participant\'s microphone (only they can unmute).', (op, pid) => op.mute(pid)),
      participantAction('removeParticipant', 'Remove a participant; their identity cannot rejoin.', (op, pid) => op.remove(pid), 'DELETE'),
      // Tokens and keys
      {
        method: 'POST',
        path: '/meetings/{meetingId}/tokens',
        operationId: 'createJoinToken',
        summary: 'Mint a join token for the meeting and a role, with the web-app link that uses it.',
        scope: 'meeting',
        body: S.TokenCreate,
        response: S.Token,
        status: 201,
        refusals: [403, 404, 409],
        handle: async (c) => {
          const m = await this.#live(c.params.meetingId!);
          const b = c.body as S.TokenCreateBody;
          c.audit.target = b.role;
          const identity = b.identity ?? (b.role === 'host' ? m.hostIdentity : undefined);
          if (identity === undefined) throw new FieldError('identity', 'identity: required for a participant token');
          if (b.role === 'host' && identity !== m.hostIdentity) throw new FieldError('identity', "identity: a host token is for the meeting's host identity");
          const ttl = b.ttlSeconds ?? this.#o.tokenTtlSeconds ?? 3600;
          const displayName = b.displayName ?? (b.role === 'host' ? m.hostName : undefined);
          // Issue 10: a JWT minted with the configured signing key (jose, asynchronous).
          const token = await this.#o.tokens.mint({ identity, role: b.role, meetingId: m.id, ...(displayName !== undefined ? { displayName } : {}) }, { ttlSeconds: ttl });
          return {
            token,
            meetingId: m.id,
            identity,
            role: b.role,
            expiresAt: new Date(Date.now() + ttl * 1000).toISOString(),
            joinUrl: joinUrl(this.#o.webAppUrl(), m.id, token),
          };
        },
      },
      {
        method: 'POST',
        path: '/meetings/{meetingId}/keys',
        operationId: 'createMeetingKey',
        summary: 'Create an API key scoped to this meeting (for a room system or a host tool). The secret is shown once.',
        scope: 'admin',
        response: S.ApiKey,
        status: 201,
        refusals: [403, 404, 409],
        handle: async (c) => {
          const m = await this.#live(c.params.meetingId!);
          if (!(await store.meeting(m.id))) throw new C4vError('INVALID_STATE', 'scoped keys are for meetings created through the API');
          const key = { id: `mk_${randomBytes(12).toString('base64url')}`, secret: randomApiSecret(), meetingId: m.id, createdAt: new Date() };
          await store.putApiKey(key);
          c.audit.target = key.id;
          return { keyId: key.id, secret: key.secret, meetingId: m.id };
        },
      },
    ];
  }
}

/** The core's MeetingInit of a stored definition (with the clear password of a create request, else the hash). */
export function meetingInitOf(d: MeetingDefinition, password?: string): MeetingInit {
  const init: MeetingInit = {
    id: d.id,
    accountId: d.accountId,
    title: d.title,
    hostIdentity: d.hostIdentity,
    ...(d.hostName !== undefined ? { hostName: d.hostName } : {}),
    ...(d.hostEmail !== undefined ? { hostEmail: d.hostEmail } : {}),
    ...(d.hostProfilePictureUrl !== undefined ? { hostProfilePictureUrl: d.hostProfilePictureUrl } : {}),
    ...(password !== undefined ? { password } : d.passwordHash !== undefined ? { passwordHash: d.passwordHash } : {}),
    ...(d.settings !== undefined ? { settings: d.settings } : {}),
    ...(d.scheduledStart !== undefined ? { scheduledStart: new Date(d.scheduledStart) } : {}),
    ...(d.scheduledDurationMinutes !== undefined ? { scheduledDurationMinutes: d.scheduledDurationMinutes } : {}),
    ...(d.recurrence !== undefined ? { recurrence: d.recurrence } : {}),
    ...(d.hostTimeZone !== undefined ? { hostTimeZone: d.hostTimeZone } : {}),
    ...(d.dialInNumbers !== undefined ? { dialInNumbers: d.dialInNumbers } : {}),
  };
  return init;
}

/** The web app's join link: `<base>/?meeting=<id>&token=<token>`. */
export function joinUrl(base: string, meetingId: string, token: string): string {
  return `${base.replace(/\/+$/, '')}/?meeting=${encodeURIComponent(meetingId)}&token=${encodeURIComponent(token)}`;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume();
        reject(new C4vError('MESSAGE_TOO_LARGE', `the body is larger than ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Creates the operator API (mount it with GatewayOptions.api). */
export function createOperatorApi(options: OperatorApiOptions): OperatorApi {
  return new OperatorApi(options);
}
