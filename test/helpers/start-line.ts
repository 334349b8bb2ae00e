/**
 * Preloaded (`node --import`) into the processes `startCliProcessesAtOnce` (cli.ts) starts: it loads
 * the CLI's modules, says `start-line: ready` on stderr and waits until the file named in
 * TEST_START_LINE exists, so that the command begins in every process within milliseconds of the
 * others (a process start takes about a second of module loading, more than the race under test).
 */
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import '../../src/cli/main.ts';

const go = process.env.TEST_START_LINE;
if (go) {
  process.stderr.write('start-line: ready\n');
  while (!existsSync(go)) await sleep(2);
}
