import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The length of the runs of an erased secret looked for in a file. */
export const LEFTOVER_RUN = 24;

/**
 * Where `file` (a database, its write-ahead log, a backup) holds a run of `LEFTOVER_RUN` characters
 * of `secret`: one line naming the file, how many runs and the first one's place in `secret`; none
 * when it holds none (or does not exist).
 */
export function leftoversOf(secret: string, file: string): string[] {
  if (!existsSync(file)) return [];
  const content = readFileSync(file);
  const starts: number[] = [];
  for (let start = 0; start + LEFTOVER_RUN <= secret.length; start += 1)
    if (content.includes(secret.slice(start, start + LEFTOVER_RUN), 0, 'latin1')) starts.push(start);
  return starts.length === 0
    ? []
    : [
        `${path.basename(file)}: ${starts.length} of the ${secret.length - LEFTOVER_RUN + 1} runs, the first from character ${starts[0]}`,
      ];
}
