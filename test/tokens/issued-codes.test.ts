import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import type { AuditEvent } from '../../src/audit/events.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { writeBatch } from '../../src/db/write-batch.ts';
import { sha256Hex } from '../../src/logging/secrets.ts';
import {
  consumeCodeArrays,
  createIssuedCodes,
  type IssuedCodes,
  purgeIssuedCodes,
} from '../../src/tokens/issued-codes.ts';
import { type PayloadRow, storageId, writePayloadRows } from '../../src/tokens/store.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { watchStatements } from '../helpers/statements.ts';

const TTL_SECONDS = 3600;

function row(model: string, id: string, grantId: string): PayloadRow {
  return {
    model,
    id,
    consumed_at: null,
    payload: '{}',
    grant_id: grantId,
    user_id: '7',
    client_id: 'merge-client',
    uid: null,
    user_code: null,
    expires_at: Date.now() + 60_000,
    format: model === 'AuthorizationCode' ? null : 'opaque',
    value_sha256: null,
  };
}

/** The issued codes of `handle`, their turns' flushes handed to `flushes`, their events to `publish`. */
function issuedCodesOn(
  handle: DatabaseHandle,
  flushes: Array<() => void>,
  publish: (event: AuditEvent) => void = () => undefined,
): IssuedCodes {
  return createIssuedCodes({
    db: handle.db,
    config: { tokens: { refreshTokenTtl: TTL_SECONDS } } as never,
    audit: { publish } as never,
    metrics: { codeReuseAuditMisses: { inc: () => undefined } } as never,
    logger: { error: () => undefined, warn: () => undefined } as never,
    writes: writeBatch(handle.db, handle.kind, (run) => void flushes.push(run)),
  });
}

/**
 * The calls `start` makes, begun in one turn whose writes are then flushed together: their results,
 * and the statements naming `table` that the drivers were handed meanwhile.
 */
async function inOneTurn<T>(
  flushes: Array<() => void>,
  table: string,
  start: () => Promise<T>[],
): Promise<{ results: T[]; statements: string[] }> {
  const statements: string[] = [];
  const restore = watchStatements((text) => {
    if (text.includes(`"${table}"`)) statements.push(text);
  });
  try {
    const pending = start();
    for (const run of flushes.splice(0)) run();
    return { results: await Promise.all(pending), statements };
  } finally {
    restore();
  }
}

/** Marks the row `usedId` consumed and the row `revokedId` revoked, long ago. */
async function markUsedAndRevoked(handle: DatabaseHandle, usedId: string, revokedId: string): Promise<void> {
  await handle.db.updateTable('oidc_payload').set({ consumed_at: 1 }).where('id', '=', usedId).execute();
  await handle.db
    .updateTable('oidc_payload')
    .set({ revoked_at: 1, revoked_reason: 'test' })
    .where('id', '=', revokedId)
    .execute();
}

/**
 * The code redemptions and code exchanges requests reach in one turn: on PostgreSQL one statement
 * each for all of them, with the semantics of one after the other (a code twice: the first wins; a
 * replayed code's tokens stored revoked).
 */
describe(`issued codes of one turn (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let codes: IssuedCodes;
  const flushes: Array<() => void> = [];
  const published: AuditEvent[] = [];
  const flush = async () => {
    for (const run of flushes.splice(0)) run();
    await new Promise((resolve) => setImmediate(resolve));
  };

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
    codes = issuedCodesOn(handle, flushes, (event) => void published.push(event));
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  /** The statements touching `issued_code` the drivers are handed while `work` runs. */
  async function issuedCodeStatements(work: () => Promise<void>): Promise<number> {
    let count = 0;
    const restore = watchStatements((text) => {
      if (/"issued_code"/.test(text)) count += 1;
    });
    try {
      await work();
    } finally {
      restore();
    }
    return count;
  }

  it('consumes and records the codes of one turn, each once, then stores their tokens, revoked for a replayed code', async () => {
    const values = ['code-one', 'code-two', 'code-three'];
    await writePayloadRows(
      handle.db,
      values.map((value) => row('AuthorizationCode', storageId(value), `grant-${value}`)),
    );
    const at = Date.now();
    let consumed: boolean[] = [];
    const consumeStatements = await issuedCodeStatements(async () => {
      const results = [
        codes.consumeCode('code-one', storageId('code-one'), at),
        codes.consumeCode('code-two', storageId('code-two'), at),
        // Presented again in the same turn: the first presentation wins.
        codes.consumeCode('code-one', storageId('code-one'), at),
        codes.consumeCode('code-missing', storageId('code-missing'), at),
      ];
      await flush();
      consumed = await Promise.all(results);
    });
    assert.deepEqual(consumed, [true, true, false, false]);
    // SQLite: the consume and the audit row's insert, per code consumed, in the batch's transaction.
    assert.equal(consumeStatements, handle.kind === 'postgres' ? 1 : 2);
    const audit = await handle.db
      .selectFrom('issued_code')
      .select(['code_hash', 'client_id', 'user_id', 'grant_id', 'created_at', 'expires_at'])
      .where('code_hash', 'in', values.map(sha256Hex))
      .orderBy('grant_id')
      .execute();
    assert.deepEqual(
      audit.map((found) => ({
        ...found,
        created_at: Number(found.created_at),
        expires_at: Number(found.expires_at),
      })),
      ['code-one', 'code-two'].map((value) => ({
        code_hash: sha256Hex(value),
        client_id: 'merge-client',
        user_id: '7',
        grant_id: `grant-${value}`,
        created_at: at,
        expires_at: at + TTL_SECONDS * 1000,
      })),
    );

    // code-two is presented again after its redemption: its audit row counts the reuse.
    await codes.judgeRefusedCode('code-two', 'merge-client');
    const tokens = (value: string) => [
      row('AccessToken', `access-${value}`, `grant-${value}`),
      row('RefreshToken', `refresh-${value}`, `grant-${value}`),
    ];
    const storeStatements = await issuedCodeStatements(async () => {
      const stored = [
        codes.storeExchangedTokens('code-one', tokens('code-one')),
        codes.storeExchangedTokens('code-two', tokens('code-two')),
      ];
      await flush();
      await Promise.all(stored);
    });
    assert.equal(storeStatements, handle.kind === 'postgres' ? 1 : 2);
    const written = await handle.db
      .selectFrom('oidc_payload')
      .select(['id', 'revoked_reason'])
      .where('grant_id', 'in', ['grant-code-one', 'grant-code-two'])
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .orderBy('id')
      .execute();
    assert.deepEqual(written, [
      { id: 'access-code-one', revoked_reason: null },
      { id: 'access-code-two', revoked_reason: 'code_reuse' },
      { id: 'refresh-code-one', revoked_reason: null },
      { id: 'refresh-code-two', revoked_reason: 'code_reuse' },
    ]);
    const audited = await handle.db
      .selectFrom('issued_code')
      .select(['access_token_id', 'refresh_token_id', 'reuse_count'])
      .where('code_hash', 'in', ['code-one', 'code-two'].map(sha256Hex))
      .orderBy('access_token_id')
      .execute();
    assert.deepEqual(
      audited.map((found) => ({ ...found, reuse_count: Number(found.reuse_count) })),
      [
        { access_token_id: 'access-code-one', refresh_token_id: 'refresh-code-one', reuse_count: 0 },
        { access_token_id: 'access-code-two', refresh_token_id: 'refresh-code-two', reuse_count: 1 },
      ],
    );
    // Announced revoked once stored: the access and the refresh token of the replayed code.
    const revokedTypes = published
      .filter((event) => event.kind === 'token_revoked' && event.client_id === 'merge-client')
      .map((event) => (event as Extract<AuditEvent, { kind: 'token_revoked' }>).token_type)
      .sort();
    assert.deepEqual(revokedTypes, ['access_token', 'refresh_token']);
  });
});

/**
 * The refresh-token rotations requests reach in one turn: on PostgreSQL one statement, and one
 * commit, for all of them (a commit costs the server as much as the rows of two or three rotations),
 * with the semantics of one after the other: a token presented twice goes to the first request, a
 * consumed or revoked one to none, and only a rotation that consumed its token writes its rows.
 */
describe(`refresh-token rotations of one turn (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let codes: IssuedCodes;
  const flushes: Array<() => void> = [];

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
    codes = issuedCodesOn(handle, flushes);
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  it('consumes the presented tokens and writes the rotated ones of a turn in one statement', async () => {
    const presented = ['one', 'two', 'three', 'used', 'revoked'].map((name) =>
      row('RefreshToken', `turn-refresh-${name}`, `turn-grant-${name}`),
    );
    await writePayloadRows(handle.db, presented);
    await markUsedAndRevoked(handle, 'turn-refresh-used', 'turn-refresh-revoked');
    const at = Date.now();
    const rotation = (name: string, request: string) => ({
      id: `turn-refresh-${name}`,
      at,
      rows: [
        row('RefreshToken', `rotated-${request}`, `turn-grant-${name}`),
        row('AccessToken', `access-${request}`, `turn-grant-${name}`),
      ],
    });
    const { results: rotated, statements: texts } = await inOneTurn(flushes, 'oidc_payload', () => [
      codes.rotateRefreshToken(rotation('one', 'a')),
      codes.rotateRefreshToken(rotation('two', 'b')),
      // Presented again in the same turn: the first presentation wins.
      codes.rotateRefreshToken(rotation('one', 'c')),
      codes.rotateRefreshToken(rotation('used', 'd')),
      codes.rotateRefreshToken(rotation('revoked', 'e')),
      codes.rotateRefreshToken(rotation('missing', 'f')),
      codes.rotateRefreshToken(rotation('three', 'g')),
    ]);
    assert.deepEqual(rotated, [true, true, false, false, false, false, true]);
    if (handle.kind === 'postgres') assert.equal(texts.length, 1, texts.join('\n'));
    const written = await handle.db
      .selectFrom('oidc_payload')
      .select(['id', 'grant_id'])
      .where((eb) => eb.or([eb('id', 'like', 'rotated-%'), eb('id', 'like', 'access-%')]))
      .orderBy('id')
      .execute();
    assert.deepEqual(
      written.map((found) => found.id),
      ['access-a', 'access-b', 'access-g', 'rotated-a', 'rotated-b', 'rotated-g'],
    );
    const consumed = await handle.db
      .selectFrom('oidc_payload')
      .select(['id', 'consumed_at'])
      .where('id', 'in', ['turn-refresh-one', 'turn-refresh-two', 'turn-refresh-three'])
      .orderBy('id')
      .execute();
    assert.deepEqual(
      consumed.map((found) => Number(found.consumed_at)),
      [at, at, at],
    );
  });
});

/**
 * PostgreSQL keeps a prepared statement's generic plan for the connection's life, made with the
 * statistics of that moment. Statistics that say the table holds no codes (taken before any was
 * issued; autovacuum off; a new database) must not make consuming codes scan every code.
 */
describe(`consuming codes under statistics that know of none (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  before(async () => {
    if (testDatabaseKind !== 'postgres') return;
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  it(
    'looks each code up by its primary key in the generic plan',
    { skip: testDatabaseKind !== 'postgres' && "generic plans and statistics are PostgreSQL's" },
    async () => {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        // Statistics taken while the table held tokens and no code, then 3,000 codes issued.
        await client.query(
          `insert into oidc_payload (model, id, payload, client_id, expires_at, format)
           select 'AccessToken', md5(g::text) || md5((g + 1)::text), repeat('x', 400), 'c', 4102444800000, 'opaque'
           from generate_series(1, 3000) g`,
        );
        await client.query('analyze oidc_payload');
        await client.query(
          `insert into oidc_payload (model, id, payload, client_id, expires_at)
           select 'AuthorizationCode', md5((g + 9000)::text), repeat('x', 400), 'c', 4102444800000
           from generate_series(1, 3000) g`,
        );
        const ids = [randomBytes(16).toString('hex'), randomBytes(16).toString('hex')];
        const compiled = consumeCodeArrays.compile(
          handle.db,
          ids.map(() => 'AuthorizationCode'),
          ids,
          ['a'.repeat(64), 'b'.repeat(64)],
          [1, 2],
          [3, 4],
        );
        await client.query('set plan_cache_mode = force_generic_plan');
        await client.query(`prepare consume as ${compiled.sql}`);
        // The arrays as literals (hex digits, model names and numbers: nothing to escape).
        const literals = compiled.parameters
          .map((value) => `'{${(value as unknown[]).join(',')}}'`)
          .join(', ');
        const explained = await client.query<{ 'QUERY PLAN': unknown }>(
          `explain (format json) execute consume(${literals})`,
        );
        const scans: Array<{ type: string; cond?: string }> = [];
        const walk = (node: Record<string, unknown>) => {
          if (node['Relation Name'] === 'oidc_payload')
            scans.push({ type: String(node['Node Type']), cond: node['Index Cond'] as string | undefined });
          for (const child of (node.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
        };
        const plan = (explained.rows[0]!['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan;
        walk(plan);
        const reads = scans.filter((scan) => scan.type !== 'ModifyTable');
        assert.ok(reads.length > 0, JSON.stringify(plan));
        for (const scan of reads) {
          assert.equal(scan.type, 'Index Scan', JSON.stringify(scans));
          assert.match(scan.cond ?? '', /\bid\b/, JSON.stringify(scans));
        }
      } finally {
        await client.end();
      }
    },
  );
});

/**
 * A replay whose revocation fails (a real database fault, from a trigger): the tokens could not be
 * revoked, but the reuse is still recorded on the audit row and told with `revoke_succeeded: false`.
 */
describe(`a replayed code whose revocation fails (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let codes: IssuedCodes;
  const published: AuditEvent[] = [];

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    handle = connect(database);
    codes = createIssuedCodes({
      db: handle.db,
      config: { tokens: { refreshTokenTtl: TTL_SECONDS } } as never,
      audit: { publish: (event: AuditEvent) => void published.push(event) } as never,
      metrics: { codeReuseAuditMisses: { inc: () => undefined } } as never,
      logger: { error: () => undefined, warn: () => undefined } as never,
    });
  });
  after(async () => {
    await handle?.close();
    await database?.drop();
  });

  /** Runs `work` while no token can be revoked for a code's reuse. */
  async function failingReuseRevocations(work: () => Promise<void>): Promise<void> {
    if (handle.kind === 'sqlite') {
      await sql`CREATE TRIGGER fail_reuse_revocation BEFORE UPDATE ON oidc_payload
        WHEN NEW.revoked_reason = 'code_reuse' BEGIN SELECT RAISE(ABORT, 'injected fault'); END`.execute(
        handle.db,
      );
    } else {
      await sql`CREATE FUNCTION fail_reuse_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected fault'; END $$`.execute(handle.db);
      await sql`CREATE TRIGGER fail_reuse_revocation BEFORE UPDATE ON oidc_payload
        FOR EACH ROW WHEN (NEW.revoked_reason = 'code_reuse') EXECUTE FUNCTION fail_reuse_revocation()`.execute(
        handle.db,
      );
    }
    try {
      await work();
    } finally {
      await sql`DROP TRIGGER fail_reuse_revocation${sql.raw(handle.kind === 'sqlite' ? '' : ' ON oidc_payload')}`.execute(
        handle.db,
      );
      if (handle.kind === 'postgres') await sql`DROP FUNCTION fail_reuse_revocation()`.execute(handle.db);
    }
  }

  it('still counts the reuse on the audit row, keeps the row from the purge, and tells it with revoke_succeeded false', async () => {
    const code = 'code-revocation-fails';
    await writePayloadRows(handle.db, [row('AuthorizationCode', storageId(code), 'grant-fails')]);
    const at = Date.now();
    const redeemed = await codes.redeemCode(code, storageId(code), at, [
      row('AccessToken', 'access-fails', 'grant-fails'),
      row('RefreshToken', 'refresh-fails', 'grant-fails'),
    ]);
    assert.equal(redeemed, true);

    await failingReuseRevocations(() => codes.judgeRefusedCode(code, 'merge-client'));

    const audited = await handle.db
      .selectFrom('issued_code')
      .select(['reuse_count', 'last_reuse_at', 'expires_at'])
      .where('code_hash', '=', sha256Hex(code))
      .executeTakeFirstOrThrow();
    assert.equal(Number(audited.reuse_count), 1, 'the reuse is counted');
    assert.ok(audited.last_reuse_at !== null && Number(audited.last_reuse_at) >= at);
    const events = published.filter((event) => event.kind === 'code_reuse_detected');
    assert.deepEqual(events, [
      {
        kind: 'code_reuse_detected',
        client_id: 'merge-client',
        code_hash: sha256Hex(code),
        access_token_id: 'access-fails',
        refresh_token_id: 'refresh-fails',
        reuse_count: 1,
        revoke_succeeded: false,
      },
    ]);
    // A reused row outlives the refresh-token lifetime: the evidence of the reuse is kept.
    await purgeIssuedCodes(handle.db, Number(audited.expires_at) + 1);
    const kept = await handle.db
      .selectFrom('issued_code')
      .select('code_hash')
      .where('code_hash', '=', sha256Hex(code))
      .executeTakeFirst();
    assert.ok(kept, 'the row of a reused code is not purged');
  });
});
