import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PluginApplication } from '../../src/alliance-auth/plugin-apps.ts';
import { planPluginImport } from '../../src/cli/commands/import.ts';

/** A confidential web application of the Python plugin, with a clear secret long enough not to be warned of. */
function pluginApp(redirectUris: string[]): PluginApplication {
  return {
    clientId: 'dev-copy',
    name: 'Developer copy',
    clientType: 'confidential',
    grantType: 'authorization-code',
    redirectUris,
    postLogoutRedirectUris: [],
    skipAuthorization: false,
    pkceRequired: false,
    accessTokenFormat: null,
    backchannelLogoutUri: null,
    backchannelLogoutOnRevokeOnly: false,
    active: true,
    logoUrl: null,
    clientSecret: 'a-clear-secret-of-the-plugin-long-enough-0123456789',
    hashClientSecret: false,
    states: [],
    groups: [],
    debugMode: false,
    algorithm: 'RS256',
    allowedOrigins: [],
    registrationSource: 'manual',
  };
}

function warnings(redirectUris: string[]): string[] {
  const plan = planPluginImport(pluginApp(redirectUris));
  assert.equal(plan.outcome, 'import', JSON.stringify(plan));
  return plan.outcome === 'import' ? (plan.warnings ?? []) : [];
}

const ALL_ON_LOOPBACK = /^its redirect URIs? (is|are all) on loopback /;

describe('import plugin-apps: loopback redirect URIs', () => {
  it('warns about a confidential application whose redirect URI is on loopback, in each spelling', () => {
    for (const uri of [
      'http://localhost:8000/oidc/callback',
      'http://app.localhost:8000/oidc/callback',
      'https://wiki.localhost./oidc/callback',
      'http://127.0.0.1:8000/oidc/callback',
      'http://127.1.2.3:8000/oidc/callback',
      'http://127.1:8000/oidc/callback',
      'http://[::1]:8000/oidc/callback',
      'http://[0:0:0:0:0:0:0:1]:8000/oidc/callback',
      'http://[::ffff:127.0.0.1]:8000/oidc/callback',
    ]) {
      const found = warnings([uri]);
      assert.ok(
        found.some((warning) => ALL_ON_LOOPBACK.test(warning)),
        `${uri}: ${JSON.stringify(found)}`,
      );
    }
  });

  it('names every loopback URI of an application whose URIs are all on loopback', () => {
    const found = warnings(['http://app.localhost:8000/cb', 'http://[::ffff:127.0.0.1]:8000/cb']);
    assert.match(
      found[0] ?? '',
      /^its redirect URIs are all on loopback \("http:\/\/app\.localhost:8000\/cb" "http:\/\/\[::ffff:127\.0\.0\.1\]:8000\/cb"\): /,
    );
  });

  it('stays silent when one redirect URI is not on loopback', () => {
    for (const uri of [
      'https://wiki.example.org/cb',
      'https://localhost.example.org/cb',
      'https://notlocalhost/cb',
      'http://[::127.0.0.1]/cb',
      'http://[::ffff:10.0.0.1]/cb',
    ])
      assert.deepEqual(
        warnings([uri, 'http://app.localhost:8000/cb']).filter((warning) => ALL_ON_LOOPBACK.test(warning)),
        [],
        uri,
      );
  });
});
