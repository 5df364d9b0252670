// Signalling throughput (issue 14): an open-loop load generator against the real gateway in its
// own process (bench/signalling-server.ts: one media worker, meetings of `roster` participants,
// every seat one WebSocket connection that joined). Each step sends get_participants at a fixed
// rate spread round-robin over the connections, for rising rates, and measures the latency from
// the scheduled send time to the response, the server process's CPU (schedstat, all its threads)
// and the generator's own CPU (so that a generator-bound step is visible as such). The figure is
// requests per second per server CPU-core at the highest rate whose p99 stays <= 10 ms.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { encodeEnvelope, pb } from '../gateway/wire.js';
import { schedCpuMs } from './paths.js';
import { quantile } from './stats.js';

const SERVER = fileURLToPath(new URL('./signalling-server.js', import.meta.url));

export interface SignallingStep {
  targetRps: number;
  achievedRps: number;
  p50Ms: number;
  p99Ms: number;
  /** Server process CPU in % of one core over the step. */
  serverCpuPercent: number;
  /** Requests answered per second per core of server CPU: achievedRps / (serverCpuPercent / 100). */
  rpsPerServerCore: number;
  /** The generator's CPU in % of one core: near 100 means the generator, not the server, was the limit. */
  generatorCpuPercent: number;
  answered: number;
  errors: number;
}

export interface SignallingResult {
  roster: number;
  meetings: number;
  connections: number;
  /** Bytes of one get_participants response (the envelope). */
  responseBytes: number;
  steps: SignallingStep[];
  /** The step with the most requests/s whose p99 was <= the bound (undefined: none was). */
  best?: SignallingStep;
  p99BoundMs: number;
}

interface Conn {
  ws: WebSocket;
  nextId: number;
}

/** Reads a response's request id (Envelope field 1, a varint that protobufjs writes first). */
function envelopeId(b: Buffer): number {
  if (b[0] !== 0x08) return pb.Envelope.decode(b).id;
  let id = 0;
  let shift = 0;
  for (let i = 1; i < 6; i++) {
    const x = b[i]!;
    id += (x & 0x7f) * 2 ** shift;
    if (x < 0x80) return id;
    shift += 7;
  }
  return pb.Envelope.decode(b).id;
}

async function startServer(meetings: number, roster: number): Promise<{ child: ChildProcess; url: string; seats: Array<{ meetingId: string; token: string }> }> {
  const child = spawn(process.execPath, [SERVER, String(meetings), String(roster)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', (l) => {
      rl.close();
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`signalling server exited with ${code} before it was ready`)));
  });
  const info = JSON.parse(line) as { url: string; seats: Array<{ meetingId: string; token: string }> };
  return { child, url: info.url, seats: info.seats };
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends one request and waits for its response (set-up only, not measured). */
function call(c: Conn, request: Record<string, unknown>): Promise<InstanceType<typeof pb.Response>> {
  const id = c.nextId++;
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer): void => {
      const env = pb.Envelope.decode(data);
      if (env.id !== id || !env.response) return;
      c.ws.off('message', onMessage);
      if (env.response.error) reject(new Error(`${Object.keys(request)[0]}: ${env.response.error.reason}`));
      else resolve(env.response as InstanceType<typeof pb.Response>);
    };
    c.ws.on('message', onMessage);
    c.ws.send(encodeEnvelope({ id, request }));
  });
}

/** Runs the rising-rate steps for one roster size; see the file comment. */
export async function signallingThroughput(o: {
  roster: number;
  meetings: number;
  startRps: number;
  factor: number;
  maxSteps: number;
  stepSeconds: number;
  p99BoundMs?: number;
  log: (line: string) => void;
}): Promise<SignallingResult> {
  const bound = o.p99BoundMs ?? 10;
  const server = await startServer(o.meetings, o.roster);
  const conns: Conn[] = [];
  try {
    for (const seat of server.seats) {
      const c: Conn = { ws: await open(server.url), nextId: 1 };
      conns.push(c);
      await call(c, { hello: { protocolVersions: [1], client: 'c4v-bench' } });
      await call(c, { join: { meetingId: seat.meetingId, displayName: 'Load', joinToken: seat.token, e2eeCapable: false } });
    }
    // The answer is what it should be: every connection sees its whole meeting.
    let responseBytes = 0;
    for (const c of conns) {
      const id = c.nextId++;
      const got = await new Promise<Buffer>((resolve) => {
        const on = (d: Buffer): void => {
          if (envelopeId(d) !== id) return;
          c.ws.off('message', on);
          resolve(d);
        };
        c.ws.on('message', on);
        c.ws.send(encodeEnvelope({ id, request: { getParticipants: {} } }));
      });
      const n = pb.Envelope.decode(got).response?.participants?.participants?.length ?? 0;
      if (n !== o.roster) throw new Error(`get_participants answered ${n} participants, expected ${o.roster}`);
      responseBytes = got.length;
    }
    // Latency bookkeeping: scheduled send time per (connection, id).
    const sentAt = conns.map(() => new Map<number, number>());
    let latencies: number[] = [];
    let errors = 0;
    conns.forEach((c, k) => {
      c.ws.on('message', (d: Buffer) => {
        const id = envelopeId(d);
        const t = sentAt[k]!.get(id);
        if (t === undefined) return;
        sentAt[k]!.delete(id);
        latencies.push(performance.now() - t);
      });
      c.ws.on('close', () => errors++);
    });
    const steps: SignallingStep[] = [];
    let rate = o.startRps;
    for (let s = 0; s < o.maxSteps; s++) {
      latencies = [];
      const cpu0 = schedCpuMs(server.child.pid!) ?? 0;
      const gen0 = process.cpuUsage();
      const t0 = performance.now();
      const total = Math.round(rate * o.stepSeconds);
      let sent = 0;
      let rr = 0;
      await new Promise<void>((resolve) => {
        const tick = (): void => {
          const now = performance.now();
          const due = Math.min(total, Math.floor(((now - t0) / 1000) * rate));
          while (sent < due) {
            // Open loop: each request counts from its scheduled time, not from when the tick ran.
            const scheduled = t0 + (sent / rate) * 1000;
            const k = rr++ % conns.length;
            const c = conns[k]!;
            const id = c.nextId++;
            sentAt[k]!.set(id, scheduled);
            c.ws.send(encodeEnvelope({ id, request: { getParticipants: {} } }));
            sent++;
          }
          // A 1 ms timer, not a busy loop: the generator shares the machine with the server.
          if (sent >= total) resolve();
          else setTimeout(tick, 1);
        };
        tick();
      });
      // Drain: until every request is answered, at most 2 s (the rest counts as unanswered).
      const drainEnd = performance.now() + 2000;
      while (latencies.length < total && performance.now() < drainEnd) await new Promise((r) => setTimeout(r, 5));
      const wall = (performance.now() - t0) / 1000;
      const cpu = ((schedCpuMs(server.child.pid!) ?? 0) - cpu0) / 10 / wall;
      const gen = process.cpuUsage(gen0);
      const sorted = Float64Array.from(latencies).sort();
      const unanswered = total - latencies.length;
      const achieved = latencies.length / o.stepSeconds;
      const step: SignallingStep = {
        targetRps: rate,
        achievedRps: achieved,
        p50Ms: quantile(sorted, 0.5),
        // A request never answered counts as infinitely late.
        p99Ms: unanswered > total * 0.01 ? Infinity : quantile(sorted, Math.min(1, 0.99 * (total / Math.max(1, latencies.length)))),
        serverCpuPercent: cpu,
        rpsPerServerCore: cpu > 0 ? latencies.length / wall / (cpu / 100) : NaN,
        generatorCpuPercent: ((gen.user + gen.system) / 1000 / (wall * 1000)) * 100,
        answered: latencies.length,
        errors: errors + unanswered,
      };
      for (const m of sentAt) m.clear();
      steps.push(step);
      o.log(`signalling roster ${o.roster}: ${rate.toFixed(0)} req/s -> ${achieved.toFixed(0)} answered/s, p50 ${step.p50Ms.toFixed(2)} ms p99 ${step.p99Ms.toFixed(2)} ms, server CPU ${cpu.toFixed(0)}% (${step.rpsPerServerCore.toFixed(0)} req/s per core), generator CPU ${step.generatorCpuPercent.toFixed(0)}%`);
      if (!(step.p99Ms <= bound) || achieved < rate * 0.9) break;
      rate *= o.factor;
    }
    const ok = steps.filter((x) => x.p99Ms <= bound && x.achievedRps >= x.targetRps * 0.9);
    const best = ok.reduce<SignallingStep | undefined>((a, b) => (!a || b.achievedRps > a.achievedRps ? b : a), undefined);
    return { roster: o.roster, meetings: o.meetings, connections: conns.length, responseBytes, steps, ...(best ? { best } : {}), p99BoundMs: bound };
  } finally {
    for (const c of conns) c.ws.terminate();
    server.child.stdin!.end();
    await new Promise((r) => {
      if (server.child.exitCode !== null) r(undefined);
      else server.child.once('exit', r);
    });
  }
}
