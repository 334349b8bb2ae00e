import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { InsertQueryNode, type KyselyPlugin, SelectQueryNode, sql } from 'kysely';
import { ApplicationError } from '../../src/applications/errors.ts';
import { verifyClientSecret } from '../../src/applications/secret.ts';
import { createChangeFeed } from '../../src/directory/change-feed.ts';
import { createDirectory } from '../../src/directory/builtin/create.ts';
import { createApplicationService } from '../../src/applications/service.ts';
import { builtinDirectoryReader } from '../../src/directory/builtin/reads.ts';
import type { ApplicationChange, ApplicationService } from '../../src/applications/types.ts';
import type { Config } from '../../src/config/load.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { testConfig } from '../helpers/config.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { connect, createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

const ACTOR = 'test:operator';

describe(`application service (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let config: Config;
  let service: ApplicationService;
  const changes: ApplicationChange[] = [];

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    config = testConfig(database);
    handle = connect(database);
    const now = Date.now();
    await handle.db
      .insertInto('state')
      .values([
        { name: 'Member', name_key: 'member', priority: 100, oidc_access: 1, created_at: now },
        { name: 'Blue', name_key: 'blue', priority: 50, oidc_access: 1, created_at: now },
      ])
      .execute();
    await handle.db
      .insertInto('auth_group')
      .values([
        { name: 'Wiki Editors', name_key: 'wiki editors', oidc_access: 0, created_at: now },
        { name: 'Directors', name_key: 'directors', oidc_access: 0, created_at: now },
      ])
      .execute();
    service = createApplicationService(handle.db, config, createLogger(config), {
      directory: builtinDirectoryReader(handle.db),
    });
    service.onChange((change) => changes.push(change));
  });
  after(async () => {
    await handle.close();
    await database.drop();
  });

  it('creates a confidential app with a 256-bit secret that is stored only as its SHA-256 digest', async () => {
    const { application, clientSecret } = await service.create(
      {
        name: 'Wiki',
        redirectUris: ['https://wiki.example.org/cb'],
        states: ['Member'],
        groups: ['Wiki Editors'],
      },
      ACTOR,
    );
    assert.ok(clientSecret !== null);
    assert.match(clientSecret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(clientSecret, 'base64url').length, 32);
    assert.match(application.clientId, /^[A-Za-z0-9]{32}$/);
    assert.equal(application.clientSecretSha256, createHash('sha256').update(clientSecret).digest('hex'));
    assert.deepEqual(application.grantTypes, ['authorization_code', 'refresh_token']);
    assert.equal(application.pkceRequired, true);
    assert.equal(application.createdBy, ACTOR);

    const row = await handle.db
      .selectFrom('application')
      .selectAll()
      .where('client_id', '=', application.clientId)
      .executeTakeFirstOrThrow();
    assert.ok(!JSON.stringify(row).includes(clientSecret), 'the secret text is not in the row');
    assert.equal(row.client_secret_sha256, application.clientSecretSha256);

    assert.equal(verifyClientSecret(application, clientSecret), true);
    assert.equal(verifyClientSecret(application, `${clientSecret}x`), false);
    assert.equal(verifyClientSecret(application, ''), false);
    assert.equal(verifyClientSecret(application, application.clientSecretSha256!), false);
    assert.deepEqual(changes.at(-1), {
      clientId: application.clientId,
      name: 'Wiki',
      action: 'created',
      actor: ACTOR,
    });
  });

  it('reads an app back with its whitelists by name in one query, and finds nothing for junk ids', async () => {
    const { application } = await service.create(
      {
        clientId: 'grafana-0001',
        name: 'Grafana',
        redirectUris: ['https://grafana.example.org/login/generic_oauth'],
        states: ['Member', 'Blue'],
        groups: ['Directors', 'Wiki Editors'],
        accessTokenFormat: 'jwt',
        backchannelLogoutUri: 'https://grafana.example.org/bcl',
        backchannelLogoutOnRevokeOnly: true,
        skipAuthorization: true,
      },
      ACTOR,
    );
    let queries = 0;
    const counter: KyselyPlugin = {
      transformQuery: (args) => {
        queries += 1;
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const counted = createApplicationService(handle.db.withPlugin(counter), config, createLogger(config), {
      directory: builtinDirectoryReader(handle.db),
    });
    const found = await counted.findByClientId('grafana-0001');
    assert.equal(queries, 1, 'one round trip for the app and both whitelists');
    assert.deepEqual(found, application);
    assert.deepEqual(found?.states, ['Blue', 'Member']);
    assert.deepEqual(found?.groups, ['Directors', 'Wiki Editors']);
    assert.equal(found?.accessTokenFormat, 'jwt');
    assert.equal(found?.backchannelLogoutOnRevokeOnly, true);
    assert.equal(found?.skipAuthorization, true);

    assert.equal(await service.findByClientId('nope-nope'), undefined);
    assert.equal(await service.findByClientId('grafana\0-0001'), undefined);
    assert.equal(await service.findByClientId('x'.repeat(500)), undefined);
  });

  it('creates a public client without a secret and refuses to turn its PKCE off', async () => {
    const { application, clientSecret } = await service.create(
      { name: 'Mobile', clientType: 'public', redirectUris: ['com.example.mobile:/cb'] },
      ACTOR,
    );
    assert.equal(clientSecret, null);
    assert.equal(application.clientSecretSha256, null);
    assert.equal(verifyClientSecret(application, ''), false);
    await assert.rejects(service.update(application.clientId, { pkceRequired: false }, ACTOR), {
      name: 'ApplicationError',
      message: /^pkce_required: public clients must require PKCE/,
    });
    await assert.rejects(service.rotateSecret(application.clientId, ACTOR), {
      message: /^client_type: application ".*" is a public client and has no secret/,
    });
  });

  it('validates a create in a dry run without writing, and refuses a missing or unprintable actor', async () => {
    const before = await service.list();
    const changeCount = changes.length;
    const dry = await service.create(
      { clientId: 'dry-run-app', name: 'Dry', redirectUris: ['https://dry.example/cb'] },
      ACTOR,
      { dryRun: true },
    );
    assert.equal(dry.clientSecret, null, 'no secret is generated in a dry run');
    assert.equal(dry.application.clientId, 'dry-run-app');
    assert.equal(await service.findByClientId('dry-run-app'), undefined);
    assert.deepEqual(await service.list(), before);
    assert.equal(changes.length, changeCount);
    for (const actor of ['', 'cli:\0root', 'x'.repeat(151)])
      await assert.rejects(service.create({ name: 'A', redirectUris: ['https://a.example/cb'] }, actor), {
        message: /^created_by: the actor must be 1–150 printable characters/,
      });
  });

  it('refuses bad input on every write path with the field and what would be valid', async () => {
    await assert.rejects(
      service.create({ name: 'X', redirectUris: ['https://x.example/cb'], states: ['Alumni'] }, ACTOR),
      (error: unknown) =>
        error instanceof ApplicationError &&
        error.code === 'invalid_input' &&
        error.message === 'states: unknown state "Alumni"; existing states: Blue, Member',
    );
    await assert.rejects(service.create({ name: 'X', redirectUris: ['https://x.example/c\0b'] }, ACTOR), {
      message: 'redirect_uris[0]: must not contain NUL bytes',
    });
    await assert.rejects(
      service.create({ name: 'X', clientId: 'grafana-0001', redirectUris: ['https://x.example/cb'] }, ACTOR),
      { message: 'client_id: "grafana-0001" is already taken; choose another or omit it' },
    );
    await assert.rejects(service.update('grafana-0001', { groups: ['Nobody'] }, ACTOR), {
      message: 'groups: unknown group "Nobody"; existing groups: Directors, Wiki Editors',
    });
    await assert.rejects(service.update('grafana-0001', { logoUrl: 'javascript:alert(1)' }, ACTOR), {
      message: 'logo_url: must be an https URL, not "javascript:"',
    });
    await assert.rejects(
      service.update('grafana-0001', { logoUrl: 'https://cdn:hunter2@cdn.example.org/logo.png' }, ACTOR),
      { message: /^logo_url: ".*" must not contain credentials \(user:password@\)$/ },
    );
    await assert.rejects(
      service.update('grafana-0001', { logoUrl: 'http://cdn.example.org/logo.png' }, ACTOR),
      {
        message: /^logo_url: "http:\/\/cdn\.example\.org\/logo\.png" must use https/,
      },
    );
    // C1 controls too: U+009B starts a terminal escape sequence as ESC [ does. And the line and
    // paragraph separators, where a log reader or an editor starts a new line. Each is named.
    for (const [name, named] of [
      ['Wiki\u001b[2J', 'U+001B, a control character'],
      ['Wiki\u009b2J', 'U+009B, a control character'],
      ['Wiki\u007f', 'U+007F, a control character'],
      ['Wiki\u2028x', 'U+2028, a line separator'],
      ['Wiki\u2029x', 'U+2029, a paragraph separator'],
    ]) {
      await assert.rejects(service.update('grafana-0001', { name }, ACTOR), {
        message: `name: must not contain ${named} (it can make the name show as something else, or break its line)`,
      });
    }
    await assert.rejects(service.update('missing-app', { name: 'Y' }, ACTOR), {
      message: 'client_id: no application with client_id "missing-app"',
    });
    await assert.rejects(service.deactivate('missing-app', ACTOR), (error: unknown) => {
      return error instanceof ApplicationError && error.code === 'not_found';
    });
    const production = createApplicationService(
      handle.db,
      { ...config, mode: 'production' },
      createLogger(config),
      { directory: builtinDirectoryReader(handle.db) },
    );
    await assert.rejects(production.create({ name: 'Z', redirectUris: ['http://z.example/cb'] }, ACTOR), {
      message: /^redirect_uris\[0\]: "http:\/\/z.example\/cb" must use https/,
    });
    const unchanged = await service.findByClientId('grafana-0001');
    assert.deepEqual(unchanged?.groups, ['Directors', 'Wiki Editors'], 'a refused update writes nothing');
  });

  it('updates fields and whitelists, reports what changed, and a dry run writes nothing', async () => {
    const before = (await service.findByClientId('grafana-0001'))!;
    const dry = await service.update('grafana-0001', { name: 'Grafana 2' }, ACTOR, { dryRun: true });
    assert.deepEqual(dry.changedFields, ['name']);
    assert.equal(dry.application.name, 'Grafana 2');
    assert.equal((await service.findByClientId('grafana-0001'))?.name, 'Grafana');

    const changesBefore = changes.length;
    const { application, changedFields } = await service.update(
      'grafana-0001',
      {
        name: 'Grafana 2',
        states: [],
        groups: ['Directors'],
        redirectUris: ['https://grafana.example.org/cb2', 'http://127.0.0.1:3000/cb'],
        grantTypes: ['authorization_code', 'client_credentials'],
        backchannelLogoutUri: null,
      },
      ACTOR,
    );
    assert.deepEqual(changedFields, [
      'name',
      'redirect_uris',
      'grant_types',
      'states',
      'groups',
      'backchannel_logout_uri',
    ]);
    assert.deepEqual(application.states, []);
    assert.deepEqual(application.groups, ['Directors']);
    assert.deepEqual(application.grantTypes, ['authorization_code', 'client_credentials']);
    assert.equal(application.backchannelLogoutUri, null);
    assert.equal(application.clientSecretSha256, before.clientSecretSha256, 'the secret is untouched');
    assert.equal(application.createdAt, before.createdAt);
    assert.deepEqual(await service.findByClientId('grafana-0001'), application);
    assert.deepEqual(changes.slice(changesBefore), [
      {
        clientId: 'grafana-0001',
        name: application.name,
        action: 'updated',
        actor: ACTOR,
        fields: changedFields,
      },
    ]);

    const same = await service.update('grafana-0001', { name: 'Grafana 2' }, ACTOR);
    assert.deepEqual(same.changedFields, []);
    assert.equal(changes.length, changesBefore + 1, 'no change, no notification');
    await assert.rejects(service.update('grafana-0001', { clientType: 'public' } as never, ACTOR), {
      message: 'client_type: cannot be changed; create a new application instead',
    });
  });

  it('rotates once when several rotations run at once, the others refused: every returned secret is the live one', async () => {
    const changeCount = changes.length;
    const outcomes = await Promise.allSettled(
      [1, 2, 3, 4].map(() => service.rotateSecret('grafana-0001', ACTOR)),
    );
    const rotated = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    assert.equal(rotated.length, 1, 'one rotation');
    const live = (await service.findByClientId('grafana-0001'))!;
    assert.equal(verifyClientSecret(live, rotated[0]!.value.clientSecret), true);
    for (const outcome of outcomes.filter((each) => each.status === 'rejected'))
      assert.match(
        (outcome.reason as Error).message,
        /^client_secret: the secret of application "grafana-0001" was already changed \(rotated\)/,
      );
    assert.equal(changes.length, changeCount + 1, 'one change notified');
    // A rotation asked for a secret that is no longer the stored one writes nothing.
    await assert.rejects(
      service.rotateSecret('grafana-0001', ACTOR, { expectedFingerprint: '0'.repeat(32) }),
      { name: 'ApplicationError', message: /was already changed \(rotated\)/ },
    );
    assert.equal((await service.findByClientId('grafana-0001'))!.clientSecretSha256, live.clientSecretSha256);
  });

  it('rotates the secret: the old one stops verifying, the new one works', async () => {
    const before = (await service.findByClientId('grafana-0001'))!;
    const dry = await service.rotateSecret('grafana-0001', ACTOR, { dryRun: true });
    assert.equal(dry.clientSecret, null);
    assert.equal(
      (await service.findByClientId('grafana-0001'))?.clientSecretSha256,
      before.clientSecretSha256,
    );

    const first = await service.rotateSecret('grafana-0001', ACTOR);
    const second = await service.rotateSecret('grafana-0001', ACTOR);
    assert.ok(first.clientSecret && second.clientSecret);
    assert.notEqual(first.clientSecret, second.clientSecret);
    const after = (await service.findByClientId('grafana-0001'))!;
    assert.equal(verifyClientSecret(after, second.clientSecret), true);
    assert.equal(verifyClientSecret(after, first.clientSecret), false);
    assert.deepEqual(changes.at(-1), {
      clientId: 'grafana-0001',
      name: 'Grafana 2',
      action: 'secret_rotated',
      actor: ACTOR,
    });
  });

  it('deactivates and activates, lists by activity and search, and isolates a failing listener', async () => {
    const unsubscribe = service.onChange(() => {
      throw new Error('listener bug');
    });
    const dry = await service.deactivate('grafana-0001', ACTOR, { dryRun: true });
    assert.equal(dry.active, false);
    assert.equal((await service.findByClientId('grafana-0001'))?.active, true);

    const inactive = await service.deactivate('grafana-0001', ACTOR);
    assert.equal(inactive.active, false);
    assert.deepEqual(changes.at(-1), {
      clientId: 'grafana-0001',
      name: 'Grafana 2',
      action: 'deactivated',
      actor: ACTOR,
    });
    unsubscribe();

    const all = await service.list();
    assert.deepEqual(
      all.map((app) => app.name),
      ['Grafana 2', 'Mobile', 'Wiki'],
    );
    assert.deepEqual(
      (await service.list({ active: false })).map((app) => app.clientId),
      ['grafana-0001'],
    );
    assert.deepEqual(
      (await service.list({ active: true })).map((app) => app.name),
      ['Mobile', 'Wiki'],
    );
    assert.deepEqual(
      (await service.list({ search: 'GRAF' })).map((app) => app.clientId),
      ['grafana-0001'],
    );
    assert.deepEqual(await service.list({ search: '%' }), [], 'LIKE wildcards are literal');

    const active = await service.activate('grafana-0001', ACTOR);
    assert.equal(active.active, true);
    assert.equal(changes.at(-1)?.action, 'activated');
  });

  it('refuses an update made on a version of the application changed since (expectedVersion), writing nothing; without one the update applies', async () => {
    const { application: shown } = await service.create(
      { name: 'Versioned', redirectUris: ['https://versioned.example.org/cb'], states: ['Member', 'Blue'] },
      ACTOR,
    );
    const narrowed = await service.update(shown.clientId, { states: ['Member'] }, ACTOR, {
      expectedVersion: shown.updatedAt,
    });
    assert.ok(narrowed.application.updatedAt > shown.updatedAt, 'the version moved on');
    const changeCount = changes.length;
    // Values shown before the narrowing, Blue among them: refused, Blue not put back; a dry run too.
    for (const dryRun of [true, false]) {
      await assert.rejects(
        service.update(shown.clientId, { name: 'Versioned 2', states: ['Member', 'Blue'] }, ACTOR, {
          expectedVersion: shown.updatedAt,
          dryRun,
        }),
        (error: unknown) =>
          error instanceof ApplicationError &&
          error.code === 'conflict' &&
          /^version: application "[^"]+" was changed since the values of this update were shown \(last changed at \d{4}-\d\d-\d\dT[\d:.]+Z\); nothing was written/.test(
            error.message,
          ),
      );
    }
    assert.deepEqual(await service.findByClientId(shown.clientId), narrowed.application, 'nothing written');
    assert.equal(changes.length, changeCount, 'nobody told of a change');
    // Without a version (the CLI names the fields it changes), the update applies to what is stored.
    const renamed = await service.update(shown.clientId, { name: 'Versioned 2' }, ACTOR);
    assert.deepEqual([renamed.application.name, renamed.application.states], ['Versioned 2', ['Member']]);
  });

  it('an edit that read the application before another operator switched it off or on neither undoes the switch nor writes', async () => {
    // The edit is validated against the application as it read it; its new back-channel URI's check
    // (DNS, up to 3 s in production) is held open here while another operator switches the application.
    let gate: { reached: () => void; released: Promise<void> } | undefined;
    const slow = createApplicationService(handle.db, config, createLogger(config), {
      directory: builtinDirectoryReader(handle.db),
      backchannelTargetCheck: async () => {
        gate?.reached();
        await gate?.released;
        return { ok: true };
      },
    });
    const { application } = await service.create(
      {
        name: 'Switched meanwhile',
        redirectUris: ['https://switched.example.org/cb'],
        backchannelLogoutUri: 'https://switched.example.org/logout',
      },
      ACTOR,
    );
    for (const [switchTo, expected] of [
      [(id: string) => service.deactivate(id, 'admin:bob'), false],
      [(id: string) => service.activate(id, 'admin:bob'), true],
    ] as const) {
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const reached = new Promise<void>((resolve) => (gate = { reached: resolve, released }));
      const edit = slow.update(
        application.clientId,
        { name: 'Renamed by alice', backchannelLogoutUri: 'https://switched.example.org/logout-v2' },
        'admin:alice',
      );
      await reached;
      await switchTo(application.clientId);
      release();
      await assert.rejects(
        edit,
        (error: unknown) => error instanceof ApplicationError && error.code === 'conflict',
      );
      const stored = (await service.findByClientId(application.clientId))!;
      assert.equal(stored.active, expected, 'the switch stands');
      assert.equal(stored.name, 'Switched meanwhile', 'the edit wrote nothing');
    }
  });

  it('an edit of the whitelists that read the application before its group was renamed does not put the old name back', async () => {
    const feed = createChangeFeed();
    feed.subscribe(service.onDirectoryChange);
    const directory = createDirectory(handle.db, undefined, feed);
    await directory.createGroup('Fleet Command');
    let reached!: () => void;
    let release!: () => void;
    const atCheck = new Promise<void>((resolve) => (reached = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    const slow = createApplicationService(handle.db, config, createLogger(config), {
      directory: builtinDirectoryReader(handle.db),
      backchannelTargetCheck: async () => {
        reached();
        await released;
        return { ok: true };
      },
    });
    const { application } = await service.create(
      { name: 'Renamed group', redirectUris: ['https://renamed.example.org/cb'], groups: ['Fleet Command'] },
      ACTOR,
    );
    const edit = slow.update(
      application.clientId,
      {
        groups: ['Fleet Command', 'Wiki Editors'],
        backchannelLogoutUri: 'https://renamed.example.org/logout',
      },
      'admin:alice',
    );
    await atCheck;
    await directory.renameGroup('Fleet Command', 'Fleet Council');
    release();
    await edit.catch((error: unknown) => {
      if (!(error instanceof ApplicationError && error.code === 'conflict')) throw error;
    });
    const stored = (await service.findByClientId(application.clientId))!;
    assert.equal(stored.groups.includes('Fleet Command'), false, 'no whitelist names the old name');
    assert.ok(stored.groups.includes('Fleet Council'), 'the rename stands');
  });

  it('loads URIs stored before hidden characters, bad escapes and undecodable hosts were refused, and keeps them on an edit of something else', async () => {
    const { application } = await service.create(
      { name: 'Stored before', redirectUris: ['https://before.example.org/cb'] },
      ACTOR,
    );
    const redirect = 'https://before.example.org/cb\u202e';
    const postLogout = 'https://xn--/bye';
    const logo = 'https://before.example.org/logo%zz.png';
    const backchannel = 'https://before\u200b.example.org/bcl';
    // As another release, or another tool, wrote them.
    await handle.db
      .updateTable('application')
      .set({
        redirect_uris: JSON.stringify([redirect]),
        post_logout_redirect_uris: JSON.stringify([postLogout]),
        logo_url: logo,
        backchannel_logout_uri: backchannel,
      })
      .where('client_id', '=', application.clientId)
      .execute();
    const loaded = (await service.findByClientId(application.clientId))!;
    assert.deepEqual(
      [loaded.redirectUris, loaded.postLogoutRedirectUris, loaded.logoUrl, loaded.backchannelLogoutUri],
      [[redirect], [postLogout], logo, backchannel],
    );
    const renamed = await service.update(application.clientId, { name: 'Stored before, renamed' }, ACTOR);
    assert.deepEqual(renamed.changedFields, ['name']);
    assert.equal(renamed.application.backchannelLogoutUri, backchannel);
    // Given anew (here: to another application), each is refused, naming its field.
    await assert.rejects(
      service.create(
        {
          name: 'New',
          redirectUris: [redirect],
          postLogoutRedirectUris: [postLogout],
          logoUrl: logo,
          backchannelLogoutUri: backchannel,
        },
        ACTOR,
      ),
      (error: unknown) => {
        assert.ok(error instanceof ApplicationError);
        assert.deepEqual(
          error.issues.map((issue) => issue.field),
          ['logo_url', 'redirect_uris[0]', 'post_logout_redirect_uris[0]', 'backchannel_logout_uri'],
        );
        assert.match(
          error.message,
          /backchannel_logout_uri: "https:\/\/before\\u200b\.example\.org\/bcl" contains U\+200B/,
        );
        return true;
      },
    );
    // Changed, the back-channel URI is judged by the new rules.
    await assert.rejects(
      service.update(application.clientId, { backchannelLogoutUri: `${backchannel}/2` }, ACTOR),
      { message: /^backchannel_logout_uri: ".*" contains U\+200B, an invisible character/ },
    );
  });

  it('a secret rotation moves the version on even when it ran ahead of this clock: an edit read before never matches again', async () => {
    const { application } = await service.create(
      { name: 'Clock ahead', redirectUris: ['https://ahead.example.org/cb'] },
      ACTOR,
    );
    // Written last by an instance whose clock runs a minute ahead (or versioned within one millisecond).
    const ahead = Date.now() + 60_000;
    await handle.db
      .updateTable('application')
      .set({ updated_at: ahead })
      .where('client_id', '=', application.clientId)
      .execute();
    await service.rotateSecret(application.clientId, ACTOR);
    const rotated = (await service.findByClientId(application.clientId))!.updatedAt;
    assert.ok(rotated > ahead, `the version grew (${rotated} after ${ahead})`);
    // An edit prepared on the row as read before the rotation now conflicts, even once the other
    // instance's next write versions it again.
    await service.deactivate(application.clientId, ACTOR);
    const after = (await service.findByClientId(application.clientId))!.updatedAt;
    assert.ok(after > rotated && after !== ahead, 'no later version repeats one an edit may hold');
  });

  it('two operators activating one application at once: one activation, one change told', async () => {
    const { application } = await service.create(
      { name: 'Activated twice', redirectUris: ['https://twice.example.org/cb'] },
      ACTOR,
    );
    await service.deactivate(application.clientId, ACTOR);
    const before = changes.length;
    const results = await Promise.all([
      service.activate(application.clientId, 'admin:alice'),
      service.activate(application.clientId, 'admin:bob'),
    ]);
    assert.deepEqual(
      results.map((app) => app.active),
      [true, true],
    );
    assert.deepEqual(
      changes.slice(before).map((change) => change.action),
      ['activated'],
    );
  });

  /**
   * Another connection that writes application `clientId` when told (`write`), as a create running at
   * the same moment as one under test would. SQLite: at once, on a connection of its own. PostgreSQL:
   * the row is inserted now in a transaction held open, committed when told.
   */
  async function twinWriter(clientId: string): Promise<{ write(): void; done(): Promise<void> }> {
    const columns =
      'application (client_id, name, redirect_uris, post_logout_redirect_uris, client_type, grant_types, created_at, updated_at)';
    if (handle.kind === 'sqlite') {
      const other = new BetterSqlite3(handle.sqlite!.name);
      let written = false;
      return {
        write() {
          if (!written)
            other
              .prepare(`insert into ${columns} values (?, ?, '[]', '[]', 'public', '[]', 1, 1)`)
              .run(clientId, clientId);
          written = true;
        },
        done: async () => void other.close(),
      };
    }
    const other = connect(database);
    let commit!: () => void;
    const commitAsked = new Promise<void>((resolve) => (commit = resolve));
    let inserted!: () => void;
    const insertDone = new Promise<void>((resolve) => (inserted = resolve));
    const transaction = other.db.connection().execute(async (connection) => {
      await sql`begin`.execute(connection);
      await sql`insert into ${sql.raw(columns)} values (${clientId}, ${clientId}, '[]', '[]', 'public', '[]', 1, 1)`.execute(
        connection,
      );
      inserted();
      await commitAsked;
      await sql`commit`.execute(connection);
    });
    await Promise.race([insertDone, transaction]);
    return {
      write: commit,
      async done() {
        commit();
        await transaction;
        await other.close();
      },
    };
  }

  it('refuses a client_id that a create running at the same moment took after this one read it free, as the read would', async () => {
    for (const [clientId, twin, refusal] of [
      [
        'Race-Wiki',
        'race-wiki',
        /^client_id: "Race-Wiki" differs only in case from the client_id of application "race-wiki", which would be easily mistaken for it; choose another or omit it$/,
      ],
      ['race-forum', 'race-forum', /^client_id: "race-forum" is already taken; choose another or omit it$/],
    ] as const) {
      const writer = await twinWriter(twin);
      // The service reads its clock once it has found the client_id free, before its insert: the
      // other create's row is written there.
      const racing = createApplicationService(handle.db, config, createLogger(config), {
        directory: builtinDirectoryReader(handle.db),
        now: () => {
          writer.write();
          return Date.now();
        },
      });
      try {
        await assert.rejects(
          racing.create({ clientId, name: clientId, redirectUris: ['https://race.example.org/cb'] }, ACTOR),
          (error) => {
            assert.ok(error instanceof ApplicationError, `an ApplicationError, not ${String(error)}`);
            assert.equal(error.code, 'conflict');
            assert.match(error.message, refusal);
            return true;
          },
        );
      } finally {
        await writer.done();
      }
      const stored = await handle.db
        .selectFrom('application')
        .select('client_id')
        .where(sql<string>`lower(client_id)`, '=', twin)
        .execute();
      assert.deepEqual(
        stored.map((row) => row.client_id),
        [twin],
      );
    }
  });

  /**
   * A connection of its own to the test database that a test makes fail at once (`fail`): PostgreSQL
   * behind a relay that then drops every connection and refuses new ones; SQLite closed under it.
   */
  async function failingDatabase(): Promise<{
    db: DatabaseHandle['db'];
    fail(): void;
    close(): Promise<void>;
  }> {
    if (testDatabaseKind === 'sqlite') {
      const own = connect(database);
      return { db: own.db, fail: () => own.sqlite!.close(), close: () => own.close() };
    }
    const url = new URL(database.url);
    const proxy = await startTcpProxy(url.hostname, Number(url.port || 5432));
    const own = openDatabase({ kind: 'postgres', url: proxy.wrap(database.url) });
    return {
      db: own.db,
      fail: () => proxy.cut(),
      async close() {
        await own.close();
        await proxy.close();
      },
    };
  }

  it('refuses a client_id a create at the same moment took, as taken, when the database fails before it can read who took it; the failure is logged', async () => {
    const failing = await failingDatabase();
    const writer = await twinWriter('lost-read-wiki');
    // The database fails once the insert was tried: the read that follows it (which application
    // holds the client_id) is the first to meet the failure.
    let inserted = false;
    const failAfterInsert: KyselyPlugin = {
      transformQuery: (args) => {
        if (InsertQueryNode.is(args.node)) inserted = true;
        else if (inserted && SelectQueryNode.is(args.node)) failing.fail();
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const lines: string[] = [];
    const racing = createApplicationService(
      failing.db.withPlugin(failAfterInsert),
      config,
      createLogger(config, {
        level: 'warn',
        destination: { write: (line: string) => void lines.push(line) },
      }),
      {
        directory: builtinDirectoryReader(handle.db),
        now: () => {
          writer.write();
          return Date.now();
        },
      },
    );
    try {
      await assert.rejects(
        racing.create(
          { clientId: 'Lost-Read-Wiki', name: 'Lost read', redirectUris: ['https://race.example.org/cb'] },
          ACTOR,
        ),
        (error) => {
          assert.ok(error instanceof ApplicationError, `an ApplicationError, not ${String(error)}`);
          assert.equal(error.code, 'conflict');
          assert.equal(
            error.message,
            'client_id: "Lost-Read-Wiki" was taken by an application created at the same moment (with this client_id, or one that differs from it only in case); nothing was created: choose another or omit it',
          );
          return true;
        },
      );
      assert.ok(inserted, 'the insert was tried');
    } finally {
      await writer.done();
      await failing.close();
    }
    const logged = lines.map(
      (line) =>
        JSON.parse(line) as { level: number; msg: string; clientId?: string; err?: { message?: string } },
    );
    const warning = logged.find((line) => line.msg.includes('reading which application holds it failed'));
    assert.ok(warning, `a warning names the failed read: ${lines.join('')}`);
    assert.equal(warning.level, 40);
    assert.equal(warning.clientId, 'Lost-Read-Wiki');
    assert.ok(warning.err?.message, "with the read's error");
    const stored = await handle.db
      .selectFrom('application')
      .select('client_id')
      .where(sql<string>`lower(client_id)`, '=', 'lost-read-wiki')
      .execute();
    assert.deepEqual(
      stored.map((row) => row.client_id),
      ['lost-read-wiki'],
    );
  });

  it('keeps whitelist rows with their app, and refuses to delete a whitelisted state', async () => {
    const feed = createChangeFeed();
    feed.subscribe(service.onDirectoryChange);
    const directory = createDirectory(handle.db, undefined, feed);
    await assert.rejects(directory.deleteState('Member'), {
      message: /^refusing to delete state "Member": applications? .*whitelists? it; remove it first/,
    });
    const wiki = (await service.list({ search: 'wiki' }))[0]!;
    assert.deepEqual(wiki.states, ['Member']);
    await handle.db.deleteFrom('application').where('client_id', '=', wiki.clientId).execute();
    const orphans = await handle.db
      .selectFrom('application_whitelist')
      .select('name')
      .where('client_id', '=', wiki.clientId)
      .execute();
    assert.deepEqual(orphans, []);
  });
});
