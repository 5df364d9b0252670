// Helpers for the E2EE tests: sample codec frames, Shannon entropy, and a relay that stands in
// for the gateway's opaque key-message forwarding in the pure-logic session tests (the gateway
// test runs the same sessions through the real server).
import { FrameCryptor, createE2eeSession, type E2eeMember, type E2eeSession, type ParticipantKeyPair } from '../../client/e2ee/index.js';

/** Hex string -> bytes. */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Bytes -> hex string. */
export function toHex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** Whether `needle` occurs in `hay`. */
export function contains(hay: Uint8Array, needle: readonly number[]): boolean {
  outer: for (let i = 0; i + needle.length <= hay.byteLength; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Shannon entropy of the bytes, in bits per byte (8 for uniform random data). */
export function entropy(b: Uint8Array): number {
  const counts = new Array<number>(256).fill(0);
  for (const x of b) counts[x]!++;
  let h = 0;
  for (const c of counts) if (c) h -= (c / b.byteLength) * Math.log2(c / b.byteLength);
  return h;
}

/** The VP8 keyframe start code (RFC 6386 §9.1). */
export const VP8_START_CODE = [0x9d, 0x01, 0x2a] as const;

/**
 * A VP8 keyframe as an encoder writes it: frame tag with P = 0 (keyframe), show_frame and the
 * first partition size, the start code, 640x360, then `body` (low-entropy by default, as real
 * frames repeat a lot, so that an entropy check on the output means something).
 */
export function vp8Keyframe(body: Uint8Array = repeating(1200)): Uint8Array {
  const out = new Uint8Array(10 + body.byteLength);
  out.set([0x50, 0x42, 0x00, ...VP8_START_CODE, 0x80, 0x02, 0x68, 0x01]);
  out.set(body, 10);
  return out;
}

/** A VP8 delta frame: frame tag with P = 1, then `body`. */
export function vp8Delta(body: Uint8Array = repeating(300)): Uint8Array {
  const out = new Uint8Array(3 + body.byteLength);
  out.set([0x51, 0x07, 0x00]);
  out.set(body, 3);
  return out;
}

/** A low-entropy body: a short pattern repeated, with single zero bytes (never a start code, as in an escaped slice). */
export function repeating(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = i % 7 === 0 ? 0 : 1 + ((i * 13) % 5);
  return out;
}

/**
 * An H264 IDR access unit in Annex B: SPS (4-byte start code), PPS, then an IDR slice whose
 * payload has zero runs, which an encrypted frame must not turn into start codes.
 */
export function h264Idr(): Uint8Array {
  const sps = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
  const pps = [0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
  const idr = [0, 0, 1, 0x65, 0x88, 0x84, ...repeating(600)];
  return new Uint8Array([...sps, ...pps, ...idr]);
}

/** An opus packet: TOC byte (SILK WB 20 ms, one frame) and its payload. */
export function opusPacket(): Uint8Array {
  return new Uint8Array([0x48, ...repeating(80)]);
}

/** One participant in the relay: its session and its frame cryptor. */
export interface RelayPeer {
  id: string;
  session: E2eeSession;
  cryptor: FrameCryptor;
  /** Key messages this peer received, as (from, bytes). */
  received: Array<[string, Uint8Array]>;
}

/**
 * Forwards key messages between sessions as the gateway does (to one participant, or to every
 * other member), records every byte the "server" saw, and can hold back messages to a peer.
 */
export class KeyRelay {
  readonly meetingId: string;
  readonly peers = new Map<string, RelayPeer>();
  /** Everything that passed the relay (what a server would see). */
  readonly seen: Uint8Array[] = [];
  /** Messages to these peers are dropped (a lost message). */
  readonly dropTo = new Set<string>();
  readonly #members: E2eeMember[] = [];
  #order = 0;
  readonly #inflight = new Set<Promise<void>>();
  readonly errors: Error[] = [];

  constructor(meetingId = 'meeting-1') {
    this.meetingId = meetingId;
  }

  #deliver(from: string, to: string | undefined, data: Uint8Array): void {
    this.seen.push(data.slice());
    const targets = to === undefined ? [...this.peers.keys()].filter((id) => id !== from) : [to];
    for (const t of targets) {
      const peer = this.peers.get(t);
      if (!peer || this.dropTo.has(t)) continue;
      peer.received.push([from, data.slice()]);
      const p = peer.session.receive(from, data.slice()).catch((e: Error) => void this.errors.push(e));
      this.#inflight.add(p);
      void p.finally(() => this.#inflight.delete(p));
    }
  }

  /** Admits a participant: a session of its own, the roster update to everyone, then its hello. */
  async join(id: string, isHost = false, keyPair?: ParticipantKeyPair): Promise<RelayPeer> {
    const cryptor = new FrameCryptor(id);
    const session = await createE2eeSession({
      meetingId: this.meetingId,
      selfId: id,
      sink: cryptor,
      send: (to, data) => this.#deliver(id, to, data),
      ...(keyPair ? { keyPair } : {}),
    });
    const peer: RelayPeer = { id, session, cryptor, received: [] };
    this.peers.set(id, peer);
    this.#members.push({ participantId: id, isHost, joinOrder: this.#order++ });
    await this.#roster();
    await session.start();
    await this.settle();
    return peer;
  }

  /** A participant leaves: its session stops getting messages; the others get the new roster. */
  async leave(id: string): Promise<void> {
    this.peers.delete(id);
    this.#members.splice(this.#members.findIndex((m) => m.participantId === id), 1);
    await this.#roster();
    await this.settle();
  }

  async #roster(): Promise<void> {
    await Promise.all([...this.peers.values()].map((p) => p.session.setMembers(this.#members)));
  }

  /** Waits until no key message is being processed anywhere (delivery is by promises, not timers). */
  async settle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }
}
