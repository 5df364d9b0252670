import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** pino level; default 'info'. */
  level?: string;
  /**
   * Keep personal data (display names, identities, e-mail, IP and MAC addresses, titles) in logs.
   * Off by default: an operator turns it on deliberately, e.g. for a support case. Secrets are
   * redacted always.
   */
  logPersonalData?: boolean;
  /** Where to write; default stdout. Tests pass a stream to inspect what was logged. */
  destination?: DestinationStream;
  /** Static fields on every line (service name, region, ...). */
  base?: Record<string, unknown>;
}

/**
 * An object with a method under this symbol is logged as what that method returns, never as
 * itself. The model's Participant and Meeting return only their opaque ids, so logging one
 * (`logger.info({ actor: participant })`) cannot leak a name, an identity or an address, whatever
 * key it sits under.
 */
export const logView: unique symbol = Symbol.for('c4v.logView');

/** What the logger shows in place of personal data. */
export const REDACTED = '[redacted]';

/**
 * A personal value (a name, an identity, a title) that may be passed to a logger: it is logged as
 * `[redacted]` unless the operator turned `logPersonalData` on. Its `toString()` and `toJSON()` are
 * redacted too, so it cannot leak through a template string or JSON.stringify either.
 */
export class PersonalData {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  /** The value itself, for code that must use it (never for a log line). */
  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }
}

/** Wraps a personal string for logging (see PersonalData). */
export function personal(value: string): PersonalData {
  return new PersonalData(value);
}

// Field names that hold secrets. They are redacted at any of the first levels of nesting, whatever
// the operator asked for: passwords and tokens never appear in a log line.
const SECRET_KEYS = ['password', 'passwordHash', 'token', 'joinToken', 'secret', 'authorization', 'key', 'keyMaterial'];
// Field names that hold personal data (DSGVO): redacted unless logPersonalData is on. This list is
// the second line of defence; the first is the redaction by type below.
const PERSONAL_KEYS = new Set([
  'displayName', 'name', 'email', 'ip', 'address', 'remoteAddress', 'mac', 'macAddress', 'ipAddress',
  'hostName', 'hostEmail', 'hostIdentity', 'hostProfilePictureUrl', 'profilePictureUrl',
  'identity', 'actor', 'target', 'title', 'question', 'options', 'answers', 'participantDisplayNames',
]);

// Personal data recognisable by its shape, wherever it sits (any key, the message, an error
// text). E-mail-like covers identities such as `host@demo` too.
const EMAIL = /[\w.%+-]+@[\w-]+(?:\.[\w-]+)*/g;
const MAC = /\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b/gi;
const IPV4 = /\b(?:\d{1,3}\.){3}\d{1,3}\b/g;
// Candidate IPv6 addresses; the replacer keeps only those with '::' or all eight groups, so that
// times like 09:00:00 stay readable.
const IPV6 = /(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])/gi;

/** Replaces e-mail addresses (and e-mail-like identities), IP and MAC addresses in a text. */
export function scrubText(text: string): string {
  return text
    .replace(EMAIL, REDACTED)
    .replace(MAC, REDACTED)
    .replace(IPV4, REDACTED)
    .replace(IPV6, (m) => (m.length > 2 && (m.includes('::') || m.split(':').length === 8) ? REDACTED : m));
}

const MAX_DEPTH = 8;

function hasLogView(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof (v as { [logView]?: unknown })[logView] === 'function';
}

/**
 * The log view of any value, with personal data removed by type: a logView object becomes its
 * view, PersonalData becomes `[redacted]`, strings lose e-mail, IP and MAC addresses, fields named
 * like personal data are redacted, errors keep their type and code with a scrubbed message.
 * Exported for tests and for embedding servers that build their own log lines.
 */
export function redactPersonal(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof PersonalData) return REDACTED;
  if (depth >= MAX_DEPTH) return '[too deep]';
  const view = (value as { [logView]?: unknown })[logView];
  if (typeof view === 'function') return redactPersonal((view as () => unknown).call(value), depth + 1);
  if (value instanceof Error) {
    // Still an Error, so that pino's err serializer renders it as usual; its text scrubbed, and
    // only its code kept of its own properties (they could hold anything).
    const out = new Error(scrubText(value.message));
    out.name = value.name;
    out.stack = value.stack ? scrubText(value.stack) : '';
    const code = (value as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') (out as { code?: unknown }).code = code;
    return out;
  }
  if (value instanceof Date) return value;
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) return value.map((v) => redactPersonal(v, depth + 1));
  if (value instanceof Map || value instanceof Set) return `[${value.constructor.name} of ${value.size}]`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const personalKey = PERSONAL_KEYS.has(k) && v !== undefined && v !== null && !hasLogView(v);
    out[k] = personalKey ? REDACTED : redactPersonal(v, depth + 1);
  }
  return out;
}

// With personal data switched on, only the logView objects are still turned into their views (a
// Participant is never dumped whole) and PersonalData shows its value.
function revealPersonal(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth >= MAX_DEPTH) return value;
  if (value instanceof PersonalData) return value.reveal();
  const view = (value as { [logView]?: unknown })[logView];
  if (typeof view === 'function') return revealPersonal((view as () => unknown).call(value), depth + 1);
  if (value instanceof Error || value instanceof Date || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map((v) => revealPersonal(v, depth + 1));
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = revealPersonal(v, depth + 1);
  return out;
}

function paths(keys: string[]): string[] {
  const out: string[] = [];
  for (const k of keys) out.push(k, `*.${k}`, `*.*.${k}`);
  return out;
}

/**
 * Creates the process's root logger. Create it once, at the edge (the CLI or the embedding
 * server), and pass it down; library objects derive child loggers with ids as fields.
 *
 * By default no line carries an identity, e-mail, name, IP or MAC address or title, whatever key it
 * sits under: every logged value (the fields, the child bindings, the message and its format
 * arguments) goes through redactPersonal() before pino sees it.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const filter = options.logPersonalData ? revealPersonal : redactPersonal;
  const opts = {
    level: options.level ?? 'info',
    base: options.base ?? {},
    redact: { paths: paths(SECRET_KEYS), censor: '[redacted]' },
    hooks: {
      // Runs before pino merges or serialises anything, for every enabled level.
      logMethod(this: Logger, args: unknown[], method: (...a: unknown[]) => void): void {
        method.apply(this, args.map((a) => filter(a)));
      },
    },
  };
  const root = options.destination ? pino(opts, options.destination) : pino(opts);
  // Child-logger bindings are serialised once, when the child is made, and pino applies its
  // bindings formatter to the root's only. Children are Object.create(parent), so this override
  // is inherited by every descendant.
  const child = root.child;
  root.child = function (this: Logger, bindings, childOptions) {
    return child.call(this, filter(bindings) as typeof bindings, childOptions);
  } as typeof root.child;
  return root;
}
