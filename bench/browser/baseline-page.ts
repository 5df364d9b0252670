// Bench page (baseline): bare mediasoup-client over a minimal JSON WebSocket protocol, the same
// steps as the SDK (capabilities, receive transport, consume audio and video, resume), timed from
// the WebSocket opening to the first decoded video frame.
import { Device } from 'mediasoup-client';
import type { types as mc } from 'mediasoup-client';

const out = window as unknown as { result?: number; failure?: string };
const ws = new WebSocket(`ws://${location.hostname}:${new URLSearchParams(location.search).get('port')}/`);
let t0 = 0;
let next = 1;
const pending = new Map<number, (d: unknown) => void>();
const call = <T>(method: string, data: unknown = {}): Promise<T> =>
  new Promise((resolve) => {
    const id = next++;
    pending.set(id, resolve as (d: unknown) => void);
    ws.send(JSON.stringify({ id, method, data }));
  });
ws.onmessage = (ev) => {
  const m = JSON.parse(String(ev.data)) as { id: number; data: unknown };
  pending.get(m.id)?.(m.data);
  pending.delete(m.id);
};
ws.onopen = () => {
  t0 = performance.now();
  void (async () => {
    try {
      const device = new Device();
      const [caps, info] = await Promise.all([call<mc.RtpCapabilities>('caps'), call<mc.TransportOptions>('transport')]);
      await device.load({ routerRtpCapabilities: caps });
      const t = device.createRecvTransport(info);
      t.on('connect', ({ dtlsParameters }, ok) => void call('connect', { dtlsParameters }).then(() => ok()));
      const consumers = await call<Array<{ id: string; producerId: string; kind: 'audio' | 'video'; rtpParameters: mc.RtpParameters }>>('consume', {
        rtpCapabilities: device.recvRtpCapabilities,
      });
      for (const c of consumers) {
        const consumer = await t.consume(c);
        if (c.kind !== 'video') continue;
        const v = document.createElement('video');
        v.muted = true;
        v.autoplay = true;
        v.srcObject = new MediaStream([consumer.track]);
        document.body.append(v);
        v.requestVideoFrameCallback(() => {
          out.result ??= performance.now() - t0;
        });
      }
      await call('resume');
    } catch (error) {
      out.failure = String(error);
    }
  })();
};
