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
