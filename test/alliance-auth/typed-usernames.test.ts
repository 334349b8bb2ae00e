import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { decodeJwt } from 'jose';
import { LOGIN_FAILED_MESSAGE, LOGIN_THROTTLED_MESSAGE } from '../../src/oidc/interactions/routes.ts';
import { describeOnEachAllianceAuth, FIXTURE_PASSWORD } from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { authorize, authorizeParams, exchangeCode } from '../helpers/flows.ts';
import { statementsDuring } from '../helpers/statements.ts';
import { authorizeUrl, Browser, seedApp, signIn } from '../helpers/server.ts';

/**
 * The username typed at password sign-in with an Alliance Auth directory, read as Django's login
 * reads it: stripped of the whitespace Python's `str.strip()` removes (`CharField.to_python`), then
 * NFKC (`UsernameField.to_python`), then looked up whole. A compatibility form finds the
 * user Django finds; a name stored in another form by hand is still found as stored; a name longer
 * than `auth_user.username` holds is nobody's, never cut to the 150 characters another user may have.
 * The password is never cut either: one longer than sign-in takes fails as a wrong one.
 */
/** As long as a password may be at sign-in: 1024 UTF-16 units. */
const LONG_PASSWORD = 'h'.repeat(1000) + '😀'.repeat(12);

await describeOnEachAllianceAuth(
  (database) => `usernames typed at Alliance Auth password sign-in (${database})`,
  (kind) => {
    const suite = serveAllianceAuth(kind, {
      directory: { passwordLogin: true, pollSeconds: 3600 },
      // Five failures per name from one address (the default); room enough per address for every test.
      config: {
        login: { maxFailuresPerAccountAndAddress: 5, maxFailuresPerAccount: 50, maxFailuresPerAddress: 500 },
      },
      async prepare(fixture) {
        /** A user written to `auth_user` as given, with the access permission and a Guest profile. */
        const addUser = (id: number, username: string, password = FIXTURE_PASSWORD) =>
          insertAllianceAuthUser(fixture, id, username, password);
        await addUser(40, 'fiona');
        // Not NFKC: only a hand-written row holds one (Django's create_user normalises).
        await addUser(41, 'ｇｅｏｒｇｅ');
        await addUser(44, 'finn');
        await addUser(45, 'ﬁnn');
        await addUser(42, 'p'.repeat(150));
        // 105 characters, 205 UTF-16 units.
        await addUser(43, `pilot${'𠀀'.repeat(100)}`);
        await addUser(46, 'hana', LONG_PASSWORD);
        await addUser(47, 'zoe');
        await addUser(48, 'pilot3');
      },
    });
    let client: { clientId: string; clientSecret: string };

    before(async () => {
      const created = await seedApp(suite.server, { name: 'Wiki', skipAuthorization: true });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });

    async function signInAs(username: string, password = FIXTURE_PASSWORD): Promise<Response> {
      const { response, verifier } = await authorize(
        suite.server,
        new Browser(),
        client,
        username,
        { scope: 'openid' },
        { password },
      );
      if (response.status !== 303) return response;
      const tokens = await exchangeCode(suite.server, client, response, verifier);
      return new Response(decodeJwt(tokens.id_token as string).sub, { status: 303 });
    }
    const subOf = async (username: string) => {
      const response = await signInAs(username);
      assert.equal(response.status, 303, `${JSON.stringify(username)} signs in`);
      return response.text();
    };

    it('finds the user Django finds for a compatibility form: fullwidth, mathematical letters, a ligature', async () => {
      assert.equal(await subOf('ａｌｉｃｅ'), '2', 'fullwidth alice');
      assert.equal(await subOf('𝐚𝐥𝐢𝐜𝐞'), '2', 'mathematical bold alice');
      assert.equal(await subOf('ﬁona'), '40', 'the ﬁ ligature');
    });

    it('still finds a user whose stored name is not NFKC when it is typed as stored, unless the NFKC form is a user', async () => {
      assert.equal(await subOf('ｇｅｏｒｇｅ'), '41');
      // Two users, one under each form: Django's (the NFKC form's) wins.
      assert.equal(await subOf('ﬁnn'), '44');
      assert.equal(await subOf('finn'), '44');
    });

    it('never cuts a long username: 151 characters fail as an unknown user would, and are throttled', async () => {
      const failures = async () =>
        (await suite.server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
      const before = await failures();
      const refused = await signInAs('p'.repeat(151));
      assert.equal(refused.status, 401, 'the same refusal as a wrong password');
      assert.ok((await refused.text()).includes(LOGIN_FAILED_MESSAGE));
      assert.equal(await failures(), before + 1, 'the attempt counts against the throttle');
      assert.equal(await subOf('p'.repeat(150)), '42', 'the 150-character name itself signs in');
    });

    it('signs in a name of up to 150 characters that is longer in UTF-16 units', async () => {
      assert.equal(await subOf(`pilot${'𠀀'.repeat(100)}`), '43');
    });

    it('never cuts a long password: the right 1024 UTF-16 units and one more fail as a wrong password would, and are throttled', async () => {
      const failures = async () =>
        (await suite.server.app.database.db.selectFrom('login_failure').select('id').execute()).length;
      const before = await failures();
      for (const longer of [`${LONG_PASSWORD}x`, `${LONG_PASSWORD}😀`]) {
        const refused = await signInAs('hana', longer);
        assert.equal(refused.status, 401, 'the same refusal as a wrong password');
        assert.ok((await refused.text()).includes(LOGIN_FAILED_MESSAGE));
      }
      assert.equal(await failures(), before + 2, 'each attempt counts against the throttle');
      const signedIn = await signInAs('hana', LONG_PASSWORD);
      assert.equal(signedIn.status, 303, 'the password itself signs in');
      assert.equal(await signedIn.text(), '46');
    });

    it("refuses the right password with a NUL after it, as Django's login form does, though PBKDF2 would take it", async () => {
      for (const password of [`${FIXTURE_PASSWORD}\u0000`, `${FIXTURE_PASSWORD}\u0000\u0000`]) {
        const refused = await signInAs('fiona', password);
        assert.equal(refused.status, 401, 'the same refusal as a wrong password');
        assert.ok((await refused.text()).includes(LOGIN_FAILED_MESSAGE));
      }
      assert.equal(await subOf('fiona'), '40', 'the password itself signs in');
    });

    it("counts every spelling the database's collation finds as the user against that user's sign-in budget", async () => {
      // MariaDB's utf8mb4_general_ci finds `zoe` for `zóe` or `ZÓË` (accents and case are one there);
      // PostgreSQL's = finds nobody for them. Five failures spend `zoe`'s budget from this address.
      for (let n = 0; n < 5; n += 1) assert.equal((await signInAs('zoe', 'wrong-password')).status, 401);
      assert.equal((await signInAs('zoe')).status, 429, 'the budget is spent: the right password waits');
      for (const spelling of ['zóe', 'ZÓË', 'zoé']) {
        const response = await signInAs(spelling);
        if (kind === 'mysql') {
          assert.equal(response.status, 429, `${spelling} is zoe there, and waits with zoe`);
          assert.ok((await response.text()).includes(LOGIN_THROTTLED_MESSAGE));
        } else assert.equal(response.status, 401, `${spelling} is nobody there`);
      }
    });

    it("strips the whitespace Django's login form strips (Python's, not JavaScript's), before NFKC, for the lookup and the throttle alike", async () => {
      // U+0085 (next line) and U+001C–U+001F are whitespace to Python, not to JavaScript's trim();
      // U+3000 (ideographic space) and U+2028 are to both.
      for (const typed of [
        'pilot3\u0085',
        '\u3000pilot3',
        '\u001fpilot3\u2028',
        '\u0085 ｐｉｌｏｔ３\u001c\u3000',
      ]) {
        assert.equal(await subOf(typed), '48', JSON.stringify(typed));
      }
      // U+FEFF is no whitespace to Python: Django looks `\ufefffinn` up as typed and finds nobody.
      assert.equal((await signInAs('\ufefffinn')).status, 401, 'U+FEFF is kept');
      // One budget, however the name was typed: five failures in all, then the right password waits.
      const spellings = ['pilot3\u0085', '\u3000pilot3', 'pilot3', '\u001cpilot3\u0085'];
      for (let n = 0; n < 5; n += 1) {
        const spelling = spellings[n % spellings.length]!;
        assert.equal((await signInAs(spelling, 'wrong-password')).status, 401, JSON.stringify(spelling));
      }
      for (const spelling of spellings) {
        const response = await signInAs(spelling);
        assert.equal(response.status, 429, `${JSON.stringify(spelling)} waits with pilot3`);
        assert.ok((await response.text()).includes(LOGIN_THROTTLED_MESSAGE));
      }
    });

    it('reads the user from auth_user once per password attempt, for the throttle and the password alike', async () => {
      // The password's read of `auth_user` (`selectPasswordRecord`), on either driver's SQL; not the
      // profile's, which a right password is followed by (it takes `date_joined`, and the password
      // only to tell what it is worth here: `keptPassword`).
      const passwordReads = (texts: string[]) =>
        texts.filter(
          (text) =>
            /\bfrom [`"]?auth_user[`"]? /i.test(text) &&
            /[`"]password[`"]/.test(text) &&
            !/[`"]date_joined[`"]/.test(text),
        ).length;
      const attempts: [string, string, number][] = [
        ['fiona', FIXTURE_PASSWORD, 303],
        ['fiona', 'wrong-password', 401],
        ['nobody-at-all', 'wrong-password', 401],
        // MariaDB finds `fiona` (and its throttle counts `fiona`); PostgreSQL finds nobody.
        ['FÍONA', 'wrong-password', 401],
      ];
      for (const [username, password, status] of attempts) {
        const { params } = authorizeParams(client, { scope: 'openid' });
        const { result: response, texts } = await statementsDuring(() =>
          signIn(new Browser(), suite.server, authorizeUrl(suite.server, params), { username, password }),
        );
        assert.equal(response.status, status, `${username} with ${password}`);
        assert.equal(passwordReads(texts), 1, `one read of ${username}'s password record`);
      }
    });
  },
);
