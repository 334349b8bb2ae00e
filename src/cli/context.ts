import { type Config, loadConfig } from '../config/load.ts';
import { type DatabaseHandle, openDatabase } from '../db/connect.ts';
import { pendingMigrations } from '../db/migrate.ts';

/** A failure the CLI reports as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
}

export const processIo: CliIo = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };

export function cliConfig(): Config {
  return loadConfig();
}

/**
 * Runs `work` with an open, migrated database, and always closes it. Commands other than `migrate`
 * refuse to run on a database with pending migrations, naming the command that fixes it.
 */
export async function withDatabase<T>(
  config: Config,
  work: (database: DatabaseHandle) => Promise<T>,
): Promise<T> {
  const database = openDatabase(config.database);
  try {
    const pending = await pendingMigrations(database.db, database.kind);
    if (pending.length > 0) {
      throw new CliError(
        `the database has ${pending.length} pending migration(s); run \`aa-oidc migrate\` first`,
      );
    }
    return await work(database);
  } finally {
    await database.close();
  }
}

/** Reads all of standard input (for `--password-stdin`), without the trailing newline. */
export async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}
