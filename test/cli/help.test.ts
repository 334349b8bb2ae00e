import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.ts';
import { cli } from '../helpers/cli.ts';

/** Every command path (`['user', 'show']`), the program's own (`[]`) first. */
function commandPaths(command: Command, path: string[] = []): string[][] {
  return [
    path,
    ...command.commands
      .filter((sub) => sub.name() !== 'help')
      .flatMap((sub) => commandPaths(sub, [...path, sub.name()])),
  ];
}

describe('aa-oidc --help', () => {
  // Only walked for its commands, never run.
  const program = buildProgram();

  it('wraps every command’s help at 80 columns, and describes every argument', async () => {
    for (const path of commandPaths(program)) {
      const command = path.reduce<Command>(
        (parent, name) => parent.commands.find((sub) => sub.name() === name)!,
        program,
      );
      const result = await cli([...path, '--help'], {});
      const shown = `aa-oidc ${path.join(' ')} --help`;
      assert.equal(result.code, 0, `${shown}: ${result.stderr}`);
      for (const line of result.stdout.split('\n'))
        assert.ok(line.length <= 80, `${shown} has a line of ${line.length} columns: ${line}`);
      for (const argument of command.registeredArguments)
        assert.ok(argument.description !== '', `${shown}: <${argument.name()}> has no description`);
      if (command.registeredArguments.length > 0)
        assert.match(result.stdout, /^Arguments:\n/m, `${shown} has no Arguments: section`);
    }
  });
});

describe('aa-oidc --help of a state or group argument', () => {
  it('says to give a character `state list` or `group list` shows as an escape as the character itself', async () => {
    for (const path of [
      ['state', 'set-priority'],
      ['state', 'grant-access'],
      ['state', 'rename'],
      ['state', 'delete'],
      ['group', 'grant-access'],
      ['group', 'rename'],
      ['group', 'delete'],
      ['user', 'set-state'],
      ['user', 'add-group'],
      ['user', 'remove-group'],
    ]) {
      const help = (await cli([...path, '--help'], {})).stdout.replace(/\s+/g, ' ');
      // A listing shows `Esc\x1b` for the state `Esc` ESC: those four characters given name no state.
      assert.doesNotMatch(help, /as `(state|group) list` shows it/, path.join(' '));
      assert.match(
        help,
        /the (state|group)'s name; where `(state|group) list` shows an escape \(\\x1b, \\u202e\), give the character itself \(bash: \$'Esc\\x1b'\)/,
        path.join(' '),
      );
    }
  });
});

describe('aa-oidc --help of a username argument', () => {
  it('says to give a character `user list` shows as an escape (an Alliance Auth username) as the character itself', async () => {
    for (const command of ['show', 'sign-out', 'set-password', 'set-state', 'add-group', 'delete']) {
      const help = (await cli(['user', command, '--help'], {})).stdout.replace(/\s+/g, ' ');
      assert.doesNotMatch(help, /as `user list` shows it/, command);
      assert.match(
        help,
        / username the user's username; where `user list` shows an escape \(\\x1b, \\u202e\), give the character itself \(bash: \$'Esc\\x1b'\)/,
        command,
      );
    }
  });
});

describe('aa-oidc user list --help', () => {
  it('says its last column is the oidc access held by the user directly, not through a state or group', async () => {
    const help = (await cli(['user', 'list', '--help'], {})).stdout.replace(/\s+/g, ' ');
    assert.match(
      help,
      /the last column, direct oidc access \(oidc_access in JSON\), is the permission held by the user directly, false for one who has it only through the state or a group/,
    );
  });
});

describe('aa-oidc import plugin-apps --help', () => {
  it('says the exit code of an import its configuration stops before it begins, 2, and so it is', async () => {
    const help = (await cli(['import', 'plugin-apps', '--help'], {})).stdout.replace(/\s+/g, ' ');
    assert.match(
      help,
      /Exits 1 when an application was not imported or the import stopped \(2 when the configuration is refused, as for every command\)\./,
    );
    const result = await cli(['import', 'plugin-apps', '--format', 'json'], { AA_OIDC_LOG_LEVEL: 'loud' });
    assert.equal(result.code, 2, result.stderr);
    const document = JSON.parse(result.stdout) as { applications: unknown[]; error: string };
    assert.deepEqual(document.applications, []);
    assert.match(document.error, /^configuration error: AA_OIDC_LOG_LEVEL: /);
  });
});

describe('aa-oidc usage errors', () => {
  /** What a script reads of a refused command line: its exit code and its one line on stderr. */
  async function refused(args: readonly string[]): Promise<string> {
    const result = await cli(args, {});
    assert.equal(result.code, 1, `aa-oidc ${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^aa-oidc: [^\n]*\n$/, `aa-oidc ${args.join(' ')}: not one line`);
    return result.stderr;
  }

  it('names a missing required option in one line, and where the usage is', async () => {
    assert.equal(
      await refused(['app', 'create', '--redirect-uri', 'https://rp.example/cb']),
      "aa-oidc: required option '--name <name>' not specified; see aa-oidc app create --help\n",
    );
  });

  it('names an unknown option in one line, with the option it may have meant', async () => {
    assert.equal(
      await refused(['app', 'list', '--activ']),
      'aa-oidc: unknown option "--activ" (did you mean --active?); see aa-oidc app list --help\n',
    );
    assert.equal(
      await refused(['--frobnicate']),
      'aa-oidc: unknown option "--frobnicate"; see aa-oidc --help\n',
    );
  });

  it('names an option given a value outside its choices, and the choices, in one line', async () => {
    assert.equal(
      await refused(['user', 'list', '--format', 'yaml']),
      `aa-oidc: option '--format <format>' argument "yaml" is invalid. Allowed choices are table, json, csv; see aa-oidc user list --help\n`,
    );
    // A line break typed in the value is shown, not written: the reason stays one line.
    assert.equal(
      await refused(['user', 'list', '--format', 'table\nsecond line']),
      `aa-oidc: option '--format <format>' argument "table\\nsecond line" is invalid. Allowed choices are table, json, csv; see aa-oidc user list --help\n`,
    );
  });

  it('refuses a missing or extra argument, an option without its value and an unknown command in one line', async () => {
    assert.equal(
      await refused(['state', 'create']),
      "aa-oidc: missing required argument 'name'; see aa-oidc state create --help\n",
    );
    assert.equal(
      await refused(['user', 'show', 'alice', 'bob']),
      `aa-oidc: too many arguments for 'show'. Expected 1 argument but got 2: "alice", "bob"; see aa-oidc user show --help\n`,
    );
    assert.equal(
      await refused(['app', 'list', '--format']),
      "aa-oidc: option '--format <format>' argument missing; see aa-oidc app list --help\n",
    );
    assert.equal(
      await refused(['user', 'frobnicate']),
      'aa-oidc: unknown command "frobnicate"; see aa-oidc user --help\n',
    );
  });

  it('names the commands of a command group run without one, in one line', async () => {
    assert.equal(
      await refused([]),
      'aa-oidc: missing command (one of: serve, worker, check, bcl, migrate, backup, keys, import, app, user, state, group, policy, demo, tokens, audit, directory); see aa-oidc --help\n',
    );
    assert.equal(
      await refused(['keys']),
      'aa-oidc: missing command (one of: list, rotate, prepare-next, import, retire, withdraw); see aa-oidc keys --help\n',
    );
    assert.match(
      await refused(['user']),
      /^aa-oidc: missing command \(one of: create, list, show, [a-z, -]+\); see aa-oidc user --help\n$/,
    );
  });

  it('prints the help of a command group for --help and for help, on stdout, and exits 0', async () => {
    for (const args of [['--help'], ['help'], ['user', '--help'], ['help', 'user']]) {
      const result = await cli(args, {});
      assert.equal(result.code, 0, `aa-oidc ${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stderr, '');
      assert.match(result.stdout, /^Usage: aa-oidc (user )?\[options\] \[command\]\n/);
    }
  });

  it('still prints the help for --help, on stdout, and exits 0', async () => {
    const result = await cli(['app', 'create', '--help'], {});
    assert.equal(result.code, 0);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^Usage: aa-oidc app create \[options\]\n/);
  });
});
