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
