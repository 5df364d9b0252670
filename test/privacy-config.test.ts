// The demo server's data-protection settings: defaults, file keys, C4V_* variables (the one
// boolean parser), and a clear CONFIG_INVALID for a bad value.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../gateway/config.js';
import { C4vError } from '../lib/index.js';
import { tempDir } from './helpers/controlPlane.js';

test('purgeFile, strictPermissions and pseudonymKeyPath: off / empty by default, set by file or environment', () => {
  const d = loadConfig().controlPlane;
  assert.equal([d.purgeFile, d.strictPermissions, d.pseudonymKeyPath], [false, false, '']);
  const { dir, cleanup } = tempDir();
  try {
    const file = join(dir, 'c4v.yaml');
    writeFileSync(file, 'controlPlane:\n  purgeFile: true\n  pseudonymKeyPath: /etc/c4v/pseudonym.key\n');
    const f = loadConfig({ file }).controlPlane;
    assert.equal([f.purgeFile, f.strictPermissions, f.pseudonymKeyPath], [true, false, '/etc/c4v/pseudonym.key']);
    const e = loadConfig({ file, env: { C4V_CONTROL_PLANE_PURGE_FILE: 'off', C4V_STRICT_PERMISSIONS: 'on', C4V_PSEUDONYM_KEY: '/k' } }).controlPlane;
    assert.equal([e.purgeFile, e.strictPermissions, e.pseudonymKeyPath], [false, true, '/k']);
  } finally {
    cleanup();
  }
});

test('a bad value is CONFIG_INVALID naming the field', () => {
  try {
    loadConfig({ env: { C4V_STRICT_PERMISSIONS: 'sometimes' } });
    assert.unreachable('accepted "sometimes"');
  } catch (error) {
    assert.instance(error, C4vError);
    assert.is((error as C4vError).code, 'CONFIG_INVALID');
    assert.match((error as Error).message, /controlPlane\.strictPermissions/);
  }
});

test.run();
