import { closeSync, openSync, readSync } from 'node:fs';

/**
 * The bytes of `file`, read at most `limit` + 1 of them; undefined when it holds more than `limit`.
 * A file that never ends (/dev/zero, /dev/urandom) or a huge one is refused at once instead of
 * filling the memory until the process dies. Throws what opening or reading throws (ENOENT, EACCES,
 * EISDIR).
 */
export function readFileAtMost(file: string, limit: number): Buffer | undefined {
  const buffer = Buffer.alloc(limit + 1);
  let length = 0;
  const descriptor = openSync(file, 'r');
  try {
    while (length < buffer.length) {
      const bytesRead = readSync(descriptor, buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
  } finally {
    closeSync(descriptor);
  }
  return length > limit ? undefined : buffer.subarray(0, length);
}
