import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The `aa-oidc` command of this checkout, as an operator runs it. */
export const AA_OIDC_BIN = fileURLToPath(new URL('../../bin/aa-oidc.js', import.meta.url));

/** A process a test started, with everything it printed so far. */
export interface Child {
  process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when `pattern` appears on stdout or stderr; rejects when the process ends first. */
  waitFor(pattern: RegExp, what?: string, deadlineMs?: number): Promise<RegExpExecArray>;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  exited: Promise<number | string>;
  /** Sends `signal` (default SIGTERM) unless the process already ended; resolves on its end. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts `command` with piped output, in a process group of its own, so that a signal reaches what
 * it started too (`npm start` runs node); every test that uses it stops it in `after`.
 */
export function startChild(command: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const listener of listeners) listener();
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    changed();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    changed();
  });
  let ended = false;
  const exited = new Promise<number | string>((resolve) =>
    child.on('close', (code, signal) => {
      ended = true;
      changed();
      resolve(code ?? signal ?? 'unknown');
    }),
  );
  const waitFor = (pattern: RegExp, what = String(pattern), deadlineMs = 60_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(stdout) ?? pattern.exec(stderr);
        if (match) return finish(() => resolve(match));
        if (ended)
          return finish(() =>
            reject(new Error(`${command} ended before ${what}:\n${stdout}\n${stderr}`.slice(-4000))),
          );
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`no ${what} within ${deadlineMs} ms:\n${stdout}\n${stderr}`))),
        deadlineMs,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        listeners.delete(check);
        settle();
      };
      listeners.add(check);
      check();
    });
  return {
    process: child,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor,
    exited,
    async stop(signal = 'SIGTERM') {
      if (!ended && child.pid !== undefined) {
        try {
          process.kill(-child.pid, signal);
        } catch {
          // the group is gone already
        }
      }
      return exited;
    },
  };
}

/** Runs `command` to its end; resolves with its exit code and output. */
export async function runToEnd(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = startChild(command, args, options);
  const code = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}
