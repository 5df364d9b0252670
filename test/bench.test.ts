// `npm run bench -- --quick` end to end, as a child process like the npm script runs it: the
// results file, the tables and the charts are produced and well-formed. Never timings.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MeetingSearch, summariseCopies, type MixCopy } from '../bench/meetings.js';
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
    // Issue 14 (w3-14a): the meeting mix at the same load on every path, and its ratios.
    const mix = results.meetings;
    assert.match(mix.criterion, /0% loss on every copy/);
    assert.equal(mix.searches, [], '--quick runs no capacity search');
    assert.equal(mix.comparison.rows.map((r: { path: string }) => r.path), ['native', 'mediasoup-srtp', 'library']);
    const { meetings, rounds, roundSeconds } = mix.comparison;
    // 10 x 9 audio copies and 3 x 9 video copies per meeting, every one counted.
    const audioPackets = rounds * roundSeconds * 50;
    const videoPackets = rounds * roundSeconds * 30 * 4;
    for (const r of mix.comparison.rows) {
      assert.is(r.participants, meetings * 10);
      assert.is(r.streams, meetings * 13);
      assert.is(r.copies, meetings * 117);
      assert.is(r.expected, meetings * (90 * audioPackets + 27 * videoPackets), `${r.path}: every copy's packets expected`);
      assert.ok(r.received > 0 && r.received <= r.expected, `${r.path}: received ${r.received} of ${r.expected}`);
      assert.ok(Math.abs(r.loss - (1 - r.received / r.expected)) < 1e-9, `${r.path}: loss counted from the copies`);
      assert.ok(r.copiesWithLoss >= 0 && r.copiesWithLoss <= r.copies);
      assert.is(r.pass, r.loss === 0 && r.copiesOverBound === 0 && r.sendErrors === 0 && r.srtpFailures === 0, `${r.path}: pass follows the criterion`);
      assert.is(r.srtpFailures, 0, `${r.path}: every SRTP copy decrypted with its own key`);
      assertPercentiles(r.all, `meetings ${r.path} all copies`);
      assert.ok(r.worstCopyP99Us >= r.all.p50, `${r.path}: the worst copy's p99 is not below the pooled median`);
      assert.ok(Number.isFinite(r.cpuMsPerSecondPerParticipant) && r.cpuMsPerSecondPerParticipant > 0, `${r.path}: forwarding CPU per participant measured`);
      assert.is(r.roundStats.length, rounds);
    }
    assert.equal(mix.ratios.map((r: { of: string; to: string }) => `${r.of}/${r.to}`), ['library/native', 'library/mediasoup-srtp']);
    for (const r of mix.ratios) {
      bracketed(r.cpuPerCopy, `meetings ${r.of}/${r.to} CPU per copy`);
      bracketed(r.p50, `meetings ${r.of}/${r.to} p50`);
      bracketed(r.p99, `meetings ${r.of}/${r.to} p99`);
    }
    assert.ok(mix.headroom.achievedPps > 0 && Number.isFinite(mix.headroom.factor));
    assert.ok(mix.loadAvg.start.length === 3 && mix.loadAvg.end.length === 3);
    assert.match(stdout, /Meeting mix/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

/** Receiver records as the engine writes them: u32 copy, u32 sequence, i64 delay (ns), little-endian. */
function records(rows: Array<[copy: number, seq: number, delayUs: number]>): ArrayBuffer {
  const b = Buffer.alloc(rows.length * 16);
  rows.forEach(([c, s, d], i) => {
    b.writeUInt32LE(c, i * 16);
    b.writeUInt32LE(s, i * 16 + 4);
    b.writeBigInt64LE(BigInt(Math.round(d * 1000)), i * 16 + 8);
  });
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
}

test('summariseCopies counts loss and p99 per copy, ignores warm-up and duplicates, and names the worst copy', () => {
  const copies: MixCopy[] = [
    { ssrc: 1, meeting: 0, receiver: 1, from: 0, kind: 'audio' },
    { ssrc: 2, meeting: 0, receiver: 0, from: 1, kind: 'audio' },
    { ssrc: 3, meeting: 1, receiver: 2, from: 0, kind: 'video' },
  ];
  // Audio: sequences 5..104 measured (5 warm-up packets before); video: 20..219.
  const ranges = new Map([
    ['audio', { first: 5, packets: 100 }],
    ['video', { first: 20, packets: 200 }],
  ] as const);
  const rows: Array<[number, number, number]> = [];
  for (let s = 0; s < 105; s++) rows.push([0, s, s < 5 ? 900_000 : 1000]);
  // Copy 1 misses sequence 50, gets 60 twice, and one packet in a hundred is 40 ms late.
  for (let s = 5; s < 105; s++) if (s !== 50) rows.push([1, s, s === 70 ? 40_000 : 2000]);
  rows.push([1, 60, 2000]);
  for (let s = 20; s < 220; s++) rows.push([2, s, s % 50 === 0 ? 35_000 : 500]);
  const r = summariseCopies(records(rows), copies, new Map(ranges));
  assert.is(r.expected, 400);
  assert.is(r.received, 399, 'one packet of copy 1 missing, its duplicate not counted');
  assert.is(r.copiesWithLoss, 1);
  // Copy 1: 99 packets, the one 40 ms late is its p99 (nearest rank 99 of 99). Copy 2: 4 of 200 at 35 ms.
  assert.is(r.worstCopyP99Us, 40_000);
  assert.equal(r.worstCopy, { meeting: 0, receiver: 0, from: 1, kind: 'audio' });
  assert.is(r.copiesOverBound, 2, 'copies 1 and 2 are over 30 ms at p99; the warm-up of copy 0 does not count');
  assert.is(r.audio.samples, 199);
  assert.is(r.video.samples, 200);
});

test('MeetingSearch doubles, halves after a first failure, bisects to one meeting and stops at its bound', () => {
  const run = (capacity: number, start: number, max: number): { tried: number[]; lo: number; hi: number | undefined } => {
    const s = new MeetingSearch(start, max);
    const tried: number[] = [];
    while (s.next !== undefined) {
      assert.ok(tried.length < 20, 'the search ends');
      tried.push(s.next);
      s.report(s.next, s.next <= capacity);
    }
    return { tried, lo: s.lo, hi: s.hi };
  };
  assert.equal(run(11, 8, 64), { tried: [8, 16, 12, 10, 11], lo: 11, hi: 12 });
  assert.equal(run(2, 8, 64), { tried: [8, 4, 2, 3], lo: 2, hi: 3 });
  assert.equal(run(100, 8, 64), { tried: [8, 16, 32, 64], lo: 64, hi: undefined });
  assert.equal(run(0, 4, 64), { tried: [4, 2, 1], lo: 0, hi: 1 });
  // A bracket within 10% of the passing count is narrow enough: 42 passed, 45 failed, done.
  assert.equal(run(43, 40, 80), { tried: [40, 80, 60, 50, 45, 42], lo: 42, hi: 45 });
});

test.run();
