import type { types as ms } from 'mediasoup';
import type { ServerTransportInfo } from './weriftPeer.js';
import { within } from './util.js';

/** What a client needs from a mediasoup WebRtcTransport. */
export function transportInfo(t: ms.WebRtcTransport): ServerTransportInfo {
  return {
    iceParameters: t.iceParameters,
    iceCandidates: t.iceCandidates,
    dtlsParameters: t.dtlsParameters,
    sctpParameters: t.sctpParameters,
  };
}

/** Resolves when the transport's DTLS is connected (event-driven), rejects on failure. */
export function dtlsConnected(t: ms.WebRtcTransport, ms = 15_000): Promise<void> {
  if (t.dtlsState === 'connected') return Promise.resolve();
  return within(
    new Promise<void>((resolve, reject) => {
      t.on('dtlsstatechange', (s) => {
        if (s === 'connected') resolve();
        if (s === 'failed' || s === 'closed') reject(new Error(`dtls ${s}`));
      });
    }),
    ms,
    `DTLS of transport ${t.id} (ice ${t.iceState}, dtls ${t.dtlsState})`,
  );
}
