import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ApplicationInput } from '../../src/applications/types.ts';
import type { NewUser } from '../../src/directory/builtin/types.ts';
import { raiseChangeEpoch } from '../../src/db/change-epoch.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  Browser,
  REDIRECT_URI,
  seedApp,
  seedUser,
  startServer,
  type SignInOptions,
  type TestServer,
} from '../helpers/server.ts';
import {
  authorize,
  type Client,
  codeFrom,
  introspect,
  login,
  tokenRequest,
  userinfo,
} from '../helpers/flows.ts';
import { authorizeDenials, counted, policyEvents, rejections, removeGroupUnannounced } from './observe.ts';

/**
 * The access policy through real HTTP: a real server, a real database, the real login pages. States and
 * groups: Member (oidc_access), Guest (none); Fleet (no oidc_access, whitelisted by the wiki),
 * Miners (oidc_access), Directors.
 */
describe(`access policy over HTTP (${testDatabaseKind})`, () => {
  let server: TestServer;
  /** Whitelists group Fleet only. */
  let wiki: Client;
  const WIKI_NAME = 'Secret Fleet Wiki';

  const app = async (input: Partial<ApplicationInput>): Promise<Client> => {
    const created = await seedApp(server, input);
    return { clientId: created.clientId, clientSecret: created.clientSecret! };
  };
  const user = (input: Partial<NewUser>) => seedUser(server, { oidcAccess: false, ...input });

  before(async () => {
    server = await startServer();
    const { directoryAdmin: directory } = server.app;
    await directory.createState('Member', 100, true);
    await directory.createState('Guest', 10, false);
    await directory.createGroup('Fleet', false);
    await directory.createGroup('Miners', true);
    await directory.createGroup('Directors', false);
    wiki = await app({ name: WIKI_NAME, groups: ['Fleet'] });
  });
  after(async () => server.close());

  describe('the matrix, a representative subset through the login pages', () => {
    const cases: Array<{
      name: string;
      user: Partial<NewUser>;
      app: Partial<ApplicationInput>;
      want: 'allow' | 'global' | 'app' | 'app_unusable';
    }> = [
      {
        name: 'superuser × whitelist neither',
        user: { superuser: true },
        app: { states: ['Member'], groups: ['Directors'] },
        want: 'allow',
      },
      {
        name: 'oidc_access via state × state match',
        user: { state: 'Member' },
        app: { states: ['Member'] },
        want: 'allow',
      },
      {
        name: 'oidc_access via group × group match',
        user: { state: 'Guest', groups: ['Miners', 'Fleet'] },
        app: { states: ['Member'], groups: ['Fleet'] },
        want: 'allow',
      },
      {
        name: 'oidc_access via user × whitelists empty',
        user: { oidcAccess: true, state: 'Guest' },
        app: {},
        want: 'allow',
      },
      {
        name: 'no oidc_access × whitelists empty',
        user: { state: 'Guest', groups: ['Fleet'] },
        app: {},
        want: 'global',
      },
      {
        name: 'no oidc_access × state match',
        user: { state: 'Guest' },
        app: { states: ['Guest'] },
        want: 'global',
      },
      {
        name: 'oidc_access via user × whitelist neither',
        user: { oidcAccess: true, state: 'Guest', groups: ['Directors'] },
        app: { states: ['Member'], groups: ['Fleet'] },
        want: 'app',
      },
      {
        name: 'oidc_access via state × state match × app inactive',
        user: { state: 'Member' },
        app: { states: ['Member'], active: false },
        want: 'app_unusable',
      },
    ];
    for (const testCase of cases) {
      it(`${testCase.name} → ${testCase.want}`, async () => {
        const pilot = await user(testCase.user);
        const client = await app({ name: `App for ${testCase.name}`, ...testCase.app });
        const reason = testCase.want === 'allow' ? 'global' : testCase.want;
        const before = await rejections(server, 'authorize', reason);
        const { response } = await authorize(server, new Browser(), client, pilot.username);
        const moved = (await rejections(server, 'authorize', reason)) - before;
        switch (testCase.want) {
          case 'allow':
            codeFrom(response);
            assert.equal(moved, 0);
            return;
          case 'global':
          case 'app': {
            assert.equal(response.status, 403);
            const page = await response.text();
            assert.match(page, /Access denied/);
            assert.ok(!page.includes(`App for ${testCase.name}`), 'the page names no application');
            assert.ok(!page.includes(client.clientId));
            for (const name of ['Member', 'Guest', 'Fleet', 'Directors'])
              assert.ok(!page.includes(name), `the page names no whitelist (${name})`);
            assert.equal(moved, 1);
            return;
          }
          case 'app_unusable':
            // The kill switch: the application is not even a client; nothing is asked of the user.
            assert.equal(response.status, 400);
            assert.match(await response.text(), /invalid_client/);
            assert.equal(moved, 1);
            return;
        }
      });
    }
  });

  describe('losing access takes effect on the very next request', () => {
    const losses: Array<{
      name: string;
      input: Partial<NewUser>;
      client: () => Client;
      lose: (id: number) => Promise<unknown>;
      restore: (id: number) => Promise<unknown>;
      reason: 'app' | 'global';
      /**
       * False when the change also revokes the tokens outright (src/tokens/access-loss.ts: every
       * change that takes the application away does): they are then refused as revoked, before the
       * policy is asked.
       */
      policyAnswers: boolean;
    }> = [
      {
        name: 'loses the whitelisted group',
        input: { state: 'Member', groups: ['Fleet'] },
        client: () => wiki,
        lose: (id) => server.app.directoryAdmin.removeGroup({ id }, 'Fleet'),
        restore: (id) => server.app.directoryAdmin.addGroup({ id }, 'Fleet'),
        reason: 'app',
        policyAnswers: false,
      },
      {
        name: 'loses the whitelisted group in a change the directory has not announced yet',
        input: { state: 'Member', groups: ['Fleet'] },
        client: () => wiki,
        lose: (id) => removeGroupUnannounced(server, id, 'Fleet'),
        restore: (id) => server.app.directoryAdmin.addGroup({ id }, 'Fleet'),
        reason: 'app',
        policyAnswers: true,
      },
      {
        name: 'changes state to one without oidc_access',
        input: { state: 'Member', groups: ['Fleet'] },
        client: () => wiki,
        lose: (id) => server.app.directoryAdmin.setState({ id }, 'Guest'),
        restore: (id) => server.app.directoryAdmin.setState({ id }, 'Member'),
        reason: 'global',
        policyAnswers: false,
      },
      {
        name: 'is deactivated',
        input: { state: 'Member', groups: ['Fleet'] },
        client: () => wiki,
        lose: (id) => server.app.directoryAdmin.deactivate({ id }),
        restore: (id) => server.app.directoryAdmin.activate({ id }),
        reason: 'global',
        policyAnswers: false,
      },
    ];
    for (const loss of losses) {
      it(`a user who ${loss.name}: refresh invalid_grant, userinfo 401, introspection inactive; restored, a new login works`, async () => {
        const pilot = await user(loss.input);
        const client = loss.client();
        const { accessToken, refreshToken } = await login(server, client, pilot.username);
        assert.equal((await userinfo(server, accessToken)).status, 200);
        assert.equal((await introspect(server, client, accessToken)).body.active, true);

        await loss.lose(pilot.id);

        const { events } = await policyEvents(server, async () => {
          const refreshMoved = await counted(server, 'validate_refresh', loss.reason, async () => {
            const refreshed = await tokenRequest(server, client, {
              grant_type: 'refresh_token',
              refresh_token: refreshToken,
            });
            assert.equal(refreshed.status, 400);
            assert.equal(refreshed.body.error, 'invalid_grant');
            assert.ok(!String(refreshed.body.error_description).includes(WIKI_NAME));
          });
          assert.equal(refreshMoved, loss.policyAnswers ? 1 : 0);

          const bearerMoved = await counted(server, 'validate_bearer', loss.reason, async () => {
            const info = await userinfo(server, accessToken);
            assert.equal(info.status, 401);
            assert.match(info.wwwAuthenticate, /error="invalid_token"/);
            assert.equal((await introspect(server, client, accessToken)).body.active, false);
            assert.equal((await introspect(server, client, refreshToken)).body.active, false);
          });
          assert.equal(bearerMoved, loss.policyAnswers ? 3 : 0, 'userinfo and both introspections');
        });
        const stages = events.map((event) => `${event.stage}:${event.reason}`);
        assert.deepEqual(
          stages,
          loss.policyAnswers
            ? [
                `validate_refresh:${loss.reason}`,
                `validate_bearer:${loss.reason}`,
                `validate_bearer:${loss.reason}`,
                `validate_bearer:${loss.reason}`,
              ]
            : [],
        );
        for (const event of events) {
          assert.equal(event.user_id, pilot.id);
          assert.equal(event.client_id, client.clientId);
          assert.ok(
            !JSON.stringify(event).includes(accessToken) && !JSON.stringify(event).includes(refreshToken),
          );
        }

        await loss.restore(pilot.id);
        const again = await login(server, client, pilot.username);
        assert.equal((await userinfo(server, again.accessToken)).status, 200);
        assert.equal((await introspect(server, client, again.accessToken)).body.active, true);
      });
    }
  });

  it('re-checks an existing session: prompt=none gets an access_denied redirect, an interactive request the 403 page (validate_silent_auth)', async () => {
    const pilot = await user({ state: 'Member', groups: ['Fleet'] });
    const { browser } = await login(server, wiki, pilot.username);
    const silentOk = await authorize(server, browser, wiki, undefined, { prompt: 'none' });
    codeFrom(silentOk.response);

    await server.app.directoryAdmin.removeGroup({ id: pilot.id }, 'Fleet');
    const deniedBefore = await authorizeDenials(server, 'app');
    const silent = await counted(server, 'validate_silent_auth', 'app', async () => {
      const { response, state } = await authorize(server, browser, wiki, undefined, { prompt: 'none' });
      assert.equal(response.status, 303);
      const location = new URL(response.headers.get('location')!);
      assert.equal(`${location.origin}${location.pathname}`, REDIRECT_URI);
      assert.equal(location.searchParams.get('error'), 'access_denied');
      assert.equal(location.searchParams.get('state'), state);
      assert.equal(location.searchParams.get('code'), null);
    });
    assert.equal(silent, 1);

    const seen: NonNullable<SignInOptions['seen']> = [];
    const interactive = await counted(server, 'validate_silent_auth', 'app', async () => {
      const { response } = await authorize(server, browser, wiki, undefined, {}, { seen });
      assert.equal(response.status, 403);
      assert.equal(response.headers.get('x-frame-options'), 'DENY');
      const page = await response.text();
      assert.match(page, /Access denied/);
      assert.ok(!page.includes(WIKI_NAME) && !page.includes('Fleet'));
    });
    assert.equal(interactive, 1);
    assert.deepEqual(
      seen.map((page) => page.kind),
      ['other'],
      'the denied page straight away, no login page: the session was re-checked',
    );
    assert.equal((await authorizeDenials(server, 'app')) - deniedBefore, 2);
  });

  it('refuses a code whose user lost access between authorization and exchange (validate_code)', async () => {
    const pilot = await user({ state: 'Member', groups: ['Fleet'] });
    const { response, verifier } = await authorize(server, new Browser(), wiki, pilot.username);
    const code = codeFrom(response);
    // Unannounced: a published change would revoke the code itself before the policy is asked.
    await removeGroupUnannounced(server, pilot.id, 'Fleet');
    const moved = await counted(server, 'validate_code', 'app', async () => {
      const exchanged = await tokenRequest(server, wiki, {
        grant_type: 'authorization_code',
        code,
        redirect_uri: REDIRECT_URI,
        code_verifier: verifier,
      });
      assert.equal(exchanged.status, 400);
      assert.equal(exchanged.body.error, 'invalid_grant');
      assert.equal(exchanged.body.access_token, undefined);
    });
    assert.equal(moved, 1);
  });

  it('asks once more right before saving: a user who loses access during the exchange gets invalid_grant and no token is stored (save_bearer)', async () => {
    const pilot = await user({ state: 'Member', groups: ['Fleet'] });
    const { response, verifier } = await authorize(server, new Browser(), wiki, pilot.username);
    const code = codeFrom(response);
    const storedTokens = async () =>
      (
        await server.app.database.db
          .selectFrom('oidc_payload')
          .select('id')
          .where('model', 'in', ['AccessToken', 'RefreshToken'])
          .where('user_id', '=', String(pilot.id))
          .execute()
      ).length;
    assert.equal(await storedTokens(), 0);

    // The group goes for real, in the database, right after the validate_code stage loaded the
    // user: the change lands between the two checks of one request, as a concurrent change would.
    const { directory, directoryAdmin } = server.app;
    const original = directory.profileById;
    const keepable = directory.keepable!;
    const originalKept = keepable.profileWithPositionById;
    let armed = true;
    const afterLoad = async (id: number) => {
      if (armed && id === pilot.id) {
        armed = false;
        await directoryAdmin.removeGroup({ id }, 'Fleet');
      }
    };
    directory.profileById = async (id: number) => {
      const profile = await original.call(directory, id);
      await afterLoad(id);
      return profile;
    };
    // The provider keeps profiles (src/oidc/kept-profiles.ts) and loads them through `keepable`; a
    // change of the directory by this process drops them, so that validate_code loads the user.
    keepable.profileWithPositionById = async (id: number) => {
      const found = await originalKept.call(keepable, id);
      await afterLoad(id);
      return found;
    };
    await directoryAdmin.createGroup('Unrelated to the exchange', false);
    try {
      const validated = await rejections(server, 'validate_code', 'app');
      const moved = await counted(server, 'save_bearer', 'app', async () => {
        const exchanged = await tokenRequest(server, wiki, {
          grant_type: 'authorization_code',
          code,
          redirect_uri: REDIRECT_URI,
          code_verifier: verifier,
        });
        assert.equal(exchanged.status, 400, JSON.stringify(exchanged.body));
        assert.equal(exchanged.body.error, 'invalid_grant');
      });
      assert.equal(moved, 1);
      assert.equal(await rejections(server, 'validate_code', 'app'), validated, 'validate_code had allowed');
      assert.equal(armed, false);
    } finally {
      directory.profileById = original;
      keepable.profileWithPositionById = originalKept;
    }
    assert.equal(await storedTokens(), 0, 'neither an access nor a refresh token was stored');
  });

  it('applies the app-usability layer to client_credentials right before saving (save_bearer), and the kill switch before anything', async () => {
    const machine = await app({
      name: 'Machine',
      grantTypes: ['client_credentials'],
      redirectUris: [],
      groups: ['Directors'],
    });
    const issued = await tokenRequest(server, machine, { grant_type: 'client_credentials' });
    assert.equal(issued.status, 200, 'no user: the whitelists do not apply');
    assert.equal((await introspect(server, machine, issued.body.access_token as string)).body.active, true);

    const { applications } = server.app;
    const original = applications.findByClientId;
    // Applications are kept in memory while the change epoch stands: a write elsewhere moves it, so
    // that the next request loads the application (and the change below lands during that load).
    await server.app.database.db.transaction().execute((trx) => raiseChangeEpoch(trx));
    let armed = true;
    applications.findByClientId = async (clientId: string) => {
      const found = await original.call(applications, clientId);
      if (armed && clientId === machine.clientId) {
        armed = false;
        await applications.deactivate(clientId, 'test');
      }
      return found;
    };
    try {
      const moved = await counted(server, 'save_bearer', 'app_unusable', async () => {
        const refused = await tokenRequest(server, machine, { grant_type: 'client_credentials' });
        assert.equal(refused.status, 400, JSON.stringify(refused.body));
        assert.equal(refused.body.error, 'unauthorized_client');
      });
      assert.equal(moved, 1);
    } finally {
      applications.findByClientId = original;
    }
    const stored = await server.app.database.db
      .selectFrom('oidc_payload')
      .select('id')
      .where('model', '=', 'ClientCredentials')
      .where('client_id', '=', machine.clientId)
      .execute();
    assert.equal(stored.length, 1, 'only the token issued before');

    const killed = await counted(server, 'save_bearer', 'app_unusable', async () => {
      const refused = await tokenRequest(server, machine, { grant_type: 'client_credentials' });
      assert.equal(refused.status, 401);
      assert.equal(refused.body.error, 'invalid_client');
    });
    assert.equal(killed, 1);
    assert.equal((await introspect(server, wiki, issued.body.access_token as string)).body.active, false);
  });

  it('publishes policy_denied with stage and reason, and never names the app to a globally refused user', async () => {
    const outsider = await user({ state: 'Guest' });
    const { result, events } = await policyEvents(server, () =>
      authorize(server, new Browser(), wiki, outsider.username),
    );
    assert.equal(result.response.status, 403);
    const page = await result.response.text();
    assert.ok(!page.includes(WIKI_NAME) && !page.includes(wiki.clientId));
    assert.deepEqual(
      events.map(({ kind, stage, reason, user_id, client_id }) => ({
        kind,
        stage,
        reason,
        user_id,
        client_id,
      })),
      [
        {
          kind: 'policy_denied',
          stage: 'authorize',
          reason: 'global',
          user_id: outsider.id,
          client_id: wiki.clientId,
        },
      ],
    );
    const text = await server.app.metrics.registry.metrics();
    assert.match(text, /^aa_oidc_policy_rejections_total\{stage="authorize",reason="global"\} [1-9]\d*$/m);
    assert.match(text, /^aa_oidc_authorize_denied_total\{reason="global"\} [1-9]\d*$/m);
    assert.doesNotMatch(
      text,
      new RegExp(`aa_oidc_policy_rejections_total\\{[^}]*${outsider.id}`),
      'no user id in labels',
    );
  });
});
