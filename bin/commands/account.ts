// `c4v-media account ...`: accounts through the operator API (issue 15). Also holds the few
// helpers meeting.ts shares: the API connection options and a small flag parser.
import { ApiClient } from '../../gateway/api/client.js';
import { UsageError, type CliCommand } from './types.js';

/** The connection options every API command takes (flags win over the environment). */
export const CONNECTION_USAGE = `Connection (flags or environment):
  --url URL        server HTTP base URL   (C4V_API_URL, default http://127.0.0.1:8080)
  --key ID         API key id             (C4V_API_KEY, default admin)
  --secret SECRET  API key secret         (C4V_API_SECRET; printed by 'c4v-media serve')`;

/** Parsed command line: positional words and flags (a repeated flag keeps every value). */
export interface ParsedArgs {
  words: string[];
  flags: Map<string, string[]>;
}

/** Parses `--name value`, `--name=value`; `booleans` are flags without a value. */
export function parseArgs(args: string[], known: readonly string[], booleans: readonly string[] = []): ParsedArgs {
  const words: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      words.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq === -1 ? undefined : eq);
    if (![...known, ...booleans, 'url', 'key', 'secret'].includes(name)) throw new UsageError(`unknown option --${name}`);
    let value: string;
    if (booleans.includes(name)) value = 'true';
    else if (eq !== -1) value = a.slice(eq + 1);
    else {
      const next = args[++i];
      if (next === undefined) throw new UsageError(`--${name} needs a value`);
      value = next;
    }
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  return { words, flags };
}

/** The last value of a flag. */
export function flag(p: ParsedArgs, name: string): string | undefined {
  return p.flags.get(name)?.at(-1);
}

/** The API client from --url/--key/--secret or C4V_API_URL/C4V_API_KEY/C4V_API_SECRET. */
export function clientFrom(p: ParsedArgs, env: NodeJS.ProcessEnv = process.env): ApiClient {
  const secret = flag(p, 'secret') ?? env.C4V_API_SECRET;
  if (!secret) throw new UsageError('no API secret: pass --secret or set C4V_API_SECRET');
  return new ApiClient({
    url: flag(p, 'url') ?? env.C4V_API_URL ?? 'http://127.0.0.1:8080',
    keyId: flag(p, 'key') ?? env.C4V_API_KEY ?? 'admin',
    secret,
  });
}

/** `KEY=VALUE` settings: the value is JSON where it parses (true, 5, ["DE"]), a string otherwise. */
export function settingsFrom(values: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kv of values) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new UsageError(`expected SETTING=VALUE, got ${kv}`);
    const raw = kv.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // A bare word (an e2ee mode, an onHostLeave policy) is a string.
    }
    out[kv.slice(0, eq)] = value;
  }
  return out;
}

/** Prints an API answer as JSON (scriptable with jq). */
export function print(value: unknown): number {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  return 0;
}

const ACCOUNT_FLAGS = ['name', 'default', 'lock', 'regions', 'retention'] as const;

function accountBody(p: ParsedArgs): { name?: string; defaults?: Record<string, unknown>; locked?: string[] } {
  const defaults = settingsFrom(p.flags.get('default') ?? []);
  const regions = flag(p, 'regions');
  if (regions !== undefined) defaults.allowedRegions = regions.split(',').map((r) => r.trim()).filter(Boolean);
  const retention = flag(p, 'retention');
  if (retention !== undefined) defaults.retentionDays = /^\d+$/.test(retention) ? Number(retention) : retention;
  const name = flag(p, 'name');
  const locked = p.flags.get('lock')?.flatMap((l) => l.split(',').map((s) => s.trim()).filter(Boolean));
  return {
    ...(name !== undefined ? { name } : {}),
    ...(Object.keys(defaults).length > 0 ? { defaults } : {}),
    ...(locked !== undefined ? { locked } : {}),
  };
}

export const account: CliCommand = {
  name: 'account',
  summary: 'create, read, list and update accounts through the operator API',
  usage: `usage: c4v-media account create ID [options]
       c4v-media account update ID [options]
       c4v-media account get ID
       c4v-media account list

Options of create and update (update merges defaults and replaces the locked list):
  --name NAME            the account's name
  --default SETTING=V    an account default, e.g. --default waitingRoom=true --default e2ee=required
  --regions DE,AT        allowed regions (country codes or regions like de-fra)
  --retention DAYS       days personal data is kept after a meeting ends
  --lock SETTING         a setting meetings cannot override (repeat, or comma-separated)

${CONNECTION_USAGE}`,

  async run(args) {
    const [sub, ...rest] = args;
    const p = parseArgs(rest, ACCOUNT_FLAGS);
    const id = p.words[0];
    switch (sub) {
      case 'create':
        if (!id || p.words.length > 1) throw new UsageError('account create takes one account id');
        return print(await clientFrom(p).createAccount({ id, ...accountBody(p) } as Parameters<ApiClient['createAccount']>[0]));
      case 'update':
        if (!id || p.words.length > 1) throw new UsageError('account update takes one account id');
        return print(await clientFrom(p).updateAccount(id, accountBody(p) as Parameters<ApiClient['updateAccount']>[1]));
      case 'get':
        if (!id || p.words.length > 1) throw new UsageError('account get takes one account id');
        return print(await clientFrom(p).getAccount(id));
      case 'list':
        if (p.words.length > 0) throw new UsageError('account list takes no words');
        return print(await clientFrom(p).listAccounts());
      default:
        throw new UsageError(sub ? `unknown subcommand ${sub}` : 'a subcommand is needed');
    }
  },
};
