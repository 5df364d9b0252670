// The page the E2EE browser tests load: it imports the compiled SDK module (dist/client/e2ee/),
// and offers `loopback(options)`: two RTCPeerConnections in the page, the fake camera and
// microphone sent from one to the other through the E2EE transforms (and their worker).
export const E2EE_PAGE = `<!doctype html>
<html><body>
<video id="v" autoplay muted playsinline width="640" height="360"></video>
<canvas id="c" width="160" height="90"></canvas>
<script type="module">
import * as e2ee from '/client/e2ee/index.js';

async function until(cond, ms, what) {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function inbound(pc, kind) {
  const stats = await pc.getStats();
  for (const s of stats.values()) if (s.type === 'inbound-rtp' && s.kind === kind) return { ...s, codec: stats.get(s.codecId)?.mimeType };
  return undefined;
}

/** Mean and spread of the luminance of the video as drawn now (black: mean near 0, spread 0). */
function luminance(video) {
  const c = document.getElementById('c');
  const g = c.getContext('2d', { willReadFrequently: true });
  g.drawImage(video, 0, 0, c.width, c.height);
  const px = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, sq = 0, n = 0;
  for (let i = 0; i < px.length; i += 4) {
    const y = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
    sum += y; sq += y * y; n++;
  }
  const mean = sum / n;
  return { mean, spread: Math.sqrt(Math.max(0, sq / n - mean * mean)) };
}

/**
 * options: { e2ee: boolean, api: 'script-transform' | 'encoded-streams', codec: 'VP8' | 'H264',
 *            wrongKey: boolean, frames: number }
 */
window.loopback = async (o) => {
  const globals = o.api === 'encoded-streams' ? { RTCRtpSender, RTCRtpReceiver, Worker } : globalThis;
  const config = o.e2ee ? e2ee.peerConnectionOptions(o.api) : {};
  const pc1 = new RTCPeerConnection(config);
  const pc2 = new RTCPeerConnection(config);
  pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
  pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
  const size = o.size ?? [640, 360];
  const stream = await navigator.mediaDevices.getUserMedia({ audio: o.kind !== 'video', video: o.kind === 'audio' ? false : { width: size[0], height: size[1], frameRate: 30 } });
  let tx, rx;
  if (o.e2ee) {
    tx = e2ee.createE2eeTransforms({ selfId: 'alice', globals });
    rx = e2ee.createE2eeTransforms({ selfId: 'bob', globals });
    const key = crypto.getRandomValues(new Uint8Array(32));
    tx.setKey(7, key);
    tx.useKey(7);
    rx.setKey(7, o.wrongKey ? crypto.getRandomValues(new Uint8Array(32)) : key);
  }
  for (const track of stream.getTracks()) {
    const t = pc1.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    if (track.kind === 'video') {
      const all = RTCRtpSender.getCapabilities('video').codecs;
      const wanted = all.filter((c) => c.mimeType === 'video/' + o.codec);
      if (wanted.length === 0) return { unsupported: o.codec };
      t.setCodecPreferences([...wanted, ...all.filter((c) => !wanted.includes(c))]);
    }
    if (tx) tx.attachSender(t.sender);
  }
  const video = document.getElementById('v');
  let presented = 0;
  let audioReceiver;
  const delays = o.measure ? [] : undefined;
  pc2.ontrack = (e) => {
    if (rx) rx.attachReceiver(e.receiver, 'alice');
    if (e.track.kind === 'audio') {
      audioReceiver = e.receiver;
      // Remote audio is decoded as it is played out: give it an element to play in.
      const el = new Audio();
      el.srcObject = new MediaStream([e.track]);
      void el.play();
    }
    if (e.track.kind === 'video') {
      video.srcObject = new MediaStream([e.track]);
      const tick = (_now, meta) => {
        presented++;
        // Capture (sender clock) to expected display (receiver clock): one clock in a loopback.
        if (delays && presented > 30 && meta.captureTime) delays.push(meta.expectedDisplayTime - meta.captureTime);
        video.requestVideoFrameCallback(tick);
      };
      video.requestVideoFrameCallback(tick);
    }
  };
  await pc1.setLocalDescription(await pc1.createOffer());
  await pc2.setRemoteDescription(pc1.localDescription);
  await pc2.setLocalDescription(await pc2.createAnswer());
  await pc1.setRemoteDescription(pc2.localDescription);
  if (o.measure) {
    // Cost figures at the asked size: no downscaling under CPU load, and room to send it.
    for (const sender of pc1.getSenders()) {
      if (sender.track?.kind !== 'video') continue;
      const p = sender.getParameters();
      p.degradationPreference = 'maintain-resolution';
      for (const e of p.encodings) e.maxBitrate = 2500000;
      await sender.setParameters(p);
    }
  }
  const frames = o.frames ?? 30;
  if (o.measure) {
    // Cost figures (bench/e2ee-browser.ts): run for a while, then report what it took.
    if (o.kind !== 'audio') await until(() => delays.length >= o.measure, 120000, o.measure + ' measured frames');
    else await until(async () => ((await inbound(pc2, 'audio'))?.jitterBufferEmittedCount ?? 0) >= o.measure * 960, 120000, 'audio frames');
    const v = o.kind !== 'audio' ? await inbound(pc2, 'video') : undefined;
    const a = o.kind !== 'video' ? await inbound(pc2, 'audio') : undefined;
    const sorted = (delays ?? []).slice().sort((x, y) => x - y);
    const result = {
      delayMedianMs: sorted.length ? sorted[Math.floor(sorted.length / 2)] : undefined,
      delayP95Ms: sorted.length ? sorted[Math.floor(sorted.length * 0.95)] : undefined,
      videoBytesPerFrame: v ? v.bytesReceived / Math.max(1, v.framesReceived ?? v.framesDecoded) : undefined,
      frameWidth: v?.frameWidth,
      audioJitterBufferMs: a && a.jitterBufferEmittedCount ? (1000 * a.jitterBufferDelay) / a.jitterBufferEmittedCount : undefined,
      tx: tx ? await tx.stats() : undefined,
      rx: rx ? await rx.stats() : undefined,
    };
    pc1.close();
    pc2.close();
    for (const t of stream.getTracks()) t.stop();
    tx?.close();
    rx?.close();
    return result;
  }
  if (o.wrongKey) {
    await until(async () => (await rx.stats()).droppedAuthFailed >= frames, 30000, 'dropped frames');
  } else {
    await until(() => presented >= frames, 30000, frames + ' presented frames');
  }
  let audioLevel = 0;
  if (!o.wrongKey) {
    await until(async () => ((await inbound(pc2, 'audio'))?.totalAudioEnergy ?? 0) > 0, 30000, 'decoded audio');
    // The receiver reports the level from the packets' audio-level header extension (the one the
    // SFU reads for active speaker), which the transform never touches.
    await until(() => (audioLevel = audioReceiver?.getSynchronizationSources()[0]?.audioLevel ?? 0) > 0, 30000, 'an audio level');
  }
  const v = await inbound(pc2, 'video');
  const a = await inbound(pc2, 'audio');
  const result = {
    presented,
    framesDecoded: v?.framesDecoded ?? 0,
    videoCodec: v?.codec,
    audioCodec: a?.codec,
    audioEnergy: a?.totalAudioEnergy ?? 0,
    audioLevel,
    luminance: presented > 0 ? luminance(video) : undefined,
    tx: tx ? await tx.stats() : undefined,
    rx: rx ? await rx.stats() : undefined,
    api: tx?.api,
  };
  pc1.close();
  pc2.close();
  for (const t of stream.getTracks()) t.stop();
  tx?.close();
  rx?.close();
  return result;
};
window.ready = true;
</script>
</body></html>`;
