import { type ChildProcess, spawn } from 'node:child_process';
import { PassThrough, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../../src/cli/context.ts';
import { runCli } from '../../src/cli/main.ts';

/**
 * Running `aa-oidc` in tests. `cli()` runs a command inside the test process through `runCli`, with
 * the environment, streams and folder injected: what most tests need, at no process start-up cost.
 * `spawnCli()` and `startCliProcess()` start a real process, for the few behaviours only a process
 * shows (its exit code, a closed output pipe, signals, `serve` from a cold start).
 */

export interface CliResult {
  /** The exit code (`null` for a process killed by a signal). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Standard input: a pipe (never a terminal) that ends after this text. */
  stdin?: string;
  /** The working folder (default: the test process's). */
  cwd?: string;
}

const RUN = fileURLToPath(new URL('../../src/cli/run.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const STARTUP_DEADLINE_MS = 30_000;

/** A stream that keeps what is written to it. */
function collector(): { stream: Writable; text: () => string; onText: (listener: () => void) => void } {
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
  return { stream, text: () => text, onText: (listener) => listeners.push(listener) };
}

/** Captured output of an in-process run; `onStdout` is called after each write to stdout. */
export interface CapturedIo {
  io: CliIo;
  stdout(): string;
  stderr(): string;
  onStdout(listener: () => void): void;
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
  return { io, stdout: stdout.text, stderr: stderr.text, onStdout: stdout.onText };
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

/** A long-running command (`serve`, `worker`), in this process or as a real one. */
export interface RunningCli {
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` on stdout; rejects if the command ends first. */
  waitForStdout(pattern: RegExp): Promise<RegExpExecArray>;
  /** Asks the command to stop (SIGTERM for a process) and resolves with how it ended. */
  stop(): Promise<CliResult>;
  /** Resolves with how the command ended, whoever ended it. */
  readonly ended: Promise<CliResult>;
}

function waitFor(
  pattern: RegExp,
  output: () => string,
  onOutput: (listener: () => void) => void,
  ended: Promise<CliResult>,
  describe: () => string,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} on stdout within the start-up deadline:\n${describe()}`)),
      STARTUP_DEADLINE_MS,
    );
    const check = () => {
      const match = pattern.exec(output());
      if (!match) return false;
      clearTimeout(timer);
      resolve(match);
      return true;
    };
    if (check()) return;
    onOutput(check);
    void ended.then(() => {
      if (!check()) {
        clearTimeout(timer);
        reject(new Error(`the command ended before ${pattern} appeared:\n${describe()}`));
      }
    });
  });
}

/** Starts a long-running command in this process; `stop()` is its SIGTERM. */
export function startCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: CliOptions = {},
): RunningCli {
  let requestStop: (signal: string) => void = () => undefined;
  const stop = new Promise<string>((resolve) => (requestStop = resolve));
  const captured = captureIo(env, { ...options, stop });
  const ended = runCli(args, captured.io).then((code) => ({
    code,
    stdout: captured.stdout(),
    stderr: captured.stderr(),
  }));
  const describe = () => `stdout:\n${captured.stdout()}\nstderr:\n${captured.stderr()}`;
  return {
    stdout: captured.stdout,
    stderr: captured.stderr,
    waitForStdout: (pattern) => waitFor(pattern, captured.stdout, captured.onStdout, ended, describe),
    stop: () => {
      requestStop('SIGTERM');
      return ended;
    },
    ended,
  };
}

/** A real `aa-oidc` process (`node src/cli/run.ts ARGS`); `kill()` sends any signal. */
export interface CliProcess extends RunningCli {
  readonly child: ChildProcess;
  kill(signal: NodeJS.Signals): void;
}

/** Starts `aa-oidc ARGS` as a separate process with this environment (see `testEnv`). */
export function startCliProcess(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: CliOptions = {},
): CliProcess {
  const child = spawn(process.execPath, [RUN, ...args], {
    env,
    cwd: options.cwd ?? ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout = collector();
  const stderr = collector();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => stdout.stream.write(chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.stream.write(chunk));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(options.stdin ?? '');
  const ended = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: stdout.text(), stderr: stderr.text() }));
  });
  const describe = () => `stdout:\n${stdout.text()}\nstderr:\n${stderr.text()}`;
  return {
    child,
    stdout: stdout.text,
    stderr: stderr.text,
    waitForStdout: (pattern) => waitFor(pattern, stdout.text, stdout.onText, ended, describe),
    stop: () => {
      child.kill('SIGTERM');
      return ended;
    },
    kill: (signal) => child.kill(signal),
    ended,
  };
}

/** Runs `aa-oidc ARGS` as a separate process to its end (killed after `timeoutMs`). */
export async function spawnCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  options: CliOptions & { timeoutMs?: number } = {},
): Promise<CliResult> {
  const running = startCliProcess(args, env, options);
  const timer = setTimeout(() => running.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  try {
    return await running.ended;
  } finally {
    clearTimeout(timer);
  }
}
