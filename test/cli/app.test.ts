import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { verifyClientSecret } from '../../src/applications/secret.ts';
import { createApplicationService } from '../../src/applications/service.ts';
import { builtinDirectoryReader } from '../../src/directory/builtin/reads.ts';
import type { ApplicationService } from '../../src/applications/types.ts';
import { type DatabaseHandle, openDatabase } from '../../src/db/connect.ts';
import { createLogger } from '../../src/logging/logger.ts';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import { cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

describe(`aa-oidc app (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let service: ApplicationService;

  function cli(...args: string[]): Promise<CliResult> {
    return runCli(args, testEnv(database));
  }

  async function ok(...args: string[]): Promise<string> {
    const result = await cli(...args);
    assert.equal(result.code, 0, `aa-oidc ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout;
  }

  before(async () => {
    database = await createTestDatabase();
    const config = testConfig(database);
    await ok('migrate');
    handle = openDatabase(config.database);
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
      .values({ name: 'Wiki Editors', name_key: 'wiki editors', oidc_access: 0, created_at: now })
      .execute();
    service = createApplicationService(handle.db, config, createLogger(config), {
      directory: builtinDirectoryReader(handle.db),
    });
  });
  after(async () => {
    await handle?.close();
    await database.drop();
  });

  it('creates, lists, shows, updates, rotates and deactivates, never printing a secret except once', async () => {
    const created = JSON.parse(
      await ok(
        'app',
        'create',
        '--name',
        'Wiki',
        '--redirect-uri',
        'https://wiki.example.org/cb',
        '--redirect-uri',
        'http://127.0.0.1:8080/cb',
        '--state',
        'Member',
        '--group',
        'Wiki Editors',
        '--access-token-format',
        'jwt',
        '--format',
        'json',
      ),
    ) as Record<string, unknown>;
    const clientId = created.client_id as string;
    const firstSecret = created.client_secret as string;
    assert.match(clientId, /^[A-Za-z0-9_-]{20,}$/);
    assert.equal(Buffer.from(firstSecret, 'base64url').length, 32, 'a 256-bit secret');
    assert.deepEqual(created.states, ['Member']);
    assert.deepEqual(created.grant_types, ['authorization_code', 'refresh_token']);
    const stored = (await service.findByClientId(clientId))!;
    assert.equal(verifyClientSecret(stored, firstSecret), true);

    const textCreate = await ok(
      'app',
      'create',
      '--name',
      'Grafana',
      '--client-id',
      'grafana-prod',
      '--redirect-uri',
      'https://grafana.example.org/login/generic_oauth',
      '--grant-type',
      'authorization_code',
      '--grant-type',
      'client_credentials',
    );
    const textSecret = /^client_secret: (\S+)$/m.exec(textCreate)?.[1];
    assert.ok(textSecret, `the text output shows the secret:\n${textCreate}`);
    assert.match(textCreate, /will not be shown again/);
    assert.match(textCreate, /^client_id: +grafana-prod$/m);

    const secrets = [firstSecret, textSecret, stored.clientSecretSha256!];
    const views = await Promise.all([
      ok('app', 'list'),
      ok('app', 'list', '--format', 'json'),
      ok('app', 'list', '--format', 'csv'),
      ok('app', 'show', clientId),
      ok('app', 'show', clientId, '--format', 'json'),
      ok('app', 'show', 'grafana-prod', '--format', 'csv'),
    ]);
    for (const view of views) {
      for (const secret of secrets) assert.ok(!view.includes(secret), `no secret or digest in:\n${view}`);
    }
    const [table, json, csv, showTable, showJson, showCsv] = views as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    assert.match(table, /^CLIENT_ID +NAME +TYPE +ACTIVE/);
    assert.match(table, /grafana-prod +Grafana +confidential +yes +authorization_code client_credentials/);
    assert.deepEqual(
      (JSON.parse(json) as Array<{ name: string }>).map((app) => app.name),
      ['Grafana', 'Wiki'],
    );
    assert.equal(csv.split('\r\n')[0]!.split(',')[0], 'client_id');
    assert.equal(csv.trimEnd().split('\r\n').length, 3);
    assert.match(showTable, /^states +Member$/m);
    assert.match(showTable, /^access_token_format +jwt$/m);
    assert.equal((JSON.parse(showJson) as { client_id: string }).client_id, clientId);
    assert.match(showCsv, /\r\ngrafana-prod,Grafana,confidential,true,/);

    const refused = await cli(
      'app',
      'create',
      '--name',
      'Bad',
      '--redirect-uri',
      'https://x.example/cb',
      '--state',
      'Alumni',
    );
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'aa-oidc: states: unknown state "Alumni"; existing states: Blue, Member\n');
    const missing = await cli('app', 'show', 'no-such-app');
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'aa-oidc: client_id: no application with client_id "no-such-app"\n');

    const dryUpdate = await ok('app', 'update', clientId, '--add-state', 'Blue', '--dry-run');
    assert.match(dryUpdate, /dry run, nothing written: would change states/);
    assert.deepEqual((await service.findByClientId(clientId))?.states, ['Member']);
    const updated = await ok(
      'app',
      'update',
      clientId,
      '--add-state',
      'Blue',
      '--remove-redirect-uri',
      'http://127.0.0.1:8080/cb',
      '--clear-groups',
      '--name',
      'Wiki.js',
    );
    assert.equal(updated, `updated application ${clientId}: name, redirect_uris, states, groups\n`);
    const afterUpdate = (await service.findByClientId(clientId))!;
    assert.deepEqual(afterUpdate.states, ['Blue', 'Member']);
    assert.deepEqual(afterUpdate.groups, []);
    assert.deepEqual(afterUpdate.redirectUris, ['https://wiki.example.org/cb']);
    const badUpdate = await cli('app', 'update', clientId, '--logo-url', 'javascript:alert(1)');
    assert.equal(badUpdate.code, 1);
    assert.equal(badUpdate.stderr, 'aa-oidc: logo_url: must be an https URL, not "javascript:"\n');

    const rotated = JSON.parse(await ok('app', 'rotate-secret', clientId, '--format', 'json')) as {
      client_id: string;
      client_secret: string;
    };
    assert.equal(rotated.client_id, clientId);
    assert.notEqual(rotated.client_secret, firstSecret);
    const afterRotation = (await service.findByClientId(clientId))!;
    assert.equal(verifyClientSecret(afterRotation, rotated.client_secret), true);
    assert.equal(verifyClientSecret(afterRotation, firstSecret), false);

    assert.match(await ok('app', 'deactivate', clientId, '--dry-run'), /would be deactivated/);
    assert.equal((await service.findByClientId(clientId))?.active, true);
    assert.equal(await ok('app', 'deactivate', clientId), `application ${clientId} deactivated\n`);
    const [inactive, active] = await Promise.all([
      ok('app', 'list', '--inactive', '--format', 'json'),
      ok('app', 'list', '--active', '--format', 'json'),
    ]);
    assert.deepEqual(
      (JSON.parse(inactive) as Array<{ client_id: string }>).map((app) => app.client_id),
      [clientId],
    );
    assert.deepEqual(
      (JSON.parse(active) as Array<{ client_id: string }>).map((app) => app.client_id),
      ['grafana-prod'],
    );
  });

  it('round-trips --id-token-claims through create, show, list and update, and refuses a value', async () => {
    const created = JSON.parse(
      await ok(
        'app',
        'create',
        '--name',
        'oauth2-proxy',
        '--client-id',
        'oauth2-proxy',
        '--redirect-uri',
        'https://proxy.example.org/oauth2/callback',
        '--id-token-claims',
        '--format',
        'json',
      ),
    ) as Record<string, unknown>;
    assert.equal(created.id_token_claims, true);
    assert.equal((await service.findByClientId('oauth2-proxy'))?.idTokenClaims, true);
    assert.match(await ok('app', 'show', 'oauth2-proxy'), /^id_token_claims +true$/m);
    const listed = JSON.parse(await ok('app', 'list', '--format', 'json')) as Array<Record<string, unknown>>;
    assert.equal(listed.find((app) => app.client_id === 'oauth2-proxy')?.id_token_claims, true);
    assert.equal(
      listed.find((app) => app.client_id === 'grafana-prod')?.id_token_claims,
      false,
      'off unless asked for',
    );

    assert.equal(
      await ok('app', 'update', 'oauth2-proxy', '--no-id-token-claims'),
      'updated application oauth2-proxy: id_token_claims\n',
    );
    const shown = JSON.parse(await ok('app', 'show', 'oauth2-proxy', '--format', 'json')) as {
      id_token_claims: boolean;
    };
    assert.equal(shown.id_token_claims, false);
    assert.equal(
      await ok('app', 'update', 'oauth2-proxy', '--id-token-claims'),
      'updated application oauth2-proxy: id_token_claims\n',
    );
    assert.equal((await service.findByClientId('oauth2-proxy'))?.idTokenClaims, true);

    const refused = await cli('app', 'update', 'oauth2-proxy', '--id-token-claims=no');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /--id-token-claims/);
    assert.equal((await service.findByClientId('oauth2-proxy'))?.idTokenClaims, true, 'nothing changed');
  });

  it('creates a public app (no secret, PKCE required) and a confidential one without PKCE, skipping consent, as scripts ask', async () => {
    const publicApp = JSON.parse(
      await ok(
        'app',
        'create',
        '--name',
        'Desktop tool',
        '--client-id',
        'desktop-tool',
        '--redirect-uri',
        'http://127.0.0.1/callback',
        '--post-logout-redirect-uri',
        'http://127.0.0.1/bye',
        '--public',
        '--format',
        'json',
      ),
    ) as Record<string, unknown>;
    assert.equal(publicApp.client_id, 'desktop-tool');
    assert.equal(publicApp.client_secret, null, 'a public client has no secret');
    assert.equal(publicApp.client_type, 'public');
    assert.equal(publicApp.pkce_required, true);
    assert.deepEqual(publicApp.post_logout_redirect_uris, ['http://127.0.0.1/bye']);
    const stored = (await service.findByClientId('desktop-tool'))!;
    assert.equal(stored.clientType, 'public');
    assert.equal(stored.clientSecretSha256, null);

    const refused = await cli(
      'app',
      'create',
      '--name',
      'Careless tool',
      '--redirect-uri',
      'http://127.0.0.1/callback',
      '--public',
      '--no-pkce-required',
    );
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^aa-oidc: pkce_required: public clients must require PKCE/m);

    const legacy = JSON.parse(
      await ok(
        'app',
        'create',
        '--name',
        'Legacy wiki',
        '--client-id',
        'legacy-wiki',
        '--redirect-uri',
        'https://legacy.example.org/cb',
        '--no-pkce-required',
        '--skip-authorization',
        '--format',
        'json',
      ),
    ) as Record<string, unknown>;
    assert.equal(legacy.client_type, 'confidential');
    assert.equal(typeof legacy.client_secret, 'string');
    assert.equal(legacy.pkce_required, false);
    assert.equal(legacy.skip_authorization, true);
    const legacyStored = (await service.findByClientId('legacy-wiki'))!;
    assert.equal(legacyStored.pkceRequired, false);
    assert.equal(legacyStored.skipAuthorization, true);
    assert.equal(verifyClientSecret(legacyStored, legacy.client_secret as string), true);
  });

  it('refuses a --client-id that differs from an existing one only in case, naming it', async () => {
    const redirect = ['--redirect-uri', 'https://case.example.org/cb'];
    await ok('app', 'create', '--name', 'Case', '--client-id', 'Case-Wiki', ...redirect);
    for (const dryRun of [['--dry-run'], []]) {
      const refused = await cli(
        'app',
        'create',
        '--name',
        'Case 2',
        '--client-id',
        'case-wiki',
        ...redirect,
        ...dryRun,
      );
      assert.equal(refused.code, 1, refused.stderr);
      assert.equal(refused.stdout, '');
      assert.equal(
        refused.stderr,
        'aa-oidc: client_id: "case-wiki" differs only in case from the client_id of application "Case-Wiki", which would be easily mistaken for it; choose another or omit it\n',
      );
    }
    assert.equal(await service.findByClientId('case-wiki'), undefined);
  });

  it('refuses --x together with --no-x, naming both, whichever comes last', async () => {
    for (const flag of [
      'skip-authorization',
      'pkce-required',
      'debug-mode',
      'backchannel-logout-on-revoke-only',
      'id-token-claims',
    ]) {
      for (const args of [
        [`--${flag}`, `--no-${flag}`],
        [`--no-${flag}`, '--name', 'Proxy', `--${flag}`],
      ]) {
        const refused = await cli('app', 'update', 'oauth2-proxy', ...args, '--dry-run');
        assert.equal(refused.code, 1, `${args.join(' ')}: ${refused.stderr}`);
        assert.equal(refused.stdout, '');
        assert.equal(refused.stderr, `aa-oidc: --${flag} cannot be combined with --no-${flag}\n`);
      }
    }
    const before = await service.findByClientId('oauth2-proxy');
    const refused = await cli(
      'app',
      'update',
      'oauth2-proxy',
      '--skip-authorization',
      '--no-skip-authorization',
    );
    assert.equal(refused.code, 1);
    assert.deepEqual(await service.findByClientId('oauth2-proxy'), before, 'nothing changed');
    // The same negation given twice is no contradiction.
    assert.equal(
      (await cli('app', 'update', 'oauth2-proxy', '--no-debug-mode', '--no-debug-mode', '--dry-run')).code,
      0,
    );
  });
  it('app update keeps a redirect URI with a * in its host stored before such were refused, and refuses a new one; check warns (W013)', async () => {
    const { application } = await service.create(
      {
        clientId: 'star-wiki',
        name: 'Star wiki',
        redirectUris: ['https://rp.example.org/cb'],
        states: ['Member', 'Blue'],
      },
      'cli:test',
    );
    // Written as an earlier version took it: the * stored as a literal host.
    await handle.db
      .updateTable('application')
      .set({
        redirect_uris: JSON.stringify(['https://rp.example.org/cb', 'https://*.example.org/cb']),
        post_logout_redirect_uris: JSON.stringify(['https://*.example.org/']),
      })
      .where('client_id', '=', application.clientId)
      .execute();

    await ok('app', 'update', 'star-wiki', '--remove-state', 'Blue');
    await ok(
      'app',
      'update',
      'star-wiki',
      '--remove-redirect-uri',
      'https://rp.example.org/cb',
      '--add-redirect-uri',
      'https://wiki.example.org/cb',
    );
    const kept = (await service.findByClientId('star-wiki'))!;
    assert.deepEqual(kept.states, ['Member']);
    assert.deepEqual(kept.redirectUris, ['https://*.example.org/cb', 'https://wiki.example.org/cb']);
    assert.deepEqual(kept.postLogoutRedirectUris, ['https://*.example.org/']);

    for (const args of [
      ['--add-redirect-uri', 'https://*.other.example.org/cb'],
      // Kept in the list it was stored in only.
      ['--add-post-logout-redirect-uri', 'https://*.example.org/cb'],
    ]) {
      const refused = await cli('app', 'update', 'star-wiki', '--remove-state', 'Member', ...args);
      assert.notEqual(refused.code, 0, args.join(' '));
      assert.match(
        refused.stderr,
        new RegExp(`"${args[1]!.replace(/[.*]/g, '\\$&')}" has a \\* in its host`),
      );
    }
    assert.deepEqual((await service.findByClientId('star-wiki'))!.states, ['Member'], 'nothing written');

    const check = await ok('check');
    assert.match(
      check,
      /^W013 warning: application star-wiki has the redirect URI "https:\/\/\*\.example\.org\/cb", with a \* in its host/m,
    );
    assert.match(
      check,
      /^W013 warning: application star-wiki has the post-logout redirect URI "https:\/\/\*\.example\.org\/"/m,
    );
    await ok(
      'app',
      'update',
      'star-wiki',
      '--remove-redirect-uri',
      'https://*.example.org/cb',
      '--clear-post-logout-redirect-uris',
    );
    assert.doesNotMatch(await ok('check'), /W013/);
  });

  it('app show and aa-oidc check (W009) tell a secret still held as the imported PBKDF2 hash, never the hash, until the first success or a rotation', async () => {
    const secret = 'plugin-secret-0123456789abcdefghijklmnopqrstuvwxyz';
    const hash = await makeDjangoPbkdf2(secret, 1000);
    const [, , salt, digest] = hash.split('$') as [string, string, string, string];
    const redirectUris = ['https://rp.example.org/cb'];
    for (const clientId of ['imported-wiki', 'imported-forum'])
      await service.create({ clientId, name: clientId, redirectUris }, 'import:plugin-apps', {
        importedSecret: { djangoPbkdf2: hash },
      });

    const views = await Promise.all([
      ok('app', 'show', 'imported-wiki'),
      ok('app', 'show', 'imported-wiki', '--format', 'json'),
      ok('app', 'show', 'imported-wiki', '--format', 'csv'),
      ok('app', 'list', '--format', 'json'),
      ok('check'),
    ]);
    for (const view of views) {
      assert.equal(view.includes(salt), false, `never the salt:\n${view}`);
      assert.equal(view.includes(digest), false, `never the digest:\n${view}`);
    }
    const [table, json, csv, list, check] = views as [string, string, string, string, string];
    assert.match(table, /^imported_secret_hash +true$/m);
    assert.match(table, /^imported_secret_iterations +1000$/m);
    assert.match(
      table,
      /^its client secret is still the PBKDF2 hash imported from the Python plugin \(1000 iterations\): .*`aa-oidc app rotate-secret imported-wiki` ends it now$/m,
    );
    const shown = JSON.parse(json) as Record<string, unknown>;
    assert.equal(shown.imported_secret_hash, true);
    assert.equal(shown.imported_secret_iterations, 1000);
    const [header, row] = csv.trimEnd().split('\r\n') as [string, string];
    assert.match(header, /,imported_secret_hash,imported_secret_iterations$/);
    assert.match(row, /,true,1000$/);
    const listed = JSON.parse(list) as Array<Record<string, unknown>>;
    assert.equal(listed.find((app) => app.client_id === 'imported-forum')?.imported_secret_hash, true);
    assert.equal(listed.find((app) => app.client_id === 'grafana-prod')?.imported_secret_hash, false);
    assert.match(
      check,
      /^W009 warning: application "imported-wiki" \(imported-wiki\) still holds a client secret imported from the Python plugin as a PBKDF2 hash \(1000 iterations\)/m,
    );
    assert.match(check, /^W009 warning: application "imported-forum" \(imported-forum\)/m);

    // The relying party's first success replaces the hash; a rotation ends it too.
    assert.deepEqual(await service.verifyImportedSecret('imported-wiki', secret), {
      against: 'hash',
      matches: true,
    });
    await ok('app', 'rotate-secret', 'imported-forum');
    for (const clientId of ['imported-wiki', 'imported-forum']) {
      const after = JSON.parse(await ok('app', 'show', clientId, '--format', 'json')) as Record<
        string,
        unknown
      >;
      assert.equal(after.imported_secret_hash, false, clientId);
      assert.equal(after.imported_secret_iterations, null, clientId);
      assert.doesNotMatch(await ok('app', 'show', clientId), /Python plugin/);
    }
    assert.doesNotMatch(await ok('check'), /W009/);
  });
});
