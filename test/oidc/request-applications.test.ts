import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Application } from '../../src/applications/types.ts';
import { raiseChangeEpoch } from '../../src/db/change-epoch.ts';
import { perRequestApplicationLookup } from '../../src/oidc/request-applications.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import {
  authorize,
  type Client,
  codeFlow,
  introspect,
  isJwt,
  type Pilot,
  redeem,
  seedClient,
  seedDirectory,
  seedPilot,
  userinfo,
} from '../tokens/helpers.ts';
import * as flows from '../helpers/flows.ts';
import { basicAuth, Browser, postForm, type TestServer, startServer } from '../helpers/server.ts';
import { watchStatements } from '../helpers/statements.ts';

/**
 * The statements the database drivers are handed that read the `application` table itself (the
 * application load of `findApplication`; its correlated subqueries read other tables), counted at
 * the driver (`watchStatements`).
 */
const READS_APPLICATION = /\bfrom\s+"application"(?![_\w])/i;
/** The change epoch read on its own (not carried by the token lookup as a scalar subquery). */
const READS_EPOCH_ALONE = /\bfrom\s+"change_epoch"/i;

interface StatementCounter {
  readonly count: number;
  readonly epochReads: number;
  restore(): void;
}

function countApplicationStatements(): StatementCounter {
  let count = 0;
  let epochReads = 0;
  const restore = watchStatements((sql) => {
    if (READS_APPLICATION.test(sql)) count += 1;
    if (READS_EPOCH_ALONE.test(sql)) epochReads += 1;
  });
  return {
    get count() {
      return count;
    },
    get epochReads() {
      return epochReads;
    },
    restore,
  };
}

describe(`applications kept in memory while the change epoch stands, one lookup per provider request (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let statements: StatementCounter;
  let opaqueClient: Client;
  let jwtClient: Client;
  let pilot: Pilot;
  /** Calls of the ApplicationService lookup the provider was given, per client_id. */
  const lookups = new Map<string, number>();

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    await seedDirectory(server);
    pilot = await seedPilot(server, harness);
    opaqueClient = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
    jwtClient = await seedClient(server, harness, { accessTokenFormat: 'jwt' });
    // The very object createApp handed to createOidc: every lookup the provider makes goes through it.
    const service = server.app.applications;
    const findByClientId = service.findByClientId.bind(service);
    service.findByClientId = async (clientId: string) => {
      lookups.set(clientId, (lookups.get(clientId) ?? 0) + 1);
      return findByClientId(clientId);
    };
    statements = countApplicationStatements();
  });

  after(async () => {
    statements?.restore();
    await harness.assertNoLeaks();
    await server.close();
  });

  /**
   * Runs one request and returns how many times the application was loaded while it ran, and how
   * many times the change epoch was read on its own.
   */
  async function loadsDuring<T>(
    work: () => Promise<T>,
  ): Promise<{ result: T; calls: number; sql: number; epochReads: number }> {
    lookups.clear();
    const before = statements.count;
    const epochBefore = statements.epochReads;
    const result = await work();
    const calls = [...lookups.values()].reduce((sum, value) => sum + value, 0);
    return { result, calls, sql: statements.count - before, epochReads: statements.epochReads - epochBefore };
  }

  const storedClientCredentials = async (clientId: string) =>
    (
      await server.app.database.db
        .selectFrom('oidc_payload')
        .select('id')
        .where('model', '=', 'ClientCredentials')
        .where('client_id', '=', clientId)
        .execute()
    ).length;

  /** A write through another path (as another instance or a CLI command would make) moves the epoch. */
  const moveEpoch = () => server.app.database.db.transaction().execute((trx) => raiseChangeEpoch(trx));

  const tokenRequest = (client: Client, form: Record<string, string>) =>
    postForm(`${server.issuer}/token/`, form, {
      authorization: basicAuth(client.clientId, client.clientSecret),
    });

  for (const format of ['opaque', 'jwt'] as const) {
    it(`keeps the ${format} application while the epoch stands, loads it once after a change, and reads the epoch once more right before saving tokens`, async () => {
      const client = format === 'jwt' ? jwtClient : opaqueClient;
      const authorized = await authorize(server, harness, client, pilot, 'openid profile groups');

      // Kept since the authorization: the client lookup reads the epoch (client authentication
      // comes before any statement that would carry it), save_bearer reads it afresh right before
      // the tokens are saved; the application itself is not read.
      const exchange = await loadsDuring(() => redeem(server, client, authorized));
      assert.equal(exchange.result.status, 200, JSON.stringify(exchange.result.body));
      const accessToken = String(exchange.result.body.access_token);
      const refreshToken = String(exchange.result.body.refresh_token);
      harness.registerSecret(accessToken, 'access token');
      harness.registerSecret(refreshToken, 'refresh token');
      assert.equal(isJwt(accessToken), format === 'jwt', 'the format is the application setting');
      assert.deepEqual(
        [exchange.calls, exchange.sql, exchange.epochReads],
        [0, 0, 2],
        'code exchange: lookups, statements, epoch reads',
      );

      // After a change elsewhere: one load shared by the client lookup, validate_refresh and the token
      // format, and none more at save_bearer (the epoch it reads has not moved since).
      await moveEpoch();
      const refresh = await loadsDuring(() =>
        tokenRequest(client, { grant_type: 'refresh_token', refresh_token: refreshToken }),
      );
      assert.equal(refresh.result.status, 200, JSON.stringify(refresh.result.body));
      const refreshed = String(refresh.result.body.access_token);
      harness.registerSecret(refreshed, 'access token');
      harness.registerSecret(String(refresh.result.body.refresh_token), 'refresh token');
      assert.equal(isJwt(refreshed), format === 'jwt');
      assert.deepEqual(
        [refresh.calls, refresh.sql, refresh.epochReads],
        [1, 1, 2],
        'refresh: lookups, statements, epoch reads',
      );

      // userinfo: nothing is read for the application. The token's session and grant are kept in
      // memory since the refresh read them (src/oidc/kept-rows.ts): instead of reading them, the
      // request reads the epoch with the change log, once.
      const info = await loadsDuring(() => userinfo(server, refreshed));
      assert.equal(info.result.status, 200);
      assert.equal(info.result.body.sub, String(pilot.id));
      assert.deepEqual([info.calls, info.sql, info.epochReads], [0, 0, 1], 'userinfo: lookups, statements');
      await moveEpoch();
      // The token too is kept now: the one read of the epoch and the log sees the change.
      const reloaded = await loadsDuring(() => userinfo(server, refreshed));
      assert.equal(reloaded.result.status, 200);
      assert.deepEqual(
        [reloaded.calls, reloaded.sql, reloaded.epochReads],
        [1, 1, 1],
        'userinfo after a change',
      );

      const introspected = await loadsDuring(() => introspect(server, client, refreshed));
      assert.equal(introspected.result.active, true);
      assert.deepEqual(
        [introspected.calls, introspected.sql, introspected.epochReads],
        [0, 0, 1],
        'introspection: lookups, statements, epoch reads',
      );
    });
  }

  it('loads a client_credentials application once after a change, and writes the token at the epoch the request read instead of reading it again', async () => {
    const machine = await seedClient(server, harness, {
      grantTypes: ['client_credentials'],
      redirectUris: [],
      accessTokenFormat: 'jwt',
    });
    const issued = await loadsDuring(() => tokenRequest(machine, { grant_type: 'client_credentials' }));
    assert.equal(issued.result.status, 200, JSON.stringify(issued.result.body));
    const accessToken = String(issued.result.body.access_token);
    harness.registerSecret(accessToken, 'access token');
    assert.ok(isJwt(accessToken), 'the format is the application setting');
    // The client lookup reads the epoch; save_bearer decides with the application of that epoch and
    // the token's write checks that the epoch still stands (no read of its own).
    assert.deepEqual(
      [issued.calls, issued.sql, issued.epochReads],
      [1, 1, 1],
      'client_credentials: lookups, statements, epoch reads',
    );

    const again = await loadsDuring(() => tokenRequest(machine, { grant_type: 'client_credentials' }));
    assert.equal(again.result.status, 200, JSON.stringify(again.result.body));
    harness.registerSecret(String(again.result.body.access_token), 'access token');
    assert.deepEqual([again.calls, again.sql, again.epochReads], [0, 0, 1], 'client_credentials, kept');

    // The epoch moves while the request runs (after the client lookup read it, before the token's
    // write): the write refuses, writes nothing, and save_bearer decides again from a fresh read of
    // the epoch, which loads the application again; the token is issued once.
    await moveEpoch();
    const service = server.app.applications;
    const lookup = service.findByClientId;
    let armed = true;
    service.findByClientId = async (clientId: string) => {
      const found = await lookup.call(service, clientId);
      if (armed && clientId === machine.clientId) {
        armed = false;
        await moveEpoch();
      }
      return found;
    };
    const storedBefore = await storedClientCredentials(machine.clientId);
    try {
      const moved = await loadsDuring(() => tokenRequest(machine, { grant_type: 'client_credentials' }));
      assert.equal(moved.result.status, 200, JSON.stringify(moved.result.body));
      harness.registerSecret(String(moved.result.body.access_token), 'access token');
      assert.equal(armed, false);
      assert.deepEqual(
        [moved.calls, moved.sql, moved.epochReads],
        [2, 2, 2],
        'client_credentials, the epoch moved before the write',
      );
    } finally {
      service.findByClientId = lookup;
    }
    assert.equal(await storedClientCredentials(machine.clientId), storedBefore + 1, 'one token written');

    const introspected = await loadsDuring(() => introspect(server, machine, accessToken));
    assert.equal(introspected.result.active, true);
    assert.deepEqual(
      [introspected.calls, introspected.sql, introspected.epochReads],
      [0, 0, 1],
      'introspection: lookups, statements, epoch reads',
    );
  });

  it('sees a whitelist change and a deactivation on the very next request', async () => {
    const client = await seedClient(server, harness);
    const tokens = await codeFlow(server, harness, client, pilot, 'openid profile');
    assert.equal((await userinfo(server, tokens.accessToken)).status, 200);

    // The pilot is in Fleet, not in Capitals: the next request refuses (the pilot lost the
    // application, and with it the tokens there).
    await server.app.applications.update(client.clientId, { groups: ['Capitals'] }, 'test');
    const refused = await loadsDuring(() => userinfo(server, tokens.accessToken));
    assert.equal(refused.result.status, 401);
    assert.equal((await introspect(server, client, tokens.accessToken)).active, false);

    // A new sign-in is refused at once: the provider judges it with the new whitelist.
    const { response: denied } = await flows.authorize(server, new Browser(), client, pilot.username);
    assert.equal(denied.status, 403);

    // Open again: the pilot's next sign-in is admitted at once.
    await server.app.applications.update(client.clientId, { groups: [] }, 'test');
    const again = await codeFlow(server, harness, client, pilot, 'openid profile');
    assert.equal((await userinfo(server, again.accessToken)).status, 200);

    await server.app.applications.deactivate(client.clientId, 'test');
    const refresh = await tokenRequest(client, {
      grant_type: 'refresh_token',
      refresh_token: again.refreshToken!,
    });
    assert.equal(refresh.status, 401, JSON.stringify(refresh.body));
    assert.equal(refresh.body.error, 'invalid_client');
  });
});

describe('perRequestApplicationLookup', () => {
  const app = { clientId: 'rp' } as Application;

  function source(results: Array<Application | undefined | Error> = [app]) {
    const calls: string[] = [];
    return {
      calls,
      lookup: {
        async findByClientId(clientId: string) {
          calls.push(clientId);
          const next = results.length > 1 ? results.shift() : results[0];
          if (next instanceof Error) throw next;
          return next;
        },
      },
    };
  }

  it('loads each client once per request, and again in the next request', async () => {
    const { calls, lookup } = source();
    let request: object | undefined = {};
    const memo = perRequestApplicationLookup(lookup, () => request);
    const [first, second] = await Promise.all([memo.findByClientId('rp'), memo.findByClientId('rp')]);
    assert.equal(first, app);
    assert.equal(second, app);
    await memo.findByClientId('other');
    assert.deepEqual(calls, ['rp', 'other']);

    request = {};
    await memo.findByClientId('rp');
    assert.deepEqual(calls, ['rp', 'other', 'rp']);
  });

  it('memoises nothing outside a request', async () => {
    const { calls, lookup } = source();
    const memo = perRequestApplicationLookup(lookup, () => undefined);
    await memo.findByClientId('rp');
    await memo.findByClientId('rp');
    assert.deepEqual(calls, ['rp', 'rp']);
  });

  it('keeps no failed load', async () => {
    const { calls, lookup } = source([new Error('database unavailable'), app]);
    const request = {};
    const memo = perRequestApplicationLookup(lookup, () => request);
    await assert.rejects(memo.findByClientId('rp'), /database unavailable/);
    assert.equal(await memo.findByClientId('rp'), app);
    assert.deepEqual(calls, ['rp', 'rp']);
  });
});
