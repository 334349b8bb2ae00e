import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { configLeafPaths, envNameFor } from '../../src/config/load.ts';
import {
  configSchema,
  ENV_ALIASES,
  ENV_NOT_CONFIG,
  ENV_NOT_CONFIG_PREFIXES,
} from '../../src/config/schema.ts';
import { lineOf, operatorDocs, root } from './doc-commands.ts';

const readme = readFileSync(new URL('README.md', root), 'utf8');
/** README.md and docs/ (docs/performance-history.md records past runs as they were). */
const docs = operatorDocs();

/** The environment names the configuration reads, with the key each sets. */
const envNames = new Map<string, string>([
  ...configLeafPaths().map((leaf): [string, string] => [envNameFor(leaf), leaf.join('.')]),
  ...Object.entries(ENV_ALIASES).map(([name, leaf]): [string, string] => [name, leaf.join('.')]),
]);
/** Read by a test, not by aa-oidc: how README says docs/screenshots/ is made. */
const TEST_ONLY_ENV = new Set(['AA_OIDC_SCREENSHOTS']);

function configTableRows(): Array<{ env: string; key: string | undefined; defaultText: string }> {
  const table = readme.slice(
    readme.indexOf('<!-- config-table:start -->'),
    readme.indexOf('<!-- config-table:end -->'),
  );
  return [...table.matchAll(/^\| `(AA_OIDC_[A-Z0-9_]+)` \| (?:`([a-zA-Z.]+)`|—) \| ([^|]*) \|/gm)].map(
    (m) => ({
      env: m[1]!,
      key: m[2],
      defaultText: m[3]!.trim(),
    }),
  );
}

describe('README', () => {
  it('shows the two quick-start commands on its first screen', () => {
    const firstScreen = readme.split('\n').slice(0, 40).join('\n');
    assert.match(firstScreen, /npm ci && npm start/);
    assert.match(firstScreen, /npm test/);
  });

  it('lists every configuration key with its environment name, and no key that does not exist', () => {
    const table = readme.slice(
      readme.indexOf('<!-- config-table:start -->'),
      readme.indexOf('<!-- config-table:end -->'),
    );
    const documented = new Set(
      [...table.matchAll(/^\| `(AA_OIDC_[A-Z0-9_]+)` \| (?:`([a-zA-Z.]+)`|—)/gm)].map((m) => m[2] ?? m[1]),
    );
    const expected = configLeafPaths().map((leaf) => leaf.join('.'));
    for (const key of expected) {
      assert.ok(
        documented.has(key),
        `README configuration table lacks ${envNameFor(key.split('.'))} (${key})`,
      );
    }
    for (const key of documented) {
      if (key === 'AA_OIDC_CONFIG') continue;
      assert.ok(expected.includes(key!), `README documents ${key}, which the schema does not have`);
    }
  });

  it("gives each configuration key's environment name and default as the schema has them", () => {
    const defaults = configSchema.parse({}) as Record<string, unknown>;
    const problems: string[] = [];
    for (const { env, key, defaultText } of configTableRows()) {
      if (key === undefined) continue;
      if (envNames.get(env) !== key)
        problems.push(`${env} sets ${envNames.get(env) ?? 'nothing'}, not ${key}`);
      const value = key
        .split('.')
        .reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], defaults);
      if (value === undefined) continue; // computed (mode, host, issuer, secretKey) or none: said in words
      const shown = Array.isArray(value) ? value.join(',') : String(value);
      if (!defaultText.includes(`\`${shown}\``))
        problems.push(`${key}: README says ${defaultText}, the schema ${shown}`);
    }
    assert.ok(configTableRows().length >= configLeafPaths().length, 'read the table');
    assert.deepEqual(problems, []);
  });

  it('names only environment variables and configuration keys that aa-oidc reads, in README and docs', () => {
    const leaves = new Set(configLeafPaths().map((leaf) => leaf.join('.')));
    const groups = new Set(configLeafPaths().flatMap((leaf) => (leaf.length > 1 ? [leaf[0]!] : [])));
    const problems: string[] = [];
    let seen = 0;
    for (const { file, text } of docs) {
      for (const m of text.matchAll(/\bAA_OIDC_[A-Z0-9_]*[A-Z0-9]\b(?!_\*)/g)) {
        seen++;
        const name = m[0];
        if (envNames.has(name) || ENV_NOT_CONFIG.has(name) || TEST_ONLY_ENV.has(name)) continue;
        if (ENV_NOT_CONFIG_PREFIXES.some((prefix) => name.startsWith(prefix))) continue;
        problems.push(`${file}:${lineOf(text, m.index)}: ${name}`);
      }
      // A key in code quotes, `tokens.jwtSizeWarnBytes` or `logout.rpInitiated: false`.
      for (const m of text.matchAll(/`([a-z][a-zA-Z]*)\.([a-zA-Z.]+)(?::[^`\n]*)?`/g)) {
        if (!groups.has(m[1]!) || /^(?:ts|js|json|md)$/.test(m[2]!)) continue; // `login.ts`
        seen++;
        if (!leaves.has(`${m[1]}.${m[2]}`))
          problems.push(`${file}:${lineOf(text, m.index)}: ${m[1]}.${m[2]}`);
      }
    }
    assert.ok(seen >= 100, `found the names (${seen})`);
    assert.deepEqual(problems, []);
  });
});
