import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import type { Command } from 'commander';
import type { CliIo } from '../../src/cli/context.ts';
import { buildProgram } from '../../src/cli/main.ts';

/**
 * The `aa-oidc` command lines that README.md and docs/ show, and whether the CLI as it is would take
 * them: operators copy them line by line.
 */

/** The repository's root. */
export const root = new URL('../../', import.meta.url);

/**
 * README.md (first) and every page under docs/, docs/apps/ included, with their text;
 * docs/performance-history.md is left out: a record of past runs, written as they were.
 */
export function operatorDocs(): Array<{ file: string; text: string }> {
  return [
    'README.md',
    ...readdirSync(new URL('docs/', root), { recursive: true, encoding: 'utf8' })
      .filter((name) => name.endsWith('.md') && name !== 'performance-history.md')
      .map((name) => `docs/${name}`),
  ].map((file) => ({ file, text: readFileSync(new URL(file, root), 'utf8') }));
}

export interface DocCommand {
  where: string;
  words: string[];
  /** A command written out in full (a code block, no synopsis notation), not an excerpt in prose. */
  complete: boolean;
}

/** The line number of `index` in `text`. */
export function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

/** Splits a shell command line into words: single and double quotes, backslash escapes, comments. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i]!;
      else word += c;
    } else if (c === '#' && word === undefined) {
      break;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i]!;
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + c;
    }
  }
  assert.equal(quote, undefined, `unterminated quote in: ${line}`);
  if (word !== undefined) words.push(word);
  return words;
}

/** The fenced code blocks of a Markdown text (in a list item too), with the line each starts on. */
export function codeBlocks(text: string): Array<{ line: number; body: string }> {
  return [...text.matchAll(/^ *```[\w-]*\n([\s\S]*?)^ *```$/gm)].map((m) => ({
    line: lineOf(text, m.index) + 1,
    body: m[1]!,
  }));
}

/**
 * A synopsis as the README writes one (`[--dry-run]`, `[--active|--inactive]`, `--format …`, `user
 * deactivate alice / activate alice`) as the command lines it stands for: brackets dropped, each
 * alternative of `--a|--b` on a line of its own, and what follows ` / ` (the same group's siblings,
 * written short: `activate alice` is `user activate alice`) on a line of its own under the first
 * word's group. Such a line is not complete: its operands are not counted.
 */
function fromSynopsis(words: string[]): { variants: string[][]; notation: boolean } {
  const parts: string[][] = [[]];
  for (const word of words) {
    if (word === '/') parts.push([words[0]!]);
    else parts.at(-1)!.push(word);
  }
  const variants: string[][] = [];
  let notation = parts.length > 1;
  for (const part of parts) {
    const kept = part.map((word) => word.replace(/[[\]]/g, '')).filter(Boolean);
    if (kept.length !== part.length || kept.some((word, i) => word !== part[i] || word === '…'))
      notation = true;
    let expanded = [kept];
    kept.forEach((word, i) => {
      if (!/^[^|]+(\|[^|]+)+$/.test(word)) return;
      expanded = expanded.flatMap((variant) =>
        word.split('|').map((alternative) => variant.with(i, alternative)),
      );
    });
    variants.push(...expanded);
  }
  return { variants, notation: notation || variants.length > 1 };
}

/** The `aa-oidc` commands of one shell line (`npx aa-oidc …`, after `|`, `;` or `&&` too). */
function commandsOfLine(line: string): string[][] {
  return line
    .replace(/\$\([^)]*\)/g, 'X') // a command substitution is one word
    .split(/\s(?:\||;|&&)\s|;\s/)
    .filter((part) => /^\s*(?:npx\s+)?aa-oidc\s/.test(part))
    .map((part) => shellWords(part))
    .map((words) => (words[0] === 'npx' ? words.slice(1) : words))
    .filter((words) => words[0] === 'aa-oidc' && words.length > 1 && words[1] !== '/')
    .map((words) => words.slice(1));
}

/** The `aa-oidc` command lines of a Markdown file: in its code blocks (continued lines joined) and in its prose. */
export function docCommands(file: string, text: string): DocCommand[] {
  const found: DocCommand[] = [];
  for (const block of codeBlocks(text)) {
    const rows = block.body.split('\n');
    for (let i = 0; i < rows.length; i++) {
      const start = i;
      let line = rows[i]!;
      while (line.endsWith('\\') && i + 1 < rows.length) line = `${line.slice(0, -1)} ${rows[++i]}`;
      for (const words of commandsOfLine(line)) {
        const { variants, notation } = fromSynopsis(words);
        for (const variant of variants)
          found.push({ where: `${file}:${block.line + start}`, words: variant, complete: !notation });
      }
    }
  }
  const prose = text.replace(/^ *```[\s\S]*?^ *```$/gm, (block) => block.replace(/[^\n]/g, ' '));
  for (const m of prose.matchAll(/`((?:npx )?aa-oidc\s[^`]+)`/g)) {
    for (const words of commandsOfLine(m[1]!.replace(/\s+/g, ' '))) {
      for (const variant of fromSynopsis(words).variants)
        found.push({ where: `${file}:${lineOf(text, m.index)}`, words: variant, complete: false });
    }
  }
  return found;
}

const quiet = (): CliIo => ({
  stdout: new PassThrough(),
  stderr: new PassThrough(),
  stdin: new PassThrough(),
  env: {},
  cwd: process.cwd(),
  logDestination: () => new PassThrough() as never,
  stopRequested: () => new Promise(() => {}),
});

/** Why the CLI would refuse `words` (`aa-oidc` left out), or undefined when it parses. */
export function refusal(words: readonly string[], complete: boolean): string | undefined {
  let command: Command = buildProgram(quiet());
  let rest = [...words];
  for (;;) {
    const sub = command.commands.find((c) => c.name() === rest[0] || c.aliases().includes(rest[0]!));
    if (!sub) break;
    command = sub;
    rest = rest.slice(1);
  }
  if (/^(?:-h|--help|-V|--version)$/.test(rest[0] ?? '')) return undefined;
  if (command.commands.length > 0) {
    if (/^[A-Z]+$/.test(rest[0] ?? '') && !complete) return undefined; // `aa-oidc COMMAND --help`
    return `"${command.name()}" has no command "${rest[0]}"`;
  }
  // `--format …` in a synopsis: the option must exist, whatever its value.
  for (let i = rest.indexOf('…'); i > 0; i = rest.indexOf('…')) {
    const option = command.options.find((o) => o.long === rest[i - 1]);
    if (option?.required || option?.optional) rest.splice(i - 1, 2);
    else rest.splice(i, 1); // `[--x] …`: more options left out
  }
  let parsed;
  try {
    parsed = command.parseOptions(rest);
  } catch (error) {
    return (error as Error).message;
  }
  if (parsed.unknown.length > 0) return `unknown option ${parsed.unknown[0]} of "${command.name()}"`;
  if (!complete) return undefined;
  const missing = command.options.find(
    (o) => o.mandatory && !rest.some((word) => word === o.long || word.startsWith(`${o.long}=`)),
  );
  if (missing) return `"${command.name()}" needs ${missing.long}`;
  const declared = command.registeredArguments;
  const required = declared.filter((argument) => argument.required).length;
  const variadic = declared.some((argument) => argument.variadic);
  if (parsed.operands.length < required)
    return `"${command.name()}" needs ${required} argument(s), got ${parsed.operands.length}`;
  if (!variadic && parsed.operands.length > declared.length)
    return `"${command.name()}" takes ${declared.length} argument(s), got ${parsed.operands.join(' ')}`;
  return undefined;
}

/** Every command the CLI runs (a leaf of its tree), as its words: `['user', 'activate']`. */
export function leafCommands(): string[][] {
  const leaves: string[][] = [];
  const walk = (command: Command, words: string[]) => {
    if (command.commands.length === 0) leaves.push(words);
    for (const sub of command.commands) walk(sub, [...words, sub.name()]);
  };
  walk(buildProgram(quiet()), []);
  return leaves.filter((words) => words.length > 0 && words[0] !== 'help');
}
