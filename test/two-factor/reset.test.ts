import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { currentCode } from '../../src/two-factor/totp.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { consoleGet, consolePost, consoleSignIn, pageText } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { Browser, seedUser, signIn, startServer, type TestServer } from '../helpers/server.ts';

/**
 * An operator's reset of someone's two-factor sign-in (a lost phone and recovery codes, or an
 * enrolment someone else made with a session left open): from the admin UI's user page and from
 * `aa-oidc user reset-two-factor`, each audited with the operator as the actor. Over HTTP against a
 * real server, and the real CLI against its database.
 */
describe(`resetting a user's two-factor sign-in (${testDatabaseKind})`, () => {
  let server: TestServer;
  let admin: Browser;
  let adminName: string;

  before(async () => {
    server = await startServer();
    const superuser = await seedUser(server, { superuser: true });
    adminName = superuser.username;
    admin = await consoleSignIn(server, superuser.username);
  });
  after(async () => server.close());

  const url = (path: string) => `${server.origin}${path}`;

  async function enrolledUser() {
    const user = await seedUser(server);
    const { secret, id } = await server.app.twoFactor.beginEnrolment(user);
    assert.ok((await server.app.twoFactor.confirmEnrolment(user, currentCode(secret), id)).ok);
    return user;
  }

  /** The page a password sign-in at the account console leads to: the code page when enrolled. */
  async function afterPassword(username: string): Promise<string> {
    const response = await signIn(new Browser(), server, url('/account/sign-in?return=/account'), {
      username,
    });
    return pageText(await response.text());
  }

  async function resetEvents(userId: number) {
    await server.app.audit.idle();
    return (await server.app.auditStore.list({ kinds: ['admin_change'], limit: 1000 })).filter(
      (event) => event.record.action === 'two_factor_disabled' && event.record.entity_id === userId,
    );
  }

  it('a superuser sees it on the user page and resets it there, after a preview that changes nothing', async () => {
    const user = await enrolledUser();
    assert.match(await afterPassword(user.username), /Enter your code/);
    const detail = await consoleGet(admin, url(`/admin/users/${user.id}`));
    assert.match(pageText(detail.body), /Two-factor sign-in\s+on \(10 recovery code\(s\) left\)/);
    assert.ok(detail.body.includes(`href="/admin/users/${user.id}/reset-two-factor"`));

    const preview = await consoleGet(admin, url(`/admin/users/${user.id}/reset-two-factor`));
    assert.equal(preview.status, 200);
    assert.match(pageText(preview.body), /authenticator and recovery codes stop working/);
    assert.equal((await server.app.twoFactor.status(user.id)).enrolled, true, 'the preview changed nothing');

    const done = await consolePost(admin, url(`/admin/users/${user.id}/reset-two-factor`), preview.csrf!);
    assert.equal(done.status, 303);
    assert.equal(done.location, `/admin/users/${user.id}?done=reset-two-factor`);
    assert.deepEqual(await server.app.twoFactor.status(user.id), {
      enrolled: false,
      pending: false,
      recoveryCodesLeft: 0,
    });
    const after = await consoleGet(admin, url(`/admin/users/${user.id}?done=reset-two-factor`));
    assert.match(pageText(after.body), /Two-factor sign-in reset: the user can enrol again\./);
    assert.match(pageText(after.body), /Two-factor sign-in\s+off/);
    assert.ok(!after.body.includes('/reset-two-factor"'), 'no reset offered when there is nothing to reset');
    assert.doesNotMatch(await afterPassword(user.username), /Enter your code/);

    const events = await resetEvents(user.id);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.record.actor, `admin:${adminName}`);

    // Again: nothing to remove, nothing audited.
    const again = await consolePost(admin, url(`/admin/users/${user.id}/reset-two-factor`), preview.csrf!);
    assert.equal(again.location, `/admin/users/${user.id}?done=unchanged`);
    assert.equal((await resetEvents(user.id)).length, 1);
  });

  it('aa-oidc user reset-two-factor does the same from the command line, dry run first', async () => {
    const user = await enrolledUser();
    const run = (...args: string[]) => cli(['user', 'reset-two-factor', ...args], testEnv(server.database));

    const dryRun = await run(user.username, '--dry-run');
    assert.equal(dryRun.code, 0, dryRun.stderr);
    assert.equal(
      dryRun.stdout,
      `dry run: would remove ${user.username}’s two-factor enrolment and recovery codes; nothing changed\n`,
    );
    assert.equal((await server.app.twoFactor.status(user.id)).enrolled, true);

    const reset = await run(user.username);
    assert.equal(reset.code, 0, reset.stderr);
    assert.equal(
      reset.stdout,
      `${user.username}’s two-factor enrolment and recovery codes removed; they can enrol again on their account page\n`,
    );
    assert.equal((await server.app.twoFactor.status(user.id)).enrolled, false);
    assert.doesNotMatch(await afterPassword(user.username), /Enter your code/);
    const events = await resetEvents(user.id);
    assert.equal(events.length, 1);
    assert.match(String(events[0]!.record.actor), /^cli:/);

    const again = await run(user.username);
    assert.equal(again.stdout, `${user.username} has no two-factor enrolment; nothing changed\n`);
    const unknown = await run('nobody-of-that-name');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown user "nobody-of-that-name"/);
  });
});
