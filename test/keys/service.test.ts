import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { Config } from '../../src/config/load.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { decryptPrivateJwk, deriveKeyEncryptionKey } from '../../src/keys/crypto.ts';
import { createKeyService, KeyError, type KeyService } from '../../src/keys/service.ts';
import type { KeyChange } from '../../src/keys/types.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { openInstance } from './helpers.ts';

async function rows(handle: DatabaseHandle) {
  return handle.db.selectFrom('signing_key').selectAll().orderBy('created_at').orderBy('kid').execute();
}

async function statuses(handle: DatabaseHandle): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const row of await rows(handle)) counts[row.status] = (counts[row.status] ?? 0) + 1;
  return counts;
}

function refusal(code: KeyError['code'], pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof KeyError, `expected a KeyError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  };
}

describe(`signing keys: KeyService (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let config: Config;
  let handle: DatabaseHandle;
  let keys: KeyService;
  // The services' clock: a rotation waits until relying parties caching the JWKS hold the next key.
  let clock = Date.now();
  const now = () => clock;
  /** Moves the clock on until the next key created now has been published long enough. */
  const untilPublished = () => {
    clock += config.keys.jwksCacheSeconds * 1000 + config.keys.reloadIntervalMs;
  };
  before(async () => {
    database = await createTestDatabase({ migrated: true });
    // The longest token lifetime (refresh, 7200 s) decides how long a retired key stays published.
    ({ config, handle } = await openInstance(database, {
      tokens: { accessTokenTtl: 600, refreshTokenTtl: 7200, idTokenTtl: 900 },
      keys: { retiredRetentionSeconds: 60 },
    }));
    keys = createKeyService(handle, config, undefined, { now });
  });
  after(async () => {
    await handle?.close();
    await database.drop();
  });

  it('creates an active and a next key on first run, exactly once even when two instances start together', async () => {
    const second = await openInstance(database, {
      tokens: { accessTokenTtl: 600, refreshTokenTtl: 7200, idTokenTtl: 900 },
    });
    try {
      const other = createKeyService(second.handle, second.config, undefined, { now });
      const [mine, theirs] = await Promise.all([keys.ensureActiveKey(), other.ensureActiveKey()]);
      assert.equal(mine.kid, theirs.kid);
      assert.equal(mine.status, 'active');
      assert.deepEqual(await statuses(handle), { active: 1, next: 1 });
      assert.equal((await keys.ensureActiveKey()).kid, mine.kid, 'a later start keeps the key');
      assert.deepEqual(await statuses(handle), { active: 1, next: 1 });
    } finally {
      await second.handle.close();
    }
  });

  it('stores the private key encrypted: no private member of the JWK appears in the stored row', async () => {
    const encryptionKey = deriveKeyEncryptionKey(config.secretKey);
    for (const row of await rows(handle)) {
      assert.ok(row.private_jwk_encrypted, 'a published key keeps its private part');
      const privateJwk = decryptPrivateJwk(row.private_jwk_encrypted, row.kid, encryptionKey);
      const storedText = JSON.stringify(row);
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const) {
        const value = privateJwk[member];
        assert.ok(typeof value === 'string' && value.length > 40, `decrypted JWK has ${member}`);
        assert.ok(!storedText.includes(value), `${member} of ${row.kid} is not stored in clear`);
      }
      assert.deepEqual(Object.keys(JSON.parse(row.public_jwk)).sort(), ['e', 'kty', 'n']);
      assert.equal(privateJwk.n, (JSON.parse(row.public_jwk) as JWK).n);
    }
  });

  it('uses the RFC 7638 thumbprint of the public key as kid', async () => {
    for (const row of await rows(handle)) {
      const publicJwk = JSON.parse(row.public_jwk) as JWK;
      assert.equal(row.kid, await calculateJwkThumbprint(publicJwk, 'sha256'));
      assert.equal(row.alg, 'RS256');
    }
  });

  it('rotates: the next key becomes active, the active one retires for the longest token lifetime, a new next key appears', async () => {
    const before = await keys.list();
    const active = before.find((key) => key.status === 'active')!;
    const next = before.find((key) => key.status === 'next')!;

    untilPublished();
    const preview = await keys.rotate({ dryRun: true });
    assert.equal(preview.dryRun, true);
    assert.equal(preview.activatedKid, next.kid);
    assert.equal(preview.retiredKid, active.kid);
    assert.deepEqual(await keys.list(), before, 'a dry run changes nothing');

    const result = await keys.rotate();
    assert.equal(result.activatedKid, next.kid);
    assert.equal(result.promotedNext, true);
    assert.equal(result.retiredKid, active.kid);
    assert.ok(result.nextKid && ![active.kid, next.kid].includes(result.nextKid));

    const after = await keys.list();
    assert.deepEqual(
      after.map((key) => [key.kid, key.status]),
      [
        [next.kid, 'active'],
        [result.nextKid, 'next'],
        [active.kid, 'retired'],
      ],
    );
    const retired = after.find((key) => key.kid === active.kid)!;
    assert.ok(retired.retiredAt !== null);
    // The longest lifetime after the last token an instance not yet reloaded can sign with it.
    assert.equal(retired.publishUntil, retired.retiredAt + 7200 * 1000 + config.keys.reloadIntervalMs);
    assert.equal(result.retiredPublishUntil, retired.publishUntil);
    const promoted = after.find((key) => key.kid === next.kid)!;
    assert.equal(promoted.activatedAt, retired.retiredAt);
    assert.equal(keys.retiredPublicationSeconds(), 7200);
  });

  it('refuses to retire the active key, a retired key, an unknown kid and a malformed one', async () => {
    const list = await keys.list();
    const active = list.find((key) => key.status === 'active')!;
    const retired = list.find((key) => key.status === 'retired')!;
    await assert.rejects(keys.retire(active.kid), refusal('active_key', /active key.*aa-oidc keys rotate/));
    await assert.rejects(
      keys.retire(active.kid, { dryRun: true }),
      refusal('active_key', /would leave nothing to sign with/),
    );
    await assert.rejects(keys.retire(retired.kid), refusal('not_retirable', /already retired/));
    const unknown = 'A'.repeat(43);
    await assert.rejects(keys.retire(unknown), refusal('unknown_kid', /no signing key has kid A{43}/));
    await assert.rejects(keys.retire('not a kid'), refusal('invalid_kid', /"not a kid" is not a key id/));
    assert.deepEqual(await keys.list(), list, 'refusals change nothing');
  });

  it('retires a next key, which leaves JWKS at the next clean-up; retired keys are removed once their publication ends', async () => {
    const list = await keys.list();
    const next = list.find((key) => key.status === 'next')!;
    const oldRetired = list.find((key) => key.status === 'retired')!;

    const preview = await keys.retire(next.kid, { dryRun: true });
    assert.equal(preview.key.status, 'retired');
    assert.deepEqual(await keys.list(), list);

    const retired = await keys.retire(next.kid);
    assert.equal(retired.key.status, 'retired');
    assert.equal(retired.key.publishUntil, retired.key.retiredAt);

    // The retired next key's window is over at once; the rotated key's lasts 7200 s.
    const justBefore = oldRetired.publishUntil! - 1;
    assert.deepEqual(await keys.removeExpired(justBefore), [next.kid]);
    const removed = (await rows(handle)).find((row) => row.kid === next.kid)!;
    assert.equal(removed.status, 'removed');
    assert.equal(removed.private_jwk_encrypted, null, 'a removed key loses its private part');
    assert.equal(Number(removed.removed_at), justBefore);

    assert.deepEqual(await keys.removeExpired(oldRetired.publishUntil!), [oldRetired.kid]);
    assert.deepEqual(await keys.removeExpired(oldRetired.publishUntil! + 1), []);
    assert.deepEqual(await statuses(handle), { active: 1, removed: 2 });

    // No next key now: the following rotation activates a new key directly and prepares a next one
    // (forced: relying parties meet that key only when it signs).
    const rotation = await keys.rotate({ force: true });
    assert.equal(rotation.promotedNext, false);
    assert.deepEqual(await statuses(handle), { active: 1, next: 1, retired: 1, removed: 2 });
    assert.deepEqual(
      (await keys.list()).map((key) => key.status),
      ['active', 'next', 'retired', 'removed', 'removed'],
    );
  });

  it('never leaves two active keys: concurrent rotations serialise, and the database refuses a second active row', async () => {
    const second = await openInstance(database);
    try {
      const other = createKeyService(second.handle, second.config, undefined, { now });
      // Forced: the later one activates the next key the earlier one has just created.
      const [first, then] = await Promise.all([keys.rotate({ force: true }), other.rotate({ force: true })]);
      const counts = await statuses(handle);
      assert.equal(counts.active, 1);
      assert.equal(counts.next, 1);
      const active = (await keys.list()).find((key) => key.status === 'active')!;
      assert.ok([first.activatedKid, then.activatedKid].includes(active.kid));
      // The later rotation retired what the earlier one activated.
      assert.ok(
        first.retiredKid === then.activatedKid || then.retiredKid === first.activatedKid,
        'one rotation saw the other',
      );

      const row = (await rows(handle)).find((candidate) => candidate.status === 'retired')!;
      await assert.rejects(
        handle.db.updateTable('signing_key').set({ status: 'active' }).where('kid', '=', row.kid).execute(),
        /unique|UNIQUE/,
      );
    } finally {
      await second.handle.close();
    }
  });

  it('rotates as previewed only while the keys are the ones the preview showed', async () => {
    untilPublished();
    const preview = await keys.rotate({ dryRun: true });
    const expect = { activeKid: preview.retiredKid, nextKid: preview.activatedKid };
    const done = await keys.rotate({ expect });
    assert.equal(done.activatedKid, expect.nextKid);
    const after = await keys.list();
    // The same confirmation again (a form sent twice): the next key is the one prepared just now.
    await assert.rejects(
      keys.rotate({ expect }),
      refusal('keys_changed', /changed since this rotation was shown/),
    );
    assert.deepEqual(await keys.list(), after, 'a refused rotation changes nothing');
  });

  it('activates no key relying parties caching the JWKS may not hold yet, unless forced, saying from when it is safe', async () => {
    const listed = await keys.list();
    const next = listed.find((key) => key.status === 'next')!;
    // A copy of the JWKS may be kept for keys.jwksCacheSeconds; every instance publishes a key written
    // elsewhere within keys.reloadIntervalMs.
    const safeAt = next.createdAt + config.keys.jwksCacheSeconds * 1000 + config.keys.reloadIntervalMs;
    clock = safeAt - 1;
    const early = await keys.rotate({ dryRun: true });
    assert.equal(early.unpublished?.reason, 'recent_next_key');
    assert.equal(early.unpublished?.safeAt, safeAt);
    const recent = new RegExp(
      `^the next key ${next.kid} was published only 24 h ago \\(${new Date(next.createdAt).toISOString()}\\); ` +
        'relying parties may keep a copy of the JWKS for up to 24 h \\(keys.jwksCacheSeconds\\), .* ' +
        `Rotating is safe from ${new Date(safeAt).toISOString()}; nothing was rotated$`,
    );
    await assert.rejects(keys.rotate(), refusal('unpublished_key', recent));
    await assert.rejects(
      keys.rotate({ expect: { activeKid: early.retiredKid, nextKid: early.activatedKid } }),
      refusal('unpublished_key', recent),
    );
    assert.deepEqual(await keys.list(), listed, 'a refused rotation changes nothing');

    clock = safeAt;
    assert.equal((await keys.rotate({ dryRun: true })).unpublished, null);
    const rotation = await keys.rotate();
    assert.equal(rotation.activatedKid, next.kid);
    assert.equal(rotation.unpublished, null);

    // The next key it just created is published from now on: rotating again at once is refused...
    await assert.rejects(keys.rotate(), refusal('unpublished_key', /published only 0 s ago/));
    // ...and so is activating a key never published, when the next key was retired.
    await keys.retire(rotation.nextKid!);
    const unseen = await keys.rotate({ dryRun: true });
    assert.equal(unseen.promotedNext, false);
    assert.deepEqual([unseen.unpublished?.reason, unseen.unpublished?.safeAt], ['no_next_key', null]);
    await assert.rejects(
      keys.rotate(),
      refusal(
        'unpublished_key',
        /^there is no next key \(it was retired or withdrawn\), so a new key would sign at once; .*nothing was rotated$/,
      ),
    );
    const forced = await keys.rotate({ force: true });
    assert.equal(forced.promotedNext, false);
    assert.equal(forced.retiredKid, next.kid);
    assert.equal(forced.unpublished?.reason, 'no_next_key', 'a forced rotation says what it overrode');
    assert.equal((await keys.list()).find((key) => key.status === 'active')?.kid, forced.activatedKid);
  });

  it('prepares a next key after a retirement, activating nothing, so that the rotation needs no force once it is published', async () => {
    const iso = (time: number) => new Date(time).toISOString();
    const listed = await keys.list();
    const active = listed.find((key) => key.status === 'active')!;
    const next = listed.find((key) => key.status === 'next')!;
    // One next key at most: which key a rotation activates is never a guess.
    const existing = new RegExp(
      `^there is already a next key, ${next.kid}, published since ${iso(next.createdAt)}: a rotation activates it ` +
        `\\(without --force from ${iso(next.createdAt + config.keys.jwksCacheSeconds * 1000 + config.keys.reloadIntervalMs)}\\); ` +
        `nothing was prepared\\. To replace it, retire it first \\(aa-oidc keys retire ${next.kid}\\)$`,
    );
    await assert.rejects(keys.prepareNext(), refusal('next_key_exists', existing));
    await assert.rejects(keys.prepareNext({ dryRun: true }), refusal('next_key_exists', existing));
    assert.deepEqual(await keys.list(), listed, 'a refusal changes nothing');

    await keys.retire(next.kid);
    // Without a next key, the refused rotation points the way.
    await assert.rejects(
      keys.rotate(),
      refusal(
        'unpublished_key',
        /Prepare a next key instead \(aa-oidc keys prepare-next\) and rotate once it has been published for 24 h; nothing was rotated$/,
      ),
    );
    const safeAt = (publishedAt: number) =>
      publishedAt + config.keys.jwksCacheSeconds * 1000 + config.keys.reloadIntervalMs;
    const preview = await keys.prepareNext({ dryRun: true });
    assert.deepEqual(preview, { dryRun: true, kid: null, rotationSafeAt: safeAt(clock), removedKids: [] });
    assert.ok(!(await keys.list()).some((key) => key.status === 'next'), 'a dry run changes nothing');

    const prepared = await keys.prepareNext();
    const after = await keys.list();
    const published = after.find((key) => key.status === 'next')!;
    assert.equal(published.kid, prepared.kid);
    assert.equal(prepared.rotationSafeAt, safeAt(published.createdAt));
    assert.equal(after.find((key) => key.status === 'active')?.kid, active.kid, 'nothing was activated');
    await assert.rejects(keys.prepareNext(), refusal('next_key_exists', /nothing was prepared/));

    // Published from now: a rotation waits as after any other (not as for a key never published)...
    const early = await keys.rotate({ dryRun: true });
    assert.deepEqual(
      [early.unpublished?.reason, early.unpublished?.safeAt],
      ['recent_next_key', prepared.rotationSafeAt],
    );
    // ...and activates it without force from the time it said.
    clock = prepared.rotationSafeAt;
    const rotation = await keys.rotate();
    assert.deepEqual(
      [rotation.activatedKid, rotation.retiredKid, rotation.unpublished],
      [prepared.kid, active.kid, null],
    );
  });

  it('imports a key as the next key: published now, activated by a later rotation; refused while there is a next key', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const next = (await keys.list()).find((key) => key.status === 'next')!;
    await assert.rejects(
      keys.importKey(pem, { as: 'next' }),
      refusal(
        'next_key_exists',
        new RegExp(`^there is already a next key, ${next.kid}, .*nothing was imported\\. To replace it`),
      ),
    );
    await assert.rejects(
      keys.importKey(pem, { as: 'next', dryRun: true }),
      refusal('next_key_exists', /nothing was imported/),
    );
    await keys.retire(next.kid);
    const active = (await keys.list()).find((key) => key.status === 'active')!;
    const dry = await keys.importKey(pem, { as: 'next', dryRun: true });
    assert.deepEqual(
      [dry.status, dry.retiredKid, dry.publishUntil, dry.rotationSafeAt],
      ['next', null, null, clock + config.keys.jwksCacheSeconds * 1000 + config.keys.reloadIntervalMs],
    );
    const imported = await keys.importKey(pem, { as: 'next' });
    const listed = await keys.list();
    assert.equal(listed.find((key) => key.status === 'next')?.kid, imported.kid);
    assert.equal(listed.find((key) => key.status === 'active')?.kid, active.kid);
    assert.equal((await keys.rotate({ dryRun: true })).unpublished?.safeAt, imported.rotationSafeAt);
    await assert.rejects(
      keys.importKey(pem, { as: 'pending' as never }),
      refusal('invalid_key', /cannot import a key as "pending": use active, next or retired/),
    );
  });

  it('activates a first key without asking: with no active key, nothing has been signed yet', async () => {
    const fresh = await createTestDatabase({ migrated: true });
    const instance = await openInstance(fresh);
    try {
      const service = createKeyService(instance.handle, instance.config, undefined, { now });
      assert.equal((await service.rotate({ dryRun: true })).unpublished, null);
      const first = await service.rotate();
      assert.deepEqual([first.promotedNext, first.retiredKid, first.unpublished], [false, null, null]);
    } finally {
      await instance.handle.close();
      await fresh.drop();
    }
  });
  it('tells its listener of every committed change, with the actor and what a forced one overrode; dry runs and refusals not', async () => {
    const fresh = await createTestDatabase({ migrated: true });
    const instance = await openInstance(fresh);
    const changes: KeyChange[] = [];
    let failing = false;
    try {
      const service = createKeyService(instance.handle, instance.config, undefined, {
        now,
        onKeyChange: (change) => {
          if (failing) throw new Error('the audit is down');
          changes.push(change);
        },
      });
      // A first start: nobody asked for the key, so the actor is the system.
      const first = await service.ensureActiveKey();
      const firstNext = (await service.list()).find((key) => key.status === 'next')!;
      await service.ensureActiveKey();
      assert.deepEqual(changes, [
        { action: 'created', kid: first.kid, formerStatus: null, nextKid: firstNext.kid, actor: 'system' },
      ]);

      await service.rotate({ dryRun: true, actor: 'cli:ops' });
      await assert.rejects(
        service.rotate({ actor: 'cli:ops' }),
        refusal('unpublished_key', /nothing was rotated/),
      );
      const rotation = await service.rotate({ force: true, actor: 'cli:ops' });
      await service.retire(rotation.nextKid!, { dryRun: true, actor: 'admin:root' });
      await service.retire(rotation.nextKid!, { actor: 'admin:root' });
      await service.prepareNext({ dryRun: true, actor: 'admin:root' });
      const prepared = await service.prepareNext({ actor: 'admin:root' });
      await assert.rejects(service.prepareNext({ actor: 'admin:root' }), refusal('next_key_exists', /./));
      const pems = [2048, 2048, 2048].map(() =>
        generateKeyPairSync('rsa', { modulusLength: 2048 })
          .privateKey.export({ format: 'pem', type: 'pkcs8' })
          .toString(),
      );
      const asRetired = await service.importKey(pems[0]!, { as: 'retired', actor: 'cli:ops' });
      await service.retire(prepared.kid!, { actor: 'cli:ops' });
      const asNext = await service.importKey(pems[1]!, { as: 'next', actor: 'cli:ops' });
      await service.importKey(pems[2]!, { as: 'active', dryRun: true, actor: 'cli:ops' });
      const asActive = await service.importKey(pems[2]!, { as: 'active' });

      assert.deepEqual(changes.slice(1), [
        {
          action: 'rotated',
          kid: firstNext.kid,
          formerStatus: 'next',
          retiredKid: first.kid,
          nextKid: rotation.nextKid,
          forced: 'recent_next_key',
          actor: 'cli:ops',
        },
        { action: 'retired', kid: rotation.nextKid, actor: 'admin:root' },
        { action: 'prepared', kid: prepared.kid, actor: 'admin:root' },
        { action: 'imported', kid: asRetired.kid, status: 'retired', retiredKid: null, actor: 'cli:ops' },
        { action: 'retired', kid: prepared.kid, actor: 'cli:ops' },
        { action: 'imported', kid: asNext.kid, status: 'next', retiredKid: null, actor: 'cli:ops' },
        // A caller that does not say who it is: recorded as nobody rather than guessed.
        { action: 'imported', kid: asActive.kid, status: 'active', retiredKid: firstNext.kid, actor: null },
      ]);

      // A listener that throws loses its event, never the change.
      failing = true;
      const retired = await service.retire(asNext.kid, { actor: 'cli:ops' });
      assert.equal(retired.key.status, 'retired');
      assert.equal((await service.list()).find((key) => key.kid === asNext.kid)?.status, 'retired');
    } finally {
      await instance.handle.close();
      await fresh.drop();
    }
  });
});
