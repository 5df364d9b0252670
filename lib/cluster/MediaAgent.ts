// The media of other nodes' meetings on this node (and of this node's own home meetings): one
// MeetingMedia per meeting, driven by the meeting's home (ClusterMedia) through call(), plus the
// PipeTransports that carry producers between this node and the meeting's other nodes. A pipe is
// SRTP-encrypted and listens on this node's media address; one PipeTransport per meeting and
// peer node carries every producer crossing between the two.
import type { types as ms } from 'mediasoup';
import type { Logger } from 'pino';
import { MediaError } from '../errors.js';
import { MeetingMedia, type MeetingMediaEvents, type MeetingMediaOptions } from '../media/MeetingMedia.js';
import type { WorkerPool } from '../media/WorkerPool.js';
import type { ProducerInfo } from '../model/types.js';

/** Where this node's pipe transports listen (ip) and what they announce to the other nodes. */
export interface PipeAddress {
  ip: string;
  announcedAddress?: string;
}

/** What one side of a node-pair pipe tells the other to connect to. */
export interface PipeEndpoint {
  ip: string;
  port: number;
  srtpParameters: ms.SrtpParameters;
}

/** What a pipe consumer on the source node hands the target node to produce from. */
export interface PipedProducer {
  kind: 'audio' | 'video';
  rtpParameters: ms.RtpParameters;
  paused: boolean;
}

/** What a pipe data consumer on the source node hands the target node to produce a chat channel from. */
export interface PipedData {
  sctpStreamParameters: ms.SctpStreamParameters;
  label: string;
  protocol: string;
}

/** One producer crossing between this node and a peer node, with its packet counter. */
export interface PipeStat {
  meetingId: string;
  producerId: string;
  peer: string;
  direction: 'out' | 'in';
  packets: number;
}

/** MeetingMedia methods the home may call (everything else is refused). */
const MEDIA_METHODS = new Set([
  'createTransport',
  'connectTransport',
  'restartIce',
  'produce',
  'pauseProducer',
  'resumeProducer',
  'producerStats',
  'closeProducer',
  'consume',
  'resumeConsumer',
  'pauseConsumer',
  'setPreferredLayers',
  'produceData',
  'consumeData',
  'closeChat',
  'closeDataProducer',
  'releaseParticipant',
  // Issue 11 protocol additions.
  'closeTransport',
  'consumerStats',
]);

/** The events a node's MeetingMedia reports to the meeting's home. */
export const FORWARDED_EVENTS = [
  'producerclosed',
  'chatclosed',
  'consumerclosed',
  'dominantspeaker',
  'placement',
  'reconnect',
  'transportstate',
  'recoveryfailed',
  // Issue 11: layer and score changes for the participant's client.
  'consumerlayers',
  'producerscore',
  'consumerscore',
] as const satisfies ReadonlyArray<keyof MeetingMediaEvents>;

interface Link {
  transport: ms.PipeTransport;
  router: ms.Router;
  connected: boolean;
}

interface AgentMeeting {
  media: MeetingMedia;
  home: string;
  /** Ids of producers and chat data producers adopted from other nodes (their close is not this node's to report). */
  adopted: Set<string>;
  links: Map<string, Promise<Link>>;
  /** Pipe consumers (producers leaving this node), key `<producerId>|<peer>`. */
  out: Map<string, ms.Consumer>;
  /** Pipe producers (producers arriving here), key `<producerId>|<peer>`. */
  in: Map<string, ms.Producer>;
  /** Chat data channels leaving / arriving, same keys. */
  dataOut: Map<string, ms.DataConsumer>;
  dataIn: Map<string, ms.DataProducer>;
}

export class MediaAgent {
  readonly #pool: WorkerPool;
  readonly #options: MeetingMediaOptions | undefined;
  readonly #logger: Logger;
  readonly #pipeAddress: PipeAddress;
  readonly #report: (home: string, meetingId: string, event: string, args: unknown[]) => void;
  readonly #meetings = new Map<string, Promise<AgentMeeting>>();
  #closed = false;

  constructor(o: {
    pool: WorkerPool;
    options: MeetingMediaOptions | undefined;
    logger: Logger;
    pipeAddress: PipeAddress;
    /** Sends an event of a meeting's media to its home (in-process for this node's own). */
    report: (home: string, meetingId: string, event: string, args: unknown[]) => void;
  }) {
    this.#pool = o.pool;
    this.#options = o.options;
    this.#logger = o.logger.child({ component: 'mediaagent' });
    this.#pipeAddress = o.pipeAddress;
    this.#report = o.report;
  }

  /** Meetings with media on this node. */
  get meetingIds(): string[] {
    return [...this.#meetings.keys()];
  }

  /** Opens (once) the meeting's media on this node; REGION_UNAVAILABLE when no worker here is in its regions. */
  async open(meetingId: string, allowedRegions: readonly string[], home: string): Promise<MeetingMedia> {
    if (this.#closed) throw new MediaError('CLOSED', 'media agent closed');
    let pending = this.#meetings.get(meetingId);
    // Media left over from a previous home (it died; this is the new home's call): start afresh.
    if (pending && (await pending.catch(() => undefined))?.home !== home) {
      await this.closeMeeting(meetingId, 'released');
      pending = this.#meetings.get(meetingId);
    }
    if (!pending) {
      pending = MeetingMedia.create({
        meetingId,
        pool: this.#pool,
        allowedRegions,
        ...(this.#options ? { options: this.#options } : {}),
        logger: this.#logger,
      }).then((media) => {
        const m: AgentMeeting = { media, home, adopted: new Set(), links: new Map(), out: new Map(), in: new Map(), dataOut: new Map(), dataIn: new Map() };
        for (const event of FORWARDED_EVENTS) {
          media.on(event, (...args: unknown[]) => {
            // An adopted producer closing is the end of a pipe, not news for the home.
            if (event === 'producerclosed' && m.adopted.delete((args[0] as ProducerInfo).id)) return;
            if (event === 'chatclosed' && m.adopted.delete(args[0] as string)) return;
            this.#report(m.home, meetingId, event, event === 'recoveryfailed' ? [String((args[0] as Error).message)] : args);
          });
        }
        return m;
      });
      this.#meetings.set(meetingId, pending);
      pending.catch(() => this.#meetings.delete(meetingId));
    }
    return (await pending).media;
  }

  async #meeting(meetingId: string): Promise<AgentMeeting> {
    const m = this.#meetings.get(meetingId);
    if (!m) throw new MediaError('NOT_FOUND', `no media of meeting ${meetingId} on this node`);
    return m;
  }

  /** Runs one MeetingMedia method of the meeting (the home's call). */
  async call(meetingId: string, method: string, args: unknown[]): Promise<unknown> {
    if (!MEDIA_METHODS.has(method)) throw new TypeError(`not a media method: ${method}`);
    const m = await this.#meeting(meetingId);
    const fn = (m.media as unknown as Record<string, (...a: unknown[]) => unknown>)[method]!;
    return await fn.apply(m.media, args);
  }

  // Pipes -----------------------------------------------------------------------------------------

  /** This node's PipeTransport of the meeting towards `peer` (created once); what the peer connects to. */
  async pipeOpen(meetingId: string, peer: string): Promise<PipeEndpoint> {
    const link = await this.#link(await this.#meeting(meetingId), peer);
    const t = link.transport;
    return { ip: this.#pipeAddress.announcedAddress ?? t.tuple.localAddress, port: t.tuple.localPort, srtpParameters: t.srtpParameters! };
  }

  #link(m: AgentMeeting, peer: string): Promise<Link> {
    let link = m.links.get(peer);
    if (!link) {
      const router = m.media._primaryRouter();
      link = router
        .createPipeTransport({
          listenInfo: {
            protocol: 'udp',
            ip: this.#pipeAddress.ip,
            ...(this.#pipeAddress.announcedAddress ? { announcedAddress: this.#pipeAddress.announcedAddress } : {}),
          },
          // Media between nodes is always encrypted; there is no switch for this.
          enableSrtp: true,
          enableSctp: true,
          appData: { meetingId: m.media.meetingId, peer },
        })
        .then((transport) => {
          transport.observer.once('close', () => m.links.delete(peer));
          return { transport, router, connected: false };
        });
      m.links.set(peer, link);
      link.catch(() => m.links.delete(peer));
    }
    return link;
  }

  /** Connects this node's pipe towards `peer` to the peer's endpoint (once). */
  async pipeConnect(meetingId: string, peer: string, remote: PipeEndpoint): Promise<void> {
    const link = await this.#link(await this.#meeting(meetingId), peer);
    if (link.connected) return;
    link.connected = true;
    try {
      await link.transport.connect({ ip: remote.ip, port: remote.port, srtpParameters: remote.srtpParameters });
    } catch (error) {
      link.connected = false;
      throw error;
    }
  }

  /** Source side: sends a producer of this node into the pipe towards `peer`. */
  async pipeConsume(meetingId: string, peer: string, producerId: string): Promise<PipedProducer> {
    const m = await this.#meeting(meetingId);
    const key = `${producerId}|${peer}`;
    const existing = m.out.get(key);
    if (existing && !existing.closed) return { kind: existing.kind, rtpParameters: existing.rtpParameters, paused: existing.producerPaused };
    const link = await this.#link(m, peer);
    // The pipe sits on the primary router; a producer of another shard is first piped there.
    await m.media._bringToPrimary(producerId);
    const consumer = await link.transport.consume({ producerId });
    m.out.set(key, consumer);
    consumer.observer.once('close', () => m.out.delete(key));
    return { kind: consumer.kind, rtpParameters: consumer.rtpParameters, paused: consumer.producerPaused };
  }

  /** Target side: produces the other node's producer (same id) from the pipe and adopts it. */
  async pipeProduce(meetingId: string, peer: string, info: ProducerInfo, piped: PipedProducer): Promise<void> {
    const m = await this.#meeting(meetingId);
    const key = `${info.id}|${peer}`;
    if (m.in.has(key)) return;
    const link = await this.#link(m, peer);
    const producer = await link.transport.produce({
      id: info.id,
      kind: piped.kind,
      rtpParameters: piped.rtpParameters,
      paused: piped.paused,
      appData: { participantId: info.participantId, source: info.source, piped: true },
    });
    m.in.set(key, producer);
    producer.observer.once('close', () => m.in.delete(key));
    m.adopted.add(info.id);
    m.media._adoptProducer(link.router, producer, info);
  }

  /** Source side: sends a chat DataProducer of this node into the pipe towards `peer`. */
  async pipeConsumeData(meetingId: string, peer: string, dataProducerId: string): Promise<PipedData> {
    const m = await this.#meeting(meetingId);
    const key = `${dataProducerId}|${peer}`;
    let dc = m.dataOut.get(key);
    if (!dc || dc.closed) {
      const link = await this.#link(m, peer);
      await m.media._bringDataToPrimary(dataProducerId);
      dc = await link.transport.consumeData({ dataProducerId });
      m.dataOut.set(key, dc);
      dc.observer.once('close', () => m.dataOut.delete(key));
    }
    return { sctpStreamParameters: dc.sctpStreamParameters!, label: dc.label, protocol: dc.protocol };
  }

  /** Target side: produces the other node's chat DataProducer (same id) from the pipe and adopts it. */
  async pipeProduceData(meetingId: string, peer: string, dataProducerId: string, participantId: string, piped: PipedData): Promise<void> {
    const m = await this.#meeting(meetingId);
    const key = `${dataProducerId}|${peer}`;
    if (m.dataIn.has(key)) return;
    const link = await this.#link(m, peer);
    const dp = await link.transport.produceData({
      id: dataProducerId,
      sctpStreamParameters: piped.sctpStreamParameters,
      label: piped.label,
      protocol: piped.protocol,
      appData: { participantId, piped: true },
    });
    m.dataIn.set(key, dp);
    dp.observer.once('close', () => m.dataIn.delete(key));
    m.adopted.add(dataProducerId);
    m.media._adoptDataProducer(link.router, dp, participantId);
  }

  /** Closes the copy of another node's chat channel here. */
  async closeAdoptedData(meetingId: string, dataProducerId: string): Promise<void> {
    const m = await this.#meeting(meetingId).catch(() => undefined);
    if (!m) return;
    for (const [key, dp] of m.dataIn) if (key.startsWith(`${dataProducerId}|`)) dp.close();
  }

  /** Closes the copy of another node's producer here (its source closed it). */
  async closeAdopted(meetingId: string, producerId: string): Promise<void> {
    const m = await this.#meeting(meetingId).catch(() => undefined);
    if (!m) return;
    for (const [key, p] of m.in) if (key.startsWith(`${producerId}|`)) p.close();
  }

  /** Pauses or resumes the copies of another node's producer here. */
  async setAdoptedPaused(meetingId: string, producerId: string, paused: boolean): Promise<void> {
    const m = await this.#meeting(meetingId);
    for (const [key, p] of m.in) if (key.startsWith(`${producerId}|`)) await (paused ? p.pause() : p.resume());
  }

  /** Drops the pipe towards a node that is gone (its producers' copies close with it). */
  async dropPeer(meetingId: string, peer: string): Promise<void> {
    const m = await this.#meeting(meetingId).catch(() => undefined);
    const link = await m?.links.get(peer)?.catch(() => undefined);
    link?.transport.close();
  }

  /** Packet counters of every producer crossing this node's boundary. */
  async pipeStats(): Promise<PipeStat[]> {
    const out: PipeStat[] = [];
    for (const pending of this.#meetings.values()) {
      const m = await pending.catch(() => undefined);
      if (!m) continue;
      for (const [dir, map] of [['out', m.out], ['in', m.in]] as const) {
        for (const [key, x] of map) {
          const [producerId, peer] = key.split('|') as [string, string];
          const stats = (await x.getStats().catch(() => [])) as Array<{ type: string; packetCount?: number }>;
          const packets = stats
            .filter((s) => s.type === (dir === 'out' ? 'outbound-rtp' : 'inbound-rtp'))
            .reduce((a, s) => a + (s.packetCount ?? 0), 0);
          out.push({ meetingId: m.media.meetingId, producerId, peer, direction: dir, packets });
        }
      }
    }
    return out;
  }

  /** Closes the meeting's media on this node. */
  async closeMeeting(meetingId: string, reason: 'meeting-ended' | 'released' = 'meeting-ended'): Promise<void> {
    const pending = this.#meetings.get(meetingId);
    if (!pending) return;
    this.#meetings.delete(meetingId);
    const m = await pending.catch(() => undefined);
    m?.media.close(reason);
  }

  /** Closes the meeting's media here if `home` is still its home (a stale home's close is ignored). */
  async closeMeetingOf(meetingId: string, home: string, reason: 'meeting-ended' | 'released'): Promise<void> {
    const m = await this.#meetings.get(meetingId)?.catch(() => undefined);
    if (m && m.home === home) await this.closeMeeting(meetingId, reason);
  }

  /** Meetings on this node whose home is `home`. */
  async meetingsOf(home: string): Promise<string[]> {
    const ids: string[] = [];
    for (const [id, pending] of this.#meetings) if ((await pending.catch(() => undefined))?.home === home) ids.push(id);
    return ids;
  }

  /** Makes `home` the meeting's home (after a takeover). */
  async setHome(meetingId: string, home: string): Promise<void> {
    (await this.#meeting(meetingId)).home = home;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const id of [...this.#meetings.keys()]) void this.closeMeeting(id);
  }
}
