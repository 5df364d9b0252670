// The CLI's command table: one entry per command file. Add a command by writing
// bin/commands/<name>.ts (a CliCommand) and listing it here.
import { doctor } from './doctor.js';
import { drain } from './cluster.js';
import { serve } from './serve.js';
import { account } from './account.js';
import { meeting } from './meeting.js';
import { privacy } from './privacy.js';
import { token } from './token.js';
import type { CliCommand } from './types.js';
import { worker } from './worker.js';

export const COMMANDS: readonly CliCommand[] = [
  serve,
  worker,
  doctor,
  account,
  meeting,
  privacy, // issue 16
  token, // issue 10a
  drain, // issue 13
];
