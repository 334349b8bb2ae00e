import path from 'node:path';
import type { Config } from '../config/load.ts';
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
