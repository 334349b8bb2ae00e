import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { authorizeParams, type Client, login, tokenRequest } from '../helpers/flows.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import {
  authorizeUrl,
  Browser,
  PASSWORD,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/**
 * An application's debug mode (`app create|update --debug-mode`): each step of that application's
 * requests is logged at `info` (the server logs at `warn` here, as a quiet production server might),
 * with the parameters that are not secrets, errors with their descriptions, and the user; another
 * application's requests add nothing; and no code, token, secret or password reaches the log.
 */
describe(`per-application debug logging (${testDatabaseKind})`, () => {
  let server: TestServer;
  let debugged: Client;
  let quiet: Client;
  const harness = createLeakHarness({ level: 'warn' });

  before(async () => {
    server = await startServer({ logging: { level: 'warn' } }, { harness });
    const seeded = await seedApp(server, { name: 'Debugged', skipAuthorization: true, debugMode: true });
    debugged = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
    const other = await seedApp(server, { name: 'Quiet', skipAuthorization: true });
    quiet = { clientId: other.clientId, clientSecret: other.clientSecret! };
    harness.registerSecret(debugged.clientSecret!, 'the debugged client secret');
    harness.registerSecret(PASSWORD, 'the password');
  });
  after(async () => server.close());

  const debugLines = (clientId: string) =>
    harness.logLines
      .filter((line) => line.includes('"app_debug"') && line.includes(clientId))
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it('logs the steps of a debugged application, with what went wrong, and nothing of another', async () => {
    const user = await seedUser(server);
    const tokens = await login(server, debugged, user.username, { scope: 'openid profile' });
    harness.registerSecret(tokens.accessToken, 'the access token');
    harness.registerSecret(tokens.refreshToken, 'the refresh token');
    await login(server, quiet, user.username);

    // A mistake of the application: a redirect URI it did not register.
    const { params } = authorizeParams(debugged, { scope: 'openid' });
    await new Browser().follow(
      authorizeUrl(server, { ...params, redirect_uri: 'https://rp.example.org/not-registered' }),
      server.origin,
    );
    const refused = await tokenRequest(server, debugged, {
      grant_type: 'refresh_token',
      refresh_token: 'not-a-token',
    });
    assert.equal(refused.body.error, 'invalid_grant');

    const lines = debugLines(debugged.clientId);
    const events = lines.map((line) => line.app_debug);
    for (const event of [
      'authorization.accepted',
      'interaction.started',
      'authorization.success',
      'grant.success',
    ])
      assert.ok(events.includes(event), `${event} in ${events.join(', ')}`);
    const started = lines.find((line) => line.app_debug === 'interaction.started')!;
    assert.equal(started.prompt, 'login');
    const accepted = lines.find((line) => line.app_debug === 'authorization.accepted')!;
    assert.deepEqual(
      Object.keys(accepted.params as object).sort(),
      ['code_challenge_method', 'redirect_uri', 'response_type', 'scope'],
      'the parameters that are not secrets (no state, nonce or code challenge)',
    );
    const success = lines.find((line) => line.app_debug === 'grant.success')!;
    assert.equal((success.params as Record<string, unknown>).grant_type, 'authorization_code');
    assert.equal(success.level, 30, 'info, though the server logs at warn');
    const redirect = lines.find((line) => line.app_debug === 'authorization.error')!;
    assert.equal(redirect.error, 'invalid_redirect_uri');
    const grant = lines.find((line) => line.app_debug === 'grant.error')!;
    assert.equal(grant.error, 'invalid_grant');
    assert.match(String(grant.error_description), /\S/);

    assert.deepEqual(debugLines(quiet.clientId), [], 'another application adds nothing');
    await harness.assertNoLeaks();
  });

  it('logs a refresh refused at its write (the token redeemed meanwhile) as refused only, not as a grant that succeeded', async () => {
    const user = await seedUser(server);
    const tokens = await login(server, debugged, user.username, { scope: 'openid' });
    harness.registerSecret(tokens.accessToken, 'the access token');
    harness.registerSecret(tokens.refreshToken, 'the refresh token');

    // Two refreshes with the one token, each held where it loads the user (before the consume, which
    // is written with the new tokens once the response is built) until both are there: both find the
    // token unused, and the second write finds it consumed by the first.
    const keepable = server.app.directory.keepable!;
    const profileWithPositionById = keepable.profileWithPositionById;
    let arrived = 0;
    let bothThere!: () => void;
    const meeting = new Promise<void>((resolve) => (bothThere = resolve));
    const timeout = setTimeout(bothThere, 5000);
    keepable.profileWithPositionById = async (id: number) => {
      const found = await profileWithPositionById.call(keepable, id);
      if (id === user.id && ++arrived === 2) bothThere();
      if (id === user.id) await meeting;
      return found;
    };
    // The process's own directory change drops the kept profiles: each refresh loads the user.
    await server.app.directoryAdmin.createGroup('Unrelated to the refreshes', false);
    const from = harness.logLines.length;
    let answers: Array<Awaited<ReturnType<typeof tokenRequest>>>;
    try {
      answers = await Promise.all(
        [1, 2].map(() =>
          tokenRequest(server, debugged, { grant_type: 'refresh_token', refresh_token: tokens.refreshToken }),
        ),
      );
    } finally {
      clearTimeout(timeout);
      keepable.profileWithPositionById = profileWithPositionById;
    }
    assert.ok(arrived >= 2, 'both refreshes were held together');
    for (const answer of answers) {
      if (answer.status !== 200) continue;
      harness.registerSecret(String(answer.body.access_token), 'the refreshed access token');
      harness.registerSecret(String(answer.body.refresh_token), 'the refreshed refresh token');
    }
    assert.deepEqual(answers.map((answer) => `${answer.status} ${String(answer.body.error ?? '')}`).sort(), [
      '200 ',
      '400 invalid_grant',
    ]);
    const grantLines = harness.logLines
      .slice(from)
      .filter((line) => line.includes('"app_debug"') && line.includes(debugged.clientId))
      .map((line) => (JSON.parse(line) as Record<string, unknown>).app_debug)
      .filter((event) => event === 'grant.success' || event === 'grant.error')
      .sort();
    assert.deepEqual(grantLines, ['grant.error', 'grant.success'], 'one success, one refusal');
    await harness.assertNoLeaks();
  });
});
