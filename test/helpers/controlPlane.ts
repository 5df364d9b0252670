// Shared pieces of the control-plane tests: a media core, a temporary outbox folder, and a meeting
// that goes through the host actions the audit record must show.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createMediaCore,
  createMetricsRegistry,
  type Logger,
  type MediaCore,
  type Meeting,
  type MeetingSettings,
  type Participant,
} from '../../lib/index.js';
import { silentLogger } from './util.js';

export const PASSWORD = 'Kennwort-Geheim-4711';
export const CHAT_TEXT = 'Vertraulich: Patientin Müller, Zimmer 12, Befund positiv';

export async function startCore(
  options: { logger?: Logger; regions?: string[]; respawn?: boolean; participantsPerWorker?: number } = {},
): Promise<MediaCore> {
  return createMediaCore({
    logger: options.logger ?? silentLogger(),
    registry: createMetricsRegistry({ processMetrics: false }),
    workers: { regions: options.regions ?? ['de-fra'], ...(options.respawn === undefined ? {} : { respawn: options.respawn }) },
    ...(options.participantsPerWorker ? { media: { participantsPerWorker: options.participantsPerWorker } } : {}),
  });
}

/** A fresh folder for an outbox (and a JSON-lines file), removed by `cleanup`. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'c4v-cp-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Every file of a folder concatenated: the outbox database, its WAL and journal, the JSONL file. */
export function bytesOnDisk(dir: string): Buffer {
  return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
}

export interface MeetingRun {
  meeting: Meeting;
  host: Participant;
  bob: Participant;
  carol: Participant;
  pollId: string;
}

/**
 * A meeting with a password, a waiting room and the host actions of the audit record: admit,
 * deny, lock, unlock, mute, make co-host, a poll, a settings change, remove, end (when `end`).
 */
export async function runMeeting(
  core: MediaCore,
  id: string,
  options: { accountId?: string; end?: boolean; settings?: Partial<MeetingSettings> } = {},
): Promise<MeetingRun> {
  const meeting = await core.createMeeting({
    id,
    accountId: options.accountId ?? 'acme',
    title: `Sprechstunde ${id}`,
    hostIdentity: `host@${id}`,
    hostName: 'Dr. Anna Gastgeberin',
    hostEmail: 'anna.gastgeberin@klinik.example',
    password: PASSWORD,
    settings: { waitingRoom: true, ...options.settings },
    scheduledStart: new Date('2026-12-01T09:00:00Z'),
    scheduledDurationMinutes: 45,
    recurrence: { type: 'weekly', durationWeeks: 6 },
    hostTimeZone: 'Europe/Berlin',
    dialInNumbers: ['+49 30 5555 0100'],
  });
  const host = await meeting.join({
    identity: `host@${id}`,
    displayName: 'Dr. Anna Gastgeberin',
    authenticated: true,
    asHost: true,
    email: 'anna.gastgeberin@klinik.example',
    e2eeCapable: true,
  });
  const bob = await meeting.join({
    identity: `bob@${id}`,
    displayName: 'Bob Bauer',
    authenticated: true,
    email: 'bob.bauer@kanzlei.example',
    password: PASSWORD,
    e2eeCapable: true,
  });
  // A guest: the e-mail she typed is not a registered participant's and must not be exported.
  const carol = await meeting.join({
    identity: `carol@${id}`,
    displayName: 'Carol Christ',
    authenticated: false,
    email: 'carol.selbst@guest.example',
    password: PASSWORD,
    e2eeCapable: true,
  });
  const eve = await meeting.join({ identity: `eve@${id}`, displayName: 'Eve Eindringling', authenticated: false, password: PASSWORD, e2eeCapable: true });
  meeting.admit(host, bob.id);
  meeting.admit(host, carol.id);
  meeting.deny(host, eve.id);
  meeting.lock(host);
  meeting.unlock(host);
  await meeting.mute(host, bob.id);
  meeting.makeCoHost(host, bob.id);
  const pollId = meeting.createPoll(host, { question: 'Nächster Termin?', options: ['Montag', 'Dienstag'] });
  bob.answerPoll(pollId, 1);
  carol.answerPoll(pollId, 0);
  meeting.closePoll(host, pollId);
  meeting.updateSettings(host, { muteOnEntry: true });
  meeting.remove(host, carol.id);
  if (options.end ?? true) meeting.end(host);
  return { meeting, host, bob, carol, pollId };
}
