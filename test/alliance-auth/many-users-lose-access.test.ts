import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AllianceAuthKind,
  type AllianceAuthTestDatabase,
  describeOnEachAllianceAuth,
  expectedFixture,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { allianceAuthActions, insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { type AllianceAuthSuite, serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { login } from '../helpers/flows.ts';
import { Browser, seedApp } from '../helpers/server.ts';
import { logoutJobs } from '../logout/jobs.ts';

/**
 * One change in Alliance Auth's database judged for many users at once (`decideForMany`, one
 * whitelist set per application), as test/logout/many-users-lose-access.test.ts judges the built-in
 * directory's: AA deletes a group that applications still whitelist (the built-in directory refuses
 * that), or changes states, and the poll cycle that sees it must log out, and take the tokens of,
 * exactly the users who lose access, at exactly the applications that no longer admit them; nobody
 * else, nowhere else. Each user's pairs are named `user@app`, so that a wrong one says who was judged
 * wrongly where.
 *
 * The users signed in an hour before AA's change (their sign-ins are dated back so): the cycle
 * judges them from the previous cycle's fingerprint, not as users who signed in since it, whom it
 * judges as admitted everywhere before.
 */
const HOUR_MS = 3_600_000;

const fixtureIds = new Map(expectedFixture().users.map((user) => [user.username, user.id]));

/** gina: made by AA's admin after the fixture, a Guest with the access permission of her own. */
const GINA_ID = 30;

/** A user's sign-in: the applications they then hold tokens at (one browser session). */
type SignIns = Record<string, readonly string[]>;

/**
 * A suite on `kind` whose fixture `prepare` changed before the server's first cycle, with the
 * applications of `whitelists` (back-channel URIs never reached: the test only reads the queue).
 */
function allianceAuthWithApplications(
  kind: AllianceAuthKind,
  prepare: (fixture: AllianceAuthTestDatabase) => Promise<void>,
  whitelists: Record<string, { states?: string[]; groups?: string[] }>,
) {
  const suite = serveAllianceAuth(kind, {
    directory: { passwordLogin: true, pollSeconds: 3600 },
    config: { logout: { allowPrivateTargets: true } },
    prepare,
  });
  const appNames = new Map<string, string>();
  const clients = new Map<string, { clientId: string; clientSecret: string }>();
  const userNames = new Map<number, string>();

  /** The applications made, the baseline cycle read, and each user signed in an hour ago. */
  async function signInHourAgo(signIns: SignIns): Promise<void> {
    for (const [name, lists] of Object.entries(whitelists)) {
      const created = await seedApp(suite.server, {
        name,
        skipAuthorization: true,
        ...lists,
        backchannelLogoutUri: 'http://127.0.0.1:9/logout',
      });
      appNames.set(created.clientId, name);
      clients.set(name, { clientId: created.clientId, clientSecret: created.clientSecret! });
    }
    // The fingerprints AA's change is compared with (the server's first cycle, or a quiet one after it).
    const read = await suite.poll();
    assert.ok(
      read.outcome === 'baseline' || (read.outcome === 'applied' && read.changes.length === 0),
      JSON.stringify(read),
    );
    for (const [username, apps] of Object.entries(signIns)) {
      userNames.set(userId(username), username);
      const browser = new Browser();
      for (const app of apps)
        await login(suite.server, clients.get(app)!, username, { browser, password: FIXTURE_PASSWORD });
    }
    await suite.server.app.database.db
      .updateTable('issued_code')
      .set((eb) => ({ created_at: eb('created_at', '-', HOUR_MS) }))
      .execute();
  }

  const pair = (userId: number | null, clientId: string | null) =>
    `${userNames.get(Number(userId)) ?? `user ${userId}`}@${appNames.get(clientId ?? '') ?? clientId}`;
  const sorted = (pairs: Iterable<string>) => [...new Set(pairs)].sort();

  /** Whom the queue holds back-channel logouts for, and where. */
  async function loggedOut(): Promise<Array<[pair: string, trigger: string]>> {
    const jobs = await logoutJobs(suite.server.app.database);
    return jobs
      .map((job): [string, string] => [pair(job.user_id, job.client_id), job.trigger])
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async function tokens(): Promise<{ revoked: string[]; live: string[] }> {
    const rows = await suite.server.app.database.db
      .selectFrom('oidc_payload')
      .select(['user_id', 'client_id', 'revoked_at', 'revoked_reason'])
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .execute();
    return {
      revoked: sorted(
        rows
          .filter((row) => row.revoked_reason === 'policy_lost')
          .map((row) => pair(Number(row.user_id), row.client_id)),
      ),
      live: sorted(
        rows.filter((row) => row.revoked_at === null).map((row) => pair(Number(row.user_id), row.client_id)),
      ),
    };
  }

  return { suite, signInHourAgo, loggedOut, tokens };
}

function userId(username: string): number {
  if (username === 'gina') return GINA_ID;
  const id = fixtureIds.get(username);
  if (id === undefined) throw new Error(`no user ${username} in the fixture`);
  return id;
}

/** The cycle after AA's change, which applies it: what it found. */
async function cycle(suite: AllianceAuthSuite) {
  const outcome = await suite.poll();
  if (outcome.outcome !== 'applied') assert.fail(`an applied cycle, not ${JSON.stringify(outcome)}`);
  return outcome;
}

await describeOnEachAllianceAuth(
  (database) => `one Alliance Auth change judged for many users, on ${database}`,
  (kind) => {
    describe('AA deletes Directors, which gave access and which applications whitelist', () => {
      const { suite, signInHourAgo, loggedOut, tokens } = allianceAuthWithApplications(
        kind,
        async (fixture) => {
          const aa = allianceAuthActions(fixture);
          await insertAllianceAuthUser(fixture, GINA_ID, 'gina', FIXTURE_PASSWORD);
          await aa.addGroup(GINA_ID, 'Directors');
          // bob (Blue, whose state gives no access) holds it through Directors alone.
          await aa.addGroup(userId('bob'), 'Directors');
          await aa.addGroup(userId('alice'), 'Fleet Commanders');
          await aa.addGroup(userId('erin'), 'Fleet Commanders');
        },
        {
          // Directors first: a whitelist set built from its first group alone would drop Fleet Commanders.
          board: { groups: ['Directors'] },
          command: { groups: ['Directors', 'Fleet Commanders'] },
          members: { states: ['Member'], groups: ['Directors'] },
          wiki: { groups: ['Wiki Editors'] },
          blue: { states: ['Blue'] },
          open: {},
        },
      );

      it('logs each member out of exactly the applications their other groups, state and permission no longer admit them to', async () => {
        await signInHourAgo({
          frank: ['board', 'command', 'open'],
          // Member (access), Directors, Wiki Editors, Fleet Commanders.
          alice: ['board', 'command', 'members', 'wiki', 'open'],
          // Blue, Fleet Commanders, Directors (his only access).
          bob: ['board', 'command', 'blue', 'open'],
          // Guest, Directors (her only access).
          carol: ['board', 'members', 'open'],
          // Guest, her own permission, Fleet Commanders: no member of Directors.
          erin: ['command', 'open'],
          // Guest, her own permission, Directors.
          gina: ['board', 'command', 'members', 'open'],
        });

        await allianceAuthActions(suite.fixture).deleteGroup('Directors');
        const applied = await cycle(suite);

        assert.deepEqual(
          applied.deletions.map(({ entity, name }) => `${entity} ${name}`),
          ['group Directors'],
        );
        const told = [
          'alice@board',
          'bob@blue',
          'bob@board',
          'bob@command',
          'bob@open',
          'carol@board',
          'carol@members',
          'carol@open',
          'gina@board',
          'gina@command',
          'gina@members',
        ];
        assert.deepEqual(
          await loggedOut(),
          told.map((pair) => [pair, 'groups_changed']),
          'logged out where they no longer have access',
        );
        const { revoked, live } = await tokens();
        assert.deepEqual(revoked, told, 'and their tokens there revoked');
        assert.deepEqual(live, [
          'alice@command',
          'alice@members',
          'alice@open',
          'alice@wiki',
          'erin@command',
          'erin@open',
          'frank@board',
          'frank@command',
          'frank@open',
          'gina@open',
        ]);
        // The whitelists still name it (an emptied one would admit everyone): it admits nobody now.
        const applications = await suite.server.app.applications.list();
        assert.deepEqual(applications.find((app) => app.name === 'board')?.groups, ['Directors']);
      });
    });

    describe("AA changes states: Member's access taken, GoonWaffe out of Blue, alice's main out of the alliance", () => {
      const { suite, signInHourAgo, loggedOut, tokens } = allianceAuthWithApplications(
        kind,
        async (fixture) => {
          const aa = allianceAuthActions(fixture);
          // dave, reactivated: Member, no groups, access through the state alone.
          await aa.reactivate(userId('dave'), 'Member');
          await aa.addGroup(userId('bob'), 'Directors');
          await aa.addGroup(userId('alice'), 'Fleet Commanders');
        },
        {
          board: { groups: ['Directors'] },
          command: { groups: ['Directors', 'Fleet Commanders'] },
          members: { states: ['Member'] },
          wiki: { groups: ['Wiki Editors'] },
          blue: { states: ['Blue'] },
          guests: { states: ['Guest'] },
          open: {},
        },
      );

      it('logs each user out of exactly the applications their new state, or the state without its access, no longer admits them to', async () => {
        await signInHourAgo({
          frank: ['members', 'open'],
          // Member (access), Directors, Wiki Editors, Fleet Commanders.
          alice: ['board', 'command', 'members', 'wiki', 'open'],
          // Blue (GoonWaffe), Fleet Commanders, Directors.
          bob: ['board', 'command', 'blue', 'open'],
          // Guest, Directors.
          carol: ['board', 'guests', 'open'],
          dave: ['members', 'open'],
          // Guest, her own permission.
          erin: ['guests', 'open'],
        });

        const { fixture } = suite;
        const aa = allianceAuthActions(fixture);
        await fixture.run(
          `DELETE FROM authentication_state_permissions
            WHERE state_id = (SELECT id FROM authentication_state WHERE name = ?)
              AND permission_id IN (SELECT p.id FROM auth_permission p JOIN django_content_type ct ON ct.id = p.content_type_id
                                     WHERE ct.app_label = 'allianceauth_oidc' AND p.codename = 'access_oidc')`,
          ['Member'],
        );
        // `state.member_corporations.remove(…)`: `trigger_state_check` reassigns the state of each
        // user whose main is in the corporation (bob; alice's GoonWaffe character is an alt).
        await fixture.run(
          `DELETE FROM authentication_state_member_corporations
            WHERE state_id = (SELECT id FROM authentication_state WHERE name = ?)
              AND evecorporationinfo_id = (SELECT id FROM eveonline_evecorporationinfo WHERE corporation_id = ?)`,
          ['Blue', 667531913],
        );
        await fixture.run(
          `UPDATE authentication_userprofile SET state_id = (SELECT id FROM authentication_state WHERE name = ?)
            WHERE main_character_id IN (SELECT id FROM eveonline_evecharacter WHERE corporation_id = ?)`,
          ['Guest', 667531913],
        );
        // Her main leaves the alliance: Guest, and Wiki Editors (restricted to Member) removed.
        await aa.moveMainToAlliance(userId('alice'), { id: null, name: null, ticker: null }, 'Guest');
        const applied = await cycle(suite);

        assert.deepEqual(
          [...new Set(applied.changes.map((change) => change.userId))].sort((a, b) => a - b),
          // frank too: the state no longer gives him the permission, which he needs not (superuser).
          ['frank', 'alice', 'bob', 'dave'].map(userId),
        );
        const told: Array<[string, string]> = [
          ['alice@members', 'state_changed'],
          ['alice@wiki', 'state_changed'],
          ['bob@blue', 'state_changed'],
          // dave's state is still Member: what changed is the access it gives.
          ['dave@members', 'groups_changed'],
          ['dave@open', 'groups_changed'],
        ];
        assert.deepEqual(await loggedOut(), told, 'logged out where they no longer have access');
        const { revoked, live } = await tokens();
        assert.deepEqual(
          revoked,
          told.map(([pair]) => pair),
          'and their tokens there revoked',
        );
        assert.deepEqual(live, [
          'alice@board',
          'alice@command',
          'alice@open',
          'bob@board',
          'bob@command',
          'bob@open',
          'carol@board',
          'carol@guests',
          'carol@open',
          'erin@guests',
          'erin@open',
          'frank@members',
          'frank@open',
        ]);
      });
    });
  },
);
