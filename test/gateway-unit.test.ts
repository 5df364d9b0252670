// Pure logic of the gateway: join tokens, wire mappings and frame decoding, rate limits, config.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../gateway/config.js';
import { TokenBucket } from '../gateway/limits.js';
import { closeFrameFor, codesMissingOnTheWire, decodeRequest, encodeEnvelope, errorToWire, pb } from '../gateway/wire.js';
import { C4vError, ErrorCodes } from '../lib/errors.js';


function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return error instanceof C4vError ? error.code : `not coded: ${String(error)}`;
  }
  return 'did not throw';
}

// Join tokens (JWT) are tested in test/tokens.test.ts.

test('every library error code has a value in the proto ErrorCode enum', () => {
  assert.equal(codesMissingOnTheWire(), []);
  for (const code of ErrorCodes) {
    const e = errorToWire(code, 'r');
    assert.is(pb.ErrorCode[e.code!], code);
  }
});

test('close frames carry 4000 + the close reason and its name', () => {
  assert.equal(closeFrameFor('removed'), { code: 4000 + pb.CloseReason.REMOVED, text: 'REMOVED' });
  assert.equal(closeFrameFor('meeting-ended'), { code: 4004, text: 'MEETING_ENDED' });
  assert.equal(closeFrameFor('flooding'), { code: 4021, text: 'FLOODING' });
});

test('decodeRequest refuses garbage, truncation, unknown fields, responses, id 0 and text frames', () => {
  const hello = Buffer.from(encodeEnvelope({ id: 7, request: { hello: { protocolVersions: [1] } } }));
  const ok = decodeRequest(hello, true, { id: 0 });
  assert.is(ok.type, 'hello');
  assert.is(ok.id, 7);
  const cases: Array<[string, Buffer, boolean]> = [
    ['garbage', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), true],
    ['truncated', hello.subarray(0, hello.length - 2), true],
    ['huge length', Buffer.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f]), true],
    ['unknown field', Buffer.concat([hello, Buffer.from([0xf8, 0x3f, 0x01])]), true],
    ['unknown request type', Buffer.from(encodeEnvelope({ id: 3, request: {} })), true],
    ['a response', Buffer.from(encodeEnvelope({ id: 3, response: { ok: {} } })), true],
    ['id 0', Buffer.from(encodeEnvelope({ id: 0, request: { leave: {} } })), true],
    ['text frame', hello, false],
  ];
  for (const [name, frame, binary] of cases) {
    assert.is(codeOf(() => decodeRequest(frame, binary, { id: 0 })), 'PROTOCOL_ERROR', name);
  }
  // A request whose oneof member is unknown (field 99 inside Request) is an unknown field.
  const unknownOneof = Buffer.from([0x08, 0x05, 0x12, 0x03, 0x9a, 0x06, 0x00]);
  const hint = { id: 0 };
  assert.is(codeOf(() => decodeRequest(unknownOneof, true, hint)), 'PROTOCOL_ERROR');
  assert.is(hint.id, 5, 'the id of a decodable envelope is still known for the answer');
});

test('a token bucket allows the burst, then refills at its rate', () => {
  let now = 0;
  const b = new TokenBucket(10, 3, () => now);
  assert.equal([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
  now += 100;
  assert.is(b.take(), true);
  assert.is(b.take(), false);
});

test('config: defaults, a YAML file and environment variables merge; bad files name the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'c4v-config-'));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, 'server:\n  port: 9000\ndemo:\n  meeting:\n    title: Elternabend\n    settings:\n      waitingRoom: false\n');
  const c = loadConfig({ file: good, env: { C4V_PORT: '9100', C4V_LOG_LEVEL: 'warn' } });
  assert.is(c.server.port, 9100);
  assert.is(c.server.host, '127.0.0.1');
  assert.is(c.logging.level, 'warn');
  assert.is(c.demo.meeting.title, 'Elternabend');
  assert.is(c.demo.meeting.settings.waitingRoom, false);
  assert.is(c.demo.meeting.settings.hostRequiredToStart, true, 'embedded defaults stay where the file is silent');

  const json = join(dir, 'c.json');
  writeFileSync(json, JSON.stringify({ workers: { count: 2 } }));
  assert.is(loadConfig({ file: json }).workers.count, 2);

  const bad: Array<[string, RegExp]> = [
    ['server:\n  port: many\n', /server\.port: expected an integer/],
    ['server:\n  prot: 1\n', /server\.prot: unknown setting/],
    ['workers: [1, 2]\n', /workers: expected a mapping/],
    ['server: {port: 1\n', /not valid YAML/],
    ['tokens:\n  secret: short\n', /tokens\.secret/],
    ['demo:\n  meeting:\n    settings:\n      waitingroom: true\n', /demo\.meeting\.settings\.waitingroom: unknown setting/],
  ];
  for (const [text, re] of bad) {
    const f = join(dir, 'bad.yaml');
    writeFileSync(f, text);
    try {
      loadConfig({ file: f });
      assert.unreachable(`accepted ${text}`);
    } catch (error) {
      assert.instance(error, C4vError);
      assert.is((error as C4vError).code, 'CONFIG_INVALID');
      assert.match((error as Error).message, re);
      assert.match((error as Error).message, /bad\.yaml/);
    }
  }
  try {
    loadConfig({ env: { C4V_PORT: '99999' } });
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /environment: server\.port/);
  }
  try {
    loadConfig({ file: join(dir, 'missing.yaml') });
    assert.unreachable();
  } catch (error) {
    assert.match((error as Error).message, /missing\.yaml: cannot read the config file \(ENOENT\)/);
  }
});

test('issue 10 config: trusted proxies, origins and JWT keys from the file or the environment; bad ones name the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'c4v-cfg10-'));
  const pub = join(dir, 'k.pub.pem');
  writeFileSync(pub, '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n');
  const env = loadConfig({ env: { C4V_TRUSTED_PROXIES: '10.0.0.0/8, ::1', C4V_ALLOWED_ORIGINS: 'https://app.example.org', C4V_FORWARDED_HEADER: 'Forwarded' } });
  assert.equal(env.server.trustedProxies, ['10.0.0.0/8', '::1']);
  assert.equal(env.server.allowedOrigins, ['https://app.example.org']);
  assert.is(env.server.forwardedHeader, 'forwarded');
  assert.equal(loadConfig({}).server.trustedProxies, [], 'no trusted proxies by default');
  const file = join(dir, 'keys.yaml');
  writeFileSync(file, `tokens:\n  keys:\n    - { kid: k1, alg: EdDSA, publicKeyFile: ${pub} }\n    - { kid: k2, alg: HS256, secret: "${'s'.repeat(32)}" }\n  signingKid: k2\n`);
  const k = loadConfig({ file });
  assert.is(k.tokens.keys?.length, 2);
  assert.is(k.tokens.signingKid, 'k2');
  const bad = (yaml: string, env: Record<string, string> = {}): string => {
    const f = join(dir, `bad-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(f, yaml);
    try {
      loadConfig({ file: f, env });
    } catch (error) {
      return (error as Error).message;
    }
    return 'accepted';
  };
  assert.match(bad('server: { trustedProxies: [10.0.0.0/33] }'), /server\.trustedProxies: .*not an address or CIDR/);
  assert.match(bad('', { C4V_TRUSTED_PROXIES: 'proxy.example' }), /server\.trustedProxies/);
  assert.match(bad('server: { allowedOrigins: [evil] }'), /server\.allowedOrigins/);
  assert.match(bad('server: { forwardedHeader: x-real-ip }'), /server\.forwardedHeader/);
  assert.match(bad('tokens: { keys: [{ alg: HS256, secret: a }, { alg: HS256, secret: b }] }'), /tokens\.keys/);
  assert.match(bad('tokens: { keys: [{ kid: a, alg: RS256 }] }'), /tokens\.keys\[0\]\.alg/);
  assert.match(bad('tokens: { keys: [{ kid: a, alg: EdDSA }] }'), /publicKeyFile/);
  assert.match(bad('tokens: { signingKid: nope }'), /tokens\.signingKid/);
  // The one secret rule: 32 bytes, counted as UTF-8 bytes; the secret itself is never echoed.
  const short = bad(`tokens: { secret: "${'x'.repeat(31)}" }`);
  assert.match(short, /tokens\.secret: expected a secret of at least 32 bytes/);
  assert.not.ok(short.includes('x'.repeat(31)));
  assert.is(bad(`tokens: { secret: "${'ä'.repeat(16)}" }`), 'accepted', '16 umlauts are 32 bytes');
  assert.match(bad('demo: { meeting: { hostName: "a\\u0007b" } }'), /demo\.meeting\.hostName: host name contains control characters/);
});

test.run();
