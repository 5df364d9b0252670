// `c4v-media serve` with no config file prints the operator API, its admin key and the host's
// web-app link; `c4v-media account|meeting ...` drive the API of that running server.
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pb } from '../gateway/wire.js';
import { tempDir } from './helpers/controlPlane.js';
import { SignallingClient } from './helpers/signallingClient.js';
import { within } from './helpers/util.js';

const BIN = fileURLToPath(new URL('../bin/c4v-media.js', import.meta.url));
const run = promisify(execFile);

test('serve prints the API and a host link; the CLI creates an account, a meeting and a token through the API', async () => {
  const { dir, cleanup } = tempDir();
  const child = spawn(process.execPath, [BIN, 'serve'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      C4V_CONFIG: '',
      C4V_PORT: '0',
      C4V_WORKERS: '1',
      C4V_LOG_LEVEL: 'error',
      C4V_CONTROL_PLANE_OUTBOX: join(dir, 'outbox.db'),
      C4V_CONTROL_PLANE_FILE: join(dir, 'metadata.jsonl'),
      C4V_API_SECRET: '',
    },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const clients: SignallingClient[] = [];
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        child.stdout.on('data', () => /\n {2}cli: .*\n/.test(out) && resolve());
        child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}`)));
      }),
      30_000,
      'serve to print the API',
    );
    const httpUrl = out.match(/ {2}api: +(\S+)\/api\/v1/)![1]!;
    const secret = out.match(/ {2}api key: +admin secret (\S+)/)![1]!;
    const hostLink = new URL(out.match(/ {2}host link: +(\S+)/)![1]!);
    assert.is(hostLink.origin, httpUrl);
    assert.is(hostLink.pathname, '/');
    assert.is(hostLink.searchParams.get('meeting'), 'demo');
    // The printed link's token lets the host in.
    const signalling = out.match(/signalling: (\S+)/)![1]!;
    const host = await SignallingClient.connect(signalling);
    clients.push(host);
    const hj = await host.join({ meetingId: 'demo', displayName: 'Demo Host', joinToken: hostLink.searchParams.get('token')!, e2eeCapable: true });
    assert.is(hj.role, pb.Role.HOST);

    const env = { ...process.env, C4V_API_URL: httpUrl, C4V_API_KEY: 'admin', C4V_API_SECRET: secret };
    const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const r = await run(process.execPath, [BIN, ...args], { env });
        return { code: 0, stdout: r.stdout, stderr: r.stderr };
      } catch (error) {
        const e = error as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    const created = await cli('account', 'create', 'kanzlei', '--name', 'Kanzlei Weber', '--regions', 'DE', '--retention', '14', '--default', 'e2ee=required', '--lock', 'e2ee,allowedRegions');
    assert.is(created.code, 0, created.stderr);
    const account = JSON.parse(created.stdout) as { defaults: { e2ee: string; retentionDays: number; allowedRegions: string[] }; locked: string[] };
    assert.equal([account.defaults.e2ee, account.defaults.retentionDays, account.defaults.allowedRegions], ['required', 14, ['DE']]);
    assert.equal(account.locked.sort(), ['allowedRegions', 'e2ee']);
    const updated = JSON.parse((await cli('account', 'update', 'kanzlei', '--retention', '21')).stdout) as { defaults: { retentionDays: number } };
    assert.is(updated.defaults.retentionDays, 21);

    const locked = await cli('meeting', 'create', '--account', 'kanzlei', '--title', 'Mandant', '--host', 'ra.weber', '--set', 'e2ee=off');
    assert.is(locked.code, 1);
    assert.match(locked.stderr, /SETTING_LOCKED/);
    const meeting = await cli('meeting', 'create', '--id', 'mandant-1', '--account', 'kanzlei', '--title', 'Mandantengespräch', '--host', 'ra.weber',
      '--host-name', 'RA Weber', '--start', '2030-01-15T10:00:00+01:00', '--duration', '45', '--timezone', 'Europe/Berlin', '--set', 'waitingRoom=true');
    assert.is(meeting.code, 0, meeting.stderr);
    assert.is((JSON.parse(meeting.stdout) as { status: string }).status, 'scheduled');
    const list = JSON.parse((await cli('meeting', 'list', '--account', 'kanzlei')).stdout) as { meetings: Array<{ id: string }> };
    assert.equal(list.meetings.map((m) => m.id), ['mandant-1']);
    const token = await cli('meeting', 'token', 'mandant-1', '--role', 'host');
    assert.is(token.code, 0, token.stderr);
    const t = JSON.parse(token.stdout) as { token: string; joinUrl: string; identity: string };
    assert.is(t.identity, 'ra.weber');
    assert.ok(t.joinUrl.startsWith(`${httpUrl}/?meeting=mandant-1&token=`));
    const lawyer = await SignallingClient.connect(signalling);
    clients.push(lawyer);
    const lj = await lawyer.join({ meetingId: 'mandant-1', displayName: 'RA Weber', joinToken: t.token, e2eeCapable: true });
    assert.is(lj.role, pb.Role.HOST);
    const participants = JSON.parse((await cli('meeting', 'participants', 'mandant-1')).stdout) as { admitted: Array<{ identity: string }> };
    assert.equal(participants.admitted.map((p) => p.identity), ['ra.weber']);
    const end = await cli('meeting', 'end', 'mandant-1');
    assert.is(JSON.parse(end.stdout).status, 'ended');
    await lawyer.waitClosed();

    const badSecret = await cli('meeting', 'list', '--secret', 'not-the-secret-not-the-secret-0000');
    assert.is(badSecret.code, 1);
    assert.match(badSecret.stderr, /INVALID_TOKEN/);
    const usage = await cli('meeting', 'token', 'mandant-1', '--role', 'king');
    assert.is(usage.code, 2);
    assert.match(usage.stderr, /--role host or --role participant/);
  } finally {
    for (const c of clients) c.ws.terminate();
    child.kill('SIGTERM');
    await within(new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r))), 15_000, 'serve to exit').catch(() => child.kill('SIGKILL'));
    cleanup();
  }
});

test.run();
