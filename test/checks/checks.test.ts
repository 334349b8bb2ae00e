import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JWK } from 'jose';
import pg from 'pg';
import { openDatabase } from '../../src/db/connect.ts';
import {
  deriveKeyEncryptionKey,
  encryptPrivateJwk,
  publicPart,
  thumbprintOf,
} from '../../src/keys/crypto.ts';
import { insertKeyRow } from '../../src/keys/queries.ts';
import { createSecretFormatter } from '../../src/logging/secrets.ts';
import { IMPORTED_SECRET_MAX_ITERATIONS } from '../../src/applications/secret.ts';
import { createServices } from '../../src/services.ts';
import { nameKey } from '../../src/util/name-key.ts';
import {
  CHECK_IDS,
  type CheckedApplication,
  type CheckedConfig,
  type CheckedSigningKey,
  type CheckId,
  type DirectoryNames,
  runChecks,
  spacedNameChecks,
  twoFactorSecretChecks,
  unfitCharacterNameChecks,
  unfitUserTextChecks,
  whitelistChecks,
} from '../../src/checks/checks.ts';
import { unfitNameCharacters } from '../../src/util/hidden-characters.ts';
import { shellWord } from '../../src/util/shell-word.ts';
import { cli, startCli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import {
  createTestDatabase,
  reachablePostgres,
  testDatabaseKind,
  type TestDatabase,
} from '../helpers/database.ts';
import { runToEnd } from '../helpers/child-process.ts';
import { spawnSync } from 'node:child_process';
import {
  asRoot,
  migratedSqliteEnv,
  unprivilegedCommand,
  whyNobodyCannotRun,
} from '../helpers/unprivileged.ts';

const base: CheckedConfig = {
  mode: 'development',
  issuerExplicit: true,
  logging: { level: 'info', maskedSecrets: false },
  logout: {
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
  },
  oidc: { scopes: ['openid', 'profile'] },
  trustProxy: true,
  metrics: { enabled: true, host: '127.0.0.1' },
  readableConfigFile: null,
};

type Override = {
  mode?: 'development' | 'production';
  issuerExplicit?: boolean;
  maskedSecrets?: boolean;
  scopes?: string[];
  logout?: Partial<CheckedConfig['logout']>;
  trustProxy?: boolean;
  metrics?: Partial<CheckedConfig['metrics']>;
  readableConfigFile?: CheckedConfig['readableConfigFile'];
};

function config(override: Override = {}): CheckedConfig {
  return {
    ...base,
    mode: override.mode ?? base.mode,
    issuerExplicit: override.issuerExplicit ?? base.issuerExplicit,
    logging: { ...base.logging, maskedSecrets: override.maskedSecrets ?? false },
    logout: { ...base.logout, ...override.logout },
    oidc: { scopes: override.scopes ?? base.oidc.scopes },
    trustProxy: override.trustProxy ?? base.trustProxy,
    metrics: { ...base.metrics, ...override.metrics },
    readableConfigFile: override.readableConfigFile ?? null,
  };
}

const https: CheckedApplication = {
  clientId: 'rp-https',
  name: 'RP over https',
  active: true,
  backchannelLogoutUri: 'https://rp.example.org/bcl',
  clientSecretPbkdf2: null,
  redirectUris: ['https://rp.example.org/cb', 'com.example.rp:/cb'],
  postLogoutRedirectUris: ['https://rp.example.org/'],
};
const http: CheckedApplication = {
  ...https,
  clientId: 'rp-http',
  name: 'RP over http',
  backchannelLogoutUri: 'http://rp.example.org/bcl',
};
const inactiveHttp: CheckedApplication = { ...http, clientId: 'rp-off', active: false };
const plain: CheckedApplication = {
  ...https,
  clientId: 'rp-plain',
  name: 'Plain RP',
  backchannelLogoutUri: null,
};

/** A Django PBKDF2 hash as the Python plugin stored a client secret (salt and digest made up). */
const pbkdf2 = (iterations: number) =>
  `pbkdf2_sha256$${iterations}$c2FsdHNhbHQ$${Buffer.alloc(32, 7).toString('base64')}`;
/** An application imported from the Python plugin whose relying party has not authenticated yet. */
const imported = (iterations = 600_000, override: Partial<CheckedApplication> = {}): CheckedApplication => ({
  ...plain,
  clientId: `imported-${iterations}`,
  name: 'Wiki',
  clientSecretPbkdf2: pbkdf2(iterations),
  ...override,
});

/** A signing key as the checks see it: 2048 bits, exponent 65537 unless told. */
const key = (
  status: CheckedSigningKey['status'],
  modulusBits = 2048,
  publicExponent = 65537n,
): CheckedSigningKey => ({
  kid: `${status}-${modulusBits}-${publicExponent}`,
  status,
  modulusBits,
  publicExponent,
});

/** An application whose redirect URIs an earlier version took with a * in the host. */
const starred = (override: Partial<CheckedApplication> = {}): CheckedApplication => ({
  ...plain,
  clientId: 'rp-star',
  redirectUris: ['https://rp.example.org/cb', 'https://*.example.org/cb'],
  ...override,
});

const exposed = { path: '/etc/aa-oidc/config.yaml', mode: 0o644, secrets: ['secretKey'] };

type Case = [Override, CheckedApplication[], CheckedSigningKey[]?];

const ids = (override: Override, apps: CheckedApplication[], keys: CheckedSigningKey[] = []) =>
  runChecks(config(override), apps, keys).map((f) => f.id);

/** For each id: configurations (applications, signing keys) that must fire it, and close ones that must not. */
const TABLE: Record<CheckId, { fires: Case[]; silent: Case[] }> = {
  E001: {
    fires: [[{ issuerExplicit: false }, [https]]],
    silent: [
      [{ issuerExplicit: false }, [plain]],
      [{ issuerExplicit: true }, [https]],
    ],
  },
  E004: {
    fires: [[{ scopes: ['profile', 'email'] }, []]],
    silent: [[{ scopes: ['openid'] }, []]],
  },
  E006: {
    fires: [[{ mode: 'production', logout: { allowPrivateTargets: true } }, [https]]],
    silent: [
      [
        { mode: 'production', logout: { allowPrivateTargets: true, allowPrivateTargetsInProduction: true } },
        [https],
      ],
      [{ mode: 'development', logout: { allowPrivateTargets: true } }, [https]],
      [{ mode: 'production', logout: { allowPrivateTargets: true } }, [plain]],
      [{ mode: 'production' }, [https]],
    ],
  },
  E007: {
    fires: [[{ mode: 'production', trustProxy: false }, []]],
    silent: [
      [{ mode: 'production', trustProxy: true }, []],
      [{ mode: 'development', trustProxy: false }, []],
    ],
  },
  W001: {
    fires: [[{ mode: 'production', maskedSecrets: true }, []]],
    silent: [[{ mode: 'development', maskedSecrets: true }, []]],
  },
  W003: {
    fires: [[{ logout: { rpInitiated: false } }, [https]]],
    silent: [
      [{ logout: { rpInitiated: false } }, [plain]],
      [{ logout: { rpInitiated: true } }, [https]],
    ],
  },
  W004: {
    fires: [[{ mode: 'production' }, [http]]],
    silent: [
      [{ mode: 'production' }, [inactiveHttp, https]],
      [{ mode: 'development' }, [http]],
    ],
  },
  W005: {
    fires: [[{ mode: 'production', logout: { allowPrivateTargets: true } }, [plain]]],
    silent: [
      [{ mode: 'production', logout: { allowPrivateTargets: true } }, [https]],
      [{ mode: 'development', logout: { allowPrivateTargets: true } }, []],
    ],
  },
  W007: {
    fires: [
      [{ mode: 'production', metrics: { host: '0.0.0.0' } }, []],
      [{ mode: 'production', metrics: { host: '10.0.0.5' } }, []],
    ],
    silent: [
      [{ mode: 'production', metrics: { host: '127.0.0.1' } }, []],
      [{ mode: 'production', metrics: { host: '::1' } }, []],
      [{ mode: 'production', metrics: { host: '0.0.0.0', enabled: false } }, []],
      [{ mode: 'development', metrics: { host: '0.0.0.0' } }, []],
    ],
  },
  // Keys imported before `keys import` had bounds keep signing.
  W008: {
    fires: [
      [{}, [], [key('active', 8192), key('next')]],
      [{}, [], [key('active', 4104)]],
      [{}, [], [key('active'), key('next', 2048, 3n)]],
      [{ mode: 'production' }, [], [key('active', 2048, 65539n)]],
    ],
    silent: [
      [{}, [], [key('active'), key('next', 4096)]],
      // A retired key only verifies, until its tokens expire.
      [{}, [], [key('active'), key('retired', 8192), key('removed', 2048, 3n)]],
    ],
  },
  // Secrets imported from the Python plugin as PBKDF2 hashes, until the first success or a rotation.
  W009: {
    fires: [
      [{}, [imported()]],
      [{ mode: 'production' }, [https, imported(1000)]],
      [{}, [imported(IMPORTED_SECRET_MAX_ITERATIONS + 1)]],
      [{}, [imported(600_000, { clientSecretPbkdf2: 'pbkdf2_sha256$garbage' })]],
    ],
    silent: [
      [{}, [https, plain]],
      // A deactivated application is not found by client authentication.
      [{}, [imported(600_000, { active: false })]],
    ],
  },
  // A config file with secrets that every user of the host reads.
  W010: {
    fires: [[{ mode: 'production', readableConfigFile: exposed }, []]],
    silent: [
      [{ mode: 'development', readableConfigFile: exposed }, []],
      [{ mode: 'production' }, []],
    ],
  },
  // Nothing signs without an active key.
  W011: {
    fires: [
      [{}, [], []],
      [{}, [], [key('next')]],
      [{}, [], [key('retired'), key('removed')]],
    ],
    silent: [
      [{}, [], [key('active')]],
      [{}, [], [key('active'), key('next')]],
    ],
  },
  // Redirect URIs with a * in the host, stored before such URIs were refused.
  W013: {
    fires: [
      [{}, [starred()]],
      [{ mode: 'production' }, [https, starred()]],
      [
        {},
        [starred({ redirectUris: ['https://rp.example.org/cb'], postLogoutRedirectUris: ['https://*/'] })],
      ],
    ],
    silent: [
      [{}, [https, plain]],
      // A deactivated application admits nobody; a * outside the host is a character like another.
      [{}, [starred({ active: false })]],
      [{}, [starred({ redirectUris: ['https://rp.example.org/*/cb?x=*', 'com.example.*:/cb'] })]],
    ],
  },
  // URIs stored before a hidden character, a bad escape, port 0 or an undecodable host was refused.
  W022: {
    fires: [
      [{}, [{ ...plain, redirectUris: ['https://rp.example.org/cb\u202e'] }]],
      [{}, [{ ...plain, postLogoutRedirectUris: ['https://xn--/'] }]],
      [{}, [{ ...plain, logoUrl: 'https://rp.example.org/logo%zz.png' }]],
      [{ mode: 'production' }, [{ ...https, backchannelLogoutUri: 'https://rp\u200b.example.org/bcl' }]],
    ],
    silent: [
      [{}, [https, plain, { ...plain, logoUrl: 'https://xn--bcher-kva.example/logo%C3%A9.png' }]],
      // A deactivated application admits nobody.
      [{}, [{ ...plain, active: false, redirectUris: ['https://rp.example.org/cb\u202e'] }]],
    ],
  },
};

describe('system checks', () => {
  it('has a case for every check, and every case is a check', () => {
    assert.deepEqual([...CHECK_IDS].sort(), Object.keys(TABLE).sort());
  });

  for (const id of CHECK_IDS) {
    it(`${id} fires on the configuration that should trigger it and stays silent otherwise`, () => {
      const shown = (override: Override, keys: CheckedSigningKey[] = []) =>
        `${JSON.stringify(override)}${keys.length > 0 ? ` with keys ${keys.map((k) => k.kid).join(', ')}` : ''}`;
      for (const [override, apps, keys] of TABLE[id].fires)
        assert.ok(ids(override, apps, keys).includes(id), `${id} should fire for ${shown(override, keys)}`);
      for (const [override, apps, keys] of TABLE[id].silent)
        assert.ok(
          !ids(override, apps, keys).includes(id),
          `${id} should stay silent for ${shown(override, keys)}`,
        );
    });
  }

  it('W001 says that production ignores masked-secret logging, as it does, and that the setting is for development', () => {
    const production = config({ mode: 'production', maskedSecrets: true });
    const w001 = runChecks(production, []).find((finding) => finding.id === 'W001');
    assert.deepEqual(w001, {
      id: 'W001',
      level: 'warning',
      message:
        'masked-secret logging is set in production, where it is ignored: tokens and codes are logged by digest only',
      hint: 'unset AA_OIDC_LOGGING_MASKED_SECRETS (logging.maskedSecrets): it is for development, where audit lines in the log show the first and last 4 characters of tokens and codes',
    });
    assert.equal(createSecretFormatter(production).masksEnabled, false, 'production: digests only');
    assert.equal(
      createSecretFormatter(config({ mode: 'development', maskedSecrets: true })).masksEnabled,
      true,
      'development: fragments',
    );
  });

  it('W023 names the users whose two-factor secret cannot be decrypted by id, the first ten, and what to do', () => {
    assert.deepEqual(twoFactorSecretChecks([]), []);
    const [one, ...none] = twoFactorSecretChecks([7]);
    assert.deepEqual(none, []);
    assert.equal(one!.id, 'W023');
    assert.equal(one!.level, 'warning');
    assert.equal(
      one!.message,
      'the two-factor secret of 1 user (user id 7) cannot be decrypted: AA_OIDC_SECRET_KEY is likely not the secret key it was stored under (or its row was changed); sign-in refuses codes from that user’s authenticator app, and only a recovery code lets them in',
    );
    assert.match(
      one!.hint,
      /^configure the AA_OIDC_SECRET_KEY they were stored under again, if it was replaced/,
    );
    assert.match(
      one!.hint,
      /otherwise reset their two-factor sign-in so that they set it up again: on the admin console's user page \/admin\/users\/ID \(ID a user id above\), or with aa-oidc user reset-two-factor USERNAME, with the username that page shows$/,
    );
    const many = twoFactorSecretChecks(Array.from({ length: 12 }, (_, index) => index + 1));
    assert.match(
      many[0]!.message,
      /^the two-factor secrets of 12 users \(user id 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more\) cannot be decrypted: .* they were stored under \(or their rows were changed\); .* those users’ authenticator app, and only a recovery code lets each in$/,
    );
  });

  it('W008 names each key outside the import bounds, what is wrong with it and how to replace it', () => {
    const findings = runChecks(
      config(),
      [],
      [key('active', 8192), key('next', 2048, 3n), key('retired', 8192)],
    );
    assert.deepEqual(
      findings.map((finding) => [finding.id, finding.level, finding.message]),
      [
        [
          'W008',
          'warning',
          'the active signing key active-8192-65537 has 8192 bits, more than 4096: keys import accepts RSA keys of 2048 to 4096 bits with public exponent 65537 only (a larger key makes every signature slow; some relying parties refuse another exponent)',
        ],
        [
          'W008',
          'warning',
          'the next signing key next-2048-3 has public exponent 3, not 65537: keys import accepts RSA keys of 2048 to 4096 bits with public exponent 65537 only (a larger key makes every signature slow; some relying parties refuse another exponent)',
        ],
      ],
    );
    // The active key is replaced by a rotation, which must not catch relying parties out; a next key
    // is replaced before it signs.
    assert.match(
      findings[0]!.hint,
      /^aa-oidc keys rotate, once the next key has been published for keys\.jwksCacheSeconds .*aa-oidc keys prepare-next first/,
    );
    assert.equal(
      findings[1]!.hint,
      'aa-oidc keys retire next-2048-3, then aa-oidc keys prepare-next, before a rotation makes it sign',
    );
  });

  it('W009 names each active application still holding an imported PBKDF2 hash, its cost, and how to end it, never the hash', () => {
    const costly = imported(IMPORTED_SECRET_MAX_ITERATIONS + 1, { clientId: 'costly', name: 'Forum' });
    const apps = [imported(), costly, https];
    const findings = runChecks(config(), apps);
    assert.deepEqual(
      findings.map((finding) => [finding.id, finding.level, finding.message, finding.hint]),
      [
        [
          'W009',
          'warning',
          'application "Wiki" (imported-600000) still holds a client secret imported from the Python plugin as a PBKDF2 hash (600000 iterations): each authentication with it, right secret or wrong, costs a PBKDF2 run until the relying party\'s first success',
          'aa-oidc app rotate-secret imported-600000 and give the relying party the new secret, or let the relying party sign in once (its first success replaces the hash); see docs/migrating-from-the-plugin.md',
        ],
        [
          'W009',
          'warning',
          'application "Forum" (costly) holds a client secret imported from the Python plugin as a PBKDF2 hash of 2000001 iterations, more than the 2000000 aa-oidc checks: it authenticates nobody',
          'aa-oidc app rotate-secret costly and give the relying party the new secret',
        ],
      ],
    );
    const unreadable = runChecks(config(), [imported(600_000, { clientSecretPbkdf2: 'pbkdf2_sha256$x' })]);
    assert.match(unreadable[0]!.message, /as a hash aa-oidc cannot read: it authenticates nobody$/);
    const text = JSON.stringify([...findings, ...unreadable]);
    assert.equal(text.includes('c2FsdHNhbHQ'), false, 'never the salt');
    assert.equal(text.includes(Buffer.alloc(32, 7).toString('base64')), false, 'never the digest');
    assert.equal(text.includes('pbkdf2_sha256$'), false, 'never the stored value');
  });

  it('W013 names each stored redirect URI with a * in its host, and how to replace it', () => {
    const findings = runChecks(config(), [starred({ postLogoutRedirectUris: ['https://wiki.*/'] })]);
    assert.deepEqual(
      findings.map((finding) => [finding.id, finding.level, finding.message, finding.hint]),
      [
        [
          'W013',
          'warning',
          'application rp-star has the redirect URI "https://*.example.org/cb", with a * in its host (stored before such URIs were refused): it matches exactly, that string only, never a host under it',
          "aa-oidc app update rp-star --remove-redirect-uri 'https://*.example.org/cb' --add-redirect-uri https://… for each host's URI it was meant for",
        ],
        [
          'W013',
          'warning',
          'application rp-star has the post-logout redirect URI "https://wiki.*/", with a * in its host (stored before such URIs were refused): it matches exactly, that string only, never a host under it',
          "aa-oidc app update rp-star --remove-post-logout-redirect-uri 'https://wiki.*/' --add-post-logout-redirect-uri https://… for each host's URI it was meant for",
        ],
      ],
    );
  });

  it('W022 names each stored URI a write would refuse now, its field, the character or fault, and how to replace it', () => {
    const findings = runChecks(config(), [
      {
        ...plain,
        redirectUris: [
          'https://rp.example.org/cb',
          'https://rp.example.org/cb\u202e',
          "https://rp.example.org/it's\u200c",
        ],
        postLogoutRedirectUris: ['https://xn--/'],
        logoUrl: 'https://rp.example.org/logo%zz.png',
        backchannelLogoutUri: 'https://rp\u200d.example.org/bcl',
      },
    ]);
    assert.deepEqual(
      findings.map((finding) => [finding.id, finding.level, finding.message, finding.hint]),
      [
        [
          'W022',
          'warning',
          'application rp-plain has the redirect URI "https://rp.example.org/cb\\u202e" (stored before such URIs were refused), which contains U+202E, a bidirectional control character, which does not show: the URI would read as something other than it is (remove it; where one belongs in the path or the query, write it percent-encoded, %E2%80%AE)',
          "aa-oidc app update rp-plain --remove-redirect-uri $'https://rp.example.org/cb\\xe2\\x80\\xae' --add-redirect-uri https://… with the URI as it should read (or on the application's page of the admin console; $'…' is the quoting of bash and zsh)",
        ],
        [
          'W022',
          'warning',
          'application rp-plain has the redirect URI "https://rp.example.org/it\'s\\u200c" (stored before such URIs were refused), which contains U+200C, a zero-width non-joiner, which does not show: the URI would read as something other than it is (remove it; where one belongs in the path or the query, write it percent-encoded, %E2%80%8C)',
          "aa-oidc app update rp-plain --remove-redirect-uri $'https://rp.example.org/it\\'s\\xe2\\x80\\x8c' --add-redirect-uri https://… with the URI as it should read (or on the application's page of the admin console; $'…' is the quoting of bash and zsh)",
        ],
        [
          'W022',
          'warning',
          'application rp-plain has the post-logout redirect URI "https://xn--/" (stored before such URIs were refused), which has the host label "xn--", which is no valid punycode: a label starting with xn-- must be the ASCII form of an international name (xn--bcher-kva is bücher); write the name as it reads, or the punycode an IDNA converter gives for it',
          "aa-oidc app update rp-plain --remove-post-logout-redirect-uri 'https://xn--/' --add-post-logout-redirect-uri https://… with the URI as it should read (or on the application's page of the admin console)",
        ],
        [
          'W022',
          'warning',
          'application rp-plain has the logo URL "https://rp.example.org/logo%zz.png" (stored before such URIs were refused), which has an invalid percent-escape "%zz": a % must be followed by two hexadecimal digits (write a % itself as %25)',
          "aa-oidc app update rp-plain --logo-url https://… with the URI as it should read (or on the application's page of the admin console)",
        ],
        [
          'W022',
          'warning',
          'application rp-plain has the back-channel logout URI "https://rp\\u200d.example.org/bcl" (stored before such URIs were refused), which contains U+200D, a zero-width joiner, which does not show: the URI would read as something other than it is (remove it; where one belongs in the path or the query, write it percent-encoded, %E2%80%8D)',
          "aa-oidc app update rp-plain --backchannel-logout-uri https://… with the URI as it should read (or on the application's page of the admin console)",
        ],
      ],
    );
  });

  it('finds nothing on the defaults, and each finding has id, level, message and hint', () => {
    assert.deepEqual(runChecks(config(), [https, plain]), []);
    for (const finding of runChecks(config({ mode: 'production', scopes: ['x'], maskedSecrets: true }), [
      http,
    ])) {
      assert.equal(finding.level, finding.id.startsWith('E') ? 'error' : 'warning');
      assert.ok(finding.message.length > 0 && !finding.message.includes('\n'));
      assert.ok(finding.hint.length > 0);
    }
  });
});

const SECRET = 'a-test-secret-key-that-is-long-enough-0123456789';

describe(`aa-oidc check and serve (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let production: NodeJS.ProcessEnv;
  let internal: string;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    // A development instance registers an app with a loopback back-channel URI (private targets
    // allowed there); the same database is then judged in production mode.
    const services = await createServices(
      testConfig(database, { secretKey: SECRET, logout: { allowPrivateTargets: true } }),
      { migrate: true },
    );
    try {
      await services.applications.create(
        {
          name: 'Internal RP',
          redirectUris: ['https://rp.example.org/cb'],
          backchannelLogoutUri: 'http://127.0.0.1:9/bcl',
        },
        'test',
      );
      internal = (
        await services.applications.create(
          {
            name: 'Internal RP over TLS',
            clientId: 'internal-tls',
            redirectUris: ['https://rp.example.org/cb'],
            // Port 9 (discard): nothing listens, and the gate must refuse before any connection.
            backchannelLogoutUri: 'https://127.0.0.1:9/bcl',
          },
          'test',
        )
      ).application.clientId;
    } finally {
      await services.close();
    }
    production = testEnv(database, {
      NODE_ENV: 'production',
      AA_OIDC_ISSUER: 'https://auth.example.org/o',
      AA_OIDC_SECRET_KEY: SECRET,
      AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true',
      AA_OIDC_TRUST_PROXY: 'true',
      AA_OIDC_PORT: '0',
    });
  });
  after(async () => database.drop());

  it('reports E006 for private targets allowed in production with a back-channel URI, exiting non-zero', async () => {
    const text = await cli(['check'], production);
    assert.notEqual(text.code, 0);
    assert.match(text.stdout, /^E006 error: /m);
    assert.match(text.stdout, /^W004 warning: /m);
    assert.match(text.stderr, /system check found 1 error\(s\): E006/);
    const json = await cli(['check', '--format', 'json'], production);
    assert.notEqual(json.code, 0);
    const findings = JSON.parse(json.stdout) as Array<{
      id: string;
      level: string;
      message: string;
      hint: string;
    }>;
    assert.deepEqual(findings.map((finding) => finding.id).sort(), ['E006', 'W004']);
    assert.ok(findings.every((finding) => finding.message && finding.hint && finding.level));
  });

  it('passes once allowPrivateTargetsInProduction acknowledges it (warnings only, exit 0)', async () => {
    const result = await cli(['check', '--format', 'json'], {
      ...production,
      AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION: 'true',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      (JSON.parse(result.stdout) as Array<{ id: string }>).map((finding) => finding.id),
      ['W004'],
    );
  });

  it('warns (W010) about a config file holding secrets that every user of the host can read, never quoting them', async () => {
    const file = path.join(database.dataDir, 'config.yaml');
    writeFileSync(file, `secretKey: ${SECRET}\n`);
    const { AA_OIDC_SECRET_KEY: _fromEnvironment, ...withoutSecret } = production;
    const env = {
      ...withoutSecret,
      AA_OIDC_CONFIG: file,
      AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION: 'true',
    };
    chmodSync(file, 0o644);
    const readable = await cli(['check'], env);
    assert.equal(readable.code, 0, readable.stderr);
    assert.match(
      readable.stdout,
      /^W010 warning: the config file .*config\.yaml \(mode 0644\) holds secrets \(secretKey\) and every user of this host can read it\n {2}hint: chmod o-rwx /m,
    );
    assert.ok(!readable.stdout.includes(SECRET));
    chmodSync(file, 0o640);
    assert.doesNotMatch((await cli(['check'], env)).stdout, /W010/);
  });

  it('reports E007, naming AA_OIDC_TRUST_PROXY, when production does not trust its reverse proxy; serve refuses to start', async () => {
    const withoutProxy = {
      ...production,
      AA_OIDC_TRUST_PROXY: 'false',
      AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION: 'true',
    };
    const checked = await cli(['check'], withoutProxy);
    assert.notEqual(checked.code, 0);
    assert.match(checked.stdout, /^E007 error: .*AA_OIDC_TRUST_PROXY/m);
    assert.match(checked.stderr, /system check found 1 error\(s\): E007/);
    const served = await cli(['serve'], withoutProxy);
    assert.notEqual(served.code, 0);
    assert.match(served.stderr, /E007 error: /);
    assert.match(served.stderr, /refusing to start/);
  });

  it('app create and app update refuse a private back-channel target in production unless allowPrivateTargetsInProduction (E006)', async () => {
    const create = (env: NodeJS.ProcessEnv, clientId: string) =>
      cli(
        [
          'app',
          'create',
          '--name',
          'Another internal RP',
          '--client-id',
          clientId,
          '--redirect-uri',
          'https://rp.example.org/cb',
          '--backchannel-logout-uri',
          'https://10.1.2.3/bcl',
        ],
        env,
      );
    const refused = await create(production, 'refused-internal');
    assert.notEqual(refused.code, 0, refused.stdout);
    assert.match(refused.stderr, /is refused by the SSRF gate \(unsafe_target_ip\)/);
    assert.match(refused.stderr, /AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION=true \(check E006\)/);
    const updated = await cli(
      ['app', 'update', internal, '--backchannel-logout-uri', 'https://192.168.1.1/bcl'],
      production,
    );
    assert.notEqual(updated.code, 0, updated.stdout);
    assert.match(updated.stderr, /is refused by the SSRF gate \(unsafe_target_ip\)/);
    const acknowledged = await create(
      { ...production, AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS_IN_PRODUCTION: 'true' },
      'acknowledged-internal',
    );
    assert.equal(acknowledged.code, 0, acknowledged.stderr);
    const removed = await cli(['app', 'deactivate', 'acknowledged-internal'], production);
    assert.equal(removed.code, 0, removed.stderr);
  });

  it('aa-oidc worker refuses to start on E006, printing the finding', async () => {
    const worker = startCli(['worker'], production);
    // Should it start after all, it is stopped, so that the assertions fail instead of waiting.
    void worker.waitFor(/logout worker \(/).then(worker.stop, () => undefined);
    const code = await worker.exited;
    assert.notEqual(code, 0);
    assert.match(worker.stderr(), /E006 error: /);
    assert.match(worker.stderr(), /refusing to start/);
  });

  it('aa-oidc bcl test does not connect to a private target in production (unsafe_target_ip)', async () => {
    const result = await cli(['bcl', 'test', internal, '--format', 'json'], production);
    assert.notEqual(result.code, 0);
    const [row] = JSON.parse(result.stdout) as Array<{ outcome: string; http_status: number | null }>;
    assert.equal(row!.outcome, 'unsafe_target_ip');
    assert.equal(row!.http_status, null);
  });

  it('serve refuses to start on an error, printing the findings', async () => {
    const serve = startCli(['serve'], production);
    // Should it start after all, it is stopped, so that the assertions fail instead of waiting.
    void serve.waitFor(/ server on /).then(serve.stop, () => undefined);
    const result = { code: await serve.exited, stdout: serve.stdout(), stderr: serve.stderr() };
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /E006 error: /);
    assert.match(result.stderr, /refusing to start/);
  });
});

describe(`aa-oidc check: signing keys import would refuse (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('warns (W008) about an active key imported before the bounds, until a rotation replaces it', async () => {
    // As `keys import` stored keys before it had bounds: exponent 3 (a real key, so that it loads and signs).
    const config = testConfig(database);
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
    const privateJwk = privateKey.export({ format: 'jwk' }) as JWK;
    const publicJwk = publicPart(privateJwk);
    const kid = await thumbprintOf(publicJwk);
    const handle = openDatabase(config.database);
    try {
      await handle.db.transaction().execute((trx) =>
        insertKeyRow(
          trx,
          {
            kid,
            publicJwk,
            privateJwkEncrypted: encryptPrivateJwk(privateJwk, kid, deriveKeyEncryptionKey(config.secretKey)),
          },
          'active',
          Date.now(),
          null,
        ),
      );
    } finally {
      await handle.close();
    }
    const env = testEnv(database);
    const checked = await cli(['check'], env);
    assert.equal(checked.code, 0, 'a warning: the key still signs verifiably');
    assert.match(
      checked.stdout,
      new RegExp(`^W008 warning: the active signing key ${kid} has public exponent 3, not 65537: `, 'm'),
    );
    assert.match(checked.stdout, /^ {2}hint: aa-oidc keys rotate, once the next key has been published /m);

    assert.equal((await cli(['keys', 'prepare-next'], env)).code, 0);
    const rotated = await cli(['keys', 'rotate', '--force'], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const after = await cli(['check', '--format', 'json'], env);
    assert.deepEqual(JSON.parse(after.stdout), [], 'the retired key only verifies');
  });
});

describe(`aa-oidc check: no active signing key (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('warns (W011) without an active signing key, naming the next key and the command that activates it', async () => {
    const env = testEnv(database);
    const none = await cli(['check'], env);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /^W011 warning: there is no active signing key \(nor a next key\): /m);
    assert.match(none.stdout, /^ {2}hint: aa-oidc keys rotate creates an active key/m);

    const prepared = await cli(['keys', 'prepare-next'], env);
    assert.equal(prepared.code, 0, prepared.stderr);
    const nextKid = /^next: (\S+)/m.exec(prepared.stdout)?.[1];
    assert.ok(nextKid, prepared.stdout);
    const onlyNext = await cli(['check'], env);
    assert.equal(onlyNext.code, 0, onlyNext.stderr);
    assert.match(
      onlyNext.stdout,
      new RegExp(`^W011 warning: there is no active signing key, only the next key ${nextKid}: `, 'm'),
    );
    assert.match(
      onlyNext.stdout,
      new RegExp(`^ {2}hint: aa-oidc keys rotate activates the next key ${nextKid} now`, 'm'),
    );

    const rotated = await cli(['keys', 'rotate'], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.deepEqual(JSON.parse((await cli(['check', '--format', 'json'], env)).stdout), []);
  });
});

describe('aa-oidc check: places serve writes that the user may not write (W012)', () => {
  // Judged as the user running the check: as root, which file modes do not stop, it runs as nobody.
  const unreachable = asRoot ? whyNobodyCannotRun() : undefined;
  let folder: string;
  before(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-w012-'));
    chmodSync(folder, 0o755);
  });
  after(() => rmSync(folder, { recursive: true, force: true }));

  /** A migrated SQLite file anyone may write, in a folder anyone may write, and a data directory. */
  async function setUp(name: string) {
    const databaseFolder = path.join(folder, `${name}-db`);
    mkdirSync(databaseFolder);
    chmodSync(databaseFolder, 0o777);
    const file = path.join(databaseFolder, 'aa-oidc.sqlite');
    const dataDir = path.join(folder, `${name}-data`);
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o777);
    const env = await migratedSqliteEnv(file, dataDir);
    chmodSync(file, 0o666);
    return { databaseFolder, file, dataDir, env };
  }
  /** A mode this user (nobody, as root) may read but not write: root's 0755, else 0555. */
  const readOnly = asRoot ? 0o755 : 0o555;
  const check = (env: NodeJS.ProcessEnv) =>
    runToEnd(process.execPath, unprivilegedCommand(['check', '--format', 'json']), { env });
  const w012 = (stdout: string) =>
    (JSON.parse(stdout) as Array<{ id: string; message: string; hint: string }>).filter(
      (finding) => finding.id === 'W012',
    );

  it(
    'warns while no superuser exists and the data directory cannot take the bootstrap password file',
    { skip: unreachable },
    async () => {
      const { dataDir, env } = await setUp('bootstrap');
      assert.deepEqual(w012((await check(env)).stdout), [], 'a writable data directory: no warning');

      chmodSync(dataDir, readOnly);
      const locked = await check(env);
      assert.equal(locked.code, 0, locked.stderr);
      const user = asRoot ? 'nobody' : userInfo().username;
      assert.deepEqual(w012(locked.stdout), [
        {
          id: 'W012',
          level: 'warning',
          message: `no superuser exists, and serve cannot write the bootstrap superuser's one-time password to the data directory ${dataDir} (AA_OIDC_DATA_DIR): this user (${user}) may not create files there; its start would stop`,
          hint: `run aa-oidc check as the user serve runs as; give that user write access to ${dataDir} (chown it to that user, or chmod u+w), or create a superuser first: aa-oidc user create NAME --superuser`,
        },
      ]);
      const text = await runToEnd(process.execPath, unprivilegedCommand(['check']), { env });
      assert.match(text.stdout, /^W012 warning: no superuser exists, and serve cannot write /m);

      // A missing data directory is made in the folder above it: judged there.
      const missing = path.join(dataDir, 'below');
      const below = w012((await check({ ...env, AA_OIDC_DATA_DIR: missing })).stdout);
      assert.equal(below.length, 1);
      assert.ok(
        below[0]!.message.includes(`${missing} (AA_OIDC_DATA_DIR), which it would create in ${dataDir}: `),
      );

      // Once a superuser exists, serve writes nothing there.
      const created = await cli(['user', 'create', 'boss', '--superuser', '--password-stdin'], env, {
        stdin: 'a long enough password\n',
      });
      assert.equal(created.code, 0, created.stderr);
      assert.deepEqual(w012((await check(env)).stdout), []);
    },
  );

  it('warns when the SQLite file or its folder cannot be written', { skip: unreachable }, async () => {
    const { databaseFolder, file, env } = await setUp('database');
    chmodSync(file, asRoot ? 0o644 : 0o444);
    const user = asRoot ? 'nobody' : userInfo().username;
    const readOnlyFile = await check(env);
    assert.equal(readOnlyFile.code, 0, readOnlyFile.stderr);
    assert.deepEqual(
      w012(readOnlyFile.stdout).map((finding) => finding.message),
      [
        `serve cannot write the SQLite file ${file} and would refuse to start: this user (${user}) may not write it; give this user write access to the file and to its folder (SQLite also writes -wal and -shm files beside it)`,
      ],
    );

    chmodSync(file, 0o666);
    chmodSync(databaseFolder, readOnly);
    const readOnlyFolder = await check(env);
    assert.equal(readOnlyFolder.code, 0, readOnlyFolder.stderr);
    assert.deepEqual(
      w012(readOnlyFolder.stdout).map((finding) => finding.message),
      [
        `serve cannot create the -wal and -shm files of the SQLite file ${file} in its folder ${databaseFolder}: this user (${user}) may not create files there`,
      ],
    );
  });
});

const postgres = await reachablePostgres();

describe(
  'aa-oidc check: a PostgreSQL role that may not write (W012)',
  { skip: 'missing' in postgres ? postgres.missing : false },
  () => {
    // A role of the test's own, dropped afterwards: the shared roles and databases are never altered.
    const role = `aa_oidc_t_role_${randomBytes(6).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    let database: TestDatabase;
    let env: NodeJS.ProcessEnv;
    /** A query as the database's owner (the run's PostgreSQL user). */
    let asOwner: (text: string) => Promise<void>;
    let owner: pg.Client;
    before(async () => {
      database = await createTestDatabase({ migrated: true, postgresUrl: (postgres as { url: string }).url });
      // pg-boss's schema too, as `aa-oidc migrate` makes it.
      const migrated = await cli(['migrate'], testEnv(database));
      assert.equal(migrated.code, 0, migrated.stderr);
      owner = new pg.Client({ connectionString: database.url });
      await owner.connect();
      asOwner = async (text) => void (await owner.query(text));
      await asOwner(`create role ${role} login password '${password}'`);
      await asOwner(`grant select on all tables in schema public to ${role}`);
      const url = new URL(database.url);
      url.username = role;
      url.password = password;
      env = { ...testEnv(database), AA_OIDC_DATABASE_URL: url.toString() };
    });
    after(async () => {
      await owner?.end();
      await database?.drop();
      const admin = new pg.Client({ connectionString: (postgres as { url: string }).url });
      await admin.connect();
      try {
        await admin.query(`drop role if exists ${role}`);
      } finally {
        await admin.end();
      }
    });
    const w012 = async () => {
      const checked = await cli(['check', '--format', 'json'], env);
      assert.equal(checked.code, 0, checked.stderr);
      return (JSON.parse(checked.stdout) as Array<{ id: string; message: string; hint: string }>).filter(
        (finding) => finding.id === 'W012',
      );
    };
    const grantAll = async () => {
      for (const schema of ['public', 'pgboss']) {
        await asOwner(`grant usage on schema ${schema} to ${role}`);
        await asOwner(`grant select, insert, update, delete on all tables in schema ${schema} to ${role}`);
      }
    };
    /** aa-oidc's tables (all but the migrator's) and pg-boss's job table. */
    const writtenTableCount = async () =>
      Number(
        (
          await owner.query<{ count: string }>(
            `select count(*) from pg_tables where schemaname = 'public' and tablename not like 'schema_migration%'`,
          )
        ).rows[0]!.count,
      ) + 1;
    const where = () =>
      `PostgreSQL at ${new URL(database.url).host} (database ${new URL(database.url).pathname.slice(1)})`;

    it('warns about tables it may not write, naming what it lacks and the grant', async () => {
      const selectOnly = await w012();
      assert.equal(selectOnly.length, 1, JSON.stringify(selectOnly));
      const [count, shown] = selectOnly[0]!.message.split(' table(s) serve writes in ');
      assert.equal(count, `the role ${role} may not write ${await writtenTableCount()}`);
      assert.ok(
        shown!.startsWith(
          `${where()}: public.aa_catalog_name (INSERT, UPDATE, DELETE), public.aa_poll_lease (INSERT, UPDATE, DELETE), `,
        ),
        shown,
      );
      assert.ok(
        selectOnly[0]!.message.endsWith(
          ", …; serve's writes there fail (permission denied), at its start or later",
        ),
      );

      await asOwner(`grant insert, update, delete on all tables in schema public to ${role}`);
      await asOwner(`revoke delete on audit_event from ${role}`);
      assert.deepEqual(await w012(), [
        {
          id: 'W012',
          level: 'warning',
          message: `the role ${role} may not write 2 table(s) serve writes in ${where()}: public.audit_event (DELETE), pgboss.job (USAGE on its schema, INSERT, UPDATE, DELETE); serve's writes there fail (permission denied), at its start or later`,
          hint: `as the owner of the tables: GRANT USAGE ON SCHEMA public TO ${role}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}; GRANT USAGE ON SCHEMA pgboss TO ${role}; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgboss TO ${role}; (aa-oidc check judges for the role it connects as: run it with serve's AA_OIDC_DATABASE_URL)`,
        },
      ]);

      await grantAll();
      assert.deepEqual(await w012(), [], 'a role that may write every table');
    });

    it('warns when the server takes no writes for this role (default_transaction_read_only)', async () => {
      await grantAll();
      await asOwner(`alter role ${role} set default_transaction_read_only = on`);
      try {
        assert.deepEqual(await w012(), [
          {
            id: 'W012',
            level: 'warning',
            message: `serve cannot write ${where()} and would refuse to start: the server takes no writes (a hot standby, or default_transaction_read_only is on for this database or user); point AA_OIDC_DATABASE_URL at the primary, or turn the setting off`,
            hint: "aa-oidc check judges for the role it connects as: run it with serve's AA_OIDC_DATABASE_URL",
          },
        ]);
      } finally {
        await asOwner(`alter role ${role} reset default_transaction_read_only`);
      }
      assert.deepEqual(await w012(), []);
    });
  },
);

/** Names of the built-in directory (states, groups) and whether W014 must fire on them. */
const SPACED_NAMES: { fires: DirectoryNames[]; silent: DirectoryNames[] } = {
  fires: [
    { states: ['Member', 'Bob  Smith'], groups: [] },
    { states: [], groups: ['Home   Guard'] },
    // Spaces of any width, as new names refuse them.
    { states: [], groups: ['Home\u3000 Guard'] },
    { states: ['Blue\u00a0 Team'], groups: ['Fleet Command'] },
  ],
  silent: [
    { states: ['Member', 'Bob Smith', 'Blue\u00a0Team'], groups: ['Home Guard', 'Fleet\u2003Command'] },
    { states: [], groups: [] },
  ],
};

describe('system check W014: a built-in state or group name with spaces in a row', () => {
  it('fires on stored names with spaces in a row and stays silent otherwise', () => {
    for (const names of SPACED_NAMES.fires)
      assert.ok(
        spacedNameChecks('builtin', names).some((finding) => finding.id === 'W014'),
        `W014 should fire for ${JSON.stringify(names)}`,
      );
    for (const names of SPACED_NAMES.silent)
      assert.deepEqual(
        spacedNameChecks('builtin', names),
        [],
        `W014 should stay silent for ${JSON.stringify(names)}`,
      );
  });

  it("stays silent on Alliance Auth's names, which are Alliance Auth's to rename", () => {
    for (const names of SPACED_NAMES.fires) assert.deepEqual(spacedNameChecks('alliance-auth', names), []);
  });

  it('names each such state and group, what it shows as, and the rename, unless that name is taken', () => {
    const findings = spacedNameChecks('builtin', {
      states: ['Bob  Smith', 'Bob Smith', 'Old  Guard'],
      groups: ['Home   Guard'],
    });
    assert.deepEqual(
      findings.map((finding) => [finding.id, finding.level, finding.message, finding.hint]),
      [
        [
          'W014',
          'warning',
          'the state "Bob  Smith" has spaces in a row (stored before new names refused them): a web page shows it as "Bob Smith", the name of another state, which a whitelist or a lookup typed with one space misses',
          "give it a name of its own: aa-oidc state rename 'Bob  Smith' NEW-NAME (application whitelists follow)",
        ],
        [
          'W014',
          'warning',
          'the state "Old  Guard" has spaces in a row (stored before new names refused them): a web page shows it as "Old Guard", yet that is another name, which a whitelist or a lookup typed with one space misses',
          "aa-oidc state rename 'Old  Guard' 'Old Guard' (application whitelists follow)",
        ],
        [
          'W014',
          'warning',
          'the group "Home   Guard" has spaces in a row (stored before new names refused them): a web page shows it as "Home Guard", yet that is another name, which a whitelist or a lookup typed with one space misses',
          "aa-oidc group rename 'Home   Guard' 'Home Guard' (application whitelists follow)",
        ],
      ],
    );
  });
});

describe(`aa-oidc check: built-in names with spaces in a row (W014, ${testDatabaseKind})`, () => {
  let database: TestDatabase;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    const services = await createServices(testConfig(database, { secretKey: SECRET }), { migrate: true });
    try {
      // As an older aa-oidc stored them: new names refuse spaces in a row.
      await services.database.db
        .insertInto('state')
        .values({
          name: 'Bob  Smith',
          name_key: nameKey('Bob  Smith'),
          priority: 10,
          oidc_access: 1,
          created_at: Date.now(),
        })
        .execute();
      await services.database.db
        .insertInto('auth_group')
        .values({
          name: 'Home   Guard',
          name_key: nameKey('Home   Guard'),
          oidc_access: 0,
          created_at: Date.now(),
        })
        .execute();
    } finally {
      await services.close();
    }
  });
  after(async () => database.drop());

  it("warns about each, exiting 0, and is silent once the hint's rename is done", async () => {
    const env = testEnv(database, { AA_OIDC_SECRET_KEY: SECRET });
    const checked = await cli(['check'], env);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(
      checked.stdout,
      /^W014 warning: the state "Bob {2}Smith" has spaces in a row .*\n {2}hint: aa-oidc state rename 'Bob {2}Smith' 'Bob Smith' \(application whitelists follow\)$/m,
    );
    assert.match(
      checked.stdout,
      /^W014 warning: the group "Home {3}Guard" has spaces in a row .*\n {2}hint: aa-oidc group rename 'Home {3}Guard' 'Home Guard' /m,
    );
    for (const [kind, name, single] of [
      ['state', 'Bob  Smith', 'Bob Smith'],
      ['group', 'Home   Guard', 'Home Guard'],
    ] as const) {
      const renamed = await cli([kind, 'rename', name, single], env);
      assert.equal(renamed.code, 0, renamed.stderr);
    }
    const again = await cli(['check'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /W014/);
  });
});

/** Names (states, groups) whose characters new names refuse, and what W015 names in each. */
const UNFIT_NAMES: ReadonlyArray<[name: string, named: string]> = [
  ['Admins\u202e', 'U+202E, a bidirectional control character, at character 7'],
  ['\u2066Fleet', 'U+2066, a bidirectional control character, at character 1'],
  ['Blue\u200eTeam', 'U+200E, a bidirectional control character, at character 5'],
  ['Di\u200brectors', 'U+200B, an invisible character, at character 3'],
  ['Word\u2060Joiner', 'U+2060, an invisible character, at character 5'],
  ['\ufeffMember', 'U+FEFF, an invisible character, at character 1'],
  ['Soft\u00adHyphen', 'U+00AD, an invisible character, at character 5'],
  ['Tab\tbed', 'U+0009, a control character, at character 4'],
  ['CSI\u009b', 'U+009B, a control character, at character 4'],
  ['Line\u2028Break', 'U+2028, a line separator, at character 5'],
  // Counted in characters (code points), as name lengths are: the flag is seven of them.
  [
    '\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f} Scots\u{1d173}',
    'U+1D173, an invisible character, at character 14',
  ],
];

describe('system check W015: a name with a character new names refuse', () => {
  it('fires on each such built-in state and group name, naming the character and its position', () => {
    for (const [name, named] of UNFIT_NAMES) {
      for (const names of [
        { states: [name], groups: [] },
        { states: [], groups: [name] },
      ]) {
        const findings = unfitCharacterNameChecks('builtin', names, []);
        assert.equal(findings.length, 1, JSON.stringify(names));
        assert.equal(findings[0]!.id, 'W015');
        assert.ok(findings[0]!.message.includes(` contains ${named} (`), findings[0]!.message);
      }
    }
  });

  it('stays silent on names new names take: joiners of emoji and scripts, variation selectors, flags, wide spaces', () => {
    const names = {
      states: ['Member', 'Blue Team', '👩\u200d🚀 Astronauts', 'Heart\u2764\ufe0f'],
      groups: [
        '\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f} Scots',
        '東京\u3000支部',
        'क्\u200dष',
      ],
    };
    assert.deepEqual(unfitCharacterNameChecks('builtin', names, []), []);
  });

  it("stays silent on Alliance Auth's names, which are Alliance Auth's to rename, but judges the applications", () => {
    const findings = unfitCharacterNameChecks(
      'alliance-auth',
      { states: ['Admins\u202e'], groups: ['Di\u200brectors'] },
      [{ clientId: 'wiki', name: 'Wiki\u202e', active: true }],
    );
    assert.deepEqual(
      findings.map((finding) => finding.id),
      ['W015'],
    );
    assert.match(findings[0]!.message, /^application wiki /);
  });

  it('shows the name escaped, and gives a rename a shell reads back as the stored name, to the name without those characters', () => {
    const findings = unfitCharacterNameChecks(
      'builtin',
      {
        states: ['Member', "Bob's\u202e \\ Team"],
        groups: ['Admins', 'Admins\u200b', 'Pi\u200blots\u2066\u{e0001}!', '\u200b'],
      },
      [
        { clientId: 'wiki', name: 'Wiki\u202eikiW', active: true },
        { clientId: 'old-wiki', name: 'Old\u202e wiki', active: false },
      ],
    );
    assert.deepEqual(
      findings.map((finding) => [finding.id, finding.level, finding.message, finding.hint]),
      [
        [
          'W015',
          'warning',
          'the state "Bob\'s\\u202e \\\\ Team" contains U+202E, a bidirectional control character, at character 6 (stored before new names refused them): where it is shown as it is, as a relying party may show the groups claim, it can read as another name',
          "aa-oidc state rename $'Bob\\'s\\xe2\\x80\\xae \\\\ Team' 'Bob'\\''s \\ Team' (application whitelists follow; $'…' is the quoting of bash and zsh)",
        ],
        [
          'W015',
          'warning',
          'the group "Admins\\u200b" contains U+200B, an invisible character, at character 7 (stored before new names refused them): where it is shown as it is, as a relying party may show the groups claim, it can read as another name',
          // Without it, it is another group's name: one of its own.
          "aa-oidc group rename $'Admins\\xe2\\x80\\x8b' NEW-NAME (application whitelists follow; $'…' is the quoting of bash and zsh)",
        ],
        [
          'W015',
          'warning',
          'the group "Pi\\u200blots\\u2066\\udb40\\udc01!" contains U+200B, an invisible character, at character 3; U+2066, a bidirectional control character, at character 8 and U+E0001, an invisible character, at character 9 (stored before new names refused them): where it is shown as it is, as a relying party may show the groups claim, it can read as another name',
          "aa-oidc group rename $'Pi\\xe2\\x80\\x8blots\\xe2\\x81\\xa6\\xf3\\xa0\\x80\\x81!' 'Pilots!' (application whitelists follow; $'…' is the quoting of bash and zsh)",
        ],
        [
          'W015',
          'warning',
          'the group "\\u200b" contains U+200B, an invisible character, at character 1 (stored before new names refused them): where it is shown as it is, as a relying party may show the groups claim, it can read as another name',
          "aa-oidc group rename $'\\xe2\\x80\\x8b' NEW-NAME (application whitelists follow; $'…' is the quoting of bash and zsh)",
        ],
        [
          'W015',
          'warning',
          'application wiki is named "Wiki\\u202eikiW", which contains U+202E, a bidirectional control character, at character 5 (stored before new names refused them): where it is shown as it is, it can read as another name',
          "aa-oidc app update wiki --name 'WikiikiW'",
        ],
      ],
    );
  });

  it('names three of many such characters, and counts the rest', () => {
    const [finding] = unfitCharacterNameChecks(
      'builtin',
      { states: [], groups: ['a\u200bb\u200bc\u200bd\u200be\u200b'] },
      [],
    );
    assert.match(
      finding!.message,
      / contains U\+200B, an invisible character, at character 2; U\+200B, an invisible character, at character 4; U\+200B, an invisible character, at character 6 and 2 more \(/,
    );
  });

  it("gives a rename whose $'…' word bash reads back as the stored name in any locale", (t) => {
    const name = "Bob's\u202e \\ \u{1d173}Team\u0085";
    const [finding] = unfitCharacterNameChecks('builtin', { states: [], groups: [name] }, []);
    const word = /^aa-oidc group rename (\$'.*?(?<!\\)') /.exec(finding!.hint)?.[1];
    assert.ok(word, finding!.hint);
    const echoed = spawnSync('bash', ['-c', `printf %s ${word}`], {
      env: { LC_ALL: 'C', PATH: process.env.PATH },
    });
    if (echoed.error) return t.skip('no bash here');
    assert.equal(echoed.stdout.toString('utf8'), name);
  });
});

describe('a hint that names a stored name or URI in a command', () => {
  // A name stored by an older aa-oidc, or by anyone with the database: pasted, the hint must act on
  // it, not run what it holds. Double quotes would expand `$(…)`, a backtick and `$HOME`.
  const hostile = "Bob  $(touch dollar) `touch backtick` O'Neil's $HOME";
  const spaced = "Bob $(touch dollar) `touch backtick` O'Neil's $HOME";

  /**
   * Runs `command` with `aa-oidc` as a bash function that prints its arguments, in an empty folder
   * and the C locale; returns the arguments and what the folder holds afterwards.
   */
  const pasted = (t: { skip(message: string): void }, command: string) => {
    const folder = mkdtempSync(path.join(tmpdir(), 'aa-oidc-hint-'));
    try {
      const run = spawnSync('bash', ['-c', `aa-oidc() { printf '%s\\0' "$@"; }\n${command}`], {
        cwd: folder,
        env: { LC_ALL: 'C', PATH: process.env.PATH, HOME: '/home/expanded' },
      });
      if (run.error) {
        t.skip('no bash here');
        return undefined;
      }
      assert.equal(run.status, 0, run.stderr.toString());
      return { args: run.stdout.toString('utf8').split('\0').slice(0, -1), files: readdirSync(folder) };
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  };

  it('W014: the rename bash reads back as the stored name and its single-spaced spelling, running nothing', (t) => {
    const [finding] = spacedNameChecks('builtin', { states: [], groups: [hostile] });
    const command = / \(application whitelists follow\)$/.exec(finding!.hint);
    assert.ok(command, finding!.hint);
    const run = pasted(t, finding!.hint.slice(0, command.index));
    if (!run) return;
    assert.deepEqual(run, { args: ['group', 'rename', hostile, spaced], files: [] });
  });

  it("W014: with a character new names refuse as well, in $'…' with it as \\x escapes", (t) => {
    const name = `${hostile}\u202e`;
    const [finding] = spacedNameChecks('builtin', { states: [name], groups: [] });
    assert.match(
      finding!.hint,
      /\\xe2\\x80\\xae' .* \(application whitelists follow; \$'…' is the quoting of bash and zsh\)$/,
    );
    assert.equal(finding!.hint.includes('\u202e'), false, 'the character itself is not shown');
    const run = pasted(t, finding!.hint.slice(0, finding!.hint.indexOf(' (application whitelists follow;')));
    if (!run) return;
    assert.deepEqual(run, { args: ['state', 'rename', name, `${spaced}\u202e`], files: [] });
  });

  it('W006: the --remove-group bash reads back as the whitelisted name, running nothing', (t) => {
    const [finding] = whitelistChecks([{ clientId: 'wiki', active: true, states: [], groups: [hostile] }], {
      states: [],
      groups: [],
    });
    const run = pasted(t, finding!.hint.slice(0, finding!.hint.indexOf(' (or restore the group')));
    if (!run) return;
    assert.deepEqual(run, { args: ['app', 'update', 'wiki', '--remove-group', hostile], files: [] });
  });

  it('W015: the --name of an application bash reads back as the name without the refused character', (t) => {
    const [finding] = unfitCharacterNameChecks('builtin', { states: [], groups: [] }, [
      { clientId: 'wiki', name: `${hostile}\u200b`, active: true },
    ]);
    const run = pasted(t, finding!.hint);
    if (!run) return;
    assert.deepEqual(run, { args: ['app', 'update', 'wiki', '--name', hostile], files: [] });
  });

  it('W013: the --remove-redirect-uri bash reads back as the stored URI, running nothing', (t) => {
    const uri = "https://*.example.org/$(touch dollar)/`touch backtick`/it's";
    const [finding] = runChecks(config(), [starred({ redirectUris: [uri] })]);
    assert.equal(finding!.id, 'W013');
    const run = pasted(t, finding!.hint.slice(0, finding!.hint.indexOf(' --add-redirect-uri')));
    if (!run) return;
    assert.deepEqual(run, { args: ['app', 'update', 'rp-star', '--remove-redirect-uri', uri], files: [] });
  });

  describe('a hint for a stored name or URI with a NUL character, which no command line can carry', () => {
    // bash reads $'Ad\x00mins' as `Ad`: a rename or a --remove-group of it would act on another name.
    const nul = 'Ad\u0000mins';

    it('shellWord gives no word for it', () => {
      assert.equal(shellWord(nul), undefined);
      assert.equal(shellWord('Ad\u0001mins'), "$'Ad\\x01mins'");
    });

    it('W014 and W015: no rename, which would rename the state or group its name is cut to', () => {
      const findings = [
        ...spacedNameChecks('builtin', { states: [`Bob  ${nul}`], groups: [] }),
        ...unfitCharacterNameChecks('builtin', { states: [], groups: [nul, `Bob  ${nul}`] }, []),
      ];
      assert.deepEqual(
        findings.map((finding) => finding.id),
        ['W014', 'W015', 'W015'],
      );
      for (const finding of findings) {
        assert.doesNotMatch(finding.hint, /rename [$']/, finding.hint);
        assert.match(
          finding.hint,
          /^aa-oidc cannot rename it: no command line can carry the NUL character in it, and the admin console refuses one in an address; rename the (state|group) in the database/,
        );
      }
    });

    it('W006: the whitelist given again without it, each kept name as bash reads it back', (t) => {
      const hints = whitelistChecks(
        [
          { clientId: 'wiki', active: true, states: [], groups: ["O'Neil's", 'Pilots', nul] },
          { clientId: 'mail', active: true, states: [nul], groups: [] },
          { clientId: 'chat', active: true, states: [], groups: [nul, `${nul}2`] },
        ],
        { states: [], groups: ["O'Neil's", 'Pilots'] },
      ).map((finding) => finding.hint);
      assert.equal(hints.length, 4);
      const [wiki, mail] = hints.map((hint) => hint.slice(0, hint.indexOf(' (')));
      const keptRun = pasted(t, wiki!);
      if (!keptRun) return;
      assert.deepEqual(keptRun.args, ['app', 'update', 'wiki', '--group', "O'Neil's", '--group', 'Pilots']);
      assert.deepEqual(pasted(t, mail!)?.args, ['app', 'update', 'mail', '--clear-states']);
      for (const hint of hints.slice(2)) {
        assert.match(
          hint,
          /^untick it on the application's page of the admin console \(no command line can carry the NUL character in it, nor in another group it whitelists\)/,
        );
      }
    });

    it('W013: the URI list given again without it, and the URIs it was meant for', (t) => {
      const [finding] = runChecks(config(), [
        starred({ redirectUris: ['https://rp.example.org/cb', `https://*.example.org/${nul}`] }),
      ]);
      assert.equal(finding!.id, 'W013');
      assert.match(
        finding!.hint,
        / for each host's URI it was meant for \(its redirect URIs but this one: no command line can carry the NUL character in it\)$/,
      );
      const run = pasted(t, finding!.hint.slice(0, finding!.hint.indexOf(' for each host')));
      if (!run) return;
      assert.deepEqual(run.args, [
        'app',
        'update',
        'rp-star',
        '--redirect-uri',
        'https://rp.example.org/cb',
        '--redirect-uri',
        'https://…',
      ]);
    });
  });
});

describe(`aa-oidc check: names with characters new names refuse (W015, ${testDatabaseKind})`, () => {
  let database: TestDatabase;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    const services = await createServices(testConfig(database, { secretKey: SECRET }), { migrate: true });
    try {
      // As an older aa-oidc stored them: new names refuse these characters.
      await services.database.db
        .insertInto('state')
        .values({
          name: 'Admins\u202e',
          name_key: nameKey('Admins\u202e'),
          priority: 10,
          oidc_access: 1,
          created_at: Date.now(),
        })
        .execute();
      await services.database.db
        .insertInto('auth_group')
        .values({
          name: 'Di\u200brectors',
          name_key: nameKey('Di\u200brectors'),
          oidc_access: 0,
          created_at: Date.now(),
        })
        .execute();
      const { application } = await services.applications.create(
        { clientId: 'bidi-wiki', name: 'Wiki', redirectUris: ['https://rp.example.org/cb'] },
        'test',
      );
      await services.database.db
        .updateTable('application')
        .set({ name: 'Wiki\u2066' })
        .where('client_id', '=', application.clientId)
        .execute();
    } finally {
      await services.close();
    }
  });
  after(async () => database.drop());

  it('warns about each, escaped, exiting 0; creating such a name is refused; the check is silent once the renames are done', async () => {
    const env = testEnv(database, { AA_OIDC_SECRET_KEY: SECRET });
    const checked = await cli(['check'], env);
    assert.equal(checked.code, 0, checked.stderr);
    assert.doesNotMatch(checked.stdout, /[\u202e\u200b\u2066]/u);
    assert.match(
      checked.stdout,
      /^W015 warning: the state "Admins\\u202e" contains U\+202E, a bidirectional control character, at character 7 .*\n {2}hint: aa-oidc state rename \$'Admins\\xe2\\x80\\xae' 'Admins' /m,
    );
    assert.match(
      checked.stdout,
      /^W015 warning: the group "Di\\u200brectors" contains U\+200B, an invisible character, at character 3 .*\n {2}hint: aa-oidc group rename \$'Di\\xe2\\x80\\x8brectors' 'Directors' /m,
    );
    assert.match(
      checked.stdout,
      /^W015 warning: application bidi-wiki is named "Wiki\\u2066", which contains U\+2066, a bidirectional control character, at character 5 .*\n {2}hint: aa-oidc app update bidi-wiki --name 'Wiki'$/m,
    );
    const json = JSON.parse((await cli(['check', '--format', 'json'], env)).stdout) as Array<{ id: string }>;
    assert.equal(json.filter((finding) => finding.id === 'W015').length, 3);

    const refused = await cli(['group', 'create', 'Pi\u200blots'], env);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /invalid group name "Pi\\u200blots": it contains U\+200B, an invisible character/,
    );

    for (const args of [
      ['state', 'rename', 'Admins\u202e', 'Admins'],
      ['group', 'rename', 'Di\u200brectors', 'Directors'],
      ['app', 'update', 'bidi-wiki', '--name', 'Wiki'],
    ]) {
      const done = await cli(args, env);
      assert.equal(done.code, 0, done.stderr);
    }
    const again = await cli(['check'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /W015/);
  });
});

describe("system check W015: users' email addresses and main characters' names", () => {
  const user = (id: number, username: string, email: string, characterName: string | null = null) => ({
    id,
    username,
    email,
    characterName,
  });

  it('names each user by username and id with the text escaped and where its characters are, one finding a field', () => {
    const findings = unfitUserTextChecks([
      user(3, 'alice', 'al\u200bice@example.org', 'Alice\u202e Prime'),
      user(9, 'bob', 'bob@example.org', 'Bob'),
      user(12, 'carol', 'car\u2066ol@example.org'),
    ]);
    assert.deepEqual(
      findings.map((finding) => [finding.id, finding.level]),
      [
        ['W015', 'warning'],
        ['W015', 'warning'],
      ],
    );
    const [email, character] = findings;
    assert.equal(
      email!.message,
      '2 built-in users have email addresses with a character new addresses refuse (stored before they were refused): where it is shown as it is, as a relying party may show the email claim, it can read as another address: "alice" (id 3): "al\\u200bice@example.org" contains U+200B, an invisible character, at character 3; "carol" (id 12): "car\\u2066ol@example.org" contains U+2066, a bidirectional control character, at character 4',
    );
    assert.match(email!.hint, /^aa-oidc user set-email USERNAME ADDRESS for each/);
    assert.equal(
      character!.message,
      'a built-in user\'s main character has a name with a character new names refuse (stored before they were refused): where it is shown as it is, as a relying party may show the name claim, it can read as another name: "alice" (id 3): "Alice\\u202e Prime" contains U+202E, a bidirectional control character, at character 6',
    );
    assert.match(
      character!.hint,
      /^aa-oidc user set-main-character USERNAME --character-id ID --character-name NAME /,
    );
    assert.doesNotMatch(JSON.stringify(findings), /[\u200b\u202e\u2066]/u);
  });

  it('names the first five users and counts the rest, and takes a flag or a joiner as they are', () => {
    const many = Array.from({ length: 8 }, (_, index) =>
      user(index + 1, `u${index + 1}`, `u\u200b${index}@example.org`),
    );
    const [finding, ...others] = unfitUserTextChecks(many);
    assert.equal(others.length, 0);
    assert.match(
      finding!.message,
      /^8 built-in users have email addresses .*"u5" \(id 5\): [^;]*; and 3 more$/,
    );
    assert.doesNotMatch(finding!.message, /"u6"/);
    // Read by the query for their tag characters, which draw a flag here: nothing to report.
    assert.deepEqual(
      unfitUserTextChecks([
        user(
          1,
          'scot',
          'scot@example.org',
          '\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f} Scot',
        ),
        user(2, 'zwj', 'zwj@example.org', 'Fam\u200dily'),
      ]),
      [],
    );
  });
});

describe(`aa-oidc check: users' email addresses and main characters' names with characters new ones refuse (W015, ${testDatabaseKind})`, () => {
  let database: TestDatabase;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    const services = await createServices(testConfig(database, { secretKey: SECRET }), { migrate: true });
    try {
      for (const username of ['mallory', 'trent', 'flagged', 'plain', 'shorthand', 'tagged'])
        await services.directoryAdmin.createUser({
          username,
          email: `${username}@example.org`,
          characterId: 90_000_001 + username.length,
          characterName: `${username} Prime`,
        });
      // As an older aa-oidc stored them: new addresses and names refuse these characters.
      const stored: Array<[string, { email?: string; character_name?: string }]> = [
        ['mallory', { email: 'mal\u200blory@example.org' }],
        ['trent', { character_name: 'Trent\u2067 Prime' }],
        // Outside the Basic Multilingual Plane (a surrogate pair in JavaScript): the query finds them too.
        ['shorthand', { email: 'short\u{1bca0}hand@example.org' }],
        ['tagged', { character_name: 'Tagged\u{e0001} Prime' }],
        // A subdivision flag's tags are read by the query and judged fit.
        [
          'flagged',
          { character_name: '\u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f} Prime' },
        ],
      ];
      for (const [username, values] of stored)
        await services.database.db
          .updateTable('app_user')
          .set(values)
          .where('username', '=', username)
          .execute();
    } finally {
      await services.close();
    }
  });
  after(async () => database.drop());

  it('warns about each, escaped, exiting 0, and is silent once the texts are set again', async () => {
    const env = testEnv(database, { AA_OIDC_SECRET_KEY: SECRET });
    const checked = await cli(['check'], env);
    assert.equal(checked.code, 0, checked.stderr);
    assert.doesNotMatch(checked.stdout, /[\u200b\u2067\u{1bca0}\u{e0001}\u{e0067}]/u);
    assert.match(
      checked.stdout,
      /^W015 warning: 2 built-in users have email addresses with a character new addresses refuse .*: "mallory" \(id \d+\): "mal\\u200blory@example\.org" contains U\+200B, an invisible character, at character 4; "shorthand" \(id \d+\): "short\\ud82f\\udca0hand@example\.org" contains U\+1BCA0, an invisible character, at character 6\n {2}hint: aa-oidc user set-email USERNAME ADDRESS /m,
    );
    assert.match(
      checked.stdout,
      /^W015 warning: 2 built-in users' main characters have names with a character new names refuse .*: "trent" \(id \d+\): "Trent\\u2067 Prime" contains U\+2067, a bidirectional control character, at character 6; "tagged" \(id \d+\): "Tagged\\udb40\\udc01 Prime" contains U\+E0001, an invisible character, at character 7\n {2}hint: aa-oidc user set-main-character /m,
    );
    assert.doesNotMatch(checked.stdout, /"flagged"|"plain"/);
    const json = JSON.parse((await cli(['check', '--format', 'json'], env)).stdout) as Array<{ id: string }>;
    assert.equal(json.filter((finding) => finding.id === 'W015').length, 2);

    for (const args of [
      ['user', 'set-email', 'mallory', 'mallory@example.org'],
      ['user', 'set-email', 'shorthand', 'shorthand@example.org'],
      [
        'user',
        'set-main-character',
        'trent',
        '--character-id',
        '90000006',
        '--character-name',
        'Trent Prime',
      ],
      [
        'user',
        'set-main-character',
        'tagged',
        '--character-id',
        '90000007',
        '--character-name',
        'Tagged Prime',
      ],
    ]) {
      const done = await cli(args, env);
      assert.equal(done.code, 0, done.stderr);
    }
    const again = await cli(['check'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /W015/);
  });
});

describe(`aa-oidc check: the W015 rename of a name with a control character, run as pasted (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  // Each stored as an older aa-oidc (or anyone with the database) could: a name lookup once refused
  // every control character, and a space of either end (U+FEFF, a tab), so the hint's rename failed.
  const stored: ReadonlyArray<[kind: 'state' | 'group', name: string, renamed: string]> = [
    ['state', 'Esc\u001b[2J', 'Esc[2J'],
    ['group', 'CSI\u009b', 'CSI'],
    ['group', 'Bell\u0007 Ringers', 'Bell Ringers'],
    ['group', '\ufeffPilots', 'Pilots'],
    ['group', 'Fleet\t', 'Fleet'],
  ];

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    const services = await createServices(testConfig(database, { secretKey: SECRET }), { migrate: true });
    try {
      for (const [index, [kind, name]] of stored.entries()) {
        const row = { name, name_key: nameKey(name), oidc_access: 0 as const, created_at: Date.now() };
        if (kind === 'state')
          await services.database.db
            .insertInto('state')
            .values({ ...row, priority: 20 + index })
            .execute();
        else await services.database.db.insertInto('auth_group').values(row).execute();
      }
    } finally {
      await services.close();
    }
  });
  after(async () => database.drop());

  it('gives a rename that bash reads back as the stored name and aa-oidc then does', async (t) => {
    const env = testEnv(database, { AA_OIDC_SECRET_KEY: SECRET });
    const checked = await cli(['check', '--format', 'json'], env);
    assert.equal(checked.code, 0, checked.stderr);
    const hints = (JSON.parse(checked.stdout) as Array<{ id: string; hint: string }>)
      .filter((finding) => finding.id === 'W015')
      .map((finding) => finding.hint);
    assert.equal(hints.length, stored.length, hints.join('\n'));
    for (const [kind, name, renamed] of stored) {
      const hint = hints.find((candidate) =>
        candidate.startsWith(`aa-oidc ${kind} rename ${shellWord(name)!} `),
      );
      assert.ok(hint, `a rename of ${JSON.stringify(name)} among ${hints.join('\n')}`);
      const command = hint.slice(0, hint.indexOf(' (application whitelists follow'));
      // As the operator pastes it: bash reads the words (aa-oidc a function that prints them).
      const run = spawnSync('bash', ['-c', `aa-oidc() { printf '%s\\0' "$@"; }\n${command}`], {
        env: { LC_ALL: 'C', PATH: process.env.PATH },
      });
      if (run.error) return t.skip('no bash here');
      const args = run.stdout.toString('utf8').split('\0').slice(0, -1);
      assert.deepEqual(args, [kind, 'rename', name, renamed]);
      const done = await cli(args, env);
      assert.equal(done.code, 0, `${command}: ${done.stderr}`);
    }
    const again = await cli(['check'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /W015/);
    const groups = JSON.parse((await cli(['group', 'list', '--format', 'json'], env)).stdout) as Array<{
      name: string;
    }>;
    assert.deepEqual(groups.map((group) => group.name).sort(), ['Bell Ringers', 'CSI', 'Fleet', 'Pilots']);
  });
});

describe('system checks W006 and W014: a name quoted in a message', () => {
  // From Alliance Auth, or stored before such names were refused: each character a terminal or a
  // page would act on or hide is shown as its \u escape, as W015 shows it, on the dashboard too.
  const quoted: ReadonlyArray<[character: string, escape: string]> = [
    ['\u0007', '\\u0007'],
    ['\u0085', '\\u0085'],
    ['\u007f', '\\u007f'],
    ['\u202e', '\\u202e'],
    ['\u2028', '\\u2028'],
    ['\u200b', '\\u200b'],
  ];

  it('W006: the whitelisted name and the spelling the directory has, escaped', () => {
    for (const [character, escape] of quoted) {
      const [finding] = whitelistChecks(
        [{ clientId: 'wiki', active: true, states: [], groups: [`fleet${character}`] }],
        { states: [], groups: [`FLEET${character}`] },
      );
      assert.ok(
        finding!.message.startsWith(
          `application wiki whitelists the group "fleet${escape}", which the directory does not have (it has "FLEET${escape}":`,
        ),
        finding!.message,
      );
      assert.equal(unfitNameCharacters(finding!.message).length, 0, `nothing unescaped: ${finding!.message}`);
    }
  });

  it('W014: the stored name and its single-spaced spelling, escaped', () => {
    for (const [character, escape] of quoted) {
      const [finding] = spacedNameChecks('builtin', { states: [], groups: [`Bob  Smith${character}`] });
      assert.ok(
        finding!.message.startsWith(
          `the group "Bob  Smith${escape}" has spaces in a row (stored before new names refused them): a web page shows it as "Bob Smith${escape}",`,
        ),
        finding!.message,
      );
      assert.equal(unfitNameCharacters(finding!.message).length, 0, `nothing unescaped: ${finding!.message}`);
    }
  });
});
