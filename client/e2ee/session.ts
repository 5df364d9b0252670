// The key schedule of one participant in one meeting: publishes its public key, follows the key
// leader, and (as leader) hands out group keys. Transport-agnostic: it is given a `send` for the
// gateway's opaque key messages and a KeySink (the frame cryptor or its worker) for the keys.
//
// Schedule (all decided by the leader; everyone else follows the leader's messages):
// - The leader is the host if one is in the E2EE roster, else the earliest admitted participant.
// - A new leader (the first participant, a host who arrives, the successor of one who left)
//   makes a fresh random group key and wraps it for every participant whose public key it has.
// - Someone leaves: the leader makes a fresh key (rotation); the leaver never gets it.
// - Someone joins: the leader ratchets (broadcasts `ratchet`, everyone derives the next key from
//   the current one) and wraps the result for the joiner only, who so cannot read what came before.
// - A key arriving late (a late joiner, a lost message) is requested: a frame with an unknown key
//   id makes the receiver send `request` to the leader, which answers with the current key.
// Key ids are random 32-bit numbers, so keys made by different leaders never share an id.
import { ArgumentError } from '../../lib/errors.js';
import { Emitter } from './emitter.js';
import { E2eeError } from './errors.js';
import { generateGroupKey, generateKeyPair, importPublicKey, ratchetGroupKey, unwrapGroupKey, wrapGroupKey, type ParticipantKeyPair } from './keys.js';
import { decodeKeyMessage, encodeKeyMessage, type KeyMessage } from './messages.js';
import { securityCode } from './securityCode.js';
import type { KeySink, WebCryptoKey } from './sframe.js';
import { bytesEqual } from './bytes.js';

/** One admitted, E2EE-capable participant as the SDK's roster knows it. */
export interface E2eeMember {
  participantId: string;
  /** The meeting's host (the leader whenever present). */
  isHost: boolean;
  /** Admission order as every client sees it (lower: admitted earlier); ties go by id. */
  joinOrder: number;
}

/**
 * The key leader of a roster: the host if present, else the earliest admitted (lowest
 * joinOrder, then lowest id so that every client picks the same one). Undefined when empty.
 */
export function electLeader(members: readonly E2eeMember[]): string | undefined {
  let best: E2eeMember | undefined;
  for (const m of members) {
    if (
      !best ||
      (m.isHost && !best.isHost) ||
      (m.isHost === best.isHost && (m.joinOrder < best.joinOrder || (m.joinOrder === best.joinOrder && m.participantId < best.participantId)))
    ) {
      best = m;
    }
  }
  return best?.participantId;
}

/** Why the key in use changed. */
export type KeyChangeReason = 'fresh' | 'ratchet' | 'received';

/** Events of an E2eeSession. */
export type E2eeSessionEvents = {
  /** The security code changed (someone joined, left, or their key changed). */
  securitycode: [code: string];
  /** Frames are now sent with key `kid`. */
  keychanged: [kid: number, reason: KeyChangeReason];
  /** The key leader changed (undefined: nobody). */
  leader: [participantId: string | undefined];
  /** A key message from `from` was refused (bad layout, bad key); nothing changed. */
  messageerror: [from: string, error: Error];
  /** A listener threw. */
  listenererror: [event: string, error: unknown];
};

/** Options of createE2eeSession. */
export interface E2eeSessionOptions {
  meetingId: string;
  /** This participant's id (JoinOk.participant_id). */
  selfId: string;
  /** Sends one opaque key message: to a participant, or (undefined) to every other E2EE participant. */
  send: (to: string | undefined, data: Uint8Array) => void | Promise<void>;
  /** Where the group keys go (the FrameCryptor, or the transform worker). */
  sink: KeySink;
  /** Group keys kept for frames still in flight after a change (default 2: the current and the one before). */
  keepKeys?: number;
  /** @internal Tests pass a key pair. */
  keyPair?: ParticipantKeyPair;
}

interface Peer {
  raw: Uint8Array;
  key: WebCryptoKey;
}

/** Creates a session with a fresh key pair. Call `start()` once joined. */
export async function createE2eeSession(options: E2eeSessionOptions): Promise<E2eeSession> {
  return new E2eeSession(options, options.keyPair ?? (await generateKeyPair()));
}

/** See the file comment. Created by createE2eeSession. */
export class E2eeSession extends Emitter<E2eeSessionEvents> {
  readonly meetingId: string;
  readonly selfId: string;
  readonly #pair: ParticipantKeyPair;
  readonly #send: E2eeSessionOptions['send'];
  readonly #sink: KeySink;
  readonly #keep: number;
  #roster = new Map<string, E2eeMember>();
  readonly #peers = new Map<string, Peer>();
  /** Group keys by id, oldest first. */
  readonly #keys = new Map<number, Uint8Array>();
  #current: number | undefined;
  #leader: string | undefined;
  /** Leader only: the key id each participant holds from us. */
  readonly #keyed = new Map<string, number>();
  /** Leader only: someone left (or we just became leader): the next key must be fresh. */
  #mustRotate = false;
  /** A key message from someone who is not (yet) our leader: used if they become it. */
  readonly #pending = new Map<string, Extract<KeyMessage, { type: 'key' }>>();
  readonly #requested = new Set<number>();
  #code: string | undefined;
  #chain: Promise<void> = Promise.resolve();
  #started = false;
  /** setMembers was called: until then this session cannot know who leads, so it does not lead. */
  #rosterKnown = false;
  #closed = false;

  /** @internal Use createE2eeSession. */
  constructor(options: E2eeSessionOptions, pair: ParticipantKeyPair) {
    super();
    if (typeof options.meetingId !== 'string' || options.meetingId === '') throw new ArgumentError('E2EE needs the meeting id');
    if (typeof options.selfId !== 'string' || options.selfId === '') throw new ArgumentError('E2EE needs this participant id');
    if (typeof options.send !== 'function') throw new ArgumentError('E2EE needs a send function for key messages');
    const keep = options.keepKeys ?? 2;
    if (!Number.isInteger(keep) || keep < 1) throw new ArgumentError('keepKeys must be an integer of at least 1');
    this.meetingId = options.meetingId;
    this.selfId = options.selfId;
    this.#send = options.send;
    this.#sink = options.sink;
    this.#keep = keep;
    this.#pair = pair;
    this.#roster.set(this.selfId, { participantId: this.selfId, isHost: false, joinOrder: Number.MAX_SAFE_INTEGER });
  }

  /** This participant's public key as published (65 bytes). */
  get publicKey(): Uint8Array {
    return this.#pair.publicRaw.slice();
  }

  /** The current security code (undefined until computed). */
  get securityCode(): string | undefined {
    return this.#code;
  }

  /** The key leader now. */
  get leaderId(): string | undefined {
    return this.#leader;
  }

  /** The id of the group key frames are sent with (undefined: none yet, nothing is sent). */
  get currentKid(): number | undefined {
    return this.#current;
  }

  /** Participants whose public key this session has (itself included), sorted. */
  get verifiedMembers(): string[] {
    return [...this.#roster.keys()].filter((id) => id === this.selfId || this.#peers.has(id)).sort();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs state changes one at a time, in call order; a failing step is reported, the next still runs. */
  #enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(() => (this.#closed ? undefined : step()));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Publishes this participant's public key to everyone (they answer with theirs). */
  start(): Promise<void> {
    return this.#enqueue(async () => {
      if (this.#started) return;
      this.#started = true;
      await this.#send(undefined, encodeKeyMessage({ type: 'hello', publicKey: this.#pair.publicRaw, wantsReply: true }));
      await this.#reconcile();
    });
  }

  /**
   * The admitted, E2EE-capable participants (this one included), from the SDK's roster. Those
   * missing from a previous call have left.
   */
  setMembers(members: readonly E2eeMember[]): Promise<void> {
    const next = new Map<string, E2eeMember>();
    for (const m of members) {
      if (typeof m?.participantId !== 'string' || m.participantId === '') throw new ArgumentError('a member needs a participantId');
      if (typeof m.isHost !== 'boolean' || typeof m.joinOrder !== 'number' || Number.isNaN(m.joinOrder)) throw new ArgumentError(`member ${m.participantId} needs isHost and joinOrder`);
      if (next.has(m.participantId)) throw new ArgumentError(`member ${m.participantId} is listed twice`);
      next.set(m.participantId, { participantId: m.participantId, isHost: m.isHost, joinOrder: m.joinOrder });
    }
    if (!next.has(this.selfId)) throw new ArgumentError('the member list must include this participant');
    return this.#enqueue(async () => {
      for (const id of this.#roster.keys()) {
        if (!next.has(id)) {
          this.#peers.delete(id);
          this.#keyed.delete(id);
          this.#pending.delete(id);
          this.#mustRotate = true;
        }
      }
      this.#roster = next;
      this.#rosterKnown = true;
      await this.#reconcile();
    });
  }

  /**
   * A key message from the gateway (`key_message { from_participant_id, data }`). A bad one is
   * reported as `messageerror` and rejected with E2EE_MESSAGE_INVALID or E2EE_KEY_INVALID;
   * the session's state stays as it was.
   */
  receive(from: string, data: Uint8Array): Promise<void> {
    return this.#enqueue(async () => {
      try {
        if (from === this.selfId) throw new E2eeError('E2EE_MESSAGE_INVALID', 'a key message that claims to come from this participant');
        await this.#handle(from, decodeKeyMessage(data));
      } catch (error) {
        this.emit('messageerror', from, error as Error);
        throw error;
      }
    });
  }

  /**
   * The frame transform saw a frame from `senderId` with key id `kid` it has no key for: asks the
   * leader for the current key (once per key id).
   */
  keyMissing(senderId: string, kid: number): Promise<void> {
    return this.#enqueue(async () => {
      if (this.#keys.has(kid) || this.#requested.has(kid) || !this.#leader || this.#leader === this.selfId) return;
      if (!this.#roster.has(senderId)) return;
      this.#requested.add(kid);
      await this.#send(this.#leader, encodeKeyMessage({ type: 'request', kid }));
    });
  }

  /** Stops: forgets every key here and in the sink. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#keys.clear();
    this.#current = undefined;
    this.#sink.retainKeys([]);
  }

  async #handle(from: string, m: KeyMessage): Promise<void> {
    switch (m.type) {
      case 'hello': {
        const key = await importPublicKey(m.publicKey);
        const known = this.#peers.get(from);
        if (!known || !bytesEqual(known.raw, m.publicKey)) {
          // A new or changed key: whatever it was given under an old key is not its key now.
          this.#peers.set(from, { raw: m.publicKey, key });
          this.#keyed.delete(from);
        }
        if (m.wantsReply) await this.#send(from, encodeKeyMessage({ type: 'hello', publicKey: this.#pair.publicRaw, wantsReply: false }));
        const pending = this.#pending.get(from);
        if (pending && from === this.#leader) {
          this.#pending.delete(from);
          await this.#acceptKey(from, pending);
        }
        break;
      }
      case 'key': {
        if (from !== this.#leader || !this.#peers.has(from)) {
          // Not our leader (yet), or its hello was lost: keep the key until it is, and ask for the hello.
          this.#pending.set(from, m);
          if (from === this.#leader) await this.#send(from, encodeKeyMessage({ type: 'hello', publicKey: this.#pair.publicRaw, wantsReply: true }));
          return;
        }
        await this.#acceptKey(from, m);
        break;
      }
      case 'ratchet': {
        if (from !== this.#leader) return;
        const base = this.#keys.get(m.fromKid);
        if (!base) {
          // We missed the key it ratchets from: ask for the result instead. Without any key we
          // are the joiner this ratchet is for, and its key is on the way already.
          if (this.#keys.size > 0 && !this.#requested.has(m.kid)) {
            this.#requested.add(m.kid);
            await this.#send(from, encodeKeyMessage({ type: 'request', kid: m.kid }));
          }
          return;
        }
        if (this.#keys.has(m.kid)) return;
        this.#install(m.kid, await ratchetGroupKey(base, m.kid), 'ratchet');
        break;
      }
      case 'request': {
        if (this.#leader !== this.selfId || this.#current === undefined) return;
        const peer = this.#peers.get(from);
        if (!peer || !this.#roster.has(from)) return;
        await this.#wrapFor(from, peer);
        break;
      }
    }
    await this.#reconcile();
  }

  async #acceptKey(from: string, m: Extract<KeyMessage, { type: 'key' }>): Promise<void> {
    const leader = this.#peers.get(from);
    if (!leader) throw new E2eeError('E2EE_KEY_INVALID', `a key from ${from} before its public key`);
    const groupKey = await unwrapGroupKey(this.#pair, leader.key, m.wrapped, { meetingId: this.meetingId, fromId: from, toId: this.selfId, kid: m.kid });
    const had = this.#keys.get(m.kid);
    if (had && bytesEqual(had, groupKey) && this.#current === m.kid) return;
    this.#install(m.kid, groupKey, 'received');
  }

  #install(kid: number, groupKey: Uint8Array, reason: KeyChangeReason): void {
    this.#keys.delete(kid);
    this.#keys.set(kid, groupKey);
    while (this.#keys.size > this.#keep) this.#keys.delete(this.#keys.keys().next().value!);
    this.#sink.setKey(kid, groupKey);
    this.#sink.useKey(kid);
    this.#sink.retainKeys([...this.#keys.keys()]);
    this.#current = kid;
    this.#requested.delete(kid);
    this.emit('keychanged', kid, reason);
  }

  #newKid(): number {
    for (;;) {
      const kid = globalThis.crypto.getRandomValues(new Uint32Array(1))[0]!;
      if (!this.#keys.has(kid)) return kid;
    }
  }

  async #wrapFor(id: string, peer: Peer): Promise<void> {
    const kid = this.#current!;
    const wrapped = await wrapGroupKey(this.#pair, peer.key, this.#keys.get(kid)!, { meetingId: this.meetingId, fromId: this.selfId, toId: id, kid });
    await this.#send(id, encodeKeyMessage({ type: 'key', kid, wrapped }));
    this.#keyed.set(id, kid);
  }

  /** Brings leader, keys and security code up to date after any change. */
  async #reconcile(): Promise<void> {
    const leader = electLeader([...this.#roster.values()]);
    if (leader !== this.#leader) {
      this.#leader = leader;
      this.#keyed.clear();
      this.#requested.clear();
      if (leader === this.selfId) this.#mustRotate = true;
      this.emit('leader', leader);
      const pending = leader === undefined ? undefined : this.#pending.get(leader);
      if (pending && leader !== this.selfId && this.#peers.has(leader!)) {
        this.#pending.delete(leader!);
        await this.#acceptKey(leader!, pending).catch((error: unknown) => this.emit('messageerror', leader!, error as Error));
      }
    }
    if (this.#started && this.#rosterKnown && leader === this.selfId) await this.#lead();
    await this.#updateCode();
  }

  async #lead(): Promise<void> {
    if (this.#mustRotate || this.#current === undefined) {
      this.#mustRotate = false;
      this.#keyed.clear();
      this.#install(this.#newKid(), generateGroupKey(), 'fresh');
    }
    const waiting = [...this.#peers].filter(([id]) => this.#roster.has(id) && this.#keyed.get(id) !== this.#current);
    if (waiting.length === 0) return;
    // Participants who hold the current key follow a ratchet; the joiners get only its result.
    const holders = [...this.#keyed].filter(([id, kid]) => kid === this.#current && this.#roster.has(id)).map(([id]) => id);
    if (holders.length > 0) {
      const from = this.#current!;
      const kid = this.#newKid();
      await this.#send(undefined, encodeKeyMessage({ type: 'ratchet', fromKid: from, kid }));
      this.#install(kid, await ratchetGroupKey(this.#keys.get(from)!, kid), 'ratchet');
      for (const id of holders) this.#keyed.set(id, kid);
    }
    for (const [id, peer] of waiting) await this.#wrapFor(id, peer);
  }

  async #updateCode(): Promise<void> {
    const members = this.verifiedMembers.map((id) => ({
      participantId: id,
      publicKey: id === this.selfId ? this.#pair.publicRaw : this.#peers.get(id)!.raw,
    }));
    const code = await securityCode(this.meetingId, members);
    if (code !== this.#code) {
      this.#code = code;
      this.emit('securitycode', code);
    }
  }
}
