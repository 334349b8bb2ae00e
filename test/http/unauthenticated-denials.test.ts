import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CLIENT_AUTH_ENDPOINT_NAMES,
  CLIENT_AUTH_ENDPOINTS,
  CLIENT_AUTH_FAILED,
  clientAuthFailureLines,
  type ClientAuthEndpoint,
  neverIssuedBody,
} from '../helpers/client-auth-failures.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import {
  authorizeUrl,
  basicAuth,
  Browser,
  pkcePair,
  REDIRECT_URI,
  seedApp,
  seedUser,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { authorizeDenials, rejections } from '../policy/observe.ts';
import { type RawResponse, rawRequest } from './raw-request.ts';

/** The stage each endpoint's request is refused at (revocation is no stage of the policy). */
const STAGES = {
  token: 'validate_refresh',
  introspection: 'validate_bearer',
  revocation: undefined,
} as const;

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const WRONG_SECRET = 'wrong-secret-of-nobody-9c4e1a';
const UNKNOWN_ID = 'no-such-client-typed-by-hand';
const REPEATS = 5;

/**
 * What a caller without any secret can make aa-oidc write or tell about an application it names. At
 * the token, introspection and revocation endpoints, client authentication comes first: a deactivated
 * application's client id without its secret is answered exactly as an unknown client id, and stores
 * no `policy_denied` event (its failed authentication is counted and logged, as any other); with its
 * secret, it is refused all the same, and audited. At authorization (unauthenticated by nature), and
 * for a deactivated public application (its client id is all it presents), identical refusals are
 * stored once a window, with their number (src/oidc/denial-coalescing.ts).
 */
describe(`refusals a caller without credentials provokes (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let server: TestServer | undefined;
  let harness: LeakHarness;
  let active: { clientId: string; clientSecret: string };
  let retired: { clientId: string; clientSecret: string };
  let retiredPublic: string;
  let guarded: { clientId: string; clientSecret: string };
  let outsider: { id: number; username: string };

  const running = () => {
    assert.ok(server, 'the server runs');
    return server;
  };

  before(async () => {
    harness = createLeakHarness();
    database = await createTestDatabase({ migrated: true });
    server = await startServer({}, { harness, database });
    const { directoryAdmin: directory, applications } = server.app;
    await directory.createState('Member', 100, true);
    await directory.createGroup('Fleet', false);
    const wiki = await seedApp(server, { name: 'Wiki' });
    active = { clientId: wiki.clientId, clientSecret: wiki.clientSecret! };
    const old = await seedApp(server, { name: 'Retired' });
    retired = { clientId: old.clientId, clientSecret: old.clientSecret! };
    await applications.deactivate(retired.clientId, 'test');
    retiredPublic = (await seedApp(server, { name: 'Retired mobile', clientType: 'public' })).clientId;
    await applications.deactivate(retiredPublic, 'test');
    const fleet = await seedApp(server, { name: 'Fleet tools', groups: ['Fleet'] });
    guarded = { clientId: fleet.clientId, clientSecret: fleet.clientSecret! };
    outsider = await seedUser(server, { state: 'Member', oidcAccess: false });
    for (const [secret, label] of [
      [active.clientSecret, 'the active application secret'],
      [retired.clientSecret, "the deactivated application's secret"],
      [guarded.clientSecret, 'the guarded application secret'],
      [WRONG_SECRET, 'the wrong secret'],
    ] as const)
      harness.registerSecret(secret, label);
  });
  after(async () => {
    await server?.close();
    await database?.drop();
  });

  function send(
    endpoint: ClientAuthEndpoint,
    headers: Record<string, string>,
    extra: string,
  ): Promise<RawResponse> {
    return rawRequest(`${running().origin}${CLIENT_AUTH_ENDPOINTS[endpoint]}`, {
      method: 'POST',
      headers: { ...FORM, ...headers },
      body: `${neverIssuedBody(endpoint)}${extra}`,
    });
  }

  /** What a caller reads of an answer. */
  const seen = (answer: RawResponse) => ({
    status: answer.status,
    body: answer.body,
    challenge: answer.headers['www-authenticate'],
  });

  /** The `policy_denied` rows the database holds for `clientId`, oldest first. */
  async function storedRefusals(clientId: string): Promise<Array<Record<string, unknown>>> {
    await running().app.audit.idle();
    const rows = await running()
      .app.database.db.selectFrom('audit_event')
      .select('payload')
      .where('kind', '=', 'policy_denied')
      .where('client_id', '=', clientId)
      .orderBy('id')
      .execute();
    return rows.map((row) => JSON.parse(row.payload) as Record<string, unknown>);
  }

  const failureLines = () => clientAuthFailureLines(harness);

  async function failureCount(endpoint: ClientAuthEndpoint, clientId: string): Promise<number> {
    const { values } = await running().app.metrics.clientAuthFailures.get();
    return (
      values.find((value) => value.labels.endpoint === endpoint && value.labels.client_id === clientId)
        ?.value ?? 0
    );
  }

  it("answers a deactivated application's client id without its secret exactly as an unknown one, and stores no refusal", async () => {
    /** Each presented for the deactivated application, then for an id that names none. */
    const probes: Array<[string, (clientId: string) => { headers: Record<string, string>; extra: string }]> =
      [
        ['no secret', (clientId) => ({ headers: {}, extra: `&client_id=${clientId}` })],
        [
          'a wrong secret (Basic)',
          (clientId) => ({ headers: { authorization: basicAuth(clientId, WRONG_SECRET) }, extra: '' }),
        ],
        [
          'a wrong secret (body)',
          (clientId) => ({ headers: {}, extra: `&client_id=${clientId}&client_secret=${WRONG_SECRET}` }),
        ],
        [
          "another application's secret",
          (clientId) => ({ headers: { authorization: basicAuth(clientId, active.clientSecret) }, extra: '' }),
        ],
      ];
    for (const endpoint of CLIENT_AUTH_ENDPOINT_NAMES) {
      for (const [what, probe] of probes) {
        const label = `${endpoint}: ${what}`;
        const countBefore = await failureCount(endpoint, retired.clientId);
        const linesBefore = failureLines().length;
        const rejectionsBefore = await rejections(
          running(),
          STAGES[endpoint] ?? 'validate_bearer',
          'app_unusable',
        );
        const forRetired = probe(retired.clientId);
        const answer = await send(endpoint, forRetired.headers, forRetired.extra);
        const unknown = probe(UNKNOWN_ID);
        const answerForUnknown = await send(endpoint, unknown.headers, unknown.extra);
        assert.equal(answer.status, 401, label);
        assert.deepEqual(
          JSON.parse(answer.body),
          { error: 'invalid_client', error_description: CLIENT_AUTH_FAILED },
          label,
        );
        assert.deepEqual(seen(answer), seen(answerForUnknown), `${label}: told as an unknown client`);
        const [line] = failureLines().slice(linesBefore);
        assert.equal(line?.reason, 'deactivated', label);
        assert.equal(line?.clientId, retired.clientId, label);
        assert.equal(line?.proof, 'wrong', `${label}: the log tells the operator the secret was not its own`);
        assert.equal(await failureCount(endpoint, retired.clientId), countBefore + 1, `${label}: counted`);
        assert.equal(
          await rejections(running(), STAGES[endpoint] ?? 'validate_bearer', 'app_unusable'),
          rejectionsBefore,
          `${label}: no refusal of the access policy counted`,
        );
      }
    }
    assert.deepEqual(await storedRefusals(retired.clientId), [], 'no policy_denied event stored');
    assert.deepEqual(
      harness.auditRecords.filter((record) => record.kind === 'policy_denied'),
      [],
      'none published',
    );
  });

  it('refuses the right secret of a deactivated application the same way, and audits each refusal at its stage', async () => {
    const before = (await storedRefusals(retired.clientId)).length;
    let audited = 0;
    for (const endpoint of CLIENT_AUTH_ENDPOINT_NAMES) {
      for (const [how, headers, extra] of [
        ['Basic', { authorization: basicAuth(retired.clientId, retired.clientSecret) }, ''],
        ['body', {}, `&client_id=${retired.clientId}&client_secret=${retired.clientSecret}`],
      ] as const) {
        const label = `${endpoint}: the right secret (${how})`;
        const linesBefore = failureLines().length;
        const answer = await send(endpoint, headers, extra);
        assert.equal(answer.status, 401, label);
        assert.deepEqual(
          JSON.parse(answer.body),
          { error: 'invalid_client', error_description: CLIENT_AUTH_FAILED },
          label,
        );
        const [line] = failureLines().slice(linesBefore);
        assert.equal(line?.reason, 'deactivated', label);
        assert.equal(line?.proof, 'right', label);
        const stored = (await storedRefusals(retired.clientId)).slice(before + audited);
        const stage = STAGES[endpoint];
        if (stage === undefined) {
          assert.deepEqual(stored, [], `${label}: revocation is no stage of the policy`);
          continue;
        }
        assert.deepEqual(
          stored.map(({ kind, client_id, user_id, stage, reason, repeated }) => ({
            kind,
            client_id,
            user_id,
            stage,
            reason,
            repeated,
          })),
          [
            {
              kind: 'policy_denied',
              client_id: retired.clientId,
              user_id: null,
              stage,
              reason: 'app_unusable',
              repeated: undefined,
            },
          ],
          `${label}: audited, each request on its own`,
        );
        audited += 1;
      }
    }
    assert.equal(audited, 4);
  });

  it('stores the refusals of a deactivated public application, which presents its client id alone, once a window', async () => {
    const before = await rejections(running(), 'validate_refresh', 'app_unusable');
    for (let index = 0; index < REPEATS; index += 1) {
      const answer = await send('token', {}, `&client_id=${retiredPublic}`);
      assert.equal(answer.status, 401);
    }
    assert.equal(
      await rejections(running(), 'validate_refresh', 'app_unusable'),
      before + REPEATS,
      'every refusal counted',
    );
    const stored = await storedRefusals(retiredPublic);
    assert.deepEqual(
      stored.map(({ stage, repeated }) => ({ stage, repeated })),
      [{ stage: 'validate_refresh', repeated: undefined }],
      'one event stored for the five refusals so far',
    );
  });

  it('stores identical refusals at authorization once a window, for a deactivated application and for a refused user', async () => {
    const deniedBefore = await authorizeDenials(running(), 'app_unusable');
    const authorizeFor = (clientId: string) =>
      authorizeUrl(running(), {
        client_id: clientId,
        redirect_uri: REDIRECT_URI,
        response_type: 'code',
        scope: 'openid',
        code_challenge: pkcePair().challenge,
        code_challenge_method: 'S256',
      });
    for (let index = 0; index < REPEATS; index += 1) {
      const answer = await rawRequest(authorizeFor(retired.clientId));
      assert.equal(answer.status, 400);
    }
    assert.equal(
      await authorizeDenials(running(), 'app_unusable'),
      deniedBefore + REPEATS,
      'every refusal counted',
    );
    const stored = (await storedRefusals(retired.clientId)).filter((event) => event.stage === 'authorize');
    assert.equal(stored.length, 1, `one event stored for ${REPEATS} refusals: ${JSON.stringify(stored)}`);

    // A user the application's whitelist leaves out, signed in, asking again and again.
    const browser = new Browser();
    const first = await signIn(browser, running(), authorizeFor(guarded.clientId), {
      username: outsider.username,
    });
    assert.equal(first.status, 403);
    for (let index = 1; index < REPEATS; index += 1) {
      const again = await browser.follow(authorizeFor(guarded.clientId), running().origin);
      assert.equal(again.status, 403);
    }
    const refusedUser = await storedRefusals(guarded.clientId);
    assert.deepEqual(
      refusedUser.map(({ user_id, reason }) => ({ user_id, reason })),
      // Refused at authorize when signing in, then at validate_silent_auth with the session.
      [
        { user_id: outsider.id, reason: 'app' },
        { user_id: outsider.id, reason: 'app' },
      ],
    );
    assert.deepEqual(
      refusedUser.map(({ stage }) => stage),
      ['authorize', 'validate_silent_auth'],
    );
  });

  it('stores the number of the refusals it held when it stops, and never a secret', async () => {
    await harness.assertNoLeaks();
    await running().close();
    server = undefined;
    const handle = connect(database);
    try {
      const rows = await handle.db
        .selectFrom('audit_event')
        .select(['client_id', 'payload'])
        .where('kind', '=', 'policy_denied')
        .orderBy('id')
        .execute();
      const summaries = rows
        .map((row) => ({
          clientId: row.client_id,
          event: JSON.parse(row.payload) as Record<string, unknown>,
        }))
        .filter(({ event }) => event.repeated !== undefined)
        .map(
          ({ clientId, event }) =>
            `${clientId === retired.clientId ? 'retired' : clientId === retiredPublic ? 'public' : 'guarded'} ${String(event.stage)} ${String(event.repeated)}`,
        )
        .sort();
      assert.deepEqual(summaries, [
        `guarded validate_silent_auth ${REPEATS - 2}`,
        `public validate_refresh ${REPEATS - 1}`,
        `retired authorize ${REPEATS - 1}`,
      ]);
    } finally {
      await handle.close();
    }
  });
});
