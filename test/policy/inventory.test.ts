import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PolicyStage } from '../../src/policy/stages.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  basicAuth,
  Browser,
  postForm,
  REDIRECT_URI,
  seedApp,
  seedUser,
  startServer,
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
import { counted, removeGroupUnannounced } from './observe.ts';

/**
 * Every endpoint and grant type that issues or accepts tokens, taken from the running provider's
 * discovery document, each proven to consult the policy: a user who lost access is refused there and
 * the rejection counter of the expected stage moves. A grant type or endpoint that discovery
 * advertises and this table does not know fails the test, so a new path cannot bypass the policy
 * unnoticed.
 */
describe(`every token path consults the policy (${testDatabaseKind})`, () => {
  let server: TestServer;
  let discovery: Record<string, unknown>;
  /** Whitelists group Fleet; its users are in Fleet until a probe takes it away. */
  let client: Client;
  let machine: Client;

  before(async () => {
    server = await startServer();
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup('Fleet', false);
    const seeded = await seedApp(server, { name: 'Inventory RP', groups: ['Fleet'] });
    client = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
    const robot = await seedApp(server, {
      name: 'Robot',
      grantTypes: ['client_credentials'],
      redirectUris: [],
    });
    machine = { clientId: robot.clientId, clientSecret: robot.clientSecret! };
    discovery = (await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
  });
  after(async () => server.close());

  const member = () => seedUser(server, { oidcAccess: false, state: 'Member', groups: ['Fleet'] });
  // Unannounced: a change published by the directory would revoke the codes and tokens outright
  // (src/tokens/access-loss.ts), and these probes are about the policy behind that.
  const loseAccess = (id: number) => removeGroupUnannounced(server, id, 'Fleet');

  /** One probe per grant type: refused for a user (or app) without access, at the stage named. */
  const GRANT_PROBES: Record<string, { stage: PolicyStage; reason: string; probe: () => Promise<void> }> = {
    authorization_code: {
      stage: 'validate_code',
      reason: 'app',
      probe: async () => {
        const pilot = await member();
        const { response, verifier } = await authorize(server, new Browser(), client, pilot.username);
        const code = codeFrom(response);
        await loseAccess(pilot.id);
        const answer = await tokenRequest(server, client, {
          grant_type: 'authorization_code',
          code,
          redirect_uri: REDIRECT_URI,
          code_verifier: verifier,
        });
        assert.equal(answer.body.error, 'invalid_grant');
      },
    },
    refresh_token: {
      stage: 'validate_refresh',
      reason: 'app',
      probe: async () => {
        const pilot = await member();
        const { refreshToken } = await login(server, client, pilot.username);
        await loseAccess(pilot.id);
        const answer = await tokenRequest(server, client, {
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
        });
        assert.equal(answer.body.error, 'invalid_grant');
      },
    },
    client_credentials: {
      // No user: the app-usability layer, whose kill switch refuses the client before anything else.
      stage: 'save_bearer',
      reason: 'app_unusable',
      probe: async () => {
        assert.equal((await tokenRequest(server, machine, { grant_type: 'client_credentials' })).status, 200);
        await server.app.applications.deactivate(machine.clientId, 'test');
        try {
          const answer = await tokenRequest(server, machine, { grant_type: 'client_credentials' });
          assert.equal(answer.body.error, 'invalid_client');
        } finally {
          await server.app.applications.activate(machine.clientId, 'test');
        }
      },
    },
  };

  /** Every `*_endpoint` discovery may advertise: how it consults the policy, or why it need not. */
  const ENDPOINT_PROBES: Record<
    string,
    | { stage: PolicyStage; reason: string; probe: () => Promise<void> }
    | { exempt: string; probe: () => Promise<void> }
  > = {
    authorization_endpoint: {
      stage: 'authorize',
      reason: 'app',
      probe: async () => {
        const pilot = await member();
        await loseAccess(pilot.id);
        const { response } = await authorize(server, new Browser(), client, pilot.username);
        assert.equal(response.status, 403);
      },
    },
    token_endpoint: {
      exempt: 'probed once per advertised grant type (GRANT_PROBES)',
      probe: async () => undefined,
    },
    userinfo_endpoint: {
      stage: 'validate_bearer',
      reason: 'app',
      probe: async () => {
        const pilot = await member();
        const { accessToken } = await login(server, client, pilot.username);
        await loseAccess(pilot.id);
        const answer = await userinfo(server, accessToken);
        assert.equal(answer.status, 401);
        assert.match(answer.wwwAuthenticate, /invalid_token/);
      },
    },
    introspection_endpoint: {
      stage: 'validate_bearer',
      reason: 'app',
      probe: async () => {
        const pilot = await member();
        const { accessToken } = await login(server, client, pilot.username);
        await loseAccess(pilot.id);
        assert.equal((await introspect(server, client, accessToken)).body.active, false);
      },
    },
    revocation_endpoint: {
      exempt: 'only takes access away: revoking a refused user’s token still works and issues nothing',
      probe: async () => {
        const pilot = await member();
        const { accessToken } = await login(server, client, pilot.username);
        await loseAccess(pilot.id);
        const answer = await postForm(
          `${server.issuer}/revoke_token/`,
          { token: accessToken },
          { authorization: basicAuth(client.clientId, client.clientSecret) },
        );
        assert.equal(answer.status, 200);
        await server.app.directoryAdmin.addGroup({ id: pilot.id }, 'Fleet');
        assert.equal((await introspect(server, client, accessToken)).body.active, false, 'revoked');
      },
    },
    end_session_endpoint: {
      exempt: 'RP-initiated logout issues no token and accepts no bearer token (only ends sessions)',
      probe: async () => undefined,
    },
  };

  it('knows every grant type discovery advertises, and proves each one consults the policy', async () => {
    const advertised = discovery.grant_types_supported as string[];
    assert.ok(Array.isArray(advertised) && advertised.length > 0);
    const unknown = advertised.filter((grant) => !(grant in GRANT_PROBES));
    assert.deepEqual(unknown, [], 'a grant type without a policy probe: add one before advertising it');
    for (const grant of advertised) {
      const { stage, reason, probe } = GRANT_PROBES[grant]!;
      const moved = await counted(server, stage, reason, probe);
      assert.equal(
        moved,
        1,
        `${grant}: aa_oidc_policy_rejections_total{stage="${stage}",reason="${reason}"}`,
      );
    }
  });

  it('knows every endpoint discovery advertises, and proves each that issues or accepts tokens consults the policy', async () => {
    const endpoints = Object.keys(discovery).filter((key) => key.endsWith('_endpoint'));
    assert.ok(endpoints.includes('token_endpoint') && endpoints.includes('authorization_endpoint'));
    const unknown = endpoints.filter((key) => !(key in ENDPOINT_PROBES));
    assert.deepEqual(unknown, [], 'an endpoint without a policy probe or a stated exemption');
    for (const key of endpoints) {
      const entry = ENDPOINT_PROBES[key]!;
      if ('exempt' in entry) {
        await entry.probe();
        continue;
      }
      const moved = await counted(server, entry.stage, entry.reason, entry.probe);
      assert.equal(moved, 1, `${key}: aa_oidc_policy_rejections_total{stage="${entry.stage}"}`);
    }
  });

  it('has no grant handler beyond those advertised', async () => {
    for (const grant of [
      'password',
      'implicit',
      'urn:ietf:params:oauth:grant-type:device_code',
      'urn:ietf:params:oauth:grant-type:token-exchange',
      'urn:ietf:params:oauth:grant-type:jwt-bearer',
      'urn:openid:params:grant-type:ciba',
      'urn:ietf:params:oauth:grant-type:pre-authorized_code',
    ]) {
      assert.ok(!(discovery.grant_types_supported as string[]).includes(grant));
      const answer = await tokenRequest(server, client, { grant_type: grant });
      assert.equal(answer.body.error, 'unsupported_grant_type', grant);
    }
  });
});
