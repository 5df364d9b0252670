// Meeting settings and account policy: built-in defaults, validation, and the one function that
// computes a meeting's effective settings (account defaults, meeting overrides, account locks).
import { ArgumentError, PolicyError } from '../errors.js';
import { DEFAULT_ALLOWED_REGIONS } from '../media/regions.js';
import type { AccountInit, E2eeMode, HostLeavePolicy, MeetingSettings, SettingName } from './types.js';

/** The built-in defaults: the strict end of every setting a school or a hospital would expect. */
export const DEFAULT_SETTINGS: Readonly<MeetingSettings> = Object.freeze({
  passwordRequired: false,
  waitingRoom: true,
  hostRequiredToStart: true,
  e2ee: 'optional' as E2eeMode,
  maxParticipants: 100,
  allowScreenShare: true,
  allowChat: true,
  muteOnEntry: false,
  allowGuests: true,
  allowedRegions: [...DEFAULT_ALLOWED_REGIONS],
  retentionDays: 30,
  onHostLeave: 'wait-for-host' as HostLeavePolicy,
});

const SETTING_NAMES = Object.keys(DEFAULT_SETTINGS) as SettingName[];
const E2EE_MODES: readonly E2eeMode[] = ['off', 'optional', 'required'];
const HOST_LEAVE: readonly HostLeavePolicy[] = ['end-meeting', 'keep-running', 'wait-for-host'];
const ALLOW_ENTRY_RE = /^([a-z]{2}|[a-z]{2}-[a-z0-9]+)$/i;

/** Whether `name` is a known setting. */
export function isSettingName(name: unknown): name is SettingName {
  return typeof name === 'string' && (SETTING_NAMES as string[]).includes(name);
}

function bool(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ArgumentError(`setting ${name} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Checks a partial settings object and returns a clean copy (unknown keys and wrong types throw
 * TypeError naming the setting, so a bad request changes nothing).
 */
export function validateSettings(input: unknown): Partial<MeetingSettings> {
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ArgumentError('settings must be an object');
  }
  const out: Partial<MeetingSettings> = {};
  for (const [key, v] of Object.entries(input)) {
    if (v === undefined) continue;
    switch (key) {
      case 'passwordRequired':
      case 'waitingRoom':
      case 'hostRequiredToStart':
      case 'allowScreenShare':
      case 'allowChat':
      case 'muteOnEntry':
      case 'allowGuests':
        out[key] = bool(key, v);
        break;
      case 'e2ee':
        if (!E2EE_MODES.includes(v as E2eeMode)) throw new ArgumentError(`setting e2ee must be one of ${E2EE_MODES.join(', ')}`);
        out.e2ee = v as E2eeMode;
        break;
      case 'onHostLeave':
        if (!HOST_LEAVE.includes(v as HostLeavePolicy)) throw new ArgumentError(`setting onHostLeave must be one of ${HOST_LEAVE.join(', ')}`);
        out.onHostLeave = v as HostLeavePolicy;
        break;
      case 'maxParticipants':
        if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 10_000) {
          throw new ArgumentError(`setting maxParticipants must be an integer in 1..10000, got ${JSON.stringify(v)}`);
        }
        out.maxParticipants = v as number;
        break;
      case 'retentionDays':
        if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 3650) {
          throw new ArgumentError(`setting retentionDays must be an integer in 0..3650, got ${JSON.stringify(v)}`);
        }
        out.retentionDays = v as number;
        break;
      case 'allowedRegions':
        if (!Array.isArray(v) || v.length === 0 || !v.every((r) => typeof r === 'string' && ALLOW_ENTRY_RE.test(r))) {
          throw new ArgumentError('setting allowedRegions must be a non-empty list of country codes ("DE") or regions ("de-fra")');
        }
        out.allowedRegions = [...(v as string[])];
        break;
      default:
        throw new ArgumentError(`unknown setting ${JSON.stringify(key)}`);
    }
  }
  return out;
}

/**
 * An account (a customer company): its default settings and the settings its administrator locked.
 * Created with core.createAccount().
 */
export class Account {
  readonly id: string;
  readonly name: string | undefined;
  /** Account defaults on top of the built-in defaults. */
  readonly defaults: Readonly<MeetingSettings>;
  /** Settings meetings of this account cannot override. */
  readonly locked: ReadonlySet<SettingName>;

  /** @internal Use core.createAccount(). */
  constructor(init: AccountInit) {
    if (typeof init !== 'object' || init === null) throw new ArgumentError('account init must be an object');
    if (typeof init.id !== 'string' || init.id.length === 0 || init.id.length > 128) {
      throw new ArgumentError('account id must be a non-empty string of at most 128 characters');
    }
    const locked = init.locked ?? [];
    if (!Array.isArray(locked)) throw new ArgumentError('account locked must be a list of setting names');
    for (const name of locked) {
      if (!isSettingName(name)) throw new ArgumentError(`cannot lock unknown setting ${JSON.stringify(name)}`);
    }
    this.id = init.id;
    this.name = init.name;
    this.defaults = Object.freeze({ ...DEFAULT_SETTINGS, ...validateSettings(init.defaults) });
    this.locked = new Set(locked);
  }

  /** Throws SETTING_LOCKED when `overrides` changes a setting this account locked. */
  assertOverridable(overrides: Partial<MeetingSettings>): void {
    for (const [name, value] of Object.entries(overrides) as Array<[SettingName, unknown]>) {
      if (!this.locked.has(name)) continue;
      if (!sameValue(value, this.defaults[name])) {
        throw new PolicyError('SETTING_LOCKED', `setting ${name} is locked by the account and cannot be changed`);
      }
    }
  }

  /**
   * The effective settings of a meeting: account defaults overridden by `overrides`, except locked
   * settings (SETTING_LOCKED when an override differs from the locked value).
   */
  effectiveSettings(overrides: unknown): MeetingSettings {
    const clean = validateSettings(overrides);
    this.assertOverridable(clean);
    return { ...this.defaults, ...clean, allowedRegions: [...(clean.allowedRegions ?? this.defaults.allowedRegions)] };
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    const x = a.map((s) => String(s).toLowerCase()).sort();
    const y = b.map((s) => String(s).toLowerCase()).sort();
    return x.length === y.length && x.every((v, i) => v === y[i]);
  }
  return a === b;
}
