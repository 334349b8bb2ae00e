import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { type AllianceAuthConnection, openAllianceAuthDatabase } from '../../src/alliance-auth/database.ts';
import { allianceAuthReadinessCheck, SCHEMA_RECHECK_MS } from '../../src/alliance-auth/readiness.ts';
import {
  type AllianceAuthTestDatabase,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
} from '../helpers/alliance-auth.ts';

/**
 * Alliance Auth's part of /readyz: its database answers and holds every column aa-oidc reads. The
 * columns are read at most every SCHEMA_RECHECK_MS while all is well (a clock of the test's own says
 * when that has passed), at once after a request's read found one missing, and at every check while
 * one is.
 */
await describeOnEachAllianceAuth(
  (database) => `Alliance Auth's readiness on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let aa: AllianceAuthConnection;
    let clock: number;
    let logged: Array<{ level: 'error' | 'info'; fields: unknown; message: string }>;
    const check = () =>
      allianceAuthReadinessCheck({
        connection: aa,
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

    it('finds a column gone within the recheck time, not at every probe, and its return at the next check', async () => {
      const readiness = check();
      assert.deepEqual(await readiness.judge(), { kind: 'ready' });
      await fixture.run('ALTER TABLE auth_user RENAME COLUMN is_active TO is_active_renamed');
      try {
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
      } finally {
        await fixture.run('ALTER TABLE auth_user RENAME COLUMN is_active_renamed TO is_active');
      }
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
  },
);
