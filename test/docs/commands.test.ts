import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { docCommands, leafCommands, refusal } from './doc-commands.ts';

/**
 * README.md and docs/*.md show `aa-oidc` command lines, in full and as synopses (`[--dry-run]`,
 * `--format table|json|csv`): every command, subcommand and option they name must be one the CLI has,
 * and a command written out in full must parse as it is. (docs/apps/ has its own test;
 * docs/performance-history.md is a record of past runs, written as they were.)
 */
const root = new URL('../../', import.meta.url);
const files = [
  'README.md',
  ...readdirSync(new URL('docs/', root))
    .filter((name) => name.endsWith('.md') && name !== 'performance-history.md')
    .map((name) => `docs/${name}`),
];

describe('README and docs', () => {
  it('show only aa-oidc commands and options the CLI has', () => {
    const commands = files.flatMap((file) => docCommands(file, readFileSync(new URL(file, root), 'utf8')));
    assert.ok(commands.filter((c) => c.complete).length >= 10, `found the commands (${commands.length})`);
    assert.ok(
      commands.some((c) => c.words.slice(0, 2).join(' ') === 'audit list' && c.words.includes('--since')),
      'found the synopsis inside a list item',
    );
    const problems = commands.flatMap(({ where, words, complete }) => {
      const why = refusal(words, complete);
      return why ? [`${where}: aa-oidc ${words.join(' ')}: ${why}`] : [];
    });
    assert.deepEqual(problems, []);
  });

  it('would see a command, option or choice the CLI does not have', () => {
    const markdown = [
      '```sh',
      'npx aa-oidc app list [--activ] [--format table|yaml]',
      'printf x | npx aa-oidc user frobnicate alice',
      'aa-oidc state rename Member  # one argument short',
      'aa-oidc backup',
      'aa-oidc group rename Pilots Wing / delete Pilots / frobnicate Pilots',
      '```',
      'Run `aa-oidc keys list --format …` or `aa-oidc tokens audit --user alice`.',
    ].join('\n');
    const found = docCommands('example.md', markdown).map(({ where, words, complete }) => [
      where,
      refusal(words, complete) ?? 'ok',
    ]);
    assert.deepEqual(found, [
      ['example.md:2', 'unknown option --activ of "list"'],
      [
        'example.md:2',
        `error: option '--format <format>' argument "yaml" is invalid. Allowed choices are table, json, csv.`,
      ],
      ['example.md:3', '"user" has no command "frobnicate"'],
      ['example.md:4', '"rename" needs 2 argument(s), got 1'],
      ['example.md:5', '"backup" needs --to'],
      ['example.md:6', 'ok'],
      ['example.md:6', 'ok'],
      ['example.md:6', '"group" has no command "frobnicate"'],
      ['example.md:8', 'ok'],
      ['example.md:8', 'unknown option --user of "audit"'],
    ]);
  });

  it("show every command the CLI has in one of README's command lines", () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const shown = docCommands('README.md', readme).map(({ words }) => `${words.join(' ')} `);
    const commands = leafCommands().map((words) => words.join(' '));
    assert.ok(commands.length >= 50, `found the commands (${commands.length})`);
    assert.deepEqual(
      commands.filter((command) => !shown.some((line) => line.startsWith(`${command} `))),
      [],
    );
  });
});
