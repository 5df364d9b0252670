// `node dist/bench/cluster.js --quick` end to end (real redis-server and node processes): it
// finishes and reports every figure. Only the shape is checked; the figures are for reading.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const BENCH = fileURLToPath(new URL('../bench/cluster.js', import.meta.url));

test('bench/cluster --quick reports the hop ratio, relayed signalling latency and the recovery times (the SDK\'s own failover too)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'c4v-cluster-bench-'));
  try {
    const out = join(dir, 'cluster.json');
    const child = spawn(process.execPath, [BENCH, '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.is(code, 0, text.slice(-3000));
    const r = JSON.parse(readFileSync(out, 'utf8'));
    assert.is(r.meta.quick, true);
    for (const s of [r.hop.oneNode, r.hop.acrossNodes]) assert.ok(s.n >= 200 && s.p50 > 0 && s.p99 >= s.p50, 'both paths delivered most packets');
    assert.ok(r.hop.ratioP50 > 0 && r.hop.ratioP99 > 0);
    assert.ok(r.signalling.home.n === 50 && r.signalling.relayed.n === 50);
    const sdk = r.recovery.nonHomeKill.sdkFailover;
    for (const v of [r.recovery.nonHomeKill.producersClosedMs, r.recovery.nonHomeKill.mediaAgainMs, r.recovery.homeKill.resumedMs, r.recovery.homeKill.newHomeMs, r.recovery.homeKill.mediaAgainMs, sdk.resumedMs, sdk.mediaAgainMs]) {
      assert.ok(Number.isFinite(v) && v > 0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
