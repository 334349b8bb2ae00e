import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import Provider from 'oidc-provider';
import { createServices } from '../../src/services.ts';
import { createKeyService } from '../../src/keys/service.ts';
import { createKeyStore } from '../../src/keys/store.ts';
import type { KeyStore } from '../../src/keys/types.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { testConfig } from '../helpers/config.ts';
import pg from 'pg';
import {
  createTestDatabase,
  reachablePostgres,
  type TestDatabase,
  testDatabaseKind,
} from '../helpers/database.ts';
import { missing } from '../helpers/e2e.ts';
import { waitUntil } from '../helpers/wait.ts';
import { eventually } from '../helpers/eventually.ts';
import { capturingLogger, openInstance } from './helpers.ts';

const ISSUER = 'http://127.0.0.1/o';

/** This test only reads /jwks; oidc-provider needs an adapter not to warn about its in-memory one. */
class NoStorage {
  async upsert(): Promise<void> {}
  async find(): Promise<undefined> {
    return undefined;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async consume(): Promise<void> {}
  async destroy(): Promise<void> {}
  async revokeByGrantId(): Promise<void> {}
}

function signWith(store: KeyStore, subject: string): Promise<string> {
  const key = store.activeKey();
  return new SignJWT({ sub: subject })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience('test-client')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(key.privateKey);
}

async function verifyAgainst(store: KeyStore, token: string) {
  const jwks = createLocalJWKSet(store.publicJwks());
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer: ISSUER,
    audience: 'test-client',
  });
  return { payload, kid: protectedHeader.kid };
}

describe(`signing keys: KeyStore (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('keeps verifying a token signed before a rotation, signs new tokens with the new key, and drops the old key when its publication ends', async () => {
    const { config, handle } = await openInstance(database);
    let clock = Date.now();
    // Ten minutes between the store's own reloads: each change below is seen (and an expired key
    // removed) by the reload the test makes, not by a timer reload just before it.
    const store = await createKeyStore(handle, config, createLogger(config), {
      now: () => clock,
      reloadIntervalMs: 600_000,
    });
    try {
      const keys = createKeyService(handle, config, undefined, { now: () => clock });
      await keys.ensureActiveKey();
      assert.equal(await store.reload(), true);
      const oldKid = store.activeKid();
      const oldToken = await signWith(store, 'alice');
      assert.equal(decodeProtectedHeader(oldToken).kid, oldKid);

      // Once relying parties caching the JWKS hold the next key.
      clock += config.keys.jwksCacheSeconds * 1000 + config.keys.reloadIntervalMs;
      const rotation = await keys.rotate();
      assert.equal(await store.reload(), true);
      assert.equal(store.activeKid(), rotation.activatedKid);
      assert.notEqual(store.activeKid(), oldKid);
      assert.deepEqual(
        store.publicJwks().keys.map((jwk) => jwk.kid),
        [rotation.activatedKid, rotation.nextKid, oldKid],
        'JWKS publishes active, next and retired keys',
      );

      const old = await verifyAgainst(store, oldToken);
      assert.equal(old.kid, oldKid);
      assert.equal(old.payload.sub, 'alice');
      const newToken = await signWith(store, 'bob');
      const fresh = await verifyAgainst(store, newToken);
      assert.equal(fresh.kid, rotation.activatedKid);

      // When the retired key's publication ends, the store removes it on its own and stops publishing it.
      clock = rotation.retiredPublishUntil! + 1;
      assert.equal(await store.reload(), true);
      assert.deepEqual(
        store.publicJwks().keys.map((jwk) => jwk.kid),
        [rotation.activatedKid, rotation.nextKid],
      );
      const row = await handle.db
        .selectFrom('signing_key')
        .select(['status', 'private_jwk_encrypted'])
        .where('kid', '=', oldKid)
        .executeTakeFirstOrThrow();
      assert.deepEqual(row, { status: 'removed', private_jwk_encrypted: null });
      await assert.rejects(verifyAgainst(store, oldToken), /no applicable key found|JWKSNoMatchingKey/);
    } finally {
      store.close();
      await handle.close();
    }
  });

  it('keeps a retired key published until the last token an instance that has not reloaded yet could sign with it expires', async () => {
    const { config, handle } = await openInstance(database);
    let clock = Date.now();
    // An instance that has not seen the rotation yet: it reloads at its next timer, up to
    // keys.reloadIntervalMs after the rotation committed, and signs with the old key until then.
    const lagging = await createKeyStore(handle, config, createLogger(config), {
      now: () => clock,
      reloadIntervalMs: 600_000,
    });
    try {
      const keys = createKeyService(handle, config, undefined, { now: () => clock });
      await keys.ensureActiveKey();
      await lagging.reload();
      const oldKid = lagging.activeKid();
      const rotation = await keys.rotate({ force: true });
      assert.equal(rotation.retiredKid, oldKid);

      // Its last token under the old key, signed just before its reload, for the longest lifetime.
      const signedAt = clock + config.keys.reloadIntervalMs - 1;
      const expiresAt = signedAt + keys.retiredPublicationSeconds() * 1000;
      assert.equal(lagging.activeKid(), oldKid, 'not reloaded yet');
      assert.ok(
        rotation.retiredPublishUntil! >= expiresAt,
        `published until ${rotation.retiredPublishUntil}, the token lives until ${expiresAt}`,
      );
      clock = expiresAt - 1;
      await lagging.reload();
      assert.ok(
        lagging.publicJwks().keys.some((jwk) => jwk.kid === oldKid),
        'the key of a token still valid is still published',
      );
    } finally {
      lagging.close();
      await handle.close();
    }
  });

  it('publishes only public members, and marks keys other than the active one verify-only', async () => {
    const { config, handle } = await openInstance(database);
    const store = await createKeyStore(handle, config, createLogger(config));
    try {
      const signing = store.signingJwks().keys;
      const published = store.publicJwks().keys;
      assert.ok(signing.length >= 2);
      assert.equal(signing[0]!.kid, store.activeKid(), 'the active key comes first');
      assert.deepEqual(
        signing.map((jwk) => jwk.kid),
        published.map((jwk) => jwk.kid),
      );
      for (const [index, jwk] of signing.entries()) {
        assert.equal(jwk.use, 'sig');
        assert.equal(jwk.alg, 'RS256');
        assert.ok(typeof jwk.d === 'string');
        assert.deepEqual(jwk.key_ops, index === 0 ? undefined : ['verify']);
      }
      for (const jwk of published) {
        for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(member in jwk, false);
      }
      // Callers get copies: changing one does not change the store.
      signing[0]!.kid = 'changed';
      assert.equal(store.signingJwks().keys[0]!.kid, store.activeKid());
    } finally {
      store.close();
      await handle.close();
    }
  });

  it('feeds oidc-provider: its JWKS endpoint publishes exactly the store keys', async () => {
    const { config, handle } = await openInstance(database);
    const store = await createKeyStore(handle, config, createLogger(config));
    let server: Server | undefined;
    try {
      const provider = new Provider(ISSUER, {
        jwks: store.signingJwks(),
        adapter: NoStorage,
        features: { devInteractions: { enabled: false } },
      });
      server = createServer(provider.callback());
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/jwks`);
      assert.equal(response.status, 200);
      const body = (await response.json()) as { keys: Array<Record<string, unknown>> };
      assert.deepEqual(
        body.keys.map((jwk) => jwk.kid),
        store.publicJwks().keys.map((jwk) => jwk.kid),
      );
      for (const jwk of body.keys) assert.equal('d' in jwk, false);
    } finally {
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      store.close();
      await handle.close();
    }
  });

  it('serves a rotation made through another instance within seconds, without restart', async () => {
    const reader = await openInstance(database, { keys: { reloadIntervalMs: 100 } });
    const writer = await openInstance(database);
    const store = await createKeyStore(reader.handle, reader.config, createLogger(reader.config));
    try {
      const before = store.activeKid();
      const beforeVersion = store.version();
      let changes = 0;
      const unsubscribe = store.onChange(() => {
        changes += 1;
      });
      const rotation = await createKeyService(writer.handle, writer.config).rotate({ force: true });
      assert.notEqual(rotation.activatedKid, before);
      await eventually(
        () => store.activeKid() === rotation.activatedKid,
        'the other store serves the new key',
      );
      assert.ok(store.version() > beforeVersion);
      assert.ok(changes >= 1, 'listeners heard of the change');
      assert.ok(
        store.publicJwks().keys.some((jwk) => jwk.kid === before),
        'the old key stays published',
      );
      unsubscribe();
    } finally {
      store.close();
      await reader.handle.close();
      await writer.handle.close();
    }
  });

  it('parses each key once: an unchanged database reloads nothing, and a promoted key keeps its parsed object', async () => {
    const { config, handle } = await openInstance(database);
    // No timer reload in between: the rotation is loaded by the reload the test makes.
    const store = await createKeyStore(handle, config, createLogger(config), {
      reloadIntervalMs: 600_000,
    });
    try {
      const version = store.version();
      assert.equal(await store.reload(), false);
      assert.equal(store.version(), version);
      const next = store.loadedKeys().find((key) => key.status === 'next')!;
      const nextBefore = store.signingJwks().keys.find((jwk) => jwk.kid === next.kid)!;
      const rotation = await createKeyService(handle, config).rotate({ force: true });
      assert.equal(rotation.activatedKid, next.kid);
      assert.equal(await store.reload(), true);
      assert.equal(store.version(), version + 1);
      assert.equal(store.activeKey().kid, next.kid);
      assert.equal(store.activeKey().privateKey, next.privateKey, 'the parsed key object is reused');
      const { key_ops: _ops, ...withoutOps } = nextBefore;
      assert.deepEqual(store.signingJwks().keys[0], withoutOps, 'same key material, now unrestricted');
    } finally {
      store.close();
      await handle.close();
    }
  });

  it('refuses to start with a different secret key, naming AA_OIDC_SECRET_KEY; a later key it cannot decrypt leaves the loaded set in use', async () => {
    const { config, handle } = await openInstance(database);
    const wrong = { ...config, secretKey: 'not-the-secret-key-these-were-encrypted-with' };
    try {
      await assert.rejects(createKeyStore(handle, wrong, createLogger(config)), (error: Error) => {
        assert.match(error.message, /cannot be decrypted: AA_OIDC_SECRET_KEY is not the secret key/);
        assert.ok(!error.message.includes(config.secretKey) && !error.message.includes(wrong.secretKey));
        return true;
      });

      const { logger, lines } = capturingLogger(config);
      const store = await createKeyStore(
        handle,
        { ...config, keys: { ...config.keys, reloadIntervalMs: 100 } },
        logger,
      );
      try {
        const active = store.activeKid();
        // An instance configured with another secret key rotates: its new keys are unreadable here.
        await createKeyService(handle, wrong).rotate({ force: true });
        await eventually(
          () => lines.some((line) => /reloading signing keys failed/.test(String(line.msg))),
          'the failed reload is logged',
        );
        assert.equal(store.activeKid(), active, 'the loaded set stays in use');
        const failure = lines.find((line) => /reloading signing keys failed/.test(String(line.msg)))!;
        assert.match(String(failure.err), /AA_OIDC_SECRET_KEY/);
        assert.equal(
          lines.filter((line) => /reloading signing keys failed/.test(String(line.msg))).length,
          1,
          'logged once, not at every poll',
        );
        await assert.rejects(store.reload(), /AA_OIDC_SECRET_KEY/);
      } finally {
        store.close();
      }
    } finally {
      await handle.close();
    }
  });
});

describe(`signing keys in the composition root (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  after(async () => database.drop());

  it('creates the signing key on first start and loads it; a second start reuses it', async () => {
    const first = await createServices(testConfig(database), { migrate: true });
    let kid: string;
    try {
      kid = first.keyStore.activeKid();
      const listed = await first.keys.list();
      assert.deepEqual(
        listed.map((key) => key.status),
        ['active', 'next'],
      );
      assert.equal(listed[0]!.kid, kid);
    } finally {
      await first.close();
    }
    const second = await createServices(testConfig(database), { migrate: true });
    try {
      assert.equal(second.keyStore.activeKid(), kid);
    } finally {
      await second.close();
    }
  });
});

const postgres = await reachablePostgres();

/**
 * A stop of `serve` closes the key store, then the database, whose closing cuts the statements still
 * in flight: a background reload waiting on the database then fails, which is the stop's doing, not
 * a fault of the keys or of the database.
 */
describe(
  'signing keys: a reload in flight when the KeyStore closes',
  { skip: 'missing' in postgres ? missing(postgres.missing) : false },
  () => {
    let database: TestDatabase;
    before(async () => {
      database = await createTestDatabase({ migrated: true, postgresUrl: (postgres as { url: string }).url });
    });
    after(async () => database?.drop());

    it('is logged at debug when its statement is cut after the close, not as a failure', async () => {
      const { config, handle } = await openInstance(database);
      const holder = new pg.Client({ connectionString: database.url });
      await holder.connect();
      try {
        await createKeyService(handle, config).ensureActiveKey();
        const { logger, lines } = capturingLogger(config, 'debug');
        const store = await createKeyStore(handle, config, logger, { reloadIntervalMs: 20 });
        // The next reload waits for the table (taken by this test's transaction).
        await holder.query('begin');
        await holder.query('lock table signing_key in access exclusive mode');
        const waiting = async () => {
          const { rows } = await holder.query<{ pid: number }>(
            `select pid from pg_locks where not granted and relation = 'signing_key'::regclass`,
          );
          return rows.map((row) => row.pid);
        };
        await waitUntil(async () => (await waiting()).length > 0, 'a reload waits for the table');
        store.close();
        // What closing the connections under it does to the statement.
        for (const pid of await waiting()) await holder.query('select pg_terminate_backend($1)', [pid]);
        await waitUntil(
          () => lines.some((line) => /^reloading signing keys/.test(String(line.msg))),
          'the reload ends',
        );
        await holder.query('rollback');
        const reloads = lines.filter((line) => /^reloading signing keys/.test(String(line.msg)));
        assert.deepEqual(
          reloads.map((line) => [line.level, line.msg]),
          [[20, 'reloading signing keys ended with the stop']],
        );
      } finally {
        await holder.end().catch(() => undefined);
        await handle.close();
      }
    });
  },
);
