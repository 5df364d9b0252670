#!/usr/bin/env node
// The CLI: parses the first word and dispatches to bin/commands/ (one file per command).
import { C4vError } from '../lib/errors.js';
import { nodeVersionProblem } from '../lib/node-version.js';
import { UsageError } from './commands/types.js';

// On Node < 22 stop here with the coded error, before any command (and with it mediasoup or the
// control-plane store) is even loaded: those would fail later and far from the cause.
const nodeProblem = nodeVersionProblem();
if (nodeProblem) {
  console.error(`c4v-media: ${nodeProblem.code}: ${nodeProblem.message}`);
  process.exit(1);
}
const { COMMANDS } = await import('./commands/index.js');

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: c4v-media <command> [options]',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'c4v-media <command> --help' for a command's options.",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`c4v-media: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  if (args[0] === '--help' || args[0] === '-h') {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(args);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`c4v-media ${name}: ${error.message}\n\n${command.usage}`);
      return 2;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof C4vError) console.error(`c4v-media: ${error.code}: ${error.message}`);
    else console.error('c4v-media:', error);
    process.exit(1);
  },
);
