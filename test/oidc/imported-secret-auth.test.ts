import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clientSecretDigest } from '../../src/applications/secret.ts';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { basicAuth, postForm, REDIRECT_URI, startServer, type TestServer } from '../helpers/server.ts';

const SECRET = 'plugin-secret-0123456789abcdefghijklmnopqrstuvwxyz';

/**
 * Client authentication of applications imported from the Python plugin with a PBKDF2-hashed secret,
 * over HTTP: wrong secrets cannot keep the thread pool busy (imported-secret-gate.ts). PBKDF2 runs are
 * counted by `aa_oidc_imported_secret_checks_total` (`verified` and `wrong` ran one).
 */
describe(`secrets imported as PBKDF2 hashes, at the endpoints (${testDatabaseKind})`, () => {
  let server: TestServer;
  const harness = createLeakHarness({ level: 'info' });
  harness.registerSecret(SECRET, 'the imported secret');

  before(async () => {
    // Client addresses come from X-Forwarded-For, sent here by a loopback "proxy".
    server = await startServer({ trustProxy: true }, { harness });
  });
  after(async () => server.close());

  const importApp = async (clientId: string, iterations: number) => {
    await server.app.applications.create(
      { clientId, name: clientId, redirectUris: [REDIRECT_URI] },
      'import:plugin-apps',
      { importedSecret: { djangoPbkdf2: await makeDjangoPbkdf2(SECRET, iterations) } },
    );
  };
  const introspect = (clientId: string, secret: string, address: string) =>
    postForm(
      `${server.issuer}/introspect/`,
      { token: 'not-a-token' },
      { authorization: basicAuth(clientId, secret), 'x-forwarded-for': address },
    );
  const checks = async (clientId: string): Promise<Record<string, number>> => {
    const metric = server.app.metrics.registry.getSingleMetric('aa_oidc_imported_secret_checks_total');
    assert.ok(metric, 'the metric is exported');
    const counts: Record<string, number> = {};
    for (const { labels, value } of (await metric.get()).values)
      if (labels.client_id === clientId) counts[String(labels.outcome)] = value;
    return counts;
  };

  it('runs PBKDF2 for at most 5 wrong secrets from one address; the right secret from another passes, and ends the hash', async () => {
    await importApp('legacy-throttled', 1000);
    const attacker = '198.51.100.66';
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => introspect('legacy-throttled', `wrong-${i}`, attacker)),
    );
    const statuses = answers.map((answer) => answer.status).sort();
    assert.deepEqual(statuses, [...Array(5).fill(401), ...Array(7).fill(429)]);
    for (const answer of answers.filter(({ status }) => status === 429)) {
      assert.equal(answer.body.error, 'temporarily_unavailable');
      assert.match(String(answer.body.error_description), /too many wrong secrets for this client/);
      assert.match(answer.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
    }
    assert.deepEqual(await checks('legacy-throttled'), { wrong: 5, throttled: 7 });

    // The attacker's address stays refused unchecked, even with the right secret.
    assert.equal((await introspect('legacy-throttled', SECRET, attacker)).status, 429);
    // The relying party, from its own address, authenticates; its hash becomes the usual digest.
    const rp = await introspect('legacy-throttled', SECRET, '203.0.113.20');
    assert.equal(rp.status, 200, JSON.stringify(rp.body));
    assert.deepEqual(await checks('legacy-throttled'), { wrong: 5, throttled: 8, verified: 1 });
    const stored = await server.app.applications.findByClientId('legacy-throttled');
    assert.equal(stored?.clientSecretPbkdf2, null);
    assert.equal(stored?.clientSecretSha256, clientSecretDigest(SECRET));
    // From then on, no more gate: the digest answers everyone, the attacker's address included.
    assert.equal((await introspect('legacy-throttled', SECRET, attacker)).status, 200);
    assert.equal((await introspect('legacy-throttled', 'wrong-again', attacker)).status, 401);
    assert.deepEqual(await checks('legacy-throttled'), { wrong: 5, throttled: 8, verified: 1 });
  });

  it('answers 503 temporarily_unavailable, unchecked, past one running and 16 waiting checks', async () => {
    // Half Django 4.2's cost: 17 checks in a row take far longer than 30 requests take to arrive
    // (one more is admitted, typically). Each from an address of its own: no address is throttled.
    await importApp('legacy-busy', 300_000);
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => introspect('legacy-busy', `wrong-${i}`, `198.51.100.${i + 1}`)),
    );
    const busy = answers.filter(({ status }) => status === 503);
    const refused = answers.filter(({ status }) => status === 401);
    assert.equal(busy.length + refused.length, 30, JSON.stringify(answers.map(({ status }) => status)));
    assert.ok(busy.length > 0, 'requests beyond the queue are refused unchecked');
    for (const answer of busy) {
      assert.equal(answer.body.error, 'temporarily_unavailable');
      assert.equal(answer.headers.get('retry-after'), '1');
    }
    assert.deepEqual(await checks('legacy-busy'), { wrong: refused.length, busy: busy.length });
  });

  it('never runs a stored hash costlier than the bound, and logs what to do once', async () => {
    await importApp('legacy-too-costly', 1000);
    // As an earlier version imported it (it took up to 10,000,000 iterations).
    const costly = (await server.app.applications.findByClientId(
      'legacy-too-costly',
    ))!.clientSecretPbkdf2!.replace('$1000$', '$10000000$');
    await server.app.database.db.transaction().execute(async (trx) => {
      await trx
        .updateTable('application')
        .set({ client_secret_pbkdf2: costly })
        .where('client_id', '=', 'legacy-too-costly')
        .execute();
      await trx
        .updateTable('change_epoch')
        .set((eb) => ({ value: eb('value', '+', 1) }))
        .where('id', '=', 1)
        .execute();
    });
    for (let i = 0; i < 3; i += 1) {
      const answer = await introspect('legacy-too-costly', SECRET, '203.0.113.30');
      assert.equal(answer.status, 401);
      assert.equal(answer.body.error, 'invalid_client');
    }
    assert.deepEqual(await checks('legacy-too-costly'), { too_costly: 3 });
    const logged = harness.logLines.filter((line) => line.includes('costlier than aa-oidc checks'));
    assert.equal(logged.length, 1, 'logged once');
    assert.match(logged[0]!, /"clientId":"legacy-too-costly"/);
    assert.match(logged[0]!, /"iterations":10000000/);
    assert.match(logged[0]!, /aa-oidc app rotate-secret/);
  });

  it('never logs a presented secret', async () => {
    assert.ok(harness.logLines.some((line) => line.includes('an address is refused unchecked for a while')));
    await harness.assertNoLeaks();
  });
});
