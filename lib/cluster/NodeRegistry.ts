// The node registry: every node writes its entry (id, region, addresses, load, state) with a TTL
// on each heartbeat and reads everyone else's. An entry whose node stopped beating expires; the
// registry then reports the node as lost. A restarted Redis is refilled by the next heartbeats.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { TypedEmitter } from '../events.js';
import { keys } from './keys.js';

/** What a node announces about itself. */
export interface NodeInfo {
  id: string;
  /** `<country>-<site>`, e.g. de-fra. */
  region: string;
  /** Signalling URL clients may use (ws:// or wss://). */
  url: string;
  /** The address other nodes' pipe transports connect to. */
  mediaAddress: string;
  /** Participants whose media this node carries. */
  participants: number;
  /** Worker CPU in the last heartbeat period, 0..1 per worker, averaged. */
  cpu: number;
  state: 'serving' | 'draining';
  /** Epoch ms of the heartbeat that wrote this entry. */
  at: number;
}

export type NodeRegistryEvents = {
  /** A node's entry appeared (including after a Redis restart). */
  nodeup: [NodeInfo];
  /** A node's entry expired: it stopped beating (killed, partitioned). */
  nodelost: [string];
  /** This node's heartbeat failed or recovered. */
  redisstate: ['up' | 'down'];
  listenererror: [string, unknown];
};

export class NodeRegistry extends TypedEmitter<NodeRegistryEvents> {
  readonly #redis: Redis;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #ttlMs: number;
  readonly #self: () => Omit<NodeInfo, 'at'>;
  #view = new Map<string, NodeInfo>();
  #timer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #redisUp = true;
  #closed = false;
  #started = false;
  /** Until then a node missing from Redis is not reported lost (Redis was just reconnected, maybe restarted empty). */
  #graceUntil = 0;

  constructor(o: { redis: Redis; logger: Logger; intervalMs: number; ttlMs: number; self: () => Omit<NodeInfo, 'at'> }) {
    super();
    if (!(o.ttlMs > o.intervalMs)) throw new TypeError('the registry TTL must be longer than the heartbeat interval');
    this.#redis = o.redis;
    this.#logger = o.logger.child({ component: 'registry' });
    this.#intervalMs = o.intervalMs;
    this.#ttlMs = o.ttlMs;
    this.#self = o.self;
    // A reconnect may be to a restarted, empty Redis: every node re-registers within one
    // heartbeat, so give them a TTL's time before anyone is declared lost.
    o.redis.on('ready', () => {
      if (this.#started) this.#graceUntil = Date.now() + this.#ttlMs;
    });
  }

  /** Writes the first entry and starts beating. */
  async start(): Promise<void> {
    await this.beat();
    this.#started = true;
    this.#timer = setInterval(() => void this.beat(), this.#intervalMs);
    this.#timer.unref();
  }

  /** The nodes as of the last heartbeat (this one included). */
  get nodes(): NodeInfo[] {
    return [...this.#view.values()];
  }

  node(id: string): NodeInfo | undefined {
    return this.#view.get(id);
  }

  /**
   * The node's entry; on a miss, after one fresh read of the registry: a node that registered
   * since this node's last heartbeat (just started, or back after a restart) is found at once
   * instead of being refused until the next beat.
   */
  async find(id: string): Promise<NodeInfo | undefined> {
    const known = this.#view.get(id);
    if (known) return known;
    await this.beat();
    return this.#view.get(id);
  }

  /** One heartbeat: write this node's entry, read every entry, report changes. */
  beat(): Promise<void> {
    // One at a time: a slow Redis must not pile up overlapping rounds.
    this.#beating ??= this.#beat().finally(() => {
      this.#beating = undefined;
    });
    return this.#beating;
  }

  async #beat(): Promise<void> {
    if (this.#closed) return;
    const me = { ...this.#self(), at: Date.now() };
    try {
      const r = this.#redis;
      await r
        .multi()
        .hset(keys.node(me.id), toHash(me))
        .pexpire(keys.node(me.id), this.#ttlMs)
        .sadd(keys.nodes(), me.id)
        .exec();
      const ids = await r.smembers(keys.nodes());
      const p = r.pipeline();
      for (const id of ids) p.hgetall(keys.node(id));
      const rows = (await p.exec()) ?? [];
      const next = new Map<string, NodeInfo>();
      ids.forEach((id, i) => {
        const h = rows[i]?.[1] as Record<string, string> | undefined;
        const info = h && h.id ? fromHash(h) : undefined;
        if (info) next.set(id, info);
        else void r.srem(keys.nodes(), id);
      });
      const before = this.#view;
      if (Date.now() < this.#graceUntil) for (const [id, info] of before) if (!next.has(id)) next.set(id, info);
      this.#view = next;
      if (!this.#redisUp) {
        this.#redisUp = true;
        this.#logger.info('redis reachable again: node re-registered');
        this.safeEmit('redisstate', 'up');
      }
      for (const [id, info] of next) if (!before.has(id)) this.safeEmit('nodeup', info);
      for (const id of before.keys()) if (!next.has(id)) this.safeEmit('nodelost', id);
    } catch (error) {
      // Redis down: keep the last view (running meetings keep their media) and retry next beat.
      if (this.#redisUp) {
        this.#redisUp = false;
        this.#logger.warn({ err: String(error) }, 'registry heartbeat failed (redis unreachable)');
        this.safeEmit('redisstate', 'down');
      }
    }
  }

  get redisUp(): boolean {
    return this.#redisUp;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Stops beating and removes this node's entry (a clean leave). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#beating;
    const id = this.#self().id;
    await this.#redis.multi().del(keys.node(id)).srem(keys.nodes(), id).exec().catch(() => undefined);
  }
}

function toHash(n: NodeInfo): Record<string, string> {
  return {
    id: n.id,
    region: n.region,
    url: n.url,
    mediaAddress: n.mediaAddress,
    participants: String(n.participants),
    cpu: String(n.cpu),
    state: n.state,
    at: String(n.at),
  };
}

function fromHash(h: Record<string, string>): NodeInfo {
  return {
    id: h.id!,
    region: h.region ?? '',
    url: h.url ?? '',
    mediaAddress: h.mediaAddress ?? '',
    participants: Number(h.participants ?? 0),
    cpu: Number(h.cpu ?? 0),
    state: h.state === 'draining' ? 'draining' : 'serving',
    at: Number(h.at ?? 0),
  };
}
