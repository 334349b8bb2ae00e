import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ACCEPT_HEADER_MAX_BYTES } from '../../src/http/accept-header.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { basicAuth, seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { rawRequest } from './raw-request.ts';

/**
 * The provider negotiates with the Accept header on each of its errors and at introspection: the
 * negotiator package joins a quoted value's pieces again for each comma after an unclosed `"`,
 * quadratic in the header (13 to 24 ms of CPU for 16 KB, against 1 to 2 ms for the request). A longer
 * header than the limit is refused before it is read.
 */
describe(`an Accept header past its limit (${testDatabaseKind})`, () => {
  let server: TestServer;
  let authorization: string;

  before(async () => {
    server = await startServer();
    const client = await seedApp(server);
    authorization = basicAuth(client.clientId, client.clientSecret!);
  });
  after(async () => server.close());

  /** A token request refused by the provider (an unknown grant type), with `accept`. */
  const tokenRequest = (accept: string) =>
    rawRequest(`${server.issuer}/token/`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization, accept },
      body: 'grant_type=unknown',
    });

  it('is refused 431 with a JSON error naming the limit; one at the limit is negotiated', async () => {
    const over = `"${','.repeat(ACCEPT_HEADER_MAX_BYTES)}`;
    const refused = await tokenRequest(over);
    assert.equal(refused.status, 431, refused.body);
    assert.deepEqual(JSON.parse(refused.body), {
      error: 'invalid_request',
      error_description: `The Accept header is too long (at most ${ACCEPT_HEADER_MAX_BYTES} bytes).`,
    });

    const atLimit = await tokenRequest(over.slice(1));
    assert.equal(atLimit.status, 400, atLimit.body);
    assert.equal(JSON.parse(atLimit.body).error, 'unsupported_grant_type');
  });

  it('is refused on a page address too, before the page is looked for', async () => {
    const refused = await rawRequest(`${server.origin}/`, {
      headers: { accept: `text/html,${'a/b;q=0.1,'.repeat(ACCEPT_HEADER_MAX_BYTES / 10)}` },
    });
    assert.equal(refused.status, 431);
    const landing = await rawRequest(`${server.origin}/`, { headers: { accept: 'text/html,*/*;q=0.8' } });
    assert.equal(landing.status, 200);
  });
});
