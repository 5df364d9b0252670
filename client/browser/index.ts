// `c4v-media/client`: the browser flavour of the SDK. Media through mediasoup-client (the
// browser's WebRTC), signalling through the shared core. Bundled as one ESM file with esbuild.
import { Device } from 'mediasoup-client';
import type { types as mc } from 'mediasoup-client';
import type { types as ms } from 'mediasoup';
import { MeetingClient, layerForHeight } from '../core/meeting.js';
import { BrowserE2eeWiring } from './e2ee.js';
import type { AdapterTransport, ConnectOptions, MediaAdapter, Source, TransportHandlers, TransportOptions } from '../core/types.js';

export { MeetingClient, layerForHeight };
export { ClientError } from '../core/signalling.js';
// Issue 12: the web app's texts for the E2EE label and refusals, and the API check.
export { e2eeLabel, e2eeRefusalText, detectTransformApi, E2eeError } from '../e2ee/index.js';
export type * from '../core/types.js';

/** A meeting client whose tracks are browser MediaStreamTracks. */
export type BrowserMeeting = MeetingClient<MediaStreamTrack>;

// Three simulcast layers for the camera (1/4, 1/2 and full resolution), as the README describes.
const CAMERA_SIMULCAST: mc.RtpEncodingParameters[] = [
  { rid: 'r0', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'r1', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'r2', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/** Receive statistics of one remote track, as the browser measures them (inbound-rtp). */
export interface InboundStats {
  consumerId: string;
  kind: 'audio' | 'video';
  packetsReceived: number;
  bytesReceived: number;
  framesDecoded: number;
  frameWidth: number;
  frameHeight: number;
}

class BrowserAdapter implements MediaAdapter<MediaStreamTrack> {
  readonly device = new Device();
  /** Issue 12: the E2EE wiring of an E2EE client (transforms on every sender and receiver). */
  readonly e2ee: BrowserE2eeWiring | undefined;

  constructor(e2ee: BrowserE2eeWiring | undefined) {
    this.e2ee = e2ee;
  }
  /** Live consumers, for inboundStats(). */
  readonly consumers = new Map<string, mc.Consumer>();

  get loaded(): boolean {
    return this.device.loaded;
  }

  async load(routerRtpCapabilities: ms.RtpCapabilities): Promise<void> {
    await this.device.load({ routerRtpCapabilities: routerRtpCapabilities as mc.RtpCapabilities });
  }

  recvRtpCapabilities(): ms.RtpCapabilities {
    return this.device.recvRtpCapabilities as ms.RtpCapabilities;
  }

  createTransport(direction: 'send' | 'recv', options: TransportOptions, h: TransportHandlers): AdapterTransport<MediaStreamTrack> {
    const o = options as unknown as mc.TransportOptions;
    const consumers = this.consumers;
    const e2ee = this.e2ee;
    // createEncodedStreams needs `encodedInsertableStreams` on the peer connection.
    const settings = e2ee ? { ...o, additionalSettings: e2ee.peerConnectionSettings as Partial<RTCConfiguration> } : o;
    const t = direction === 'send' ? this.device.createSendTransport(settings) : this.device.createRecvTransport(settings);
    t.on('connect', ({ dtlsParameters }, ok, fail) => void h.connect(dtlsParameters as ms.DtlsParameters).then(ok, fail));
    t.on('connectionstatechange', (state) => h.stateChange(state));
    if (direction === 'send') {
      t.on('produce', ({ kind, rtpParameters, appData }, ok, fail) =>
        void h.produce({ kind, rtpParameters: rtpParameters as ms.RtpParameters, source: appData.source as Source }).then((id) => ok({ id }), fail),
      );
      t.on('producedata', ({ sctpStreamParameters }, ok, fail) =>
        void h.produceData({ sctpStreamParameters: sctpStreamParameters as ms.SctpStreamParameters }).then((id) => ok({ id }), fail),
      );
    }
    return {
      id: t.id,
      async produce({ track, source, simulcast }) {
        // E2EE: the transform goes on the RTCRtpSender as soon as mediasoup-client creates it,
        // before negotiation, so no frame leaves unencrypted (simulcast encodings unchanged).
        const controller = await e2ee?.ready;
        const p = await t.produce({
          track,
          ...(controller ? { onRtpSender: (sender: RTCRtpSender) => controller.attachSender(sender as never) } : {}),
          ...(source === 'camera' && simulcast ? { encodings: CAMERA_SIMULCAST } : {}),
          ...(track.kind === 'audio' ? { codecOptions: { opusFec: true, opusDtx: true } } : {}),
          stopTracks: false,
          appData: { source },
        });
        return { id: p.id, pause: () => p.pause(), resume: () => p.resume(), close: () => p.close() };
      },
      async produceChat() {
        const d = await t.produceData({ ordered: true, label: 'chat', protocol: 'c4v-chat' });
        return { id: d.id, send: (text: string) => d.send(text), close: () => d.close() };
      },
      async consume({ id, producerId, kind, rtpParameters, participantId }) {
        // E2EE: frames of a participant who encrypts are decrypted (with its per-sender key);
        // a non-E2EE participant's media (an 'optional' meeting, labelled mixed) passes as it is.
        const controller = await e2ee?.ready;
        const from = participantId ?? '';
        const decrypt = controller && from !== '' && e2ee!.encrypts(from);
        const mimeType = rtpParameters.codecs[0]?.mimeType;
        const c = await t.consume({
          id,
          producerId,
          kind,
          rtpParameters: rtpParameters as mc.RtpParameters,
          ...(decrypt ? { onRtpReceiver: (receiver: RTCRtpReceiver) => controller.attachReceiver(receiver as never, from, mimeType) } : {}),
        });
        consumers.set(c.id, c);
        return {
          track: c.track,
          close: () => {
            consumers.delete(c.id);
            c.close();
          },
        };
      },
      async consumeChat({ id, dataProducerId, sctpStreamParameters, label }) {
        const d = await t.consumeData({ id, dataProducerId, sctpStreamParameters: sctpStreamParameters as mc.SctpStreamParameters, label, protocol: 'c4v-chat' });
        return {
          onMessage: (cb: (text: string) => void) =>
            d.on('message', (m: unknown) => cb(typeof m === 'string' ? m : new TextDecoder().decode(m as ArrayBuffer))),
          close: () => d.close(),
        };
      },
      async restartIce(iceParameters) {
        await t.restartIce({ iceParameters: iceParameters as mc.IceParameters });
      },
      close: () => t.close(),
    };
  }
}

const adapters = new WeakMap<BrowserMeeting, BrowserAdapter>();

/** The browser's inbound-rtp statistics of every remote track (packets, decoded frames, size). */
export async function inboundStats(m: BrowserMeeting): Promise<InboundStats[]> {
  const adapter = adapters.get(m);
  if (!adapter) return [];
  const out: InboundStats[] = [];
  for (const c of adapter.consumers.values()) {
    const report = await c.getStats();
    report.forEach((s: Record<string, unknown>) => {
      if (s.type !== 'inbound-rtp') return;
      out.push({
        consumerId: c.id,
        kind: c.kind as 'audio' | 'video',
        packetsReceived: Number(s.packetsReceived ?? 0),
        bytesReceived: Number(s.bytesReceived ?? 0),
        framesDecoded: Number(s.framesDecoded ?? 0),
        frameWidth: Number(s.frameWidth ?? 0),
        frameHeight: Number(s.frameHeight ?? 0),
      });
    });
  }
  return out;
}

/**
 * Joins a meeting from a browser. `url` is the signalling endpoint (`wss://host/signalling`,
 * optionally with `?meeting=<id>`). Resolves once the join is answered: follow `state` from
 * there (waiting room, admitted, ...). Rejects with ClientError for a refused join
 * (WRONG_PASSWORD, MEETING_LOCKED, ...).
 */
export async function connect(url: string, options: ConnectOptions): Promise<BrowserMeeting> {
  // Issue 12: an E2EE client needs an encoded-transform API (E2EE_NOT_SUPPORTED before any join).
  const e2ee = options.e2ee ? new BrowserE2eeWiring() : undefined;
  const adapter = new BrowserAdapter(e2ee);
  const client = new MeetingClient<MediaStreamTrack>(url, options, {
    adapter,
    socketFactory: (u) => new WebSocket(u) as never,
    clientName: 'c4v-client-browser/1',
  });
  adapters.set(client, adapter);
  await client._start();
  // The controller needs the participant id; media set-up waits for it (adapter.produce/consume).
  if (e2ee) await e2ee.start(client as MeetingClient<unknown>);
  return client;
}

/** Captures and publishes the microphone. */
export async function publishMicrophone(m: BrowserMeeting, constraints: MediaTrackConstraints | boolean = true): Promise<MediaStreamTrack> {
  const [track] = (await navigator.mediaDevices.getUserMedia({ audio: constraints })).getAudioTracks();
  await m.publish('microphone', track!);
  return track!;
}

/** Captures and publishes the camera (three simulcast layers unless the meeting turned it off). */
export async function publishCamera(m: BrowserMeeting, constraints: MediaTrackConstraints | boolean = { width: 640, height: 480 }): Promise<MediaStreamTrack> {
  const [track] = (await navigator.mediaDevices.getUserMedia({ video: constraints })).getVideoTracks();
  await m.publish('camera', track!);
  return track!;
}

/** Captures and publishes the screen (getDisplayMedia; a user gesture is needed in most browsers). */
export async function publishScreen(m: BrowserMeeting): Promise<MediaStreamTrack> {
  const [track] = (await navigator.mediaDevices.getDisplayMedia({ video: true })).getVideoTracks();
  track!.addEventListener('ended', () => void m.unpublish('screen-video'));
  await m.publish('screen-video', track!);
  return track!;
}

/**
 * Shows a remote track in a media element and keeps its layer fitted to the element's size:
 * paused while the element is hidden or off screen, the spatial layer chosen from its height.
 * Returns a function that stops watching.
 */
export function attachTrack(m: BrowserMeeting, remote: { consumerId: string; track: MediaStreamTrack; kind: 'audio' | 'video' }, el: HTMLMediaElement): () => void {
  el.srcObject = new MediaStream([remote.track]);
  el.autoplay = true;
  if (el instanceof HTMLVideoElement) el.playsInline = true;
  void el.play().catch(() => undefined);
  if (remote.kind !== 'video') return () => undefined;
  let visible = true;
  const update = (): void => {
    const r = el.getBoundingClientRect();
    void m
      .setVideoSize(remote.consumerId, { width: r.width, height: r.height, visible: visible && el.isConnected && r.height > 0, devicePixelRatio: window.devicePixelRatio })
      .catch(() => undefined);
  };
  const ro = new ResizeObserver(update);
  ro.observe(el);
  const io = new IntersectionObserver((entries) => {
    visible = entries.some((e) => e.isIntersecting);
    update();
  });
  io.observe(el);
  return () => {
    ro.disconnect();
    io.disconnect();
  };
}
