import assert from 'node:assert/strict';
import { afterEach, beforeEach, it } from 'node:test';
import { sql } from 'kysely';
import {
  isSchemaOrPermissionError,
  isStatementTimeout,
  openAllianceAuthDatabase,
  type AllianceAuthConnection,
} from '../../src/alliance-auth/database.ts';
import type { CatalogRename } from '../../src/alliance-auth/catalog-names.ts';
import type { AllianceAuthChange } from '../../src/alliance-auth/fingerprint.ts';
import { COLUMNS_READ } from '../../src/alliance-auth/schema-check.ts';
import { readAllianceAuthIdentity } from '../../src/alliance-auth/identity.ts';
import {
  createAllianceAuthPoller,
  forgetFollowedState,
  type PollerDependencies,
  SIGN_IN_MARGIN_MS,
} from '../../src/alliance-auth/poller.ts';
import type { DatabaseHandle } from '../../src/db/connect.ts';
import { writeDirectoryBinding } from '../../src/directory/binding.ts';
import { createMetrics } from '../../src/metrics/registry.ts';
import { KyselyAdapter } from '../../src/oidc/adapter.ts';
import { usersHoldingTokensRedeemedSince } from '../../src/tokens/store-users.ts';
import {
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import {
  allianceAuthActions,
  type AllianceAuthActions,
  withColumnRenamed,
} from '../helpers/alliance-auth-changes.ts';
import { connect, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';

const silent = { info() {}, warn() {}, error() {}, debug() {} };

it("knows each server's statement timeout, and nothing else, as one", () => {
  // MariaDB's ER_STATEMENT_TIMEOUT, MySQL's ER_QUERY_TIMEOUT, PostgreSQL's query_canceled.
  for (const error of [{ errno: 1969 }, { errno: 3024 }, { code: '57014' }])
    assert.equal(
      isStatementTimeout(Object.assign(new Error('timed out'), error)),
      true,
      JSON.stringify(error),
    );
  // Connection refused, an access denied, a lock wait on a write (never the poller's), none.
  for (const error of [{ code: 'ECONNREFUSED' }, { errno: 1045 }, { errno: 1205 }, { code: '08006' }, {}])
    assert.equal(isStatementTimeout(Object.assign(new Error('failed'), error)), false, JSON.stringify(error));
  assert.equal(isStatementTimeout(undefined), false);
});

it('knows a missing column or table and a refused SELECT or database as a schema or permission problem, and nothing else', () => {
  // MariaDB's ER_BAD_FIELD_ERROR, ER_NO_SUCH_TABLE, ER_TABLEACCESS_DENIED_ERROR,
  // ER_COLUMNACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR; PostgreSQL's undefined_column,
  // undefined_table, insufficient_privilege.
  for (const error of [
    { errno: 1054 },
    { errno: 1146 },
    { errno: 1142 },
    { errno: 1143 },
    { errno: 1044 },
    { code: '42703' },
    { code: '42P01' },
    { code: '42501' },
  ])
    assert.equal(
      isSchemaOrPermissionError(Object.assign(new Error('no'), error)),
      true,
      JSON.stringify(error),
    );
  // A refused login, a statement timeout, a connection gone, none.
  for (const error of [{ errno: 1045 }, { errno: 1969 }, { code: '57014' }, { code: 'ECONNREFUSED' }, {}])
    assert.equal(
      isSchemaOrPermissionError(Object.assign(new Error('failed'), error)),
      false,
      JSON.stringify(error),
    );
});

/** The value of one sample in a registry's text, or undefined when it is not exported. */
async function sample(
  metrics: ReturnType<typeof createMetrics>,
  series: string,
): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

await describeOnEachAllianceAuth(
  (database) => `Following Alliance Auth's changes by polling, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let aa: AllianceAuthConnection;
    let ours: TestDatabase;
    let database: DatabaseHandle;
    let actions: AllianceAuthActions;
    let applied: AllianceAuthChange[][];

    const poller = (over: Partial<PollerDependencies> = {}) =>
      createAllianceAuthPoller({
        aa,
        db: database.db,
        intervalMs: 1000,
        logger: silent,
        async apply(_trx, changes) {
          applied.push([...changes]);
        },
        ...over,
      });

    beforeEach(async () => {
      fixture = await createAllianceAuthDatabase(kind);
      aa = openAllianceAuthDatabase(fixture.readerUrl);
      ours = await createTestDatabase({ migrated: true });
      database = connect(ours);
      actions = allianceAuthActions(fixture);
      applied = [];
    });
    afterEach(async () => {
      await aa?.close();
      await database?.close();
      await ours?.drop();
      await fixture?.drop();
    });

    it('records a baseline first, then finds nothing when nothing changed', async () => {
      const first = poller();
      assert.deepEqual(await first.pollOnce(), { outcome: 'baseline', users: 6 });
      assert.deepEqual(await first.pollOnce(), {
        outcome: 'applied',
        users: 6,
        changes: [],
        renames: [],
        deletions: [],
      });
      assert.deepEqual(applied, []);
      const stored = await database.db.selectFrom('aa_user_fingerprint').select('user_id').execute();
      assert.equal(stored.length, 6);
      await first.stop();
    });

    it('stores nothing of a database the binding has left (a rebind while it ran), and stops', async () => {
      const identity = await readAllianceAuthIdentity(aa.db, aa.kind);
      await writeDirectoryBinding(database.db, { directory: 'alliance-auth', identity }, 1);
      const left = poller();
      assert.deepEqual(await left.pollOnce(), { outcome: 'baseline', users: 6 });
      // `aa-oidc directory rebind` to the built-in directory, as it leaves the followed state.
      await database.db.transaction().execute(async (trx) => {
        await forgetFollowedState(trx);
        await writeDirectoryBinding(trx, { directory: 'builtin' }, 2);
      });
      await actions.rename('state', [['Member', 'Members']]);
      assert.deepEqual(await left.pollOnce(), { outcome: 'other_directory' });
      const count = async (table: 'aa_user_fingerprint' | 'aa_catalog_name') =>
        (await database.db.selectFrom(table).selectAll().execute()).length;
      assert.equal(await count('aa_user_fingerprint'), 0, 'no baseline of the old database');
      assert.equal(await count('aa_catalog_name'), 0);
      assert.deepEqual(applied, []);
      const lease = await database.db.selectFrom('aa_poll_lease').select(['owner', 'generation']).execute();
      assert.deepEqual(
        lease.map((row) => ({ ...row, generation: Number(row.generation) })),
        [{ owner: null, generation: 0 }],
        'the lease given up, untouched by the cycle',
      );
      await left.stop();
    });

    it('turns each kind of change AA makes into lifecycle changes, each emitted once', async () => {
      const p = poller();
      await p.pollOnce();
      await actions.deactivate(2);
      await actions.removeGroup(3, 'Fleet Commanders');
      await actions.moveMainToAlliance(
        4,
        { id: 1354830081, name: 'Goonswarm Federation', ticker: 'CONDI' },
        'Blue',
      );
      await actions.deleteUser(6);
      const outcome = await p.pollOnce();
      assert.equal(outcome.outcome, 'applied');
      assert.deepEqual(applied, [
        [
          { kind: 'user_deactivated', userId: 2, username: 'alice' },
          { kind: 'user_state_changed', userId: 2, username: 'alice', fromState: 'Member', toState: 'Guest' },
          { kind: 'user_group_removed', userId: 3, username: 'bob', group: 'Fleet Commanders' },
          { kind: 'user_state_changed', userId: 4, username: 'carol', fromState: 'Guest', toState: 'Blue' },
          { kind: 'user_deleted', userId: 6, username: 'erin' },
        ],
      ]);
      assert.deepEqual((await p.pollOnce()).outcome, 'applied');
      assert.equal(applied.length, 1, 'nothing is emitted twice');
      await p.stop();
    });

    it('sees a lost main character, a changed permission, a reactivation and a group added', async () => {
      const p = poller();
      await p.pollOnce();
      await actions.loseMainCharacter(3);
      // Alice keeps the permission through her state; Carol had it only through Directors.
      await actions.removeGroupPermission('Directors');
      await actions.reactivate(5, 'Member');
      await actions.addGroup(5, 'Wiki Editors');
      await p.pollOnce();
      assert.deepEqual(applied, [
        [
          { kind: 'user_state_changed', userId: 3, username: 'bob', fromState: 'Blue', toState: 'Guest' },
          {
            kind: 'user_main_character_changed',
            userId: 3,
            username: 'bob',
            from: 2112000003,
            to: null,
            ownershipChanged: true,
          },
          { kind: 'user_updated', userId: 4, username: 'carol', fields: ['oidcAccess'] },
          { kind: 'user_group_added', userId: 5, username: 'dave', group: 'Wiki Editors' },
          { kind: 'user_activated', userId: 5, username: 'dave' },
        ],
      ]);
      await p.stop();
    });

    it('asks, every cycle, who signed in since a margin before the previous one, and applies a quiet cycle that names anyone', async () => {
      let clock = 1_000_000_000;
      const asked: number[] = [];
      const given: Array<{ changes: number; signedIn: number[] }> = [];
      let signedIn: number[] = [];
      const p = poller({
        now: () => clock,
        async usersSignedInSince(_trx, since) {
          asked.push(since);
          return new Set(signedIn);
        },
        async apply(_unit, changes, fingerprints) {
          given.push({ changes: changes.length, signedIn: [...fingerprints.signedInSince] });
        },
      });
      assert.equal((await p.pollOnce()).outcome, 'baseline');
      assert.deepEqual(asked, [], 'the baseline has nothing to compare with');
      const baselineAt = clock;
      clock += 30_000;
      await p.pollOnce();
      assert.deepEqual(asked, [baselineAt - SIGN_IN_MARGIN_MS]);
      assert.deepEqual(given, [], 'nobody signed in: a quiet cycle applies nothing');
      signedIn = [3];
      const quietAt = clock;
      clock += 30_000;
      const outcome = await p.pollOnce();
      assert.deepEqual(outcome, { outcome: 'applied', users: 6, changes: [], renames: [], deletions: [] });
      assert.deepEqual(asked.at(-1), quietAt - SIGN_IN_MARGIN_MS);
      assert.deepEqual(given, [{ changes: 0, signedIn: [3] }]);
      await p.stop();
    });

    // Sign-in reads AA live: one made while a cycle reads AA may rest on access that read does not
    // show (given a moment after it), and judging it by that read would take the access away.
    it('judges a sign-in made while the cycle reads AA by the next cycle, not by that read', async () => {
      let clock = 1_000_000_000;
      let signInDuringRead = false;
      const signIn = async () => {
        clock += 1000;
        await database.db
          .insertInto('issued_code')
          .values({
            code_hash: 'c'.repeat(64),
            client_id: 'app1',
            user_id: '3',
            grant_id: null,
            access_token_id: null,
            refresh_token_id: null,
            reuse_count: 0,
            last_reuse_at: null,
            created_at: clock,
            expires_at: clock + 86_400_000,
          })
          .execute();
        await new KyselyAdapter('AccessToken', database.db, () => clock).upsert(
          'at-bob',
          {
            jti: 'at-bob',
            kind: 'AccessToken',
            accountId: '3',
            clientId: 'app1',
            grantId: 'g-bob',
            scope: 'openid',
          },
          3600,
        );
      };
      // The sign-in completes once AA answered the cycle's first statement, before the cycle applies.
      const reading: AllianceAuthConnection = {
        ...aa,
        db: aa.db.withPlugin({
          transformQuery: (args) => args.node,
          async transformResult(args) {
            if (signInDuringRead) {
              signInDuringRead = false;
              await signIn();
            }
            return args.result;
          },
        }),
      };
      const judged: number[][] = [];
      const p = poller({
        aa: reading,
        now: () => clock,
        usersSignedInSince: (trx, since, until, at) => usersHoldingTokensRedeemedSince(trx, since, until, at),
        async apply(_unit, _changes, fingerprints) {
          judged.push([...fingerprints.signedInSince]);
        },
      });
      await p.pollOnce();
      clock += 30_000;
      signInDuringRead = true;
      await p.pollOnce();
      assert.equal(signInDuringRead, false, 'bob signed in while the cycle read AA');
      assert.deepEqual(judged, [], 'not judged by the read his sign-in may be newer than');
      clock += 30_000;
      await p.pollOnce();
      assert.deepEqual(judged, [[3]], 'judged by the next cycle');
      await p.stop();
    });

    it('misses nothing and repeats nothing across a restart, and a failed apply keeps the change for the next cycle', async () => {
      const before = poller();
      await before.pollOnce();
      await before.stop();
      await actions.deactivate(4);
      let failing = true;
      const flaky = poller({
        async apply(_trx, changes) {
          if (failing) throw new Error('subscriber failed');
          applied.push([...changes]);
        },
      });
      await assert.rejects(flaky.pollOnce(), /subscriber failed/);
      failing = false;
      await flaky.pollOnce();
      await flaky.pollOnce();
      await flaky.stop();
      const restarted = poller();
      await restarted.pollOnce();
      await restarted.stop();
      // Carol was a Guest already: deactivating her changes nothing else.
      assert.deepEqual(applied, [[{ kind: 'user_deactivated', userId: 4, username: 'carol' }]]);
    });

    it('reads a rename by id: one rename, no change of membership, across a restart and after an upgrade', async () => {
      const renames: CatalogRename[][] = [];
      const watching = () =>
        poller({
          async apply(_trx, changes, fingerprints) {
            applied.push([...changes]);
            renames.push([...fingerprints.renames]);
          },
        });
      const first = watching();
      await first.pollOnce();
      const names = await database.db
        .selectFrom('aa_catalog_name')
        .select(['entity', 'id', 'name'])
        .execute();
      assert.deepEqual(
        names.map((row) => `${row.entity} ${Number(row.id)} ${row.name}`).sort(),
        [
          'group 1 Directors',
          'group 2 Fleet Commanders',
          'group 3 Wiki Editors',
          'state 1 Guest',
          'state 2 Member',
          'state 3 Blue',
        ],
        "the baseline records every state's and group's name",
      );
      await first.stop();
      // Renamed while no instance polled; bob leaves his group in the same cycle.
      await actions.rename('group', [['Directors', 'Leadership']]);
      await actions.removeGroup(3, 'Fleet Commanders');
      const restarted = watching();
      await restarted.pollOnce();
      assert.deepEqual(renames, [[{ entity: 'group', id: 1, from: 'Directors', to: 'Leadership' }]]);
      assert.deepEqual(applied, [
        [{ kind: 'user_group_removed', userId: 3, username: 'bob', group: 'Fleet Commanders' }],
      ]);
      await restarted.pollOnce();
      assert.equal(renames.length, 1, 'a rename is read once');
      await restarted.stop();

      // An installation upgraded while polling has fingerprints but no names yet: the names its
      // fingerprints hold stand in for them.
      await database.db.deleteFrom('aa_catalog_name').execute();
      await actions.rename('state', [['Member', 'Alliance Member']]);
      const upgraded = watching();
      await upgraded.pollOnce();
      assert.deepEqual(renames[1], [{ entity: 'state', id: 2, from: 'Member', to: 'Alliance Member' }]);
      assert.deepEqual(applied[1], [], 'the members of the renamed state changed nothing');
      await upgraded.stop();
    });

    it('lets one instance poll at a time; another takes over once the first stops', async () => {
      const a = poller({ owner: 'instance-a' });
      const b = poller({ owner: 'instance-b' });
      assert.equal((await a.pollOnce()).outcome, 'baseline');
      assert.equal((await b.pollOnce()).outcome, 'not_leader');
      await actions.deactivate(2);
      await a.stop();
      assert.equal((await b.pollOnce()).outcome, 'applied');
      assert.equal(applied.length, 1);
      assert.equal((await a.pollOnce()).outcome, 'not_leader');
      await b.stop();
    });

    it("exports each cycle's outcome, and the lease's last success from every instance, leader or not", async () => {
      let clock = 1_700_000_000_000;
      const now = () => clock;
      const metricsA = createMetrics({ defaultMetrics: false });
      const metricsB = createMetrics({ defaultMetrics: false });
      const a = poller({ owner: 'instance-a', metrics: metricsA, now });
      const b = poller({ owner: 'instance-b', metrics: metricsB, now });
      const cycles = 'aa_oidc_aa_poll_cycles_total';
      const lastSuccess = 'aa_oidc_aa_poll_last_success_timestamp_seconds';
      // Every outcome from 0, before any cycle: the first failure is an increase.
      for (const outcome of [
        'baseline',
        'applied',
        'not_leader',
        'aa_unreachable',
        'aa_timed_out',
        'aa_schema_error',
        'refused_empty',
        'lease_lost',
        'failed',
      ])
        assert.equal(await sample(metricsA, `${cycles}{outcome="${outcome}"}`), 0, outcome);
      assert.equal((await a.pollOnce()).outcome, 'baseline');
      assert.equal(await sample(metricsA, `${cycles}{outcome="baseline"}`), 1);
      assert.equal(await sample(metricsA, lastSuccess), clock / 1000);
      clock += 10_000;
      assert.equal((await b.pollOnce()).outcome, 'not_leader');
      assert.equal(await sample(metricsB, `${cycles}{outcome="not_leader"}`), 1);
      assert.equal(
        await sample(metricsB, lastSuccess),
        (clock - 10_000) / 1000,
        "the leader's, read by the other",
      );
      assert.equal((await a.pollOnce()).outcome, 'applied');
      assert.equal(await sample(metricsA, lastSuccess), clock / 1000);
      assert.equal((await b.pollOnce()).outcome, 'not_leader');
      assert.equal(await sample(metricsB, lastSuccess), clock / 1000);
      await a.stop();
      await b.stop();
    });

    it('reports a column missing after an Alliance Auth upgrade as a schema problem, once, with what the schema check finds, and resumes after', async () => {
      const logged: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
      const record = (level: string) => (fields: object, message?: string) =>
        logged.push({ level, fields: fields as Record<string, unknown>, message: message ?? '' });
      const logger = { info: record('info'), warn: record('warn'), error: record('error'), debug() {} };
      const metrics = createMetrics({ defaultMetrics: false });
      const p = poller({ logger, metrics });
      assert.equal((await p.pollOnce()).outcome, 'baseline');
      const succeeded = await sample(metrics, 'aa_oidc_aa_poll_last_success_timestamp_seconds');
      await withColumnRenamed(fixture, 'authentication_characterownership', 'owner_hash', async () => {
        assert.equal((await p.pollOnce()).outcome, 'aa_schema_error');
        assert.equal((await p.pollOnce()).outcome, 'aa_schema_error');
      });
      const errors = logged.filter((entry) => entry.level === 'error');
      assert.equal(errors.length, 1, 'once while it lasts');
      assert.match(
        errors[0]!.message,
        /^the Alliance Auth fingerprint query failed: Alliance Auth's database answers, but a table or column aa-oidc reads is missing or the login of AA_OIDC_AA_DATABASE_URL may not SELECT it \(the schema check finds: Alliance Auth's database lacks columns aa-oidc reads .*authentication_characterownership\.owner_hash\)\. Check Alliance Auth's version .*migrations are applied .*the login's grants/,
      );
      assert.match(String((errors[0]!.fields.err as { message: string }).message), /owner_hash/);
      assert.deepEqual(
        logged.filter((entry) => /unreachable/.test(entry.message)),
        [],
        'not called unreachable',
      );
      assert.equal(await sample(metrics, 'aa_oidc_aa_poll_cycles_total{outcome="aa_schema_error"}'), 2);
      assert.equal(await sample(metrics, 'aa_oidc_aa_poll_cycles_total{outcome="aa_unreachable"}'), 0);
      assert.equal(await sample(metrics, 'aa_oidc_aa_poll_last_success_timestamp_seconds'), succeeded);
      await actions.deactivate(2);
      assert.equal((await p.pollOnce()).outcome, 'applied');
      assert.deepEqual(
        applied.flat().map((change) => [change.kind, change.userId]),
        [
          ['user_deactivated', 2],
          ['user_state_changed', 2],
        ],
      );
      assert.equal(
        logged.filter((entry) => /completes the poll's queries again/.test(entry.message)).length,
        1,
      );
      await p.stop();
    });

    it('reports a table the login may not read as a schema or permission problem, and resumes once it may', async () => {
      const logged: Array<{ level: string; message: string }> = [];
      const record = (level: string) => (_fields: object, message?: string) =>
        logged.push({ level, message: message ?? '' });
      const logger = { info: record('info'), warn: record('warn'), error: record('error'), debug() {} };
      const reader = decodeURIComponent(new URL(fixture.readerUrl).username);
      if (kind === 'mysql') {
        // The database-wide grant, narrowed to every table but the memberships (a new connection
        // sees a database-level change; a table-level one shows at once).
        await fixture.run(`REVOKE SELECT ON \`${fixture.name}\`.* FROM '${reader}'@'%'`);
        for (const table of [...Object.keys(COLUMNS_READ), 'django_migrations'])
          if (table !== 'auth_user_groups')
            await fixture.run(`GRANT SELECT ON \`${fixture.name}\`.\`${table}\` TO '${reader}'@'%'`);
      } else await fixture.run(`REVOKE SELECT ON auth_user_groups FROM ${reader}`);
      const limited = openAllianceAuthDatabase(fixture.readerUrl);
      try {
        const metrics = createMetrics({ defaultMetrics: false });
        const p = poller({ aa: limited, logger, metrics });
        assert.equal((await p.pollOnce()).outcome, 'aa_schema_error');
        assert.equal((await p.pollOnce()).outcome, 'aa_schema_error');
        const errors = logged.filter((entry) => entry.level === 'error');
        assert.equal(errors.length, 1);
        assert.match(
          errors[0]!.message,
          /may not SELECT it \(the schema check finds: .*auth_user_groups\.user_id/,
        );
        assert.match(errors[0]!.message, /the login's grants/);
        assert.equal(await sample(metrics, 'aa_oidc_aa_poll_last_success_timestamp_seconds'), 0);
        await fixture.run(
          kind === 'mysql'
            ? `GRANT SELECT ON \`${fixture.name}\`.auth_user_groups TO '${reader}'@'%'`
            : `GRANT SELECT ON auth_user_groups TO ${reader}`,
        );
        assert.equal((await p.pollOnce()).outcome, 'baseline');
        assert.equal(await sample(metrics, 'aa_oidc_aa_poll_cycles_total{outcome="aa_schema_error"}'), 2);
        await p.stop();
      } finally {
        await limited.close();
      }
    });

    it(
      'reports a login that lost every grant on the database (MariaDB refuses its connection) as a permission problem, not as unreachable',
      {
        skip: kind !== 'mysql' && 'PostgreSQL refuses the SELECT (42501), as the test above shows',
      },
      async () => {
        const logged: Array<{ level: string; message: string }> = [];
        const record = (level: string) => (_fields: object, message?: string) =>
          logged.push({ level, message: message ?? '' });
        const logger = { info: record('info'), warn: record('warn'), error: record('error'), debug() {} };
        const reader = `'${decodeURIComponent(new URL(fixture.readerUrl).username)}'@'%'`;
        // The database-wide grant revoked: a connection opened since is refused the database (1044).
        await fixture.run(`REVOKE SELECT, SHOW VIEW ON \`${fixture.name}\`.* FROM ${reader}`);
        const refused = openAllianceAuthDatabase(fixture.readerUrl);
        try {
          const p = poller({ aa: refused, logger });
          assert.equal((await p.pollOnce()).outcome, 'aa_schema_error');
          const errors = logged.filter((entry) => entry.level === 'error');
          assert.equal(errors.length, 1);
          assert.match(errors[0]!.message, /the login of AA_OIDC_AA_DATABASE_URL may not SELECT it/);
          assert.match(errors[0]!.message, /GRANT SELECT, SHOW VIEW ON alliance_auth\.\*/);
          assert.deepEqual(
            logged.filter((entry) => /unreachable/.test(entry.message)),
            [],
            'not called unreachable',
          );
          await fixture.run(`GRANT SELECT, SHOW VIEW ON \`${fixture.name}\`.* TO ${reader}`);
          assert.equal((await p.pollOnce()).outcome, 'baseline', 'resumes once granted again');
          await p.stop();
        } finally {
          await refused.close();
        }
      },
    );

    it('reports a read AA gave up on at its statement timeout as such, not as unreachable, and resumes after', async () => {
      const logged: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
      const record = (level: string) => (fields: object, message?: string) =>
        logged.push({ level, fields: fields as Record<string, unknown>, message: message ?? '' });
      const logger = { info: record('info'), warn: record('warn'), error: record('error'), debug() {} };
      const slow = openAllianceAuthDatabase(fixture.readerUrl, { statementTimeoutMs: 500 });
      try {
        const p = poller({ aa: slow, logger });
        assert.equal((await p.pollOnce()).outcome, 'baseline');
        // Alliance Auth's side holds the memberships table (a migration altering it, a backup's
        // lock): the fingerprint query waits for it until the server gives up on the statement.
        await fixture.owner.connection().execute(async (holder) => {
          if (kind === 'mysql') await sql`LOCK TABLES auth_user_groups WRITE`.execute(holder);
          else {
            await sql`BEGIN`.execute(holder);
            await sql`LOCK TABLE auth_user_groups IN ACCESS EXCLUSIVE MODE`.execute(holder);
          }
          try {
            assert.equal((await p.pollOnce()).outcome, 'aa_timed_out');
            assert.equal((await p.pollOnce()).outcome, 'aa_timed_out');
          } finally {
            await sql.raw(kind === 'mysql' ? 'UNLOCK TABLES' : 'ROLLBACK').execute(holder);
          }
        });
        const errors = logged.filter((entry) => entry.level === 'error');
        assert.equal(errors.length, 1, 'once while it lasts');
        assert.match(
          errors[0]!.message,
          /^the Alliance Auth fingerprint query ran out of time after 0\.5 s at 6 users \(as of the last cycle\): Alliance Auth's database answers but gave up on the statement\. Look for what holds AA's tables .*SHOW PROCESSLIST on MariaDB, pg_stat_activity on PostgreSQL/,
        );
        assert.equal(errors[0]!.fields.users, 6);
        assert.equal(errors[0]!.fields.statementTimeoutMs, 500);
        assert.deepEqual(
          logged.filter((entry) => /unreachable/.test(entry.message)),
          [],
          'not called unreachable',
        );
        assert.equal(applied.length, 0);
        // Unseen by the cycles that timed out (MariaDB holds AA's own writes to the locked table's
        // parent, so it is made once the lock is gone).
        await actions.deactivate(2);
        const resumed = await p.pollOnce();
        assert.equal(resumed.outcome, 'applied');
        assert.deepEqual(
          applied.flat().map((change) => [change.kind, change.userId]),
          [
            ['user_deactivated', 2],
            ['user_state_changed', 2],
          ],
          'the change made meanwhile, once',
        );
        assert.equal(
          logged.filter((entry) => /completes the poll's queries again/.test(entry.message)).length,
          1,
        );
        await p.stop();
      } finally {
        await slow.close();
      }
    });

    it('refuses an answer with no user at all, logging it once when it starts and once when users are back', async () => {
      const logged: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
      const record = (level: string) => (fields: object, message?: string) =>
        logged.push({ level, fields: fields as Record<string, unknown>, message: message ?? '' });
      const logger = { info: record('info'), warn: record('warn'), error: record('error'), debug() {} };
      const metrics = createMetrics({ defaultMetrics: false });
      const refused = 'aa_oidc_aa_poll_cycles_total{outcome="refused_empty"}';
      const p = poller({ logger, metrics });
      assert.equal((await p.pollOnce()).outcome, 'baseline');
      logged.length = 0;
      // AA's users table, swapped for an empty one of the same shape the login may read.
      const reader = decodeURIComponent(new URL(fixture.readerUrl).username);
      const hideUsers = async () => {
        if (kind === 'mysql') {
          await fixture.run('RENAME TABLE auth_user TO auth_user_kept');
          await fixture.run('CREATE TABLE auth_user LIKE auth_user_kept');
        } else {
          await fixture.run('ALTER TABLE auth_user RENAME TO auth_user_kept');
          await fixture.run('CREATE TABLE auth_user (LIKE auth_user_kept INCLUDING ALL)');
          await fixture.run(`GRANT SELECT ON auth_user TO "${reader}"`);
        }
      };
      const restoreUsers = async () => {
        await fixture.run('DROP TABLE auth_user');
        await fixture.run(
          kind === 'mysql'
            ? 'RENAME TABLE auth_user_kept TO auth_user'
            : 'ALTER TABLE auth_user_kept RENAME TO auth_user',
        );
      };
      await hideUsers();
      try {
        for (let cycle = 0; cycle < 3; cycle += 1)
          assert.deepEqual(await p.pollOnce(), { outcome: 'refused_empty', known: 6 });
      } finally {
        await restoreUsers();
      }
      assert.equal(await sample(metrics, refused), 3, 'every refused cycle counted');
      const errors = logged.filter((entry) => entry.level === 'error');
      assert.equal(errors.length, 1, 'once while it lasts');
      assert.match(
        errors[0]!.message,
        /^Alliance Auth answered with no user at all; refusing to treat every user as deleted/,
      );
      assert.equal(errors[0]!.fields.known, 6);
      assert.deepEqual(
        logged.filter((entry) => entry.level === 'info').map((entry) => entry.message),
        [],
        'nothing cleared yet',
      );

      assert.equal((await p.pollOnce()).outcome, 'applied');
      assert.equal((await p.pollOnce()).outcome, 'applied');
      const infos = logged.filter((entry) => entry.level === 'info');
      assert.equal(infos.length, 1, 'once when it clears');
      assert.match(infos[0]!.message, /^Alliance Auth answers with users again/);
      assert.equal(infos[0]!.fields.users, 6);
      assert.equal(logged.filter((entry) => entry.level === 'error').length, 1);
      assert.deepEqual(applied, [], 'no user taken for deleted');

      // A second episode is logged again.
      await hideUsers();
      try {
        assert.equal((await p.pollOnce()).outcome, 'refused_empty');
      } finally {
        await restoreUsers();
      }
      assert.equal(logged.filter((entry) => entry.level === 'error').length, 2);
      assert.equal(await sample(metrics, refused), 4);
      await p.stop();
    });

    it('survives losing the connection to AA: nothing is emitted meanwhile, and nothing spurious after', async () => {
      const server = new URL(fixture.readerUrl);
      const proxy = await startTcpProxy(
        server.hostname,
        Number(server.port || (kind === 'mysql' ? 3306 : 5432)),
      );
      const flaky = openAllianceAuthDatabase(proxy.wrap(fixture.readerUrl), {
        onIdleConnectionError: () => undefined,
      });
      try {
        const p = poller({ aa: flaky });
        await p.pollOnce();
        proxy.cut();
        assert.equal((await p.pollOnce()).outcome, 'aa_unreachable');
        await actions.removeGroup(2, 'Wiki Editors');
        assert.equal((await p.pollOnce()).outcome, 'aa_unreachable');
        assert.deepEqual(applied, []);
        proxy.restore();
        const resumed = await p.pollOnce();
        assert.equal(resumed.outcome, 'applied');
        assert.deepEqual(applied, [
          [{ kind: 'user_group_removed', userId: 2, username: 'alice', group: 'Wiki Editors' }],
        ]);
        await p.stop();
      } finally {
        await flaky.close();
        await proxy.close();
      }
    });
  },
);
