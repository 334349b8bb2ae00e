import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApplicationError } from '../../src/applications/errors.ts';
import { createServices, type Services } from '../../src/services.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { PUBLIC_V4, tableResolver, v4 } from './helpers.ts';
import { HOSTILE_TARGETS, hostileResolver, TEST_DNS_TIMEOUT_MS } from './hostile-targets.ts';

const ACTOR = 'test:operator';
const REDIRECTS = { redirectUris: ['https://rp.example.org/callback'] };

async function refusal(promise: Promise<unknown>): Promise<ApplicationError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ApplicationError, String(error));
    return error;
  }
  assert.fail('the write was accepted');
}

describe(`application writes run the SSRF gate (createServices, ${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;
  const resolver = hostileResolver();

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    services = await createServices(testConfig(database, { logout: { dnsTimeoutMs: TEST_DNS_TIMEOUT_MS } }), {
      migrate: true,
      resolver,
    });
  });
  after(async () => {
    await services.close();
    await database.drop();
  });

  it('refuses a private literal target with the gate reason, and stores nothing', async () => {
    const error = await refusal(
      services.applications.create(
        { ...REDIRECTS, name: 'Intranet', backchannelLogoutUri: 'http://10.0.0.1/bcl' },
        ACTOR,
      ),
    );
    assert.equal(error.code, 'invalid_input');
    assert.equal(
      error.message,
      'backchannel_logout_uri: "http://10.0.0.1/bcl" is refused by the SSRF gate (unsafe_target_ip): ' +
        '10.0.0.1 is a private address (RFC 1918) (10.0.0.0/8)',
    );
    assert.deepEqual(await services.applications.list({ search: 'Intranet' }), []);
  });

  it('refuses a name that resolves to a private address, and one that does not resolve', async () => {
    const privateName = await refusal(
      services.applications.create(
        { ...REDIRECTS, name: 'Wiki', backchannelLogoutUri: 'http://private10.rp.test/bcl' },
        ACTOR,
      ),
    );
    assert.match(
      privateName.message,
      /\(unsafe_target_ip\): private10\.rp\.test resolves to an unsafe address: 10\.1\.2\.3/,
    );
    const unresolved = await refusal(
      services.applications.create(
        { ...REDIRECTS, name: 'Wiki', backchannelLogoutUri: 'https://slow.rp.test/bcl' },
        ACTOR,
      ),
    );
    assert.match(unresolved.message, /\(dns_resolve_failed\): slow\.rp\.test did not resolve within 100 ms$/);
  });

  it('still runs the syntactic check first', async () => {
    const error = await refusal(
      services.applications.create(
        { ...REDIRECTS, name: 'Wiki', backchannelLogoutUri: 'https://rp.public.test/bcl#x' },
        ACTOR,
      ),
    );
    assert.match(error.message, /must not contain a fragment/);
  });

  for (const target of HOSTILE_TARGETS) {
    it(`refuses ${target.what} (${target.uri}) at create`, async () => {
      const created = await refusal(
        services.applications.create(
          { ...REDIRECTS, name: 'Hostile', backchannelLogoutUri: target.uri },
          ACTOR,
        ),
      );
      assert.match(created.message, new RegExp(`is refused by the SSRF gate \\(${target.reason}\\)`));
    });
  }

  it('accepts a name that resolves only to public addresses, and refuses changing it to a hostile target', async () => {
    const { application } = await services.applications.create(
      { ...REDIRECTS, name: 'Grafana', backchannelLogoutUri: 'https://rp.public.test/bcl' },
      ACTOR,
    );
    assert.equal(application.backchannelLogoutUri, 'https://rp.public.test/bcl');
    for (const target of HOSTILE_TARGETS.slice(0, 12)) {
      const error = await refusal(
        services.applications.update(application.clientId, { backchannelLogoutUri: target.uri }, ACTOR),
      );
      assert.match(error.message, /^backchannel_logout_uri: .* is refused by the SSRF gate/);
    }
    const stored = await services.applications.findByClientId(application.clientId);
    assert.equal(stored?.backchannelLogoutUri, 'https://rp.public.test/bcl');
  });
});

describe(`an edit that keeps the back-channel URI does not depend on its host's DNS now (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;
  const table: Parameters<typeof tableResolver>[0] = { 'wiki.public.test': [v4(PUBLIC_V4)] };

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    services = await createServices(testConfig(database), { migrate: true, resolver: tableResolver(table) });
    await services.directoryAdmin!.createState('Member', 100, true);
    await services.directoryAdmin!.createState('Blue', 50, true);
  });
  after(async () => {
    await services.close();
    await database.drop();
  });

  it('narrows the whitelists of an application whose host now resolves privately, or not at all', async () => {
    const { application } = await services.applications.create(
      {
        ...REDIRECTS,
        name: 'Wiki',
        states: ['Member', 'Blue'],
        backchannelLogoutUri: 'https://wiki.public.test/bcl',
      },
      ACTOR,
    );
    table['wiki.public.test'] = [v4('10.0.0.9')];
    const narrowed = await services.applications.update(application.clientId, { states: ['Member'] }, ACTOR);
    assert.deepEqual(narrowed.application.states, ['Member']);
    delete table['wiki.public.test'];
    const renamed = await services.applications.update(application.clientId, { name: 'Old wiki' }, ACTOR);
    assert.equal(renamed.application.name, 'Old wiki');
    // Written again (the same text as a new value is no change; another URI is checked whole).
    const moved = await refusal(
      services.applications.update(
        application.clientId,
        { backchannelLogoutUri: 'https://wiki.public.test/other' },
        ACTOR,
      ),
    );
    assert.match(moved.message, /\(dns_resolve_failed\): wiki\.public\.test did not resolve/);
  });
});

describe(`logout.allowPrivateTargets lets private targets through application writes (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;
  const resolver = tableResolver({ 'rp.lan.test': [v4('192.168.1.20')], 'rp.public.test': [v4(PUBLIC_V4)] });

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    services = await createServices(testConfig(database, { logout: { allowPrivateTargets: true } }), {
      migrate: true,
      resolver,
    });
  });
  after(async () => {
    await services.close();
    await database.drop();
  });

  it('accepts loopback and LAN targets, still refuses metadata and names that do not resolve', async () => {
    for (const uri of ['http://127.0.0.1:9999/bcl', 'http://rp.lan.test/bcl']) {
      const { application } = await services.applications.create(
        { ...REDIRECTS, name: 'Local RP', backchannelLogoutUri: uri },
        ACTOR,
      );
      assert.equal(application.backchannelLogoutUri, uri);
    }
    const metadata = await refusal(
      services.applications.create(
        { ...REDIRECTS, name: 'Meta', backchannelLogoutUri: 'http://169.254.169.254/' },
        ACTOR,
      ),
    );
    assert.match(
      metadata.message,
      /\(unsafe_target_ip\): 169\.254\.169\.254 is a cloud metadata service address/,
    );
    const unknown = await refusal(
      services.applications.create(
        { ...REDIRECTS, name: 'Gone', backchannelLogoutUri: 'http://gone.lan.test/bcl' },
        ACTOR,
      ),
    );
    assert.match(unknown.message, /\(dns_resolve_failed\): gone\.lan\.test did not resolve \(ENOTFOUND\)/);
  });
});
