// What a meeting client (the SDK's MeetingClient) plugs E2EE in with: one object that owns the
// key-schedule session and the frame transforms, fed from the signalling it already has. The
// SDK's part is a handful of calls:
//   on join:                  createE2eeController({ meetingId, selfId, send: sendKeyMessage })
//   key_message notification: controller.receive(from, data)
//   roster change:            controller.setParticipants(admitted participants, with admitted_seq)
//   producer created:         controller.attachSender(producer.rtpSender, codec mime type)
//   consumer created:         controller.attachReceiver(consumer.rtpReceiver, producer's participant, mime type)
//   transports:               peerConnectionOptions() as mediasoup-client `additionalSettings`
//   the meeting header:       controller.securityCode and its 'securitycode' event
import { ArgumentError } from '../../lib/errors.js';
import { Emitter } from './emitter.js';
import type { KeySink } from './sframe.js';
import { createE2eeSession, type E2eeMember, type E2eeSession } from './session.js';
import { createE2eeTransforms, type E2eeTransforms, type RtpEndpointLike } from './transform.js';

/** A participant as the SDK's roster has it. */
export interface RosterEntry {
  id: string;
  role: 'host' | 'cohost' | 'participant';
  e2eeCapable: boolean;
  /**
   * The server's admission number (ParticipantInfo.admitted_seq, 1, 2, ...; 0 or absent: unknown).
   * Every client sees the same numbers, so all elect the same key leader.
   */
  admittedSeq?: number;
}

/** The meeting's E2EE mode (MeetingSettings.e2ee). */
export type E2eeMode = 'off' | 'optional' | 'required';

/** What the meeting header says about encryption. */
export interface E2eeLabel {
  /** 'e2ee': everyone encrypts; 'mixed': some participants do not (never silent); 'none': no E2EE. */
  state: 'e2ee' | 'mixed' | 'none';
  /** A short text for the meeting header. */
  text: string;
  /** Participants without E2EE (state 'mixed'). */
  unencrypted: string[];
}

/**
 * The label of a meeting for its header: an `optional` meeting with participants who do not
 * encrypt is 'mixed' and says how many, so E2EE and non-E2EE participants are never mixed
 * silently. `selfE2ee`: whether this client encrypts.
 */
export function e2eeLabel(mode: E2eeMode, selfE2ee: boolean, roster: readonly RosterEntry[]): E2eeLabel {
  if (mode === 'off' || !selfE2ee) return { state: 'none', text: 'Not end-to-end encrypted', unencrypted: [] };
  const unencrypted = roster.filter((p) => !p.e2eeCapable).map((p) => p.id);
  if (unencrypted.length === 0) return { state: 'e2ee', text: 'End-to-end encrypted', unencrypted };
  const n = unencrypted.length;
  return { state: 'mixed', text: `Mixed: ${n} participant${n === 1 ? '' : 's'} without end-to-end encryption (their media is not end-to-end encrypted)`, unencrypted };
}

/** The text the web app shows when a join was refused because of E2EE (E2EE_REQUIRED / E2EE_NOT_SUPPORTED). */
export function e2eeRefusalText(code: string): string | undefined {
  if (code === 'E2EE_REQUIRED') return 'This meeting is end-to-end encrypted. Your browser or app did not offer end-to-end encryption, so it cannot join. Use a current Chrome, Edge, Firefox or Safari.';
  if (code === 'E2EE_NOT_SUPPORTED') return 'Your browser cannot encrypt media end to end (no encoded transforms). Use a current Chrome, Edge, Firefox or Safari.';
  return undefined;
}

/** Options of createE2eeController. */
export interface E2eeControllerOptions {
  meetingId: string;
  selfId: string;
  /** Sends an opaque key message (`send_key_message`): to one participant or (undefined) to all. */
  send: (to: string | undefined, data: Uint8Array) => void | Promise<void>;
  /** The frame transforms; default: createE2eeTransforms (browser). */
  transforms?: E2eeTransforms;
  /** @internal A sink instead of transforms (Node tests: a FrameCryptor). */
  sink?: KeySink;
}

/** Events of an E2eeController. */
export type E2eeControllerEvents = {
  /** The security code changed: show it in the meeting header. */
  securitycode: [code: string];
  /** A key message or transform error (logged by the SDK; media without a key is simply not sent). */
  error: [error: Error];
  listenererror: [event: string, error: unknown];
};

/** Creates the controller for one meeting session (a new one after a rejoin with a new participant id). */
export async function createE2eeController(options: E2eeControllerOptions): Promise<E2eeController> {
  const transforms = options.sink ? undefined : (options.transforms ?? createE2eeTransforms({ selfId: options.selfId }));
  const sink = options.sink ?? transforms!;
  const session = await createE2eeSession({ meetingId: options.meetingId, selfId: options.selfId, send: options.send, sink });
  return new E2eeController(session, transforms);
}

// Participants without an admission number sort after every numbered one.
const UNNUMBERED = 2 ** 32;

/** See the file comment. */
export class E2eeController extends Emitter<E2eeControllerEvents> {
  readonly session: E2eeSession;
  readonly transforms: E2eeTransforms | undefined;
  readonly #order = new Map<string, number>();
  #next = 0;
  #started = false;

  /** @internal Use createE2eeController. */
  constructor(session: E2eeSession, transforms: E2eeTransforms | undefined) {
    super();
    this.session = session;
    this.transforms = transforms;
    session.on('securitycode', (code) => this.emit('securitycode', code));
    session.on('messageerror', (_from, error) => this.emit('error', error));
    if (transforms) {
      transforms.handlers.keymissing = (participantId, kid) => void session.keyMissing(participantId, kid);
      transforms.handlers.error = (message) => this.emit('error', new Error(message));
    }
  }

  /** The security code to show (undefined until the first roster). */
  get securityCode(): string | undefined {
    return this.session.securityCode;
  }

  /**
   * The admitted participants. Without a host the earliest admitted one is the key leader:
   * `admittedSeq` decides (the order this client learned them in only where it is missing). Only E2EE-capable ones take
   * part; this participant must be in the list. Publishes this client's key on the first call.
   */
  async setParticipants(roster: readonly RosterEntry[]): Promise<void> {
    const members: E2eeMember[] = [];
    for (const p of roster) {
      if (typeof p?.id !== 'string' || p.id === '') throw new ArgumentError('a roster entry needs an id');
      if (!p.e2eeCapable) continue;
      if (!this.#order.has(p.id)) this.#order.set(p.id, this.#next++);
      // The server's admission number where it sent one (the same on every client); the order
      // this client learned participants in only for a server that does not (after all numbered ones).
      const seq = typeof p.admittedSeq === 'number' && p.admittedSeq > 0 ? p.admittedSeq : UNNUMBERED + this.#order.get(p.id)!;
      members.push({ participantId: p.id, isHost: p.role === 'host', joinOrder: seq });
    }
    for (const id of [...this.#order.keys()]) if (!roster.some((p) => p.id === id)) this.#order.delete(id);
    await this.session.setMembers(members);
    if (!this.#started) {
      this.#started = true;
      await this.session.start();
    }
  }

  /** A `key_message` notification. A bad one is reported as 'error' and changes nothing. */
  async receive(from: string, data: Uint8Array): Promise<void> {
    await this.session.receive(from, data).catch(() => undefined);
  }

  /** Encrypts what `sender` (mediasoup-client `producer.rtpSender`) sends. */
  attachSender(sender: RtpEndpointLike, mimeType?: string): void {
    this.transforms?.attachSender(sender, mimeType);
  }

  /** Decrypts what `receiver` (`consumer.rtpReceiver`) receives from `participantId`. */
  attachReceiver(receiver: RtpEndpointLike, participantId: string, mimeType?: string): void {
    this.transforms?.attachReceiver(receiver, participantId, mimeType);
  }

  /** Ends E2EE for this session: keys forgotten, worker stopped. */
  close(): void {
    this.session.close();
    this.transforms?.close();
  }
}
