import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import {
  autofocusedIds,
  consoleGet,
  consolePost,
  consoleSignIn,
  focusedAlerts,
  pageText,
  tableRowLinkingTo,
} from '../helpers/console.ts';
import { type Consequence, summarizeConsequences } from '../../src/db/unit-of-work.ts';
import { selectUserSessions } from '../../src/tokens/store.ts';
import { formatTime } from '../../src/console/ui.ts';
import { nameKey } from '../../src/util/name-key.ts';
import { holdTokensAt, startRpReceiver, type RpReceiver, verifyLogoutToken } from '../logout/rp-receiver.ts';
import { Browser, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';
import { eventually } from '../helpers/eventually.ts';

const HOSTILE = '<script>alert(1)</script>';

describe(`users in the admin UI (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  let receiver: RpReceiver;
  let wiki: { clientId: string; clientSecret: string | null };
  let member: { id: number; username: string };
  let operator: { id: number; username: string };

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true } });
    receiver = await startRpReceiver([200]);
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createGroup('Directors');
    await server.app.directoryAdmin.createGroup(`Spies ${HOSTILE}`);
    wiki = await seedApp(server, {
      name: `Wiki ${HOSTILE}`,
      groups: ['Directors'],
      backchannelLogoutUri: receiver.url(),
    });
    member = await seedUser(server, {
      username: `m${Date.now() % 100000}`,
      state: 'Member',
      groups: ['Directors'],
    });
    await server.app.directoryAdmin.updateUser(
      { id: member.id },
      {
        characterId: 90000001,
        characterName: `Pilot ${HOSTILE}`,
        corporationName: 'Corp',
        corporationTicker: 'CRP',
      },
    );
    await holdTokensAt(server, new Browser(), wiki, member.username);
    operator = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, operator.username, { returnTo: '/admin' });
  });
  after(async () => {
    await receiver.close();
    await server.close();
  });

  const url = (path: string) => `${server.origin}${path}`;

  it('focuses the refusal to deactivate the account the admin is signed in with (no field to correct)', async () => {
    const page = await consoleGet(admin, url(`/admin/users/${member.id}/deactivate`));
    const refused = await consolePost(admin, url(`/admin/users/${operator.id}/deactivate`), page.csrf!, {});
    assert.equal(refused.status, 409);
    const alerts = focusedAlerts(refused.body);
    assert.equal(alerts.length, 1, alerts.join(' | '));
    assert.match(
      alerts[0]!,
      /^Nothing was changed: you cannot deactivate the account you are signed in with/,
    );
    assert.deepEqual(autofocusedIds(refused.body), []);
  });

  it('finds users by name and filters, escaping what they are called', async () => {
    const list = await consoleGet(admin, url(`/admin/users?q=${member.username}&group=Directors&active=yes`));
    assert.equal(list.status, 200);
    assert.ok(list.body.includes(`href="/admin/users/${member.id}"`));
    assert.equal(list.body.includes(HOSTILE), false);
    assert.ok(pageText(list.body).includes(`Pilot ${HOSTILE}`));
    const none = await consoleGet(admin, url(`/admin/users?q=${member.username}&active=no`));
    assert.equal(none.body.includes(`href="/admin/users/${member.id}"`), false);
  });

  it('refuses an active filter that is neither yes nor no with 400 at its field, listing nobody', async () => {
    for (const [path, message] of [
      [
        `/admin/users?q=${member.username}&active=maybe`,
        'Not a status: active= takes one of yes, no, or nothing for any.',
      ],
      [
        `/admin/users?q=${member.username}&active=yes&active=no`,
        'active= is given more than once: give it once.',
      ],
    ] as const) {
      const page = await consoleGet(admin, url(path));
      assert.equal(page.status, 400, path);
      assert.ok(
        page.body.includes(`<p class="field-error" id="active-error">${message}</p>`),
        `${path}: ${pageText(page.body).slice(0, 600)}`,
      );
      assert.deepEqual(autofocusedIds(page.body), ['active'], path);
      assert.equal(
        page.body.includes(`href="/admin/users/${member.id}"`),
        false,
        'nobody listed as if it were "Any"',
      );
      assert.ok(page.body.includes(`value="${member.username}"`), 'the search typed is kept');
    }
  });

  it('refuses a page number that is no whole number from 1, or given twice, with 400 saying so, listing nobody', async () => {
    for (const page of ['abc', '-3', '0', '1.5', '2&page=3']) {
      const path = `/admin/users?q=${member.username}&page=${page}`;
      const answer = await consoleGet(admin, url(path));
      assert.equal(answer.status, 400, path);
      assert.match(
        pageText(answer.body),
        page.includes('&')
          ? /page= is given more than once: give it once\./
          : /Not a page: page= takes a whole number from 1, as the page links give it; remove it for the first page\./,
        path,
      );
      assert.equal(
        answer.body.includes(`href="/admin/users/${member.id}"`),
        false,
        `${path}: not the first page`,
      );
    }
    const first = await consoleGet(admin, url(`/admin/users?q=${member.username}&page=1`));
    assert.equal(first.status, 200);
    assert.ok(first.body.includes(`href="/admin/users/${member.id}"`));
  });

  it('refuses a search, state or group filter given more than once with 400 at its field, listing nobody', async () => {
    for (const [path, field] of [
      [`/admin/users?q=${member.username}&q=${operator.username}`, 'q'],
      ['/admin/users?state=Member&state=-', 'state'],
      ['/admin/users?group=Directors&group=Directors', 'group'],
      // Two filters at fault: the first in the form takes the focus.
      ['/admin/users?group=a&group=b&state=a&state=b', 'state'],
    ] as const) {
      const page = await consoleGet(admin, url(path));
      assert.equal(page.status, 400, path);
      assert.ok(
        page.body.includes(
          `<p class="field-error" id="${field}-error">${field}= is given more than once: give it once.</p>`,
        ),
        `${path}: ${pageText(page.body).slice(0, 600)}`,
      );
      assert.deepEqual(autofocusedIds(page.body), [field], path);
      assert.equal(
        /<a href="\/admin\/users\/\d+">/.test(page.body),
        false,
        `${path}: nobody listed as if the filter were absent`,
      );
    }
  });

  it('refuses a search longer than 150 characters at its field (400 naming the limit), listing nobody, never cutting it', async () => {
    const listed = (body: string) => /<a href="\/admin\/users\/\d+">/.test(body);
    const long = await consoleGet(admin, url(`/admin/users?q=${'m'.repeat(151)}`));
    assert.equal(long.status, 400);
    assert.ok(
      long.body.includes(
        '<p class="field-error" id="q-error">q= is longer than 150 characters: give at most 150.</p>',
      ),
      pageText(long.body).slice(0, 600),
    );
    assert.deepEqual(autofocusedIds(long.body), ['q']);
    assert.equal(listed(long.body), false, 'nobody listed as if the search were cut');
    assert.match(long.body, /id="q"[^>]*maxlength="150"/, 'the field takes no more');
    // At the limit, a search is made (it finds nobody, but is no error).
    const limit = await consoleGet(admin, url(`/admin/users?q=${'m'.repeat(150)}`));
    assert.equal(limit.status, 200);
    assert.doesNotMatch(limit.body, /class="field-error"/);
  });

  it('says at its field that no state or group has the name a filter gives (400), listing nobody', async () => {
    for (const [path, field, message] of [
      [
        '/admin/users?state=Gone',
        'state',
        'No state is named "Gone": state= takes the name of one of the states listed, or nothing for any.',
      ],
      [
        '/admin/users?group=Renamed&state=Member',
        'group',
        'No group is named "Renamed": group= takes the name of one of the groups listed, or nothing for any.',
      ],
      // Two filters at fault: the first in the form takes the focus.
      ['/admin/users?group=Renamed&state=Gone', 'state', 'No state is named "Gone"'],
    ] as const) {
      const page = await consoleGet(admin, url(path));
      assert.equal(page.status, 400, path);
      const error = new RegExp(`<p class="field-error" id="${field}-error">([^<]+)</p>`).exec(page.body);
      assert.ok(error, `${path}: ${pageText(page.body).slice(0, 600)}`);
      assert.ok(pageText(error[1]!).startsWith(message), `${path}: ${error[1]}`);
      assert.deepEqual(autofocusedIds(page.body), [field], path);
      assert.equal(/<a href="\/admin\/users\/\d+">/.test(page.body), false, `${path}: nobody listed`);
    }
    // A name the directory matches (regardless of case, as it looks names up) lists its users, the
    // drop-down showing the directory's spelling.
    const folded = await consoleGet(
      admin,
      url(`/admin/users?q=${member.username}&state=mEMBER&group=directors`),
    );
    assert.equal(folded.status, 200, pageText(folded.body).slice(0, 600));
    assert.ok(folded.body.includes(`href="/admin/users/${member.id}"`));
    assert.match(folded.body, /<option value="Member"\s+selected\s*>Member<\/option>/);
    assert.match(folded.body, /<option value="Directors"\s+selected\s*>Directors<\/option>/);
  });

  it('refuses a preview whose state or group is given more than once (400 naming it), offering nothing to confirm', async () => {
    for (const [path, parameter, title] of [
      ['/state?state=Member&state=-', 'state', `Change ${member.username}’s state?`],
      ['/state?state=Member&state=', 'state', `Change ${member.username}’s state?`],
      ['/add-group?group=a&group=b', 'group', `Add ${member.username} to a group?`],
      ['/remove-group?group=Directors&group=Directors', 'group', `Remove ${member.username} from a group?`],
    ] as const) {
      const preview = await consoleGet(admin, url(`/admin/users/${member.id}${path}`));
      assert.equal(preview.status, 400, path);
      const text = pageText(preview.body);
      assert.ok(text.includes(title), `${path}: ${text.slice(0, 400)}`);
      assert.deepEqual(
        focusedAlerts(preview.body),
        [`Not possible: ${parameter}= is given more than once: give it once.`],
        path,
      );
      assert.doesNotMatch(text, /invalid (?:state|group) name|Remove .*’s state|What happens/, path);
      assert.equal(
        /<form method="post" action="\/admin\/users\/\d+\//.test(preview.body),
        false,
        `${path}: nothing to confirm`,
      );
    }
  });

  it('shows a state or group name in a preview’s heading as its refusal does: cut in the middle to 80 characters, escaped', async () => {
    const csrf = (await consoleGet(admin, url(`/admin/users/${member.id}`))).csrf!;
    const long = `\u0007${'g'.repeat(60_000)}\u001b`;
    const shown = `\\x07${'g'.repeat(39)}…${'g'.repeat(39)}\\x1b`;
    const headings = (body: string) =>
      [...body.matchAll(/<(h1|title)>([\s\S]*?)<\/\1>/g)].map((match) => pageText(match[2]!));
    const posted = await consolePost(admin, url(`/admin/users/${member.id}/add-group`), csrf, {
      group: long,
    });
    assert.equal(posted.status, 400);
    for (const heading of headings(posted.body))
      assert.ok(heading.startsWith(`Add ${member.username} to group ${shown}?`), heading.slice(0, 200));
    assert.ok(
      posted.body.length < 20_000,
      `the page does not repeat the name: ${posted.body.length} characters`,
    );
    assert.match(
      pageText(posted.body),
      /invalid group name "\\u0007g{39}…g{39}\\u001b" \(60002 characters\)/,
      'the refusal cuts it alike',
    );
    const state = await consoleGet(
      admin,
      url(`/admin/users/${member.id}/state?state=${encodeURIComponent(`${'s'.repeat(100)}\u202e`)}`),
    );
    assert.ok(
      headings(state.body).every((heading) =>
        heading.startsWith(`Move ${member.username} to state ${'s'.repeat(40)}…${'s'.repeat(39)}\\u202e?`),
      ),
      headings(state.body).join(' | '),
    );
    const hidden = await consoleGet(
      admin,
      url(`/admin/users/${member.id}/add-group?group=${encodeURIComponent('Esc\u001b[31m')}`),
    );
    assert.ok(
      headings(hidden.body).every((heading) =>
        heading.startsWith(`Add ${member.username} to group Esc\\x1b[31m?`),
      ),
      headings(hidden.body).join(' | '),
    );
  });

  it('takes a state or group name with a space at an end (stored before such were refused) as it is, in the list and a preview', async () => {
    // As an older release stored them: new names refuse surrounding spaces.
    const db = server.app.database.db;
    await db
      .insertInto('state')
      .values({
        name: 'Veteran ',
        name_key: nameKey('Veteran '),
        priority: 7,
        oidc_access: 0,
        created_at: Date.now(),
      })
      .execute();
    await db
      .insertInto('auth_group')
      .values({ name: ' Old Guard', name_key: nameKey(' Old Guard'), oidc_access: 0, created_at: Date.now() })
      .execute();
    const veteran = await seedUser(server, { state: 'Veteran ', groups: [' Old Guard'] });
    const list = await consoleGet(admin, url(`/admin/users?state=${encodeURIComponent('Veteran ')}`));
    assert.equal(list.status, 200, pageText(list.body).slice(0, 600));
    assert.ok(list.body.includes(`href="/admin/users/${veteran.id}"`), 'the member of "Veteran " is listed');
    const preview = await consoleGet(
      admin,
      url(`/admin/users/${veteran.id}/remove-group?group=${encodeURIComponent(' Old Guard')}`),
    );
    assert.equal(preview.status, 200, pageText(preview.body).slice(0, 600));
    assert.ok(
      preview.body.includes('name="group" value=" Old Guard"'),
      'the group previewed is the one confirmed',
    );
  });

  it('filters by a state named "-" as that state, and by "No state" as no state', async () => {
    await server.app.directoryAdmin.createState('-', 5);
    const dashed = await seedUser(server, { username: `dash${Date.now() % 100000}`, state: '-' });
    const stateless = await seedUser(server, { username: `nost${Date.now() % 100000}` });
    const listed = (body: string) =>
      [...body.matchAll(/<a href="\/admin\/users\/(\d+)">/g)].map((m) => Number(m[1]));
    // The link of the state's own page, and the filter as the form sends it.
    const entry = await consoleGet(admin, url('/admin/states/-'));
    const members = /href="(\/admin\/users\?state=[^"]*)"/.exec(entry.body)![1]!;
    const inDashed = await consoleGet(admin, url(members));
    assert.deepEqual(listed(inDashed.body), [dashed.id], 'the members of state "-"');
    const form = await consoleGet(admin, url('/admin/users'));
    const noState = /<option value="([^"]*)"\s*>No state<\/option>/.exec(form.body)![1]!;
    const withoutState = listed(
      (await consoleGet(admin, url(`/admin/users?state=${encodeURIComponent(noState)}`))).body,
    );
    assert.ok(withoutState.includes(stateless.id), 'the stateless user is listed under "No state"');
    assert.equal(withoutState.includes(dashed.id), false, 'not the user in state "-"');
    assert.equal(
      [...form.body.matchAll(new RegExp(`<option value="${noState.replace('.', '\\.')}"`, 'g'))].length,
      1,
      'one option per value',
    );
  });

  it('offers no confirmation of a change its preview refuses, and no group picker without a group to add', async () => {
    const allGroups = (await server.app.directory.listGroups()).map((group) => group.name);
    const everywhere = await seedUser(server, { username: `every${Date.now() % 100000}`, groups: allGroups });
    const detail = await consoleGet(admin, url(`/admin/users/${everywhere.id}`));
    assert.equal(detail.body.includes(`/admin/users/${everywhere.id}/add-group`), false, 'no empty picker');
    assert.match(pageText(detail.body), /A member of every group\./);
    for (const [path, reason] of [
      ['/state?state=Nope', /Not possible: unknown state "Nope"/],
      ['/add-group?group=', /Not possible: invalid group name ""/],
      ['/remove-group?group=Nope', /Not possible: unknown group "Nope"/],
    ] as const) {
      const preview = await consoleGet(admin, url(`/admin/users/${everywhere.id}${path}`));
      assert.equal(preview.status, 409, path);
      assert.match(pageText(preview.body), reason, path);
      assert.equal(
        /<form method="post" action="\/admin\/users\/\d+\//.test(preview.body),
        false,
        `${path}: no button that can only fail`,
      );
    }
    // Sent anyway (a stale page): refused, said once.
    const sent = await consolePost(admin, url(`/admin/users/${everywhere.id}/state`), detail.csrf!, {
      state: 'Nope',
    });
    assert.equal(sent.status, 404);
    assert.equal(pageText(sent.body).match(/unknown state "Nope"/g)?.length, 1);
  });

  it('answers 404 to a user id beyond the 32-bit id column, on the page and each action, never a 500', async () => {
    const csrf = (await consoleGet(admin, url('/admin/users'))).csrf!;
    for (const id of ['2147483648', '999999999999999']) {
      const page = await consoleGet(admin, url(`/admin/users/${id}`));
      assert.equal(page.status, 404, `GET /admin/users/${id}: ${page.body.slice(0, 200)}`);
      assert.match(pageText(page.body), /No user has this id/);
      const preview = await consoleGet(admin, url(`/admin/users/${id}/sign-out`));
      assert.equal(preview.status, 404, `GET /admin/users/${id}/sign-out`);
      const done = await consolePost(admin, url(`/admin/users/${id}/revoke-tokens`), csrf, {
        reason: 'probe',
      });
      assert.equal(done.status, 404, `POST /admin/users/${id}/revoke-tokens`);
    }
  });

  it('shows a user: state, groups, main character, grants, live tokens, sessions and sign-ins', async () => {
    const detail = await consoleGet(admin, url(`/admin/users/${member.id}`));
    assert.equal(detail.status, 200);
    assert.equal(detail.body.includes(HOSTILE), false);
    const text = pageText(detail.body);
    assert.match(text, /State Member \(grants OIDC access\)/);
    assert.match(text, /Groups Directors/);
    assert.ok(text.includes(`Main character Pilot ${HOSTILE} (90000001)`));
    assert.match(text, /Affiliation Corp \[CRP\]/);
    assert.ok(text.includes(`Wiki ${HOSTILE} openid`), text);
    assert.match(text, /1 live browser session\(s\)/);
    assert.ok(text.includes(`Recent sign-ins to applications`));
    assert.equal((await consoleGet(admin, url('/admin/users/999999'))).status, 404);
  });

  it('lists a sign-in behind hundreds of refreshes, and past its search says where the older ones are', async () => {
    // A group of their own: the other tests' previews list what the member loses.
    await server.app.directoryAdmin.createGroup('Forum readers');
    const forum = await seedApp(server, { name: 'Forum', groups: ['Forum readers'] });
    const pilot = await seedUser(server, { groups: ['Forum readers'] });
    await holdTokensAt(server, new Browser(), forum, pilot.username);
    let signedIn = 0;
    await eventually(async () => {
      const issued = await server.app.auditStore.list({ userId: pilot.id, kinds: ['token_issued'] });
      signedIn = issued.find((event) => event.record.grant_type === 'authorization_code')?.recordedAt ?? 0;
      return signedIn > 0;
    }, 'the sign-in in the audit log');
    // Each refresh issues an access token and a refresh token, after the sign-in.
    let refreshed = 0;
    const refresh = (count: number) =>
      Promise.all(
        Array.from({ length: count }, () => {
          refreshed += 1;
          return server.app.auditStore.receiver.receive({
            kind: 'token_issued',
            client_id: forum.clientId,
            user_id: pilot.id,
            grant_type: 'refresh_token',
            token_type: refreshed % 2 === 0 ? 'access_token' : 'refresh_token',
            format: 'opaque',
            token_sha256: 'f'.repeat(64),
            expires_at: signedIn + 3_600_000,
            time: new Date(signedIn + 1000 + refreshed).toISOString(),
          });
        }),
      );
    const signInsOf = async () => {
      const page = await consoleGet(admin, url(`/admin/users/${pilot.id}`));
      assert.equal(page.status, 200);
      return { page, text: pageText(page.body).split('Recent sign-ins to applications ')[1]! };
    };

    await refresh(300);
    const behindRefreshes = await signInsOf();
    assert.match(behindRefreshes.text, new RegExp(`^${formatTime(signedIn)}: Forum Audit log of`));

    // Past the page's search (the user's newest 10,000 events): said, with the audit log of what it
    // did not read (the oldest refresh, and the sign-in's access and refresh tokens).
    await refresh(10_000 - refreshed + 1);
    const past = await signInsOf();
    assert.match(
      past.text,
      new RegExp(
        `^None among the user's newest 10,000 audit events: look for older ones in the audit log\\. Audit log of`,
      ),
    );
    const older = /href="(\/admin\/audit\?[^"]+kind=token_issued[^"]+)"/.exec(past.page.body)![1]!;
    const audit = await consoleGet(admin, url(older.replaceAll('&amp;', '&')));
    assert.equal(audit.status, 200);
    const listed = pageText(audit.body);
    assert.match(listed, / 3 event\(s\) /, 'the events the page did not read, none it did');
    assert.match(listed, /access_token \(opaque\) issued by authorization_code/);
  });

  it('names the account console among a user’s applications and sessions, with no link to an application page it has none of', async () => {
    const detail = await consoleGet(admin, url(`/admin/users/${operator.id}`));
    assert.equal(detail.status, 200);
    assert.equal(detail.body.includes('href="/admin/apps/aa-oidc-account"'), false, 'no dead link');
    const text = pageText(detail.body);
    // The admin's own grant and session are the console's: shown, by name.
    assert.match(text, /Application Scopes granted Granted Live tokens Account console \(built in\) openid/);
    const sessions = text.slice(text.indexOf('live browser session(s)'), text.indexOf('Recent sign-ins'));
    assert.match(sessions, /Account console \(built in\)/, sessions);
  });

  it('shows what removing a group would do before it is confirmed, then does it', async () => {
    const preview = await consoleGet(admin, url(`/admin/users/${member.id}/remove-group?group=Directors`));
    assert.equal(preview.status, 200);
    const text = pageText(preview.body);
    assert.ok(text.includes(`${member.username} can no longer use Wiki ${HOSTILE}.`), text);
    assert.ok(text.includes(`Back-channel logout is sent to Wiki ${HOSTILE}.`), text);
    assert.equal(preview.body.includes(HOSTILE), false);
    // The preview changed nothing.
    const still = await server.app.directory.profileById(member.id);
    assert.deepEqual(
      still!.groups.map((group) => group.name),
      ['Directors'],
    );
    assert.equal(receiver.requests.length, 0);

    const done = await consolePost(admin, url(`/admin/users/${member.id}/remove-group`), preview.csrf!, {
      group: 'Directors',
    });
    assert.equal(done.status, 303);
    assert.equal(done.location, `/admin/users/${member.id}?done=remove-group`);
    const after = await server.app.directory.profileById(member.id);
    assert.deepEqual(after!.groups, []);
    await server.app.logout.deliverDue();
    assert.equal(receiver.requests.length, 1);
    await verifyLogoutToken(server, receiver.tokens()[0]!, {
      clientId: wiki.clientId,
      sub: String(member.id),
    });
    await eventually(async () => {
      const audit = await consoleGet(admin, url(`/admin/audit?user=${member.username}`));
      return /group removed \(groups\) by admin:/.test(pageText(audit.body));
    }, 'the change in the audit log');
  });

  it('adds a group, changes the state and deactivates, each previewed first', async () => {
    const add = await consoleGet(
      admin,
      url(`/admin/users/${member.id}/add-group?group=${encodeURIComponent(`Spies ${HOSTILE}`)}`),
    );
    assert.equal(add.status, 200);
    assert.match(pageText(add.body), /No application stops accepting/);
    assert.equal(add.body.includes(HOSTILE), false);
    const added = await consolePost(admin, url(`/admin/users/${member.id}/add-group`), add.csrf!, {
      group: `Spies ${HOSTILE}`,
    });
    assert.equal(added.status, 303);
    assert.deepEqual(
      (await server.app.directory.profileById(member.id))!.groups.map((group) => group.name),
      [`Spies ${HOSTILE}`],
    );

    const unknown = await consolePost(admin, url(`/admin/users/${member.id}/state`), add.csrf!, {
      state: 'Nope',
    });
    assert.equal(unknown.status, 404);
    assert.match(pageText(unknown.body), /Nope/);
    const noState = await consolePost(admin, url(`/admin/users/${member.id}/state`), add.csrf!, {
      state: '',
    });
    assert.equal(noState.status, 303);
    assert.equal((await server.app.directory.profileById(member.id))!.state, null);

    const deactivate = await consoleGet(admin, url(`/admin/users/${member.id}/deactivate`));
    assert.equal(deactivate.status, 200);
    assert.match(pageText(deactivate.body), /Deactivate/);
    const done = await consolePost(admin, url(`/admin/users/${member.id}/deactivate`), deactivate.csrf!);
    assert.equal(done.status, 303);
    assert.equal((await server.app.directory.profileById(member.id))!.active, false);
    const activate = await consolePost(admin, url(`/admin/users/${member.id}/activate`), deactivate.csrf!);
    assert.equal(activate.status, 303);
    assert.equal((await server.app.directory.profileById(member.id))!.active, true);
  });

  it('revokes tokens with a reason, after showing which applications hear of it', async () => {
    await server.app.directoryAdmin.addGroup({ id: member.id }, 'Directors');
    await holdTokensAt(server, new Browser(), wiki, member.username);
    await server.app.logout.deliverDue();
    const before = receiver.requests.length;
    // One logout token per session of the member at the wiki (each sign-in was a new browser), read before the revocation ends them.
    const sessions = (await selectUserSessions(server.app.database.db, member.id)).filter((session) =>
      session.clientIds.includes(wiki.clientId),
    );
    const preview = await consoleGet(admin, url(`/admin/users/${member.id}/revoke-tokens`));
    const text = pageText(preview.body);
    assert.match(text, /code\(s\) and token\(s\) are revoked/);
    assert.ok(text.includes(`Back-channel logout is sent to Wiki ${HOSTILE}.`), text);
    const empty = await consolePost(admin, url(`/admin/users/${member.id}/revoke-tokens`), preview.csrf!, {
      reason: ' ',
    });
    assert.equal(empty.status, 400);
    assert.match(empty.body, /class="field-error"/);
    const control = await consolePost(admin, url(`/admin/users/${member.id}/revoke-tokens`), preview.csrf!, {
      reason: 'laptop\u0007stolen',
    });
    assert.equal(control.status, 400);
    assert.doesNotMatch(control.body, /--reason/, 'neither the field nor the preview speaks CLI');
    assert.equal(
      [...control.body.matchAll(/The reason must not contain control characters/g)].length,
      2,
      'the preview and the field say it the same way',
    );
    const done = await consolePost(admin, url(`/admin/users/${member.id}/revoke-tokens`), preview.csrf!, {
      reason: 'laptop stolen',
    });
    assert.equal(done.status, 303);
    await server.app.logout.deliverDue();
    assert.ok(sessions.length > 0);
    assert.equal(receiver.requests.length, before + sessions.length);
    // Audit events reach the database in small batches, a moment later.
    await eventually(async () => {
      const events = await server.app.auditStore.list({ userId: member.id, kinds: ['token_revoked'] });
      return events.some((event) => event.record.note === 'laptop stolen');
    }, 'a token_revoked event with the reason');
  });

  it('signs a user out everywhere after showing the sessions that end', async () => {
    await holdTokensAt(server, new Browser(), wiki, member.username);
    const preview = await consoleGet(admin, url(`/admin/users/${member.id}/sign-out`));
    assert.equal(preview.status, 200);
    assert.match(pageText(preview.body), /browser session\(s\) end/);
    const done = await consolePost(admin, url(`/admin/users/${member.id}/sign-out`), preview.csrf!);
    assert.equal(done.status, 303);
    assert.equal(done.location, `/admin/users/${member.id}?done=sign-out`);
    const detail = await consoleGet(admin, url(`/admin/users/${member.id}`));
    assert.match(pageText(detail.body), /No live session/);
    // The audit trail says who ended how many sessions, and why; never which (no id, no cookie).
    await eventually(async () => {
      const events = await server.app.auditStore.list({ userId: member.id, kinds: ['sessions_ended'] });
      return events.some((event) => event.record.reason === 'signed_out');
    }, 'a sessions_ended event');
    const events = await server.app.auditStore.list({ userId: member.id, kinds: ['sessions_ended'] });
    const signedOut = events.filter((event) => event.record.reason === 'signed_out');
    assert.equal(signedOut.length, 1);
    const { time, request_id: _requestId, count, ...record } = signedOut[0]!.record;
    assert.ok(typeof time === 'string');
    assert.ok(typeof count === 'number' && count >= 1);
    assert.deepEqual(record, {
      kind: 'sessions_ended',
      user_id: member.id,
      actor: `admin:${operator.username}`,
      reason: 'signed_out',
    });
  });

  it('sets a password, which then signs in', async () => {
    const form = await consoleGet(admin, url(`/admin/users/${member.id}/password`));
    assert.equal(form.status, 200);
    assert.match(
      form.body,
      /name="password"[^>]*maxlength="1024"/,
      'the most sign-in takes, in UTF-16 units',
    );
    const short = await consolePost(admin, url(`/admin/users/${member.id}/password`), form.csrf!, {
      password: 'short',
    });
    assert.equal(short.status, 400);
    assert.match(
      short.body,
      /id="password"[^>]*aria-invalid="true" aria-describedby="password-hint password-error"/,
    );
    assert.deepEqual(autofocusedIds(short.body), ['password'], 'the refused password takes the focus');
    assert.deepEqual(autofocusedIds(form.body), [], 'nothing is focused before a refusal');
    // 513 emoji: 513 characters, but more than the 1024 UTF-16 units sign-in takes.
    const long = await consolePost(admin, url(`/admin/users/${member.id}/password`), form.csrf!, {
      password: '😀'.repeat(513),
    });
    assert.equal(long.status, 400);
    assert.match(pageText(long.body), /at most 1024 characters are accepted, an emoji counting as two/);
    // A bidirectional control makes a password that looks like another: refused, named, not echoed.
    const bidi = await consolePost(admin, url(`/admin/users/${member.id}/password`), form.csrf!, {
      password: 'a brand \u202ewen passphrase',
    });
    assert.equal(bidi.status, 400);
    assert.match(
      pageText(bidi.body),
      /the password holds a hidden character \(U\+202E, a bidirectional control character\)/,
    );
    assert.ok(!bidi.body.includes('wen passphrase'), 'the password is not echoed');
    const done = await consolePost(admin, url(`/admin/users/${member.id}/password`), form.csrf!, {
      password: 'a brand new passphrase',
    });
    assert.equal(done.status, 303);
    const check = await server.app.directoryAdmin.verifyPassword(member.username, 'a brand new passphrase');
    assert.equal(check.outcome, 'valid');
  });

  it('refuses to let a superuser deactivate or delete the account they are signed in with', async () => {
    const detail = await consoleGet(admin, url(`/admin/users/${operator.id}`));
    assert.equal(detail.status, 200);
    assert.ok(
      !detail.body.includes(`/admin/users/${operator.id}/delete`),
      'no delete button on one’s own page',
    );
    assert.ok(!detail.body.includes(`/admin/users/${operator.id}/deactivate`), 'no deactivate button either');
    assert.match(pageText(detail.body), /This is the account you are signed in with/);

    const csrf = (await consoleGet(admin, url(`/admin/users/${operator.id}/sign-out`))).csrf!;
    for (const action of ['delete', 'deactivate']) {
      const page = await consoleGet(admin, url(`/admin/users/${operator.id}/${action}`));
      assert.equal(page.status, 409, action);
      const text = pageText(page.body);
      assert.ok(text.includes(`you cannot ${action} the account you are signed in with`), text);
      assert.ok(text.includes(`aa-oidc user ${action} ${operator.username}`), text);
      const post = await consolePost(admin, url(`/admin/users/${operator.id}/${action}`), csrf);
      assert.equal(post.status, 409, action);
      const still = await server.app.directory.profileById(operator.id);
      assert.ok(still?.active, `${action}: the account is still there and active`);
    }
    // Still signed in and still a superuser: the console answers.
    assert.equal((await consoleGet(admin, url('/admin/users'))).status, 200);
    // Another user's page still offers both.
    const other = await consoleGet(admin, url(`/admin/users/${member.id}`));
    assert.ok(other.body.includes(`/admin/users/${member.id}/delete`));
  });

  it('deletes a user after showing the impact the dry run of `user delete --dry-run` computes', async () => {
    const leaving = await seedUser(server, { state: 'Member', groups: ['Directors'] });
    await holdTokensAt(server, new Browser(), wiki, leaving.username);
    const detail = await consoleGet(admin, url(`/admin/users/${leaving.id}`));
    assert.match(
      detail.body,
      /<a class="button danger" href="\/admin\/users\/\d+\/delete"\s*>Delete user…<\/a\s*>/,
    );

    const consequences: Consequence[] = [];
    await server.app.directoryAdmin.deleteUser({ id: leaving.id }, { dryRun: true, consequences });
    const dryRun = summarizeConsequences(consequences);
    assert.deepEqual(dryRun.accessLost, [wiki.clientId]);
    assert.deepEqual(dryRun.logouts, [wiki.clientId]);
    const preview = await consoleGet(admin, url(`/admin/users/${leaving.id}/delete`));
    assert.equal(preview.status, 200);
    const text = pageText(preview.body);
    assert.ok(text.includes(`Delete ${leaving.username}?`), text);
    assert.ok(text.includes(`${leaving.username} can no longer use Wiki ${HOSTILE}.`), text);
    assert.ok(text.includes(`Back-channel logout is sent to Wiki ${HOSTILE}.`), text);
    assert.ok(text.includes(`${dryRun.tokensRevokedTotal} code(s) and token(s) are revoked`), text);
    assert.ok(await server.app.directory.profileById(leaving.id), 'the preview deleted nothing');

    const before = receiver.requests.length;
    const done = await consolePost(admin, url(`/admin/users/${leaving.id}/delete`), preview.csrf!);
    assert.equal(done.status, 303);
    assert.equal(done.location, '/admin/users?done=delete');
    assert.equal(await server.app.directory.profileById(leaving.id), undefined);
    const list = await consoleGet(admin, url('/admin/users?done=delete'));
    assert.match(pageText(list.body), /User deleted\./);
    for (const inherited of ['constructor', '__proto__', 'toString']) {
      const page = await consoleGet(admin, url(`/admin/users?done=${inherited}`));
      assert.equal(page.status, 200);
      assert.doesNotMatch(page.body, /role="status"/, `?done=${inherited} names no message`);
    }
    assert.equal((await consoleGet(admin, url(`/admin/users/${leaving.id}`))).status, 404);
    await server.app.logout.deliverDue();
    assert.ok(receiver.requests.length > before, 'the application got a back-channel logout');
    await verifyLogoutToken(server, receiver.tokens().at(-1)!, {
      clientId: wiki.clientId,
      sub: String(leaving.id),
    });
  });

  it('grants OIDC access directly and takes it away from the user’s page, each previewed first', async () => {
    // A member of Directors (which Wiki whitelists, but which grants no OIDC access) without a state.
    const pilot = await seedUser(server, { groups: ['Directors'], oidcAccess: false });
    const path = (suffix = '') => url(`/admin/users/${pilot.id}${suffix}`);
    /** The pilot's row in the user list: what it says of the access held directly. */
    const listed = async () =>
      tableRowLinkingTo(
        (await consoleGet(admin, url(`/admin/users?q=${pilot.username}`))).body,
        `/admin/users/${pilot.id}`,
      )?.['OIDC access held directly'];
    assert.equal(await listed(), 'no', 'the user list says as the user’s page says');
    const detail = await consoleGet(admin, path());
    assert.match(pageText(detail.body), /OIDC access held directly no/);
    assert.ok(detail.body.includes(`href="/admin/users/${pilot.id}/access?oidc_access=yes"`), 'the grant');
    assert.match(pageText(detail.body), /Grant OIDC access directly…/);

    const grant = await consoleGet(admin, path('/access?oidc_access=yes'));
    assert.equal(grant.status, 200);
    const grantText = pageText(grant.body);
    assert.ok(grantText.includes(`Grant ${pilot.username} OIDC access directly?`), grantText);
    assert.match(grantText, /No application stops accepting/);
    assert.equal((await server.app.directory.profileById(pilot.id))!.oidcAccess, false, 'a preview');
    const forged = await consolePost(admin, path('/access'), null, { oidc_access: 'yes' });
    assert.equal(forged.status, 403);
    assert.match(forged.body, /Form refused/);
    const unclear = await consolePost(admin, path('/access'), grant.csrf!, { oidc_access: 'maybe' });
    assert.equal(unclear.status, 400);
    assert.match(pageText(unclear.body), /oidc_access= takes yes or no, not "maybe"/);
    assert.equal((await server.app.directory.profileById(pilot.id))!.oidcAccess, false, 'refused');
    const granted = await consolePost(admin, path('/access'), grant.csrf!, { oidc_access: 'yes' });
    assert.equal(granted.status, 303);
    assert.equal(granted.location, `/admin/users/${pilot.id}?done=access`);
    assert.equal((await server.app.directory.profileById(pilot.id))!.oidcAccess, true);

    await holdTokensAt(server, new Browser(), wiki, pilot.username);
    const held = await consoleGet(admin, path('?done=access'));
    const heldText = pageText(held.body);
    assert.match(heldText, /OIDC access held directly changed\./);
    assert.match(heldText, /OIDC access held directly yes/);
    assert.equal(await listed(), 'yes', 'the user list says as the user’s page says');
    assert.ok(held.body.includes(`href="/admin/users/${pilot.id}/access?oidc_access=no"`), 'the revocation');

    const revoke = await consoleGet(admin, path('/access?oidc_access=no'));
    assert.equal(revoke.status, 200);
    const revokeText = pageText(revoke.body);
    assert.ok(revokeText.includes(`Take ${pilot.username}’s direct OIDC access away?`), revokeText);
    assert.ok(revokeText.includes(`${pilot.username} can no longer use Wiki ${HOSTILE}.`), revokeText);
    assert.ok(revokeText.includes(`Back-channel logout is sent to Wiki ${HOSTILE}.`), revokeText);
    assert.equal(revoke.body.includes(HOSTILE), false);
    assert.equal((await server.app.directory.profileById(pilot.id))!.oidcAccess, true, 'a preview');

    const before = receiver.requests.length;
    const revoked = await consolePost(admin, path('/access'), revoke.csrf!, { oidc_access: 'no' });
    assert.equal(revoked.status, 303);
    assert.equal((await server.app.directory.profileById(pilot.id))!.oidcAccess, false);
    await server.app.logout.deliverDue();
    assert.ok(receiver.requests.length > before, 'the application got a back-channel logout');
    await verifyLogoutToken(server, receiver.tokens().at(-1)!, {
      clientId: wiki.clientId,
      sub: String(pilot.id),
    });
    await eventually(async () => {
      const audit = await consoleGet(admin, url(`/admin/audit?user=${pilot.username}`));
      return /updated \(oidcAccess\) by admin:/.test(pageText(audit.body));
    }, 'the change in the audit log');
  });
});
