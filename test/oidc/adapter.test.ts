import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { type BearerLookup, copyOfJson, KyselyAdapter } from '../../src/oidc/adapter.ts';
import {
  findPayload,
  EXPIRED_ROWS_PURGE,
  purgeExpiredPayloads,
  storageId,
  type StoredPayload,
} from '../../src/tokens/store.ts';
import { connect, createTestDatabase, testDatabaseKind, type TestDatabase } from '../helpers/database.ts';

describe(`oidc storage adapter (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let now = 1_700_000_000_000;
  const clock = () => now;

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  it('stores a token under a digest of its value, never the value itself', async () => {
    const tokens = new KyselyAdapter('AccessToken', handle.db, clock);
    await tokens.upsert(
      'secret-token-value',
      { jti: 'secret-token-value', grantId: 'g1', accountId: '7', clientId: 'app', kind: 'AccessToken' },
      60,
    );
    const rows = await handle.db
      .selectFrom('oidc_payload')
      .selectAll()
      .where('model', '=', 'AccessToken')
      .execute();
    assert.equal(rows.length, 1);
    const row = rows[0]!;
    assert.equal(row.id, storageId('secret-token-value'));
    assert.ok(!row.payload.includes('secret-token-value'), 'payload does not hold the token');
    assert.equal(row.grant_id, 'g1');
    assert.equal(row.user_id, '7');
    assert.equal(row.client_id, 'app');
    assert.equal(row.expires_at, now + 60_000);
    const found = await tokens.find('secret-token-value');
    assert.equal(found?.jti, 'secret-token-value');
    assert.equal(found?.accountId, '7');
    assert.equal(await tokens.find('other'), undefined);
  });

  it('hides expired rows and purges them', async () => {
    const codes = new KyselyAdapter('AuthorizationCode', handle.db, clock);
    await codes.upsert('short-lived', { jti: 'short-lived', grantId: 'g2' }, 10);
    assert.ok(await codes.find('short-lived'));
    now += 11_000;
    assert.equal(await codes.find('short-lived'), undefined);
    const purged = await purgeExpiredPayloads(handle.db, now);
    assert.ok(purged.deleted >= 1);
    const left = await handle.db
      .selectFrom('oidc_payload')
      .select('id')
      .where('id', '=', storageId('short-lived'))
      .execute();
    assert.equal(left.length, 0);
  });

  it('purges a round of EXPIRED_ROWS_PURGE at most, the earliest expired first, the rest in the next rounds, and nothing else', async () => {
    const perRound = EXPIRED_ROWS_PURGE.rows * EXPIRED_ROWS_PURGE.statements;
    const count = perRound * 2 + 7;
    const row = (id: string, expiresAt: number | null) => ({
      model: 'AccessToken',
      id,
      payload: '{}',
      grant_id: null,
      user_id: null,
      client_id: null,
      uid: null,
      expires_at: expiresAt,
    });
    // The earliest expired last in the table, so that the order is the index's, not the rows'.
    const expired = Array.from({ length: count }, (_, index) =>
      row(`batch-expired-${index}`, now - 1 - index),
    );
    for (let start = 0; start < expired.length; start += 500)
      await handle.db
        .insertInto('oidc_payload')
        .values(expired.slice(start, start + 500))
        .execute();
    await handle.db
      .insertInto('oidc_payload')
      .values([row('batch-live', now + 60_000), row('batch-forever', null)])
      .execute();
    const expiredLeft = async () =>
      (
        await handle.db
          .selectFrom('oidc_payload')
          .select('expires_at')
          .where('id', 'like', 'batch-expired-%')
          .orderBy('expires_at')
          .execute()
      ).map((each) => Number(each.expires_at));

    assert.deepEqual(await purgeExpiredPayloads(handle.db, now), { deleted: perRound, more: true });
    const afterFirst = await expiredLeft();
    assert.equal(afterFirst.length, count - perRound);
    assert.equal(afterFirst.at(-1), now - 1, 'the latest expired are left for the next round');
    assert.equal(afterFirst[0], now - 1 - (count - perRound - 1));
    assert.deepEqual(await purgeExpiredPayloads(handle.db, now), { deleted: perRound, more: true });
    assert.deepEqual(await purgeExpiredPayloads(handle.db, now), { deleted: 7, more: false });
    const left = await handle.db
      .selectFrom('oidc_payload')
      .select('id')
      .where('id', 'like', 'batch-%')
      .orderBy('id')
      .execute();
    assert.deepEqual(
      left.map((each) => each.id),
      ['batch-forever', 'batch-live'],
    );
    assert.deepEqual(await purgeExpiredPayloads(handle.db, now), { deleted: 0, more: false });
  });

  it('stops a purge after its current statement once the server closes, leaving the rest for the next', async () => {
    const count = EXPIRED_ROWS_PURGE.rows * 2;
    const expired = Array.from({ length: count }, (_, index) => ({
      model: 'AccessToken',
      id: `closing-expired-${index}`,
      payload: '{}',
      grant_id: null,
      user_id: null,
      client_id: null,
      uid: null,
      expires_at: now - 1,
    }));
    for (let start = 0; start < expired.length; start += 100)
      await handle.db
        .insertInto('oidc_payload')
        .values(expired.slice(start, start + 100))
        .execute();
    const closing = new AbortController();
    closing.abort();
    assert.deepEqual(await purgeExpiredPayloads(handle.db, now, closing.signal), {
      deleted: EXPIRED_ROWS_PURGE.rows,
      more: true,
    });
    assert.deepEqual(await purgeExpiredPayloads(handle.db, now), {
      deleted: count - EXPIRED_ROWS_PURGE.rows,
      more: false,
    });
  });

  it('consumes once: a second consume of the same code is invalid_grant', async () => {
    const codes = new KyselyAdapter('AuthorizationCode', handle.db, clock);
    await codes.upsert('code-1', { jti: 'code-1', grantId: 'g3' }, 60);
    const results = await Promise.allSettled([codes.consume('code-1'), codes.consume('code-1')]);
    assert.deepEqual(results.map((result) => result.status).sort(), ['fulfilled', 'rejected']);
    const rejected = results.find((result) => result.status === 'rejected') as PromiseRejectedResult;
    assert.equal((rejected.reason as { error?: string }).error, 'invalid_grant');
    const found = await codes.find('code-1');
    assert.equal(found?.consumed, Math.floor(now / 1000));
  });

  it('revokes by grant id only within its model, and destroys one row', async () => {
    const access = new KyselyAdapter('AccessToken', handle.db, clock);
    const refresh = new KyselyAdapter('RefreshToken', handle.db, clock);
    await access.upsert('at-g4', { jti: 'at-g4', grantId: 'g4' }, 60);
    await refresh.upsert('rt-g4', { jti: 'rt-g4', grantId: 'g4' }, 60);
    await access.upsert('at-g5', { jti: 'at-g5', grantId: 'g5' }, 60);
    await access.revokeByGrantId('g4');
    assert.equal(await access.find('at-g4'), undefined);
    assert.ok(await refresh.find('rt-g4'));
    assert.ok(await access.find('at-g5'));
    await refresh.destroy('rt-g4');
    assert.equal(await refresh.find('rt-g4'), undefined);
  });

  it('finds a session by uid and keeps its id, and upserts in place', async () => {
    const sessions = new KyselyAdapter('Session', handle.db, clock);
    await sessions.upsert('sess-1', { jti: 'sess-1', uid: 'uid-1', accountId: '9' }, 600);
    await sessions.upsert('sess-1', { jti: 'sess-1', uid: 'uid-1', accountId: '10' }, 600);
    const byUid = await sessions.findByUid('uid-1');
    assert.equal(byUid?.jti, 'sess-1');
    assert.equal(byUid?.accountId, '10');
    const count = await handle.db
      .selectFrom('oidc_payload')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('model', '=', 'Session')
      .executeTakeFirstOrThrow();
    assert.equal(Number(count.n), 1);
  });

  it('does not write a session saved again unchanged (the same payload, its expiry in the same second) over the row kept for it', async () => {
    const kept = new Map<string, StoredPayload>();
    const lookup: BearerLookup = {
      find: (db, model, id) => findPayload(db, model, id),
      findByUid: () => Promise.resolve(undefined),
      readAhead: () => undefined,
      wrote: (keys) => {
        if (keys) for (const key of keys) kept.delete(key);
        else kept.clear();
      },
      keptNow: (model, id) => kept.get(`${model} ${id}`),
    };
    const sessions = new KyselyAdapter('Session', handle.db, clock, {}, lookup);
    const id = storageId('sess-kept');
    const stored = () =>
      handle.db
        .selectFrom('oidc_payload')
        .select(['payload', 'expires_at'])
        .where('model', '=', 'Session')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
    const exp = Math.floor(now / 1000) + 600;
    const payload = { jti: 'sess-kept', uid: 'uid-kept', accountId: '9', exp };
    await sessions.upsert('sess-kept', payload, 600);
    const first = await stored();
    // As a request's find keeps it.
    const keep = async () => kept.set(`Session ${id}`, { ...(await findPayload(handle.db, 'Session', id))! });
    await keep();

    now += 400;
    await sessions.upsert('sess-kept', payload, 600);
    assert.deepEqual(await stored(), first, 'the same session, its expiry in the same second: not written');

    await sessions.upsert('sess-kept', { ...payload, accountId: '10' }, 600);
    assert.match((await stored()).payload, /"accountId":"10"/, 'a changed payload is written');
    assert.equal(kept.size, 0, 'and what was kept of it goes');

    await keep();
    now += 1_000;
    await sessions.upsert('sess-kept', { ...payload, accountId: '10', exp: exp + 1 }, 600);
    assert.equal((await stored()).expires_at, now + 600_000, 'an expiry a second later is written');

    await keep();
    kept.set(`Session ${id}`, { ...kept.get(`Session ${id}`)!, revoked_at: now });
    await sessions.upsert('sess-kept', { ...payload, accountId: '11', exp: exp + 1 }, 600);
    assert.match(
      (await stored()).payload,
      /"accountId":"11"/,
      'a kept row that is no longer live is no reference',
    );
    await keep();
    kept.set(`Session ${id}`, { ...kept.get(`Session ${id}`)!, expires_at: now + 600_000 - 1_500 });
    now += 10;
    await sessions.upsert('sess-kept', { ...payload, accountId: '11', exp: exp + 1 }, 600);
    assert.equal(
      (await stored()).expires_at,
      now + 600_000,
      'a kept expiry more than a second earlier is renewed',
    );
  });

  it('hands every find of one row a payload of its own, parsed once', async () => {
    const row: StoredPayload = {
      payload: JSON.stringify({
        accountId: '7',
        authorizations: { app: { sid: 's1', grantId: 'g1' } },
        amr: ['pwd'],
        nothing: null,
      }),
      expires_at: null,
      consumed_at: null,
      format: null,
      value_sha256: null,
      revoked_at: null,
    };
    // As the kept rows answer: the same row object at every find.
    const lookup: BearerLookup = {
      find: () => Promise.resolve(row),
      findByUid: () => Promise.resolve(row),
      readAhead: () => undefined,
      wrote: () => undefined,
      keptNow: () => undefined,
    };
    const sessions = new KyselyAdapter('Session', handle.db, clock, {}, lookup);
    const first = (await sessions.findByUid('u1')) as Record<string, unknown> & {
      authorizations: Record<string, Record<string, unknown>>;
      amr: string[];
    };
    assert.deepEqual({ ...first }, JSON.parse(row.payload));
    // The provider changes what it finds: the next find does not see it.
    first.authorizations.app!.sid = 'changed';
    first.amr.push('otp');
    first.accountId = '8';
    const second = await sessions.findByUid('u1');
    assert.deepEqual({ ...second }, JSON.parse(row.payload));
    assert.notEqual(second, first);
    assert.equal(JSON.stringify(row), JSON.stringify({ ...row }), 'the row reads as it was read');
  });

  it('copies parsed JSON exactly, a `__proto__` member included', () => {
    const text = '{"a":[1,"x",{"b":null,"c":[]}],"__proto__":{"polluted":true},"d":{"e":false}}';
    const copy = copyOfJson(JSON.parse(text)) as Record<string, unknown>;
    assert.deepEqual(copy, JSON.parse(text));
    assert.equal(Object.getPrototypeOf(copy), Object.prototype);
    assert.equal(JSON.stringify(copy), text);
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  });
});
