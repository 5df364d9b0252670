// What the gateway needs from the meeting model (lib/model, the "Meeting API" contract in
// docs/ARCHITECTURE.md), written as structural interfaces so that the edge depends on the
// contract, not on the classes' internals. MediaCore, Meeting and Participant satisfy them.
import type { types as ms } from 'mediasoup';
import type {
  CloseReason,
  ConsumerInfo,
  DataConsumerInfo,
  JoinRequest,
  MediaSource,
  MeetingSettings,
  ParticipantState,
  PollInit,
  PollResults,
  ProducerInfo,
  Role,
  TransportInfo,
} from '../lib/model/types.js';
import type { PoolWorker, WorkerUsage } from '../lib/media/WorkerPool.js';

type Listener = (...args: any[]) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

/** An event source: the model's TypedEmitters. */
export interface Events {
  on(event: string, listener: Listener): unknown;
  off(event: string, listener: Listener): unknown;
}

export interface GatewayParticipant extends Events {
  readonly id: string;
  readonly identity: string;
  readonly displayName: string;
  readonly role: Role;
  readonly state: ParticipantState;
  readonly e2eeCapable: boolean;
  /** Issue 12: the order of admission (0 while waiting; optional for participants served elsewhere). */
  readonly admittedSeq?: number;
  readonly closed: boolean;
  createTransport(direction: 'send' | 'recv'): Promise<TransportInfo>;
  connectTransport(transportId: string, dtlsParameters: ms.DtlsParameters): Promise<void>;
  restartIce(transportId: string): Promise<TransportInfo['iceParameters']>;
  produce(o: { transportId: string; source: MediaSource; kind: 'audio' | 'video'; rtpParameters: ms.RtpParameters }): Promise<ProducerInfo>;
  pauseProducer(id: string): unknown;
  resumeProducer(id: string): unknown;
  closeProducer(id: string): unknown;
  consume(o: { transportId: string; producerId: string; rtpCapabilities: ms.RtpCapabilities }): Promise<ConsumerInfo>;
  resumeConsumer(id: string): unknown;
  pauseConsumer(id: string): unknown;
  setPreferredLayers(consumerId: string, layers: { spatialLayer: number; temporalLayer?: number }): unknown;
  produceChat(o: { transportId: string; sctpStreamParameters: ms.SctpStreamParameters }): Promise<{ id: string }>;
  consumeChat(o: { transportId: string; dataProducerId: string }): Promise<DataConsumerInfo>;
  sendKeyMessage(to: string | undefined, data: Uint8Array): unknown;
  answerPoll(pollId: string, option: number): unknown;
  leave(): unknown;
  /** Others' producers and chat channels, for a late joiner (optional in the contract). */
  availableProducers?(): ProducerInfo[];
  availableChats?(): Array<[string, string]>;
  close(reason: CloseReason): unknown;
  // Issue 10 / 11 protocol additions.
  closeTransport(transportId: string): unknown;
  /** Own producers that died with their worker and were not published again yet. */
  lostProducers?(): ProducerInfo[];
  producerStats(producerId: string): Promise<ms.ProducerStat[]>;
  consumerStats(consumerId: string): Promise<{
    stats: ms.ConsumerStat[];
    layers: { type: string; preferred?: ms.ConsumerLayers; current?: ms.ConsumerLayers };
  }>;
}

export interface GatewayMeeting extends Events {
  readonly id: string;
  readonly title: string;
  readonly settings: Readonly<MeetingSettings>;
  readonly locked: boolean;
  readonly ended: boolean;
  readonly participants: readonly GatewayParticipant[];
  readonly waiting: readonly GatewayParticipant[];
  readonly rtpCapabilities: ms.RtpCapabilities;
  /** Issue 11: who is speaking now. */
  readonly activeSpeakerId: string | undefined;
  join(req: JoinRequest): Promise<GatewayParticipant>;
  admit(actor: GatewayParticipant, participantId: string): unknown;
  admitAll(actor: GatewayParticipant): unknown;
  deny(actor: GatewayParticipant, participantId: string): unknown;
  lock(actor: GatewayParticipant): unknown;
  unlock(actor: GatewayParticipant): unknown;
  remove(actor: GatewayParticipant, participantId: string): unknown;
  mute(actor: GatewayParticipant, participantId: string): unknown;
  muteAll(actor: GatewayParticipant): unknown;
  stopScreenShare(actor: GatewayParticipant, participantId: string): unknown;
  makeCoHost(actor: GatewayParticipant, participantId: string): unknown;
  transferHost(actor: GatewayParticipant, participantId: string): unknown;
  end(actor: GatewayParticipant): unknown;
  createPoll(actor: GatewayParticipant, init: PollInit): string | Promise<string>;
  closePoll(actor: GatewayParticipant, pollId: string): unknown;
  pollResults(actor: GatewayParticipant, pollId: string): PollResults | Promise<PollResults>;
}

/** The media core as the gateway uses it (MediaCore). */
export interface GatewayCore {
  readonly closed: boolean;
  readonly pool: {
    readonly workers: readonly PoolWorker[];
    readonly closed: boolean;
    resourceUsage(): Promise<WorkerUsage[]>;
  };
  readonly meetings: readonly GatewayMeeting[];
  getMeeting(id: string): GatewayMeeting | undefined;
  readonly observer: Events;
}
