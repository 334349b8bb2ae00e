import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { nameKey } from '../../src/util/name-key.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  autofocusedIds,
  consoleGet,
  consolePost,
  consoleSignIn,
  focusedAlerts,
  pageText,
} from '../helpers/console.ts';
import { holdTokensAt, startRpReceiver, type RpReceiver, verifyLogoutToken } from '../logout/rp-receiver.ts';
import { Browser, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

const HOSTILE = '<script>alert(1)</script>';

describe(`states and groups in the admin UI (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  let csrf: string;
  let receiver: RpReceiver;
  let forum: { clientId: string; clientSecret: string | null };
  let member: { id: number; username: string };
  let wikiId: string;

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    receiver = await startRpReceiver([200]);
    const operator = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, operator.username, { returnTo: '/admin' });
    csrf = (await consoleGet(admin, `${server.origin}/admin/states`)).csrf!;
  });
  after(async () => {
    await receiver.close();
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;
  const path = (kind: 'states' | 'groups', name: string, suffix = '') =>
    `/admin/${kind}/${encodeURIComponent(name)}${suffix}`;

  it('creates states and groups, names escaped, and refuses a used priority at the form', async () => {
    const state = await consolePost(admin, url('/admin/states'), csrf, {
      name: `Member ${HOSTILE}`,
      priority: '100',
      oidc_access: 'on',
    });
    assert.equal(state.status, 303);
    assert.equal(state.location, `${path('states', `Member ${HOSTILE}`)}?done=created`);
    const taken = await consolePost(admin, url('/admin/states'), csrf, { name: 'Blue', priority: '100' });
    assert.equal(taken.status, 409);
    assert.match(pageText(taken.body), /priority 100 is already used by state/);
    assert.match(taken.body, /value="Blue"/, 'the form keeps what was typed');
    const huge = await consolePost(admin, url('/admin/states'), csrf, {
      name: 'Blue',
      priority: '99999999999',
    });
    assert.equal(huge.status, 400);
    assert.match(
      pageText(huge.body),
      /invalid state priority 99999999999: expected a whole number from -2147483648 to 2147483647/,
    );
    assert.equal(
      (await consolePost(admin, url('/admin/groups'), csrf, { name: `Pilots ${HOSTILE}`, oidc_access: 'on' }))
        .status,
      303,
    );
    assert.equal((await consolePost(admin, url('/admin/groups'), csrf, { name: 'Directors' })).status, 303);
    for (const page of [
      '/admin/states',
      '/admin/groups',
      path('states', `Member ${HOSTILE}`),
      path('groups', `Pilots ${HOSTILE}`),
    ]) {
      const shown = await consoleGet(admin, url(page));
      assert.equal(shown.status, 200, page);
      assert.equal(shown.body.includes(HOSTILE), false, `no raw <script> on ${page}`);
    }
    const states = await server.app.directory.listStates();
    assert.deepEqual(states, [{ name: `Member ${HOSTILE}`, priority: 100, oidcAccess: true }]);
  });

  it('shows who loses which application before a group stops granting OIDC access', async () => {
    forum = await seedApp(server, { name: `Forum ${HOSTILE}`, backchannelLogoutUri: receiver.url() });
    member = await seedUser(server, { oidcAccess: false, groups: [`Pilots ${HOSTILE}`] });
    await holdTokensAt(server, new Browser(), forum, member.username);
    const preview = await consoleGet(
      admin,
      url(path('groups', `Pilots ${HOSTILE}`, '/access?oidc_access=no')),
    );
    assert.equal(preview.status, 200);
    const text = pageText(preview.body);
    assert.ok(text.includes(`Users can no longer use Forum ${HOSTILE}.`), text);
    assert.ok(text.includes(`Back-channel logout is sent to Forum ${HOSTILE}.`), text);
    assert.equal(preview.body.includes(HOSTILE), false);
    assert.equal(receiver.requests.length, 0, 'a preview sends nothing');
    const done = await consolePost(admin, url(path('groups', `Pilots ${HOSTILE}`, '/access')), csrf, {
      oidc_access: 'no',
    });
    assert.equal(done.status, 303);
    assert.deepEqual(
      (await server.app.directory.listGroups()).find((group) => group.name.startsWith('Pilots')),
      {
        name: `Pilots ${HOSTILE}`,
        oidcAccess: false,
      },
    );
    await server.app.logout.deliverDue();
    assert.equal(receiver.requests.length, 1);
    await verifyLogoutToken(server, receiver.tokens()[0]!, {
      clientId: forum.clientId,
      sub: String(member.id),
    });
  });

  it('refuses an OIDC access change that is neither yes nor no, never taking it for no', async () => {
    await server.app.directoryAdmin!.createGroup('Access probe', true);
    for (const value of ['true', 'on', 'Yes', '']) {
      const preview = await consoleGet(
        admin,
        url(path('groups', 'Access probe', `/access?oidc_access=${encodeURIComponent(value)}`)),
      );
      // Wrong input, not a conflict: 400 in the preview as in the confirmed form.
      assert.equal(preview.status, 400, `preview of oidc_access=${value}`);
      assert.match(pageText(preview.body), /Not possible: oidc_access= takes yes or no, not "/);
      assert.doesNotMatch(pageText(preview.body), /Stop granting/);
      const done = await consolePost(admin, url(path('groups', 'Access probe', '/access')), csrf, {
        oidc_access: value,
      });
      assert.equal(done.status, 400, `oidc_access=${value}`);
      assert.match(pageText(done.body), /oidc_access= takes yes or no/);
    }
    assert.deepEqual(
      (await server.app.directory.listGroups()).find((group) => group.name === 'Access probe'),
      { name: 'Access probe', oidcAccess: true },
      'the group still grants access',
    );
  });

  it('renames a whitelisted group, the whitelist following, after saying so', async () => {
    const wiki = await seedApp(server, { name: 'Wiki', groups: ['Directors'] });
    wikiId = wiki.clientId;
    const preview = await consoleGet(admin, url(path('groups', 'Directors', '/rename?to=Board')));
    assert.match(pageText(preview.body), /The whitelists of Wiki follow the new name/);
    const done = await consolePost(admin, url(path('groups', 'Directors', '/rename')), csrf, { to: 'Board' });
    assert.equal(done.status, 303);
    assert.equal(done.location, `${path('groups', 'Board')}?done=rename`);
    assert.deepEqual((await server.app.applications.findByClientId(wiki.clientId))!.groups, ['Board']);
  });

  it('refuses to delete a whitelisted group and shows why before anything is confirmed', async () => {
    const preview = await consoleGet(admin, url(path('groups', 'Board', '/delete')));
    assert.equal(preview.status, 409);
    assert.ok(
      pageText(preview.body).includes(
        `Not possible: refusing to delete group "Board": application ${wikiId}`,
      ),
    );
    assert.equal(preview.body.includes('<button type="submit" class="danger">Delete</button>'), false);
    const forced = await consolePost(admin, url(path('groups', 'Board', '/delete')), csrf);
    assert.equal(forced.status, 409);
    assert.ok((await server.app.directory.listGroups()).some((group) => group.name === 'Board'));
  });

  it('deletes a group nobody whitelists: its members lose it', async () => {
    const preview = await consoleGet(admin, url(path('groups', `Pilots ${HOSTILE}`, '/delete')));
    assert.equal(preview.status, 200);
    const done = await consolePost(admin, url(path('groups', `Pilots ${HOSTILE}`, '/delete')), csrf);
    assert.equal(done.status, 303);
    assert.equal(done.location, '/admin/groups?done=delete');
    assert.deepEqual((await server.app.directory.profileById(member.id))!.groups, []);
  });

  it('changes a state’s priority, refusing one in use', async () => {
    await server.app.directoryAdmin.createState('Blue', 50);
    const preview = await consoleGet(admin, url(path('states', 'Blue', '/priority?priority=60')));
    assert.match(pageText(preview.body), /Priorities order the states/);
    assert.equal(
      (await consolePost(admin, url(path('states', 'Blue', '/priority')), csrf, { priority: '60' })).status,
      303,
    );
    const used = await consolePost(admin, url(path('states', 'Blue', '/priority')), csrf, {
      priority: '100',
    });
    assert.equal(used.status, 409);
    assert.equal(
      (await server.app.directory.listStates()).find((state) => state.name === 'Blue')!.priority,
      60,
    );
    const held = await seedUser(server, { state: 'Blue' });
    const deletion = await consoleGet(admin, url(path('states', 'Blue', '/delete')));
    assert.equal(deletion.status, 409);
    assert.ok(pageText(deletion.body).includes(held.username));
    assert.equal((await consoleGet(admin, url(path('states', 'Nope')))).status, 404);
  });

  it('finds a state or group by another case or Unicode form of its name, as the directory does, at its stored spelling', async () => {
    const decomposed = 'Cafe\u0301 Crew'; // é as e and a combining accent (NFD)
    await server.app.directoryAdmin.createGroup(decomposed);
    await server.app.directoryAdmin.createState('Red Fleet', 4100);
    // Another case and the composed form (NFC): the page is the stored name's, the query kept.
    for (const [kind, given, stored, suffix] of [
      ['groups', 'CAF\u00c9 CREW', decomposed, ''],
      ['states', 'red fleet', 'Red Fleet', ''],
      ['groups', 'caf\u00e9 crew', decomposed, '/access?oidc_access=yes'],
      ['states', 'RED FLEET', 'Red Fleet', '/priority?priority=4101'],
    ] as const) {
      const query = suffix === '' ? '?done=created' : '';
      const moved = await consoleGet(admin, url(`${path(kind, given, suffix)}${query}`));
      assert.equal(moved.status, 303, `${kind} ${given}${suffix}`);
      assert.equal(moved.location, `${path(kind, stored, suffix)}${query}`);
      const page = await consoleGet(admin, url(moved.location!));
      assert.equal(page.status, 200, moved.location!);
    }
    const entry = await consoleGet(admin, url(path('groups', decomposed)));
    assert.match(pageText(entry.body), new RegExp(`^Group ${decomposed} · `));
    // A change confirmed under another spelling changes the entry as stored.
    const granted = await consolePost(admin, url(path('groups', 'caf\u00e9 crew', '/access')), csrf, {
      oidc_access: 'yes',
    });
    assert.equal(granted.status, 303);
    assert.equal(granted.location, `${path('groups', decomposed)}?done=access`);
    assert.ok(
      (await server.app.directory.listGroups()).find((group) => group.name === decomposed)!.oidcAccess,
    );
    assert.equal(
      (await consoleGet(admin, url(path('groups', 'Cafe Crew')))).status,
      404,
      'no accent, another name',
    );
  });

  it('offers the priority as a whole number in the range the directory takes, which still checks it', async () => {
    const list = await consoleGet(admin, url('/admin/states'));
    const field = /<input\b[^>]*\bid="priority"[^>]*>/.exec(list.body)?.[0] ?? '';
    assert.match(field, /type="number"/);
    assert.match(field, /\smin="-2147483648"/);
    assert.match(field, /\smax="2147483647"/);
    assert.match(field, /\sstep="1"/);
    // A form sent past the browser's checks is refused by the server, at the field.
    const fraction = await consolePost(admin, url('/admin/states'), csrf, { name: 'Half', priority: '1.5' });
    assert.equal(fraction.status, 400);
    assert.match(
      fraction.body,
      /<p class="field-error" id="priority-error">invalid state priority &quot;1\.5&quot;/,
    );
    assert.deepEqual(autofocusedIds(fraction.body), ['priority']);
  });

  it('focuses the alert of a refused change no field can correct', async () => {
    await server.app.directoryAdmin.createState('Held', 31);
    await seedUser(server, { state: 'Held' });
    const preview = await consoleGet(admin, url(path('states', 'Held', '/delete')));
    assert.equal(preview.status, 409);
    assert.deepEqual(autofocusedIds(preview.body), []);
    assert.equal(focusedAlerts(preview.body).length, 1, 'the refusal takes the focus');
    const refused = await consolePost(admin, url(path('states', 'Held', '/delete')), csrf, {});
    assert.equal(refused.status, 409);
    const alerts = focusedAlerts(refused.body);
    assert.equal(alerts.length, 1, `one focused alert: ${alerts.join(' | ')}`);
    assert.match(alerts[0]!, /^Not possible: /);
    assert.deepEqual(autofocusedIds(refused.body), []);
  });

  it('ties a refused creation to the field it is about, the name or the priority', async () => {
    await server.app.directoryAdmin.createState('Taken', 555);
    for (const [fields, field, reason] of [
      [{ name: 'Taken', priority: '556' }, 'name', /state &quot;Taken&quot; already exists/],
      [{ name: 'Fresh', priority: '555' }, 'priority', /priority 555 is already used by state/],
      [{ name: 'Fresh', priority: 'ten' }, 'priority', /invalid state priority &quot;ten&quot;/],
      [{ name: 'Ops\u2028team', priority: '557' }, 'name', /it contains U\+2028, a line separator/],
    ] as const) {
      const refused = await consolePost(admin, url('/admin/states'), csrf, fields);
      assert.ok(refused.status === 400 || refused.status === 409, String(refused.status));
      const fieldError = new RegExp(`<p class="field-error" id="${field}-error">([^<]+)</p>`).exec(
        refused.body,
      );
      assert.ok(fieldError, `an error at the ${field} field: ${pageText(refused.body).slice(0, 600)}`);
      assert.match(fieldError[1]!, reason);
      assert.match(
        refused.body,
        new RegExp(
          `id="${field}"\\s+name="${field}"[^>]*aria-invalid="true" aria-describedby="(?:${field}-hint )?${field}-error"`,
        ),
      );
      assert.match(pageText(refused.body), new RegExp(`Not created: correct the ${field} below`));
      assert.deepEqual(autofocusedIds(refused.body), [field], 'the field at fault takes the focus, no other');
    }
    const group = await consolePost(admin, url('/admin/groups'), csrf, { name: 'Ops\u0085team' });
    assert.equal(group.status, 400);
    assert.match(
      group.body,
      /<p class="field-error" id="name-error">invalid group name &quot;Ops\\u0085team&quot;: it contains U\+0085, a control character/,
    );
  });

  it('refuses a line or paragraph separator or a control character in a name it gives, keeping names made before', async () => {
    for (const [name, named] of [
      ['Ops\u2028team', 'U+2028, a line separator'],
      ['Ops\u2029team', 'U+2029, a paragraph separator'],
      ['Ops\u009b2Jteam', 'U+009B, a control character'],
      ['Ops\tteam', 'U+0009, a control character'],
    ] as const) {
      await assert.rejects(server.app.directoryAdmin.createGroup(name), (error: Error) => {
        assert.ok(error.message.includes(`it contains ${named}`), error.message);
        assert.doesNotMatch(
          error.message,
          // eslint-disable-next-line no-control-regex
          /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/,
          'escaped in the message',
        );
        return true;
      });
      await assert.rejects(
        server.app.directoryAdmin.createState(name, 999),
        new RegExp(`it contains ${named.replace('+', '\\+')}`),
      );
    }
    // A group named so before (an older release): still shown, renamed to a fit name, deleted.
    await server.app.directoryAdmin.createGroup('Old team');
    await server.app.database.db
      .updateTable('auth_group')
      .set({ name: 'Old\u2028team', name_key: nameKey('Old\u2028team') })
      .where('name', '=', 'Old team')
      .execute();
    assert.equal((await consoleGet(admin, url(path('groups', 'Old\u2028team')))).status, 200);
    const refused = await consoleGet(
      admin,
      url(path('groups', 'Old\u2028team', `/rename?to=${encodeURIComponent('New\u2029team')}`)),
    );
    assert.equal(refused.status, 400, 'a name with a separator is wrong input, no conflict');
    assert.match(refused.body, /<p class="field-error" id="to-error">[^<]*U\+2029, a paragraph separator/);
    const confirm = await consoleGet(admin, url(path('groups', 'Old\u2028team', '/rename?to=New+team')));
    assert.equal(confirm.status, 200, pageText(confirm.body).slice(0, 800));
    const renamed = await consolePost(admin, url(path('groups', 'Old\u2028team', '/rename')), confirm.csrf!, {
      to: 'New team',
    });
    assert.equal(renamed.status, 303);
    assert.ok((await server.app.directory.listGroups()).some((group) => group.name === 'New team'));
  });

  it('names on the dashboard (W014) a group stored with spaces in a row, until it is renamed', async () => {
    // As an older release stored it: new names refuse spaces in a row.
    await server.app.database.db
      .insertInto('auth_group')
      .values({ name: 'Old  Guard', name_key: nameKey('Old  Guard'), oidc_access: 0, created_at: Date.now() })
      .execute();
    const dashboard = await consoleGet(admin, url('/admin'));
    assert.match(
      dashboard.body,
      /<strong>W014<\/strong> the group &quot;Old {2}Guard&quot; has spaces in a row \(stored before new names refused them\): a web page shows it as &quot;Old Guard&quot;/,
    );
    assert.match(dashboard.body, /aa-oidc group rename &#39;Old {2}Guard&#39; &#39;Old Guard&#39;/);
    const confirm = await consoleGet(admin, url(path('groups', 'Old  Guard', '/rename?to=Old+Guard')));
    assert.equal(confirm.status, 200, pageText(confirm.body).slice(0, 800));
    const renamed = await consolePost(admin, url(path('groups', 'Old  Guard', '/rename')), confirm.csrf!, {
      to: 'Old Guard',
    });
    assert.equal(renamed.status, 303);
    assert.doesNotMatch((await consoleGet(admin, url('/admin'))).body, /W014/);
  });

  it('names on the dashboard (W015) a group stored with an invisible character, escaped, until it is renamed', async () => {
    // As an older release stored it: new names refuse it.
    await server.app.database.db
      .insertInto('auth_group')
      .values({
        name: 'Fl\u200beet',
        name_key: nameKey('Fl\u200beet'),
        oidc_access: 0,
        created_at: Date.now(),
      })
      .execute();
    const dashboard = await consoleGet(admin, url('/admin'));
    assert.match(
      dashboard.body,
      /<strong>W015<\/strong> the group &quot;Fl\\u200beet&quot; contains U\+200B, an invisible character, at character 3 \(stored before new names refused them\)/,
    );
    assert.match(dashboard.body, /aa-oidc group rename \$&#39;Fl\\xe2\\x80\\x8beet&#39; &#39;Fleet&#39;/);
    const confirm = await consoleGet(admin, url(path('groups', 'Fl\u200beet', '/rename?to=Fleet')));
    assert.equal(confirm.status, 200, pageText(confirm.body).slice(0, 800));
    const renamed = await consolePost(admin, url(path('groups', 'Fl\u200beet', '/rename')), confirm.csrf!, {
      to: 'Fleet',
    });
    assert.equal(renamed.status, 303);
    assert.doesNotMatch((await consoleGet(admin, url('/admin'))).body, /W015/);
  });

  it('names a priority that is no whole number as it was typed, never as NaN', async () => {
    const created = await consolePost(admin, url('/admin/states'), csrf, { name: 'Green', priority: 'ten' });
    assert.equal(created.status, 400);
    assert.match(pageText(created.body), /invalid state priority "ten": expected a whole number/);
    await server.app.directoryAdmin.createState('Green', 70);
    const preview = await consoleGet(admin, url(path('states', 'Green', '/priority?priority=7O')));
    assert.equal(preview.status, 400, 'a typo is no conflict, in the preview as in the form');
    assert.match(
      preview.body,
      /<p class="field-error" id="priority-error">invalid state priority &quot;7O&quot;: expected a whole number/,
    );
    assert.match(preview.body, /name="priority"\s+value="7O"/, 'what was typed is kept at its field');
    const typo = await consolePost(admin, url(path('states', 'Green', '/priority')), csrf, {
      priority: '7O',
    });
    assert.equal(typo.status, 400);
    assert.match(pageText(typo.body), /invalid state priority "7O": expected a whole number/);
    // A priority another state holds is a conflict: 409 in both.
    await server.app.directoryAdmin.createState('Amber', 71);
    const taken = await consoleGet(admin, url(path('states', 'Green', '/priority?priority=71')));
    assert.equal(taken.status, 409);
    assert.match(pageText(taken.body), /priority 71 is already used by state "Amber"/);
    const confirmed = await consolePost(admin, url(path('states', 'Green', '/priority')), csrf, {
      priority: '71',
    });
    assert.equal(confirmed.status, 409);
    assert.match(pageText(confirmed.body), /priority 71 is already used by state "Amber"/);
  });

  it('keeps a refused new name at its field with the reason, to correct and preview again', async () => {
    await server.app.directoryAdmin.createGroup('Pilots');
    const refused = await consoleGet(admin, url(path('groups', 'Pilots', '/rename?to=board')));
    assert.equal(refused.status, 409);
    const fieldError = /<p class="field-error" id="to-error">([^<]+)<\/p>/.exec(refused.body);
    assert.ok(fieldError, `an error at the new name's field: ${pageText(refused.body).slice(0, 400)}`);
    assert.match(fieldError[1]!, /group &quot;Board&quot; already exists/);
    assert.match(refused.body, /name="to"\s+value="board"/, 'what was typed is kept');
    assert.match(refused.body, /aria-invalid="true"/);
    assert.deepEqual(autofocusedIds(refused.body), ['to'], 'the new name takes the focus');
    // The form previews the corrected name again (a GET to the same page), not a change unseen.
    assert.match(refused.body, /<form method="get" action="\/admin\/groups\/Pilots\/rename">/);
    const corrected = await consoleGet(admin, url(path('groups', 'Pilots', '/rename?to=Captains')));
    assert.equal(corrected.status, 200);
    assert.match(pageText(corrected.body), /No application whitelists it/);
    assert.equal(
      (await server.app.directory.listGroups()).some((group) => group.name === 'Pilots'),
      true,
      'nothing renamed by a preview',
    );
  });

  it('lets a name field take 150 characters outside the BMP (300 UTF-16 units, as a browser counts them)', async () => {
    const name = '𠀀'.repeat(150);
    const maxlengths = (body: string, field: string) =>
      [...body.matchAll(new RegExp(`name="${field}"[^>]*maxlength="(\\d+)"`, 'g'))].map((match) =>
        Number(match[1]),
      );
    for (const kind of ['states', 'groups'] as const) {
      const page = await consoleGet(admin, url(`/admin/${kind}`));
      assert.deepEqual(maxlengths(page.body, 'name'), [name.length], `the new ${kind} name`);
    }
    await server.app.directoryAdmin.createGroup('Wide');
    const rename = await consoleGet(admin, url(path('groups', 'Wide')));
    assert.deepEqual(maxlengths(rename.body, 'to'), [name.length], 'the new name of a rename');
    const refused = await consoleGet(admin, url(path('groups', 'Wide', '/rename?to=..')));
    assert.deepEqual(maxlengths(refused.body, 'to'), [name.length], 'the new name kept at its field');
    // And the directory takes such a name.
    const created = await consolePost(admin, url('/admin/groups'), csrf, { name });
    assert.equal(created.status, 303);
  });

  it('refuses a preview whose new name or priority is given more than once (400 naming it), offering nothing to confirm', async () => {
    await server.app.directoryAdmin.createState('Twice', 777);
    for (const [suffix, parameter, title] of [
      ['/rename?to=Once&to=Again', 'to', 'Rename state Twice?'],
      ['/rename?to=Once&to=', 'to', 'Rename state Twice?'],
      ['/priority?priority=1&priority=2', 'priority', 'Change the priority of state Twice?'],
      ['/access?oidc_access=yes&oidc_access=no', 'oidc_access', 'Change the OIDC access of state Twice?'],
    ] as const) {
      const preview = await consoleGet(admin, url(path('states', 'Twice', suffix)));
      assert.equal(preview.status, 400, suffix);
      assert.ok(pageText(preview.body).includes(title), `${suffix}: ${pageText(preview.body).slice(0, 400)}`);
      assert.deepEqual(
        focusedAlerts(preview.body),
        [`Not possible: ${parameter}= is given more than once: give it once.`],
        suffix,
      );
      assert.equal(/<form method="post" action="\/admin\/states\//.test(preview.body), false, suffix);
    }
    const state = (await server.app.directory.listStates()).find((item) => item.name === 'Twice');
    assert.deepEqual(state, { name: 'Twice', priority: 777, oidcAccess: false }, 'nothing changed');
  });

  it('previews a rename to a name of 150 characters outside the BMP whole, and shows a long one cut in the middle to 80, as its refusal does', async () => {
    await server.app.directoryAdmin.createGroup('Narrow');
    const wide = '𠀁'.repeat(150);
    const preview = await consoleGet(
      admin,
      url(path('groups', 'Narrow', `/rename?to=${encodeURIComponent(wide)}`)),
    );
    assert.equal(preview.status, 200, pageText(preview.body).slice(0, 400));
    assert.ok(
      preview.body.includes(`name="to" value="${wide}"`),
      'the whole name is confirmed, not a cut one',
    );
    const heading = pageText(/<h1>([\s\S]*?)<\/h1>/.exec(preview.body)![1]!);
    assert.equal(heading, `Rename group Narrow to ${'𠀁'.repeat(40)}…${'𠀁'.repeat(40)}?`);
    const long = `${'n'.repeat(200)}`;
    const refused = await consolePost(admin, url(path('groups', 'Narrow', '/rename')), csrf, {
      to: `${long}${'x'.repeat(60_000)}`,
    });
    assert.equal(refused.status, 400);
    assert.equal(
      pageText(/<h1>([\s\S]*?)<\/h1>/.exec(refused.body)![1]!),
      `Rename group Narrow to ${'n'.repeat(40)}…${'x'.repeat(40)}?`,
    );
    assert.match(
      pageText(refused.body),
      new RegExp(`invalid group name "${'n'.repeat(40)}…${'x'.repeat(40)}" \\(60200 characters\\)`),
    );
    assert.equal(
      refused.body.split('x'.repeat(60_000)).length - 1,
      1,
      'the name typed is kept whole at its field to correct, and only there',
    );
  });

  it('answers 415 to a compressed form, as the sign-in pages do, creating nothing; the token is still good', async () => {
    const fields = new URLSearchParams({ csrf_token: csrf, name: 'Compressed' }).toString();
    const post = (headers: Record<string, string>, origin = server.origin) =>
      admin.fetch(url('/admin/groups'), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin, ...headers },
        body: headers['content-encoding'] ? gzipSync(fields) : fields,
      });
    const refused = await post({ 'content-encoding': 'gzip' });
    assert.equal(refused.status, 415);
    assert.equal(refused.headers.get('accept-encoding'), 'identity');
    assert.equal(refused.headers.get('connection'), 'close');
    assert.match(
      pageText(await refused.text()),
      /Content encodings \(gzip, deflate, br\) are not accepted: send the form body uncompressed/,
    );
    const unreadable = await post({ 'content-type': 'application/x-www-form-urlencoded; charset' });
    assert.equal(unreadable.status, 415);
    assert.match(pageText(await unreadable.text()), /This form's Content-Type header cannot be read/);
    // From another site, the answer stays the refusal that says nothing about the form.
    const foreign = await post({ 'content-encoding': 'gzip' }, 'https://evil.example');
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /Form refused/);
    const names = async () => (await server.app.directory.listGroups()).map((group) => group.name);
    assert.ok(!(await names()).includes('Compressed'), 'no group was created');
    const created = await post({});
    assert.equal(created.status, 303);
    assert.ok((await names()).includes('Compressed'));
  });
});
