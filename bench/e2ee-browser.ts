// What E2EE costs in the browser (headless Chromium, the SDK's transforms and worker): encrypt
// and decrypt time per frame, and the capture-to-display delay of video, for 720p VP8 and for
// opus, each against the same loopback run without E2EE in the same process.
//
//   node dist/bench/e2ee-browser.js [--quick]
import { Chromium, serveDist } from '../test/browser/e2ee-chromium.js';
import { E2EE_PAGE } from '../test/browser/e2ee-page.js';
import { inNetworkNamespace } from '../test/browser/netns.js';

inNetworkNamespace(import.meta.url);

interface Measured {
  delayMedianMs?: number;
  delayP95Ms?: number;
  videoBytesPerFrame?: number;
  frameWidth?: number;
  audioJitterBufferMs?: number;
  tx?: { encrypted: number; encryptMs: number };
  rx?: { decrypted: number; decryptMs: number };
}

const quick = process.argv.includes('--quick');
const frames = quick ? 90 : 600;

async function main(): Promise<void> {
  const server = await serveDist({ '/e2ee.html': E2EE_PAGE });
  const browser = await Chromium.launch();
  try {
    const page = await browser.open(`${server.origin}/e2ee.html`);
    const run = (o: object): Promise<Measured> => page.evaluate<Measured>(`window.loopback(${JSON.stringify({ frames: 30, ...o })})`, 180_000);
    const video = { kind: 'video', codec: 'VP8', size: [1280, 720], measure: frames };
    const audio = { kind: 'audio', codec: 'VP8', measure: Math.round(frames / 2) };
    // Alternate plain and E2EE runs so that a change in machine load hits both alike.
    const vPlain = await run({ ...video, e2ee: false });
    const vE2ee = await run({ ...video, e2ee: true, api: 'script-transform' });
    const aPlain = await run({ ...audio, e2ee: false });
    const aE2ee = await run({ ...audio, e2ee: true, api: 'script-transform' });
    const per = (ms: number | undefined, n: number | undefined): string => (ms !== undefined && n ? (ms / n).toFixed(3) : '-');
    const rows = [
      ['720p VP8: encrypt ms/frame', per(vE2ee.tx?.encryptMs, vE2ee.tx?.encrypted), `${vE2ee.tx?.encrypted} frames, ~${Math.round(vE2ee.videoBytesPerFrame ?? 0)} B/frame, width ${vE2ee.frameWidth}`],
      ['720p VP8: decrypt ms/frame', per(vE2ee.rx?.decryptMs, vE2ee.rx?.decrypted), ''],
      ['720p VP8: capture->display median ms', `${vE2ee.delayMedianMs?.toFixed(1)} vs ${vPlain.delayMedianMs?.toFixed(1)}`, `ratio ${((vE2ee.delayMedianMs ?? 0) / (vPlain.delayMedianMs ?? 1)).toFixed(2)}`],
      ['720p VP8: capture->display p95 ms', `${vE2ee.delayP95Ms?.toFixed(1)} vs ${vPlain.delayP95Ms?.toFixed(1)}`, `ratio ${((vE2ee.delayP95Ms ?? 0) / (vPlain.delayP95Ms ?? 1)).toFixed(2)}`],
      ['opus: encrypt ms/frame', per(aE2ee.tx?.encryptMs, aE2ee.tx?.encrypted), `${aE2ee.tx?.encrypted} frames`],
      ['opus: decrypt ms/frame', per(aE2ee.rx?.decryptMs, aE2ee.rx?.decrypted), ''],
      ['opus: jitter buffer ms', `${aE2ee.audioJitterBufferMs?.toFixed(1)} vs ${aPlain.audioJitterBufferMs?.toFixed(1)}`, `ratio ${((aE2ee.audioJitterBufferMs ?? 0) / (aPlain.audioJitterBufferMs ?? 1)).toFixed(2)}`],
    ];
    console.log(`E2EE in Chromium (${quick ? 'quick' : 'full'}: ${frames} video frames measured; "a vs b" = with E2EE vs without, same run)`);
    for (const [what, value, note] of rows) console.log(`${what!.padEnd(40)} ${value!.padEnd(16)} ${note}`);
  } finally {
    await browser.close();
    await server.close();
  }
}

await main();
