// A participant of a meeting: its role and state, and its media (through the meeting's media
// plane, after the policy checks). Created by Meeting.join().
import type { types as ms } from 'mediasoup';
import { ArgumentError, InvalidStateError, MediaError, PolicyError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import { logView } from '../telemetry/logger.js';
import type { Meeting } from './Meeting.js';
import type {
  CloseReason,
  ConsumerInfo,
  DataConsumerInfo,
  MediaSource,
  MeetingSettings,
  ParticipantState,
  PollInit,
  ProducerInfo,
  Role,
  TransportInfo,
} from './types.js';

/** Events of a Participant: what the gateway turns into notifications for that client. */
export type ParticipantEvents = {
  statechange: [ParticipantState];
  close: [CloseReason];
  /** Another participant's producer (admitted participants only). */
  newproducer: [ProducerInfo];
  /** A producer went away (someone else's, or this participant's own when the host or a failure closed it). */
  producerclosed: [string];
  producerpaused: [ProducerInfo];
  producerresumed: [ProducerInfo];
  /** The host paused this participant's microphone; only the participant can resume it. */
  mutedbyhost: [ProducerInfo];
  /** A chat channel to consume: [dataProducerId, participantId]. */
  newchat: [string, string];
  /** A chat channel closed (its owner left, or chat was switched off). */
  chatclosed: [string];
  /** An opaque E2EE key message from another participant. */
  keymessage: [string, Uint8Array];
  participantjoined: [Participant];
  participantleft: [Participant, CloseReason];
  /** Someone's role changed (this participant's included). */
  rolechange: [Participant];
  /** The waiting list (hosts and co-hosts only). */
  waitinglist: [Participant[]];
  meetinglocked: [boolean];
  activespeaker: [string];
  pollcreated: [string, PollInit];
  /** Settings changed (admitted participants only). */
  settingschanged: [Partial<MeetingSettings>];
  /** DTLS state of one of this participant's transports. */
  transportstate: [string, ms.DtlsState];
  /** The media moved to another worker: re-create transports, produce and consume again. */
  reconnect: [CloseReason];
  /** Issue 11: the layers one of this participant's simulcast / SVC consumers sends now (undefined: none). */
  consumerlayers: [string, ms.ConsumerLayers | undefined];
  /** Issue 11: the send score of one of this participant's consumers. */
  consumerscore: [string, ms.ConsumerScore];
  /** Issue 11: the receive scores (per encoding) of one of this participant's producers. */
  producerscore: [string, ms.ProducerScore[]];
  listenererror: [string, unknown];
};

/** What Meeting passes in when it creates a participant. @internal */
export interface ParticipantInit {
  id: string;
  identity: string;
  displayName: string;
  email: string | undefined;
  address: string | undefined;
  macAddress: string | undefined;
  authenticated: boolean;
  e2eeCapable: boolean;
  role: Role;
  state: ParticipantState;
}

const MAX_KEY_MESSAGE = 64 * 1024;

/**
 * One client's session in a meeting. Waiting participants (waiting-for-host, waiting-room) see
 * only their own status: every media, chat or meeting call refuses with NOT_ADMITTED.
 */
export class Participant extends TypedEmitter<ParticipantEvents> {
  readonly id: string;
  readonly identity: string;
  readonly displayName: string;
  /** Personal data: for the host's view only, never logged. */
  readonly email: string | undefined;
  /**
   * The client's IP address and, if it reported one, MAC address. Personal data: never logged;
   * exported only as the allow-listed participant metadata, and purged with the meeting's retention.
   */
  readonly address: string | undefined;
  readonly macAddress: string | undefined;
  readonly authenticated: boolean;
  readonly e2eeCapable: boolean;
  readonly meeting: Meeting;
  /** When the participant asked to join. */
  readonly requestedAt = new Date();
  #role: Role;
  #state: ParticipantState;
  #joinedAt: Date | undefined;
  #admittedSeq = 0;
  #closeReason: CloseReason | undefined;

  /** @internal Use meeting.join(). */
  constructor(meeting: Meeting, init: ParticipantInit) {
    super();
    this.meeting = meeting;
    this.id = init.id;
    this.identity = init.identity;
    this.displayName = init.displayName;
    this.email = init.email;
    this.address = init.address;
    this.macAddress = init.macAddress;
    this.authenticated = init.authenticated;
    this.e2eeCapable = init.e2eeCapable;
    this.#role = init.role;
    this.#state = init.state;
    if (init.state === 'admitted') {
      this.#joinedAt = new Date();
      this.#admittedSeq = meeting._nextAdmittedSeq();
    }
  }

  get role(): Role {
    return this.#role;
  }

  /**
   * How a participant appears in a log line: its opaque id and role only, never its identity,
   * name or addresses (see createLogger).
   */
  [logView](): { participantId: string; role: Role } {
    return { participantId: this.id, role: this.#role };
  }

  get state(): ParticipantState {
    return this.#state;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  /** When the participant was admitted into the meeting (undefined while waiting). */
  get joinedAt(): Date | undefined {
    return this.#joinedAt;
  }

  /**
   * Issue 12: the order of admission in this meeting (1, 2, ...; 0 while waiting). Every client
   * gets the same number (ParticipantInfo.admitted_seq), so all agree on "the earliest admitted"
   * (the E2EE key leader without a host), which the roster's join-request order cannot give.
   */
  get admittedSeq(): number {
    return this.#admittedSeq;
  }

  /** Why the participant's session ended, once closed. */
  get closeReason(): CloseReason | undefined {
    return this.#closeReason;
  }

  /** Host or co-host. */
  get isModerator(): boolean {
    return this.#role === 'host' || this.#role === 'cohost';
  }

  /** @internal */
  _setRole(role: Role): void {
    if (this.#role === role) return;
    this.#role = role;
  }

  /** @internal */
  _setState(state: ParticipantState): void {
    if (this.#state === state || this.#state === 'closed') return;
    this.#state = state;
    if (state === 'admitted' && !this.#joinedAt) this.#joinedAt = new Date();
    if (state === 'admitted' && this.#admittedSeq === 0) this.#admittedSeq = this.meeting._nextAdmittedSeq();
    this.safeEmit('statechange', state);
  }

  /** @internal Marks closed; returns false when it already was. */
  _markClosed(reason: CloseReason): boolean {
    if (this.#state === 'closed') return false;
    this.#state = 'closed';
    this.#closeReason = reason;
    return true;
  }

  #assertAdmitted(): void {
    if (this.#state === 'closed') throw new InvalidStateError('participant closed', 'CLOSED');
    if (this.#state !== 'admitted') {
      throw new PolicyError('NOT_ADMITTED', 'not admitted into the meeting yet (waiting)');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Media
  // ---------------------------------------------------------------------------------------------

  /** A WebRTC transport (ICE + DTLS-SRTP; SCTP for chat). Admitted participants only. */
  async createTransport(direction: 'send' | 'recv'): Promise<TransportInfo> {
    this.#assertAdmitted();
    const info = await this.meeting._media.createTransport(this.id, direction);
    if (this.#state !== 'admitted') {
      this.meeting._media.releaseParticipant(this.id);
      throw new PolicyError('NOT_ADMITTED', 'no longer in the meeting');
    }
    return info;
  }

  async connectTransport(transportId: string, dtlsParameters: ms.DtlsParameters): Promise<void> {
    this.#assertAdmitted();
    await this.meeting._media.connectTransport(this.id, transportId, dtlsParameters);
  }

  async restartIce(transportId: string): Promise<TransportInfo['iceParameters']> {
    this.#assertAdmitted();
    return this.meeting._media.restartIce(this.id, transportId);
  }

  /**
   * Publishes one source (microphone, camera, screen-video, screen-audio: one producer each).
   * Screen sources need settings.allowScreenShare (hosts and co-hosts always may); with
   * muteOnEntry a participant's microphone starts paused by the server.
   */
  async produce(params: {
    transportId: string;
    source: MediaSource;
    kind: 'audio' | 'video';
    rtpParameters: ms.RtpParameters;
  }): Promise<ProducerInfo> {
    this.#assertAdmitted();
    return this.meeting._produce(this, params);
  }

  /** Pauses one of this participant's own producers (self-mute). */
  async pauseProducer(producerId: string): Promise<ProducerInfo> {
    this.#assertAdmitted();
    return this.meeting._setProducerPaused(this, producerId, true);
  }

  /** Resumes one of this participant's own producers: the only way to unmute. */
  async resumeProducer(producerId: string): Promise<ProducerInfo> {
    this.#assertAdmitted();
    return this.meeting._setProducerPaused(this, producerId, false);
  }

  closeProducer(producerId: string): void {
    this.#assertAdmitted();
    this.meeting._closeOwnProducer(this, producerId);
  }

  /** The admitted participants (the roster); waiting participants do not get it. */
  participants(): Participant[] {
    this.#assertAdmitted();
    return this.meeting.participants;
  }

  /** Others' producers this participant can consume now. */
  availableProducers(): ProducerInfo[] {
    this.#assertAdmitted();
    return this.meeting._media.producers.filter((p) => p.participantId !== this.id);
  }

  /** Receives another participant's producer; the consumer starts paused (resumeConsumer). */
  async consume(params: { transportId: string; producerId: string; rtpCapabilities: ms.RtpCapabilities }): Promise<ConsumerInfo> {
    this.#assertAdmitted();
    const producer = this.meeting._media.producer(params.producerId);
    if (producer?.participantId === this.id) throw new ArgumentError('a participant does not consume its own producer');
    return this.meeting._media.consume(this.id, params);
  }

  async resumeConsumer(consumerId: string): Promise<void> {
    this.#assertAdmitted();
    await this.meeting._media.resumeConsumer(this.id, consumerId);
  }

  async pauseConsumer(consumerId: string): Promise<void> {
    this.#assertAdmitted();
    await this.meeting._media.pauseConsumer(this.id, consumerId);
  }

  /** Simulcast / SVC: the layers this participant prefers to receive on a consumer. */
  async setPreferredLayers(consumerId: string, layers: { spatialLayer: number; temporalLayer?: number }): Promise<void> {
    this.#assertAdmitted();
    await this.meeting._media.setPreferredLayers(this.id, consumerId, layers);
  }

  /**
   * Issue 10: closes one of this participant's transports, and with it every producer, consumer
   * and chat channel on it (the usual producerclosed / chatclosed events follow).
   */
  async closeTransport(transportId: string): Promise<void> {
    this.#assertAdmitted();
    await this.meeting._media.closeTransport(this.id, transportId);
  }

  /** Issue 11: own producers that died with their worker and were not published again yet. */
  lostProducers(): ProducerInfo[] {
    return this.meeting._media.lostProducers(this.id);
  }

  /** Issue 11: mediasoup's receive statistics of one of this participant's own producers. */
  async producerStats(producerId: string): Promise<ms.ProducerStat[]> {
    this.#assertAdmitted();
    // Someone else's producer is "not found" for this participant: its stats are not theirs to read.
    if (this.meeting._media.producer(producerId)?.participantId !== this.id) {
      throw new MediaError('NOT_FOUND', `no producer ${String(producerId)} of this participant`);
    }
    return this.meeting._media.producerStats(producerId);
  }

  /** Issue 11: send statistics and layers of one of this participant's consumers. */
  async consumerStats(consumerId: string): Promise<{
    stats: ms.ConsumerStat[];
    layers: { type: string; preferred?: ms.ConsumerLayers; current?: ms.ConsumerLayers };
  }> {
    this.#assertAdmitted();
    const layers = this.meeting._media.consumerLayers(this.id, consumerId);
    return { stats: await this.meeting._media.consumerStats(this.id, consumerId), layers };
  }

  /** Opens this participant's chat channel (SCTP DataProducer). CHAT_DISABLED when chat is off. */
  async produceChat(params: { transportId: string; sctpStreamParameters: ms.SctpStreamParameters }): Promise<{ id: string }> {
    this.#assertAdmitted();
    return this.meeting._produceChat(this, params);
  }

  /** Receives another participant's chat channel (SCTP DataConsumer). */
  async consumeChat(params: { transportId: string; dataProducerId: string }): Promise<DataConsumerInfo> {
    this.#assertAdmitted();
    if (!this.meeting.settings.allowChat) throw new PolicyError('CHAT_DISABLED', 'chat is switched off in this meeting');
    return this.meeting._media.consumeData(this.id, params.transportId, params.dataProducerId);
  }

  /** Others' open chat channels as [dataProducerId, participantId]. */
  availableChats(): Array<[string, string]> {
    this.#assertAdmitted();
    return this.meeting._media.chatProducers.filter(([, pid]) => pid !== this.id);
  }

  /**
   * E2EE: relays an opaque key message to one participant (or to every other admitted, E2EE-capable
   * participant when `to` is undefined). The library never reads it.
   */
  sendKeyMessage(to: string | undefined, data: Uint8Array): void {
    this.#assertAdmitted();
    if (!(data instanceof Uint8Array) || data.byteLength === 0 || data.byteLength > MAX_KEY_MESSAGE) {
      throw new ArgumentError(`a key message must be 1 to ${MAX_KEY_MESSAGE} bytes`);
    }
    this.meeting._relayKeyMessage(this, to, data);
  }

  /** Answers a poll once (ALREADY_ANSWERED on a second answer). */
  answerPoll(pollId: string, option: number): void {
    this.#assertAdmitted();
    this.meeting._answerPoll(this, pollId, option);
  }

  /** Leaves the meeting. */
  leave(): void {
    this.close('left');
  }

  /** Ends this participant's session with `reason`. Idempotent. */
  close(reason: CloseReason = 'left'): void {
    this.meeting._closeParticipant(this, reason);
  }
}
