import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { LOGIN_THROTTLED_MESSAGE } from '../../src/oidc/interactions/routes.ts';
import {
  allianceAuthUnavailable,
  describeOnEachAllianceAuth,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { type AllianceAuthSuite, serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { authorize } from '../helpers/flows.ts';
import { Browser, seedApp } from '../helpers/server.ts';

/**
 * The login throttle with Alliance Auth password sign-in counts a typed name as the database compares
 * it, whether or not a user has it: a spelling's 429 comes after as many attempts for a real name as
 * for a made-up one, so the throttle never tells whether a user exists, and the spellings MariaDB's
 * collation finds as one user (`MÍRA`, `mïra` for `mira`) share that user's budget.
 */

/** Five failures per account from one address; room enough per address for every test here. */
const LOGIN_BUDGETS = {
  maxFailuresPerAccountAndAddress: 5,
  maxFailuresPerAccount: 50,
  maxFailuresPerAddress: 500,
};

function signingIn(suite: AllianceAuthSuite) {
  let client: { clientId: string; clientSecret: string };
  before(async () => {
    const created = await seedApp(suite.server, { name: 'Wiki', skipAuthorization: true });
    client = { clientId: created.clientId, clientSecret: created.clientSecret! };
  });
  /** The answer to a sign-in as `username`: 303 (signed in), 401 (refused) or 429 (throttled). */
  const signInAs = async (username: string, password = 'wrong-password') => {
    const { response } = await authorize(suite.server, new Browser(), client, username, {}, { password });
    return response;
  };
  /** How many wrong passwords, typed as each of `spellings` in turn, are refused before the first 429. */
  const failuresBefore429 = async (spellings: readonly string[]): Promise<number> => {
    for (let n = 0; n < 20; n += 1) {
      const spelling = spellings[n % spellings.length]!;
      const response = await signInAs(spelling);
      if (response.status === 429) {
        assert.ok((await response.text()).includes(LOGIN_THROTTLED_MESSAGE));
        return n;
      }
      assert.equal(response.status, 401, `${spelling}, attempt ${n + 1}`);
    }
    return assert.fail('no 429 after 20 wrong passwords');
  };
  return { signInAs, failuresBefore429 };
}

await describeOnEachAllianceAuth(
  (database) => `the login throttle at Alliance Auth password sign-in (${database})`,
  (kind) => {
    const suite = serveAllianceAuth(kind, {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      config: { login: LOGIN_BUDGETS },
      async prepare(fixture) {
        await insertAllianceAuthUser(fixture, 48, 'mira', FIXTURE_PASSWORD);
        await insertAllianceAuthUser(fixture, 49, 'zara', FIXTURE_PASSWORD);
      },
    });
    const { signInAs, failuresBefore429 } = signingIn(suite);

    it('answers 429 to a spelling of a name after as many attempts whether or not a user has the name', async () => {
      /** Four wrong passwords as `name`, then how many more as `spelling` are refused before the 429. */
      const spellingAfterFour = async (name: string, spelling: string) => {
        for (let n = 0; n < 4; n += 1)
          assert.equal((await signInAs(name)).status, 401, `${name}, attempt ${n + 1}`);
        return failuresBefore429([spelling]);
      };
      const real = await spellingAfterFour('mira', 'MÍRA');
      const madeUp = await spellingAfterFour('nemo', 'NÉMO');
      assert.equal(madeUp, real, 'nemo, whom nobody has, is throttled as mira is');
      // MariaDB's collation holds `MÍRA` for `mira`: one budget, of which one failure was left.
      // PostgreSQL compares bytes: `MÍRA` is another name there (nobody's), with a budget of its own.
      assert.equal(real, kind === 'mysql' ? 1 : 5);
    });

    it("counts every spelling the database finds as a user against that user's budget, and a throttled attempt checks no password", async () => {
      // PostgreSQL finds a user only by the NFKC form of its name (the fullwidth one is it); the
      // throttle folds case on top. MariaDB's collation also folds accents.
      const spellings = kind === 'mysql' ? ['zara', 'ZÁRA', 'ｚａｒä', 'Zàrâ'] : ['zara', 'ＺＡＲＡ', 'Zara'];
      assert.equal(await failuresBefore429(spellings), 5, 'five failures in all, whatever the spelling');
      for (const spelling of spellings) {
        assert.equal(
          (await signInAs(spelling, FIXTURE_PASSWORD)).status,
          429,
          `${spelling} waits, right password or not`,
        );
      }
    });
  },
);

describe(
  'the login throttle at Alliance Auth password sign-in, under a UCA collation (MariaDB)',
  {
    skip: await allianceAuthUnavailable('mysql'),
  },
  () => {
    // utf8mb4_unicode_ci, which AA's install guide creates the database with, holds more for one than
    // case and accents: it ignores a zero-width space or word joiner and reads `٣` (Arabic-Indic three)
    // and `۳` (its Persian form) as `3`.
    const suite = serveAllianceAuth('mysql', {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      config: { login: LOGIN_BUDGETS },
      async prepare(fixture) {
        await fixture.run(
          'ALTER TABLE auth_user MODIFY username varchar(150) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL',
          [],
        );
        await insertAllianceAuthUser(fixture, 48, 'pilot3', FIXTURE_PASSWORD);
        await insertAllianceAuthUser(fixture, 49, 'scout7', FIXTURE_PASSWORD);
        await insertAllianceAuthUser(fixture, 50, 'ranger5', FIXTURE_PASSWORD);
      },
    });
    const { signInAs, failuresBefore429 } = signingIn(suite);

    it("counts the spellings the column's collation holds for one name against one budget, whether or not a user has it", async () => {
      assert.equal(
        (await signInAs('pi\u200blot٣', FIXTURE_PASSWORD)).status,
        303,
        'the database finds pilot3',
      );
      assert.equal(
        await failuresBefore429(['pilot3', 'PI\u200bLOT٣', 'pílot۳', 'pilot\u20603']),
        5,
        'five failures in all, whatever the spelling',
      );
      assert.equal(
        await failuresBefore429(['ghost3', 'GHO\u200bST٣', 'ghóst۳', 'ghost\u20603']),
        5,
        'the same for a name nobody has',
      );
    });

    it('counts a name with spaces and then a character that weighs nothing at its end, which the collation pads away, against the name’s budget', async () => {
      // `scout7 \u200b` finds scout7 (the space is padding once the zero-width space weighs nothing),
      // yet its weight string has the space: without the cut, each number of spaces a fresh budget.
      assert.equal(
        (await signInAs('scout7 \u200b', FIXTURE_PASSWORD)).status,
        303,
        'the database finds scout7',
      );
      assert.equal(
        await failuresBefore429([
          'scout7',
          'scout7 \u200b',
          'SCOUT7  \u200b',
          'scout7   \u2060',
          'scout7 \u200b \u200b',
        ]),
        5,
        'five failures in all, whatever the spaces',
      );
    });

    it('finds nobody by a spelling the collation holds equal to a name when its NFKC form differs, so that no such spelling is a fresh budget', async () => {
      // `\ufe70` (an Arabic presentation form) weighs nothing under the collation, but its NFKC form
      // is a space and a mark, which the throttle counts: `ra\ufe70nger5` equals `ranger5` in the
      // database, yet is counted as another name, and as many more as there are places to put it.
      assert.equal(await failuresBefore429(['ranger5']), 5, "ranger5's budget is spent");
      for (const spelling of ['ra\ufe70nger5', '\ufe76ranger5', 'ranger\ufe70\ufe705']) {
        assert.equal((await signInAs(spelling, FIXTURE_PASSWORD)).status, 401, `${spelling} is nobody`);
      }
    });
  },
);
