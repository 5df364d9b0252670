// The mediasoup side's SDP for a werift peer. mediasoup's WebRtcTransport has no SDP (there is no
// mediasoup-client for Node), so it is written here from the transport's ICE, DTLS and SCTP
// parameters and the RTP parameters of each producer / consumer: ICE-lite, one BUNDLE group,
// rtcp-mux. Pure functions; the werift side is in index.ts.
import type { types as ms } from 'mediasoup';
import type { TransportOptions } from '../core/types.js';

/** One m-section the server side describes. */
export interface ServerMediaSection {
  kind: 'audio' | 'video';
  mid: string;
  /** recvonly: the server receives (a producer); sendonly: it sends (a consumer). */
  direction: 'sendonly' | 'recvonly' | 'inactive';
  /** The codec of the section (the first of the RTP parameters). */
  codec: ms.RtpCodecParameters;
  /** Consumers: the SSRC and CNAME the server sends with. */
  ssrc?: number | undefined;
  cname?: string | undefined;
}

/** A match of `re`'s first group in `sdp`, or an Error naming what is missing. */
export function sdpMatch(sdp: string, re: RegExp): string {
  const m = sdp.match(re);
  if (!m || m[1] === undefined) throw new Error(`SDP has no ${re}`);
  return m[1];
}

/** Splits an SDP into its session part and one string per m-section. */
export function sdpSections(sdp: string): string[] {
  return sdp.split(/\r\n(?=m=)/);
}

function fmtp(codec: ms.RtpCodecParameters): string | undefined {
  const params = Object.entries(codec.parameters ?? {});
  if (params.length === 0) return undefined;
  return `a=fmtp:${codec.payloadType} ${params.map(([k, v]) => `${k}=${String(v)}`).join(';')}`;
}

/**
 * Writes the server's description. `setup` is 'actpass' when the server offers (receive
 * transport) and 'passive' when it answers werift's offer (send transport: werift is the DTLS
 * client). `order` is the mid order of the offer, which an answer must keep.
 */
export function serverSdp(
  transport: Pick<TransportOptions, 'iceParameters' | 'iceCandidates' | 'dtlsParameters' | 'sctpParameters'>,
  media: ServerMediaSection[],
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
      const ip = (c as { address?: string }).address ?? c.ip;
      l.push(`a=candidate:${c.foundation} 1 ${c.protocol} ${c.priority} ${ip} ${c.port} typ host` + (c.protocol === 'tcp' ? ` tcptype ${c.tcpType ?? 'passive'}` : ''));
    }
    l.push('a=end-of-candidates');
    return l;
  };
  const byMid = new Map<string, string[]>();
  for (const m of media) {
    const c = m.codec;
    const name = c.mimeType.split('/')[1]!;
    const l = [
      `m=${m.kind} 7 UDP/TLS/RTP/SAVPF ${c.payloadType}`,
      ...common(),
      `a=mid:${m.mid}`,
      `a=${m.direction}`,
      'a=rtcp-mux',
      'a=rtcp-rsize',
      `a=rtpmap:${c.payloadType} ${name}/${c.clockRate}${c.channels ? `/${c.channels}` : ''}`,
    ];
    const f = fmtp(c);
    if (f) l.push(f);
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
  const lines = ['v=0', `o=mediasoup ${Date.now()} 1 IN IP4 0.0.0.0`, 's=-', 't=0 0', `a=group:BUNDLE ${mids.join(' ')}`, 'a=ice-lite', 'a=msid-semantic: WMS *'];
  for (const mid of mids) lines.push(...byMid.get(mid)!);
  return lines.join('\r\n') + '\r\n';
}
