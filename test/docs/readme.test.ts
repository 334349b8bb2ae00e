import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { configLeafPaths, envNameFor } from '../../src/config/load.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

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
});
