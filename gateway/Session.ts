import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { types as ms } from 'mediasoup';
import type { Logger } from 'pino';
import type { CloseReason, PollInit, ProducerInfo } from '../lib/model/types.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayMeeting, GatewayParticipant } from './model.js';
import {
  closeReasonToWire,
  pb,
  producerToWire,
  roleToWire,
  rtpCapabilitiesToWire,
  stateToWire,
  type NotificationProps,
} from './wire.js';

/** Where a session sends its notifications and how it ends the connection (a Connection). */
export interface SessionSink {
  notify(n: NotificationProps): void;
  /** The participant's session ended: send Closing and close the WebSocket with its code. */
  end(reason: CloseReason): void;
}

/**
 * @internal Issue 13b (cluster mode): where a meeting's home writes what a resume needs (the
 * session's participant and the hash of its current resume token), so that a node taking the home
 * role over can restore the session. `save` is awaited before a new token goes out, never throws,
 * and is bounded in time. `socket` is the connection's socket (the cluster edge knows its node).
 */
export interface SessionStore {
  save(session: Session, socket: unknown): Promise<void>;
}

/** SHA-256 of a resume token: what is compared, and all that leaves the process. */
function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** ParticipantInfo for the wire. */
export function participantToWire(p: GatewayParticipant): ReturnType<typeof pb.ParticipantInfo.create> {
  return pb.ParticipantInfo.create({
    participantId: p.id,
    displayName: p.displayName,
    role: roleToWire(p.role),
    state: stateToWire(p.state),
    e2eeCapable: p.e2eeCapable,
    admittedSeq: p.admittedSeq ?? 0,
  });
}

/**
 * A participant as the gateway holds it: the model's Participant, the connection it is attached
 * to (none during the reconnect grace period), the secret that lets a new connection resume it,
 * and the producers and consumers it opened (for metrics). Turns the participant's events into
 * notifications, and outlives a lost connection by the grace period.
 *
 * The resume token is single use: `resume()` accepts it only while the session is detached and
 * within its grace period, and replaces it with a fresh one, so a token seen once (a replay, a
 * leaked log of an old connection) can never take over the live session.
 */
export class Session {
  #resumeToken = randomBytes(24).toString('base64url');
  #tokenHash = tokenDigest(this.#resumeToken);
  /** Issue 13b: restored at a new home; the first resume tells the client to build its media again. */
  #mediaLost = false;
  /** Issue 13b: the reconnect notice of a restored session waits for the client's next request (or this timer). */
  #noticeTimer: NodeJS.Timeout | undefined;
  readonly producers = new Map<string, { kind: 'audio' | 'video'; transportId: string }>();
  readonly consumers = new Map<string, { kind: 'audio' | 'video'; producerId: string; transportId: string }>();
  /** Issue 11: the participant's transports and chat channels, for close_transport and the reconnect notice. */
  readonly transports = new Set<string>();
  readonly dataChannels = new Map<string, { role: 'producer' | 'consumer'; transportId: string }>();
  readonly logger: Logger;
  #sink: SessionSink | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  #joinAt: bigint;
  #mediaObserved = false;
  #closed = false;
  readonly #unsubscribe: Array<() => void> = [];

  constructor(
    readonly meeting: GatewayMeeting,
    readonly participant: GatewayParticipant,
    private readonly metrics: GatewayMetrics,
    logger: Logger,
    joinAt: bigint,
    private readonly onClose: (s: Session) => void,
  ) {
    this.logger = logger;
    this.#joinAt = joinAt;
    this.#subscribe();
  }

  get closed(): boolean {
    return this.#closed;
  }

  get attached(): boolean {
    return this.#sink !== undefined;
  }

  /** The token that resumes this session now (sent to the client in JoinOk; never logged). */
  get resumeToken(): string {
    return this.#resumeToken;
  }

  /** Whether the session can be resumed now: its connection is gone and the grace period runs. */
  get resumable(): boolean {
    return !this.#closed && this.#sink === undefined && this.#graceTimer !== undefined;
  }

  /** Hex SHA-256 of the current resume token (issue 13b: what the cluster stores, never the token). */
  get tokenHash(): string {
    return this.#tokenHash.toString('hex');
  }

  /** Constant-time check of a presented resume token (digests compared, so lengths always agree). */
  matches(token: string): boolean {
    return timingSafeEqual(tokenDigest(token), this.#tokenHash);
  }

  /**
   * Resumes the session on `sink` with `token`: true (and the token is replaced by a new one) only
   * while the session is resumable and the token is the current one. A refused resume changes
   * nothing, so a replay cannot disturb a live connection.
   */
  resume(sink: SessionSink, token: string): boolean {
    if (!this.resumable || !this.matches(token)) return false;
    this.#resumeToken = randomBytes(24).toString('base64url');
    this.#tokenHash = tokenDigest(this.#resumeToken);
    this.attach(sink);
    return true;
  }

  /**
   * @internal Issue 13b: a session restored at a node that took the meeting's home role over. It
   * knows only the hash of the client's latest token (the old home wrote it through), and starts
   * detached: the reconnect grace runs from now.
   */
  _restored(tokenHash: string, graceMs: number): void {
    if (!/^[0-9a-f]{64}$/.test(tokenHash)) throw new TypeError('a restored session needs a hex SHA-256 token hash');
    this.#resumeToken = '';
    this.#tokenHash = Buffer.from(tokenHash, 'hex');
    this.#mediaLost = true;
    this.logger.info({ graceMs }, 'session restored from the previous home; waiting for the client to resume');
    this.#graceTimer = setTimeout(() => {
      this.logger.info('reconnect grace period over (restored session)');
      this.participant.close('connection-lost');
    }, graceMs);
    this.#graceTimer.unref();
  }

  /**
   * Issue 13b: called after a resume's response went out. A restored session's media plane died
   * with the old home (its transports, producers and consumers are gone everywhere): a reconnect
   * notice tells the client to build all of it again, once. It goes out just before the answer
   * to the client's next request (the SDK's catch-up request after a resume), or after a short
   * delay without one: a notice right behind the resume answer can reach a client before it
   * listens on the new connection (both frames read at once), and would be lost.
   */
  afterResume(): void {
    if (!this.#mediaLost || this.#closed) return;
    if (this.participant.state !== 'admitted') {
      this.#mediaLost = false; // waiting: media starts at admission as usual
      return;
    }
    clearTimeout(this.#noticeTimer);
    this.#noticeTimer = setTimeout(() => this.beforeRequest(), 500);
    this.#noticeTimer.unref();
  }

  /** Issue 13b: a request of the attached client is about to be answered: send a pending reconnect notice first. */
  beforeRequest(): void {
    if (!this.#mediaLost || this.#closed || this.#sink === undefined) return;
    this.#mediaLost = false;
    clearTimeout(this.#noticeTimer);
    this.#noticeTimer = undefined;
    this.#notify({
      reconnect: {
        closeReason: closeReasonToWire('server-shutdown'),
        transportIds: [],
        producers: [],
        consumerIds: [],
        dataProducerIds: [],
        dataConsumerIds: [],
      },
    });
  }

  /** Attaches a connection (join or resume); returns the one it replaced, if any. */
  attach(sink: SessionSink): SessionSink | undefined {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    const previous = this.#sink;
    this.#sink = sink;
    return previous === sink ? undefined : previous;
  }

  /**
   * The connection is gone without a leave: keep the participant for `graceMs` so that the client
   * can resume, then let it leave with 'connection-lost'.
   */
  detach(sink: SessionSink, graceMs: number): void {
    if (this.#sink !== sink || this.#closed) return;
    this.#sink = undefined;
    this.logger.info({ graceMs }, 'connection lost; participant kept for the reconnect grace period');
    this.#graceTimer = setTimeout(() => {
      this.logger.info('reconnect grace period over');
      this.participant.close('connection-lost');
    }, graceMs);
    this.#graceTimer.unref();
  }

  /** Records the first media set-up of this participant (join-to-media histogram), once. */
  mediaStarted(): void {
    if (this.#mediaObserved) return;
    this.#mediaObserved = true;
    this.metrics.joinToMedia.observe(Number(process.hrtime.bigint() - this.#joinAt) / 1e9);
  }

  transportOpened(id: string): void {
    this.transports.add(id);
  }

  /** close_transport: forget the transport and what lived on it (mediasoup closed them with it). */
  transportClosed(id: string): void {
    this.transports.delete(id);
    for (const [pid, p] of this.producers) if (p.transportId === id) this.producerGone(pid);
    for (const [cid, c] of this.consumers) if (c.transportId === id) this.consumerGone(cid);
    for (const [did, d] of this.dataChannels) if (d.transportId === id) this.dataChannels.delete(did);
  }

  dataOpened(id: string, role: 'producer' | 'consumer', transportId: string): void {
    this.dataChannels.set(id, { role, transportId });
  }

  producerOpened(id: string, kind: 'audio' | 'video', transportId: string): void {
    this.producers.set(id, { kind, transportId });
    this.metrics.producers.inc({ kind });
    this.metrics.producersCreated.inc({ kind });
  }

  producerGone(id: string): void {
    const p = this.producers.get(id);
    if (!p) return;
    this.producers.delete(id);
    this.metrics.producers.dec({ kind: p.kind });
  }

  consumerOpened(id: string, kind: 'audio' | 'video', producerId: string, transportId: string): void {
    this.consumers.set(id, { kind, producerId, transportId });
    this.metrics.consumers.inc({ kind });
    this.metrics.consumersCreated.inc({ kind });
  }

  consumerGone(id: string): void {
    const c = this.consumers.get(id);
    if (!c) return;
    this.consumers.delete(id);
    this.metrics.consumers.dec({ kind: c.kind });
  }

  #notify(n: NotificationProps): void {
    this.#sink?.notify(n);
  }

  #on(event: string, listener: (...args: any[]) => void): void { // eslint-disable-line @typescript-eslint/no-explicit-any
    this.participant.on(event, listener);
    this.#unsubscribe.push(() => this.participant.off(event, listener));
  }

  #subscribe(): void {
    const p = this.participant;
    this.#on('statechange', (state: string) => {
      if (state === 'closed') return; // the close event tells why
      this.logger.info({ state }, 'participant state');
      this.#notify({
        waitingStatus: {
          state: stateToWire(state as GatewayParticipant['state']),
          rtpCapabilities: state === 'admitted' ? rtpCapabilitiesToWire(this.meeting.rtpCapabilities) : null,
          activeSpeakerId: state === 'admitted' ? (this.meeting.activeSpeakerId ?? '') : '',
        },
      });
    });
    this.#on('close', (reason: CloseReason) => this.#teardown(reason));
    this.#on('newproducer', (info: ProducerInfo) => this.#notify({ newProducer: producerToWire(info) }));
    this.#on('producerclosed', (producerId: string) => {
      // Consumers of a closed producer close with it.
      for (const [id, c] of this.consumers) if (c.producerId === producerId) this.consumerGone(id);
      this.producerGone(producerId);
      this.#notify({ producerClosed: { producerId } });
    });
    this.#on('producerpaused', (info: ProducerInfo) => this.#notify({ producerPaused: producerToWire(info) }));
    this.#on('producerresumed', (info: ProducerInfo) => this.#notify({ producerResumed: producerToWire(info) }));
    this.#on('mutedbyhost', (info: ProducerInfo) => this.#notify({ mutedByHost: producerToWire(info) }));
    this.#on('newchat', (dataProducerId: string, participantId: string) =>
      this.#notify({ newChat: { id: dataProducerId, participantId } }),
    );
    this.#on('chatclosed', (dataProducerId: string) => this.#notify({ chatClosed: { dataProducerId } }));
    this.#on('keymessage', (fromParticipantId: string, data: Uint8Array) =>
      this.#notify({ keyMessage: { fromParticipantId, data } }),
    );
    this.#on('participantjoined', (other: GatewayParticipant) => this.#notify({ participantJoined: participantToWire(other) }));
    this.#on('participantleft', (other: GatewayParticipant, reason: CloseReason) =>
      this.#notify({ participantLeft: { participantId: other.id, reason: closeReasonToWire(reason) } }),
    );
    this.#on('rolechange', (other: GatewayParticipant) => this.#notify({ roleChanged: participantToWire(other) }));
    this.#on('waitinglist', (list: GatewayParticipant[]) =>
      this.#notify({ waitingList: { participants: list.map(participantToWire) } }),
    );
    this.#on('meetinglocked', (locked: boolean) => this.#notify({ meetingLocked: { locked } }));
    this.#on('activespeaker', (participantId: string) => this.#notify({ activeSpeaker: { participantId } }));
    this.#on('pollcreated', (pollId: string, init: PollInit) =>
      this.#notify({ pollStarted: { pollId, question: init.question, options: init.options, anonymous: init.anonymous ?? false } }),
    );
    this.#on('reconnect', (reason: CloseReason) => this.#onReconnect(reason));
    // Issue 11: which layer the server sends, and how good the streams are.
    this.#on('consumerlayers', (consumerId: string, layers: ms.ConsumerLayers | undefined) =>
      this.#notify({
        consumerLayersChanged: {
          consumerId,
          ...(layers ? { spatialLayer: layers.spatialLayer, ...(layers.temporalLayer != null ? { temporalLayer: layers.temporalLayer } : {}) } : {}),
        },
      }),
    );
    this.#on('consumerscore', (consumerId: string, score: ms.ConsumerScore) =>
      this.#notify({
        consumerScore: { consumerId, score: score.score, producerScore: score.producerScore, producerScores: score.producerScores },
      }),
    );
    this.#on('producerscore', (producerId: string, scores: ms.ProducerScore[]) =>
      this.#notify({
        producerScore: {
          producerId,
          scores: scores.map((x) => ({ encodingIdx: x.encodingIdx, ssrc: x.ssrc, rid: x.rid ?? '', score: x.score })),
        },
      }),
    );
    if (p.closed) queueMicrotask(() => this.#teardown('left'));
  }

  /**
   * The worker serving this participant died: every transport of the participant lived on it, so
   * all of them are gone, with the producers, consumers and chat channels on them. Say exactly
   * that (issue 11: typed and scoped), and forget them.
   */
  #onReconnect(reason: CloseReason): void {
    // Own producers closed with the worker (their producer_closed came just before this): the
    // model remembers them until they are published again.
    const producers = (this.participant.lostProducers?.() ?? []).map(producerToWire);
    const data = [...this.dataChannels];
    const notice = {
      closeReason: closeReasonToWire(reason),
      transportIds: [...this.transports],
      producers,
      consumerIds: [...this.consumers.keys()],
      dataProducerIds: data.filter(([, d]) => d.role === 'producer').map(([id]) => id),
      dataConsumerIds: data.filter(([, d]) => d.role === 'consumer').map(([id]) => id),
    };
    for (const id of [...this.transports]) this.transportClosed(id);
    for (const id of [...this.producers.keys()]) this.producerGone(id);
    for (const id of [...this.consumers.keys()]) this.consumerGone(id);
    this.#notify({ reconnect: notice });
  }

  /** The one teardown path: the participant's session ended for `reason`. */
  #teardown(reason: CloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#graceTimer);
    clearTimeout(this.#noticeTimer);
    for (const off of this.#unsubscribe.splice(0)) off();
    for (const id of [...this.producers.keys()]) this.producerGone(id);
    for (const id of [...this.consumers.keys()]) this.consumerGone(id);
    this.logger.info({ reason }, 'participant session ended');
    const sink = this.#sink;
    this.#sink = undefined;
    if (reason === 'denied') sink?.notify({ waitingStatus: { state: pb.ParticipantState.DENIED } });
    sink?.end(reason);
    this.onClose(this);
  }
}
