// The meeting web app served by `c4v-media serve` at `/`: plain TypeScript and DOM on the SDK.
// Screens: pre-join (name, password, camera/microphone preview), waiting, the meeting (grid with
// the active speaker, screen share, chat, host panel), and a closed screen for every ending.
import {
  attachTrack,
  ClientError,
  connect,
  detectTransformApi,
  e2eeRefusalText,
  inboundStats,
  publishCamera,
  publishMicrophone,
  publishScreen,
  type BrowserMeeting,
  type RemoteParticipant,
  type RemoteTrack,
} from '../client/browser/index.js';

const $ = <E extends HTMLElement = HTMLElement>(id: string): E => document.getElementById(id) as E;

/** What each refusal code means to a person (every code a join or a host action can get). */
const REFUSALS: Record<string, string> = {
  MEETING_ENDED: 'This meeting has ended.',
  MEETING_LOCKED: 'The host has locked this meeting. Nobody else can join right now.',
  MEETING_FULL: 'The meeting is full.',
  BANNED: 'You were removed from this meeting and cannot join again.',
  PASSWORD_REQUIRED: 'This meeting needs a password.',
  WRONG_PASSWORD: 'The password is not right.',
  TOO_MANY_ATTEMPTS: 'Too many wrong passwords. Please wait a while and try again.',
  E2EE_REQUIRED: 'This meeting needs end-to-end encryption, which this browser cannot do.',
  GUESTS_NOT_ALLOWED: 'Only signed-in users may join this meeting.',
  INVALID_TOKEN: 'The join link is not valid.',
  TOKEN_EXPIRED: 'The join link has expired. Ask the host for a new one.',
  NOT_FOUND: 'There is no such meeting.',
  NOT_PERMITTED: 'Only the host may do that.',
  NOT_ADMITTED: 'You are not in the meeting yet.',
  CHAT_DISABLED: 'Chat is switched off in this meeting.',
  SCREEN_SHARE_DISABLED: 'Screen sharing is switched off for participants.',
  ALREADY_ANSWERED: 'You already answered this poll.',
  RATE_LIMITED: 'Too many requests. Please slow down.',
  UNSUPPORTED_VERSION: 'This app is too old for the server. Reload the page.',
  CONNECTION_FAILED: 'The meeting server cannot be reached.',
  INTERNAL: 'Something went wrong on the server.',
};

/** Why a session ended, for the closed screen. */
const ENDINGS: Record<string, [string, string]> = {
  denied: ['Not admitted', 'The host did not let you in.'],
  removed: ['Removed', 'The host removed you from the meeting. You cannot join again.'],
  'meeting-ended': ['The meeting has ended', 'The host ended the meeting for everyone.'],
  'host-left': ['The meeting has ended', 'The host left.'],
  'worker-failed': ['Connection lost', 'The media server failed and the meeting could not continue.'],
  'connection-lost': ['Connection lost', 'The connection to the meeting was lost.'],
  replaced: ['Joined elsewhere', 'You joined this meeting from another window.'],
  'server-shutdown': ['Server stopped', 'The meeting server is shutting down.'],
  left: ['You left the meeting', ''],
};

function refusal(error: unknown): string {
  // Issue 12: E2EE_REQUIRED / E2EE_NOT_SUPPORTED say why and what to use instead.
  const code = (error as { code?: unknown } | null)?.code;
  const e2ee = typeof code === 'string' ? e2eeRefusalText(code) : undefined;
  if (e2ee) return e2ee;
  if (error instanceof ClientError) return REFUSALS[error.code] ?? `${error.code}: ${error.reason}`;
  return String(error instanceof Error ? error.message : error);
}

function show(screen: 'prejoin' | 'waiting' | 'meeting' | 'closed'): void {
  for (const id of ['prejoin', 'waiting', 'meeting', 'closed']) $(id).hidden = id !== screen;
  document.body.dataset.screen = screen;
}

const params = new URLSearchParams(location.search);
// The token comes in the fragment (#token=..., never sent to any server) or, in links from the
// operator API, in the query; either way it is taken off the address bar at once, so that it does
// not stay in the history or reach a Referer.
const token = new URLSearchParams(location.hash.slice(1)).get('token') ?? params.get('token') ?? undefined;
if (token) {
  const clean = new URL(location.href);
  clean.hash = '';
  clean.searchParams.delete('token');
  history.replaceState(null, '', clean.href);
}
const meetingId = params.get('meeting') ?? 'demo';
const signallingUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/signalling`;

let meeting: BrowserMeeting | undefined;
let preview: MediaStream | undefined;
const tiles = new Map<string, HTMLElement>();
const detach = new Map<string, () => void>();

function notice(text: string): void {
  $('notice').textContent = text;
}

async function startPreview(): Promise<void> {
  try {
    preview = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
    $<HTMLVideoElement>('preview').srcObject = preview;
  } catch (error) {
    $('prejoin-error').textContent = `Camera or microphone not available: ${String(error)}`;
  }
}

function tileFor(participantId: string, source: string, name: string): HTMLElement {
  const key = `${participantId}:${source === 'screen-video' ? 'screen' : 'camera'}`;
  let tile = tiles.get(key);
  if (tile) return tile;
  tile = document.createElement('div');
  tile.className = 'tile';
  tile.dataset.participant = participantId;
  tile.dataset.source = source === 'screen-video' ? 'screen' : 'camera';
  const video = document.createElement('video');
  video.muted = true;
  const label = document.createElement('span');
  label.className = 'label';
  label.textContent = source === 'screen-video' ? `${name} (screen)` : name;
  const actions = document.createElement('span');
  actions.className = 'actions';
  const enlarge = document.createElement('button');
  enlarge.textContent = 'Enlarge';
  enlarge.className = 'enlarge';
  enlarge.onclick = () => tile!.classList.toggle('large');
  actions.append(enlarge);
  if (meeting && (meeting.role === 'host' || meeting.role === 'cohost') && participantId !== meeting.participantId) {
    for (const [cls, text, fn] of [
      ['mute', 'Mute', () => meeting!.muteParticipant(participantId)],
      ['remove', 'Remove', () => meeting!.remove(participantId)],
      ['stop-share', 'Stop share', () => meeting!.stopScreenShare(participantId)],
    ] as const) {
      if (cls === 'stop-share' && source !== 'screen-video') continue;
      const b = document.createElement('button');
      b.className = cls;
      b.textContent = text;
      b.onclick = () => void fn().catch((e: unknown) => notice(refusal(e)));
      actions.append(b);
    }
  }
  tile.append(video, label, actions);
  $('grid').append(tile);
  tiles.set(key, tile);
  return tile;
}

function nameOf(id: string): string {
  return meeting?.participants.find((p) => p.id === id)?.displayName ?? 'Guest';
}

function onTrack(t: RemoteTrack<MediaStreamTrack>): void {
  if (t.kind === 'audio') {
    const audio = document.createElement('audio');
    audio.dataset.consumer = t.consumerId;
    document.body.append(audio);
    detach.set(t.consumerId, attachTrack(meeting!, t, audio));
    return;
  }
  const tile = tileFor(t.participantId, t.source, nameOf(t.participantId));
  tile.dataset.consumer = t.consumerId;
  const video = tile.querySelector('video')!;
  detach.set(t.consumerId, attachTrack(meeting!, t, video));
}

function onTrackEnded(t: RemoteTrack<MediaStreamTrack>): void {
  detach.get(t.consumerId)?.();
  detach.delete(t.consumerId);
  document.querySelector(`audio[data-consumer="${t.consumerId}"]`)?.remove();
  for (const [key, tile] of tiles) {
    if (tile.dataset.consumer !== t.consumerId) continue;
    tile.remove();
    tiles.delete(key);
  }
}

function renderWaitingList(list: RemoteParticipant[]): void {
  const ul = $('waiting-list');
  ul.replaceChildren(
    ...list.map((p) => {
      const li = document.createElement('li');
      li.dataset.participant = p.id;
      li.textContent = `${p.displayName} `;
      for (const [cls, text, fn] of [
        ['admit', 'Admit', () => meeting!.admit(p.id)],
        ['deny', 'Deny', () => meeting!.deny(p.id)],
      ] as const) {
        const b = document.createElement('button');
        b.className = cls;
        b.textContent = text;
        b.onclick = () => void fn().catch((e: unknown) => notice(refusal(e)));
        li.append(b);
      }
      return li;
    }),
  );
}

function addChat(from: string, text: string): void {
  const li = document.createElement('li');
  const who = document.createElement('b');
  who.textContent = `${from}: `;
  li.append(who, document.createTextNode(text));
  $('chat-log').append(li);
}

function enterMeeting(m: BrowserMeeting): void {
  show('meeting');
  $('meeting-title').textContent = m.title;
  $('host-panel').hidden = !(m.role === 'host' || m.role === 'cohost');
  renderWaitingList(m.waiting);
}

function wire(m: BrowserMeeting): void {
  m.on('state', (state, reason) => {
    document.body.dataset.state = state;
    if (state === 'waiting-room' || state === 'waiting-for-host') {
      show('waiting');
      $('waiting-text').textContent = state === 'waiting-room' ? 'You are in the waiting room. The host will let you in soon.' : 'Waiting for the host to start the meeting.';
    } else if (state === 'admitted') {
      enterMeeting(m);
      void publishLocal(m);
    } else if (m.closed) {
      const [title, text] = ENDINGS[reason ?? ''] ?? ['The meeting is over', reason ?? ''];
      $('closed-title').textContent = title;
      $('closed-text').textContent = text;
      document.body.dataset.reason = reason ?? '';
      for (const stop of detach.values()) stop();
      preview?.getTracks().forEach((t) => t.stop());
      show('closed');
    }
  });
  m.on('track', onTrack);
  m.on('trackended', onTrackEnded);
  m.on('layers', (t, layers) => {
    const tile = [...tiles.values()].find((x) => x.dataset.consumer === t.consumerId);
    if (tile) tile.dataset.spatialLayer = layers ? String(layers.spatialLayer) : '';
  });
  m.on('activespeaker', (id) => {
    for (const tile of tiles.values()) tile.classList.toggle('speaking', tile.dataset.participant === id && tile.dataset.source === 'camera');
    document.body.dataset.activeSpeaker = id;
  });
  m.on('chat', (msg) => addChat(msg.displayName || 'Guest', msg.text));
  m.on('waitinglist', renderWaitingList);
  m.on('rolechanged', () => {
    $('host-panel').hidden = !(m.role === 'host' || m.role === 'cohost');
  });
  m.on('locked', (locked) => {
    $('lock-state').textContent = locked ? 'Locked' : '';
    $('lock').textContent = locked ? 'Unlock' : 'Lock';
  });
  m.on('mutedbyhost', (source) => {
    notice(`The host muted your ${source}. Only you can unmute it.`);
    $('toggle-mic').textContent = 'Unmute';
    document.body.dataset.mutedByHost = source;
  });
  m.on('localtrack', (source) => {
    if (source === 'screen-video') $('share').textContent = 'Stop sharing';
  });
  m.on('localtrackended', (source) => {
    if (source === 'screen-video') {
      $('share').textContent = 'Share screen';
      notice('Your screen share was stopped.');
    }
  });
  m.on('poll', (p) => {
    const box = document.createElement('div');
    box.className = 'poll';
    box.dataset.poll = p.id;
    const q = document.createElement('p');
    q.textContent = p.question;
    box.append(q);
    p.options.forEach((o, i) => {
      const b = document.createElement('button');
      b.textContent = o;
      b.onclick = () => void m.answerPoll(p.id, i).then(() => box.remove(), (e: unknown) => notice(refusal(e)));
      box.append(b);
    });
    $('polls').append(box);
  });
  m.on('reconnecting', (scope) => notice(scope === 'media' ? 'Media server changed: reconnecting…' : 'Connection lost: reconnecting…'));
  m.on('reconnected', (scope) => {
    notice('');
    // For tests and monitoring: how many times the signalling was resumed.
    if (scope === 'signalling') document.body.dataset.resumed = String(Number(document.body.dataset.resumed ?? 0) + 1);
  });
  m.on('error', (e) => notice(refusal(e)));
}

/** Issue 12: the E2EE label and the security code in the meeting header, kept current. */
function wireE2ee(m: BrowserMeeting): void {
  const label = (): void => {
    const s = m.e2eeStatus;
    $('e2ee-label').textContent = s.text;
    $('e2ee-label').dataset.state = s.state;
  };
  const code = (): void => {
    $('security-code').textContent = m.securityCode ? `Security code ${m.securityCode}` : '';
    if (m.securityCode) document.body.dataset.securityCode = m.securityCode;
  };
  label();
  code();
  m.on('e2ee', label);
  m.on('securitycode', code);
}

async function publishLocal(m: BrowserMeeting): Promise<void> {
  try {
    const wantMic = $<HTMLInputElement>('with-mic').checked;
    const wantCam = $<HTMLInputElement>('with-camera').checked;
    const audio = preview?.getAudioTracks()[0];
    const video = preview?.getVideoTracks()[0];
    if (wantMic) audio ? await m.publish('microphone', audio) : await publishMicrophone(m);
    if (wantCam) video ? await m.publish('camera', video) : await publishCamera(m);
  } catch (error) {
    notice(refusal(error));
  }
}

function controls(): void {
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void join();
  });
  $('toggle-mic').onclick = () => {
    if (!meeting) return;
    const muted = $('toggle-mic').textContent === 'Unmute';
    void (muted ? meeting.unmute('microphone') : meeting.mute('microphone')).then(() => {
      $('toggle-mic').textContent = muted ? 'Mute' : 'Unmute';
      if (muted) delete document.body.dataset.mutedByHost;
    });
  };
  $('toggle-cam').onclick = () => {
    if (!meeting) return;
    const off = $('toggle-cam').textContent === 'Camera on';
    void (off ? meeting.unmute('camera') : meeting.mute('camera')).then(() => ($('toggle-cam').textContent = off ? 'Camera off' : 'Camera on'));
  };
  $('share').onclick = () => {
    if (!meeting) return;
    if ($('share').textContent === 'Stop sharing') {
      void meeting.unpublish('screen-video').then(() => ($('share').textContent = 'Share screen'));
      return;
    }
    void publishScreen(meeting).then(
      () => ($('share').textContent = 'Stop sharing'),
      (e: unknown) => notice(refusal(e)),
    );
  };
  $('leave').onclick = () => void meeting?.leave();
  $('admit-all').onclick = () => void meeting?.admitAll().catch((e: unknown) => notice(refusal(e)));
  $('lock').onclick = () => void (meeting?.locked ? meeting.unlock() : meeting?.lock())?.catch((e: unknown) => notice(refusal(e)));
  $('mute-all').onclick = () => void meeting?.muteAll().catch((e: unknown) => notice(refusal(e)));
  $('end').onclick = () => void meeting?.end().catch((e: unknown) => notice(refusal(e)));
  $('poll-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $<HTMLInputElement>('poll-question').value.trim();
    const options = $<HTMLInputElement>('poll-options').value.split(',').map((s) => s.trim()).filter(Boolean);
    void meeting?.createPoll(q, options).catch((e: unknown) => notice(refusal(e)));
  });
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('chat-input');
    const text = input.value.trim();
    if (!text || !meeting) return;
    void meeting.sendChat(text).then(
      () => {
        addChat('You', text);
        input.value = '';
      },
      (e: unknown) => notice(refusal(e)),
    );
  });
}

async function join(): Promise<void> {
  $('prejoin-error').textContent = '';
  $<HTMLButtonElement>('join').disabled = true;
  try {
    const m = await connect(signallingUrl, {
      meetingId,
      // Issue 12: encrypt end to end wherever the browser can (`?e2ee=off` joins without, e.g.
      // to compare); an 'optional' meeting with such a client is labelled mixed for everyone.
      e2ee: params.get('e2ee') !== 'off' && detectTransformApi() !== 'none',
      displayName: $<HTMLInputElement>('name').value,
      ...(token ? { token } : {}),
      ...($<HTMLInputElement>('password').value ? { password: $<HTMLInputElement>('password').value } : {}),
    });
    meeting = m;
    (window as unknown as { c4v: unknown }).c4v = { meeting: m, inboundStats: () => inboundStats(m) };
    wire(m);
    wireE2ee(m);
    document.body.dataset.state = m.state;
    if (m.state === 'admitted') {
      enterMeeting(m);
      void publishLocal(m);
    } else show('waiting');
  } catch (error) {
    $('prejoin-error').textContent = refusal(error);
    $<HTMLButtonElement>('join').disabled = false;
  }
}

controls();
show('prejoin');
$('title').textContent = `Meeting ${meetingId}`;
void startPreview();
