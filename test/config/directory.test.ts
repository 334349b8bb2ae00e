import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const cwd = temporaryFolders('aa-oidc-config-');
const AA = {
  AA_OIDC_DIRECTORY: 'alliance-auth',
  AA_OIDC_AA_DATABASE_URL: 'mysql://aa_oidc:s3cret-pw@db.example.org:3306/alliance_auth',
  AA_OIDC_AA_LOGIN_URL: 'https://auth.example.org/',
};
const EVE = { AA_OIDC_EVE_SSO_CLIENT_ID: 'ccp-client', AA_OIDC_EVE_SSO_CLIENT_SECRET: 'ccp-secret-value' };

function refusal(env: Record<string, string>): string {
  try {
    loadConfig({ env, cwd: cwd() });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail('the configuration was accepted');
}

describe('configuration of the Alliance Auth directory and EVE SSO', () => {
  it('keeps the built-in directory by default, with CCP as the EVE SSO endpoints', () => {
    const config = loadConfig({ env: {}, cwd: cwd() });
    assert.equal(config.directory.source, 'builtin');
    assert.deepEqual(config.directory.allianceAuth, {
      pollSeconds: 30,
      statementTimeoutSeconds: 15,
      passwordLogin: false,
      emailVerified: true,
    });
    assert.deepEqual(config.eveSso, {
      authorizationUrl: 'https://login.eveonline.com/v2/oauth/authorize',
      tokenUrl: 'https://login.eveonline.com/v2/oauth/token',
      jwksUrl: 'https://login.eveonline.com/oauth/jwks',
      allowPrivateEndpoints: false,
      requestTimeoutMs: 10_000,
    });
  });

  it('reads the names operators look for', () => {
    const config = loadConfig({
      env: {
        ...AA,
        ...EVE,
        AA_OIDC_AA_POLL_SECONDS: '5',
        AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS: '120',
        AA_OIDC_AA_PASSWORD_LOGIN: 'true',
        AA_OIDC_EVE_SSO_TOKEN_URL: 'http://127.0.0.1:9/token',
        AA_OIDC_EVE_SSO_ALLOW_PRIVATE_ENDPOINTS: 'true',
        AA_OIDC_EVE_SSO_REQUEST_TIMEOUT_MS: '2500',
      },
      cwd: cwd(),
    });
    assert.equal(config.directory.source, 'alliance-auth');
    assert.equal(config.directory.allianceAuth.databaseUrl, AA.AA_OIDC_AA_DATABASE_URL);
    assert.equal(config.directory.allianceAuth.loginUrl, AA.AA_OIDC_AA_LOGIN_URL);
    assert.equal(config.directory.allianceAuth.pollSeconds, 5);
    assert.equal(config.directory.allianceAuth.statementTimeoutSeconds, 120);
    assert.equal(config.directory.allianceAuth.passwordLogin, true);
    assert.equal(config.eveSso.clientId, 'ccp-client');
    assert.equal(config.eveSso.tokenUrl, 'http://127.0.0.1:9/token');
    assert.equal(config.eveSso.allowPrivateEndpoints, true);
    assert.equal(config.eveSso.requestTimeoutMs, 2500);
  });

  it('reads the same settings from a config file', () => {
    const dir = cwd();
    const file = path.join(dir, 'aa-oidc.json');
    writeFileSync(
      file,
      JSON.stringify({
        directory: {
          source: 'alliance-auth',
          allianceAuth: {
            databaseUrl: 'postgres://aa@127.0.0.1/aa',
            loginUrl: 'https://auth.example.org/',
            passwordLogin: true,
            statementTimeoutSeconds: 60,
          },
        },
      }),
    );
    const config = loadConfig({ env: { AA_OIDC_CONFIG: file }, cwd: dir });
    assert.equal(config.directory.source, 'alliance-auth');
    assert.equal(config.directory.allianceAuth.passwordLogin, true);
    assert.equal(config.directory.allianceAuth.statementTimeoutSeconds, 60);
  });

  it("refuses the Alliance Auth directory without AA's database or login page, naming the setting", () => {
    assert.match(
      refusal({ AA_OIDC_DIRECTORY: 'alliance-auth' }),
      /^AA_OIDC_AA_DATABASE_URL: required when AA_OIDC_DIRECTORY=alliance-auth/,
    );
    const wrong = refusal({ ...AA, AA_OIDC_AA_DATABASE_URL: 'oracle://aa:hunter2-pw@db/aa' });
    assert.match(
      wrong,
      /^AA_OIDC_AA_DATABASE_URL: "oracle:\/\/aa:\*\*\*@db\/aa" is not supported; use mysql:\/\//,
    );
    assert.doesNotMatch(wrong, /hunter2/);
    // Generated passwords with an unencoded '/' or '@' (the URL then does not even parse).
    for (const password of ['pa/ss-hunter3', 'pa@ss-hunter3', 'p?a#s/s@hunter3']) {
      const refused = refusal({ ...AA, AA_OIDC_AA_DATABASE_URL: `oracle://aa:${password}@db/aa` });
      assert.match(refused, /"oracle:\/\/aa:\*\*\*@db\/aa" is not supported/, refused);
      assert.doesNotMatch(refused, /hunter3|pa\/ss|pa@ss/, refused);
    }
    assert.match(refusal({ ...AA, AA_OIDC_AA_LOGIN_URL: '' }), /AA_OIDC_AA_LOGIN_URL/);
    const { AA_OIDC_AA_LOGIN_URL: _login, ...noLogin } = AA;
    assert.match(refusal(noLogin), /^AA_OIDC_AA_LOGIN_URL: required when AA_OIDC_DIRECTORY=alliance-auth/);
    assert.match(refusal({ AA_OIDC_DIRECTORY: 'ldap' }), /^AA_OIDC_DIRECTORY: .*builtin.*alliance-auth/);
    assert.match(
      refusal({ ...AA, AA_OIDC_AA_POLL_SECONDS: '0' }),
      /^AA_OIDC_AA_POLL_SECONDS: expected an integer between 1 and 3600/,
    );
    for (const value of ['0', '3601', '1.5', 'ten', '-5'])
      assert.match(
        refusal({ ...AA, AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS: value }),
        /^AA_OIDC_AA_STATEMENT_TIMEOUT_SECONDS: expected an integer between 1 and 3600/,
        value,
      );
    for (const value of ['99', '120001', '1.5', 'ten'])
      assert.match(
        refusal({ ...AA, AA_OIDC_EVE_SSO_REQUEST_TIMEOUT_MS: value }),
        /^AA_OIDC_EVE_SSO_REQUEST_TIMEOUT_MS: expected an integer between 100 and 120000/,
        value,
      );
  });

  it('refuses an Alliance Auth database URL its driver cannot read, naming the setting, never the password', () => {
    for (const url of [
      'mysql://aa:pa/ss-hunter3@db.example.org:3306/alliance_auth',
      'mysql://aa:hunter3@db.example.org:3306x/alliance_auth',
      'postgres://aa:hunter3@db.example.org:99999/alliance_auth',
      // Read by the drivers as the host "aa", the port 1234 and the rest: the connection would go
      // there, and its errors name the password's digits.
      'mysql://aa:1234/hunter3@db.example.org:3306/alliance_auth',
      'mariadb://aa:1234?hunter3@db.example.org:3306/alliance_auth',
      'postgres://aa:1234?hunter3@db.example.org:5432/alliance_auth',
      'mysql://aa:1234#hunter3@db.example.org:3306/alliance_auth',
    ]) {
      const refused = refusal({ ...AA, AA_OIDC_AA_DATABASE_URL: url });
      assert.match(
        refused,
        /^AA_OIDC_AA_DATABASE_URL: "(mysql|mariadb|postgres):\/\/aa:\*\*\*@db\.example\.org:\d+x?\/alliance_auth" is not a valid URL; use mysql:\/\/.* \(a port from 1 to 65535; a password's special characters percent-encoded, like %40 for @, %2F for \/, %3A for :, %3F for \?, %23 for #\)$/,
        refused,
      );
      assert.doesNotMatch(refused, /hunter3|pa\/ss|1234/, refused);
    }
    // Encoded, the same password is read.
    const encoded = 'mysql://aa:pa%2Fss-hunter3@db.example.org:3306/alliance_auth';
    assert.equal(
      loadConfig({ env: { ...AA, AA_OIDC_AA_DATABASE_URL: encoded }, cwd: cwd() }).directory.allianceAuth
        .databaseUrl,
      encoded,
    );
  });

  it('refuses half an EVE SSO client, EVE SSO without Alliance Auth, and plain-http endpoints in production', () => {
    assert.match(
      refusal({ ...AA, AA_OIDC_EVE_SSO_CLIENT_ID: 'x' }),
      /^AA_OIDC_EVE_SSO_CLIENT_SECRET: EVE SSO needs both/,
    );
    assert.match(
      refusal(EVE),
      /^AA_OIDC_EVE_SSO_CLIENT_ID: sign-in with EVE SSO needs the Alliance Auth directory/,
    );
    const production = {
      ...AA,
      ...EVE,
      AA_OIDC_MODE: 'production',
      AA_OIDC_ISSUER: 'https://sso.example.org/o',
      AA_OIDC_SECRET_KEY: 'k'.repeat(40),
      AA_OIDC_EVE_SSO_JWKS_URL: 'http://login.example.org/jwks',
    };
    assert.match(refusal(production), /^AA_OIDC_EVE_SSO_JWKS_URL: production mode requires https/);
    // A local stand-in for CCP is a development setup: production never lets EVE SSO reach inside.
    assert.match(
      refusal({
        ...production,
        AA_OIDC_EVE_SSO_JWKS_URL: 'https://login.eveonline.com/oauth/jwks',
        AA_OIDC_EVE_SSO_ALLOW_PRIVATE_ENDPOINTS: 'true',
      }),
      /^AA_OIDC_EVE_SSO_ALLOW_PRIVATE_ENDPOINTS: development only/,
    );
    const badSecret = refusal({ ...AA, ...EVE, AA_OIDC_EVE_SSO_CLIENT_SECRET: '' });
    assert.match(badSecret, /AA_OIDC_EVE_SSO_CLIENT_SECRET/);
  });
});
