// Where control-plane events go: an HTTP(S) endpoint of the control plane, or a JSON-lines file.
import { checkSecret } from '../rules.js';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { C4vError } from '../errors.js';
import { ensurePrivateDir, ensurePrivateFile, type PermissionPolicy } from '../privacy/permissions.js';
import { renderEvent, type MessageKind, type RenderedEvent } from './allowList.js';
import { renderZoomWebhook, signZoomWebhook, ZOOM_SIGNATURE_HEADER, ZOOM_TIMESTAMP_HEADER } from './zoomWebhook.js';

/** One event as a sink receives it: the stored protobuf bytes plus what identifies it. */
export interface OutgoingEvent {
  /** Idempotency key. */
  eventId: string;
  meetingId: string;
  /** 1, 2, 3 ... per meeting. */
  sequence: number;
  kind: MessageKind;
  /** The encoded c4v.controlplane.v1.ControlPlaneEvent. */
  payload: Uint8Array;
}

/**
 * A destination. `deliver` resolves once the event is durably accepted and rejects otherwise (the
 * adapter then retries with backoff). `name` is stable across restarts: the outbox keeps delivery
 * state per sink name.
 */
export interface ControlPlaneSink {
  readonly name: string;
  deliver(event: OutgoingEvent): Promise<void>;
  close?(): Promise<void> | void;
  /**
   * Present when the sink keeps what it received and removes a meeting's data at its retention
   * boundary (the adapter then treats the sink as a PurgeTarget too).
   */
  purgeMeetings?(meetingIds: readonly string[]): Promise<Record<string, number>>;
  /**
   * Checks (and creates) the folders and files that will hold personal data, with the adapter's
   * permission policy; called once when the adapter starts.
   */
  preparePrivatePaths?(policy: PermissionPolicy): void;
}

/**
 * Another store that holds meeting data (the file sink's output, Redis in cluster mode, ...): the
 * adapter calls it when a meeting's retention ran out, after its own purge, with the clear meeting
 * ids. It resolves with how many items it removed per meeting; a rejection is retried by the next
 * purge run (the clear id is kept for that, and only for that, in the outbox's purge queue).
 */
export interface PurgeTarget {
  /** Stable name, shown in the privacy report ('file', 'redis', ...). */
  readonly name: string;
  /**
   * Removes (or pseudonymises) what the store holds of these meetings. `context` gives the
   * adapter's pseudonym function and clock, so a store that keeps counts under a pseudonym uses
   * the very pseudonym of the outbox, and one retention clock rules every store.
   */
  purgeMeetings(meetingIds: readonly string[], context: PurgeContext): Promise<Record<string, number>>;
  /** What one purge of a meeting does there, in words, for the purge record (default: "purged at NAME"). */
  readonly purgeDetail?: string;
  /**
   * What the store holds now, per meeting (clear ids): listed by the privacy report with the
   * outbox's due dates. A meeting it still holds although the outbox has already pseudonymised it
   * (a purge cut short, a store added later) is queued again when the adapter starts.
   */
  heldData?(): HeldData[];
}

/** What a purge target is handed besides the meeting ids. */
export interface PurgeContext {
  /** The installation's meeting-id pseudonym, the same as the outbox's (`adapter.store.pseudonym`). */
  pseudonym(meetingId: string): string;
  /** The adapter's clock (ms) at this purge run. */
  now: number;
}

/** Personal data that a purge target holds about one meeting (names, never values). */
export interface HeldData {
  /** The clear meeting id. */
  meetingId: string;
  /** Where in the store, in words (e.g. `meeting definition (def_meetings)`). */
  what: string;
  /** Names of the personal fields held. */
  fields: string[];
  /** How many rows or items. */
  items: number;
}

/** Request headers of the HTTP sink. */
export const SIGNATURE_HEADER = 'x-c4v-signature';
export const TIMESTAMP_HEADER = 'x-c4v-timestamp';
export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** How far a receiver should accept a timestamp from its own clock, in seconds. */
export const DEFAULT_REPLAY_WINDOW_S = 300;

/** `v1=<hex HMAC-SHA256(secret, "v1:" + timestamp + ":" + body)>`. */
export function signBody(secret: string | Uint8Array, timestamp: string, body: Uint8Array): string {
  const mac = createHmac('sha256', secret);
  mac.update(`v1:${timestamp}:`);
  mac.update(body);
  return `v1=${mac.digest('hex')}`;
}

export interface VerifyOptions {
  secret: string | Uint8Array;
  /** Header values as received (node's IncomingMessage.headers works). */
  headers: Record<string, string | string[] | undefined>;
  /** The raw request body, exactly as received. */
  body: Uint8Array;
  /** Accepted clock difference in seconds; default DEFAULT_REPLAY_WINDOW_S. */
  replayWindowSeconds?: number;
  /** Receiver's clock in ms; default Date.now(). */
  now?: number;
}

export type VerifyResult = { ok: true; eventId: string } | { ok: false; reason: 'missing-headers' | 'stale-timestamp' | 'bad-signature' };

/**
 * What a control-plane receiver does with a request of the HTTP sink: the signature must match
 * the body and the timestamp, and the timestamp must be within the replay window. A request that
 * passes may still be a duplicate (a retry): the receiver keeps the first of each idempotency key
 * for at least the replay window (after which a replayed request fails the timestamp check).
 */
export function verifyControlPlaneRequest(options: VerifyOptions): VerifyResult {
  const header = (name: string): string | undefined => {
    const v = options.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const timestamp = header(TIMESTAMP_HEADER);
  const signature = header(SIGNATURE_HEADER);
  const eventId = header(IDEMPOTENCY_HEADER);
  if (!timestamp || !signature || !eventId || !/^\d+$/.test(timestamp)) return { ok: false, reason: 'missing-headers' };
  const window = options.replayWindowSeconds ?? DEFAULT_REPLAY_WINDOW_S;
  const now = (options.now ?? Date.now()) / 1000;
  if (Math.abs(now - Number(timestamp)) > window) return { ok: false, reason: 'stale-timestamp' };
  const expected = Buffer.from(signBody(options.secret, timestamp, options.body));
  const got = Buffer.from(signature);
  if (expected.length !== got.length || !timingSafeEqual(expected, got)) return { ok: false, reason: 'bad-signature' };
  return { ok: true, eventId };
}

/** The body formats of the HTTP sink. */
export type HttpSinkFormat = 'protobuf' | 'json' | 'zoom-webhook';
export const HTTP_SINK_FORMATS: readonly HttpSinkFormat[] = ['protobuf', 'json', 'zoom-webhook'];

export interface HttpSinkOptions {
  /** The control plane's endpoint (http: or https:). */
  url: string | URL;
  /** Shared secret for the HMAC signature. */
  secret: string | Uint8Array;
  /**
   * 'protobuf' (application/x-protobuf, the default), 'json' (rendered from the protobuf) or
   * 'zoom-webhook' (Zoom's webhook JSON with x-zm-signature / x-zm-request-timestamp, rendered
   * from the protobuf too; see lib/controlplane/zoomWebhook.ts and the README's mapping table).
   */
  format?: HttpSinkFormat;
  /** Per-request time limit; default 10 s. */
  timeoutMs?: number;
  /** Sink name in the outbox; default 'http'. */
  name?: string;
  /** Extra headers (an API key of the control plane, ...). */
  headers?: Record<string, string>;
  /**
   * Trusted CA certificate(s) (PEM) for an https: control plane with a private CA, instead of the
   * system's. Certificates are always verified; there is no switch to turn that off.
   */
  ca?: string | Buffer | Array<string | Buffer>;
}

/**
 * POSTs each event to the control plane. A 2xx answer means delivered; anything else (or no
 * answer) is a failure the adapter retries. Receivers answer 2xx to a duplicate idempotency key.
 */
export class HttpSink implements ControlPlaneSink {
  readonly name: string;
  readonly #url: URL;
  readonly #secret: string | Uint8Array;
  readonly #format: HttpSinkFormat;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;
  readonly #ca: HttpSinkOptions['ca'];

  constructor(options: HttpSinkOptions) {
    this.#url = new URL(options.url);
    if (this.#url.protocol !== 'https:' && this.#url.protocol !== 'http:') {
      throw new TypeError(`control-plane url must be http(s), got ${this.#url.protocol}`);
    }
    // The one secret rule (lib/rules.ts): the same minimum as the config and the join tokens.
    checkSecret(options.secret, 'the HMAC secret');
    this.name = options.name ?? 'http';
    this.#secret = options.secret;
    this.#format = options.format ?? 'protobuf';
    if (!HTTP_SINK_FORMATS.includes(this.#format)) throw new TypeError(`unknown control-plane format ${String(this.#format)}`);
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#headers = options.headers ?? {};
    this.#ca = options.ca;
  }

  async deliver(event: OutgoingEvent): Promise<void> {
    const now = Date.now();
    const timestamp = String(Math.floor(now / 1000));
    let body: Buffer;
    let signing: Record<string, string>;
    if (this.#format === 'zoom-webhook') {
      const webhook = renderZoomWebhook(event.payload, now);
      // A kind Zoom has no meeting event for (poll results) is not sent; it counts as delivered
      // so that it does not hold up the meeting's later events.
      if (!webhook) return;
      body = Buffer.from(JSON.stringify(webhook));
      signing = { [ZOOM_TIMESTAMP_HEADER]: timestamp, [ZOOM_SIGNATURE_HEADER]: signZoomWebhook(this.#secret, timestamp, body) };
    } else {
      body = this.#format === 'json' ? Buffer.from(JSON.stringify(renderEvent(event.payload))) : Buffer.from(event.payload);
      signing = { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: signBody(this.#secret, timestamp, body) };
    }
    const options: RequestOptions & { ca?: HttpSinkOptions['ca'] } = {
      method: 'POST',
      headers: {
        ...this.#headers,
        'content-type': this.#format === 'protobuf' ? 'application/x-protobuf' : 'application/json',
        'content-length': String(body.length),
        ...signing,
        [IDEMPOTENCY_HEADER]: event.eventId,
      },
      timeout: this.#timeoutMs,
      ...(this.#ca ? { ca: this.#ca } : {}),
    };
    let status: number;
    try {
      status = await new Promise<number>((resolve, reject) => {
        const send = this.#url.protocol === 'https:' ? httpsRequest : httpRequest;
        const req = send(this.#url, options, (res: IncomingMessage) => {
          // Drain the answer so that the socket can be reused; only the status matters.
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
        req.on('error', reject);
        req.end(body);
      });
    } catch (error) {
      throw new C4vError('CONTROL_PLANE_UNREACHABLE', `control plane ${this.#url.host} unreachable: ${describe(error)}`);
    }
    if (status < 200 || status > 299) {
      throw new C4vError('CONTROL_PLANE_UNREACHABLE', `control plane ${this.#url.host} answered ${status}`);
    }
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return (error as { code?: string }).code ?? error.message;
  return String(error);
}

export interface FileSinkOptions {
  /** The JSON-lines file; created (with its folder) when missing, appended to otherwise. */
  path: string;
  /** Sink name in the outbox; default 'file'. */
  name?: string;
  /**
   * Remove a meeting's lines from the file when its retention runs out (the file is rewritten
   * without them: a temporary file with mode 0600, fsync, rename). Off by default: the file is then
   * the operator's, like any other delivery target.
   */
  purgeOnRetention?: boolean;
}

/**
 * Appends each event as one JSON line (rendered from the protobuf, so only allow-listed fields)
 * and fsyncs before reporting it delivered. A crash between the append and the outbox update
 * repeats the line after the restart: consumers dedupe by `eventId`.
 */
export class FileSink implements ControlPlaneSink {
  readonly name: string;
  readonly path: string;
  #handle: Promise<FileHandle> | undefined;
  #queue: Promise<void> = Promise.resolve();
  #policy: PermissionPolicy = {};
  readonly purgeMeetings?: (meetingIds: readonly string[]) => Promise<Record<string, number>>;

  constructor(options: FileSinkOptions) {
    this.path = options.path;
    this.name = options.name ?? 'file';
    if (options.purgeOnRetention) this.purgeMeetings = (ids) => this.#purge(ids);
  }

  preparePrivatePaths(policy: PermissionPolicy): void {
    this.#policy = policy;
    ensurePrivateDir(dirname(this.path), policy);
    ensurePrivateFile(this.path, policy);
  }

  // Rewrites the file without the meetings' lines. Runs in the append queue, so no line is
  // written meanwhile; the handle is reopened on the new file by the next delivery.
  #purge(meetingIds: readonly string[]): Promise<Record<string, number>> {
    const ids = new Set(meetingIds);
    const done = this.#queue.then(async () => {
      const counts: Record<string, number> = Object.fromEntries(meetingIds.map((id) => [id, 0]));
      if (!existsSync(this.path)) return counts;
      const kept: string[] = [];
      for (const line of readFileSync(this.path, 'utf8').split('\n')) {
        if (line === '') continue;
        let meetingId: unknown;
        try {
          meetingId = (JSON.parse(line) as { meetingId?: unknown }).meetingId;
        } catch {
          // A torn last line after a crash: not ours to judge, keep it.
        }
        if (typeof meetingId === 'string' && ids.has(meetingId)) counts[meetingId]! += 1;
        else kept.push(line + '\n');
      }
      if (Object.values(counts).every((n) => n === 0)) return counts;
      const old = this.#handle;
      this.#handle = undefined;
      if (old) await (await old).close();
      const tmp = `${this.path}.purge-${process.pid}`;
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(kept.join(''));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.path);
      // The rename must be durable too, or a crash could bring the old file back.
      const dir = await open(dirname(this.path), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
      return counts;
    });
    this.#queue = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  }

  deliver(event: OutgoingEvent): Promise<void> {
    const line = JSON.stringify(renderEvent(event.payload) satisfies RenderedEvent) + '\n';
    // Appends are serialised so that two meetings' lines never interleave.
    const done = this.#queue.then(async () => {
      if (!this.#handle) {
        // Personal data (display names, e-mail and IP addresses): folder 0700, file 0600.
        ensurePrivateDir(dirname(this.path), { strict: this.#policy.strict === true });
        this.#handle = open(this.path, 'a', 0o600);
      }
      const handle = await this.#handle;
      await handle.appendFile(line);
      await handle.sync();
    });
    this.#queue = done.catch(() => undefined);
    return done;
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await this.#queue;
    if (handle) await (await handle).close();
  }
}
