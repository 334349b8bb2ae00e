import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CLIENT_AUTH_ENDPOINTS,
  clientAuthFailureCounts,
  clientAuthFailureLines,
  type ClientAuthEndpoint,
  neverIssuedForm,
} from '../helpers/client-auth-failures.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { basicAuth, postForm, seedApp, startServer, type TestServer } from '../helpers/server.ts';

const ENDPOINTS = Object.entries(CLIENT_AUTH_ENDPOINTS) as Array<[ClientAuthEndpoint, string]>;

/**
 * A failed client authentication at the token, introspection and revocation endpoints is counted in
 * `aa_oidc_client_auth_failures_total{endpoint,client_id}` under the application's id (`unknown` for
 * an id that names none) and logged at `info` with the endpoint, the reason, the method and the
 * address, never the secret; a client that authenticates moves neither.
 */
describe(`failed client authentication, counted and logged (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;
  let client: { clientId: string; clientSecret: string };
  let publicClient: string;
  let deactivated: { clientId: string; clientSecret: string };
  const wrongSecret = 'not-the-secret-of-anyone-0123456789';
  const unknownId = 'no-such-client-typed-by-hand';

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    const seeded = await seedApp(server);
    client = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
    publicClient = (await seedApp(server, { clientType: 'public' })).clientId;
    const old = await seedApp(server);
    deactivated = { clientId: old.clientId, clientSecret: old.clientSecret! };
    await server.app.applications.deactivate(deactivated.clientId, 'test');
    harness.registerSecret(client.clientSecret, 'client secret');
    harness.registerSecret(deactivated.clientSecret, "the deactivated client's secret");
    harness.registerSecret(wrongSecret, 'the wrong secret presented');
    // An id that names no application is never shown, only its length.
    harness.registerSecret(unknownId, 'the unknown client id');
  });
  after(async () => server?.close());

  const counts = () => clientAuthFailureCounts(server);
  const failureLines = () => clientAuthFailureLines(harness);

  /** Posts to `path` and returns the answer and the failure lines it logged. */
  async function attempt(path: string, form: Record<string, string>, headers: Record<string, string> = {}) {
    const before = failureLines().length;
    const answer = await postForm(`${server.origin}${path}`, form, headers);
    return { answer, lines: failureLines().slice(before) };
  }

  it('counts a wrong secret under the application and logs it without the secret', async () => {
    for (const [endpoint, path] of ENDPOINTS) {
      const was = (await counts()).get(`${endpoint} ${client.clientId}`) ?? 0;
      const basic = await attempt(path, neverIssuedForm(endpoint), {
        authorization: basicAuth(client.clientId, wrongSecret),
      });
      assert.equal(basic.answer.status, 401, `${endpoint} Basic`);
      assert.equal(basic.answer.body.error, 'invalid_client');
      const post = await attempt(path, {
        ...neverIssuedForm(endpoint),
        client_id: client.clientId,
        client_secret: wrongSecret,
      });
      assert.equal(post.answer.status, 401, `${endpoint} client_secret_post`);
      assert.equal((await counts()).get(`${endpoint} ${client.clientId}`), was + 2, endpoint);

      for (const [{ lines }, method] of [
        [basic, 'client_secret_basic'],
        [post, 'client_secret_post'],
      ] as const) {
        assert.equal(lines.length, 1, `${endpoint} ${method}: one line`);
        const [line] = lines;
        assert.equal(line!.level, 30, `${endpoint} ${method}: at info`);
        assert.equal(line!.endpoint, endpoint);
        assert.equal(line!.clientId, client.clientId);
        assert.equal(line!.reason, 'wrong_secret');
        assert.equal(line!.authMethod, method);
        assert.equal(line!.address, '127.0.0.1');
        assert.equal(typeof line!.requestId, 'string');
      }
    }
  });

  it('counts an id that names no application under unknown, and logs only its length', async () => {
    const labels = async () => new Set([...(await counts()).keys()].map((key) => key.split(' ')[1]));
    const knownLabels = await labels();
    for (const [endpoint, path] of ENDPOINTS) {
      const was = (await counts()).get(`${endpoint} unknown`) ?? 0;
      const { answer, lines } = await attempt(path, neverIssuedForm(endpoint), {
        authorization: basicAuth(unknownId, client.clientSecret),
      });
      assert.equal(answer.status, 401);
      // Invented ids, one per request: one label between them.
      for (const invented of ['invented-1', 'invented-2\nwith a newline', 'ünïcode-😀-id']) {
        const other = await attempt(path, {
          ...neverIssuedForm(endpoint),
          client_id: invented,
          client_secret: wrongSecret,
        });
        assert.equal(other.answer.status, 401, `${endpoint} ${JSON.stringify(invented)}`);
        assert.equal(other.lines.length, 1);
        assert.equal(other.lines[0]!.unknownClientIdLength, invented.length);
      }
      assert.equal((await counts()).get(`${endpoint} unknown`), was + 4, endpoint);
      assert.equal(lines.length, 1);
      const [line] = lines;
      assert.equal(line!.reason, 'unknown_client');
      assert.equal(line!.clientId, null);
      assert.ok(!('unknownClientIdStart' in line!) && !JSON.stringify(line).includes(unknownId.slice(0, 8)));
      assert.equal(line!.unknownClientIdLength, unknownId.length);
      assert.equal(line!.endpoint, endpoint);
      assert.equal(line!.authMethod, 'client_secret_basic');
    }
    assert.deepEqual(
      [...(await labels())].filter((label) => !knownLabels.has(label)),
      knownLabels.has('unknown') ? [] : ['unknown'],
    );
  });

  it('moves nothing for a client that authenticates', async () => {
    for (const [endpoint, path] of ENDPOINTS) {
      const was = await counts();
      const { answer, lines } = await attempt(path, neverIssuedForm(endpoint), {
        authorization: basicAuth(client.clientId, client.clientSecret),
      });
      assert.equal(answer.status, endpoint === 'token' ? 400 : 200, endpoint);
      assert.deepEqual(await counts(), was, endpoint);
      assert.deepEqual(lines, [], endpoint);
    }
  });

  it('names a deactivated application, and a client that used a method it is not registered for', async () => {
    for (const [endpoint, path] of ENDPOINTS) {
      const gone = await attempt(path, neverIssuedForm(endpoint), {
        authorization: basicAuth(deactivated.clientId, deactivated.clientSecret),
      });
      assert.equal(gone.answer.status, 401);
      assert.equal(gone.lines.length, 1);
      assert.equal(gone.lines[0]!.reason, 'deactivated');
      assert.equal(gone.lines[0]!.clientId, deactivated.clientId);

      const noSecret = await attempt(path, { ...neverIssuedForm(endpoint), client_id: client.clientId });
      assert.equal(noSecret.answer.status, 401);
      assert.equal(noSecret.lines[0]!.reason, 'method_mismatch');
      assert.equal(noSecret.lines[0]!.authMethod, 'none');
      assert.equal(noSecret.lines[0]!.registeredAuthMethod, 'client_secret_basic');

      const publicWithSecret = await attempt(path, neverIssuedForm(endpoint), {
        authorization: basicAuth(publicClient, wrongSecret),
      });
      assert.equal(publicWithSecret.answer.status, 401);
      assert.equal(publicWithSecret.lines[0]!.reason, 'method_mismatch');
      assert.equal(publicWithSecret.lines[0]!.registeredAuthMethod, 'none');

      const now = await counts();
      assert.equal(now.get(`${endpoint} ${deactivated.clientId}`), 1, endpoint);
      assert.equal(now.get(`${endpoint} ${publicClient}`), 1, endpoint);
    }
  });

  it('writes no secret into a log line or an answer', async () => {
    await harness.assertNoLeaks();
  });
});
