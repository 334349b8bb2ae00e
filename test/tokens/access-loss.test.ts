import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { authorize, type Client, codeFrom, introspect, login, tokenRequest } from '../helpers/flows.ts';
import { consoleGet, consolePost, consoleSignIn } from '../helpers/console.ts';
import { Browser, PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { waitUntil } from '../helpers/wait.ts';
import { logoutJobs } from '../logout/jobs.ts';

/**
 * How many array elements `Array.prototype.includes` searches while `run` runs: the work of comparing
 * each of one list's names with each of another's.
 */
async function elementsSearchedDuring(run: () => Promise<unknown>): Promise<number> {
  const includes = Object.getOwnPropertyDescriptor(Array.prototype, 'includes')!;
  const original = includes.value as (this: unknown[], item: unknown) => boolean;
  let searched = 0;
  Object.defineProperty(Array.prototype, 'includes', {
    ...includes,
    value(this: unknown[], item: unknown) {
      searched += this.length;
      return original.call(this, item);
    },
  });
  try {
    await run();
    return searched;
  } finally {
    Object.defineProperty(Array.prototype, 'includes', includes);
  }
}

/**
 * A browser session (its cookie kept by whoever holds it) must not outlive the cleaning of the
 * account: after each change the kept cookie meets the login page, or `login_required` with
 * `prompt=none`, never a code. Over HTTP against a real server; the CLI through `runCli`.
 */
describe(`sessions and grants end when access is cleaned (${testDatabaseKind})`, () => {
  let server: TestServer;
  let open: Client;
  /** Whitelists state Member only. */
  let members: Client;

  const app = async (input: Parameters<typeof seedApp>[1] = {}): Promise<Client> => {
    const created = await seedApp(server, input);
    return { clientId: created.clientId, clientSecret: created.clientSecret! };
  };

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createState('Guest', 10, true);
    open = await app({ name: 'Open RP' });
    members = await app({
      name: 'Members RP',
      states: ['Member'],
      // Never reached: the test delivers nothing, it only looks at the queue.
      backchannelLogoutUri: 'http://127.0.0.1:9/logout',
    });
  });
  after(async () => server.close());

  /** A browser signed in at `client`, whose kept cookie gets a code with `prompt=none`. */
  async function signedIn(username: string, client: Client = open): Promise<Browser> {
    const browser = new Browser();
    codeFrom((await authorize(server, browser, client, username)).response);
    codeFrom((await authorize(server, browser, client, undefined, { prompt: 'none' })).response);
    return browser;
  }

  /** What a kept cookie meets: `login_required` silently, and the login page otherwise. */
  async function assertSignedOut(browser: Browser, client: Client = open): Promise<void> {
    const { response: silent, state } = await authorize(server, browser, client, undefined, {
      prompt: 'none',
    });
    assert.equal(silent.status, 303);
    const location = new URL(silent.headers.get('location')!);
    assert.equal(location.searchParams.get('code'), null, 'no code for a kept cookie');
    assert.equal(location.searchParams.get('error'), 'login_required');
    assert.equal(location.searchParams.get('state'), state);
    const { response: page } = await authorize(server, browser, client, undefined);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /name="password"/, 'the login page');
  }

  it('a new password (set-password) ends every browser session of the user', async () => {
    const user = await seedUser(server);
    const first = await signedIn(user.username);
    const second = await signedIn(user.username);
    await server.app.directoryAdmin.setPassword({ id: user.id }, 'a brand new passphrase 42');
    await assertSignedOut(first);
    await assertSignedOut(second);
  });

  it('a person changing their own password on the account page keeps that session; their other sessions end', async () => {
    const user = await seedUser(server);
    const elsewhere = await signedIn(user.username);
    const here = await consoleSignIn(server, user.username);
    const page = await consoleGet(here, `${server.origin}/account`);
    const changed = await consolePost(here, `${server.origin}/account/password`, page.csrf!, {
      current_password: PASSWORD,
      new_password: 'a brand new passphrase 43',
      new_password_again: 'a brand new passphrase 43',
    });
    assert.equal(changed.status, 303);
    assert.equal((await consoleGet(here, `${server.origin}/account`)).status, 200, 'still signed in here');
    // No login page on the way: the consent page, then a code.
    codeFrom((await authorize(server, here, open, undefined)).response);
    await assertSignedOut(elsewhere);
  });

  it('tokens revoke-user ends the sessions along with the tokens', async () => {
    const user = await seedUser(server);
    const browser = await signedIn(user.username);
    const result = await server.app.tokens.revokeUser(user.username);
    assert.equal(result.sessionsEnded, 1);
    await assertSignedOut(browser);
  });

  it('revokes the live codes and tokens only: an exchanged code and rotated refresh tokens are not revoked (and audited) again', async () => {
    const user = await seedUser(server);
    const first = await login(server, open, user.username);
    let refreshToken = first.refreshToken!;
    const accessTokens = [first.accessToken];
    for (let rotation = 0; rotation < 2; rotation += 1) {
      const refreshed = await tokenRequest(server, open, {
        grant_type: 'refresh_token',
        refresh_token: refreshToken,
      });
      assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
      refreshToken = refreshed.body.refresh_token as string;
      accessTokens.push(refreshed.body.access_token as string);
    }
    const dryRun = await server.app.tokens.revokeUser(user.username, { dryRun: true });
    const result = await server.app.tokens.revokeUser(user.username);
    for (const found of [dryRun, result]) {
      const models = found.revoked.map((token) => token.model).sort();
      // Three access tokens (one per exchange, each live until it expires) and the one refresh
      // token not yet rotated; not the code, not the two refresh tokens rotated away.
      assert.deepEqual(models, ['AccessToken', 'AccessToken', 'AccessToken', 'RefreshToken']);
    }
    for (const token of accessTokens)
      assert.equal((await introspect(server, open, token)).body.active, false);
    const refused = await tokenRequest(server, open, {
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
    });
    assert.equal(refused.body.error, 'invalid_grant');
  });

  it('deactivation ends the sessions, and reactivation does not bring them back', async () => {
    const user = await seedUser(server);
    const browser = await signedIn(user.username);
    await server.app.directoryAdmin.deactivate({ id: user.id });
    await server.app.directoryAdmin.activate({ id: user.id });
    await assertSignedOut(browser);
  });

  it(
    'signs a user out everywhere while the same user is deactivated, one after the other (no deadlock)',
    {
      skip:
        testDatabaseKind !== 'postgres' &&
        "holds both at the user's sign-in generation row, locked from a connection of the test's own (PostgreSQL's row locks)",
    },
    async () => {
      // Both take the user's sign-in generation row and the user's token rows. A sign-out takes the
      // generation first; if the deactivation took the tokens first, each would wait for the other.
      const user = await seedUser(server);
      await login(server, open, user.username);
      const locker = new pg.Client({ connectionString: server.database.url });
      await locker.connect();
      try {
        await locker.query('begin');
        await locker.query(
          `insert into sign_in_generation (user_id, generation) values ($1, 0)
          on conflict (user_id) do update set generation = sign_in_generation.generation`,
          [user.id],
        );
        const waiting = async (count: number) =>
          waitUntil(async () => {
            const { rows } = await locker.query<{ waiting: number }>(
              "select count(*)::int as waiting from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
            );
            return rows[0]!.waiting >= count;
          }, `${count} transaction(s) wait for a lock`);
        // The sign-out queues for the generation row first, then the deactivation.
        const signedOut = server.app.tokens.signOutUser(user.username, { actor: 'test' });
        await waiting(1);
        const deactivated = server.app.directoryAdmin.deactivate({ id: user.id });
        await waiting(2);
        await locker.query('commit');
        const [signOut, deactivation] = await Promise.allSettled([signedOut, deactivated]);
        assert.equal(signOut.status, 'fulfilled', String((signOut as PromiseRejectedResult).reason));
        assert.equal(
          deactivation.status,
          'fulfilled',
          String((deactivation as PromiseRejectedResult).reason),
        );
      } finally {
        await locker.end();
      }
      const profile = await server.app.directory.profileByUsername(user.username);
      assert.equal(profile?.active, false);
    },
  );

  it('deletion ends the sessions and removes the grants', async () => {
    const user = await seedUser(server);
    const browser = await signedIn(user.username);
    await server.app.directoryAdmin.deleteUser({ id: user.id });
    await assertSignedOut(browser);
    const grants = await server.app.database.db
      .selectFrom('oidc_payload')
      .select('id')
      .where('model', '=', 'Grant')
      .where('user_id', '=', String(user.id))
      .execute();
    assert.deepEqual(grants, []);
  });

  it('aa-oidc user show lists live sessions; user sign-out (dry run first) ends them, the grants and the tokens, and queues back-channel logout', async () => {
    const user = await seedUser(server, { state: 'Member' });
    const browser = await signedIn(user.username, members);
    const tokens = await login(server, members, user.username, { browser });
    const env = testEnv(server.database);

    const shown = await cli(['user', 'show', user.username, '--format', 'json'], env);
    assert.equal(shown.code, 0, shown.stderr);
    const sessions = (JSON.parse(shown.stdout) as { sessions: Array<{ client_ids: string[] }> }).sessions;
    assert.equal(sessions.length, 1);
    assert.deepEqual(sessions[0]!.client_ids, [members.clientId]);
    const table = await cli(['user', 'show', user.username], env);
    assert.match(table.stdout, /live_sessions\s+1/);

    const dry = await cli(['user', 'sign-out', user.username, '--dry-run'], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /dry run: would sign .* out: 1 browser session\(s\), 1 grant\(s\)/);
    codeFrom((await authorize(server, browser, members, undefined, { prompt: 'none' })).response);

    const done = await cli(['user', 'sign-out', user.username], env);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /signed .* out: ended 1 browser session\(s\), 1 grant\(s\)/);
    await assertSignedOut(browser, members);
    assert.equal((await introspect(server, members, tokens.accessToken)).body.active, false);
    const refreshed = await tokenRequest(server, members, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refreshToken,
    });
    assert.equal(refreshed.body.error, 'invalid_grant');
    const jobs = await logoutJobs(server.app.database, { userId: user.id });
    assert.deepEqual(
      jobs.map((job) => [job.client_id, job.trigger]),
      [[members.clientId, 'user_revoked']],
    );
    const after = await cli(['user', 'show', user.username, '--format', 'json'], env);
    assert.deepEqual((JSON.parse(after.stdout) as { sessions: unknown[] }).sessions, []);
    // The audit trail: one event for the sign-out (none for the dry run), without session ids.
    const audited = await cli(
      ['audit', 'list', '--kind', 'sessions_ended', '--username', user.username, '--format', 'json'],
      env,
    );
    assert.equal(audited.code, 0, audited.stderr);
    const events = JSON.parse(audited.stdout) as Array<Record<string, unknown>>;
    assert.equal(events.length, 1, audited.stdout);
    const { id, time, actor, ...record } = events[0]!;
    assert.ok(typeof id === 'number' && typeof time === 'string');
    assert.match(String(actor), /^cli(:|$)/);
    assert.deepEqual(record, {
      kind: 'sessions_ended',
      user_id: user.id,
      count: 1,
      reason: 'signed_out',
    });

    const unknown = await cli(['user', 'sign-out', 'nobody-of-that-name'], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no user named "nobody-of-that-name"/);
  });

  it('aa-oidc user grant-access --revoke (dry run first) takes oidc_access held directly: where it was the only way in, the tokens are revoked and back-channel logout queued', async () => {
    const hearing = await seedApp(server, {
      name: 'Hearing RP',
      // Never reached: the test delivers nothing, it only looks at the queue.
      backchannelLogoutUri: 'http://127.0.0.1:9/logout',
    });
    const listening = { clientId: hearing.clientId, clientSecret: hearing.clientSecret! };
    const env = testEnv(server.database);
    // seedUser grants oidc_access directly: without a state, that is their only way past the gate.
    const user = await seedUser(server);
    const tokens = await login(server, listening, user.username);
    // In state Guest (oidc_access), another keeps everything.
    const guest = await seedUser(server, { state: 'Guest' });
    const guestTokens = await login(server, listening, guest.username);

    const dry = await cli(['user', 'grant-access', user.username, '--revoke', '--dry-run'], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(dry.stdout.split('\n'), [
      `dry run: would take oidc_access held directly away from ${user.username} (nothing else grants it: every application refuses them); nothing changed`,
      `  loses access to: ${[open.clientId, listening.clientId].sort().join(', ')}`,
      `  back-channel logout to: ${listening.clientId}`,
      `  codes and tokens revoked: 2 (${listening.clientId} 2)`,
      '',
    ]);
    assert.equal((await introspect(server, listening, tokens.accessToken)).body.active, true, 'dry run');
    assert.deepEqual(await logoutJobs(server.app.database, { userId: user.id }), [], 'dry run');

    const done = await cli(['user', 'grant-access', user.username, '--revoke'], env);
    assert.equal(done.code, 0, done.stderr);
    assert.equal(
      done.stdout,
      `${user.username} no longer holds oidc_access directly (nothing else grants it: every application refuses them)\n`,
    );
    assert.equal((await introspect(server, listening, tokens.accessToken)).body.active, false);
    const refreshed = await tokenRequest(server, listening, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refreshToken,
    });
    assert.equal(refreshed.body.error, 'invalid_grant');
    const jobs = await logoutJobs(server.app.database, { userId: user.id });
    assert.deepEqual(
      jobs.map((job) => [job.client_id, job.trigger]),
      [[listening.clientId, 'groups_changed']],
    );

    const kept = await cli(['user', 'grant-access', guest.username, '--revoke'], env);
    assert.equal(
      kept.stdout,
      `${guest.username} no longer holds oidc_access directly (still past the global gate through state Guest)\n`,
      kept.stderr,
    );
    assert.equal((await introspect(server, listening, guestTokens.accessToken)).body.active, true);
    assert.deepEqual(await logoutJobs(server.app.database, { userId: guest.id }), []);
  });

  it('losing an application (state change) revokes its codes, tokens and grant, which do not come back with the state; other applications keep theirs', async () => {
    const user = await seedUser(server, { state: 'Member' });
    const browser = new Browser();
    const kept = await login(server, open, user.username, { browser });
    const lost = await login(server, members, user.username, { browser });
    // A code issued before the change and not yet redeemed.
    const pending = await authorize(server, browser, members, undefined, { prompt: 'none' });
    const pendingCode = codeFrom(pending.response);

    await server.app.directoryAdmin.setState({ id: user.id }, 'Guest');
    await server.app.directoryAdmin.setState({ id: user.id }, 'Member');

    assert.equal((await introspect(server, members, lost.accessToken)).body.active, false);
    const refreshed = await tokenRequest(server, members, {
      grant_type: 'refresh_token',
      refresh_token: lost.refreshToken,
    });
    assert.equal(refreshed.body.error, 'invalid_grant');
    const redeemed = await tokenRequest(server, members, {
      grant_type: 'authorization_code',
      code: pendingCode,
      redirect_uri: 'https://rp.example.org/callback',
      code_verifier: pending.verifier,
    });
    assert.equal(redeemed.body.error, 'invalid_grant');
    // The grant went: with the state back, the application asks for consent again.
    const { response: silent } = await authorize(server, browser, members, undefined, { prompt: 'none' });
    const location = new URL(silent.headers.get('location')!);
    assert.equal(location.searchParams.get('code'), null);
    assert.equal(location.searchParams.get('error'), 'consent_required');

    assert.equal((await introspect(server, open, kept.accessToken)).body.active, true);
    codeFrom((await authorize(server, browser, open, undefined, { prompt: 'none' })).response);
  });

  it("judges a group change of every member, and a narrowed whitelist, without comparing each user's groups with each whitelisted name", async () => {
    // An application whitelisting 200 groups (the most an application may); 100 members of a group
    // that goes, each in 60 other groups that it does not whitelist.
    const fleets = Array.from({ length: 200 }, (_, index) => `Fleet ${index}`);
    const wings = Array.from({ length: 60 }, (_, index) => `Wing ${index}`);
    for (const name of [...fleets, ...wings, 'Doomed']) await server.app.directoryAdmin.createGroup(name);
    const fleetsApp = await app({ name: 'Fleets RP', groups: fleets });
    for (let index = 0; index < 100; index += 1) await seedUser(server, { groups: [...wings, 'Doomed'] });

    const groupChange = await elementsSearchedDuring(() => server.app.directoryAdmin.deleteGroup('Doomed'));
    // Compared in place: 100 members × 61 groups × 200 names, about 1.2 million.
    assert.ok(groupChange < 10_000, `${groupChange} elements searched for a group change of 100 members`);

    const narrowed = await elementsSearchedDuring(() =>
      server.app.applications.update(
        fleetsApp.clientId,
        { groups: [...fleets.slice(0, -1), 'Wing 0'] },
        'test',
      ),
    );
    // Compared in place: 199 names each looked for among 200, about 20,000.
    assert.ok(narrowed < 2_000, `${narrowed} elements searched for a narrowed whitelist`);
  });
});
