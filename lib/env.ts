// The one parser for boolean settings. Every boolean environment variable (and the demo server's
// boolean config values, which may come from a YAML file as strings) goes through parseBoolean(),
// so that `C4V_CONTROL_PLANE=off` and `C4V_NO_NATIVE=1` mean what the README says.
import { SetupError } from './errors.js';

const TRUE_WORDS: readonly string[] = ['on', 'true', '1', 'yes'];
const FALSE_WORDS: readonly string[] = ['off', 'false', '0', 'no'];

/** The words parseBoolean() accepts, for error messages and help texts. */
export const BOOLEAN_WORDS = 'on/off, true/false, 1/0 (or yes/no)';

/**
 * Parses a boolean setting: `on`/`off`, `true`/`false`, `1`/`0` (and `yes`/`no`), any case,
 * surrounding blanks ignored; a real boolean passes through. `undefined` and the empty string
 * yield `undefined` (not set). Anything else throws a SetupError CONFIG_INVALID that names the
 * setting (`name`, e.g. the environment variable) and the accepted words.
 */
export function parseBoolean(value: unknown, name: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number' && (value === 0 || value === 1)) return value === 1;
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (word === '') return undefined;
    if (TRUE_WORDS.includes(word)) return true;
    if (FALSE_WORDS.includes(word)) return false;
  }
  const shown = typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value) : typeof value;
  throw new SetupError('CONFIG_INVALID', `${name}: expected ${BOOLEAN_WORDS}, got ${shown}`);
}

/**
 * A boolean environment variable: parseBoolean(env[name]), or `fallback` when it is unset or
 * empty. A value that is not a boolean word throws CONFIG_INVALID naming the variable.
 */
export function envFlag(name: string, fallback = false, env: NodeJS.ProcessEnv = process.env): boolean {
  return parseBoolean(env[name], name) ?? fallback;
}
