import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { CliError } from '../../src/cli/context.ts';
import { promptHidden, readNewPassword } from '../../src/cli/prompt.ts';
import { captureIo } from '../helpers/cli.ts';

/** A terminal as the prompt sees it: keystrokes in, raw mode recorded, everything shown captured. */
function fakeTerminal(isTTY = true) {
  const stdin = new PassThrough() as PassThrough & { isTTY?: boolean; setRawMode?: (mode: boolean) => void };
  const rawModes: boolean[] = [];
  stdin.isTTY = isTTY;
  stdin.setRawMode = (mode) => void rawModes.push(mode);
  const { io, stderr } = captureIo({}, { overrides: { stdin } });
  return { io, stdin, rawModes, shown: stderr };
}

describe('password prompt', () => {
  it('reads a line with echo off and shows nothing of what was typed', async () => {
    const terminal = fakeTerminal();
    const answer = promptHidden(terminal.io, 'Password: ');
    terminal.stdin.write('hunter2x');
    terminal.stdin.write('\u007fY\r');
    assert.equal(await answer, 'hunter2Y');
    assert.deepEqual(terminal.rawModes, [true, false]);
    assert.equal(terminal.shown(), 'Password: \n');
  });

  it('asks twice and refuses two different passwords', async () => {
    const terminal = fakeTerminal();
    const answer = readNewPassword(terminal.io, 'alice', false);
    terminal.stdin.write('first-password\r');
    await new Promise((resolve) => setImmediate(resolve));
    terminal.stdin.write('second-password\r');
    await assert.rejects(answer, new CliError('the two passwords differ; nothing changed'));
    assert.ok(!terminal.shown().includes('password\r'));
    assert.equal(terminal.shown(), 'New password for alice: \nRepeat the password: \n');
  });

  it('takes the same password typed with its accents composed, then combining, as one (NFC)', async () => {
    const terminal = fakeTerminal();
    const answer = readNewPassword(terminal.io, 'alice', false);
    terminal.stdin.write(`${'crème brûlée'.normalize('NFD')}\r`);
    await new Promise((resolve) => setImmediate(resolve));
    terminal.stdin.write(`${'crème brûlée'.normalize('NFC')}\r`);
    assert.equal((await answer).normalize('NFC'), 'crème brûlée'.normalize('NFC'));
  });

  it('refuses a typed password holding a control character (a pasted tab, an arrow key), naming it, where it dropped it before', async () => {
    for (const [typed, named] of [
      ['correct\thorse', 'U+0009, a tab;'],
      ['correct horse\u001b[D', 'U+001B, an escape (an arrow or function key sends one);'],
    ] as const) {
      const terminal = fakeTerminal();
      const answer = readNewPassword(terminal.io, 'alice', false);
      terminal.stdin.write(`${typed}\r`);
      await new Promise((resolve) => setImmediate(resolve));
      terminal.stdin.write(`${typed}\r`);
      await assert.rejects(answer, (error: unknown) => {
        assert.ok(error instanceof CliError);
        assert.ok(
          error.message.startsWith(`the password typed holds a control character: ${named}`),
          error.message,
        );
        assert.ok(!error.message.includes('horse'), 'the message never repeats the password');
        return true;
      });
      assert.equal(terminal.shown(), 'New password for alice: \nRepeat the password: \n');
    }
  });

  it('refuses a typed password holding a bidirectional control or an invisible character (pasted with it), naming it', async () => {
    for (const [typed, named] of [
      ['correct\u202ehorse', 'U+202E, a bidirectional control character;'],
      ['correct\u00adhorse', 'U+00AD, an invisible character;'],
    ] as const) {
      const terminal = fakeTerminal();
      const answer = readNewPassword(terminal.io, 'alice', false);
      terminal.stdin.write(`${typed}\r`);
      await new Promise((resolve) => setImmediate(resolve));
      terminal.stdin.write(`${typed}\r`);
      await assert.rejects(answer, (error: unknown) => {
        assert.ok(error instanceof CliError);
        assert.ok(
          error.message.startsWith(`the password typed holds a hidden character: ${named}`),
          error.message,
        );
        assert.ok(!error.message.includes('horse'), 'the message never repeats the password');
        return true;
      });
    }
    // An emoji sequence's joiner is typed on purpose: taken.
    const terminal = fakeTerminal();
    const answer = readNewPassword(terminal.io, 'alice', false);
    const joined = 'team \u{1f469}\u200d\u{1f4bb} rocks';
    terminal.stdin.write(`${joined}\r`);
    await new Promise((resolve) => setImmediate(resolve));
    terminal.stdin.write(`${joined}\r`);
    assert.equal(await answer, joined);
  });

  it('clears what was typed on Ctrl-U', async () => {
    const terminal = fakeTerminal();
    const answer = promptHidden(terminal.io, 'Password: ');
    terminal.stdin.write('mistyped\u0015hunter2x\r');
    assert.equal(await answer, 'hunter2x');
  });

  it('refuses --password-stdin when standard input is a terminal, which would show the password typed', async () => {
    const terminal = fakeTerminal();
    // What a terminal would have echoed, already there: read, it would be taken as the password.
    terminal.stdin.end('typed-password\n');
    await assert.rejects(
      readNewPassword(terminal.io, 'alice', true),
      new CliError(
        '--password-stdin reads the password from a pipe or a file, and standard input is a terminal, which would show the password as it is typed; leave --password-stdin out to be prompted with echo off, or pipe the password in',
      ),
    );
    assert.deepEqual(terminal.rawModes, [], 'nothing was read');
    assert.equal(terminal.shown(), '');
  });

  it('treats Ctrl-C as a cancellation', async () => {
    const terminal = fakeTerminal();
    const answer = promptHidden(terminal.io, 'Password: ');
    terminal.stdin.write('abc\u0003');
    await assert.rejects(answer, (error: unknown) => error instanceof CliError && error.exitCode === 130);
    assert.deepEqual(terminal.rawModes, [true, false]);
  });

  it('reads --password-stdin input without its trailing newline, and refuses to prompt without a terminal', async () => {
    const piped = fakeTerminal(false);
    piped.stdin.end('s3cret password\n');
    assert.equal(await readNewPassword(piped.io, 'alice', true), 's3cret password');
    const twoLines = fakeTerminal(false);
    twoLines.stdin.end('s3cret\npassword\n');
    await assert.rejects(
      readNewPassword(twoLines.io, 'alice', true),
      new CliError(
        '--password-stdin: standard input holds more than one line; write the password alone on one line (one trailing newline is dropped)',
      ),
    );
    await assert.rejects(
      readNewPassword(fakeTerminal(false).io, 'alice', false),
      /standard input is not a terminal/,
    );
  });
});
