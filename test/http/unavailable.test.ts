import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DatabaseUnavailableError } from '../../src/db/errors.ts';
import { noteDatabaseFault, noteDatabaseUnavailable } from '../../src/http/unavailable.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { missingPageHeaders, rawRequest } from './raw-request.ts';

const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
const OUTAGE_DESCRIPTION = 'the service cannot reach its database right now; try again in a few seconds';
const AA_DATABASE = "Alliance Auth's database at mysql://aa@127.0.0.1:3306/alliance_auth";
const FAULT_DESCRIPTION = 'the service could not complete the request; try again in a few seconds';

/**
 * A 503 says what happened: an outage (the database cannot be reached) or a database fault that is no
 * outage (`noteDatabaseFault` with, say, a constraint error: a replayed code whose grant could not be
 * revoked), which must not claim that the database is out of reach. The outage itself is played on a
 * real connection in database-outage.test.ts; here the two causes are noted by a route of the test.
 */
describe(`a 503 for a database failure, told by its cause (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;

  before(async () => {
    harness = createLeakHarness();
    server = await startServer(
      { branding: { name: 'Goon Fleet' } },
      {
        harness,
        beforeListen: (app) => {
          app.koa.use(async (ctx, next) => {
            if (ctx.path === '/test/outage') {
              noteDatabaseUnavailable(
                ctx,
                new DatabaseUnavailableError('cannot connect to the test database'),
              );
              return;
            }
            if (ctx.path === '/test/aa-outage') {
              noteDatabaseUnavailable(
                ctx,
                new DatabaseUnavailableError('cannot connect to the test Alliance Auth database', {
                  database: AA_DATABASE,
                }),
              );
              return;
            }
            if (ctx.path === '/test/fault') {
              const constraint = Object.assign(new Error('UNIQUE constraint failed: test.id'), {
                code: 'SQLITE_CONSTRAINT_UNIQUE',
              });
              noteDatabaseFault(ctx, constraint, 'the test step could not be written');
              return;
            }
            return next();
          });
        },
      },
    );
  });
  after(async () => server.close());

  it('answers an outage that the database cannot be reached (JSON and page)', async () => {
    const json = await rawRequest(`${server.origin}/test/outage`, {
      headers: { accept: 'application/json' },
    });
    assert.equal(json.status, 503);
    assert.equal(json.headers['retry-after'], '5');
    assert.deepEqual(JSON.parse(json.body), {
      error: 'temporarily_unavailable',
      error_description: OUTAGE_DESCRIPTION,
    });
    const page = await rawRequest(`${server.origin}/test/outage`, { headers: { accept: BROWSER_ACCEPT } });
    assert.equal(page.status, 503);
    assert.deepEqual(missingPageHeaders(page), []);
    assert.match(page.body, /cannot reach its database right now/);
    assert.match(page.body, /Nothing is wrong with your request\. Try again in a few seconds\./);
  });

  it('answers a database fault that is no outage that the request could not be completed, not that the database is out of reach', async () => {
    const json = await rawRequest(`${server.origin}/test/fault`, { headers: { accept: 'application/json' } });
    assert.equal(json.status, 503, 'still 503 "try again"');
    assert.equal(json.headers['retry-after'], '5');
    assert.deepEqual(JSON.parse(json.body), {
      error: 'temporarily_unavailable',
      error_description: FAULT_DESCRIPTION,
    });
    const page = await rawRequest(`${server.origin}/test/fault`, {
      headers: { accept: BROWSER_ACCEPT, 'x-request-id': 'fault-page' },
    });
    assert.equal(page.status, 503);
    assert.deepEqual(missingPageHeaders(page), []);
    assert.ok(page.body.includes('<title>Temporarily unavailable · Goon Fleet</title>'));
    assert.doesNotMatch(page.body, /reach its database/);
    assert.match(page.body, /The sign-in service could not complete the request\./);
    assert.match(
      page.body,
      /Try again in a few seconds\. If it keeps happening, tell your community's administrators\./,
    );
    assert.ok(page.body.includes('<code id="request-id">fault-page</code>'), 'the request id to quote');
    assert.ok(!page.body.includes('UNIQUE constraint'), "never the error's message");
  });

  it("logs the first outage line of each database: aa-oidc's own outage does not hide Alliance Auth's", async () => {
    const from = harness.logLines.length;
    for (const path of ['/test/outage', '/test/aa-outage', '/test/outage', '/test/aa-outage']) {
      const answer = await rawRequest(`${server.origin}${path}`, { headers: { accept: 'application/json' } });
      assert.equal(answer.status, 503, path);
    }
    const outageLines = harness.logLines
      .slice(from)
      .map((line) => JSON.parse(line) as { msg?: string; database?: string })
      .filter((line) => line.msg === 'the database is unavailable; answering 503 until it returns');
    const shown = outageLines.map((line) => line.database).join('\n');
    // aa-oidc's own may have been logged by the test above, less than 10 s ago: at most once here.
    assert.ok(outageLines.filter((line) => line.database !== AA_DATABASE).length <= 1, shown);
    assert.equal(outageLines.filter((line) => line.database === AA_DATABASE).length, 1, shown);
  });
});
