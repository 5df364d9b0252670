import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** pino level; default 'info'. */
  level?: string;
  /**
   * Keep personal data (display names, e-mail addresses, IP addresses) in logs. Off by default:
   * an operator turns it on deliberately, e.g. for a support case. Secrets are redacted always.
   */
  logPersonalData?: boolean;
  /** Where to write; default stdout. Tests pass a stream to inspect what was logged. */
  destination?: DestinationStream;
  /** Static fields on every line (service name, region, ...). */
  base?: Record<string, unknown>;
}

// Field names that hold secrets. They are redacted at any of the first levels of nesting, whatever
// the operator asked for: passwords and tokens never appear in a log line.
const SECRET_KEYS = ['password', 'passwordHash', 'token', 'joinToken', 'secret', 'authorization', 'key', 'keyMaterial'];
// Field names that hold personal data (DSGVO): redacted unless logPersonalData is on.
const PERSONAL_KEYS = ['displayName', 'name', 'email', 'ip', 'address', 'remoteAddress', 'mac', 'macAddress', 'ipAddress', 'hostName', 'hostEmail'];

function paths(keys: string[]): string[] {
  const out: string[] = [];
  for (const k of keys) out.push(k, `*.${k}`, `*.*.${k}`);
  return out;
}

/**
 * Creates the process's root logger. Create it once, at the edge (the CLI or the embedding
 * server), and pass it down; library objects derive child loggers with ids as fields.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const redactKeys = options.logPersonalData ? SECRET_KEYS : [...SECRET_KEYS, ...PERSONAL_KEYS];
  const opts = {
    level: options.level ?? 'info',
    base: options.base ?? {},
    redact: { paths: paths(redactKeys), censor: '[redacted]' },
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}
