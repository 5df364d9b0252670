// One node of a cluster: its Redis connections, registry entry, bus, media agent, and the home
// role of the meetings it was placed with. Created by startClusterNode() when a Redis URL is
// configured; a node without it is the single-node server it always was.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { C4vError, MediaError } from '../errors.js';
import { TypedEmitter } from '../events.js';
import type { MediaCore } from '../MediaCore.js';
import { regionAllowed } from '../media/regions.js';
import type { MeetingInit } from '../model/types.js';
import type { Bus } from './Bus.js';
import { Bus as BusImpl } from './Bus.js';
import { ClusterMedia, type NodeMediaHandle } from './ClusterMedia.js';
import { keys, MEETING_RECORD_TTL_S } from './keys.js';
import { MediaAgent, type PipeAddress, type PipeStat } from './MediaAgent.js';
import { NodeRegistry, type NodeInfo } from './NodeRegistry.js';
import type { Meeting, MeetingPolicyState, RestoredParticipant } from '../model/Meeting.js';
import type { Participant } from '../model/Participant.js';
import {
  chooseHome,
  claimHome,
  purgeMeeting,
  readHome,
  readPolicy,
  readRecordedHome,
  readSessions,
  renewHome,
  takeOverHome,
  writePolicy,
  writeSessions,
  type HomeLease,
} from './placement.js';
import { connectRedis, type RedisConnectOptions } from './redis.js';

/** Cluster settings of one node. */
export interface ClusterOptions {
  redis: RedisConnectOptions;
  /** Unique per node, stable across restarts: [A-Za-z0-9_.-]{1,64}. */
  nodeId: string;
  /** The region of this node's workers, `<country>-<site>`. */
  region: string;
  /** The signalling URL clients reach this node at (published in the registry). */
  url: string;
  /** Where pipe transports to other nodes listen, and the address they announce. */
  pipe: PipeAddress;
  /** Heartbeat period and registry TTL (ms); defaults 1000 / 3000. */
  heartbeatMs?: number;
  nodeTtlMs?: number;
  /** Home lease TTL (ms), renewed every third of it; default 5000. */
  leaseMs?: number;
  /** Time-out of one bus request (ms); default 5000. */
  requestTimeoutMs?: number;
}

export type ClusterNodeEvents = {
  /** Another node's entry expired. */
  nodelost: [string];
  /** This node's registry heartbeat reached Redis again / failed. */
  redisstate: ['up' | 'down'];
  /** This node became a meeting's home. */
  home: [HomeLease];
  /** This node lost a meeting's home lease to another node (fenced off: the meeting was closed here). */
  homelost: [string];
  /** This node started draining. */
  draining: [];
  /** The drain deadline passed: home meetings were moved (or could not be) and clients should go. */
  drained: [];
  listenererror: [string, unknown];
};

const NODE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

interface HomeMeeting {
  lease: HomeLease;
  media: ClusterMedia | undefined;
  timer: NodeJS.Timeout;
  /** Writes the policy state through to Redis (coalesced: one write per turn of the event loop). */
  writeThrough: (() => void) | undefined;
  /** Kept for a move to another node (drain); never written to Redis. */
  init: MeetingInit;
  /** Issue 13b: per participant, the hash of its current resume token and its media node (from the gateway's saves). */
  sessions: Map<string, { tokenHash: string; node: string }>;
  /** What Redis holds of the session records (participant id -> record JSON), as last written. */
  written: Map<string, string>;
  /** Writes the changed session records through (coalesced like the policy). */
  syncSessions: (() => void) | undefined;
}

/** A restored participant and the hash of its client's latest resume token (issue 13b). */
export interface RestoredSession {
  participant: Participant;
  tokenHash: string;
}

/** Issue 13b: the session record of one participant in Redis (JSON); see keys.sessions. */
interface SessionRecord extends Omit<RestoredParticipant, 'id'> {
  node: string;
  tokenHash: string;
}

export class ClusterNode extends TypedEmitter<ClusterNodeEvents> {
  readonly nodeId: string;
  readonly region: string;
  readonly redis: Redis;
  readonly bus: Bus;
  readonly registry: NodeRegistry;
  readonly agent: MediaAgent;
  readonly #core: MediaCore;
  readonly #logger: Logger;
  readonly #o: Required<Omit<ClusterOptions, 'redis' | 'pipe'>> & Pick<ClusterOptions, 'redis' | 'pipe'>;
  readonly #homes = new Map<string, HomeMeeting>();
  readonly #hosting = new Map<string, Promise<void>>();
  readonly #inits = new Map<string, MeetingInit>();
  #load: () => number = () => 0;
  #cpu = 0;
  #lastCpu: { at: number; ms: number } | undefined;
  #draining = false;
  #drainTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** Meetings whose takeover from a lost node is being tried (one loop each). */
  readonly #takingOver = new Set<string>();
  /**
   * @internal Issue 13b: set by the cluster edge. Builds the gateway sessions of the participants a
   * takeover restored (detached, resumable with the client's latest token for the grace period).
   * Without it no participant is restored (they rejoin).
   */
  _onSessionsRestored: ((meeting: Meeting, restored: RestoredSession[]) => void) | undefined;

  /** @internal Use startClusterNode(). */
  constructor(core: MediaCore, options: ClusterOptions, logger: Logger) {
    super();
    if (!NODE_ID_RE.test(options.nodeId)) throw new TypeError(`cluster nodeId must match ${NODE_ID_RE}, got ${JSON.stringify(options.nodeId)}`);
    this.#o = { heartbeatMs: 1000, nodeTtlMs: 3000, leaseMs: 5000, requestTimeoutMs: 5000, ...options };
    this.nodeId = options.nodeId;
    this.region = options.region;
    this.#core = core;
    this.#logger = logger.child({ component: 'cluster', nodeId: options.nodeId });
    this.redis = connectRedis(options.redis, `c4v-${options.nodeId}`);
    this.bus = new BusImpl({ nodeId: this.nodeId, redis: this.redis, logger: this.#logger, timeoutMs: this.#o.requestTimeoutMs });
    this.registry = new NodeRegistry({
      redis: this.redis,
      logger: this.#logger,
      intervalMs: this.#o.heartbeatMs,
      ttlMs: this.#o.nodeTtlMs,
      self: () => this.#selfInfo(),
    });
    this.agent = new MediaAgent({
      pool: core.pool,
      options: core._mediaOptions,
      logger: this.#logger,
      pipeAddress: options.pipe,
      report: (home, meetingId, event, args) => {
        if (home === this.nodeId) this.#homes.get(meetingId)?.media?._onNodeEvent(this.nodeId, event, args);
        else void this.bus.send(home, 'media.ev', { m: meetingId, event, args }).catch(() => undefined);
      },
    });
    core._mediaPlaneFactory = (p) => this.#createMediaPlane(p.meetingId, p.allowedRegions);
    this.#serve();
    this.registry.on('nodelost', (id) => this.#onNodeLost(id));
    this.registry.on('redisstate', (s) => this.safeEmit('redisstate', s));
  }

  get closed(): boolean {
    return this.#closed;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Meetings this node is home of. */
  get homeMeetings(): string[] {
    return [...this.#homes.keys()];
  }

  /** The ClusterMedia of one of this node's home meetings. */
  mediaOf(meetingId: string): ClusterMedia | undefined {
    return this.#homes.get(meetingId)?.media;
  }

  /** How this node counts its load for placement (the edge: participants connected here). */
  setLoad(fn: () => number): void {
    this.#load = fn;
  }

  #selfInfo(): Omit<NodeInfo, 'at'> {
    void this.#sampleCpu();
    return {
      id: this.nodeId,
      region: this.region,
      url: this.#o.url,
      mediaAddress: this.#o.pipe.announcedAddress ?? this.#o.pipe.ip,
      participants: this.#load(),
      cpu: this.#cpu,
      state: this.#draining ? 'draining' : 'serving',
    };
  }

  async #sampleCpu(): Promise<void> {
    // Worker CPU: user + system time of every worker over the heartbeat period, per worker.
    const usage = await this.#core.pool.resourceUsage().catch(() => []);
    const ms = usage.reduce((a, u) => a + u.usage.ru_utime + u.usage.ru_stime, 0);
    const now = Date.now();
    if (this.#lastCpu && now > this.#lastCpu.at && usage.length > 0) {
      this.#cpu = Math.max(0, (ms - this.#lastCpu.ms) / (now - this.#lastCpu.at) / usage.length);
    }
    this.#lastCpu = { at: now, ms };
  }

  async start(): Promise<void> {
    await this.bus.start();
    await this.registry.start();
    this.#logger.info({ region: this.region }, 'cluster node registered');
  }

  /** Makes a meeting placeable: its init is kept here (never in Redis) until it is placed. */
  defineMeeting(init: MeetingInit & { id: string }): void {
    this.#inits.set(init.id, init);
  }

  /** Issue 13c: the meeting is no longer placeable here (it ended, or its definition went). */
  forgetMeeting(meetingId: string): void {
    this.#inits.delete(meetingId);
  }

  // Placement --------------------------------------------------------------------------------------

  /** The meeting's home, placing it when it has none and this node knows its init; undefined for an unknown meeting. */
  async placeMeeting(meetingId: string): Promise<HomeLease | undefined> {
    let existing = await readHome(this.redis, meetingId).catch((e: unknown) => {
      throw new C4vError('CLUSTER_UNAVAILABLE', `cluster store unreachable (${String(e)})`);
    });
    const init = this.#inits.get(meetingId);
    if (existing && existing.nodeId !== this.nodeId && !this.registry.node(existing.nodeId)) {
      // The home's registry entry expired (killed, partitioned): take the home role over for the
      // least loaded serving node in the allowed regions. The fencing token of the dead home is
      // checked in the same script, so concurrent takeovers agree on one new home.
      const chosen = chooseHome(this.registry.nodes, existing.allowedRegions);
      const { lease, won } = await takeOverHome(this.redis, existing, chosen.id, this.#o.leaseMs);
      if (won) this.#logger.warn({ meetingId, dead: existing.nodeId, home: lease.nodeId, token: lease.token }, 'home role taken over');
      existing = lease;
    }
    if (existing) {
      // The home may still be creating it (or, after a restart, not have it): hosting is idempotent.
      if (init) await (existing.nodeId === this.nodeId ? this.hostMeeting(init, existing) : this.#askToHost(existing.nodeId, init));
      return existing;
    }
    if (!init) return undefined;
    const account = this.#core.getAccount(init.accountId);
    const regions = init.settings?.allowedRegions ?? account?.effectiveSettings(init.settings ?? {}).allowedRegions ?? ['DE', 'AT', 'CH'];
    await this.registry.beat();
    const chosen = chooseHome(this.registry.nodes, regions);
    const { lease } = await claimHome(this.redis, meetingId, chosen.id, regions, this.#o.leaseMs);
    if (lease.nodeId === this.nodeId) await this.hostMeeting(init, lease);
    else await this.#askToHost(lease.nodeId, init);
    return lease;
  }

  async #askToHost(nodeId: string, init: MeetingInit): Promise<void> {
    await this.bus.request(nodeId, 'cluster.host', { init: serializeInit(init) });
  }

  /** Creates the meeting here as its home (idempotent), holding `lease` and renewing it. */
  async hostMeeting(init: MeetingInit & { id?: string }, lease: HomeLease): Promise<void> {
    const id = lease.meetingId;
    // A creation under way first: the meeting exists before its policy and sessions are rebuilt,
    // and nobody may join it in between.
    let pending = this.#hosting.get(id);
    if (!pending && this.#core.getMeeting(id)) return;
    if (!pending) {
      pending = (async () => {
        const home: HomeMeeting = {
          lease,
          media: undefined,
          timer: setInterval(() => void this.#renew(id), Math.max(100, this.#o.leaseMs / 3)),
          writeThrough: undefined,
          init,
          sessions: new Map(),
          written: new Map(),
          syncSessions: undefined,
        };
        home.timer.unref();
        this.#homes.set(id, home);
        try {
          // A previous home's policy and sessions (a takeover), read before the meeting exists
          // here and rebuilt in the same turn as its creation, before anyone joins here.
          const [state, records] = await Promise.all([
            readPolicy<MeetingPolicyState>(this.redis, id).catch(() => undefined),
            this._onSessionsRestored ? readSessions(this.redis, id).catch(() => new Map<string, string>()) : new Map<string, string>(),
          ]);
          const meeting = await this.#core.createMeeting({ ...init, id });
          meeting.once('close', () => void this.#releaseHome(id));
          if (state) {
            meeting._restorePolicy(state);
            this.#logger.warn({ meetingId: id, banned: state.banned.length, polls: state.polls.length, locked: state.locked }, 'policy state rebuilt from the previous home');
          }
          this.#restoreSessions(meeting, home, records);
          let queued = false;
          home.writeThrough = () => {
            if (queued || meeting.closed) return;
            queued = true;
            setImmediate(() => {
              queued = false;
              if (meeting.closed || this.#homes.get(id) !== home) return;
              void writePolicy(this.redis, home.lease, meeting._policyState()).catch(() => undefined);
            });
          };
          home.syncSessions = this.#sessionSync(meeting, home);
          for (const e of ['participantjoined', 'participantwaiting', 'participantleft', 'settingschanged', 'pollclosed', 'audit', 'meetingstarted'] as const) {
            meeting.on(e, home.writeThrough);
            meeting.on(e, home.syncSessions);
          }
          home.writeThrough();
          home.syncSessions();
          this.#logger.info({ meetingId: id, token: lease.token }, 'home of the meeting');
          this.safeEmit('home', { ...lease });
        } catch (error) {
          clearInterval(home.timer);
          this.#homes.delete(id);
          throw error;
        }
      })().finally(() => this.#hosting.delete(id));
      this.#hosting.set(id, pending);
    }
    await pending;
  }

  async #renew(meetingId: string): Promise<void> {
    const home = this.#homes.get(meetingId);
    if (!home) return;
    let ok: boolean;
    try {
      ok = await renewHome(this.redis, home.lease, this.#o.leaseMs);
    } catch {
      return; // Redis down: the meeting goes on; the lease is renewed (or re-taken) once it is back.
    }
    if (ok) {
      // Poll answers raise no meeting event: the renewal tick writes them through too (and any
      // role or state change no meeting event announced).
      home.writeThrough?.();
      home.syncSessions?.();
      return;
    }
    // The lease is gone: after a Redis restart nobody holds it and this node takes it again (a new
    // token); if another node holds it now, this node is fenced off and gives the meeting up.
    const again = await claimHome(this.redis, meetingId, this.nodeId, home.lease.allowedRegions, this.#o.leaseMs).catch(() => undefined);
    if (!again) return;
    if (again.lease.nodeId === this.nodeId) {
      home.lease = again.lease;
      home.writeThrough?.();
      // An empty Redis lost the session records too: write them all again.
      home.written.clear();
      home.syncSessions?.();
      this.#logger.warn({ meetingId, token: again.lease.token }, 'home lease re-taken (redis lost it)');
      return;
    }
    this.#logger.error({ meetingId, holder: again.lease.nodeId }, 'home lease lost to another node: closing the meeting here');
    clearInterval(home.timer);
    this.#homes.delete(meetingId);
    this.safeEmit('homelost', meetingId);
    this.#core.getMeeting(meetingId)?.close();
  }

  async #releaseHome(meetingId: string): Promise<void> {
    const home = this.#homes.get(meetingId);
    if (!home) return;
    clearInterval(home.timer);
    this.#homes.delete(meetingId);
    // Meeting end: its records go now (the TTLs are the backstop if this fails).
    await purgeMeeting(this.redis, home.lease).catch((e: unknown) => this.#logger.warn({ err: String(e), meetingId }, 'purge of the meeting records failed'));
  }

  /** Records which meeting an (opaque) participant id belongs to, so a resume at any node is routed. */
  async rememberParticipant(participantId: string, meetingId: string): Promise<void> {
    // As long as the meeting's records (purged with them at its end): a participant in a meeting
    // longer than an hour must still be routed to a new home when it resumes after a takeover.
    await this.redis.set(keys.participant(participantId), meetingId, 'EX', MEETING_RECORD_TTL_S).catch(() => undefined);
  }

  async meetingOfParticipant(participantId: string): Promise<string | undefined> {
    return (await this.redis.get(keys.participant(participantId)).catch(() => null)) ?? undefined;
  }

  // Sessions (issue 13b) ---------------------------------------------------------------------------

  /**
   * Writes one participant's session record through (the gateway calls it at a join and at every
   * resume, before the new token goes out): the hash of its current token and its media node with
   * its identity, name, role and admission state. Fenced by the home's lease; bounded in time; a
   * failure is logged (the participant then rejoins after a takeover instead of resuming).
   */
  async saveSession(meetingId: string, participantId: string, tokenHash: string, node: string): Promise<void> {
    const home = this.#homes.get(meetingId);
    const p = this.#core.getMeeting(meetingId)?.participant(participantId);
    if (!home || !p || p.closed) return;
    home.sessions.set(participantId, { tokenHash, node });
    const json = sessionRecord(p, home.sessions.get(participantId)!);
    if (json === undefined) return;
    const bound = Math.min(1000, this.#o.requestTimeoutMs);
    let timer: NodeJS.Timeout | undefined;
    try {
      const ok = await Promise.race([
        writeSessions(this.redis, home.lease, new Map([[participantId, json]]), []),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer from redis within ${bound} ms`)), bound);
        }),
      ]);
      if (ok) home.written.set(participantId, json);
    } catch (error) {
      home.written.delete(participantId);
      this.#logger.warn({ meetingId, participantId, err: String(error) }, 'session record not written (a takeover cannot resume it)');
    } finally {
      clearTimeout(timer);
    }
  }

  /** The home's coalesced write of changed session records: new roles and states, and the records of those who left. */
  #sessionSync(meeting: Meeting, home: HomeMeeting): () => void {
    let queued = false;
    return () => {
      if (queued || meeting.closed) return;
      queued = true;
      setImmediate(() => {
        queued = false;
        if (meeting.closed || this.#homes.get(meeting.id) !== home) return;
        const set = new Map<string, string>();
        const present = new Set<string>();
        for (const p of [...meeting.participants, ...meeting.waiting]) {
          const s = home.sessions.get(p.id);
          if (!s) continue;
          present.add(p.id);
          const json = sessionRecord(p, s);
          if (json !== undefined && home.written.get(p.id) !== json) set.set(p.id, json);
        }
        for (const id of home.sessions.keys()) if (!present.has(id)) home.sessions.delete(id);
        const del = [...home.written.keys()].filter((id) => !present.has(id));
        if (set.size === 0 && del.length === 0) return;
        // What was sent is what Redis holds once the script ran; on a failure the set records are
        // sent again at the next sync and the deletions stay pending.
        for (const [id, json] of set) home.written.set(id, json);
        for (const id of del) home.written.delete(id);
        void writeSessions(this.redis, home.lease, set, del).then(
          (ok) => {
            if (!ok) for (const id of set.keys()) home.written.delete(id);
          },
          () => {
            for (const id of set.keys()) home.written.delete(id);
            for (const id of del) home.written.set(id, '');
          },
        );
      });
    };
  }

  /** A takeover: the previous home's participants back in the meeting, and their gateway sessions (detached). */
  #restoreSessions(meeting: Meeting, home: HomeMeeting, records: ReadonlyMap<string, string>): void {
    const hook = this._onSessionsRestored;
    if (!hook || records.size === 0) return;
    const list: Array<RestoredParticipant & { tokenHash: string; node: string; json: string }> = [];
    for (const [id, json] of records) {
      const r = parseSessionRecord(id, json);
      if (r) list.push({ ...r, json });
      else this.#logger.warn({ meetingId: meeting.id, participantId: id }, 'unreadable session record skipped');
    }
    const restored = meeting._restoreParticipants(list);
    const byId = new Map(list.map((r) => [r.id, r]));
    const media = home.media;
    const out: RestoredSession[] = [];
    for (const p of restored) {
      const r = byId.get(p.id)!;
      home.sessions.set(p.id, { tokenHash: r.tokenHash, node: r.node });
      home.written.set(p.id, r.json);
      // Until the client resumes somewhere (its resume answer assigns the node it is on), its
      // media is where it was.
      if (this.registry.node(r.node)) media?.assignNode(p.id, r.node);
      out.push({ participant: p, tokenHash: r.tokenHash });
    }
    // Records that were not restored (banned meanwhile, duplicates) go at the next sync.
    for (const id of records.keys()) if (!home.sessions.has(id)) home.written.set(id, '');
    hook(meeting, out);
    this.#logger.warn({ meetingId: meeting.id, restored: out.length, records: records.size }, 'sessions restored from the previous home');
  }

  // Media ------------------------------------------------------------------------------------------

  async #createMediaPlane(meetingId: string, allowedRegions: readonly string[]): Promise<ClusterMedia> {
    const home = this.#homes.get(meetingId);
    if (!home) throw new C4vError('INVALID_STATE', `meeting ${meetingId} is not placed on this node (create it through the cluster)`);
    const local = await this.agent.open(meetingId, allowedRegions, this.nodeId);
    const self: NodeMediaHandle = { nodeId: this.nodeId, call: (method, ...args) => dispatch(this.agent, meetingId, method, args) as Promise<never> };
    const media = new ClusterMedia({
      meetingId,
      self,
      local,
      logger: this.#logger,
      open: async (nodeId) => {
        const info = await this.registry.find(nodeId);
        if (!info) throw new MediaError('CLUSTER_UNAVAILABLE', `node ${nodeId} is not in the cluster`);
        if (!regionAllowed(info.region, allowedRegions)) {
          throw new MediaError('REGION_UNAVAILABLE', `node ${nodeId} (${info.region}) is outside the meeting's allowed regions`);
        }
        await this.bus.request(nodeId, 'media.open', { m: meetingId, regions: allowedRegions });
        return { nodeId, call: (method, ...args) => this.bus.request(nodeId, 'media', { m: meetingId, method, args }) as Promise<never> };
      },
    });
    home.media = media;
    return media;
  }

  /** Packet counters of the producers crossing this node's boundary. */
  pipeStats(): Promise<PipeStat[]> {
    return this.agent.pipeStats();
  }

  #serve(): void {
    const bus = this.bus;
    bus.handle('cluster.host', async (a: { init: MeetingInit & { id: string } }) => {
      const lease = await readHome(this.redis, a.init.id);
      if (!lease || lease.nodeId !== this.nodeId) throw new C4vError('HOME_LOST', `this node does not hold the lease of meeting ${a.init.id}`);
      await this.hostMeeting(deserializeInit(a.init), lease);
    });
    bus.handle('media.open', async (a: { m: string; regions: string[] }, from: string) => {
      await this.agent.open(a.m, a.regions, from);
    });
    bus.handle('media', (a: { m: string; method: string; args: unknown[] }) => dispatch(this.agent, a.m, a.method, a.args));
    bus.handle('cluster.pipeStats', () => this.pipeStats());
    // Issue 13b: whether this node serves the meeting as its home now (once its creation finished).
    bus.handle('cluster.hosts', async (a: { m: string }) => {
      await this.#hosting.get(a?.m)?.catch(() => undefined);
      return this.#homes.has(a?.m) && this.#core.getMeeting(a?.m) !== undefined;
    });
    bus.handle('cluster.drain', (a: { deadlineMs?: number }) => this.drain(typeof a?.deadlineMs === 'number' ? a.deadlineMs : undefined));
    bus.listen('media.ev', (b: { m: string; event: string; args: unknown[] }, from: string) => {
      this.#homes.get(b.m)?.media?._onNodeEvent(from, b.event, b.args);
    });
  }

  #onNodeLost(nodeId: string): void {
    this.#logger.warn({ lost: nodeId }, 'node left the cluster (heartbeat expired)');
    for (const home of this.#homes.values()) home.media?._onNodeLost(nodeId);
    // Media of meetings whose home is gone is released here (their transports died with the
    // home's media plane; the new home has the clients build them again). Only while that node is
    // still their home here: a new home may have opened the meeting afresh meanwhile.
    void this.agent.meetingsOf(nodeId).then((ids) => {
      for (const id of ids) void this.agent.closeMeetingOf(id, nodeId, 'released');
    });
    // Meetings this node knows whose home that was: take the home role over now rather than at
    // the next join, so the resuming participants find it ready.
    for (const id of this.#inits.keys()) void this.#takeOverFrom(id, nodeId);
    this.safeEmit('nodelost', nodeId);
  }

  /**
   * Takes the home role of a meeting over from a lost node, or makes sure the node that won it
   * hosts the meeting. The lost home's lease may already have run out (it was renewed up to a
   * third of the lease before the death, and the loss is noticed a registry TTL after the last
   * heartbeat): then the placement record still names the lost node, and the meeting is placed
   * anew. A failed attempt (a bus time-out, Redis away) is retried with back-off for a bounded time
   * instead of waiting for the next join.
   */
  async #takeOverFrom(meetingId: string, lost: string): Promise<void> {
    if (this.#takingOver.has(meetingId)) return;
    this.#takingOver.add(meetingId);
    const end = Date.now() + Math.max(10_000, 2 * (this.#o.nodeTtlMs + this.#o.leaseMs));
    let delay = 100;
    try {
      for (let attempt = 0; !this.#closed; attempt++) {
        try {
          if (attempt === 0) {
            const lease = await readHome(this.redis, meetingId);
            const was = lease ? lease.nodeId : (await readRecordedHome(this.redis, meetingId))?.nodeId;
            if (was !== lost) return; // not that node's meeting (or ended and purged)
          }
          await this.placeMeeting(meetingId);
          return;
        } catch (error) {
          if (Date.now() + delay > end) {
            this.#logger.error({ err: String(error), meetingId, lost }, 'takeover failed repeatedly; the next join places the meeting');
            return;
          }
          this.#logger.warn({ err: String(error), meetingId, lost, attempt }, 'takeover attempt failed; retrying');
          await new Promise((r) => setTimeout(r, delay).unref());
          delay = Math.min(delay * 2, 1000);
        }
      }
    } finally {
      this.#takingOver.delete(meetingId);
    }
  }

  /**
   * Issue 13b: the meeting's home once it serves the meeting, for a resume: waits up to `waitMs`
   * while a takeover is under way (the old home lost, the new one not hosting yet), taking part in
   * it where this node can. undefined when no home serves the meeting in time (or it is unknown).
   */
  async homeForResume(meetingId: string, waitMs: number): Promise<HomeLease | undefined> {
    const end = Date.now() + waitMs;
    for (;;) {
      try {
        const lease = await readHome(this.redis, meetingId);
        if (lease?.nodeId === this.nodeId) {
          await this.#hosting.get(meetingId);
          if (this.#homes.has(meetingId) && this.#core.getMeeting(meetingId)) return lease;
        } else if (lease && this.registry.node(lease.nodeId)) {
          // A live holder in this node's view: ask whether it serves the meeting yet (a dead one
          // still in the view does not answer; it drops out of the view within the registry TTL).
          const left = Math.max(100, Math.min(1000, end - Date.now()));
          if (await this.bus.request<boolean>(lease.nodeId, 'cluster.hosts', { m: meetingId }, left)) return lease;
        } else if (lease || (await readRecordedHome(this.redis, meetingId))) {
          // The holder is lost, or the lease ran out: take the home role over (or place the meeting
          // anew) like #takeOverFrom; a node without the meeting's init waits for one that has it.
          if (this.#inits.has(meetingId)) await this.placeMeeting(meetingId);
        } else {
          return undefined; // no such meeting in the cluster (ended and purged, or never placed)
        }
      } catch {
        // A time-out or Redis away: try again until the bound.
      }
      if (Date.now() >= end) return undefined;
      await new Promise((r) => setTimeout(r, 100).unref());
    }
  }

  /**
   * Stops new placements on this node (state draining in the registry; joins here get
   * NODE_DRAINING). With `deadlineMs`, the home meetings still running then move: the policy is
   * written, the lease moves to the least loaded serving node in the allowed regions (which
   * rebuilds the meeting from it), this node's copy closes, and 'drained' tells the edge to send
   * its remaining clients away (they reconnect at another node).
   */
  async drain(deadlineMs?: number): Promise<void> {
    if (deadlineMs !== undefined && (!Number.isFinite(deadlineMs) || deadlineMs < 0)) throw new TypeError('drain deadline must be >= 0 ms');
    if (!this.#draining) {
      this.#draining = true;
      this.#logger.info({ deadlineMs }, 'draining: no new meetings are placed here');
      await this.registry.beat();
      this.safeEmit('draining');
    }
    if (deadlineMs !== undefined) {
      clearTimeout(this.#drainTimer);
      this.#drainTimer = setTimeout(() => void this.#moveHomes(), deadlineMs);
      this.#drainTimer.unref();
    }
  }

  /** Resolves once a drain deadline passed and the home meetings were moved (or could not be). */
  whenDrained(): Promise<void> {
    return new Promise((resolve) => this.once('drained', () => resolve()));
  }

  async #moveHomes(): Promise<void> {
    for (const [id, home] of [...this.#homes]) {
      const meeting = this.#core.getMeeting(id);
      if (!meeting || meeting.closed) continue;
      try {
        await writePolicy(this.redis, home.lease, meeting._policyState());
        await this.registry.beat();
        // This node is draining, so chooseHome picks another one (REGION_UNAVAILABLE when none).
        const chosen = chooseHome(this.registry.nodes, home.lease.allowedRegions);
        const { lease, won } = await takeOverHome(this.redis, home.lease, chosen.id, this.#o.leaseMs);
        clearInterval(home.timer);
        this.#homes.delete(id);
        if (won) await this.#askToHost(lease.nodeId, home.init);
        this.#logger.info({ meetingId: id, to: lease.nodeId, token: lease.token }, 'drain: meeting moved to another node');
        // Its participants here hear 'server-shutdown' and rejoin; the new home lets them back in.
        meeting.close();
      } catch (error) {
        this.#logger.warn({ meetingId: id, err: String(error) }, 'drain: meeting could not move; it stays here');
      }
    }
    this.safeEmit('drained');
  }

  /** Leaves the cluster: home meetings are closed by the core's owner; the entry is removed. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#drainTimer);
    for (const h of this.#homes.values()) clearInterval(h.timer);
    await this.registry.close();
    for (const h of [...this.#homes.values()]) await purgeMeeting(this.redis, h.lease).catch(() => undefined);
    this.#homes.clear();
    this.agent.close();
    this.bus.close();
    this.redis.disconnect();
  }
}

const PIPE_OPS: Record<string, (agent: MediaAgent, m: string, args: any[]) => Promise<unknown>> = { // eslint-disable-line @typescript-eslint/no-explicit-any
  pipeOpen: (a, m, [peer]) => a.pipeOpen(m, peer),
  pipeConnect: (a, m, [peer, remote]) => a.pipeConnect(m, peer, remote),
  pipeConsume: (a, m, [peer, id]) => a.pipeConsume(m, peer, id),
  pipeProduce: (a, m, [peer, info, piped]) => a.pipeProduce(m, peer, info, piped),
  closeAdopted: (a, m, [id]) => a.closeAdopted(m, id),
  pipeConsumeData: (a, m, [peer, id]) => a.pipeConsumeData(m, peer, id),
  pipeProduceData: (a, m, [peer, id, pid, piped]) => a.pipeProduceData(m, peer, id, pid, piped),
  closeAdoptedData: (a, m, [id]) => a.closeAdoptedData(m, id),
  setAdoptedPaused: (a, m, [id, paused]) => a.setAdoptedPaused(m, id, paused),
  dropPeer: (a, m, [peer]) => a.dropPeer(m, peer),
  // Only the home that owns the media may close it: after a move, the old home's close must not
  // end the new home's media on the same node.
  closeMedia: (a, m, [reason, home]) => a.closeMeetingOf(m, home, reason === 'released' ? 'released' : 'meeting-ended'),
};

/** The one dispatch of a home's media call on a node (in-process for the home's own node, or from the bus). */
function dispatch(agent: MediaAgent, meetingId: string, method: string, args: unknown[]): Promise<unknown> {
  const op = PIPE_OPS[method];
  return op ? op(agent, meetingId, args) : agent.call(meetingId, method, args);
}

// A MeetingInit crosses the bus once (to the chosen home); dates travel as ISO strings.
function serializeInit(init: MeetingInit): unknown {
  return { ...init, ...(init.scheduledStart ? { scheduledStart: init.scheduledStart.toISOString() } : {}) };
}

function deserializeInit(raw: MeetingInit & { id: string }): MeetingInit & { id: string } {
  const s = (raw as unknown as { scheduledStart?: string }).scheduledStart;
  return { ...raw, ...(s ? { scheduledStart: new Date(s) } : {}) } as MeetingInit & { id: string };
}

/** Starts a cluster node for `core`: connects to Redis, subscribes to the bus, registers. */
export async function startClusterNode(core: MediaCore, options: ClusterOptions, logger: Logger): Promise<ClusterNode> {
  const node = new ClusterNode(core, options, logger);
  try {
    await node.start();
  } catch (error) {
    await node.close();
    throw error;
  }
  return node;
}

const ROLES = new Set(['host', 'cohost', 'participant']);
const STATES = new Set(['admitted', 'waiting-room', 'waiting-for-host']);

/** The JSON record of a participant's session (undefined for a participant that is not admitted or waiting). */
function sessionRecord(p: Participant, s: { tokenHash: string; node: string }): string | undefined {
  if (!STATES.has(p.state)) return undefined;
  const r: SessionRecord = {
    identity: p.identity,
    displayName: p.displayName,
    role: p.role,
    state: p.state as SessionRecord['state'],
    authenticated: p.authenticated,
    e2eeCapable: p.e2eeCapable,
    admittedSeq: p.admittedSeq,
    node: s.node,
    tokenHash: s.tokenHash,
  };
  return JSON.stringify(r);
}

/** A record read back from Redis, checked field by field (undefined when anything is off). */
function parseSessionRecord(id: string, json: string): (RestoredParticipant & { tokenHash: string; node: string }) | undefined {
  let r: Partial<SessionRecord>;
  try {
    r = JSON.parse(json) as Partial<SessionRecord>;
  } catch {
    return undefined;
  }
  const str = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;
  if (!str(id, 128) || !str(r.identity, 256) || !str(r.displayName, 256) || !str(r.node, 64)) return undefined;
  if (!ROLES.has(String(r.role)) || !STATES.has(String(r.state))) return undefined;
  if (typeof r.tokenHash !== 'string' || !/^[0-9a-f]{64}$/.test(r.tokenHash)) return undefined;
  return {
    id,
    identity: r.identity,
    displayName: r.displayName,
    role: r.role as RestoredParticipant['role'],
    state: r.state as RestoredParticipant['state'],
    authenticated: r.authenticated === true,
    e2eeCapable: r.e2eeCapable === true,
    admittedSeq: Number.isInteger(r.admittedSeq) && (r.admittedSeq as number) >= 0 ? (r.admittedSeq as number) : 0,
    node: r.node,
    tokenHash: r.tokenHash,
  };
}
