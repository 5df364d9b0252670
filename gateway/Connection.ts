import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { checkDisplayName } from '../lib/rules.js';
import { ArgumentError, InvalidStateError, isUnexpectedError, PolicyError, ProtocolError, toErrorPayload, type ErrorCode } from '../lib/errors.js';
import type { CloseReason } from '../lib/model/types.js';
import type { GatewayMetrics } from './metrics.js';
import type { GatewayCore, GatewayMeeting, GatewayParticipant } from './model.js';
import { participantToWire, Session, type SessionSink, type SessionStore } from './Session.js';
import { encodeParticipantList } from './rosterEncoding.js';
import type { JoinTokens } from './tokens.js';
import { TokenBucket, type KeyedRateLimiter } from './limits.js';
import {
  closeFrameFor,
  closeReasonToWire,
  consumerToWire,
  dataConsumerToWire,
  decodeRequest,
  directionFromWire,
  dtlsFromWire,
  encodeEnvelope,
  errorToWire,
  iceToWire,
  kindFromWire,
  PROTOCOL_VERSIONS,
  producerToWire,
  roleToWire,
  rtpCapabilitiesFromWire,
  rtpCapabilitiesToWire,
  rtpParametersFromWire,
  sctpStreamFromWire,
  sourceFromWire,
  stateToWire,
  transportToWire,
  producerStatsToWire,
  consumerStatsToWire,
  type AnyCloseReason,
  type NotificationProps,
  type RequestMsg,
  type RequestType,
  type ResponseProps,
} from './wire.js';

/** Limits of one connection (GatewayLimits adds the per-address ones). */
export interface ConnectionLimits {
  /** Largest WebSocket message accepted (ws maxPayload); a larger one closes with 1009. */
  maxMessageBytes: number;
  /** Requests per second per connection (token bucket) and the burst above it. */
  messagesPerSecond: number;
  messageBurst: number;
  /** Requests queued on one connection at most (RATE_LIMITED beyond). */
  maxPendingRequests: number;
  /** Bytes queued for a client that does not read, before it is closed with SLOW_READER. */
  maxBufferedBytes: number;
  /** Malformed frames on one connection before it is closed with PROTOCOL_VIOLATION. */
  protocolErrorsBeforeClose: number;
  /** Rate-limited requests on one connection before it is closed with FLOODING. */
  floodStrikesBeforeClose: number;
  /** The server pings this often; no pong by the next ping ends the connection. */
  pingIntervalMs: number;
  /** A participant whose connection was lost stays this long, resumable, then leaves. */
  reconnectGraceMs: number;
  /** A connection must have joined (or resumed) within this time. */
  joinTimeoutMs: number;
}

/**
 * @internal Issue 14: switches for the signalling hot path, all on by default; bench/signalling.ts
 * turns them off to measure each one's gain against a baseline in the same run.
 */
export interface HotPathTuning {
  /** The responses (and notifications) of one event-loop turn leave a socket in one write. */
  batchWrites: boolean;
  /** get_participants shares the encoded roster per meeting (gateway/rosterEncoding.ts). */
  rosterCache: boolean;
}

/** What a connection needs from its gateway. */
export interface ConnectionContext {
  core: GatewayCore;
  tokens: JoinTokens;
  metrics: GatewayMetrics;
  limits: ConnectionLimits;
  addressLimiter: KeyedRateLimiter;
  serverVersion: string;
  sessions: Map<string, Session>;
  /** @internal Issue 13b: cluster mode writes each session's resume record through (see SessionStore). */
  sessionStore?: SessionStore | undefined;
  /** @internal Issue 14; every switch on when absent. */
  tuning?: Partial<HotPathTuning>;
}

// ---------------------------------------------------------------------------------------------
// Write batching (issue 14)
// ---------------------------------------------------------------------------------------------

// Without batching, every ws.send() is its own write syscall: at a few thousand requests per
// second that is most of the server's CPU (one read, one write and one event-loop turn per
// request). A socket that is sent a response while more requests of its connection wait is
// corked until the end of the current event-loop turn (setImmediate runs after this turn's I/O
// callbacks), so the responses to all the frames of one read (and anything else sent to it in
// that turn) leave in one writev. Order is kept (one stream), and
// the send-buffer bound still holds: ws.bufferedAmount counts corked bytes, and #sendBytes checks
// it before every send. A socket destroyed while corked loses what was corked, as it would lose
// what was queued.
// NOTE: ws has no cork API; its maintainer points to `websocket._socket.cork()` for exactly this
// (https://github.com/websockets/ws/pull/1999). Sockets without one (the cluster relay's virtual
// sockets) are sent to unbatched.
type Corkable = { cork(): void; uncork(): void; writableCorked: number; destroyed: boolean };
const corked: Corkable[] = [];
let flushScheduled = false;

function flushCorked(): void {
  flushScheduled = false;
  // uncork() may run socket callbacks that send (and cork) again: take the list first.
  const list = corked.splice(0);
  for (const s of list) s.uncork();
}

/** The TCP socket under `ws` (undefined for the cluster relay's virtual sockets). */
function socketOf(ws: WebSocket): Corkable | undefined {
  const socket = (ws as unknown as { _socket?: Corkable })._socket;
  return socket && typeof socket.cork === 'function' ? socket : undefined;
}

/**
 * A batch this large (or above the send-buffer bound, if that is lower) is written out at once
 * (uncorked early): it bounds what one turn holds back, and it lets the kernel take the bytes
 * before the send-buffer bound is checked, so that a client
 * that pipelines many large answers but reads them is not taken for a slow reader: corked bytes
 * count in ws.bufferedAmount, which without the cork the kernel would have taken.
 */
const FLUSH_AT_BYTES = 64 * 1024;

function corkForThisTurn(ws: WebSocket): void {
  const socket = socketOf(ws);
  // writableCorked > 0: corked already this turn (ws's own cork never outlives a send call).
  if (!socket || socket.writableCorked > 0 || socket.destroyed) return;
  socket.cork();
  corked.push(socket);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushCorked);
  }
}

type State = 'new' | 'ready' | 'joined' | 'closed';

/**
 * One signalling WebSocket. Decodes and checks every frame, enforces the per-connection and
 * per-address rate limits and the send-buffer bound, runs requests one at a time in order, and
 * answers each with exactly one response. Every refused frame gets a coded error (or a close
 * with a status code and reason) and a warning log; nothing thrown here reaches the socket's
 * event loop.
 */
export class Connection implements SessionSink {
  readonly logger: Logger;
  /** Cleared by the gateway's ping round, set by a pong or any frame. */
  alive = true;
  #state: State = 'new';
  #session: Session | undefined;
  #chain: Promise<void> = Promise.resolve();
  /** Run right after the current response is sent (notifications that must follow it). */
  #afterResponse: (() => void) | undefined;
  /** A request is being handled: a close it causes waits until its response is sent. */
  #handling = false;
  #deferredEnd: CloseReason | undefined;
  /** Set by a handler whose answer is encoded by hand (get_participants): the whole envelope for a request id. */
  #preEncoded: ((id: number) => Uint8Array) | undefined;
  #pending = 0;
  #protocolErrors = 0;
  #floodStrikes = 0;
  readonly #bucket: TokenBucket;
  readonly #batchWrites: boolean;
  readonly #rosterCache: boolean;
  readonly #joinTimer: NodeJS.Timeout;
  #killTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly ws: WebSocket,
    readonly address: string,
    private readonly ctx: ConnectionContext,
    logger: Logger,
    private readonly onClosed: (c: Connection) => void,
  ) {
    this.logger = logger;
    const l = ctx.limits;
    this.#bucket = new TokenBucket(l.messagesPerSecond, l.messageBurst);
    this.#batchWrites = ctx.tuning?.batchWrites ?? true;
    this.#rosterCache = ctx.tuning?.rosterCache ?? true;
    this.#joinTimer = setTimeout(() => {
      if (this.#state === 'new' || this.#state === 'ready') this.#closeWith('timeout', 'no join within the time limit');
    }, l.joinTimeoutMs);
    this.#joinTimer.unref();
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => this.#onFrame(data as Buffer, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', (error: Error & { code?: string }) => this.#onSocketError(error));
    ws.on('close', (code) => this.#onSocketClose(code));
  }

  get state(): State {
    return this.#state;
  }

  get closed(): boolean {
    return this.#state === 'closed';
  }

  get session(): Session | undefined {
    return this.#session;
  }

  // -------------------------------------------------------------------------------------------
  // SessionSink
  // -------------------------------------------------------------------------------------------

  notify(n: NotificationProps): void {
    this.#send({ id: 0, notification: n });
  }

  end(reason: CloseReason): void {
    if (this.#handling) {
      this.#deferredEnd = reason;
      return;
    }
    this.#closeWith(reason, `participant session ended: ${reason}`);
  }

  /** Closes the connection for `reason` (a Closing notification, then the close frame). */
  close(reason: AnyCloseReason, message = reason as string): void {
    this.#closeWith(reason, message);
  }

  /** Drops the TCP connection at once (a dead peer). */
  terminate(reason: AnyCloseReason): void {
    if (this.#state === 'closed') return;
    this.ctx.metrics.closes.inc({ reason });
    this.logger.warn({ reason }, 'connection terminated');
    this.ws.terminate();
  }

  // -------------------------------------------------------------------------------------------
  // Frames
  // -------------------------------------------------------------------------------------------

  #onFrame(data: Buffer, isBinary: boolean): void {
    if (this.#state === 'closed') return;
    this.alive = true;
    const idHint = { id: 0 };
    let decoded: ReturnType<typeof decodeRequest>;
    try {
      decoded = decodeRequest(data, isBinary, idHint);
    } catch (error) {
      this.ctx.metrics.messages.inc({ type: 'invalid' });
      this.#refuse(idHint.id, error, 'invalid');
      if (++this.#protocolErrors >= this.ctx.limits.protocolErrorsBeforeClose) {
        this.#closeWith('protocol-violation', `${this.#protocolErrors} malformed frames`);
      }
      return;
    }
    const { id, type, request } = decoded;
    this.ctx.metrics.messages.inc({ type });
    // Floods: per connection and per address (many connections from one place). A refused
    // request is answered, and a client that keeps flooding is disconnected.
    const overConnection = !this.#bucket.take();
    const overAddress = !overConnection && !this.ctx.addressLimiter.take(this.address);
    const overQueue = this.#pending >= this.ctx.limits.maxPendingRequests;
    if (overConnection || overAddress || overQueue) {
      const scope = overConnection ? 'connection' : overAddress ? 'address' : 'queue';
      this.#refuse(id, new ProtocolError('RATE_LIMITED', `too many requests (${scope} limit)`), type);
      if (++this.#floodStrikes >= this.ctx.limits.floodStrikesBeforeClose) {
        this.#closeWith('flooding', `rate limit exceeded ${this.#floodStrikes} times`);
      }
      return;
    }
    this.#pending++;
    this.#chain = this.#chain.then(async () => {
      try {
        if (this.#state === 'closed') return;
        this.#handling = true;
        const result = await this.#handle(type, request);
        const preEncoded = this.#preEncoded;
        this.#preEncoded = undefined;
        if (preEncoded) this.#sendBytes(preEncoded(id));
        else this.#send({ id, response: result });
        const after = this.#afterResponse;
        this.#afterResponse = undefined;
        after?.();
      } catch (error) {
        this.#refuse(id, error, type);
      } finally {
        this.#pending--;
        this.#handling = false;
        // E.g. the host's own endMeeting: the response goes out before the close.
        const deferred = this.#deferredEnd;
        this.#deferredEnd = undefined;
        if (deferred) this.end(deferred);
      }
    });
  }

  /** Answers request `id` with the coded error for `error`, logs a warning and counts it. */
  #refuse(id: number, error: unknown, type: string): void {
    const { code, reason } = toErrorPayload(error);
    this.ctx.metrics.errors.inc({ code });
    if (isUnexpectedError(error)) {
      // A bug or a failed component: the client only learns "internal error"; the log gets the
      // error's class, message and stack, and c4v_gateway_internal_errors_total counts it.
      this.ctx.metrics.internalErrors.inc({ type });
      const e = error instanceof Error ? error : new Error(String(error));
      this.logger.error({ code, type, err: e }, 'request failed unexpectedly');
    } else {
      // Refusals by meeting policy are ordinary outcomes; bad input is a warning.
      this.logger[error instanceof PolicyError ? 'info' : 'warn']({ code, type }, 'request refused');
    }
    this.#send({ id, response: { error: errorToWire(code, reason) } });
  }

  #send(env: Parameters<typeof encodeEnvelope>[0]): void {
    this.#sendBytes(encodeEnvelope(env));
  }

  #sendBytes(bytes: Uint8Array): void {
    const ws = this.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    const limit = this.ctx.limits.maxBufferedBytes;
    if (this.#batchWrites && ws.bufferedAmount > Math.min(FLUSH_AT_BYTES, limit)) {
      const socket = socketOf(ws);
      // The batch so far goes out now; what the kernel does not take stays in bufferedAmount.
      if (socket?.writableCorked) socket.uncork();
    }
    // A client that does not read lets our send buffer grow without bound: close it instead.
    if (ws.bufferedAmount > limit) {
      this.#closeWith('slow-reader', `send buffer above ${limit} bytes`);
      return;
    }
    // Only while more requests of this connection wait (several arrived in one read): a lone
    // response goes out at once, without the cork's bookkeeping.
    if (this.#batchWrites && this.#pending > 1) corkForThisTurn(ws);
    ws.send(bytes);
  }

  #closeWith(reason: AnyCloseReason, message: string): void {
    if (this.#state === 'closed') return;
    const wasJoined = this.#state === 'joined';
    this.#state = 'closed';
    clearTimeout(this.#joinTimer);
    const meetingReason = !['protocol-violation', 'flooding', 'slow-reader', 'version-mismatch', 'timeout'].includes(reason);
    this.ctx.metrics.closes.inc({ reason });
    (meetingReason ? this.logger.info : this.logger.warn).call(this.logger, { reason }, 'closing connection');
    const { code, text } = closeFrameFor(reason);
    if (this.ws.readyState === WebSocket.OPEN) {
      // Skip the buffer check here: the Closing notice is the last thing we queue anyway.
      if (reason !== 'slow-reader') this.ws.send(encodeEnvelope({ id: 0, notification: { closing: { reason: closeReasonToWire(reason), message } } }));
      this.ws.close(code, text);
    }
    // A peer that does not complete the closing handshake (or does not read) is dropped.
    this.#killTimer = setTimeout(() => this.ws.terminate(), 2000);
    this.#killTimer.unref();
    // The gateway ended the connection, not the meeting: keep the participant for the grace
    // period like any lost connection (a client that was flooding must rejoin, not resume).
    if (wasJoined && this.#session && !this.#session.closed) {
      if (reason === 'flooding' || reason === 'protocol-violation') this.#session.participant.close('connection-lost');
      else this.#session.detach(this, this.ctx.limits.reconnectGraceMs);
    }
  }

  #onSocketError(error: Error & { code?: string }): void {
    // ws reports oversized frames and bad framing here and closes the socket itself
    // (1009 for a frame above maxPayload, 1002 for a protocol error).
    const code: ErrorCode = error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'MESSAGE_TOO_LARGE' : 'PROTOCOL_ERROR';
    this.ctx.metrics.errors.inc({ code });
    this.logger.warn({ code, wsCode: error.code }, 'websocket error; connection closed');
  }

  #onSocketClose(code: number): void {
    clearTimeout(this.#joinTimer);
    clearTimeout(this.#killTimer);
    const wasState = this.#state;
    this.#state = 'closed';
    const s = this.#session;
    if (wasState === 'joined' && s && !s.closed) s.detach(this, this.ctx.limits.reconnectGraceMs);
    this.logger.debug({ code }, 'connection closed');
    this.onClosed(this);
  }

  // -------------------------------------------------------------------------------------------
  // Requests
  // -------------------------------------------------------------------------------------------

  async #handle(type: RequestType, r: RequestMsg): Promise<ResponseProps> {
    switch (this.#state) {
      case 'new':
        if (type !== 'hello') throw new InvalidStateError(`${type} before hello`);
        return this.#hello(r);
      case 'ready':
        if (type === 'join') return this.#join(r);
        if (type === 'resume') return this.#resume(r);
        throw new InvalidStateError(type === 'hello' ? 'hello was already sent' : `${type} before join`);
      case 'joined':
        return this.#joined(type, r);
      default:
        throw new InvalidStateError('connection is closing');
    }
  }

  #hello(r: RequestMsg): ResponseProps {
    const offered = r.hello!.protocolVersions ?? [];
    if (offered.length > 16) throw new ProtocolError('PROTOCOL_ERROR', 'hello offers more than 16 protocol versions');
    let version = -1;
    for (const v of offered) if ((PROTOCOL_VERSIONS as readonly number[]).includes(v) && v > version) version = v;
    if (version < 0) {
      // Answer first, then close: the client learns why.
      setImmediate(() => this.#closeWith('version-mismatch', 'no common protocol version'));
      throw new ProtocolError(
        'UNSUPPORTED_VERSION',
        `protocol versions [${offered.join(', ')}] not supported; this server speaks [${PROTOCOL_VERSIONS.join(', ')}]`,
      );
    }
    this.#state = 'ready';
    const l = this.ctx.limits;
    return {
      hello: {
        protocolVersion: version,
        serverVersion: this.ctx.serverVersion,
        pingIntervalMs: l.pingIntervalMs,
        maxMessageBytes: l.maxMessageBytes,
      },
    };
  }

  async #join(r: RequestMsg): Promise<ResponseProps> {
    const joinAt = process.hrtime.bigint();
    const j = r.join!;
    const metrics = this.ctx.metrics;
    try {
      const meetingId = j.meetingId ?? '';
      if (!meetingId) throw new ArgumentError('join needs a meeting id');
      const displayName = checkDisplayName(j.displayName ?? '');
      let identity: string;
      let authenticated = false;
      let asHost = false;
      if (j.joinToken) {
        const claims = await this.ctx.tokens.verify(j.joinToken);
        if (claims.meetingId !== meetingId) throw new ProtocolError('INVALID_TOKEN', 'join token is for another meeting');
        identity = claims.identity;
        authenticated = true;
        asHost = claims.role === 'host';
      } else {
        identity = `guest-${randomUUID()}`;
      }
      const meeting = this.ctx.core.getMeeting(meetingId);
      if (!meeting) throw new InvalidStateError(`no meeting ${meetingId}`, 'NOT_FOUND');
      // Guests (no token) are refused by the model (GUESTS_NOT_ALLOWED) in its admission order.
      const participant = await meeting.join({
        identity,
        displayName,
        authenticated,
        asHost,
        ...(j.password ? { password: j.password } : {}),
        address: this.address,
        e2eeCapable: j.e2eeCapable ?? false,
      });
      if (this.#state !== 'ready') {
        // The socket went away while the join was being decided.
        participant.close('connection-lost');
        throw new InvalidStateError('connection closed during join');
      }
      metrics.joins.inc({ outcome: participant.state });
      const response = this.#attach(meeting, participant, joinAt);
      // Cluster mode: the token's hash is in Redis before the token goes out.
      await this.ctx.sessionStore?.save(this.#session!, this.ws);
      return response;
    } catch (error) {
      metrics.joins.inc({ outcome: toErrorPayload(error).code });
      throw error;
    }
  }

  #attach(meeting: GatewayMeeting, participant: GatewayParticipant, joinAt: bigint): ResponseProps {
    const logger = this.logger.child({ meetingId: meeting.id, participantId: participant.id });
    const session = new Session(meeting, participant, this.ctx.metrics, logger, joinAt, (s) => {
      if (this.ctx.sessions.get(s.participant.id) === s) this.ctx.sessions.delete(s.participant.id);
    });
    this.ctx.sessions.set(participant.id, session);
    return this.#bind(session);
  }

  #bind(session: Session): ResponseProps {
    const { meeting, participant } = session;
    (this as { logger: Logger }).logger = session.logger;
    this.#session = session;
    this.#state = 'joined';
    clearTimeout(this.#joinTimer);
    const replaced = session.attach(this);
    if (replaced && replaced instanceof Connection) replaced.#closeWith('replaced', 'resumed on another connection');
    this.logger.info({ state: participant.state, role: participant.role }, 'participant attached');
    // A moderator's first waiting list was emitted inside meeting.join(), before this session
    // listened: send the current one after the response (and again on resume).
    this.#afterResponse = () => {
      if (participant.state === 'admitted' && (participant.role === 'host' || participant.role === 'cohost')) {
        this.notify({ waitingList: { participants: meeting.waiting.map(participantToWire) } });
      }
    };
    return {
      join: {
        participantId: participant.id,
        state: stateToWire(participant.state),
        role: roleToWire(participant.role),
        resumeToken: session.resumeToken,
        meetingTitle: meeting.title,
        rtpCapabilities: participant.state === 'admitted' ? rtpCapabilitiesToWire(meeting.rtpCapabilities) : null,
        e2eeRequired: meeting.settings.e2ee === 'required',
        e2eeMode: meeting.settings.e2ee,
        reconnectGraceMs: this.ctx.limits.reconnectGraceMs,
        activeSpeakerId: participant.state === 'admitted' ? (meeting.activeSpeakerId ?? '') : '',
      },
    };
  }

  async #resume(r: RequestMsg): Promise<ResponseProps> {
    const { participantId, resumeToken } = r.resume!;
    const session = participantId ? this.ctx.sessions.get(participantId) : undefined;
    // One answer for "no such participant", "wrong or used token" and "not disconnected": do not
    // reveal which ids exist or which are live. session.resume() rotates the token (single use)
    // and refuses while another connection is attached, so the live connection is never touched.
    if (!session || !resumeToken || !session.resume(this, resumeToken)) {
      throw new ProtocolError('INVALID_TOKEN', 'nothing to resume with this participant id and resume token');
    }
    const response = this.#bind(session);
    // Cluster mode: the rotated token's hash replaces the used one in Redis before the new token
    // goes out, so the used token is dead at any later home too.
    await this.ctx.sessionStore?.save(session, this.ws);
    const after = this.#afterResponse;
    this.#afterResponse = () => {
      after?.();
      session.afterResume();
    };
    return response;
  }

  async #joined(type: RequestType, r: RequestMsg): Promise<ResponseProps> {
    const s = this.#session!;
    s.beforeRequest(); // issue 13b: a restored session's reconnect notice goes out first
    const p = s.participant;
    const m = s.meeting;
    const ok: ResponseProps = { ok: {} };
    const target = (t: { participantId?: string | null } | null | undefined): string => {
      if (!t?.participantId) throw new ArgumentError('a host control needs a participant id');
      return t.participantId;
    };
    // Host controls: the model checks the actor's role (NOT_PERMITTED).
    switch (type) {
      case 'hello':
      case 'join':
      case 'resume':
        throw new InvalidStateError(`${type}: already joined`);
      case 'ping':
        return ok;
      case 'leave':
        p.leave();
        return ok;
      case 'getParticipants': {
        if (p.state !== 'admitted') throw new PolicyError('NOT_ADMITTED', `the participant list is for admitted participants (${p.state})`);
        // Issue 14: the answer is encoded from cached parts, the roster shared per meeting (gateway/rosterEncoding.ts).
        const [participants, producers, chats, speaker] = [m.participants, p.availableProducers?.() ?? [], p.availableChats?.() ?? [], m.activeSpeakerId ?? ''];
        const key = this.#rosterCache ? m : undefined;
        this.#preEncoded = (rid) => encodeParticipantList(rid, participants, producers, chats, speaker, key);
        return ok;
      }
      case 'admit':
        await m.admit(p, target(r.admit));
        return ok;
      case 'admitAll':
        await m.admitAll(p);
        return ok;
      case 'deny':
        await m.deny(p, target(r.deny));
        return ok;
      case 'lock':
        await m.lock(p);
        return ok;
      case 'unlock':
        await m.unlock(p);
        return ok;
      case 'remove':
        await m.remove(p, target(r.remove));
        return ok;
      case 'mute':
        await m.mute(p, target(r.mute));
        return ok;
      case 'muteAll':
        await m.muteAll(p);
        return ok;
      case 'stopScreenShare':
        await m.stopScreenShare(p, target(r.stopScreenShare));
        return ok;
      case 'makeCohost':
        await m.makeCoHost(p, target(r.makeCohost));
        return ok;
      case 'transferHost':
        await m.transferHost(p, target(r.transferHost));
        return ok;
      case 'endMeeting':
        await m.end(p);
        return ok;
      case 'createPoll': {
        const c = r.createPoll!;
        const pollId = await m.createPoll(p, { question: c.question ?? '', options: c.options ?? [], anonymous: c.anonymous ?? false });
        return { pollCreated: { pollId } };
      }
      case 'closePoll':
        await m.closePoll(p, r.closePoll!.pollId ?? '');
        return ok;
      case 'getPollResults': {
        const res = await m.pollResults(p, r.getPollResults!.pollId ?? '');
        return {
          pollResults: {
            pollId: res.pollId,
            question: res.question,
            options: res.options,
            counts: res.counts,
            answers: res.answers.map((a) => ({ participantIdentity: a.identity, displayName: a.displayName, option: a.option })),
            closed: res.closed,
          },
        };
      }
      default:
        break;
    }
    // Everything below is media, chat or E2EE: admitted participants only.
    if (p.state !== 'admitted') throw new PolicyError('NOT_ADMITTED', `${type} needs an admitted participant (state ${p.state})`);
    switch (type) {
      case 'answerPoll':
        await p.answerPoll(r.answerPoll!.pollId ?? '', r.answerPoll!.option ?? 0);
        return ok;
      case 'getRouterRtpCapabilities':
        return { rtpCapabilities: rtpCapabilitiesToWire(m.rtpCapabilities) };
      case 'createTransport': {
        const info = await p.createTransport(directionFromWire(r.createTransport!.direction));
        s.transportOpened(info.id);
        return { transport: transportToWire(info) };
      }
      case 'connectTransport': {
        const c = r.connectTransport!;
        await p.connectTransport(c.transportId ?? '', dtlsFromWire(c.dtlsParameters));
        return ok;
      }
      case 'restartIce':
        return { iceParameters: iceToWire(await p.restartIce(r.restartIce!.transportId ?? '')) };
      case 'produce': {
        const c = r.produce!;
        const kind = kindFromWire(c.kind);
        const info = await p.produce({
          transportId: c.transportId ?? '',
          source: sourceFromWire(c.source),
          kind,
          rtpParameters: rtpParametersFromWire(c.rtpParameters),
        });
        s.producerOpened(info.id, info.kind, c.transportId ?? '');
        s.mediaStarted();
        return { producer: producerToWire(info) };
      }
      case 'pauseProducer':
        await p.pauseProducer(r.pauseProducer!.producerId ?? '');
        return ok;
      case 'resumeProducer':
        await p.resumeProducer(r.resumeProducer!.producerId ?? '');
        return ok;
      case 'closeProducer': {
        const id = r.closeProducer!.producerId ?? '';
        await p.closeProducer(id);
        s.producerGone(id);
        return ok;
      }
      case 'consume': {
        const c = r.consume!;
        const info = await p.consume({
          transportId: c.transportId ?? '',
          producerId: c.producerId ?? '',
          rtpCapabilities: rtpCapabilitiesFromWire(c.rtpCapabilities),
        });
        s.consumerOpened(info.id, info.kind, info.producerId, c.transportId ?? '');
        return { consumer: consumerToWire(info) };
      }
      case 'pauseConsumer':
        await p.pauseConsumer(r.pauseConsumer!.consumerId ?? '');
        return ok;
      case 'resumeConsumer':
        await p.resumeConsumer(r.resumeConsumer!.consumerId ?? '');
        s.mediaStarted();
        return ok;
      case 'setPreferredLayers': {
        const c = r.setPreferredLayers!;
        await p.setPreferredLayers(c.consumerId ?? '', {
          spatialLayer: c.spatialLayer ?? 0,
          ...(c.temporalLayer != null ? { temporalLayer: c.temporalLayer } : {}),
        });
        return ok;
      }
      case 'produceChat': {
        const c = r.produceChat!;
        const { id } = await p.produceChat({ transportId: c.transportId ?? '', sctpStreamParameters: sctpStreamFromWire(c.sctpStreamParameters) });
        s.dataOpened(id, 'producer', c.transportId ?? '');
        return { dataProducer: { id, participantId: p.id } };
      }
      case 'consumeChat': {
        const c = r.consumeChat!;
        const info = await p.consumeChat({ transportId: c.transportId ?? '', dataProducerId: c.dataProducerId ?? '' });
        s.dataOpened(info.id, 'consumer', c.transportId ?? '');
        return { dataConsumer: dataConsumerToWire(info) };
      }
      case 'closeTransport': {
        const id = r.closeTransport!.transportId ?? '';
        if (!id) throw new ArgumentError('close_transport needs a transport id');
        await p.closeTransport(id);
        s.transportClosed(id);
        return ok;
      }
      case 'getStats': {
        const g = r.getStats!;
        if (g.target === 'producerId' && g.producerId) return { stats: producerStatsToWire(await p.producerStats(g.producerId)) };
        if (g.target === 'consumerId' && g.consumerId) return { stats: consumerStatsToWire(await p.consumerStats(g.consumerId), g.consumerId) };
        throw new ArgumentError('get_stats needs a producer_id or a consumer_id');
      }
      case 'sendKeyMessage': {
        const c = r.sendKeyMessage!;
        if (!c.data?.length) throw new ArgumentError('a key message needs data');
        await p.sendKeyMessage(c.toParticipantId || undefined, c.data);
        return ok;
      }
      default:
        throw new ProtocolError('PROTOCOL_ERROR', `unhandled request type ${type}`);
    }
  }
}
