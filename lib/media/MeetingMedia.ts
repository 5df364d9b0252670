// The media plane of one meeting: one router per worker it uses ("shards"), WebRtcTransports for
// participants, producers/consumers, chat data channels, active-speaker detection, pipes between
// shards, and recovery when a worker dies. Policy (who may do what) is the model's job
// (lib/model); this module only enforces what the media plane itself guarantees: WebRTC
// transports with DTLS-SRTP only, routers only in allowed regions, pipes only on 127.0.0.1.
import type { types as ms } from 'mediasoup';
import type { Logger } from 'pino';
import { ArgumentError, C4vError, MediaError, mediasoupArgument } from '../errors.js';
import { TypedEmitter } from '../events.js';
import type {
  ConsumerInfo,
  DataConsumerInfo,
  MediaSource,
  PlacementEntry,
  ProducerInfo,
  TransportInfo,
} from '../model/types.js';
import type { PoolWorker, WorkerPool } from './WorkerPool.js';

/** The codecs every meeting router offers (Opus; VP8, VP9, H.264 for camera and screen). */
export const DEFAULT_MEDIA_CODECS: ms.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
  { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
  { kind: 'video', mimeType: 'video/VP9', clockRate: 90000, parameters: { 'profile-id': 2 } },
  {
    kind: 'video',
    mimeType: 'video/H264',
    clockRate: 90000,
    parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
  },
];

/** Media-plane options of a MediaCore (and so of every meeting). */
export interface MeetingMediaOptions {
  /**
   * Where participants' WebRtcTransports listen. Default: UDP on 127.0.0.1 (tests, a demo behind
   * a TURN/ingress); a server sets its public or announced address here.
   */
  listenInfos?: ms.TransportListenInfo[];
  /** Participants per router before the meeting spreads to another worker; default 200. */
  participantsPerWorker?: number;
  /** Router codecs; default DEFAULT_MEDIA_CODECS. */
  mediaCodecs?: ms.RouterRtpCodecCapability[];
  /** Encrypt the pipes between a meeting's workers with SRTP too (they stay on 127.0.0.1); default true. */
  srtpPipes?: boolean;
  /** ActiveSpeakerObserver interval in ms; default 300. */
  activeSpeakerInterval?: number;
  /**
   * Meeting size (participants with media) from which the meeting uses every allowed worker and
   * places each new participant on its least-loaded router. One producer's consumers are then
   * served by all workers in parallel (the producer is piped to each), so the serial fan-out per
   * worker, and with it the last copy's delay, grows with N / workers instead of N. Smaller
   * meetings stay on one worker and need no pipes. Default 100; `Infinity` keeps filling a worker
   * up to `participantsPerWorker` before the next.
   */
  spreadAbove?: number;
  /**
   * Issue 14: how a spread meeting fans a producer out. `true` (default): a tree. A participant
   * placed while the meeting is spread receives on a second router of its worker (the worker's
   * "fan-out router"), so a producer's own router carries only the pipes to the fan-out router of
   * every worker (its own worker's included) and each worker starts its share of the copies after
   * at most one send per worker. `false`: the flat fan-out of wave 2 (consumers on the
   * participant's one router, beside the producer's local consumers and its pipes), where the
   * worker sends the pipe copy wherever its consumer set happens to iterate it: often after most
   * local copies, so that the other workers start late. Kept for the benchmark's comparison.
   */
  spreadTree?: boolean;
  /**
   * How long a meeting whose every router died waits for a worker of its allowed regions to
   * (re)appear before it ends with 'worker-failed'; default 30 000 ms. The pool respawns a dead
   * worker within tens of milliseconds, so this only runs out when workers cannot start at all.
   */
  workerRecoveryTimeoutMs?: number;
}

/** A router of the meeting on one worker. */
interface Shard {
  router: ms.Router;
  /**
   * Issue 14: the worker's fan-out router of a spread meeting (spreadTree): the receive transports
   * of participants placed while the meeting was spread live here and get every producer through
   * a pipe, so that no producer's router fans out to consumers directly. Created with the first
   * such participant on this worker; dies and is released with the shard.
   */
  fanout: ms.Router | undefined;
  /** Set while the fan-out router is being created (one per shard). */
  fanoutPending: Promise<ms.Router> | undefined;
  worker: PoolWorker;
  placement: PlacementEntry;
  speaker: ms.ActiveSpeakerObserver | undefined;
  participants: Set<string>;
  dead: boolean;
}

interface ProducerRecord {
  info: ProducerInfo;
  producer: ms.Producer;
  shard: Shard;
}

interface DataProducerRecord {
  id: string;
  participantId: string;
  dataProducer: ms.DataProducer;
  shard: Shard;
}

interface PeerMedia {
  shard: Shard | undefined;
  /** Issue 14: placed while the meeting was spread (tree): its receive transports go on the shard's fan-out router. */
  spread: boolean;
  /** Each transport with the router it lives on (the shard's router, or its fan-out router). */
  transports: Map<string, { transport: ms.WebRtcTransport; direction: 'send' | 'recv'; router: ms.Router }>;
  consumers: Map<string, ms.Consumer>;
  dataConsumers: Map<string, ms.DataConsumer>;
}

export type MeetingMediaEvents = {
  /** A producer closed (by its owner, by the host, or with its worker). */
  producerclosed: [ProducerInfo];
  /** A chat DataProducer closed. */
  chatclosed: [string, string];
  /** A participant's consumer closed because the producer went away. */
  consumerclosed: [string, string];
  /** The dominant speaker changed (participant id). */
  dominantspeaker: [string];
  /** A placement began (no `to`) or ended (`to` and `endReason` set). */
  placement: [PlacementEntry];
  /** A worker died: these participants lost their transports and must reconnect. */
  reconnect: [string[]];
  /** DTLS state of a participant's transport (participant id, transport id, state). */
  transportstate: [string, string, ms.DtlsState];
  /** Recovery after a worker death failed (no worker left in the allowed regions). */
  recoveryfailed: [Error];
  /** Issue 11: the layers a participant's simulcast / SVC consumer sends now (participant id, consumer id, layers). */
  consumerlayers: [string, string, ms.ConsumerLayers | undefined];
  /** Issue 11: a producer's receive score per encoding (producer id, owner id, scores). */
  producerscore: [string, string, ms.ProducerScore[]];
  /** Issue 11: a consumer's send score (participant id, consumer id, score). */
  consumerscore: [string, string, ms.ConsumerScore];
  listenererror: [string, unknown];
};

function toTransportInfo(t: ms.WebRtcTransport, direction: 'send' | 'recv'): TransportInfo {
  return {
    id: t.id,
    direction,
    iceParameters: { ...t.iceParameters },
    iceCandidates: t.iceCandidates.map((c) => ({
      foundation: c.foundation,
      priority: c.priority,
      address: c.address,
      protocol: c.protocol,
      port: c.port,
      type: c.type,
      ...(c.tcpType ? { tcpType: c.tcpType } : {}),
    })),
    dtlsParameters: {
      role: t.dtlsParameters.role,
      fingerprints: t.dtlsParameters.fingerprints.map((f) => ({ algorithm: f.algorithm, value: f.value })),
    },
    ...(t.sctpParameters
      ? {
          sctpParameters: {
            port: t.sctpParameters.port,
            OS: t.sctpParameters.OS,
            MIS: t.sctpParameters.MIS,
            maxMessageSize: t.sctpParameters.maxMessageSize,
          },
        }
      : {}),
  };
}

const SOURCE_KIND: Record<MediaSource, 'audio' | 'video'> = {
  microphone: 'audio',
  camera: 'video',
  'screen-video': 'video',
  'screen-audio': 'audio',
};

/**
 * One meeting's media plane. Created by the Meeting; participants reach it through Participant
 * methods, which check policy first.
 */
export class MeetingMedia extends TypedEmitter<MeetingMediaEvents> {
  readonly meetingId: string;
  readonly rtpCapabilities: ms.RtpCapabilities;
  readonly #pool: WorkerPool;
  readonly #allowedRegions: readonly string[];
  readonly #options: Required<Omit<MeetingMediaOptions, 'listenInfos'>> & { listenInfos: ms.TransportListenInfo[] };
  readonly #logger: Logger;
  readonly #shards = new Set<Shard>();
  readonly #peers = new Map<string, PeerMedia>();
  readonly #producers = new Map<string, ProducerRecord>();
  readonly #dataProducers = new Map<string, DataProducerRecord>();
  /**
   * Producers (and data producers) already piped to a router, key `<id>:<routerId>`, resolving to
   * the id they have there: the same id across workers, a new one on a fan-out router (mediasoup
   * ids are unique per worker, and a fan-out router shares its worker with the shard's router).
   */
  readonly #pipes = new Map<string, Promise<string>>();
  /** The tail of the placement queue (see #shardFor). */
  #placing: Promise<unknown> = Promise.resolve();
  /** Set while a dead shard is being replaced; media calls wait on it. */
  #recovering: Promise<void> | undefined;
  /**
   * Issue 11: producers that died with their worker, by `<participant id>\n<source>`: the next
   * producer of that participant and source replaces it (ProducerInfo.replacesProducerId), so
   * that consumers can swap the old stream for the new one instead of rebuilding everything.
   */
  readonly #lostProducers = new Map<string, ProducerInfo>();
  /** Ends a recovery's wait for a worker when the media closes (see #workerAdded). */
  readonly #onCloseWaiters = new Set<() => void>();
  #closed = false;

  /** Places the meeting's first router on a worker in `allowedRegions` (REGION_UNAVAILABLE otherwise). */
  static async create(params: {
    meetingId: string;
    pool: WorkerPool;
    allowedRegions: readonly string[];
    options?: MeetingMediaOptions;
    logger: Logger;
  }): Promise<MeetingMedia> {
    const media = new MeetingMedia(params);
    await media.#addShard(new Set());
    return media;
  }

  private constructor(params: {
    meetingId: string;
    pool: WorkerPool;
    allowedRegions: readonly string[];
    options?: MeetingMediaOptions;
    logger: Logger;
  }) {
    super();
    const o = params.options ?? {};
    this.meetingId = params.meetingId;
    this.#pool = params.pool;
    this.#allowedRegions = [...params.allowedRegions];
    this.#logger = params.logger.child({ component: 'meetingmedia', meetingId: params.meetingId });
    this.#options = {
      listenInfos: o.listenInfos ?? [{ protocol: 'udp', ip: '127.0.0.1' }],
      participantsPerWorker: o.participantsPerWorker ?? 200,
      mediaCodecs: o.mediaCodecs ?? DEFAULT_MEDIA_CODECS,
      srtpPipes: o.srtpPipes ?? true,
      activeSpeakerInterval: o.activeSpeakerInterval ?? 300,
      spreadAbove: o.spreadAbove ?? 100,
      spreadTree: o.spreadTree ?? true,
      workerRecoveryTimeoutMs: o.workerRecoveryTimeoutMs ?? 30_000,
    };
    if (!Number.isFinite(this.#options.workerRecoveryTimeoutMs) || this.#options.workerRecoveryTimeoutMs < 0) {
      throw new ArgumentError('workerRecoveryTimeoutMs must be a number >= 0');
    }
    if (!(this.#options.spreadAbove >= 1)) throw new ArgumentError('spreadAbove must be a number >= 1 (Infinity turns spreading off)');
    if (typeof this.#options.spreadTree !== 'boolean') throw new ArgumentError('spreadTree must be a boolean');
    if (!Number.isInteger(this.#options.participantsPerWorker) || this.#options.participantsPerWorker < 1) {
      throw new ArgumentError('participantsPerWorker must be a positive integer');
    }
    // Every router of the meeting has the same codecs, so clients see one set of capabilities
    // whichever worker serves them (mediasoup derives them deterministically from the codecs).
    this.rtpCapabilities = { codecs: [], headerExtensions: [] };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The live placements (one per router), oldest first. */
  get placements(): PlacementEntry[] {
    return [...this.#shards].filter((s) => !s.dead).map((s) => s.placement);
  }

  /** Worker ids the meeting's routers run on now. */
  get workerIds(): number[] {
    return [...this.#shards].filter((s) => !s.dead).map((s) => s.worker.id);
  }

  /** The worker id serving a participant, once it has a transport. */
  workerOf(participantId: string): number | undefined {
    return this.#peers.get(participantId)?.shard?.worker.id;
  }

  /** Every open producer of the meeting. */
  get producers(): ProducerInfo[] {
    return [...this.#producers.values()].map((r) => ({ ...r.info }));
  }

  /** Open chat DataProducers as [dataProducerId, participantId]. */
  get chatProducers(): Array<[string, string]> {
    return [...this.#dataProducers.values()].map((r) => [r.id, r.participantId]);
  }

  producer(id: string): ProducerInfo | undefined {
    const r = this.#producers.get(id);
    return r ? { ...r.info } : undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Shards and placement
  // ---------------------------------------------------------------------------------------------

  /** A router of the meeting on `worker`, or on the least-loaded allowed worker not in `exclude`. */
  async #addShard(exclude: Set<PoolWorker>, worker = this.#pool.pick(this.#allowedRegions, exclude)): Promise<Shard> {
    const router = await this.#pool.createRouter(worker, {
      mediaCodecs: this.#options.mediaCodecs,
      appData: { meetingId: this.meetingId },
    });
    if (this.rtpCapabilities.codecs!.length === 0) {
      Object.assign(this.rtpCapabilities, router.rtpCapabilities);
    }
    const shard: Shard = {
      router,
      fanout: undefined,
      fanoutPending: undefined,
      worker,
      placement: { meetingId: this.meetingId, workerId: worker.id, region: worker.region, from: new Date() },
      speaker: undefined,
      participants: new Set(),
      dead: false,
    };
    if (this.#closed) {
      router.close();
      throw new MediaError('CLOSED', 'meeting media closed');
    }
    try {
      shard.speaker = await router.createActiveSpeakerObserver({ interval: this.#options.activeSpeakerInterval });
      shard.speaker.on('dominantspeaker', ({ producer }) => {
        const r = this.#producers.get(producer.id);
        if (r) this.safeEmit('dominantspeaker', r.info.participantId);
      });
    } catch (error) {
      // A router without speaker detection still carries media; say so and go on.
      this.#logger.warn({ err: String(error) }, 'no active speaker observer on this router');
    }
    if (router.closed) {
      // The worker died while the router was being set up (its 'workerclose' has already fired,
      // so the listener above would never run): this is no shard.
      throw new MediaError('WORKER_DIED', `worker ${worker.id} died while the meeting was placed on it`);
    }
    router.on('workerclose', () => this.#onShardDied(shard));
    this.#shards.add(shard);
    this.#logger.info({ workerId: worker.id, region: worker.region }, 'meeting placed on worker');
    this.safeEmit('placement', { ...shard.placement });
    return shard;
  }

  #endPlacement(shard: Shard, reason: NonNullable<PlacementEntry['endReason']>): void {
    if (shard.placement.to) return;
    shard.placement.to = new Date();
    shard.placement.endReason = reason;
    this.safeEmit('placement', { ...shard.placement });
  }

  /** The shard a participant's media goes to: its own, or one with room, or a new one on a free worker. */
  async #shardFor(participantId: string): Promise<Shard> {
    // One placement at a time: two concurrent first transports must not open two routers of this
    // meeting on one worker (piping between them keeps producer ids, which needs distinct workers).
    const run = this.#placing.then(() => this.#placeParticipant(participantId));
    this.#placing = run.catch(() => undefined);
    return run;
  }

  async #placeParticipant(participantId: string): Promise<Shard> {
    while (this.#recovering) await this.#recovering;
    this.#assertOpen();
    const peer = this.#peer(participantId);
    if (peer.shard && !peer.shard.dead) return peer.shard;
    const live = [...this.#shards].filter((s) => !s.dead);
    const spreading = this.#placed(live) >= this.#options.spreadAbove;
    let shard = spreading ? await this.#spreadShard(live) : live.find((s) => s.participants.size < this.#options.participantsPerWorker);
    if (!shard) {
      try {
        shard = await this.#addShard(new Set(live.map((s) => s.worker)));
      } catch (error) {
        // No further worker in the allowed regions: keep the meeting on its routers (more load on
        // them) rather than refuse, and never go to another region.
        if (!(error instanceof C4vError && error.code === 'REGION_UNAVAILABLE') || live.length === 0) throw error;
        shard = live.reduce((a, b) => (a.participants.size <= b.participants.size ? a : b));
      }
    }
    // A participant of a spread meeting receives on the worker's fan-out router (the tree).
    const tree = spreading && this.#options.spreadTree;
    if (tree) await this.#fanoutOf(shard);
    // Another call may have assigned the participant while this one awaited.
    if (peer.shard && !peer.shard.dead) return peer.shard;
    peer.shard = shard;
    peer.spread = tree;
    shard.participants.add(participantId);
    return shard;
  }

  /**
   * The shard's fan-out router (issue 14), created once. It has no active-speaker observer (no
   * producer of a client lives here, only piped copies) and dies with the shard's worker.
   */
  #fanoutOf(shard: Shard): Promise<ms.Router> {
    if (shard.fanout && !shard.fanout.closed) return Promise.resolve(shard.fanout);
    shard.fanoutPending ??= (async () => {
      const router = await this.#pool.createRouter(shard.worker, { mediaCodecs: this.#options.mediaCodecs, appData: { meetingId: this.meetingId, fanout: true } });
      if (shard.dead || this.#closed || router.closed) {
        router.close();
        throw new MediaError(this.#closed ? 'CLOSED' : 'WORKER_DIED', `worker ${shard.worker.id} went away while the meeting's fan-out router was set up`);
      }
      router.on('workerclose', () => this.#onShardDied(shard));
      shard.fanout = router;
      return router;
    })().finally(() => {
      shard.fanoutPending = undefined;
    });
    return shard.fanoutPending;
  }

  #placed(live: Shard[]): number {
    return live.reduce((n, s) => n + s.participants.size, 0);
  }

  /** A large meeting: a router on a worker it does not use yet, else its least-loaded router. */
  async #spreadShard(live: Shard[]): Promise<Shard> {
    try {
      return await this.#addShard(new Set(live.map((s) => s.worker)));
    } catch (error) {
      if (!(error instanceof C4vError && error.code === 'REGION_UNAVAILABLE') || live.length === 0) throw error;
      return live.reduce((a, b) => (a.participants.size <= b.participants.size ? a : b));
    }
  }

  #onShardDied(shard: Shard): void {
    if (shard.dead || this.#closed) return;
    shard.dead = true;
    this.#shards.delete(shard);
    if (this.#pool.stopping) {
      // The server is shutting down and its workers go first (a service manager signals every
      // process): nothing to move, the meeting is about to close.
      this.#endPlacement(shard, 'meeting-ended');
      this.#forgetPipesTo(shard);
      this.#logger.info({ workerId: shard.worker.id }, 'worker of the meeting stopped during shutdown');
      return;
    }
    this.#endPlacement(shard, 'worker-died');
    const affected: string[] = [];
    for (const pid of shard.participants) {
      const peer = this.#peers.get(pid);
      if (!peer) continue;
      // Its transports, producers and consumers died with the router; forget them.
      peer.shard = undefined;
      peer.transports.clear();
      peer.consumers.clear();
      peer.dataConsumers.clear();
      affected.push(pid);
    }
    shard.participants.clear();
    this.#forgetPipesTo(shard);
    // The meeting always keeps one router (its capabilities, a place for the next transport).
    const needNew = ![...this.#shards].some((s) => !s.dead);
    // One microtask later the pool has seen the exit too (mediasoup closes a dead worker's routers
    // and then emits its 'died' in one go): only then is it known whether the worker crashed or
    // was stopped, and whether a shutdown is under way.
    const recovery = Promise.resolve()
      .then(() => {
        const fields = { workerId: shard.worker.id };
        if (this.#pool.stopping) {
          this.#logger.info(fields, 'worker of the meeting stopped during shutdown');
          return false;
        }
        if (shard.worker.stoppedCleanly) this.#logger.info(fields, 'worker of the meeting was stopped; moving its media');
        else this.#logger.error(fields, 'worker of the meeting died; moving its media');
        return (needNew ? this.#replaceShard(shard.worker) : Promise.resolve()).then(() => true);
      })
      .then(
      (moved) => {
        // During a shutdown the participants are about to be closed: no reconnect for them.
        if (moved && !this.#closed) this.safeEmit('reconnect', affected);
      },
      (error: unknown) => {
        if (this.#closed || this.#pool.stopping) return;
        this.#logger.error({ err: String(error) }, 'could not move the meeting to another worker');
        this.safeEmit('recoveryfailed', error instanceof Error ? error : new Error(String(error)));
        this.safeEmit('reconnect', affected);
      },
    );
    const tracked = recovery.finally(() => {
      if (this.#recovering === tracked) this.#recovering = undefined;
    });
    this.#recovering = tracked;
  }

  #forgetPipesTo(shard: Shard): void {
    const ends = [`:${shard.router.id}`, ...(shard.fanout ? [`:${shard.fanout.id}`] : [])];
    for (const key of [...this.#pipes.keys()]) if (ends.some((e) => key.endsWith(e))) this.#pipes.delete(key);
  }

  /**
   * A new router on a live worker of an allowed region. Several workers may die at once (a
   * SIGKILL to the process group, an OOM kill): a worker that looks alive may be dying and fail
   * with WORKER_DIED. Such a worker is skipped, and with none left the meeting waits for the
   * pool's respawn, until `workerRecoveryTimeoutMs` has passed (then REGION_UNAVAILABLE).
   */
  async #replaceShard(dead: PoolWorker): Promise<void> {
    const exclude = new Set<PoolWorker>([dead]);
    const deadline = Date.now() + this.#options.workerRecoveryTimeoutMs;
    let lastError: unknown;
    while (!this.#closed) {
      let worker: PoolWorker;
      try {
        worker = this.#pool.pick(this.#allowedRegions, exclude);
      } catch (error) {
        if (!(error instanceof C4vError && error.code === 'REGION_UNAVAILABLE')) throw error;
        await this.#workerAdded(exclude, deadline, lastError);
        continue;
      }
      try {
        await this.#addShard(exclude, worker);
        return;
      } catch (error) {
        if (!(error instanceof C4vError && (error.code === 'WORKER_DIED' || error.code === 'REGION_UNAVAILABLE'))) throw error;
        this.#logger.warn({ workerId: worker.id, err: error.message }, 'the replacement worker is gone too; trying the next one');
        exclude.add(worker);
        lastError = error;
      }
    }
  }

  /** Resolves when the pool has a live worker of the allowed regions not in `exclude`; rejects at `deadline`. */
  #workerAdded(exclude: ReadonlySet<PoolWorker>, deadline: number, lastError: unknown): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const available = (): boolean => {
        try {
          this.#pool.pick(this.#allowedRegions, exclude);
          return true;
        } catch {
          return false;
        }
      };
      const done = (): void => {
        clearTimeout(timer);
        this.#pool.off('workeradded', onAdded);
        this.#onCloseWaiters.delete(onAdded);
      };
      const onAdded = (): void => {
        if (!available() && !this.#closed) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        const cause = lastError instanceof Error ? ` (last: ${lastError.message})` : '';
        reject(new MediaError('REGION_UNAVAILABLE', `no media worker came back in the allowed regions within ${this.#options.workerRecoveryTimeoutMs} ms${cause}`));
      }, Math.max(0, deadline - Date.now()));
      this.#pool.on('workeradded', onAdded);
      this.#onCloseWaiters.add(onAdded);
      // A respawn may have finished between the failed pick and this subscription.
      onAdded();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Participants' transports
  // ---------------------------------------------------------------------------------------------

  #peer(participantId: string): PeerMedia {
    let peer = this.#peers.get(participantId);
    if (!peer) {
      peer = { shard: undefined, spread: false, transports: new Map(), consumers: new Map(), dataConsumers: new Map() };
      this.#peers.set(participantId, peer);
    }
    return peer;
  }

  #transport(participantId: string, transportId: string, direction?: 'send' | 'recv'): ms.WebRtcTransport {
    return this.#transportEntry(participantId, transportId, direction).transport;
  }

  #transportEntry(participantId: string, transportId: string, direction?: 'send' | 'recv'): { transport: ms.WebRtcTransport; direction: 'send' | 'recv'; router: ms.Router } {
    const t = this.#peers.get(participantId)?.transports.get(transportId);
    if (!t || t.transport.closed) throw new MediaError('NOT_FOUND', `no transport ${transportId} of this participant`);
    if (direction && t.direction !== direction) {
      throw new ArgumentError(`transport ${transportId} is a ${t.direction} transport, not ${direction}`);
    }
    return t;
  }

  /** The router a participant's new transport of `direction` goes on: the fan-out router for a spread receiver. */
  #routerOf(peer: PeerMedia, shard: Shard, direction: 'send' | 'recv' | undefined): ms.Router {
    return direction === 'recv' && peer.spread && shard.fanout ? shard.fanout : shard.router;
  }

  #assertOpen(): void {
    if (this.#closed) throw new MediaError('CLOSED', 'meeting media closed');
  }

  /** A WebRtcTransport (ICE + DTLS-SRTP, SCTP for chat) on the participant's router. */
  async createTransport(participantId: string, direction: 'send' | 'recv'): Promise<TransportInfo> {
    if (direction !== 'send' && direction !== 'recv') throw new ArgumentError(`direction must be 'send' or 'recv'`);
    let shard: Shard;
    let router: ms.Router;
    let transport: ms.WebRtcTransport;
    for (let attempt = 1; ; attempt++) {
      shard = await this.#shardFor(participantId);
      router = this.#routerOf(this.#peer(participantId), shard, direction);
      try {
        transport = await router.createWebRtcTransport({
          listenInfos: this.#options.listenInfos,
          enableSctp: true,
          appData: { participantId, direction },
        });
        break;
      } catch (error) {
        // The shard's worker died under the request (several workers dying at once): its
        // replacement is under way, so place the participant again rather than fail the client.
        if (!shard.dead || this.#closed || attempt >= 3) throw error;
      }
    }
    const peer = this.#peers.get(participantId);
    if (!peer || peer.shard !== shard || this.#closed) {
      transport.close();
      throw new MediaError('CLOSED', 'participant media released while creating a transport');
    }
    peer.transports.set(transport.id, { transport, direction, router });
    transport.on('dtlsstatechange', (state) => this.safeEmit('transportstate', participantId, transport.id, state));
    transport.observer.once('close', () => peer.transports.delete(transport.id));
    return toTransportInfo(transport, direction);
  }

  async connectTransport(participantId: string, transportId: string, dtlsParameters: ms.DtlsParameters): Promise<void> {
    if (typeof dtlsParameters !== 'object' || dtlsParameters === null || !Array.isArray(dtlsParameters.fingerprints)) {
      throw new ArgumentError('dtlsParameters must have fingerprints');
    }
    const transport = this.#transport(participantId, transportId);
    // mediasoup validates the client's DTLS parameters: its refusal is the client's fault.
    await mediasoupArgument(() => transport.connect({ dtlsParameters }));
  }

  async restartIce(participantId: string, transportId: string): Promise<TransportInfo['iceParameters']> {
    return { ...(await this.#transport(participantId, transportId).restartIce()) };
  }

  // Gateway hooks (issue 6): a server-side SRTP-only PlainTransport for a gateway participant
  // (dial-in, the benchmark generator) is created on the participant's router and then used like
  // its WebRtcTransports for produce/consume. See lib/media/GatewayTransport.ts.

  /**
   * @internal The router serving a participant (placing it on a shard first). With `direction`
   * 'recv', a participant of a spread meeting gets its worker's fan-out router (issue 14); pass
   * the same router to _adoptTransport. Without `direction`: the shard's router, as before.
   */
  async _routerFor(participantId: string, direction?: 'send' | 'recv'): Promise<ms.Router> {
    const shard = await this.#shardFor(participantId);
    return this.#routerOf(this.#peer(participantId), shard, direction);
  }

  /**
   * @internal Registers a transport created on _routerFor()'s router as the participant's, so
   * that produce() and consume() accept its id. Only produce/consume/close apply to it; the
   * WebRTC calls (connect with DTLS, ICE restart) are not for gateway transports.
   */
  _adoptTransport(participantId: string, transport: ms.Transport, direction: 'send' | 'recv', router?: ms.Router): void {
    const peer = this.#peers.get(participantId);
    const shard = peer?.shard;
    const on = router ?? shard?.router;
    if (!peer || !shard || this.#closed || (on !== shard.router && on !== shard.fanout)) {
      transport.close();
      throw new MediaError('CLOSED', 'participant media released while creating a transport');
    }
    // produce/consume only use the Transport base class, which a PlainTransport shares.
    peer.transports.set(transport.id, { transport: transport as ms.WebRtcTransport, direction, router: on! });
    transport.observer.once('close', () => peer.transports.delete(transport.id));
  }

  /** DTLS state of a participant's transport. */
  transportState(participantId: string, transportId: string): ms.DtlsState {
    return this.#transport(participantId, transportId).dtlsState;
  }

  // ---------------------------------------------------------------------------------------------
  // Producers and consumers
  // ---------------------------------------------------------------------------------------------

  async produce(
    participantId: string,
    params: { transportId: string; source: MediaSource; kind: 'audio' | 'video'; rtpParameters: ms.RtpParameters; paused?: boolean },
  ): Promise<ProducerInfo> {
    if (!(params.source in SOURCE_KIND)) throw new ArgumentError(`unknown media source ${JSON.stringify(params.source)}`);
    if (SOURCE_KIND[params.source] !== params.kind) {
      throw new ArgumentError(`source ${params.source} carries ${SOURCE_KIND[params.source]}, not ${String(params.kind)}`);
    }
    const transport = this.#transport(participantId, params.transportId, 'send');
    for (const r of this.#producers.values()) {
      if (r.info.participantId === participantId && r.info.source === params.source) {
        throw new MediaError('INVALID_STATE', `this participant already publishes ${params.source}`);
      }
    }
    const shard = this.#peers.get(participantId)!.shard!;
    // mediasoup validates the client's RTP parameters (TypeError / UnsupportedError): INVALID_ARGUMENT.
    const producer = await mediasoupArgument(() =>
      transport.produce({
        kind: params.kind,
        rtpParameters: params.rtpParameters,
        paused: params.paused ?? false,
        appData: { participantId, source: params.source },
      }),
    );
    const info: ProducerInfo = { id: producer.id, participantId, source: params.source, kind: params.kind, paused: producer.paused };
    const lostKey = `${participantId}\n${params.source}`;
    const replaces = this.#lostProducers.get(lostKey)?.id;
    this.#lostProducers.delete(lostKey);
    const record: ProducerRecord = { info, producer, shard };
    this.#producers.set(producer.id, record);
    producer.on('score', (scores) => this.safeEmit('producerscore', producer.id, participantId, scores));
    producer.observer.once('close', () => {
      // mediasoup marks the worker died before it closes its routers (and so this producer).
      if (shard.worker.worker.died && !this.#closed) this.#lostProducers.set(lostKey, { ...info });
      this.#producers.delete(producer.id);
      for (const key of [...this.#pipes.keys()]) if (key.startsWith(`${producer.id}:`)) this.#pipes.delete(key);
      this.safeEmit('producerclosed', { ...info });
    });
    if (params.source === 'microphone' && shard.speaker && !shard.speaker.closed) {
      await shard.speaker.addProducer({ producerId: producer.id }).catch((error: unknown) => {
        this.#logger.warn({ err: String(error) }, 'could not watch a microphone for the active speaker');
      });
    }
    return replaces ? { ...info, replacesProducerId: replaces } : { ...info };
  }

  async pauseProducer(producerId: string): Promise<ProducerInfo> {
    const r = this.#producerRecord(producerId);
    await r.producer.pause();
    r.info.paused = true;
    return { ...r.info };
  }

  async resumeProducer(producerId: string): Promise<ProducerInfo> {
    const r = this.#producerRecord(producerId);
    await r.producer.resume();
    r.info.paused = false;
    return { ...r.info };
  }

  /** mediasoup's receive statistics of a producer (packet counts per encoding). */
  async producerStats(producerId: string): Promise<ms.ProducerStat[]> {
    return this.#producerRecord(producerId).producer.getStats();
  }

  closeProducer(producerId: string): void {
    this.#producerRecord(producerId).producer.close();
  }

  #producerRecord(producerId: string): ProducerRecord {
    const r = this.#producers.get(producerId);
    if (!r) throw new MediaError('NOT_FOUND', `no producer ${producerId} in this meeting`);
    return r;
  }

  /**
   * Makes `id` (a producer or data producer of `from`'s router) available on `target` (a shard's
   * router or fan-out router) through a pipe, once per target; resolves to its id there.
   */
  async #pipe(kind: 'producer' | 'data', id: string, from: Shard, target: ms.Router): Promise<string> {
    if (from.router === target) return id;
    const key = `${id}:${target.id}`;
    let pending = this.#pipes.get(key);
    if (!pending) {
      // A fan-out router shares its worker with a shard's router, which may hold the same id.
      const keepId = ![...this.#shards].some((s) => s.fanout === target);
      pending = from.router
        .pipeToRouter({
          ...(kind === 'producer' ? { producerId: id } : { dataProducerId: id }),
          router: target,
          keepId,
          // Pipes stay inside the machine (loopback) and are SRTP-encrypted as well.
          listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
          enableSrtp: this.#options.srtpPipes,
          enableSctp: true,
        })
        .then((r) => (kind === 'producer' ? r.pipeProducer!.id : r.pipeDataProducer!.id));
      this.#pipes.set(key, pending);
      pending.catch(() => this.#pipes.delete(key));
    }
    return pending;
  }

  async consume(
    participantId: string,
    params: { transportId: string; producerId: string; rtpCapabilities: ms.RtpCapabilities },
  ): Promise<ConsumerInfo> {
    const { transport, router } = this.#transportEntry(participantId, params.transportId, 'recv');
    const r = this.#producerRecord(params.producerId);
    const peer = this.#peers.get(participantId)!;
    const localId = await this.#pipe('producer', r.info.id, r.shard, router);
    // canConsume() and consume() validate the client's RTP capabilities: a refusal is INVALID_ARGUMENT.
    if (!(await mediasoupArgument(async () => router.canConsume({ producerId: localId, rtpCapabilities: params.rtpCapabilities })))) {
      throw new MediaError('INVALID_ARGUMENT', `these RTP capabilities cannot receive producer ${r.info.id}`);
    }
    const consumer = await mediasoupArgument(() =>
      transport.consume({
        producerId: localId,
        rtpCapabilities: params.rtpCapabilities,
        // Starts paused: the client resumes once its side is ready (no lost key frame).
        paused: true,
        appData: { participantId, producerId: r.info.id },
      }),
    );
    peer.consumers.set(consumer.id, consumer);
    consumer.on('layerschange', (layers) => this.safeEmit('consumerlayers', participantId, consumer.id, layers));
    consumer.on('score', (score) => this.safeEmit('consumerscore', participantId, consumer.id, score));
    consumer.observer.once('close', () => {
      peer.consumers.delete(consumer.id);
      this.safeEmit('consumerclosed', participantId, consumer.id);
    });
    return {
      id: consumer.id,
      producerId: r.info.id,
      participantId: r.info.participantId,
      source: r.info.source,
      kind: consumer.kind,
      rtpParameters: consumer.rtpParameters,
      paused: consumer.paused,
    };
  }

  #consumer(participantId: string, consumerId: string): ms.Consumer {
    const c = this.#peers.get(participantId)?.consumers.get(consumerId);
    if (!c) throw new MediaError('NOT_FOUND', `no consumer ${consumerId} of this participant`);
    return c;
  }

  async resumeConsumer(participantId: string, consumerId: string): Promise<void> {
    await this.#consumer(participantId, consumerId).resume();
  }

  async pauseConsumer(participantId: string, consumerId: string): Promise<void> {
    await this.#consumer(participantId, consumerId).pause();
  }

  async setPreferredLayers(participantId: string, consumerId: string, layers: ms.ConsumerLayers): Promise<void> {
    if (typeof layers !== 'object' || layers === null || !Number.isInteger(layers.spatialLayer) || layers.spatialLayer < 0) {
      throw new ArgumentError('preferred layers need a spatialLayer >= 0');
    }
    if (layers.temporalLayer !== undefined && (!Number.isInteger(layers.temporalLayer) || layers.temporalLayer < 0)) {
      throw new ArgumentError('temporalLayer must be an integer >= 0');
    }
    const consumer = this.#consumer(participantId, consumerId);
    if (consumer.type !== 'simulcast' && consumer.type !== 'svc') {
      throw new MediaError('INVALID_STATE', `consumer ${consumerId} has no layers (type ${consumer.type})`);
    }
    await consumer.setPreferredLayers(layers);
  }

  /** Issue 11: a participant's producers that died with their worker and were not produced again. */
  lostProducers(participantId: string): ProducerInfo[] {
    return [...this.#lostProducers.values()].filter((i) => i.participantId === participantId).map((i) => ({ ...i }));
  }

  /** Issue 11: mediasoup's send statistics of one of a participant's consumers. */
  async consumerStats(participantId: string, consumerId: string): Promise<ms.ConsumerStat[]> {
    return (await this.#consumer(participantId, consumerId).getStats()).filter((s): s is ms.ConsumerStat => s.type === 'outbound-rtp');
  }

  /**
   * Issue 10: closes one of a participant's transports. Its producers, consumers, data producers
   * and data consumers close with it (mediasoup closes them; the usual close events follow).
   */
  closeTransport(participantId: string, transportId: string): void | Promise<void> {
    this.#transport(participantId, transportId).close();
  }

  /** The consumer's preferred and current layers (simulcast / SVC). */
  consumerLayers(participantId: string, consumerId: string): { type: string; preferred?: ms.ConsumerLayers; current?: ms.ConsumerLayers } {
    const c = this.#consumer(participantId, consumerId);
    return { type: c.type, ...(c.preferredLayers ? { preferred: c.preferredLayers } : {}), ...(c.currentLayers ? { current: c.currentLayers } : {}) };
  }

  // ---------------------------------------------------------------------------------------------
  // Chat (SCTP data channels)
  // ---------------------------------------------------------------------------------------------

  async produceData(participantId: string, transportId: string, sctpStreamParameters: ms.SctpStreamParameters): Promise<string> {
    const transport = this.#transport(participantId, transportId, 'send');
    const shard = this.#peers.get(participantId)!.shard!;
    const dp = await mediasoupArgument(() =>
      transport.produceData({ sctpStreamParameters, label: 'chat', protocol: 'c4v-chat', appData: { participantId } }),
    );
    const record: DataProducerRecord = { id: dp.id, participantId, dataProducer: dp, shard };
    this.#dataProducers.set(dp.id, record);
    dp.observer.once('close', () => {
      this.#dataProducers.delete(dp.id);
      for (const key of [...this.#pipes.keys()]) if (key.startsWith(`${dp.id}:`)) this.#pipes.delete(key);
      this.safeEmit('chatclosed', dp.id, participantId);
    });
    return dp.id;
  }

  async consumeData(participantId: string, transportId: string, dataProducerId: string): Promise<DataConsumerInfo> {
    const { transport, router } = this.#transportEntry(participantId, transportId, 'recv');
    const r = this.#dataProducers.get(dataProducerId);
    if (!r) throw new MediaError('NOT_FOUND', `no chat channel ${dataProducerId} in this meeting`);
    const peer = this.#peers.get(participantId)!;
    const localId = await this.#pipe('data', r.id, r.shard, router);
    const dc = await transport.consumeData({ dataProducerId: localId, appData: { participantId } });
    peer.dataConsumers.set(dc.id, dc);
    dc.observer.once('close', () => peer.dataConsumers.delete(dc.id));
    return {
      id: dc.id,
      dataProducerId: r.id,
      participantId: r.participantId,
      label: dc.label,
      sctpStreamParameters: { streamId: dc.sctpStreamParameters!.streamId, ordered: dc.sctpStreamParameters!.ordered },
    };
  }

  /** Closes every chat channel (chat was switched off). */
  closeChat(): void {
    for (const r of [...this.#dataProducers.values()]) r.dataProducer.close();
  }

  /** Closes one chat DataProducer. */
  closeDataProducer(id: string): void {
    this.#dataProducers.get(id)?.dataProducer.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Teardown
  // ---------------------------------------------------------------------------------------------

  /** Closes everything a participant has on the media plane (its producers go with its transports). */
  releaseParticipant(participantId: string): void {
    const peer = this.#peers.get(participantId);
    if (!peer) return;
    this.#peers.delete(participantId);
    for (const key of [...this.#lostProducers.keys()]) if (key.startsWith(`${participantId}\n`)) this.#lostProducers.delete(key);
    peer.shard?.participants.delete(participantId);
    for (const { transport } of [...peer.transports.values()]) transport.close();
    // An emptied extra router is given back (the meeting keeps at least one).
    const shard = peer.shard;
    if (shard && !shard.dead && shard.participants.size === 0 && [...this.#shards].filter((s) => !s.dead).length > 1) {
      this.#shards.delete(shard);
      shard.dead = true;
      this.#endPlacement(shard, 'released');
      this.#forgetPipesTo(shard);
      shard.router.close();
      shard.fanout?.close();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Issue 13: hooks for the cluster's media plane (lib/cluster/MediaAgent.ts). A producer of
  // another node arrives over a PipeTransport on one of this meeting's routers and is adopted
  // here, so that consume() and the pipes between this node's shards work for it unchanged.
  // ---------------------------------------------------------------------------------------------

  /** @internal The router a cross-node pipe of this meeting lands on (the oldest live shard's). */
  _primaryRouter(): ms.Router {
    this.#assertOpen();
    const shard = [...this.#shards].find((s) => !s.dead);
    if (!shard) throw new MediaError('CLOSED', 'no live router in this meeting');
    return shard.router;
  }

  /** @internal The router a producer of this node lives on (the source of a cross-node pipe). */
  _routerOfProducer(producerId: string): ms.Router {
    return this.#producerRecord(producerId).shard.router;
  }

  /** @internal Pipes a producer of this node onto the primary router, where the cross-node pipes sit. */
  async _bringToPrimary(producerId: string): Promise<void> {
    const r = this.#producerRecord(producerId);
    const primary = [...this.#shards].find((s) => !s.dead);
    if (!primary) throw new MediaError('CLOSED', 'no live router in this meeting');
    await this.#pipe('producer', producerId, r.shard, primary.router);
  }

  /**
   * @internal Registers a producer that a PipeTransport on `router` produced for another node's
   * producer (same id), so that this node's participants can consume it. It closes with its pipe.
   */
  _adoptProducer(router: ms.Router, producer: ms.Producer, info: ProducerInfo): void {
    const shard = [...this.#shards].find((s) => s.router === router && !s.dead);
    if (!shard || this.#closed) {
      producer.close();
      throw new MediaError('CLOSED', 'the router of this pipe is gone');
    }
    const record: ProducerRecord = { info: { ...info, paused: producer.paused }, producer, shard };
    this.#producers.set(producer.id, record);
    producer.observer.once('close', () => {
      this.#producers.delete(producer.id);
      for (const key of [...this.#pipes.keys()]) if (key.startsWith(`${producer.id}:`)) this.#pipes.delete(key);
      this.safeEmit('producerclosed', { ...record.info });
    });
  }

  /** @internal Pipes a chat DataProducer of this node onto the primary router (cross-node pipes sit there). */
  async _bringDataToPrimary(dataProducerId: string): Promise<void> {
    const r = this.#dataProducers.get(dataProducerId);
    if (!r) throw new MediaError('NOT_FOUND', `no chat channel ${dataProducerId} in this meeting`);
    const primary = [...this.#shards].find((s) => !s.dead);
    if (!primary) throw new MediaError('CLOSED', 'no live router in this meeting');
    await this.#pipe('data', dataProducerId, r.shard, primary.router);
  }

  /** @internal Registers another node's chat DataProducer that a PipeTransport on `router` produced here (same id). */
  _adoptDataProducer(router: ms.Router, dp: ms.DataProducer, participantId: string): void {
    const shard = [...this.#shards].find((s) => s.router === router && !s.dead);
    if (!shard || this.#closed) {
      dp.close();
      throw new MediaError('CLOSED', 'the router of this pipe is gone');
    }
    this.#dataProducers.set(dp.id, { id: dp.id, participantId, dataProducer: dp, shard });
    dp.observer.once('close', () => {
      this.#dataProducers.delete(dp.id);
      for (const key of [...this.#pipes.keys()]) if (key.startsWith(`${dp.id}:`)) this.#pipes.delete(key);
      this.safeEmit('chatclosed', dp.id, participantId);
    });
  }

  /** Closes every router. Idempotent. */
  close(reason: NonNullable<PlacementEntry['endReason']> = 'meeting-ended'): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const wake of [...this.#onCloseWaiters]) wake();
    for (const shard of this.#shards) {
      shard.dead = true;
      this.#endPlacement(shard, reason);
      shard.router.close();
      shard.fanout?.close();
    }
    this.#shards.clear();
    this.#peers.clear();
  }
}

/**
 * What a Meeting needs from its media plane: MeetingMedia's public members. A cluster node gives
 * its home meetings a ClusterMedia (lib/cluster/) with the same shape, whose participants' media
 * may live on other nodes.
 */
export type MediaPlane = Omit<
  { [K in keyof MeetingMedia]: MeetingMedia[K] },
  keyof TypedEmitter<MeetingMediaEvents> | ClusterHooks
> &
  TypedEmitter<MeetingMediaEvents>;

/** The hooks only a node's own media agent uses (not part of what a Meeting needs). */
type ClusterHooks = '_primaryRouter' | '_routerOfProducer' | '_bringToPrimary' | '_adoptProducer' | '_bringDataToPrimary' | '_adoptDataProducer';
