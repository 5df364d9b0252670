// The data-protection promise end to end: a full meeting through the real signalling gateway with
// werift peers sending audio, video, a chat message and an E2EE key message, host actions and a
// poll. The control plane (a local HTTP server recording every byte) gets only allow-listed
// messages; the chat text, the password, the join tokens and the key message appear neither in
// what it got, nor in the outbox on disk, nor in the logs. And the logs, at debug level, carry no
// personal data at all: identities (e-mail addresses here), names, title, IP addresses.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createGateway } from '../gateway/Gateway.js';
import { JoinTokens } from '../gateway/tokens.js';
import { createControlPlaneAdapter, createMetricsRegistry, FileSink, HttpSink, MESSAGE_KINDS } from '../lib/index.js';
import { ControlPlaneReceiver } from './helpers/controlPlaneReceiver.js';
import { bytesOnDisk, CHAT_TEXT, PASSWORD, startCore, tempDir } from './helpers/controlPlane.js';
import { publish, SignallingClient, subscribe } from './helpers/signallingClient.js';
import { memoryLogger, nextEvent } from './helpers/util.js';

test('a meeting with media and chat through the gateway sends only allow-listed metadata; chat, password, tokens and keys stay', async () => {
  // One logger for everything in this process, at debug level: every line is inspected below.
  const { logger, lines } = memoryLogger('debug');
  const core = await startCore({ logger });
  const receiver = await ControlPlaneReceiver.start();
  const { dir, cleanup } = tempDir();
  const tokens = new JoinTokens('t'.repeat(40));
  const registry = createMetricsRegistry({ processMetrics: false });
  const gateway = await createGateway({ core, logger, registry, tokens });
  const adapter = createControlPlaneAdapter({
    source: core,
    outboxPath: join(dir, 'outbox.sqlite'),
    sinks: [new HttpSink({ url: receiver.url, secret: receiver.secret }), new FileSink({ path: join(dir, 'events.jsonl') })],
    logger,
    retry: { initialDelayMs: 20, maxDelayMs: 200 },
  });
  const url = `ws://127.0.0.1:${gateway.port}/signalling`;
  const clients: SignallingClient[] = [];
  const closers: Array<() => Promise<void>> = [];
  const KEY_MESSAGE = Buffer.from('E2EE-KEY-MATERIAL-7f3a9c1d5e');
  // Identities that are e-mail addresses (what a real identity provider hands out).
  const HOST_ID = 'hanna@x.example';
  const BOB_ID = 'bob.bauer@patient.example';
  try {
    core.createAccount({ id: 'klinik' });
    const meeting = await core.createMeeting({
      id: 'dp-e2e',
      accountId: 'klinik',
      title: 'Fallbesprechung Station 4',
      hostIdentity: HOST_ID,
      hostName: 'Dr. Hanna Host',
      hostEmail: 'hanna.host@klinik.example',
      hostProfilePictureUrl: 'https://cdn.klinik.example/staff/hanna-host.png',
      password: PASSWORD,
      settings: { waitingRoom: true },
    });
    const hostToken = await tokens.mint({ identity: HOST_ID, role: 'host', meetingId: 'dp-e2e', displayName: 'Dr. Hanna Host' });
    const bobToken = await tokens.mint({ identity: BOB_ID, role: 'participant', meetingId: 'dp-e2e', displayName: 'Bob Bauer' });

    const host = await SignallingClient.connect(url);
    clients.push(host);
    await host.join({ meetingId: 'dp-e2e', displayName: 'Dr. Hanna Host', joinToken: hostToken, e2eeCapable: true });
    const bob = await SignallingClient.connect(url);
    clients.push(bob);
    await bob.join({ meetingId: 'dp-e2e', displayName: 'Bob Bauer', joinToken: bobToken, password: PASSWORD, e2eeCapable: true });
    await host.call({ admit: { participantId: bob.participantId } });
    await bob.admitted();

    // Bob publishes audio, video and a chat channel; the host consumes them.
    const published = await publish(
      bob,
      [
        { name: 'mic', kind: 'audio', source: 'microphone' },
        { name: 'cam', kind: 'video', source: 'camera' },
      ],
      1,
    );
    closers.push(() => published.pub.close());
    const subscribed = await subscribe(host, [...published.producers.values()], [published.chatId!]);
    closers.push(() => subscribed.sub.close());
    await published.pub.chatOpen();
    const micConsumer = subscribed.consumers.get(published.producers.get('mic')!)!;
    // Media flows (sent until it arrives: packets before the consumer is ready are dropped).
    for (let i = 0; subscribed.sub.packetsOf(micConsumer).length === 0; i++) {
      if (i > 1500) throw new Error('no audio reached the host');
      published.pub.send('mic', Buffer.from(`opus-frame-${i}`.padEnd(100, '.')));
      published.pub.send('cam', Buffer.from(`vp8-frame-${i}`.padEnd(600, '#')), true);
      await new Promise((r) => setTimeout(r, 10));
    }
    published.pub.sendChat(CHAT_TEXT);
    await subscribed.sub.waitFor(() => subscribed.sub.chat.some((c) => c.text === CHAT_TEXT), 'the chat message at the host');
    // An E2EE key message is relayed to the host, opaque to the server.
    await bob.call({ sendKeyMessage: { toParticipantId: host.participantId, data: KEY_MESSAGE } });
    await host.waitFor('keyMessage');

    // Host actions and a poll.
    await host.call({ lock: {} });
    await host.call({ unlock: {} });
    await host.call({ mute: { participantId: bob.participantId } });
    const pollId = (await host.call({ createPoll: { question: 'Therapie fortsetzen?', options: ['Ja', 'Nein'] } })).pollCreated!.pollId;
    await bob.call({ answerPoll: { pollId, option: 0 } });
    await host.call({ closePoll: { pollId } });
    // The host's own endMeeting is answered before the gateway closes the host's connection.
    const endedEvent = nextEvent(core.observer, 'meetingended');
    await host.call({ endMeeting: {} });
    await endedEvent;
    assert.ok(meeting.ended);
    await adapter.drained();

    // What the control plane got: allow-listed messages only, each exactly as declared.
    const got = receiver.ofMeeting('dp-e2e');
    assert.ok(got.length >= 6, `the control plane heard the meeting (${got.length} events)`);
    assert.is(receiver.accepted.length, got.length, 'nothing about anything else');
    for (const e of got) assert.ok((MESSAGE_KINDS as readonly string[]).includes(e.kind), e.kind);
    assert.is(receiver.undeclared.length, 0, 'no body carried an undeclared field');
    assert.equal(got.map((e) => e.sequence), got.map((_, i) => i + 1));
    assert.ok(got.some((e) => e.kind === 'pollResults'));
    const joined = got.filter((e) => e.kind === 'participantJoined').map((e) => e.body.displayName);
    assert.equal(joined, ['Dr. Hanna Host', 'Bob Bauer']);
    // Participants' IP addresses are on the allow-list; the gateway hands them to the model.
    assert.equal(got.filter((e) => e.kind === 'participantJoined').map((e) => e.body.ipAddress), ['127.0.0.1', '127.0.0.1']);
    const ended = got.find((e) => e.kind === 'meetingEnded')!.body;
    assert.equal(ended.participantDisplayNames, ['Dr. Hanna Host', 'Bob Bauer']);

    // What must never leave, or stay behind: searched in every byte sent, every byte on disk of the
    // adapter (outbox database, WAL, JSON-lines file) and every log line.
    const secrets: Array<[string, string | Buffer]> = [
      ['chat text', CHAT_TEXT],
      ['meeting password', PASSWORD],
      ['host join token', hostToken],
      ['participant join token', bobToken],
      ['E2EE key message', KEY_MESSAGE],
      ['a media payload', 'opus-frame-'],
      ['a media payload', 'vp8-frame-'],
    ];
    const sent = receiver.allBytes;
    const disk = bytesOnDisk(dir);
    const logs = lines.join('\n');
    assert.ok(lines.length > 10, 'the logs were captured');
    for (const [what, value] of secrets) {
      assert.not.ok(sent.includes(value), `${what} reached the control plane`);
      assert.not.ok(disk.includes(value), `${what} is in the outbox or the JSON-lines file`);
      assert.not.ok(logs.includes(typeof value === 'string' ? value : value.toString()), `${what} is in the logs`);
    }
    // Personal data in every field, at debug level: none of it in any log line, whatever the key.
    // (The participants' IP address is 127.0.0.1, as the gateway sees them.)
    const personalData = [
      HOST_ID,
      BOB_ID,
      'hanna.host@klinik.example',
      'Dr. Hanna Host',
      'Bob Bauer',
      'Fallbesprechung',
      'https://cdn.klinik.example/staff/hanna-host.png',
      'Therapie fortsetzen?',
      '127.0.0.1',
    ];
    for (const value of personalData) {
      const line = lines.find((l) => l.includes(value));
      assert.is(line, undefined, `${value} is in the logs`);
    }
    assert.ok(lines.some((l) => l.includes('"msg":"host action"')), 'host actions were logged (by participant id)');
    // The chat text is also not there in any common encoding (base64 of the UTF-8 bytes).
    const b64 = Buffer.from(CHAT_TEXT).toString('base64').slice(0, 24);
    assert.not.ok(sent.includes(b64) || disk.includes(b64) || logs.includes(b64));
  } finally {
    for (const c of clients) c.close();
    for (const close of closers) await close().catch(() => undefined);
    await adapter.close();
    await gateway.close();
    core.close();
    await receiver.close();
    cleanup();
  }
});

test.run();
