// Protocol fuzzer (issue 10): mutated frames of every request type against the real gateway.
//
//   npm run fuzz -- --frames N [--seed S]        (node dist/bench/fuzz.js ...)
//
// The request types come from the protobuf reflection of proto/signalling.proto (the `body`
// oneof of `Request`), so a request type added tomorrow is fuzzed without touching this file. For
// each frame the fuzzer builds a valid request of the next type (round robin) from the reflection,
// filled with the ids of real objects of the session (participants, transports, polls, tokens),
// then mutates it: at the field level (hostile values of the right type, a field of the wrong
// type), at the byte level (bit flips, insertions, deletions, truncation, garbage), or by wrapping
// one request type's body in another's tag; about one frame in eight goes out unmutated. Frames are
// sent one at a time over a joined host connection and a fresh (hello'd, not joined) one, and the
// fuzzer checks three things:
//   1. exactly one response per frame (with the frame's id, or 0 when the frame did not decode
//      that far), or a documented close of the connection;
//   2. no INTERNAL error;
//   3. the server is alive: at the end a new client joins, and nothing crashed the process.
// The server runs in this process (real media worker, real gateway on an ephemeral loopback port),
// with its per-connection rate limits lifted so that the fuzzer measures the decoder and the
// handlers, not the flood protection.
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import WebSocket from 'ws';
import { createGateway, type Gateway } from '../gateway/Gateway.js';
import { JoinTokens } from '../gateway/tokens.js';
import { createLogger, createMediaCore, createMetricsRegistry, type MediaCore } from '../lib/index.js';
import { TEST_MEDIA_CODECS } from '../test/helpers/weriftPeer.js';

const PROTO = fileURLToPath(new URL('../../proto/signalling.proto', import.meta.url));
const root = protobuf.loadSync(PROTO);
root.resolveAll();
const EnvelopeT = root.lookupType('c4v.signalling.v1.Envelope');
const RequestT = root.lookupType('c4v.signalling.v1.Request');
const ResponseT = root.lookupType('c4v.signalling.v1.Response');

/** Every request type of the protocol, from the reflection (`Request.body`), in field order. */
export const REQUEST_TYPES: readonly string[] = RequestT.oneofs.body!.fieldsArray.map((f) => f.name);

export interface FuzzOptions {
  frames: number;
  seed?: number;
  /** Stop early after this long (ms); default unlimited. */
  timeMs?: number;
  /** Called every 1000 frames. */
  progress?: (done: number) => void;
}

export interface FuzzReport {
  frames: number;
  seed: number;
  ms: number;
  /** Frames per request type (every type must be present). */
  perType: Record<string, number>;
  /** Mutated frames per request type. */
  mutatedPerType: Record<string, number>;
  /** Frames answered with a response (ok or error), and with a close. */
  responses: number;
  okResponses: number;
  errorCodes: Record<string, number>;
  closes: Record<string, number>;
  /** Requests answered with INTERNAL (must be 0). */
  internal: number;
  /** Anything that broke a rule: missing or extra responses, a wrong id, a crash. */
  violations: string[];
  /** Log lines at error level or above from the server. */
  errorLogs: number;
  /** A new client could join at the end. */
  aliveAtEnd: boolean;
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e3779b9;
  }
  /** xorshift32: fast, deterministic per seed (reruns of a failing seed reproduce it). */
  next(): number {
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s / 0x100000000;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// ---------------------------------------------------------------------------------------------
// Valid requests from the reflection

/** Real objects of the session, used to fill id fields so that requests reach the handlers. */
interface Ctx {
  meetingId: string;
  hostToken: string;
  participantIds: string[];
  transportIds: string[];
  pollIds: string[];
  resumeToken: string;
}

function hinted(name: string, ctx: Ctx, rng: Rng): string | undefined {
  const n = name.toLowerCase();
  if (n === 'meetingid') return ctx.meetingId;
  if (n === 'jointoken') return rng.chance(0.7) ? ctx.hostToken : '';
  if (n === 'resumetoken') return ctx.resumeToken;
  if (n.endsWith('participantid')) return rng.pick([...ctx.participantIds, 'no-such-participant']);
  if (n === 'transportid') return rng.pick([...ctx.transportIds, 'no-such-transport']);
  if (n === 'pollid') return rng.pick([...ctx.pollIds, 'no-such-poll']);
  if (n.endsWith('id')) return crypto.randomUUID();
  if (n === 'displayname') return `Fuzz ${rng.int(1000)}`;
  if (n === 'password') return '';
  return undefined;
}

function scalar(f: protobuf.Field, ctx: Ctx, rng: Rng): unknown {
  if (f.resolvedType instanceof protobuf.Enum) return rng.pick(Object.values(f.resolvedType.values));
  switch (f.type) {
    case 'string':
      return hinted(f.name, ctx, rng) ?? rng.pick(['a', 'fuzz', 'x'.repeat(rng.int(40)), 'ü']);
    case 'bool':
      return rng.chance(0.5);
    case 'bytes':
      return rng.bytes(rng.int(48));
    case 'double':
    case 'float':
      return rng.next() * 100;
    default:
      // Integer types: small values are the plausible ones (versions, layers, options, ports).
      return f.name === 'protocolVersions' ? 1 : rng.int(4);
  }
}

function value(f: protobuf.Field, ctx: Ctx, rng: Rng, depth: number): unknown {
  if (f.resolvedType instanceof protobuf.Type) return message(f.resolvedType, ctx, rng, depth + 1);
  return scalar(f, ctx, rng);
}

/** A plausible, valid instance of `type` (one member per oneof, a few repeated items). */
export function message(type: protobuf.Type, ctx: Ctx, rng: Rng, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const chosen = new Map<string, protobuf.Field>();
  for (const o of type.oneofsArray) chosen.set(o.name, rng.pick(o.fieldsArray));
  for (const f of type.fieldsArray) {
    if (f.partOf && chosen.get(f.partOf.name) !== f) continue;
    if (depth > 4 && f.resolvedType instanceof protobuf.Type) continue;
    if (f instanceof protobuf.MapField || f.map) {
      const m: Record<string, unknown> = {};
      for (let i = rng.int(3); i > 0; i--) m[`k${rng.int(10)}`] = value(f, ctx, rng, depth);
      out[f.name] = m;
    } else if (f.repeated) {
      out[f.name] = Array.from({ length: f.name === 'protocolVersions' ? 1 : rng.int(3) }, () => value(f, ctx, rng, depth));
    } else {
      out[f.name] = value(f, ctx, rng, depth);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Mutations

const HOSTILE_STRINGS = ['', ' ', '\u0000', '\u202e', '../../etc/passwd', '%s%n', 'null', '-1', '1e309', '💥'.repeat(200), 'A'.repeat(70_000)];
const HOSTILE_NUMBERS = [0, -1, 1, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 53, -(2 ** 31), 255, 65535];

/** Replaces one field (at some depth) with a hostile value of its type, or of another type. */
function mutateFields(obj: Record<string, unknown>, type: protobuf.Type, rng: Rng): void {
  const fields = type.fieldsArray.filter((f) => f.name in obj);
  if (fields.length === 0) return;
  const f = rng.pick(fields);
  if (f.resolvedType instanceof protobuf.Type && !f.repeated && !f.map && rng.chance(0.5) && obj[f.name]) {
    mutateFields(obj[f.name] as Record<string, unknown>, f.resolvedType, rng);
    return;
  }
  const r = rng.int(6);
  if (r === 0) delete obj[f.name];
  else if (f.repeated && r === 1) obj[f.name] = Array.from({ length: 200 + rng.int(300) }, () => (obj[f.name] as unknown[])[0] ?? 0);
  else if (f.type === 'string') obj[f.name] = rng.pick(HOSTILE_STRINGS);
  else if (f.resolvedType instanceof protobuf.Enum) obj[f.name] = rng.pick([99, -5, 1 << 20]);
  else if (f.resolvedType instanceof protobuf.Type) obj[f.name] = {};
  else if (f.type === 'bool') obj[f.name] = !obj[f.name];
  else if (f.type === 'bytes') obj[f.name] = rng.bytes(rng.pick([0, 1, 4096]));
  else if (f.type === 'double' || f.type === 'float') obj[f.name] = rng.pick([NaN, Infinity, -Infinity, -0, 1e308]);
  else obj[f.name] = f.repeated ? [rng.pick(HOSTILE_NUMBERS)] : rng.pick(HOSTILE_NUMBERS);
}

function encode(id: number, type: string, body: Record<string, unknown>): Uint8Array {
  const env = EnvelopeT.fromObject({ id, request: { [type]: body } });
  return EnvelopeT.encode(env).finish();
}

/** Byte-level damage: flips, insertions, deletions, truncation, garbage, duplicated slices. */
function mutateBytes(b: Uint8Array, rng: Rng): Uint8Array {
  let out = Buffer.from(b);
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const at = out.length === 0 ? 0 : rng.int(out.length);
    switch (rng.int(6)) {
      case 0:
        if (out.length) out[at] = out[at]! ^ (1 << rng.int(8));
        break;
      case 1:
        out = Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(8)), out.subarray(at)]);
        break;
      case 2:
        out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + rng.int(8)))]);
        break;
      case 3:
        out = out.subarray(0, at);
        break;
      case 4:
        out = Buffer.concat([out, rng.bytes(1 + rng.int(16))]);
        break;
      default:
        out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + 16), out.subarray(at)]);
    }
  }
  return out;
}

/** Another request type's body under this type's field number (type confusion). */
function confused(id: number, type: string, other: Record<string, unknown>, otherType: string): Uint8Array {
  const inner = (RequestT.fields[otherType]!.resolvedType as protobuf.Type).encode(
    (RequestT.fields[otherType]!.resolvedType as protobuf.Type).fromObject(other),
  ).finish();
  const request = protobuf.Writer.create().uint32((RequestT.fields[type]!.id << 3) | 2).bytes(inner).finish();
  return protobuf.Writer.create().uint32((1 << 3) | 0).uint32(id).uint32((2 << 3) | 2).bytes(request).finish();
}

/** The envelope id the server can see in `bytes`, if it decodes as far as the id. */
function idOf(bytes: Uint8Array): number | undefined {
  try {
    return (EnvelopeT.decode(bytes) as unknown as { id?: number }).id ?? 0;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Connections

type Outcome = { kind: 'response'; id: number; response: Record<string, unknown> } | { kind: 'closed'; code: number; reason: string } | { kind: 'timeout' };

class FuzzConn {
  readonly ws: WebSocket;
  readonly #responses: Array<{ id: number; response: Record<string, unknown> }> = [];
  #waiter: (() => void) | undefined;
  closed: { code: number; reason: string } | undefined;

  static async open(url: string): Promise<FuzzConn> {
    const c = new FuzzConn(new WebSocket(url, { perMessageDeflate: false }));
    await Promise.race([
      once(c.ws, 'open'),
      once(c.ws, 'error').then(([e]) => {
        throw e;
      }),
    ]);
    return c;
  }

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      const env = EnvelopeT.toObject(EnvelopeT.decode(data), { longs: Number, enums: String, oneofs: true }) as {
        id?: number;
        body?: string;
        response?: Record<string, unknown>;
      };
      if (env.body === 'response') this.#responses.push({ id: env.id ?? 0, response: env.response! });
      this.#waiter?.();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#waiter?.();
    });
  }

  /** Responses that arrived without a frame waiting for them (must stay 0). */
  get unclaimed(): number {
    return this.#responses.length;
  }

  /** Sends one frame and waits for its one response, or the close. */
  async exchange(bytes: Uint8Array, timeoutMs: number): Promise<Outcome> {
    this.ws.send(bytes, { binary: true });
    const got = await new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        resolve({ kind: 'timeout' });
      }, timeoutMs);
      const check = (): void => {
        const r = this.#responses.shift();
        if (r) resolve({ kind: 'response', ...r });
        else if (this.closed) resolve({ kind: 'closed', ...this.closed });
        else return;
        clearTimeout(timer);
        this.#waiter = undefined;
      };
      this.#waiter = check;
      check();
    });
    return got;
  }

  /** A well-formed request, for setting the session up; resolves with the response body. */
  async call(id: number, type: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const out = await this.exchange(encode(id, type, body), 10_000);
    if (out.kind !== 'response') throw new Error(`fuzz set-up: ${type} got ${out.kind}`);
    if (out.response.error) throw new Error(`fuzz set-up: ${type} failed: ${JSON.stringify(out.response.error)}`);
    return out.response;
  }

  close(): void {
    this.ws.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// The run

interface Server {
  core: MediaCore;
  gateway: Gateway;
  tokens: JoinTokens;
  errorLogs: () => number;
  close(): Promise<void>;
}

async function startServer(): Promise<Server> {
  let errorLogs = 0;
  // Counts error-level lines without keeping them (a long run must not grow memory).
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (/"level":(5|6)\d/.test(line)) errorLogs++;
      cb();
    },
  });
  const logger = createLogger({ level: 'error', destination });
  const core = await createMediaCore({
    logger,
    registry: createMetricsRegistry({ processMetrics: false }),
    workers: { workers: 1, region: 'de-fra' },
    media: { mediaCodecs: TEST_MEDIA_CODECS },
  });
  core.createAccount({ id: 'fuzz', defaults: { waitingRoom: true, hostRequiredToStart: false, allowGuests: true } });
  const tokens = new JoinTokens(JoinTokens.randomSecret());
  const big = 1_000_000_000;
  const gateway = await createGateway({
    core,
    logger,
    registry: core.registry,
    tokens,
    port: 0,
    limits: {
      messagesPerSecond: big,
      messageBurst: big,
      addressMessagesPerSecond: big,
      addressMessageBurst: big,
      connectionAttemptsPerSecond: big,
      connectionAttemptBurst: big,
      connectionsPerAddress: 10_000,
      protocolErrorsBeforeClose: 50,
      reconnectGraceMs: 1000,
    },
  });
  return {
    core,
    gateway,
    tokens,
    errorLogs: () => errorLogs,
    async close() {
      await gateway.close();
      core.close();
    },
  };
}

/** Runs the fuzzer against a fresh in-process server and reports what it saw. */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const seed = options.seed ?? (Date.now() & 0xffffffff);
  const rng = new Rng(seed);
  const report: FuzzReport = {
    frames: 0,
    seed,
    ms: 0,
    perType: Object.fromEntries(REQUEST_TYPES.map((t) => [t, 0])),
    mutatedPerType: Object.fromEntries(REQUEST_TYPES.map((t) => [t, 0])),
    responses: 0,
    okResponses: 0,
    errorCodes: {},
    closes: {},
    internal: 0,
    violations: [],
    errorLogs: 0,
    aliveAtEnd: false,
  };
  const crash = (error: unknown): void => {
    report.violations.push(`uncaught in the server process: ${String(error)}`);
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);
  const server = await startServer();
  const url = server.gateway.url;
  let meetingNo = 0;
  let nextId = 1;
  const id = (): number => (nextId = nextId >= 0xfffffff0 ? 1 : nextId + 1);
  const ctx: Ctx = { meetingId: '', hostToken: '', participantIds: [], transportIds: [], pollIds: [], resumeToken: '' };
  let host: FuzzConn | undefined;
  let fresh: FuzzConn | undefined;

  const newMeeting = async (): Promise<void> => {
    const m = await server.core.createMeeting({ id: `fuzz-${++meetingNo}`, accountId: 'fuzz', title: 'Fuzz', hostIdentity: 'host@fuzz' });
    ctx.meetingId = m.id;
    ctx.hostToken = await server.tokens.mint({ identity: 'host@fuzz', role: 'host', meetingId: m.id });
  };
  const openHost = async (): Promise<void> => {
    host?.close();
    const meeting = server.core.getMeeting(ctx.meetingId);
    // A fuzzed lock, ban or host transfer can leave the set-up's own host unable to join again
    // (MEETING_LOCKED, BANNED): that is the model working, so the set-up moves to a new meeting.
    if (!meeting || meeting.ended || meeting.locked || meeting.hostIdentity !== 'host@fuzz' || meeting.banned.includes('host@fuzz')) {
      await newMeeting();
    }
    host = await FuzzConn.open(url);
    await host.call(id(), 'hello', { protocolVersions: [1], client: 'c4v-fuzz' });
    const join = (await host.call(id(), 'join', { meetingId: ctx.meetingId, displayName: 'Fuzz Host', joinToken: ctx.hostToken, e2eeCapable: true }))
      .join as { participantId: string; resumeToken: string };
    ctx.resumeToken = join.resumeToken;
    const send = (await host.call(id(), 'createTransport', { direction: 'SEND' })).transport as { id: string } | undefined;
    const recv = (await host.call(id(), 'createTransport', { direction: 'RECV' })).transport as { id: string } | undefined;
    ctx.transportIds = [send?.id, recv?.id].filter((x): x is string => !!x);
    const poll = (await host.call(id(), 'createPoll', { question: 'Fuzz?', options: ['ja', 'nein'] })).pollCreated as { pollId?: string } | undefined;
    ctx.pollIds = poll?.pollId ? [poll.pollId] : [];
    const roster = server.core.getMeeting(ctx.meetingId)!;
    ctx.participantIds = [join.participantId, ...roster.waiting.map((p) => p.id)];
  };
  const openFresh = async (): Promise<void> => {
    fresh?.close();
    fresh = await FuzzConn.open(url);
    await fresh.call(id(), 'hello', { protocolVersions: [1], client: 'c4v-fuzz' });
  };

  const started = Date.now();
  try {
    await openHost();
    await openFresh();
    for (let i = 0; i < options.frames; i++) {
      if (options.timeMs !== undefined && Date.now() - started > options.timeMs) break;
      if (i > 0 && i % 1000 === 0) options.progress?.(i);
      // A fresh set-up now and then: leave, end_meeting or remove may have changed the host's state.
      if (i % 97 === 96 || host!.closed) await openHost();
      if (i % 31 === 30 || fresh!.closed) await openFresh();
      const conn = rng.chance(0.75) ? host! : fresh!;
      if (conn.unclaimed > 0) report.violations.push(`frame ${i}: ${conn.unclaimed} response(s) nobody asked for (a previous frame was answered twice)`);
      const type = REQUEST_TYPES[i % REQUEST_TYPES.length]!;
      const bodyType = RequestT.fields[type]!.resolvedType as protobuf.Type;
      const body = message(bodyType, ctx, rng);
      const frameId = id();
      let bytes: Uint8Array;
      const m = rng.int(8);
      if (m === 0) bytes = encode(frameId, type, body);
      else if (m <= 3) {
        mutateFields(body, bodyType, rng);
        try {
          bytes = encode(frameId, type, body);
        } catch {
          // A value protobufjs itself cannot encode: damage the bytes instead.
          bytes = mutateBytes(encode(frameId, type, message(bodyType, ctx, rng)), rng);
        }
      } else if (m <= 6) bytes = mutateBytes(encode(frameId, type, body), rng);
      else {
        const otherType = rng.pick(REQUEST_TYPES);
        bytes = confused(frameId, type, message(RequestT.fields[otherType]!.resolvedType as protobuf.Type, ctx, rng), otherType);
      }
      report.frames++;
      report.perType[type]!++;
      if (m !== 0) report.mutatedPerType[type]!++;
      const out = await conn.exchange(bytes, 10_000);
      if (out.kind === 'timeout') {
        report.violations.push(`frame ${i} (${type}, seed ${seed}): no response within 10 s`);
        if (conn === host) await openHost();
        else await openFresh();
        continue;
      }
      if (out.kind === 'closed') {
        const key = `${out.reason || out.code} after ${type}`;
        report.closes[key] = (report.closes[key] ?? 0) + 1;
        continue;
      }
      report.responses++;
      const seen = idOf(bytes);
      if (out.id !== 0 && seen !== undefined && out.id !== seen) {
        report.violations.push(`frame ${i} (${type}): answered with id ${out.id}, the frame had id ${seen}`);
      }
      const error = out.response.error as { codeName?: string; code?: string } | undefined;
      if (!error) report.okResponses++;
      else {
        const code = error.codeName || String(error.code);
        report.errorCodes[code] = (report.errorCodes[code] ?? 0) + 1;
        if (code === 'INTERNAL') {
          report.internal++;
          report.violations.push(`frame ${i} (${type}, seed ${seed}): INTERNAL`);
        }
      }
    }
    // Alive: a new client can still join a (new, if it was ended) meeting.
    await openHost();
    report.aliveAtEnd = !host!.closed && server.core.pool.workers.length > 0;
  } catch (error) {
    report.violations.push(`the run broke off: ${String(error)}`);
  } finally {
    report.ms = Date.now() - started;
    host?.close();
    fresh?.close();
    report.errorLogs = server.errorLogs();
    await server.close();
    process.off('uncaughtException', crash);
    process.off('unhandledRejection', crash);
  }
  return report;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
  };
  const frames = Number(arg('--frames') ?? 10_000);
  if (!Number.isInteger(frames) || frames < 1) throw new TypeError('--frames must be a positive integer');
  const seedArg = arg('--seed');
  const report = await runFuzz({
    frames,
    ...(seedArg ? { seed: Number(seedArg) } : {}),
    progress: (n) => {
      if (n % 10_000 === 0) process.stderr.write(`fuzz: ${n} frames\n`);
    },
  });
  const rate = report.frames / (report.ms / 1000);
  console.table({
    frames: report.frames,
    'request types': REQUEST_TYPES.length,
    seconds: +(report.ms / 1000).toFixed(1),
    'frames/s': Math.round(rate),
    responses: report.responses,
    ok: report.okResponses,
    closes: Object.values(report.closes).reduce((a, b) => a + b, 0),
    INTERNAL: report.internal,
    'error logs': report.errorLogs,
    violations: report.violations.length,
    'alive at end': report.aliveAtEnd,
    seed: report.seed,
  });
  console.log(JSON.stringify({ errorCodes: report.errorCodes, closes: report.closes, violations: report.violations.slice(0, 20) }, null, 2));
  process.exitCode = report.violations.length === 0 && report.aliveAtEnd ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (error: unknown) => {
      console.error(error);
      process.exit(2);
    },
  );
}
