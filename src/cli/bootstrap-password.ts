import path from 'node:path';
import { type Config, settingName } from '../config/load.ts';
import { CliError } from './context.ts';
import type { BootstrapLogin } from '../directory/builtin/types.ts';
import { ensurePrivateDirectory, writePrivateFile } from '../util/private-files.ts';

/** Where `serve` leaves the first superuser's one-time password: never on stdout, the log stream. */
export function bootstrapPasswordFile(dataDir: string): string {
  return path.join(dataDir, 'bootstrap-password');
}

/** Writes the login to the bootstrap password file (mode 0600, in a 0700 data directory). */
export function writeBootstrapPassword(dataDir: string, login: BootstrapLogin, at = new Date()): string {
  ensurePrivateDirectory(dataDir);
  const file = bootstrapPasswordFile(dataDir);
  writePrivateFile(
    file,
    [
      `# aa-oidc created this superuser on ${at.toISOString()} because none existed.`,
      '# Sign in with it once: the first sign-in asks for a new password before anything else.',
      '# Then delete this file.',
      `username: ${login.username}`,
      `password: ${login.password}`,
      '',
    ].join('\n'),
  );
  return file;
}

/**
 * `writeBootstrapPassword` for `serve`, which creates the superuser only once this succeeded: a
 * failure is a `CliError` naming the file, the cause and what to do.
 */
export function saveBootstrapPassword(
  config: Pick<Config, 'dataDir' | 'origins'>,
  login: BootstrapLogin,
): string {
  try {
    return writeBootstrapPassword(config.dataDir, login);
  } catch (error) {
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
    throw new CliError(
      `cannot write the bootstrap superuser's one-time password to ${file} (${cause}), so no superuser was created; ` +
        `${fix[code] ?? `make ${directory} writable by this user`}, then start again`,
    );
  }
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
