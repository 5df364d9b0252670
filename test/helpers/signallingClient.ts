// A signalling client for tests and benchmarks: speaks the protobuf protocol over `ws` to the
// real gateway, and drives werift peers (weriftPeer.ts) for media. Mirrors what a browser client
// does: hello, join, transports, produce/consume, chat, host controls.
import WebSocket from 'ws';
import {
  encodeEnvelope,
  errorFromWire,
  pb,
  rtpParametersToWire,
  sourceToWire,
  kindToWire,
} from '../../gateway/wire.js';
import type { MediaSource } from '../../lib/model/types.js';
import type { c4v } from '../../proto/gen/signalling.js';
import { within } from './util.js';
import { WeriftPublisher, WeriftSubscriber, type ConsumerInfo as PeerConsumer, type MediaKind, type ServerTransportInfo } from './weriftPeer.js';

type V1 = typeof c4v.signalling.v1;
export type RequestProps = c4v.signalling.v1.Request.$Properties;
export type Response = c4v.signalling.v1.Response;
export type Notification = c4v.signalling.v1.Notification;
export type NotificationType = NonNullable<Notification['body']>;

/** A refused request: the wire error's code name and reason. */
export class WireError extends Error {
  constructor(
    readonly code: string,
    reason: string,
  ) {
    super(`${code}: ${reason}`);
    this.name = 'WireError';
  }
}

/** The wire error code a request was refused with, or 'no error' when it succeeded. */
export async function wireCodeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (error) {
    if (error instanceof WireError) return error.code;
    throw error;
  }
  return 'no error';
}

export interface ClientClose {
  code: number;
  reason: string;
}

/**
 * One client connection. Responses resolve the request with the same id; notifications are kept
 * in `notifications` (in order) and can be awaited with `waitFor`.
 */
export class SignallingClient {
  readonly ws: WebSocket;
  readonly notifications: Notification[] = [];
  /** Responses with id 0 (errors about frames that did not decode). */
  readonly frameErrors: c4v.signalling.v1.Error[] = [];
  readonly closed: Promise<ClientClose>;
  closeInfo: ClientClose | undefined;
  participantId = '';
  resumeToken = '';
  rtpCapabilities: c4v.signalling.v1.RtpCapabilities.$Properties | null | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, (r: Response) => void>();
  readonly #waiters = new Set<() => void>();

  static async connect(url: string, options: WebSocket.ClientOptions = {}): Promise<SignallingClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    const c = new SignallingClient(ws);
    await within(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      }),
      10_000,
      `WebSocket open to ${url}`,
    );
    return c;
  }

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('error', () => {
      // Errors end in a close event, which `closed` reports.
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const r of this.#pending.values()) r(pb.Response.create({ error: { codeName: 'CLOSED', reason: 'connection closed' } }));
        this.#pending.clear();
        this.#notify();
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data: Buffer) => {
      const env = pb.Envelope.decode(data);
      if (env.response) {
        const resolve = this.#pending.get(env.id);
        if (resolve) {
          this.#pending.delete(env.id);
          resolve(env.response as Response);
        } else if (env.response.error) {
          this.frameErrors.push(env.response.error as c4v.signalling.v1.Error);
        }
      } else if (env.notification) {
        this.notifications.push(env.notification as Notification);
      }
      this.#notify();
    });
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Sends a request and resolves with its response (errors included). */
  async send(request: RequestProps, timeoutMs = 10_000): Promise<Response> {
    const id = this.#nextId++;
    const p = new Promise<Response>((resolve) => this.#pending.set(id, resolve));
    this.ws.send(encodeEnvelope({ id, request }));
    return within(p, timeoutMs, `response to ${Object.keys(request).join(',')}`);
  }

  /** Sends a request; throws WireError on an error response. */
  async call(request: RequestProps, timeoutMs?: number): Promise<Response> {
    const r = await this.send(request, timeoutMs);
    if (r.error) throw new WireError(String(errorFromWire(r.error)), r.error.reason ?? '');
    return r;
  }

  /** Sends raw bytes (hostile-input tests). */
  sendRaw(data: Buffer | string, binary = true): void {
    this.ws.send(data, { binary });
  }

  async hello(versions = [1]): Promise<c4v.signalling.v1.HelloOk> {
    return (await this.call({ hello: { protocolVersions: versions, client: 'c4v-test' } })).hello as c4v.signalling.v1.HelloOk;
  }

  /** hello + join; keeps participant id, resume token and (when admitted) the router capabilities. */
  async join(j: c4v.signalling.v1.Join.$Properties): Promise<c4v.signalling.v1.JoinOk> {
    await this.hello();
    return this.joinOnly(j);
  }

  async joinOnly(j: c4v.signalling.v1.Join.$Properties): Promise<c4v.signalling.v1.JoinOk> {
    const ok = (await this.call({ join: j })).join as c4v.signalling.v1.JoinOk;
    this.participantId = ok.participantId;
    this.resumeToken = ok.resumeToken;
    if (ok.rtpCapabilities) this.rtpCapabilities = ok.rtpCapabilities;
    return ok;
  }

  /** Resolves with the first notification (already received or future) of `type` matching `pred`. */
  waitFor<T extends NotificationType>(
    type: T,
    pred: (n: NonNullable<Notification[T]>) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<NonNullable<Notification[T]>> {
    const find = (): NonNullable<Notification[T]> | undefined => {
      for (const n of this.notifications) if (n.body === type && pred(n[type] as NonNullable<Notification[T]>)) return n[type] as NonNullable<Notification[T]>;
      return undefined;
    };
    const hit = find();
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const h = find();
        if (h) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          resolve(h);
        } else if (this.closeInfo) {
          clearTimeout(timer);
          this.#waiters.delete(check);
          reject(new Error(`connection closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${type}`));
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for notification ${type}`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  /** Waits until admitted (a waiting status ADMITTED), keeping the router capabilities. */
  async admitted(timeoutMs = 10_000): Promise<void> {
    const s = await this.waitFor('waitingStatus', (w) => w.state === pb.ParticipantState.ADMITTED, timeoutMs);
    if (s.rtpCapabilities) this.rtpCapabilities = s.rtpCapabilities;
  }

  /** Resolves with the close (code and reason) within `timeoutMs`. */
  waitClosed(timeoutMs = 10_000): Promise<ClientClose> {
    return within(this.closed, timeoutMs, 'the server to close the connection');
  }

  /** The Closing notification's reason name, if one came. */
  get closingReason(): string | undefined {
    const c = this.notifications.find((n) => n.body === 'closing')?.closing;
    return c ? pbEnum(pb.CloseReason, c.reason) : undefined;
  }

  close(): void {
    this.ws.close();
  }
}

function pbEnum(e: object, v: number | null | undefined): string {
  return (e as Record<number, string>)[v ?? 0] ?? String(v);
}

/** The enum name of a wire close reason (for assertions). */
export function closeReasonName(v: number | null | undefined): string {
  return pbEnum(pb.CloseReason, v);
}

function transportFromWire(t: c4v.signalling.v1.TransportInfo.$Properties): ServerTransportInfo {
  return {
    iceParameters: {
      usernameFragment: t.iceParameters!.usernameFragment!,
      password: t.iceParameters!.password!,
      iceLite: t.iceParameters!.iceLite ?? false,
    },
    iceCandidates: (t.iceCandidates ?? []).map((c) => ({
      foundation: c.foundation!,
      priority: c.priority!,
      address: c.address!,
      protocol: c.protocol!,
      port: c.port!,
      type: c.type!,
      ...(c.tcpType ? { tcpType: c.tcpType } : {}),
    })),
    dtlsParameters: { role: t.dtlsParameters!.role ?? 'auto', fingerprints: (t.dtlsParameters!.fingerprints ?? []).map((f) => ({ algorithm: f.algorithm!, value: f.value! })) },
    sctpParameters: t.sctpParameters
      ? { port: t.sctpParameters.port!, OS: t.sctpParameters.os!, MIS: t.sctpParameters.mis!, maxMessageSize: t.sctpParameters.maxMessageSize! }
      : undefined,
  };
}

function consumerFromWire(c: c4v.signalling.v1.ConsumerInfo.$Properties): PeerConsumer {
  const rp = c.rtpParameters!;
  return {
    id: c.id!,
    kind: c.kind === pb.MediaKind.AUDIO ? 'audio' : 'video',
    rtpParameters: {
      mid: rp.mid || undefined,
      codecs: (rp.codecs ?? []).map((k) => ({
        mimeType: k.mimeType!,
        payloadType: k.payloadType!,
        clockRate: k.clockRate!,
        ...(k.channels ? { channels: k.channels } : {}),
      })),
      encodings: (rp.encodings ?? []).map((e) => ({ ssrc: e.ssrc ?? undefined })),
      rtcp: { cname: rp.rtcp?.cname ?? undefined },
    },
  };
}

/** A track to publish: its werift name, kind and meeting source. */
export interface TrackSpec {
  name: string;
  kind: MediaKind;
  source: MediaSource;
}

/** What a client published through the gateway. */
export interface Published {
  pub: WeriftPublisher;
  transportId: string;
  producers: Map<string, string>;
  chatId: string | undefined;
}

/** Publishes tracks (and a chat channel on SCTP stream `chatStreamId`) through the gateway. */
export async function publish(c: SignallingClient, tracks: TrackSpec[], chatStreamId?: number): Promise<Published> {
  const pub = await WeriftPublisher.create(tracks.map(({ name, kind }) => ({ name, kind })), chatStreamId);
  const t = (await c.call({ createTransport: { direction: pb.TransportDirection.SEND } })).transport!;
  await c.call({ connectTransport: { transportId: t.id, dtlsParameters: pub.dtlsParameters } });
  const producers = new Map<string, string>();
  for (const tr of tracks) {
    const r = await c.call({
      produce: {
        transportId: t.id,
        source: sourceToWire(tr.source),
        kind: kindToWire(tr.kind),
        rtpParameters: rtpParametersToWire(pub.produceParameters(tr.name).rtpParameters),
      },
    });
    producers.set(tr.name, r.producer!.id!);
  }
  let chatId: string | undefined;
  if (chatStreamId !== undefined) {
    chatId = (await c.call({ produceChat: { transportId: t.id, sctpStreamParameters: pub.sctpStreamParameters } })).dataProducer!.id!;
  }
  await pub.connect(transportFromWire(t));
  return { pub, transportId: t.id!, producers, chatId };
}

/** What a client receives through the gateway. */
export interface Subscribed {
  sub: WeriftSubscriber;
  transportId: string;
  /** producer id -> consumer id */
  consumers: Map<string, string>;
  chatStreams: Map<string, number>;
}

/** Consumes producers (and chat channels) through the gateway and resumes the consumers. */
export async function subscribe(c: SignallingClient, producerIds: string[], chatIds: string[] = []): Promise<Subscribed> {
  const sub = new WeriftSubscriber();
  const t = (await c.call({ createTransport: { direction: pb.TransportDirection.RECV } })).transport!;
  const consumers = new Map<string, string>();
  const infos: PeerConsumer[] = [];
  for (const producerId of producerIds) {
    const r = await c.call({ consume: { transportId: t.id, producerId, rtpCapabilities: c.rtpCapabilities } });
    consumers.set(producerId, r.consumer!.id!);
    infos.push(consumerFromWire(r.consumer!));
  }
  const chatStreams = new Map<string, number>();
  for (const dataProducerId of chatIds) {
    const r = await c.call({ consumeChat: { transportId: t.id, dataProducerId } });
    chatStreams.set(dataProducerId, r.dataConsumer!.sctpStreamParameters!.streamId!);
  }
  const dtls = await sub.connect(transportFromWire(t), infos, chatIds.length > 0);
  await c.call({ connectTransport: { transportId: t.id, dtlsParameters: dtls } });
  for (const consumerId of consumers.values()) await c.call({ resumeConsumer: { consumerId } });
  for (const streamId of chatStreams.values()) await sub.openChat(streamId);
  return { sub, transportId: t.id!, consumers, chatStreams };
}

export type { V1 };
