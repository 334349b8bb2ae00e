import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Consequence } from '../../src/db/unit-of-work.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { Browser, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { logoutJobs } from './jobs.ts';
import { holdTokensAt } from './rp-receiver.ts';

/**
 * One change judged for many users at once (`decideForMany`, one whitelist set per application):
 * users with different states and groups hold tokens at applications with different whitelists, and
 * one change must log out, and take the tokens of, exactly the users who lose access, at exactly the
 * applications that no longer admit them; nobody else, nowhere else. Each user's pairs are named
 * `user@app`, so that a wrong one says who was judged wrongly where.
 */
describe(`one change judged for many users (${testDatabaseKind})`, () => {
  let server: TestServer;
  /** Client id → the test's name for the application; user id → the test's name for the user. */
  const appNames = new Map<string, string>();
  const userNames = new Map<number, string>();

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    for (const group of ['Alpha', 'Beta', 'Gamma']) await server.app.directoryAdmin.createGroup(group);
    await server.app.directoryAdmin.createState('Ally', 40, false);
  });
  after(async () => server.close());
  // An application left active would be judged by the next test's change too.
  afterEach(async () => {
    for (const clientId of appNames.keys()) await server.app.applications.deactivate(clientId, 'test');
    appNames.clear();
    userNames.clear();
  });

  async function app(name: string, whitelists: { states?: string[]; groups?: string[] } = {}) {
    const created = await seedApp(server, {
      name,
      skipAuthorization: true,
      ...whitelists,
      // Never reached: the test delivers nothing, it only looks at the queue.
      backchannelLogoutUri: 'http://127.0.0.1:9/logout',
    });
    appNames.set(created.clientId, name);
    return created;
  }

  type App = Awaited<ReturnType<typeof app>>;

  /** A user who then holds tokens at each of `apps` (one browser session). */
  async function userAt(name: string, input: Parameters<typeof seedUser>[1], apps: readonly App[]) {
    const user = await seedUser(server, { oidcAccess: false, ...input });
    userNames.set(user.id, name);
    const browser = new Browser();
    for (const at of apps) await holdTokensAt(server, browser, at, user.username);
    return user;
  }

  const pair = (userId: number | null, clientId: string | null) =>
    `${userNames.get(Number(userId)) ?? `user ${userId}`}@${appNames.get(clientId ?? '') ?? clientId}`;
  const sorted = (pairs: Iterable<string>) => [...new Set(pairs)].sort();

  /** Whom the queue holds back-channel logouts for, and where (the test's users only). */
  async function loggedOut(trigger: string): Promise<string[]> {
    const jobs = await logoutJobs(server.app.database);
    return sorted(
      jobs
        .filter((job) => job.user_id !== null && userNames.has(job.user_id))
        .map((job) => {
          assert.equal(job.trigger, trigger, pair(job.user_id, job.client_id));
          return pair(job.user_id, job.client_id);
        }),
    );
  }

  /** Whose access and refresh tokens were revoked for a lost policy, and where. */
  async function revokedForLostAccess(): Promise<string[]> {
    const rows = await server.app.database.db
      .selectFrom('oidc_payload')
      .select(['user_id', 'client_id', 'revoked_reason'])
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .where('user_id', 'in', [...userNames.keys()].map(String))
      .execute();
    return sorted(
      rows
        .filter((row) => row.revoked_reason === 'policy_lost')
        .map((row) => pair(Number(row.user_id), row.client_id)),
    );
  }

  /** Whose tokens are still live, and where. */
  async function stillLive(): Promise<string[]> {
    const rows = await server.app.database.db
      .selectFrom('oidc_payload')
      .select(['user_id', 'client_id'])
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .where('revoked_at', 'is', null)
      .where('user_id', 'in', [...userNames.keys()].map(String))
      .execute();
    return sorted(rows.map((row) => pair(Number(row.user_id), row.client_id)));
  }

  const accessLost = (consequences: readonly Consequence[]) =>
    sorted(
      consequences.flatMap((consequence) =>
        consequence.kind === 'access_lost' ? [pair(consequence.userId, consequence.clientId)] : [],
      ),
    );

  /**
   * The applications of the directory tests, each admitting a different part of the users:
   * `alpha` and `betaOrGamma` by group, `ally` by state, `open` everyone past the global gate.
   */
  async function whitelistedApps() {
    return {
      alpha: await app('alpha', { groups: ['Alpha'] }),
      betaOrGamma: await app('beta-or-gamma', { groups: ['Beta', 'Gamma'] }),
      ally: await app('ally', { states: ['Ally'] }),
      open: await app('open'),
    };
  }

  it('deleting a group that gave oidc_access logs each member out of exactly the applications their own groups and state admitted them to', async () => {
    await server.app.directoryAdmin.createGroup('Comms', true);
    const { alpha, betaOrGamma, ally, open } = await whitelistedApps();
    // Each member's global gate came from Comms alone, but for dan (his own flag); eve is no member.
    await userAt('ann', { groups: ['Comms', 'Alpha'] }, [alpha, open]);
    await userAt('bob', { groups: ['Comms', 'Beta'] }, [betaOrGamma]);
    await userAt('cat', { groups: ['Comms', 'Gamma'], state: 'Ally' }, [betaOrGamma, ally, open]);
    await userAt('dan', { groups: ['Comms', 'Alpha', 'Beta'], oidcAccess: true }, [alpha, betaOrGamma]);
    await userAt('eve', { groups: ['Alpha'], oidcAccess: true }, [alpha, open]);

    const consequences: Consequence[] = [];
    await server.app.directoryAdmin.deleteGroup('Comms', { consequences });

    // Every application that admitted the member before, whether or not they hold a token there.
    assert.deepEqual(accessLost(consequences), [
      'ann@alpha',
      'ann@open',
      'bob@beta-or-gamma',
      'bob@open',
      'cat@ally',
      'cat@beta-or-gamma',
      'cat@open',
    ]);
    const told = ['ann@alpha', 'ann@open', 'bob@beta-or-gamma', 'cat@ally', 'cat@beta-or-gamma', 'cat@open'];
    assert.deepEqual(await loggedOut('groups_changed'), told, 'logged out where they held tokens');
    assert.deepEqual(await revokedForLostAccess(), told, 'and their tokens there revoked');
    assert.deepEqual(await stillLive(), ['dan@alpha', 'dan@beta-or-gamma', 'eve@alpha', 'eve@open']);
  });

  it("taking a state's access flag logs each member out of exactly the applications their own groups and state admitted them to", async () => {
    await server.app.directoryAdmin.createState('Coalition', 60, true);
    const { alpha, betaOrGamma, ally, open } = await whitelistedApps();
    const coalition = await app('coalition', { states: ['Coalition'] });
    await userAt('ann', { state: 'Coalition', groups: ['Gamma'] }, [betaOrGamma, coalition]);
    await userAt('bob', { state: 'Coalition', groups: ['Alpha'] }, [alpha, open]);
    await userAt('cat', { state: 'Coalition' }, [coalition, open]);
    // dia passes the gate by a group of her own and keeps everything; dan is in another state.
    await server.app.directoryAdmin.createGroup('Officers', true);
    await userAt('dia', { state: 'Coalition', groups: ['Officers', 'Beta'] }, [betaOrGamma, coalition]);
    await userAt('dan', { state: 'Ally', groups: ['Alpha'], oidcAccess: true }, [alpha, ally]);

    const consequences: Consequence[] = [];
    await server.app.directoryAdmin.grantStateAccess('Coalition', false, { consequences });

    assert.deepEqual(accessLost(consequences), [
      'ann@beta-or-gamma',
      'ann@coalition',
      'ann@open',
      'bob@alpha',
      'bob@coalition',
      'bob@open',
      'cat@coalition',
      'cat@open',
    ]);
    const told = ['ann@beta-or-gamma', 'ann@coalition', 'bob@alpha', 'bob@open', 'cat@coalition', 'cat@open'];
    assert.deepEqual(await loggedOut('state_changed'), told, 'logged out where they held tokens');
    assert.deepEqual(await revokedForLostAccess(), told, 'and their tokens there revoked');
    assert.deepEqual(await stillLive(), ['dan@ally', 'dan@alpha', 'dia@beta-or-gamma', 'dia@coalition']);
  });

  it('narrowing one application’s group whitelist logs out exactly its users no group or state of theirs admits now', async () => {
    const fleet = await app('fleet', { groups: ['Alpha', 'Beta', 'Gamma'], states: ['Ally'] });
    const other = await app('other', { groups: ['Beta'] });
    await userAt('ann', { groups: ['Alpha'], oidcAccess: true }, [fleet]);
    await userAt('bob', { groups: ['Beta'], oidcAccess: true }, [fleet, other]);
    await userAt('cat', { groups: ['Gamma', 'Alpha'], oidcAccess: true }, [fleet]);
    await userAt('dan', { groups: ['Beta'], state: 'Ally', oidcAccess: true }, [fleet, other]);
    await userAt('eve', { groups: ['Gamma'], oidcAccess: true }, [fleet]);

    const consequences: Consequence[] = [];
    await server.app.applications.update(fleet.clientId, { groups: ['Alpha'] }, 'test', { consequences });

    assert.deepEqual(accessLost(consequences), ['bob@fleet', 'eve@fleet']);
    assert.deepEqual(await loggedOut('whitelist_changed'), ['bob@fleet', 'eve@fleet']);
    assert.deepEqual(await revokedForLostAccess(), ['bob@fleet', 'eve@fleet']);
    assert.deepEqual(await stillLive(), ['ann@fleet', 'bob@other', 'cat@fleet', 'dan@fleet', 'dan@other']);
  });

  it('judges each change by the whitelists as they are at the change, not as an earlier change read them', async () => {
    const rotating = await app('rotating', { groups: ['Alpha'] });
    // A first change judged against the application while it whitelisted Alpha only.
    const ann = await userAt('ann', { groups: ['Alpha', 'Gamma'], oidcAccess: true }, [rotating]);
    await server.app.directoryAdmin.removeGroup({ id: ann.id }, 'Gamma');
    assert.deepEqual(await loggedOut('groups_changed'), [], 'Alpha still admits ann');

    // Widened (nobody judged), then a Beta member signs in and leaves Beta.
    await server.app.applications.update(rotating.clientId, { groups: ['Alpha', 'Beta'] }, 'test');
    const bob = await userAt('bob', { groups: ['Beta'], oidcAccess: true }, [rotating]);
    const consequences: Consequence[] = [];
    await server.app.directoryAdmin.removeGroup({ id: bob.id }, 'Beta', { consequences });

    assert.deepEqual(accessLost(consequences), ['bob@rotating']);
    assert.deepEqual(await loggedOut('groups_changed'), ['bob@rotating']);
    assert.deepEqual(await revokedForLostAccess(), ['bob@rotating']);
    assert.deepEqual(await stillLive(), ['ann@rotating']);
  });
});
