import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BIDI_FORMATTING, INVISIBLE_CHARACTER } from '../../src/util/hidden-characters.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { consoleGet, consoleSignIn } from '../helpers/console.ts';
import { openLoginPage } from '../helpers/flows.ts';
import { PASSWORD, seedApp, seedUser, startServer, type TestServer } from '../helpers/server.ts';

/** `Wiki admin` to the eye, were the override left to act: U+202E shows `nimda` reversed. */
const SPOOFING_NAME = 'Wiki \u202enimda';
/** Hebrew (which would pull the page's neighbouring words and punctuation), a BEL and a C1 CSI. */
const RTL_USERNAME = '\u05e9\u05dc\u05d5\u05dd\u0007\u009b';
/**
 * `Wiki admin` to the eye, were its invisible characters left unshown: a zero-width space, a soft
 * hyphen, a word joiner, a byte order mark, a Hangul filler; and a technologist emoji, whose zero-width
 * joiner stays.
 */
const LOOKALIKE_NAME = 'Wiki adm\u200bi\u00adn\u2060\ufeff\u3164 \u{1f469}\u200d\u{1f4bb}';
const LOOKALIKE_SHOWN = 'Wiki adm[U+200B]i[U+00AD]n[U+2060][U+FEFF][U+3164] \u{1f469}\u200d\u{1f4bb}';
/** `admin` to the eye: a Mongolian vowel separator, an invisible times, a halfwidth Hangul filler. */
const LOOKALIKE_USERNAME = 'ad\u180emi\u2062n\uffa0';
/**
 * Blank to the eye (an "invisible" EVE name): U+2800, U+034F, U+1BCA0, U+1D159, a stray tag, an
 * unassigned U+FFF0, a variation selector of the supplement after no ideograph and an unassigned
 * character of plane 14.
 */
const BLANK_USERNAME = '\u2800\u034f\u{1bca0}\u{1d159}\u{e0041}\ufff0\u{e0100}\u{e0fff}';
const BLANK_SHOWN = '[U+2800][U+034F][U+1BCA0][U+1D159][U+E0041][U+FFF0][U+E0100][U+E0FFF]';
/**
 * Scotland's flag: U+1F3F4, the tags `gbsct`, U+E007F. The tags draw it, and stay; so does the
 * variation selector after 葛, which chooses the kanji's registered form.
 */
const FLAG_USERNAME =
  'Highlander \u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f} 葛\u{e0100}城';
/**
 * What no page may hold raw: controls but whitespace, bidirectional embeddings, overrides, isolates,
 * invisible characters (not the zero-width joiner, nor a flag's tags).
 */
const UNFIT = new RegExp(
  `[\\u0000-\\u0008\\u000b\\u000e-\\u001f\\u007f-\\u009f]|${BIDI_FORMATTING.source}|${INVISIBLE_CHARACTER.source}`,
  'u',
);

/**
 * Names aa-oidc does not check (a user's from Alliance Auth or EVE, a name stored before bidirectional
 * controls were refused): on the sign-in pages and in the admin console each is isolated from the
 * page's own text, shows its bidirectional overrides instead of obeying them, and holds no control
 * character; a form field keeps it as it is.
 */
describe(`hostile names on the pages (${testDatabaseKind})`, () => {
  let server: TestServer;
  let clientId: string;
  let username: string;
  let admin: string;
  let lookalikeClientId: string;

  before(async () => {
    server = await startServer();
    clientId = (await seedApp(server, { name: 'Wiki' })).clientId;
    // As they are stored by someone else (Alliance Auth's database, an older aa-oidc): not through
    // the services, which refuse them.
    const db = server.app.database.db;
    await db
      .updateTable('application')
      .set({ name: SPOOFING_NAME })
      .where('client_id', '=', clientId)
      .execute();
    const user = await seedUser(server);
    username = user.username;
    await db.updateTable('app_user').set({ username: RTL_USERNAME }).where('id', '=', user.id).execute();
    admin = (await seedUser(server, { superuser: true })).username;
    lookalikeClientId = (await seedApp(server, { name: 'Lookalike' })).clientId;
    await db
      .updateTable('application')
      .set({ name: LOOKALIKE_NAME })
      .where('client_id', '=', lookalikeClientId)
      .execute();
    const lookalike = await seedUser(server);
    await db
      .updateTable('app_user')
      .set({ username: LOOKALIKE_USERNAME })
      .where('id', '=', lookalike.id)
      .execute();
    for (const name of [BLANK_USERNAME, FLAG_USERNAME]) {
      const user = await seedUser(server);
      await db.updateTable('app_user').set({ username: name }).where('id', '=', user.id).execute();
    }
  });
  after(async () => server.close());

  it('isolates the application name and the username on the consent page and shows the override', async () => {
    const login = await openLoginPage(server, clientId);
    const consent = await login.browser.follow(login.action, server.origin, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf_token: login.csrf, username, password: PASSWORD }).toString(),
    });
    const page = await consent.text();
    assert.equal(consent.status, 200, page.slice(0, 300));
    assert.match(page, /name="decision"/);
    assert.ok(
      page.includes('<p><strong><bdi>Wiki [U+202E]nimda</bdi></strong> asks to use your account'),
      page,
    );
    assert.ok(page.includes('<strong><bdi>\u05e9\u05dc\u05d5\u05dd\ufffd\ufffd</bdi></strong>.'), page);
    assert.equal(UNFIT.exec(page), null, 'no control character, no bidirectional override');
  });

  it('isolates the names in the admin lists and keeps them unchanged in the edit form', async () => {
    const browser = await consoleSignIn(server, admin, { returnTo: '/admin' });
    const apps = await consoleGet(browser, `${server.origin}/admin/apps`);
    assert.equal(apps.status, 200);
    assert.ok(apps.body.includes(`"><bdi>Wiki [U+202E]nimda</bdi></a></td>`), apps.body);
    assert.equal(UNFIT.exec(apps.body), null);

    const users = await consoleGet(browser, `${server.origin}/admin/users`);
    assert.equal(users.status, 200);
    assert.ok(users.body.includes('<bdi>\u05e9\u05dc\u05d5\u05dd\ufffd\ufffd</bdi>'), users.body);
    assert.equal(UNFIT.exec(users.body), null);

    // A form sent back unchanged sends the name stored, override and all (escaped, not isolated).
    const edit = await consoleGet(browser, `${server.origin}/admin/apps/${clientId}/edit`);
    assert.equal(edit.status, 200);
    assert.ok(edit.body.includes(`value="${SPOOFING_NAME}"`), edit.body);
    assert.ok(edit.body.includes(`<title>Edit Wiki [U+202E]nimda`), 'the title shows the override');
  });

  it('shows the invisible characters of a name in the admin console, and keeps them in the edit form', async () => {
    const browser = await consoleSignIn(server, admin, { returnTo: '/admin' });
    const apps = await consoleGet(browser, `${server.origin}/admin/apps`);
    assert.equal(apps.status, 200);
    // Shown, not isolated: nothing in it reorders the page's words.
    assert.ok(apps.body.includes(`">${LOOKALIKE_SHOWN}</a></td>`), apps.body);
    assert.equal(UNFIT.exec(apps.body), null);

    const users = await consoleGet(browser, `${server.origin}/admin/users`);
    assert.equal(users.status, 200);
    assert.ok(users.body.includes('ad[U+180E]mi[U+2062]n[U+FFA0]'), users.body);
    assert.ok(users.body.includes(BLANK_SHOWN), users.body);
    assert.ok(users.body.includes(FLAG_USERNAME), 'the flag and the kanji are shown as they are');
    assert.equal(UNFIT.exec(users.body), null);

    const edit = await consoleGet(browser, `${server.origin}/admin/apps/${lookalikeClientId}/edit`);
    assert.equal(edit.status, 200);
    assert.ok(edit.body.includes(`value="${LOOKALIKE_NAME}"`), edit.body);
    assert.ok(edit.body.includes(`<title>Edit ${LOOKALIKE_SHOWN}`), 'the title shows them');
  });
});
