// Bench page (SDK path): joins with the SDK and reports the time from the WebSocket opening to
// the first decoded frame of the first remote video.
import { connect } from '../../client/browser/index.js';

const q = new URLSearchParams(location.search);
const out = window as unknown as { result?: number; failure?: string };
void (async () => {
  try {
    const m = await connect(`ws://${location.host}/signalling`, { meetingId: q.get('meeting')!, displayName: 'Bench', chat: false });
    m.on('track', (t) => {
      if (t.kind !== 'video' || out.result !== undefined) return;
      const v = document.createElement('video');
      v.muted = true;
      v.autoplay = true;
      v.srcObject = new MediaStream([t.track]);
      document.body.append(v);
      v.requestVideoFrameCallback(() => {
        out.result = performance.now() - m.timings.socketOpenedAt;
      });
    });
  } catch (error) {
    out.failure = String(error);
  }
})();
