// A small client of the operator API (what `c4v-media account|meeting` uses): signs each request
// with the API key (a fresh short-lived JWT), sends JSON, and turns an error body into ApiError
// with the server's code, HTTP status and field.
import { C4vError, ErrorCodes, type ErrorCode } from '../../lib/errors.js';
import { signApiRequest } from './auth.js';
import type * as S from './schemas.js';

export interface ApiClientOptions {
  /** The server's HTTP base URL, e.g. http://127.0.0.1:8080 (without /api/v1). */
  url: string;
  keyId: string;
  secret: string;
}

/** A refusal of the API: the server's error code and reason, the HTTP status, and the field of a schema error. */
export class ApiError extends C4vError {
  readonly status: number;
  readonly field: string | undefined;

  constructor(code: ErrorCode, reason: string, status: number, field?: string) {
    super(code, reason);
    this.name = 'ApiError';
    this.status = status;
    this.field = field;
  }
}

/** Typed calls of the operator API; each method is one route (see GET /api/v1/openapi.json). */
export class ApiClient {
  readonly #o: ApiClientOptions;

  constructor(options: ApiClientOptions) {
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`API url must be http(s), got ${url.protocol}`);
    this.#o = { ...options, url: options.url.replace(/\/+$/, '') };
  }

  /** One request; resolves with the JSON answer, rejects with ApiError. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const token = await signApiRequest(this.#o.keyId, this.#o.secret);
    const res = await fetch(`${this.#o.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new ApiError('INTERNAL', `the server answered ${res.status} without JSON`, res.status);
    }
    if (!res.ok) {
      const e = (json as { error?: { code?: string; reason?: string; field?: string } } | undefined)?.error;
      const code = (ErrorCodes as readonly string[]).includes(e?.code ?? '') ? (e!.code as ErrorCode) : 'INTERNAL';
      throw new ApiError(code, e?.reason ?? `HTTP ${res.status}`, res.status, e?.field);
    }
    return json as T;
  }

  createAccount(body: S.AccountCreateBody): Promise<S.AccountResource> {
    return this.request('POST', '/accounts', body);
  }

  listAccounts(): Promise<{ accounts: S.AccountResource[] }> {
    return this.request('GET', '/accounts');
  }

  getAccount(id: string): Promise<S.AccountResource> {
    return this.request('GET', `/accounts/${encodeURIComponent(id)}`);
  }

  updateAccount(id: string, body: S.AccountUpdateBody): Promise<S.AccountResource> {
    return this.request('PATCH', `/accounts/${encodeURIComponent(id)}`, body);
  }

  createMeeting(body: S.MeetingCreateBody): Promise<S.MeetingResource> {
    return this.request('POST', '/meetings', body);
  }

  listMeetings(filter: { accountId?: string; status?: string } = {}): Promise<{ meetings: S.MeetingResource[] }> {
    const q = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as Array<[string, string]>).toString();
    return this.request('GET', `/meetings${q ? `?${q}` : ''}`);
  }

  getMeeting(id: string): Promise<S.MeetingResource> {
    return this.request('GET', `/meetings/${encodeURIComponent(id)}`);
  }

  endMeeting(id: string): Promise<S.MeetingResource> {
    return this.request('POST', `/meetings/${encodeURIComponent(id)}/end`);
  }

  updateMeetingSettings(id: string, settings: Record<string, unknown>): Promise<S.MeetingResource> {
    return this.request('PATCH', `/meetings/${encodeURIComponent(id)}/settings`, settings);
  }

  meetingAudit(id: string): Promise<{ entries: S.AuditEntryResource[] }> {
    return this.request('GET', `/meetings/${encodeURIComponent(id)}/audit`);
  }

  listParticipants(id: string): Promise<S.ParticipantListResource> {
    return this.request('GET', `/meetings/${encodeURIComponent(id)}/participants`);
  }

  /** admit, deny, mute or remove one participant. */
  participantAction(id: string, participantId: string, action: 'admit' | 'deny' | 'mute' | 'remove'): Promise<{ ok: true }> {
    const base = `/meetings/${encodeURIComponent(id)}/participants/${encodeURIComponent(participantId)}`;
    return action === 'remove' ? this.request('DELETE', base) : this.request('POST', `${base}/${action}`);
  }

  createToken(id: string, body: S.TokenCreateBody): Promise<S.TokenResource> {
    return this.request('POST', `/meetings/${encodeURIComponent(id)}/tokens`, body);
  }

  createMeetingKey(id: string): Promise<S.ApiKeyResource> {
    return this.request('POST', `/meetings/${encodeURIComponent(id)}/keys`);
  }
}
