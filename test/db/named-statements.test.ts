import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { mayBeNamed, statementNames } from '../../src/db/named-statements.ts';
import { selectProfileById } from '../../src/directory/builtin/queries.ts';
import { reachablePostgres, type TestDatabase } from '../helpers/database.ts';
import { missing } from '../helpers/e2e.ts';
import { createPostgresProbe, type PostgresProbe } from '../helpers/postgres-probe.ts';

describe('which statements run as named prepared statements on PostgreSQL', () => {
  it('parameterized statements that name their columns', () => {
    assert.equal(mayBeNamed('select "id", "v" from "t" where "id" = $1', 1), true);
    assert.equal(mayBeNamed('select count(*) as "n" from "t" where "k" = $1', 1), true);
    assert.equal(mayBeNamed('select "a" * $1 as "p" from "t"', 1), true);
  });

  it('not a statement without parameters (the simple protocol allows several statements in one text)', () => {
    assert.equal(mayBeNamed('select "id" from "t"', 0), false);
    assert.equal(mayBeNamed('begin', 0), false);
  });

  it('not a statement whose columns a `*` expands (a migration adding a column would break it)', () => {
    assert.equal(mayBeNamed('select * from "t" where "id" = $1', 1), false);
    assert.equal(
      mayBeNamed(
        'select "t".*, "u"."name" as "n" from "t" join "u" on "u"."id" = "t"."u" where "t"."id" = $1',
        1,
      ),
      false,
    );
    assert.equal(mayBeNamed('insert into "t" ("a") values ($1) returning *', 1), false);
    assert.equal(mayBeNamed('select "a", "t".* from "t" where "id" = $1', 1), false);
    assert.equal(mayBeNamed('select "a", * from "t" where "id" = $1', 1), false);
    assert.equal(mayBeNamed('update "t" set "a" = $1 returning *', 1), false);
  });

  it('not a batch text with many parameters (such texts vary with the batch)', () => {
    assert.equal(mayBeNamed('insert into "t" ("a") values ($1)', 64), true);
    assert.equal(mayBeNamed('insert into "t" ("a") values ($1)', 65), false);
  });
});

describe('statement names', () => {
  it('differ between processes for the same text (a pooler never runs one process’s with another’s values)', () => {
    const text = 'select "id" from "app_user" where "id" = $1';
    const [one, other] = [statementNames().nameOf(text, 1), statementNames().nameOf(text, 1)];
    assert.match(one!, /^aa_[0-9a-f]{8}_1$/);
    assert.notEqual(one, other);
  });
});

const postgres = await reachablePostgres();

describe(
  'named prepared statements while a migration changes the tables under a running process',
  { skip: 'missing' in postgres ? missing(postgres.missing) : false },
  () => {
    let database: TestDatabase;
    let handle: DatabaseHandle;
    let admin: pg.Client;
    let userId: number;

    let probe: PostgresProbe | undefined;

    before(async () => {
      probe = await createPostgresProbe((postgres as { url: string }).url, 'named_probe', [[1, 7]]);
      ({ database, handle, admin, userId } = probe);
    });
    after(async () => {
      await probe?.drop();
    });

    /** The prepared statements of the connection a transaction holds. */
    async function preparedOnOneConnection(
      run: (db: DatabaseHandle['db']) => Promise<unknown>,
    ): Promise<string[]> {
      return handle.db.transaction().execute(async (trx) => {
        await run(trx);
        const { rows } = await sql<{
          statement: string;
        }>`select statement from pg_prepared_statements`.execute(trx);
        return rows.map((row) => row.statement);
      });
    }

    /** Runs `run` on every connection of the pool at once (each holds its own prepared statements). */
    async function onEveryConnection(run: () => Promise<unknown>): Promise<void> {
      await Promise.all(Array.from({ length: 20 }, run));
    }

    it('the profile lookup is prepared, and still answers after a column is added to its tables', async () => {
      const statements = await preparedOnOneConnection((db) => selectProfileById(db, userId));
      assert.ok(
        statements.some((text) => text.includes('from "app_user"')),
        `the profile lookup was not prepared: ${statements.join(' | ')}`,
      );
      await onEveryConnection(() => selectProfileById(handle.db, userId));

      await admin.query('alter table app_user add column later_column text');
      await admin.query('alter table state add column later_column text');
      await admin.query('alter table auth_group add column later_column text');

      const profiles = await Promise.all(
        Array.from({ length: 20 }, () => selectProfileById(handle.db, userId)),
      );
      for (const profile of profiles) {
        assert.equal(profile?.user.username, 'pilot');
        assert.equal('later_column' in profile!.user, false);
      }
    });

    it('a `select *` is never prepared, so a new column reaches it instead of breaking it', async () => {
      const star = (db: DatabaseHandle['db']) =>
        sql<Record<string, unknown>>`select * from named_probe where id = ${1}`.execute(db);
      const statements = await preparedOnOneConnection(star);
      assert.equal(
        statements.some((text) => text.includes('select * from named_probe')),
        false,
      );
      await admin.query('alter table named_probe add column w integer not null default 3');
      const { rows } = await handle.db.transaction().execute((trx) => star(trx));
      assert.deepEqual(rows, [{ id: 1, v: 7, w: 3 }]);
    });

    it('PostgreSQL refuses a prepared `select *` after a column is added (why those run unnamed)', async () => {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const query = { name: 'probe_star', text: 'select * from named_probe where id = $1', values: [1] };
        await client.query(query);
        await admin.query('alter table named_probe add column x integer');
        await assert.rejects(client.query(query), /cached plan must not change result type/);
      } finally {
        await client.end();
      }
    });

    it('a prepared statement whose column changes type is run unnamed from then on', async () => {
      const probe = (db: DatabaseHandle['db']) =>
        sql<{ id: number; v: unknown }>`select id, v from named_probe where id = ${1}`.execute(db);
      const statements = await preparedOnOneConnection(probe);
      assert.ok(statements.some((text) => text.includes('select id, v from named_probe')));
      await onEveryConnection(() => probe(handle.db));

      await admin.query('alter table named_probe alter column v type text');

      // Outside a transaction the refused statement is retried at once, unnamed.
      const results = await Promise.all(Array.from({ length: 20 }, () => probe(handle.db)));
      for (const { rows } of results) assert.deepEqual(rows, [{ id: 1, v: '7' }]);
      // Inside one too, now that the text runs unnamed.
      const { rows } = await handle.db.transaction().execute((trx) => probe(trx));
      assert.deepEqual(rows, [{ id: 1, v: '7' }]);
    });
  },
);
