// Server-side SRTP-only transports for gateways (SIP dial-in, the benchmark's packet generator):
// a mediasoup PlainTransport with SRTP forced on, attached to a meeting participant that went
// through admission like everyone else. Plain RTP is refused: encryption is never optional in the
// media path, so there is no option that turns it off (enableSrtp: false is ENCRYPTION_REQUIRED)
// and connect() without SRTP parameters is ENCRYPTION_REQUIRED too.
import { isIP } from 'node:net';
import type { types as ms } from 'mediasoup';
import { InvalidStateError, MediaError, PolicyError } from '../errors.js';
import type { Participant } from '../model/Participant.js';

const SUITES: readonly ms.SrtpCryptoSuite[] = ['AEAD_AES_256_GCM', 'AEAD_AES_128_GCM', 'AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'];

/** SRTP parameters as mediasoup takes them: a crypto suite and master key + salt in base64. */
export interface GatewaySrtpParameters {
  cryptoSuite: ms.SrtpCryptoSuite;
  keyBase64: string;
}

export interface GatewayTransportOptions {
  /** 'send': the gateway sends media in (its address is learnt from its first packet); 'recv': the SFU sends to it. */
  direction: 'send' | 'recv';
  /** Default AES_CM_128_HMAC_SHA1_80. */
  srtpCryptoSuite?: ms.SrtpCryptoSuite;
  /** Only true (or absent) is accepted: false is refused with ENCRYPTION_REQUIRED. */
  enableSrtp?: boolean;
  /** Where the transport listens; default 127.0.0.1 (a gateway next to the media server). */
  listenIp?: string;
  /** The address announced to the gateway, when it differs from listenIp. */
  announcedAddress?: string;
}

/** What the gateway needs: where to send (or where media comes from) and the SFU's SRTP key. */
export interface GatewayTransportInfo {
  id: string;
  direction: 'send' | 'recv';
  ip: string;
  port: number;
  /** The key the SFU encrypts with (what the gateway decrypts with). */
  srtpParameters: GatewaySrtpParameters;
}

/** A gateway participant's SRTP-only transport. Created with createGatewayTransport(). */
export class GatewayTransport {
  readonly #transport: ms.PlainTransport;
  readonly #direction: 'send' | 'recv';
  readonly #announced: string | undefined;
  #connected = false;

  /** @internal */
  constructor(transport: ms.PlainTransport, direction: 'send' | 'recv', announced: string | undefined) {
    this.#transport = transport;
    this.#direction = direction;
    this.#announced = announced;
  }

  get id(): string {
    return this.#transport.id;
  }

  get closed(): boolean {
    return this.#transport.closed;
  }

  get info(): GatewayTransportInfo {
    const srtp = this.#transport.srtpParameters;
    if (!srtp) throw new MediaError('ENCRYPTION_REQUIRED', 'transport has no SRTP parameters');
    return {
      id: this.#transport.id,
      direction: this.#direction,
      ip: this.#announced ?? this.#transport.tuple.localAddress,
      port: this.#transport.tuple.localPort,
      srtpParameters: { cryptoSuite: srtp.cryptoSuite, keyBase64: srtp.keyBase64 },
    };
  }

  /**
   * Gives the SFU the gateway's SRTP key (and, for 'recv', where to send). Without SRTP
   * parameters: ENCRYPTION_REQUIRED, and the transport stays unconnected.
   */
  async connect(params: { srtpParameters: GatewaySrtpParameters; ip?: string; port?: number }): Promise<void> {
    if (this.#transport.closed) throw new InvalidStateError('gateway transport closed', 'CLOSED');
    if (this.#connected) throw new InvalidStateError('gateway transport already connected');
    const srtp = params?.srtpParameters;
    if (!srtp || typeof srtp.keyBase64 !== 'string' || !SUITES.includes(srtp.cryptoSuite)) {
      throw new MediaError('ENCRYPTION_REQUIRED', 'a gateway transport carries SRTP only: srtpParameters { cryptoSuite, keyBase64 } are required');
    }
    if (this.#direction === 'recv') {
      if (typeof params.ip !== 'string' || isIP(params.ip) === 0) throw new TypeError(`ip must be a numeric IP address, got ${JSON.stringify(params.ip)}`);
      if (!Number.isInteger(params.port) || params.port! < 1 || params.port! > 65535) throw new TypeError(`port must be 1..65535, got ${String(params.port)}`);
    }
    await this.#transport.connect({
      srtpParameters: { cryptoSuite: srtp.cryptoSuite, keyBase64: srtp.keyBase64 },
      ...(this.#direction === 'recv' ? { ip: params.ip!, port: params.port! } : {}),
    });
    this.#connected = true;
  }

  /** Closes the transport (its producers and consumers with it). Idempotent. */
  close(): void {
    this.#transport.close();
  }
}

/**
 * Creates an SRTP-only PlainTransport for an admitted participant, on the router that serves it.
 * Its id works with participant.produce() / consume() like a WebRtcTransport's, so the meeting's
 * policies (admission, mute, lock, screen-share rules) apply to gateway media as to any other.
 *
 * Refusals: NOT_ADMITTED (waiting or not in the meeting), CLOSED, ENCRYPTION_REQUIRED
 * (enableSrtp: false), TypeError for bad options.
 */
export async function createGatewayTransport(participant: Participant, options: GatewayTransportOptions): Promise<GatewayTransport> {
  if (typeof options !== 'object' || options === null) throw new TypeError('gateway transport options must be an object');
  if (options.enableSrtp === false) {
    throw new MediaError('ENCRYPTION_REQUIRED', 'gateway transports are SRTP-only; unencrypted RTP is not offered');
  }
  if (options.direction !== 'send' && options.direction !== 'recv') throw new TypeError(`direction must be 'send' or 'recv'`);
  const suite = options.srtpCryptoSuite ?? 'AES_CM_128_HMAC_SHA1_80';
  if (!SUITES.includes(suite)) throw new TypeError(`unknown SRTP crypto suite ${JSON.stringify(suite)}`);
  const ip = options.listenIp ?? '127.0.0.1';
  if (isIP(ip) === 0) throw new TypeError(`listenIp must be a numeric IP address, got ${JSON.stringify(ip)}`);
  if (participant.closed) throw new InvalidStateError('participant closed', 'CLOSED');
  if (participant.state !== 'admitted') throw new PolicyError('NOT_ADMITTED', 'not admitted into the meeting yet (waiting)');
  const media = participant.meeting._media;
  // Issue 14: a receiving gateway participant of a spread meeting gets its worker's fan-out router.
  const router = await media._routerFor(participant.id, options.direction);
  const transport = await router.createPlainTransport({
    listenInfo: { protocol: 'udp', ip, ...(options.announcedAddress ? { announcedAddress: options.announcedAddress } : {}) },
    rtcpMux: true,
    comedia: options.direction === 'send',
    enableSrtp: true,
    srtpCryptoSuite: suite,
    appData: { participantId: participant.id, direction: options.direction, gateway: true },
  });
  if (participant.state !== 'admitted') {
    transport.close();
    throw new PolicyError('NOT_ADMITTED', 'no longer in the meeting');
  }
  media._adoptTransport(participant.id, transport, options.direction, router);
  return new GatewayTransport(transport, options.direction, options.announcedAddress);
}
