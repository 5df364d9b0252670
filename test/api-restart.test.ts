// Durable definitions (issue 15): accounts, scheduled meetings and meeting-scoped keys survive a
// restart of the demo server, in the outbox's SQLite file by default or in an explicit file;
// ended meetings are not brought back, and a restored meeting keeps its password (as its hash).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../gateway/api/schemas.js';
import { ApiClient, ApiError } from '../gateway/api/client.js';
import { pb } from '../gateway/wire.js';
import { adminClient, raw, startServer } from './helpers/api.js';
import { tempDir } from './helpers/controlPlane.js';
import { SignallingClient, wireCodeOf } from './helpers/signallingClient.js';

const PASSWORD = 'Sprechtag-2030!';

function tables(path: string): string[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name);
  } finally {
    db.close();
  }
}

test('accounts, scheduled meetings and scoped keys survive a restart; an ended meeting stays ended', async () => {
  const { dir, cleanup } = tempDir();
  try {
    let before: { account: S.AccountResource; meeting: S.MeetingResource; key: S.ApiKeyResource };
    {
      const server = await startServer(dir);
      try {
        const api = adminClient(server);
        const account = await api.createAccount({ id: 'schule', name: 'Grundschule', defaults: { retentionDays: 10, allowedRegions: ['DE'] }, locked: ['waitingRoom'] });
        const meeting = await api.createMeeting({
          id: 'sprechtag',
          accountId: 'schule',
          title: 'Elternsprechtag',
          hostIdentity: 'rektorin',
          hostName: 'Frau Rektorin',
          hostProfilePictureUrl: 'https://schule.example/rektorin.png',
          password: PASSWORD,
          scheduledStart: '2030-11-20T15:00:00+01:00',
          scheduledDurationMinutes: 120,
          recurrence: { type: 'weekly', durationWeeks: 2 },
          hostTimeZone: 'Europe/Berlin',
          settings: { hostRequiredToStart: false },
        });
        const key = await api.createMeetingKey('sprechtag');
        await api.createMeeting({ id: 'beendet', accountId: 'schule', title: 'Vorbei', hostIdentity: 'rektorin' });
        await api.endMeeting('beendet');
        before = { account, meeting, key };
      } finally {
        await server.close();
      }
    }
    // By default the definitions live in the control-plane outbox's file, in their own tables.
    assert.ok(tables(join(dir, 'outbox.db')).includes('def_meetings'));
    assert.ok(tables(join(dir, 'outbox.db')).includes('events'));

    const server = await startServer(dir);
    const clients: SignallingClient[] = [];
    try {
      const api = adminClient(server);
      assert.equal(S.Account.parse(await api.getAccount('schule')), before.account, 'the account is back as it was');
      const m = S.Meeting.parse(await api.getMeeting('sprechtag'));
      assert.equal(m, before.meeting, 'the scheduled meeting is back with its metadata');
      assert.is(m.status, 'scheduled');
      assert.ok(server.core.getMeeting('sprechtag'), 'and live in the media core');
      // The password was kept as its scrypt hash only, and still works.
      const token = await api.createToken('sprechtag', { role: 'participant', identity: 'vater', displayName: 'Vater' });
      const wrong = await SignallingClient.connect(server.gateway.url);
      clients.push(wrong);
      assert.is(await wireCodeOf(wrong.join({ meetingId: 'sprechtag', displayName: 'Vater', joinToken: token.token, password: 'falsch', e2eeCapable: true })), 'WRONG_PASSWORD');
      const right = await SignallingClient.connect(server.gateway.url);
      clients.push(right);
      const j = await right.join({ meetingId: 'sprechtag', displayName: 'Vater', joinToken: token.token, password: PASSWORD, e2eeCapable: true });
      assert.is(j.state, pb.ParticipantState.WAITING_ROOM);
      // The scoped key still works, on its meeting only.
      const scoped = new ApiClient({ url: server.gateway.httpUrl, keyId: before.key.keyId, secret: before.key.secret });
      assert.is((await scoped.getMeeting('sprechtag')).id, 'sprechtag');
      assert.is((await raw(server, 'GET', '/meetings/beendet', { key: { id: before.key.keyId, secret: before.key.secret } })).status, 403);
      // The ended meeting is remembered as ended, not restarted.
      assert.is(server.core.getMeeting('beendet'), undefined);
      assert.is(S.Meeting.parse(await api.getMeeting('beendet')).status, 'ended');
      try {
        await api.createToken('beendet', { role: 'host' });
        assert.unreachable('a token for an ended meeting');
      } catch (error) {
        assert.instance(error, ApiError);
        assert.is((error as ApiError).code, 'MEETING_ENDED');
      }
    } finally {
      for (const c of clients) c.ws.terminate();
      await server.close();
    }
  } finally {
    cleanup();
  }
});

test('api.storePath (C4V_API_STORE) puts the definitions in a file of their own', async () => {
  const { dir, cleanup } = tempDir();
  const store = join(dir, 'definitions', 'operator.db');
  try {
    const server = await startServer(dir, { C4V_API_STORE: store });
    try {
      await adminClient(server).createAccount({ id: 'eigen' });
    } finally {
      await server.close();
    }
    assert.ok(existsSync(store));
    assert.ok(tables(store).includes('def_accounts'));
    assert.not.ok(tables(join(dir, 'outbox.db')).includes('def_accounts'), 'the outbox file holds no definitions');
    const again = await startServer(dir, { C4V_API_STORE: store });
    try {
      assert.is((await adminClient(again).getAccount('eigen')).id, 'eigen');
    } finally {
      await again.close();
    }
  } finally {
    cleanup();
  }
});

test.run();
