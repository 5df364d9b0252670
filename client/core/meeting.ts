// The meeting client shared by both flavours: join and admission, the roster, remote tracks,
// chat, host controls, polls, and the three recoveries (media rebuilt after a worker death,
// resume after a lost WebSocket, ICE restart). The media engine is the flavour's MediaAdapter.
import type { types as ms } from 'mediasoup';
import {
  clusterNodesFromWire,
  codecParametersFromWire,
  kindToWire,
  pb,
  rtpCapabilitiesFromWire,
  rtpCapabilitiesToWire,
  rtpParametersFromWire,
  rtpParametersToWire,
  sourceToWire,
} from '../../gateway/wire.js';
import type { c4v } from '../../proto/gen/signalling.js';
import { Emitter } from './emitter.js';
import { attemptVerdict, failoverOrder, nextDelay, nodeOf } from './failover.js';
import { ClientError, Signalling, now, type SocketFactory, type WireNotification } from './signalling.js';
import type {
  AdapterDataConsumer,
  ClusterNodeInfo,
  AdapterDataProducer,
  AdapterProducer,
  AdapterTransport,
  CloseReasonName,
  ConnectOptions,
  E2eeStatus,
  MediaAdapter,
  MeetingE2eeMode,
  MeetingClientEvents,
  MeetingState,
  PollResultsInfo,
  RemoteParticipant,
  RemoteTrack,
  Role,
  Source,
  TransportOptions,
} from './types.js';

type V1 = typeof c4v.signalling.v1;
type PInfo = c4v.signalling.v1.IParticipantInfo;
type ProducerWire = c4v.signalling.v1.IProducerInfo;

/** The protocol versions this SDK speaks. */
export const CLIENT_PROTOCOL_VERSIONS = [1];

const SOURCES: Record<number, Source> = {
  [pb.MediaSource.MICROPHONE]: 'microphone',
  [pb.MediaSource.CAMERA]: 'camera',
  [pb.MediaSource.SCREEN_VIDEO]: 'screen-video',
  [pb.MediaSource.SCREEN_AUDIO]: 'screen-audio',
};

function roleName(r: number | null | undefined): Role {
  return r === pb.Role.HOST ? 'host' : r === pb.Role.COHOST ? 'cohost' : 'participant';
}

/** 'MEETING_ENDED' -> 'meeting-ended'. */
export function closeReasonName(v: number | null | undefined): CloseReasonName {
  const name = (pb.CloseReason as unknown as Record<number, string>)[v ?? 0] ?? 'CLOSE_REASON_UNSPECIFIED';
  return name.toLowerCase().replaceAll('_', '-');
}

function participantFromWire(p: PInfo): RemoteParticipant {
  return { id: p.participantId ?? '', displayName: p.displayName ?? '', role: roleName(p.role), e2eeCapable: p.e2eeCapable ?? false, admittedSeq: p.admittedSeq ?? 0 };
}

/** mediasoup-client's transport options from the wire's TransportInfo. */
export function transportFromWire(t: c4v.signalling.v1.ITransportInfo): TransportOptions {
  return {
    id: t.id ?? '',
    iceParameters: {
      usernameFragment: t.iceParameters?.usernameFragment ?? '',
      password: t.iceParameters?.password ?? '',
      iceLite: t.iceParameters?.iceLite ?? false,
    },
    iceCandidates: (t.iceCandidates ?? []).map((c) => ({
      foundation: c.foundation ?? '',
      priority: c.priority ?? 0,
      address: c.address ?? '',
      ip: c.address ?? '',
      protocol: (c.protocol ?? 'udp') as ms.IceCandidate['protocol'],
      port: c.port ?? 0,
      type: (c.type ?? 'host') as ms.IceCandidate['type'],
      ...(c.tcpType ? { tcpType: c.tcpType as ms.IceCandidate['tcpType'] } : {}),
    })) as ms.IceCandidate[],
    dtlsParameters: {
      role: (t.dtlsParameters?.role || 'auto') as ms.DtlsRole,
      fingerprints: (t.dtlsParameters?.fingerprints ?? []).map((f) => ({ algorithm: f.algorithm as ms.FingerprintAlgorithm, value: f.value ?? '' })),
    },
    sctpParameters: t.sctpParameters
      ? { port: t.sctpParameters.port ?? 0, OS: t.sctpParameters.os ?? 0, MIS: t.sctpParameters.mis ?? 0, maxMessageSize: t.sctpParameters.maxMessageSize ?? 0 }
      : undefined,
  };
}

/**
 * Codec parameters as a browser's SDP parser hands them over, made exact: sdp-transform turns
 * `profile-level-id=640032` into the number 640032, which mediasoup no longer recognises as a
 * profile. The profile is a 6-hex-digit string (RFC 6184), so it goes out as one.
 */
export function normalizeRtpParameters(p: ms.RtpParameters): ms.RtpParameters {
  return {
    ...p,
    codecs: p.codecs.map((c) => {
      const params = { ...(c.parameters ?? {}) } as Record<string, unknown>;
      const pli = params['profile-level-id'];
      if (typeof pli === 'number') params['profile-level-id'] = String(pli).padStart(6, '0');
      return { ...c, parameters: params };
    }),
  };
}

/** Spatial layer for a video shown `height` CSS pixels high (three layers: 1/4, 1/2 and full). */
export function layerForHeight(height: number, devicePixelRatio = 1): number {
  const h = height * devicePixelRatio;
  return h <= 180 ? 0 : h <= 360 ? 1 : 2;
}

interface LocalSource<T> {
  track: T;
  producer: AdapterProducer | undefined;
  muted: boolean;
  /** The server closed our producer (host, worker death); a reconnect notice tells which. */
  lostId?: string | undefined;
}

/** A socket of a recovery attempt, hello done; notifications it got before it was bound. */
interface Opened {
  sig: Signalling;
  held: WireNotification[];
}

interface RemoteRecord<T> {
  remote: RemoteTrack<T>;
  consumer: { close(): void };
  /** Paused by this client (hidden tile), as opposed to by the sender. */
  hidden: boolean;
  preferredSpatial: number | undefined;
}

/** Internal wiring a flavour passes in. @internal */
export interface ClientPlumbing<T> {
  adapter: MediaAdapter<T>;
  socketFactory: SocketFactory;
  clientName: string;
}

/**
 * One client in one meeting. Created by `connect()`; follow `state` and the other events, publish
 * with `publish()` (the flavours add helpers that capture camera, microphone and screen).
 */
export class MeetingClient<T = unknown> extends Emitter<MeetingClientEvents<T>> {
  #url: string;
  readonly meetingId: string;
  /** Issue 13: the latest JoinOk.cluster_nodes (empty outside cluster mode). */
  #clusterNodes: ClusterNodeInfo[] = [];
  /** A recovery of the signalling connection is running (one at a time). */
  #recovering = false;
  /** @internal Test hook (_dropSocket): no reconnect attempt before this time. */
  #offlineUntil = 0;
  #options: ConnectOptions;
  readonly #plumbing: ClientPlumbing<T>;
  #sig: Signalling | undefined;
  #state: MeetingState = 'connecting';
  #closeReason: CloseReasonName | undefined;
  #participantId = '';
  #resumeToken = '';
  #role: Role = 'participant';
  #title = '';
  #graceMs = 15_000;
  #e2eeRequired = false;
  #e2eeMode: MeetingE2eeMode = 'off';
  #admittedSeq = 0;
  #securityCode: string | undefined;
  #e2eeStatus: E2eeStatus = { state: 'none', text: 'Not end-to-end encrypted', unencrypted: [] };
  #locked = false;
  #activeSpeaker: string | undefined;
  #routerCaps: ms.RtpCapabilities | undefined;
  #send: AdapterTransport<T> | undefined;
  #recv: AdapterTransport<T> | undefined;
  #chatProducer: AdapterDataProducer | undefined;
  readonly #chatConsumers = new Map<string, { dc: AdapterDataConsumer; participantId: string }>();
  readonly #local = new Map<Source, LocalSource<T>>();
  readonly #remote = new Map<string, RemoteRecord<T>>();
  readonly #roster = new Map<string, RemoteParticipant>();
  #waiting: RemoteParticipant[] = [];
  /** Media set-up and notifications run one at a time, in order. */
  #queue: Promise<unknown> = Promise.resolve();
  #mediaEpoch = 0;
  #closing: { reason: number } | undefined;
  #left = false;
  /** Milliseconds from the WebSocket opening to the join answer and to the first remote track. */
  readonly timings: { socketOpenedAt: number; joinedAt?: number; firstTrackAt?: number } = { socketOpenedAt: 0 };

  /** @internal Use connect(). */
  constructor(url: string, options: ConnectOptions, plumbing: ClientPlumbing<T>) {
    super();
    this.#url = url;
    this.#options = { simulcast: true, chat: true, ...options };
    this.#plumbing = plumbing;
    const fromUrl = (() => {
      try {
        return new URL(url).searchParams.get('meeting') ?? undefined;
      } catch {
        return undefined;
      }
    })();
    const meetingId = options.meetingId ?? fromUrl;
    if (!meetingId) throw new TypeError('connect() needs a meetingId (or a ?meeting= parameter in the URL)');
    this.meetingId = meetingId;
  }

  // -------------------------------------------------------------------------------------------
  // State
  // -------------------------------------------------------------------------------------------

  get state(): MeetingState {
    return this.#state;
  }

  /** The signalling URL the client is connected to now (issue 13: another node's after a failover). */
  get url(): string {
    return this.#url;
  }

  /**
   * Issue 13: the cluster's nodes this client may resume at, as the server last listed them (the
   * node it is connected to first); empty outside cluster mode.
   */
  get clusterNodes(): ClusterNodeInfo[] {
    return this.#clusterNodes.map((n) => ({ ...n }));
  }

  /** Issue 13: the node the client is connected to now (node id and region '' outside cluster mode). */
  get node(): ClusterNodeInfo {
    return nodeOf(this.#url, this.#clusterNodes);
  }

  /** Why the session ended (denied, removed, ended). */
  get closeReason(): CloseReasonName | undefined {
    return this.#closeReason;
  }

  get participantId(): string {
    return this.#participantId;
  }

  get role(): Role {
    return this.#role;
  }

  get title(): string {
    return this.#title;
  }

  get locked(): boolean {
    return this.#locked;
  }

  get e2eeRequired(): boolean {
    return this.#e2eeRequired;
  }

  /** Issue 12: the meeting's E2EE mode (from the join answer; 'required' also from an older server's flag). */
  get e2eeMode(): MeetingE2eeMode {
    return this.#e2eeMode;
  }

  /** Issue 12: this participant's admission number (ParticipantInfo.admitted_seq; 0 until the list arrived). */
  get admittedSeq(): number {
    return this.#admittedSeq;
  }

  /** Issue 12: the meeting security code (E2EE clients, once the key exchange has the roster). */
  get securityCode(): string | undefined {
    return this.#securityCode;
  }

  /** Issue 12: where end-to-end encryption stands (see the `e2ee` event). */
  get e2eeStatus(): E2eeStatus {
    return this.#e2eeStatus;
  }

  /** @internal A flavour's E2EE wiring reports the code through the client's own event. */
  _setSecurityCode(code: string): void {
    if (code === this.#securityCode) return;
    this.#securityCode = code;
    this.emit('securitycode', code);
  }

  /** @internal A flavour's background failure (E2EE key exchange) as the client's 'error' event. */
  _reportError(error: Error): void {
    if (!this.closed) this.emit('error', error);
  }

  /** @internal A flavour's E2EE wiring reports the status through the client's own event. */
  _setE2eeStatus(status: E2eeStatus): void {
    const a = this.#e2eeStatus;
    if (a.state === status.state && a.text === status.text && a.unencrypted.join() === status.unencrypted.join()) return;
    this.#e2eeStatus = status;
    this.emit('e2ee', status);
  }

  /**
   * Issue 12: sends an opaque E2EE key message (`send_key_message`) to one participant, or to
   * every other E2EE participant when `to` is undefined. The server relays it unread.
   */
  async sendKeyMessage(to: string | undefined, data: Uint8Array): Promise<void> {
    await this.#request({ sendKeyMessage: { toParticipantId: to ?? '', data } });
  }

  /** The participant speaking now, if anyone spoke yet. */
  get activeSpeaker(): string | undefined {
    return this.#activeSpeaker;
  }

  /** Other admitted participants. */
  get participants(): RemoteParticipant[] {
    return [...this.#roster.values()];
  }

  /** Remote tracks now received. */
  get tracks(): RemoteTrack<T>[] {
    return [...this.#remote.values()].map((r) => r.remote);
  }

  /** Hosts and co-hosts: who waits now. */
  get waiting(): RemoteParticipant[] {
    return [...this.#waiting];
  }

  get closed(): boolean {
    return this.#state === 'denied' || this.#state === 'removed' || this.#state === 'ended';
  }

  #setState(state: MeetingState, reason?: CloseReasonName): void {
    if (this.#state === state || this.closed) return;
    this.#state = state;
    if (reason) this.#closeReason = reason;
    this.emit('state', state, reason);
  }

  // -------------------------------------------------------------------------------------------
  // Joining
  // -------------------------------------------------------------------------------------------

  /** @internal hello + join; resolves with the state after the join answer (media may still be setting up). */
  async _start(): Promise<void> {
    const sig = await Signalling.open(this.#url, this.#plumbing.socketFactory);
    this.timings.socketOpenedAt = sig.openedAt;
    this.#bind(sig);
    await sig.request({ hello: { protocolVersions: CLIENT_PROTOCOL_VERSIONS, client: this.#plumbing.clientName } });
    let ok: c4v.signalling.v1.JoinOk;
    try {
      ok = (await sig.request({ join: this.#joinRequest() })).join as c4v.signalling.v1.JoinOk;
    } catch (error) {
      this.#left = true;
      sig.close();
      throw error;
    }
    this.timings.joinedAt = now();
    this.#applyJoin(ok);
  }

  /** The join as the app asked for it (again for a rejoin after the grace period). */
  #joinRequest(): c4v.signalling.v1.Join.$Properties {
    return {
      meetingId: this.meetingId,
      displayName: this.#options.displayName,
      password: this.#options.password ?? '',
      joinToken: this.#options.token ?? '',
      e2eeCapable: this.#options.e2ee ?? false,
    };
  }

  /** Issue 13: keeps the node list of a join or resume answer (an empty one outside cluster mode). */
  #applyNodes(ok: c4v.signalling.v1.JoinOk): void {
    const nodes = clusterNodesFromWire(ok.clusterNodes);
    if (nodes.length > 0 || this.#clusterNodes.length === 0) this.#clusterNodes = nodes;
  }

  #applyJoin(ok: c4v.signalling.v1.JoinOk): void {
    this.#applyNodes(ok);
    this.#participantId = ok.participantId;
    this.#resumeToken = ok.resumeToken;
    this.#role = roleName(ok.role);
    this.#title = ok.meetingTitle;
    this.#graceMs = ok.reconnectGraceMs || this.#graceMs;
    this.#e2eeRequired = ok.e2eeRequired;
    const mode = ok.e2eeMode;
    this.#e2eeMode = mode === 'optional' || mode === 'required' ? mode : ok.e2eeRequired ? 'required' : 'off';
    if (ok.activeSpeakerId) this.#activeSpeaker = ok.activeSpeakerId;
    const state = ok.state;
    if (state === pb.ParticipantState.ADMITTED) {
      this.#setState('admitted');
      if (ok.rtpCapabilities) this.#routerCaps = rtpCapabilitiesFromWire(ok.rtpCapabilities);
      this.#enqueue(() => this.#startMedia());
    } else if (state === pb.ParticipantState.WAITING_ROOM) this.#setState('waiting-room');
    else if (state === pb.ParticipantState.WAITING_FOR_HOST) this.#setState('waiting-for-host');
  }

  #bind(sig: Signalling): void {
    this.#sig = sig;
    this.#closing = undefined;
    sig.on('notification', (n) => this.#onNotification(n));
    sig.on('close', (code) => this.#onSocketClose(sig, code));
  }

  #request(r: Parameters<Signalling['request']>[0]): Promise<c4v.signalling.v1.Response> {
    const sig = this.#sig;
    if (!sig || sig.closed) return Promise.reject(new ClientError('CLOSED', 'not connected'));
    return sig.request(r);
  }

  #enqueue<R>(fn: () => Promise<R>): Promise<R> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch((error: unknown) => {
      if (!this.closed) this.emit('error', error instanceof Error ? error : new Error(String(error)));
    });
    return run;
  }

  // -------------------------------------------------------------------------------------------
  // Media set-up (on admission, and again after a worker death)
  // -------------------------------------------------------------------------------------------

  async #startMedia(): Promise<void> {
    if (this.#state !== 'admitted') return;
    const epoch = ++this.#mediaEpoch;
    const { adapter } = this.#plumbing;
    if (!this.#routerCaps) this.#routerCaps = rtpCapabilitiesFromWire((await this.#request({ getRouterRtpCapabilities: {} })).rtpCapabilities);
    if (!adapter.loaded) await adapter.load(this.#routerCaps);
    // Both transports and the roster in one round trip: the requests are pipelined and the
    // server answers them in order, receiving side first (the first picture is what a joiner
    // waits for; the send transport is only needed once something is published).
    const recvReq = this.#request({ createTransport: { direction: pb.TransportDirection.RECV } });
    const listReq = this.#request({ getParticipants: {} });
    const sendReq = this.#request({ createTransport: { direction: pb.TransportDirection.SEND } });
    sendReq.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
    const [recvInfo, list] = await Promise.all([recvReq, listReq]);
    if (epoch !== this.#mediaEpoch) return;
    this.#recv = adapter.createTransport('recv', transportFromWire(recvInfo.transport!), this.#handlers('recv'));
    const l = list.participants!;
    const listed = new Set<string>();
    for (const p of l.participants ?? []) {
      if (p.participantId === this.#participantId) {
        this.#admittedSeq = p.admittedSeq ?? 0;
        continue;
      }
      const rp = participantFromWire(p);
      listed.add(rp.id);
      const known = this.#roster.has(rp.id);
      this.#roster.set(rp.id, rp);
      if (!known) this.emit('participantjoined', rp);
    }
    // The list is the truth (after a rejoin, issue 13, the old roster may hold people who left).
    for (const [id, p] of [...this.#roster]) {
      if (listed.has(id)) continue;
      this.#roster.delete(id);
      this.emit('participantleft', p, 'left');
    }
    this.emit('roster', this.participants);
    if (l.activeSpeakerId && l.activeSpeakerId !== this.#activeSpeaker) {
      this.#activeSpeaker = l.activeSpeakerId;
      this.emit('activespeaker', l.activeSpeakerId);
    }
    // Receive everyone, video first; meanwhile publish again what was published before (a
    // worker death).
    const byKind = (p: ProducerWire): number => (p.kind === pb.MediaKind.VIDEO ? 0 : 1);
    const consuming = Promise.all([...(l.producers ?? [])].sort((a, b) => byKind(a) - byKind(b)).map((p) => this.#consume(p)));
    consuming.catch(() => undefined);
    const sendInfo = await sendReq;
    if (epoch !== this.#mediaEpoch) return;
    this.#send = adapter.createTransport('send', transportFromWire(sendInfo.transport!), this.#handlers('send'));
    const republish = [...this.#local.entries()];
    await Promise.all([...republish.map(([source, local]) => this.#produce(source, local)), consuming]);
    if (this.#options.chat) {
      await this.#openChat().catch((error: unknown) => {
        if (!(error instanceof ClientError && error.code === 'CHAT_DISABLED')) throw error;
      });
      for (const d of l.dataProducers ?? []) await this.#consumeChat(d.id ?? '', d.participantId ?? '');
    }
  }

  #handlers(direction: 'send' | 'recv') {
    const self = this;
    return {
      async connect(dtlsParameters: ms.DtlsParameters): Promise<void> {
        const t = direction === 'send' ? self.#send : self.#recv;
        await self.#request({
          connectTransport: {
            transportId: t!.id,
            dtlsParameters: { role: dtlsParameters.role ?? 'auto', fingerprints: dtlsParameters.fingerprints },
          },
        });
      },
      async produce(p: { kind: 'audio' | 'video'; rtpParameters: ms.RtpParameters; source: Source }): Promise<string> {
        const r = await self.#request({
          produce: {
            transportId: self.#send!.id,
            source: sourceToWire(p.source),
            kind: kindToWire(p.kind),
            rtpParameters: rtpParametersToWire(normalizeRtpParameters(p.rtpParameters)),
          },
        });
        return r.producer!.id!;
      },
      async produceData(p: { sctpStreamParameters: ms.SctpStreamParameters }): Promise<string> {
        const s = p.sctpStreamParameters;
        const r = await self.#request({
          produceChat: {
            transportId: self.#send!.id,
            sctpStreamParameters: {
              streamId: s.streamId,
              ordered: s.ordered ?? true,
              ...(s.maxPacketLifeTime != null ? { maxPacketLifeTime: s.maxPacketLifeTime } : {}),
              ...(s.maxRetransmits != null ? { maxRetransmits: s.maxRetransmits } : {}),
            },
          },
        });
        return r.dataProducer!.id!;
      },
      stateChange(state: string): void {
        if (state === 'failed') void self.#restartIce(direction);
      },
    };
  }

  /** ICE failed on a transport (a network change): new ICE credentials from the server. */
  async #restartIce(direction: 'send' | 'recv'): Promise<void> {
    try {
      await this.restartIce(direction);
    } catch (error) {
      this.emit('error', error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * Restarts ICE on the send or the receive transport: new ICE credentials from the server
   * (`restart_ice`), handed to the media engine, which reconnects. The SDK does this by itself
   * when a transport fails; call it after a network change the engine may not have noticed.
   * Rejects with ClientError when the server refuses, and does nothing without the transport.
   */
  async restartIce(direction: 'send' | 'recv'): Promise<void> {
    const t = direction === 'send' ? this.#send : this.#recv;
    if (!t || this.closed) return;
    const r = await this.#request({ restartIce: { transportId: t.id } });
    const ice = r.iceParameters!;
    await t.restartIce({ usernameFragment: ice.usernameFragment ?? '', password: ice.password ?? '', iceLite: ice.iceLite ?? false });
  }

  async #produce(source: Source, local: LocalSource<T>): Promise<void> {
    const send = this.#send;
    // Already published (the media set-up published it first), or replaced meanwhile.
    if (!send || local.producer || this.#local.get(source) !== local) return;
    local.producer = await send.produce({ track: local.track, source, simulcast: source === 'camera' && this.#options.simulcast !== false });
    local.lostId = undefined;
    if (local.muted) await this.#setPaused(source, local, true);
    this.emit('localtrack', source);
  }

  async #consume(p: ProducerWire): Promise<void> {
    const recv = this.#recv;
    const producerId = p.id ?? '';
    if (!recv || !producerId || p.participantId === this.#participantId) return;
    if ([...this.#remote.values()].some((r) => r.remote.producerId === producerId)) return;
    const r = await this.#request({
      consume: { transportId: recv.id, producerId, rtpCapabilities: rtpCapabilitiesToWire(this.#plumbing.adapter.recvRtpCapabilities()) },
    });
    const c = r.consumer!;
    const kind = c.kind === pb.MediaKind.AUDIO ? 'audio' : 'video';
    const consumer = await recv.consume({ id: c.id!, producerId, kind, rtpParameters: rtpParametersFromWire(c.rtpParameters), participantId: c.participantId || p.participantId || '' });
    const remote: RemoteTrack<T> = {
      consumerId: c.id!,
      producerId,
      participantId: c.participantId ?? p.participantId ?? '',
      source: SOURCES[c.source ?? 0] ?? 'camera',
      kind,
      track: consumer.track,
      paused: p.paused ?? false,
      layers: undefined,
      replacesProducerId: p.replacesProducerId || undefined,
    };
    this.#remote.set(remote.consumerId, { remote, consumer, hidden: false, preferredSpatial: undefined });
    await this.#request({ resumeConsumer: { consumerId: remote.consumerId } });
    if (this.timings.firstTrackAt === undefined) this.timings.firstTrackAt = now();
    this.emit('track', remote);
  }

  #dropRemote(consumerId: string): void {
    const rec = this.#remote.get(consumerId);
    if (!rec) return;
    this.#remote.delete(consumerId);
    rec.consumer.close();
    this.emit('trackended', rec.remote);
  }

  async #openChat(): Promise<void> {
    if (this.#chatProducer || !this.#send) return;
    this.#chatProducer = await this.#send.produceChat();
  }

  async #consumeChat(dataProducerId: string, participantId: string): Promise<void> {
    const recv = this.#recv;
    if (!recv || !dataProducerId || this.#chatConsumers.has(dataProducerId)) return;
    const r = await this.#request({ consumeChat: { transportId: recv.id, dataProducerId } });
    const d = r.dataConsumer!;
    const s = d.sctpStreamParameters!;
    const dc = await recv.consumeChat({
      id: d.id!,
      dataProducerId,
      label: d.label || 'chat',
      sctpStreamParameters: { streamId: s.streamId ?? 0, ordered: s.ordered ?? true },
    });
    const from = d.participantId || participantId;
    this.#chatConsumers.set(dataProducerId, { dc, participantId: from });
    dc.onMessage((text) => {
      this.emit('chat', { participantId: from, displayName: this.#roster.get(from)?.displayName ?? '', text, at: new Date() });
    });
  }

  /** Tears down the media of the current epoch (worker death): transports, consumers, chat. */
  #dropMedia(): void {
    this.#mediaEpoch++;
    for (const id of [...this.#remote.keys()]) this.#dropRemote(id);
    for (const { dc } of this.#chatConsumers.values()) dc.close();
    this.#chatConsumers.clear();
    this.#chatProducer = undefined;
    for (const l of this.#local.values()) l.producer = undefined;
    this.#send?.close();
    this.#recv?.close();
    this.#send = undefined;
    this.#recv = undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Notifications
  // -------------------------------------------------------------------------------------------

  #onNotification(n: WireNotification): void {
    switch (n.body) {
      case 'waitingStatus': {
        const w = n.waitingStatus!;
        if (w.state === pb.ParticipantState.ADMITTED) {
          if (w.rtpCapabilities) this.#routerCaps = rtpCapabilitiesFromWire(w.rtpCapabilities);
          if (w.activeSpeakerId) this.#activeSpeaker = w.activeSpeakerId;
          this.#setState('admitted');
          this.#enqueue(() => this.#startMedia());
        } else if (w.state === pb.ParticipantState.WAITING_ROOM) this.#setState('waiting-room');
        else if (w.state === pb.ParticipantState.WAITING_FOR_HOST) this.#setState('waiting-for-host');
        else if (w.state === pb.ParticipantState.DENIED) this.#closing = { reason: pb.CloseReason.DENIED };
        break;
      }
      case 'participantJoined': {
        const p = participantFromWire(n.participantJoined!);
        if (p.id === this.#participantId || this.#roster.has(p.id)) break;
        this.#roster.set(p.id, p);
        this.emit('participantjoined', p);
        break;
      }
      case 'participantLeft': {
        const id = n.participantLeft!.participantId ?? '';
        const p = this.#roster.get(id);
        this.#roster.delete(id);
        if (this.#activeSpeaker === id) this.#activeSpeaker = undefined;
        if (p) this.emit('participantleft', p, closeReasonName(n.participantLeft!.reason));
        break;
      }
      case 'roleChanged': {
        const p = participantFromWire(n.roleChanged!);
        if (p.id === this.#participantId) this.#role = p.role;
        else if (this.#roster.has(p.id)) this.#roster.set(p.id, p);
        this.emit('rolechanged', p);
        break;
      }
      case 'waitingList':
        this.#waiting = (n.waitingList!.participants ?? []).map(participantFromWire);
        this.emit('waitinglist', [...this.#waiting]);
        break;
      case 'newProducer': {
        const p = n.newProducer!;
        this.#enqueue(() => this.#consume(p));
        break;
      }
      case 'producerClosed': {
        const id = n.producerClosed!.producerId ?? '';
        this.#enqueue(async () => {
          for (const [cid, r] of this.#remote) if (r.remote.producerId === id) this.#dropRemote(cid);
          for (const [source, l] of this.#local) {
            if (l.producer?.id === id) {
              l.producer.close();
              l.producer = undefined;
              // Closed by the server: the host stopped it, or its worker died. A reconnect notice
              // that lists it means the latter, and it is published again.
              l.lostId = id;
              this.emit('localtrackended', source);
            }
          }
        });
        break;
      }
      case 'producerPaused':
      case 'producerResumed': {
        const info = (n.producerPaused ?? n.producerResumed)!;
        const paused = n.body === 'producerPaused';
        for (const r of this.#remote.values()) {
          if (r.remote.producerId !== info.id) continue;
          r.remote.paused = paused;
          this.emit('trackmuted', r.remote, paused);
        }
        break;
      }
      case 'mutedByHost': {
        const info = n.mutedByHost!;
        for (const [source, l] of this.#local) {
          const producer = l.producer;
          if (!producer || producer.id !== info.id) continue;
          l.muted = true;
          producer.pause();
          this.emit('mutedbyhost', source);
        }
        break;
      }
      case 'newChat': {
        const c = n.newChat!;
        if (c.participantId === this.#participantId) break;
        this.#enqueue(() => this.#consumeChat(c.id ?? '', c.participantId ?? ''));
        break;
      }
      case 'chatClosed': {
        const id = n.chatClosed!.dataProducerId ?? '';
        this.#chatConsumers.get(id)?.dc.close();
        this.#chatConsumers.delete(id);
        break;
      }
      case 'meetingLocked':
        this.#locked = n.meetingLocked!.locked ?? false;
        this.emit('locked', this.#locked);
        break;
      case 'activeSpeaker': {
        const id = n.activeSpeaker!.participantId ?? '';
        if (!id || id === this.#activeSpeaker) break;
        this.#activeSpeaker = id;
        this.emit('activespeaker', id);
        break;
      }
      case 'pollStarted': {
        const p = n.pollStarted!;
        this.emit('poll', { id: p.pollId ?? '', question: p.question ?? '', options: p.options ?? [], anonymous: p.anonymous ?? false });
        break;
      }
      case 'reconnect': {
        // The worker serving us died: every transport is gone. Build the media again, and
        // publish again what died with the worker (not what the host had closed before).
        const died = new Set((n.reconnect!.producers ?? []).map((p) => p.id));
        this.emit('reconnecting', 'media');
        this.#enqueue(async () => {
          // An empty list (a server that cannot tell, e.g. another cluster node served us):
          // publish everything again.
          if (died.size > 0) for (const [source, l] of this.#local) if (l.lostId && !died.has(l.lostId)) this.#local.delete(source);
          this.#dropMedia();
          await this.#startMedia();
          this.emit('reconnected', 'media');
        });
        break;
      }
      case 'consumerLayersChanged': {
        const l = n.consumerLayersChanged!;
        const r = this.#remote.get(l.consumerId ?? '');
        if (!r) break;
        r.remote.layers = l.spatialLayer != null ? { spatialLayer: l.spatialLayer, ...(l.temporalLayer != null ? { temporalLayer: l.temporalLayer } : {}) } : undefined;
        this.emit('layers', r.remote, r.remote.layers);
        break;
      }
      case 'closing':
        this.#closing = { reason: n.closing!.reason ?? 0 };
        break;
      case 'keyMessage': {
        const k = n.keyMessage!;
        if (k.fromParticipantId && k.data) this.emit('keymessage', k.fromParticipantId, k.data);
        break;
      }
      default:
        // Scores: not surfaced by this version of the SDK.
        break;
    }
  }

  // -------------------------------------------------------------------------------------------
  // A lost WebSocket: resume within the grace period
  // -------------------------------------------------------------------------------------------

  #onSocketClose(sig: Signalling, code: number): void {
    if (sig !== this.#sig || this.closed) return;
    const reason = this.#closing?.reason ?? (code >= 4000 && code < 4100 ? code - 4000 : undefined);
    if (this.#left) {
      this.#finish(reason ?? pb.CloseReason.LEFT);
      return;
    }
    // Issue 13: a cluster node that goes away (drain, its meeting's home lost) closes with
    // SERVER_SHUTDOWN; with another node to go to, that is a reconnect, not the end.
    const sentAway = reason === pb.CloseReason.SERVER_SHUTDOWN && this.#clusterNodes.some((n) => n.url !== this.#url);
    if (reason !== undefined && !sentAway) {
      this.#finish(reason);
      return;
    }
    // Lost without a word from the server, or sent to another node: resume with the latest token.
    void this.#recover();
  }

  #finish(reason: number): void {
    const name = closeReasonName(reason);
    this.#dropMedia();
    for (const l of this.#local.values()) l.producer = undefined;
    this.#setState(reason === pb.CloseReason.DENIED ? 'denied' : reason === pb.CloseReason.REMOVED ? 'removed' : 'ended', name);
  }

  /**
   * The signalling connection is lost: resume the session (same participant id) within the grace
   * period, at the same node first, then (issue 13) at the other nodes of the latest list, one
   * socket at a time, with back-off between rounds. A node that cannot take it (draining, outside
   * the regions, cut off from the cluster) is skipped; INVALID_TOKEN means the session is gone:
   * join again if the app allowed it, else end with a SESSION_EXPIRED error.
   */
  async #recover(): Promise<void> {
    if (this.#recovering) return;
    this.#recovering = true;
    try {
      const lost = this.node;
      this.emit('reconnecting', 'signalling', lost);
      const deadline = now() + this.#graceMs;
      if (this.#offlineUntil > now()) await new Promise((r) => setTimeout(r, this.#offlineUntil - now()));
      const skip = new Set<string>();
      let delay = 0;
      let expiredAt: string | undefined;
      let last = lost.url;
      // One full round at least, even when the grace period seems over (a suspended device): the
      // server decides whether the session is still there.
      let round = 0;
      rounds: for (; round === 0 || now() < deadline; round++) {
        let order = failoverOrder(this.#url, this.#clusterNodes, skip);
        if (order.length === 0) {
          // Every node said no: maybe only for now (a Redis restart); start over after the back-off.
          skip.clear();
          order = failoverOrder(this.#url, this.#clusterNodes, skip);
        }
        for (const url of order) {
          if (this.#left || this.closed) return;
          if (round > 0 && now() >= deadline) break rounds;
          if (url !== last) this.emit('reconnecting', 'signalling', nodeOf(url, this.#clusterNodes));
          last = url;
          const verdict = await this.#tryResume(url, deadline);
          if (verdict === 'resumed' || verdict === 'stopped') return;
          if (verdict === 'expired') {
            expiredAt = url;
            break rounds;
          }
          if (verdict === 'skip') skip.add(url);
        }
        delay = nextDelay(delay);
        await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - now()))));
      }
      if (this.#left || this.closed) return;
      if (this.#options.reconnect?.rejoin && (await this.#rejoin(expiredAt))) return;
      if (this.#left || this.closed) return;
      this.emit(
        'error',
        expiredAt !== undefined
          ? new ClientError('SESSION_EXPIRED', 'the session could not be resumed (its grace period is over or it was lost with its node)')
          : new ClientError('RECONNECT_FAILED', `no node took the session back within the ${this.#graceMs} ms grace period`),
      );
      this.#finish(pb.CloseReason.CONNECTION_LOST);
    } finally {
      this.#recovering = false;
    }
  }

  /** Opens a socket to `url` and says hello; notifications that come before the client binds the socket are kept. */
  async #open(url: string, deadline: number): Promise<Opened> {
    // Within the grace period where it can; never below a second (a loaded client, a late first round).
    const timeout = Math.min(this.#options.reconnect?.attemptTimeoutMs ?? 3000, Math.max(1000, deadline - now()));
    const sig = await Signalling.open(url, this.#plumbing.socketFactory, timeout);
    const held: WireNotification[] = [];
    sig.on('notification', (n) => {
      if (this.#sig !== sig) held.push(n);
    });
    try {
      await sig.request({ hello: { protocolVersions: CLIENT_PROTOCOL_VERSIONS, client: this.#plumbing.clientName } }, timeout);
    } catch (error) {
      sig.close();
      throw error;
    }
    return { sig, held };
  }

  /** One resume attempt at one node. */
  async #tryResume(url: string, deadline: number): Promise<'resumed' | 'stopped' | 'next' | 'skip' | 'expired'> {
    let opened: Opened;
    let ok: c4v.signalling.v1.JoinOk;
    try {
      opened = await this.#open(url, deadline);
    } catch (error) {
      return attemptVerdict(error instanceof ClientError ? error.code : undefined);
    }
    const { sig, held } = opened;
    if (this.#left || this.closed) {
      sig.close();
      return 'stopped';
    }
    try {
      ok = (await sig.request({ resume: { participantId: this.#participantId, resumeToken: this.#resumeToken } })).join as c4v.signalling.v1.JoinOk;
    } catch (error) {
      sig.close();
      return attemptVerdict(error instanceof ClientError ? error.code : undefined);
    }
    if (this.#left || this.closed) {
      sig.close();
      return 'stopped';
    }
    // The presented token is dead from now on: keep the new one.
    this.#resumeToken = ok.resumeToken;
    const before = this.node.nodeId;
    this.#url = url;
    this.#applyNodes(ok);
    this.#bind(sig);
    this.#role = roleName(ok.role);
    // Issue 13: resumed at another node, the media lived on the old one: the server follows the
    // answer with a reconnect notice (everything in scope), which rebuilds it here. At the same
    // node, the media is still there: catch up with what was missed.
    const moved = before !== '' && this.node.nodeId !== '' && before !== this.node.nodeId;
    if (ok.state === pb.ParticipantState.ADMITTED && this.#state !== 'admitted') this.#applyJoin(ok);
    else if (ok.state === pb.ParticipantState.ADMITTED && !moved) this.#enqueue(() => this.#resync());
    for (const n of held) this.#onNotification(n);
    this.emit('reconnected', 'signalling', this.node);
    return 'resumed';
  }

  /** Issue 13 (option reconnect.rejoin): the session is gone; join again, at the node that said so first. */
  async #rejoin(first: string | undefined): Promise<boolean> {
    const deadline = now() + this.#graceMs;
    const order = failoverOrder(first ?? this.#url, this.#clusterNodes);
    for (const url of order) {
      if (this.#left || this.closed || now() >= deadline) return false;
      this.emit('reconnecting', 'signalling', nodeOf(url, this.#clusterNodes));
      let opened: Opened;
      let ok: c4v.signalling.v1.JoinOk;
      try {
        opened = await this.#open(url, deadline);
      } catch {
        continue;
      }
      try {
        ok = (await opened.sig.request({ join: this.#joinRequest() })).join as c4v.signalling.v1.JoinOk;
      } catch (error) {
        opened.sig.close();
        const code = error instanceof ClientError ? error.code : '';
        // This node cannot take it (or lost the answer): the next one may.
        if (attemptVerdict(code) === 'skip' || ['CONNECTION_FAILED', 'TIMEOUT', 'CLOSED', 'CLUSTER_TIMEOUT'].includes(code)) continue;
        // A refusal of the join itself (locked, banned, a token that expired): no other node says otherwise.
        this.emit('error', error instanceof Error ? error : new Error(String(error)));
        return false;
      }
      if (this.#left || this.closed) {
        opened.sig.close();
        return false;
      }
      // A new participant: the old one's media is gone (the roster is reconciled by the media set-up).
      this.#dropMedia();
      this.#url = url;
      this.#bind(opened.sig);
      // Admitted again: the media starts anew (republishing what was published); or the waiting room.
      this.#applyJoin(ok);
      for (const n of opened.held) this.#onNotification(n);
      this.emit('reconnected', 'signalling', this.node);
      return true;
    }
    return false;
  }

  /** After a resume: notifications sent while we were away are lost; catch up from the roster. */
  async #resync(): Promise<void> {
    const l = (await this.#request({ getParticipants: {} })).participants!;
    const live = new Set((l.producers ?? []).map((p) => p.id));
    for (const [cid, r] of this.#remote) if (!live.has(r.remote.producerId)) this.#dropRemote(cid);
    for (const p of l.producers ?? []) await this.#consume(p);
    const ids = new Set<string>();
    for (const pw of l.participants ?? []) {
      const p = participantFromWire(pw);
      if (p.id === this.#participantId) {
        this.#admittedSeq = p.admittedSeq;
        continue;
      }
      ids.add(p.id);
      if (!this.#roster.has(p.id)) {
        this.#roster.set(p.id, p);
        this.emit('participantjoined', p);
      }
    }
    for (const [id, p] of this.#roster) {
      if (ids.has(id)) continue;
      this.#roster.delete(id);
      this.emit('participantleft', p, 'left');
    }
    this.emit('roster', this.participants);
    for (const d of l.dataProducers ?? []) await this.#consumeChat(d.id ?? '', d.participantId ?? '');
  }

  // -------------------------------------------------------------------------------------------
  // Publishing
  // -------------------------------------------------------------------------------------------

  /**
   * Publishes a track as `source` (the camera with three simulcast layers unless `simulcast` is
   * off). Waits until admitted media is set up. Publishing a source again replaces the old track.
   */
  async publish(source: Source, track: T): Promise<void> {
    if (this.closed) throw new ClientError('CLOSED', 'the meeting client is closed');
    const old = this.#local.get(source);
    old?.producer?.close();
    if (old?.producer) await this.#request({ closeProducer: { producerId: old.producer.id } }).catch(() => undefined);
    const local: LocalSource<T> = { track, producer: undefined, muted: false };
    this.#local.set(source, local);
    if (this.#state === 'admitted') await this.#enqueue(() => this.#produce(source, local));
  }

  /** Stops publishing a source. */
  async unpublish(source: Source): Promise<void> {
    const local = this.#local.get(source);
    this.#local.delete(source);
    if (!local?.producer) return;
    local.producer.close();
    await this.#request({ closeProducer: { producerId: local.producer.id } });
  }

  /** Mutes one of your sources (the server pauses it for everyone). */
  async mute(source: Source): Promise<void> {
    const l = this.#local.get(source);
    if (l) await this.#setPaused(source, l, true);
  }

  /** Unmutes one of your sources; after a host mute only you can do this. */
  async unmute(source: Source): Promise<void> {
    const l = this.#local.get(source);
    if (l) await this.#setPaused(source, l, false);
  }

  async #setPaused(_source: Source, l: LocalSource<T>, paused: boolean): Promise<void> {
    l.muted = paused;
    if (!l.producer) return;
    if (paused) l.producer.pause();
    else l.producer.resume();
    await this.#request(paused ? { pauseProducer: { producerId: l.producer.id } } : { resumeProducer: { producerId: l.producer.id } });
  }

  /** The id of your producer of `source`, once published. */
  producerId(source: Source): string | undefined {
    return this.#local.get(source)?.producer?.id;
  }

  // -------------------------------------------------------------------------------------------
  // Receiving: layers from the size a video is shown at
  // -------------------------------------------------------------------------------------------

  /**
   * Tells the client how large a remote video is shown (CSS pixels). Hidden or zero-sized: the
   * consumer is paused (no bandwidth); otherwise the server is asked for the layer that fits
   * (`set_preferred_layers`). Audio tracks are ignored (audio has no layers: INVALID_STATE).
   */
  async setVideoSize(consumerId: string, size: { width: number; height: number; visible: boolean; devicePixelRatio?: number }): Promise<void> {
    const r = this.#remote.get(consumerId);
    if (!r || r.remote.kind !== 'video') return;
    const hidden = !size.visible || size.width <= 0 || size.height <= 0;
    if (hidden !== r.hidden) {
      r.hidden = hidden;
      await this.#request(hidden ? { pauseConsumer: { consumerId } } : { resumeConsumer: { consumerId } });
    }
    if (hidden) return;
    const layer = layerForHeight(size.height, size.devicePixelRatio ?? 1);
    if (layer === r.preferredSpatial) return;
    r.preferredSpatial = layer;
    await this.#request({ setPreferredLayers: { consumerId, spatialLayer: layer } }).catch((error: unknown) => {
      // A single-layer (non-simulcast) video has no layers to choose from.
      if (!(error instanceof ClientError && error.code === 'INVALID_STATE')) throw error;
    });
  }

  /** Statistics of one of your producers (by source) or of a remote track (by consumer id). */
  async stats(target: { source: Source } | { consumerId: string }): Promise<c4v.signalling.v1.StatsReport> {
    if ('source' in target) {
      const id = this.producerId(target.source);
      if (!id) throw new ClientError('NOT_FOUND', `${target.source} is not published`);
      return (await this.#request({ getStats: { producerId: id } })).stats as c4v.signalling.v1.StatsReport;
    }
    return (await this.#request({ getStats: { consumerId: target.consumerId } })).stats as c4v.signalling.v1.StatsReport;
  }

  // -------------------------------------------------------------------------------------------
  // Chat and polls
  // -------------------------------------------------------------------------------------------

  /** Sends a chat line to everyone (over the SFU's SCTP data channel, never the WebSocket). */
  async sendChat(text: string): Promise<void> {
    if (!text) throw new TypeError('a chat message needs text');
    if (!this.#chatProducer) await this.#enqueue(() => this.#openChat());
    if (!this.#chatProducer) throw new ClientError('INVALID_STATE', 'no chat channel (not admitted yet)');
    this.#chatProducer.send(text);
  }

  async answerPoll(pollId: string, option: number): Promise<void> {
    await this.#request({ answerPoll: { pollId, option } });
  }

  // -------------------------------------------------------------------------------------------
  // Host controls (host or co-host; NOT_PERMITTED otherwise)
  // -------------------------------------------------------------------------------------------

  async admit(participantId: string): Promise<void> {
    await this.#request({ admit: { participantId } });
  }
  async deny(participantId: string): Promise<void> {
    await this.#request({ deny: { participantId } });
  }
  async admitAll(): Promise<void> {
    await this.#request({ admitAll: {} });
  }
  async lock(): Promise<void> {
    await this.#request({ lock: {} });
  }
  async unlock(): Promise<void> {
    await this.#request({ unlock: {} });
  }
  async remove(participantId: string): Promise<void> {
    await this.#request({ remove: { participantId } });
  }
  /** Mutes someone's microphone; only they can unmute it. */
  async muteParticipant(participantId: string): Promise<void> {
    await this.#request({ mute: { participantId } });
  }
  async muteAll(): Promise<void> {
    await this.#request({ muteAll: {} });
  }
  async stopScreenShare(participantId: string): Promise<void> {
    await this.#request({ stopScreenShare: { participantId } });
  }
  async makeCoHost(participantId: string): Promise<void> {
    await this.#request({ makeCohost: { participantId } });
  }
  async transferHost(participantId: string): Promise<void> {
    await this.#request({ transferHost: { participantId } });
  }
  /** Ends the meeting for everyone. */
  async end(): Promise<void> {
    this.#left = true;
    await this.#request({ endMeeting: {} });
  }
  async createPoll(question: string, options: string[], anonymous = false): Promise<string> {
    return (await this.#request({ createPoll: { question, options, anonymous } })).pollCreated!.pollId!;
  }
  async closePoll(pollId: string): Promise<void> {
    await this.#request({ closePoll: { pollId } });
  }
  async pollResults(pollId: string): Promise<PollResultsInfo> {
    const r = (await this.#request({ getPollResults: { pollId } })).pollResults!;
    return {
      id: r.pollId ?? '',
      question: r.question ?? '',
      options: r.options ?? [],
      counts: r.counts ?? [],
      closed: r.closed ?? false,
      answers: (r.answers ?? []).map((a) => ({ identity: a.participantIdentity ?? '', displayName: a.displayName ?? '', option: a.option ?? 0 })),
    };
  }

  /** Leaves the meeting (idempotent). */
  async leave(): Promise<void> {
    if (this.closed) return;
    this.#left = true;
    try {
      await this.#request({ leave: {} });
    } catch {
      // the server closes the socket right after its answer; either way we are out
    }
    this.#sig?.close();
    this.#finish(pb.CloseReason.LEFT);
  }

  /**
   * @internal For tests: drops the WebSocket without a leave (as a network loss would); with
   * `offlineMs`, the network stays away that long before the client may reconnect (a laptop lid).
   */
  _dropSocket(offlineMs = 0): void {
    this.#offlineUntil = now() + offlineMs;
    this.#sig?.close();
  }
}

/** @internal The typed codec reader, re-exported for flavours. */
export { codecParametersFromWire };
export type { V1 };
