/**
 * `npm run bench -- --count-instructions`: each engine runs under valgrind's callgrind, which counts
 * the machine instructions the process executes (every thread of it). The count is switched on just
 * before a measurement's units and off right after them (`callgrind_control`, which talks to the
 * process through valgrind's gdbserver), and read from the dump taken then. For the same code and the
 * same requests it repeats where CPU time does not: other load on the machine does not change it.
 * A bench aid only: nothing of aa-oidc depends on it.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * How valgrind starts an engine. Instrumentation starts off (valgrind then only translates the code,
 * several times faster than counting it) and is switched on for each measurement;
 * `--smc-check=all-non-file` makes valgrind notice the code V8 writes and rewrites at run time.
 */
export const VALGRIND_ARGS = [
  '--tool=callgrind',
  '--instr-atstart=no',
  '--smc-check=all-non-file',
  // The engine's own output is its log; valgrind's notes go to the same file.
  '--quiet',
] as const;

/**
 * V8 flags for an engine under callgrind: compilation and garbage collection run on the main thread,
 * in the order the work asks for them, instead of on background threads whose timing varies from run
 * to run; no memory reducer (its collections follow timers and the allocation rate per second, which
 * valgrind slows down); and both engines get `serve`'s heap settings (bin/aa-oidc.js), the growth of
 * the old generation then fixed instead of following the measured speed of collection
 * (docs/performance.md says how much each choice repeats).
 */
export const V8_ARGS_UNDER_CALLGRIND = [
  '--single-threaded',
  '--no-memory-reducer',
  '--max-semi-space-size=16',
  '--heap-growing-percent=100',
] as const;

/** Valgrind slows an engine down 30–60 times: how long its start-up may take. */
export const START_TIMEOUT_UNDER_CALLGRIND_MS = 15 * 60_000;

/**
 * How long the count stays on after the last response: work that follows a response (the audit
 * store's batched write, at most 100 ms later; the logger's batched lines) belongs to its request.
 */
const TRAILING_WORK_MS = 750;

/**
 * How long the engine is left quiet before the count goes on: aa-oidc's memory release
 * (src/cli/memory-release.ts) runs a full collection after a quiet second when its resident set has
 * grown, and that must happen before the measurement, not in it (under load it never runs).
 */
const QUIET_BEFORE_MS = 2500;

/**
 * The instructions counted in a callgrind dump: its `totals:` line (the dump's `summary:` line stays
 * 0 when instrumentation started off).
 */
export function instructionsOf(dump: string): number {
  const line = /^totals:\s*(\d+)/m.exec(dump);
  if (!line) throw new Error('the callgrind dump has no totals: line');
  return Number(line[1]);
}

/** The command line a callgrind dump records (`cmd:`), to check that the process counted is the engine. */
export function commandOf(dump: string): string {
  return /^cmd:\s*(.*)$/m.exec(dump)?.[1] ?? '';
}

export interface InstructionCounter {
  /** Switches the count on. */
  start(): Promise<void>;
  /** Switches it off and returns the instructions executed since `start()`. */
  stop(): Promise<number>;
}

/**
 * The counter of the engine `pid`, started under valgrind with `--callgrind-out-file=FILE`: each
 * `stop()` dumps into `FILE.N` (N = 1, 2, … in order) and reads that dump, which must record a
 * command matching `command` (the engine, not a launcher that started it).
 */
export function callgrindCounter(pid: number, file: string, command: RegExp): InstructionCounter {
  let dumps = 0;
  const control = async (...args: string[]) => {
    try {
      await run('callgrind_control', [...args, String(pid)], { timeout: 120_000 });
    } catch (error) {
      throw new Error(`callgrind_control ${args.join(' ')} ${pid} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
  };
  return {
    async start() {
      await new Promise((resolve) => setTimeout(resolve, QUIET_BEFORE_MS));
      await control('--instr=on');
    },
    async stop() {
      await new Promise((resolve) => setTimeout(resolve, TRAILING_WORK_MS));
      await control('--instr=off');
      await control('--dump');
      dumps += 1;
      const dump = await readDump(`${file}.${dumps}`);
      if (!command.test(commandOf(dump)))
        throw new Error(`the callgrind dump ${file}.${dumps} is of "${commandOf(dump)}", not of the engine`);
      return instructionsOf(dump);
    },
  };
}

/** A dump once callgrind has written it whole (its totals come last). */
async function readDump(file: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const text = readFileSync(file, 'utf8');
      if (/^totals:/m.test(text)) return text;
    } catch {
      // not there yet
    }
    if (Date.now() > deadline) throw new Error(`callgrind wrote no dump ${file}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Whether valgrind and callgrind_control can be run here (a clear error before anything starts). */
export async function checkValgrind(): Promise<void> {
  for (const tool of ['valgrind', 'callgrind_control']) {
    try {
      await run(tool, ['--version']);
    } catch (error) {
      throw new Error(
        `--count-instructions needs valgrind (callgrind): running \`${tool} --version\` failed (${(error as Error).message}); install valgrind, e.g. apt-get install valgrind`,
        { cause: error },
      );
    }
  }
}
