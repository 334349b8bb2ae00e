import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, envNameFor, loadConfig } from '../../src/config/load.ts';
import { temporaryFolders } from '../helpers/temporary-folders.ts';

const tempDir = temporaryFolders('aa-oidc-config-');

/** An `assert.throws` check: a ConfigError whose message matches. */
const configError = (message: RegExp) => (error: unknown) => {
  assert.ok(error instanceof ConfigError);
  assert.match(error.message, message);
  return true;
};

describe('configuration', () => {
  it('gives development defaults with no input', () => {
    const cwd = tempDir();
    const config = loadConfig({ env: {}, cwd });
    assert.equal(config.mode, 'development');
    assert.equal(config.port, 8000);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.issuer, 'http://localhost:8000/o');
    assert.equal(config.issuerExplicit, false);
    assert.deepEqual(config.database, { kind: 'sqlite', path: path.join(cwd, 'data', 'aa-oidc.sqlite') });
    assert.equal(config.metrics.port, 9464);
    assert.equal(config.logging.level, 'info');
    assert.equal(config.tokens.defaultAccessTokenFormat, 'opaque');
    assert.equal(config.tokens.jwtSizeWarnBytes, 4096);
    assert.equal(config.tokens.accessTokenTtl, 3600);
    assert.equal(config.tokens.refreshTokenTtl, 86_400);
    assert.equal(config.tokens.codeTtl, 60);
    assert.equal(config.oidc.claimPrefix, 'eve_');
    assert.equal(config.oidc.eveClaimsScope, 'profile');
    assert.equal(
      config.oidc.portraitUrlTemplate,
      'https://images.evetech.net/characters/{character_id}/portrait?size={size}',
    );
    assert.equal(config.oidc.portraitSize, 128);
    assert.ok(config.secretKey.length >= 32, 'a development secret key is generated');
    const keyFile = path.join(cwd, 'data', 'secret.key');
    assert.equal(readFileSync(keyFile, 'utf8').trim(), config.secretKey, 'into ./data/secret.key');
    assert.equal(statSync(keyFile).mode & 0o777, 0o600, 'readable by its owner only');
    assert.equal(loadConfig({ env: {}, cwd }).secretKey, config.secretKey, 'and kept across starts');
  });

  it('gives the back-channel logout defaults of the spec: RP-initiated logout on, five retries after 5, 10, 20, 40 and 80 s, DNS within 3 s, connect within 5 s, all within 10 s', () => {
    assert.deepEqual(loadConfig({ env: {}, cwd: tempDir() }).logout, {
      rpInitiated: true,
      allowPrivateTargets: false,
      allowPrivateTargetsInProduction: false,
      retryBackoffSeconds: [5, 10, 20, 40, 80],
      recordSuccessfulDeliveries: false,
      recordRetentionDays: 90,
      dnsTimeoutMs: 3000,
      connectTimeoutMs: 5000,
      requestTimeoutMs: 10_000,
      deliverInServe: true,
    });
  });

  it('reads the environment names of the spec table', () => {
    const config = loadConfig({
      env: {
        AA_OIDC_PORT: '9000',
        AA_OIDC_HOST: '0.0.0.0',
        AA_OIDC_ISSUER: 'http://localhost:9000/o/',
        AA_OIDC_DATABASE_URL: 'postgres://postgres@127.0.0.1/aa',
        AA_OIDC_SECRET_KEY: 'x'.repeat(40),
        AA_OIDC_METRICS_PORT: '9999',
        AA_OIDC_LOG_LEVEL: 'debug',
        AA_OIDC_LOGOUT_RP_INITIATED: 'false',
        AA_OIDC_TEST_DATABASE_URL: 'ignored',
      },
      cwd: tempDir(),
    });
    assert.equal(config.port, 9000);
    assert.equal(config.host, '0.0.0.0');
    assert.equal(config.issuer, 'http://localhost:9000/o', 'the trailing slash is dropped');
    assert.deepEqual(config.database, { kind: 'postgres', url: 'postgres://postgres@127.0.0.1/aa' });
    assert.equal(config.secretKey, 'x'.repeat(40));
    assert.equal(config.metrics.port, 9999);
    assert.equal(config.logging.level, 'debug');
    assert.equal(config.logout.rpInitiated, false);
  });

  it("takes serve's connection caps and shutdown grace period from the environment, 1000, 100 and 25 s unless told, 0 for no limit", () => {
    assert.deepEqual(loadConfig({ env: {}, cwd: tempDir() }).http, {
      maxConnections: 1000,
      maxConnectionsPerAddress: 100,
      shutdownGraceSeconds: 25,
    });
    const config = loadConfig({
      env: {
        AA_OIDC_HTTP_MAX_CONNECTIONS: '5000',
        AA_OIDC_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '0',
        AA_OIDC_HTTP_SHUTDOWN_GRACE_SECONDS: '10',
      },
      cwd: tempDir(),
    });
    assert.deepEqual(config.http, {
      maxConnections: 5000,
      maxConnectionsPerAddress: 0,
      shutdownGraceSeconds: 10,
    });
  });

  it('keeps every audit event kind in the database but token_introspected, unless told otherwise', () => {
    assert.deepEqual(loadConfig({ env: {}, cwd: tempDir() }).audit.databaseExclude, ['token_introspected']);
    const read = (value: string) =>
      loadConfig({ env: { AA_OIDC_AUDIT_DATABASE_EXCLUDE: value }, cwd: tempDir() }).audit.databaseExclude;
    assert.deepEqual(read(''), [], 'empty: every kind is kept');
    assert.deepEqual(read(' policy_denied , token_issued '), ['policy_denied', 'token_issued']);
    const cwd = tempDir();
    writeFileSync(
      path.join(cwd, 'aa.json'),
      JSON.stringify({ audit: { databaseExclude: ['admin_change'] } }),
    );
    assert.deepEqual(loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }).audit.databaseExclude, [
      'admin_change',
    ]);
  });

  it('maps nested keys to environment names mechanically', () => {
    assert.equal(envNameFor(['tokens', 'jwtSizeWarnBytes']), 'AA_OIDC_TOKENS_JWT_SIZE_WARN_BYTES');
    const config = loadConfig({ env: { AA_OIDC_TOKENS_JWT_SIZE_WARN_BYTES: '8192' }, cwd: tempDir() });
    assert.equal(config.tokens.jwtSizeWarnBytes, 8192);
  });

  it("takes a key's two environment names when they agree", () => {
    const env = { AA_OIDC_LOG_LEVEL: 'debug', AA_OIDC_LOGGING_LEVEL: 'debug' };
    assert.equal(loadConfig({ env, cwd: tempDir() }).logging.level, 'debug');
  });

  it('reads a YAML or JSON config file, with the environment taking precedence', () => {
    const cwd = tempDir();
    writeFileSync(path.join(cwd, 'aa.yaml'), 'port: 8100\ntokens:\n  defaultAccessTokenFormat: jwt\n');
    const fromYaml = loadConfig({ env: { AA_OIDC_CONFIG: 'aa.yaml', AA_OIDC_PORT: '8200' }, cwd });
    assert.equal(fromYaml.port, 8200);
    assert.equal(fromYaml.tokens.defaultAccessTokenFormat, 'jwt');
    writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify({ logging: { maskedSecrets: true } }));
    assert.equal(loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }).logging.maskedSecrets, true);
  });

  const rejects: Array<[string, NodeJS.ProcessEnv, RegExp, string?]> = [
    [
      'an unknown environment variable',
      { AA_OIDC_PROT: '1' },
      /unknown environment variable AA_OIDC_PROT; valid names: .*AA_OIDC_PORT/,
    ],
    [
      'a port that is not a number',
      { AA_OIDC_PORT: 'abc' },
      /^AA_OIDC_PORT: expected an integer between 0 and 65535 \(got "abc"\)$/,
    ],
    [
      'a port out of range',
      { AA_OIDC_PORT: '70000' },
      /AA_OIDC_PORT: expected an integer between 0 and 65535/,
    ],
    [
      'a boolean that is not one',
      { AA_OIDC_LOGOUT_RP_INITIATED: 'maybe' },
      /AA_OIDC_LOGOUT_RP_INITIATED: expected true or false/,
    ],
    ['an unknown log level', { AA_OIDC_LOG_LEVEL: 'loud' }, /AA_OIDC_LOG_LEVEL: .*"info"/],
    [
      'an unknown mode',
      { AA_OIDC_MODE: 'prod' },
      /^AA_OIDC_MODE: .*"development"\|"production" \(got "prod"\)$/,
    ],
    [
      'an unsupported database URL',
      { AA_OIDC_DATABASE_URL: 'mysql://u:hunter2@h/db' },
      /AA_OIDC_DATABASE_URL: "mysql:\/\/u:\*\*\*@h\/db" is not supported/,
    ],
    [
      "a key's two environment names set to different values",
      { AA_OIDC_LOG_LEVEL: 'debug', AA_OIDC_LOGGING_LEVEL: 'error' },
      /^AA_OIDC_LOGGING_LEVEL and AA_OIDC_LOG_LEVEL both set "logging\.level", to different values; set only one of them$/,
    ],
    [
      "the Alliance Auth database URL's two environment names set to different values",
      {
        AA_OIDC_DIRECTORY: 'alliance-auth',
        AA_OIDC_AA_DATABASE_URL: 'mysql://u:hunter2@h/aa',
        AA_OIDC_DIRECTORY_ALLIANCE_AUTH_DATABASE_URL: 'mysql://u:hunter2@h/other',
      },
      /^AA_OIDC_AA_DATABASE_URL and AA_OIDC_DIRECTORY_ALLIANCE_AUTH_DATABASE_URL both set "directory\.allianceAuth\.databaseUrl", to different values; set only one of them$/,
    ],
    [
      'an unsupported database URL with its password in the query',
      { AA_OIDC_DATABASE_URL: 'mysql://u@h/db?ssl=true&password=hunter2&sslpassword=hunter2' },
      /^AA_OIDC_DATABASE_URL: "mysql:\/\/u@h\/db\?ssl=true&password=\*\*\*&sslpassword=\*\*\*" is not supported/,
    ],
    [
      'an unsupported database URL with its password under a percent-encoded name, holding an @',
      { AA_OIDC_DATABASE_URL: 'mysql://u@h/db?pass%77ord=hun@ter2' },
      /^AA_OIDC_DATABASE_URL: "mysql:\/\/u@h\/db\?pass%77ord=\*\*\*" is not supported/,
    ],
    [
      "an unsupported database URL whose query password holds a ';' and a '#'",
      { AA_OIDC_DATABASE_URL: 'mysql://u@h/db?password=a;hunter2#hunter2&ssl=true' },
      /^AA_OIDC_DATABASE_URL: "mysql:\/\/u@h\/db\?password=\*\*\*&ssl=true" is not supported/,
    ],
    [
      "an unsupported database URL with its password after another parameter's value holding a '?'",
      { AA_OIDC_DATABASE_URL: 'mysql://u:a?b=c@h/db?sslmode=require?password=hunter2' },
      /^AA_OIDC_DATABASE_URL: "mysql:\/\/u:\*\*\*@h\/db\?sslmode=require\?password=\*\*\*" is not supported/,
    ],
    [
      'an unsupported database URL with its password in the fragment',
      { AA_OIDC_DATABASE_URL: 'mysql://u@h/db#password=hunter2' },
      /^AA_OIDC_DATABASE_URL: "mysql:\/\/u@h\/db#password=\*\*\*" is not supported/,
    ],
    [
      "a mistyped database URL without its '//'",
      { AA_OIDC_DATABASE_URL: 'postgres:/u:hunter2@h/db' },
      /^AA_OIDC_DATABASE_URL: "postgres:\*\*\*@h\/db" is not supported/,
    ],
    [
      'a database URL without its scheme',
      { AA_OIDC_DATABASE_URL: 'u:hunter2@h/db' },
      /^AA_OIDC_DATABASE_URL: "u:\*\*\*@h\/db" is not supported/,
    ],
    [
      'an unsupported Alliance Auth database URL with its password in the query',
      {
        AA_OIDC_DIRECTORY: 'alliance-auth',
        AA_OIDC_AA_DATABASE_URL: 'mssql://u@h/aa?Password=hunter2',
        AA_OIDC_AA_LOGIN_URL: 'https://aa.example.org/',
      },
      /^AA_OIDC_AA_DATABASE_URL: "mssql:\/\/u@h\/aa\?Password=\*\*\*" is not supported/,
    ],
    [
      'a plain-http issuer in production',
      {
        AA_OIDC_MODE: 'production',
        AA_OIDC_ISSUER: 'http://auth.example.org/o',
        AA_OIDC_SECRET_KEY: 'k'.repeat(40),
      },
      /AA_OIDC_ISSUER: production mode requires an https:\/\/ issuer/,
    ],
    [
      'a plain-http Alliance Auth sign-in page in production (people are sent there to sign in)',
      {
        AA_OIDC_MODE: 'production',
        AA_OIDC_ISSUER: 'https://auth.example.org/o',
        AA_OIDC_SECRET_KEY: 'k'.repeat(40),
        AA_OIDC_DIRECTORY: 'alliance-auth',
        AA_OIDC_AA_DATABASE_URL: 'mysql://u:hunter2@h/aa',
        AA_OIDC_AA_LOGIN_URL: 'http://aa.example.org/',
      },
      /^AA_OIDC_AA_LOGIN_URL: production mode requires an https:\/\/ Alliance Auth sign-in page \(got "http:\/\/aa\.example\.org\/"\)$/,
    ],
    [
      'a production start without issuer',
      { NODE_ENV: 'production', AA_OIDC_SECRET_KEY: 'k'.repeat(40) },
      /AA_OIDC_ISSUER: required in production/,
    ],
    [
      'a production start without secret key',
      { AA_OIDC_MODE: 'production', AA_OIDC_ISSUER: 'https://auth.example.org/o' },
      /AA_OIDC_SECRET_KEY: required in production/,
    ],
    [
      'an audit event kind that does not exist',
      { AA_OIDC_AUDIT_DATABASE_EXCLUDE: 'token_introspected,token_peeked' },
      /AA_OIDC_AUDIT_DATABASE_EXCLUDE.*"token_peeked" is not an audit event kind; valid: token_issued, .*two_factor_failed/,
    ],
    [
      'a negative connection cap per client address',
      { AA_OIDC_HTTP_MAX_CONNECTIONS_PER_ADDRESS: '-1' },
      /^AA_OIDC_HTTP_MAX_CONNECTIONS_PER_ADDRESS: expected an integer between 0 and 1000000 \(0: no limit\) \(got "-1"\)$/,
    ],
    [
      'a shutdown grace period of none',
      { AA_OIDC_HTTP_SHUTDOWN_GRACE_SECONDS: '0' },
      /^AA_OIDC_HTTP_SHUTDOWN_GRACE_SECONDS: expected an integer between 1 and 600 \(got "0"\)$/,
    ],
    [
      'a whole number written otherwise than in decimal digits',
      { AA_OIDC_LOGOUT_REQUEST_TIMEOUT_MS: '1e4' },
      /^AA_OIDC_LOGOUT_REQUEST_TIMEOUT_MS: expected an integer between 10 and 120000 \(got "1e4"\)$/,
    ],
    [
      'a connection cap that is no number',
      { AA_OIDC_HTTP_MAX_CONNECTIONS: 'lots' },
      /^AA_OIDC_HTTP_MAX_CONNECTIONS: expected an integer between 0 and 1000000 \(0: no limit\) \(got "lots"\)$/,
    ],
    [
      'a short secret key',
      { AA_OIDC_SECRET_KEY: 'short' },
      /AA_OIDC_SECRET_KEY: must be at least 32 characters/,
    ],
    [
      'a secret key of spaces only',
      { AA_OIDC_SECRET_KEY: ' '.repeat(32) },
      /^AA_OIDC_SECRET_KEY: must not be only spaces; use at least 32 random characters \(like the output of `openssl rand -hex 32`\)$/,
    ],
    [
      'a metrics bearer token of spaces only',
      { AA_OIDC_METRICS_BEARER_TOKEN: ' '.repeat(20) },
      /^AA_OIDC_METRICS_BEARER_TOKEN: must not be only spaces; use at least 16 random characters/,
    ],
    [
      'an EVE SSO client secret of spaces only',
      { AA_OIDC_EVE_SSO_CLIENT_ID: 'abc', AA_OIDC_EVE_SSO_CLIENT_SECRET: '   ' },
      /^AA_OIDC_EVE_SSO_CLIENT_SECRET: must not be only spaces; use the secret key CCP shows/,
    ],
    [
      'an ftp:// issuer',
      { AA_OIDC_ISSUER: 'ftp://auth.example.org/o' },
      /^AA_OIDC_ISSUER: expected an http:\/\/ or https:\/\/ URL \(got "ftp:\/\/auth\.example\.org\/o"\)$/,
    ],
    [
      'retry delays that are not whole numbers of seconds',
      { AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: '5,soon,0' },
      /^AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: "soon" is not a delay: expected a whole number of seconds from 1 to 86400, in decimal digits; AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: 0 is not a delay: expected a whole number of seconds from 1 to 86400, in decimal digits$/,
    ],
    [
      // Number() would read them as 16, 10, 1 and 8: delays nobody wrote.
      'retry delays written otherwise than in decimal digits',
      { AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: '0x10,1e1,0b1, 0o10 ,+5' },
      new RegExp(
        '^' +
          ['"0x10"', '"1e1"', '"0b1"', '"0o10"', '"\\+5"']
            .map(
              (delay) =>
                `AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: ${delay} is not a delay: expected a whole number of seconds from 1 to 86400, in decimal digits`,
            )
            .join('; ') +
          '$',
      ),
    ],
    [
      'an empty list of retry delays',
      { AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: ' , ' },
      /^AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: expected a list of 1 to 20 delays in seconds \(like 5,10,20,40,80\)/,
    ],
    [
      'an empty listen address, saying what to give',
      { AA_OIDC_HOST: '' },
      /^AA_OIDC_HOST: must not be empty; use a listen address \(like 127\.0\.0\.1, 0\.0\.0\.0 or ::\) \(got ""\)$/,
    ],
    [
      'an empty database URL, saying what to give',
      { AA_OIDC_DATABASE_URL: '' },
      /^AA_OIDC_DATABASE_URL: must not be empty; use sqlite:PATH or postgres:\/\/USER:PASSWORD@HOST:PORT\/DB \(got ""\)$/,
    ],
    [
      'an empty EVE SSO client secret, said once',
      { AA_OIDC_EVE_SSO_CLIENT_ID: 'abc', AA_OIDC_EVE_SSO_CLIENT_SECRET: '' },
      /^AA_OIDC_EVE_SSO_CLIENT_SECRET: must not be empty; use the secret key CCP shows for the application at developers\.eveonline\.com$/,
    ],
    [
      'a PostgreSQL URL whose port is no number, without its password',
      { AA_OIDC_DATABASE_URL: 'postgres://aa:hunter2@127.0.0.1:54x2/aa_oidc' },
      /^AA_OIDC_DATABASE_URL: "postgres:\/\/aa:\*\*\*@127\.0\.0\.1:54x2\/aa_oidc" is not a valid URL; use postgres:\/\/USER:PASSWORD@HOST:PORT\/DB \(a port from 1 to 65535; /,
    ],
    [
      'a PostgreSQL URL whose port is out of range, with an unencoded / in its password',
      { AA_OIDC_DATABASE_URL: 'postgres://aa:hunter2/x@127.0.0.1:99999/aa_oidc' },
      /^AA_OIDC_DATABASE_URL: "postgres:\/\/aa:\*\*\*@127\.0\.0\.1:99999\/aa_oidc" is not a valid URL/,
    ],
    [
      // Read by the driver as no host and the database "ter2@127.0.0.1:5432/aa_oidc": connection
      // errors (ours, and the server's "database … does not exist") named part of the password.
      'a PostgreSQL URL with an unencoded @/ in its password, without any part of it',
      { AA_OIDC_DATABASE_URL: 'postgres://aa:hun@/ter2hunter2@127.0.0.1:5432/aa_oidc' },
      /^AA_OIDC_DATABASE_URL: "postgres:\/\/aa:\*\*\*@127\.0\.0\.1:5432\/aa_oidc" is not a valid URL; use postgres:\/\/USER:PASSWORD@HOST:PORT\/DB \(.*%40 for @, %2F for \//,
    ],
    [
      // Read by the driver as the host "aa", the port 1234 and the database "hunter2@127.0.0.1/aa_oidc".
      'a PostgreSQL URL with digits and an unencoded / in its password, without any part of it',
      { AA_OIDC_DATABASE_URL: 'postgres://aa:1234/hunter2@127.0.0.1:5432/aa_oidc' },
      /^AA_OIDC_DATABASE_URL: "postgres:\/\/aa:\*\*\*@127\.0\.0\.1:5432\/aa_oidc" is not a valid URL/,
    ],
    [
      // Read by the driver as the host "aa", the port 1234 and the parameter "hunter2@…": the
      // connection would go to aa:1234, and its errors name the password's digits.
      'a PostgreSQL URL with digits and an unencoded ? in its password, without any part of it',
      { AA_OIDC_DATABASE_URL: 'postgres://aa:1234?hunter2@127.0.0.1:5432/aa_oidc' },
      /^AA_OIDC_DATABASE_URL: "postgres:\/\/aa:\*\*\*@127\.0\.0\.1:5432\/aa_oidc" is not a valid URL; .*%3F for \?, %23 for #\)$/,
    ],
    [
      'a PostgreSQL URL with digits and an unencoded # in its password, without any part of it',
      { AA_OIDC_DATABASE_URL: 'postgres://aa:1234#hunter2@127.0.0.1/aa_oidc' },
      /^AA_OIDC_DATABASE_URL: "postgres:\/\/aa:\*\*\*@127\.0\.0\.1\/aa_oidc" is not a valid URL/,
    ],
    [
      'an EVE claims scope that is not a supported scope',
      { AA_OIDC_OIDC_EVE_CLAIMS_SCOPE: 'eve' },
      /^AA_OIDC_OIDC_EVE_CLAIMS_SCOPE: "eve" is not a supported scope; name one of oidc\.scopes \(openid, profile, email, groups, offline_access\) or add it to them \(AA_OIDC_OIDC_SCOPES\)$/,
    ],
    [
      'a portrait size the EVE image server does not serve',
      { AA_OIDC_OIDC_PORTRAIT_SIZE: '100' },
      /^AA_OIDC_OIDC_PORTRAIT_SIZE: must be one of 32, 64, 128, 256, 512, 1024 \(got "100"\)$/,
    ],
  ];
  for (const [what, env, message] of rejects) {
    it(`rejects ${what} with a message naming the key`, () => {
      assert.throws(
        () => loadConfig({ env, cwd: tempDir() }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, message);
          assert.doesNotMatch(error.message, /hunter2|1234/, 'a password in a URL is never echoed');
          return true;
        },
      );
    });
  }

  it('never echoes a secret value in a validation message', async (t) => {
    const secrets: NodeJS.ProcessEnv = {
      AA_OIDC_SECRET_KEY: 'hunter2-almost-my-real-secret',
      AA_OIDC_METRICS_BEARER_TOKEN: 'tiny-token',
    };
    for (const [name, value] of Object.entries(secrets)) {
      assert.throws(
        () => loadConfig({ env: { [name]: value }, cwd: tempDir() }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, new RegExp(`^${name}: must be at least`));
          assert.ok(!error.message.includes(value!), `${name} is not echoed`);
          return true;
        },
      );
    }
    const cwd = tempDir();
    writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify({ secretKey: 987654321 }));
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
      (error: unknown) => !(error as Error).message.includes('987654321'),
    );
    // A file that does not parse: the parser says where, never what the line holds.
    const secret = 'TopSecretValue-0123456789-abcdefghij';
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.message}\n${String(warning.stack)}`);
    process.on('warning', onWarning);
    t.after(() => process.off('warning', onWarning));
    for (const [file, text, where] of [
      [
        'aa.yaml',
        `issuer: https://auth.example.org/o\nsecretKey: @${secret}\n`,
        /YAML: .*at line 2, column 12$/,
      ],
      ['aa.json', `{"secretKey": ${secret}}`, /JSON: /],
      // Unquoted, a value starting with *, ! or | is YAML syntax, which the parser's message quotes.
      ['aa.yaml', `secretKey: *${secret}\n`, /YAML: a value starting with \* is read as an alias/],
      [
        'aa.yaml',
        `secretKey: !${secret}\n`,
        /YAML: a value starting with ! is read as a tag that does not exist \(quote the value\) at line 1, column 12$/,
      ],
      [
        'aa.yaml',
        `secretKey: |${secret}\n`,
        /YAML: a value starting with \| or > is read as a block scalar header/,
      ],
      ['aa.yaml', `secretKey: "\\q${secret}"\n`, /YAML: invalid escape sequence in a double-quoted value/],
    ] as const) {
      writeFileSync(path.join(cwd, file), text);
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_CONFIG: file }, cwd }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, where);
          assert.ok(!error.message.includes('TopSecret'), error.message);
          assert.ok(!error.message.includes('\n'), 'one line');
          return true;
        },
      );
    }
    // Nor does the parser print a warning quoting the line (process warnings are emitted on next tick).
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(
      warnings.filter((warning) => warning.includes('TopSecret')),
      [],
    );
  });

  it('takes the PostgreSQL URLs the driver reads: a socket folder, a space or a %-sign in the password', () => {
    for (const [url, read] of [
      ['postgres://aa@/aa_oidc?host=/var/run/postgresql', 'postgres://aa@/aa_oidc?host=/var/run/postgresql'],
      // Spaces and a %-sign that starts no escape are encoded, so the driver reads the other
      // escapes too (it would take them literally beside a space).
      ['postgresql://aa:a b%2Fc@db.example.org/aa_oidc', 'postgresql://aa:a%20b%2Fc@db.example.org/aa_oidc'],
      [
        'postgres://aa:50%off@db.example.org:5432/aa_oidc',
        'postgres://aa:50%25off@db.example.org:5432/aa_oidc',
      ],
      [
        'postgres://aa:p%40ss@[::1]:5432/aa_oidc?sslmode=require',
        'postgres://aa:p%40ss@[::1]:5432/aa_oidc?sslmode=require',
      ],
    ]) {
      const config = loadConfig({ env: { AA_OIDC_DATABASE_URL: url! }, cwd: tempDir() });
      assert.deepEqual(config.database, { kind: 'postgres', url: read });
    }
  });

  it('refuses an sslmode the PostgreSQL driver does not know, naming it and the valid ones', () => {
    const valid = 'use one of disable, prefer, require, verify-ca, verify-full, no-verify \\(lower case\\)$';
    for (const [url, shown] of [
      ['postgres://aa@127.0.0.1/aa_oidc?sslmode=bogus', '"bogus"'],
      ['postgres://aa@127.0.0.1/aa_oidc?sslmode=Require', '"Require"'],
      // A password left unencoded runs on into the value: it is hidden there as in the log.
      ['postgres://aa@127.0.0.1/aa_oidc?sslmode=require?password=hunter2', '"require\\?password=\\*\\*\\*"'],
    ]) {
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_DATABASE_URL: url! }, cwd: tempDir() }),
        configError(
          new RegExp(
            `^AA_OIDC_DATABASE_URL: sslmode ${shown} is not a mode the PostgreSQL driver knows; ${valid}`,
          ),
        ),
      );
    }
    for (const mode of ['disable', 'no-verify', 'verify-full', '']) {
      const url = `postgres://aa@127.0.0.1/aa_oidc?sslmode=${mode}`;
      assert.equal(
        loadConfig({ env: { AA_OIDC_DATABASE_URL: url }, cwd: tempDir() }).database.kind,
        'postgres',
      );
    }
  });

  it('refuses an sslmode that uselibpqcompat=true would read otherwise than the URL says, naming what to write', () => {
    const base = 'postgres://aa@127.0.0.1/aa_oidc?';
    for (const [query, message] of [
      // The driver knows no-verify only without libpq's meanings: it would check the certificate.
      [
        'uselibpqcompat=true&sslmode=no-verify',
        /^AA_OIDC_DATABASE_URL: sslmode=no-verify is not a mode with uselibpqcompat=true \(the driver would check the certificate after all\); for TLS without checking the certificate, use sslmode=require, or leave uselibpqcompat out$/,
      ],
      [
        'sslmode=no-verify&uselibpqcompat=false&uselibpqcompat=true',
        /^AA_OIDC_DATABASE_URL: sslmode=no-verify is not a mode with uselibpqcompat=true/,
      ],
      // Ignored by the driver: require would check the certificate, not as libpq's require.
      [
        'uselibpqcompat=TRUE&sslmode=require',
        /^AA_OIDC_DATABASE_URL: uselibpqcompat "TRUE" is not a value the PostgreSQL driver acts on \(it would read sslmode with its own meanings\); use uselibpqcompat=true for libpq's meanings, or leave it out$/,
      ],
      ['uselibpqcompat=1&sslmode=require', /^AA_OIDC_DATABASE_URL: uselibpqcompat "1" is not a value/],
      // Not "not a valid URL": the driver's own refusal, said with what to add.
      [
        'uselibpqcompat=true&sslmode=verify-ca',
        /^AA_OIDC_DATABASE_URL: sslmode=verify-ca with uselibpqcompat=true needs sslrootcert=\/path\/to\/ca\.pem/,
      ],
    ] as const) {
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_DATABASE_URL: `${base}${query}` }, cwd: tempDir() }),
        configError(message),
        query,
      );
    }
    for (const query of [
      'uselibpqcompat=true&sslmode=require',
      'uselibpqcompat=true&sslmode=verify-full',
      'uselibpqcompat=true&sslmode=disable',
      'uselibpqcompat=false&sslmode=no-verify',
      'uselibpqcompat=true&uselibpqcompat=false&sslmode=no-verify',
      'sslmode=no-verify',
    ]) {
      const config = loadConfig({ env: { AA_OIDC_DATABASE_URL: `${base}${query}` }, cwd: tempDir() });
      assert.equal(config.database.kind, 'postgres', query);
    }
  });

  it('refuses a PostgreSQL port the driver would read as another (PGPORT, ?port=), naming it and what is valid', () => {
    const load = (env: Record<string, string>) => loadConfig({ env, cwd: tempDir() });
    const noPort = 'postgres://aa@127.0.0.1/aa_oidc';
    // node-postgres reads PGPORT with parseInt when the URL names no port: 54x2 would be port 54, 0x10 port 0.
    for (const port of ['54x2', '0x10', '0', '65536', ' ', '5432.0']) {
      assert.throws(
        () => load({ AA_OIDC_DATABASE_URL: noPort, PGPORT: port }),
        configError(
          new RegExp(
            `^PGPORT: ${JSON.stringify(port).replace('.', '\\.')} is not a port, and the PostgreSQL driver connects to it because AA_OIDC_DATABASE_URL names no port; set PGPORT to a whole number from 1 to 65535, unset it \\(5432\\), or name the port in AA_OIDC_DATABASE_URL`,
          ),
        ),
        port,
      );
      assert.throws(
        () => load({ AA_OIDC_DATABASE_URL: `${noPort}?port=${encodeURIComponent(port)}` }),
        configError(/^AA_OIDC_DATABASE_URL: port ".*" is not a port; use a whole number from 1 to 65535/),
        port,
      );
    }
    assert.throws(
      () =>
        load({
          AA_OIDC_DIRECTORY: 'alliance-auth',
          AA_OIDC_AA_DATABASE_URL: 'postgres://reader:secret@127.0.0.1/alliance_auth',
          AA_OIDC_AA_LOGIN_URL: 'https://auth.example.org/',
          PGPORT: '0x10',
        }),
      configError(/^PGPORT: "0x10" is not a port, .* because AA_OIDC_AA_DATABASE_URL names no port/),
    );
    // A port the URL names is the one the driver uses: PGPORT is not read then.
    for (const url of ['postgres://aa@127.0.0.1:5433/aa_oidc', `${noPort}?port=5433`]) {
      assert.equal(load({ AA_OIDC_DATABASE_URL: url, PGPORT: '54x2' }).database.kind, 'postgres', url);
    }
    assert.equal(load({ AA_OIDC_DATABASE_URL: noPort, PGPORT: '5433' }).database.kind, 'postgres');
    assert.equal(load({ AA_OIDC_DATABASE_URL: noPort, PGPORT: '' }).database.kind, 'postgres');
  });

  it('refuses AA_OIDC_CONFIG set but empty, rather than reading no file', () => {
    for (const value of ['', '  ']) {
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_CONFIG: value }, cwd: tempDir() }),
        configError(
          /^AA_OIDC_CONFIG: set but empty; name the config file \(a YAML or JSON file, like \/etc\/aa-oidc\/config\.yaml; a relative path starts from the working directory\), or unset AA_OIDC_CONFIG to use none$/,
        ),
      );
    }
  });

  it('refuses a PostgreSQL URL naming a certificate or key file that cannot be read, naming the setting, parameter and path', () => {
    const cwd = tempDir();
    const missing = path.join(cwd, 'missing', 'ca.pem');
    assert.throws(
      () =>
        loadConfig({
          env: {
            AA_OIDC_DATABASE_URL: `postgres://aa:hunter2@127.0.0.1/aa_oidc?sslmode=verify-full&sslrootcert=${missing}`,
          },
          cwd,
        }),
      configError(
        new RegExp(
          `^AA_OIDC_DATABASE_URL: cannot read ${missing} \\(sslrootcert\\): no such file; name a PEM file holding the certificate of the authority that issued the server's certificate \\(a relative path starts from the working directory\\)$`,
        ),
      ),
    );
    // Percent-encoded, from a config file key, and a folder where the client's key should be.
    writeFileSync(
      path.join(cwd, 'aa.json'),
      JSON.stringify({ databaseUrl: `postgres://aa@127.0.0.1/aa_oidc?sslkey=${encodeURIComponent(cwd)}` }),
    );
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
      configError(
        new RegExp(
          `^config file .*aa\\.json key "databaseUrl": cannot read ${cwd} \\(sslkey\\): it is a directory; name a PEM file holding this client's private key$`,
        ),
      ),
    );
    // Alliance Auth's database URL too.
    assert.throws(
      () =>
        loadConfig({
          env: {
            AA_OIDC_DIRECTORY: 'alliance-auth',
            AA_OIDC_AA_DATABASE_URL: `postgres://aa@127.0.0.1/alliance_auth?sslcert=${missing}`,
            AA_OIDC_AA_LOGIN_URL: 'http://localhost:8080/',
          },
          cwd,
        }),
      configError(
        new RegExp(`^AA_OIDC_AA_DATABASE_URL: cannot read ${missing} \\(sslcert\\): no such file; `),
      ),
    );
    const ca = path.join(cwd, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    const url = `postgres://aa@127.0.0.1/aa_oidc?sslmode=verify-full&sslrootcert=${ca}`;
    assert.deepEqual(loadConfig({ env: { AA_OIDC_DATABASE_URL: url }, cwd }).database, {
      kind: 'postgres',
      url,
    });
  });

  it('refuses a config file, or a file a database URL names, of more than 1 MiB (/dev/zero included) at once, naming it', () => {
    const cwd = tempDir();
    // A valid YAML file: one setting, then a comment that takes it over 1 MiB.
    const big = path.join(cwd, 'big.yaml');
    writeFileSync(big, `port: 8100\n#${'x'.repeat(1024 * 1024)}\n`);
    const endless = [big, ...(existsSync('/dev/zero') ? ['/dev/zero'] : [])];
    for (const file of endless) {
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_CONFIG: file }, cwd }),
        configError(
          new RegExp(
            `^AA_OIDC_CONFIG: ${file} is larger than 1 MiB; name the YAML or JSON file, which is a few kilobytes$`,
          ),
        ),
      );
      assert.throws(
        () =>
          loadConfig({
            env: {
              AA_OIDC_DATABASE_URL: `postgres://aa:hunter2@127.0.0.1/aa_oidc?sslmode=verify-full&sslrootcert=${file}`,
            },
            cwd,
          }),
        configError(
          new RegExp(
            `^AA_OIDC_DATABASE_URL: ${file} \\(sslrootcert\\) is larger than 1 MiB; name a PEM file holding the certificate of the authority that issued the server's certificate$`,
          ),
        ),
      );
      assert.throws(
        () =>
          loadConfig({
            env: {
              AA_OIDC_DIRECTORY: 'alliance-auth',
              AA_OIDC_AA_DATABASE_URL: `mysql://aa:hunter2@db.example.org:3306/alliance_auth?ssl-key=${file}`,
              AA_OIDC_AA_LOGIN_URL: 'http://localhost:8080/',
            },
            cwd,
          }),
        configError(
          new RegExp(
            `^AA_OIDC_AA_DATABASE_URL: ${file} \\(ssl-key\\) is larger than 1 MiB; name a PEM file holding this client's private key$`,
          ),
        ),
      );
    }
    // 1 MiB itself is read.
    writeFileSync(big, `port: 8100\n#${'x'.repeat(1024 * 1024 - 13)}\n`);
    assert.equal(loadConfig({ env: { AA_OIDC_CONFIG: big }, cwd }).port, 8100);
  });

  it("refuses Alliance Auth's MariaDB URL naming a TLS file that cannot be read (ssl-ca, ssl-cert, ssl-key), naming the setting, parameter and path", () => {
    const cwd = tempDir();
    const missing = path.join(cwd, 'missing', 'ca.pem');
    const aaEnv = (url: string): Record<string, string> => ({
      AA_OIDC_DIRECTORY: 'alliance-auth',
      AA_OIDC_AA_DATABASE_URL: url,
      AA_OIDC_AA_LOGIN_URL: 'http://localhost:8080/',
    });
    assert.throws(
      () =>
        loadConfig({
          env: aaEnv(
            `mysql://aa:hunter2@db.example.org:3306/alliance_auth?ssl-mode=VERIFY_IDENTITY&ssl-ca=${missing}`,
          ),
          cwd,
        }),
      configError(
        new RegExp(
          `^AA_OIDC_AA_DATABASE_URL: cannot read ${missing} \\(ssl-ca\\): no such file; name a PEM file holding the certificate of the authority that issued the server's certificate \\(a relative path starts from the working directory\\)$`,
        ),
      ),
    );
    // The client certificate's files, spelt either way; a folder where the key should be.
    const cert = path.join(cwd, 'client.pem');
    writeFileSync(cert, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    assert.throws(
      () =>
        loadConfig({
          env: aaEnv(`mariadb://aa@db.example.org/alliance_auth?ssl_cert=${missing}&ssl-key=${cert}`),
          cwd,
        }),
      configError(
        new RegExp(
          `^AA_OIDC_AA_DATABASE_URL: cannot read ${missing} \\(ssl-cert\\): no such file; name a PEM file holding this client's certificate `,
        ),
      ),
    );
    writeFileSync(
      path.join(cwd, 'aa.json'),
      JSON.stringify({
        directory: {
          source: 'alliance-auth',
          allianceAuth: {
            databaseUrl: `mysql://aa@db.example.org/alliance_auth?ssl-cert=${cert}&ssl-key=${encodeURIComponent(cwd)}`,
            loginUrl: 'http://localhost:8080/',
          },
        },
      }),
    );
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
      configError(
        new RegExp(
          `^config file .*aa\\.json key "directory\\.allianceAuth\\.databaseUrl": cannot read ${cwd} \\(ssl-key\\): it is a directory; name a PEM file holding this client's private key$`,
        ),
      ),
    );
    // Files that are there: the URL is taken (their contents are the driver's to judge).
    const url = `mysql://aa@db.example.org/alliance_auth?ssl-ca=${cert}&ssl-cert=${cert}&ssl-key=${cert}`;
    assert.equal(loadConfig({ env: aaEnv(url), cwd }).directory.allianceAuth.databaseUrl, url);
  });

  it("refuses Alliance Auth's database URL with an ssl its driver does not read, naming the setting and what is valid, without the password", () => {
    const aaEnv = (url: string): Record<string, string> => ({
      AA_OIDC_DIRECTORY: 'alliance-auth',
      AA_OIDC_AA_DATABASE_URL: url,
      AA_OIDC_AA_LOGIN_URL: 'http://localhost:8080/',
    });
    const mysqlValid =
      'for TLS use ssl-mode \\(one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY\\) with ssl-ca, like \\?ssl-mode=VERIFY_IDENTITY&ssl-ca=/path/to/ca\\.pem, or leave ssl out; ' +
      'the driver\'s own ssl takes only a JSON object of its TLS options \\(ssl=\\{"rejectUnauthorized":true\\}\\), "Amazon RDS", or false$';
    for (const [query, shown] of [
      ['ssl=bogus', '"bogus"'],
      ['ssl=true', '"true"'],
      ['ssl=required', '"required"'],
      // The driver reads the last value.
      ['ssl=false&ssl=1', '"1"'],
      // A password left unencoded runs on into the value: it is hidden there as in the log.
      ['ssl=bogus?password=hunter2', '"bogus\\?password=\\*\\*\\*"'],
    ] as const) {
      assert.throws(
        () =>
          loadConfig({
            env: aaEnv(`mysql://aa:hunter2@db.example.org/alliance_auth?${query}`),
            cwd: tempDir(),
          }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          assert.match(
            error.message,
            new RegExp(
              `^AA_OIDC_AA_DATABASE_URL: ssl ${shown} is not a value the MariaDB/MySQL driver reads; ${mysqlValid}`,
            ),
          );
          assert.doesNotMatch(error.message, /hunter2/);
          return true;
        },
        query,
      );
    }
    // What the driver reads: a JSON object of its options, a profile's name, no TLS.
    for (const query of ['ssl={"rejectUnauthorized":true}', 'ssl=Amazon%20RDS', 'ssl=false', 'ssl=0']) {
      const url = `mysql://aa:hunter2@db.example.org/alliance_auth?${query}`;
      assert.equal(loadConfig({ env: aaEnv(url), cwd: tempDir() }).directory.allianceAuth.databaseUrl, url);
    }
    // PostgreSQL's driver takes any ssl but true, 1, 0 and no-verify (false too) for TLS.
    for (const value of ['bogus', 'false', 'require']) {
      assert.throws(
        () =>
          loadConfig({
            env: aaEnv(`postgres://aa:hunter2@db.example.org/alliance_auth?ssl=${value}`),
            cwd: tempDir(),
          }),
        configError(
          new RegExp(
            `^AA_OIDC_AA_DATABASE_URL: ssl "${value}" is not a value the PostgreSQL driver reads as written \\(it would turn TLS on, checking the certificate\\); use sslmode \\(one of disable, prefer, require, verify-ca, verify-full, no-verify\\), like \\?sslmode=verify-full&sslrootcert=/path/to/ca\\.pem, or the driver's ssl=true, ssl=1, ssl=0, ssl=no-verify, or leave it out$`,
          ),
        ),
        value,
      );
    }
    assert.throws(
      () =>
        loadConfig({
          env: { AA_OIDC_DATABASE_URL: 'postgres://aa@127.0.0.1/aa_oidc?ssl=false' },
          cwd: tempDir(),
        }),
      configError(/^AA_OIDC_DATABASE_URL: ssl "false" is not a value the PostgreSQL driver reads as written/),
    );
    for (const value of ['true', '1', '0', 'no-verify', '']) {
      const url = `postgres://aa@db.example.org/alliance_auth?ssl=${value}`;
      assert.equal(loadConfig({ env: aaEnv(url), cwd: tempDir() }).directory.allianceAuth.databaseUrl, url);
    }
    // Beside sslmode or a certificate file the PostgreSQL driver ignores ssl: what worked still loads.
    for (const query of ['ssl=false&sslmode=disable', 'sslmode=verify-full&ssl=require']) {
      const url = `postgres://aa@db.example.org/alliance_auth?${query}`;
      assert.equal(loadConfig({ env: aaEnv(url), cwd: tempDir() }).directory.allianceAuth.databaseUrl, url);
    }
    // Beside ssl-mode=DISABLED the MariaDB URL's ssl is dropped (mysqlUrlParts): it still loads.
    const disabled = 'mysql://aa:hunter2@db.example.org/alliance_auth?ssl-mode=DISABLED&ssl=true';
    assert.equal(
      loadConfig({ env: aaEnv(disabled), cwd: tempDir() }).directory.allianceAuth.databaseUrl,
      disabled,
    );
  });

  it("refuses Alliance Auth's MariaDB URL with an ssl-mode the mysql client does not know, naming the setting and the valid modes, without the password", () => {
    const aaEnv = (url: string): Record<string, string> => ({
      AA_OIDC_DIRECTORY: 'alliance-auth',
      AA_OIDC_AA_DATABASE_URL: url,
      AA_OIDC_AA_LOGIN_URL: 'http://localhost:8080/',
    });
    for (const [query, shown] of [
      ['ssl-mode=SOMETIMES', '"SOMETIMES"'],
      ['ssl-mode=PREFERRED&ssl-ca=/etc/ca.pem', '"PREFERRED"'],
      ['ssl_mode=verify-full', '"verify-full"'],
      ['ssl-mode=', '""'],
      // The last value counts, as when the pool opens; beside ssl, the mode is judged first.
      ['ssl-mode=REQUIRED&ssl-mode=bogus', '"bogus"'],
      ['ssl-mode=bogus&ssl=true', '"bogus"'],
      // A password left unencoded runs on into the value: it is hidden there as in the log.
      ['ssl-mode=bogus?password=hunter2', '"bogus\\?password=\\*\\*\\*"'],
    ] as const) {
      assert.throws(
        () =>
          loadConfig({
            env: aaEnv(`mysql://aa:hunter2@db.example.org/alliance_auth?${query}`),
            cwd: tempDir(),
          }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          assert.match(
            error.message,
            new RegExp(
              `^AA_OIDC_AA_DATABASE_URL: ssl-mode ${shown} is not one of DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY$`,
            ),
          );
          assert.doesNotMatch(error.message, /hunter2/);
          return true;
        },
        query,
      );
    }
    // Each mode, in any case and either spelling, loads.
    for (const query of [
      'ssl-mode=DISABLED',
      'ssl_mode=required',
      'ssl-mode=Verify_CA',
      'ssl-mode=VERIFY_IDENTITY',
    ]) {
      const url = `mysql://aa:hunter2@db.example.org/alliance_auth?${query}`;
      assert.equal(loadConfig({ env: aaEnv(url), cwd: tempDir() }).directory.allianceAuth.databaseUrl, url);
    }
  });

  it('says where a JSON config file stops parsing, once, and never what it holds there', () => {
    const cwd = tempDir();
    for (const [text, where] of [
      ['{"port": 8000,\n "tokens": {}\n,}', 'at position 30 (line 3 column 2)'],
      [
        '{\n  "port": 8000,\n  "secretKey": TopSecret-0123456789-abcdefghij\n}',
        'at position 33 (line 3 column 16)',
      ],
      ['{"secretKey": TopSecret}', 'at position 14 (line 1 column 15)'],
    ] as const) {
      writeFileSync(path.join(cwd, 'aa.json'), text);
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.ok(error.message.endsWith(` ${where}`), error.message);
          assert.equal(error.message.split(' at position ').length, 2, `the position once: ${error.message}`);
          assert.ok(!error.message.includes('TopSecret'), error.message);
          return true;
        },
      );
    }
  });

  it('tells (for check W010) a config file holding secrets that every user can read, and which keys', () => {
    const cwd = tempDir();
    const file = path.join(cwd, 'aa.yaml');
    const read = (text: string, mode: number) => {
      writeFileSync(file, text);
      chmodSync(file, mode);
      return loadConfig({ env: { AA_OIDC_CONFIG: 'aa.yaml' }, cwd }).readableConfigFile;
    };
    const secrets = `secretKey: ${'k'.repeat(40)}\ndatabaseUrl: "postgres://aa:hunter2@db.example.org/aa"\n`;
    assert.deepEqual(read(secrets, 0o644), {
      path: file,
      mode: 0o644,
      secrets: ['secretKey', 'databaseUrl'],
    });
    assert.deepEqual(read('metrics:\n  bearerToken: abcdefghijklmnopq\n', 0o604)?.secrets, [
      'metrics.bearerToken',
    ]);
    // Kept from other users, or nothing secret in it: nothing to tell.
    assert.equal(read(secrets, 0o640), null);
    assert.equal(read('port: 8100\ndatabaseUrl: "postgres://aa@db.example.org/aa"\n', 0o644), null);
  });

  it('refuses an issuer with a query, a fragment or credentials, naming the setting', () => {
    for (const [issuer, reason] of [
      ['https://auth.example.org/o?tenant=1', /^AA_OIDC_ISSUER: must have no query \(\?\) or fragment \(#\)/],
      ['https://auth.example.org/o#top', /^AA_OIDC_ISSUER: must have no query \(\?\) or fragment \(#\)/],
      ['https://admin:hunter2-pw@auth.example.org/o', /^AA_OIDC_ISSUER: must not carry a user or password/],
    ] as const) {
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_ISSUER: issuer }, cwd: tempDir() }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, reason);
          assert.doesNotMatch(error.message, /hunter2/);
          return true;
        },
      );
    }
  });

  it('shows a YAML number JSON cannot write (1e309, .inf, .nan) as it is, not as null', () => {
    const cwd = tempDir();
    for (const [value, shown] of [
      ['1e309', '"1e309"'],
      ['-.inf', '-Infinity'],
      ['.nan', 'NaN'],
    ]) {
      writeFileSync(path.join(cwd, 'aa.yaml'), `port: ${value}\n`);
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.yaml' }, cwd }),
        configError(new RegExp(`key "port": expected an integer between 0 and 65535 \\(got ${shown}\\)$`)),
      );
    }
  });

  it('refuses what a config file would otherwise lose or read as a number not written in decimal', () => {
    const cwd = tempDir();
    const load = () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.yaml' }, cwd });
    // A second YAML document (two files joined with ---) was dropped without a word.
    writeFileSync(
      path.join(cwd, 'aa.yaml'),
      'port: 8100\n---\nsecretKey: hunter2hunter2hunter2hunter2hunter2\n',
    );
    assert.throws(
      load,
      configError(
        /^AA_OIDC_CONFIG: .*aa\.yaml holds 2 YAML documents \(separated by ---\); put every setting in one document$/,
      ),
    );
    // A document start before the settings, and an empty document after them, are still one.
    writeFileSync(path.join(cwd, 'aa.yaml'), '---\nport: 8100\n---\n');
    assert.equal(load().port, 8100);
    // YAML reads these as 16, 16 and 1000; the environment refuses them, and so does the file now.
    for (const value of ['0x10', '0o20', '1e3', '!!int 0x10']) {
      writeFileSync(path.join(cwd, 'aa.yaml'), `port: ${value}\n`);
      assert.throws(
        load,
        configError(/key "port": expected an integer between 0 and 65535 \(got "(0x10|0o20|1e3)"\)$/),
        value,
      );
    }
    writeFileSync(path.join(cwd, 'aa.yaml'), 'port: 8100.0\nlogout:\n  retryBackoffSeconds: [5, 10]\n');
    assert.equal(load().port, 8100);
    // A %YAML 1.1 directive would read 0b11, 1_000 and 1:30 as 3, 1000 and 90.
    for (const value of ['0b11', '1_000', '1:30']) {
      writeFileSync(path.join(cwd, 'aa.yaml'), `%YAML 1.1\n---\nport: ${value}\n`);
      assert.throws(
        load,
        configError(
          /^AA_OIDC_CONFIG: .*aa\.yaml asks for YAML 1\.1 \(a %YAML directive\), which reads some values otherwise; remove the directive \(YAML 1\.2\)$/,
        ),
        value,
      );
    }
    writeFileSync(path.join(cwd, 'aa.yaml'), '%YAML 1.2\n---\nport: 8100\n');
    assert.equal(load().port, 8100);
    // JSON.parse keeps the last of a key given twice; YAML refuses it, and so does a JSON file now.
    writeFileSync(
      path.join(cwd, 'aa.json'),
      '{\n  "secretKey": "hunter2hunter2hunter2hunter2hunter2",\n  "secretKey": "k"\n}',
    );
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
      configError(
        /^AA_OIDC_CONFIG: .*aa\.json gives a key twice in one object, at line 3, column 3; give each key once \(JSON would keep only the last\)$/,
      ),
    );
    // An unknown key holding an object is named with the file it is in (`__proto__` too).
    for (const key of ['ports', '__proto__']) {
      writeFileSync(path.join(cwd, 'aa.json'), `{"${key}": {"main": 8100}}`);
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
        configError(new RegExp(`^config file .*aa\\.json: unknown key "${key}"; valid keys: `)),
      );
    }
  });

  it('names the list a list-valued key expects when given something else', () => {
    const cwd = tempDir();
    for (const [value, message] of [
      [
        { oidc: { scopes: 5 } },
        /key "oidc\.scopes": expected a list of scope names \(like openid,profile,email\) \(comma-separated in the environment\) \(got 5\)$/,
      ],
      [{ oidc: { scopes: ['openid', 7] } }, /key "oidc\.scopes\.1": 7 is not a scope name \(like openid\)$/],
      [
        { audit: { databaseExclude: { kind: 'token_issued' } } },
        /key "audit\.databaseExclude": expected a list of audit event kinds \(token_issued, .*two_factor_failed\) \(comma-separated in the environment\)/,
      ],
      [
        { trustedProxies: [] },
        /key "trustedProxies": expected a list of proxy IP addresses or CIDR ranges \(like 10\.0\.0\.0\/8,fd00::\/8\), at least 1/,
      ],
      [
        { logout: { retryBackoffSeconds: [5, 'ten'] } },
        /key "logout\.retryBackoffSeconds\.1": "ten" is not a delay: expected a whole number of seconds from 1 to 86400, in decimal digits$/,
      ],
    ] as const) {
      writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify(value));
      assert.throws(() => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }), message);
    }
  });

  it('refuses a scope entry that is no scope token, such as two scopes written as one', () => {
    const cwd = tempDir();
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_OIDC_SCOPES: 'openid profile,email' }, cwd }),
      configError(
        /^AA_OIDC_OIDC_SCOPES: "openid profile" is not a scope name: a scope name is printable ASCII without spaces, " or \\ \(RFC 6749, section 3\.3\), one scope an entry \(like openid,profile\)$/,
      ),
    );
    for (const scope of ['say"hi"', 'back\\slash', 'caf\u00e9', 'tab\tbed']) {
      writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify({ oidc: { scopes: ['openid', scope] } }));
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
        configError(/key "oidc\.scopes\.1": ".*" is not a scope name: a scope name is printable ASCII/),
        scope,
      );
    }
    // Every other printable ASCII character is a scope token's.
    const odd = loadConfig({ env: { AA_OIDC_OIDC_SCOPES: 'openid,read:all!#[]~' }, cwd });
    assert.deepEqual(odd.oidc.scopes, ['openid', 'read:all!#[]~']);
  });

  it('refuses a listen address that is no IP address nor host name, naming the setting', () => {
    const cwd = tempDir();
    for (const [env, value] of [
      ['AA_OIDC_HOST', 'not a host'],
      ['AA_OIDC_HOST', '127.0.0.256'],
      ['AA_OIDC_HOST', '[::1]'],
      ['AA_OIDC_METRICS_HOST', 'two..dots'],
      ['AA_OIDC_METRICS_HOST', '-metrics.local'],
      ['AA_OIDC_METRICS_HOST', 'http://127.0.0.1'],
    ] as const) {
      assert.throws(
        () => loadConfig({ env: { [env]: value }, cwd }),
        configError(
          new RegExp(
            `^${env}: is not an IP address or a host name; use a listen address \\(like 127\\.0\\.0\\.1.*\\), or a host name of letters, digits, hyphens and underscores \\(like localhost\\) \\(got ${JSON.stringify(value).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)$`,
          ),
        ),
        value,
      );
    }
    writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify({ metrics: { host: '1.2.3' } }));
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
      configError(/key "metrics\.host": is not an IP address or a host name/),
    );
    for (const host of [
      '::',
      '::1',
      '0.0.0.0',
      'localhost',
      'aa-oidc.internal',
      'db.example.org.',
      'aa_oidc',
    ]) {
      assert.equal(loadConfig({ env: { AA_OIDC_HOST: host, AA_OIDC_METRICS_HOST: host }, cwd }).host, host);
    }
  });

  it('takes an EVE claims scope among the supported ones, and the default left out of them', () => {
    const eve = loadConfig({
      env: { AA_OIDC_OIDC_SCOPES: 'openid,profile,eve', AA_OIDC_OIDC_EVE_CLAIMS_SCOPE: 'eve' },
      cwd: tempDir(),
    });
    assert.equal(eve.oidc.eveClaimsScope, 'eve');
    // Without `profile` and with the default untouched: no EVE claims, as before.
    const noProfile = loadConfig({ env: { AA_OIDC_OIDC_SCOPES: 'openid,email' }, cwd: tempDir() });
    assert.deepEqual(noProfile.oidc.scopes, ['openid', 'email']);
    // The default given explicitly is the default.
    const explicit = loadConfig({
      env: { AA_OIDC_OIDC_SCOPES: 'openid,email', AA_OIDC_OIDC_EVE_CLAIMS_SCOPE: 'profile' },
      cwd: tempDir(),
    });
    assert.equal(explicit.oidc.eveClaimsScope, 'profile');
  });

  it('takes retry delays written as numbers with a zero fraction or spaces, as before', () => {
    const config = loadConfig({
      env: { AA_OIDC_LOGOUT_RETRY_BACKOFF_SECONDS: '5.0, 10 ,20' },
      cwd: tempDir(),
    });
    assert.deepEqual(config.logout.retryBackoffSeconds, [5, 10, 20]);
  });

  it('refuses a data directory that is a file, and an empty development secret key file', () => {
    const cwd = tempDir();
    writeFileSync(path.join(cwd, 'data-file'), '');
    for (const dataDir of ['data-file', 'data-file/below']) {
      assert.throws(
        () => loadConfig({ env: { AA_OIDC_DATA_DIR: dataDir }, cwd }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(
            error.message,
            `AA_OIDC_DATA_DIR: ${path.join(cwd, dataDir)} is not a directory; name a directory (it is created when missing), like ./data or /var/lib/aa-oidc`,
          );
          return true;
        },
      );
    }
    mkdirSync(path.join(cwd, 'data'));
    writeFileSync(path.join(cwd, 'data', 'secret.key'), '  \n');
    assert.throws(
      () => loadConfig({ env: {}, cwd }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(
          error.message,
          /secret\.key: the development secret key file is empty \(or only spaces\); delete it to have a new key generated, or set AA_OIDC_SECRET_KEY/,
        );
        return true;
      },
    );
  });

  it('refuses a development secret key file it cannot read, naming it and what to do', () => {
    const cwd = tempDir();
    // A directory in its place (a mode 000 file reads the same to any user but root, who runs the tests).
    const keyFile = path.join(cwd, 'data', 'secret.key');
    mkdirSync(keyFile, { recursive: true });
    assert.throws(
      () => loadConfig({ env: {}, cwd }),
      configError(
        new RegExp(
          `^${keyFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot read the development secret key file: it is a directory; remove it to have a new key generated, or set AA_OIDC_SECRET_KEY \\(at least 32 random characters\\)$`,
        ),
      ),
    );
    // A configured secret key is used instead.
    const config = loadConfig({
      env: { AA_OIDC_SECRET_KEY: 'a-test-secret-key-long-enough-0123456789' },
      cwd,
    });
    assert.equal(config.secretKey, 'a-test-secret-key-long-enough-0123456789');
  });

  it('rejects an unknown or ill-typed key in the config file, naming the file and key', () => {
    const cwd = tempDir();
    writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify({ tokens: { accessTokenTTL: 10 } }));
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
      /config file .*aa\.json: unknown key "tokens\.accessTokenTTL"; valid keys under "tokens": accessTokenTtl, /,
    );
    writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify({ metrics: { port: 'nine' } }));
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
      /config file .*aa\.json key "metrics\.port": expected an integer between 0 and 65535 \(got "nine"\)/,
    );
    writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify({ trustedProxies: ['10.0.0.0/8', 10] }));
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }),
      configError(
        /^config file .*aa\.json key "trustedProxies\.1": 10 is not an IP address or CIDR range \(like 10\.0\.0\.0\/8 or fd00::\/8\)$/,
      ),
    );
  });

  it('names the config file key, not an environment variable never set, for a value the file gave', () => {
    const cwd = tempDir();
    const production = {
      mode: 'production',
      secretKey: 'k'.repeat(40),
      issuer: 'https://auth.example.org/o',
    };
    for (const [settings, message] of [
      [
        { ...production, issuer: 'http://auth.example.org/o' },
        /^config file .*aa\.json key "issuer": production mode requires an https:\/\/ issuer \(got "http:\/\/auth\.example\.org\/o"\)$/,
      ],
      [
        { branding: { logoUrl: 'https://cdn:hunter2@cdn.example.org/logo.png' } },
        /^config file .*aa\.json key "branding\.logoUrl": must not contain credentials \(user:password@\) \(got "https:\/\/cdn:\*\*\*@cdn\.example\.org\/logo\.png"\)$/,
      ],
      [
        { ...production, branding: { logoUrl: 'http://auth.example.org/logo.png' } },
        /^config file .*aa\.json key "branding\.logoUrl": production mode requires an https:\/\/ logo/,
      ],
      [
        { databaseUrl: 'mysql://u:hunter2@h/db' },
        /^config file .*aa\.json key "databaseUrl": "mysql:\/\/u:\*\*\*@h\/db" is not supported/,
      ],
      [{ databaseUrl: 'sqlite:' }, /^config file .*aa\.json key "databaseUrl": "sqlite:" names no file/],
    ] as const) {
      writeFileSync(path.join(cwd, 'aa.json'), JSON.stringify(settings));
      assert.throws(() => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json' }, cwd }), configError(message));
    }
    // Set in the environment, it is still named by its variable.
    assert.throws(
      () => loadConfig({ env: { AA_OIDC_CONFIG: 'aa.json', AA_OIDC_DATABASE_URL: 'sqlite:' }, cwd }),
      configError(/^AA_OIDC_DATABASE_URL: "sqlite:" names no file/),
    );
  });

  it('production mode is the default when NODE_ENV=production', () => {
    const config = loadConfig({
      env: {
        NODE_ENV: 'production',
        AA_OIDC_ISSUER: 'https://auth.example.org/o',
        AA_OIDC_SECRET_KEY: 'k'.repeat(40),
      },
      cwd: tempDir(),
    });
    assert.equal(config.mode, 'production');
    assert.equal(config.host, '0.0.0.0');
  });

  it('keeps the metrics listener on loopback in production too, where serve listens on every address', () => {
    const production = loadConfig({
      env: {
        AA_OIDC_MODE: 'production',
        AA_OIDC_ISSUER: 'https://auth.example.org/o',
        AA_OIDC_SECRET_KEY: 'k'.repeat(40),
      },
      cwd: tempDir(),
    });
    assert.equal(production.host, '0.0.0.0');
    assert.deepEqual([production.metrics.host, production.metrics.port], ['127.0.0.1', 9464]);
    const configured = loadConfig({ env: { AA_OIDC_METRICS_HOST: '0.0.0.0' }, cwd: tempDir() });
    assert.equal(configured.metrics.host, '0.0.0.0', 'unless configured otherwise');
  });

  it('derives the development issuer from the port', () => {
    const config = loadConfig({ env: { AA_OIDC_PORT: '9100' }, cwd: tempDir() });
    assert.equal(config.issuer, 'http://localhost:9100/o');
    assert.equal(config.issuerExplicit, false);
  });

  it('takes AA_OIDC_MODE over NODE_ENV', () => {
    const config = loadConfig({
      env: { NODE_ENV: 'production', AA_OIDC_MODE: 'development' },
      cwd: tempDir(),
    });
    assert.equal(config.mode, 'development');
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.issuer, 'http://localhost:8000/o');
  });
});
