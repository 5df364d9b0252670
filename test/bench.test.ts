// `npm run bench -- --quick` end to end, as a child process like the npm script runs it: the
// results file, the tables and the charts are produced and well-formed. Never timings.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Percentiles } from '../bench/stats.js';

const RUN = fileURLToPath(new URL('../bench/run.js', import.meta.url));


function assertPercentiles(p: Percentiles, what: string): void {
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max'] as const) assert.ok(Number.isFinite(p[k]) && p[k] > 0, `${what}.${k} is a positive number`);
  assert.ok(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.p999 && p.p999 <= p.max, `${what} percentiles are ordered`);
  assert.ok(p.samples > 0);
}

test('bench --quick writes results.json with every path, workload and fan-out, and one SVG CDF chart per scenario', async () => {
  const out = mkdtempSync(join(tmpdir(), 'c4v-bench-'));
  try {
    const child = spawn(process.execPath, [RUN, '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stdout += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.is(code, 0, stdout.slice(-2000));
    assert.match(stdout, /Forwarding latency/);
    assert.match(stdout, /\| workload \| N +\| path/);

    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    assert.is(results.meta.quick, true);
    assert.ok(results.meta.machine.cores >= 1);
    assert.ok(['native', 'typescript'].includes(results.meta.engine.kind));

    const paths = ['native', 'mediasoup', 'mediasoup-srtp', 'library'];
    for (const workload of ['audio', 'video']) {
      for (const fanout of [1, 10]) {
        for (const path of paths) {
          const row = results.latency.find((r: { workload: string; fanout: number; path: string }) => r.workload === workload && r.fanout === fanout && r.path === path);
          assert.ok(row, `a latency row for ${workload} N=${fanout} ${path}`);
          assertPercentiles(row.first, `${path} ${workload} N=${fanout} first`);
          assertPercentiles(row.last, `${path} ${workload} N=${fanout} last`);
          assert.ok(row.last.p50 >= row.first.p50, 'the last copy is never earlier than the first');
          // Every scheduled packet was either sent or counted as a send error (which is loss).
          assert.is(row.expected, (row.packetsSent + row.sendErrors) * fanout, `${path} ${workload} N=${fanout}: sent ${row.packetsSent}, errors ${row.sendErrors}`);
          assert.ok(row.loss >= 0 && row.loss <= 1);
          assert.ok(row.received > 0 && row.deliveredPps > 0);
          assert.is(row.srtpFailures, 0);
        }
        const svg = readFileSync(join(out, `cdf-${workload}-n${fanout}.svg`), 'utf8');
        assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
        assert.ok(svg.trimEnd().endsWith('</svg>'));
        for (const path of paths) assert.match(svg, new RegExp(`${path}: first copy`));
        assert.ok((svg.match(/<polyline /g) ?? []).length >= paths.length);
      }
    }
    assert.ok(results.ratios.some((r: { of: string; to: string }) => r.of === 'library' && r.to === 'mediasoup-srtp'));
    assert.ok(results.ratios.some((r: { of: string; to: string }) => r.of === 'mediasoup' && r.to === 'native'));

    for (const c of [...results.capacity, ...results.machine]) {
      assert.type(c.capacity, 'number');
      assert.ok(c.trials.length >= 1);
      assert.match(c.criterion, /0% loss/);
    }
    assert.ok(results.machine.some((c: { path: string }) => c.path.startsWith('library')));
    assert.ok(results.generator.achievedPps > 0);
    // Issue 10: the password flood ran, checked at most the meeting's guest budget, and the
    // admitted participant's requests were all answered (the p99 figure is reported, not asserted).
    const flood = results.passwordFlood.phases.find((p: { phase: string }) => p.phase === 'flood');
    assert.is(flood.wrongPassword, 20);
    assert.is(flood.tooManyAttempts + flood.wrongPassword, results.passwordFlood.joins);
    assert.ok(flood.requests > 0 && flood.p99Ms > 0);
    assert.ok(results.generator.highestRateUsed > 0);
    assert.ok(results.micro.tasks.some((t: { name: string; opsPerSecond: number }) => t.name === 'admission decision' && t.opsPerSecond > 0));
    assert.is(results.memory.participants, 10);
    assert.ok(results.memory.heapBytesTotal !== undefined && results.memory.workerRssBytesTotal !== undefined);
    assert.ok(readdirSync(out).filter((f) => f.endsWith('.svg')).length >= 4);

    // Issue 14: every same-run ratio carries its 95% interval, which brackets the ratio.
    const bracketed = (i: { value: number; lo: number; hi: number; halfWidth: number }, what: string): void => {
      assert.ok(Number.isFinite(i.value) && i.value > 0, `${what}: a positive ratio`);
      assert.ok(i.lo <= i.value && i.value <= i.hi, `${what}: ${i.lo} <= ${i.value} <= ${i.hi}`);
      assert.ok(i.halfWidth >= 0);
    };
    for (const r of results.ratios) {
      bracketed(r.p50ci, `${r.of}/${r.to} ${r.workload} N=${r.fanout} p50`);
      bracketed(r.p99ci, `${r.of}/${r.to} ${r.workload} N=${r.fanout} p99`);
    }
    const lib = results.latency.find((r: { path: string; fanout: number; workload: string }) => r.path === 'library' && r.fanout === 10 && r.workload === 'audio');
    assert.is(lib.precision.target, 0.03, 'the library row says whether its ratio reached +-3%');
    assert.type(lib.precision.met, 'boolean');
    // Worker builds side by side: without --worker-bin, the installed build against itself.
    assert.equal(results.build.builds.map((b: { label: string }) => b.label), ['current', 'current (A/A)']);
    for (const row of results.build.rows) {
      assert.ok(row.cpuUsPerCopy > 0 && row.copies > 0, `${row.build} ${row.workload}: CPU per copy measured`);
      assert.is(row.loss, 0);
    }
    for (const r of results.build.ratios) bracketed(r.cpuPerCopy, `build ${r.workload} CPU/copy`);
    // Fan-out spread (w3-14c): one worker, the flat and the tree fan-out over every worker, and the
    // native forwarder, at N=20 timed by the kernel and again in user space; per-worker rows that
    // account for every copy; the ratios of the last copies.
    const spreadPaths = ['one worker', 'spread, flat', 'spread, tree', 'native forwarder'];
    type SpreadRow = { path: string; workers: number; fanout: number; timing: string; perWorker: Array<{ copies: number; producer: boolean }> };
    const srows = results.spread.rows as SpreadRow[];
    const cores = results.meta.machine.cores;
    assert.equal(srows.map((r) => r.path), [...spreadPaths, ...spreadPaths]);
    assert.equal(srows.map((r) => r.workers), [1, cores, cores, 1, 1, cores, cores, 1]);
    assert.ok(srows.every((r) => ['kernel', 'user'].includes(r.timing)));
    for (const r of srows.filter((x) => x.path !== 'native forwarder')) {
      assert.is(r.perWorker.reduce((a, w) => a + w.copies, 0), r.fanout, `${r.path}: every copy has its worker`);
      assert.is(r.perWorker.filter((w) => w.producer).length, 1, `${r.path}: the producer's worker is marked`);
    }
    assert.ok(results.spread.loadAvg.start >= 0);
    for (const r of results.spread.ratios) bracketed(r.lastP50, `spread ${r.of}/${r.to} N=${r.fanout} last p50`);
    // Signalling (issue 14b): ping and get_participants, every step answered with the right
    // bytes in order; the hot-path comparison has a bracketed ratio for each build.
    const sig = results.signalling;
    assert.equal(sig.throughput.map((r: { request: string; roster: number }) => `${r.request}/${r.roster}`), ['ping/10', 'get_participants/10']);
    for (const r of sig.throughput) {
      assert.ok(r.responseBytes > 0 && r.steps.length >= 1 && r.pipeline >= 1);
      for (const st of r.steps) {
        assert.ok(st.answered > 0 && st.serverCpuPercent > 0 && st.serverUsPerRequest > 0, `signalling ${r.request} step at ${st.targetRps}/s answered`);
        assert.is(st.wrong, 0, `${r.request} at ${st.targetRps}/s: every answer the expected bytes, in order`);
      }
    }
    assert.ok(Number.isFinite(sig.loadAvg.start) && Number.isFinite(sig.loadAvg.end));
    const cmp = sig.comparisons[0];
    assert.equal(cmp.rows.map((r: { label: string }) => r.label), ['baseline', '+ batched writes', '+ shared roster']);
    for (const row of cmp.rows) assert.is(row.wrong, 0, `${row.label}: the same answers`);
    for (const r of cmp.ratios) bracketed(r.cpuPerRequest, `signalling ${r.of} / ${r.to} CPU per request`);
    assert.match(stdout, /Signalling hot path, same run/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
