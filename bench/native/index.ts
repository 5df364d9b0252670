// The one module that loads the benchmark's native packet engine (bench/native/src, built by
// scripts/setup.d/20-native.sh into bench/native/build/) through node-gyp-build. It is not part of
// the library's entry: only bench/ and the tests that measure with it import it, so the package
// never loads (or asks a consumer to compile) an addon it did not ask for. Everything else imports this module and
// never the addon: the same API runs on the addon (pthreads, sendmmsg/recvmmsg, libsrtp2) or on a
// pure TypeScript fallback (node:dgram, node:crypto) when the addon is missing or when
// C4V_NO_NATIVE=1 forces the fallback. Bad input throws coded errors on both paths
// (NATIVE_BAD_ADDRESS, NATIVE_PACKET_TOO_LARGE, NATIVE_BAD_SRTP_KEY).
import { createSocket, type Socket } from 'node:dgram';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { envFlag } from '../../lib/env.js';
import { C4vError, type ErrorCode } from '../../lib/errors.js';
import { assertSrtpKey, parseRtp, TsSrtpSession, type SrtpKey } from './srtp.js';

export { SRTP_KEY_LENGTHS, type SrtpKey, type SrtpSuite } from './srtp.js';

const require = createRequire(import.meta.url);
/**
 * Where binding.gyp and build/ live: the source folder bench/native/ (this file runs as
 * dist/bench/native/index.js, three levels below the package root).
 */
const BINDING_ROOT = fileURLToPath(new URL('../../../bench/native/', import.meta.url));

/** The largest RTP packet (before SRTP) the engine builds or sends. */
export const MAX_PACKET_SIZE = 1500;
/** Bytes of the benchmark payload header: magic "C4VB", stream id, sequence, scheduled time (ns). */
export const PAYLOAD_HEADER_SIZE = 20;
const MAGIC = 0x43345642;
const SRTP_TRAILER = 16;

/** How an RTP packet of the generator looks. */
export interface RtpSpec {
  payloadType: number;
  ssrc: number;
  clockRate: number;
  /** Stream id written into the payload header. */
  streamId?: number;
  /**
   * Total RTP packet size in bytes (header + payload) before SRTP; at most MAX_PACKET_SIZE.
   * Sizes below 12 + prefix + PAYLOAD_HEADER_SIZE are rounded up to fit the header.
   */
  size: number;
  /** Codec payload prefix before the benchmark header (e.g. a VP8 descriptor); at most 31 bytes. */
  prefix?: Buffer;
  /** Prefix of the first packet of a key frame; default `prefix`. */
  keyPrefix?: Buffer;
}

export interface SenderOptions {
  socket: UdpSocket;
  host: string;
  port: number;
  rtp: RtpSpec;
  /** Frames (bursts of packetsPerFrame packets) per second. */
  frameRate: number;
  packetsPerFrame: number;
  /** Frames to send. */
  frames: number;
  /** Index of the first frame: a run that continues a warm-up keeps RTP and header sequences going. */
  firstFrame?: number;
  /** Frames between key-frame prefixes; 0 = only the first frame. */
  keyInterval?: number;
  /** CLOCK_MONOTONIC time (ns) of the first frame; default 1 ms from now. */
  startNs?: number;
  srtp?: SrtpKey;
}

export interface SenderStatus {
  sent: number;
  sendErrors: number;
  /** How far behind its schedule the sender was at worst (ns): shows a stalled generator. */
  maxLateNs: number;
  lateSumNs: number;
  /** Time the sender spent in SRTP protect (native; 0 without SRTP or on the fallback). */
  protectNs: number;
  startNs: number;
  /** CPU time of the sender thread (native) or 0. */
  cpuNs: number;
  done: boolean;
}

export interface ReceiverCopy {
  ssrc: number;
  srtp?: SrtpKey;
}

export interface ReceiverOptions {
  socket: UdpSocket;
  /** Records kept at most (the rest are counted as droppedRecords). */
  maxRecords: number;
  /** The copies expected here, told apart by SSRC; without it every RTP packet is copy 0. */
  copies?: ReceiverCopy[];
  /**
   * Time each copy by the kernel's receive timestamp (SO_TIMESTAMPNS: when it entered this
   * socket's queue, on loopback inside the forwarder's send) instead of when the receiver thread
   * read it, so that the receiver's own scheduling is not in the figure. Native engine only; the
   * TypeScript fallback times in user space (`kernelStamped` stays 0).
   */
  kernelTimestamps?: boolean;
  /**
   * With kernel timestamps: after the first datagram of a burst, sleep this long before reading,
   * so that the burst is read in full batches with few wake-ups (the receiver then takes less
   * CPU from the forwarders it measures). Default 0.
   */
  batchSleepUs?: number;
}

export interface ReceiverStatus {
  received: number;
  droppedRecords: number;
  unknown: number;
  rtcp: number;
  srtpFailures: number;
  bytes: number;
  cpuNs: number;
  /** Records timed by the kernel's receive timestamp (ReceiverOptions.kernelTimestamps). */
  kernelStamped: number;
}

export interface ReceiverResult extends ReceiverStatus {
  /** Per received packet: u32 copy index, u32 sequence, i64 one-way delay (ns), little-endian. */
  records: ArrayBuffer;
}

export interface ForwarderOptions {
  input: UdpSocket;
  output: UdpSocket;
  /**
   * Each received packet is copied to every destination, with `ssrc` written into it when set,
   * and protected with the destination's `srtp` key when set (after the SSRC is written).
   */
  destinations: Array<{ host: string; port: number; ssrc?: number; srtp?: SrtpKey }>;
  /** The key incoming packets are unprotected with (once per packet); without it, plain RTP in. */
  srtp?: SrtpKey;
}

export interface ForwarderResult {
  received: number;
  sent: number;
  sendErrors: number;
  /** Packets that failed to authenticate (dropped) or copies that failed to protect. */
  srtpFailures: number;
  cpuNs: number;
}

/** A bound UDP socket of the engine. */
export interface UdpSocket {
  readonly port: number;
  /** Datagrams queued now (at most `max`), without waiting. */
  receive(max?: number): Buffer[];
  /** Sends packets to host:port in batches; returns how many left. */
  send(host: string, port: number, packets: Buffer[]): number;
  close(): void;
}

export interface SrtpSession {
  protect(packet: Buffer): Buffer;
  unprotect(packet: Buffer): Buffer;
}

export interface Sender {
  status(): SenderStatus;
  /** Resolves when every frame left (or stop() was called). */
  finished(): Promise<SenderStatus>;
  stop(): SenderStatus;
}

export interface Receiver {
  status(): ReceiverStatus;
  stop(): ReceiverResult;
}

export interface Forwarder {
  stop(): ForwarderResult;
}

/** The packet engine: the same API on both implementations. */
export interface PacketEngine {
  readonly kind: 'native' | 'typescript';
  /** CLOCK_MONOTONIC in ns (the clock of every timestamp of the engine). */
  nowNs(): number;
  /** Whether the generator's threads got SCHED_FIFO (native, once a sender or receiver ran). */
  realtime(): boolean | undefined;
  openSocket(host: string, port?: number): Promise<UdpSocket>;
  buildRtp(spec: RtpSpec, fields: { rtpSeq: number; rtpTimestamp: number; marker?: boolean; seq: number; sendTimeNs?: number; keyFrame?: boolean }): Buffer;
  createSrtpSession(key: SrtpKey, direction: 'outbound' | 'inbound'): SrtpSession;
  startSender(options: SenderOptions): Sender;
  startReceiver(options: ReceiverOptions): Receiver;
  startForwarder(options: ForwarderOptions): Forwarder;
}

// ------------------------------------------------------------------------------------------------
// validation shared by both paths
// ------------------------------------------------------------------------------------------------

function assertAddress(host: unknown, port: unknown): void {
  if (typeof host !== 'string' || isIP(host) === 0) {
    throw new C4vError('NATIVE_BAD_ADDRESS', `not a numeric IP address: ${JSON.stringify(host)}`);
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new C4vError('NATIVE_BAD_ADDRESS', `not a UDP port: ${String(port)}`);
  }
}

function assertPacketSize(size: number, limit = MAX_PACKET_SIZE): void {
  if (size > limit) throw new C4vError('NATIVE_PACKET_TOO_LARGE', `a packet of ${size} bytes is over the ${limit}-byte limit`);
}

/** The forwarder's SRTP is the AES-CM suites (libcrypto in the addon, TsSrtpSession here). */
function assertForwarderKeys(o: ForwarderOptions): void {
  for (const k of [o.srtp, ...o.destinations.map((d) => d.srtp)]) {
    if (!k) continue;
    assertSrtpKey(k);
    if (k.suite !== 'AES_CM_128_HMAC_SHA1_80' && k.suite !== 'AES_CM_128_HMAC_SHA1_32') {
      throw new C4vError('NATIVE_BAD_SRTP_KEY', `the forwarder does SRTP with the AES_CM_128_HMAC_SHA1_80 / _32 suites only, not ${k.suite}`);
    }
  }
}

function assertRtpSpec(spec: RtpSpec): void {
  assertPacketSize(spec.size);
  for (const p of [spec.prefix, spec.keyPrefix]) {
    if (p && (!Buffer.isBuffer(p) || p.length > 31)) throw new TypeError('an RTP prefix must be a Buffer of at most 31 bytes');
  }
}

/** Native errors carry err.code = 'NATIVE_*' etc.; give them the library's error class. */
function rethrow(error: unknown): never {
  const code = (error as { code?: string } | undefined)?.code;
  if (code && !(error instanceof C4vError) && /^[A-Z_]+$/.test(code)) {
    throw new C4vError(code as ErrorCode, (error as Error).message, { cause: error });
  }
  throw error;
}

// ------------------------------------------------------------------------------------------------
// native path
// ------------------------------------------------------------------------------------------------

interface Addon {
  nowNs(): number;
  realtime(): number;
  udpOpen(host: string, port: number): { fd: number; port: number };
  udpClose(fd: number): void;
  udpSend(fd: number, host: string, port: number, packets: Buffer[]): number;
  udpRecv(fd: number, max: number): Buffer[];
  buildRtp(spec: RtpSpec, fields: object): Buffer;
  srtpSession(key: SrtpKey, outbound: boolean): object;
  srtpProtect(s: object, p: Buffer): Buffer;
  srtpUnprotect(s: object, p: Buffer): Buffer;
  senderStart(o: object): object;
  senderStatus(h: object): SenderStatus;
  senderStop(h: object): SenderStatus;
  receiverStart(o: object): object;
  receiverStatus(h: object): ReceiverStatus;
  receiverStop(h: object): ReceiverResult;
  forwarderStart(o: object): object;
  forwarderStop(h: object): ForwarderResult;
}

class NativeSocket implements UdpSocket {
  #closed = false;
  constructor(
    readonly addon: Addon,
    readonly fd: number,
    readonly port: number,
  ) {}
  receive(max = 64): Buffer[] {
    return this.addon.udpRecv(this.fd, max);
  }
  send(host: string, port: number, packets: Buffer[]): number {
    assertAddress(host, port);
    for (const p of packets) assertPacketSize(p.length, MAX_PACKET_SIZE + SRTP_TRAILER);
    try {
      return this.addon.udpSend(this.fd, host, port, packets);
    } catch (e) {
      rethrow(e);
    }
  }
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.addon.udpClose(this.fd);
  }
}

function nativeSocket(s: UdpSocket): NativeSocket {
  if (!(s instanceof NativeSocket)) throw new TypeError('this socket was not opened by the native engine');
  return s;
}

/** Polls a status until `done` without blocking the event loop (the work runs on a pthread). */
function pollUntil<T>(read: () => T, done: (t: T) => boolean, intervalMs = 5): Promise<T> {
  return new Promise((resolve) => {
    const tick = (): void => {
      const t = read();
      if (done(t)) resolve(t);
      else setTimeout(tick, intervalMs);
    };
    tick();
  });
}

function nativeEngine(addon: Addon): PacketEngine {
  return {
    kind: 'native',
    nowNs: () => addon.nowNs(),
    realtime: () => (addon.realtime() < 0 ? undefined : addon.realtime() === 1),
    async openSocket(host, port = 0) {
      assertAddress(host, port);
      try {
        const { fd, port: bound } = addon.udpOpen(host, port);
        return new NativeSocket(addon, fd, bound);
      } catch (e) {
        rethrow(e);
      }
    },
    buildRtp(spec, fields) {
      assertRtpSpec(spec);
      try {
        return addon.buildRtp(spec, fields);
      } catch (e) {
        rethrow(e);
      }
    },
    createSrtpSession(key, direction) {
      assertSrtpKey(key);
      let s: object;
      try {
        s = addon.srtpSession(key, direction === 'outbound');
      } catch (e) {
        rethrow(e);
      }
      return {
        protect: (p) => {
          assertPacketSize(p.length);
          try {
            return addon.srtpProtect(s, p);
          } catch (e) {
            rethrow(e);
          }
        },
        unprotect: (p) => {
          assertPacketSize(p.length, MAX_PACKET_SIZE + SRTP_TRAILER);
          try {
            return addon.srtpUnprotect(s, p);
          } catch (e) {
            rethrow(e);
          }
        },
      };
    },
    startSender(o) {
      assertAddress(o.host, o.port);
      assertRtpSpec(o.rtp);
      if (o.srtp) assertSrtpKey(o.srtp);
      let h: object;
      try {
        h = addon.senderStart({ ...o, fd: nativeSocket(o.socket).fd, socket: undefined });
      } catch (e) {
        rethrow(e);
      }
      let last: SenderStatus | undefined;
      return {
        status: () => last ?? addon.senderStatus(h),
        finished: () => pollUntil(() => addon.senderStatus(h), (s) => s.done),
        stop: () => (last ??= addon.senderStop(h)),
      };
    },
    startReceiver(o) {
      o.copies?.forEach((c) => c.srtp && assertSrtpKey(c.srtp));
      let h: object;
      try {
        h = addon.receiverStart({
          fd: nativeSocket(o.socket).fd,
          maxRecords: o.maxRecords,
          copies: o.copies,
          kernelTimestamps: o.kernelTimestamps ? 1 : 0,
          batchSleepUs: o.kernelTimestamps ? Math.max(0, Math.min(20_000, o.batchSleepUs ?? 0)) : 0,
        });
      } catch (e) {
        rethrow(e);
      }
      let last: ReceiverResult | undefined;
      return {
        status: () => last ?? addon.receiverStatus(h),
        stop: () => (last ??= addon.receiverStop(h)),
      };
    },
    startForwarder(o) {
      o.destinations.forEach((d) => assertAddress(d.host, d.port));
      assertForwarderKeys(o);
      let h: object;
      try {
        h = addon.forwarderStart({ inFd: nativeSocket(o.input).fd, outFd: nativeSocket(o.output).fd, destinations: o.destinations, ...(o.srtp ? { srtp: o.srtp } : {}) });
      } catch (e) {
        rethrow(e);
      }
      let last: ForwarderResult | undefined;
      return { stop: () => (last ??= addon.forwarderStop(h)) };
    },
  };
}

// ------------------------------------------------------------------------------------------------
// TypeScript fallback (node:dgram): same behaviour, lower ceiling
// ------------------------------------------------------------------------------------------------

const nowNsTs = (): number => Number(process.hrtime.bigint()); // libuv's hrtime is CLOCK_MONOTONIC

class TsSocket implements UdpSocket {
  readonly #queue: Buffer[] = [];
  #listener: ((msg: Buffer) => void) | undefined;
  #closed = false;
  constructor(
    readonly socket: Socket,
    readonly port: number,
  ) {
    socket.on('message', (msg) => (this.#listener ? this.#listener(msg) : this.#queue.length < 65536 && this.#queue.push(msg)));
  }
  /** Hands every datagram to `fn` instead of queueing it (receivers and forwarders). */
  listen(fn: ((msg: Buffer) => void) | undefined): void {
    this.#listener = fn;
  }
  receive(max = 64): Buffer[] {
    return this.#queue.splice(0, max);
  }
  send(host: string, port: number, packets: Buffer[]): number {
    assertAddress(host, port);
    for (const p of packets) assertPacketSize(p.length, MAX_PACKET_SIZE + SRTP_TRAILER);
    for (const p of packets) this.socket.send(p, port, host);
    return packets.length;
  }
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.close();
  }
}

function tsSocket(s: UdpSocket): TsSocket {
  if (!(s instanceof TsSocket)) throw new TypeError('this socket was not opened by the TypeScript engine');
  return s;
}

function buildRtpTs(spec: RtpSpec, f: { rtpSeq: number; rtpTimestamp: number; marker?: boolean; seq: number; sendTimeNs?: number; keyFrame?: boolean }): Buffer {
  const prefix = (f.keyFrame ? (spec.keyPrefix ?? spec.prefix) : spec.prefix) ?? Buffer.alloc(0);
  const size = Math.max(spec.size, 12 + prefix.length + PAYLOAD_HEADER_SIZE);
  const p = Buffer.alloc(size);
  p[0] = 0x80;
  p[1] = (f.marker ? 0x80 : 0) | (spec.payloadType & 0x7f);
  p.writeUInt16BE(f.rtpSeq & 0xffff, 2);
  p.writeUInt32BE(f.rtpTimestamp >>> 0, 4);
  p.writeUInt32BE(spec.ssrc >>> 0, 8);
  prefix.copy(p, 12);
  let off = 12 + prefix.length;
  p.writeUInt32BE(MAGIC, off);
  p.writeUInt32BE((spec.streamId ?? 0) >>> 0, off + 4);
  p.writeUInt32BE(f.seq >>> 0, off + 8);
  p.writeBigUInt64BE(BigInt(Math.round(f.sendTimeNs ?? nowNsTs())), off + 12);
  off += PAYLOAD_HEADER_SIZE;
  for (let i = off; i < size; i++) p[i] = (i * 31 + f.seq) & 0xff;
  return p;
}

/** The benchmark header's offset in an RTP payload, or -1. */
function findHeader(p: Buffer): number {
  let off: number;
  try {
    off = parseRtp(p).headerLength;
  } catch {
    return -1;
  }
  for (let i = 0; i < 32 && off + i + PAYLOAD_HEADER_SIZE <= p.length; i++) {
    if (p.readUInt32BE(off + i) === MAGIC) return off + i;
  }
  return -1;
}

function tsEngine(): PacketEngine {
  return {
    kind: 'typescript',
    nowNs: nowNsTs,
    realtime: () => false,
    async openSocket(host, port = 0) {
      assertAddress(host, port);
      const socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
      await new Promise<void>((resolve, reject) => {
        socket.once('error', (e: NodeJS.ErrnoException) =>
          reject(e.code === 'EADDRNOTAVAIL' ? new C4vError('NATIVE_BAD_ADDRESS', `cannot bind ${host}: ${e.message}`) : e),
        );
        socket.bind(port, host, () => resolve());
      });
      return new TsSocket(socket, socket.address().port);
    },
    buildRtp(spec, fields) {
      assertRtpSpec(spec);
      return buildRtpTs(spec, fields);
    },
    createSrtpSession(key) {
      const s = new TsSrtpSession(key);
      return {
        protect: (p) => {
          assertPacketSize(p.length);
          return s.protect(p);
        },
        unprotect: (p) => {
          assertPacketSize(p.length, MAX_PACKET_SIZE + SRTP_TRAILER);
          return s.unprotect(p);
        },
      };
    },
    startSender(o) {
      assertAddress(o.host, o.port);
      assertRtpSpec(o.rtp);
      const srtp = o.srtp ? new TsSrtpSession(o.srtp) : undefined;
      const sock = tsSocket(o.socket);
      const period = 1e9 / o.frameRate;
      const start = o.startNs ?? nowNsTs() + 1e6;
      const st: SenderStatus = { sent: 0, sendErrors: 0, maxLateNs: 0, lateSumNs: 0, protectNs: 0, startNs: start, cpuNs: 0, done: false };
      const first = o.firstFrame ?? 0;
      let frame = 0;
      let seq = first * o.packetsPerFrame;
      let rtpSeq = (o.rtp.ssrc * 7 + seq) & 0xffff;
      let timer: NodeJS.Timeout | undefined;
      let resolveDone: (s: SenderStatus) => void = () => {};
      const finished = new Promise<SenderStatus>((r) => (resolveDone = r));
      const finish = (): void => {
        if (st.done) return;
        st.done = true;
        clearTimeout(timer);
        resolveDone(st);
      };
      // Open loop: every frame carries its scheduled time; a late timer sends the overdue frames
      // at once and the delay shows in the measurement.
      const tick = (): void => {
        const now = nowNsTs();
        while (frame < o.frames && start + frame * period <= now) {
          const sched = Math.round(start + frame * period);
          const late = now - sched;
          st.maxLateNs = Math.max(st.maxLateNs, late);
          st.lateSumNs += late;
          const g = first + frame;
          const key = g === 0 || (!!o.keyInterval && g % o.keyInterval === 0);
          for (let i = 0; i < o.packetsPerFrame; i++) {
            let p = buildRtpTs(o.rtp, {
              rtpSeq: rtpSeq++,
              rtpTimestamp: g * Math.floor(o.rtp.clockRate / o.frameRate),
              marker: i === o.packetsPerFrame - 1,
              seq: seq++,
              sendTimeNs: sched,
              keyFrame: key && i === 0,
            });
            if (srtp) p = srtp.protect(p);
            sock.socket.send(p, o.port, o.host, (err) => {
              if (err) st.sendErrors++;
            });
            st.sent++;
          }
          frame++;
        }
        if (frame >= o.frames) return finish();
        const wait = (start + frame * period - nowNsTs()) / 1e6;
        timer = setTimeout(tick, Math.max(0, Math.floor(wait)));
      };
      timer = setTimeout(tick, Math.max(0, Math.floor((start - nowNsTs()) / 1e6)));
      return {
        status: () => ({ ...st }),
        finished: () => finished,
        stop: () => {
          finish();
          return { ...st };
        },
      };
    },
    startReceiver(o) {
      const sock = tsSocket(o.socket);
      const copies = new Map<number, { index: number; srtp?: TsSrtpSession }>();
      o.copies?.forEach((c, index) => copies.set(c.ssrc >>> 0, { index, ...(c.srtp ? { srtp: new TsSrtpSession(c.srtp) } : {}) }));
      const records = Buffer.alloc(Math.min(o.maxRecords, 1 << 22) * 16);
      const st: ReceiverStatus = { received: 0, droppedRecords: 0, unknown: 0, rtcp: 0, srtpFailures: 0, bytes: 0, cpuNs: 0, kernelStamped: 0 };
      sock.listen((msg) => {
        const t = nowNsTs();
        st.bytes += msg.length;
        if (msg.length < 12) return;
        if (msg[1]! >= 192 && msg[1]! <= 223) {
          st.rtcp++;
          return;
        }
        let copy = 0;
        let p = msg;
        if (o.copies) {
          const c = copies.get(msg.readUInt32BE(8));
          if (!c) {
            st.unknown++;
            return;
          }
          copy = c.index;
          if (c.srtp) {
            try {
              p = c.srtp.unprotect(msg);
            } catch {
              st.srtpFailures++;
              return;
            }
          }
        }
        const h = findHeader(p);
        if (h < 0) {
          st.unknown++;
          return;
        }
        if ((st.received + 1) * 16 > records.length) {
          st.droppedRecords++;
          return;
        }
        const r = st.received * 16;
        records.writeUInt32LE(copy, r);
        records.writeUInt32LE(p.readUInt32BE(h + 8), r + 4);
        records.writeBigInt64LE(BigInt(t) - p.readBigUInt64BE(h + 12), r + 8);
        st.received++;
      });
      let last: ReceiverResult | undefined;
      return {
        status: () => ({ ...st }),
        stop: () => {
          if (!last) {
            sock.listen(undefined);
            const out = new ArrayBuffer(st.received * 16);
            new Uint8Array(out).set(records.subarray(0, st.received * 16));
            last = { ...st, records: out };
          }
          return last;
        },
      };
    },
    startForwarder(o) {
      o.destinations.forEach((d) => assertAddress(d.host, d.port));
      assertForwarderKeys(o);
      const input = tsSocket(o.input);
      const output = tsSocket(o.output);
      const inbound = o.srtp ? new TsSrtpSession(o.srtp) : undefined;
      const outbound = o.destinations.map((d) => (d.srtp ? new TsSrtpSession(d.srtp) : undefined));
      const st: ForwarderResult = { received: 0, sent: 0, sendErrors: 0, srtpFailures: 0, cpuNs: 0 };
      input.listen((msg) => {
        st.received++;
        let packet = msg;
        if (inbound) {
          try {
            packet = inbound.unprotect(msg);
          } catch {
            st.srtpFailures++;
            return;
          }
        }
        o.destinations.forEach((d, i) => {
          let copy: Buffer = Buffer.from(packet);
          if (d.ssrc !== undefined && copy.length >= 12) copy.writeUInt32BE(d.ssrc >>> 0, 8);
          const out = outbound[i];
          if (out) {
            try {
              copy = out.protect(copy);
            } catch {
              st.srtpFailures++;
              return;
            }
          }
          output.socket.send(copy, d.port, d.host);
          st.sent++;
        });
      });
      let stopped = false;
      return {
        stop: () => {
          if (!stopped) {
            stopped = true;
            input.listen(undefined);
          }
          return { ...st };
        },
      };
    },
  };
}

// ------------------------------------------------------------------------------------------------
// loading
// ------------------------------------------------------------------------------------------------

/** How the engine was chosen: which implementation, the addon's path, and why not native. */
export interface PacketEngineInfo {
  kind: 'native' | 'typescript';
  /** The addon file node-gyp-build resolved (native only). */
  path?: string;
  /** Why the fallback is in use (typescript only). */
  reason?: string;
}

let cached: { engine: PacketEngine; info: PacketEngineInfo } | undefined;

/** Boolean variables the addon itself reads (getenv). */
const ADDON_FLAGS = ['C4V_NO_REALTIME', 'C4V_SENDER_OPENSSL', 'C4V_GENERATOR_LIBSRTP'] as const;

/**
 * Resolves the addon's path the way node-gyp-build does (build/Release, then prebuilds/) from the
 * engine's folder (bench/native/); throws when there is none.
 */
export function resolveNativeBinding(root = BINDING_ROOT): string {
  const nodeGypBuild = require('node-gyp-build') as { resolve?: (dir: string) => string; path: (dir: string) => string };
  return (nodeGypBuild.resolve ?? nodeGypBuild.path)(root);
}

function load(env: NodeJS.ProcessEnv): { engine: PacketEngine; info: PacketEngineInfo } {
  // The addon reads C4V_NO_REALTIME, C4V_SENDER_OPENSSL and C4V_GENERATOR_LIBSRTP with getenv()
  // (set = on). Normalised here through the one boolean parser, so that `=0` / `=off` mean off.
  // It is the process environment the addon sees, whichever `env` decides the engine.
  for (const name of ADDON_FLAGS) {
    if (process.env[name] === undefined) continue;
    if (envFlag(name, false, process.env)) process.env[name] = '1';
    else delete process.env[name];
  }
  if (envFlag('C4V_NO_NATIVE', false, env)) {
    return { engine: tsEngine(), info: { kind: 'typescript', reason: 'C4V_NO_NATIVE is set' } };
  }
  try {
    const path = resolveNativeBinding();
    const addon = require(path) as Addon;
    return { engine: nativeEngine(addon), info: { kind: 'native', path } };
  } catch (error) {
    return { engine: tsEngine(), info: { kind: 'typescript', reason: `native engine not loadable: ${(error as Error).message.split('\n')[0]}` } };
  }
}

/**
 * The packet engine: the native addon when it is built and C4V_NO_NATIVE is not set, else the
 * TypeScript fallback. `force` picks one explicitly (tests, the benchmark's generator check);
 * forcing 'native' throws when the addon cannot be loaded.
 */
export function packetEngine(force?: 'native' | 'typescript'): PacketEngine {
  if (force === 'typescript') return tsEngine();
  if (force === 'native') {
    const loaded = load({});
    if (loaded.info.kind !== 'native') throw new C4vError('INTERNAL', loaded.info.reason ?? 'native engine unavailable');
    return loaded.engine;
  }
  cached ??= load(process.env);
  return cached.engine;
}

/** How packetEngine() chose its implementation (for logs and the benchmark report). */
export function packetEngineInfo(): PacketEngineInfo {
  cached ??= load(process.env);
  return cached.info;
}

/** One record of a receiver: copy index, sequence, one-way delay in ns. */
export function readRecords(records: ArrayBuffer): { copy: Uint32Array; seq: Uint32Array; delayNs: Float64Array } {
  const n = records.byteLength / 16;
  const view = new DataView(records);
  const copy = new Uint32Array(n);
  const seq = new Uint32Array(n);
  const delayNs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    copy[i] = view.getUint32(i * 16, true);
    seq[i] = view.getUint32(i * 16 + 4, true);
    // i64 as two halves: exact for any delay under 2^53 ns, and much faster than BigInt.
    delayNs[i] = view.getInt32(i * 16 + 12, true) * 2 ** 32 + view.getUint32(i * 16 + 8, true);
  }
  return { copy, seq, delayNs };
}
