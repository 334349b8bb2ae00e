import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import type { KyselyPlugin, QueryResult, UnknownRow } from 'kysely';
import { type AllianceAuthConnection, openAllianceAuthDatabase } from '../../src/alliance-auth/database.ts';
import { allianceAuthReadinessCheck, SCHEMA_RECHECK_MS } from '../../src/alliance-auth/readiness.ts';
import {
  type AllianceAuthTestDatabase,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
} from '../helpers/alliance-auth.ts';
import { withColumnRenamed } from '../helpers/alliance-auth-changes.ts';

/**
 * Alliance Auth's part of /readyz: its database answers and holds every column aa-oidc reads. The
 * columns are read at most every SCHEMA_RECHECK_MS while all is well (a clock of the test's own says
 * when that has passed), at once after a request's read found one missing, and at every check while
 * one is. A read of the columns can be held once it has its answer (`heldColumnReads`), as a slow
 * information schema would, to order a `lookAgain` or another check against it.
 */
await describeOnEachAllianceAuth(
  (database) => `Alliance Auth's readiness on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let aa: AllianceAuthConnection;
    let clock: number;
    let logged: Array<{ level: 'error' | 'info'; fields: unknown; message: string }>;
    const check = (connection: Pick<AllianceAuthConnection, 'db' | 'kind'> = aa) =>
      allianceAuthReadinessCheck({
        connection,
        now: () => clock,
        logger: {
          error: (fields: unknown, message: string) => logged.push({ level: 'error', fields, message }),
          info: (message: string) => logged.push({ level: 'info', fields: undefined, message }),
        } as never,
      });
    beforeEach(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      aa = openAllianceAuthDatabase(fixture.readerUrl);
      clock = 0;
      logged = [];
    });
    afterEach(async () => {
      await aa?.close();
      await fixture?.drop();
    });
    const whileIsActiveRenamed = (body: () => Promise<void>) =>
      withColumnRenamed(fixture, 'auth_user', 'is_active', body);

    it('finds a column gone within the recheck time, not at every probe, and its return at the next check', async () => {
      const readiness = check();
      assert.deepEqual(await readiness.judge(), { kind: 'ready' });
      await whileIsActiveRenamed(async () => {
        clock += SCHEMA_RECHECK_MS - 1;
        assert.deepEqual(await readiness.judge(), { kind: 'ready' }, 'the last look is trusted meanwhile');
        clock += 1;
        assert.deepEqual(await readiness.judge(), {
          kind: 'schema_incomplete',
          missing: ['auth_user.is_active'],
        });
        assert.deepEqual(await readiness.judge(), {
          kind: 'schema_incomplete',
          missing: ['auth_user.is_active'],
        });
        assert.equal(logged.length, 1, 'logged once');
        assert.equal(logged[0]!.level, 'error');
        assert.deepEqual(logged[0]!.fields, { missing: ['auth_user.is_active'] });
        assert.match(logged[0]!.message, /auth_user\.is_active/);
        assert.match(logged[0]!.message, /migrations are applied \(python manage\.py migrate\)/);
        assert.doesNotMatch(logged[0]!.message, /:\/\/|password=/, 'no URL');
      });
      // No time passes: while a column is missing, every check looks.
      assert.deepEqual(await readiness.judge(), { kind: 'ready' });
      assert.deepEqual(
        logged.map((line) => [line.level, line.message]),
        [
          ['error', logged[0]!.message],
          ['info', "Alliance Auth's database has every column aa-oidc reads again"],
        ],
      );
    });

    it('looks at once after a read found a table missing', async () => {
      const readiness = check();
      assert.deepEqual(await readiness.judge(), { kind: 'ready' });
      await fixture.run('ALTER TABLE authentication_state RENAME TO authentication_state_renamed');
      try {
        assert.deepEqual(await readiness.judge(), { kind: 'ready' }, 'the last look is trusted');
        readiness.lookAgain();
        assert.deepEqual(await readiness.judge(), {
          kind: 'schema_incomplete',
          missing: ['authentication_state.id', 'authentication_state.name', 'authentication_state.priority'],
        });
      } finally {
        await fixture.run('ALTER TABLE authentication_state_renamed RENAME TO authentication_state');
      }
      assert.deepEqual(await readiness.judge(), { kind: 'ready' });
    });

    it('looks at once after a read found a column missing while a look that found them all was under way', async () => {
      const held = heldColumnReads(aa);
      const readiness = check(held.connection);
      const reading = held.holdNext();
      const first = readiness.judge();
      await reading.answered;
      // The look has read every column; before it is noted, a request's read finds one gone.
      await whileIsActiveRenamed(async () => {
        readiness.lookAgain();
        reading.release();
        assert.deepEqual(await first, { kind: 'ready' }, 'what that look read');
        assert.deepEqual(
          await readiness.judge(),
          { kind: 'schema_incomplete', missing: ['auth_user.is_active'] },
          'not trusted for SCHEMA_RECHECK_MS: it may have read before the column went',
        );
      });
      assert.deepEqual(await readiness.judge(), { kind: 'ready' });
    });

    it('answers checks at once with one look: one read, one answer, one log line', async () => {
      const held = heldColumnReads(aa);
      const readiness = check(held.connection);
      assert.deepEqual(await readiness.judge(), { kind: 'ready' });
      await whileIsActiveRenamed(async () => {
        readiness.lookAgain();
        const before = held.reads();
        const answers = await Promise.all([readiness.judge(), readiness.judge(), readiness.judge()]);
        const incomplete = { kind: 'schema_incomplete', missing: ['auth_user.is_active'] };
        assert.deepEqual(answers, [incomplete, incomplete, incomplete]);
        assert.equal(held.reads() - before, 1, 'the columns read once');
        assert.deepEqual(
          logged.map((line) => line.level),
          ['error'],
          'logged once',
        );
      });
    });

    it('lets no older look take back what a newer one found', async () => {
      const held = heldColumnReads(aa);
      const readiness = check(held.connection);
      const reading = held.holdNext();
      const older = readiness.judge();
      await reading.answered;
      await whileIsActiveRenamed(async () => {
        // A request's read found the column gone: the next check looks anew, past the one in flight.
        readiness.lookAgain();
        const incomplete = { kind: 'schema_incomplete', missing: ['auth_user.is_active'] };
        assert.deepEqual(await readiness.judge(), incomplete);
        reading.release();
        assert.deepEqual(await older, incomplete, 'the newer finding, not the older read');
        assert.deepEqual(await readiness.judge(), incomplete);
        assert.deepEqual(
          logged.map((line) => line.level),
          ['error'],
          'no "every column again" from the older read',
        );
      });
      assert.deepEqual(await readiness.judge(), { kind: 'ready' });
      assert.deepEqual(
        logged.map((line) => line.level),
        ['error', 'info'],
      );
    });
  },
);

/**
 * AA's connection (the same pool), whose reads of the information schema's columns are counted, and
 * the next one held once it has its answer until released.
 */
function heldColumnReads(aa: AllianceAuthConnection) {
  let reads = 0;
  let next: { answered: () => void; released: Promise<void> } | undefined;
  const isColumnRead = (result: QueryResult<UnknownRow>) =>
    result.rows.some((row) => 'column_name' in row || 'COLUMN_NAME' in row);
  const plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    async transformResult(args) {
      if (isColumnRead(args.result)) {
        reads += 1;
        const hold = next;
        next = undefined;
        if (hold) {
          hold.answered();
          await hold.released;
        }
      }
      return args.result;
    },
  };
  return {
    connection: { db: aa.db.withPlugin(plugin), kind: aa.kind },
    reads: () => reads,
    holdNext() {
      let release = () => {};
      const released = new Promise<void>((resolve) => (release = resolve));
      const answered = new Promise<void>((resolve) => (next = { answered: resolve, released }));
      return { answered, release: () => release() };
    },
  };
}
