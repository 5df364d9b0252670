// Issue 12: E2EE wired into the browser SDK. `connect(url, { e2ee: true })` creates an
// E2eeController once the join is answered and feeds it from the MeetingClient: key messages
// (`key_message` / `send_key_message`), the roster with the server's admission numbers, and the
// transforms on every RTCRtpSender / RTCRtpReceiver mediasoup-client creates (through its
// onRtpSender / onRtpReceiver hooks, so the transform is in place before the first frame: a
// frame without a key is dropped, never sent in the clear).
import { createE2eeController, e2eeLabel, type E2eeController, type RosterEntry } from '../e2ee/controller.js';
import { detectTransformApi, peerConnectionOptions, type TransformApi } from '../e2ee/transform.js';
import { E2eeError } from '../e2ee/errors.js';
import type { MeetingClient } from '../core/meeting.js';

/** @internal What the browser adapter needs of the E2EE wiring. */
export interface BrowserE2ee {
  readonly api: TransformApi;
  /** Resolves with the controller once the join is answered (undefined: this session does not encrypt). */
  readonly ready: Promise<E2eeController | undefined>;
  /** Which remote participants encrypt (their frames get a decrypting transform). */
  encrypts(participantId: string): boolean;
}

/** @internal The page-side state of one E2EE client: created before the join, started after it. */
export class BrowserE2eeWiring implements BrowserE2ee {
  readonly api: TransformApi;
  readonly ready: Promise<E2eeController | undefined>;
  #resolve!: (c: E2eeController | undefined) => void;
  #client: MeetingClient<unknown> | undefined;
  #controller: E2eeController | undefined;
  /** Roster updates run one at a time, in order (each one is a key-schedule step). */
  #queue: Promise<unknown> = Promise.resolve();
  #rosterSeen = false;

  /** Throws E2EE_NOT_SUPPORTED when this browser has no encoded-transform API. */
  constructor(g: object = globalThis) {
    this.api = detectTransformApi(g);
    if (this.api === 'none') throw new E2eeError('E2EE_NOT_SUPPORTED', 'this browser has neither RTCRtpScriptTransform nor createEncodedStreams: it cannot encrypt media end to end');
    this.ready = new Promise((resolve) => (this.#resolve = resolve));
  }

  /** RTCPeerConnection settings the transports need for this API. */
  get peerConnectionSettings(): Record<string, unknown> {
    return peerConnectionOptions(this.api);
  }

  encrypts(participantId: string): boolean {
    return this.#client?.participants.find((p) => p.id === participantId)?.e2eeCapable ?? false;
  }

  /**
   * After the join answer. A meeting with E2EE 'off' relays no key messages: nothing is
   * encrypted there (the status says so). Binds the client's events before it can emit a roster.
   */
  async start(client: MeetingClient<unknown>): Promise<void> {
    this.#client = client;
    if (client.e2eeMode === 'off') {
      this.#resolve(undefined);
      client._setE2eeStatus(e2eeLabel('off', false, []));
      return;
    }
    // Key messages and rosters that arrive while the key pair is generated wait in the queue.
    const pending: Array<[string, Uint8Array]> = [];
    client.on('keymessage', (from, data) => {
      if (this.#controller) void this.#controller.receive(from, data);
      else pending.push([from, data]);
    });
    const update = (): void => void this.#enqueue(() => this.#setRoster());
    client.on('roster', () => {
      this.#rosterSeen = true;
      update();
    });
    client.on('participantjoined', update);
    client.on('participantleft', update);
    client.on('rolechanged', update);
    client.on('state', () => {
      if (client.closed) this.close();
    });
    try {
      const controller = await createE2eeController({
        meetingId: client.meetingId,
        selfId: client.participantId,
        send: (to, data) => client.sendKeyMessage(to, data),
      });
      this.#controller = controller;
      controller.on('securitycode', (code) => client._setSecurityCode(code));
      controller.on('error', (error) => client._reportError(error));
      for (const [from, data] of pending.splice(0)) void controller.receive(from, data);
      this.#resolve(controller);
      if (this.#rosterSeen) update();
    } catch (error) {
      this.#resolve(undefined);
      throw error;
    }
  }

  #enqueue(fn: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch((error: unknown) => this.#client?._reportError(error instanceof Error ? error : new Error(String(error))));
    return run;
  }

  async #setRoster(): Promise<void> {
    const client = this.#client;
    const controller = this.#controller;
    if (!client || !controller || !this.#rosterSeen || client.closed) return;
    const roster: RosterEntry[] = [
      { id: client.participantId, role: client.role, e2eeCapable: true, admittedSeq: client.admittedSeq },
      ...client.participants.map((p) => ({ id: p.id, role: p.role, e2eeCapable: p.e2eeCapable, admittedSeq: p.admittedSeq })),
    ];
    client._setE2eeStatus(e2eeLabel(client.e2eeMode, true, roster));
    await controller.setParticipants(roster);
  }

  /** Ends E2EE for the session: keys forgotten, worker stopped. */
  close(): void {
    this.#controller?.close();
  }
}
