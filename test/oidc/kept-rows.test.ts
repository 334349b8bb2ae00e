import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { Adapter, KoaContextWithOIDC } from 'oidc-provider';
import { readLog } from '../../src/db/change-log.ts';
import { bearerLookup } from '../../src/oidc/adapter.ts';
import { createChangeEpochs } from '../../src/oidc/change-epoch-cache.ts';
import { KeptRows } from '../../src/oidc/kept-rows.ts';
import { withinRequest } from '../../src/oidc/provider-internals.ts';
import { findPayloadWithPosition, pruneChangeLog, storageId } from '../../src/tokens/store.ts';
import { connect, testDatabaseKind } from '../helpers/database.ts';
import * as flows from '../helpers/flows.ts';
import type { LeakHarness } from '../helpers/leak-harness.ts';
import { Browser, type TestServer, startServer } from '../helpers/server.ts';
import { statementsDuring } from '../helpers/statements.ts';
import {
  type Client,
  codeFlow,
  introspect,
  type Pilot,
  seedPilot,
  startPilotServer,
  userinfo,
} from '../tokens/helpers.ts';

const READS_PAYLOAD = /\bfrom\s+"oidc_payload"/i;

describe(`stored tokens, sessions and grants kept in memory while the change log names no change (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let client: Client;
  let pilot: Pilot;
  /** Another writer: a connection of the test's own, as another instance or a CLI command has. */
  let other: ReturnType<typeof connect>;

  before(async () => {
    ({ harness, server, pilot, client } = await startPilotServer());
    other = connect(server.database);
  });
  after(async () => {
    await other?.close();
    await harness.assertNoLeaks();
    await server.close();
  });

  it('answers a repeated userinfo and introspection of one token without reading token storage', async () => {
    const { accessToken } = await codeFlow(server, harness, client, pilot);
    assert.equal((await userinfo(server, accessToken)).status, 200);
    const again = await statementsDuring(() => userinfo(server, accessToken));
    assert.equal(again.result.status, 200);
    assert.deepEqual(
      again.texts.filter((text) => READS_PAYLOAD.test(text)),
      [],
      'userinfo: no statement reads oidc_payload',
    );
    assert.equal(
      again.texts.filter((text) => /"change_log"|change_log l/.test(text)).length,
      1,
      again.texts.join('\n'),
    );
    assert.equal((await introspect(server, client, accessToken)).active, true);
    const introspected = await statementsDuring(() => introspect(server, client, accessToken));
    assert.equal(introspected.result.active, true);
    assert.deepEqual(
      introspected.texts.filter((text) => READS_PAYLOAD.test(text)),
      [],
    );
  });

  it('refuses a token revoked by another writer on the next request', async () => {
    const { accessToken } = await codeFlow(server, harness, client, pilot);
    assert.equal((await userinfo(server, accessToken)).status, 200);
    assert.equal((await userinfo(server, accessToken)).status, 200);
    await other.db
      .updateTable('oidc_payload')
      .set({ revoked_at: Date.now(), revoked_reason: 'test' })
      .where('model', '=', 'AccessToken')
      .where('id', '=', storageId(accessToken))
      .execute();
    assert.equal((await userinfo(server, accessToken)).status, 401);
    assert.equal((await introspect(server, client, accessToken)).active, false);
  });

  it('refuses a token whose grant was revoked by another writer on the next request', async () => {
    const { accessToken } = await codeFlow(server, harness, client, pilot);
    assert.equal((await userinfo(server, accessToken)).status, 200);
    assert.equal((await introspect(server, client, accessToken)).active, true);
    await other.db.deleteFrom('oidc_payload').where('model', '=', 'Grant').execute();
    assert.equal((await userinfo(server, accessToken)).status, 401);
    assert.equal((await introspect(server, client, accessToken)).active, false);
  });

  it('refuses a token whose session was ended by another writer on the next request', async () => {
    const { accessToken } = await codeFlow(server, harness, client, pilot);
    assert.equal((await userinfo(server, accessToken)).status, 200);
    assert.equal((await userinfo(server, accessToken)).status, 200);
    await other.db
      .updateTable('oidc_payload')
      .set({ revoked_at: Date.now(), revoked_reason: 'test' })
      .where('model', '=', 'Session')
      .execute();
    await other.db.deleteFrom('oidc_payload').where('model', '=', 'Session').execute();
    assert.equal((await userinfo(server, accessToken)).status, 401);
  });

  it('a request in flight reads the session an authorization wrote with its code, not the one kept before', async () => {
    // A pilot of their own, signed in in a browser of their own: their one session.
    const own = await seedPilot(server, harness);
    const browser = new Browser();
    harness.registerSecret(
      flows.codeFrom((await flows.authorize(server, browser, client, own.username)).response),
      'authorization code',
    );
    const stored = async () => {
      const rows = await other.db
        .selectFrom('oidc_payload')
        .select(['id', 'uid', 'payload', 'expires_at'])
        .where('model', '=', 'Session')
        .where('user_id', '=', String(own.id))
        .execute();
      assert.equal(rows.length, 1, 'one session');
      return { ...rows[0]!, exp: (JSON.parse(rows[0]!.payload) as { exp: number }).exp };
    };
    const signedIn = await stored();
    // Another writer moves its expiry an hour back, so that the next SSO authorization writes it again
    // (a session renewed within the second it was written is not).
    const earlier = signedIn.exp - 3600;
    await other.db
      .updateTable('oidc_payload')
      .set({
        payload: JSON.stringify({ ...(JSON.parse(signedIn.payload) as object), exp: earlier }),
        expires_at: signedIn.expires_at! - 3_600_000,
      })
      .where('model', '=', 'Session')
      .where('id', '=', signedIn.id)
      .execute();
    // Requests, as the provider's own adapter serves them (`withinRequest`): the session by its uid.
    const sessions = (server.app.oidc.current().Session as unknown as { adapter: Adapter }).adapter;
    const exp = async (request: object) =>
      (await withinRequest(request as KoaContextWithOIDC, () => sessions.findByUid(signedIn.uid!)))?.exp;
    assert.equal(await exp({}), earlier, 'a request keeps the session as the other writer left it');
    // A request in flight: it has read the change log, and found the session in memory.
    const inFlight = {};
    assert.equal(await exp(inFlight), earlier);

    // An SSO authorization renews the session, written with its code once its response is built.
    harness.registerSecret(
      flows.codeFrom((await flows.authorize(server, browser, client, undefined)).response),
      'authorization code',
    );
    const renewed = (await stored()).exp;
    assert.ok(renewed > earlier, 'the authorization wrote the session');

    assert.equal(await exp(inFlight), renewed, 'the request in flight reads the session this process wrote');
    assert.equal(await exp({}), renewed, 'and so does the next request');
  });

  it('does not log new rows, nor the purge of rows expired a while ago', async () => {
    const db = other.db;
    const before = await readLog(db, undefined);
    const now = Date.now();
    const row = (id: string, expiresAt: number) => ({
      model: 'AccessToken',
      id,
      payload: '{}',
      expires_at: expiresAt,
    });
    await db
      .insertInto('oidc_payload')
      .values([row('log-test-old', now - 3_600_000), row('log-test-live', now + 3_600_000)])
      .execute();
    assert.deepEqual((await readLog(db, before.position)).keys, [], 'inserts are not logged');
    await db.deleteFrom('oidc_payload').where('id', 'in', ['log-test-old', 'log-test-live']).execute();
    assert.deepEqual((await readLog(db, before.position)).keys, ['AccessToken log-test-live']);
  });
});

describe(`KeptRows and the change log (${testDatabaseKind})`, () => {
  // No tokens here: rows written and read directly, on a server's migrated database.
  let server: TestServer;
  let other: ReturnType<typeof connect>;

  before(async () => {
    server = await startServer({});
    other = connect(server.database);
  });
  after(async () => {
    await other?.close();
    await server.close();
  });

  const insertGrant = async (id: string) => {
    await other.db
      .insertInto('oidc_payload')
      .values({ model: 'Grant', id, payload: '{"v":1}', expires_at: Date.now() + 3_600_000 })
      .execute();
  };
  const changeGrant = async (id: string, payload: string) => {
    await other.db
      .updateTable('oidc_payload')
      .set({ payload })
      .where('model', '=', 'Grant')
      .where('id', '=', id)
      .execute();
  };

  it('drops a row the log names at the next read', async () => {
    const db = server.app.database.db;
    const kept = new KeptRows();
    await kept.sync(db);
    await insertGrant('kept-a');
    const ticket = kept.ticket();
    const found = await findPayloadWithPosition(db, 'Grant', 'id', 'kept-a');
    kept.keep('Grant kept-a', found.rows, found.position, ticket);
    await kept.sync(db);
    assert.equal(kept.peek('Grant kept-a')?.[0]?.payload, '{"v":1}', 'kept while nothing changed');
    await changeGrant('kept-a', '{"v":2}');
    assert.ok(kept.peek('Grant kept-a'), 'still kept until the next read');
    await kept.sync(db);
    assert.equal(kept.peek('Grant kept-a'), undefined);
  });

  it('does not keep a row loaded before a change the reader has already processed', async () => {
    const db = server.app.database.db;
    const kept = new KeptRows();
    await kept.sync(db);
    await insertGrant('race-a');
    // Loaded, then changed by another writer, then the change is read from the log: the row loaded
    // first arrives last and must not be kept.
    const ticket = kept.ticket();
    const stale = await findPayloadWithPosition(db, 'Grant', 'id', 'race-a');
    await changeGrant('race-a', '{"v":2}');
    await kept.sync(db);
    kept.keep('Grant race-a', stale.rows, stale.position, ticket);
    assert.equal(kept.peek('Grant race-a'), undefined, 'the stale row is not kept');
    // Loaded after the read: kept.
    const fresh = await findPayloadWithPosition(db, 'Grant', 'id', 'race-a');
    kept.keep('Grant race-a', fresh.rows, fresh.position, kept.ticket());
    assert.equal(kept.peek('Grant race-a')?.[0]?.payload, '{"v":2}');
  });

  it("does not keep a row whose load began before one of this process's own writes", async () => {
    const db = server.app.database.db;
    const kept = new KeptRows();
    await kept.sync(db);
    await insertGrant('own-a');
    const ticket = kept.ticket();
    const found = await findPayloadWithPosition(db, 'Grant', 'id', 'own-a');
    kept.wrote(['Grant own-a']);
    kept.keep('Grant own-a', found.rows, found.position, ticket);
    assert.equal(kept.peek('Grant own-a'), undefined);
  });

  it('drops everything when the log was pruned past its position', async () => {
    const db = server.app.database.db;
    const kept = new KeptRows();
    await kept.sync(db);
    await insertGrant('pruned-a');
    await insertGrant('pruned-b');
    const ticket = kept.ticket();
    const found = await findPayloadWithPosition(db, 'Grant', 'id', 'pruned-a');
    kept.keep('Grant pruned-a', found.rows, found.position, ticket);
    assert.ok(kept.peek('Grant pruned-a'));
    // Two prunes: the first marks what is there, the second deletes it; a reader that read nothing
    // in between cannot know what it missed.
    await changeGrant('pruned-b', '{"v":2}');
    await pruneChangeLog(other.db);
    await pruneChangeLog(other.db);
    if (testDatabaseKind === 'sqlite') {
      const left = await other.db.selectFrom('change_log').select('seq').execute();
      assert.deepEqual(left, [], 'the second prune deleted what the first saw');
    }
    const horizon = await other.db
      .selectFrom('change_epoch')
      .select('value')
      .where('id', '=', 2)
      .executeTakeFirstOrThrow();
    assert.ok(Number(horizon.value) > 0);
    // A horizon past any position: the reader drops even rows the log never named.
    await sql`update change_epoch set value = value + 1000000000 where id = 2`.execute(other.db);
    try {
      await kept.sync(db);
      assert.equal(kept.peek('Grant pruned-a'), undefined);
    } finally {
      await sql`update change_epoch set value = value - 1000000000 where id = 2`.execute(other.db);
    }
  });

  it('reads a row once for requests that miss it at the same time', async () => {
    const db = server.app.database.db;
    const kept = new KeptRows();
    const epochs = createChangeEpochs(db, undefined, kept);
    const [first, second] = [{}, {}];
    await insertGrant('shared-a');
    // Both requests have read the log (one read, shared): neither has the grant in memory.
    await Promise.all([epochs.synced(first), epochs.synced(second)]);
    let current: object | undefined;
    const lookup = bearerLookup(() => current, epochs);
    const found = await statementsDuring(() => {
      current = first;
      const byFirst = lookup.find(db, 'Grant', 'shared-a');
      current = second;
      const bySecond = lookup.find(db, 'Grant', 'shared-a');
      current = undefined;
      return Promise.all([byFirst, bySecond]);
    });
    assert.deepEqual(
      found.result.map((row) => row?.payload),
      ['{"v":1}', '{"v":1}'],
    );
    // Only reads of the row count: the server's own timers (its read of the change log, pg-boss) may
    // run a statement meanwhile.
    const reads = found.texts.filter((text) => READS_PAYLOAD.test(text));
    assert.equal(reads.length, 1, found.texts.join('\n'));
  });

  it("shares a load only once it began after the request's read of the log, and after this process's own writes", async () => {
    const db = server.app.database.db;
    const kept = new KeptRows();
    await kept.sync(db);
    const nothingKept = () => undefined;
    const readAlready = () => Promise.resolve();
    const held = () => {
      let answer!: (rows: string[]) => void;
      const loading = new Promise<string[]>((resolve) => (answer = resolve));
      return { loading, answer };
    };
    const own = (name: string) => () => Promise.resolve([name]);

    // A load that began before the request's read of the log answered may miss a change committed
    // before the request asked: the request loads again.
    const early = held();
    const earlyLoad = kept.share('Grant early', readAlready, nothingKept, () => early.loading);
    const afterRead = kept.share('Grant early', () => kept.sync(db), nothingKept, own('after the read'));
    early.answer(['early']);
    assert.deepEqual(await afterRead, ['after the read']);
    assert.deepEqual(await earlyLoad, ['early']);

    // A load that began after it: shared.
    const later = held();
    const laterLoad = kept.share('Grant later', readAlready, nothingKept, () => later.loading);
    const sharing = kept.share('Grant later', readAlready, nothingKept, own('not shared'));
    later.answer(['later']);
    assert.deepEqual(await sharing, ['later']);
    assert.deepEqual(await laterLoad, ['later']);

    // One of this process's writes completed since the load began: the load may not see it.
    const before = held();
    const beforeLoad = kept.share('Grant written', readAlready, nothingKept, () => before.loading);
    kept.wrote(['Grant written']);
    const afterWrite = kept.share('Grant written', readAlready, nothingKept, own('after the write'));
    before.answer(['before the write']);
    assert.deepEqual(await afterWrite, ['after the write']);
    assert.deepEqual(await beforeLoad, ['before the write']);

    // The row kept by the time the request's read answered is taken from memory.
    const running = held();
    const runningLoad = kept.share('Grant kept', readAlready, nothingKept, () => running.loading);
    const fromMemory = kept.share('Grant kept', readAlready, () => ['in memory'], own('not loaded'));
    running.answer(['loaded']);
    assert.deepEqual(await fromMemory, ['in memory']);
    assert.deepEqual(await runningLoad, ['loaded']);
  });

  /** A row as found, for a `KeptRows` that has read no log (any position covers its own). */
  const foundRow = {
    payload: '{}',
    expires_at: null,
    consumed_at: null,
    format: null,
    value_sha256: null,
    revoked_at: null,
  };
  const heldLoad = () => {
    let answer!: (rows: string[]) => void;
    const loading = new Promise<string[]>((resolve) => (answer = resolve));
    return { loading, answer };
  };
  const readAlready = () => Promise.resolve();
  const nothingKept = () => undefined;
  const ownLoad = (name: string) => () => Promise.resolve([name]);

  it("keeps and shares a load that began before this process's write of another key", async () => {
    const kept = new KeptRows();
    const ticket = kept.ticket();
    // A session renewed (both its keys) and an access token written while the grant loads.
    kept.wrote(['Session s-j', 'Session uid u-j', 'AccessToken a-j']);
    kept.keep('Grant k', [foundRow], 1, ticket);
    assert.ok(kept.peek('Grant k'), 'the grant loading is kept');

    const running = heldLoad();
    const first = kept.share('Grant shared-k', readAlready, nothingKept, () => running.loading);
    kept.wrote(['Grant j']);
    const second = kept.share('Grant shared-k', readAlready, nothingKept, ownLoad('loaded again'));
    running.answer(['shared']);
    assert.deepEqual(await second, ['shared'], 'the load in flight is shared');
    assert.deepEqual(await first, ['shared']);
  });

  it("neither keeps nor shares a load that began before this process's write of its key", async () => {
    const kept = new KeptRows();
    // A presented value's rows are kept together (`bearer <id>`): a write of its access token is one of them.
    const ticket = kept.ticket();
    kept.wrote(['AccessToken a-k']);
    kept.keep('bearer a-k', [foundRow], 1, ticket);
    assert.equal(kept.peek('bearer a-k'), undefined, 'the token loading is not kept');

    // A session and its grant, loaded together under a key of their own: a write of the session
    // (named by its uid too) stops the load being shared.
    const both = heldLoad();
    const keys = ['Session uid u-k', 'Grant g-k'];
    const first = kept.share('session and grant u-k', readAlready, nothingKept, () => both.loading, keys);
    kept.wrote(['Session s-k', 'Session uid u-k']);
    const second = kept.share(
      'session and grant u-k',
      readAlready,
      nothingKept,
      ownLoad('after the write'),
      keys,
    );
    both.answer(['before the write']);
    assert.deepEqual(await second, ['after the write']);
    assert.deepEqual(await first, ['before the write']);
  });

  it('neither keeps nor shares a load in flight when this process wrote rows it cannot name', async () => {
    const kept = new KeptRows();
    kept.wrote(['Grant earlier']);
    const ticket = kept.ticket();
    const running = heldLoad();
    const first = kept.share('Grant unnamed', readAlready, nothingKept, () => running.loading);
    kept.wrote();
    kept.keep('Grant unnamed', [foundRow], 1, ticket);
    kept.keep('bearer unnamed', [foundRow], 1, ticket);
    assert.equal(kept.peek('Grant unnamed'), undefined);
    assert.equal(kept.peek('bearer unnamed'), undefined);
    const second = kept.share('Grant unnamed', readAlready, nothingKept, ownLoad('after the write'));
    running.answer(['before the write']);
    assert.deepEqual(await second, ['after the write']);
    assert.deepEqual(await first, ['before the write']);
    // A load that began after it is kept.
    kept.keep('Grant unnamed', [foundRow], 1, kept.ticket());
    assert.ok(kept.peek('Grant unnamed'));
  });

  it('shares the read ahead of a session and its grant across a write of another key, not across a write of the session', async () => {
    const db = server.app.database.db;
    const expiresAt = Date.now() + 3_600_000;
    await other.db
      .insertInto('oidc_payload')
      .values([
        { model: 'Session', id: 'ahead-s', uid: 'ahead-u', payload: '{"v":1}', expires_at: expiresAt },
        { model: 'Grant', id: storageId('ahead-grant'), payload: '{"v":1}', expires_at: expiresAt },
      ])
      .execute();
    const token = { sessionUid: 'ahead-u', grantId: 'ahead-grant', expiresWithSession: true };
    /** Reads of the session and grant by two userinfo requests, a write of `written` in between. */
    const readsAcross = async (written: string[]) => {
      const kept = new KeptRows();
      const epochs = createChangeEpochs(db, undefined, kept);
      const requests = [{ oidc: { route: 'userinfo' } }, { oidc: { route: 'userinfo' } }];
      await Promise.all(requests.map((request) => epochs.synced(request)));
      // The first request's read answers only once the second has asked.
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let reads = 0;
      const held = db.withPlugin({
        transformQuery: ({ node }) => node,
        transformResult: async ({ result }) => {
          reads += 1;
          await gate;
          return result;
        },
      });
      let current: object | undefined;
      const lookup = bearerLookup(() => current, epochs);
      const sessionOf = (request: object) => {
        current = request;
        lookup.readAhead(held, token as unknown as Parameters<typeof lookup.readAhead>[1]);
        const found = lookup.findByUid(held, 'Session', 'ahead-u');
        current = undefined;
        return found;
      };
      const first = sessionOf(requests[0]!);
      while (reads === 0) await new Promise((resolve) => setImmediate(resolve));
      lookup.wrote(written);
      const second = sessionOf(requests[1]!);
      await new Promise((resolve) => setTimeout(resolve, 50));
      release();
      const found = await Promise.all([first, second]);
      assert.deepEqual(
        found.map((row) => row?.payload),
        ['{"v":1}', '{"v":1}'],
      );
      return reads;
    };
    assert.equal(await readsAcross(['Grant another', 'Session another-s', 'Session uid another-u']), 1);
    assert.equal(await readsAcross(['Session ahead-s', 'Session uid ahead-u']), 2);
    assert.equal(await readsAcross(['Grant ' + storageId('ahead-grant')]), 2);
  });

  it('remembers the keys of its last writes only, and does not keep a load that outlasts them', async () => {
    const kept = new KeptRows(10, undefined, 2);
    const ticket = kept.ticket();
    kept.wrote(['Grant w1']);
    kept.wrote(['Grant w2']);
    kept.keep('Grant loading', [foundRow], 1, ticket);
    assert.ok(kept.peek('Grant loading'), 'two other keys written: remembered, the load kept');
    const later = kept.ticket();
    kept.wrote(['Grant w3']);
    kept.wrote(['Grant w4']);
    kept.wrote(['Grant w5']);
    kept.keep('Grant outlasting', [foundRow], 1, later);
    assert.equal(kept.peek('Grant outlasting'), undefined, 'w3 forgotten: it may have been this key');
    kept.keep('Grant w5', [foundRow], 1, kept.ticket());
    assert.ok(kept.peek('Grant w5'), 'a load that began after the writes is kept');
  });

  it('keeps at most its bound, the oldest going first', async () => {
    const kept = new KeptRows(3);
    const row = foundRow;
    for (const key of ['a', 'b', 'c', 'd']) kept.keep(key, [row], 1, kept.ticket());
    assert.equal(kept.size, 3);
    assert.equal(kept.peek('a'), undefined);
    assert.ok(kept.peek('d'));
  });
});
