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
import { keys } from './keys.js';
import { MediaAgent, type PipeAddress, type PipeStat } from './MediaAgent.js';
import { NodeRegistry, type NodeInfo } from './NodeRegistry.js';
import type { MeetingPolicyState } from '../model/Meeting.js';
import { chooseHome, claimHome, purgeMeeting, readHome, readPolicy, renewHome, takeOverHome, writePolicy, type HomeLease } from './placement.js';
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
    if (this.#core.getMeeting(id)) return;
    let pending = this.#hosting.get(id);
    if (!pending) {
      pending = (async () => {
        const home: HomeMeeting = {
          lease,
          media: undefined,
          timer: setInterval(() => void this.#renew(id), Math.max(100, this.#o.leaseMs / 3)),
          writeThrough: undefined,
          init,
        };
        home.timer.unref();
        this.#homes.set(id, home);
        try {
          const meeting = await this.#core.createMeeting({ ...init, id });
          meeting.once('close', () => void this.#releaseHome(id));
          // A previous home's policy (a takeover): rebuilt before anyone joins here.
          const state = await readPolicy<MeetingPolicyState>(this.redis, id).catch(() => undefined);
          if (state) {
            meeting._restorePolicy(state);
            this.#logger.warn({ meetingId: id, banned: state.banned.length, polls: state.polls.length, locked: state.locked }, 'policy state rebuilt from the previous home');
          }
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
          for (const e of ['participantjoined', 'participantwaiting', 'participantleft', 'settingschanged', 'pollclosed', 'audit', 'meetingstarted'] as const) {
            meeting.on(e, home.writeThrough);
          }
          home.writeThrough();
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
      // Poll answers raise no meeting event: the renewal tick writes them through too.
      home.writeThrough?.();
      return;
    }
    // The lease is gone: after a Redis restart nobody holds it and this node takes it again (a new
    // token); if another node holds it now, this node is fenced off and gives the meeting up.
    const again = await claimHome(this.redis, meetingId, this.nodeId, home.lease.allowedRegions, this.#o.leaseMs).catch(() => undefined);
    if (!again) return;
    if (again.lease.nodeId === this.nodeId) {
      home.lease = again.lease;
      home.writeThrough?.();
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
    await this.redis.set(keys.participant(participantId), meetingId, 'EX', 3600).catch(() => undefined);
  }

  async meetingOfParticipant(participantId: string): Promise<string | undefined> {
    return (await this.redis.get(keys.participant(participantId)).catch(() => null)) ?? undefined;
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
    bus.handle('cluster.drain', (a: { deadlineMs?: number }) => this.drain(typeof a?.deadlineMs === 'number' ? a.deadlineMs : undefined));
    bus.listen('media.ev', (b: { m: string; event: string; args: unknown[] }, from: string) => {
      this.#homes.get(b.m)?.media?._onNodeEvent(from, b.event, b.args);
    });
  }

  #onNodeLost(nodeId: string): void {
    this.#logger.warn({ lost: nodeId }, 'node left the cluster (heartbeat expired)');
    for (const home of this.#homes.values()) home.media?._onNodeLost(nodeId);
    // Media of meetings whose home is gone is released here; their participants' signalling
    // connections went with the home and they rejoin (the meeting is placed anew).
    void this.agent.meetingsOf(nodeId).then((ids) => {
      for (const id of ids) void this.agent.closeMeeting(id, 'released');
    });
    // Meetings this node knows whose home that was: take the home role over now rather than at
    // the next join, so the returning participants find it ready.
    for (const id of this.#inits.keys()) {
      void readHome(this.redis, id)
        .then((lease) => (lease?.nodeId === nodeId ? this.placeMeeting(id) : undefined))
        .catch((e: unknown) => this.#logger.warn({ err: String(e), meetingId: id }, 'takeover failed; the next join retries'));
    }
    this.safeEmit('nodelost', nodeId);
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
