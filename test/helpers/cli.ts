import { writeFileSync } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../../src/cli/context.ts';
import { runCli } from '../../src/cli/main.ts';
import { AA_OIDC_BIN, type Child, runToEnd, startChild } from './child-process.ts';

/**
 * Running `aa-oidc` in tests. `cli()` and `startCli()` run a command inside the test process
 * through `runCli`, with the environment, streams and stop request injected: what most tests need,
 * at no process start-up cost. `spawnCli()` and `startCliProcess()` run bin/aa-oidc.js as a real
 * process, for the few behaviours only a process shows (its exit code, a closed output pipe,
 * signals, `serve` from a cold start).
 */

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Standard input: a pipe (never a terminal) that ends after this text (or these bytes). */
  stdin?: string | Buffer;
  /** The working folder (default: the test process's). */
  cwd?: string;
  /** In-process runs only: standard output claims to be a terminal (`isTTY`). */
  terminalStdout?: boolean;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const STARTUP_DEADLINE_MS = 30_000;

/** A stream that keeps what is written to it, and tells listeners after each write. */
function collector(): { stream: Writable; text: () => string; onWrite: (listener: () => void) => void } {
  let text = '';
  const listeners: Array<() => void> = [];
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      text += String(chunk);
      for (const listener of listeners) listener();
      callback();
    },
  });
  return { stream, text: () => text, onWrite: (listener) => listeners.push(listener) };
}

/** Captured output of an in-process run; `onOutput` is called after each write to stdout or stderr. */
export interface CapturedIo {
  io: CliIo;
  stdout(): string;
  stderr(): string;
  onOutput(listener: () => void): void;
}

/**
 * What one in-process run takes from its "process": captured stdout and stderr (log lines too), a
 * stdin pipe that ends after `options.stdin`, `env`, and `stop` for what SIGTERM is to a process.
 * `overrides` replace any part (a terminal-like stdin for the password prompt).
 */
export function captureIo(
  env: NodeJS.ProcessEnv,
  options: CliOptions & { stop?: Promise<string>; overrides?: Partial<CliIo> } = {},
): CapturedIo {
  const stdout = collector();
  if (options.terminalStdout) Object.assign(stdout.stream, { isTTY: true });
  const stderr = collector();
  const stdin = new PassThrough();
  stdin.end(options.stdin ?? '');
  const io: CliIo = {
    stdout: stdout.stream,
    stderr: stderr.stream,
    stdin,
    env,
    cwd: options.cwd ?? process.cwd(),
    logDestination: (stream) => (stream === 'stdout' ? stdout.stream : stderr.stream),
    stopRequested: () => options.stop ?? new Promise<string>(() => undefined),
    ...options.overrides,
  };
  return {
    io,
    stdout: stdout.text,
    stderr: stderr.text,
    onOutput: (listener) => {
      stdout.onWrite(listener);
      stderr.onWrite(listener);
    },
  };
}

/** Runs one `aa-oidc` command in this process, as `aa-oidc ARGS` would run with this environment. */
export async function cli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: CliOptions = {},
): Promise<CliResult> {
  const captured = captureIo(env, options);
  const code = await runCli(args, captured.io);
  return { code, stdout: captured.stdout(), stderr: captured.stderr() };
}

/** A long-running command (`serve`, `worker`) started in this process: the shape of a `Child`. */
export interface RunningCli {
  stdout(): string;
  stderr(): string;
  /** Resolves when `pattern` appears on stdout or stderr; rejects when the command ends first. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  /** Resolves with the exit code once the command has ended. */
  exited: Promise<number>;
  /** Asks the command to stop, as SIGTERM does a process; resolves with its exit code. */
  stop(): Promise<number>;
}

/** Starts a long-running command in this process; `stop()` is its SIGTERM. `overrides`: as `captureIo`. */
export function startCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: CliOptions & { overrides?: Partial<CliIo> } = {},
): RunningCli {
  let requestStop: (signal: string) => void = () => undefined;
  const stop = new Promise<string>((resolve) => (requestStop = resolve));
  const captured = captureIo(env, { ...options, stop });
  let ended = false;
  const exited = runCli(args, captured.io).finally(() => (ended = true));
  const waitFor = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const timer = setTimeout(
        () => settle(new Error(`no ${pattern} within the start-up deadline`)),
        STARTUP_DEADLINE_MS,
      );
      let settled = false;
      const settle = (outcome: RegExpExecArray | Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (outcome instanceof Error)
          reject(new Error(`${outcome.message}:\n${captured.stdout()}\n${captured.stderr()}`));
        else resolve(outcome);
      };
      const check = () => {
        const match = pattern.exec(captured.stdout()) ?? pattern.exec(captured.stderr());
        if (match) settle(match);
        else if (ended) settle(new Error(`the command ended before ${pattern} appeared`));
      };
      captured.onOutput(check);
      void exited.finally(check);
      check();
    });
  return {
    stdout: captured.stdout,
    stderr: captured.stderr,
    waitFor,
    exited,
    stop: () => {
      requestStop('SIGTERM');
      return exited;
    },
  };
}

/** Starts `aa-oidc ARGS` (bin/aa-oidc.js) as a separate process with this environment (`testEnv`). */
export function startCliProcess(args: readonly string[], env: NodeJS.ProcessEnv): Child {
  return startChild(process.execPath, [AA_OIDC_BIN, ...args], { env, cwd: ROOT });
}

/** Runs `aa-oidc ARGS` as a separate process to its end. */
export function spawnCli(args: readonly string[], env: NodeJS.ProcessEnv) {
  return runToEnd(process.execPath, [AA_OIDC_BIN, ...args], { env, cwd: ROOT });
}

const START_LINE = fileURLToPath(new URL('./start-line.ts', import.meta.url));

/**
 * Starts `count` processes of `aa-oidc ARGS` that begin the command at the same moment: each loads
 * the CLI, then waits at a start line (start-line.ts) until all are there; `goFile` (a path that
 * does not exist yet) lets them go. Their stderr begins with the start line's `start-line: ready`.
 */
export async function startCliProcessesAtOnce(
  count: number,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  goFile: string,
): Promise<Child[]> {
  const lined = {
    ...env,
    NODE_OPTIONS: [env.NODE_OPTIONS, `--import=${START_LINE}`].filter(Boolean).join(' '),
    TEST_START_LINE: goFile,
  };
  const children = Array.from({ length: count }, () => startCliProcess(args, lined));
  try {
    await Promise.all(children.map((child) => child.waitFor(/^start-line: ready$/m, 'the start line')));
  } catch (error) {
    await Promise.all(children.map((child) => child.stop()));
    throw error;
  }
  writeFileSync(goFile, '');
  return children;
}
