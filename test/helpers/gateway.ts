import type WebSocket from 'ws';
import { createGateway, type Gateway, type GatewayLimits, type GatewayOptions } from '../../gateway/Gateway.js';
import { JoinTokens } from '../../gateway/tokens.js';
import type { Logger } from '../../lib/index.js';
import type { MediaCore, Meeting, MeetingSettings } from '../../lib/index.js';
import { testCore } from './core.js';
import { SignallingClient } from './signallingClient.js';
import { silentLogger } from './util.js';
import { vp8Payload, type WeriftPublisher } from './weriftPeer.js';

export const HOST = 'host@schule-a.de';

export interface TestGateway {
  core: MediaCore;
  gateway: Gateway;
  tokens: JoinTokens;
  meeting: Meeting;
  /** A fresh host token for the meeting (a JWT minted by `tokens`). */
  hostToken(): Promise<string>;
  /** A token for a signed-in (non-host) user. */
  userToken(identity: string): Promise<string>;
  /** Connects a client (not yet hello'd); `options` e.g. for headers (X-Forwarded-For, Origin). */
  client(options?: WebSocket.ClientOptions): Promise<SignallingClient>;
  close(): Promise<void>;
}

/** A real gateway on an ephemeral loopback port over a real media core with one meeting. */
export async function testGateway(options: {
  settings?: Partial<MeetingSettings>;
  limits?: Partial<GatewayLimits>;
  logger?: Logger;
  workers?: number;
  password?: string;
  /** Issue 10: edge options (trusted proxies, origins). */
  edge?: Pick<GatewayOptions, 'trustedProxies' | 'forwardedHeader' | 'allowedOrigins'>;
  /** Issue 10: the join-token keys (default a random HS256 secret). */
  tokens?: JoinTokens;
} = {}): Promise<TestGateway> {
  const logger = options.logger ?? silentLogger();
  const core = await testCore({ logger, workers: { workers: options.workers ?? 1, region: 'de-fra' } });
  core.createAccount({ id: 'schule-a' });
  const meeting = await core.createMeeting({
    id: 'elternabend',
    accountId: 'schule-a',
    title: 'Elternabend 5b',
    hostIdentity: HOST,
    settings: options.settings ?? {},
    ...(options.password ? { password: options.password } : {}),
  });
  const tokens = options.tokens ?? new JoinTokens(JoinTokens.randomSecret());
  const gateway = await createGateway({
    core,
    logger,
    registry: core.registry,
    tokens,
    port: 0,
    ...(options.limits ? { limits: options.limits } : {}),
    ...options.edge,
  });
  const clients: SignallingClient[] = [];
  return {
    core,
    gateway,
    tokens,
    meeting,
    hostToken: () => tokens.mint({ identity: HOST, role: 'host', meetingId: meeting.id }),
    userToken: (identity) => tokens.mint({ identity, role: 'participant', meetingId: meeting.id }),
    async client(wsOptions) {
      const c = await SignallingClient.connect(gateway.url, wsOptions);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.ws.terminate();
      await gateway.close();
      core.close();
    },
  };
}

/**
 * Sends a packet on each named track every 20 ms until stopped (a live stream: packets before the
 * publisher's DTLS is up are lost, as in a real call). Video packets are VP8 key frames so that a
 * fresh consumer forwards them at once. Payloads start with `tag` so receivers can tell streams apart.
 */
export function stream(pub: WeriftPublisher, tracks: Array<{ name: string; kind: 'audio' | 'video' }>, tag: string): () => void {
  let n = 0;
  const timer = setInterval(() => {
    n++;
    for (const t of tracks) {
      const body = Buffer.from(`${tag}:${t.name}:${n}`.padEnd(t.kind === 'audio' ? 100 : 600, '.'));
      try {
        pub.send(t.name, t.kind === 'audio' ? body : vp8Payload(body, true), t.kind === 'video');
      } catch {
        // The peer is closing; the test decides what that means.
      }
    }
  }, 20);
  return () => clearInterval(timer);
}
