import { normalizePassword } from '../directory/builtin/passwords.ts';
import { sameText } from '../util/same-text.ts';
import { CliError, type CliIo, readStdin } from './context.ts';

/** Standard input as the prompt needs it: a TTY that can switch echo off. */
interface TtyInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?: (mode: boolean) => unknown;
}

/**
 * Reads one line from the terminal with echo off (raw mode: nothing typed is shown). Ctrl-C
 * cancels. The prompt goes to stderr so that stdout stays clean for scripts.
 */
export function promptHidden(io: CliIo, prompt: string): Promise<string> {
  const stdin = io.stdin as TtyInput;
  if (!stdin.isTTY || typeof stdin.setRawMode !== 'function') {
    return Promise.reject(new CliError('cannot prompt: standard input is not a terminal'));
  }
  const setRawMode = stdin.setRawMode.bind(stdin);
  io.stderr.write(prompt);
  setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = () => {
      stdin.off('data', onData);
      setRawMode(false);
      stdin.pause();
      io.stderr.write('\n');
    };
    function onData(chunk: string | Buffer): void {
      for (const char of String(chunk)) {
        if (char === '\r' || char === '\n' || char === '\u0004') {
          finish();
          resolve(value);
          return;
        }
        if (char === '\u0003') {
          finish();
          reject(new CliError('cancelled', 130));
          return;
        }
        if (char === '\u007f' || char === '\b') value = [...value].slice(0, -1).join('');
        else if (char >= ' ') value += char;
      }
    }
    stdin.on('data', onData);
  });
}

/**
 * The new password for `user create` and `user set-password`: from stdin with `--password-stdin`
 * (one line, trailing newline dropped), else typed twice at a terminal prompt. Never from argv.
 */
export async function readNewPassword(io: CliIo, username: string, fromStdin: boolean): Promise<string> {
  if (fromStdin) return readStdin(io.stdin);
  if (!(io.stdin as TtyInput).isTTY) {
    throw new CliError(
      'no password: standard input is not a terminal, so there is no prompt; write the password to standard input and pass --password-stdin',
    );
  }
  const first = await promptHidden(io, `New password for ${username}: `);
  const second = await promptHidden(io, 'Repeat the password: ');
  // As the directory takes them: one password whether its accents come composed or combining (NFC).
  if (!sameText(normalizePassword(first), normalizePassword(second)))
    throw new CliError('the two passwords differ; nothing changed');
  return first;
}
