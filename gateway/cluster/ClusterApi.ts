// The operator API in cluster mode (issue 13c): what OperatorApi asks of the cluster. Every node
// serves /api/v1 on the same Redis definition store; a meeting lives on its home node only, so a
// request on a meeting is forwarded over the bus to the home and answered there ('api.call').
// Definitions reach the other nodes' cores by an acknowledged notice ('defs.changed': each node
// reads the definition from Redis again), and every node loads all of them when it starts, so a
// meeting created through node A is placeable at node B (a join there, a takeover after A died).
import type { Logger } from 'pino';
import { C4vError } from '../../lib/errors.js';
import type { ClusterNode } from '../../lib/cluster/ClusterNode.js';
import type { MediaCore } from '../../lib/MediaCore.js';
import type { MeetingInit } from '../../lib/model/types.js';
import type { RedisDefinitionStore } from '../../lib/store/RedisDefinitionStore.js';
import { meetingInitOf, type ApiAnswer, type ApiRequest, type OperatorApi, type OperatorApiCluster } from '../api/OperatorApi.js';

export interface ClusterApiOptions {
  node: ClusterNode;
  core: MediaCore;
  store: RedisDefinitionStore;
  logger: Logger;
  /** Time-out of a forwarded request and of each node's answer to a notice (ms). */
  timeoutMs: number;
}

type Kind = 'account' | 'meeting';

export class ClusterApi implements OperatorApiCluster {
  readonly #o: ClusterApiOptions;
  readonly #logger: Logger;
  #api: OperatorApi | undefined;

  constructor(o: ClusterApiOptions) {
    this.#o = o;
    this.#logger = o.logger.child({ component: 'clusterapi' });
    const bus = o.node.bus;
    bus.handle('api.call', async (req: ApiRequest) => {
      if (!this.#api) throw new C4vError('CLOSED', 'the operator API is not running on this node');
      return this.#api.answerForwarded(req);
    });
    bus.handle('defs.changed', (a: { kind: Kind; id: string }) => this.#apply(a.kind, a.id));
  }

  /** The API this node answers forwarded requests with. */
  attach(api: OperatorApi): void {
    this.#api = api;
  }

  /**
   * At start: the stored accounts into the core, the meetings that have not ended defined on the
   * node (placed at their first join or API request, on whichever node the placement picks).
   */
  async load(): Promise<{ accounts: number; meetings: number }> {
    const { core, node, store } = this.#o;
    let accounts = 0;
    for (const a of await store.accounts()) {
      try {
        core.createAccount(a.init);
        accounts++;
      } catch (error) {
        this.#logger.warn({ accountId: a.init.id, err: String(error) }, 'stored account not loaded');
      }
    }
    const meetings = await store.meetings({ activeOnly: true });
    for (const m of meetings) node.defineMeeting({ ...meetingInitOf(m.definition), id: m.definition.id });
    return { accounts, meetings: meetings.length };
  }

  async homeOf(meetingId: string): Promise<string | undefined> {
    const { core, node, store } = this.#o;
    if (core.getMeeting(meetingId)) return undefined;
    const stored = await store.meeting(meetingId);
    // Unknown or ended: this node answers (NOT_FOUND, MEETING_ENDED) from the store.
    if (stored?.endedAt) return undefined;
    // Read through: the stored definition is what gets placed, whatever this node heard before.
    if (stored) node.defineMeeting({ ...meetingInitOf(stored.definition), id: meetingId });
    const lease = await node.placeMeeting(meetingId);
    return lease && lease.nodeId !== node.nodeId ? lease.nodeId : undefined;
  }

  async forward(nodeId: string, request: ApiRequest): Promise<ApiAnswer> {
    return this.#o.node.bus.request<ApiAnswer>(nodeId, 'api.call', request, this.#o.timeoutMs);
  }

  async createMeeting(init: MeetingInit & { id: string }): Promise<string> {
    const { node } = this.#o;
    node.defineMeeting(init);
    await this.#broadcast('meeting', init.id);
    const lease = await node.placeMeeting(init.id);
    if (!lease) throw new C4vError('INTERNAL', `meeting ${init.id} could not be placed`);
    return lease.nodeId;
  }

  async changed(kind: Kind, id: string): Promise<void> {
    await this.#apply(kind, id);
    await this.#broadcast(kind, id);
  }

  /** Tells every other registered node; a node that does not answer loads everything when it (re)starts. */
  async #broadcast(kind: Kind, id: string): Promise<void> {
    const { node } = this.#o;
    const others = node.registry.nodes.filter((n) => n.id !== node.nodeId);
    const results = await Promise.allSettled(others.map((n) => node.bus.request(n.id, 'defs.changed', { kind, id }, this.#o.timeoutMs)));
    results.forEach((r, i) => {
      if (r.status === 'rejected') this.#logger.warn({ node: others[i]!.id, kind, id, err: String(r.reason) }, 'definition change not acknowledged');
    });
  }

  /** Brings this node's view of one definition in line with the store. */
  async #apply(kind: Kind, id: string): Promise<void> {
    const { core, node, store } = this.#o;
    if (kind === 'account') {
      const a = await store.account(id);
      if (a) core.createAccount(a.init);
      return;
    }
    const m = await store.meeting(id);
    if (m && !m.endedAt) node.defineMeeting({ ...meetingInitOf(m.definition), id });
    else node.forgetMeeting(id);
  }
}
