import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose';
import type { Config } from '../../src/config/load.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { createKeyService, KeyError, type KeyService } from '../../src/keys/service.ts';
import { createKeyStore } from '../../src/keys/store.ts';
import type { KeyChange, KeyStore } from '../../src/keys/types.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { openInstance } from './helpers.ts';

const ISSUER = 'http://127.0.0.1/o';

function refusal(code: KeyError['code'], pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof KeyError, `expected a KeyError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  };
}

/** A token signed with one loaded key (any status: a withdrawn key's tokens are the point). */
function signWith(store: KeyStore, kid: string): Promise<string> {
  const key = store.loadedKeys().find((candidate) => candidate.kid === kid)!;
  return new SignJWT({ sub: 'alice' })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience('test-client')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(key.privateKey);
}

const verifies = (store: KeyStore, token: string) =>
  jwtVerify(token, createLocalJWKSet(store.publicJwks()), { issuer: ISSUER, audience: 'test-client' }).then(
    () => true,
    () => false,
  );

describe(`signing keys: withdrawing a leaked key (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let config: Config;
  let handle: DatabaseHandle;
  let keys: KeyService;
  const changes: KeyChange[] = [];
  /** What the service told its listener of withdrawals, in order. */
  const withdrawals = () => changes.filter((change) => change.action === 'withdrawn');
  let clock = Date.now();
  const now = () => clock;
  /** Moves the clock on until the next key created now has been published long enough. */
  const untilPublished = () => {
    clock += config.keys.jwksCacheSeconds * 1000 + config.keys.reloadIntervalMs;
  };
  const statusOf = async (kid: string) => (await keys.list()).find((key) => key.kid === kid);

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    ({ config, handle } = await openInstance(database));
    keys = createKeyService(handle, config, undefined, {
      now,
      onKeyChange: (change) => changes.push(change),
    });
    await keys.ensureActiveKey();
    untilPublished();
    await keys.rotate();
  });
  after(async () => {
    await handle?.close();
    await database.drop();
  });

  it('takes a retired key out of JWKS at once: every key store drops it at its next reload, and tokens it signed stop verifying', async () => {
    const second = await openInstance(database);
    // Ten minutes between the stores' own reloads: the withdrawal is seen by the reload the test
    // makes, not by a timer reload just before it.
    const options = { now, reloadIntervalMs: 600_000 };
    const stores = [
      await createKeyStore(handle, config, createLogger(config), options),
      await createKeyStore(second.handle, second.config, createLogger(second.config), options),
    ];
    try {
      const retired = (await keys.list()).find((key) => key.status === 'retired')!;
      assert.ok(retired.publishUntil! > clock, 'still within its publication window');
      const token = await signWith(stores[0]!, retired.kid);
      for (const store of stores) assert.equal(await verifies(store, token), true);

      const listed = await keys.list();
      const preview = await keys.withdraw(retired.kid, { dryRun: true });
      assert.deepEqual(
        [
          preview.dryRun,
          preview.formerStatus,
          preview.key.status,
          preview.key.withdrawnAt,
          preview.activatedKid,
        ],
        [true, 'retired', 'removed', clock, null],
      );
      assert.deepEqual(await keys.list(), listed, 'a dry run changes nothing');
      for (const store of stores) assert.equal(await store.reload(), false);

      const result = await keys.withdraw(retired.kid, { actor: 'cli:ops' });
      assert.deepEqual(
        [result.dryRun, result.formerStatus, result.activatedKid, result.nextKid, result.unpublished],
        [false, 'retired', null, null, null],
      );
      const row = await handle.db
        .selectFrom('signing_key')
        .selectAll()
        .where('kid', '=', retired.kid)
        .executeTakeFirstOrThrow();
      assert.equal(row.status, 'removed');
      assert.equal(row.private_jwk_encrypted, null, 'the private part is erased');
      assert.deepEqual(
        [Number(row.removed_at), Number(row.withdrawn_at), Number(row.publish_until)],
        [clock, clock, clock],
        'removed now, not when its publication would have ended',
      );
      assert.equal(Number(row.retired_at), retired.retiredAt, 'when it stopped signing stays as it was');
      assert.deepEqual(result.key, await statusOf(retired.kid));

      for (const store of stores) {
        assert.equal(await store.reload(), true, 'the change is seen at the next reload');
        assert.ok(!store.publicJwks().keys.some((jwk) => jwk.kid === retired.kid), 'JWKS no longer lists it');
        assert.ok(!store.signingJwks().keys.some((jwk) => jwk.kid === retired.kid), 'the provider loses it');
        assert.equal(await verifies(store, token), false, 'a token it signed no longer verifies');
      }
      assert.deepEqual(withdrawals(), [
        {
          action: 'withdrawn',
          kid: retired.kid,
          formerStatus: 'retired',
          activatedKid: null,
          nextKid: null,
          forced: null,
          actor: 'cli:ops',
        },
      ]);
    } finally {
      for (const store of stores) store.close();
      await second.handle.close();
    }
  });

  it('refuses a removed key (withdrawn or expired), an unknown kid and a malformed one, changing nothing', async () => {
    const withdrawn = (await keys.list()).find((key) => key.withdrawnAt !== null)!;
    const at = new Date(withdrawn.withdrawnAt!).toISOString();
    await assert.rejects(
      keys.withdraw(withdrawn.kid),
      refusal(
        'already_removed',
        new RegExp(`^signing key ${withdrawn.kid} was already withdrawn at ${at}: `),
      ),
    );
    // A key removed when its publication ended is not published either: nothing to withdraw.
    const next = (await keys.list()).find((key) => key.status === 'next')!;
    await keys.retire(next.kid);
    clock += 1;
    assert.deepEqual(await keys.removeExpired(clock), [next.kid]);
    await assert.rejects(
      keys.withdraw(next.kid, { dryRun: true }),
      refusal('already_removed', /was removed at .* when its publication ended: JWKS no longer lists it/),
    );
    await assert.rejects(
      keys.withdraw('A'.repeat(43)),
      refusal('unknown_kid', /no signing key has kid A{43}/),
    );
    await assert.rejects(keys.withdraw('a kid?'), refusal('invalid_kid', /"a kid\?" is not a key id/));
    assert.equal(withdrawals().length, 1, 'refusals are not withdrawals');
    await keys.prepareNext();
  });

  it('withdraws the active key by activating the next one in the same step, refused while relying parties may not know it unless forced', async () => {
    const listed = await keys.list();
    const active = listed.find((key) => key.status === 'active')!;
    const next = listed.find((key) => key.status === 'next')!;

    // The next key was prepared a moment ago: caches of the JWKS may lack it.
    const early = await keys.withdraw(active.kid, { dryRun: true });
    assert.deepEqual(
      [early.formerStatus, early.activatedKid, early.promotedNext, early.unpublished?.reason],
      ['active', next.kid, true, 'recent_next_key'],
    );
    await assert.rejects(
      keys.withdraw(active.kid),
      refusal(
        'unpublished_key',
        new RegExp(
          `^${active.kid} is the active key and withdrawing it activates another in its place, but the next key ${next.kid} was published only .*; nothing was withdrawn$`,
        ),
      ),
    );
    // The advice is a withdrawal's, not a rotation's: from when the next key can take over.
    const safeFrom = new Date(early.unpublished!.safeAt!).toISOString();
    assert.ok(
      early.unpublished!.message.endsWith(
        `would reject the ID tokens it signs. It can take the active key's place without that risk from ${safeFrom}`,
      ),
      early.unpublished!.message,
    );
    assert.doesNotMatch(early.unpublished!.message, /[Rr]otat/);
    assert.deepEqual(await keys.list(), listed, 'a refused withdrawal changes nothing');

    untilPublished();
    assert.equal((await keys.withdraw(active.kid, { dryRun: true })).unpublished, null);
    const result = await keys.withdraw(active.kid);
    assert.deepEqual(
      [result.formerStatus, result.activatedKid, result.promotedNext, result.unpublished],
      ['active', next.kid, true, null],
    );
    const after = await keys.list();
    assert.equal(after.find((key) => key.status === 'active')?.kid, next.kid);
    assert.equal(after.find((key) => key.status === 'next')?.kid, result.nextKid);
    const withdrawn = after.find((key) => key.kid === active.kid)!;
    assert.deepEqual(
      [withdrawn.status, withdrawn.retiredAt, withdrawn.publishUntil, withdrawn.withdrawnAt],
      ['removed', clock, clock, clock],
    );
    assert.deepEqual(withdrawals().at(-1), {
      action: 'withdrawn',
      kid: active.kid,
      formerStatus: 'active',
      activatedKid: next.kid,
      nextKid: result.nextKid,
      forced: null,
      actor: null,
    });
    assert.ok(result.nextKid, 'the event names the new next key');
  });

  it('withdraws the active key with no next key only when forced, activating a new key; withdraws a next key', async () => {
    const next = (await keys.list()).find((key) => key.status === 'next')!;
    const nextWithdrawal = await keys.withdraw(next.kid);
    assert.deepEqual([nextWithdrawal.formerStatus, nextWithdrawal.activatedKid], ['next', null]);
    assert.ok(
      !(await keys.list()).some((key) => key.status === 'next'),
      'no next key is prepared in its place',
    );

    const active = (await keys.list()).find((key) => key.status === 'active')!;
    const preview = await keys.withdraw(active.kid, { dryRun: true });
    assert.deepEqual([preview.activatedKid, preview.promotedNext], [null, false]);
    await assert.rejects(
      keys.withdraw(active.kid),
      refusal(
        'unpublished_key',
        /but there is no next key \(it was retired or withdrawn\), so a new key would sign at once; .* fetched before the withdrawal would reject the ID tokens the new key signs\. To withdraw without that risk, prepare a next key \(aa-oidc keys prepare-next\) and withdraw once it has been published for 24 h; nothing was withdrawn$/,
      ),
    );
    assert.doesNotMatch(preview.unpublished!.message, /[Rr]otat/);
    const forced = await keys.withdraw(active.kid, { force: true });
    assert.equal(forced.promotedNext, false);
    assert.equal(forced.unpublished?.reason, 'no_next_key', 'a forced withdrawal says what it overrode');
    const after = await keys.list();
    assert.deepEqual(
      after.filter((key) => key.status !== 'removed').map((key) => [key.kid, key.status]),
      [
        [forced.activatedKid, 'active'],
        [forced.nextKid, 'next'],
      ],
    );
    assert.equal(withdrawals().at(-1)?.forced, 'no_next_key');
  });

  it('withdraws only in the state its preview showed: once a rotation came first it refuses, changing nothing', async () => {
    untilPublished();
    const first = await keys.rotate();
    const retired = first.retiredKid!;
    const retiredPreview = await keys.withdraw(retired, { dryRun: true });
    const nextPreview = await keys.withdraw(first.nextKid!, { dryRun: true });
    assert.deepEqual(nextPreview.shown, {
      status: 'next',
      activeKid: first.activatedKid,
      nextKid: first.nextKid,
    });
    assert.deepEqual(retiredPreview.shown, { ...nextPreview.shown, status: 'retired' });

    // Another operator rotates meanwhile (at once: the retired key stays published): the next key
    // shown is the active key now.
    const second = await keys.rotate({ force: true });
    const listed = await keys.list();
    const count = withdrawals().length;
    await assert.rejects(
      keys.withdraw(first.nextKid!, { expect: nextPreview.shown, force: true }),
      refusal(
        'keys_changed',
        new RegExp(
          `^signing key ${first.nextKid} is the active key now, not the next key as when this withdrawal was shown .*; nothing was withdrawn: review the withdrawal again$`,
        ),
      ),
    );
    // The retired key is still retired, but the keys around it are others.
    await assert.rejects(
      keys.withdraw(retired, { expect: retiredPreview.shown }),
      refusal(
        'keys_changed',
        new RegExp(
          `^the signing keys changed since this withdrawal was shown \\(active key ${second.activatedKid}, was ${first.activatedKid}; next key ${second.nextKid}, was ${first.nextKid}: `,
        ),
      ),
    );
    assert.deepEqual(await keys.list(), listed, 'a refused withdrawal changes nothing');
    assert.equal(withdrawals().length, count, 'refusals are not withdrawals');

    const fresh = await keys.withdraw(retired, { dryRun: true });
    const done = await keys.withdraw(retired, { expect: fresh.shown });
    assert.equal(done.key.status, 'removed');
    assert.deepEqual(done.shown, fresh.shown);
  });
});
