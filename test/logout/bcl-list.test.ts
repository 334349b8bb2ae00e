import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { leaseMs } from '../../src/logout/jobs.ts';
import { createLogoutTransport } from '../../src/logout/transport-for-database.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { type LogoutWorkerFixture, startLogoutWorkerFixture } from '../helpers/logout-worker.ts';
import { type RpReceiver, startRpReceiver } from './rp-receiver.ts';

type Row = Record<string, unknown>;

/**
 * `aa-oidc bcl list`: the back-channel logouts still to be delivered, read from the database's
 * transport (the `bcl_job` table on SQLite, pg-boss on PostgreSQL), then the final outcomes the
 * delivery-attempt table recorded, cancellations among them.
 */
describe(`aa-oidc bcl list (${testDatabaseKind})`, () => {
  let fixture: LogoutWorkerFixture;
  const receivers: RpReceiver[] = [];
  /** One application per case: a logout retrying, one refused (4xx), one cancelled, one queued. */
  const apps: Record<'retrying' | 'refused' | 'cancelled' | 'queued', string> = {
    retrying: '',
    refused: '',
    cancelled: '',
    queued: '',
  };
  const users: Record<keyof typeof apps, number> = { retrying: 0, refused: 0, cancelled: 0, queued: 0 };

  before(async () => {
    // The retry waits an hour: it never comes due while the tests read it, however slow the machine.
    fixture = await startLogoutWorkerFixture({
      logout: { allowPrivateTargets: true, retryBackoffSeconds: [3600] },
    });
    const { services } = fixture;
    for (const [name, status] of [
      ['retrying', 503],
      ['refused', 400],
      ['cancelled', 200],
      ['queued', 200],
    ] as const) {
      const receiver = await startRpReceiver([status]);
      receivers.push(receiver);
      apps[name] = await fixture.application(`${name} RP`, receiver.url());
      users[name] = await fixture.userHoldingToken(`${name}-pilot`, apps[name]);
    }
    for (const name of ['retrying', 'refused', 'cancelled'] as const)
      await services.directoryAdmin.deactivate({ id: users[name] });
    await services.applications.deactivate(apps.cancelled, 'test');
    // One attempt each: the 503 is retried later, the 400 is final, the deactivated app's is cancelled.
    await services.logout.deliverDue();
    // Queued after the round: no attempt yet.
    await services.directoryAdmin.deactivate({ id: users.queued });
  });
  after(async () => {
    await fixture.close();
    for (const receiver of receivers) await receiver.close();
  });

  const env = () => testEnv(fixture.database, { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' });

  const list = async (...args: string[]): Promise<Row[]> => {
    const result = await cli(['bcl', 'list', '--format', 'json', ...args], env());
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    return JSON.parse(result.stdout) as Row[];
  };

  const pick = (rows: Row[], ...keys: string[]) =>
    rows.map((row) => Object.fromEntries(keys.map((key) => [key, row[key]])));

  it('lists the logouts still to be delivered, the next due first, then the outcomes recorded', async () => {
    const rows = await list();
    assert.deepEqual(
      pick(
        rows.slice(0, 2),
        'state',
        'outcome',
        'client_id',
        'user_id',
        'trigger',
        'attempts',
        'http_status',
      ),
      [
        {
          state: 'queued',
          outcome: null,
          client_id: apps.queued,
          user_id: users.queued,
          trigger: 'user_deactivated',
          attempts: 0,
          http_status: null,
        },
        {
          state: 'retrying',
          outcome: null,
          client_id: apps.retrying,
          user_id: users.retrying,
          trigger: 'user_deactivated',
          attempts: 1,
          http_status: 503,
        },
      ],
    );
    const [queued, retrying] = rows;
    assert.ok(
      Date.parse(String(retrying!.next_attempt_at)) > Date.parse(String(queued!.next_attempt_at)),
      'the retry waits for its backoff',
    );
    assert.equal(queued!.recorded_at, null);
    const done = rows.slice(2);
    assert.deepEqual(
      pick(
        done,
        'state',
        'outcome',
        'client_id',
        'client_name',
        'user_id',
        'attempts',
        'http_status',
        'detail',
      ).sort((a, b) => String(a.outcome).localeCompare(String(b.outcome))),
      [
        {
          state: 'done',
          outcome: 'cancelled',
          client_id: apps.cancelled,
          client_name: 'cancelled RP',
          user_id: users.cancelled,
          attempts: 0,
          http_status: null,
          detail:
            'application_deactivated: the application was deactivated after the logout was queued; nothing was sent',
        },
        {
          state: 'done',
          outcome: 'rp_client_error',
          client_id: apps.refused,
          client_name: 'refused RP',
          user_id: users.refused,
          attempts: 1,
          http_status: 400,
          detail: 'HTTP 400',
        },
      ],
    );
    assert.ok(done.every((row) => row.next_attempt_at === null && typeof row.recorded_at === 'string'));
    const text = JSON.stringify(rows);
    assert.doesNotMatch(text, /eyJ[\w-]*\.[\w-]+\.[\w-]+/, 'no logout token is shown');
  });

  it('--pending lists only those; --outcome only the outcomes recorded, failures without the cancellations', async () => {
    assert.deepEqual(pick(await list('--pending'), 'state', 'client_id'), [
      { state: 'queued', client_id: apps.queued },
      { state: 'retrying', client_id: apps.retrying },
    ]);
    assert.deepEqual(pick(await list('--outcome', 'cancelled'), 'outcome', 'client_id'), [
      { outcome: 'cancelled', client_id: apps.cancelled },
    ]);
    assert.deepEqual(pick(await list('--outcome', 'failures'), 'outcome', 'client_id'), [
      { outcome: 'rp_client_error', client_id: apps.refused },
    ]);
    assert.deepEqual(await list('--outcome', 'success'), [], 'successes are not recorded by default');
  });

  it('--client-id and --username narrow the listing to one application, one user', async () => {
    assert.deepEqual(pick(await list('--client-id', apps.retrying), 'state', 'client_id'), [
      { state: 'retrying', client_id: apps.retrying },
    ]);
    assert.deepEqual(pick(await list('--client-id', apps.cancelled), 'outcome', 'client_id'), [
      { outcome: 'cancelled', client_id: apps.cancelled },
    ]);
    assert.deepEqual(pick(await list('--username', 'queued-pilot'), 'state', 'user_id'), [
      { state: 'queued', user_id: users.queued },
    ]);
  });

  it('finds by --user-id the logouts of a user no username names any longer', async () => {
    const byId = await list('--user-id', String(users.refused));
    assert.deepEqual(
      byId.map((row) => [row.user_id, row.client_id]),
      [[users.refused, apps.refused]],
    );
    const refused = await cli(['bcl', 'list', '--user-id', '0'], env());
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /--user-id must be a user's id, a whole number from 1 to \d+ \(got "0"\)/);
  });

  it('stops at --limit, the pending logouts first, and says on stderr that more may match', async () => {
    const one = await cli(['bcl', 'list', '--limit', '1', '--format', 'json'], env());
    assert.equal(one.code, 0, one.stderr);
    assert.deepEqual(pick(JSON.parse(one.stdout) as Row[], 'state'), [{ state: 'queued' }]);
    assert.equal(
      one.stderr,
      'note: the listing stopped at --limit 1; more may match: raise --limit (at most 1000) or narrow it with --pending, --outcome, --client-id, --username or --user-id\n',
    );
    assert.deepEqual(pick(await list('--limit', '5'), 'state'), [
      { state: 'queued' },
      { state: 'retrying' },
      { state: 'done' },
      { state: 'done' },
    ]);
  });

  it('prints a table and CSV with the same columns', async () => {
    const table = await cli(['bcl', 'list', '--pending'], env());
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(
      lines[0]!,
      /^STATE +OUTCOME +TIME +CLIENT_ID +USER_ID +TRIGGER +ATTEMPTS +HTTP_STATUS +DETAIL$/,
    );
    assert.equal(lines.length, 3);
    assert.match(
      lines[2]!,
      new RegExp(
        `^retrying +\\d{4}-\\d\\d-\\d\\dT\\S+ +${apps.retrying} +${users.retrying} +user_deactivated +1 +503$`,
      ),
    );
    const csv = await cli(['bcl', 'list', '--outcome', 'cancelled', '--format', 'csv'], env());
    assert.equal(csv.code, 0, csv.stderr);
    const [header, row, ...rest] = csv.stdout.split('\r\n');
    assert.equal(header, 'state,outcome,time,client_id,user_id,trigger,attempts,http_status,detail');
    assert.match(
      row!,
      new RegExp(
        `^done,cancelled,[^,]+,${apps.cancelled},${users.cancelled},user_deactivated,0,,application_deactivated: `,
      ),
    );
    assert.deepEqual(rest, ['']);
  });

  it('refuses a malformed option with one line naming it, listing nothing', async () => {
    for (const [args, message] of [
      [['--limit', '0'], /^aa-oidc: --limit must be an integer from 1 to 1000 \(got "0"\)\n$/],
      [['--limit', '1001'], /^aa-oidc: --limit must be an integer from 1 to 1000 \(got "1001"\)\n$/],
      [['--limit', 'ten'], /^aa-oidc: --limit must be an integer from 1 to 1000 \(got "ten"\)\n$/],
      [
        ['--outcome', 'lost'],
        /^aa-oidc: option '--outcome <outcome>' argument "lost" is invalid\. Allowed choices are failures, success, redirect_blocked, rp_client_error, retries_exhausted, signing_kid_retired, dns_resolve_failed, unsafe_target_ip, cancelled; see aa-oidc bcl list --help\n$/,
      ],
      [
        ['--pending', '--outcome', 'failures'],
        /^aa-oidc: option '--pending' cannot be used with option '--outcome <outcome>'/,
      ],
      [['--client-id', ''], /^aa-oidc: --client-id is empty; give a client_id, or leave --client-id out/],
      [['--client-id', 'no-such-app'], /^aa-oidc: .*no application with client_id .no-such-app./],
      [['--username', 'nobody-here'], /^aa-oidc: no user named "nobody-here" \(see 'aa-oidc user list'\)\n$/],
    ] as const) {
      const result = await cli(['bcl', 'list', ...args], env());
      assert.notEqual(result.code, 0, args.join(' '));
      assert.equal(result.stdout, '', args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
      assert.equal(result.stderr.split('\n').length, 2, `one line: ${result.stderr}`);
    }
  });

  // Last: the claim it takes holds the queued logout until the lease lapses.
  it('shows a logout a worker is attempting now as in_flight, with no next attempt time', async () => {
    const { services } = fixture;
    const transport = createLogoutTransport(services.database, {
      expireInSeconds: Math.ceil(leaseMs(services.config) / 1000),
      logger: services.logger,
    });
    try {
      const now = Date.now();
      const claimed = await transport.claim('bcl-list-test', now, now + leaseMs(services.config), 10);
      assert.deepEqual(
        claimed.map((job) => job.clientId),
        [apps.queued],
        'only the queued logout is due',
      );
      assert.deepEqual(pick(await list('--client-id', apps.queued), 'state', 'attempts', 'next_attempt_at'), [
        { state: 'in_flight', attempts: 1, next_attempt_at: null },
      ]);
      // The worker died: its claim lapses (pg-boss keeps the job 'active' until a supervisor expires it).
      if (testDatabaseKind === 'postgres')
        await sql`update pgboss.job set started_on = started_on - interval '1 day' where state = 'active'`.execute(
          services.database.db,
        );
      else
        await services.database.db
          .updateTable('bcl_job')
          .set({ lease_until: now - 1 })
          .execute();
      const [lapsed] = await list('--client-id', apps.queued);
      assert.deepEqual(pick([lapsed!], 'state', 'attempts'), [{ state: 'retrying', attempts: 1 }]);
      assert.notEqual(lapsed!.next_attempt_at, null, 'due again, not in flight');
    } finally {
      await transport.close();
    }
  });
});
