import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { findClientsByMetadataObject } from '../../src/oidc/provider-internals.ts';
import { introspect, login, tokenRequest } from '../helpers/flows.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

/**
 * The provider's `Client.find` answered from the client kept beside its metadata object
 * (provider-internals.ts): every change to an application is seen by the next request, as when the
 * provider digested the metadata on every find.
 */
describe(`clients found by their metadata object (${testDatabaseKind})`, () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(async () => server.close());

  it('is installed once per provider', () => {
    const provider = server.app.oidc.current();
    const find = provider.Client.find;
    findClientsByMetadataObject(provider);
    assert.equal(provider.Client.find, find);
  });

  it('authenticates with the current secret after a rotation, follows a change of grants, finds nothing after a deactivation, and the client again after a reactivation', async () => {
    const user = await seedUser(server);
    const app = await seedApp(server, {
      grantTypes: ['authorization_code', 'refresh_token', 'client_credentials'],
    });
    const client = { clientId: app.clientId, clientSecret: app.clientSecret! };
    const { accessToken } = await login(server, client, user.username);

    for (let i = 0; i < 3; i += 1) {
      const answer = await introspect(server, client, accessToken);
      assert.equal(answer.status, 200);
      assert.equal((answer.body as { active?: boolean }).active, true);
    }

    const { clientSecret } = await server.app.applications.rotateSecret(app.clientId, 'test');
    const old = await introspect(server, client, accessToken);
    assert.equal(old.status, 401, 'the old secret no longer authenticates');
    const rotated = { clientId: app.clientId, clientSecret: clientSecret! };
    const current = await introspect(server, rotated, accessToken);
    assert.equal(current.status, 200);
    assert.equal((current.body as { active?: boolean }).active, true);

    const granted = await tokenRequest(server, rotated, { grant_type: 'client_credentials' });
    assert.equal(granted.status, 200, JSON.stringify(granted.body));
    await server.app.applications.update(
      app.clientId,
      { grantTypes: ['authorization_code', 'refresh_token'] },
      'test',
    );
    const refused = await tokenRequest(server, rotated, { grant_type: 'client_credentials' });
    assert.equal(refused.status, 400);
    assert.match(JSON.stringify(refused.body), /grant type is not allowed/);

    await server.app.applications.deactivate(app.clientId, 'test');
    const deactivated = await introspect(server, rotated, accessToken);
    assert.equal(deactivated.status, 401, 'a deactivated application cannot authenticate');

    await server.app.applications.activate(app.clientId, 'test');
    const again = await introspect(server, rotated, accessToken);
    assert.equal(again.status, 200);
  });
});
