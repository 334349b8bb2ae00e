import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
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
 * The codes with which `link` says that the filesystem has no hard links (some network and FUSE
 * filesystems, some mounts of another system's disk), not that this link in particular failed.
 */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/** The file operations `createPrivateFileOnce` makes, replaceable by a test. */
export interface PrivateFileSystem {
  linkSync(existing: string, created: string): void;
}

/**
 * Creates `file` (mode 0600) holding `content` unless it exists, and returns what it holds then.
 * Processes doing so at once (`serve` and `worker` started together on a new data directory) all
 * end up with the same content: the file appears whole (a temporary file, then a hard link, which
 * never replaces a file), so no process reads it half written, and the one that lost reads what
 * the winner wrote instead of failing with EEXIST. On a filesystem without hard links it is created
 * exclusively instead (`createPrivateFileExclusively`).
 */
export function createPrivateFileOnce(
  file: string,
  content: string,
  fs: PrivateFileSystem = { linkSync },
): string {
  const temporary = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(temporary, content, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(temporary, file);
    return content;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (NO_HARD_LINKS.has(code)) return createPrivateFileExclusively(file, content);
    if (code !== 'EEXIST') throw error;
    return readFileSync(file, 'utf8');
  } finally {
    rmSync(temporary, { force: true });
  }
}

/** How long a process that lost the race waits for the winner's content to appear. */
const WINNER_WAIT_MS = 2000;

/**
 * `createPrivateFileOnce` where hard links are not to be had: the file is created with O_EXCL (never
 * replacing one), written and flushed, and removed again if writing fails, so that no half-written
 * file stays. A process that finds it already there waits (up to `WINNER_WAIT_MS`) until the one
 * that created it has written into it, then returns what it holds. Unlike the hard link, another
 * process may read it in the instant between its creation and its write: it waits while the file is
 * empty, and the content, a line or two written in one call, is not seen in part in practice.
 */
export function createPrivateFileExclusively(file: string, content: string): string {
  let descriptor: number;
  try {
    descriptor = openSync(file, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return readWhenWritten(file);
  }
  try {
    writeFileSync(descriptor, content);
    fsyncSync(descriptor);
  } catch (error) {
    closeSync(descriptor);
    rmSync(file, { force: true });
    throw error;
  }
  closeSync(descriptor);
  return content;
}

/** What `file` holds once it holds anything, or (empty) after `WINNER_WAIT_MS`. */
function readWhenWritten(file: string): string {
  const deadline = Date.now() + WINNER_WAIT_MS;
  for (;;) {
    const text = readFileSync(file, 'utf8');
    if (text !== '' || Date.now() >= deadline) return text;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}
