import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import pino from 'pino';
import { ApplicationError } from '../applications/errors.ts';
import { directoryBindingChecks, migrationChecks } from '../checks/checks.ts';
import { type Config, ConfigError, loadConfig, settingName } from '../config/load.ts';
import { connectDatabase, connectOptionsFor, type DatabaseHandle, QUERY_TIMEOUT_MS } from '../db/connect.ts';
import { describeDatabase, lockWaitFailure } from '../db/errors.ts';
import { migrationsUnknownToThisRelease, pendingMigrations } from '../db/migrate.ts';
import { writeRefusal } from '../db/writable.ts';
import { MAX_PASSWORD_LENGTH } from '../directory/builtin/passwords.ts';
import { DirectoryError } from '../directory/errors.ts';
import { KeyError } from '../keys/service.ts';
import { batchedLines } from '../logging/logger.ts';
import { createServices, type Services, type ServicesOptions } from '../services.ts';
import { textLines } from './output.ts';

/** A failure the CLI reports as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  override name = 'CliError';
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/**
 * The one-line reason a command's failure is reported with (`aa-oidc: <reason>` on stderr), and the
 * `error` of a JSON document a command writes whatever happens (`import plugin-apps --format json`).
 */
export function failureReason(error: unknown): string {
  if (error instanceof ConfigError) return `configuration error: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * Everything a command takes from the process it runs in. `runCli` receives it, so that the same
 * commands run in a test process with captured streams, an environment of their own and a stop
 * request instead of a signal; nothing under src/cli/commands reads `process` itself.
 */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Password input: `--password-stdin` reads it; a terminal (`isTTY`) may be prompted. */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  /** The environment the configuration is read from (`AA_OIDC_*`, `NODE_ENV`). */
  env: NodeJS.ProcessEnv;
  /** The folder that relative paths in the environment (`AA_OIDC_CONFIG`, data dir) start from. */
  cwd: string;
  /** Where log lines go: `serve` and `worker` log to stdout, administrative commands to stderr. */
  logDestination(stream: 'stdout' | 'stderr'): pino.DestinationStream;
  /**
   * Resolves, with the signal's name, when a long-running command (`serve`, `worker`) should stop.
   * Once `until` aborts (a start that failed), it stops listening: a signal then does what it does
   * to a process that never asked (the promise never settles).
   */
  stopRequested(until?: AbortSignal): Promise<string>;
  /** How often `serve` and `worker` read the directory binding (default BINDING_CHECK_MS; tests). */
  bindingCheckMs?: number;
}

/** The real process: its streams, environment and folder; SIGINT or SIGTERM stops. */
export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    // stdout is buffered (a busy server's access lines), the lines of a few milliseconds handed over
    // in one write; stderr is written at once.
    logDestination: (stream) =>
      stream === 'stdout'
        ? (batchedLines(pino.destination({ dest: 1, sync: false })) as pino.DestinationStream)
        : pino.destination({ dest: 2, sync: true }),
    stopRequested: (until) =>
      new Promise((resolve) => {
        const stopListening = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          until?.removeEventListener('abort', stopListening);
        };
        const stop = (signal: NodeJS.Signals) => {
          stopListening();
          resolve(signal);
        };
        if (until?.aborted) return;
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        until?.addEventListener('abort', stopListening, { once: true });
      }),
  };
}

/**
 * The configuration every command reads (the same as `serve`). Administrative commands log at
 * `warn` unless a level is configured explicitly: their output is the answer, not progress lines.
 */
export function cliConfig(
  io: CliIo,
  options: { quiet?: boolean; createDevSecretKey?: boolean } = {},
): Config {
  const config = loadConfig({
    env: io.env,
    cwd: io.cwd,
    createDevSecretKey: options.createDevSecretKey ?? true,
  });
  if (options.quiet && config.origins['logging.level'] === undefined) {
    return { ...config, logging: { ...config.logging, level: 'warn' } };
  }
  return config;
}

/**
 * The `withServices` options of a command that only reads and signs nothing (a listing, `show`,
 * `policy show`): the signing keys are not loaded. Loading decrypts their private parts with
 * AA_OIDC_SECRET_KEY, which nothing such a command reads is encrypted with: under another secret key
 * (a mistyped one, a database restored elsewhere) it still reads, while `serve`, `worker` and the
 * commands that change things stop, naming the key (E013 of `aa-oidc check`).
 */
export const READS_ONLY = { loadSigningKeys: false } as const satisfies Pick<
  ServicesOptions,
  'loadSigningKeys'
>;

/** Domain errors whose message is already a one-line explanation for the operator. */
const OPERATOR_ERRORS = [ApplicationError, DirectoryError, KeyError];

/**
 * Runs `work` with the services that `serve` uses (so every write goes through the same validation,
 * SSRF gate and audit receivers), without applying migrations: a database with pending ones is
 * refused, naming the command that fixes it. Log lines go to stderr so that stdout stays clean for
 * `--format json`. A database a newer release migrated is used, with one warning line on stderr
 * (W021 of `aa-oidc check`). Domain errors become one-line CLI failures. Always closes the services.
 * An Alliance Auth database that cannot be read stops the command at start, unless `options` says to
 * report it.
 */
export async function withServices<T>(
  io: CliIo,
  work: (services: Services) => Promise<T>,
  options: Pick<ServicesOptions, 'allianceAuthUnreadableAtStart' | 'loadSigningKeys'> & {
    /** The configuration, when the command loaded it already (`cliConfig(io, { quiet: true })`). */
    config?: Config;
    /**
     * A database with pending migrations is refused (default), or handed to `work` as it is
     * (`aa-oidc check`, which reports them, E012; `services.startedMigrated` is then false).
     */
    pendingMigrations?: 'refuse' | 'allow';
    /**
     * A directory other than the one the database's user ids belong to (E010) is refused, unless
     * `allow` (`aa-oidc check`, `aa-oidc directory rebind`): every user id would name another person.
     */
    otherDirectory?: 'refuse' | 'allow';
    /**
     * A database a newer release migrated gets one warning line on stderr (default), or none
     * (`aa-oidc check`, which reports it as W021).
     */
    newerRelease?: 'warn' | 'report';
  } = {},
): Promise<T> {
  const {
    otherDirectory,
    config: loaded,
    pendingMigrations: pendingAllowed,
    newerRelease,
    ...servicesOptions
  } = options;
  const config = loaded ?? cliConfig(io, { quiet: true });
  refuseMissingSqliteFile(config);
  const services = await createServices(config, {
    ...servicesOptions,
    migrate: false,
    ensureSigningKey: false,
    logger: { destination: io.logDestination('stderr') },
  });
  try {
    const pending =
      pendingAllowed === 'allow' ? [] : await pendingMigrations(services.database.db, services.database.kind);
    if (pending.length > 0) {
      throw new CliError(
        `the database has ${pending.length} pending migration(s); run \`aa-oidc migrate\` first`,
      );
    }
    if (newerRelease !== 'report') await warnOfNewerRelease(io, services);
    const [otherDirectoryFinding] = directoryBindingChecks(services.directoryBinding);
    if (otherDirectoryFinding && otherDirectory !== 'allow')
      throw new CliError(`refused: ${otherDirectoryFinding.message} (E010; see aa-oidc check)`);
    return await work(services);
  } catch (error) {
    if (OPERATOR_ERRORS.some((kind) => error instanceof kind)) throw new CliError((error as Error).message);
    throw await explainedFailure(services.database, config, error);
  } finally {
    await services.close();
  }
}

/**
 * One line on stderr (stdout stays the command's answer) when a newer release migrated the database:
 * this release still runs on it, writing to a schema it does not know (W021 of `aa-oidc check`).
 */
async function warnOfNewerRelease(io: CliIo, services: Services): Promise<void> {
  const unknown = await migrationsUnknownToThisRelease(services.database.db);
  for (const finding of migrationChecks({ pending: [], unknown }))
    io.stderr.write(textLines([`aa-oidc: warning: ${finding.message} (${finding.id}; see aa-oidc check)`]));
}

/** Who the CLI acts as, recorded as the actor of each change (`cli:<os user>`). */
export function cliActor(io: CliIo): string {
  let name: string | undefined;
  try {
    name = userInfo().username;
  } catch {
    name = io.env.USER;
  }
  const clean = (name ?? '').replace(/[^A-Za-z0-9._@-]/g, '').slice(0, 100);
  return clean === '' ? 'cli' : `cli:${clean}`;
}

/** Epoch milliseconds as ISO 8601 for output; null stays null. */
export function isoTime(epochMs: number): string;
export function isoTime(epochMs: number | null): string | null;
export function isoTime(epochMs: number | null): string | null {
  return epochMs === null ? null : new Date(epochMs).toISOString();
}

/**
 * Runs `work` with an open, migrated database, and always closes it. Commands other than `migrate`
 * refuse to run on a database with pending migrations, naming the command that fixes it, unless they
 * read it as it is (`backup`: the copy taken before `aa-oidc migrate` is the one an upgrade needs).
 */
export async function withDatabase<T>(
  config: Config,
  work: (database: DatabaseHandle) => Promise<T>,
  options: { pendingMigrations: 'refuse' | 'allow' } = { pendingMigrations: 'refuse' },
): Promise<T> {
  refuseMissingSqliteFile(config);
  const database = await connectDatabase(config.database, connectOptionsFor(config));
  try {
    const pending =
      options.pendingMigrations === 'refuse' ? await pendingMigrations(database.db, database.kind) : [];
    if (pending.length > 0) {
      throw new CliError(
        `the database has ${pending.length} pending migration(s); run \`aa-oidc migrate\` first`,
      );
    }
    return await work(database);
  } catch (error) {
    throw await explainedFailure(database, config, error);
  } finally {
    await database.close();
  }
}

/**
 * An SQLite file that does not exist is refused, naming it and the setting that placed it: opening
 * it would create an empty database (and its folder) at a mistyped path, and only `migrate`, `serve`
 * and `demo` (in development) are meant to create one.
 */
export function refuseMissingSqliteFile(config: Config): void {
  const target = config.database;
  if (target.kind !== 'sqlite' || target.path === ':memory:' || existsSync(target.path)) return;
  const setting = settingName(config.origins, 'databaseUrl');
  throw new CliError(
    `the SQLite file ${target.path} (${setting}) does not exist; check ${setting}, or create the database with \`aa-oidc migrate\``,
  );
}

/**
 * What a command's failure says about the database: a read-only SQLite file (or a PostgreSQL
 * standby) refused the write, or a wait for another session's lock ran out, each naming the database
 * and why; otherwise the error itself. Reading commands work on a read-only database.
 */
async function explainedFailure(database: DatabaseHandle, config: Config, error: unknown): Promise<unknown> {
  const described = describeDatabase(config.database);
  return (
    (await writeRefusal(database, described, error)) ??
    lockWaitFailure(described, error, QUERY_TIMEOUT_MS) ??
    error
  );
}

/** Bytes `--password-stdin` reads at most: the longest password at 4 UTF-8 bytes a character, twice. */
const PASSWORD_STDIN_LIMIT = 8 * MAX_PASSWORD_LENGTH;

/**
 * Reads standard input (for `--password-stdin`) as one line: the one trailing line end (LF, or CRLF
 * from a file written on Windows) is dropped; any other line feed is refused (a second line is a
 * mistake, never part of a password; a lone carriage return is refused with the other control
 * characters, by `readNewPassword`), and so is
 * an empty input, saying so (not as a password too short). Input longer than `PASSWORD_STDIN_LIMIT`
 * bytes is refused as soon as it is seen: an endless pipe neither fills the memory nor keeps the
 * command waiting.
 */
export async function readStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stdin) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    length += bytes.length;
    if (length > PASSWORD_STDIN_LIMIT) {
      throw new CliError(
        `--password-stdin: standard input is longer than ${PASSWORD_STDIN_LIMIT} bytes; a password has at most ${MAX_PASSWORD_LENGTH} characters`,
      );
    }
    chunks.push(bytes);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new CliError(
      '--password-stdin: standard input holds bytes that are not UTF-8; write the password as UTF-8 text (a password no one can type again is never set)',
    );
  }
  const line = text.replace(/\r?\n$/, '');
  // Nothing piped (a variable unset, `< /dev/null`) is no password that is too short.
  if (line === '') {
    throw new CliError(
      `--password-stdin: standard input was empty${text === '' ? '' : ' (one empty line)'}; pipe the password to it, on one line (printf '%s\\n' "$PASSWORD" | aa-oidc …)`,
    );
  }
  if (line.includes('\n')) {
    throw new CliError(
      '--password-stdin: standard input holds more than one line; write the password alone on one line (one trailing newline is dropped)',
    );
  }
  return line;
}
