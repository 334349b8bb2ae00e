import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { Command } from 'commander';
import type { CliIo } from '../../src/cli/context.ts';
import { buildProgram } from '../../src/cli/main.ts';
import { configSchema } from '../../src/config/schema.ts';
import { scopeClaims } from '../../src/oidc/claims.ts';
import { PROVIDER_ROUTES } from '../../src/oidc/mount.ts';

/**
 * The recipes in docs/apps/ are followed by operators line by line: every `aa-oidc` command they
 * show must parse with the CLI as it is, every aa-oidc URL must be one the provider serves, and
 * every scope and claim they name in an application's settings must be one aa-oidc releases.
 */

const APPS = new URL('../../docs/apps/', import.meta.url);
const recipes = readdirSync(APPS)
  .filter((name) => name.endsWith('.md'))
  .map((name) => ({ name, text: readFileSync(new URL(name, APPS), 'utf8') }));

const ISSUER = 'https://auth.example.org/o';
const defaults = configSchema.parse({}).oidc;
/** Claims the provider adds to ID tokens whatever the scopes (and `sid`, include-sid.ts). */
const PROTOCOL_CLAIMS = ['iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'acr', 'azp', 'at_hash', 'sid'];
const releasedClaims = new Set([
  ...Object.values(scopeClaims(defaults, defaults.scopes)).flat(),
  ...PROTOCOL_CLAIMS,
]);

interface DocCommand {
  where: string;
  words: string[];
  /** A command written out in full (a code block), not an excerpt in prose. */
  complete: boolean;
}

/** The line number of `index` in `text`. */
function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

/** Splits a shell command line into words: single and double quotes, backslash escapes, comments. */
function shellWords(line: string): string[] {
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

/** The fenced code blocks of a Markdown text, with the line each starts on. */
function codeBlocks(text: string): Array<{ line: number; body: string }> {
  return [...text.matchAll(/^```[\w-]*\n([\s\S]*?)^```$/gm)].map((m) => ({
    line: lineOf(text, m.index) + 1,
    body: m[1]!,
  }));
}

/** The `aa-oidc` command lines of a recipe: in its code blocks (continued lines joined) and in its prose. */
function docCommands(name: string, text: string): DocCommand[] {
  const found: DocCommand[] = [];
  for (const block of codeBlocks(text)) {
    const rows = block.body.split('\n');
    for (let i = 0; i < rows.length; i++) {
      const start = i;
      let command = rows[i]!;
      while (command.endsWith('\\') && i + 1 < rows.length) command = `${command.slice(0, -1)} ${rows[++i]}`;
      if (/^\s*aa-oidc\s/.test(command))
        found.push({
          where: `docs/apps/${name}:${block.line + start}`,
          words: shellWords(command).slice(1),
          complete: true,
        });
    }
  }
  const prose = text.replace(/^```[\s\S]*?^```$/gm, (block) => block.replace(/[^\n]/g, ' '));
  for (const m of prose.matchAll(/`(aa-oidc\s[^`]+)`/g)) {
    found.push({
      where: `docs/apps/${name}:${lineOf(text, m.index)}`,
      words: shellWords(m[1]!.replace(/\s+/g, ' ')).slice(1),
      complete: false,
    });
  }
  return found;
}

const quiet: CliIo = {
  stdout: new PassThrough(),
  stderr: new PassThrough(),
  stdin: new PassThrough(),
  env: {},
  cwd: process.cwd(),
  logDestination: () => new PassThrough() as never,
  stopRequested: () => new Promise(() => {}),
};

/** Why the CLI would refuse `words` (`aa-oidc` left out), or undefined when it parses. */
function refusal(words: readonly string[], complete: boolean): string | undefined {
  let command: Command = buildProgram(quiet);
  let rest = [...words];
  for (;;) {
    const sub = command.commands.find((c) => c.name() === rest[0] || c.aliases().includes(rest[0]!));
    if (!sub) break;
    command = sub;
    rest = rest.slice(1);
  }
  if (command.commands.length > 0) return `"${command.name()}" has no command "${rest[0]}"`;
  let parsed;
  try {
    parsed = command.parseOptions(rest);
  } catch (error) {
    return (error as Error).message;
  }
  if (parsed.unknown.length > 0) return `unknown option ${parsed.unknown[0]} of "${command.name()}"`;
  if (!complete) return undefined;
  const declared = command.registeredArguments;
  const required = declared.filter((argument) => argument.required).length;
  const variadic = declared.some((argument) => argument.variadic);
  if (parsed.operands.length < required)
    return `"${command.name()}" needs ${required} argument(s), got ${parsed.operands.length}`;
  if (!variadic && parsed.operands.length > declared.length)
    return `"${command.name()}" takes ${declared.length} argument(s), got ${parsed.operands.join(' ')}`;
  return undefined;
}

describe('docs/apps recipes', () => {
  it('show only aa-oidc commands and options the CLI has', () => {
    const commands = recipes.flatMap(({ name, text }) => docCommands(name, text));
    assert.ok(commands.filter((c) => c.complete).length >= recipes.length - 1, 'found the recipes’ commands');
    const problems = commands.flatMap(({ where, words, complete }) => {
      const why = refusal(words, complete);
      return why ? [`${where}: aa-oidc ${words.join(' ')}: ${why}`] : [];
    });
    assert.deepEqual(problems, []);
  });

  it('point only at URLs the provider serves under the issuer', () => {
    const served = new Set([
      ISSUER,
      `${ISSUER}/.well-known/openid-configuration`,
      ...Object.values(PROVIDER_ROUTES).map((route) => `${ISSUER}${route}`),
    ]);
    const problems: string[] = [];
    for (const { name, text } of recipes) {
      for (const m of text.matchAll(/https:\/\/auth\.example\.org[^\s`'"|)?&]*/g)) {
        if (!served.has(m[0])) problems.push(`docs/apps/${name}:${lineOf(text, m.index)}: ${m[0]}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('ask only for scopes aa-oidc offers', () => {
    const problems: string[] = [];
    for (const { name, text } of recipes) {
      for (const m of text.matchAll(/\bopenid(?: [a-z_]+)+/g)) {
        for (const scope of m[0].split(' '))
          if (!defaults.scopes.includes(scope))
            problems.push(`docs/apps/${name}:${lineOf(text, m.index)}: scope ${scope}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  it('map only claims aa-oidc releases', () => {
    /** Where each application's settings name a claim (the claim is the first group). */
    const claimSettings = [
      /\b(?:login|name|email|groups|id|role|org)_attribute_path = ([a-z_]+)\s*$/gm, // Grafana
      /\bcontains\(([a-z_]+)\[\*\]/g, // Grafana's JMESPath
      /--oidc-[a-z-]+-claim=([a-z_]+)/g, // oauth2-proxy
      /--mapping-[a-z_-]+=([a-z_]+)/g, // Nextcloud user_oidc
      /\bOIDC_USERNAME_CLAIM=([a-z_]+)/g, // Outline
      /\bOIDC_CLAIM_([a-z_]+)/g, // mod_auth_openidc's headers
      /\bRequire claim ([a-z_]+):/g, // mod_auth_openidc
      /\bOIDCRemoteUserClaim ([a-z_]+)/g, // mod_auth_openidc
      /^\| [^|]*Claim[^|]* \| (?:on \/ )?`([a-z_]+)`/gm, // Wiki.js fields
      /^\| [^|]*Claim[^|]* \| `[a-z_]+` \/ `([a-z_]+)`/gm, // Wiki.js, the second of a pair
    ];
    const problems: string[] = [];
    let seen = 0;
    for (const { name, text } of recipes) {
      for (const pattern of claimSettings) {
        for (const m of text.matchAll(pattern)) {
          seen++;
          if (!releasedClaims.has(m[1]!))
            problems.push(`docs/apps/${name}:${lineOf(text, m.index)}: claim ${m[1]} (${m[0].trim()})`);
        }
      }
    }
    assert.ok(seen >= 10, `found the claims the recipes map (${seen})`);
    assert.deepEqual(problems, []);
  });
});
