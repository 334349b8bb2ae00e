import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { AuditRecord } from '../../src/audit/events.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { consoleGet, consolePost, consoleSignIn } from '../helpers/console.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { introspect } from '../helpers/flows.ts';
import {
  Browser,
  formField,
  REDIRECT_URI,
  seedUser,
  startServer,
  type TestServer,
} from '../helpers/server.ts';
import { logoutJobs } from './jobs.ts';
import { holdTokensAt, type RpReceiver, seedReceiverApp, verifyLogoutToken } from './rp-receiver.ts';

/**
 * An operator narrows an application's whitelists: the users who signed in there and are no longer
 * admitted get a back-channel logout (one per session, with its sid) and lose their codes, tokens and
 * grant there, in the update's transaction, as a state or group change of their own would do.
 */
describe(`whitelist changes end access at the application (${testDatabaseKind})`, () => {
  let server: TestServer;
  const receivers: RpReceiver[] = [];
  const events: AuditRecord[] = [];

  before(async () => {
    server = await startServer({ logout: { allowPrivateTargets: true, retryBackoffSeconds: [1, 1] } });
    server.app.audit.subscribe({ name: 'test', receive: (record) => void events.push(record) });
    await server.app.directoryAdmin.createState('Member', 100, true);
    await server.app.directoryAdmin.createState('Blue', 50, true);
  });
  after(async () => {
    for (const receiver of receivers) await receiver.close();
    await server.close();
  });
  afterEach(() => {
    events.length = 0;
  });

  const env = () => testEnv(server.database, { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' });
  /** Whether `logout_required` for the user, with that reason, was published (once the bus is idle). */
  const logoutRequired = async (userId: number, reason: string) => {
    await server.app.audit.idle();
    return events.some(
      (event) => event.kind === 'logout_required' && event.user_id === userId && event.reason === reason,
    );
  };
  const idTokenSid = (idToken: string) =>
    (JSON.parse(Buffer.from(idToken.split('.')[1]!, 'base64url').toString()) as { sid?: string }).sid;

  /** An app whitelisting Member and Blue, and a Member and a Blue user signed in there. */
  async function signedInAtMemberAndBlue(name: string) {
    const { receiver, ...app } = await seedReceiverApp(server, receivers, {
      name,
      states: ['Member', 'Blue'],
    });
    const member = await seedUser(server, { state: 'Member' });
    const blue = await seedUser(server, { state: 'Blue' });
    const memberTokens = await holdTokensAt(server, new Browser(), app, member.username);
    const blueTokens = await holdTokensAt(server, new Browser(), app, blue.username);
    return { app, receiver, member, blue, memberTokens, blueTokens };
  }

  const active = async (app: { clientId: string; clientSecret: string | null }, token: string) => {
    const response = await introspect(
      server,
      { clientId: app.clientId, clientSecret: app.clientSecret! },
      token,
    );
    return response.body.active;
  };

  it('app update --dry-run changes nothing, and says how many users would lose the app', async () => {
    const { app, blueTokens } = await signedInAtMemberAndBlue('Blue removed in a dry run');
    const dry = await cli(['app', 'update', app.clientId, '--remove-state', 'Blue', '--dry-run'], env());
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /dry run, nothing written: would change states/);
    assert.match(dry.stdout, /users who signed in here and would lose access: 1\n/);
    assert.match(dry.stdout, /back-channel logouts that would be queued: 1\n/);
    assert.deepEqual(
      (await server.app.applications.findByClientId(app.clientId))!.states.sort(),
      ['Blue', 'Member'],
      'the whitelist unchanged',
    );
    assert.deepEqual(await logoutJobs(server.app.database, { clientId: app.clientId }), [], 'nothing queued');
    assert.equal(await active(app, blueTokens.access_token), true, 'the dry run revoked nothing');
    assert.equal(await active(app, blueTokens.refresh_token), true);
  });

  it('app update --remove-state logs the no longer admitted user out of that app, and only them', async () => {
    const { app, receiver, member, blue, memberTokens, blueTokens } =
      await signedInAtMemberAndBlue('Blue removed by the CLI');
    const done = await cli(['app', 'update', app.clientId, '--remove-state', 'Blue'], env());
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /updated application \S+: states\n/);

    const jobs = await logoutJobs(server.app.database, { clientId: app.clientId });
    assert.equal(jobs.length, 1, 'one logout: the Blue user’s one session');
    assert.equal(jobs[0]!.user_id, blue.id);
    assert.equal(jobs[0]!.trigger, 'whitelist_changed');
    assert.equal(jobs[0]!.sid, idTokenSid(blueTokens.id_token));
    assert.deepEqual(
      await logoutJobs(server.app.database, { userId: member.id }),
      [],
      'the Member user untouched',
    );

    await server.app.logout.deliverDue();
    assert.equal(receiver.tokens().length, 1);
    const claims = await verifyLogoutToken(server, receiver.tokens()[0]!, {
      clientId: app.clientId,
      sub: String(blue.id),
      sid: 'present',
    });
    assert.equal(claims.sid, idTokenSid(blueTokens.id_token), 'the sid of the Blue user’s session');

    assert.equal(
      await active(app, blueTokens.access_token),
      false,
      'the Blue user’s access token is revoked',
    );
    assert.equal(await active(app, blueTokens.refresh_token), false, 'and their refresh token');
    assert.equal(await active(app, memberTokens.access_token), true, 'the Member user keeps theirs');
    assert.equal(await active(app, memberTokens.refresh_token), true);
    assert.match(done.stdout, /users who signed in here and lost access: 1\n/);
    const grants = await server.app.database.db
      .selectFrom('oidc_payload')
      .select('user_id')
      .where('model', '=', 'Grant')
      .where('client_id', '=', app.clientId)
      .execute();
    assert.deepEqual(
      grants.map((row) => Number(row.user_id)),
      [member.id],
      'the Blue user’s grant is gone, the Member’s kept',
    );
  });

  it('whitelisting a state on an open application logs out those outside it', async () => {
    const app = await seedReceiverApp(server, receivers, { name: 'Open to all' });
    const member = await seedUser(server, { state: 'Member' });
    const blue = await seedUser(server, { state: 'Blue' });
    const memberTokens = await holdTokensAt(server, new Browser(), app, member.username);
    const blueTokens = await holdTokensAt(server, new Browser(), app, blue.username);
    const done = await cli(['app', 'update', app.clientId, '--add-state', 'Member'], env());
    assert.equal(done.code, 0, done.stderr);
    const jobs = await logoutJobs(server.app.database, { clientId: app.clientId });
    assert.deepEqual(
      jobs.map((job) => [job.user_id, job.trigger]),
      [[blue.id, 'whitelist_changed']],
    );
    assert.equal(await active(app, blueTokens.access_token), false);
    assert.equal(await active(app, memberTokens.access_token), true);
  });

  it('narrowing a deactivated application ends nothing until it is activated: then those it leaves out', async () => {
    const { app, receiver, member, blue, memberTokens, blueTokens } =
      await signedInAtMemberAndBlue('Switched off');
    await server.app.applications.deactivate(app.clientId, 'test');
    const done = await cli(['app', 'update', app.clientId, '--remove-state', 'Blue'], env());
    assert.equal(done.code, 0, done.stderr);
    assert.doesNotMatch(done.stdout, /lost access/);
    assert.deepEqual(await logoutJobs(server.app.database, { userId: blue.id }), []);
    const live = await server.app.database.db
      .selectFrom('oidc_payload')
      .select('id')
      .where('user_id', '=', String(blue.id))
      .where('client_id', '=', app.clientId)
      .where('model', '=', 'AccessToken')
      .where('revoked_at', 'is', null)
      .execute();
    assert.equal(live.length, 1, 'the token is left as deactivation leaves it');

    const dry = await cli(['app', 'activate', app.clientId, '--dry-run'], env());
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would be activated\n {2}users who signed in here and would lose access: 1\n/);
    assert.match(dry.stdout, /back-channel logouts that would be queued: 1\n/);
    assert.equal((await server.app.applications.findByClientId(app.clientId))!.active, false);
    assert.deepEqual(
      await logoutJobs(server.app.database, { userId: blue.id }),
      [],
      'the dry run queued nothing',
    );

    const activated = await cli(['app', 'activate', app.clientId], env());
    assert.equal(activated.code, 0, activated.stderr);
    assert.match(activated.stdout, /activated\n {2}users who signed in here and lost access: 1\n/);
    const jobs = await logoutJobs(server.app.database, { clientId: app.clientId });
    assert.deepEqual(
      jobs.map((job) => [job.user_id, job.trigger, job.sid]),
      [[blue.id, 'application_activated', idTokenSid(blueTokens.id_token)]],
      'the Blue user’s session at the application is told',
    );
    await server.app.logout.deliverDue();
    assert.equal(receiver.tokens().length, 1);
    await verifyLogoutToken(server, receiver.tokens()[0]!, {
      clientId: app.clientId,
      sub: String(blue.id),
      sid: 'present',
    });
    assert.equal(await active(app, blueTokens.refresh_token), false, 'and their refresh token revoked');
    assert.equal(await active(app, memberTokens.access_token), true, 'the Member user keeps theirs');
    assert.deepEqual(await logoutJobs(server.app.database, { userId: member.id }), []);
  });

  it('activating an application logs out whom a state change took it from while it was off', async () => {
    const { app, member, blue, memberTokens } = await signedInAtMemberAndBlue('Maintenance');
    await server.app.applications.deactivate(app.clientId, 'test');
    await server.app.directoryAdmin.createState('Guest', 20, true);
    await server.app.directoryAdmin.setState({ id: blue.id }, 'Guest');
    assert.deepEqual(
      await logoutJobs(server.app.database, { userId: blue.id }),
      [],
      'a deactivated application hears of no state change',
    );

    // The admin page's activation, which says what it did.
    const operator = await seedUser(server, { superuser: true });
    const browser = await consoleSignIn(server, operator.username, { returnTo: '/admin' });
    const page = await consoleGet(browser, `${server.origin}/admin/apps/${app.clientId}`);
    const activated = await consolePost(
      browser,
      `${server.origin}/admin/apps/${app.clientId}/activate`,
      page.csrf!,
    );
    assert.equal(activated.status, 303, activated.body);
    assert.equal(activated.location, `/admin/apps/${app.clientId}?done=activated_access_ended`);
    const shown = await consoleGet(browser, `${server.origin}${activated.location}`);
    assert.match(shown.body, /whom it no longer admits .* were signed out of it/);
    assert.deepEqual(
      (await logoutJobs(server.app.database, { clientId: app.clientId })).map((job) => [
        job.user_id,
        job.trigger,
      ]),
      [[blue.id, 'application_activated']],
    );
    const blueRows = await server.app.database.db
      .selectFrom('oidc_payload')
      .select(['model', 'revoked_reason'])
      .where('user_id', '=', String(blue.id))
      .where('client_id', '=', app.clientId)
      .where('model', 'in', ['AccessToken', 'RefreshToken'])
      .execute();
    assert.deepEqual(
      blueRows.map((row) => row.revoked_reason),
      blueRows.map(() => 'policy_lost'),
      'the tokens of the user who lost it are revoked',
    );
    assert.equal(await active(app, memberTokens.access_token), true, 'the Member user keeps theirs');
    assert.deepEqual(await logoutJobs(server.app.database, { userId: member.id }), []);
    assert.ok(await logoutRequired(blue.id, 'application_activated'));
  });

  it('does not count a deactivated user again: their deactivation ended their access there', async () => {
    const { app, blue } = await signedInAtMemberAndBlue('Blue deactivated first');
    await server.app.directoryAdmin.deactivate({ id: blue.id });
    const told = (await logoutJobs(server.app.database, { userId: blue.id })).map((job) => job.trigger);
    assert.deepEqual(told, ['user_deactivated']);
    const done = await cli(['app', 'update', app.clientId, '--remove-state', 'Blue'], env());
    assert.equal(done.code, 0, done.stderr);
    assert.doesNotMatch(done.stdout, /lost access/);
    assert.deepEqual(
      (await logoutJobs(server.app.database, { userId: blue.id })).map((job) => job.trigger),
      told,
      'no second logout',
    );
  });

  it('queues nothing when the new whitelists still admit everyone who signed in', async () => {
    const { app, member, blue } = await signedInAtMemberAndBlue('Widened');
    const done = await cli(
      ['app', 'update', app.clientId, '--state', 'Blue', '--add-state', 'Member', '--name', 'Renamed'],
      env(),
    );
    assert.equal(done.code, 0, done.stderr);
    assert.doesNotMatch(done.stdout, /lost access/);
    for (const user of [member, blue])
      assert.deepEqual(await logoutJobs(server.app.database, { userId: user.id }), []);
  });

  it('widened whitelists read nobody: a widening holds the write lock no longer than before', async () => {
    const { app } = await signedInAtMemberAndBlue('Widened');
    await server.app.directoryAdmin.createState('Red', 10, true);
    const directory = server.app.directory;
    const original = directory.profilesByIds;
    let reads = 0;
    directory.profilesByIds = (ids, within) => {
      reads += 1;
      return original.call(directory, ids, within);
    };
    try {
      await server.app.applications.update(app.clientId, { states: ['Member', 'Blue', 'Red'] }, 'test');
      await server.app.applications.update(app.clientId, { states: [] }, 'test');
    } finally {
      directory.profilesByIds = original;
    }
    assert.equal(reads, 0, 'no profile read for whitelists that only widen');
    assert.deepEqual(await logoutJobs(server.app.database, { clientId: app.clientId }), []);
  });

  it('reads the profiles of those signed in before the update takes its write lock', async () => {
    const { app, blue } = await signedInAtMemberAndBlue('Prepared');
    const directory = server.app.directory;
    const original = directory.profilesByIds;
    const reads: Array<{ users: number; inTheUnit: boolean }> = [];
    directory.profilesByIds = (ids, within) => {
      reads.push({ users: ids.length, inTheUnit: within !== undefined });
      return original.call(directory, ids, within);
    };
    try {
      await server.app.applications.update(app.clientId, { states: ['Member'] }, 'test');
    } finally {
      directory.profilesByIds = original;
    }
    // A directory in another database (Alliance Auth) is then never read while aa-oidc's is locked.
    assert.deepEqual(reads, [{ users: 2, inTheUnit: false }]);
    assert.equal((await logoutJobs(server.app.database, { userId: blue.id })).length, 1, 'and Blue is out');
  });

  it('the admin page’s edit ends the access of the users the new whitelists leave out', async () => {
    const { app, receiver, member, blue, blueTokens } =
      await signedInAtMemberAndBlue('Blue removed by the admin');
    const operator = await seedUser(server, { superuser: true });
    const browser = await consoleSignIn(server, operator.username, { returnTo: '/admin' });
    const url = `${server.origin}/admin/apps/${app.clientId}/edit`;
    const form = await consoleGet(browser, url);
    const saved = await consolePost(browser, url, form.csrf!, {
      version: formField(form.body, 'version'),
      name: 'Blue removed by the admin',
      redirect_uris: REDIRECT_URI,
      grant_types: ['authorization_code', 'refresh_token'],
      states: 'Member',
      skip_authorization: 'on',
      pkce_required: 'on',
      access_token_format: 'inherit',
      backchannel_logout_uri: receiver.url(),
    });
    assert.equal(saved.status, 303, saved.body);
    assert.equal(saved.location, `/admin/apps/${app.clientId}?done=updated_access_ended`);
    const shown = await consoleGet(browser, `${server.origin}${saved.location}`);
    assert.match(shown.body, /whom the new whitelists no longer admit were signed out of it/);
    assert.deepEqual((await server.app.applications.findByClientId(app.clientId))!.states, ['Member']);

    const jobs = await logoutJobs(server.app.database, { clientId: app.clientId });
    assert.deepEqual(
      jobs.map((job) => [job.user_id, job.trigger, job.sid]),
      [[blue.id, 'whitelist_changed', idTokenSid(blueTokens.id_token)]],
    );
    assert.deepEqual(await logoutJobs(server.app.database, { userId: member.id }), []);
    assert.equal(await active(app, blueTokens.access_token), false);
    assert.ok(
      await logoutRequired(blue.id, 'whitelist_changed'),
      'logout_required published after the commit',
    );
    assert.ok(
      events.some(
        (event) =>
          event.kind === 'token_revoked' && event.user_id === blue.id && event.reason === 'policy_lost',
      ),
      'token_revoked (policy_lost) published',
    );
  });
});
