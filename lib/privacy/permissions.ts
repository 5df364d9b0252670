// Folders and files that hold personal data are this user's only: folders 0700, files 0600.
// Created that way; an existing one with wider permissions is reported at start (a warning) or
// refused (strict mode), because chmod-ing an operator's folder behind their back could break
// something else that shares it.
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { C4vError } from '../errors.js';

/** How a too-open existing folder or file is handled. */
export interface PermissionPolicy {
  /** Refuse (INSECURE_PERMISSIONS) instead of warning. Default false. */
  strict?: boolean;
  /** Where the warning goes; without one, a non-strict check stays silent. */
  logger?: Logger;
}

/** The mode bits (permissions) of a path, or undefined when it does not exist. */
export function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o777;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function check(path: string, kind: 'folder' | 'file', policy: PermissionPolicy): void {
  const mode = modeOf(path);
  if (mode === undefined || (mode & 0o077) === 0) return;
  const want = kind === 'folder' ? '0700' : '0600';
  const message = `${kind} ${path} holds personal data but is mode 0${mode.toString(8)} (group or others have access); expected ${want}`;
  if (policy.strict) throw new C4vError('INSECURE_PERMISSIONS', message);
  // The path is the operator's own configuration, not personal data.
  policy.logger?.warn({ code: 'INSECURE_PERMISSIONS', kind, mode: `0${mode.toString(8)}`, expected: want }, message);
}

/**
 * Creates `dir` (and missing parents) with mode 0700; an existing one with group or other
 * permissions is warned about, or refused in strict mode.
 */
export function ensurePrivateDir(dir: string, policy: PermissionPolicy = {}): void {
  check(dir, 'folder', policy);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/**
 * Creates `file` (empty) with mode 0600 when missing; an existing one with wider permissions is
 * warned about, or refused in strict mode.
 */
export function ensurePrivateFile(file: string, policy: PermissionPolicy = {}): void {
  const existed = modeOf(file) !== undefined;
  check(file, 'file', policy);
  closeSync(openSync(file, 'a', 0o600));
  // The umask may have narrowed the mode of a new file; never widened it. A new file is set
  // exactly; an existing one is left as the operator has it (checked above).
  if (!existed) chmodSync(file, 0o600);
}
