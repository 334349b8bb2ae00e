import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { type Config, settingName } from '../config/load.ts';
import type { DatabaseHandle } from '../db/connect.ts';
import { describeDatabase } from '../db/errors.ts';
import { fileNotWritable, whyNotWritable } from '../db/writable.ts';
import { hasActiveSuperuser } from '../directory/builtin/queries.ts';
import type { Finding } from '../checks/checks.ts';

/** What the storage check reads from the configuration. */
export type StorageConfig = Pick<Config, 'dataDir' | 'origins' | 'database'> & {
  directory: Pick<Config['directory'], 'source'>;
};

/**
 * W012: a place `serve` writes that this user may not write, so that the start would stop: the
 * SQLite file and its folder (SQLite creates its -wal and -shm files there), and the data directory
 * while the built-in directory has no active superuser (the first start writes the bootstrap
 * password file there). Judged with access(2) as the user running the check: nothing is written.
 */
export async function storageChecks(config: StorageConfig, database: DatabaseHandle): Promise<Finding[]> {
  const findings: Finding[] = [];
  const warn = (message: string, hint: string) =>
    findings.push({ id: 'W012', level: 'warning', message, hint });
  const { database: target } = config;
  if (target.kind === 'sqlite' && database.sqlite && !database.sqlite.memory) {
    const reason = await whyNotWritable(database);
    if (reason !== undefined)
      warn(
        `serve cannot write ${describeDatabase(target)} and would refuse to start: ${reason}`,
        `${reason.includes('this user') ? 'run aa-oidc check as the user serve runs as: it judges for the user running it' : 'fix that, then run aa-oidc check again'}`,
      );
    else {
      const folder = path.dirname(target.path);
      const folderReason = await whyNotWritableFolder(folder);
      if (folderReason !== undefined)
        warn(
          `serve cannot create the -wal and -shm files of ${describeDatabase(target)} in its folder ${folder}: ${folderReason}`,
          `run aa-oidc check as the user serve runs as; ${writeAccessHint(folder)}`,
        );
    }
  }
  if (config.directory.source !== 'alliance-auth' && !(await hasActiveSuperuser(database.db))) {
    const { dataDir } = config;
    const existing = await nearestExisting(dataDir);
    const reason = await whyNotWritableFolder(existing);
    if (reason !== undefined)
      warn(
        `no superuser exists, and serve cannot write the bootstrap superuser's one-time password to the data directory ${dataDir} (${settingName(config.origins, 'dataDir')})${existing === dataDir ? '' : `, which it would create in ${existing}`}: ${reason}; its start would stop`,
        `run aa-oidc check as the user serve runs as; ${writeAccessHint(existing)}, or create a superuser first: aa-oidc user create NAME --superuser`,
      );
  }
  return findings;
}

/** Why this user may not create files in `folder`, or undefined when it may. */
async function whyNotWritableFolder(folder: string): Promise<string | undefined> {
  try {
    await access(folder, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES') return `this user (${currentUser()}) may not create files there`;
    return fileNotWritable(code) ?? (error instanceof Error ? error.message : String(error));
  }
}

/** `target` when it exists, else the closest folder above it that does (where it would be made). */
async function nearestExisting(target: string): Promise<string> {
  for (let folder = target; ; folder = path.dirname(folder)) {
    try {
      await access(folder, constants.F_OK);
      return folder;
    } catch {
      if (folder === path.dirname(folder)) return folder;
    }
  }
}

function writeAccessHint(file: string): string {
  return `give that user write access to ${file} (chown it to that user, or chmod u+w)`;
}

function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}
