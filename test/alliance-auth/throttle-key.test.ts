import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import type { AaDb } from '../../src/alliance-auth/schema.ts';
import { allianceAuthThrottleKey } from '../../src/alliance-auth/throttle-key.ts';
import {
  type AllianceAuthTestDatabase,
  allianceAuthUnavailable,
  createAllianceAuthDatabase,
} from '../helpers/alliance-auth.ts';

/**
 * The throttle key of a typed name on MySQL or MariaDB is asked of the database itself, under the
 * session's SQL mode: MySQL 5.7 and 8 enable ONLY_FULL_GROUP_BY by default, which refuses a query that
 * mixes an aggregate with a column it does not group by.
 */
describe(
  "Alliance Auth's login throttle key under ONLY_FULL_GROUP_BY (MariaDB)",
  { skip: await allianceAuthUnavailable('mysql') },
  () => {
    let fixture: AllianceAuthTestDatabase;
    before(async () => {
      fixture = await createAllianceAuthDatabase('mysql');
    });
    after(async () => {
      await fixture?.drop();
    });

    it('gives the key of a typed name, the same for every spelling the collation holds equal, as without the mode', async () => {
      await fixture.owner.connection().execute(async (db) => {
        await sql`set session sql_mode = concat(@@session.sql_mode, ',ONLY_FULL_GROUP_BY')`.execute(db);
        const key = allianceAuthThrottleKey(db as AaDb, 'mysql');
        const plain = await key('pilot3');
        assert.match(plain, /^collation [0-9a-f]{64}$/);
        // The fixture's utf8mb4_general_ci folds case and accents, and pads trailing spaces away.
        assert.equal(await key('PÍLOT3  '), plain);
        assert.notEqual(await key('pilot4'), plain);
      });
    });
  },
);
