import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createLoginThrottle, type LoginThrottle } from '../../src/oidc/interactions/throttle.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/**
 * A name typed into a password form, an account an identity provider proved and a user's
 * second-factor codes are never one budget, even when they are the same text (`eve:95465499`); the
 * per-address budget counts them all.
 */
describe(`login throttle: password and external accounts apart (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let throttle: LoginThrottle;
  const character = 'eve:95465499';

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
    throttle = createLoginThrottle(handle.db, handle.kind, {
      maxFailuresPerAccountAndAddress: 2,
      maxFailuresPerAccount: 3,
      maxCodeFailuresPerUser: 1000,
      maxFailuresPerAddress: 100,
      failureWindowSeconds: 900,
    });
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  const forgetFailures = () => handle.db.deleteFrom('login_failure').execute();

  it("does not spend a character's budget on the typed name of the same text, nor the other way", async () => {
    await forgetFailures();
    for (const [i, typed] of [character, character.toUpperCase(), 'ｅｖｅ:95465499'].entries()) {
      assert.ok(await throttle.reserve(typed, `198.51.100.${i + 1}`), typed);
    }
    assert.equal(
      await throttle.reserve(character, '198.51.100.9'),
      undefined,
      "the typed name's spellings share one budget, now spent",
    );
    const eve = await throttle.reserveExternal(character, '203.0.113.1');
    assert.ok(eve, 'the character still has its budget');
    assert.equal(eve.method, 'external');

    await forgetFailures();
    for (let i = 0; i < 3; i += 1)
      assert.ok(await throttle.reserveExternal(character, `198.51.100.${i + 1}`));
    assert.equal(await throttle.reserveExternal(character, '198.51.100.9'), undefined);
    assert.ok(
      await throttle.reserve(character, '203.0.113.1'),
      "the typed name keeps its budget after the character's is spent",
    );
  });

  it('forgets on success only the failures of its own method', async () => {
    await forgetFailures();
    const address = '192.0.2.7';
    assert.ok(await throttle.reserve(character, address));
    const eve = await throttle.reserveExternal(character, address);
    assert.ok(eve);
    await throttle.succeeded(eve);
    const left = await handle.db.selectFrom('login_failure').select(['method', 'username']).execute();
    assert.deepEqual(left, [{ method: 'password', username: character }]);
  });

  it('gives back the place of a released attempt alone: the earlier failures of its account stay', async () => {
    await forgetFailures();
    const address = '192.0.2.9';
    assert.ok(await throttle.reserveExternal(character, address), 'an earlier failure');
    const unanswered = await throttle.reserveExternal(character, address);
    assert.ok(unanswered);
    assert.equal(await throttle.reserveExternal(character, address), undefined, 'the budget is spent');
    await throttle.release(unanswered);
    const left = await handle.db.selectFrom('login_failure').select(['method', 'username']).execute();
    assert.deepEqual(left, [{ method: 'external', username: character }]);
    assert.ok(await throttle.reserveExternal(character, address), 'the released place is free again');
  });

  it('counts every method against the per-address budget', async () => {
    await forgetFailures();
    const small = createLoginThrottle(handle.db, handle.kind, {
      maxFailuresPerAccountAndAddress: 10,
      maxFailuresPerAccount: 10,
      maxCodeFailuresPerUser: 10,
      maxFailuresPerAddress: 2,
      failureWindowSeconds: 900,
    });
    const address = '192.0.2.8';
    assert.ok(await small.reserve('alice', address));
    assert.ok(await small.reserveExternal(character, address));
    assert.equal(await small.reserve('bob', address), undefined);
    assert.equal(await small.reserveExternal('eve:1', address), undefined);
    assert.equal(await small.reserveCode(1, address), undefined);
  });

  it("counts a user's second-factor codes against the user, apart from any typed name", async () => {
    await forgetFailures();
    for (let i = 0; i < 3; i += 1) assert.ok(await throttle.reserveCode(7, `198.51.100.${i + 1}`));
    assert.equal(await throttle.reserveCode(7, '198.51.100.9'), undefined, "the user's codes are spent");
    assert.ok(await throttle.reserve('user:7', '203.0.113.1'), 'the typed name user:7 keeps its budget');
    assert.ok(await throttle.reserveCode(8, '203.0.113.1'), 'another user keeps theirs');
    const rows = await handle.db
      .selectFrom('login_failure')
      .select(['method', 'username'])
      .where('method', '=', 'code')
      .distinct()
      .orderBy('username')
      .execute();
    assert.deepEqual(rows, [
      { method: 'code', username: 'user:7' },
      { method: 'code', username: 'user:8' },
    ]);
  });

  it("bounds a user's codes from all addresses by their own, smaller budget, not the account's", async () => {
    await forgetFailures();
    const codes = createLoginThrottle(handle.db, handle.kind, {
      maxFailuresPerAccountAndAddress: 5,
      maxFailuresPerAccount: 50,
      maxCodeFailuresPerUser: 4,
      maxFailuresPerAddress: 100,
      failureWindowSeconds: 900,
    });
    for (let i = 0; i < 4; i += 1) assert.ok(await codes.reserveCode(7, `198.51.100.${i + 1}`));
    assert.equal(await codes.reserveCode(7, '203.0.113.9'), undefined, 'the fifth code, from anywhere');
    for (let i = 0; i < 5; i += 1)
      assert.ok(await codes.reserve('alice', `198.51.100.${i + 1}`), 'a password keeps the account budget');
    assert.ok(await codes.reserveCode(8, '198.51.100.1'), 'another user keeps their codes');
  });
});
