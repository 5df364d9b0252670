// The CLI's command table: one entry per command file. Add a command by writing
// bin/commands/<name>.ts (a CliCommand) and listing it here.
import { drain } from './cluster.js';
import { serve } from './serve.js';
import type { CliCommand } from './types.js';

export const COMMANDS: readonly CliCommand[] = [serve, drain];
