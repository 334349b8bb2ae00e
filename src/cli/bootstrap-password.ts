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
 * writing process's id, then random hex. Nothing else in the data directory matches it.
 */
const TEMPORARY_NAME = new RegExp(`^${BOOTSTRAP_PASSWORD_NAME}\\.([1-9][0-9]*)\\.[0-9a-f]{12}\\.tmp$`);

function temporaryFile(dataDir: string): string {
  return `${bootstrapPasswordFile(dataDir)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
}

/**
 * Removes the bootstrap passwords written beside their file by a `serve` that stopped (killed)
 * before it put its file in place or removed it: each holds a password. Only files of exactly the
 * name `prepareBootstrapPassword` gives, and only those of a process that is gone: a start running
 * now beside this one (on one database) may be about to put its file in place. Called at the start,
 * before this process writes its own: one named with this process's id is an earlier process's
 * that had the same id (a container's first process has the same one at every start). Logs each
 * file it removes (never what the file says); one it cannot remove is logged and left.
 */
export function removeStaleBootstrapPasswords(dataDir: string, logger: Pick<Logger, 'warn'>): void {
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return; // no data directory (yet), or one this user may not read: nothing of ours in it
  }
  for (const name of names) {
    const pid = Number(TEMPORARY_NAME.exec(name)?.[1]);
    if (!Number.isSafeInteger(pid) || (pid !== process.pid && processIsRunning(pid))) continue;
    const file = path.join(dataDir, name);
    try {
      rmSync(file);
      logger.warn(
        { file },
        'removed a bootstrap password file that a start stopped before putting in place; if `aa-oidc user list` shows a superuser nobody knows the password of, set one with aa-oidc user set-password NAME',
      );
    } catch (error) {
      logger.warn(
        { file, code: (error as NodeJS.ErrnoException).code },
        'could not remove a bootstrap password file that a start stopped before putting in place; remove it',
      );
    }
  }
}

/** True while a process with this id exists (one of another user counts). */
function processIsRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
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
 * (`discard`), so that the file never names an account that does not exist.
 */
export function prepareBootstrapPassword(
  config: Pick<Config, 'dataDir' | 'origins'>,
  login: BootstrapLogin,
  at = new Date(),
): PreparedBootstrapPassword {
  const file = bootstrapPasswordFile(config.dataDir);
  const temporary = temporaryFile(config.dataDir);
  try {
    ensurePrivateDirectory(config.dataDir);
    writeFileSync(temporary, bootstrapPasswordText(login, at), { mode: 0o600, flag: 'wx' });
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
      } catch (error) {
        const cause = error instanceof Error ? error.message : String(error);
        throw new CliError(
          `the superuser ${login.username} was created, but its one-time password could not be moved from ${temporary} to ${file} (${cause}); ` +
            `read it there, or set one with aa-oidc user set-password ${login.username}`,
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
