import { randomBytes } from 'node:crypto';
import { readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Config, settingName } from '../config/load.ts';
import { CliError } from './context.ts';
import type { BootstrapLogin } from '../directory/builtin/types.ts';
import type { Logger } from '../logging/logger.ts';
import { ensurePrivateDirectory } from '../util/private-files.ts';

const BOOTSTRAP_PASSWORD_NAME = 'bootstrap-password';

/** Where `serve` leaves the first superuser's one-time password: never on stdout, the log stream. */
export function bootstrapPasswordFile(dataDir: string): string {
  return path.join(dataDir, BOOTSTRAP_PASSWORD_NAME);
}

/**
 * The name of a bootstrap password written beside its file (`prepareBootstrapPassword`): the
 * writing process's id (for the operator: it says nothing to a start in another PID namespace), then
 * random hex. Nothing else in the data directory matches it.
 */
const TEMPORARY_NAME = new RegExp(`^${BOOTSTRAP_PASSWORD_NAME}\\.[1-9][0-9]*\\.[0-9a-f]{12}\\.tmp$`);

function temporaryFile(dataDir: string): string {
  return `${bootstrapPasswordFile(dataDir)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
}

/**
 * How old a file of that name must be (its modification time) before a start removes it: far beyond
 * the time a start holds one (from its superuser's insert to the commit, then the rename), so that
 * one is not taken from a start running now, whatever its process id. Should a commit wait longer,
 * that start writes its file again (`publish`).
 */
export const STALE_BOOTSTRAP_PASSWORD_AGE_MS = 10 * 60_000;

/**
 * Removes the bootstrap passwords written beside their file by a `serve` that stopped (killed)
 * before it put its file in place or removed it: each holds a password. Only files of exactly the
 * name `prepareBootstrapPassword` gives, and only those written at least
 * `STALE_BOOTSTRAP_PASSWORD_AGE_MS` ago. Not by the process id in the name: starts sharing a data
 * directory need not share process ids (containers on one volume, each its own PID namespace),
 * so a start running beside this one may have an id that is gone here (its file must stay: it is
 * about to be put in place), and a killed start's id may be alive here (a container's first
 * process is 1 everywhere; its file must go). A file dated in the future (another host's clock) is
 * kept until it is old enough. Logs each file it removes (never what the file says); one it cannot
 * remove is logged and left, one that went meanwhile (put in place, or removed by another start) is
 * not.
 */
export function removeStaleBootstrapPasswords(dataDir: string, logger: Pick<Logger, 'warn'>): void {
  const now = Date.now();
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return; // no data directory (yet), or one this user may not read: nothing of ours in it
  }
  for (const name of names) {
    if (!TEMPORARY_NAME.test(name)) continue;
    const file = path.join(dataDir, name);
    try {
      const written = statSync(file, { throwIfNoEntry: false });
      if (!written?.isFile() || now - written.mtimeMs < STALE_BOOTSTRAP_PASSWORD_AGE_MS) continue;
      rmSync(file);
      logger.warn(
        { file },
        'removed a bootstrap password file that a start stopped before putting in place; if `aa-oidc user list` shows a superuser nobody knows the password of, set one with aa-oidc user set-password NAME',
      );
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue; // gone meanwhile: put in place, or removed by another start
      logger.warn(
        { file, code },
        'could not remove a bootstrap password file that a start stopped before putting in place; remove it',
      );
    }
  }
}

/** What the bootstrap password file says. */
function bootstrapPasswordText(login: BootstrapLogin, at: Date): string {
  return [
    `# aa-oidc created this superuser on ${at.toISOString()} because none existed.`,
    '# Sign in with it once: the first sign-in asks for a new password before anything else.',
    '# Then delete this file.',
    `username: ${login.username}`,
    `password: ${login.password}`,
    '',
  ].join('\n');
}

/** A bootstrap password written beside its file, not yet in place (`prepareBootstrapPassword`). */
export interface PreparedBootstrapPassword {
  /** Puts it in place once the superuser is committed (replacing a file an earlier start left). */
  publish(): string;
  /** Removes it: the superuser was not committed. */
  discard(): void;
}

/**
 * Writes the login for `serve` beside the bootstrap password file (mode 0600, in a 0700 data
 * directory), before the superuser is committed: a data directory that cannot take it stops the
 * start with a `CliError` naming the file, the cause and what to do, and nobody is created. Only a
 * committed superuser's password is put in place (`publish`); one whose commit failed is removed
 * (`discard`), so that the file never names an account that does not exist. One removed before it
 * was put in place (a start sharing the data directory took it for a killed start's, its commit
 * having waited that long, or an operator) is written again from memory: the superuser is
 * committed, and its password would otherwise be lost.
 */
export function prepareBootstrapPassword(
  config: Pick<Config, 'dataDir' | 'origins'>,
  login: BootstrapLogin,
  at = new Date(),
): PreparedBootstrapPassword {
  const file = bootstrapPasswordFile(config.dataDir);
  const temporary = temporaryFile(config.dataDir);
  const text = bootstrapPasswordText(login, at);
  try {
    ensurePrivateDirectory(config.dataDir);
    writeFileSync(temporary, text, { mode: 0o600, flag: 'wx' });
    // A directory in the file's way would make the rename after the commit fail: refused now.
    if (statSync(file, { throwIfNoEntry: false })?.isDirectory())
      throw Object.assign(new Error(`${file} is a directory`), { code: 'EISDIR' });
  } catch (error) {
    rmSync(temporary, { force: true });
    throw writeFailure(config, error);
  }
  return {
    publish() {
      try {
        renameSync(temporary, file);
        return file;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          const cause = error instanceof Error ? error.message : String(error);
          throw new CliError(
            `the superuser ${login.username} was created, but its one-time password could not be moved from ${temporary} to ${file} (${cause}); ` +
              `read it there, or set one with aa-oidc user set-password ${login.username}`,
          );
        }
      }
      const again = temporaryFile(config.dataDir);
      try {
        writeFileSync(again, text, { mode: 0o600, flag: 'wx' });
        renameSync(again, file);
      } catch (error) {
        rmSync(again, { force: true });
        const cause = error instanceof Error ? error.message : String(error);
        throw new CliError(
          `the superuser ${login.username} was created, but its one-time password file ${temporary} was removed before it could be moved to ${file}, and writing it there again failed (${cause}); ` +
            `set a password with aa-oidc user set-password ${login.username}`,
        );
      }
      return file;
    },
    discard() {
      rmSync(temporary, { force: true });
    },
  };
}

/** A failure to write the bootstrap password file, naming it, the cause and what to do. */
function writeFailure(config: Pick<Config, 'dataDir' | 'origins'>, error: unknown): CliError {
  const file = bootstrapPasswordFile(config.dataDir);
  const cause = error instanceof Error ? error.message : String(error);
  const directory = `the data directory ${config.dataDir} (${settingName(config.origins, 'dataDir')})`;
  const fix: Record<string, string> = {
    EISDIR: `remove the directory at ${file}`,
    ENOTEMPTY: `remove the directory at ${file}`,
    ENOSPC: `free space on the disk of ${directory}`,
    EDQUOT: `free space (this user's disk quota) on the disk of ${directory}`,
  };
  const code = (error as NodeJS.ErrnoException).code ?? '';
  return new CliError(
    `cannot write the bootstrap superuser's one-time password to ${file} (${cause}), so no superuser was created; ` +
      `${fix[code] ?? `make ${directory} writable by this user`}, then start again`,
  );
}

/**
 * What `serve` prints about a bootstrap superuser: the file's path, never the password (stdout is
 * also where the JSON log goes: journald, `docker logs`). Only a person at a terminal in
 * development mode sees the password itself too.
 */
export function bootstrapNotice(
  login: BootstrapLogin,
  file: string,
  config: Pick<Config, 'mode' | 'issuer'>,
  stdoutIsTerminal: boolean,
): string {
  const lines = [
    '',
    `No superuser existed, so one was created: username ${login.username}`,
    `  its one-time password is in ${file} (readable by this user only)`,
  ];
  if (config.mode === 'development' && stdoutIsTerminal) lines.push(`  one-time password: ${login.password}`);
  lines.push(
    `It signs in at ${config.issuer} for any connected application; the first sign-in asks for a new`,
    'password before anything else. Delete the file afterwards. To set a password yourself:',
    `  aa-oidc user set-password ${login.username}`,
    '',
  );
  return lines.join('\n');
}
