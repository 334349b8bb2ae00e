import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type CompiledQuery,
  type DatabaseConnection,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
} from 'kysely';
import { allianceAuthPasswordAuthenticator } from '../../src/alliance-auth/password-login.ts';
import { allianceAuthThrottleKey } from '../../src/alliance-auth/throttle-key.ts';
import type { AaDb } from '../../src/alliance-auth/schema.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';

/**
 * Alliance Auth's password sign-in, one attempt at a time, over a stand-in database that answers
 * each statement with `answer` (a row, no row, or an error) and counts what it was asked.
 */
function standInDatabase(answer: () => Promise<Record<string, unknown>[]>): { aa: AaDb; asked: string[] } {
  const asked: string[] = [];
  const connection: DatabaseConnection = {
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      asked.push(query.sql);
      return { rows: (await answer()) as R[] };
    },
    // eslint-disable-next-line require-yield
    async *streamQuery() {
      throw new Error('the stand-in database does not stream');
    },
  };
  const aa = new Kysely({
    dialect: {
      createAdapter: () => new PostgresAdapter(),
      createDriver: () => ({
        init: async () => undefined,
        acquireConnection: async () => connection,
        beginTransaction: async () => undefined,
        commitTransaction: async () => undefined,
        rollbackTransaction: async () => undefined,
        releaseConnection: async () => undefined,
        destroy: async () => undefined,
      }),
      createIntrospector: (db) => new PostgresIntrospector(db),
      createQueryCompiler: () => new PostgresQueryCompiler(),
    },
  }) as AaDb;
  return { aa, asked };
}

const log = createLogger({ logging: { level: 'silent', maskedSecrets: false } });
const PASSWORD = 'Correct-Horse-9-battery';

describe("Alliance Auth's password sign-in attempt", () => {
  it('counts the name as typed (NFKC) in the throttle, and checks the password against the row that one read found', async () => {
    const row = {
      id: 47,
      username: 'zoe',
      password: await makeDjangoPbkdf2(PASSWORD, 1000),
      is_active: true,
      // Found by the NFKC form of the name typed (`ZÓË`), as a case- and accent-blind collation finds it.
      as_typed: 0,
    };
    const { aa, asked } = standInDatabase(async () => [row]);
    const authenticator = allianceAuthPasswordAuthenticator(aa, 'postgres', log);
    const attempt = await authenticator.prepare('ＺÓË');
    assert.equal(attempt.throttledName, 'ZÓË', 'the name typed, never the one the database holds');
    assert.deepEqual(await attempt.authenticate(PASSWORD), {
      outcome: 'authenticated',
      userId: 47,
      amr: ['pwd'],
    });
    assert.deepEqual(await attempt.authenticate('wrong'), { outcome: 'refused', reason: 'invalid' });
    assert.equal(asked.length, 1, 'one read of auth_user for the attempt');
  });

  it('counts the name as typed when nobody has it, as when somebody has, and refuses any password', async () => {
    const { aa, asked } = standInDatabase(async () => []);
    const attempt = await allianceAuthPasswordAuthenticator(aa, 'postgres', log).prepare('ＺÓË');
    assert.equal(attempt.throttledName, 'ZÓË');
    assert.deepEqual(await attempt.authenticate(PASSWORD), { outcome: 'refused', reason: 'invalid' });
    assert.equal(asked.length, 1);
  });

  it('fails the attempt at once when the database cannot be read, and asks it nothing more', async () => {
    const outage = new Error('connect ECONNREFUSED 127.0.0.1:3306');
    const { aa, asked } = standInDatabase(async () => {
      throw outage;
    });
    await assert.rejects(
      allianceAuthPasswordAuthenticator(aa, 'postgres', log).prepare('ZÓË'),
      (error) => error === outage,
    );
    assert.equal(asked.length, 1, 'one read, not a second one past the throttle');
  });
});

describe("Alliance Auth's login throttle key on MySQL or MariaDB", () => {
  it('writes only a plain character set and collation name into its statement, refusing any other before asking for a weight', async () => {
    for (const [charset, name] of [
      ['utf8mb4', "utf8mb4_bin)) as weight; select password from auth_user where ('1"],
      ['utf8mb4 using latin1', 'utf8mb4_general_ci'],
      ['utf8mb4', null],
    ]) {
      const { aa, asked } = standInDatabase(async () => [{ charset, name }]);
      await assert.rejects(
        allianceAuthThrottleKey(aa, 'mysql')('zoe'),
        /auth_user\.username has no character set and collation aa-oidc can read/,
      );
      assert.equal(asked.length, 1, `only information_schema was asked (${String(name)})`);
    }
  });

  it('reads the collation again after a read that failed, and once it was read, no more', async () => {
    const outage = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    let down = true;
    const { aa, asked } = standInDatabase(async () => {
      if (down) throw outage;
      return asked.at(-1)!.includes('information_schema')
        ? [{ charset: 'utf8mb4', name: 'utf8mb4_general_ci' }]
        : [{ weight: '005A004F0045' }];
    });
    const key = allianceAuthThrottleKey(aa, 'mysql');
    await assert.rejects(key('zoe'), (error) => error === outage);
    down = false;
    const first = await key('zoe');
    assert.equal(await key('ZOE'), first, 'the same weight, the same key');
    assert.equal(asked.filter((statement) => statement.includes('information_schema')).length, 2);
    assert.ok(asked.at(-1)!.includes('collate utf8mb4_general_ci'), asked.at(-1));
  });
});
