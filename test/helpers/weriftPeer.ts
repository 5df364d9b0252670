// Real WebRTC peers (werift) that talk to mediasoup WebRtcTransports. There is no mediasoup-client
// for Node, so the SDP for the mediasoup side is written here from the transport's ICE, DTLS and
// SCTP parameters (the approach of the verified reference recipe). Used by tests and benchmarks.
import type { types as ms } from 'mediasoup';
import {
  MediaStreamTrack,
  RTCPeerConnection,
  RTCRtpCodecParameters,
  RtpHeader,
  RtpPacket,
  type RTCDataChannel,
} from 'werift';

/** What a mediasoup WebRtcTransport tells the client (as the library or the gateway hands it out). */
export interface ServerTransportInfo {
  iceParameters: { usernameFragment: string; password: string; iceLite?: boolean };
  iceCandidates: Array<{
    foundation: string;
    priority: number;
    address?: string;
    ip?: string;
    protocol: string;
    port: number;
    type?: string;
    tcpType?: string;
  }>;
  dtlsParameters: { role?: string; fingerprints: Array<{ algorithm: string; value: string }> };
  sctpParameters?: { port: number; OS: number; MIS: number; maxMessageSize: number } | undefined;
}

/** The DTLS parameters the client gives to transport.connect(). */
export interface ClientDtlsParameters {
  role: 'client' | 'server';
  fingerprints: Array<{ algorithm: 'sha-256'; value: string }>;
}

export type MediaKind = 'audio' | 'video';

interface CodecInfo {
  mimeType: string;
  clockRate: number;
  channels?: number;
}

const OPUS: CodecInfo = { mimeType: 'audio/opus', clockRate: 48000, channels: 2 };
const VP8: CodecInfo = { mimeType: 'video/VP8', clockRate: 90000 };

/** Router media codecs matching what the test peers send. */
export const TEST_MEDIA_CODECS = [
  { kind: 'audio' as const, mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video' as const, mimeType: 'video/VP8', clockRate: 90000 },
];

function peerConfig() {
  return {
    codecs: {
      audio: [new RTCRtpCodecParameters({ mimeType: OPUS.mimeType, clockRate: OPUS.clockRate, channels: 2 })],
      video: [new RTCRtpCodecParameters({ mimeType: VP8.mimeType, clockRate: VP8.clockRate })],
    },
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceUseIpv6: false,
    iceUseLinkLocalAddress: false,
  };
}

function sdpMatch(sdp: string, re: RegExp): string {
  const m = sdp.match(re);
  if (!m || m[1] === undefined) throw new Error(`SDP has no ${re}`);
  return m[1];
}

/** Splits an SDP into its session part and one string per m-section. */
function sections(sdp: string): string[] {
  return sdp.split(/\r\n(?=m=)/);
}

interface RemoteMediaSection {
  kind: MediaKind;
  mid: string;
  direction: 'sendonly' | 'recvonly' | 'inactive';
  payloadType: number;
  codec: CodecInfo;
  ssrc?: number;
  cname?: string;
}

/** Writes the mediasoup side's SDP (ICE-lite, BUNDLE) for the given m-sections. */
function serverSdp(
  transport: ServerTransportInfo,
  media: RemoteMediaSection[],
  application: { mid: string } | undefined,
  setup: 'actpass' | 'passive',
  order: string[],
): string {
  const { iceParameters: ice, iceCandidates, dtlsParameters, sctpParameters } = transport;
  const fp = dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256');
  if (!fp) throw new Error('server transport has no sha-256 fingerprint');
  const common = (): string[] => {
    const l = [
      'c=IN IP4 127.0.0.1',
      `a=ice-ufrag:${ice.usernameFragment}`,
      `a=ice-pwd:${ice.password}`,
      `a=fingerprint:sha-256 ${fp.value}`,
      `a=setup:${setup}`,
    ];
    for (const c of iceCandidates) {
      l.push(
        `a=candidate:${c.foundation} 1 ${c.protocol} ${c.priority} ${c.address ?? c.ip} ${c.port} typ host` +
          (c.protocol === 'tcp' ? ` tcptype ${c.tcpType}` : ''),
      );
    }
    l.push('a=end-of-candidates');
    return l;
  };
  const byMid = new Map<string, string[]>();
  for (const m of media) {
    const codec = m.codec;
    const [, name] = codec.mimeType.split('/');
    const l = [
      `m=${m.kind} 7 UDP/TLS/RTP/SAVPF ${m.payloadType}`,
      ...common(),
      `a=mid:${m.mid}`,
      `a=${m.direction}`,
      'a=rtcp-mux',
      'a=rtcp-rsize',
      `a=rtpmap:${m.payloadType} ${name}/${codec.clockRate}${codec.channels ? `/${codec.channels}` : ''}`,
    ];
    if (m.ssrc !== undefined) l.push(`a=ssrc:${m.ssrc} cname:${m.cname ?? 'c4v'}`, `a=msid:c4v-${m.mid} c4v-track-${m.mid}`);
    byMid.set(m.mid, l);
  }
  if (application && sctpParameters) {
    byMid.set(application.mid, [
      'm=application 7 UDP/DTLS/SCTP webrtc-datachannel',
      ...common(),
      `a=mid:${application.mid}`,
      `a=sctp-port:${sctpParameters.port}`,
      `a=max-message-size:${sctpParameters.maxMessageSize}`,
    ]);
  }
  const mids = order.filter((mid) => byMid.has(mid));
  const lines = [
    'v=0',
    `o=mediasoup ${Date.now()} 1 IN IP4 0.0.0.0`,
    's=-',
    't=0 0',
    `a=group:BUNDLE ${mids.join(' ')}`,
    'a=ice-lite',
    'a=msid-semantic: WMS *',
  ];
  for (const mid of mids) lines.push(...byMid.get(mid)!);
  return lines.join('\r\n') + '\r\n';
}

/** mediasoup producer options for one track the publisher sends. */
export interface ProduceParameters {
  kind: MediaKind;
  rtpParameters: ms.RtpParameters & { mid: string; encodings: Array<{ ssrc: number }> };
}

/** Builds a VP8 RTP payload: a payload descriptor (S=1, partition 0) and a key-frame header. */
export function vp8Payload(body: Buffer, keyFrame = true): Buffer {
  // The SFU looks at the VP8 descriptor (it forwards a fresh consumer only from a key frame), so
  // the first bytes must be a valid descriptor and frame tag; the rest is ours to compare.
  const header = keyFrame
    ? Buffer.from([0x10, 0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01])
    : Buffer.from([0x10, 0x51, 0x01, 0x00]);
  return Buffer.concat([header, body]);
}

/**
 * A werift peer that publishes tracks (and optionally a chat data channel) to a mediasoup
 * WebRtcTransport. The peer offers; the mediasoup side answers.
 */
export class WeriftPublisher {
  readonly pc: RTCPeerConnection;
  readonly #tracks = new Map<string, { track: MediaStreamTrack; kind: MediaKind; params: ProduceParameters; seq: number; ts: number }>();
  #dataChannel: RTCDataChannel | undefined;
  #offer = '';
  #order: string[] = [];

  /**
   * @param tracks names and kinds of the tracks to send, e.g. [{ name: 'mic', kind: 'audio' }]
   * @param chatStreamId SCTP stream id of a negotiated chat channel, or undefined for none
   */
  static async create(
    tracks: Array<{ name: string; kind: MediaKind }>,
    chatStreamId?: number,
  ): Promise<WeriftPublisher> {
    const p = new WeriftPublisher();
    await p.#init(tracks, chatStreamId);
    return p;
  }

  private constructor() {
    this.pc = new RTCPeerConnection(peerConfig());
  }

  async #init(tracks: Array<{ name: string; kind: MediaKind }>, chatStreamId?: number): Promise<void> {
    const transceivers = tracks.map(({ name, kind }) => {
      const track = new MediaStreamTrack({ kind });
      return { name, kind, track, transceiver: this.pc.addTransceiver(track, { direction: 'sendonly' }) };
    });
    if (chatStreamId !== undefined) {
      this.#dataChannel = this.pc.createDataChannel('chat', { negotiated: true, id: chatStreamId, ordered: true });
    }
    await this.pc.setLocalDescription(await this.pc.createOffer());
    this.#offer = this.pc.localDescription!.sdp;
    const secs = sections(this.#offer).slice(1);
    this.#order = secs.map((s) => sdpMatch(s, /a=mid:(\S+)/));
    transceivers.forEach(({ name, kind, track }, i) => {
      const sec = secs[i]!;
      const codec = kind === 'audio' ? OPUS : VP8;
      const name2 = codec.mimeType.split('/')[1]!;
      const pt = Number(sdpMatch(sec, new RegExp(`a=rtpmap:(\\d+) ${name2}/${codec.clockRate}`, 'i')));
      const ssrc = Number(sdpMatch(sec, /a=ssrc:(\d+) /));
      const cname = sdpMatch(sec, /a=ssrc:\d+ cname:(\S+)/);
      const params: ProduceParameters = {
        kind,
        rtpParameters: {
          mid: sdpMatch(sec, /a=mid:(\S+)/),
          codecs: [
            {
              mimeType: codec.mimeType,
              payloadType: pt,
              clockRate: codec.clockRate,
              ...(codec.channels ? { channels: codec.channels } : {}),
              parameters: {},
              rtcpFeedback: [],
            },
          ],
          headerExtensions: [],
          encodings: [{ ssrc }],
          rtcp: { cname, reducedSize: true },
        },
      };
      this.#tracks.set(name, { track, kind, params, seq: 0, ts: 0 });
    });
  }

  /** The client's DTLS parameters for transport.connect(): werift is the DTLS client. */
  get dtlsParameters(): ClientDtlsParameters {
    return { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: sdpMatch(this.#offer, /a=fingerprint:sha-256 (\S+)/) }] };
  }

  /** Producer options for the named track. */
  produceParameters(name: string): ProduceParameters {
    const t = this.#tracks.get(name);
    if (!t) throw new Error(`no track ${name}`);
    return t.params;
  }

  /** The chat channel's SCTP stream parameters for transport.produceData(). */
  get sctpStreamParameters(): { streamId: number; ordered: boolean } {
    if (!this.#dataChannel) throw new Error('publisher has no chat channel');
    return { streamId: this.#dataChannel.id, ordered: true };
  }

  /** Applies the mediasoup side's answer. Call after transport.connect() and produce(). */
  async connect(transport: ServerTransportInfo): Promise<void> {
    const media: RemoteMediaSection[] = [...this.#tracks.values()].map((t) => ({
      kind: t.kind,
      mid: t.params.rtpParameters.mid,
      direction: 'recvonly',
      payloadType: t.params.rtpParameters.codecs[0]!.payloadType,
      codec: t.kind === 'audio' ? OPUS : VP8,
    }));
    const app = this.#dataChannel ? { mid: this.#order.find((m) => !media.some((x) => x.mid === m))! } : undefined;
    await this.pc.setRemoteDescription({ type: 'answer', sdp: serverSdp(transport, media, app, 'passive', this.#order) });
  }

  /** Sends one RTP packet with `payload` on the named track. */
  send(name: string, payload: Buffer, marker = false): void {
    const t = this.#tracks.get(name);
    if (!t) throw new Error(`no track ${name}`);
    const p = t.params.rtpParameters;
    t.seq = (t.seq + 1) & 0xffff;
    t.ts = (t.ts + (t.kind === 'audio' ? 960 : 3000)) >>> 0;
    t.track.writeRtp(
      new RtpPacket(
        new RtpHeader({
          payloadType: p.codecs[0]!.payloadType,
          sequenceNumber: t.seq,
          timestamp: t.ts,
          ssrc: p.encodings[0]!.ssrc,
          marker,
        }),
        payload,
      ),
    );
  }

  /** Resolves once the chat channel is open. */
  async chatOpen(timeoutMs = 10_000): Promise<void> {
    const dc = this.#dataChannel;
    if (!dc) throw new Error('publisher has no chat channel');
    await waitDataChannelOpen(dc, timeoutMs);
  }

  sendChat(text: string): void {
    if (!this.#dataChannel) throw new Error('publisher has no chat channel');
    this.#dataChannel.send(text);
  }

  async close(): Promise<void> {
    await this.pc.close();
  }
}

function waitDataChannelOpen(dc: RTCDataChannel, timeoutMs: number): Promise<void> {
  if (dc.readyState === 'open') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`data channel ${dc.id} not open after ${timeoutMs} ms (${dc.readyState})`)), timeoutMs);
    const sub = dc.stateChanged.subscribe((s) => {
      if (s === 'open') {
        clearTimeout(timer);
        sub.unSubscribe();
        resolve();
      }
    });
  });
}

/** A consumer as the server hands it to the client (mediasoup Consumer fields). */
export interface ConsumerInfo {
  id: string;
  kind: MediaKind;
  rtpParameters: {
    mid?: string | undefined;
    codecs: Array<{ mimeType: string; payloadType: number; clockRate: number; channels?: number | undefined }>;
    encodings?: Array<{ ssrc?: number | undefined }> | undefined;
    rtcp?: { cname?: string | undefined } | undefined;
  };
}

export interface ReceivedPacket {
  consumerId: string;
  kind: MediaKind;
  ssrc: number;
  sequenceNumber: number;
  payload: Buffer;
  at: bigint;
}

/**
 * A werift peer that receives from a mediasoup WebRtcTransport. The mediasoup side offers (one
 * m-section per consumer, plus the SCTP association); werift answers. Consumers can be added later
 * with a new offer (renegotiation).
 */
export class WeriftSubscriber {
  readonly pc: RTCPeerConnection;
  readonly packets: ReceivedPacket[] = [];
  readonly chat: Array<{ streamId: number; text: string }> = [];
  readonly #consumers: ConsumerInfo[] = [];
  readonly #waiters = new Set<() => void>();
  #transport: ServerTransportInfo | undefined;
  #withSctp = false;
  #answer = '';

  constructor() {
    this.pc = new RTCPeerConnection(peerConfig());
    this.pc.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp) => {
        const c = this.#consumers.find((x) => x.rtpParameters.encodings?.[0]?.ssrc === rtp.header.ssrc);
        this.packets.push({
          consumerId: c?.id ?? '',
          kind: (c?.kind ?? track.kind) as MediaKind,
          ssrc: rtp.header.ssrc,
          sequenceNumber: rtp.header.sequenceNumber,
          payload: Buffer.from(rtp.payload),
          at: process.hrtime.bigint(),
        });
        this.#notify();
      });
    });
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /**
   * First negotiation: applies the server's offer for `consumers` (and SCTP when `withSctp`) and
   * returns the client's DTLS parameters for transport.connect().
   */
  async connect(transport: ServerTransportInfo, consumers: ConsumerInfo[], withSctp: boolean): Promise<ClientDtlsParameters> {
    this.#transport = transport;
    this.#withSctp = withSctp;
    this.#consumers.push(...consumers);
    await this.#negotiate();
    const setup = sdpMatch(this.#answer, /a=setup:(\S+)/);
    return {
      role: setup === 'active' ? 'client' : 'server',
      fingerprints: [{ algorithm: 'sha-256', value: sdpMatch(this.#answer, /a=fingerprint:sha-256 (\S+)/) }],
    };
  }

  /** Renegotiates to receive more consumers on the same transport. */
  async addConsumers(consumers: ConsumerInfo[]): Promise<void> {
    this.#consumers.push(...consumers);
    await this.#negotiate();
  }

  async #negotiate(): Promise<void> {
    const transport = this.#transport!;
    const media: RemoteMediaSection[] = this.#consumers.map((c, i) => {
      const codec = c.rtpParameters.codecs[0]!;
      return {
        kind: c.kind,
        mid: c.rtpParameters.mid ?? String(i),
        direction: 'sendonly',
        payloadType: codec.payloadType,
        codec: { mimeType: codec.mimeType, clockRate: codec.clockRate, ...(codec.channels ? { channels: codec.channels } : {}) },
        ssrc: c.rtpParameters.encodings?.[0]?.ssrc ?? 0,
        cname: c.rtpParameters.rtcp?.cname ?? 'c4v',
      };
    });
    const order = media.map((m) => m.mid);
    const app = this.#withSctp ? { mid: 'datachannel' } : undefined;
    if (app) order.push(app.mid);
    await this.pc.setRemoteDescription({ type: 'offer', sdp: serverSdp(transport, media, app, 'actpass', order) });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this.#answer = this.pc.localDescription!.sdp;
  }

  /** Opens the negotiated chat channel the server's DataConsumer sends on. */
  async openChat(streamId: number, timeoutMs = 10_000): Promise<void> {
    const dc = this.pc.createDataChannel(`chat-${streamId}`, { negotiated: true, id: streamId, ordered: true });
    dc.onMessage.subscribe((msg) => {
      this.chat.push({ streamId, text: typeof msg === 'string' ? msg : msg.toString('utf8') });
      this.#notify();
    });
    await waitDataChannelOpen(dc, timeoutMs);
  }

  /** Resolves when `predicate` holds, re-checked on every packet or chat message. */
  waitFor(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(check);
    });
  }

  packetsOf(consumerId: string): ReceivedPacket[] {
    return this.packets.filter((p) => p.consumerId === consumerId);
  }

  async close(): Promise<void> {
    await this.pc.close();
  }
}
