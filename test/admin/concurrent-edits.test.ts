import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/events.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { consoleGet, consolePost, consoleSignIn, pageText } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { Browser, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { logoutJobs } from '../logout/jobs.ts';
import { holdTokensAt, type RpReceiver, seedReceiverApp } from '../logout/rp-receiver.ts';

/**
 * Two operators at the same thing at once (two console sessions, or the console and the CLI), driven
 * in a fixed order: form A opened, form B opened, B sent, A sent. A form opened before another change
 * saves nothing (409, showing the application as it is now and what the form would have changed);
 * the changes that are intents of their own (a user's state, a group added) each apply as confirmed.
 */
describe(`concurrent changes through the admin console and the CLI (${testDatabaseKind})`, () => {
  let server: TestServer;
  let first: Browser;
  let second: Browser;
  let firstName: string;
  let secondName: string;
  const receivers: RpReceiver[] = [];
  const events: AuditRecord[] = [];

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    server.app.audit.subscribe({ name: 'test', receive: (record) => void events.push(record) });
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createState('Blue', 50, true);
    await server.app.directoryAdmin.createGroup('Directors');
    const one = await seedUser(server, { superuser: true });
    const two = await seedUser(server, { superuser: true });
    firstName = one.username;
    secondName = two.username;
    first = await consoleSignIn(server, one.username, { returnTo: '/admin' });
    second = await consoleSignIn(server, two.username, { returnTo: '/admin' });
  });
  after(async () => {
    for (const receiver of receivers) await receiver.close();
    await server.close();
  });
  afterEach(() => {
    events.length = 0;
  });

  const url = (path: string) => `${server.origin}${path}`;
  const env = () => testEnv(server.database, { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' });
  const stored = async (clientId: string) => (await server.app.applications.findByClientId(clientId))!;
  /** The application audit events published so far, as `[actor, action, changed fields]`. */
  const adminChanges = async (entity: string, id: string | number) => {
    await server.app.audit.idle();
    return events.flatMap((event) =>
      event.kind === 'admin_change' && event.entity === entity && event.entity_id === id ? [event] : [],
    );
  };
  const applicationEvents = async (clientId: string) =>
    (await adminChanges('application', clientId))
      .filter((event) => event.action !== 'created')
      .map((event) => [event.actor, event.action, event.changed_fields]);

  /** An app whitelisting Member and Blue, with a Blue user signed in there (holding tokens). */
  async function blueSignedIn(name: string) {
    const app = await seedReceiverApp(server, receivers, { name, states: ['Member', 'Blue'] });
    const blue = await seedUser(server, { state: 'Blue' });
    await holdTokensAt(server, new Browser(), app, blue.username);
    return { app, blue };
  }

  it('refuses a whitelist edit from a form opened before another operator narrowed it: the revoke stands, its logout queued once', async () => {
    const { app, blue } = await blueSignedIn('Raced whitelist');
    const edit = url(`/admin/apps/${app.clientId}/edit`);
    const formA = await consoleGet(first, edit);
    const formB = await consoleGet(second, edit);
    assert.deepEqual(sentFields(formA.body).getAll('states').sort(), ['Blue', 'Member']);

    // B takes Blue away: Blue's user is signed out of it.
    const sentB = sentFields(formB.body);
    sentB.delete('states');
    sentB.append('states', 'Member');
    const savedB = await consolePost(second, edit, formB.csrf!, fieldsOf(sentB));
    assert.equal(savedB.status, 303, pageText(savedB.body));
    assert.equal(savedB.location, `/admin/apps/${app.clientId}?done=updated_access_ended`);

    // A, on the page opened before, changes only the name: the form still ticks Blue.
    const sentA = sentFields(formA.body);
    sentA.set('name', 'Raced whitelist (renamed)');
    const savedA = await consolePost(first, edit, formA.csrf!, fieldsOf(sentA));
    assert.equal(savedA.status, 409, pageText(savedA.body));
    const text = pageText(savedA.body);
    assert.match(text, /Nothing was saved: this application was changed since this form was opened/);
    assert.match(text, /States allowed now: Member; this form: Blue, Member/);
    assert.match(text, /Name now: Raced whitelist; this form: Raced whitelist \(renamed\)/);
    assert.deepEqual((await stored(app.clientId)).states, ['Member'], 'Blue stays out');
    assert.equal((await stored(app.clientId)).name, 'Raced whitelist', 'nothing of A written');
    // The form offered again is the application as it is now, Blue not ticked.
    const again = sentFields(savedA.body);
    assert.deepEqual(again.getAll('states'), ['Member']);
    assert.equal(again.get('name'), 'Raced whitelist');
    assert.equal(again.get('version'), String((await stored(app.clientId)).updatedAt));

    // Sent again from that form with A's change, it saves, and Blue stays out.
    again.set('name', 'Raced whitelist (renamed)');
    const retried = await consolePost(first, edit, formField(savedA.body, 'csrf_token'), fieldsOf(again));
    assert.equal(retried.status, 303, pageText(retried.body));
    assert.equal(retried.location, `/admin/apps/${app.clientId}?done=updated`);
    const now = await stored(app.clientId);
    assert.deepEqual([now.name, now.states], ['Raced whitelist (renamed)', ['Member']]);
    // The same form sent twice: the second send is told that there is nothing left to save.
    const twice = await consolePost(first, edit, formField(savedA.body, 'csrf_token'), fieldsOf(again));
    assert.equal(twice.status, 409, pageText(twice.body));
    assert.match(
      pageText(twice.body),
      /It already holds every value this form sent: there is nothing left to save/,
    );
    assert.deepEqual(await stored(app.clientId), now, 'nothing written');

    const jobs = await logoutJobs(server.app.database, { clientId: app.clientId });
    assert.deepEqual(
      jobs.map((job) => [job.user_id, job.trigger]),
      [[blue.id, 'whitelist_changed']],
      'one back-channel logout, for the narrowing',
    );
    assert.deepEqual(await applicationEvents(app.clientId), [
      [`admin:${secondName}`, 'updated', ['states']],
      [`admin:${firstName}`, 'updated', ['name']],
    ]);
  });

  it('refuses a form opened before the CLI changed the application; the CLI, giving no version, changes only what it names', async () => {
    const { app } = await blueSignedIn('Raced by the CLI');
    const edit = url(`/admin/apps/${app.clientId}/edit`);
    const form = await consoleGet(first, edit);
    // The CLI names the fields it changes: a name the console saved meanwhile is not undone.
    const renamed = sentFields(form.body);
    renamed.set('name', 'Renamed in the console');
    const saved = await consolePost(first, edit, form.csrf!, fieldsOf(renamed));
    assert.equal(saved.status, 303, pageText(saved.body));
    const removed = await cli(['app', 'update', app.clientId, '--remove-state', 'Blue'], env());
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(
      [(await stored(app.clientId)).name, (await stored(app.clientId)).states],
      ['Renamed in the console', ['Member']],
    );

    // The page opened before the CLI's change: refused, Blue not put back.
    const stale = sentFields(form.body);
    stale.set('redirect_uris', 'https://rp.example.org/other');
    const refused = await consolePost(first, edit, form.csrf!, fieldsOf(stale));
    assert.equal(refused.status, 409, pageText(refused.body));
    assert.match(pageText(refused.body), /States allowed now: Member; this form: Blue, Member/);
    const now = await stored(app.clientId);
    assert.deepEqual(now.states, ['Member']);
    assert.deepEqual(now.redirectUris, ['https://rp.example.org/callback']);
  });

  it('refuses an edit from a form opened before the application was deactivated, a secret rotated, or a whitelisted state renamed', async () => {
    const { app } = await blueSignedIn('Raced lifecycle');
    await server.app.directoryAdmin.createState('Red', 40, true);
    await server.app.applications.update(app.clientId, { states: ['Member', 'Red'] }, 'test');
    const edit = url(`/admin/apps/${app.clientId}/edit`);
    const changes: Array<[string, () => Promise<void>]> = [
      [
        'deactivated',
        async () => {
          const page = await consoleGet(second, url(`/admin/apps/${app.clientId}/deactivate`));
          const done = await consolePost(second, url(`/admin/apps/${app.clientId}/deactivate`), page.csrf!);
          assert.equal(done.status, 303, pageText(done.body));
        },
      ],
      [
        'secret rotated',
        async () => {
          await server.app.applications.rotateSecret(app.clientId, 'cli');
        },
      ],
      [
        'state renamed',
        async () => {
          await server.app.directoryAdmin.renameState('Red', 'Crimson');
        },
      ],
    ];
    for (const [change, run] of changes) {
      const form = await consoleGet(first, edit);
      await run();
      const before = await stored(app.clientId);
      const sent = sentFields(form.body);
      sent.set('name', `Raced lifecycle (${change})`);
      const refused = await consolePost(first, edit, form.csrf!, fieldsOf(sent));
      assert.equal(refused.status, 409, `${change}: ${pageText(refused.body)}`);
      assert.deepEqual(await stored(app.clientId), before, `${change}: nothing written`);
    }
    const now = await stored(app.clientId);
    assert.equal(now.active, false, 'still deactivated');
    assert.deepEqual(now.states, ['Crimson', 'Member'], 'the rename is not undone');
  });

  it('refuses an edit form that carries no version (or a malformed one), showing the application as it is', async () => {
    const { app } = await blueSignedIn('No version');
    const edit = url(`/admin/apps/${app.clientId}/edit`);
    for (const version of [undefined, '', 'soon', '12.5', '-1']) {
      const form = await consoleGet(first, edit);
      const sent = sentFields(form.body);
      if (version === undefined) sent.delete('version');
      else sent.set('version', version);
      sent.set('name', 'Renamed');
      const refused = await consolePost(first, edit, form.csrf!, fieldsOf(sent));
      assert.equal(refused.status, 400, `${String(version)}: ${pageText(refused.body)}`);
      assert.match(pageText(refused.body), /Nothing was saved: the form did not say which version/);
      assert.equal(sentFields(refused.body).get('version'), String((await stored(app.clientId)).updatedAt));
    }
    assert.equal((await stored(app.clientId)).name, 'No version');
  });

  it("applies two operators' changes of one user's state and groups each as confirmed, each audited as what it changed", async () => {
    await server.app.directoryAdmin.createState('Green', 10, true);
    const user = await seedUser(server, { state: 'Member' });
    const path = (action: string) => url(`/admin/users/${user.id}/${action}`);
    // A opens the move to Green; B opens the removal of the state and the addition of a group.
    const moveA = await consoleGet(first, `${path('state')}?state=Green`);
    const moveB = await consoleGet(second, `${path('state')}?state=`);
    const addB = await consoleGet(second, `${path('add-group')}?group=Directors`);
    assert.equal(moveA.status, 200, pageText(moveA.body));
    assert.equal(
      (await consolePost(second, path('state'), moveB.csrf!, { state: '' })).status,
      303,
      'B removes the state',
    );
    assert.equal(
      (await consolePost(second, path('add-group'), addB.csrf!, { group: 'Directors' })).status,
      303,
    );
    assert.equal((await consolePost(first, path('state'), moveA.csrf!, { state: 'Green' })).status, 303);
    const profile = (await server.app.directory.profilesByIds([user.id]))[0]!;
    assert.deepEqual(
      [profile.state?.name, profile.groups.map((group) => group.name)],
      ['Green', ['Directors']],
    );
    assert.deepEqual(
      (await adminChanges('user', user.id))
        .filter((event) => event.action !== 'created')
        .map((event) => [event.actor, event.action, event.details]),
      [
        [`admin:${secondName}`, 'state_changed', { from_state: 'Member', to_state: null }],
        [`admin:${secondName}`, 'group_added', { group: 'Directors' }],
        [`admin:${firstName}`, 'state_changed', { from_state: null, to_state: 'Green' }],
      ],
    );
  });
});

/**
 * The fields a browser sends for the application form of `body` (its action ends in /edit): its
 * inputs with a value (checkboxes only ticked), its textareas and its selects' selected options.
 */
function sentFields(body: string): URLSearchParams {
  const form = /<form method="post" action="[^"]*\/edit"[\s\S]*?<\/form>/.exec(body)?.[0];
  assert.ok(form, 'an edit form on the page');
  const decode = (text: string) =>
    text
      .replaceAll('&lt;', '<')
      .replaceAll('&gt;', '>')
      .replaceAll('&quot;', '"')
      .replaceAll('&#39;', "'")
      .replaceAll('&amp;', '&');
  const attribute = (tag: string, name: string) =>
    new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1] ??
    (new RegExp(`\\s${name}[\\s/>]`).test(tag) ? '' : null);
  const fields = new URLSearchParams();
  for (const [tag] of form.matchAll(/<input\b[^>]*>/g)) {
    const name = attribute(tag, 'name');
    if (name === null) continue;
    const type = attribute(tag, 'type') ?? 'text';
    if (type === 'checkbox' && attribute(tag, 'checked') === null) continue;
    fields.append(decode(name), decode(attribute(tag, 'value') ?? (type === 'checkbox' ? 'on' : '')));
  }
  for (const [, tag, text] of form.matchAll(/<textarea\b([^>]*)>([\s\S]*?)<\/textarea>/g))
    fields.append(decode(attribute(tag!, 'name')!), decode(text!));
  for (const [, tag, options] of form.matchAll(/<select\b([^>]*)>([\s\S]*?)<\/select>/g)) {
    const selected = /<option\b[^>]*value="([^"]*)"[^>]*\sselected/.exec(options!);
    if (selected) fields.append(decode(attribute(tag!, 'name')!), decode(selected[1]!));
  }
  return fields;
}

/** `fields` as `consolePost` takes them (the CSRF token left out: it is passed on its own). */
function fieldsOf(fields: URLSearchParams): Record<string, string[]> {
  const record: Record<string, string[]> = {};
  for (const [name, value] of fields) if (name !== 'csrf_token') (record[name] ??= []).push(value);
  return record;
}

function formField(body: string, name: string): string {
  const value = sentFields(body).get(name);
  assert.ok(value !== null, `no field ${name}`);
  return value;
}
