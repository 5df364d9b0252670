// `c4v-media/client/node`: the Node flavour of the SDK, for integrators' CI and load tests.
// Signalling is the shared core (client/core/); media is werift, one RTCPeerConnection per
// mediasoup transport, with the server side's SDP written from the transport parameters
// (./sdp.ts). Tracks are werift MediaStreamTracks: write RTP into a local one to publish
// (werift sets the SSRC and payload type), read `onReceiveRtp` of a remote one to receive.
import type { types as ms } from 'mediasoup';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, type RTCDataChannel } from 'werift';
import WebSocket from 'ws';
import { MeetingClient } from '../core/meeting.js';
import type { AdapterTransport, ConnectOptions, MediaAdapter, Source, TransportHandlers, TransportOptions } from '../core/types.js';
import { sdpMatch, sdpSections, serverSdp, type ServerMediaSection } from './sdp.js';

export { MeetingClient };
export { ClientError } from '../core/signalling.js';
export type * from '../core/types.js';
export { MediaStreamTrack };

/** A meeting client whose tracks are werift MediaStreamTracks. */
export type NodeMeeting = MeetingClient<MediaStreamTrack>;

/** Options of the Node flavour's connect(), on top of the shared ConnectOptions. */
export interface NodeConnectOptions extends ConnectOptions {
  /** Headers of the WebSocket upgrade (an `Origin` where the gateway checks it). */
  headers?: Record<string, string>;
}

// What this flavour sends and receives: opus and VP8, the codecs werift packetizes and
// depacketizes without help. Other codecs of the router are left out of the capabilities, so
// the server never hands this client a consumer it cannot describe.
const MIMES = new Set(['audio/opus', 'video/vp8']);

function weriftConfig() {
  return {
    codecs: {
      audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 })],
      video: [new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000 })],
    },
    // The SFU listens on loopback in tests and on a public address in production; werift must
    // offer a candidate that can reach either.
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceUseIpv6: false,
    iceUseLinkLocalAddress: false,
  };
}

/** Runs negotiations of one peer connection one at a time (werift keeps one pending description). */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  run<R>(fn: () => Promise<R>): Promise<R> {
    const p = this.#tail.then(fn);
    this.#tail = p.catch(() => undefined);
    return p;
  }
}

function waitOpen(dc: RTCDataChannel, timeoutMs = 15_000): Promise<void> {
  if (dc.readyState === 'open') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.unSubscribe();
      reject(new Error(`data channel ${dc.id} not open after ${timeoutMs} ms (${dc.readyState})`));
    }, timeoutMs);
    const sub = dc.stateChanged.subscribe((s) => {
      if (s !== 'open') return;
      clearTimeout(timer);
      sub.unSubscribe();
      resolve();
    });
  });
}

function dtlsOf(sdp: string, role: 'client' | 'server'): ms.DtlsParameters {
  return { role, fingerprints: [{ algorithm: 'sha-256', value: sdpMatch(sdp, /a=fingerprint:sha-256 (\S+)/) }] };
}

function watchState(pc: RTCPeerConnection, h: TransportHandlers): void {
  pc.connectionStateChange.subscribe((s) => h.stateChange(s));
}

/** The send side: werift offers one m-section per track (and the chat channel); the server answers. */
function sendTransport(o: TransportOptions, h: TransportHandlers, pcs: Map<string, PeerOf>): AdapterTransport<MediaStreamTrack> {
  const pc = new RTCPeerConnection(weriftConfig());
  pcs.set(o.id, { direction: 'send', pc });
  watchState(pc, h);
  const serial = new Serial();
  const server = { ...o };
  const sections: ServerMediaSection[] = [];
  let connected = false;
  let offer = '';
  let order: string[] = [];
  // One negotiated SCTP channel for chat, present from the first offer on so that the
  // association comes up with the transport.
  const chat = o.sctpParameters ? pc.createDataChannel('chat', { negotiated: true, id: 1, ordered: true }) : undefined;

  async function offerNow(iceRestart = false): Promise<void> {
    await pc.setLocalDescription(await pc.createOffer(iceRestart ? { iceRestart: true } : undefined));
    offer = pc.localDescription!.sdp;
    order = sdpSections(offer).slice(1).map((s) => sdpMatch(s, /a=mid:(\S+)/));
    if (!connected) {
      connected = true;
      await h.connect(dtlsOf(offer, 'client'));
    }
  }
  async function answerNow(): Promise<void> {
    const app = chat ? order.find((mid) => !sections.some((s) => s.mid === mid)) : undefined;
    await pc.setRemoteDescription({ type: 'answer', sdp: serverSdp(server, sections, app ? { mid: app } : undefined, 'passive', order) });
  }

  return {
    id: o.id,
    produce: ({ track, source }) =>
      serial.run(async () => {
        const transceiver = pc.addTransceiver(track, { direction: 'sendonly' });
        await offerNow();
        const mid = transceiver.mid!;
        const sec = sdpSections(offer).find((s) => s.includes(`a=mid:${mid}\r\n`))!;
        const kind = track.kind as 'audio' | 'video';
        const [mimeType, clockRate, channels] = kind === 'audio' ? ['audio/opus', 48000, 2] : ['video/VP8', 90000, undefined];
        const name = mimeType.split('/')[1]!;
        const payloadType = Number(sdpMatch(sec, new RegExp(`a=rtpmap:(\\d+) ${name}/${clockRate}`, 'i')));
        const codec: ms.RtpCodecParameters = {
          mimeType: mimeType as ms.RtpCodecParameters['mimeType'],
          payloadType,
          clockRate,
          ...(channels ? { channels } : {}),
          parameters: {},
          rtcpFeedback: [],
        };
        const rtpParameters: ms.RtpParameters = {
          mid,
          codecs: [codec],
          headerExtensions: [],
          encodings: [{ ssrc: Number(sdpMatch(sec, /a=ssrc:(\d+) /)) }],
          rtcp: { cname: sdpMatch(sec, /a=ssrc:\d+ cname:(\S+)/), reducedSize: true },
        };
        let id: string;
        try {
          id = await h.produce({ kind, rtpParameters, source: source as Source });
        } catch (error) {
          // Refused: the m-section stays, inactive, so the next offer and answer still agree.
          transceiver.setDirection('inactive');
          sections.push({ kind, mid, direction: 'inactive', codec });
          await answerNow();
          throw error;
        }
        sections.push({ kind, mid, direction: 'recvonly', codec });
        await answerNow();
        return {
          id,
          // Muting: the server pauses the producer (the core asks it); werift keeps sending,
          // which the SFU drops, as a browser's paused encoder would send nothing.
          pause: () => undefined,
          resume: () => undefined,
          close: () => {
            transceiver.setDirection('inactive');
          },
        };
      }),
    produceChat: () =>
      serial.run(async () => {
        if (!chat) throw new Error('the server offered no SCTP on this transport');
        if (!connected) {
          await offerNow();
          await answerNow();
        }
        const id = await h.produceData({ sctpStreamParameters: { streamId: chat.id, ordered: true } });
        const opened = waitOpen(chat);
        opened.catch(() => undefined);
        return {
          id,
          send: (text: string) => {
            // Sent once the association is up (a browser's channel buffers the same way).
            if (chat.readyState === 'open') chat.send(text);
            else void opened.then(() => chat.send(text));
          },
          close: () => chat.close(),
        };
      }),
    consume: () => Promise.reject(new Error('consume on a send transport')),
    consumeChat: () => Promise.reject(new Error('consumeChat on a send transport')),
    restartIce: (iceParameters) =>
      serial.run(async () => {
        server.iceParameters = iceParameters;
        await offerNow(true);
        await answerNow();
      }),
    close: () => {
      pcs.delete(o.id);
      void pc.close();
    },
  };
}

interface RecvConsumer {
  id: string;
  ssrc: number;
  track: MediaStreamTrack;
}

/** The receive side: the server offers one m-section per consumer (and SCTP); werift answers. */
function recvTransport(o: TransportOptions, h: TransportHandlers, pcs: Map<string, PeerOf>): AdapterTransport<MediaStreamTrack> {
  const pc = new RTCPeerConnection(weriftConfig());
  pcs.set(o.id, { direction: 'recv', pc });
  watchState(pc, h);
  const serial = new Serial();
  const server = { ...o };
  const sections: ServerMediaSection[] = [];
  const bySsrc = new Map<number, RecvConsumer>();
  let connected = false;
  // werift makes one remote track per m-section; each packet goes on to the consumer's own
  // track (the one handed to the application), looked up by the SSRC the server sends with.
  pc.onTrack.subscribe((t) => {
    t.onReceiveRtp.subscribe((rtp, ext) => bySsrc.get(rtp.header.ssrc)?.track.onReceiveRtp.execute(rtp, ext));
  });

  async function negotiate(iceRestart = false): Promise<void> {
    const order = sections.map((s) => s.mid);
    const app = o.sctpParameters ? { mid: 'datachannel' } : undefined;
    if (app) order.push(app.mid);
    if (iceRestart) pc.restartIce();
    await pc.setRemoteDescription({ type: 'offer', sdp: serverSdp(server, sections, app, 'actpass', order) });
    await pc.setLocalDescription(await pc.createAnswer());
    if (!connected) {
      connected = true;
      const answer = pc.localDescription!.sdp;
      await h.connect(dtlsOf(answer, sdpMatch(answer, /a=setup:(\S+)/) === 'active' ? 'client' : 'server'));
    }
  }

  return {
    id: o.id,
    produce: () => Promise.reject(new Error('produce on a receive transport')),
    produceChat: () => Promise.reject(new Error('produceChat on a receive transport')),
    consume: ({ id, kind, rtpParameters }) =>
      serial.run(async () => {
        const codec = rtpParameters.codecs.find((c) => MIMES.has(c.mimeType.toLowerCase()));
        if (!codec) throw new Error(`consumer ${id}: no codec this client receives (${rtpParameters.codecs.map((c) => c.mimeType).join(', ')})`);
        const ssrc = rtpParameters.encodings?.[0]?.ssrc ?? 0;
        const mid = rtpParameters.mid ?? String(sections.length);
        sections.push({ kind, mid, direction: 'sendonly', codec, ssrc, cname: rtpParameters.rtcp?.cname });
        const c: RecvConsumer = { id, ssrc, track: new MediaStreamTrack({ kind, remote: true, ssrc }) };
        bySsrc.set(ssrc, c);
        await negotiate();
        return {
          track: c.track,
          close: () => {
            // The server closed or we dropped it: no more packets to the application. The
            // m-section stays (mediasoup never reuses a mid on a transport).
            bySsrc.delete(ssrc);
            c.track.stop();
          },
        };
      }),
    consumeChat: ({ sctpStreamParameters }) =>
      serial.run(async () => {
        if (!o.sctpParameters) throw new Error('the server offered no SCTP on this transport');
        if (!connected) await negotiate();
        const dc = pc.createDataChannel(`chat-${sctpStreamParameters.streamId}`, { negotiated: true, id: sctpStreamParameters.streamId, ordered: true });
        return {
          onMessage: (cb: (text: string) => void) => dc.onMessage.subscribe((m) => cb(typeof m === 'string' ? m : m.toString('utf8'))),
          close: () => dc.close(),
        };
      }),
    restartIce: (iceParameters) =>
      serial.run(async () => {
        server.iceParameters = iceParameters;
        await negotiate(true);
      }),
    close: () => {
      pcs.delete(o.id);
      void pc.close();
    },
  };
}

interface PeerOf {
  direction: 'send' | 'recv';
  pc: RTCPeerConnection;
}

class NodeAdapter implements MediaAdapter<MediaStreamTrack> {
  #caps: ms.RtpCapabilities | undefined;
  /** The live peer connections by transport id, for transportStats(). */
  readonly pcs = new Map<string, PeerOf>();

  get loaded(): boolean {
    return this.#caps !== undefined;
  }

  async load(router: ms.RtpCapabilities): Promise<void> {
    // What werift receives: opus and VP8 of the router, no RTX, no header extensions.
    this.#caps = {
      codecs: (router.codecs ?? []).filter((c) => MIMES.has(c.mimeType.toLowerCase())).map((c) => ({ ...c, rtcpFeedback: [] })),
      headerExtensions: [],
    };
  }

  recvRtpCapabilities(): ms.RtpCapabilities {
    if (!this.#caps) throw new Error('not loaded');
    return this.#caps;
  }

  createTransport(direction: 'send' | 'recv', options: TransportOptions, h: TransportHandlers): AdapterTransport<MediaStreamTrack> {
    return direction === 'send' ? sendTransport(options, h, this.pcs) : recvTransport(options, h, this.pcs);
  }
}

/**
 * Joins a meeting from Node. `url` is the signalling endpoint (`ws://host:port/signalling`,
 * optionally with `?meeting=<id>`). Resolves once the join is answered: follow `state` from
 * there (waiting room, admitted, ...). Rejects with ClientError for a refused join
 * (WRONG_PASSWORD, MEETING_LOCKED, ...). The same events and methods as the browser flavour;
 * the camera is published as one VP8 stream (werift sends no simulcast).
 */
export async function connect(url: string, options: NodeConnectOptions): Promise<NodeMeeting> {
  const { headers, ...rest } = options;
  const adapter = new NodeAdapter();
  const client = new MeetingClient<MediaStreamTrack>(url, rest, {
    adapter,
    socketFactory: (u) => new WebSocket(u, headers ? { headers } : undefined) as never,
    clientName: 'c4v-client-node/1',
  });
  adapters.set(client, adapter);
  await client._start();
  return client;
}

/** What werift says about one of the client's transports. */
export interface NodeTransportStats {
  transportId: string;
  direction: 'send' | 'recv';
  /** The peer connection's state ('new', 'connecting', 'connected', 'failed', ...). */
  connectionState: string;
  /** ICE restarts werift has done on it. */
  iceRestarts: number;
  /** This side's current ICE username fragment (it changes with an ICE restart). */
  localUsernameFragment: string;
  packetsSent: number;
  packetsReceived: number;
}

const adapters = new WeakMap<NodeMeeting, NodeAdapter>();

/** The state and counters of each live transport of a Node meeting client. */
export async function transportStats(m: NodeMeeting): Promise<NodeTransportStats[]> {
  const adapter = adapters.get(m);
  if (!adapter) return [];
  const out: NodeTransportStats[] = [];
  for (const [transportId, { direction, pc }] of adapter.pcs) {
    const report = await pc.getStats();
    let t: Record<string, unknown> | undefined;
    report.forEach((s: unknown) => {
      const r = s as Record<string, unknown>;
      if (r.type === 'transport' && !t) t = r;
    });
    out.push({
      transportId,
      direction,
      connectionState: pc.connectionState,
      iceRestarts: Number(t?.iceRestarts ?? 0),
      localUsernameFragment: String(t?.iceLocalUsernameFragment ?? ''),
      packetsSent: Number(t?.packetsSent ?? 0),
      packetsReceived: Number(t?.packetsReceived ?? 0),
    });
  }
  return out;
}

/** A fresh local track to publish: write RTP packets into it with `track.writeRtp(packet)`. */
export function localTrack(kind: 'audio' | 'video'): MediaStreamTrack {
  return new MediaStreamTrack({ kind });
}
