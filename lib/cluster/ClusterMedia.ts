// A home meeting's media plane in cluster mode: the Meeting sees one MediaPlane; behind it each
// participant's media lives on the node it connected to (a MeetingMedia there, reached through a
// NodeMediaHandle), and a producer consumed on another node crosses once per node pair over SRTP
// PipeTransports. The meeting's producer registry lives here, on the home.
import type { types as ms } from 'mediasoup';
import type { Logger } from 'pino';
import { MediaError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import type { MediaPlane, MeetingMedia, MeetingMediaEvents } from '../media/MeetingMedia.js';
import type { ConsumerInfo, DataConsumerInfo, MediaSource, PlacementEntry, ProducerInfo, TransportInfo } from '../model/types.js';
import type { PipedData, PipedProducer, PipeEndpoint } from './MediaAgent.js';

/** One node's media of the meeting, as the home drives it. */
export interface NodeMediaHandle {
  readonly nodeId: string;
  /** A MeetingMedia method, or a pipe operation (pipeOpen, pipeConnect, pipeConsume, pipeProduce, closeAdopted, setAdoptedPaused). */
  call<T>(method: string, ...args: unknown[]): Promise<T>;
}

interface ProducerRecord {
  info: ProducerInfo;
  node: string;
  /** Nodes a copy was piped to. */
  targets: Set<string>;
}

export class ClusterMedia extends TypedEmitter<MeetingMediaEvents> implements MediaPlane {
  readonly meetingId: string;
  readonly rtpCapabilities: ms.RtpCapabilities;
  readonly #self: NodeMediaHandle;
  readonly #local: MeetingMedia;
  readonly #open: (nodeId: string) => Promise<NodeMediaHandle>;
  readonly #logger: Logger;
  readonly #handles = new Map<string, Promise<NodeMediaHandle>>();
  readonly #nodeOf = new Map<string, string>();
  readonly #producers = new Map<string, ProducerRecord>();
  readonly #chats = new Map<string, { participantId: string; node: string; targets: Set<string> }>();
  readonly #pipes = new Map<string, Promise<void>>();
  readonly #links = new Map<string, Promise<void>>();
  readonly #remotePlacements = new Map<string, PlacementEntry>();
  /** Issue 13: producers a participant lost when its media moved to another node, by participant and source. */
  readonly #moved = new Map<string, ProducerInfo>();
  #closed = false;

  constructor(o: {
    meetingId: string;
    self: NodeMediaHandle;
    local: MeetingMedia;
    /** Opens the meeting's media on another node (REGION_UNAVAILABLE outside the allowed regions). */
    open: (nodeId: string) => Promise<NodeMediaHandle>;
    logger: Logger;
  }) {
    super();
    this.meetingId = o.meetingId;
    this.#self = o.self;
    this.#local = o.local;
    this.#open = o.open;
    this.#logger = o.logger.child({ component: 'clustermedia', meetingId: o.meetingId });
    this.rtpCapabilities = o.local.rtpCapabilities;
    this.#handles.set(o.self.nodeId, Promise.resolve(o.self));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The node a participant's media lives on (the home's own unless the relay said otherwise). */
  nodeOf(participantId: string): string {
    return this.#nodeOf.get(participantId) ?? this.#self.nodeId;
  }

  /**
   * Called by the relay with every join or resume answer, before the participant's next media
   * request: its media goes to `nodeId`. Issue 13: a resume through another node than the one its
   * media lives on (that node died, drains, or the client switched) moves it; see #moveMedia.
   */
  assignNode(participantId: string, nodeId: string): void {
    const before = this.#nodeOf.get(participantId);
    this.#nodeOf.set(participantId, nodeId);
    if (before !== undefined && before !== nodeId && !this.#closed) this.#moveMedia(participantId, before);
  }

  /**
   * Issue 13: the participant's media lives on another node from now on. What it had on `from` is
   * gone for everyone: its producers and chat channel end (others drop their consumers, and its
   * new producers name the old ones they replace), what is left there is released (a live node),
   * and the participant is told to rebuild its media (the reconnect notice, everything in scope).
   */
  #moveMedia(participantId: string, from: string): void {
    this.#logger.info({ participantId, from, to: this.#nodeOf.get(participantId) }, 'participant media moves to another node');
    for (const r of [...this.#producers.values()]) {
      if (r.info.participantId !== participantId) continue;
      this.#moved.set(`${participantId}\n${r.info.source}`, { ...r.info });
      this.#dropProducer(r);
    }
    for (const [id, c] of [...this.#chats]) if (c.participantId === participantId) this.#dropChat(id, c);
    if (from === this.#self.nodeId) this.#local.releaseParticipant(participantId);
    else void this.#handles.get(from)?.then((h) => h.call('releaseParticipant', participantId)).catch(() => undefined);
    this.safeEmit('reconnect', [participantId]);
  }

  #dropChat(id: string, c: { participantId: string; node: string; targets: Set<string> }): void {
    this.#chats.delete(id);
    for (const t of c.targets) {
      this.#pipes.delete(`${id}|${t}`);
      void this.#handles.get(t)?.then((h) => h.call('closeAdoptedData', id)).catch(() => undefined);
    }
    this.safeEmit('chatclosed', id, c.participantId);
  }

  /** Nodes the meeting has media on. */
  get nodes(): string[] {
    return [...this.#handles.keys()];
  }

  #handle(nodeId: string): Promise<NodeMediaHandle> {
    if (this.#closed) return Promise.reject(new MediaError('CLOSED', 'meeting media closed'));
    let h = this.#handles.get(nodeId);
    if (!h) {
      h = this.#open(nodeId);
      this.#handles.set(nodeId, h);
      h.catch(() => this.#handles.delete(nodeId));
    }
    return h;
  }

  async #on<T>(participantId: string, method: string, ...args: unknown[]): Promise<T> {
    const h = await this.#handle(this.nodeOf(participantId));
    return h.call<T>(method, participantId, ...args);
  }

  // MediaPlane: state ----------------------------------------------------------------------------

  get placements(): PlacementEntry[] {
    return [...this.#local.placements, ...[...this.#remotePlacements.values()].filter((p) => !p.to)];
  }

  get workerIds(): number[] {
    return this.#local.workerIds;
  }

  workerOf(participantId: string): number | undefined {
    return this.#local.workerOf(participantId);
  }

  get producers(): ProducerInfo[] {
    return [...this.#producers.values()].map((r) => ({ ...r.info }));
  }

  get chatProducers(): Array<[string, string]> {
    return [...this.#chats].map(([id, c]) => [id, c.participantId]);
  }

  producer(id: string): ProducerInfo | undefined {
    const r = this.#producers.get(id);
    return r ? { ...r.info } : undefined;
  }

  // Transports -----------------------------------------------------------------------------------

  createTransport(participantId: string, direction: 'send' | 'recv'): Promise<TransportInfo> {
    return this.#on(participantId, 'createTransport', direction);
  }

  connectTransport(participantId: string, transportId: string, dtlsParameters: ms.DtlsParameters): Promise<void> {
    return this.#on(participantId, 'connectTransport', transportId, dtlsParameters);
  }

  restartIce(participantId: string, transportId: string): Promise<TransportInfo['iceParameters']> {
    return this.#on(participantId, 'restartIce', transportId);
  }

  transportState(participantId: string, transportId: string): ms.DtlsState {
    this.#localOnly(participantId);
    return this.#local.transportState(participantId, transportId);
  }

  #localOnly(participantId: string): void {
    if (this.nodeOf(participantId) !== this.#self.nodeId) {
      throw new MediaError('INVALID_STATE', 'this participant\'s media is on another node: ask asynchronously');
    }
  }

  /** @internal Gateway transports (dial-in, bench generator) stay on the home node. */
  _routerFor(participantId: string): Promise<ms.Router> {
    this.#localOnly(participantId);
    return this.#local._routerFor(participantId);
  }

  /** @internal */
  _adoptTransport(participantId: string, transport: ms.Transport, direction: 'send' | 'recv'): void {
    this.#local._adoptTransport(participantId, transport, direction);
  }

  // Producers ------------------------------------------------------------------------------------

  async produce(
    participantId: string,
    params: { transportId: string; source: MediaSource; kind: 'audio' | 'video'; rtpParameters: ms.RtpParameters; paused?: boolean },
  ): Promise<ProducerInfo> {
    const node = this.nodeOf(participantId);
    const info = await this.#on<ProducerInfo>(participantId, 'produce', params);
    this.#producers.set(info.id, { info: { ...info }, node, targets: new Set() });
    // Issue 13: published again after its media moved: others swap the old stream for this one.
    const key = `${participantId}\n${params.source}`;
    const replaced = this.#moved.get(key);
    this.#moved.delete(key);
    return replaced && !info.replacesProducerId ? { ...info, replacesProducerId: replaced.id } : { ...info };
  }

  #record(producerId: string): ProducerRecord {
    const r = this.#producers.get(producerId);
    if (!r) throw new MediaError('NOT_FOUND', `no producer ${producerId} in this meeting`);
    return r;
  }

  async #setPaused(producerId: string, paused: boolean): Promise<ProducerInfo> {
    const r = this.#record(producerId);
    const h = await this.#handle(r.node);
    const info = await h.call<ProducerInfo>(paused ? 'pauseProducer' : 'resumeProducer', producerId);
    r.info.paused = info.paused;
    // The copies on other nodes follow, so that their consumers see the pause too.
    await Promise.all(
      [...r.targets].map(async (t) =>
        (await this.#handle(t)).call('setAdoptedPaused', producerId, paused).catch((e: unknown) => this.#logger.warn({ err: String(e), node: t }, 'pause of a piped copy failed')),
      ),
    );
    return { ...r.info };
  }

  pauseProducer(producerId: string): Promise<ProducerInfo> {
    return this.#setPaused(producerId, true);
  }

  resumeProducer(producerId: string): Promise<ProducerInfo> {
    return this.#setPaused(producerId, false);
  }

  async producerStats(producerId: string): Promise<ms.ProducerStat[]> {
    const r = this.#record(producerId);
    return (await this.#handle(r.node)).call('producerStats', producerId);
  }

  closeProducer(producerId: string): void {
    const r = this.#record(producerId);
    // The close is reported back as 'producerclosed' by the owning node (see _onNodeEvent).
    void this.#handle(r.node)
      .then((h) => h.call('closeProducer', producerId))
      .catch((e: unknown) => this.#logger.warn({ err: String(e) }, 'closing a producer on its node failed'));
  }

  // Consumers ------------------------------------------------------------------------------------

  async consume(
    participantId: string,
    params: { transportId: string; producerId: string; rtpCapabilities: ms.RtpCapabilities },
  ): Promise<ConsumerInfo> {
    const target = this.nodeOf(participantId);
    const r = this.#record(params.producerId);
    if (r.node !== target) await this.#pipe(r, target);
    return this.#on(participantId, 'consume', params);
  }

  /** The producer's copy on `target`: one crossing per producer and node pair, however many consume it. */
  #pipe(r: ProducerRecord, target: string): Promise<void> {
    const key = `${r.info.id}|${target}`;
    let pending = this.#pipes.get(key);
    if (!pending) {
      pending = (async () => {
        await this.#link(r.node, target);
        const [src, dst] = await Promise.all([this.#handle(r.node), this.#handle(target)]);
        const piped = await src.call<PipedProducer>('pipeConsume', target, r.info.id);
        await dst.call('pipeProduce', r.node, { ...r.info }, piped);
        r.targets.add(target);
      })();
      this.#pipes.set(key, pending);
      pending.catch(() => this.#pipes.delete(key));
    }
    return pending;
  }

  /** The PipeTransport pair between two nodes for this meeting, connected both ways (once). */
  #link(a: string, b: string): Promise<void> {
    const key = a < b ? `${a}|${b}` : `${b}|${a}`;
    let pending = this.#links.get(key);
    if (!pending) {
      pending = (async () => {
        const [ha, hb] = await Promise.all([this.#handle(a), this.#handle(b)]);
        const [ea, eb] = await Promise.all([ha.call<PipeEndpoint>('pipeOpen', b), hb.call<PipeEndpoint>('pipeOpen', a)]);
        await Promise.all([ha.call('pipeConnect', b, eb), hb.call('pipeConnect', a, ea)]);
      })();
      this.#links.set(key, pending);
      pending.catch(() => this.#links.delete(key));
    }
    return pending;
  }

  resumeConsumer(participantId: string, consumerId: string): Promise<void> {
    return this.#on(participantId, 'resumeConsumer', consumerId);
  }

  pauseConsumer(participantId: string, consumerId: string): Promise<void> {
    return this.#on(participantId, 'pauseConsumer', consumerId);
  }

  setPreferredLayers(participantId: string, consumerId: string, layers: ms.ConsumerLayers): Promise<void> {
    return this.#on(participantId, 'setPreferredLayers', consumerId, layers);
  }

  /** Issue 10: closes a participant's transport on the node that serves it. */
  closeTransport(participantId: string, transportId: string): Promise<void> {
    return this.#on(participantId, 'closeTransport', transportId);
  }

  /** Issue 11: send statistics of a participant's consumer, from its node. */
  consumerStats(participantId: string, consumerId: string): Promise<ms.ConsumerStat[]> {
    return this.#on(participantId, 'consumerStats', consumerId);
  }

  /**
   * Issue 11: producers of a participant that died with their worker. Known only where the
   * participant's media is; for a participant served by another node the list is empty (the
   * reconnect notice then names no producers, and clients publish everything again).
   */
  lostProducers(participantId: string): ProducerInfo[] {
    // Issue 13: those lost by a move to another node (known here, on the home) come first.
    const moved = [...this.#moved.values()].filter((i) => i.participantId === participantId).map((i) => ({ ...i }));
    try {
      this.#localOnly(participantId);
    } catch {
      return moved;
    }
    return [...moved, ...this.#local.lostProducers(participantId)];
  }

  consumerLayers(participantId: string, consumerId: string): ReturnType<MeetingMedia['consumerLayers']> {
    this.#localOnly(participantId);
    return this.#local.consumerLayers(participantId, consumerId);
  }

  // Chat -----------------------------------------------------------------------------------------

  async produceData(participantId: string, transportId: string, sctpStreamParameters: ms.SctpStreamParameters): Promise<string> {
    const node = this.nodeOf(participantId);
    const id = await this.#on<string>(participantId, 'produceData', transportId, sctpStreamParameters);
    this.#chats.set(id, { participantId, node, targets: new Set() });
    return id;
  }

  async consumeData(participantId: string, transportId: string, dataProducerId: string): Promise<DataConsumerInfo> {
    const c = this.#chats.get(dataProducerId);
    if (!c) throw new MediaError('NOT_FOUND', `no chat channel ${dataProducerId} in this meeting`);
    const target = this.nodeOf(participantId);
    if (c.node !== target) await this.#pipeData(dataProducerId, c, target);
    return this.#on(participantId, 'consumeData', transportId, dataProducerId);
  }

  /** The chat channel's copy on `target`: like producers, once per node pair (SCTP over the same pipe). */
  #pipeData(id: string, c: { participantId: string; node: string; targets: Set<string> }, target: string): Promise<void> {
    const key = `${id}|${target}`;
    let pending = this.#pipes.get(key);
    if (!pending) {
      pending = (async () => {
        await this.#link(c.node, target);
        const [src, dst] = await Promise.all([this.#handle(c.node), this.#handle(target)]);
        const piped = await src.call<PipedData>('pipeConsumeData', target, id);
        await dst.call('pipeProduceData', c.node, id, c.participantId, piped);
        c.targets.add(target);
      })();
      this.#pipes.set(key, pending);
      pending.catch(() => this.#pipes.delete(key));
    }
    return pending;
  }

  closeChat(): void {
    for (const h of this.#handles.values()) void h.then((x) => x.call('closeChat')).catch(() => undefined);
  }

  closeDataProducer(id: string): void {
    const c = this.#chats.get(id);
    if (!c) return;
    void this.#handle(c.node)
      .then((h) => h.call('closeDataProducer', id))
      .catch(() => undefined);
  }

  // Teardown -------------------------------------------------------------------------------------

  releaseParticipant(participantId: string): void {
    const node = this.nodeOf(participantId);
    this.#nodeOf.delete(participantId);
    for (const [key, info] of [...this.#moved]) if (info.participantId === participantId) this.#moved.delete(key);
    if (node === this.#self.nodeId) {
      this.#local.releaseParticipant(participantId);
      return;
    }
    const h = this.#handles.get(node);
    void h?.then((x) => x.call('releaseParticipant', participantId)).catch(() => undefined);
  }

  /** Closes the meeting's media on every node. Idempotent. */
  close(reason: NonNullable<PlacementEntry['endReason']> = 'meeting-ended'): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [node, h] of this.#handles) {
      if (node === this.#self.nodeId) continue;
      void h.then((x) => x.call('closeMedia', reason, this.#self.nodeId)).catch(() => undefined);
    }
    this.#local.close(reason);
    // Through the agent too, so that it forgets this meeting's (now closed) media on this node.
    void this.#self.call('closeMedia', reason, this.#self.nodeId).catch(() => undefined);
  }

  // Events of the nodes --------------------------------------------------------------------------

  /** @internal An event of one node's MeetingMedia of this meeting (FORWARDED_EVENTS). */
  _onNodeEvent(nodeId: string, event: string, args: unknown[]): void {
    switch (event) {
      case 'producerclosed': {
        const info = args[0] as ProducerInfo;
        const r = this.#producers.get(info.id);
        if (!r || r.node !== nodeId) return;
        this.#dropProducer(r);
        return;
      }
      case 'chatclosed': {
        const [id] = args as [string, string];
        const c = this.#chats.get(id);
        if (c?.node !== nodeId) return;
        this.#dropChat(id, c);
        return;
      }
      case 'placement': {
        const e = args[0] as PlacementEntry & { from: string; to?: string };
        const entry: PlacementEntry = { ...e, from: new Date(e.from), ...(e.to ? { to: new Date(e.to) } : {}) };
        if (nodeId !== this.#self.nodeId) this.#remotePlacements.set(`${nodeId}|${entry.workerId}|${e.from}`, entry);
        this.safeEmit('placement', entry);
        return;
      }
      case 'recoveryfailed':
        // Another node lost its workers: its participants reconnect (to another node); the meeting goes on.
        if (nodeId !== this.#self.nodeId) return;
        this.safeEmit('recoveryfailed', new MediaError('REGION_UNAVAILABLE', String(args[0])));
        return;
      case 'consumerclosed':
      case 'dominantspeaker':
      case 'reconnect':
      case 'transportstate':
        (this.safeEmit as (e: string, ...a: unknown[]) => void)(event, ...args);
        return;
    }
  }

  #dropProducer(r: ProducerRecord): void {
    this.#producers.delete(r.info.id);
    for (const t of r.targets) {
      this.#pipes.delete(`${r.info.id}|${t}`);
      void this.#handles.get(t)?.then((h) => h.call('closeAdopted', r.info.id)).catch(() => undefined);
    }
    this.safeEmit('producerclosed', { ...r.info });
  }

  /** @internal A node of the meeting is gone (its entry expired): its producers end, pipes to it are forgotten. */
  _onNodeLost(nodeId: string): void {
    if (nodeId === this.#self.nodeId) return;
    this.#handles.delete(nodeId);
    for (const key of [...this.#links.keys()]) if (key.split('|').includes(nodeId)) this.#links.delete(key);
    for (const r of [...this.#producers.values()]) {
      if (r.node === nodeId) this.#dropProducer(r);
      else if (r.targets.delete(nodeId)) this.#pipes.delete(`${r.info.id}|${nodeId}`);
    }
    for (const [id, c] of [...this.#chats]) {
      if (c.node !== nodeId) {
        if (c.targets.delete(nodeId)) this.#pipes.delete(`${id}|${nodeId}`);
        continue;
      }
      this.#chats.delete(id);
      for (const t of c.targets) void this.#handles.get(t)?.then((h) => h.call('closeAdoptedData', id)).catch(() => undefined);
      this.safeEmit('chatclosed', id, c.participantId);
    }
    // Issue 13: participants whose media was there keep that node as theirs: their media is gone
    // (requests fail with CLUSTER_UNAVAILABLE, not land on the home), and a resume through another
    // node moves them (assignNode).
    for (const [key, p] of this.#remotePlacements) if (key.startsWith(`${nodeId}|`) && !p.to) {
      p.to = new Date();
      p.endReason = 'worker-died';
      this.safeEmit('placement', { ...p });
    }
    for (const h of this.#handles.values()) void h.then((x) => x.call('dropPeer', nodeId)).catch(() => undefined);
  }
}
