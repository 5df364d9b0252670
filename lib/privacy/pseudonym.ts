// Pseudonyms for meeting ids past retention: HMAC-SHA256 with a key of this installation. The
// same id always gives the same pseudonym (the operator can still count meetings and correlate
// the rows of one meeting, or look one up when they know its id), but without the key the id
// cannot be recovered or confirmed.
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { C4vError } from '../errors.js';
import { ensurePrivateDir, modeOf, type PermissionPolicy } from './permissions.js';

/** Pseudonyms start with this, so a report tells them from clear ids at a glance. */
export const PSEUDONYM_PREFIX = 'pmid-';

/** Maps an id to its pseudonym. */
export type Pseudonymiser = (id: string) => string;

/** The pseudonymiser of a key. */
export function pseudonymiser(key: Uint8Array): Pseudonymiser {
  if (key.length < 32) throw new TypeError('the pseudonym key must have at least 32 bytes');
  return (id) => PSEUDONYM_PREFIX + createHmac('sha256', key).update(id, 'utf8').digest('hex').slice(0, 32);
}

export function isPseudonym(id: string): boolean {
  return id.startsWith(PSEUDONYM_PREFIX) && id.length === PSEUDONYM_PREFIX.length + 32;
}

/**
 * Reads the installation's key from `path`, creating it (32 random bytes, hex, mode 0600, its
 * folder 0700) when missing; a key file or folder open to others is warned about or refused
 * (INSECURE_PERMISSIONS in strict mode). Losing the file only means that pseudonyms made before cannot be
 * matched to ids any more; they stay pseudonyms. A file that is not a key is refused
 * (CONFIG_INVALID) rather than replaced, so that a typo in a path cannot discard the real key.
 */
export function loadOrCreateKey(path: string, policy: PermissionPolicy = {}, options: { folderChecked?: boolean } = {}): Uint8Array {
  // The caller may have checked (and warned about) the folder already: the outbox's.
  if (!options.folderChecked) ensurePrivateDir(dirname(path), policy);
  if (modeOf(path) === undefined) {
    try {
      // 'wx': two processes starting at once must not overwrite each other's key.
      writeFileSync(path, randomBytes(32).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  } else {
    const mode = modeOf(path)!;
    if ((mode & 0o077) !== 0) {
      const message = `pseudonym key ${path} is mode 0${mode.toString(8)}; expected 0600`;
      if (policy.strict) throw new C4vError('INSECURE_PERMISSIONS', message);
      policy.logger?.warn({ code: 'INSECURE_PERMISSIONS', mode: `0${mode.toString(8)}` }, message);
    }
  }
  const text = readFileSync(path, 'utf8').trim();
  if (!/^[0-9a-f]{64,}$/i.test(text)) throw new C4vError('CONFIG_INVALID', `${path} is not a pseudonym key (64+ hex digits)`);
  return Buffer.from(text, 'hex');
}
