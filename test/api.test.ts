// The operator API (issue 15) over real HTTP on the demo server's gateway: every route, with its
// refusals (401 wrong key, 403 scoped key elsewhere, SETTING_LOCKED, 400 naming the field), real
// signalling clients in the meetings, and the answers checked against the schemas that the
// OpenAPI document is generated from.
import { SignJWT } from 'jose';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../gateway/api/schemas.js';
import { API_AUDIENCE } from '../gateway/api/auth.js';
import { ApiError } from '../gateway/api/client.js';
import type { DemoServer } from '../gateway/serve.js';
import { pb } from '../gateway/wire.js';
import { createGateway } from '../gateway/Gateway.js';
import { createOperatorApi } from '../gateway/api/OperatorApi.js';
import { openDefinitionStore } from '../lib/store/DefinitionStore.js';
import { createMetricsRegistry } from '../lib/index.js';
import { ADMIN, adminClient, raw, startServer } from './helpers/api.js';
import { silentLogger } from './helpers/util.js';
import { tempDir } from './helpers/controlPlane.js';
import { SignallingClient, wireCodeOf } from './helpers/signallingClient.js';

let server: DemoServer;
let cleanup: () => void;
const clients: SignallingClient[] = [];

test.before(async () => {
  const t = tempDir();
  cleanup = t.cleanup;
  server = await startServer(t.dir);
});

test.after(async () => {
  for (const c of clients) c.ws.terminate();
  await server.close();
  cleanup();
});

async function connect(): Promise<SignallingClient> {
  const c = await SignallingClient.connect(server.gateway.url);
  clients.push(c);
  return c;
}

/** An ApiError's code, or a failure when the call did not throw. */
async function codeOf(p: Promise<unknown>): Promise<{ code: string; status: number; field: string | undefined }> {
  try {
    await p;
  } catch (error) {
    assert.instance(error, ApiError);
    const e = error as ApiError;
    return { code: e.code, status: e.status, field: e.field };
  }
  assert.unreachable('the API call succeeded');
  throw new Error('unreachable');
}

test('GET /api/v1/openapi.json serves the document generated from the validating schemas', async () => {
  const res = await fetch(`${server.gateway.httpUrl}/api/v1/openapi.json`);
  assert.is(res.status, 200);
  const doc = (await res.json()) as {
    openapi: string;
    paths: Record<string, Record<string, { operationId: string; requestBody?: { content: Record<string, { schema: { $ref: string } }> }; responses: Record<string, unknown> }>>;
    components: { schemas: Record<string, { required?: string[]; properties?: Record<string, unknown> }> };
  };
  assert.is(doc.openapi, '3.1.0');
  const ops = Object.values(doc.paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
  for (const op of ['createAccount', 'getAccount', 'updateAccount', 'createMeeting', 'listMeetings', 'getMeeting', 'endMeeting', 'listParticipants', 'admitParticipant', 'denyParticipant', 'removeParticipant', 'muteParticipant', 'createJoinToken', 'createMeetingKey']) {
    assert.ok(ops.includes(op), `the document lists ${op}`);
  }
  const create = doc.paths['/api/v1/meetings']!.post!;
  assert.is(create.requestBody!.content['application/json']!.schema.$ref, '#/components/schemas/MeetingCreate');
  for (const s of ['400', '401', '403', '409']) assert.ok(create.responses[s], `createMeeting documents ${s}`);
  // The document says what the validator does: same required fields, same properties.
  const schema = doc.components.schemas.MeetingCreate!;
  assert.equal(schema.required!.sort(), ['accountId', 'hostIdentity', 'title']);
  assert.equal(Object.keys(schema.properties!).sort(), Object.keys(S.MeetingCreate.shape).sort());
  assert.ok(schema.properties!.hostProfilePictureUrl, 'hostProfilePictureUrl is accepted');
});

test('a wrong key gets 401 (INVALID_TOKEN or TOKEN_EXPIRED) and changes nothing', async () => {
  const body = { id: 'einbrecher' };
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims: { iat: number; exp: number; aud?: string }, secret = ADMIN.secret, kid = 'admin'): Promise<string> =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', kid })
      .setIssuedAt(claims.iat)
      .setExpirationTime(claims.exp)
      .setAudience(claims.aud ?? API_AUDIENCE)
      .sign(new TextEncoder().encode(secret));
  const cases: Array<[string, Parameters<typeof raw>[3], string]> = [
    ['no Authorization header', {}, 'INVALID_TOKEN'],
    ['a Basic header', { authorization: 'Basic YWRtaW46YWRtaW4=' }, 'INVALID_TOKEN'],
    ['an unknown key id', { key: { id: 'nobody', secret: ADMIN.secret } }, 'INVALID_TOKEN'],
    ['the admin key id with a wrong secret', { key: { id: 'admin', secret: 'wrong-secret-wrong-secret-wrong-secret' } }, 'INVALID_TOKEN'],
    ['an expired request token', { authorization: `Bearer ${await sign({ iat: now - 400, exp: now - 100 })}` }, 'TOKEN_EXPIRED'],
    ['a token living an hour', { authorization: `Bearer ${await sign({ iat: now, exp: now + 3600 })}` }, 'INVALID_TOKEN'],
    ['a token for another audience', { authorization: `Bearer ${await sign({ iat: now, exp: now + 60, aud: 'someone-else' })}` }, 'INVALID_TOKEN'],
    ["a join token instead", { authorization: `Bearer ${await server.hostToken()}` }, 'INVALID_TOKEN'],
  ];
  for (const [what, options, code] of cases) {
    const r = await raw(server, 'POST', '/accounts', { ...options, body });
    assert.is(r.status, 401, what);
    assert.is(r.json.error!.code, code, what);
    assert.ok(r.headers.get('www-authenticate')?.startsWith('Bearer'), `${what}: WWW-Authenticate`);
  }
  const check = await raw(server, 'GET', '/accounts/einbrecher', { key: ADMIN });
  assert.is(check.status, 404, 'no refused request created the account');
});

test('accounts: create, read, list and update defaults, locked settings, allowed regions and retention', async () => {
  const api = adminClient(server);
  const a = S.Account.parse(
    await api.createAccount({ id: 'schule-a', name: 'Schule A', defaults: { allowedRegions: ['DE'], retentionDays: 7, e2ee: 'required' }, locked: ['e2ee'] }),
  );
  assert.is(a.name, 'Schule A');
  assert.equal(a.defaults.allowedRegions, ['DE']);
  assert.is(a.defaults.retentionDays, 7);
  assert.is(a.defaults.waitingRoom, true, 'built-in defaults fill the rest');
  assert.equal(a.locked, ['e2ee']);
  assert.equal(S.Account.parse(await api.getAccount('schule-a')), a);
  const dup = await codeOf(api.createAccount({ id: 'schule-a' }));
  assert.equal([dup.status, dup.code], [409, 'INVALID_STATE']);
  const u = S.Account.parse(await api.updateAccount('schule-a', { defaults: { retentionDays: 14, allowedRegions: ['de-fra'] }, locked: ['e2ee', 'allowedRegions'] }));
  assert.is(u.defaults.retentionDays, 14);
  assert.equal(u.defaults.allowedRegions, ['de-fra']);
  assert.is(u.defaults.e2ee, 'required', 'an update merges: untouched defaults stay');
  assert.equal(u.locked.sort(), ['allowedRegions', 'e2ee']);
  assert.is(u.name, 'Schule A');
  const list = S.AccountList.parse(await api.listAccounts());
  assert.ok(list.accounts.some((x) => x.id === 'schule-a'));
  assert.ok(list.accounts.some((x) => x.id === 'demo'), 'the configuration\'s account is listed too');
  const missing = await codeOf(api.getAccount('gibt-es-nicht'));
  assert.equal([missing.status, missing.code], [404, 'NOT_FOUND']);
  const missingUpdate = await codeOf(api.updateAccount('gibt-es-nicht', { name: 'x' }));
  assert.is(missingUpdate.status, 404);
});

test('schema errors get 400 INVALID_ARGUMENT with the field named, and change nothing', async () => {
  const cases: Array<[string, string, unknown, string]> = [
    ['POST', '/accounts', { id: 'k1', defaults: { maxParticipants: 0 } }, 'defaults.maxParticipants'],
    ['POST', '/accounts', { id: 'k1', colour: 'blau' }, 'colour'],
    ['POST', '/accounts', { id: 'k 1' }, 'id'],
    ['POST', '/accounts', { id: 'k1', locked: ['volume'] }, 'locked.0'],
    ['POST', '/meetings', { title: 'x', hostIdentity: 'h' }, 'accountId'],
    ['POST', '/meetings', { accountId: 'demo', title: 'x', hostIdentity: 'h', settings: { e2ee: 'manchmal' } }, 'settings.e2ee'],
    ['POST', '/meetings', { accountId: 'demo', title: 'x', hostIdentity: 'h', scheduledStart: 'morgen' }, 'scheduledStart'],
    ['POST', '/meetings', { accountId: 'demo', title: 'x', hostIdentity: 'h', hostTimeZone: 'Mars/Olympus' }, 'hostTimeZone'],
    ['POST', '/meetings', { accountId: 'demo', title: 'x', hostIdentity: 'h', hostProfilePictureUrl: 'http://bild.example/a.png' }, 'hostProfilePictureUrl'],
    ['POST', '/meetings', { accountId: 'demo', title: 'x', hostIdentity: 'h', recurrence: { type: 'hourly' } }, 'recurrence.type'],
    ['PATCH', '/accounts/demo', { defaults: { allowedRegions: [] } }, 'defaults.allowedRegions'],
    ['POST', '/meetings/demo/tokens', { role: 'king' }, 'role'],
  ];
  for (const [method, path, body, field] of cases) {
    const r = await raw(server, method, path, { key: ADMIN, body });
    assert.is(r.status, 400, `${path} ${JSON.stringify(body)}`);
    assert.is(r.json.error!.code, 'INVALID_ARGUMENT');
    assert.is(r.json.error!.field, field, `${JSON.stringify(body)} names ${field}`);
    assert.ok(r.json.error!.reason.startsWith(`${field}:`), r.json.error!.reason);
  }
  const notJson = await raw(server, 'POST', '/accounts', { key: ADMIN, rawBody: '{"id": ' });
  assert.equal([notJson.status, notJson.json.error!.field], [400, '(body)']);
  const wrongType = await raw(server, 'POST', '/accounts', { key: ADMIN, rawBody: 'id=k1', contentType: 'application/x-www-form-urlencoded' });
  assert.equal([wrongType.status, wrongType.json.error!.field], [400, '(body)']);
  assert.is((await raw(server, 'GET', '/accounts/k1', { key: ADMIN })).status, 404, 'nothing was created');
  const big = await raw(server, 'POST', '/accounts', { key: ADMIN, rawBody: JSON.stringify({ id: 'k2', name: 'x'.repeat(70_000) }) });
  assert.equal([big.status, big.json.error!.code], [413, 'MESSAGE_TOO_LARGE']);
});

test('an account-locked setting gets SETTING_LOCKED (403), on create and on a settings change', async () => {
  const api = adminClient(server);
  await api.createAccount({ id: 'praxis', defaults: { waitingRoom: true, allowChat: false }, locked: ['waitingRoom', 'allowChat'] });
  const refused = await codeOf(api.createMeeting({ id: 'sprechstunde-1', accountId: 'praxis', title: 'Sprechstunde', hostIdentity: 'dr.berg', settings: { waitingRoom: false } }));
  assert.equal([refused.status, refused.code], [403, 'SETTING_LOCKED']);
  assert.is((await raw(server, 'GET', '/meetings/sprechstunde-1', { key: ADMIN })).status, 404, 'the refused meeting does not exist');
  // Repeating the locked value is not an override.
  const m = S.Meeting.parse(await api.createMeeting({ id: 'sprechstunde-1', accountId: 'praxis', title: 'Sprechstunde', hostIdentity: 'dr.berg', settings: { waitingRoom: true } }));
  assert.is(m.settings!.allowChat, false);
  const change = await codeOf(api.updateMeetingSettings('sprechstunde-1', { allowChat: true }));
  assert.equal([change.status, change.code], [403, 'SETTING_LOCKED']);
  const ok = S.Meeting.parse(await api.updateMeetingSettings('sprechstunde-1', { muteOnEntry: true }));
  assert.is(ok.settings!.muteOnEntry, true, 'an unlocked setting changes');
  assert.is(ok.settings!.allowChat, false);
});

test('meetings: create and schedule with the seed metadata, list with filters, get; the password never comes back', async () => {
  const api = adminClient(server);
  await api.createAccount({ id: 'gymnasium', defaults: { allowedRegions: ['DE'] } });
  const body = {
    id: 'elternabend-5b',
    accountId: 'gymnasium',
    title: 'Elternabend 5b',
    hostIdentity: 'frau.schmidt',
    hostName: 'Frau Schmidt',
    hostEmail: 'schmidt@gymnasium.example',
    hostProfilePictureUrl: 'https://bilder.gymnasium.example/schmidt.png',
    password: 'Kennwort-4711',
    settings: { hostRequiredToStart: false, maxParticipants: 40 },
    scheduledStart: '2030-03-04T19:00:00+01:00',
    scheduledDurationMinutes: 90,
    recurrence: { type: 'monthly' as const, durationWeeks: 40 },
    hostTimeZone: 'Europe/Berlin',
    dialInNumbers: ['+49 30 1234567'],
  };
  const res = await raw(server, 'POST', '/meetings', { key: ADMIN, body });
  assert.is(res.status, 201);
  assert.not.ok(JSON.stringify(res.json).includes('Kennwort-4711'), 'the clear password is never returned');
  const m = S.Meeting.parse(res.json);
  assert.is(m.status, 'scheduled');
  assert.is(m.passwordProtected, true);
  assert.is(m.settings!.passwordRequired, true);
  assert.is(m.settings!.maxParticipants, 40);
  assert.equal(m.settings!.allowedRegions, ['DE'], 'account defaults apply');
  assert.is(m.scheduledStart, '2030-03-04T18:00:00.000Z');
  assert.equal(m.recurrence, { type: 'monthly', durationWeeks: 40 });
  assert.is(m.hostTimeZone, 'Europe/Berlin');
  assert.is(m.hostProfilePictureUrl, body.hostProfilePictureUrl);
  assert.equal(m.dialInNumbers, ['+49 30 1234567']);
  assert.equal(S.Meeting.parse(await api.getMeeting('elternabend-5b')), m);
  const instant = S.Meeting.parse(await api.createMeeting({ accountId: 'gymnasium', title: 'Kurz', hostIdentity: 'herr.kurz' }));
  assert.match(instant.id, /^[0-9a-f-]{36}$/, 'a generated id');
  assert.is(instant.status, 'open');
  const ofAccount = S.MeetingList.parse(await api.listMeetings({ accountId: 'gymnasium' }));
  assert.equal(ofAccount.meetings.map((x) => x.id).sort(), [instant.id, 'elternabend-5b'].sort());
  const scheduled = S.MeetingList.parse(await api.listMeetings({ accountId: 'gymnasium', status: 'scheduled' }));
  assert.equal(scheduled.meetings.map((x) => x.id), ['elternabend-5b']);
  const badFilter = await raw(server, 'GET', '/meetings?status=bald', { key: ADMIN });
  assert.equal([badFilter.status, badFilter.json.error!.field], [400, 'status']);
  assert.equal((await codeOf(api.createMeeting({ ...body, password: 'x' }))).code, 'INVALID_STATE', 'an id in use');
  assert.equal((await codeOf(api.createMeeting({ ...body, id: 'anders', accountId: 'nirgends' }))).status, 404, 'unknown account');
  assert.equal((await codeOf(api.getMeeting('nirgends'))).status, 404);
});

test('participants: list admitted and waiting, admit, deny, mute, remove; every action an audit entry', async () => {
  const api = adminClient(server);
  await api.createAccount({ id: 'verein' });
  await api.createMeeting({ id: 'vorstand', accountId: 'verein', title: 'Vorstand', hostIdentity: 'vorsitz', hostName: 'Vorsitz', settings: { waitingRoom: true, hostRequiredToStart: false } });
  const hostToken = S.Token.parse(await api.createToken('vorstand', { role: 'host' }));
  assert.is(hostToken.identity, 'vorsitz', 'a host token is for the host identity by default');
  assert.ok(hostToken.joinUrl.startsWith(`${server.gateway.httpUrl}/?meeting=vorstand&token=`));
  const host = await connect();
  const hj = await host.join({ meetingId: 'vorstand', displayName: 'Vorsitz', joinToken: hostToken.token, e2eeCapable: true });
  assert.is(hj.role, pb.Role.HOST);
  const joinAs = async (identity: string, name: string) => {
    const t = await api.createToken('vorstand', { role: 'participant', identity, displayName: name });
    const c = await connect();
    const j = await c.join({ meetingId: 'vorstand', displayName: name, joinToken: t.token, e2eeCapable: true });
    return { c, j };
  };
  const a = await joinAs('kassenwart', 'Kassenwart');
  const b = await joinAs('schriftfuehrer', 'Schriftführer');
  assert.is(a.j.state, pb.ParticipantState.WAITING_ROOM);
  const list = S.ParticipantList.parse(await api.listParticipants('vorstand'));
  assert.equal(list.admitted.map((p) => [p.identity, p.role, p.state]), [['vorsitz', 'host', 'admitted']]);
  assert.equal(list.waiting.map((p) => p.id).sort(), [a.j.participantId, b.j.participantId].sort());
  assert.ok(list.waiting.every((p) => p.state === 'waiting-room' && p.authenticated));

  await api.participantAction('vorstand', a.j.participantId, 'admit');
  await a.c.admitted();
  await api.participantAction('vorstand', b.j.participantId, 'deny');
  await b.c.waitClosed();
  assert.is(b.c.closingReason, 'DENIED');
  await api.participantAction('vorstand', a.j.participantId, 'mute');
  const after = S.ParticipantList.parse(await api.listParticipants('vorstand'));
  assert.equal(after.admitted.map((p) => p.identity).sort(), ['kassenwart', 'vorsitz']);
  assert.equal(after.waiting, []);
  await api.participantAction('vorstand', a.j.participantId, 'remove');
  await a.c.waitClosed();
  assert.is(a.c.closingReason, 'REMOVED');
  // Removed means banned: the identity cannot come back with a fresh token.
  const again = await api.createToken('vorstand', { role: 'participant', identity: 'kassenwart' });
  const c2 = await connect();
  assert.is(await wireCodeOf(c2.join({ meetingId: 'vorstand', displayName: 'Kassenwart', joinToken: again.token, e2eeCapable: true })), 'BANNED');

  const unknown = await codeOf(api.participantAction('vorstand', 'niemand', 'admit'));
  assert.equal([unknown.status, unknown.code], [404, 'NOT_FOUND']);
  const audit = S.AuditList.parse(await api.meetingAudit('vorstand'));
  const meetingActions = audit.entries.filter((e) => e.source === 'meeting').map((e) => [e.actor, e.action, e.target]);
  assert.equal(meetingActions, [
    ['api:admin', 'admit', 'kassenwart'],
    ['api:admin', 'deny', 'schriftfuehrer'],
    ['api:admin', 'mute', 'kassenwart'],
    ['api:admin', 'remove', 'kassenwart'],
  ]);
  const apiActions = audit.entries.filter((e) => e.source === 'api').map((e) => [e.action, e.outcome]);
  for (const action of ['createMeeting', 'createJoinToken', 'admitParticipant', 'denyParticipant', 'muteParticipant', 'removeParticipant']) {
    assert.ok(apiActions.some(([x, o]) => x === action && o === 'ok'), `${action} is in the API audit record`);
  }
  assert.ok(apiActions.some(([x, o]) => x === 'admitParticipant' && o === 'NOT_FOUND'), 'a refused action is recorded with its code');
  assert.not.ok(JSON.stringify(audit).includes(hostToken.token), 'no token in the audit record');
});

test('tokens: a join token for a meeting and a role; host tokens only for the host identity', async () => {
  const api = adminClient(server);
  const noIdentity = await codeOf(api.createToken('vorstand', { role: 'participant' }));
  assert.equal([noIdentity.status, noIdentity.field], [400, 'identity']);
  const notHost = await codeOf(api.createToken('vorstand', { role: 'host', identity: 'kassenwart' }));
  assert.equal([notHost.status, notHost.field], [400, 'identity']);
  assert.is((await codeOf(api.createToken('nirgends', { role: 'host' }))).status, 404);
  const t = S.Token.parse(await api.createToken('demo', { role: 'host', ttlSeconds: 120 }));
  const left = Date.parse(t.expiresAt) - Date.now();
  assert.ok(left > 60_000 && left <= 120_000, 'the requested lifetime');
  const c = await connect();
  const j = await c.join({ meetingId: 'demo', displayName: 'Demo Host', joinToken: t.token, e2eeCapable: true });
  assert.is(j.role, pb.Role.HOST, 'the minted token lets the host in as host');
  c.close();
});

test('a meeting-scoped key acts on its own meeting only: 403 elsewhere and on admin routes', async () => {
  const api = adminClient(server);
  await api.createMeeting({ id: 'ag-robotik', accountId: 'verein', title: 'AG Robotik', hostIdentity: 'leitung' });
  const key = S.ApiKey.parse(await api.createMeetingKey('ag-robotik'));
  assert.is(key.meetingId, 'ag-robotik');
  const scoped = { id: key.keyId, secret: key.secret };
  assert.is((await raw(server, 'GET', '/meetings/ag-robotik', { key: scoped })).status, 200);
  assert.is((await raw(server, 'POST', '/meetings/ag-robotik/tokens', { key: scoped, body: { role: 'host' } })).status, 201);
  const listed = await raw(server, 'GET', '/meetings', { key: scoped });
  assert.equal((listed.json.meetings as Array<{ id: string }>).map((m) => m.id), ['ag-robotik'], 'it sees its meeting only');
  const refusals: Array<[string, string, unknown?]> = [
    ['GET', '/meetings/vorstand'],
    ['POST', '/meetings/vorstand/tokens', { role: 'host' }],
    ['POST', '/meetings/vorstand/end'],
    ['GET', '/meetings/vorstand/participants'],
    ['POST', '/accounts', { id: 'fremd' }],
    ['GET', '/accounts/verein'],
    ['POST', '/meetings', { accountId: 'verein', title: 'x', hostIdentity: 'y' }],
    ['POST', '/meetings/ag-robotik/keys'],
  ];
  for (const [method, path, body] of refusals) {
    const r = await raw(server, method, path, { key: scoped, ...(body !== undefined ? { body } : {}) });
    assert.is(r.status, 403, `${method} ${path}`);
    assert.is(r.json.error!.code, 'NOT_PERMITTED');
  }
  assert.is((S.Meeting.parse(await api.getMeeting('vorstand'))).status === 'ended', false, 'the other meeting was not ended');
  const audit = S.AuditList.parse(await api.meetingAudit('vorstand'));
  assert.ok(audit.entries.some((e) => e.actor === `api:${key.keyId}` && e.action === 'endMeeting' && e.outcome === 'NOT_PERMITTED'), 'the refusal is audited');
  const demoKey = await codeOf(api.createMeetingKey('demo'));
  assert.is(demoKey.code, 'INVALID_STATE', 'the configuration\'s meeting has no stored definition to scope a key to');
});

test('end: the meeting ends for everyone; ending again and minting tokens get MEETING_ENDED', async () => {
  const api = adminClient(server);
  const t = await api.createToken('ag-robotik', { role: 'host' });
  const c = await connect();
  await c.join({ meetingId: 'ag-robotik', displayName: 'Leitung', joinToken: t.token, e2eeCapable: true });
  const ended = S.Meeting.parse(await api.endMeeting('ag-robotik'));
  assert.is(ended.status, 'ended');
  assert.ok(ended.endedAt);
  await c.waitClosed();
  assert.is(c.closingReason, 'MEETING_ENDED');
  // One call at a time: three promises made at once would leave the later ones rejecting while the
  // first is awaited (an unhandled rejection that ends the test process).
  for (const call of [() => api.endMeeting('ag-robotik'), () => api.createToken('ag-robotik', { role: 'host' }), () => api.listParticipants('ag-robotik')]) {
    const r = await codeOf(call());
    assert.equal([r.status, r.code], [409, 'MEETING_ENDED']);
  }
  const audit = S.AuditList.parse(await api.meetingAudit('ag-robotik'));
  assert.ok(audit.entries.some((e) => e.source === 'meeting' && e.action === 'end' && e.actor === 'api:admin'));
});

test('unknown routes get 404 and wrong methods 405, both as coded JSON', async () => {
  const r404 = await raw(server, 'GET', '/widgets', { key: ADMIN });
  assert.equal([r404.status, r404.json.error!.code], [404, 'NOT_FOUND']);
  const r405 = await raw(server, 'DELETE', '/accounts/demo', { key: ADMIN });
  assert.is(r405.status, 405);
  assert.is(r405.headers.get('allow'), 'GET, PATCH');
  const outside = await fetch(`${server.gateway.httpUrl}/api/v2/accounts`);
  assert.is(outside.status, 404);
});

test('past its per-address rate the API answers 429 RATE_LIMITED before it looks at the key', async () => {
  const store = openDefinitionStore(':memory:');
  const api = createOperatorApi({
    core: server.core,
    store,
    tokens: server.tokens,
    logger: silentLogger(),
    adminKey: ADMIN,
    webAppUrl: () => '',
    rateLimit: { perSecond: 0.01, burst: 3 },
  });
  const gateway = await createGateway({ core: server.core, logger: silentLogger(), registry: createMetricsRegistry({ processMetrics: false }), tokens: server.tokens, api });
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await fetch(`${gateway.httpUrl}/api/v1/accounts`)).status);
    assert.equal(statuses, [401, 401, 401, 429, 429]);
    const r = await fetch(`${gateway.httpUrl}/api/v1/accounts`);
    assert.is(((await r.json()) as { error: { code: string } }).error.code, 'RATE_LIMITED');
  } finally {
    await gateway.close();
    api.close();
    store.close();
  }
});

test.run();
