// The meeting web app in a real browser (Debian Chromium, headless, driven by playwright-core),
// against the real gateway and real workers, inside a loopback-only network namespace. Every
// step goes through the UI by clicking. Screenshots are kept under test-artifacts/browser/meeting/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chromium, type Browser, type Page } from 'playwright-core';
import { createGateway } from '../../gateway/Gateway.js';
import { JoinTokens } from '../../gateway/tokens.js';
import { webAppRoutes } from '../../web/server.js';
import { testCore } from '../helpers/core.js';
import { silentLogger } from '../helpers/util.js';
import { artifactsDir, CHROMIUM, CHROMIUM_ARGS, inNetworkNamespace } from './netns.js';

inNetworkNamespace(import.meta.url);

const HOST = 'host@schule-a.de';
const ANNA = 'anna@eltern.de';
const OUT = artifactsDir('meeting');

/** Browser-side: inbound-rtp of every remote track of this page (window.c4v from the web app). */
type Inbound = { consumerId: string; kind: string; packetsReceived: number; framesDecoded: number; frameWidth: number; frameHeight: number };
async function inbound(page: Page): Promise<Inbound[]> {
  return page.evaluate(async () => {
    const c4v = (window as unknown as { c4v?: { inboundStats(): Promise<Inbound[]> } }).c4v;
    return c4v ? c4v.inboundStats() : [];
  });
}

/** Waits until the page receives audio packets and decoded video frames from someone. */
async function mediaFlows(page: Page, what: string, minFrames = 10): Promise<Inbound[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await inbound(page);
    const audio = s.filter((x) => x.kind === 'audio' && x.packetsReceived > 20);
    const video = s.filter((x) => x.kind === 'video' && x.framesDecoded >= minFrames);
    if (audio.length > 0 && video.length > 0) return s;
    if (Date.now() > deadline) throw new Error(`no media at ${what}: ${JSON.stringify(s)} (page says: ${await page.textContent('#notice')})`);
    await page.waitForTimeout(250);
  }
}

/** The pixel standard deviation of a tile's video (0 for a black or empty frame). */
async function pixelStd(page: Page, selector: string): Promise<number> {
  return page.$eval(selector, (v) => {
    const video = v as HTMLVideoElement;
    if (!video.videoWidth) return 0;
    const c = document.createElement('canvas');
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    const g = c.getContext('2d')!;
    g.drawImage(video, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let sum = 0;
    let sq = 0;
    const n = d.length / 4;
    for (let i = 0; i < d.length; i += 4) {
      const y = 0.299 * d[i]! + 0.587 * d[i + 1]! + 0.114 * d[i + 2]!;
      sum += y;
      sq += y * y;
    }
    const mean = sum / n;
    return Math.sqrt(Math.max(0, sq / n - mean * mean));
  });
}

async function notBlack(page: Page, selector: string, name: string): Promise<void> {
  await page.waitForFunction((sel) => ((document.querySelector(sel) as HTMLVideoElement | null)?.videoWidth ?? 0) > 0, selector, { timeout: 20_000 });
  const std = await pixelStd(page, selector);
  await page.locator(selector).screenshot({ path: `${OUT}/${name}.png` });
  assert.ok(std > 5, `${name}: the video is not black (pixel std ${std.toFixed(1)})`);
}

async function joinThroughUi(page: Page, url: string, name: string): Promise<void> {
  // A fresh document every time (the same URL with only a new fragment would not reload).
  await page.goto('about:blank');
  await page.goto(url);
  await page.fill('#name', name);
  await page.click('#join');
}

test('host and two guests through the web app: waiting room, media both ways, chat, layers, mute, worker death, remove, end', async () => {
  const started = Date.now();
  const core = await testCore({
    workers: { workers: 2, region: 'de-fra' },
    media: {
      mediaCodecs: [
        { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
        { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
      ],
    },
  });
  core.createAccount({ id: 'schule-a' });
  const meeting = await core.createMeeting({ id: 'elternabend', accountId: 'schule-a', title: 'Elternabend 5b', hostIdentity: HOST });
  const tokens = new JoinTokens(JoinTokens.randomSecret());
  const gateway = await createGateway({ core, logger: silentLogger(), registry: core.registry, tokens, port: 0, httpRoutes: webAppRoutes() });
  const base = gateway.httpUrl;
  let browser: Browser | undefined;
  try {
    // The page is served with a strict CSP.
    const res = await fetch(`${base}/`);
    assert.is(res.status, 200);
    assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);

    browser = await chromium.launch({ executablePath: CHROMIUM!, headless: true, args: CHROMIUM_ARGS });
    const pages: Page[] = [];
    const open = async (): Promise<Page> => {
      const ctx = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await ctx.newPage();
      page.on('pageerror', (e) => console.error('page error:', e.message));
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') console.error(`page console ${m.type()}: ${m.text()}`);
      });
      pages.push(page);
      return page;
    };
    const host = await open();
    const anna = await open();
    const bernd = await open();
    const link = (token?: string): string => `${base}/?meeting=${meeting.id}${token ? `#token=${encodeURIComponent(token)}` : ''}`;
    const annaToken = await tokens.mint({ identity: ANNA, role: 'participant', meetingId: meeting.id });

    // The host joins with the link from the server; two guests wait in the waiting room.
    await joinThroughUi(host, link(await tokens.mint({ identity: HOST, role: 'host', meetingId: meeting.id })), 'Frau Schmidt');
    await host.waitForSelector('body[data-state="admitted"] #meeting:not([hidden])');
    assert.ok(await host.isVisible('#host-panel'));
    await joinThroughUi(anna, link(annaToken), 'Anna');
    await joinThroughUi(bernd, link(), 'Bernd');
    await anna.waitForSelector('body[data-state="waiting-room"] #waiting:not([hidden])');
    await bernd.waitForSelector('body[data-state="waiting-room"]');
    await host.waitForSelector('#waiting-list li:has-text("Anna")');
    await host.waitForSelector('#waiting-list li:has-text("Bernd")');
    // One is admitted, one is denied.
    await host.click('#waiting-list li:has-text("Anna") button.admit');
    await host.click('#waiting-list li:has-text("Bernd") button.deny');
    await bernd.waitForSelector('body[data-reason="denied"] #closed:not([hidden])');
    assert.match(await bernd.textContent('#closed-title') ?? '', /Not admitted/);
    await anna.waitForSelector('body[data-state="admitted"] #meeting:not([hidden])');

    // Audio and video both ways: inbound packets, decoded frames, pictures that are not black.
    await mediaFlows(host, 'the host');
    await mediaFlows(anna, 'Anna');
    const annaId = await anna.evaluate(() => (window as unknown as { c4v: { meeting: { participantId: string } } }).c4v.meeting.participantId);
    const hostId = await host.evaluate(() => (window as unknown as { c4v: { meeting: { participantId: string } } }).c4v.meeting.participantId);
    await notBlack(host, `.tile[data-participant="${annaId}"][data-source="camera"] video`, 'host-sees-anna');
    await notBlack(anna, `.tile[data-participant="${hostId}"][data-source="camera"] video`, 'anna-sees-host');

    // Screen share both ways.
    await host.click('#share');
    await anna.waitForSelector(`.tile[data-participant="${hostId}"][data-source="screen"]`, { timeout: 20_000 });
    await notBlack(anna, `.tile[data-participant="${hostId}"][data-source="screen"] video`, 'anna-sees-host-screen');
    await anna.click('#share');
    await host.waitForSelector(`.tile[data-participant="${annaId}"][data-source="screen"]`, { timeout: 20_000 });
    await notBlack(host, `.tile[data-participant="${annaId}"][data-source="screen"] video`, 'host-sees-anna-screen');

    // Chat both ways (over the SFU's data channels).
    await host.fill('#chat-input', 'Willkommen zum Elternabend');
    await host.click('#chat-send');
    await anna.waitForSelector('#chat-log li:has-text("Willkommen zum Elternabend")');
    await anna.fill('#chat-input', 'Danke, guten Abend');
    await anna.click('#chat-send');
    await host.waitForSelector('#chat-log li:has-text("Danke, guten Abend")');

    // Enlarging a guest's tile raises the layer the server sends on that consumer.
    const annaTile = `.tile[data-participant="${annaId}"][data-source="camera"]`;
    await host.waitForSelector(`${annaTile}[data-spatial-layer]`, { timeout: 20_000 });
    const before = Number(await host.getAttribute(annaTile, 'data-spatial-layer'));
    await host.click(`${annaTile} button.enlarge`);
    await host.waitForFunction(
      ([sel, b]) => Number(document.querySelector(sel as string)?.getAttribute('data-spatial-layer') ?? -1) > (b as number),
      [annaTile, before] as const,
      { timeout: 30_000 },
    );
    await host.locator(annaTile).screenshot({ path: `${OUT}/host-enlarged-anna.png` });

    // Anna's WebSocket is lost, twice: the SDK resumes each time within the grace period (the
    // second time with the token the first resume returned: tokens are single use).
    for (const round of [1, 2]) {
      await anna.evaluate(() => (window as unknown as { c4v: { meeting: { _dropSocket(): void } } }).c4v.meeting._dropSocket());
      await anna.waitForFunction((n) => document.body.dataset.resumed === String(n), round, { timeout: 20_000 });
    }
    assert.is(await anna.getAttribute('body', 'data-state'), 'admitted');

    // The host mutes Anna: her page says so (a notification on her resumed connection).
    await host.click(`${annaTile} button.mute`);
    await anna.waitForSelector('body[data-muted-by-host="microphone"]');

    // A worker is killed: both pages show video again (new consumers decoding frames).
    const placement = meeting.placements.find((p) => !p.to)!;
    const worker = core.pool.workers.find((w) => w.id === placement.workerId)!;
    const oldConsumers = new Set((await inbound(host)).map((s) => s.consumerId));
    process.kill(worker.pid, 'SIGKILL');
    const killedAt = Date.now();
    for (const [page, name] of [[host, 'host'], [anna, 'Anna']] as const) {
      await page.waitForFunction(
        (old) => {
          const c4v = (window as unknown as { c4v: { meeting: { tracks: Array<{ consumerId: string; kind: string }> } } }).c4v;
          return c4v.meeting.tracks.some((t) => t.kind === 'video' && !(old as string[]).includes(t.consumerId));
        },
        [...oldConsumers],
        { timeout: 30_000 },
      );
      const deadline = Date.now() + 30_000;
      for (;;) {
        const fresh = (await inbound(page)).filter((s) => s.kind === 'video' && !oldConsumers.has(s.consumerId) && s.framesDecoded > 0);
        if (fresh.length > 0) break;
        if (Date.now() > deadline) throw new Error(`no video at ${name} after the worker death`);
        await page.waitForTimeout(200);
      }
    }
    console.log(`  video again on both pages ${Date.now() - killedAt} ms after the worker kill`);
    await notBlack(host, `${annaTile} video`, 'host-sees-anna-after-worker-death');

    // Removed: Anna sees the removed screen and cannot join again.
    await host.click(`${annaTile} button.remove`);
    await anna.waitForSelector('body[data-reason="removed"] #closed:not([hidden])');
    await anna.screenshot({ path: `${OUT}/anna-removed.png` });
    await joinThroughUi(anna, link(annaToken), 'Anna');
    await anna.waitForSelector('#prejoin-error:has-text("removed")');

    // The host ends the meeting.
    await host.click('#end');
    await host.waitForSelector('body[data-reason="meeting-ended"] #closed:not([hidden])');
    await host.screenshot({ path: `${OUT}/host-ended.png` });
    console.log(`  browser scenario took ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${OUT}`);
  } finally {
    await browser?.close();
    await gateway.close();
    core.close();
  }
});

test.run();
