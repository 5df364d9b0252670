// Issue 13: the SDK's pure node-choice logic (client/core/failover.ts): which node a client that
// lost its connection tries next, and what a failed attempt means.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { attemptVerdict, failoverOrder, nextDelay, nodeOf } from '../client/core/failover.js';
import type { ClusterNodeInfo } from '../client/core/types.js';

const n = (id: string): ClusterNodeInfo => ({ nodeId: id, url: `ws://${id}.example:8443/signalling`, region: 'de-fra' });
const [a, b, c] = [n('a'), n('b'), n('c')];

test('failoverOrder: the node the client was on first, then the list in its order, each once', () => {
  assert.equal(failoverOrder(b.url, [b, a, c]), [b.url, a.url, c.url]);
  // The client came in through a URL outside the list (a load balancer): that first, then the nodes.
  assert.equal(failoverOrder('wss://meet.example/signalling', [a, b]), ['wss://meet.example/signalling', a.url, b.url]);
  assert.equal(failoverOrder(a.url, [a, a, b]), [a.url, b.url]);
});

test('failoverOrder: outside cluster mode (no list) only the same URL is tried', () => {
  assert.equal(failoverOrder(a.url, []), [a.url]);
});

test('failoverOrder: skipped nodes (draining, outside the regions) are left out, the current one too', () => {
  assert.equal(failoverOrder(a.url, [a, b, c], new Set([a.url])), [b.url, c.url]);
  assert.equal(failoverOrder(a.url, [a, b, c], new Set([a.url, b.url, c.url])), []);
  assert.equal(failoverOrder('', [a, b], new Set()), [a.url, b.url]);
});

test('attemptVerdict: INVALID_TOKEN ends the resume; NODE_DRAINING, REGION_UNAVAILABLE, CLUSTER_UNAVAILABLE skip the node; anything else tries the next', () => {
  assert.is(attemptVerdict('INVALID_TOKEN'), 'expired');
  for (const code of ['NODE_DRAINING', 'REGION_UNAVAILABLE', 'CLUSTER_UNAVAILABLE']) assert.is(attemptVerdict(code), 'skip', code);
  for (const code of ['CONNECTION_FAILED', 'TIMEOUT', 'CLOSED', 'CLUSTER_TIMEOUT', 'RATE_LIMITED', 'INTERNAL', undefined]) assert.is(attemptVerdict(code), 'next', String(code));
});

test('nextDelay: 100 ms doubling, bounded at 2 s', () => {
  const seen: number[] = [];
  let d = 0;
  for (let i = 0; i < 8; i++) seen.push((d = nextDelay(d)));
  assert.equal(seen, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
});

test('nodeOf: the listed node of a URL; unknown fields empty for a URL outside the list', () => {
  assert.equal(nodeOf(b.url, [a, b]), b);
  assert.equal(nodeOf('ws://x/signalling', [a, b]), { nodeId: '', url: 'ws://x/signalling', region: '' });
});

test.run();
