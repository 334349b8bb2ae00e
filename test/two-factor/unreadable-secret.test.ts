import assert from 'node:assert/strict';
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { currentCode } from '../../src/two-factor/totp.ts';
import { consoleGet, consolePost, consoleSignIn, pageText } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import {
  Browser,
  formAction,
  formField,
  PASSWORD,
  seedUser,
  signIn,
  startServer,
  type TestServer,
} from '../helpers/server.ts';

/**
 * A two-factor secret the server cannot decrypt: sealed under another AA_OIDC_SECRET_KEY (the key
 * replaced and the signing keys made anew, or a backup of another install restored), or a row not
 * as aa-oidc wrote it. Every page that opens it answers without a server error: a pending enrolment
 * counts as none (beginning again replaces it); a confirmed one takes no code from the app, says so,
 * and still takes a recovery code; an administrator's reset still works. Over real HTTP.
 */

/** `secret` sealed for `userId` as aa-oidc seals it, under `secretKey`. */
function sealedUnder(secretKey: string, userId: number, secret: string): string {
  const key = Buffer.from(
    hkdfSync('sha256', Buffer.from(secretKey, 'utf8'), Buffer.alloc(0), 'aa-oidc totp secrets', 32),
  );
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(`user:${userId}`));
  const sealed = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `v1.${iv.toString('base64url')}.${sealed.toString('base64url')}`;
}

/** What a way of spoiling a stored secret is given: the user, the stored value, the secret and the server's key. */
interface Spoiling {
  userId: number;
  stored: string;
  secret: string;
  secretKey: string;
}

/** The ways a stored secret cannot be opened, each as it would replace the stored one. */
const UNREADABLE: ReadonlyArray<{ name: string; replace(spoiling: Spoiling): string }> = [
  {
    name: 'sealed under another AA_OIDC_SECRET_KEY',
    replace: ({ userId, secret }) => sealedUnder('another install’s secret key, long enough', userId, secret),
  },
  {
    name: 'sealed for another user (a row moved between users)',
    replace: ({ userId, secret, secretKey }) => sealedUnder(secretKey, userId + 1000, secret),
  },
  {
    name: 'garbled (its sealed part cut short)',
    replace: ({ stored }) => `${stored.slice(0, stored.lastIndexOf('.'))}.AAAA`,
  },
  { name: 'not a sealed value at all', replace: () => 'v9.nothing.here' },
];

describe(`a two-factor secret that cannot be decrypted (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;
  let admin: Browser;
  const url = (path: string) => `${server.origin}${path}`;

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    const superuser = await seedUser(server, { superuser: true });
    admin = await consoleSignIn(server, superuser.username);
  });
  after(async () => server.close());

  const storedSecret = async (userId: number) =>
    (
      await server.app.database.db
        .selectFrom('totp_enrolment')
        .select('secret_encrypted')
        .where('user_id', '=', userId)
        .executeTakeFirstOrThrow()
    ).secret_encrypted;

  const makeUnreadable = async (userId: number, secret: string, way: (typeof UNREADABLE)[number]) => {
    const replaced = way.replace({
      userId,
      stored: await storedSecret(userId),
      secret,
      secretKey: server.app.config.secretKey,
    });
    await server.app.database.db
      .updateTable('totp_enrolment')
      .set({ secret_encrypted: replaced })
      .where('user_id', '=', userId)
      .execute();
  };

  /** The warnings about `userId`'s secret that the log holds. */
  const undecryptableWarnings = (userId: number) =>
    harness.logLines
      .map((line) => JSON.parse(line) as { level: number; msg: string; userId?: number })
      .filter((line) => line.userId === userId && /could not be decrypted/.test(line.msg));

  /** A password sign-in at the account console: the page it leads to, and a way to post its form. */
  async function passwordStep(username: string) {
    const browser = new Browser();
    const response = await signIn(browser, server, url('/account/sign-in?return=/account'), {
      username,
      password: PASSWORD,
    });
    const page = await response.text();
    const submit = (form: string, code: string) =>
      browser.follow(formAction(form, server.origin), server.origin, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          csrf_token: formField(form, 'csrf_token'),
          pending: formField(form, 'pending'),
          code,
        }).toString(),
      });
    return { status: response.status, page, submit };
  }

  for (const way of UNREADABLE) {
    it(`confirmed, ${way.name}: the account page and the sign-in refuse the app's codes saying why, take a recovery code, and an administrator resets it`, async () => {
      const user = await seedUser(server);
      const here = await consoleSignIn(server, user.username);
      const enrolment = await server.app.twoFactor.beginEnrolment(user);
      const confirmed = await server.app.twoFactor.confirmEnrolment(
        user,
        currentCode(enrolment.secret),
        enrolment.id,
      );
      assert.ok(confirmed.ok);
      harness.registerSecret(enrolment.secret, 'the TOTP secret');
      await makeUnreadable(user.id, enrolment.secret, way);
      const appCode = currentCode(enrolment.secret, Date.now() + 30_000);

      const page = await consoleGet(here, url('/account'));
      assert.equal(page.status, 200);

      // The sign-in: the app's code is no wrong code, nor a pass; the secret cannot be read.
      const signingIn = await passwordStep(user.username);
      assert.equal(signingIn.status, 200);
      assert.match(pageText(signingIn.page), /Enter your code/);
      const refused = await signingIn.submit(signingIn.page, appCode);
      const refusedPage = await refused.text();
      assert.equal(refused.status, 409, refusedPage.slice(0, 300));
      assert.match(
        pageText(refusedPage),
        /cannot be checked: this server can no longer read your two-factor secret\. Use one of your recovery codes instead, or ask an administrator/,
        'the page says what the member can do',
      );
      const recovered = await signingIn.submit(refusedPage, confirmed.recoveryCodes[0]!);
      assert.equal(recovered.status, 200, 'the console callback page');
      assert.match(await recovered.text(), /http-equiv="refresh"/);

      // The account page: turning it off with the app's code says why it cannot; a recovery code can.
      const off = await consolePost(here, url('/account/two-factor/disable'), page.csrf!, { code: appCode });
      assert.equal(off.status, 409, off.body.slice(0, 300));
      assert.match(pageText(off.body), /cannot be checked.*Use one of your recovery codes instead/);
      assert.equal((await server.app.twoFactor.status(user.id)).enrolled, true);

      // An administrator's reset (the user page first).
      const detail = await consoleGet(admin, url(`/admin/users/${user.id}`));
      assert.equal(detail.status, 200);
      const preview = await consoleGet(admin, url(`/admin/users/${user.id}/reset-two-factor`));
      assert.equal(preview.status, 200);
      const reset = await consolePost(admin, url(`/admin/users/${user.id}/reset-two-factor`), preview.csrf!);
      assert.equal(reset.status, 303);
      assert.equal((await server.app.twoFactor.status(user.id)).enrolled, false);

      const warnings = undecryptableWarnings(user.id);
      assert.ok(warnings.length >= 1, 'a warning names the user whose secret could not be decrypted');
      assert.ok(warnings.every((line) => line.level === 40));
      assert.match(warnings[0]!.msg, /AA_OIDC_SECRET_KEY/);
      await harness.assertNoLeaks();
    });

    it(`confirmed, ${way.name}: a recovery code turns it off on the account page, and it can be set up again`, async () => {
      const user = await seedUser(server);
      const here = await consoleSignIn(server, user.username);
      const enrolment = await server.app.twoFactor.beginEnrolment(user);
      const confirmed = await server.app.twoFactor.confirmEnrolment(
        user,
        currentCode(enrolment.secret),
        enrolment.id,
      );
      assert.ok(confirmed.ok);
      await makeUnreadable(user.id, enrolment.secret, way);
      const page = await consoleGet(here, url('/account'));
      const off = await consolePost(here, url('/account/two-factor/disable'), page.csrf!, {
        code: confirmed.recoveryCodes[1]!,
      });
      assert.equal(off.status, 303, off.body.slice(0, 300));
      assert.equal((await server.app.twoFactor.status(user.id)).enrolled, false);
      const enrol = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
      assert.equal(enrol.status, 200);
    });

    it(`pending, ${way.name}: the account page counts it as none, and beginning again replaces it`, async () => {
      const user = await seedUser(server);
      const here = await consoleSignIn(server, user.username);
      const page = await consoleGet(here, url('/account'));
      const enrol = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
      assert.equal(enrol.status, 200);
      const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(enrol.body)![1]!.replaceAll(' ', '');
      const enrolmentId = /name="enrolment" value="([^"]+)"/.exec(enrol.body)![1]!;
      await makeUnreadable(user.id, secret, way);

      const overview = await consoleGet(here, url('/account'));
      assert.equal(overview.status, 200);
      const confirm = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, {
        code: currentCode(secret),
        enrolment: enrolmentId,
      });
      assert.equal(confirm.status, 303, confirm.body.slice(0, 300));
      assert.equal(confirm.location, '/account#two-factor');
      assert.equal((await server.app.twoFactor.status(user.id)).enrolled, false, 'nothing turned on');

      const again = await consolePost(here, url('/account/two-factor/enrol'), page.csrf!);
      assert.equal(again.status, 200);
      const fresh = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(again.body)![1]!.replaceAll(' ', '');
      const form = {
        code: currentCode(fresh),
        enrolment: /name="enrolment" value="([^"]+)"/.exec(again.body)![1]!,
      };
      const confirmed = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, form);
      assert.equal(confirmed.status, 200, confirmed.body.slice(0, 300));
      assert.equal((await server.app.twoFactor.status(user.id)).enrolled, true);

      // The same form sent again just now, once the secret cannot be read: the recovery codes cannot
      // be derived again, so none are shown, and no server error.
      await makeUnreadable(user.id, fresh, way);
      const repeated = await consolePost(here, url('/account/two-factor/confirm'), page.csrf!, form);
      assert.equal(repeated.status, 303, repeated.body.slice(0, 300));
      assert.equal(repeated.location, '/account#two-factor');
    });
  }
});

describe(`a two-factor secret that cannot be decrypted, in an enrolment during the sign-in (${testDatabaseKind})`, () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ twoFactor: { requiredForSuperusers: true } });
  });
  after(async () => server.close());

  for (const way of UNREADABLE) {
    it(`${way.name}: the enrolment form answers that it is no longer pending, and the next sign-in enrols`, async () => {
      const superuser = await seedUser(server, { superuser: true });
      const enrolAt = async () => {
        const browser = new Browser();
        const start = await signIn(browser, server, `${server.origin}/account/sign-in?return=/admin`, {
          username: superuser.username,
          password: PASSWORD,
        });
        const page = await start.text();
        const secret = /<code id="totp-secret">([A-Z2-7 ]+)<\/code>/.exec(page)![1]!.replaceAll(' ', '');
        const post = (code: string) =>
          browser.follow(formAction(page, server.origin), server.origin, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({
              csrf_token: formField(page, 'csrf_token'),
              pending: formField(page, 'pending'),
              code,
            }).toString(),
          });
        return { secret, post };
      };
      const first = await enrolAt();
      const stored = await server.app.database.db
        .selectFrom('totp_enrolment')
        .select('secret_encrypted')
        .where('user_id', '=', superuser.id)
        .executeTakeFirstOrThrow();
      await server.app.database.db
        .updateTable('totp_enrolment')
        .set({
          secret_encrypted: way.replace({
            userId: superuser.id,
            stored: stored.secret_encrypted,
            secret: first.secret,
            secretKey: server.app.config.secretKey,
          }),
        })
        .where('user_id', '=', superuser.id)
        .execute();
      const refused = await first.post(currentCode(first.secret));
      const refusedPage = await refused.text();
      assert.equal(refused.status, 400, refusedPage.slice(0, 300));
      assert.match(
        pageText(refusedPage),
        /This enrolment is no longer pending\. Start again from the application\./,
      );
      assert.equal((await server.app.twoFactor.status(superuser.id)).enrolled, false);

      const second = await enrolAt();
      const codes = await second.post(currentCode(second.secret));
      assert.equal(codes.status, 200);
      assert.equal((await server.app.twoFactor.status(superuser.id)).enrolled, true);
    });
  }
});
