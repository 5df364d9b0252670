// The one module that knows both the wire (generated protobuf code) and the library's shapes:
// decoding with its checks, and every mapping between the two (codes, reasons, enums, media
// parameters). Handlers and the client helper use these functions; nothing else touches pb enums.
import type { types as ms } from 'mediasoup';
import protobuf from 'protobufjs/minimal.js';
import { ArgumentError, ErrorCodes, ProtocolError, type ErrorCode } from '../lib/errors.js';
import type {
  CloseReason,
  ConsumerInfo,
  DataConsumerInfo,
  MediaSource,
  ParticipantState,
  ProducerInfo,
  Role,
  TransportInfo,
} from '../lib/model/types.js';
import { c4v } from '../proto/gen/signalling.js';

/** The generated protocol namespace (c4v.signalling.v1). */
export const pb = c4v.signalling.v1;
export type Envelope = c4v.signalling.v1.Envelope;
export type EnvelopeProps = c4v.signalling.v1.Envelope.$Properties;
export type RequestMsg = c4v.signalling.v1.Request;
export type ResponseProps = c4v.signalling.v1.Response.$Properties;
export type NotificationProps = c4v.signalling.v1.Notification.$Properties;
/** The request kinds, as the oneof names them ('hello', 'join', ...). */
export type RequestType = NonNullable<RequestMsg['body']>;

/** Protocol versions this server speaks. */
export const PROTOCOL_VERSIONS = [1] as const;

/** Reasons the gateway itself ends a connection (the meeting model has its own CloseReason). */
export type GatewayCloseReason = 'protocol-violation' | 'flooding' | 'slow-reader' | 'version-mismatch' | 'timeout';
export type AnyCloseReason = CloseReason | GatewayCloseReason;

const CLOSE_REASONS: Record<AnyCloseReason, c4v.signalling.v1.CloseReason> = {
  left: pb.CloseReason.LEFT,
  removed: pb.CloseReason.REMOVED,
  denied: pb.CloseReason.DENIED,
  'meeting-ended': pb.CloseReason.MEETING_ENDED,
  'meeting-locked': pb.CloseReason.MEETING_LOCKED,
  'host-left': pb.CloseReason.HOST_LEFT,
  'worker-failed': pb.CloseReason.WORKER_FAILED,
  'connection-lost': pb.CloseReason.CONNECTION_LOST,
  replaced: pb.CloseReason.REPLACED,
  'server-shutdown': pb.CloseReason.SERVER_SHUTDOWN,
  'protocol-violation': pb.CloseReason.PROTOCOL_VIOLATION,
  flooding: pb.CloseReason.FLOODING,
  'slow-reader': pb.CloseReason.SLOW_READER,
  'version-mismatch': pb.CloseReason.VERSION_MISMATCH,
  timeout: pb.CloseReason.TIMEOUT,
};

/** Maps a close reason to the wire enum: the one mapping (STYLE 8). Unknown reasons map to UNSPECIFIED. */
export function closeReasonToWire(reason: string): c4v.signalling.v1.CloseReason {
  return CLOSE_REASONS[reason as AnyCloseReason] ?? pb.CloseReason.CLOSE_REASON_UNSPECIFIED;
}

/**
 * The WebSocket close status for a close reason: 4000 + the CloseReason number (4002 = REMOVED),
 * and the reason's enum name as the close frame's text.
 */
export function closeFrameFor(reason: string): { code: number; text: string } {
  const value = closeReasonToWire(reason);
  return { code: 4000 + value, text: pb.CloseReason[value] ?? 'CLOSE_REASON_UNSPECIFIED' };
}

/** The wire error for a code and reason; `codeName` carries codes an older client lacks. */
export function errorToWire(code: ErrorCode, reason: string): c4v.signalling.v1.Error.$Properties {
  const value = (pb.ErrorCode as unknown as Record<string, number>)[code];
  return { code: value ?? pb.ErrorCode.ERROR_CODE_UNSPECIFIED, codeName: code, reason };
}

/** The library's code for a wire error (by name, so codes unknown to this build still map). */
export function errorFromWire(e: c4v.signalling.v1.Error.$Properties): ErrorCode | string {
  return e.codeName || (pb.ErrorCode[e.code ?? 0] ?? 'ERROR_CODE_UNSPECIFIED');
}

/** Every library error code that has no value in the proto's ErrorCode enum (should be none). */
export function codesMissingOnTheWire(): ErrorCode[] {
  return ErrorCodes.filter((c) => (pb.ErrorCode as unknown as Record<string, number>)[c] === undefined);
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/** Whether a decoded message (or any message inside it) carried fields this version does not know. */
function hasUnknownFields(value: unknown, depth = 0): boolean {
  if (value === null || typeof value !== 'object' || depth > 32) return false;
  if (ArrayBuffer.isView(value)) return false;
  if ((value as { $unknowns?: unknown[] }).$unknowns?.length) return true;
  for (const v of Object.values(value)) if (hasUnknownFields(v, depth + 1)) return true;
  return false;
}

/** A client frame that decoded: its request id and request. */
export interface DecodedRequest {
  id: number;
  type: RequestType;
  request: RequestMsg;
}

/**
 * Decodes one client frame. Throws ProtocolError PROTOCOL_ERROR for text frames, malformed
 * protobuf (truncated, bad lengths), unknown fields, a missing or unknown request type, a
 * non-request body or a zero id. Never throws anything else. `idHint` receives the request id as
 * soon as it is known, so that an error about a decodable envelope still answers that id.
 */
export function decodeRequest(data: Buffer, isBinary: boolean, idHint: { id: number }): DecodedRequest {
  if (!isBinary) throw new ProtocolError('PROTOCOL_ERROR', 'text frames are not part of the protocol: send binary protobuf');
  let env: Envelope;
  try {
    // Keep unknown fields (protobufjs drops them by default) so that they can be refused.
    const reader = protobuf.Reader.create(data);
    reader.discardUnknown = false;
    env = pb.Envelope.decode(reader);
  } catch (error) {
    throw new ProtocolError('PROTOCOL_ERROR', `malformed protobuf envelope (${(error as Error).message})`);
  }
  idHint.id = env.id ?? 0;
  if (env.body !== 'request' || !env.request) {
    throw new ProtocolError('PROTOCOL_ERROR', env.body ? `clients may not send a ${env.body}` : 'envelope has no body');
  }
  if (!env.id) throw new ProtocolError('PROTOCOL_ERROR', 'a request needs a non-zero id');
  if (hasUnknownFields(env)) {
    throw new ProtocolError('PROTOCOL_ERROR', `message has fields unknown to protocol v${PROTOCOL_VERSIONS.at(-1)}`);
  }
  const request = env.request as RequestMsg;
  if (!request.body) throw new ProtocolError('PROTOCOL_ERROR', 'unknown or missing request type');
  return { id: env.id, type: request.body, request };
}

/** Encodes an envelope for sending. */
export function encodeEnvelope(env: EnvelopeProps): Uint8Array {
  return pb.Envelope.encode(env).finish();
}

// ---------------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------------

const SOURCES: Record<MediaSource, c4v.signalling.v1.MediaSource> = {
  microphone: pb.MediaSource.MICROPHONE,
  camera: pb.MediaSource.CAMERA,
  'screen-video': pb.MediaSource.SCREEN_VIDEO,
  'screen-audio': pb.MediaSource.SCREEN_AUDIO,
};

export function sourceToWire(s: MediaSource): c4v.signalling.v1.MediaSource {
  return SOURCES[s];
}

export function sourceFromWire(v: number | null | undefined): MediaSource {
  const s = (Object.keys(SOURCES) as MediaSource[]).find((k) => SOURCES[k] === v);
  if (!s) throw new ProtocolError('PROTOCOL_ERROR', `unknown media source ${v}`);
  return s;
}

export function kindToWire(k: 'audio' | 'video'): c4v.signalling.v1.MediaKind {
  return k === 'audio' ? pb.MediaKind.AUDIO : pb.MediaKind.VIDEO;
}

export function kindFromWire(v: number | null | undefined): 'audio' | 'video' {
  if (v === pb.MediaKind.AUDIO) return 'audio';
  if (v === pb.MediaKind.VIDEO) return 'video';
  throw new ProtocolError('PROTOCOL_ERROR', `unknown media kind ${v}`);
}

export function directionFromWire(v: number | null | undefined): 'send' | 'recv' {
  if (v === pb.TransportDirection.SEND) return 'send';
  if (v === pb.TransportDirection.RECV) return 'recv';
  throw new ProtocolError('PROTOCOL_ERROR', `unknown transport direction ${v}`);
}

export function roleToWire(r: Role): c4v.signalling.v1.Role {
  return r === 'host' ? pb.Role.HOST : r === 'cohost' ? pb.Role.COHOST : pb.Role.PARTICIPANT;
}

export function stateToWire(s: ParticipantState): c4v.signalling.v1.ParticipantState {
  switch (s) {
    case 'waiting-for-host':
      return pb.ParticipantState.WAITING_FOR_HOST;
    case 'waiting-room':
      return pb.ParticipantState.WAITING_ROOM;
    case 'admitted':
      return pb.ParticipantState.ADMITTED;
    default:
      return pb.ParticipantState.CLOSED;
  }
}

// ---------------------------------------------------------------------------------------------
// Media parameters
// ---------------------------------------------------------------------------------------------

type PbParams = { [k: string]: c4v.signalling.v1.ICodecParameterValue };

/**
 * Codec parameters to the wire, each value with its type (issue 10): a JS number becomes
 * `int_value`, a string `string_value`. mediasoup keeps `profile-level-id "640032"` a string and
 * `apt 96` a number; guessing from the digits (the old rule) broke H264 High.
 */
export function codecParametersToWire(p: Record<string, unknown> | undefined): PbParams {
  const out: PbParams = {};
  for (const [k, v] of Object.entries(p ?? {})) {
    if (typeof v === 'string') out[k] = { stringValue: v };
    else if (typeof v === 'number' && Number.isSafeInteger(v)) out[k] = { intValue: v };
    else throw new ArgumentError(`codec parameter ${k}: only strings and integers are carried, not ${typeof v === 'number' ? v : typeof v}`);
  }
  return out;
}

/** Codec parameters from the wire: `int_value` -> number, `string_value` -> string, nothing else. */
export function codecParametersFromWire(p: PbParams | null | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(p ?? {})) {
    if (v?.stringValue != null) out[k] = v.stringValue;
    else if (v?.intValue != null) {
      const n = Number(v.intValue);
      if (!Number.isSafeInteger(n)) throw new ProtocolError('PROTOCOL_ERROR', `codec parameter ${k}: integer out of range`);
      out[k] = n;
    } else throw new ProtocolError('PROTOCOL_ERROR', `codec parameter ${k} has no value (set string_value or int_value)`);
  }
  return out;
}

function nonEmpty(s: string | null | undefined): string | undefined {
  return s ? s : undefined;
}

export function transportToWire(t: TransportInfo): c4v.signalling.v1.TransportInfo.$Properties {
  return {
    id: t.id,
    direction: t.direction === 'send' ? pb.TransportDirection.SEND : pb.TransportDirection.RECV,
    iceParameters: iceToWire(t.iceParameters),
    iceCandidates: t.iceCandidates.map((c) => ({
      foundation: c.foundation,
      priority: c.priority,
      address: c.address,
      protocol: c.protocol,
      port: c.port,
      type: c.type,
      tcpType: c.tcpType ?? '',
    })),
    dtlsParameters: { role: t.dtlsParameters.role ?? 'auto', fingerprints: t.dtlsParameters.fingerprints },
    sctpParameters: t.sctpParameters
      ? { port: t.sctpParameters.port, os: t.sctpParameters.OS, mis: t.sctpParameters.MIS, maxMessageSize: t.sctpParameters.maxMessageSize }
      : null,
  };
}

export function iceToWire(i: TransportInfo['iceParameters']): c4v.signalling.v1.IceParameters.$Properties {
  return { usernameFragment: i.usernameFragment, password: i.password, iceLite: i.iceLite ?? false };
}

export function dtlsFromWire(d: c4v.signalling.v1.DtlsParameters.$Properties | null | undefined): ms.DtlsParameters {
  if (!d?.fingerprints?.length) throw new ProtocolError('PROTOCOL_ERROR', 'dtls parameters need at least one fingerprint');
  const role = d.role || 'auto';
  if (role !== 'auto' && role !== 'client' && role !== 'server') throw new ProtocolError('PROTOCOL_ERROR', `unknown DTLS role ${role}`);
  return {
    role,
    fingerprints: d.fingerprints.map((f) => ({ algorithm: (f.algorithm ?? '') as ms.FingerprintAlgorithm, value: f.value ?? '' })),
  };
}

export function rtpParametersToWire(p: ms.RtpParameters): c4v.signalling.v1.RtpParameters.$Properties {
  return {
    mid: p.mid ?? '',
    codecs: p.codecs.map((c) => ({
      mimeType: c.mimeType,
      payloadType: c.payloadType,
      clockRate: c.clockRate,
      channels: c.channels ?? 0,
      parameters: codecParametersToWire(c.parameters),
      rtcpFeedback: (c.rtcpFeedback ?? []).map((f) => ({ type: f.type, parameter: f.parameter ?? '' })),
    })),
    headerExtensions: (p.headerExtensions ?? []).map((h) => ({ uri: h.uri, id: h.id, encrypt: h.encrypt ?? false })),
    encodings: (p.encodings ?? []).map((e: ms.RtpEncodingParameters & BrowserEncodingFields) => ({
      ssrc: e.ssrc ?? 0,
      rid: e.rid ?? '',
      rtxSsrc: e.rtx?.ssrc ?? 0,
      dtx: e.dtx ?? false,
      scalabilityMode: e.scalabilityMode ?? '',
      maxBitrate: e.maxBitrate ?? 0,
      ...(e.active != null ? { active: e.active } : {}),
      ...(e.scaleResolutionDownBy != null ? { scaleResolutionDownBy: e.scaleResolutionDownBy } : {}),
    })),
    rtcp: { cname: p.rtcp?.cname ?? '', reducedSize: p.rtcp?.reducedSize ?? true },
    msid: p.msid ?? '',
  };
}

/**
 * Encoding fields a browser sets (RTCRtpEncodingParameters) that mediasoup's own type lacks
 * (issue 11): carried on the wire so that nothing is dropped silently.
 */
export interface BrowserEncodingFields {
  active?: boolean;
  scaleResolutionDownBy?: number;
}

export function rtpParametersFromWire(p: c4v.signalling.v1.RtpParameters.$Properties | null | undefined): ms.RtpParameters {
  if (!p?.codecs?.length) throw new ProtocolError('PROTOCOL_ERROR', 'rtp parameters need at least one codec');
  const out: ms.RtpParameters = {
    codecs: p.codecs.map((c) => ({
      mimeType: c.mimeType ?? '',
      payloadType: c.payloadType ?? 0,
      clockRate: c.clockRate ?? 0,
      ...(c.channels ? { channels: c.channels } : {}),
      parameters: codecParametersFromWire(c.parameters),
      rtcpFeedback: (c.rtcpFeedback ?? []).map((f) => ({ type: f.type ?? '', ...(f.parameter ? { parameter: f.parameter } : {}) })),
    })),
    headerExtensions: (p.headerExtensions ?? []).map((h) => ({
      uri: (h.uri ?? '') as ms.RtpHeaderExtensionUri,
      id: h.id ?? 0,
      encrypt: h.encrypt ?? false,
    })),
    encodings: (p.encodings ?? []).map((e, i): ms.RtpEncodingParameters & BrowserEncodingFields => {
      // A switched-off layer cannot be told from a lost one on the server: refuse it rather than
      // drop the flag (issue 11). The client leaves the layer out or pauses the producer instead.
      if (e.active === false) {
        throw new ProtocolError('UNSUPPORTED_PARAMETER', `encodings[${i}].active = false is not supported: leave the layer out or pause the producer`);
      }
      if (e.scaleResolutionDownBy != null && !(e.scaleResolutionDownBy >= 1 && Number.isFinite(e.scaleResolutionDownBy))) {
        throw new ProtocolError('UNSUPPORTED_PARAMETER', `encodings[${i}].scale_resolution_down_by must be a finite number >= 1`);
      }
      return {
        ...(e.ssrc ? { ssrc: e.ssrc } : {}),
        ...(nonEmpty(e.rid) ? { rid: e.rid! } : {}),
        ...(e.rtxSsrc ? { rtx: { ssrc: e.rtxSsrc } } : {}),
        ...(e.dtx ? { dtx: true } : {}),
        ...(nonEmpty(e.scalabilityMode) ? { scalabilityMode: e.scalabilityMode! } : {}),
        ...(e.maxBitrate ? { maxBitrate: e.maxBitrate } : {}),
        ...(e.active != null ? { active: e.active } : {}),
        ...(e.scaleResolutionDownBy != null ? { scaleResolutionDownBy: e.scaleResolutionDownBy } : {}),
      };
    }),
    rtcp: { ...(nonEmpty(p.rtcp?.cname) ? { cname: p.rtcp!.cname! } : {}), reducedSize: p.rtcp?.reducedSize ?? true },
  };
  if (p.mid) out.mid = p.mid;
  if (p.msid) {
    // a=msid is "<stream id> [<track id>]": tokens of visible characters (RFC 8830).
    if (p.msid.length > 128 || !/^[\x21-\x7e]+( [\x21-\x7e]+)?$/.test(p.msid)) {
      throw new ProtocolError('UNSUPPORTED_PARAMETER', 'msid must be "<stream id> <track id>" of visible ASCII, at most 128 characters');
    }
    out.msid = p.msid;
  }
  return out;
}

export function rtpCapabilitiesToWire(c: ms.RtpCapabilities): c4v.signalling.v1.RtpCapabilities.$Properties {
  return {
    codecs: (c.codecs ?? []).map((k) => ({
      kind: kindToWire(k.kind),
      mimeType: k.mimeType,
      preferredPayloadType: k.preferredPayloadType ?? 0,
      clockRate: k.clockRate,
      channels: k.channels ?? 0,
      parameters: codecParametersToWire(k.parameters),
      rtcpFeedback: (k.rtcpFeedback ?? []).map((f) => ({ type: f.type, parameter: f.parameter ?? '' })),
    })),
    headerExtensions: (c.headerExtensions ?? []).map((h) => ({
      kind: kindToWire(h.kind),
      uri: h.uri,
      preferredId: h.preferredId,
      preferredEncrypt: h.preferredEncrypt ?? false,
      direction: h.direction ?? 'sendrecv',
    })),
  };
}

export function rtpCapabilitiesFromWire(c: c4v.signalling.v1.RtpCapabilities.$Properties | null | undefined): ms.RtpCapabilities {
  if (!c?.codecs?.length) throw new ProtocolError('PROTOCOL_ERROR', 'rtp capabilities need at least one codec');
  return {
    codecs: c.codecs.map((k) => ({
      kind: kindFromWire(k.kind),
      mimeType: k.mimeType ?? '',
      preferredPayloadType: k.preferredPayloadType ?? 0,
      clockRate: k.clockRate ?? 0,
      ...(k.channels ? { channels: k.channels } : {}),
      parameters: codecParametersFromWire(k.parameters),
      rtcpFeedback: (k.rtcpFeedback ?? []).map((f) => ({ type: f.type ?? '', ...(f.parameter ? { parameter: f.parameter } : {}) })),
    })),
    headerExtensions: (c.headerExtensions ?? []).map((h) => ({
      kind: kindFromWire(h.kind),
      uri: (h.uri ?? '') as ms.RtpHeaderExtensionUri,
      preferredId: h.preferredId ?? 0,
      preferredEncrypt: h.preferredEncrypt ?? false,
      direction: (h.direction || 'sendrecv') as ms.RtpHeaderExtensionDirection,
    })),
  };
}

export function producerToWire(p: ProducerInfo): c4v.signalling.v1.ProducerInfo.$Properties {
  return {
    id: p.id,
    participantId: p.participantId,
    source: sourceToWire(p.source),
    kind: kindToWire(p.kind),
    paused: p.paused,
    replacesProducerId: p.replacesProducerId ?? '',
  };
}

/** Issue 13: one cluster node as JoinOk.cluster_nodes carries it. */
export interface ClusterNodeWire {
  nodeId: string;
  url: string;
  region: string;
}

export function clusterNodesToWire(nodes: readonly ClusterNodeWire[]): c4v.signalling.v1.ClusterNodeInfo.$Properties[] {
  return nodes.map((n) => ({ nodeId: n.nodeId, url: n.url, region: n.region }));
}

/** The list a client keeps; entries without a URL are of no use to it and are dropped. */
export function clusterNodesFromWire(list: readonly c4v.signalling.v1.ClusterNodeInfo.$Properties[] | null | undefined): ClusterNodeWire[] {
  return (list ?? []).filter((n) => !!n.url).map((n) => ({ nodeId: n.nodeId ?? '', url: n.url ?? '', region: n.region ?? '' }));
}

export function consumerToWire(c: ConsumerInfo): c4v.signalling.v1.ConsumerInfo.$Properties {
  return {
    id: c.id,
    producerId: c.producerId,
    participantId: c.participantId,
    source: sourceToWire(c.source),
    kind: kindToWire(c.kind),
    rtpParameters: rtpParametersToWire(c.rtpParameters as ms.RtpParameters),
    paused: c.paused,
  };
}

export function dataConsumerToWire(d: DataConsumerInfo): c4v.signalling.v1.DataConsumerInfo.$Properties {
  return {
    id: d.id,
    dataProducerId: d.dataProducerId,
    participantId: d.participantId,
    label: d.label,
    sctpStreamParameters: { streamId: d.sctpStreamParameters.streamId, ordered: d.sctpStreamParameters.ordered ?? true },
  };
}

export function sctpStreamFromWire(
  s: c4v.signalling.v1.SctpStreamParameters.$Properties | null | undefined,
): ms.SctpStreamParameters {
  if (!s) throw new ProtocolError('PROTOCOL_ERROR', 'sctp stream parameters missing');
  return {
    streamId: s.streamId ?? 0,
    ordered: s.ordered ?? false,
    ...(s.maxPacketLifeTime != null ? { maxPacketLifeTime: s.maxPacketLifeTime } : {}),
    ...(s.maxRetransmits != null ? { maxRetransmits: s.maxRetransmits } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Issue 11: statistics
// ---------------------------------------------------------------------------------------------

type MsStreamStats = ms.ProducerStat | ms.ConsumerStat;

function streamStatsToWire(s: MsStreamStats): c4v.signalling.v1.RtpStreamStats.$Properties {
  const nonNegative = (n: number | undefined): number => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0);
  return {
    type: s.type,
    ssrc: s.ssrc,
    rid: s.rid ?? '',
    mimeType: s.mimeType,
    packetCount: nonNegative(s.packetCount),
    byteCount: nonNegative(s.byteCount),
    packetsLost: nonNegative(s.packetsLost),
    fractionLost: nonNegative(s.fractionLost),
    jitter: nonNegative(s.jitter),
    score: nonNegative(s.score),
    bitrate: Math.round(nonNegative(s.bitrate)),
    roundTripTime: nonNegative(s.roundTripTime),
    nackCount: nonNegative(s.nackCount),
    pliCount: nonNegative(s.pliCount),
    firCount: nonNegative(s.firCount),
  };
}

function layersToWire(consumerId: string, l: ms.ConsumerLayers | undefined): c4v.signalling.v1.ConsumerLayers.$Properties {
  if (!l) return { consumerId };
  return { consumerId, spatialLayer: l.spatialLayer, ...(l.temporalLayer != null ? { temporalLayer: l.temporalLayer } : {}) };
}

/** get_stats for a producer: one inbound stream per encoding the server receives. */
export function producerStatsToWire(stats: ms.ProducerStat[]): c4v.signalling.v1.StatsReport.$Properties {
  return { streams: stats.map(streamStatsToWire) };
}

/** get_stats for a consumer: its outbound stream, and its preferred and current layers. */
export function consumerStatsToWire(r: {
  stats: ms.ConsumerStat[];
  layers: { type: string; preferred?: ms.ConsumerLayers; current?: ms.ConsumerLayers };
}, consumerId = ''): c4v.signalling.v1.StatsReport.$Properties {
  return {
    streams: r.stats.map(streamStatsToWire),
    ...(r.layers.preferred ? { preferredLayers: layersToWire(consumerId, r.layers.preferred) } : {}),
    ...(r.layers.current ? { currentLayers: layersToWire(consumerId, r.layers.current) } : {}),
  };
}
