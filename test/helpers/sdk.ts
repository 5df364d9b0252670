// Helpers for tests that drive meetings through the SDK's Node flavour (`c4v-media/client/node`):
// typed event waits, a live RTP source on a werift track, and received-packet checks.
import { RtpHeader, RtpPacket } from 'werift';
import type { MediaStreamTrack, NodeMeeting, RemoteTrack } from '../../client/node/index.js';
import type { MeetingClientEvents } from '../../client/core/types.js';
import { within } from './util.js';
import { vp8Payload } from './weriftPeer.js';

type Events = MeetingClientEvents<MediaStreamTrack>;

/** Resolves with the arguments of the first `event` for which `pred` holds. */
export function next<K extends keyof Events>(m: NodeMeeting, event: K, pred: (...args: Events[K]) => boolean = () => true, ms = 20_000): Promise<Events[K]> {
  return within(
    new Promise((resolve) => {
      const on = (...args: Events[K]): void => {
        if (!pred(...args)) return;
        m.off(event, on as never);
        resolve(args);
      };
      m.on(event, on as never);
    }),
    ms,
    `${String(event)} event`,
  );
}

/** Waits until the client is in `state` (now or later). */
export async function inState(m: NodeMeeting, state: string, ms = 20_000): Promise<void> {
  if (m.state === state) return;
  await next(m, 'state', (s) => s === state, ms);
}

/** A live source: one RTP packet every 20 ms on a local werift track, payloads tagged `tag:n`. */
export function pump(track: MediaStreamTrack, tag: string): () => void {
  let n = 0;
  const video = track.kind === 'video';
  const timer = setInterval(() => {
    n++;
    const body = Buffer.from(`${tag}:${n}`.padEnd(video ? 600 : 100, '.'));
    // Key frames only, so a fresh consumer forwards at once; SSRC and payload type are werift's.
    const payload = video ? vp8Payload(body, true) : body;
    track.writeRtp(new RtpPacket(new RtpHeader({ sequenceNumber: n & 0xffff, timestamp: (n * (video ? 3000 : 960)) >>> 0, marker: video }), payload));
  }, 20);
  return () => clearInterval(timer);
}

/** Resolves once `count` packets whose payload carries `tag` arrive on a remote track. */
export function packets(remote: RemoteTrack<MediaStreamTrack>, tag: string, count = 3, ms = 20_000): Promise<void> {
  const needle = Buffer.from(`${tag}:`);
  let got = 0;
  return within(
    new Promise<void>((resolve) => {
      const sub = remote.track.onReceiveRtp.subscribe((rtp) => {
        if (!rtp.payload.includes(needle)) return;
        if (++got < count) return;
        sub.unSubscribe();
        resolve();
      });
    }),
    ms,
    `${count} packets tagged ${tag} on ${remote.source} of ${remote.participantId}`,
  );
}

/** The remote track of `participantId`'s `source` (optionally of one producer), now or once it arrives. */
export async function trackOf(m: NodeMeeting, participantId: string, source: string, producerId?: string, ms = 20_000): Promise<RemoteTrack<MediaStreamTrack>> {
  const fits = (t: RemoteTrack<MediaStreamTrack>): boolean => t.participantId === participantId && t.source === source && (producerId === undefined || t.producerId === producerId);
  const have = m.tracks.find(fits);
  if (have) return have;
  const [t] = await next(m, 'track', fits, ms);
  return t;
}
