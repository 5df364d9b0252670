// Drives werift peers through the library's Participant API (what a gateway does for a browser):
// a send transport that publishes tracks (and a chat channel), a recv transport that consumes.
import type { types as ms } from 'mediasoup';
import type { Participant, ProducerInfo, ConsumerInfo, DataConsumerInfo, MediaSource } from '../../lib/index.js';
import { within } from './util.js';
import { WeriftPublisher, WeriftSubscriber, type MediaKind } from './weriftPeer.js';

/** Resolves when the participant's transport reports DTLS 'connected'. */
export function transportConnected(p: Participant, transportId: string, ms = 15_000): Promise<void> {
  if (p.meeting._media.transportState(p.id, transportId) === 'connected') return Promise.resolve();
  return within(
    new Promise<void>((resolve, reject) => {
      const on = (id: string, state: string): void => {
        if (id !== transportId) return;
        if (state === 'connected') {
          p.off('transportstate', on);
          resolve();
        } else if (state === 'failed' || state === 'closed') {
          p.off('transportstate', on);
          reject(new Error(`transport ${id} DTLS ${state}`));
        }
      };
      p.on('transportstate', on);
    }),
    ms,
    `DTLS of transport ${transportId}`,
  );
}

export interface Published {
  pub: WeriftPublisher;
  transportId: string;
  /** Producers by track name. */
  producers: Map<string, ProducerInfo>;
  chatId: string | undefined;
}

/** Publishes tracks (name, source) from a werift peer through `p`; optionally a chat channel. */
export async function publish(
  p: Participant,
  tracks: Array<{ name: string; source: MediaSource }>,
  options: { chat?: boolean } = {},
): Promise<Published> {
  const kindOf = (s: MediaSource): MediaKind => (s === 'microphone' || s === 'screen-audio' ? 'audio' : 'video');
  const pub = await WeriftPublisher.create(
    tracks.map((t) => ({ name: t.name, kind: kindOf(t.source) })),
    options.chat ? 1 : undefined,
  );
  const info = await p.createTransport('send');
  await p.connectTransport(info.id, pub.dtlsParameters);
  const producers = new Map<string, ProducerInfo>();
  for (const t of tracks) {
    const params = pub.produceParameters(t.name);
    producers.set(
      t.name,
      await p.produce({ transportId: info.id, source: t.source, kind: params.kind, rtpParameters: params.rtpParameters }),
    );
  }
  const chatId = options.chat
    ? (await p.produceChat({ transportId: info.id, sctpStreamParameters: pub.sctpStreamParameters })).id
    : undefined;
  await pub.connect(info);
  await transportConnected(p, info.id);
  if (options.chat) await pub.chatOpen();
  return { pub, transportId: info.id, producers, chatId };
}

export interface Subscribed {
  sub: WeriftSubscriber;
  transportId: string;
  consumers: ConsumerInfo[];
  chats: DataConsumerInfo[];
}

/** Consumes producers (and chat channels) through `p` into a werift peer; consumers are resumed. */
export async function subscribe(p: Participant, producerIds: string[], chatIds: string[] = []): Promise<Subscribed> {
  const sub = new WeriftSubscriber();
  const info = await p.createTransport('recv');
  const consumers: ConsumerInfo[] = [];
  for (const producerId of producerIds) {
    consumers.push(await p.consume({ transportId: info.id, producerId, rtpCapabilities: p.meeting.rtpCapabilities }));
  }
  const chats: DataConsumerInfo[] = [];
  for (const dataProducerId of chatIds) chats.push(await p.consumeChat({ transportId: info.id, dataProducerId }));
  const dtls = await sub.connect(
    info,
    consumers.map((c) => ({ id: c.id, kind: c.kind, rtpParameters: c.rtpParameters as ms.RtpParameters })),
    true,
  );
  await p.connectTransport(info.id, dtls);
  await transportConnected(p, info.id);
  for (const c of consumers) await p.resumeConsumer(c.id);
  for (const c of chats) await sub.openChat(c.sctpStreamParameters.streamId);
  return { sub, transportId: info.id, consumers, chats };
}

/**
 * Calls `send` every few ms until `done()` holds (media over real sockets: a packet sent before a
 * consumer is ready is dropped by design, so the sender keeps going until the receiver has it).
 */
export async function pumpUntil(send: () => void, done: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    send();
    await new Promise((r) => setTimeout(r, 10));
  }
}
