// Join time in a real browser: from the WebSocket opening to the first decoded remote video
// frame, in Debian Chromium (headless, fake camera), for 20 joins.
//
//   node dist/bench/browser-join.js [--joins N]
//
// A host page publishes the fake camera and microphone through the SDK. Each join is a fresh
// browser context that opens a bench page and joins: through the SDK (hello, join with the
// router capabilities in the answer, both transports and the participant list in one pipelined
// round trip, consume, resume), or, taking turns with it, the baseline: bare mediasoup-client
// against bare mediasoup over a minimal JSON WebSocket protocol (capabilities and transport in
// parallel, consume, resume) that receives the same camera through a pipe. Both run in the same
// process, on the same machine, inside a loopback-only network namespace.

import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import type { types as ms } from 'mediasoup';
import { WebSocketServer } from 'ws';
import { createGateway } from '../gateway/Gateway.js';
import { JoinTokens } from '../gateway/tokens.js';
import { webAppRoutes } from '../web/server.js';
import { testCore } from '../test/helpers/core.js';
import { silentLogger } from '../test/helpers/util.js';
import { CHROMIUM, CHROMIUM_ARGS, inNetworkNamespace } from '../test/browser/netns.js';

inNetworkNamespace(import.meta.url);

const args = process.argv.slice(2);
const joinsArg = args.indexOf('--joins');
const JOINS = joinsArg >= 0 ? Math.max(1, Number(args[joinsArg + 1]) || 20) : 20;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function bundle(entry: string): Promise<string> {
  const r = await build({ entryPoints: [`${ROOT}/${entry}`], bundle: true, format: 'esm', platform: 'browser', target: 'chrome110', minify: true, write: false, logLevel: 'warning' });
  return r.outputFiles[0]!.text;
}

async function main(): Promise<void> {
  const [sdkPage, basePage] = await Promise.all([bundle('bench/browser/sdk-page.ts'), bundle('bench/browser/baseline-page.ts')]);
  const core = await testCore({
    // Two workers: the baseline's router is on the one the meeting does not use (a pipe keeps the
    // producer id, which must not exist twice on one worker).
    workers: { workers: 2, region: 'de-fra' },
    media: { mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }, { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }] },
  });
  core.createAccount({ id: 'bench' });
  const meeting = await core.createMeeting({ id: 'bench', accountId: 'bench', title: 'bench', hostIdentity: 'host@bench', settings: { waitingRoom: false } });
  const tokens = new JoinTokens(JoinTokens.randomSecret());
  const page = (script: string) => `<!doctype html><meta charset="utf-8"><body><script type="module" src="${script}"></script>`;
  const web = webAppRoutes();
  const gateway = await createGateway({
    core,
    logger: silentLogger(),
    registry: core.registry,
    tokens,
    port: 0,
    limits: { connectionsPerAddress: 1000, connectionAttemptsPerSecond: 1000, connectionAttemptBurst: 1000 },
    httpRoutes: (path, req, res) => {
      const files: Record<string, [string, string]> = {
        '/bench/sdk.html': ['text/html', page('/bench/sdk.js')],
        '/bench/sdk.js': ['text/javascript', sdkPage],
        '/bench/baseline.html': ['text/html', page('/bench/baseline.js')],
        '/bench/baseline.js': ['text/javascript', basePage],
      };
      const f = files[path];
      if (!f) return web(path, req, res);
      res.writeHead(200, { 'content-type': f[0] }).end(f[1]);
      return true;
    },
  });

  // The baseline server: bare mediasoup, its own router on the other worker.
  const meetingWorker = meeting.placements.find((p) => !p.to)!.workerId;
  const worker = core.pool.workers.find((w) => w.id !== meetingWorker)!.worker;
  const baseRouter = await worker.createRouter({ mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }, { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 }] });
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  const baseProducers: ms.Producer[] = [];
  wss.on('connection', (ws) => {
    let transport: ms.WebRtcTransport | undefined;
    const consumers: ms.Consumer[] = [];
    ws.on('message', (raw) => {
      void (async () => {
        const { id, method, data } = JSON.parse(String(raw)) as { id: number; method: string; data: Record<string, unknown> };
        let result: unknown = {};
        if (method === 'caps') result = baseRouter.rtpCapabilities;
        else if (method === 'transport') {
          transport = await baseRouter.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }] });
          result = { id: transport.id, iceParameters: transport.iceParameters, iceCandidates: transport.iceCandidates, dtlsParameters: transport.dtlsParameters };
        } else if (method === 'connect') await transport!.connect({ dtlsParameters: data.dtlsParameters as ms.DtlsParameters });
        else if (method === 'consume') {
          for (const p of baseProducers) consumers.push(await transport!.consume({ producerId: p.id, rtpCapabilities: data.rtpCapabilities as ms.RtpCapabilities, paused: true }));
          result = consumers.map((c) => ({ id: c.id, producerId: c.producerId, kind: c.kind, rtpParameters: c.rtpParameters }));
        } else if (method === 'resume') for (const c of consumers) await c.resume();
        ws.send(JSON.stringify({ id, data: result }));
      })();
    });
    ws.on('close', () => transport?.close());
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  const basePort = (http.address() as { port: number }).port;

  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM!, headless: true, args: CHROMIUM_ARGS });
    // The publisher: the web app as host, camera and microphone.
    const hostPage = await (await browser.newContext()).newPage();
    await hostPage.goto(`${gateway.httpUrl}/?meeting=bench#token=${await tokens.mint({ identity: 'host@bench', role: 'host', meetingId: 'bench' })}`);
    await hostPage.fill('#name', 'Host');
    await hostPage.click('#join');
    await hostPage.waitForFunction(() => (window as unknown as { c4v?: { meeting: { producerId(s: string): string | undefined } } }).c4v?.meeting.producerId('camera') !== undefined, undefined, { timeout: 30_000 });
    // The baseline receives the same camera and microphone through a pipe from the meeting's router.
    const host = meeting.participants[0]!;
    const meetingRouter = await meeting._media._routerFor(host.id);
    for (const p of meeting._media.producers) {
      const { pipeProducer } = await meetingRouter.pipeToRouter({ producerId: p.id, router: baseRouter });
      baseProducers.push(pipeProducer!);
    }

    const results: Record<'sdk' | 'baseline', number[]> = { sdk: [], baseline: [] };
    for (let i = 0; i < JOINS * 2; i++) {
      const which = i % 2 === 0 ? 'sdk' : 'baseline';
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.goto(which === 'sdk' ? `${gateway.httpUrl}/bench/sdk.html?meeting=bench` : `${gateway.httpUrl}/bench/baseline.html?port=${basePort}`);
      const handle = await p.waitForFunction(() => {
        const w = window as unknown as { result?: number; failure?: string };
        return w.result ?? (w.failure ? `failed: ${w.failure}` : undefined);
      }, undefined, { timeout: 30_000, polling: 20 });
      const v = await handle.jsonValue();
      if (typeof v !== 'number') throw new Error(`${which} join ${i}: ${String(v)}`);
      results[which].push(v);
      await ctx.close();
    }
    const rows = (['sdk', 'baseline'] as const).map((k) => {
      const s = [...results[k]].sort((a, b) => a - b);
      return { path: k === 'sdk' ? 'SDK + gateway' : 'bare mediasoup-client + mediasoup', joins: s.length, p50: pct(s, 50), p90: pct(s, 90), min: s[0]!, max: s.at(-1)! };
    });
    console.log(`browser join time (WebSocket open -> first decoded remote video frame), ${JOINS} joins each, Chromium ${browser.version()}`);
    console.log('| path | joins | p50 ms | p90 ms | min ms | max ms |');
    console.log('| --- | --- | --- | --- | --- | --- |');
    for (const r of rows) console.log(`| ${r.path} | ${r.joins} | ${r.p50.toFixed(0)} | ${r.p90.toFixed(0)} | ${r.min.toFixed(0)} | ${r.max.toFixed(0)} |`);
    console.log(`ratio of the p50s (SDK / baseline): ${(rows[0]!.p50 / rows[1]!.p50).toFixed(2)}`);
  } finally {
    await browser?.close();
    wss.close();
    http.close();
    await gateway.close();
    core.close();
  }
}

void main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
