// `c4v-media meeting ...`: meetings, participants and join tokens through the operator API
// (issue 15). Offline token minting (with the token secret, no server) is `c4v-media token`.
import type { ApiClient } from '../../gateway/api/client.js';
import { clientFrom, CONNECTION_USAGE, flag, parseArgs, print, settingsFrom, type ParsedArgs } from './account.js';
import { UsageError, type CliCommand } from './types.js';

const CREATE_FLAGS = [
  'id',
  'account',
  'title',
  'host',
  'host-name',
  'host-email',
  'host-picture',
  'password',
  'start',
  'duration',
  'recurrence',
  'weeks',
  'timezone',
  'dial-in',
  'set',
] as const;
const OTHER_FLAGS = ['status', 'role', 'identity', 'name', 'ttl'] as const;

const int = (v: string | undefined, what: string): number | undefined => {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`${what} must be a whole number, got ${v}`);
  return Number(v);
};

function createBody(p: ParsedArgs): Record<string, unknown> {
  const required = (name: string): string => {
    const v = flag(p, name);
    if (v === undefined) throw new UsageError(`meeting create needs --${name}`);
    return v;
  };
  const body: Record<string, unknown> = { accountId: required('account'), title: required('title'), hostIdentity: required('host') };
  const optional: Array<[string, string]> = [
    ['id', 'id'],
    ['host-name', 'hostName'],
    ['host-email', 'hostEmail'],
    ['host-picture', 'hostProfilePictureUrl'],
    ['password', 'password'],
    ['start', 'scheduledStart'],
    ['timezone', 'hostTimeZone'],
  ];
  for (const [f, key] of optional) {
    const v = flag(p, f);
    if (v !== undefined) body[key] = v;
  }
  const duration = int(flag(p, 'duration'), '--duration');
  if (duration !== undefined) body.scheduledDurationMinutes = duration;
  const recurrence = flag(p, 'recurrence');
  const weeks = int(flag(p, 'weeks'), '--weeks');
  if (recurrence !== undefined) body.recurrence = { type: recurrence, ...(weeks !== undefined ? { durationWeeks: weeks } : {}) };
  else if (weeks !== undefined) throw new UsageError('--weeks needs --recurrence');
  const dialIn = p.flags.get('dial-in');
  if (dialIn) body.dialInNumbers = dialIn;
  const settings = settingsFrom(p.flags.get('set') ?? []);
  if (Object.keys(settings).length > 0) body.settings = settings;
  return body;
}

export const meeting: CliCommand = {
  name: 'meeting',
  summary: 'create, list, end meetings; participants; join tokens (operator API)',
  usage: `usage: c4v-media meeting create --account ID --title TITLE --host IDENTITY [options]
       c4v-media meeting list [--account ID] [--status scheduled|open|running|ended]
       c4v-media meeting get ID
       c4v-media meeting end ID
       c4v-media meeting participants ID
       c4v-media meeting admit|deny|mute|remove ID PARTICIPANT_ID
       c4v-media meeting token ID --role host|participant [--identity ID] [--name NAME] [--ttl SECONDS]
       c4v-media meeting key ID          (an API key scoped to this meeting)

Options of create:
  --id ID                 meeting id (default: a random UUID)
  --host-name NAME, --host-email EMAIL, --host-picture HTTPS_URL
  --password PASSWORD     the meeting password (hashed by the server at once)
  --start ISO_TIME        scheduled start, e.g. 2026-12-01T18:00:00+01:00
  --duration MINUTES      scheduled duration
  --recurrence daily|weekly|monthly [--weeks N]
  --timezone ZONE         the host's IANA time zone, e.g. Europe/Berlin
  --dial-in NUMBER        a dial-in number (repeat for more)
  --set SETTING=VALUE     a setting override, e.g. --set waitingRoom=false (SETTING_LOCKED if locked)

'meeting token' prints the token and the web-app link (joinUrl) that joins with it.

${CONNECTION_USAGE}`,

  async run(args) {
    const [sub, ...rest] = args;
    const p = parseArgs(rest, sub === 'create' ? CREATE_FLAGS : [...OTHER_FLAGS, 'account']);
    const one = (what: string): string => {
      if (p.words.length !== 1) throw new UsageError(`meeting ${what} takes one meeting id`);
      return p.words[0]!;
    };
    const api = (): ApiClient => clientFrom(p);
    switch (sub) {
      case 'create':
        if (p.words.length > 0) throw new UsageError('meeting create takes options only');
        return print(await api().createMeeting(createBody(p) as Parameters<ApiClient['createMeeting']>[0]));
      case 'list': {
        const accountId = flag(p, 'account');
        const status = flag(p, 'status');
        return print(await api().listMeetings({ ...(accountId ? { accountId } : {}), ...(status ? { status } : {}) }));
      }
      case 'get':
        return print(await api().getMeeting(one('get')));
      case 'end':
        return print(await api().endMeeting(one('end')));
      case 'participants':
        return print(await api().listParticipants(one('participants')));
      case 'admit':
      case 'deny':
      case 'mute':
      case 'remove': {
        if (p.words.length !== 2) throw new UsageError(`meeting ${sub} takes a meeting id and a participant id`);
        return print(await api().participantAction(p.words[0]!, p.words[1]!, sub));
      }
      case 'token': {
        const id = one('token');
        const role = flag(p, 'role');
        if (role !== 'host' && role !== 'participant') throw new UsageError('meeting token needs --role host or --role participant');
        const identity = flag(p, 'identity');
        const displayName = flag(p, 'name');
        const ttl = int(flag(p, 'ttl'), '--ttl');
        return print(
          await api().createToken(id, {
            role,
            ...(identity !== undefined ? { identity } : {}),
            ...(displayName !== undefined ? { displayName } : {}),
            ...(ttl !== undefined ? { ttlSeconds: ttl } : {}),
          }),
        );
      }
      case 'key':
        return print(await api().createMeetingKey(one('key')));
      default:
        throw new UsageError(sub ? `unknown subcommand ${sub}` : 'a subcommand is needed');
    }
  },
};
