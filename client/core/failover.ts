// Issue 13: which node a client that lost its signalling connection tries next, and what an
// attempt's failure means. Pure logic (no sockets), shared by both flavours and unit-tested.
import type { ClusterNodeInfo } from './types.js';

/**
 * The URLs to try, in order: the node the client was on first (a network blip is resumed where
 * its media still lives), then the other nodes of the latest list in its order (the server sends
 * the answering node first, then the least loaded). Nodes in `skip` (they said they cannot take
 * the session: draining, outside the regions) are left out; duplicates once.
 */
export function failoverOrder(current: string, nodes: readonly ClusterNodeInfo[], skip: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  const add = (url: string): void => {
    if (url && !skip.has(url) && !out.includes(url)) out.push(url);
  };
  add(current);
  for (const n of nodes) add(n.url);
  return out;
}

/** What a failed resume attempt at one node means for the recovery. */
export type AttemptVerdict =
  /** Not reachable now (refused, closed before open, timed out): try the next node, and this one again in a later round. */
  | 'next'
  /** The node cannot take the session (draining, outside the meeting's regions, cut off from the cluster): skip it from now on. */
  | 'skip'
  /** The session is gone (grace over, or it lived on a home that was lost): resuming anywhere is pointless. */
  | 'expired';

/** Codes (ClientError.code) a node answers when it cannot take a resume, and the client goes on to the next node. */
export const SKIP_CODES: readonly string[] = ['NODE_DRAINING', 'REGION_UNAVAILABLE', 'CLUSTER_UNAVAILABLE'];

export function attemptVerdict(code: string | undefined): AttemptVerdict {
  if (code === 'INVALID_TOKEN') return 'expired';
  if (code !== undefined && SKIP_CODES.includes(code)) return 'skip';
  return 'next';
}

/** Back-off between rounds over all nodes: 100 ms doubling up to 2 s. */
export function nextDelay(previous: number): number {
  return previous <= 0 ? 100 : Math.min(previous * 2, 2000);
}

/** The node of `url` in the list (node id and region unknown for a URL outside it). */
export function nodeOf(url: string, nodes: readonly ClusterNodeInfo[]): ClusterNodeInfo {
  return nodes.find((n) => n.url === url) ?? { nodeId: '', url, region: '' };
}
