// The CLI's command table: one entry per command file. Add a command by writing
// bin/commands/<name>.ts (a CliCommand) and listing it here.
import { serve } from './serve.js';
import { account } from './account.js';
import { meeting } from './meeting.js';
import type { CliCommand } from './types.js';

export const COMMANDS: readonly CliCommand[] = [
  serve,
  account,
  meeting,
];
