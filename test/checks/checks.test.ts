import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServices } from '../../src/services.ts';
import {
  CHECK_IDS,
  type CheckedApplication,
  type CheckedConfig,
  type CheckId,
  runChecks,
} from '../../src/checks/checks.ts';
import { cli, startCli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';

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
    dnsTimeoutMs: 3000,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 10_000,
    deliverInServe: true,
  },
  oidc: { scopes: ['openid', 'profile'] },
  trustProxy: true,
  metrics: { enabled: true, host: '127.0.0.1' },
};

type Override = {
  mode?: 'development' | 'production';
  issuerExplicit?: boolean;
  maskedSecrets?: boolean;
  scopes?: string[];
  logout?: Partial<CheckedConfig['logout']>;
  trustProxy?: boolean;
  metrics?: Partial<CheckedConfig['metrics']>;
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
  };
}

const https: CheckedApplication = {
  clientId: 'rp-https',
  active: true,
  backchannelLogoutUri: 'https://rp.example.org/bcl',
};
const http: CheckedApplication = {
  clientId: 'rp-http',
  active: true,
  backchannelLogoutUri: 'http://rp.example.org/bcl',
};
const inactiveHttp: CheckedApplication = { ...http, clientId: 'rp-off', active: false };
const plain: CheckedApplication = { clientId: 'rp-plain', active: true, backchannelLogoutUri: null };

const ids = (override: Override, apps: CheckedApplication[]) =>
  runChecks(config(override), apps).map((f) => f.id);

/** For each id: configurations that must fire it, and close ones that must not. */
const TABLE: Record<
  CheckId,
  { fires: Array<[Override, CheckedApplication[]]>; silent: Array<[Override, CheckedApplication[]]> }
> = {
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
};

describe('system checks', () => {
  it('has a case for every check, and every case is a check', () => {
    assert.deepEqual([...CHECK_IDS].sort(), Object.keys(TABLE).sort());
  });

  for (const id of CHECK_IDS) {
    it(`${id} fires on the configuration that should trigger it and stays silent otherwise`, () => {
      for (const [override, apps] of TABLE[id].fires)
        assert.ok(ids(override, apps).includes(id), `${id} should fire for ${JSON.stringify(override)}`);
      for (const [override, apps] of TABLE[id].silent)
        assert.ok(
          !ids(override, apps).includes(id),
          `${id} should stay silent for ${JSON.stringify(override)}`,
        );
    });
  }

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
