import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/events.ts';
import { createServices, type Services } from '../../src/services.ts';
import { testConfig } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';

describe(`application changes in the audit log (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;
  const harness = createLeakHarness();
  const records: AuditRecord[] = [];

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    services = await createServices(testConfig(database), { migrate: true, logger: harness.loggerOptions });
    harness.attach(services);
    services.audit.subscribe({ name: 'test', receive: (record) => void records.push(record) });
  });
  after(async () => {
    await services.close();
    await database.drop();
  });

  it('records create, update, secret rotation and (de)activation as admin_change events, never the secret', async () => {
    const { application, clientSecret } = await services.applications.create(
      { name: 'Wiki', redirectUris: ['https://wiki.example.org/cb'] },
      'cli:ops',
    );
    harness.registerSecret(clientSecret!, 'client secret');
    await services.applications.update(application.clientId, { name: 'Wiki.js' }, 'cli:ops');
    const rotated = await services.applications.rotateSecret(application.clientId, 'cli:ops');
    harness.registerSecret(rotated.clientSecret!, 'rotated client secret');
    await services.applications.deactivate(application.clientId, 'cli:ops');
    await services.applications.update(application.clientId, { name: 'Wiki.js' }, 'cli:ops', {
      dryRun: true,
    });
    await services.audit.idle();

    const changes = records
      .filter((record) => record.kind === 'admin_change' && record.entity === 'application')
      .map((record) => {
        assert.equal(record.kind, 'admin_change');
        return [record.action, record.entity_id, record.name, record.actor, record.changed_fields];
      });
    assert.deepEqual(changes, [
      ['created', application.clientId, 'Wiki', 'cli:ops', []],
      ['updated', application.clientId, 'Wiki.js', 'cli:ops', ['name']],
      ['secret_rotated', application.clientId, 'Wiki.js', 'cli:ops', ['client_secret']],
      ['deactivated', application.clientId, 'Wiki.js', 'cli:ops', []],
    ]);
    await harness.assertNoLeaks();
  });
});
