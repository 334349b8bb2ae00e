import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import { scopeClaims } from '../../src/oidc/claims.ts';
import { PROVIDER_ROUTES } from '../../src/oidc/mount.ts';
import { docCommands, lineOf, refusal } from './doc-commands.ts';

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

describe('docs/apps recipes', () => {
  it('show only aa-oidc commands and options the CLI has', () => {
    const commands = recipes.flatMap(({ name, text }) => docCommands(`docs/apps/${name}`, text));
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
