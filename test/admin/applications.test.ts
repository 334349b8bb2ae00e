import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { verifyClientSecret } from '../../src/applications/secret.ts';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import { testDatabaseKind, whileWritesRefused } from '../helpers/database.ts';
import {
  autofocusedIds,
  consoleGet,
  consolePost,
  consoleSignIn,
  focusedAlerts,
  pageText,
} from '../helpers/console.ts';
import { guardedConnector, PUBLIC_V4, tableResolver, v4, type Answer } from '../logout/helpers.ts';
import { startRpReceiver, type RpReceiver } from '../logout/rp-receiver.ts';
import {
  type Browser,
  formField,
  seedApp,
  seedUser,
  startServer,
  storeNamesAsIs,
  type TestServer,
} from '../helpers/server.ts';

const HOSTILE = '<script>alert(1)</script>';

/** The alerts and field errors of a page, for failure messages. */
const problems = (body: string) => (body.match(/class="(?:alert|field-error)"[^>]*>[^<]*/g) ?? []).join('\n');

describe(`applications in the admin UI (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  let adminName: string;
  let receiver: RpReceiver;
  let clientId: string;

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    await server.app.directoryAdmin.createState(`Member ${HOSTILE}`, 100, true);
    await server.app.directoryAdmin.createGroup('Directors');
    const user = await seedUser(server, { superuser: true });
    adminName = user.username;
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
    receiver = await startRpReceiver([200]);
  });
  after(async () => {
    await receiver.close();
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;

  it('creates an application with a whitelisted state and group, showing its secret once', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    assert.equal(form.status, 200);
    // The pickers offer the existing states and groups, escaped.
    assert.ok(form.body.includes('value="Member &lt;script&gt;alert(1)&lt;/script&gt;"'));
    assert.equal(form.body.includes(HOSTILE), false, 'no raw <script> anywhere');
    const created = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
      client_id: formField(form.body, 'client_id'),
      name: `Wiki ${HOSTILE}`,
      redirect_uris: 'https://wiki.example.org/callback\r\nhttps://wiki.example.org/other',
      client_type: 'confidential',
      grant_types: ['authorization_code', 'refresh_token'],
      states: `Member ${HOSTILE}`,
      groups: 'Directors',
      pkce_required: 'on',
      access_token_format: 'jwt',
      backchannel_logout_uri: receiver.url(),
      id_token_claims: 'on',
    });
    assert.equal(created.status, 201, problems(created.body));
    assert.equal(created.body.includes(HOSTILE), false, 'the hostile name is escaped on the result page');
    clientId = /<dt>client_id<\/dt>\s*<dd><code>([^<]+)<\/code>/.exec(created.body)![1]!;
    const secret = formField(created.body, 'client_secret');
    const app = await server.app.applications.findByClientId(clientId);
    assert.ok(app);
    assert.equal(app.name, `Wiki ${HOSTILE}`);
    assert.deepEqual(app.redirectUris, [
      'https://wiki.example.org/callback',
      'https://wiki.example.org/other',
    ]);
    assert.deepEqual(app.states, [`Member ${HOSTILE}`]);
    assert.deepEqual(app.groups, ['Directors']);
    assert.equal(app.accessTokenFormat, 'jwt');
    assert.equal(app.idTokenClaims, true, 'the ID-token claims box was ticked');
    assert.equal(app.createdBy, `admin:${adminName}`);
    assert.ok(verifyClientSecret(app, secret), 'the secret shown is the one stored (as a digest)');
    // Never again: the detail page has no secret.
    const detail = await consoleGet(admin, url(`/admin/apps/${clientId}`));
    assert.equal(detail.body.includes(secret), false);
    assert.equal(detail.body.includes(HOSTILE), false);
    // The list shows it, escaped, and the filters find it.
    const list = await consoleGet(admin, url('/admin/apps?q=wiki&format=jwt&bcl=yes'));
    assert.ok(list.body.includes('Wiki &lt;script&gt;alert(1)&lt;/script&gt;'));
    assert.equal(list.body.includes(HOSTILE), false);
    const none = await consoleGet(admin, url('/admin/apps?q=wiki&format=opaque'));
    assert.equal(none.body.includes(clientId), false);
  });

  it("shows the SSRF gate's refusal at the back-channel field, and keeps what was typed", async () => {
    const form = await consoleGet(admin, url(`/admin/apps/${clientId}/edit`));
    const answer = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), form.csrf!, {
      version: formField(form.body, 'version'),
      name: 'Wiki',
      redirect_uris: 'https://wiki.example.org/callback',
      grant_types: 'authorization_code',
      pkce_required: 'on',
      access_token_format: 'inherit',
      backchannel_logout_uri: 'http://169.254.169.254/latest/meta-data',
    });
    assert.equal(answer.status, 400);
    const fieldError = /<p class="field-error" id="backchannel_logout_uri-error">([^<]+)<\/p>/.exec(
      answer.body,
    );
    assert.ok(fieldError, `an error at the back-channel field: ${problems(answer.body)}`);
    assert.match(fieldError[1]!, /169\.254\.169\.254/);
    assert.match(answer.body, /aria-describedby="backchannel_logout_uri-hint backchannel_logout_uri-error"/);
    assert.ok(
      answer.body.includes('value="http://169.254.169.254/latest/meta-data"'),
      'the typed value is kept',
    );
    assert.equal(
      (await server.app.applications.findByClientId(clientId))!.name,
      `Wiki ${HOSTILE}`,
      'nothing saved',
    );
  });

  it('edits the application through the service, recorded as an admin change', async () => {
    const form = await consoleGet(admin, url(`/admin/apps/${clientId}/edit`));
    assert.match(
      form.body,
      /name="id_token_claims"\s+value="on"\s+checked/,
      'the form shows the option as set',
    );
    const saved = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), form.csrf!, {
      version: formField(form.body, 'version'),
      name: 'Wiki',
      redirect_uris: 'https://wiki.example.org/callback',
      grant_types: ['authorization_code', 'refresh_token'],
      groups: 'Directors',
      pkce_required: 'on',
      access_token_format: 'opaque',
      backchannel_logout_uri: receiver.url(),
    });
    assert.equal(saved.status, 303, problems(saved.body));
    assert.equal(saved.location, `/admin/apps/${clientId}?done=updated`);
    const app = (await server.app.applications.findByClientId(clientId))!;
    assert.equal(app.name, 'Wiki');
    assert.deepEqual(app.states, []);
    assert.deepEqual(app.groups, ['Directors']);
    assert.equal(app.idTokenClaims, false, 'the box left unticked turns the option off');
    await server.app.audit.idle();
    const events = await server.app.auditStore.list({ clientId, kinds: ['admin_change'] });
    assert.ok(
      events.some(
        (event) => event.record.action === 'updated' && event.record.actor === `admin:${adminName}`,
      ),
      'an admin_change by the admin',
    );
  });

  it('refuses an edit that gives a single-valued field or the CSRF token twice (400 naming it), changing nothing, its checkbox groups still taking several values', async () => {
    const before = (await server.app.applications.findByClientId(clientId))!;
    const form = await consoleGet(admin, url(`/admin/apps/${clientId}/edit`));
    const fields = {
      version: formField(form.body, 'version'),
      redirect_uris: 'https://wiki.example.org/callback',
      grant_types: ['authorization_code', 'refresh_token'],
      states: `Member ${HOSTILE}`,
      groups: 'Directors',
      access_token_format: 'opaque',
    };
    for (const [field, sent] of [
      ['name', { ...fields, name: ['Renamed', 'Wiki'] }],
      ['access_token_format', { ...fields, name: 'Renamed', access_token_format: ['jwt', 'opaque'] }],
      ['csrf_token', { ...fields, name: 'Renamed', csrf_token: 'forged' }],
    ] as Array<[string, Record<string, string | string[]>]>) {
      const refused = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), form.csrf!, sent);
      assert.equal(refused.status, 400, `${field}: ${problems(refused.body)}`);
      assert.match(pageText(refused.body), new RegExp(`This form gives the field ${field} more than once`));
    }
    // The forged token first: neither is checked, the form is refused all the same.
    const forgedFirst = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), null, {
      csrf_token: ['forged', form.csrf!],
      ...fields,
      name: 'Renamed',
    });
    assert.equal(forgedFirst.status, 400);
    assert.match(pageText(forgedFirst.body), /This form gives the field csrf_token more than once/);
    assert.deepEqual(await server.app.applications.findByClientId(clientId), before, 'nothing saved');
  });

  it('sends a test back-channel logout and shows the outcome per application', async () => {
    const csrf = (await consoleGet(admin, url('/admin/apps'))).csrf!;
    const before = receiver.requests.length;
    const result = await consolePost(admin, url('/admin/apps/test-logout'), csrf, { client_id: clientId });
    assert.equal(result.status, 200, problems(result.body));
    assert.match(result.body, /<strong>success<\/strong>/);
    assert.equal(receiver.requests.length, before + 1, 'the receiver got one logout token');
  });

  it('refuses a test back-channel logout to more applications than it tests at a time, sending nothing', async () => {
    const list = await consoleGet(admin, url('/admin/apps'));
    assert.match(pageText(list.body), /At most 100 applications at a time\./);
    const unknown = (count: number) => Array.from({ length: count }, (_, index) => `no-such-app-${index}`);
    const before = receiver.requests.length;
    const tooMany = await consolePost(admin, url('/admin/apps/test-logout'), list.csrf!, {
      client_id: [clientId, ...unknown(100)],
    });
    assert.equal(tooMany.status, 400);
    assert.match(
      pageText(tooMany.body),
      /Nothing was sent: 101 applications are ticked, and at most 100 are tested at a time\./,
    );
    assert.equal(receiver.requests.length, before, 'no application got a logout token');
    // The limit counts applications, not boxes: one ticked twice is one.
    const atTheLimit = await consolePost(admin, url('/admin/apps/test-logout'), list.csrf!, {
      client_id: [clientId, clientId, ...unknown(99)],
    });
    assert.equal(atTheLimit.status, 200, problems(atTheLimit.body));
    assert.equal(receiver.requests.length, before + 1, 'the one application with a receiver got its token');
    assert.match(pageText(atTheLimit.body), /no-such-app-98 .*no such application/);
  });

  it('refuses an unknown status, token format, PKCE or back-channel filter, or a search given twice, with 400 at its field, listing nothing', async () => {
    for (const [path, field, message] of [
      [
        '/admin/apps?active=maybe',
        'active',
        'Not a status: active= takes one of active, inactive, or nothing for any.',
      ],
      [
        '/admin/apps?format=paseto',
        'format',
        'Not a token format: format= takes one of inherit, opaque, jwt, or nothing for any.',
      ],
      [
        '/admin/apps?pkce=yes',
        'pkce',
        'Not a PKCE setting: pkce= takes one of required, optional, or nothing for any.',
      ],
      [
        '/admin/apps?bcl=configured',
        'bcl',
        'Not a back-channel logout setting: bcl= takes one of yes, no, or nothing for any.',
      ],
      ['/admin/apps?bcl=yes&bcl=no', 'bcl', 'bcl= is given more than once: give it once.'],
      [`/admin/apps?q=${clientId}&q=${clientId}`, 'q', 'q= is given more than once: give it once.'],
      // Two filters at fault: the first in the form takes the focus.
      ['/admin/apps?pkce=maybe&active=maybe', 'active', 'Not a status: '],
    ] as const) {
      const page = await consoleGet(admin, url(path));
      assert.equal(page.status, 400, path);
      const fieldError = new RegExp(`<p class="field-error" id="${field}-error">([^<]+)</p>`).exec(page.body);
      assert.ok(fieldError, `an error at the ${field} field: ${problems(page.body)}`);
      assert.ok(pageText(fieldError[1]!).startsWith(message), `${path}: ${fieldError[1]}`);
      assert.deepEqual(autofocusedIds(page.body), [field], path);
      assert.equal(
        page.body.includes(`<code>${clientId}</code>`),
        false,
        `${path}: nothing listed as if it were "Any"`,
      );
    }
    // Known values and none at all still list.
    for (const path of [
      '/admin/apps?active=active&format=opaque&pkce=required&bcl=yes',
      '/admin/apps?active=&bcl=',
    ]) {
      const page = await consoleGet(admin, url(path));
      assert.equal(page.status, 200, path);
      assert.ok(page.body.includes(`<code>${clientId}</code>`), path);
    }
  });

  it('refuses a search longer than 100 characters at its field (400 naming the limit), listing nothing, never cutting it', async () => {
    // The client_id and then letters: cut at 100, it would find the application.
    const long = await consoleGet(
      admin,
      url(`/admin/apps?q=${clientId}${'z'.repeat(101 - clientId.length)}`),
    );
    assert.equal(long.status, 400);
    assert.ok(
      long.body.includes(
        '<p class="field-error" id="q-error">q= is longer than 100 characters: give at most 100.</p>',
      ),
      problems(long.body),
    );
    assert.deepEqual(autofocusedIds(long.body), ['q']);
    assert.equal(long.body.includes(`<code>${clientId}</code>`), false, 'nothing listed');
    assert.match(long.body, /id="q"[^>]*maxlength="100"/, 'the field takes no more');
    const limit = await consoleGet(admin, url(`/admin/apps?q=${'z'.repeat(100)}`));
    assert.equal(limit.status, 200, problems(limit.body));
  });

  it('lists by each filter only the applications that match it: search, status, token format, PKCE, back-channel logout', async () => {
    const alpha = await seedApp(server, {
      name: 'Filter Alpha',
      accessTokenFormat: 'jwt',
      backchannelLogoutUri: receiver.url(),
    });
    const beta = await seedApp(server, {
      name: 'Filter Beta',
      accessTokenFormat: 'opaque',
      pkceRequired: false,
      active: false,
    });
    for (const [query, listed] of [
      ['q=Filter+Alpha', alpha],
      [`q=${beta.clientId}`, beta],
      ['q=Filter&active=active', alpha],
      ['q=Filter&active=inactive', beta],
      ['q=Filter&format=jwt', alpha],
      ['q=Filter&format=opaque', beta],
      ['q=Filter&pkce=required', alpha],
      ['q=Filter&pkce=optional', beta],
      ['q=Filter&bcl=yes', alpha],
      ['q=Filter&bcl=no', beta],
    ] as const) {
      const page = await consoleGet(admin, url(`/admin/apps?${query}`));
      assert.equal(page.status, 200, query);
      const shown = [alpha, beta].filter((app) => page.body.includes(`<code>${app.clientId}</code>`));
      assert.deepEqual(shown, [listed], query);
    }
  });

  it('rotates the secret after showing what happens, the new one shown once', async () => {
    const confirm = await consoleGet(admin, url(`/admin/apps/${clientId}/rotate-secret`));
    assert.match(confirm.body, /The current secret stops working at once/);
    const rotated = await consolePost(admin, url(`/admin/apps/${clientId}/rotate-secret`), confirm.csrf!, {
      secret_fingerprint: formField(confirm.body, 'secret_fingerprint'),
    });
    assert.equal(rotated.status, 200, problems(rotated.body));
    const secret = formField(rotated.body, 'client_secret');
    assert.ok(verifyClientSecret((await server.app.applications.findByClientId(clientId))!, secret));
  });

  it('rotates once when the confirmation is sent twice at once or from a stale page, never showing a replaced secret', async () => {
    const { clientId: app } = await seedApp(server, {
      name: 'Twice',
      redirectUris: ['https://twice.example.org/cb'],
    });
    const confirm = await consoleGet(admin, url(`/admin/apps/${app}/rotate-secret`));
    const send = (page: { body: string; csrf: string | undefined }) =>
      consolePost(admin, url(`/admin/apps/${app}/rotate-secret`), page.csrf!, {
        secret_fingerprint: formField(page.body, 'secret_fingerprint'),
      });
    const answers = await Promise.all([send(confirm), send(confirm), send(confirm), send(confirm)]);
    assert.deepEqual(
      answers.map((answer) => answer.status).sort(),
      [200, 409, 409, 409],
      answers.map((answer) => problems(answer.body)).join('\n'),
    );
    const live = async () => (await server.app.applications.findByClientId(app))!;
    const shown = answers.find((answer) => answer.status === 200)!;
    assert.ok(
      verifyClientSecret(await live(), formField(shown.body, 'client_secret')),
      'the secret shown is the live one',
    );
    for (const refused of answers.filter((answer) => answer.status === 409)) {
      assert.ok(!refused.body.includes('name="client_secret"'), 'a refused send shows no secret');
      assert.match(pageText(refused.body), /was already rotated Nothing was rotated/);
    }
    // A page shown before a rotation made elsewhere (the command line) is stale too.
    const stale = await consoleGet(admin, url(`/admin/apps/${app}/rotate-secret`));
    const { clientSecret: fromCli } = await server.app.applications.rotateSecret(app, 'cli:root');
    const refused = await send(stale);
    assert.equal(refused.status, 409, problems(refused.body));
    assert.ok(
      verifyClientSecret(await live(), fromCli),
      'the secret the command line gave is still the live one',
    );
    // Rotating again, from the refusal's own form, works and shows the new live secret.
    const again = await send({ body: refused.body, csrf: confirm.csrf });
    assert.equal(again.status, 200, problems(again.body));
    assert.ok(verifyClientSecret(await live(), formField(again.body, 'client_secret')));
    // A form that names no secret rotates nothing.
    const blind = await consolePost(admin, url(`/admin/apps/${app}/rotate-secret`), confirm.csrf!);
    assert.equal(blind.status, 400);
    assert.ok(verifyClientSecret(await live(), formField(again.body, 'client_secret')), 'nothing rotated');
    await server.app.audit.idle();
    const rotations = (await server.app.auditStore.list({ clientId: app, kinds: ['admin_change'] })).filter(
      (event) => event.record.action === 'secret_rotated',
    );
    assert.equal(
      rotations.length,
      3,
      'one audit event per rotation made: the first send, the CLI, the retry',
    );
  });

  it('creates one application when the create form is sent twice at once, the other send told so', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    const send = () =>
      consolePost(admin, url('/admin/apps/new'), form.csrf!, {
        client_id: formField(form.body, 'client_id'),
        name: 'Double click',
        redirect_uris: 'https://double.example.org/cb',
        client_type: 'confidential',
        grant_types: 'authorization_code',
        pkce_required: 'on',
        access_token_format: 'inherit',
      });
    const answers = await Promise.all([send(), send(), send()]);
    assert.deepEqual(
      answers.map((answer) => answer.status).sort(),
      [201, 409, 409],
      answers.map((answer) => problems(answer.body)).join('\n'),
    );
    const created = (await server.app.applications.list({ search: 'Double click' })).filter(
      (app) => app.name === 'Double click',
    );
    assert.equal(created.length, 1, 'one application');
    const first = answers.find((answer) => answer.status === 201)!;
    assert.ok(verifyClientSecret(created[0]!, formField(first.body, 'client_secret')));
    for (const refused of answers.filter((answer) => answer.status === 409)) {
      assert.ok(!refused.body.includes('name="client_secret"'), 'a refused send shows no secret');
      assert.match(pageText(refused.body), /already created from this form Nothing new was created/);
      assert.ok(
        refused.body.includes(`href="/admin/apps/${created[0]!.clientId}"`),
        'it links to the application',
      );
    }
    // A form without the client_id it was shown with creates nothing.
    const fields = { name: 'No id', redirect_uris: 'https://noid.example.org/cb', client_type: 'public' };
    const blind = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
      ...fields,
      grant_types: 'authorization_code',
      pkce_required: 'on',
      access_token_format: 'inherit',
    });
    assert.equal(blind.status, 400);
    assert.match(pageText(blind.body), /Nothing was created: the form did not carry the client_id/);
    assert.equal((await server.app.applications.list({ search: 'No id' })).length, 0);
    await server.app.audit.idle();
    const events = await server.app.auditStore.list({
      clientId: created[0]!.clientId,
      kinds: ['admin_change'],
    });
    assert.deepEqual(
      events.map((event) => event.record.action),
      ['created'],
    );
  });

  it('says a client_id the form carried that another application holds (or but for case) is taken, giving the form a new one, never asking to omit it', async () => {
    const { clientId: held } = await seedApp(server, {
      name: 'Held elsewhere',
      clientId: 'Held-Elsewhere',
      redirectUris: ['https://held.example.org/cb'],
    });
    for (const carried of [held, held.toLowerCase()]) {
      const form = await consoleGet(admin, url('/admin/apps/new'));
      const answer = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
        client_id: carried,
        name: 'Taken id',
        redirect_uris: 'https://taken.example.org/cb',
        client_type: 'confidential',
        grant_types: 'authorization_code',
        pkce_required: 'on',
        access_token_format: 'inherit',
      });
      assert.equal(answer.status, 409, carried);
      const alerts = focusedAlerts(answer.body);
      assert.equal(alerts.length, 1, problems(answer.body));
      assert.equal(
        pageText(alerts[0]!),
        `Nothing was created: the client_id this form was shown with, "${carried}", is already another application's, or differs from one only in case. The form now carries a new client_id: send it again.`,
      );
      assert.doesNotMatch(pageText(answer.body), /omit it/, carried);
      const next = formField(answer.body, 'client_id');
      assert.notEqual(next.toLowerCase(), held.toLowerCase(), 'a new client_id');
      assert.equal(formField(answer.body, 'name'), 'Taken id', 'the form kept filled in');
    }
    assert.equal((await server.app.applications.list({ search: 'Taken id' })).length, 0);
  });

  it('deactivates only after showing the impact, and activates again', async () => {
    const confirm = await consoleGet(admin, url(`/admin/apps/${clientId}/deactivate`));
    assert.equal(confirm.status, 200);
    assert.match(confirm.body, /can do nothing from its next request/);
    assert.match(confirm.body, /0 live token\(s\) of 0 user\(s\) stop working/);
    assert.equal(
      (await server.app.applications.findByClientId(clientId))!.active,
      true,
      'the preview changed nothing',
    );
    const done = await consolePost(admin, url(`/admin/apps/${clientId}/deactivate`), confirm.csrf!);
    assert.equal(done.status, 303);
    assert.equal((await server.app.applications.findByClientId(clientId))!.active, false);
    const detail = await consoleGet(admin, url(`/admin/apps/${clientId}?done=deactivated`));
    assert.match(detail.body, /The application is deactivated/);
    const again = await consolePost(admin, url(`/admin/apps/${clientId}/activate`), detail.csrf!);
    assert.equal(again.status, 303);
    assert.equal((await server.app.applications.findByClientId(clientId))!.active, true);
  });

  it('answers "try again" (503), not a server error, when the database takes no write at a deactivation', async () => {
    const detail = await consoleGet(admin, url(`/admin/apps/${clientId}`));
    // The database refuses the application's update (SQLite locked, PostgreSQL out of space).
    const refused = await whileWritesRefused(
      server.app.database,
      { table: 'application', event: 'UPDATE' },
      () => consolePost(admin, url(`/admin/apps/${clientId}/deactivate`), detail.csrf!),
    );
    assert.equal(refused.status, 503, refused.body.slice(0, 300));
    assert.match(refused.body, /Try again/i);
    assert.equal((await server.app.applications.findByClientId(clientId))!.active, true, 'nothing written');
  });

  it('says on the application page and the dashboard (W009) that a secret is still the imported PBKDF2 hash, never showing it', async () => {
    const hash = await makeDjangoPbkdf2('plugin-secret-0123456789abcdefghijklmnopqrstuvwxyz', 1000);
    const [, , salt, digest] = hash.split('$') as [string, string, string, string];
    await server.app.applications.create(
      { clientId: 'imported-wiki', name: 'Imported wiki', redirectUris: ['https://wiki.example.org/cb'] },
      'import:plugin-apps',
      { importedSecret: { djangoPbkdf2: hash } },
    );
    const detail = await consoleGet(admin, url('/admin/apps/imported-wiki'));
    assert.equal(detail.status, 200);
    assert.match(
      detail.body,
      /<dt>Client secret<\/dt>\s*<dd><strong>still the PBKDF2 hash imported from the Python plugin<\/strong>\s*\(1000\s+iterations\)/,
    );
    assert.ok(detail.body.includes('href="/admin/apps/imported-wiki/rotate-secret">Rotate it</a>'));
    const dashboard = await consoleGet(admin, url('/admin'));
    assert.match(
      dashboard.body,
      /<strong>W009<\/strong> application &quot;Imported wiki&quot; \(imported-wiki\) still holds a client secret imported from the Python plugin as a PBKDF2 hash \(1000 iterations\)/,
    );
    for (const page of [detail, dashboard]) {
      assert.equal(page.body.includes(salt), false, 'never the salt');
      assert.equal(page.body.includes(digest), false, 'never the digest');
    }

    await server.app.applications.rotateSecret('imported-wiki', 'test');
    const rotated = await consoleGet(admin, url('/admin/apps/imported-wiki'));
    assert.match(rotated.body, /<dt>Client secret<\/dt>\s*<dd>stored as a SHA-256 digest<\/dd>/);
    assert.doesNotMatch((await consoleGet(admin, url('/admin'))).body, /W009/);
  });

  it('shows a whitelisted state the directory no longer has on the edit form, so that saving never drops it unseen', async () => {
    // As after a state deleted in Alliance Auth (W006): the whitelist names a state no directory lists.
    const { clientId: onlyDisbanded } = await seedApp(server, { name: 'Fleet board', groups: ['Directors'] });
    await server.app.database.db
      .insertInto('application_whitelist')
      .values({ client_id: onlyDisbanded, kind: 'state', name: 'Disbanded' })
      .execute();
    const form = await consoleGet(admin, url(`/admin/apps/${onlyDisbanded}/edit`));
    assert.match(
      form.body,
      /name="states"\s+value="Disbanded"\s+checked\s*\/>\s*Disbanded \(no longer in the directory\)/,
      'the stale state is on the form, ticked and named as such',
    );
    // Sent back as shown (only the name changed): refused at the states field, nothing dropped.
    const saved = await consolePost(admin, url(`/admin/apps/${onlyDisbanded}/edit`), form.csrf!, {
      version: formField(form.body, 'version'),
      name: 'Fleet board (renamed)',
      redirect_uris: 'https://rp.example.org/callback',
      grant_types: 'authorization_code',
      pkce_required: 'on',
      access_token_format: 'inherit',
      states: 'Disbanded',
      groups: 'Directors',
    });
    assert.equal(saved.status, 400, problems(saved.body));
    assert.match(
      /<p class="field-error" id="states-error">([^<]+)<\/p>/.exec(saved.body)?.[1] ?? '',
      /unknown state &quot;Disbanded&quot;/,
    );
    assert.match(
      saved.body,
      /name="states"\s+value="Disbanded"\s+checked/,
      'still ticked on the refused form',
    );
    const app = (await server.app.applications.findByClientId(onlyDisbanded))!;
    assert.equal(app.name, 'Fleet board');
    assert.deepEqual(app.states, ['Disbanded']);
  });

  it('answers 404 for an unknown application', async () => {
    const page = await consoleGet(admin, url('/admin/apps/no-such-app'));
    assert.equal(page.status, 404);
  });

  it('refuses a line or paragraph separator or a control character in a name, naming it at the name field', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    for (const [name, named] of [
      ['Wiki\u2028status: ok', 'U+2028, a line separator'],
      ['Wiki\u2029done', 'U+2029, a paragraph separator'],
      ['Wiki \u009b2J', 'U+009B, a control character'],
      ['Wiki\u0085next', 'U+0085, a control character'],
    ] as const) {
      const answer = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
        client_id: formField(form.body, 'client_id'),
        name,
        redirect_uris: 'https://separator.example.org/cb',
        client_type: 'confidential',
        grant_types: 'authorization_code',
        pkce_required: 'on',
        access_token_format: 'inherit',
      });
      assert.equal(answer.status, 400, named);
      const fieldError = /<p class="field-error" id="name-error">([^<]+)<\/p>/.exec(answer.body);
      assert.ok(fieldError, `an error at the name field: ${problems(answer.body)}`);
      assert.ok(fieldError[1]!.includes(`must not contain ${named}`), fieldError[1]);
    }
    const names = (await server.app.applications.list()).map((app) => app.name);
    assert.ok(!names.some((name) => /[\u2028\u2029\u0085\u009b]/.test(name)), 'nothing created');
  });

  it('gives the boxes of names that differ only in punctuation distinct ids, each label bound to its own box', async () => {
    await server.app.directoryAdmin.createGroup('Ops team');
    await server.app.directoryAdmin.createGroup('Ops_team');
    const form = await consoleGet(admin, url('/admin/apps/new'));
    const boxes = new Map<string, string>();
    for (const match of form.body.matchAll(
      /<label class="inline" for="([^"]+)"\s*><input\s+type="checkbox"\s+id="([^"]+)"\s+name="groups"\s+value="([^"]+)"/g,
    )) {
      assert.equal(match[1], match[2], `the label of ${match[3]} is for its own box`);
      boxes.set(match[3]!, match[2]!);
    }
    assert.ok(boxes.has('Ops team') && boxes.has('Ops_team'), [...boxes.keys()].join(', '));
    assert.notEqual(boxes.get('Ops team'), boxes.get('Ops_team'));
    const ids = [...form.body.matchAll(/\sid="([^"]+)"/g)].map((match) => match[1]);
    assert.equal(new Set(ids).size, ids.length, 'every id of the page is unique');
  });

  it('ties the grant-type and PKCE errors to their fields', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    const answer = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
      client_id: formField(form.body, 'client_id'),
      name: 'Mobile',
      redirect_uris: 'https://mobile.example.org/cb',
      client_type: 'public',
      grant_types: 'refresh_token',
      access_token_format: 'inherit',
    });
    assert.equal(answer.status, 400);
    assert.match(
      answer.body,
      /<p class="field-error" id="grant_types-error">refresh_token requires authorization_code/,
    );
    assert.match(
      answer.body,
      /<fieldset\s+aria-invalid="true" aria-describedby="grant_types-error"\s*>\s*<legend>Grant types<\/legend>/,
    );
    assert.match(
      answer.body,
      /<p class="field-error" id="pkce_required-error">public clients must require PKCE/,
    );
    assert.match(
      answer.body,
      /id="pkce_required-on"\s+name="pkce_required"\s+value="on"\s+aria-invalid="true" aria-describedby="pkce_required-error"/,
    );
  });

  it('refuses an unknown client type, grant type or token format at its field, keeping the form filled in', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    const fields = {
      name: 'Chosen',
      redirect_uris: 'https://chosen.example.org/cb',
      client_type: 'confidential',
      grant_types: ['authorization_code'],
      pkce_required: 'on',
      access_token_format: 'inherit',
    };
    const before = (await server.app.applications.list({})).length;
    const cases: Array<[sent: Record<string, string | string[]>, field: string, message: string]> = [
      [{ client_type: 'native' }, 'client_type', '"native" is not valid; use confidential or public'],
      // Sent with a known one, the unknown one is not dropped unseen.
      [
        { grant_types: ['authorization_code', 'password'] },
        'grant_types',
        'unknown grant type "password"; valid: authorization_code, refresh_token, client_credentials',
      ],
      [
        { access_token_format: 'paseto' },
        'access_token_format',
        '"paseto" is not valid; use one of inherit, opaque, jwt',
      ],
    ];
    for (const [sent, field, message] of cases) {
      const answer = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
        client_id: formField(form.body, 'client_id'),
        ...fields,
        ...sent,
      });
      assert.equal(answer.status, 400, `${field}: ${problems(answer.body)}`);
      const fieldError = new RegExp(`<p class="field-error" id="${field}-error">([^<]+)</p>`).exec(
        answer.body,
      );
      assert.ok(fieldError, `an error at the ${field} field: ${problems(answer.body)}`);
      assert.equal(pageText(fieldError[1]!), message);
      assert.ok(answer.body.includes('value="Chosen"'), 'the name typed is kept');
      assert.ok(answer.body.includes('https://chosen.example.org/cb</textarea>'), 'the redirect URI is kept');
      assert.match(answer.body, /value="authorization_code"\s+checked/, 'the known grant type stays ticked');
    }
    assert.equal((await server.app.applications.list({})).length, before, 'nothing created');
    // The edit form the same, saving nothing.
    const edit = await consoleGet(admin, url(`/admin/apps/${clientId}/edit`));
    const stored = await server.app.applications.findByClientId(clientId);
    const edited = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), edit.csrf!, {
      version: formField(edit.body, 'version'),
      ...fields,
      grant_types: ['authorization_code', 'refresh_token', 'implicit'],
      access_token_format: 'paseto',
    });
    assert.equal(edited.status, 400);
    assert.match(
      edited.body,
      /<p class="field-error" id="grant_types-error">unknown grant type &quot;implicit&quot;/,
    );
    assert.match(
      edited.body,
      /<p class="field-error" id="access_token_format-error">&quot;paseto&quot; is not valid/,
    );
    assert.deepEqual(await server.app.applications.findByClientId(clientId), stored, 'nothing saved');
  });

  it('focuses the first field at fault of a refused form, and only it', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    assert.deepEqual(autofocusedIds(form.body), [], 'a fresh form focuses nothing');
    const fields = {
      name: 'Focus',
      redirect_uris: 'https://focus.example.org/cb',
      client_type: 'confidential',
      grant_types: 'authorization_code',
      pkce_required: 'on',
      access_token_format: 'inherit',
    };
    for (const [sent, field, focused] of [
      [
        { backchannel_logout_uri: 'http://169.254.169.254/x' },
        'backchannel_logout_uri',
        'backchannel_logout_uri',
      ],
      // Two fields at fault: the first in the form takes the focus, both are marked.
      [
        { redirect_uris: 'not a uri', backchannel_logout_uri: 'http://169.254.169.254/x' },
        'redirect_uris',
        'redirect_uris',
      ],
      // A fieldset takes no focus: its first box does.
      [{ grant_types: 'refresh_token' }, 'grant_types', 'grant_types-authorization_5f_code'],
    ] as const) {
      const answer = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
        client_id: formField(form.body, 'client_id'),
        ...fields,
        ...sent,
      });
      assert.equal(answer.status, 400, `${field}: ${problems(answer.body)}`);
      assert.match(
        answer.body,
        new RegExp(`<p class="field-error" id="${field}-error">`),
        problems(answer.body),
      );
      assert.deepEqual(autofocusedIds(answer.body), [focused], field);
    }
    const both = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
      client_id: formField(form.body, 'client_id'),
      ...fields,
      redirect_uris: 'not a uri',
      backchannel_logout_uri: 'http://169.254.169.254/x',
    });
    assert.match(
      both.body,
      /id="backchannel_logout_uri"[^>]*aria-invalid="true"/,
      'the second is still marked',
    );
    const edit = await consoleGet(admin, url(`/admin/apps/${clientId}/edit`));
    const edited = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), edit.csrf!, {
      version: formField(edit.body, 'version'),
      ...fields,
      name: '',
    });
    assert.equal(edited.status, 400);
    assert.deepEqual(autofocusedIds(edited.body), ['name']);
    assert.match(edited.body, /id="name"[^>]*aria-invalid="true" aria-describedby="name-error"/);
  });

  it('focuses the alert of a refusal no field is at fault for (changed meanwhile, not possible)', async () => {
    const { clientId: raced } = await seedApp(server, {
      name: 'Raced',
      redirectUris: ['https://raced.example.org/cb'],
    });
    const edit = await consoleGet(admin, url(`/admin/apps/${raced}/edit`));
    assert.deepEqual(focusedAlerts(edit.body), [], 'a fresh form focuses nothing');
    // Another write wins the race: the database skips this one's row, as when updated_at moved on.
    const db = server.app.database.db;
    if (server.app.database.kind === 'sqlite')
      await sql`CREATE TRIGGER skip_test_update BEFORE UPDATE ON application BEGIN SELECT RAISE(IGNORE); END`.execute(
        db,
      );
    else {
      await sql`CREATE FUNCTION skip_test_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`.execute(
        db,
      );
      await sql`CREATE TRIGGER skip_test_update BEFORE UPDATE ON application FOR EACH ROW EXECUTE FUNCTION skip_test_update()`.execute(
        db,
      );
    }
    let answer;
    try {
      answer = await consolePost(admin, url(`/admin/apps/${raced}/edit`), edit.csrf!, {
        version: formField(edit.body, 'version'),
        name: 'Raced (renamed)',
        redirect_uris: 'https://raced.example.org/cb',
        grant_types: 'authorization_code',
        pkce_required: 'on',
        access_token_format: 'inherit',
      });
    } finally {
      await sql`DROP TRIGGER skip_test_update${sql.raw(server.app.database.kind === 'sqlite' ? '' : ' ON application')}`.execute(
        db,
      );
      if (server.app.database.kind !== 'sqlite') await sql`DROP FUNCTION skip_test_update()`.execute(db);
    }
    assert.equal(answer.status, 409, problems(answer.body));
    assert.deepEqual(autofocusedIds(answer.body), [], 'no field is at fault');
    const [alert, ...others] = focusedAlerts(answer.body);
    assert.match(alert ?? '', /Nothing was saved: this application was changed since this form was opened/);
    assert.deepEqual(others, []);
    assert.match(answer.body, /<p class="alert" role="alert"\s+id="form-error" tabindex="-1" autofocus>/);

    // With a field at fault, the field takes the focus and the alert does not.
    const fieldAtFault = await consolePost(admin, url(`/admin/apps/${raced}/edit`), edit.csrf!, {
      version: formField(edit.body, 'version'),
      name: '',
      redirect_uris: 'https://raced.example.org/cb',
      grant_types: 'authorization_code',
      pkce_required: 'on',
      access_token_format: 'inherit',
    });
    assert.equal(fieldAtFault.status, 400);
    assert.deepEqual(autofocusedIds(fieldAtFault.body), ['name']);
    assert.deepEqual(focusedAlerts(fieldAtFault.body), []);

    // A refusal on a page of its own: a public client has no secret to rotate.
    const { clientId: publicApp } = await seedApp(server, { name: 'Public', clientType: 'public' });
    const rotate = await consoleGet(admin, url(`/admin/apps/${publicApp}/rotate-secret`));
    assert.match(focusedAlerts(rotate.body)[0] ?? '', /public client and has no secret/);
    const rotated = await consolePost(admin, url(`/admin/apps/${publicApp}/rotate-secret`), rotate.csrf!, {});
    assert.equal(rotated.status, 400);
    assert.match(focusedAlerts(rotated.body)[0] ?? '', /public client and has no secret/);
  });

  it('refuses an http logo URL at its field, naming https; an http logo stored before is kept but not shown', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    const fields = {
      name: 'Logo',
      redirect_uris: 'https://logo.example.org/cb',
      client_type: 'confidential',
      grant_types: 'authorization_code',
      pkce_required: 'on',
      access_token_format: 'inherit',
    };
    const refused = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
      client_id: formField(form.body, 'client_id'),
      ...fields,
      logo_url: 'http://cdn.example.org/logo.png',
    });
    assert.equal(refused.status, 400, problems(refused.body));
    assert.match(
      /<p class="field-error" id="logo_url-error">([^<]+)<\/p>/.exec(refused.body)?.[1] ?? '',
      /&quot;http:\/\/cdn\.example\.org\/logo\.png&quot; must use https/,
    );
    assert.deepEqual(autofocusedIds(refused.body), ['logo_url']);

    // Stored by an earlier version, which took http: not rendered, said on the application's page.
    const { clientId: old } = await seedApp(server, {
      name: 'Old logo',
      logoUrl: 'https://cdn.example.org/logo.png',
    });
    await server.app.database.db
      .updateTable('application')
      .set({ logo_url: 'http://cdn.example.org/logo.png' })
      .where('client_id', '=', old)
      .execute();
    const detail = await consoleGet(admin, url(`/admin/apps/${old}`));
    assert.equal(detail.status, 200);
    assert.equal(detail.body.includes('<img class="logo"'), false, 'no broken image');
    assert.match(
      pageText(detail.body),
      /Logo URL http:\/\/cdn\.example\.org\/logo\.png: not shown, as the pages load images over https only/,
    );
    // An edit of something else keeps it, not refused for it.
    const edit = await consoleGet(admin, url(`/admin/apps/${old}/edit`));
    const saved = await consolePost(admin, url(`/admin/apps/${old}/edit`), edit.csrf!, {
      version: formField(edit.body, 'version'),
      ...fields,
      name: 'Old logo (renamed)',
      logo_url: 'http://cdn.example.org/logo.png',
      redirect_uris: 'https://rp.example.org/callback',
    });
    assert.equal(saved.status, 303, problems(saved.body));
    const app = (await server.app.applications.findByClientId(old))!;
    assert.equal(app.name, 'Old logo (renamed)');
    assert.equal(app.logoUrl, 'http://cdn.example.org/logo.png');
  });

  it('keeps a stored name the form shows with U+FFFD (a control character, a NUL) when the field is left as it is', async () => {
    // Stored by an older aa-oidc or another tool: the field cannot hold the character, and shows U+FFFD.
    const names = ['Wiki\u001b[2J', ...(testDatabaseKind === 'sqlite' ? ['Wi\u0000ki'] : [])];
    for (const stored of names) {
      const { clientId: old } = await seedApp(server, { name: 'Control' });
      await server.app.database.db
        .updateTable('application')
        .set({ name: stored })
        .where('client_id', '=', old)
        .execute();
      const edit = await consoleGet(admin, url(`/admin/apps/${old}/edit`));
      assert.equal(edit.status, 200);
      const shown = formField(edit.body, 'name');
      assert.equal(
        shown,
        stored.replace('\u001b', '\ufffd').replace('\u0000', '\ufffd'),
        'the field shows U+FFFD',
      );
      assert.match(pageText(edit.body), /left as it is, the name is kept as stored/);
      const saved = await consolePost(admin, url(`/admin/apps/${old}/edit`), edit.csrf!, {
        version: formField(edit.body, 'version'),
        name: shown,
        redirect_uris: 'https://rp.example.org/edited',
        grant_types: 'authorization_code',
        pkce_required: 'on',
        access_token_format: 'inherit',
      });
      assert.equal(saved.status, 303, problems(saved.body));
      const app = (await server.app.applications.findByClientId(old))!;
      assert.deepEqual(app.redirectUris, ['https://rp.example.org/edited'], 'the edit is saved');
      assert.equal(app.name, stored, 'the name is kept, not turned into U+FFFD');

      // Typed over, the name is the one typed.
      const again = await consoleGet(admin, url(`/admin/apps/${old}/edit`));
      const renamed = await consolePost(admin, url(`/admin/apps/${old}/edit`), again.csrf!, {
        version: formField(again.body, 'version'),
        name: 'Wiki',
        redirect_uris: 'https://rp.example.org/edited',
        grant_types: 'authorization_code',
        pkce_required: 'on',
        access_token_format: 'inherit',
      });
      assert.equal(renamed.status, 303, problems(renamed.body));
      assert.equal((await server.app.applications.findByClientId(old))!.name, 'Wiki');
    }
  });

  it('keeps a redirect URI with a * in its host stored before such were refused on an edit that narrows the whitelists, and refuses a new one', async () => {
    await server.app.directoryAdmin.createGroup('Wiki Editors');
    const { clientId: old } = await seedApp(server, {
      name: 'Old star',
      groups: ['Directors', 'Wiki Editors'],
    });
    // Written as an earlier version took it: the * stored as a literal host.
    await server.app.database.db
      .updateTable('application')
      .set({
        redirect_uris: JSON.stringify(['https://rp.example.org/cb', 'https://*.example.org/cb']),
        post_logout_redirect_uris: JSON.stringify(['https://*.example.org/']),
      })
      .where('client_id', '=', old)
      .execute();
    const fields = {
      name: 'Old star',
      redirect_uris: 'https://rp.example.org/cb\r\nhttps://*.example.org/cb',
      post_logout_redirect_uris: 'https://*.example.org/',
      grant_types: 'authorization_code',
      groups: 'Directors',
      pkce_required: 'on',
      access_token_format: 'inherit',
    };
    const edit = await consoleGet(admin, url(`/admin/apps/${old}/edit`));
    assert.ok(edit.body.includes('https://*.example.org/cb'), 'the form shows the stored URI');
    const narrowed = await consolePost(admin, url(`/admin/apps/${old}/edit`), edit.csrf!, {
      ...fields,
      version: formField(edit.body, 'version'),
    });
    assert.equal(narrowed.status, 303, problems(narrowed.body));
    const app = (await server.app.applications.findByClientId(old))!;
    assert.deepEqual(app.groups, ['Directors']);
    assert.deepEqual(app.redirectUris, ['https://rp.example.org/cb', 'https://*.example.org/cb']);
    assert.deepEqual(app.postLogoutRedirectUris, ['https://*.example.org/']);

    const again = await consoleGet(admin, url(`/admin/apps/${old}/edit`));
    const added = await consolePost(admin, url(`/admin/apps/${old}/edit`), again.csrf!, {
      version: formField(again.body, 'version'),
      ...fields,
      redirect_uris: `${fields.redirect_uris}\r\nhttps://*.other.example.org/cb`,
    });
    assert.equal(added.status, 400, problems(added.body));
    assert.match(
      /<p class="field-error" id="redirect_uris-error">([^<]+)<\/p>/.exec(added.body)?.[1] ?? '',
      /&quot;https:\/\/\*\.other\.example\.org\/cb&quot; has a \* in its host/,
    );
    assert.deepEqual(
      (await server.app.applications.findByClientId(old))!.redirectUris,
      ['https://rp.example.org/cb', 'https://*.example.org/cb'],
      'nothing written',
    );
  });

  it('answers 404, changing nothing, when the application is deleted between its page and the form sent', async () => {
    const sends: Array<[string, Record<string, string | string[]>]> = [
      [
        '/edit',
        {
          name: 'Renamed',
          redirect_uris: 'https://gone.example.org/cb',
          grant_types: 'authorization_code',
          pkce_required: 'on',
          access_token_format: 'inherit',
        },
      ],
      ['/rotate-secret', {}],
      ['/deactivate', {}],
      ['/activate', {}],
    ];
    const deleteApp = (id: string) =>
      server.app.database.db.deleteFrom('application').where('client_id', '=', id).execute();
    for (const [action, fields] of sends) {
      // Deleted (by the command line, another administrator) after the page was shown.
      const early = (await seedApp(server, { name: 'Gone', redirectUris: ['https://gone.example.org/cb'] }))
        .clientId;
      const page = await consoleGet(
        admin,
        url(`/admin/apps/${early}${action === '/activate' ? '' : action}`),
      );
      assert.equal(page.status, 200, action);
      await deleteApp(early);
      const answer = await consolePost(admin, url(`/admin/apps/${early}${action}`), page.csrf!, fields);
      assert.equal(answer.status, 404, `${action}: ${answer.body.slice(0, 300)}`);
      assert.match(pageText(answer.body), /No such application .* it was deleted/, action);

      // Deleted while the form is handled: after the application was looked up, before the write.
      const late = (await seedApp(server, { name: 'Gone', redirectUris: ['https://gone.example.org/cb'] }))
        .clientId;
      const form = await consoleGet(admin, url(`/admin/apps/${late}${action === '/activate' ? '' : action}`));
      const applications = server.app.applications;
      const find = applications.findByClientId.bind(applications);
      applications.findByClientId = async (id) => {
        const found = await find(id);
        if (id === late) await deleteApp(late);
        return found;
      };
      try {
        const raced = await consolePost(admin, url(`/admin/apps/${late}${action}`), form.csrf!, {
          ...fields,
          ...(action === '/rotate-secret'
            ? { secret_fingerprint: formField(form.body, 'secret_fingerprint') }
            : {}),
          ...(action === '/edit' ? { version: formField(form.body, 'version') } : {}),
        });
        assert.equal(raced.status, 404, `${action}: ${raced.body.slice(0, 300)}`);
        assert.match(pageText(raced.body), /No such application .* Nothing was changed/, action);
      } finally {
        applications.findByClientId = find;
      }
      assert.equal(await server.app.applications.findByClientId(late), undefined);
    }
  });
});

describe(`a test back-channel logout once the logout service closed (${testDatabaseKind})`, () => {
  let server: TestServer;
  let receiver: RpReceiver;
  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    receiver = await startRpReceiver([200]);
  });
  after(async () => {
    await receiver.close();
    await server.close();
  });

  it('answers 503 "shutting down, nothing was sent", never a 500', async () => {
    const user = await seedUser(server, { superuser: true });
    const admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
    const { clientId } = await seedApp(server, { backchannelLogoutUri: receiver.url() });
    const csrf = (await consoleGet(admin, `${server.origin}/admin/apps`)).csrf!;
    // As in a shutdown: the logout service closes before the database and the rest of the services.
    await server.app.logout.close();
    const answer = await consolePost(admin, `${server.origin}/admin/apps/test-logout`, csrf, {
      client_id: clientId,
    });
    assert.equal(answer.status, 503, answer.body.slice(0, 300));
    assert.match(
      pageText(answer.body),
      /Nothing was sent: the server is shutting down\. Try again in a few seconds\./,
    );
    assert.equal(receiver.requests.length, 0, 'the application got no logout token');
  });
});

describe(`a test back-channel logout refused before any request (${testDatabaseKind})`, () => {
  let server: TestServer;
  // The names the SSRF gate resolves, answered here only (never by real DNS); each test sets its own.
  const names: Record<string, Answer> = {};
  const resolver = tableResolver(names);
  const connections = guardedConnector();
  before(async () => {
    server = await startServer({}, { logout: { resolver, bclConnector: connections.connector } });
  });
  after(async () => {
    await server.close();
  });

  it('answers 409 "Nothing was sent" when the SSRF gate refuses the address the host resolves to now, or the host resolves to none', async () => {
    const user = await seedUser(server, { superuser: true });
    const admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
    // Public when the applications were written (the write runs the gate too).
    names['rp.example.test'] = [v4(PUBLIC_V4)];
    names['gone.example.test'] = [v4(PUBLIC_V4)];
    const moved = await seedApp(server, { backchannelLogoutUri: 'https://rp.example.test/bcl' });
    const gone = await seedApp(server, { backchannelLogoutUri: 'https://gone.example.test/bcl' });
    // Since then, one host resolves to a private address (DNS rebinding), the other to nothing.
    names['rp.example.test'] = [v4('10.0.0.1')];
    delete names['gone.example.test'];
    const csrf = (await consoleGet(admin, `${server.origin}/admin/apps`)).csrf!;
    for (const [clientIds, outcomes] of [
      [[moved.clientId], ['unsafe_target_ip']],
      [[gone.clientId], ['dns_resolve_failed']],
      [
        [moved.clientId, gone.clientId],
        ['unsafe_target_ip', 'dns_resolve_failed'],
      ],
    ] as const) {
      const answer = await consolePost(admin, `${server.origin}/admin/apps/test-logout`, csrf, {
        client_id: [...clientIds],
      });
      const text = pageText(answer.body);
      assert.equal(answer.status, 409, `${clientIds.join(', ')}: ${text.slice(0, 500)}`);
      assert.match(text, /Nothing was sent: none of the ticked applications can receive a test logout\./);
      assert.doesNotMatch(text, /Each logout token sent/);
      for (const outcome of outcomes) assert.match(text, new RegExp(outcome));
    }
    assert.match(
      pageText(
        (
          await consolePost(admin, `${server.origin}/admin/apps/test-logout`, csrf, {
            client_id: moved.clientId,
          })
        ).body,
      ),
      /10\.0\.0\.1/,
      'the table says why: the address the host resolves to',
    );
    assert.deepEqual(connections.attempts, [], 'no connection was attempted');
  });
});

/** A box of a form: its field and its value as a browser sends them, whether it is ticked, its label. */
interface Box {
  field: string;
  value: string;
  checked: boolean;
  label: string;
}

const decoded = (text: string) =>
  text
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&#39;', "'")
    .replaceAll('&amp;', '&');

/**
 * The checkboxes of a page as a browser reads and sends them: the parser reads a CR or CR LF as LF,
 * and a form sent turns each LF into CR LF (the page already holds U+FFFD for a control character).
 */
function boxes(body: string): Box[] {
  return [
    ...body.matchAll(
      /<input\s+type="checkbox"\s+id="[^"]*"\s+name="([^"]+)"\s+value="([^"]*)"\s*(checked)?[^>]*\/>([^<]*)<\/label/g,
    ),
  ].map((match) => ({
    field: match[1]!,
    value: decoded(match[2]!).replace(/\r\n?/g, '\n').replace(/\n/g, '\r\n'),
    checked: match[3] !== undefined,
    label: decoded(match[4]!).replace(/\s+/g, ' ').trim(),
  }));
}

/** The boxes of the state and group pickers. */
const whitelistBoxes = (body: string) =>
  boxes(body).filter((box) => /^(?:states|groups)(?:_escaped)?$/.test(box.field));

/** The fields the ticked boxes send (`ticked`, or those the page ticks), by field. */
function sentBoxes(all: readonly Box[], ticked = (box: Box) => box.checked): Record<string, string[]> {
  const fields: Record<string, string[]> = {};
  for (const box of all.filter(ticked)) (fields[box.field] ??= []).push(box.value);
  return fields;
}

describe(`whitelisted names a page cannot carry back as they are (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  // From Alliance Auth, or stored before such names were refused: a control character (shown as
  // U+FFFD, as the name beside it is spelt), a C1 control, a line break, a backslash.
  const BELL = 'Fleet\u0007';
  const REPLACED = 'Fleet\ufffd';
  const TWO_LINES = 'Two\nlines';
  const ESCAPE_LOOKALIKE = 'Back\\u0007slash\u0001';
  const NEXT_LINE = 'Alpha\u0085';

  before(async () => {
    server = await startServer();
    await storeNamesAsIs(server, {
      groups: [BELL, REPLACED, TWO_LINES, ESCAPE_LOOKALIKE],
      states: [NEXT_LINE],
    });
    const user = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, user.username, { returnTo: '/admin' });
  });
  after(async () => {
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;
  const settings = {
    redirect_uris: 'https://rp.example.org/callback',
    grant_types: 'authorization_code',
    pkce_required: 'on',
    access_token_format: 'inherit',
  };

  it('keeps every whitelisted name, unaltered, when the edit form is saved as shown', async () => {
    for (const whitelist of [
      { states: [], groups: [BELL] },
      { states: [NEXT_LINE], groups: [TWO_LINES, ESCAPE_LOOKALIKE] },
    ]) {
      const { clientId } = await seedApp(server, { name: 'Board', ...whitelist });
      const edit = await consoleGet(admin, url(`/admin/apps/${clientId}/edit`));
      assert.equal(edit.status, 200);
      const saved = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), edit.csrf!, {
        version: formField(edit.body, 'version'),
        name: 'Board (renamed)',
        ...settings,
        ...sentBoxes(whitelistBoxes(edit.body)),
      });
      assert.equal(saved.status, 303, problems(saved.body));
      const app = (await server.app.applications.findByClientId(clientId))!;
      assert.equal(app.name, 'Board (renamed)', 'the edit is saved');
      assert.deepEqual(app.states, whitelist.states, 'no state dropped or turned into another');
      assert.deepEqual(app.groups, [...whitelist.groups].sort(), 'no group dropped or turned into another');
    }
  });

  it('whitelists such a name on a new application, and keeps it ticked on a form refused for another field', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    const shown = whitelistBoxes(form.body);
    // The two groups both show as `Fleet\uFFFD`: the one the page cannot show says so.
    const bell = shown.filter((box) => box.label.startsWith(REPLACED) && box.label.includes('cannot show'));
    assert.equal(bell.length, 1, shown.map((box) => box.label).join(' | '));
    const refused = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
      client_id: formField(form.body, 'client_id'),
      name: 'Fleet board',
      client_type: 'confidential',
      ...settings,
      redirect_uris: 'not a uri',
      ...sentBoxes(shown, (box) => box === bell[0]),
    });
    assert.equal(refused.status, 400, problems(refused.body));
    const kept = whitelistBoxes(refused.body).filter((box) => box.checked);
    assert.deepEqual(
      kept.map((box) => box.label),
      [bell[0]!.label],
      'the refused form keeps the box ticked, and no other',
    );
    const created = await consolePost(admin, url('/admin/apps/new'), formField(refused.body, 'csrf_token'), {
      client_id: formField(refused.body, 'client_id'),
      name: 'Fleet board',
      client_type: 'confidential',
      ...settings,
      ...sentBoxes(kept),
    });
    assert.equal(created.status, 201, problems(created.body));
    const app = (await server.app.applications.list()).find((one) => one.name === 'Fleet board')!;
    assert.deepEqual(app.groups, [BELL]);
    assert.deepEqual(app.states, []);
  });

  it('keeps such a name ticked on an edit form refused for another field, and saves it sent again', async () => {
    const { clientId } = await seedApp(server, { name: 'Lines', states: [NEXT_LINE], groups: [TWO_LINES] });
    const edit = await consoleGet(admin, url(`/admin/apps/${clientId}/edit`));
    const ticked = sentBoxes(whitelistBoxes(edit.body));
    const refused = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), edit.csrf!, {
      version: formField(edit.body, 'version'),
      name: 'Lines',
      ...settings,
      redirect_uris: 'not a uri',
      ...ticked,
    });
    assert.equal(refused.status, 400, problems(refused.body));
    const again = sentBoxes(whitelistBoxes(refused.body));
    assert.deepEqual(again, ticked, 'the refused form ticks the same boxes');
    const saved = await consolePost(admin, url(`/admin/apps/${clientId}/edit`), edit.csrf!, {
      version: formField(edit.body, 'version'),
      name: 'Lines',
      ...settings,
      redirect_uris: 'https://rp.example.org/lines',
      ...again,
    });
    assert.equal(saved.status, 303, problems(saved.body));
    const app = (await server.app.applications.findByClientId(clientId))!;
    assert.deepEqual(app.redirectUris, ['https://rp.example.org/lines']);
    assert.deepEqual(app.states, [NEXT_LINE]);
    assert.deepEqual(app.groups, [TWO_LINES]);
  });

  it('takes a name posted as it is in the plain field as it is, never as an escape', async () => {
    const form = await consoleGet(admin, url('/admin/apps/new'));
    const answer = await consolePost(admin, url('/admin/apps/new'), form.csrf!, {
      client_id: formField(form.body, 'client_id'),
      name: 'Typed',
      client_type: 'confidential',
      ...settings,
      groups: 'Fleet\\u0007',
    });
    assert.equal(answer.status, 400, 'no group is spelt with a backslash');
    assert.match(
      /<p class="field-error" id="groups-error">([^<]+)<\/p>/.exec(answer.body)?.[1] ?? '',
      /unknown group &quot;Fleet\\\\u0007&quot;/,
    );
  });
});
