import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleGet, consoleSignIn, pageText } from '../helpers/console.ts';
import { type Browser, seedUser, startServer, type TestServer } from '../helpers/server.ts';

describe(`the admin UI's logs say how long they are kept (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;

  before(async () => {
    server = await startServer({ audit: { retentionDays: 1 }, logout: { recordRetentionDays: 1 } });
    const user = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
  });
  after(() => server.close());

  it('says "1 day", not "1 days", for a retention of one day', async () => {
    const audit = pageText((await consoleGet(admin, `${server.origin}/admin/audit`)).body);
    assert.match(audit, /Every audit event, kept 1 day, but for/);
    const deliveries = pageText((await consoleGet(admin, `${server.origin}/admin/deliveries`)).body);
    assert.match(deliveries, /Outcomes are kept 1 day \(/);
    for (const text of [audit, deliveries]) assert.doesNotMatch(text, /\b1 days\b/);
  });
});
