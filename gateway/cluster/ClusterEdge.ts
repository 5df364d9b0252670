// The cluster edge of one node: any node accepts a client's WebSocket. The edge answers `hello`,
// reads the `join` (or `resume`) to learn the meeting, places the meeting if it has no home yet,
// and then either serves the connection here (this node is the home) or relays its frames over
// the bus to the home, where an ordinary Connection runs on a virtual socket. Frames cross
// unchanged (the protocol's request ids); the edge times out requests the home does not answer
// (CLUSTER_TIMEOUT) and measures each one's latency. A node outside the meeting's allowed
// regions refuses the join itself (REGION_UNAVAILABLE); a draining node refuses it (NODE_DRAINING).
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WebSocket } from 'ws';
import { toErrorPayload, type ErrorCode } from '../../lib/errors.js';
import type { ClusterNode, RestoredSession } from '../../lib/cluster/ClusterNode.js';
import type { Meeting } from '../../lib/model/Meeting.js';
import { regionAllowed } from '../../lib/media/regions.js';
import type { Gateway } from '../Gateway.js';
import type { Session } from '../Session.js';
import { keys } from '../../lib/cluster/keys.js';
import {
  closeFrameFor,
  closeReasonToWire,
  clusterNodesToWire,
  decodeRequest,
  encodeEnvelope,
  errorToWire,
  pb,
  PROTOCOL_VERSIONS,
  type ClusterNodeWire,
} from '../wire.js';

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** The part of ws.WebSocket a Connection uses; frames come from and go to `out`. */
class VirtualSocket extends EventEmitter {
  readyState = OPEN;
  binaryType = 'nodebuffer';

  constructor(
    private readonly out: {
      frame(d: Buffer): void;
      close(code: number, reason: string): void;
      ping(): void;
      /** Bytes queued for the client (the Connection's slow-reader bound); 0 when not known here. */
      buffered?(): number;
    },
  ) {
    super();
  }

  get bufferedAmount(): number {
    return this.out.buffered?.() ?? 0;
  }

  send(data: Uint8Array): void {
    if (this.readyState === OPEN) this.out.frame(Buffer.from(data));
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState !== OPEN) return;
    this.readyState = CLOSING;
    this.out.close(code, reason);
  }

  terminate(): void {
    if (this.readyState === CLOSED) return;
    this.out.close(1006, '');
    this.gone(1006);
  }

  ping(): void {
    if (this.readyState === OPEN) this.out.ping();
  }

  feed(d: Buffer): void {
    if (this.readyState === OPEN) this.emit('message', d, true);
  }

  pong(): void {
    this.emit('pong');
  }

  gone(code: number): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.emit('close', code, Buffer.alloc(0));
  }
}

/** Which response ids the edge swallows (the home's answer to the replayed hello) and which it waits on. */
class EdgeLink {
  readonly #pending = new Map<number, { at: bigint; type: string; timer: NodeJS.Timeout }>();
  readonly #swallow: Set<number>;
  closed = false;

  constructor(
    readonly ws: WebSocket,
    readonly home: string,
    private readonly down: { frame(d: Buffer): void; gone(code: number): void; pong(): void },
    swallow: number[],
    private readonly timeoutMs: number,
    private readonly metrics: EdgeMetrics,
    private readonly maxBufferedBytes: number,
    /** Issue 13: the nodes a join or resume answer lists for this client (JoinOk.cluster_nodes). */
    private readonly clusterNodes?: () => ClusterNodeWire[],
  ) {
    this.#swallow = new Set(swallow);
    ws.on('message', (d: Buffer) => this.fromClient(d));
    ws.on('pong', () => this.down.pong());
    ws.on('close', (code: number) => {
      this.closed = true;
      for (const p of this.#pending.values()) clearTimeout(p.timer);
      this.#pending.clear();
      this.down.gone(code);
    });
  }

  fromClient(d: Buffer): void {
    try {
      const { id, type } = decodeRequest(d, true, { id: 0 });
      const timer = setTimeout(() => {
        // The home did not answer in time: the client hears it, and a late answer is dropped.
        this.#pending.delete(id);
        this.#swallow.add(id);
        this.metrics.timeouts.inc();
        this.#sendError(id, 'CLUSTER_TIMEOUT', `the meeting's home node did not answer ${type} in time`);
      }, this.timeoutMs);
      timer.unref();
      this.#pending.set(id, { at: process.hrtime.bigint(), type, timer });
    } catch {
      // Undecodable frames go on as they are: the home's Connection answers them with the coded error.
    }
    this.down.frame(d);
  }

  toClient(d: Buffer): void {
    let id = 0;
    let isResponse = false;
    try {
      const env = pb.Envelope.decode(d);
      id = env.id ?? 0;
      isResponse = env.body === 'response';
      // Join and resume answers carry this edge's view of the nodes the client may go to.
      if (isResponse && env.response?.join && this.clusterNodes) {
        env.response.join.clusterNodes = clusterNodesToWire(this.clusterNodes()) as typeof env.response.join.clusterNodes;
        d = Buffer.from(encodeEnvelope(env));
      }
    } catch {
      // Our own server's frames always decode; pass anything else through.
    }
    if (isResponse && this.#swallow.delete(id)) return;
    const p = isResponse ? this.#pending.get(id) : undefined;
    if (p) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      this.metrics.requests.observe({ type: p.type, hop: this.home === '' ? 'local' : 'relayed' }, Number(process.hrtime.bigint() - p.at) / 1e9);
    }
    if (this.ws.readyState !== OPEN) return;
    // A relayed client that does not read: the home cannot see this socket's buffer, so the edge
    // applies the same bound (the home's Connection ends the session as a lost connection).
    if (this.home !== '' && this.ws.bufferedAmount > this.maxBufferedBytes) {
      this.ws.terminate();
      return;
    }
    this.ws.send(d);
  }

  #sendError(id: number, code: ErrorCode, reason: string): void {
    if (this.ws.readyState === OPEN) this.ws.send(encodeEnvelope({ id, response: { error: errorToWire(code, reason) } }));
  }
}

interface EdgeMetrics {
  requests: Histogram<'type' | 'hop'>;
  timeouts: Counter;
}

export interface ClusterEdgeOptions {
  node: ClusterNode;
  gateway: Gateway;
  logger: Logger;
  registry: Registry;
  /** A relayed request unanswered this long gets CLUSTER_TIMEOUT; default 15000 ms. */
  requestTimeoutMs?: number;
  /**
   * Issue 13b: how long a resume waits for the meeting's home while a takeover is under way (the
   * old home lost, the new one not serving yet) before it is answered HOME_UNAVAILABLE (the SDK
   * retries within its grace period); default 10000 ms.
   */
  resumeWaitMs?: number;
}

/** Where a routed connection goes; `regions` (the meeting's) when known, for JoinOk.cluster_nodes. */
interface RouteTarget {
  home: string;
  meetingId: string;
  regions?: readonly string[];
}

/** Frames a client may send before its join is routed. */
const MAX_HELD = 4;

export class ClusterEdge {
  readonly #node: ClusterNode;
  readonly #gateway: Gateway;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #metrics: EdgeMetrics;
  /** Relays whose client is on this node (edge side), by connection id. */
  readonly #links = new Map<string, EdgeLink>();
  /** Relayed connections served here (home side), by connection id. */
  readonly #relayed = new Map<string, { socket: VirtualSocket; from: string }>();
  /** Issue 13 (home side): the connection each participant is attached through, and the node it comes from. */
  readonly #via = new Map<string, { socket: VirtualSocket; from: string; cid: string }>();
  #nextId = 1;
  #clients = 0;
  readonly #sockets = new Set<WebSocket>();
  readonly #resumeWaitMs: number;
  /** Issue 13b: the node each home-side connection's client is on (its media node), by socket. */
  readonly #socketNode = new WeakMap<object, string>();

  constructor(o: ClusterEdgeOptions) {
    this.#node = o.node;
    this.#gateway = o.gateway;
    this.#logger = o.logger.child({ component: 'clusteredge' });
    this.#timeoutMs = o.requestTimeoutMs ?? 15_000;
    this.#resumeWaitMs = o.resumeWaitMs ?? 10_000;
    const reg = o.registry;
    const node = o.node;
    this.#metrics = {
      requests: new Histogram({
        name: 'c4v_cluster_relay_request_seconds',
        help: 'Signalling request latency at the node the client is on, from its frame to the answer (hop: local or relayed to the home node)',
        labelNames: ['type', 'hop'],
        buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
        registers: [reg],
      }),
      timeouts: new Counter({ name: 'c4v_cluster_relay_timeouts_total', help: 'Relayed requests answered CLUSTER_TIMEOUT by this edge', registers: [reg] }),
    };
    const busSeconds = new Histogram({
      name: 'c4v_cluster_bus_request_seconds',
      help: 'Cluster bus request round trips sent by this node',
      labelNames: ['method', 'outcome'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5],
      registers: [reg],
    });
    node.bus.on('request', (method, _to, s, outcome) => busSeconds.observe({ method, outcome }, s));
    new Gauge({
      name: 'c4v_cluster_nodes',
      help: 'Nodes in the cluster registry, by state',
      labelNames: ['state'],
      registers: [reg],
      collect() {
        this.reset();
        for (const n of node.registry.nodes) this.inc({ state: n.state });
      },
    });
    new Gauge({
      name: 'c4v_cluster_redis_up',
      help: '1 while this node reaches Redis',
      registers: [reg],
      collect() {
        this.set(node.registry.redisUp ? 1 : 0);
      },
    });
    new Gauge({
      name: 'c4v_cluster_home_meetings',
      help: 'Meetings whose home (policy) is this node',
      registers: [reg],
      collect() {
        this.set(node.homeMeetings.length);
      },
    });
    new Gauge({
      name: 'c4v_cluster_pipe_producers',
      help: 'Producers crossing this node boundary over SRTP pipes, by peer node and direction (one per producer and node pair)',
      labelNames: ['peer', 'direction'],
      registers: [reg],
      async collect() {
        this.reset();
        for (const s of await node.pipeStats()) this.inc({ peer: s.peer, direction: s.direction });
      },
    });
    new Gauge({
      name: 'c4v_cluster_pipe_packets',
      help: 'RTP packets that crossed this node boundary over SRTP pipes, by peer node and direction',
      labelNames: ['peer', 'direction'],
      registers: [reg],
      async collect() {
        this.reset();
        for (const s of await node.pipeStats()) this.inc({ peer: s.peer, direction: s.direction }, s.packets);
      },
    });
    node.setLoad(() => this.#clients);
    this.#serveBus();
    node.on('nodelost', (id) => this.#onNodeLost(id));
    // Drain deadline: whoever is still connected here is sent to another node.
    node.on('drained', () => {
      for (const ws of [...this.#sockets]) this.#sendAway(ws, 'this node is draining: reconnect to another node');
    });
    o.gateway._socketRouter = (ws, address) => this.#accept(ws, address);
    o.gateway._healthExtra = () => this.health();
    this.#keepSessions();
  }

  /**
   * Issue 13b: sessions survive a home takeover. This node, as a home, writes each session's resume
   * record through (at the join and at every resume, before the token goes out); as a new home it
   * gets back the sessions of the participants a takeover restored.
   */
  #keepSessions(): void {
    this.#gateway._sessionStore = {
      save: (s: Session, socket: unknown) =>
        this.#node.saveSession(s.meeting.id, s.participant.id, s.tokenHash, (typeof socket === 'object' && socket !== null ? this.#socketNode.get(socket) : undefined) ?? this.#node.nodeId),
    };
    this.#node._onSessionsRestored = (meeting: Meeting, restored: RestoredSession[]) => {
      for (const r of restored) this.#gateway._restoreSession(meeting, r.participant, r.tokenHash);
    };
  }

  /** The cluster view /healthz shows. */
  health(): Record<string, unknown> {
    const n = this.#node;
    return {
      cluster: {
        nodeId: n.nodeId,
        region: n.region,
        state: n.draining ? 'draining' : 'serving',
        redis: n.registry.redisUp ? 'up' : 'down',
        homeMeetings: n.homeMeetings,
        /** Meetings with media (a MeetingMedia shard) on this node. */
        mediaMeetings: n.agent.meetingIds,
        nodes: n.registry.nodes.map((x) => ({ id: x.id, region: x.region, state: x.state, participants: x.participants, cpu: Math.round(x.cpu * 1000) / 1000 })),
      },
    };
  }

  // Edge side ------------------------------------------------------------------------------------

  #accept(ws: WebSocket, address: string): void {
    this.#clients++;
    this.#sockets.add(ws);
    ws.once('close', () => {
      this.#clients--;
      this.#sockets.delete(ws);
    });
    const held: Buffer[] = [];
    const swallow: number[] = [];
    let routing = false;
    let done = false;
    const onMessage = (d: Buffer, isBinary: boolean): void => {
      if (done) return;
      held.push(d);
      if (routing) return;
      let req: ReturnType<typeof decodeRequest> | undefined;
      try {
        req = decodeRequest(d, isBinary, { id: 0 });
      } catch {
        req = undefined;
      }
      if (req?.type === 'hello' && held.length < MAX_HELD && this.#answerHello(ws, req)) {
        swallow.push(req.id);
        return;
      }
      let target: Promise<RouteTarget | undefined>;
      if (req?.type === 'join') target = this.#homeFor(ws, req.id, req.request.join?.meetingId ?? '', held);
      else if (req?.type === 'resume') target = this.#resumeTarget(ws, req.id, req.request.resume?.participantId ?? '', held);
      else target = Promise.resolve({ home: this.#node.nodeId, meetingId: '' });
      routing = true;
      void target.then(
        (t) => {
          routing = false;
          if (t === undefined) return; // refused: the client may try another join here
          done = true;
          ws.off('message', onMessage);
          ws.off('close', onEarlyClose);
          this.#route(ws, address, t.home, t.meetingId, held, swallow, t.regions);
        },
        () => ws.terminate(),
      );
    };
    const onEarlyClose = (): void => {
      done = true;
    };
    ws.binaryType = 'nodebuffer';
    ws.on('message', onMessage);
    ws.on('close', onEarlyClose);
    ws.on('error', () => undefined);
  }

  /** Mirrors Connection's hello for a client whose connection is not routed yet; false lets the Connection answer (bad hello). */
  #answerHello(ws: WebSocket, req: ReturnType<typeof decodeRequest>): boolean {
    const offered = req.request.hello?.protocolVersions ?? [];
    let version = -1;
    for (const v of offered) if ((PROTOCOL_VERSIONS as readonly number[]).includes(v) && v > version) version = v;
    if (version < 0 || offered.length > 16) return false;
    const l = this.#gateway.limits;
    ws.send(
      encodeEnvelope({
        id: req.id,
        response: { hello: { protocolVersion: version, serverVersion: this.#gateway.serverVersion, pingIntervalMs: l.pingIntervalMs, maxMessageBytes: l.maxMessageBytes } },
      }),
    );
    return true;
  }

  /** The home node to route a join to, placing the meeting first; undefined when refused here. */
  async #homeFor(ws: WebSocket, id: number, meetingId: string, held: Buffer[]): Promise<RouteTarget | undefined> {
    const refuse = (code: ErrorCode, reason: string): undefined => {
      held.pop(); // the refused join is not replayed later
      ws.send(encodeEnvelope({ id, response: { error: errorToWire(code, reason) } }));
      return undefined;
    };
    try {
      if (this.#node.draining) return refuse('NODE_DRAINING', 'this node is draining: connect to another node');
      const lease = meetingId ? await this.#node.placeMeeting(meetingId) : undefined;
      if (!lease) return { home: this.#node.nodeId, meetingId }; // unknown here: the local Connection answers NOT_FOUND
      if (!regionAllowed(this.#node.region, lease.allowedRegions)) {
        // Fail closed: media of this meeting never lands on a node outside its regions.
        return refuse('REGION_UNAVAILABLE', `this node (${this.#node.region}) is outside the meeting's allowed regions`);
      }
      return { home: lease.nodeId, meetingId, regions: lease.allowedRegions };
    } catch (error) {
      const { code, reason } = toErrorPayload(error);
      return refuse(code === 'INTERNAL' ? 'CLUSTER_UNAVAILABLE' : code, code === 'INTERNAL' ? 'cluster unavailable' : reason);
    }
  }

  /**
   * The home to route a resume to (`regions` unset when none serves the meeting). Issue 13b: while
   * the meeting's home is being taken over (the old one lost), the resume waits for the new home
   * within a bound (`resumeWaitMs`) rather than failing: the new home has the session back.
   */
  async #homeForResume(participantId: string): Promise<RouteTarget> {
    const meetingId = participantId ? await this.#node.meetingOfParticipant(participantId) : undefined;
    const lease = meetingId ? await this.#node.homeForResume(meetingId, this.#resumeWaitMs) : undefined;
    return { home: lease?.nodeId ?? this.#node.nodeId, meetingId: meetingId ?? '', ...(lease ? { regions: lease.allowedRegions } : {}) };
  }

  /**
   * Issue 13: a resume arriving here. A draining node sends it on (NODE_DRAINING: the SDK tries
   * the next node); otherwise the home is asked to let go of the participant's old connection if
   * that one came through a node that is dead (the client is faster than the registry TTL).
   */
  async #resumeTarget(ws: WebSocket, id: number, participantId: string, held: Buffer[]): Promise<RouteTarget | undefined> {
    const refuse = (code: ErrorCode, reason: string): undefined => {
      held.pop(); // the refused resume is not replayed later
      ws.send(encodeEnvelope({ id, response: { error: errorToWire(code, reason) } }));
      return undefined;
    };
    if (this.#node.draining) return refuse('NODE_DRAINING', 'this node is draining: resume at another node');
    // Cut off from Redis, this node cannot find the session: say so rather than INVALID_TOKEN,
    // which would tell the client that its session is gone.
    if (!this.#node.registry.redisUp) return refuse('CLUSTER_UNAVAILABLE', 'cluster unavailable');
    const t = await this.#homeForResume(participantId);
    // Issue 13b: no home served the meeting within the bound (a takeover not done): the SDK tries
    // again (at the next node, then here).
    if (t.meetingId && !t.regions) return refuse('HOME_UNAVAILABLE', 'the meeting\'s home node is not back yet: resume again shortly');
    // Fail closed as for a join: the participant's media would move here.
    if (t.regions && !regionAllowed(this.#node.region, t.regions)) {
      return refuse('REGION_UNAVAILABLE', `this node (${this.#node.region}) is outside the meeting's allowed regions`);
    }
    if (participantId && t.meetingId) {
      const prepare = t.home === this.#node.nodeId
        ? this.#releaseStale(participantId, this.#node.nodeId)
        : this.#node.bus.request(t.home, 'relay.resume', { p: participantId }, 3000);
      await prepare.catch(() => undefined);
    }
    return t;
  }

  /**
   * Home side of a resume through node `via`: when the participant's live connection is relayed
   * from another node that is gone (no registry entry, or nobody on its bus channel: a killed
   * process), that connection is ended as lost now, so that the session can be resumed.
   */
  async #releaseStale(participantId: string, via: string): Promise<void> {
    const s = this.#via.get(participantId);
    if (!s || s.from === via || s.socket.readyState !== OPEN) return;
    if (await this.#linkAlive(s)) return;
    this.#logger.info({ participantId, lost: s.from, via }, 'resume through another node: the connection through a dead or closed link ends');
    s.socket.gone(1006);
  }

  /**
   * Whether a relayed connection still has its client at the other end: its node is in the
   * registry, subscribed to its bus channel (a killed process is not, at once), and says the
   * link is open (a drained node closed it; its relay.gone may still be on the way).
   */
  async #linkAlive(s: { from: string; cid: string }): Promise<boolean> {
    if (s.from === this.#node.nodeId) return true;
    if (!this.#node.registry.node(s.from)) return false;
    const r = (await this.#node.redis.call('PUBSUB', 'NUMSUB', keys.bus(s.from)).catch(() => undefined)) as [string, number] | undefined;
    if (r !== undefined && Number(r[1]) === 0) return false;
    // No answer in time: a node that cannot answer cannot carry the client either.
    return this.#node.bus.request<boolean>(s.from, 'relay.alive', { c: s.cid }, 1000).then((open) => open === true, () => false);
  }

  /** Issue 13: the serving nodes in `regions`, this one first, then the least loaded. */
  #clusterNodes(regions: readonly string[]): ClusterNodeWire[] {
    const self = this.#node.nodeId;
    return this.#node.registry.nodes
      .filter((n) => n.state === 'serving' && n.url && regionAllowed(n.region, regions))
      .sort((a, b) => (a.id === self ? -1 : b.id === self ? 1 : a.participants - b.participants || (a.id < b.id ? -1 : 1)))
      .map((n) => ({ nodeId: n.id, url: n.url, region: n.region }));
  }

  #route(ws: WebSocket, address: string, home: string, meetingId: string, held: Buffer[], swallow: number[], regions?: readonly string[]): void {
    const cid = `${this.#node.nodeId}:${this.#nextId++}`;
    const nodes = regions ? () => this.#clusterNodes(regions) : undefined;
    if (home === this.#node.nodeId) {
      // Served here: an ordinary Connection on a virtual socket in front of the WebSocket.
      const socket = new VirtualSocket({
        frame: (d) => link.toClient(d),
        close: (code, reason) => ws.close(code, reason),
        ping: () => ws.ping(),
        buffered: () => ws.bufferedAmount,
      });
      const link = new EdgeLink(
        ws,
        '',
        { frame: (d) => socket.feed(d), gone: (c) => socket.gone(c), pong: () => socket.pong() },
        swallow,
        this.#timeoutMs,
        this.#metrics,
        this.#gateway.limits.maxBufferedBytes,
        nodes,
      );
      this.#socketNode.set(socket, this.#node.nodeId);
      this.#gateway._attach(socket as unknown as WebSocket, address);
      this.#watchJoin(socket, meetingId, this.#node.nodeId);
      for (const d of held) link.fromClient(d);
      return;
    }
    const bus = this.#node.bus;
    const send = (topic: string, body: unknown): void => {
      void bus.send(home, topic, body).catch(() => ws.terminate());
    };
    const link = new EdgeLink(
      ws,
      home,
      {
        frame: (d) => send('relay.in', { c: cid, d: d.toString('base64') }),
        gone: (code) => {
          this.#links.delete(cid);
          send('relay.gone', { c: cid, code });
        },
        pong: () => send('relay.pong', { c: cid }),
      },
      swallow,
      this.#timeoutMs,
      this.#metrics,
      this.#gateway.limits.maxBufferedBytes,
      nodes,
    );
    this.#links.set(cid, link);
    send('relay.open', { c: cid, address, m: meetingId });
    for (const d of held) link.fromClient(d);
  }

  /**
   * Tells the meeting's media plane where a participant's media goes, from its JoinOk (join or
   * resume). Issue 13: after the answer, so that a resume through another node, which moves the
   * participant's media there, has its producer_closed and reconnect notices follow the answer.
   */
  #watchJoin(socket: VirtualSocket, meetingId: string, from: string, cid = ''): void {
    const out = socket.send.bind(socket);
    socket.send = (data: Uint8Array) => {
      let participantId: string | undefined;
      try {
        const env = pb.Envelope.decode(data);
        const join = env.body === 'response' ? env.response?.join : undefined;
        if (join?.participantId && meetingId) participantId = join.participantId;
      } catch {
        // not ours to judge: the frame goes out as it is
      }
      out(data);
      if (participantId) {
        this.#attachedVia(participantId, socket, from, cid);
        this.#node.mediaOf(meetingId)?.assignNode(participantId, from);
        void this.#node.rememberParticipant(participantId, meetingId);
      }
    };
  }

  /** Issue 13: which node a participant's live connection comes through (home side), for #releaseStale. */
  #attachedVia(participantId: string, socket: VirtualSocket, from: string, cid: string): void {
    this.#via.set(participantId, { socket, from, cid });
    socket.once('close', () => {
      if (this.#via.get(participantId)?.socket === socket) this.#via.delete(participantId);
    });
  }

  // Home side ------------------------------------------------------------------------------------

  #serveBus(): void {
    const bus = this.#node.bus;
    bus.listen('relay.open', (b: { c: string; address: string; m: string }, from: string) => {
      const socket = new VirtualSocket({
        frame: (d) => void bus.send(from, 'relay.out', { c: b.c, d: d.toString('base64') }).catch(() => undefined),
        close: (code, reason) => void bus.send(from, 'relay.close', { c: b.c, code, reason }).catch(() => undefined),
        ping: () => void bus.send(from, 'relay.ping', { c: b.c }).catch(() => undefined),
      });
      socket.once('close', () => this.#relayed.delete(b.c));
      this.#relayed.set(b.c, { socket, from });
      this.#socketNode.set(socket, from);
      this.#watchJoin(socket, b.m, from, b.c);
      this.#gateway._attach(socket as unknown as WebSocket, b.address);
    });
    bus.listen('relay.in', (b: { c: string; d: string }) => this.#relayed.get(b.c)?.socket.feed(Buffer.from(b.d, 'base64')));
    bus.listen('relay.gone', (b: { c: string; code: number }) => this.#relayed.get(b.c)?.socket.gone(b.code));
    bus.listen('relay.pong', (b: { c: string }) => this.#relayed.get(b.c)?.socket.pong());
    bus.handle('relay.resume', (b: { p: string }, from: string) => this.#releaseStale(String(b?.p ?? ''), from));
    // Edge side: is this client's link still open (asked by a home before a resume elsewhere)?
    bus.handle('relay.alive', (b: { c: string }) => {
      const l = this.#links.get(String(b?.c ?? ''));
      return !!l && !l.closed && l.ws.readyState === OPEN;
    });
    // Edge side: what the home sends back.
    bus.listen('relay.out', (b: { c: string; d: string }) => this.#links.get(b.c)?.toClient(Buffer.from(b.d, 'base64')));
    bus.listen('relay.close', (b: { c: string; code: number; reason: string }) => this.#links.get(b.c)?.ws.close(b.code, b.reason));
    bus.listen('relay.ping', (b: { c: string }) => {
      const l = this.#links.get(b.c);
      if (l && l.ws.readyState === OPEN) l.ws.ping();
    });
  }

  #onNodeLost(nodeId: string): void {
    // Connections relayed from a lost node end as lost connections (their sessions wait out the grace).
    for (const r of [...this.#relayed.values()]) if (r.from === nodeId) r.socket.gone(1006);
    this.#resumeAtNewHome(nodeId);
  }

  /**
   * Issue 13b: clients relayed to a lost home. Their node (this one) is alive and a new home will
   * have their sessions back, so their WebSockets close as lost, without a Closing notice (1012,
   * service restart): the SDK resumes here with its latest token, and that resume waits for the
   * new home (#homeForResume).
   */
  #resumeAtNewHome(lost: string): void {
    for (const [cid, link] of [...this.#links]) {
      if (link.home !== lost) continue;
      this.#links.delete(cid);
      if (link.ws.readyState === OPEN) link.ws.close(1012, 'home node moved: resume');
    }
  }

  /** Closes a client's WebSocket with a Closing notice (SERVER_SHUTDOWN): the SDK reconnects. */
  #sendAway(ws: WebSocket, message: string): void {
    if (ws.readyState !== OPEN) return;
    const { code, text } = closeFrameFor('server-shutdown');
    ws.send(encodeEnvelope({ id: 0, notification: { closing: { reason: closeReasonToWire('server-shutdown'), message } } }));
    ws.close(code, text);
  }

  /** Open client WebSockets on this node. */
  get clients(): number {
    return this.#clients;
  }
}

