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

describe('import plugin-apps: the values its lines name', () => {
  it("quotes the plugin's values as every message does: escaped, a long one cut in the middle, a URL's user information masked", () => {
    const plan = planPluginImport({
      ...pluginApp(['https://wiki.example.org/cb']),
      logoUrl: 'http://wiki:hunter2@cdn.example.org/logo.png',
      algorithm: 'HS256"\u202e',
      allowedOrigins: [`https://${'o'.repeat(100)}.example.org`],
    });
    assert.equal(plan.outcome, 'import', JSON.stringify(plan));
    const leftOut = plan.outcome === 'import' ? (plan.leftOut ?? []) : [];
    assert.equal(leftOut.length, 3, JSON.stringify(leftOut));
    assert.ok(leftOut[0]!.startsWith('its http logo "http://***@cdn.example.org/logo.png" ('), leftOut[0]);
    assert.ok(leftOut[1]!.startsWith('its "HS256\\"\\u202e" id_token signing ('), leftOut[1]);
    assert.ok(
      leftOut[2]!.startsWith(
        `its CORS origin "https://${'o'.repeat(32)}…${'o'.repeat(28)}.example.org" (120 characters) (`,
      ),
      leftOut[2],
    );
    for (const [field, value, reason] of [
      ['grantType', 'implicit"\n', 'grant type "implicit\\"\\n" is not supported'],
      [
        'clientType',
        'x'.repeat(3000),
        `client type "${'x'.repeat(40)}…${'x'.repeat(40)}" (3000 characters) is`,
      ],
      ['accessTokenFormat', '\u202ejwt', 'access token format "\\u202ejwt" is'],
      ['registrationSource', 'federation\u001b[2J', 'registration source "federation\\u001b[2J" is'],
    ] as const) {
      const refused = planPluginImport({ ...pluginApp(['https://wiki.example.org/cb']), [field]: value });
      assert.equal(refused.outcome, 'unsupported', field);
      if (refused.outcome === 'unsupported') assert.ok(refused.reason.startsWith(reason), refused.reason);
    }
  });
});
