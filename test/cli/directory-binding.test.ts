import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { forgetFollowedState } from '../../src/alliance-auth/poller.ts';
import { readDirectoryBinding } from '../../src/directory/binding.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import {
  type AllianceAuthTestDatabase,
  allianceAuthDirectory,
  allianceAuthEnv,
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
} from '../helpers/alliance-auth.ts';
import { cli, startCli } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { consoleGet, consoleSignIn } from '../helpers/console.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';
import { authorize, type Client, exchangeCode } from '../helpers/flows.ts';
import { logoutJobs } from '../logout/jobs.ts';
import { Browser, seedApp, seedTwoFactorUser, seedUser, startServer } from '../helpers/server.ts';

/** The first row of each fixture's `django_migrations`, as the binding names the database. */
const FIXTURE_IDENTITY = {
  mysql: 'contenttypes.0001_initial applied 2026-12-01 02:26:32.591596 UTC',
  postgres: 'contenttypes.0001_initial applied 2026-12-01 02:26:43.940658 UTC',
};

await describeOnEachAllianceAuth(
  (aa) => `a database bound to its directory (${testDatabaseKind}; Alliance Auth on ${aa})`,
  (kind) => {
    let database: TestDatabase;
    let fixture: AllianceAuthTestDatabase;

    before(async () => {
      database = await createTestDatabase({ migrated: true });
      fixture = await createAllianceAuthDatabase(kind);
    });
    after(async () => {
      await fixture.drop();
      await database.drop();
    });

    // Serve listens on a free port (0); logout tokens name this issuer.
    const served = { AA_OIDC_PORT: '0', AA_OIDC_ISSUER: 'http://127.0.0.1:8000/o' };
    const builtinEnv = () => testEnv(database, served);
    const aaEnv = (aa: AllianceAuthTestDatabase = fixture) =>
      testEnv(database, { ...served, ...allianceAuthEnv(aa.readerUrl) });

    async function withHandle<T>(work: (handle: DatabaseHandle) => Promise<T>): Promise<T> {
      const handle = openDatabase(testConfig(database).database);
      try {
        return await work(handle);
      } finally {
        await handle.close();
      }
    }
    const withDb = <T>(work: (db: DatabaseHandle['db']) => Promise<T>) =>
      withHandle((handle) => work(handle.db));

    /** `serve` starts (and is stopped again) with `env`. */
    async function assertServes(env: NodeJS.ProcessEnv): Promise<void> {
      const serve = startCli(['serve'], env);
      try {
        await serve.waitFor(/aa-oidc development server on/);
      } finally {
        assert.equal(await serve.stop(), 0, serve.stderr());
      }
    }

    /** What the users' ids hold: live sessions, unrevoked tokens, grants, two-factor enrolments. */
    const held = () =>
      withDb(async (db) => {
        const count = async (models: string[], live: boolean) => {
          let query = db
            .selectFrom('oidc_payload')
            .select((eb) => eb.fn.countAll<string | number>().as('n'))
            .where('model', 'in', models);
          if (live) query = query.where('revoked_at', 'is', null);
          return Number((await query.executeTakeFirstOrThrow()).n);
        };
        const enrolments = await db
          .selectFrom('totp_enrolment')
          .select((eb) => eb.fn.countAll<string | number>().as('n'))
          .executeTakeFirstOrThrow();
        return {
          sessions: await count(['Session'], true),
          tokens: await count(['AccessToken', 'RefreshToken'], true),
          grants: await count(['Grant'], false),
          enrolments: Number(enrolments.n),
        };
      });

    it('an upgraded database, with no directory recorded, is bound silently by the first serve', async () => {
      assert.equal(await withDb(readDirectoryBinding), undefined);
      const checked = await cli(['check'], builtinEnv());
      assert.equal(checked.code, 0, checked.stdout + checked.stderr);
      await assertServes(builtinEnv());
      assert.deepEqual(await withDb(async (db) => ({ ...(await readDirectoryBinding(db)), boundAt: 0 })), {
        directory: 'builtin',
        boundAt: 0,
      });
    });

    it('refuses check, serve and other commands with another directory, and starts again with its own', async () => {
      const checked = await cli(['check'], aaEnv());
      assert.equal(checked.code, 1);
      assert.match(
        checked.stdout,
        /E010 error: this database's user ids belong to the built-in directory \(bound [^)]+\), but the configured directory is the Alliance Auth database whose first migration is contenttypes\.0001_initial applied .* UTC: its sessions, grants, tokens and two-factor enrolments would pass to whoever has the same user id there, other people\n {2}hint: .*aa-oidc directory rebind --dry-run/,
      );
      const serve = startCli(['serve'], aaEnv());
      assert.notEqual(await serve.exited, 0);
      assert.match(serve.stderr(), /E010 error/);
      assert.match(serve.stderr(), /refusing to start/);
      assert.doesNotMatch(serve.stdout(), /server on/);
      const listed = await cli(['user', 'list'], aaEnv());
      assert.equal(listed.code, 1);
      assert.match(
        listed.stderr,
        /^aa-oidc: refused: this database's user ids belong to the built-in directory/m,
      );

      const again = await cli(['check'], builtinEnv());
      assert.equal(again.code, 0, again.stdout + again.stderr);
      await assertServes(builtinEnv());
    });

    it('tells another Alliance Auth database (a new one in place of production) from the bound one', async () => {
      const other = await createAllianceAuthDatabase(kind);
      try {
        await withDb((db) =>
          db
            .updateTable('directory_binding')
            .set({ directory: 'alliance-auth', identity: FIXTURE_IDENTITY[kind] })
            .execute(),
        );
        const same = await cli(['check'], aaEnv());
        assert.equal(same.code, 0, same.stdout + same.stderr);
        // MariaDB's datetime(6) holds the time as written (in UTC, as Django writes it); PostgreSQL's
        // timestamptz reads a time with no offset in the session's time zone: it is given its offset.
        await other.run('UPDATE django_migrations SET applied = ? WHERE id = 1', [
          kind === 'mysql' ? '2027-01-02 03:04:05.000006' : '2027-01-02 03:04:05.000006+00',
        ]);
        const checked = await cli(['check'], aaEnv(other));
        assert.equal(checked.code, 1);
        assert.match(
          checked.stdout,
          /E010 error: this database's user ids belong to the Alliance Auth database whose first migration is contenttypes\.0001_initial applied 2026-12-01 .* UTC \(bound [^)]+\), but the configured directory is the Alliance Auth database whose first migration is contenttypes\.0001_initial applied 2027-01-02 03:04:05\.000006 UTC:/,
        );
      } finally {
        await other.drop();
        await withDb((db) =>
          db.updateTable('directory_binding').set({ directory: 'builtin', identity: '' }).execute(),
        );
      }
    });

    it('rebind --dry-run changes nothing; rebind --yes ends what the old ids hold, then serve starts', async () => {
      // The built-in directory's people: one signed in at an application and on the account page,
      // one enrolled in two-factor sign-in.
      const server = await startServer(
        { logout: { allowPrivateTargets: true } },
        { database, migrate: false },
      );
      let accountPage: Browser;
      let client: Client;
      try {
        const user = await seedUser(server);
        const created = await seedApp(server, { backchannelLogoutUri: 'http://127.0.0.1:9/logout' });
        client = { clientId: created.clientId, clientSecret: created.clientSecret! };
        const browser = new Browser();
        const signedIn = await authorize(server, browser, client, user.username);
        await exchangeCode(server, client, signedIn.response, signedIn.verifier);
        await seedTwoFactorUser(server);
        accountPage = await consoleSignIn(server, user.username);
      } finally {
        await server.close();
      }
      const before = await held();
      assert.ok(before.sessions >= 2 && before.tokens >= 2 && before.grants >= 1, JSON.stringify(before));
      assert.equal(before.enrolments, 1);

      const unconfirmed = await cli(['directory', 'rebind'], aaEnv());
      assert.equal(unconfirmed.code, 1);
      assert.match(unconfirmed.stderr, /confirm with --yes/);

      const dryRun = await cli(['directory', 'rebind', '--dry-run'], aaEnv());
      assert.equal(dryRun.code, 0, dryRun.stderr);
      assert.match(
        dryRun.stdout,
        /^dry run: would bind the database to the Alliance Auth database whose first migration is .* \(bound to the built-in directory\); nothing changed\n/,
      );
      assert.match(dryRun.stdout, new RegExp(`would end ${before.sessions} browser session\\(s\\)`));
      assert.match(dryRun.stdout, /would remove 1 two-factor enrolment\(s\)/);
      assert.deepEqual(await held(), before);
      assert.equal((await withDb(readDirectoryBinding))?.directory, 'builtin');
      assert.equal((await cli(['check'], aaEnv())).code, 1, 'still refused');

      const rebound = await cli(['directory', 'rebind', '--yes'], aaEnv());
      assert.equal(rebound.code, 0, rebound.stderr);
      assert.match(rebound.stdout, /^bound the database to .* \(was bound to the built-in directory\)\n/);
      assert.deepEqual(await held(), { sessions: 0, tokens: 0, grants: 0, enrolments: 0 });
      const binding = await withDb(readDirectoryBinding);
      assert.deepEqual(binding && { ...binding, boundAt: 0 }, {
        directory: 'alliance-auth',
        identity: FIXTURE_IDENTITY[kind],
        boundAt: 0,
      });
      const { jobs, events } = await withHandle(async (handle) => ({
        jobs: await logoutJobs(handle, { clientId: client.clientId }),
        events: await handle.db
          .selectFrom('audit_event')
          .select('payload')
          .where('kind', '=', 'admin_change')
          .execute(),
      }));
      assert.ok(
        jobs.some((job) => job.status === 'pending' && job.trigger === 'user_revoked'),
        `a back-channel logout queued for the application: ${JSON.stringify(jobs)}`,
      );
      assert.ok(
        events.some((event) => /"entity":"directory","action":"rebound"/.test(event.payload)),
        'an admin_change audit event',
      );

      const checked = await cli(['check'], aaEnv());
      assert.doesNotMatch(checked.stdout, /E010/);
      assert.equal(checked.code, 0, checked.stdout + checked.stderr);
      await assertServes(aaEnv());
      // The account page's kept cookie opens nobody's page in Alliance Auth's directory.
      const aaServer = await startServer(
        { directory: allianceAuthDirectory(fixture.readerUrl) },
        { database, migrate: false },
      );
      try {
        const page = await consoleGet(accountPage, `${aaServer.origin}/account`);
        assert.notEqual(page.status, 200, 'the old session no longer opens the account page');
      } finally {
        await aaServer.close();
      }
    });

    it('refuses rebind --yes while a serve follows Alliance Auth, and not once it stopped', async () => {
      // Its first poll cycle (at start) takes the lease; a baseline, so that it says so at info.
      await withDb(forgetFollowedState);
      const serve = startCli(['serve'], { ...aaEnv(), AA_OIDC_LOG_LEVEL: 'info' });
      try {
        await serve.waitFor(/Alliance Auth fingerprints recorded/);
        const rebound = await cli(['directory', 'rebind', '--yes'], builtinEnv());
        assert.equal(rebound.code, 1);
        assert.match(
          rebound.stderr,
          /^aa-oidc: an aa-oidc serve is following Alliance Auth \(its poll lease is held by .+ until .+\); stop every serve and worker first, or wait for the lease to expire/m,
        );
        // Its dry run says what would end, and fails as --yes does: a script tells by the exit code.
        const dryRun = await cli(['directory', 'rebind', '--dry-run'], builtinEnv());
        assert.equal(dryRun.code, 1, dryRun.stderr);
        assert.match(dryRun.stdout, /^dry run: would bind the database to .*; nothing changed$/m);
        assert.match(
          dryRun.stderr,
          /^aa-oidc: dry run: --yes would be refused now: an aa-oidc serve is following Alliance Auth/m,
        );
        assert.equal((await withDb(readDirectoryBinding))?.directory, 'alliance-auth');
      } finally {
        assert.equal(await serve.stop(), 0, serve.stderr());
      }
      const rebound = await cli(['directory', 'rebind', '--yes'], builtinEnv());
      assert.equal(rebound.code, 0, rebound.stderr);
      assert.equal((await withDb(readDirectoryBinding))?.directory, 'builtin');
    });

    it('stops a serve and a worker left running when the database is rebound under them; worker refuses to start on E010', async () => {
      // Read the binding at once, not every 10 s.
      const often = { overrides: { bindingCheckMs: 20 } };
      const serve = startCli(['serve'], builtinEnv(), often);
      const worker = startCli(['worker'], builtinEnv(), often);
      try {
        await serve.waitFor(/aa-oidc development server on/);
        await worker.waitFor(/back-channel logout worker/);
        const rebound = await cli(['directory', 'rebind', '--yes'], aaEnv());
        assert.equal(rebound.code, 0, rebound.stderr);
        for (const [name, running] of [
          ['serve', serve],
          ['worker', worker],
        ] as const) {
          await running.waitFor(/^aa-oidc: E010: the database was bound to/m);
          assert.equal(await running.exited, 1, `${name} exits non-zero: ${running.stderr()}`);
          assert.match(
            running.stdout(),
            /"level":50,.*"msg":"E010: the database was bound to the Alliance Auth database whose first migration is .* \(aa-oidc directory rebind\) while this process ran with the built-in directory: stopping/,
            name,
          );
          assert.match(running.stderr(), /^aa-oidc: E010: the database was bound to/m, name);
        }
      } finally {
        // Stopped when the test fails: they would keep the test process alive.
        await Promise.all([serve.stop(), worker.stop()]);
      }
      // A supervisor's restart meets the refusal.
      const restarted = startCli(['worker'], builtinEnv());
      try {
        await restarted.waitFor(/refusing to start/);
        assert.equal(await restarted.exited, 1);
        assert.match(restarted.stderr(), /E010 error/);
        assert.doesNotMatch(restarted.stdout(), /worker \(development\)/);
      } finally {
        await restarted.stop();
      }
    });
  },
);
