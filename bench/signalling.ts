// Signalling throughput (issue 14): an open-loop load generator against the real gateway in its
// own process (bench/signalling-server.ts: one media worker, meetings of `roster` participants,
// every seat one WebSocket connection that joined).
//
// Requests: `ping` (the cheapest request there is: decode, dispatch, an `ok` answer) or
// `get_participants` (answered with the whole roster). Each step sends at a fixed rate for a
// while; every millisecond the requests that are due go out round-robin over the connections,
// up to `pipeline` of them in one write to one connection (several requests in flight per
// connection, as the clients behind a shared proxy arrive), so the server may answer them in one
// write too. Each request is timed from its scheduled send time to its response (open loop: a
// late generator or server counts against the latency, never hides it), and every response is
// checked byte for byte against the answer the connection got at set-up (the right answer, in
// order, for the right id). The server process's CPU comes from schedstat (all its threads), the
// generator's own CPU from process.cpuUsage(), so that a generator-bound step is visible as such.
//
// Two uses: rising rates until p99 > the bound three times in a row (the figure: requests per second per server core
// at the highest rate whose p99 stays <= 10 ms), and a same-run comparison of server builds
// (hot-path switches, HotPathTuning) at one rate, rounds interleaved, as ratios of server CPU per
// request with 95% bootstrap intervals.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { HotPathTuning } from '../gateway/Connection.js';
import { encodeEnvelope, pb } from '../gateway/wire.js';
import { schedCpuMs } from './paths.js';
import { splitProfile, type ProfileSplit } from './profile-split.js';
import { quantile, rateRatioInterval, type Interval } from './stats.js';

const SERVER = fileURLToPath(new URL('./signalling-server.js', import.meta.url));

export type SignallingRequest = 'ping' | 'get_participants';

export interface SignallingStep {
  targetRps: number;
  achievedRps: number;
  p50Ms: number;
  p99Ms: number;
  /** Server process CPU in % of one core over the step. */
  serverCpuPercent: number;
  /** Requests answered per second per core of server CPU: achievedRps / (serverCpuPercent / 100). */
  rpsPerServerCore: number;
  /** Server CPU per answered request, in microseconds. */
  serverUsPerRequest: number;
  /** The generator's CPU in % of one core: near 100 means the generator, not the server, was the limit. */
  generatorCpuPercent: number;
  /** Requests per write, on average (pipelining: up to the `pipeline` setting). */
  requestsPerWrite: number;
  answered: number;
  /** Requests unanswered at the end of the step's drain, or whose connection closed. */
  errors: number;
  /** Responses that were not byte for byte the expected answer, or came for another id than the next one due. */
  wrong: number;
}

export interface SignallingResult {
  request: SignallingRequest;
  roster: number;
  meetings: number;
  connections: number;
  pipeline: number;
  /** Bytes of one response (the envelope). */
  responseBytes: number;
  steps: SignallingStep[];
  /** The step with the most requests/s whose p99 was <= the bound (undefined: none was). */
  best?: SignallingStep;
  p99BoundMs: number;
  /** Where the server's CPU went in one more step at the best rate (or the first), profiled. */
  profile?: ProfileSplit & { rps: number; requests: number };
}

interface Conn {
  ws: WebSocket;
  socket: { write(b: Uint8Array): boolean };
  nextId: number;
  /** Ids and scheduled send times of the requests in flight, oldest first. */
  ids: number[];
  times: number[];
  head: number;
  /** The response after its request id, as answered at set-up. */
  tail: Buffer;
}

/** Reads a response's request id (Envelope field 1, a varint that protobufjs writes first) and where it ends. */
function envelopeId(b: Buffer): { id: number; end: number } {
  if (b[0] !== 0x08) return { id: -1, end: 0 };
  let id = 0;
  let shift = 0;
  for (let i = 1; i < 6 && i < b.length; i++) {
    const x = b[i]!;
    id += (x & 0x7f) * 2 ** shift;
    if (x < 0x80) return { id, end: i + 1 };
    shift += 7;
  }
  return { id: -1, end: 0 };
}

// The request bodies (Request, field 2 of the Envelope), by hand: tag of the oneof field, empty message.
const REQUEST_BODY: Record<SignallingRequest, Buffer> = {
  ping: Buffer.from([0xb2, 0x0e, 0x00]), // Request.ping = 230
  get_participants: Buffer.from([0x9a, 0x01, 0x00]), // Request.get_participants = 19
};
const REQUEST_PROPS: Record<SignallingRequest, Record<string, unknown>> = { ping: { ping: {} }, get_participants: { getParticipants: {} } };

/**
 * Writes one masked client frame (binary, FIN) carrying `{ id, request }` at `at`; returns the
 * next offset. The mask key is zero (XOR with it is the identity): RFC 6455 wants it unpredictable
 * against proxies that cache, which a load generator on loopback does not need, and it saves the
 * generator a copy per request.
 */
function writeFrame(buf: Buffer, at: number, id: number, body: Buffer): number {
  let idLen = 1;
  for (let v = id; v >= 0x80; v >>>= 7) idLen++;
  const payload = 1 + idLen + 2 + body.length;
  buf[at++] = 0x82;
  buf[at++] = 0x80 | payload; // < 126: the 7-bit length form
  buf.writeUInt32BE(0, at);
  at += 4;
  buf[at++] = 0x08;
  let v = id;
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at++] = v;
  buf[at++] = 0x12;
  buf[at++] = body.length;
  body.copy(buf, at);
  return at + body.length;
}
const MAX_FRAME = 2 + 4 + 1 + 5 + 2 + 3;

interface Server {
  child: ChildProcess;
  url: string;
  seats: Array<{ meetingId: string; token: string }>;
  /** The server's next stdout line. */
  nextLine(): Promise<string>;
}

async function startServer(meetings: number, roster: number, tuning: Partial<HotPathTuning>): Promise<Server> {
  const child = spawn(process.execPath, [SERVER, String(meetings), String(roster), JSON.stringify(tuning)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: Array<(l: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else lines.push(l);
  });
  let exited: Error | undefined;
  const onExit = new Promise<never>((_, reject) => child.once('exit', (code) => reject((exited = new Error(`signalling server exited with ${code}`)))));
  onExit.catch(() => undefined);
  const nextLine = (): Promise<string> => {
    if (exited) return Promise.reject(exited);
    const l = lines.shift();
    return l !== undefined ? Promise.resolve(l) : Promise.race([new Promise<string>((resolve) => waiting.push(resolve)), onExit]);
  };
  const info = JSON.parse(await nextLine()) as { url: string; seats: Array<{ meetingId: string; token: string }> };
  return { child, url: info.url, seats: info.seats, nextLine };
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Sends one request and waits for its response (set-up only, not measured); returns the raw frame. */
function call(ws: WebSocket, id: number, request: Record<string, unknown>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer): void => {
      const env = pb.Envelope.decode(data);
      if (env.id !== id || !env.response) return;
      ws.off('message', onMessage);
      if (env.response.error) reject(new Error(`${Object.keys(request)[0]}: ${env.response.error.reason}`));
      else resolve(data);
    };
    ws.on('message', onMessage);
    ws.send(encodeEnvelope({ id, request }));
  });
}

/**
 * One server process with its meetings and every seat's connection joined: the target of the
 * steps. `label` names the server build in logs and comparisons.
 */
export class SignallingTarget {
  readonly conns: Conn[] = [];
  responseBytes = 0;
  #rr = 0;
  #latencies: number[] = [];
  #wrong = 0;
  #closed = 0;

  private constructor(
    readonly label: string,
    readonly request: SignallingRequest,
    readonly roster: number,
    readonly meetings: number,
    private readonly server: Server,
  ) {}

  static async start(o: { label: string; request: SignallingRequest; roster: number; meetings: number; tuning?: Partial<HotPathTuning> }): Promise<SignallingTarget> {
    const server = await startServer(o.meetings, o.roster, o.tuning ?? {});
    const t = new SignallingTarget(o.label, o.request, o.roster, o.meetings, server);
    try {
      await t.#connect();
    } catch (error) {
      await t.close();
      throw error;
    }
    return t;
  }

  async #connect(): Promise<void> {
    const body = REQUEST_BODY[this.request];
    // The hand-built frame carries exactly what protobufjs encodes for the request.
    const check = Buffer.alloc(MAX_FRAME);
    const end = writeFrame(check, 0, 300, body);
    if (!check.subarray(6, end).equals(Buffer.from(encodeEnvelope({ id: 300, request: REQUEST_PROPS[this.request] })))) throw new Error('hand-built request frame differs from protobufjs');
    const joined: WebSocket[] = [];
    for (const seat of this.server.seats) {
      const ws = await open(this.server.url);
      joined.push(ws);
      await call(ws, 1, { hello: { protocolVersions: [1], client: 'c4v-bench' } });
      await call(ws, 2, { join: { meetingId: seat.meetingId, displayName: 'Load', joinToken: seat.token, e2eeCapable: false } });
    }
    // Asked once everyone is in (the answer each connection must get from then on).
    for (const ws of joined) {
      const answer = await call(ws, 3, REQUEST_PROPS[this.request]);
      if (this.request === 'get_participants') {
        // The answer is what it should be: every connection sees its whole meeting.
        const n = pb.Envelope.decode(answer).response?.participants?.participants?.length ?? 0;
        if (n !== this.roster) throw new Error(`get_participants answered ${n} participants, expected ${this.roster}`);
      } else if (!pb.Envelope.decode(answer).response?.ok) throw new Error('ping was not answered ok');
      this.responseBytes = answer.length;
      const socket = (ws as unknown as { _socket: Conn['socket'] })._socket;
      const c: Conn = { ws, socket, nextId: 4, ids: [], times: [], head: 0, tail: answer.subarray(envelopeId(answer).end) };
      ws.on('message', (d: Buffer) => this.#onResponse(c, d));
      ws.on('close', () => this.#closed++);
      this.conns.push(c);
    }
  }

  #onResponse(c: Conn, d: Buffer): void {
    const { id, end } = envelopeId(d);
    // Nothing in flight (after a step), or a notification (id 0; none expected here): not an answer.
    if (c.head >= c.ids.length || id === 0) return;
    // Responses come in request order: the next one due, with exactly the set-up answer's bytes.
    if (id !== c.ids[c.head] || d.length - end !== c.tail.length || d.compare(c.tail, 0, c.tail.length, end, d.length) !== 0) this.#wrong++;
    this.#latencies.push(performance.now() - c.times[c.head]!);
    c.head++;
  }

  /** One step at `rate` requests/s for `seconds`, up to `pipeline` requests per write. */
  async step(rate: number, seconds: number, pipeline: number): Promise<SignallingStep & { serverCpuMs: number }> {
    const conns = this.conns;
    const body = REQUEST_BODY[this.request];
    this.#latencies = [];
    this.#wrong = 0;
    const closed0 = this.#closed;
    for (const c of conns) {
      c.ids.length = 0;
      c.times.length = 0;
      c.head = 0;
    }
    const buf = Buffer.allocUnsafe(MAX_FRAME * pipeline);
    const pid = this.server.child.pid!;
    const cpu0 = schedCpuMs(pid) ?? 0;
    const gen0 = process.cpuUsage();
    const t0 = performance.now();
    const total = Math.max(1, Math.round(rate * seconds));
    let sent = 0;
    let writes = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        // Request k is due at t0 + k / rate: all those whose time has come go out now.
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
        while (sent < due) {
          const c = conns[this.#rr++ % conns.length]!;
          const n = Math.min(pipeline, due - sent);
          let at = 0;
          for (let j = 0; j < n; j++) {
            const id = c.nextId;
            c.nextId = c.nextId >= 0x7fffffff ? 4 : c.nextId + 1;
            c.ids.push(id);
            c.times.push(t0 + ((sent + j) / rate) * 1000);
            at = writeFrame(buf, at, id, body);
          }
          // One write per connection per tick, copied (the socket may keep the buffer queued).
          c.socket.write(Buffer.from(buf.subarray(0, at)));
          writes++;
          sent += n;
        }
        // A 1 ms timer, not a busy loop: the generator shares the machine with the server.
        if (sent >= total) resolve();
        else setTimeout(tick, 1);
      };
      tick();
    });
    // Drain: until every request is answered, at most 2 s (the rest counts as unanswered).
    const drainEnd = performance.now() + 2000;
    while (this.#latencies.length < total && performance.now() < drainEnd && this.#closed === closed0) await new Promise((r) => setTimeout(r, 2));
    const wall = (performance.now() - t0) / 1000;
    const serverCpuMs = (schedCpuMs(pid) ?? 0) - cpu0;
    const cpu = serverCpuMs / 10 / wall;
    const gen = process.cpuUsage(gen0);
    const latencies = this.#latencies;
    const sorted = Float64Array.from(latencies).sort();
    const unanswered = total - latencies.length;
    const achieved = latencies.length / seconds;
    return {
      targetRps: rate,
      achievedRps: achieved,
      p50Ms: quantile(sorted, 0.5),
      // A request never answered counts as infinitely late.
      p99Ms: unanswered > total * 0.01 ? Infinity : quantile(sorted, Math.min(1, 0.99 * (total / Math.max(1, latencies.length)))),
      serverCpuPercent: cpu,
      rpsPerServerCore: cpu > 0 ? latencies.length / wall / (cpu / 100) : NaN,
      serverUsPerRequest: latencies.length ? (serverCpuMs * 1000) / latencies.length : NaN,
      generatorCpuPercent: ((gen.user + gen.system) / 1000 / (wall * 1000)) * 100,
      requestsPerWrite: writes ? sent / writes : 0,
      answered: latencies.length,
      errors: unanswered + (this.#closed - closed0),
      wrong: this.#wrong,
      serverCpuMs,
    };
  }

  /**
   * One step like step() with the server's CPU profiler on, split into the hot path's parts
   * (bench/profile-split.ts). The profiler slows the server: this step's figures are not reported.
   */
  async profile(rate: number, seconds: number, pipeline: number): Promise<ProfileSplit> {
    this.server.child.stdin!.write('profile-start\n');
    await this.server.nextLine();
    await this.step(rate, seconds, pipeline);
    this.server.child.stdin!.write('profile-stop\n');
    return splitProfile(JSON.parse(await this.server.nextLine()) as Parameters<typeof splitProfile>[0]);
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.ws.terminate();
    const child = this.server.child;
    child.stdin!.end();
    await new Promise((r) => {
      if (child.exitCode !== null) r(undefined);
      else child.once('exit', r);
    });
  }
}

function logStep(log: (line: string) => void, what: string, s: SignallingStep): void {
  log(
    `signalling ${what}: ${s.targetRps.toFixed(0)} req/s -> ${s.achievedRps.toFixed(0)} answered/s (${s.requestsPerWrite.toFixed(1)}/write), p50 ${s.p50Ms.toFixed(2)} ms p99 ${s.p99Ms.toFixed(2)} ms, server CPU ${s.serverCpuPercent.toFixed(0)}% (${s.rpsPerServerCore.toFixed(0)} req/s per core, ${s.serverUsPerRequest.toFixed(1)} us/req), generator CPU ${s.generatorCpuPercent.toFixed(0)}%${s.wrong ? `, ${s.wrong} WRONG` : ''}`,
  );
}

/** Runs the rising-rate steps for one request kind and roster size; see the file comment. */
export async function signallingThroughput(o: {
  request?: SignallingRequest;
  roster: number;
  meetings: number;
  pipeline?: number;
  tuning?: Partial<HotPathTuning>;
  startRps: number;
  factor: number;
  maxSteps: number;
  stepSeconds: number;
  p99BoundMs?: number;
  /** One more step, profiled (SignallingResult.profile). */
  profile?: boolean;
  log: (line: string) => void;
}): Promise<SignallingResult> {
  const bound = o.p99BoundMs ?? 10;
  const request = o.request ?? 'get_participants';
  const pipeline = o.pipeline ?? 8;
  const target = await SignallingTarget.start({ label: 'current', request, roster: o.roster, meetings: o.meetings, ...(o.tuning ? { tuning: o.tuning } : {}) });
  try {
    const steps: SignallingStep[] = [];
    let rate = o.startRps;
    // A step over the bound may be a scheduling hiccup on a shared machine (one 100 ms stall is
    // over 1% of a 2-second step's requests at a few thousand per second): the search stops at
    // the third failing step in a row, or at once when requests go unanswered or wrong. Every
    // step is reported; the figure is the best step within the bound.
    let failing = 0;
    for (let s = 0; s < o.maxSteps; s++) {
      const { serverCpuMs: _, ...step } = await target.step(rate, o.stepSeconds, pipeline);
      steps.push(step);
      logStep(o.log, `${request} roster ${o.roster}`, step);
      if (step.achievedRps < rate * 0.9 || step.wrong > 0) break;
      failing = step.p99Ms <= bound ? 0 : failing + 1;
      if (failing >= 3) break;
      rate *= o.factor;
    }
    const ok = steps.filter((x) => x.p99Ms <= bound && x.achievedRps >= x.targetRps * 0.9 && x.wrong === 0);
    const best = ok.reduce<SignallingStep | undefined>((a, b) => (!a || b.achievedRps > a.achievedRps ? b : a), undefined);
    const profileRps = best?.targetRps ?? o.startRps;
    const profile = o.profile ? { rps: profileRps, requests: Math.round(profileRps * o.stepSeconds), ...(await target.profile(profileRps, o.stepSeconds, pipeline)) } : undefined;
    return { request, roster: o.roster, meetings: o.meetings, connections: target.conns.length, pipeline, responseBytes: target.responseBytes, steps, ...(best ? { best } : {}), p99BoundMs: bound, ...(profile ? { profile } : {}) };
  } finally {
    await target.close();
  }
}

export interface SignallingVariant {
  label: string;
  tuning: Partial<HotPathTuning>;
}

export interface SignallingComparison {
  request: SignallingRequest;
  roster: number;
  connections: number;
  pipeline: number;
  rps: number;
  rounds: number;
  roundSeconds: number;
  rows: Array<{ label: string; tuning: Partial<HotPathTuning>; serverUsPerRequest: number; p50Ms: number; p99Ms: number; answered: number; errors: number; wrong: number }>;
  /** Server CPU per request of each variant over the first (the baseline), with its 95% interval: < 1 is cheaper. */
  ratios: Array<{ of: string; to: string; cpuPerRequest: Interval }>;
}

/**
 * The same load on several server builds (one process each, all started before the first round),
 * rounds interleaved so that the machine's drift hits every build alike; the first variant is the
 * baseline.
 */
export async function compareSignalling(o: {
  request: SignallingRequest;
  roster: number;
  meetings: number;
  pipeline: number;
  rps: number;
  rounds: number;
  roundSeconds: number;
  variants: SignallingVariant[];
  log: (line: string) => void;
}): Promise<SignallingComparison> {
  const targets: SignallingTarget[] = [];
  try {
    for (const v of o.variants) targets.push(await SignallingTarget.start({ label: v.label, request: o.request, roster: o.roster, meetings: o.meetings, tuning: v.tuning }));
    const perRound = targets.map(() => [] as Array<{ num: number; den: number }>);
    const lat = targets.map(() => ({ p50: [] as number[], p99: [] as number[], answered: 0, errors: 0, wrong: 0 }));
    // One unmeasured warm-up round each (JIT, caches).
    for (const t of targets) await t.step(o.rps, Math.min(0.5, o.roundSeconds), o.pipeline);
    for (let r = 0; r < o.rounds; r++) {
      // Rotate the order each round.
      for (let k = 0; k < targets.length; k++) {
        const i = (k + r) % targets.length;
        const s = await targets[i]!.step(o.rps, o.roundSeconds, o.pipeline);
        perRound[i]!.push({ num: s.serverCpuMs, den: s.answered });
        lat[i]!.p50.push(s.p50Ms);
        lat[i]!.p99.push(s.p99Ms);
        lat[i]!.answered += s.answered;
        lat[i]!.errors += s.errors;
        lat[i]!.wrong += s.wrong;
      }
    }
    const median = (v: number[]): number => quantile(Float64Array.from(v).sort(), 0.5);
    const rows = o.variants.map((v, i) => {
      const cpu = perRound[i]!.reduce((s, x) => s + x.num, 0);
      const n = perRound[i]!.reduce((s, x) => s + x.den, 0);
      return { label: v.label, tuning: v.tuning, serverUsPerRequest: n ? (cpu * 1000) / n : NaN, p50Ms: median(lat[i]!.p50), p99Ms: median(lat[i]!.p99), answered: lat[i]!.answered, errors: lat[i]!.errors, wrong: lat[i]!.wrong };
    });
    const ratios = o.variants.slice(1).map((v, j) => ({ of: v.label, to: o.variants[0]!.label, cpuPerRequest: rateRatioInterval(perRound[j + 1]!, perRound[0]!) }));
    for (const row of rows) o.log(`signalling ${o.request} roster ${o.roster} at ${o.rps}/s, ${row.label}: ${row.serverUsPerRequest.toFixed(1)} us server CPU per request, p99 ${row.p99Ms.toFixed(2)} ms (median of rounds)`);
    return { request: o.request, roster: o.roster, connections: targets[0]?.conns.length ?? 0, pipeline: o.pipeline, rps: o.rps, rounds: o.rounds, roundSeconds: o.roundSeconds, rows, ratios };
  } finally {
    for (const t of targets) await t.close();
  }
}
