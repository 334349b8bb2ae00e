import { normalizePassword } from '../directory/builtin/passwords.ts';
import { codePoint, hiddenCharacter } from '../util/hidden-characters.ts';
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
        else if (char === '\u0015') value = '';
        // Any other control character is kept, for `readNewPassword` to refuse: dropped, a pasted
        // tab or an arrow key's escape sequence (ESC [ A) would set another password than the one
        // typed, or pasted, with no word said.
        else value += char;
      }
    }
    stdin.on('data', onData);
  });
}

/**
 * The new password for `user create` and `user set-password`: from stdin with `--password-stdin`
 * (one line, its one trailing line end, LF or CRLF, dropped), else typed twice at a terminal prompt.
 * Never from argv. `--password-stdin` on a terminal is refused: the terminal would show the password
 * as it is typed. Either way, a password holding a control or hidden character is refused
 * (`refuseUnfitCharacter`).
 */
export async function readNewPassword(io: CliIo, username: string, fromStdin: boolean): Promise<string> {
  if (fromStdin) {
    if ((io.stdin as TtyInput).isTTY) {
      throw new CliError(
        '--password-stdin reads the password from a pipe or a file, and standard input is a terminal, which would show the password as it is typed; leave --password-stdin out to be prompted with echo off, or pipe the password in',
      );
    }
    return refuseUnfitCharacter(await readStdin(io.stdin), '--password-stdin: the password');
  }
  if (!(io.stdin as TtyInput).isTTY) {
    throw new CliError(
      'no password: standard input is not a terminal, so there is no prompt; write the password to standard input and pass --password-stdin',
    );
  }
  const first = await promptHidden(io, `New password for ${username}: `);
  const second = await promptHidden(io, 'Repeat the password: ');
  for (const typed of [first, second]) refuseUnfitCharacter(typed, 'the password typed');
  // As the directory takes them: one password whether its accents come composed or combining (NFC).
  if (!sameText(normalizePassword(first), normalizePassword(second)))
    throw new CliError('the two passwords differ; nothing changed');
  return first;
}

// C0 controls (a tab, a carriage return, ESC), DEL and C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

const CONTROL_NAMES: Readonly<Record<string, string>> = {
  '\t': 'a tab',
  '\r': 'a carriage return (a file with Windows line ends, CRLF, ends each line in one; one CRLF at the end is dropped)',
  '\u001b': 'an escape (an arrow or function key sends one)',
};

/**
 * `password` (from `--password-stdin` or the prompt), refused when it holds a control character, the
 * character named (never the password): no one types one at a sign-in page, a prompt cannot take one
 * as typed, and one in a piped password is a stray (a carriage return from a file with Windows line
 * ends, a tab from a spreadsheet), so that the password set would not be the one meant. So is one
 * holding a hidden format character (a bidirectional control, a zero-width space, a byte order mark
 * inside the text: the one a file starts with is dropped as standard input is read), which comes
 * pasted with the text around it and makes the password look like another (`validateNewPassword`).
 */
function refuseUnfitCharacter(password: string, what: string): string {
  const found = CONTROL_CHARACTER.exec(password);
  if (found === null) {
    const hidden = hiddenCharacter(password);
    if (hidden === undefined) return password;
    throw new CliError(
      `${what} holds a hidden character: ${hidden}; no one types one at a sign-in page on purpose (it comes pasted with the text around it) and it makes the password look like another, so nothing changed: give the password without it`,
    );
  }
  const char = found[0];
  const where = found.index === password.length - 1 ? ' at its end' : '';
  const name = CONTROL_NAMES[char];
  throw new CliError(
    `${what} holds a control character${where}: ${codePoint(char)}${name === undefined ? '' : `, ${name}`}; no sign-in page can type one, so nothing changed: give the password without it`,
  );
}
