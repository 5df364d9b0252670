/**
 * One CLI command (`c4v-media <name> ...`). Each command lives in its own file under
 * bin/commands/ and is listed once in bin/commands/index.ts; bin/c4v-media.ts only dispatches.
 */
export interface CliCommand {
  /** The first word on the command line. */
  readonly name: string;
  /** One line for the usage text. */
  readonly summary: string;
  /** Full help (`c4v-media <name> --help`). */
  readonly usage: string;
  /**
   * Runs the command with the words after its name. Resolves with the process exit code; a
   * long-running command (serve) resolves only when it has been asked to stop. Throwing a
   * C4vError prints `c4v-media: CODE: message` and exits 1.
   */
  run(args: string[]): Promise<number>;
}

/** Thrown for a bad command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
