import { randomBytes } from 'node:crypto';
import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';

/**
 * Files only the service's own user may read: the data directory is created 0700, the files in it
 * (secret key, SQLite database, bootstrap password, demo client) 0600. An existing directory or
 * file keeps the mode its operator gave it.
 */
export function ensurePrivateDirectory(directory: string): void {
  mkdirSync(directory, { recursive: true, mode: 0o700 });
}

/**
 * Creates `file` empty with mode 0600 unless it exists. Where it cannot be created (a folder this
 * user may not write), nothing happens: whoever opens it next reports that in its own words.
 */
export function ensurePrivateFile(file: string): void {
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!['EEXIST', 'EACCES', 'EPERM', 'EROFS', 'ENOENT'].includes(code ?? '')) throw error;
  }
}

/** Writes `file` atomically (a temporary file, then a rename) with mode 0600. */
export function writePrivateFile(file: string, content: string): void {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(temporary, content, { mode: 0o600, flag: 'wx' });
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/**
 * Creates `file` (mode 0600) holding `content` unless it exists, and returns what it holds then.
 * Processes doing so at once (`serve` and `worker` started together on a new data directory) all
 * end up with the same content: the file appears whole (a temporary file, then a hard link, which
 * never replaces a file), so no process reads it half written, and the one that lost reads what
 * the winner wrote instead of failing with EEXIST.
 */
export function createPrivateFileOnce(file: string, content: string): string {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temporary, content, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temporary, file);
    return content;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return readFileSync(file, 'utf8');
  } finally {
    rmSync(temporary, { force: true });
  }
}
