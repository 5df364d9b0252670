import { ENV_VARS, loadConfig } from '../../gateway/config.js';
import { joinTokensFromConfig, type JoinRole } from '../../gateway/tokens.js';
import { SetupError } from '../../lib/errors.js';
import { UsageError, type CliCommand } from './types.js';

const ROLES: readonly JoinRole[] = ['host', 'cohost', 'participant'];

/** `c4v-media token`: mints a join token (a JWT) from the configured secret or private key, for testing. */
export const token: CliCommand = {
  name: 'token',
  summary: 'mint a join token (JWT) for testing, from the configured secret or private key',
  usage: `usage: c4v-media token --meeting ID --identity ID [--role host|cohost|participant] [--name NAME] [--ttl SECONDS] [--config FILE]

Mints a join token signed with the key the server is configured with (tokens.secret /
C4V_TOKEN_SECRET for HS256, or tokens.keys with a privateKeyFile for EdDSA / ES256; the key
tokens.signingKid names, else the first that can sign) and prints it on stdout. Claims: sub
(identity), mid (meeting), role, name, iat, nbf, exp (now + --ttl, default tokens.ttlSeconds).

  --meeting ID     the meeting id (claim mid)
  --identity ID    the user's identity (claim sub)
  --role ROLE      host, cohost or participant (default participant)
  --name NAME      display name (claim name, optional)
  --ttl SECONDS    lifetime (default tokens.ttlSeconds of the config)
  --config FILE    YAML or JSON configuration (default: $C4V_CONFIG, else the embedded defaults)

Environment: C4V_CONFIG, ${Object.keys(ENV_VARS).join(', ')}`,

  async run(args) {
    let file = process.env.C4V_CONFIG || undefined;
    const o: Record<string, string> = {};
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      const m = /^--(meeting|identity|role|name|ttl|config)(?:=(.*))?$/.exec(a);
      if (!m) throw new UsageError(`unknown argument ${a}`);
      const value = m[2] ?? args[++i];
      if (value === undefined) throw new UsageError(`${a} needs a value`);
      o[m[1]!] = value;
    }
    if (o.config) file = o.config;
    if (!o.meeting) throw new UsageError('--meeting is required');
    if (!o.identity) throw new UsageError('--identity is required');
    const role = (o.role ?? 'participant') as JoinRole;
    if (!ROLES.includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}`);
    const ttl = o.ttl === undefined ? undefined : Number(o.ttl);
    if (ttl !== undefined && !(Number.isInteger(ttl) && ttl > 0)) throw new UsageError('--ttl must be a positive integer (seconds)');
    const config = loadConfig({ ...(file ? { file } : {}), env: process.env });
    // Without a configured key the server signs with a random secret per start: a token minted
    // here with another random secret would never verify, so refuse instead of printing one.
    if (!config.tokens.secret && !config.tokens.keys?.length) {
      throw new SetupError('CONFIG_INVALID', 'no token key configured: set tokens.secret (or C4V_TOKEN_SECRET) or tokens.keys');
    }
    const tokens = joinTokensFromConfig(config.tokens);
    if (!tokens.canMint) throw new SetupError('CONFIG_INVALID', 'the configured token keys can only verify: give a secret or a privateKeyFile');
    let jwt: string;
    try {
      jwt = await tokens.mint(
        { identity: o.identity, meetingId: o.meeting, role, ...(o.name !== undefined ? { displayName: o.name } : {}) },
        { ttlSeconds: ttl ?? config.tokens.ttlSeconds },
      );
    } catch (error) {
      if (error instanceof TypeError) throw new UsageError(error.message);
      throw error;
    }
    process.stdout.write(`${jwt}\n`);
    return 0;
  },
};
