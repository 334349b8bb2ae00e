import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { JWK } from 'jose';
import { sql } from 'kysely';
import {
  deriveKeyEncryptionKey,
  encryptPrivateJwk,
  publicPart,
  thumbprintOf,
} from '../../src/keys/crypto.ts';
import type { AdminChangeEvent } from '../../src/audit/events.ts';
import { insertKeyRow } from '../../src/keys/queries.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';
import { insertLiveTokens } from '../helpers/logout-worker.ts';
import { autofocusedIds, consoleGet, consolePost, consoleSignIn, pageText } from '../helpers/console.ts';
import { startRpReceiver, type RpReceiver } from '../logout/rp-receiver.ts';
import {
  type Browser,
  formField,
  seedApp,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

describe(`signing keys, logs and dashboard in the admin UI (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  let failing: RpReceiver;
  let clientId: string;
  let adminName: string;

  before(async () => {
    // Ten minutes between the key store's own reloads. A retired next key's publication ends at
    // once, and a store reload that finds it loaded removes it (store.ts): with the default 2 s, a
    // reload between a change and the check that follows would remove the key the check looks at.
    // Here only the key changes themselves (and the reload each does) remove an expired key.
    server = await startServer({
      logout: { allowPrivateTargets: true },
      keys: { reloadIntervalMs: 600_000 },
    });
    const user = await seedUser(server, { superuser: true });
    adminName = user.username;
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
    failing = await startRpReceiver([500]);
    clientId = (await seedApp(server, { name: 'Failing RP', backchannelLogoutUri: failing.url() })).clientId;
    await server.app.directoryAdmin.createState('Member', 100, true);
    await seedUser(server, { username: 'stateless' });
  });
  after(async () => {
    await failing.close();
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;

  it('rotates the signing key after showing what the key service would do', async () => {
    const before = await server.app.keys.list();
    const next = before.find((key) => key.status === 'next')!;
    const active = before.find((key) => key.status === 'active')!;
    const list = await consoleGet(admin, url('/admin/keys'));
    assert.ok(list.body.includes(next.kid) && list.body.includes(active.kid));
    const confirm = await consoleGet(admin, url('/admin/keys/rotate'));
    assert.ok(
      pageText(confirm.body).includes(`The next key ${next.kid}, already published, signs every new token.`),
    );
    assert.ok(pageText(confirm.body).includes(`The active key ${active.kid} is retired`));
    assert.equal(
      (await server.app.keys.list()).find((key) => key.status === 'active')!.kid,
      active.kid,
      'the preview changed nothing',
    );
    // The next key was created when the server started, a moment ago: relying parties caching the
    // JWKS may not hold it yet. The page says so and asks for an explicit choice.
    assert.match(
      pageText(confirm.body),
      new RegExp(
        `Relying parties may not know the key yet: the next key ${next.kid} was published only \\d+ s ago .* Rotating is safe from \\d{4}-`,
      ),
    );
    assert.match(confirm.body, /<input type="checkbox" id="force" name="force" value="yes" required \/>/);
    const unconfirmed = await consolePost(admin, url('/admin/keys/rotate'), confirm.csrf!);
    assert.equal(unconfirmed.status, 409);
    assert.match(
      pageText(unconfirmed.body),
      /nothing was rotated\. To rotate now anyway, tick “Rotate anyway”/,
    );
    assert.deepEqual(await server.app.keys.list(), before, 'a refused rotation changes nothing');
    const done = await consolePost(admin, url('/admin/keys/rotate'), confirm.csrf!, { force: 'yes' });
    assert.equal(done.status, 303);
    const after = await server.app.keys.list();
    assert.equal(after.find((key) => key.status === 'active')!.kid, next.kid);
    assert.equal(after.find((key) => key.kid === active.kid)!.status, 'retired');
    // The done message names the key that signs now and the new next key, as a withdrawal's does.
    const newNext = after.find((key) => key.status === 'next')!;
    assert.equal(
      done.location,
      `/admin/keys?done=rotated&${new URLSearchParams({ active: next.kid, next: newNext.kid }).toString()}`,
    );
    const shown = await consoleGet(admin, url(done.location!));
    assert.ok(
      pageText(shown.body).includes(
        `The key ${next.kid} became active and signs every new token; the key ${newNext.kid} is the new next key.`,
      ),
      pageText(shown.body).slice(0, 600),
    );
  });

  it('rotates only the keys the confirmation showed: the same form sent twice is refused the second time', async () => {
    const confirm = await consoleGet(admin, url('/admin/keys/rotate'));
    const fields = {
      expected_active: formField(confirm.body, 'expected_active'),
      expected_next: formField(confirm.body, 'expected_next'),
      force: 'yes',
    };
    const first = await consolePost(admin, url('/admin/keys/rotate'), confirm.csrf!, fields);
    assert.equal(first.status, 303);
    const rotated = await server.app.keys.list();
    const active = rotated.find((key) => key.status === 'active')!;
    assert.equal(active.kid, fields.expected_next);
    const again = await consolePost(admin, url('/admin/keys/rotate'), confirm.csrf!, fields);
    assert.equal(again.status, 409);
    assert.match(pageText(again.body), /the signing keys changed since this rotation was shown/);
    assert.deepEqual(await server.app.keys.list(), rotated, 'the key prepared a moment ago does not sign');
  });

  it('retires a next key, and refuses to retire the active one with the reason', async () => {
    const keys = await server.app.keys.list();
    const active = keys.find((key) => key.status === 'active')!;
    const refused = await consoleGet(admin, url(`/admin/keys/${active.kid}/retire`));
    assert.equal(refused.status, 409);
    assert.match(refused.body, /rotate/i);
    const next = keys.find((key) => key.status === 'next')!;
    const confirm = await consoleGet(admin, url(`/admin/keys/${next.kid}/retire`));
    assert.equal(confirm.status, 200);
    // Every key change's confirmation has the same shape: what happens, then the form.
    assert.match(pageText(confirm.body), /What happens: The key is withdrawn before it ever signs/);
    const done = await consolePost(admin, url(`/admin/keys/${next.kid}/retire`), confirm.csrf!);
    assert.equal(done.status, 303);
    assert.equal((await server.app.keys.list()).find((key) => key.kid === next.kid)!.status, 'retired');
  });

  it('offers to prepare a next key when there is none, and prepares one after saying what happens', async () => {
    // The previous case retired the next key.
    assert.ok(!(await server.app.keys.list()).some((key) => key.status === 'next'));
    const without = await consoleGet(admin, url('/admin/keys'));
    assert.match(
      without.body,
      /<a class="button" href="\/admin\/keys\/prepare-next">Prepare a next key…<\/a>/,
    );
    // The rotation's confirmation, which would need forcing now, points there as well.
    const rotate = await consoleGet(admin, url('/admin/keys/rotate'));
    assert.match(rotate.body, /<a href="\/admin\/keys\/prepare-next">prepare a next key<\/a> instead/);

    const confirm = await consoleGet(admin, url('/admin/keys/prepare-next'));
    assert.equal(confirm.status, 200);
    assert.match(
      pageText(confirm.body),
      /What happens: A new key is generated and published in JWKS at once; it signs nothing yet\. A rotation activates it without “Rotate anyway” from about /,
    );
    assert.ok(
      !(await server.app.keys.list()).some((key) => key.status === 'next'),
      'the preview changed nothing',
    );
    const done = await consolePost(admin, url('/admin/keys/prepare-next'), confirm.csrf!);
    assert.equal(done.status, 303);
    assert.equal(done.location, '/admin/keys?done=prepared');
    const next = (await server.app.keys.list()).find((key) => key.status === 'next')!;
    assert.ok(next);
    const withNext = await consoleGet(admin, url('/admin/keys?done=prepared'));
    assert.match(pageText(withNext.body), /Prepared: the new next key is published/);
    assert.doesNotMatch(withNext.body, /Prepare a next key…/);

    // One next key at most: the same form sent twice is refused, naming the key there is.
    const again = await consolePost(admin, url('/admin/keys/prepare-next'), confirm.csrf!);
    assert.equal(again.status, 409);
    assert.match(
      pageText(again.body),
      new RegExp(`there is already a next key, ${next.kid}, published since `),
    );
    assert.equal((await consoleGet(admin, url('/admin/keys/prepare-next'))).status, 409);
  });

  it('lists failed back-channel deliveries, filterable by application and outcome', async () => {
    await server.app.logout.testDelivery([clientId]);
    const page = await consoleGet(admin, url(`/admin/deliveries?client_id=${clientId}&outcome=failures`));
    assert.equal(page.status, 200);
    assert.match(pageText(page.body), /retries_exhausted \(HTTP 500\)/);
    assert.match(page.body, /admin_test/);
    const other = await consoleGet(admin, url('/admin/deliveries?client_id=someone-else'));
    assert.match(other.body, /No delivery matches/);
  });

  it('lists audit events by kind and names an unknown user at its field, matching nothing', async () => {
    await server.app.audit.idle();
    const page = await consoleGet(admin, url('/admin/audit?kind=admin_change&since=1h'));
    assert.equal(page.status, 200);
    assert.match(page.body, /state Member created/);
    assert.match(
      pageText(page.body),
      /kept 90 days, but for token_introspected events \(audit\.databaseExclude\), which go only to the log/,
    );
    const unknown = await consoleGet(admin, url('/admin/audit?user=nobody-here'));
    assert.equal(unknown.status, 200, 'a well-formed filter that matches nothing');
    assert.match(unknown.body, /<p class="field-error" id="user-error">No user is named nobody-here\.<\/p>/);
    assert.match(unknown.body, /No event matches/);
  });

  it('refuses a malformed since or until with 400 on every log, at its field, listing nothing', async () => {
    await server.app.audit.idle();
    await server.app.logout.testDelivery([clientId]);
    for (const log of ['/admin/deliveries', '/admin/code-reuse', '/admin/audit']) {
      for (const name of ['since', 'until']) {
        const page = await consoleGet(admin, url(`${log}?${name}=soon`));
        assert.equal(page.status, 400, `${log}?${name}=soon`);
        assert.match(
          page.body,
          new RegExp(`<p class="field-error" id="${name}-error">Not a time: use `),
          log,
        );
        assert.match(page.body, new RegExp(`id="${name}"[^>]*aria-invalid="true"`), log);
        assert.match(
          page.body,
          /No (event|delivery|reused code) matches/,
          `${log}: nothing listed as if unbounded`,
        );
      }
    }
    // The same log with a good bound still lists.
    const good = await consoleGet(admin, url('/admin/audit?since=1h&until=2999-01-01'));
    assert.equal(good.status, 200);
    assert.doesNotMatch(good.body, /No event matches/);
  });

  it('refuses a since at or after until with 400 on every log, naming both inputs, keeping the filter filled in', async () => {
    await server.app.audit.idle();
    await server.app.logout.testDelivery([clientId]);
    for (const log of ['/admin/deliveries', '/admin/code-reuse', '/admin/audit']) {
      for (const [since, until] of [
        ['2025-02-01', '2025-01-01'],
        ['1h', '2h'],
        ['1h', '60m'],
      ] as const) {
        const path = `${log}?client_id=${clientId}&since=${since}&until=${until}`;
        const page = await consoleGet(admin, url(path));
        assert.equal(page.status, 400, path);
        const error = /<p class="field-error" id="since-error">([^<]+)<\/p>/.exec(page.body);
        assert.ok(error, `an error at the since field: ${pageText(page.body).slice(0, 400)}`);
        assert.match(
          pageText(error[1]!),
          new RegExp(
            `^Since "${since}" \\(\\d{4}-[^)]+Z\\) is not before Until "${until}" \\(\\d{4}-[^)]+Z\\): no event can match; give the earlier time to Since\\.$`,
          ),
          path,
        );
        assert.deepEqual(autofocusedIds(page.body), ['since'], path);
        assert.match(page.body, new RegExp(`id="since"[^>]*value="${since}"`), path);
        assert.match(page.body, new RegExp(`id="until"[^>]*value="${until}"`), path);
        assert.match(page.body, new RegExp(`id="client_id"[^>]*value="${clientId}"`), path);
        assert.match(page.body, /No (event|delivery|reused code) matches/, path);
      }
    }
    const good = await consoleGet(admin, url('/admin/deliveries?since=2h&until=1h'));
    assert.equal(good.status, 200);
  });

  it('refuses a page bound that is no whole number with 400 on the logs paged by id, listing nothing', async () => {
    await server.app.audit.idle();
    await server.app.logout.testDelivery([clientId]);
    for (const log of ['/admin/deliveries', '/admin/audit']) {
      for (const before of ['abc', '-5', '1.5', '1e3']) {
        const page = await consoleGet(admin, url(`${log}?before=${before}`));
        assert.equal(page.status, 400, `${log}?before=${before}`);
        assert.match(
          pageText(page.body),
          /Not a page bound: before= takes a whole number \(the id after which older entries are listed/,
        );
        assert.match(page.body, /No (event|delivery) matches/, `${log}?before=${before}: not the newest`);
      }
      // No bound at all still lists.
      assert.equal((await consoleGet(admin, url(`${log}?before=`))).status, 200);
    }
  });

  it('refuses a filter given more than once with 400 at its field, never ignoring both', async () => {
    await server.app.audit.idle();
    for (const [path, field] of [
      ['/admin/audit?since=1h&since=2h', 'since'],
      ['/admin/code-reuse?until=1h&until=2h', 'until'],
      [`/admin/deliveries?client_id=${clientId}&client_id=other`, 'client_id'],
      ['/admin/audit?user=a&user=b', 'user'],
      ['/admin/audit?kind=admin_change&kind=login_failed', 'kind'],
      ['/admin/deliveries?outcome=success&outcome=failures', 'outcome'],
    ] as const) {
      const page = await consoleGet(admin, url(path));
      assert.equal(page.status, 400, path);
      assert.match(
        page.body,
        new RegExp(
          `<p class="field-error" id="${field}-error">${field}= is given more than once: give it once\\.</p>`,
        ),
        path,
      );
      assert.match(page.body, /No (event|delivery|reused code) matches/, path);
    }
    const before = await consoleGet(admin, url('/admin/audit?before=5&before=6'));
    assert.equal(before.status, 400);
    assert.match(pageText(before.body), /before= is given more than once: give it once\./);
    assert.match(before.body, /No event matches/);
  });

  it('focuses the first filter at fault of a refused filter, tied to its error, as the other admin forms do', async () => {
    for (const [path, focused] of [
      ['/admin/audit?client_id=a%00b', 'client_id'],
      ['/admin/audit?user=a%00b&since=soon', 'user'],
      ['/admin/deliveries?since=soon&until=later', 'since'],
      ['/admin/code-reuse?until=later', 'until'],
      // The kind comes first on the audit log, the outcome last on the deliveries.
      ['/admin/audit?kind=nope&until=later', 'kind'],
      ['/admin/deliveries?outcome=nope&until=later', 'until'],
      ['/admin/deliveries?outcome=nope', 'outcome'],
    ] as const) {
      const page = await consoleGet(admin, url(path));
      assert.equal(page.status, 400, path);
      assert.deepEqual(autofocusedIds(page.body), [focused], path);
      assert.match(
        page.body,
        new RegExp(
          `id="${focused}"[^>]*aria-invalid="true" aria-describedby="(?:${focused}-hint )?${focused}-error"`,
        ),
        path,
      );
    }
    assert.deepEqual(autofocusedIds((await consoleGet(admin, url('/admin/audit?since=1h'))).body), []);
  });

  it('refuses an unknown kind or outcome with 400, naming the parameter and its values at its field', async () => {
    for (const [log, parameter, value, valid] of [
      [
        '/admin/audit',
        'kind',
        'admin_chnage',
        /kind= takes one of [a-z_]+, .*admin_change.*, or nothing for any\./,
      ],
      [
        '/admin/deliveries',
        'outcome',
        'failure',
        /outcome= takes one of failures, success, .*unsafe_target_ip, cancelled, or nothing for any\./,
      ],
      ['/admin/audit', 'kind', '%00', /kind= takes one of/],
    ] as const) {
      const page = await consoleGet(admin, url(`${log}?${parameter}=${value}`));
      assert.equal(page.status, 400, `${log}?${parameter}=${value}`);
      const fieldError = new RegExp(`<p class="field-error" id="${parameter}-error">([^<]+)</p>`).exec(
        page.body,
      );
      assert.ok(fieldError, `an error at the ${parameter} field: ${pageText(page.body).slice(0, 400)}`);
      assert.match(fieldError[1]!, new RegExp(`^Not a ${parameter}: `));
      assert.match(fieldError[1]!, valid);
      assert.match(
        page.body,
        new RegExp(
          `<select\\s+id="${parameter}"\\s+name="${parameter}"\\s+autofocus\\s+aria-invalid="true" aria-describedby="${parameter}-error"`,
        ),
      );
      assert.match(page.body, /No (event|delivery) matches/, 'nothing listed as if it were "Any"');
    }
    // Known values and none at all still list.
    assert.equal((await consoleGet(admin, url('/admin/audit?kind='))).status, 200);
    assert.equal((await consoleGet(admin, url('/admin/deliveries?outcome=retries_exhausted'))).status, 200);
  });

  it('refuses a client_id with a NUL byte with 400 at its field on every log, never a server error', async () => {
    for (const log of ['/admin/deliveries', '/admin/code-reuse', '/admin/audit']) {
      const page = await consoleGet(admin, url(`${log}?client_id=a%00b`));
      assert.equal(page.status, 400, log);
      assert.match(
        page.body,
        /<p class="field-error" id="client_id-error">Not a client_id: it holds a control character\.<\/p>/,
        log,
      );
    }
  });

  it('refuses a user= with a NUL byte with 400 at its field, printing no NUL byte into the page', async () => {
    const page = await consoleGet(admin, url('/admin/audit?user=a%00b'));
    assert.equal(page.status, 400);
    assert.match(
      page.body,
      /<p class="field-error" id="user-error">Not a username: it holds a control character\.<\/p>/,
    );
    assert.equal(page.body.includes('\0'), false, 'no NUL byte in the HTML');
    assert.ok(page.body.includes('value="a\uFFFDb"'), 'the field shows it as U+FFFD');
  });

  it('takes a page bound beyond the largest id as no bound on every paged log, never a server error', async () => {
    await server.app.logout.testDelivery([clientId]);
    await server.app.audit.idle();
    for (const before of ['2147483648', '999999999999999']) {
      const deliveries = await consoleGet(admin, url(`/admin/deliveries?before=${before}`));
      assert.equal(deliveries.status, 200, `deliveries before ${before}: ${deliveries.body.slice(0, 200)}`);
      assert.match(deliveries.body, /admin_test/);
      const audit = await consoleGet(admin, url(`/admin/audit?kind=admin_change&before=${before}`));
      assert.equal(audit.status, 200, `audit before ${before}: ${audit.body.slice(0, 200)}`);
      assert.match(audit.body, /state Member created/);
    }
  });

  it('pages the reused codes by whole pages, refusing a page number that is no whole number from 1 with 400, listing nothing', async () => {
    const now = Date.now();
    // 60 reused codes, the newest reuse first: `00…` to `59…`.
    await server.app.database.db
      .insertInto('issued_code')
      .values(
        Array.from({ length: 60 }, (_, index) => ({
          code_hash: `${String(index).padStart(2, '0')}${'e'.repeat(62)}`,
          client_id: clientId,
          user_id: null,
          grant_id: 'paging-test',
          access_token_id: null,
          refresh_token_id: null,
          reuse_count: 1,
          last_reuse_at: now - 1000 - index,
          created_at: now - 10_000,
          expires_at: now + 3_600_000,
        })),
      )
      .execute();
    const shown = (body: string) =>
      [...body.matchAll(/<code>(\d\d)e{14}…<\/code>/g)].map((match) => match[1]);
    const first = await consoleGet(admin, url(`/admin/code-reuse?client_id=${clientId}`));
    assert.deepEqual(
      shown(first.body),
      Array.from({ length: 50 }, (_, index) => String(index).padStart(2, '0')),
    );
    assert.match(first.body, /href="\/admin\/code-reuse\?client_id=[^"]*&amp;page=2"/);
    const second = await consoleGet(admin, url(`/admin/code-reuse?client_id=${clientId}&page=2`));
    assert.deepEqual(
      shown(second.body),
      Array.from({ length: 10 }, (_, index) => String(50 + index)),
    );
    for (const page of ['1.01', '1.5', '-3', '0', '1e3', 'two', '2&page=3']) {
      const answer = await consoleGet(admin, url(`/admin/code-reuse?client_id=${clientId}&page=${page}`));
      assert.equal(answer.status, 400, `page=${page}: ${pageText(answer.body).slice(-200)}`);
      assert.match(
        pageText(answer.body),
        page.includes('&')
          ? /page= is given more than once: give it once\./
          : /Not a page: page= takes a whole number from 1, as the page links give it; remove it for the first page\./,
        page,
      );
      assert.deepEqual(shown(answer.body), [], `page=${page} lists nothing, not the first page`);
    }
    // An empty one is none: the first page.
    const empty = await consoleGet(admin, url(`/admin/code-reuse?client_id=${clientId}&page=`));
    assert.equal(empty.status, 200);
    assert.deepEqual(shown(empty.body), shown(first.body));
  });

  it('lists reused codes filtered by application, user and time', async () => {
    const now = Date.now();
    // The user seeded in before(): a user made here would change the dashboard's counts.
    const pilot = (await server.app.directory.profileByUsername('stateless'))!;
    // Codes of an application deleted since: an application made here would change the dashboard's counts.
    const other = 'deleted-rp';
    const reused = (prefix: string, client: string, userId: number | null, lastReuseAt: number) => ({
      code_hash: `${prefix}${'f'.repeat(64 - prefix.length)}`,
      client_id: client,
      user_id: userId === null ? null : String(userId),
      grant_id: 'filter-test',
      access_token_id: null,
      refresh_token_id: null,
      reuse_count: 1,
      last_reuse_at: lastReuseAt,
      created_at: lastReuseAt - 1000,
      expires_at: now + 3_600_000,
    });
    await server.app.database.db
      .insertInto('issued_code')
      .values([reused('a1', other, pilot.id, now - 60_000), reused('b2', other, null, now - 3 * 3_600_000)])
      .execute();
    const shown = (body: string) =>
      [...body.matchAll(/<code>(a1|b2)f{14}…<\/code>/g)].map((match) => match[1]);
    for (const [query, expected] of [
      [`client_id=${other}`, ['a1', 'b2']],
      [`client_id=${other}&user=stateless`, ['a1']],
      [`client_id=${other}&since=1h`, ['a1']],
      [`client_id=${other}&until=1h`, ['b2']],
      ['client_id=someone-else', []],
    ] as const) {
      const page = await consoleGet(admin, url(`/admin/code-reuse?${query}`));
      assert.equal(page.status, 200, query);
      assert.deepEqual(shown(page.body), expected, query);
    }
  });

  it('shows the dashboard: users by state, applications, keys, recent delivery failures', async () => {
    const page = await consoleGet(admin, url('/admin'));
    assert.equal(page.status, 200);
    assert.match(page.body, /Member: <strong>0<\/strong>/);
    assert.match(page.body, /No state: <strong>2<\/strong>/);
    assert.match(page.body, /<span class="big">1<\/span> active/);
    assert.match(page.body, /Failing RP/);
    assert.match(page.body, /No pending migration, every system check passes/);
  });

  it('says on the dashboard that a newer release migrated the database (W021)', async () => {
    const db = server.app.database.db;
    await sql`insert into schema_migration (name, timestamp) values ('0099_future', '2099-01-01T00:00:00.000Z')`.execute(
      db,
    );
    try {
      const text = pageText((await consoleGet(admin, url('/admin'))).body);
      assert.match(
        text,
        /Needs attention .*W021 the database was migrated by a newer release of aa-oidc: it records 1 migration\(s\) this release does not have \(0099_future\)/,
      );
      assert.doesNotMatch(text, /No pending migration/);
    } finally {
      await sql`delete from schema_migration where name = '0099_future'`.execute(db);
    }
    assert.match(
      (await consoleGet(admin, url('/admin'))).body,
      /No pending migration, every system check passes/,
    );
  });

  it('says on the dashboard when the refusals of the last 24 hours are more than it broke down', async () => {
    const now = Date.now();
    const refusal = {
      kind: 'policy_denied',
      client_id: null,
      user_id: null,
      stage: 'authorize',
      reason: 'global',
    };
    await server.app.database.db
      .insertInto('audit_event')
      .values(
        Array.from({ length: 1005 }, () => ({
          recorded_at: now - 60_000,
          kind: 'policy_denied',
          user_id: null,
          client_id: null,
          request_id: null,
          payload: JSON.stringify({ time: new Date(now - 60_000).toISOString(), ...refusal }),
        })),
      )
      .execute();
    const text = pageText((await consoleGet(admin, url('/admin'))).body);
    assert.match(text, /authorize global 1000/, 'the breakdown of the refusals read');
    const note = /The most recent 1000 of (\d+) refusals, by stage and reason\./.exec(text);
    assert.ok(
      note,
      `the page says the breakdown is partial: ${text.slice(text.indexOf('Policy refusals'), text.indexOf('Policy refusals') + 200)}`,
    );
    assert.ok(Number(note[1]) >= 1005, note[0]);
  });

  it('counts on the dashboard the refusals a coalesced event stands for (those repeated after the one stored)', async () => {
    const now = Date.now();
    const refusal = {
      kind: 'policy_denied',
      client_id: null,
      user_id: null,
      stage: 'validate_bearer',
      reason: 'app',
    };
    await server.app.database.db
      .insertInto('audit_event')
      .values(
        [undefined, 4].map((repeated) => ({
          recorded_at: now - 30_000,
          kind: 'policy_denied',
          user_id: null,
          client_id: null,
          request_id: null,
          payload: JSON.stringify({ time: new Date(now - 30_000).toISOString(), ...refusal, repeated }),
        })),
      )
      .execute();
    const text = pageText((await consoleGet(admin, url('/admin'))).body);
    assert.match(
      text,
      /validate_bearer app 5/,
      'the refusal stored first, and one standing for 4 repeated after it',
    );
  });

  it('names on the dashboard a next key that keys import would refuse (W008)', async () => {
    const next = (await server.app.keys.list()).find((key) => key.status === 'next')!;
    await server.app.keys.retire(next.kid);
    // As a key imported before the bounds (exponent 3), written straight to the table.
    const privateJwk = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicExponent: 3,
    }).privateKey.export({
      format: 'jwk',
    }) as JWK;
    const publicJwk = publicPart(privateJwk);
    const kid = await thumbprintOf(publicJwk);
    const encryptionKey = deriveKeyEncryptionKey(server.app.config.secretKey);
    await server.app.database.db
      .transaction()
      .execute((trx) =>
        insertKeyRow(
          trx,
          { kid, publicJwk, privateJwkEncrypted: encryptPrivateJwk(privateJwk, kid, encryptionKey) },
          'next',
          Date.now(),
          null,
        ),
      );
    const page = pageText((await consoleGet(admin, url('/admin'))).body);
    assert.match(page, new RegExp(`W008 the next signing key ${kid} has public exponent 3, not 65537: `));
    assert.match(page, new RegExp(`aa-oidc keys retire ${kid}, then aa-oidc keys prepare-next`));
  });
  it('withdraws a key after a confirmation that says what follows, the active key only with “Withdraw anyway” while its replacement is recent', async () => {
    const keys = await server.app.keys.list();
    const active = keys.find((key) => key.status === 'active')!;
    const next = keys.find((key) => key.status === 'next')!;
    // A key retired by a rotation (a retired next key is removed at the next clean-up).
    const retired = keys.find((key) => key.status === 'retired' && key.publishUntil! > Date.now() + 60_000)!;
    const list = await consoleGet(admin, url('/admin/keys'));
    for (const key of [active, next, retired])
      assert.ok(list.body.includes(`href="/admin/keys/${key.kid}/withdraw">Withdraw…</a>`), key.status);

    const confirm = await consoleGet(admin, url(`/admin/keys/${active.kid}/withdraw`));
    assert.equal(confirm.status, 200);
    const text = pageText(confirm.body);
    assert.match(
      text,
      new RegExp(
        `Withdraw key ${active.kid} \\? For a key whose private part may have leaked\\. It is the active key\\.`,
      ),
    );
    assert.ok(
      text.includes(`The next key ${next.kid}, already published, signs every new token in its place,`),
    );
    assert.match(
      text,
      /Relying parties may not know the key that signs in its place: the next key .* was published only/,
    );
    // A withdrawal's advice, not a rotation's.
    assert.match(
      text,
      new RegExp(
        `would reject the ID tokens it signs\\. It can take the active key's place without that risk from \\d{4}-`,
      ),
    );
    assert.doesNotMatch(text, /Rotating is safe/);
    assert.match(
      text,
      /keep trusting the key until they fetch it again: up to 86400 s \( ?keys\.jwksCacheSeconds\)/,
    );
    assert.match(text, /introspection and userinfo find access tokens by their stored value/);
    assert.match(confirm.body, /<input type="checkbox" id="force" name="force" value="yes" required \/>/);
    assert.deepEqual(await server.app.keys.list(), keys, 'the preview changed nothing');

    const unconfirmed = await consolePost(admin, url(`/admin/keys/${active.kid}/withdraw`), confirm.csrf!);
    assert.equal(unconfirmed.status, 409);
    assert.match(
      pageText(unconfirmed.body),
      /nothing was withdrawn\. To withdraw it now anyway, tick “Withdraw anyway” on the confirmation page/,
    );
    assert.deepEqual(await server.app.keys.list(), keys, 'a refused withdrawal changes nothing');

    const done = await consolePost(admin, url(`/admin/keys/${active.kid}/withdraw`), confirm.csrf!, {
      force: 'yes',
    });
    assert.equal(done.status, 303);
    const after = await server.app.keys.list();
    assert.equal(after.find((key) => key.status === 'active')?.kid, next.kid);
    const newNext = after.find((key) => key.status === 'next')!;
    assert.equal(done.location, `/admin/keys?done=withdrawn&active=${next.kid}&next=${newNext.kid}`);
    const withdrawn = after.find((key) => key.kid === active.kid)!;
    assert.equal(withdrawn.status, 'removed');
    assert.ok(withdrawn.withdrawnAt !== null);
    const shown = await consoleGet(admin, url(done.location!));
    assert.match(
      pageText(shown.body),
      /Withdrawn: the key is no longer published and its private part is erased/,
    );
    assert.ok(
      pageText(shown.body).includes(
        `In its place the key ${next.kid} became active and signs every new token; the key ${newNext.kid} is the new next key.`,
      ),
    );
    // The query names no key that is not one.
    const made = await consoleGet(admin, url(`/admin/keys?done=withdrawn&active=${'A'.repeat(43)}&next=x`));
    assert.doesNotMatch(pageText(made.body), /In its place/);
    assert.ok(!shown.body.includes(`/admin/keys/${active.kid}/withdraw`), 'no action on a withdrawn key');

    // Sent twice: the key is gone already.
    const again = await consolePost(admin, url(`/admin/keys/${active.kid}/withdraw`), confirm.csrf!, {
      force: 'yes',
    });
    assert.equal(again.status, 409);
    assert.match(pageText(again.body), new RegExp(`signing key ${active.kid} was already withdrawn at `));

    // A retired key signs nothing: nothing to force.
    const retiredConfirm = await consoleGet(admin, url(`/admin/keys/${retired.kid}/withdraw`));
    assert.equal(retiredConfirm.status, 200);
    assert.doesNotMatch(retiredConfirm.body, /name="force"/);
    const retiredDone = await consolePost(
      admin,
      url(`/admin/keys/${retired.kid}/withdraw`),
      retiredConfirm.csrf!,
    );
    assert.equal(retiredDone.status, 303);
    assert.equal((await server.app.keys.list()).find((key) => key.kid === retired.kid)?.status, 'removed');

    await server.app.audit.idle();
    const events = await server.app.auditStore.list({ kinds: ['admin_change'] });
    assert.deepEqual(
      events
        .filter(
          (event) =>
            event.record.kind === 'admin_change' &&
            event.record.entity === 'signing_key' &&
            event.record.action === 'withdrawn',
        )
        .map((event) => {
          const record = event.record as {
            action: string;
            entity_id: string;
            actor: string;
            details: object;
          };
          return [record.action, record.entity_id, record.actor, record.details];
        }),
      [
        [
          'withdrawn',
          retired.kid,
          `admin:${adminName}`,
          {
            from_status: 'retired',
            to_status: 'removed',
            activated_kid: null,
            next_kid: null,
            forced: null,
          },
        ],
        [
          'withdrawn',
          active.kid,
          `admin:${adminName}`,
          {
            from_status: 'active',
            to_status: 'removed',
            activated_kid: next.kid,
            next_kid: newNext.kid,
            forced: 'recent_next_key',
          },
        ],
      ],
    );
    const unknown = await consoleGet(admin, url(`/admin/keys/${'A'.repeat(43)}/withdraw`));
    assert.equal(unknown.status, 404);
  });
  it('records every key change in the audit log with the admin who made it, and the first key with the system', async () => {
    await server.app.audit.idle();
    const events = (await server.app.auditStore.list({ kinds: ['admin_change'] }))
      .filter((event) => event.record.kind === 'admin_change' && event.record.entity === 'signing_key')
      .map((event) => event.record as unknown as AdminChangeEvent)
      .reverse();
    const byAdmin = `admin:${adminName}`;
    assert.deepEqual(
      events.map((record) => [
        record.action,
        record.actor,
        record.details.from_status,
        record.details.forced,
      ]),
      [
        // The server's first start: no key to sign with, nobody asked.
        ['created', 'system', null, undefined],
        // “Rotate anyway” both times: the next key was a moment old.
        ['rotated', byAdmin, 'next', 'recent_next_key'],
        ['rotated', byAdmin, 'next', 'recent_next_key'],
        ['retired', byAdmin, 'next', undefined],
        ['prepared', byAdmin, null, undefined],
        // The W008 case retires through the key service itself, which was not told who asked.
        ['retired', null, 'next', undefined],
        ['withdrawn', byAdmin, 'active', 'recent_next_key'],
        ['withdrawn', byAdmin, 'retired', null],
      ],
    );
    const [created, rotated] = events;
    assert.equal(
      rotated!.entity_id,
      created!.details.next_kid,
      'the first rotation activates the first next key',
    );
    assert.equal(rotated!.details.retired_kid, created!.entity_id);
    // The admin UI's audit log shows them as it shows every admin change.
    const log = pageText((await consoleGet(admin, url('/admin/audit?kind=admin_change'))).body);
    assert.ok(log.includes(`signing_key ${created!.entity_id} created by system`), log);
    assert.ok(log.includes(`signing_key ${rotated!.entity_id} rotated (status) by ${byAdmin}`), log);
  });
});

describe(`signing keys in the admin UI: served by this instance at once, and only as confirmed (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;

  before(async () => {
    // Ten minutes between the key store's own reloads: what this instance serves right after a
    // change is what the change itself reloaded.
    server = await startServer({ keys: { reloadIntervalMs: 600_000 } });
    const user = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
  });
  after(async () => {
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;
  const publishedKids = async () => {
    const response = await fetch(`${server.issuer}/.well-known/jwks.json`);
    assert.equal(response.status, 200);
    return ((await response.json()) as { keys: JWK[] }).keys.map((key) => key.kid);
  };
  /** Sends a confirmation page's form as it was shown, ticking “… anyway” where it asks. */
  const confirmAs = async (path: string) => {
    const confirm = await consoleGet(admin, url(path));
    assert.equal(confirm.status, 200, confirm.body.slice(0, 300));
    const fields: Record<string, string> = {};
    for (const name of ['expected_status', 'expected_active', 'expected_next']) {
      if (confirm.body.includes(`name="${name}"`)) fields[name] = formField(confirm.body, name);
    }
    if (confirm.body.includes('name="force"')) fields.force = 'yes';
    return () => consolePost(admin, url(path), confirm.csrf!, fields);
  };

  it('serves a rotation and a withdrawal from this instance as soon as the admin page answers', async () => {
    const before = await server.app.keys.list();
    const active = before.find((key) => key.status === 'active')!;
    const next = before.find((key) => key.status === 'next')!;
    assert.deepEqual((await publishedKids()).sort(), [active.kid, next.kid].sort());

    const rotated = await (await confirmAs('/admin/keys/rotate'))();
    assert.equal(rotated.status, 303);
    const newNext = (await server.app.keys.list()).find((key) => key.status === 'next')!;
    assert.equal(server.app.keyStore.activeKid(), next.kid, 'this instance signs with the key activated');
    assert.ok((await publishedKids()).includes(newNext.kid), 'JWKS lists the new next key');

    const withdrawn = await (await confirmAs(`/admin/keys/${next.kid}/withdraw`))();
    assert.equal(withdrawn.status, 303, withdrawn.body.slice(0, 300));
    const kids = await publishedKids();
    assert.ok(!kids.includes(next.kid), 'JWKS no longer lists the withdrawn key');
    assert.notEqual(server.app.keyStore.activeKid(), next.kid, 'this instance no longer signs with it');
    assert.equal(server.app.keyStore.activeKid(), newNext.kid);
    assert.ok(!server.app.keyStore.signingJwks().keys.some((jwk) => jwk.kid === next.kid));
  });

  it('refuses a withdrawal confirmed before another admin changed the keys, changing nothing', async () => {
    const keys = await server.app.keys.list();
    const next = keys.find((key) => key.status === 'next')!;
    const retired = keys.find((key) => key.status === 'retired' && key.publishUntil! > Date.now() + 60_000)!;
    const withdrawNext = await confirmAs(`/admin/keys/${next.kid}/withdraw`);
    const withdrawRetired = await confirmAs(`/admin/keys/${retired.kid}/withdraw`);

    // Another admin rotates meanwhile: the next key shown is the active key now.
    await server.app.keys.rotate({ force: true, actor: 'admin:other' });
    const listed = await server.app.keys.list();

    const stale = await withdrawNext();
    assert.equal(stale.status, 409);
    assert.match(
      pageText(stale.body),
      new RegExp(
        `signing key ${next.kid} is the active key now, not the next key as when this withdrawal was shown .*; nothing was withdrawn: review the withdrawal again`,
      ),
    );
    const staleRetired = await withdrawRetired();
    assert.equal(staleRetired.status, 409);
    assert.match(pageText(staleRetired.body), /the signing keys changed since this withdrawal was shown/);
    assert.deepEqual(await server.app.keys.list(), listed, 'a refused withdrawal changes nothing');

    // A form that names no status a key is withdrawn from is refused the same way.
    const confirm = await consoleGet(admin, url(`/admin/keys/${retired.kid}/withdraw`));
    const forged = await consolePost(admin, url(`/admin/keys/${retired.kid}/withdraw`), confirm.csrf!, {
      expected_status: 'removed',
      expected_active: formField(confirm.body, 'expected_active'),
      expected_next: formField(confirm.body, 'expected_next'),
    });
    assert.equal(forged.status, 409);
    assert.match(pageText(forged.body), /nothing was withdrawn: review the withdrawal again/);
    assert.deepEqual(await server.app.keys.list(), listed);

    // Shown again, the withdrawal goes through.
    const fresh = await (await confirmAs(`/admin/keys/${retired.kid}/withdraw`))();
    assert.equal(fresh.status, 303);
    assert.equal((await server.app.keys.list()).find((key) => key.kid === retired.kid)?.status, 'removed');
  });
});

describe(`signing keys in the admin UI: a change this instance cannot load at once (${testDatabaseKind})`, () => {
  const harness = createLeakHarness({ level: 'info' });
  let server: TestServer;
  let admin: Browser;

  before(async () => {
    // No reload of the store's own meanwhile: the only reload is the one after the admin's change.
    server = await startServer({ keys: { reloadIntervalMs: 600_000 } }, { harness });
    const user = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
  });
  after(async () => {
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;

  it('logs the failed reload (its message, no key material) and says the change is saved but served at the next reload', async () => {
    // A retired key encrypted under another secret key: the next reload cannot decrypt it.
    const privateJwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      format: 'jwk',
    }) as JWK;
    harness.registerSecret(privateJwk.d!, 'private exponent of the undecryptable key');
    const publicJwk = publicPart(privateJwk);
    const kid = await thumbprintOf(publicJwk);
    const otherKey = deriveKeyEncryptionKey('another secret key of at least 32 characters');
    await server.app.database.db
      .transaction()
      .execute((trx) =>
        insertKeyRow(
          trx,
          { kid, publicJwk, privateJwkEncrypted: encryptPrivateJwk(privateJwk, kid, otherKey) },
          'retired',
          Date.now(),
          Date.now() + 3_600_000,
        ),
      );
    const before = await server.app.keys.list();
    const active = before.find((key) => key.status === 'active')!;
    const next = before.find((key) => key.status === 'next')!;

    const confirm = await consoleGet(admin, url('/admin/keys/rotate'));
    assert.equal(confirm.status, 200, confirm.body.slice(0, 300));
    const rotated = await consolePost(admin, url('/admin/keys/rotate'), confirm.csrf!, {
      expected_active: formField(confirm.body, 'expected_active'),
      expected_next: formField(confirm.body, 'expected_next'),
      force: 'yes',
    });
    assert.equal(rotated.status, 303, rotated.body.slice(0, 300));
    assert.equal(
      (await server.app.keys.list()).find((key) => key.status === 'active')?.kid,
      next.kid,
      'the rotation is saved',
    );
    assert.equal(server.app.keyStore.activeKid(), active.kid, 'this instance still serves the keys it had');

    const warnings = harness.logLines
      .map(
        (line) => JSON.parse(line) as { level: number; msg: string; err?: string; reloadIntervalMs?: number },
      )
      .filter((line) => line.msg.includes('reloading this instance’s signing keys failed'));
    assert.equal(warnings.length, 1, harness.logLines.join('\n'));
    assert.equal(warnings[0]!.level, 40, 'a warning');
    assert.match(warnings[0]!.err ?? '', new RegExp(`signing key ${kid} cannot be decrypted`));
    assert.equal(warnings[0]!.reloadIntervalMs, 600_000);

    const page = await consoleGet(admin, url(rotated.location!));
    assert.equal(page.status, 200);
    const text = pageText(page.body);
    assert.match(
      text,
      /The change is saved, but this instance could not reload its signing keys just now \(its log says why\): it still signs with and publishes the keys it had\. It serves the change at its next successful reload, tried every 600 s/,
    );
    assert.match(text, /Rotated: the former next key is now the active key/);
    harness.scanText('the keys page', page.body);
    await harness.assertNoLeaks();
  });
});

describe(`the admin logs' application and user filters (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  let clientId: string;

  before(async () => {
    server = await startServer();
    const user = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
    clientId = (await seedApp(server, { name: 'Some RP' })).clientId;
  });
  after(async () => {
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;

  it('refuses a client_id or user= longer than its field takes with 400 at its field on every log, listing nothing, never cutting it', async () => {
    // Its first 150 characters are a user's name: cut there, the filter would list that user's events.
    const longest = (await seedUser(server, { username: 'l'.repeat(150), email: 'longest@example.org' }))
      .username;
    for (const log of ['/admin/deliveries', '/admin/code-reuse', '/admin/audit']) {
      for (const [name, value, max] of [
        ['client_id', `${clientId}${'x'.repeat(101 - clientId.length)}`, 100],
        ['user', `${longest}${'l'.repeat(151)}`, 300],
      ] as const) {
        const path = `${log}?${name}=${value}`;
        const page = await consoleGet(admin, url(path));
        assert.equal(page.status, 400, path);
        assert.ok(
          page.body.includes(
            `<p class="field-error" id="${name}-error">${name}= is longer than ${max} characters: give at most ${max}.</p>`,
          ),
          `${log}: ${pageText(page.body).slice(0, 600)}`,
        );
        assert.deepEqual(autofocusedIds(page.body), [name], path);
        assert.match(
          page.body,
          /No (event|delivery|reused code) matches/,
          `${path}: nothing listed as if cut`,
        );
        assert.match(
          page.body,
          new RegExp(`id="${name}"[^>]*value="${value}"`),
          `${path}: shown to be shortened`,
        );
        assert.match(
          page.body,
          new RegExp(`id="${name}"[^>]*maxlength="${max}"`),
          `${path}: the field takes no more`,
        );
      }
    }
  });

  it('refuses a client_id or user= both too long and holding a NUL byte for its control character on every log, printing no NUL byte', async () => {
    for (const log of ['/admin/deliveries', '/admin/code-reuse', '/admin/audit']) {
      for (const [name, noun, max] of [
        ['client_id', 'client_id', 100],
        ['user', 'username', 300],
      ] as const) {
        const path = `${log}?${name}=${'x'.repeat(max)}%00`;
        const page = await consoleGet(admin, url(path));
        assert.equal(page.status, 400, path);
        assert.ok(
          page.body.includes(
            `<p class="field-error" id="${name}-error">Not a ${noun}: it holds a control character.</p>`,
          ),
          `${path}: ${pageText(page.body).slice(0, 600)}`,
        );
        assert.equal(page.body.includes('\0'), false, `${path}: no NUL byte in the HTML`);
        assert.deepEqual(autofocusedIds(page.body), [name], path);
        assert.match(page.body, /No (event|delivery|reused code) matches/, path);
      }
    }
  });

  it('takes a user= of the longest username, 150 characters outside the BMP (300 UTF-16 units), whole', async () => {
    const widest = await seedUser(server, { username: '\u{20000}'.repeat(150), email: 'widest@example.org' });
    await server.app.audit.idle();
    const page = await consoleGet(admin, url(`/admin/audit?user=${encodeURIComponent(widest.username)}`));
    assert.equal(page.status, 200);
    assert.doesNotMatch(page.body, /class="field-error"/, pageText(page.body).slice(0, 600));
  });
});

describe(`logouts cancelled unsent in the admin deliveries page (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  let clientId: string;

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    const user = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
    // Nothing listens there: a cancelled logout sends nothing.
    clientId = (await seedApp(server, { name: 'Retired RP', backchannelLogoutUri: 'http://127.0.0.1:9/bcl' }))
      .clientId;
    const pilot = await seedUser(server);
    await insertLiveTokens(server.app.database, pilot.id, [clientId]);
    await server.app.directoryAdmin.deactivate({ id: pilot.id });
    await server.app.applications.deactivate(clientId, 'test');
    await server.app.logout.deliverDue();
  });
  after(async () => {
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;

  it('lists a logout cancelled because its application was deactivated, with the reason, apart from the failures', async () => {
    const page = await consoleGet(admin, url(`/admin/deliveries?client_id=${clientId}&outcome=cancelled`));
    assert.equal(page.status, 200);
    const text = pageText(page.body);
    assert.match(text, /1 delivery outcome\(s\)/);
    assert.match(
      text,
      /Retired RP .*user_deactivated cancelled 0 application_deactivated: the application was deactivated after the logout was queued; nothing was sent/,
    );
    assert.match(page.body, /<option value="cancelled" selected/);
    const failures = await consoleGet(admin, url(`/admin/deliveries?client_id=${clientId}&outcome=failures`));
    assert.match(failures.body, /No delivery matches/, 'a cancellation is no delivery failure');
    const dashboard = await consoleGet(admin, url('/admin'));
    assert.match(
      pageText(dashboard.body),
      /Recent back-channel delivery failures None recorded\./,
      'nor among the dashboard’s recent failures',
    );
  });
});

describe(`the admin logs' retention, kept a single day (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  before(async () => {
    server = await startServer({ audit: { retentionDays: 1 }, logout: { recordRetentionDays: 1 } });
    const user = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
  });
  after(async () => server.close());

  it('says "1 day", not "1 days", on the audit log and the deliveries', async () => {
    const audit = pageText((await consoleGet(admin, `${server.origin}/admin/audit`)).body);
    assert.match(audit, /Every audit event, kept 1 day, but for token_introspected events/);
    const deliveries = pageText((await consoleGet(admin, `${server.origin}/admin/deliveries`)).body);
    assert.match(deliveries, /Outcomes are kept 1 day \( ?logout\.recordRetentionDays\)\./);
  });
});
