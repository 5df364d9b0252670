// Issue 12: end-to-end encryption in the web app, in real browsers (Debian Chromium, headless,
// playwright-core) through the real gateway and real mediasoup workers, inside a loopback-only
// network namespace. Three participants with E2EE and simulcast decode each other; a server-side
// tap (a DirectTransport consumer of the host's camera) sees ciphertext, and the same tap on a
// non-E2EE control meeting sees VP8 in the clear; the host enlarges a tile and the layer changes
// under E2EE; a page that keeps the old key decodes nothing after a leave rotates the key; the
// security code is equal everywhere and changes on join and leave.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { types as ms } from 'mediasoup';
import { clearPrefixLength, isVp8Keyframe } from '../../client/e2ee/codecs.js';
import { createGateway } from '../../gateway/Gateway.js';
import { JoinTokens } from '../../gateway/tokens.js';
import type { Meeting } from '../../lib/model/Meeting.js';
import { webAppRoutes } from '../../web/server.js';
import { VP8_START_CODE, contains, entropy } from '../helpers/e2ee.js';
import { testCore } from '../helpers/core.js';
import { silentLogger } from '../helpers/util.js';
import { artifactsDir, CHROMIUM, CHROMIUM_ARGS, inNetworkNamespace } from './netns.js';

inNetworkNamespace(import.meta.url);

const OUT = artifactsDir('e2ee-meeting');
// Random bytes reach 7.997 bits/byte over 40 KB (the sampling deficit is 255 / (2 n ln 2)); VP8
// is compressed but not uniform (7.95 for the fake camera in the control run below), so this
// threshold separates the two where the issue's "about 8" (> 7.9) would not.
const CIPHERTEXT_ENTROPY = 7.98;

type Inbound = { consumerId: string; kind: string; packetsReceived: number; framesDecoded: number; frameWidth: number; frameHeight: number };
type PageMeeting = { participantId: string; securityCode?: string; e2eeStatus: { state: string }; tracks: Array<{ consumerId: string; participantId: string; kind: string }>; producerId(s: string): string | undefined };

async function inbound(page: Page): Promise<Inbound[]> {
  return page.evaluate(async () => {
    const c4v = (window as unknown as { c4v?: { inboundStats(): Promise<Inbound[]> } }).c4v;
    return c4v ? c4v.inboundStats() : [];
  });
}

async function meetingOf<R>(page: Page, fn: (m: PageMeeting) => R): Promise<R> {
  return page.evaluate(`(${fn.toString()})(window.c4v.meeting)`) as Promise<R>;
}

const idOf = (page: Page): Promise<string> => meetingOf(page, (m) => m.participantId);
const codeOf = (page: Page): Promise<string | undefined> => page.evaluate(() => document.body.dataset.securityCode);

/** Decoded video frames on `page` of `from`'s camera (the consumer of their video). */
async function framesFrom(page: Page, from: string): Promise<number> {
  const consumers = await meetingOf(page, (m) => m.tracks.map((t) => ({ id: t.consumerId, p: t.participantId, k: t.kind })));
  const ids = new Set(consumers.filter((c) => c.p === from && c.k === 'video').map((c) => c.id));
  return (await inbound(page)).filter((s) => ids.has(s.consumerId)).reduce((n, s) => n + s.framesDecoded, 0);
}

/** Polls `fn` until it is true (the browser has no event for decoded-frame counters). */
async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Waits until `page` has decoded at least `n` more frames of `from`'s video than `base`. */
async function decodes(page: Page, from: string, n: number, what: string): Promise<number> {
  const base = await framesFrom(page, from);
  let now = base;
  await until(`${what}: ${n} decoded frames (had ${base})`, async () => (now = await framesFrom(page, from)) >= base + n);
  return now;
}

/** Luminance standard deviation of a video element's current picture (0: black or empty). */
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
    return Math.sqrt(Math.max(0, sq / n - (sum / n) ** 2));
  });
}

async function notBlack(page: Page, selector: string, name: string): Promise<void> {
  await page.waitForFunction((sel) => ((document.querySelector(sel) as HTMLVideoElement | null)?.videoWidth ?? 0) > 0, selector, { timeout: 20_000 });
  const std = await pixelStd(page, selector);
  await page.locator(selector).screenshot({ path: `${OUT}/${name}.png` });
  assert.ok(std > 5, `${name}: the video is not black (pixel std ${std.toFixed(1)})`);
}

/**
 * The server-side tap: a DirectTransport consumer of `producerId` on its router, reassembling
 * VP8 frames from the RTP payloads (payload descriptor of RFC 7741 removed; a frame starts with
 * S = 1, partition 0, and ends at the marker bit).
 */
async function tap(meeting: Meeting, participantId: string, producerId: string): Promise<{ frames: Uint8Array[]; close(): void }> {
  const router = (await (meeting as unknown as { _media: { _routerFor(id: string): Promise<ms.Router> } })._media._routerFor(participantId)) as ms.Router;
  const direct = await router.createDirectTransport();
  const consumer = await direct.consume({ producerId, rtpCapabilities: router.rtpCapabilities });
  const frames: Uint8Array[] = [];
  let parts: Buffer[] | undefined;
  consumer.on('rtp', (packet: Buffer) => {
    const cc = packet[0]! & 0x0f;
    let o = 12 + 4 * cc;
    if (packet[0]! & 0x10) o += 4 + 4 * packet.readUInt16BE(o + 2);
    const end = packet[0]! & 0x20 ? packet.length - packet[packet.length - 1]! : packet.length;
    const p = packet.subarray(o, end);
    if (p.length === 0) return;
    const b0 = p[0]!;
    let d = 1;
    if (b0 & 0x80) {
      const x = p[1]!;
      d = 2;
      if (x & 0x80) d += p[d]! & 0x80 ? 2 : 1;
      if (x & 0x40) d += 1;
      if (x & 0x30) d += 1;
    }
    if (b0 & 0x10 && (b0 & 0x07) === 0) parts = [];
    if (!parts) return;
    parts.push(p.subarray(d));
    if (packet[1]! & 0x80) {
      frames.push(new Uint8Array(Buffer.concat(parts)));
      parts = undefined;
    }
  });
  await consumer.resume();
  return { frames, close: () => direct.close() };
}

/** What the tap shows: entropy and start codes after the clear codec header, and keyframes seen. */
function analyse(frames: Uint8Array[]): { entropy: number; bytes: number; startCodes: number; keyframes: number; keyframesWithStartCode: number } {
  const bodies = frames.map((f) => f.subarray(clearPrefixLength('vp8', f)));
  const all = new Uint8Array(Buffer.concat(bodies));
  const keyframes = frames.filter(isVp8Keyframe);
  return {
    entropy: entropy(all),
    bytes: all.byteLength,
    startCodes: bodies.filter((b) => contains(b, VP8_START_CODE)).length,
    keyframes: keyframes.length,
    keyframesWithStartCode: keyframes.filter((f) => f[3] === 0x9d && f[4] === 0x01 && f[5] === 0x2a).length,
  };
}

test('three E2EE participants with simulcast in the web app: decoding, ciphertext at the SFU, layer switch, rotation on leave, one security code', async () => {
  const started = Date.now();
  const core = await testCore({
    workers: { workers: 1, region: 'de-fra' },
    media: {
      mediaCodecs: [
        { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 },
        { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
      ],
    },
  });
  core.createAccount({ id: 'schule-a' });
  const meeting = await core.createMeeting({ id: 'e2ee', accountId: 'schule-a', title: 'Vertraulich', hostIdentity: 'host@schule-a.de', settings: { e2ee: 'required', waitingRoom: false } });
  const control = await core.createMeeting({ id: 'plain', accountId: 'schule-a', title: 'Kontrolle', hostIdentity: 'host@schule-a.de', settings: { e2ee: 'optional', waitingRoom: false } });
  const tokens = new JoinTokens(JoinTokens.randomSecret());
  const gateway = await createGateway({ core, logger: silentLogger(), registry: core.registry, tokens, port: 0, httpRoutes: webAppRoutes() });
  const base = gateway.httpUrl;
  let browser: Browser | undefined;
  const taps: Array<{ close(): void }> = [];
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM!, headless: true, args: CHROMIUM_ARGS });
    const open = async (): Promise<Page> => {
      const ctx = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await ctx.newPage();
      page.on('pageerror', (e) => console.error('page error:', e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') console.error(`page console: ${m.text()}`);
      });
      return page;
    };
    const join = async (page: Page, meetingId: string, identity: string, name: string, o: { role?: 'host' | 'participant'; camera?: boolean; query?: string } = {}): Promise<string> => {
      const token = await tokens.mint({ identity, role: o.role ?? 'participant', meetingId });
      await page.goto(`${base}/?meeting=${meetingId}${o.query ?? ''}#token=${encodeURIComponent(token)}`);
      await page.fill('#name', name);
      if (o.camera === false) {
        await page.uncheck('#with-camera');
        await page.uncheck('#with-mic');
      }
      await page.click('#join');
      await page.waitForSelector('body[data-state="admitted"] #meeting:not([hidden])');
      return idOf(page);
    };

    // A browser that cannot encrypt (`?e2ee=off` stands in for one) is refused by the 'required'
    // meeting, and the page says why.
    const refused = await open();
    const token = await tokens.mint({ identity: 'alt@schule-a.de', role: 'participant', meetingId: meeting.id });
    await refused.goto(`${base}/?meeting=${meeting.id}&e2ee=off#token=${encodeURIComponent(token)}`);
    await refused.fill('#name', 'Alt');
    await refused.click('#join');
    await refused.waitForSelector('#prejoin-error:has-text("end-to-end encrypted")');
    await refused.context().close();

    // Three participants, each publishing camera (three simulcast layers) and microphone.
    const host = await open();
    const anna = await open();
    const bernd = await open();
    const hostId = await join(host, meeting.id, 'host@schule-a.de', 'Frau Schmidt', { role: 'host' });
    const annaId = await join(anna, meeting.id, 'anna@eltern.de', 'Anna');
    const codeOfTwo = await (async () => {
      await until('the code of two', async () => (await codeOf(host)) !== undefined && (await codeOf(host)) === (await codeOf(anna)));
      return (await codeOf(host))!;
    })();
    const berndId = await join(bernd, meeting.id, 'bernd@eltern.de', 'Bernd');
    const three = [host, anna, bernd];
    await until('one security code on all three pages', async () => {
      const codes = await Promise.all(three.map(codeOf));
      return codes[0] !== undefined && codes[0] !== codeOfTwo && codes.every((c) => c === codes[0]);
    });
    const codeOfThree = (await codeOf(host))!;
    assert.match(codeOfThree, /^[0-9 ]+$/);
    for (const p of three) assert.is(await p.textContent('#e2ee-label'), 'End-to-end encrypted');
    await host.locator('header').screenshot({ path: `${OUT}/header-three.png` });

    // Every page decodes the others' video, and the pictures are not black.
    const ids = new Map([[host, hostId], [anna, annaId], [bernd, berndId]]);
    for (const [page, self] of ids) {
      for (const [, other] of ids) {
        if (other === self) continue;
        await decodes(page, other, 30, `${self} decoding ${other}`);
        await notBlack(page, `.tile[data-participant="${other}"][data-source="camera"] video`, `${self.slice(0, 6)}-sees-${other.slice(0, 6)}`);
      }
    }

    // The server-side tap of the host's camera: ciphertext after the clear header.
    const hostCam = (await meetingOf(host, (m) => m.producerId('camera')))!;
    const e2eeTap = await tap(meeting, hostId, hostCam);
    taps.push(e2eeTap);
    await until('60 tapped frames with a keyframe', async () => e2eeTap.frames.length >= 60 && e2eeTap.frames.some(isVp8Keyframe));
    const enc = analyse(e2eeTap.frames);
    console.log(`  E2EE tap: ${e2eeTap.frames.length} frames, ${enc.bytes} bytes after the clear header, entropy ${enc.entropy.toFixed(3)} bits/byte, start codes ${enc.startCodes}, keyframes ${enc.keyframes}`);
    assert.ok(enc.bytes > 40_000 && enc.entropy > CIPHERTEXT_ENTROPY, `ciphertext entropy ${enc.entropy.toFixed(3)} over ${enc.bytes} bytes`);
    assert.is(enc.startCodes, 0, 'no VP8 start code after the clear header');
    assert.ok(enc.keyframes > 0 && enc.keyframesWithStartCode === enc.keyframes, 'the SFU still reads the clear keyframe header');

    // The host enlarges Anna's tile: the server sends a higher spatial layer, still decoding.
    const annaTile = `.tile[data-participant="${annaId}"][data-source="camera"]`;
    await host.waitForSelector(`${annaTile}[data-spatial-layer]`, { timeout: 20_000 });
    const before = Number(await host.getAttribute(annaTile, 'data-spatial-layer'));
    const widthBefore = await host.$eval(`${annaTile} video`, (v) => (v as HTMLVideoElement).videoWidth);
    await host.click(`${annaTile} button.enlarge`);
    await host.waitForFunction(
      ([sel, b]) => Number(document.querySelector(sel as string)?.getAttribute('data-spatial-layer') ?? -1) > (b as number),
      [annaTile, before] as const,
      { timeout: 30_000 },
    );
    await decodes(host, annaId, 30, 'the host decoding Anna after the layer switch');
    await until('a larger picture of Anna', async () => (await host.$eval(`${annaTile} video`, (v) => (v as HTMLVideoElement).videoWidth)) > widthBefore);
    await notBlack(host, `${annaTile} video`, 'host-sees-anna-enlarged');
    console.log(`  layer switch under E2EE: spatial ${before} -> ${await host.getAttribute(annaTile, 'data-spatial-layer')}, width ${widthBefore} -> ${await host.$eval(`${annaTile} video`, (v) => (v as HTMLVideoElement).videoWidth)}`);

    // Eve joins (receive only): the code changes on every page. Then she keeps the key she got:
    // the server withholds every later key message from her.
    const eve = await open();
    const eveId = await join(eve, meeting.id, 'eve@eltern.de', 'Eve', { camera: false });
    const four = [host, anna, bernd, eve];
    await until('one new security code on all four pages', async () => {
      const codes = await Promise.all(four.map(codeOf));
      return codes[0] !== codeOfThree && codes.every((c) => c === codes[0]);
    });
    const codeOfFour = (await codeOf(host))!;
    await decodes(eve, hostId, 30, 'Eve decoding the host with the current key');
    const eveModel = meeting.participant(eveId)!;
    const emit = eveModel.safeEmit.bind(eveModel) as (event: string, ...args: unknown[]) => boolean;
    let withheld = 0;
    (eveModel as unknown as { safeEmit: typeof emit }).safeEmit = (event, ...args) => (event === 'keymessage' ? (withheld++, true) : emit(event, ...args));

    // Bernd leaves: the key rotates, the code changes; Anna follows, Eve decodes nothing new.
    await bernd.click('#leave');
    await bernd.waitForSelector('body[data-reason="left"]');
    const rest = [host, anna, eve];
    await until('one new security code after the leave', async () => {
      const codes = await Promise.all(rest.map(codeOf));
      return codes[0] !== codeOfFour && codes.every((c) => c === codes[0]);
    });
    await decodes(anna, hostId, 30, 'Anna decoding the host after the rotation');
    const eveAfter = await framesFrom(eve, hostId);
    await decodes(anna, hostId, 60, 'Anna decoding the host, later');
    const eveLater = await framesFrom(eve, hostId);
    console.log(`  after the rotation: Eve (old key) decoded ${eveLater - eveAfter} frames of the host while Anna decoded 60; ${withheld} key messages withheld`);
    assert.is(eveLater - eveAfter, 0, 'the page with the old key decodes no frame sent after the rotation');
    assert.ok(withheld > 0, 'the rotation sent Eve a key message (withheld)');
    await host.locator('header').screenshot({ path: `${OUT}/header-after-leave.png` });
    for (const p of [host, anna, bernd, eve]) await p.context().close();

    // The control: an 'optional' meeting whose host joins without E2EE. The same tap and the
    // same entropy check on its camera find VP8 in the clear (so the check above can fail); an
    // E2EE participant who joins sees the meeting labelled mixed and still decodes the host.
    const plain = await open();
    const plainId = await join(plain, control.id, 'host@schule-a.de', 'Frau Schmidt', { role: 'host', query: '&e2ee=off' });
    const plainCam = await (async () => {
      let id: string | undefined;
      await until('the control camera', async () => (id = await meetingOf(plain, (m) => m.producerId('camera'))) !== undefined);
      return id!;
    })();
    const plainTap = await tap(control, plainId, plainCam);
    taps.push(plainTap);
    const mixed = await open();
    await join(mixed, control.id, 'anna@eltern.de', 'Anna', { camera: false });
    await mixed.waitForSelector('#e2ee-label[data-state="mixed"]');
    assert.match((await mixed.textContent('#e2ee-label')) ?? '', /Mixed: 1 participant without end-to-end encryption/);
    assert.is(await plain.textContent('#e2ee-label'), 'Not end-to-end encrypted');
    await decodes(mixed, plainId, 30, 'the E2EE participant decoding the plain host');
    await mixed.locator('header').screenshot({ path: `${OUT}/header-mixed.png` });
    await until('60 control frames with a keyframe', async () => plainTap.frames.length >= 60 && plainTap.frames.some(isVp8Keyframe));
    const clear = analyse(plainTap.frames);
    console.log(`  control tap: ${plainTap.frames.length} frames, ${clear.bytes} bytes after the same header, entropy ${clear.entropy.toFixed(3)} bits/byte, start codes ${clear.startCodes}, keyframes ${clear.keyframes}`);
    assert.ok(clear.keyframesWithStartCode > 0, 'the control tap finds the VP8 start code (in the keyframe header, as under E2EE)');
    assert.ok(clear.entropy < CIPHERTEXT_ENTROPY, `the same check on plain VP8 fails: ${clear.entropy.toFixed(3)} bits/byte`);
    for (const p of [plain, mixed]) await p.context().close();
    console.log(`  E2EE browser scenario took ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${OUT}`);
  } finally {
    for (const t of taps) t.close();
    await browser?.close();
    await gateway.close();
    core.close();
  }
});

test.run();
