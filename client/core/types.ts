// Public types of the client SDK (`c4v-media/client`, `c4v-media/client/node`).
import type { types as ms } from 'mediasoup';

/** Where the client stands in the meeting. */
export type MeetingState =
  | 'connecting'
  | 'waiting-for-host'
  | 'waiting-room'
  | 'admitted'
  /** Refused in the waiting room. */
  | 'denied'
  /** Removed by the host (the identity cannot rejoin). */
  | 'removed'
  /** The meeting ended, the client left, or the session could not be kept (see the reason). */
  | 'ended';

/** What a track carries. */
export type Source = 'microphone' | 'camera' | 'screen-video' | 'screen-audio';

export type Role = 'host' | 'cohost' | 'participant';

/**
 * Why the session ended, as the server's CloseReason in lowercase with dashes ('removed',
 * 'meeting-ended', 'host-left', 'worker-failed', 'connection-lost', 'replaced', 'server-shutdown',
 * 'left', ...).
 */
export type CloseReasonName = string;

/** Options of connect(). */
export interface ConnectOptions {
  /** The meeting to join; default: the `meeting` query parameter of the URL. */
  meetingId?: string;
  /** The name others see (1-64 characters, no control characters). */
  displayName: string;
  /** A join token from the meeting backend (identity and role); without one the client is a guest. */
  token?: string;
  password?: string;
  /** The client can do end-to-end encryption (it then takes part in the key exchange). */
  e2ee?: boolean;
  /** Publish the camera with three simulcast layers (default true). */
  simulcast?: boolean;
  /** Receive chat and open a chat channel once admitted (default true). */
  chat?: boolean;
  /** Issue 13: how a lost signalling connection is recovered (see ReconnectOptions). */
  reconnect?: ReconnectOptions;
}

/**
 * Issue 13: recovery of a lost signalling connection. The client resumes its session (same
 * participant id) within the server's grace period: at the same node first, then, in cluster
 * mode, at the other nodes of the latest list (`MeetingClient.clusterNodes`), with back-off.
 */
export interface ReconnectOptions {
  /**
   * When the session cannot be resumed any more (INVALID_TOKEN: the grace period is over, or the
   * session was lost with its node), join again with the original join options (a new participant
   * id; a waiting room may apply again). Default false: the client ends with 'connection-lost'
   * and an `error` event whose code is SESSION_EXPIRED.
   */
  rejoin?: boolean;
  /** How long one attempt at one node may take to open its WebSocket and answer hello (default 3000 ms). */
  attemptTimeoutMs?: number;
}

/** Issue 13: a node of the cluster as the server lists it (JoinOk.cluster_nodes). */
export interface ClusterNodeInfo {
  /** '' when not known (outside cluster mode, or a URL the app gave). */
  nodeId: string;
  url: string;
  /** `<country>-<site>`; '' when not known. */
  region: string;
}

export interface RemoteParticipant {
  id: string;
  displayName: string;
  role: Role;
  e2eeCapable: boolean;
  /** Issue 12: the server's admission number (1, 2, ...; 0: not sent), the same on every client. */
  admittedSeq: number;
}

/** Issue 12: the meeting's E2EE mode as the server announced it at the join. */
export type MeetingE2eeMode = 'off' | 'optional' | 'required';

/** Issue 12: where end-to-end encryption stands for this client (the `e2ee` event). */
export interface E2eeStatus {
  /** 'e2ee': everyone encrypts; 'mixed': some participants do not (an 'optional' meeting); 'none': this client does not encrypt. */
  state: 'e2ee' | 'mixed' | 'none';
  /** The meeting header's text for it. */
  text: string;
  /** Participants who do not encrypt (state 'mixed'). */
  unencrypted: string[];
}

/** A remote stream: one consumer of another participant's producer. `T` is the flavour's track type. */
export interface RemoteTrack<T = unknown> {
  consumerId: string;
  producerId: string;
  participantId: string;
  source: Source;
  kind: 'audio' | 'video';
  track: T;
  /** The sender paused it (muted), or the client paused it (hidden tile). */
  paused: boolean;
  /** The spatial / temporal layer the server sends now (simulcast / SVC), when known. */
  layers: { spatialLayer: number; temporalLayer?: number } | undefined;
  /** After a worker death: the producer id this stream replaces. */
  replacesProducerId: string | undefined;
}

export interface ChatMessage {
  participantId: string;
  displayName: string;
  text: string;
  at: Date;
}

export interface PollInfo {
  id: string;
  question: string;
  options: string[];
  anonymous: boolean;
}

export interface PollResultsInfo {
  id: string;
  question: string;
  options: string[];
  counts: number[];
  closed: boolean;
  answers: Array<{ identity: string; displayName: string; option: number }>;
}

/** Which part of the session is being rebuilt: the media (a worker died) or the WebSocket. */
export type ReconnectScope = 'media' | 'signalling';

/** Events of a MeetingClient. */
export type MeetingClientEvents<T = unknown> = {
  /** The client's own state; the reason is set for denied, removed and ended. */
  state: [MeetingState, CloseReasonName | undefined];
  participantjoined: [RemoteParticipant];
  participantleft: [RemoteParticipant, CloseReasonName];
  /** Someone's role changed (your own included). */
  rolechanged: [RemoteParticipant];
  track: [RemoteTrack<T>];
  trackended: [RemoteTrack<T>];
  /** The sender paused (true) or resumed (false) a remote track. */
  trackmuted: [RemoteTrack<T>, boolean];
  /** The server switched the layer it sends on a remote video (undefined: none). */
  layers: [RemoteTrack<T>, RemoteTrack<T>['layers']];
  chat: [ChatMessage];
  activespeaker: [string];
  /** The host muted one of your sources; only you can unmute it. */
  mutedbyhost: [Source];
  /** One of your sources is published (again, after a worker death). */
  localtrack: [Source];
  /** One of your own published tracks was closed by the server (host stopped your share, or its worker died). */
  localtrackended: [Source];
  locked: [boolean];
  poll: [PollInfo];
  /** Hosts and co-hosts: who waits. */
  waitinglist: [RemoteParticipant[]];
  /**
   * Something is being rebuilt. Signalling: emitted when the connection is lost and again each
   * time the client moves on to try another node (issue 13), with that node; media: no node.
   */
  reconnecting: [scope: ReconnectScope, node?: ClusterNodeInfo];
  /** Rebuilt; signalling: with the node the session was resumed (or joined again) at. */
  reconnected: [scope: ReconnectScope, node?: ClusterNodeInfo];
  /** Issue 12: an opaque E2EE key message from another participant (`key_message`). */
  keymessage: [from: string, data: Uint8Array];
  /** Issue 12: the admitted participants once the server's list is applied (after admission, a media rebuild or a resume). */
  roster: [RemoteParticipant[]];
  /** Issue 12 (E2EE clients): the meeting security code changed (join, leave). Compare it out of band. */
  securitycode: [code: string];
  /** Issue 12: the E2EE status of the meeting changed (see E2eeStatus). */
  e2ee: [E2eeStatus];
  /** Something failed in the background (a consume, an ICE restart); the meeting goes on. */
  error: [Error];
  listenererror: [string, unknown];
};

// ---------------------------------------------------------------------------------------------
// The media side, per flavour (mediasoup-client in browsers, werift in Node)
// ---------------------------------------------------------------------------------------------

/** What the server says about a transport, in mediasoup-client's shape. */
export interface TransportOptions {
  id: string;
  iceParameters: ms.IceParameters;
  iceCandidates: ms.IceCandidate[];
  dtlsParameters: ms.DtlsParameters;
  sctpParameters?: { port: number; OS: number; MIS: number; maxMessageSize: number } | undefined;
}

/** @internal Callbacks a flavour's transport calls (mediasoup-client's transport events). */
export interface TransportHandlers {
  connect(dtlsParameters: ms.DtlsParameters): Promise<void>;
  produce(p: { kind: 'audio' | 'video'; rtpParameters: ms.RtpParameters; source: Source }): Promise<string>;
  produceData(p: { sctpStreamParameters: ms.SctpStreamParameters }): Promise<string>;
  /** ICE / DTLS connection state ('new', 'connecting', 'connected', 'failed', 'disconnected', 'closed'). */
  stateChange(state: string): void;
}

/** @internal */
export interface AdapterProducer {
  readonly id: string;
  pause(): void;
  resume(): void;
  close(): void;
}

/** @internal */
export interface AdapterConsumer<T> {
  readonly track: T;
  close(): void;
}

/** @internal */
export interface AdapterDataProducer {
  readonly id: string;
  send(text: string): void;
  close(): void;
}

/** @internal */
export interface AdapterDataConsumer {
  onMessage(cb: (text: string) => void): void;
  close(): void;
}

/** @internal A transport of a flavour. */
export interface AdapterTransport<T> {
  readonly id: string;
  produce(o: { track: T; source: Source; simulcast: boolean }): Promise<AdapterProducer>;
  produceChat(): Promise<AdapterDataProducer>;
  consume(o: { id: string; producerId: string; kind: 'audio' | 'video'; rtpParameters: ms.RtpParameters; participantId?: string }): Promise<AdapterConsumer<T>>;
  consumeChat(o: { id: string; dataProducerId: string; sctpStreamParameters: ms.SctpStreamParameters; label: string }): Promise<AdapterDataConsumer>;
  restartIce(iceParameters: ms.IceParameters): Promise<void>;
  close(): void;
}

/** @internal The media engine of a flavour. */
export interface MediaAdapter<T> {
  readonly loaded: boolean;
  load(routerRtpCapabilities: ms.RtpCapabilities): Promise<void>;
  /** What this client can receive (sent with every consume). */
  recvRtpCapabilities(): ms.RtpCapabilities;
  createTransport(direction: 'send' | 'recv', options: TransportOptions, handlers: TransportHandlers): AdapterTransport<T>;
}
