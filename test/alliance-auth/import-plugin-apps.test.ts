import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { sql } from 'kysely';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import { clientSecretDigest } from '../../src/applications/secret.ts';
import {
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  allianceAuthEnv,
  allianceAuthDirectory,
  FIXTURE_PASSWORD,
  type AllianceAuthTestDatabase,
} from '../helpers/alliance-auth.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { connect, createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { authorizeParams, codeFrom, tokenRequest } from '../helpers/flows.ts';
import { authorizeUrl, basicAuth, Browser, postForm, signIn, startServer } from '../helpers/server.ts';

const SECRET = 'plugin-secret-kept-by-the-relying-party-0123456789';
const CLEAR_SECRET = 'a-secret-the-plugin-kept-in-clear-9876543210';
const REDIRECT = 'https://wiki.example.org/oidc/callback';

await describeOnEachAllianceAuth(
  (database) => `aa-oidc import plugin-apps, on ${database}`,
  (kind) => {
    let fixture: AllianceAuthTestDatabase;
    let database: TestDatabase;
    let env: NodeJS.ProcessEnv;

    /** One row of the plugin's table, as Django would write it (every NOT NULL column given). */
    async function pluginApp(row: Record<string, unknown>, states: string[] = [], groups: string[] = []) {
      const b = fixture.bool;
      const values: Record<string, unknown> = {
        redirect_uris: '',
        post_logout_redirect_uris: '',
        client_type: 'confidential',
        authorization_grant_type: 'authorization-code',
        client_secret: '',
        skip_authorization: b(false),
        created: '2025-01-01 00:00:00',
        updated: '2025-01-01 00:00:00',
        algorithm: 'RS256',
        user_id: null,
        active: b(true),
        debug_mode: b(false),
        logo_url: '',
        allowed_origins: '',
        hash_client_secret: b(true),
        pkce_required: b(true),
        access_token_format: null,
        backchannel_logout_uri: '',
        backchannel_logout_on_revoke_only: b(false),
        cimd_expires_at: null,
        registration_source: 'manual',
        ...row,
      };
      // A column given as undefined is left out (one an older plugin lacks).
      const columns = Object.keys(values).filter((column) => values[column] !== undefined);
      await sql`insert into allianceauth_oidc_allianceauthapplication (${sql.join(columns.map((column) => sql.ref(column)))}) values (${sql.join(columns.map((column) => values[column]))})`.execute(
        fixture.owner,
      );
      const { id } = await fixture.owner
        .selectFrom('allianceauth_oidc_allianceauthapplication')
        .select('id')
        .where('client_id', '=', String(row.client_id))
        .executeTakeFirstOrThrow();
      for (const state of states) {
        await sql`insert into allianceauth_oidc_allianceauthapplication_states (allianceauthapplication_id, state_id)
                  select ${id}, id from authentication_state where name = ${state}`.execute(fixture.owner);
      }
      for (const group of groups) {
        await sql`insert into allianceauth_oidc_allianceauthapplication_groups (allianceauthapplication_id, group_id)
                  select ${id}, id from auth_group where name = ${group}`.execute(fixture.owner);
      }
    }

    before(async () => {
      fixture = await createAllianceAuthDatabase(kind, { pluginApps: true });
      database = await createTestDatabase({ migrated: true });
      const configFile = path.join(database.dataDir, 'aa-oidc.json');
      // The test's back-channel receiver is on loopback.
      writeFileSync(configFile, JSON.stringify({ logout: { allowPrivateTargets: true } }));
      env = testEnv(database, {
        AA_OIDC_CONFIG: configFile,
        ...allianceAuthEnv(fixture.readerUrl, { passwordLogin: true }),
      });
      await pluginApp(
        {
          client_id: 'wiki-client-id-from-the-plugin',
          name: 'Wiki',
          redirect_uris: `${REDIRECT} https://wiki.example.org/other`,
          post_logout_redirect_uris: 'https://wiki.example.org/bye',
          client_secret: await makeDjangoPbkdf2(SECRET, 20_000),
          skip_authorization: fixture.bool(true),
          access_token_format: 'jwt',
          backchannel_logout_uri: 'http://127.0.0.1:9/backchannel',
          backchannel_logout_on_revoke_only: fixture.bool(true),
          logo_url: 'https://wiki.example.org/logo.png',
        },
        ['Member'],
        ['Directors'],
      );
      await pluginApp({
        client_id: 'forum-client-id-kept-in-clear',
        name: 'Forum',
        redirect_uris: 'https://forum.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
        pkce_required: fixture.bool(false),
        active: fixture.bool(false),
      });
      await pluginApp({
        client_id: 'spa-public-client-id',
        name: 'Fleet tool',
        client_type: 'public',
        redirect_uris: 'https://fleet.example.org/cb',
        logo_url: 'http://fleet.example.org/logo.png',
      });
      await pluginApp({
        client_id: 'legacy-implicit-client',
        name: 'Legacy',
        authorization_grant_type: 'implicit',
        redirect_uris: 'https://legacy.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
      });
    });
    after(async () => {
      await database?.drop();
      await fixture?.drop();
    });

    it('shows what it would import with --dry-run, and imports nothing', async () => {
      const result = await cli(['import', 'plugin-apps', '--dry-run'], env);
      assert.equal(result.code, 1, 'one application cannot be imported');
      assert.match(result.stdout, /would import wiki-client-id-from-the-plugin \(Wiki\)/);
      assert.match(result.stdout, /would import forum-client-id-kept-in-clear \(Forum\)/);
      assert.match(result.stdout, /would import spa-public-client-id \(Fleet tool\)/);
      assert.match(result.stdout, /not imported legacy-implicit-client \(Legacy\): grant type "implicit"/);
      assert.match(result.stderr, /dry run: nothing was imported/);
      const list = await cli(['app', 'list', '--format', 'json'], env);
      assert.deepEqual(JSON.parse(list.stdout), []);
    });

    it('writes one JSON document with --format json: each application with its outcome, reason, warnings and what it leaves out', async () => {
      const result = await cli(['import', 'plugin-apps', '--dry-run', '--format', 'json'], env);
      assert.equal(result.code, 1, 'one application cannot be imported');
      assert.equal(
        result.stderr,
        'aa-oidc: 1 application(s) could not be imported (dry run: nothing was imported)\n',
      );
      const none = { left_out: [], warnings: [], existing: null };
      assert.deepEqual(JSON.parse(result.stdout), {
        dry_run: true,
        applications: [
          {
            client_id: 'forum-client-id-kept-in-clear',
            name: 'Forum',
            outcome: 'imported',
            reason: null,
            secret: 'digest',
            ...none,
          },
          {
            client_id: 'legacy-implicit-client',
            name: 'Legacy',
            outcome: 'refused',
            reason:
              'grant type "implicit" is not supported (aa-oidc offers authorization-code and client-credentials)',
            secret: null,
            ...none,
          },
          {
            client_id: 'spa-public-client-id',
            name: 'Fleet tool',
            outcome: 'imported',
            reason: null,
            secret: null,
            ...none,
            left_out: [
              'its http logo "http://fleet.example.org/logo.png" (logos must be https; give it one in aa-oidc\'s admin)',
            ],
          },
          {
            client_id: 'wiki-client-id-from-the-plugin',
            name: 'Wiki',
            outcome: 'imported',
            reason: null,
            secret: 'pbkdf2_hash',
            ...none,
          },
        ],
        error: null,
      });
      const list = await cli(['app', 'list', '--format', 'json'], env);
      assert.deepEqual(JSON.parse(list.stdout), []);
    });

    it('writes its JSON document also when a failure stops it midway: what was done until then, and why it stopped', async () => {
      // A database of its own, where writing one application fails in a way the import does not expect.
      const other = await createTestDatabase({ migrated: true });
      const handle = connect(other);
      try {
        const failing = 'spa-public-client-id';
        if (handle.kind === 'sqlite')
          await sql`CREATE TRIGGER refuse_test_write BEFORE INSERT ON application WHEN NEW.client_id = ${sql.lit(failing)}
                    BEGIN SELECT RAISE(ABORT, 'injected fault'); END`.execute(handle.db);
        else {
          await sql`CREATE FUNCTION refuse_test_write() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN RAISE EXCEPTION 'injected fault'; END $$`.execute(handle.db);
          await sql`CREATE TRIGGER refuse_test_write BEFORE INSERT ON application FOR EACH ROW
                    WHEN (NEW.client_id = ${sql.lit(failing)}) EXECUTE FUNCTION refuse_test_write()`.execute(
            handle.db,
          );
        }
        const result = await cli(['import', 'plugin-apps', '--format', 'json'], {
          ...env,
          AA_OIDC_DATABASE_URL: other.url,
          AA_OIDC_DATA_DIR: other.dataDir,
        });
        assert.equal(result.code, 1);
        assert.equal(result.stderr, 'aa-oidc: injected fault\n');
        const document = JSON.parse(result.stdout) as {
          dry_run: boolean;
          applications: Array<{ client_id: string; outcome: string }>;
          error: string | null;
        };
        assert.deepEqual(
          {
            ...document,
            applications: document.applications.map((app) => [app.client_id, app.outcome]),
          },
          {
            dry_run: false,
            // In client_id order: the two before the failing one, not it nor the one after.
            applications: [
              ['forum-client-id-kept-in-clear', 'imported'],
              ['legacy-implicit-client', 'refused'],
            ],
            error: 'injected fault',
          },
        );
      } finally {
        await handle.close();
        await other.drop();
      }
    });

    it('imports every supported application as the plugin had it, and the PBKDF2-hashed secret authenticates unchanged', async () => {
      const result = await cli(['import', 'plugin-apps'], env);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stdout,
        /imported wiki-client-id-from-the-plugin \(Wiki\): its PBKDF2-hashed secret keeps working/,
      );
      // An http logo would not show on the pages (https only): the application comes without it.
      assert.match(
        result.stdout,
        /imported spa-public-client-id \(Fleet tool\): a public client; left out its http logo "http:\/\/fleet\.example\.org\/logo\.png"/,
      );
      const fleet = await cli(['app', 'show', 'spa-public-client-id', '--format', 'json'], env);
      assert.equal((JSON.parse(fleet.stdout) as Record<string, unknown>).logo_url, null);
      const shown = await cli(['app', 'show', 'wiki-client-id-from-the-plugin', '--format', 'json'], env);
      assert.equal(shown.code, 0, shown.stderr);
      const wiki = JSON.parse(shown.stdout) as Record<string, unknown>;
      assert.deepEqual(
        {
          name: wiki.name,
          client_type: wiki.client_type,
          redirect_uris: wiki.redirect_uris,
          post_logout_redirect_uris: wiki.post_logout_redirect_uris,
          grant_types: wiki.grant_types,
          states: wiki.states,
          groups: wiki.groups,
          skip_authorization: wiki.skip_authorization,
          pkce_required: wiki.pkce_required,
          access_token_format: wiki.access_token_format,
          backchannel_logout_uri: wiki.backchannel_logout_uri,
          backchannel_logout_on_revoke_only: wiki.backchannel_logout_on_revoke_only,
          active: wiki.active,
          logo_url: wiki.logo_url,
        },
        {
          name: 'Wiki',
          client_type: 'confidential',
          redirect_uris: [REDIRECT, 'https://wiki.example.org/other'],
          post_logout_redirect_uris: ['https://wiki.example.org/bye'],
          grant_types: ['authorization_code', 'refresh_token'],
          states: ['Member'],
          groups: ['Directors'],
          skip_authorization: true,
          pkce_required: true,
          access_token_format: 'jwt',
          backchannel_logout_uri: 'http://127.0.0.1:9/backchannel',
          backchannel_logout_on_revoke_only: true,
          active: true,
          logo_url: 'https://wiki.example.org/logo.png',
        },
      );
      const forum = JSON.parse(
        (await cli(['app', 'show', 'forum-client-id-kept-in-clear', '--format', 'json'], env)).stdout,
      ) as Record<string, unknown>;
      assert.equal(forum.active, false);
      assert.equal(forum.pkce_required, false);
      // Which secret is still the plugin's hash (never shown): the wiki's, until its first success.
      assert.deepEqual([wiki.imported_secret_hash, wiki.imported_secret_iterations], [true, 20_000]);
      assert.deepEqual([forum.imported_secret_hash, forum.imported_secret_iterations], [false, null]);
      assert.equal(shown.stdout.includes('pbkdf2_sha256$'), false, 'never the hash');

      // Running it again changes nothing.
      const again = await cli(['import', 'plugin-apps'], env);
      assert.match(
        again.stdout,
        /skipped wiki-client-id-from-the-plugin \(Wiki\): an application with this client_id exists already/,
      );

      // The relying party signs alice in with the secret it always had.
      const server = await startServer(
        {
          directory: allianceAuthDirectory(fixture.readerUrl, { passwordLogin: true }),
          logout: { allowPrivateTargets: true },
        },
        { database },
      );
      try {
        const client = { clientId: 'wiki-client-id-from-the-plugin', clientSecret: SECRET };
        const { params, verifier } = authorizeParams(client, { redirect_uri: REDIRECT });
        const response = await signIn(new Browser(), server, authorizeUrl(server, params), {
          username: 'alice',
          password: FIXTURE_PASSWORD,
        });
        const wrong = await postForm(
          `${server.issuer}/token/`,
          { grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT, code_verifier: verifier },
          { authorization: basicAuth(client.clientId, `${SECRET}-not`) },
        );
        assert.equal(wrong.status, 401, 'a wrong secret is refused');
        const exchanged = await tokenRequest(server, client, {
          grant_type: 'authorization_code',
          code: codeFrom(response),
          redirect_uri: REDIRECT,
          code_verifier: verifier,
        });
        assert.equal(exchanged.status, 200, JSON.stringify(exchanged.body));
        const stored = await server.app.applications.findByClientId(client.clientId);
        assert.equal(stored?.clientSecretPbkdf2, null, 'the PBKDF2 hash is replaced after its first success');
        assert.equal(stored?.clientSecretSha256, clientSecretDigest(SECRET));
        const after = JSON.parse(
          (await cli(['app', 'show', client.clientId, '--format', 'json'], env)).stdout,
        ) as Record<string, unknown>;
        assert.equal(after.imported_secret_hash, false, 'app show tells the hash is gone');
        // And it goes on working with its digest.
        const introspected = await postForm(
          `${server.issuer}/introspect/`,
          { token: exchanged.body.access_token as string },
          { authorization: basicAuth(client.clientId, SECRET) },
        );
        assert.equal(introspected.status, 200);
        assert.equal(introspected.body.active, true);
      } finally {
        await server.close();
      }
    });

    it("says of an application that exists already whether it has the plugin's settings, names those that differ, and tells whether the plugin's secret authenticates as it", async () => {
      // As the import above left them: the forum's clear secret kept as a digest, the wiki's hash
      // replaced by a digest at the relying party's first sign-in.
      const same = await cli(['import', 'plugin-apps', '--dry-run'], env);
      assert.equal(same.code, 1, same.stderr);
      const exists = 'an application with this client_id exists already';
      assert.match(
        same.stdout,
        new RegExp(
          `^skipped forum-client-id-kept-in-clear \\(Forum\\): ${exists}, with the plugin's settings; the plugin's secret authenticates as it$`,
          'm',
        ),
      );
      assert.match(
        same.stdout,
        new RegExp(
          `^skipped wiki-client-id-from-the-plugin \\(Wiki\\): ${exists}, with the plugin's settings; secrets not compared \\(the plugin keeps only a hash of its secret, and aa-oidc does not hold that hash\\)$`,
          'm',
        ),
      );
      assert.match(
        same.stdout,
        new RegExp(
          `^skipped spa-public-client-id \\(Fleet tool\\): ${exists}, with the plugin's settings$`,
          'm',
        ),
      );

      // Changed here since: another redirect URI, a whitelist, a new secret.
      const forum = 'forum-client-id-kept-in-clear';
      const update = await cli(
        [
          'app',
          'update',
          forum,
          '--add-redirect-uri',
          'https://forum.example.org/cb2',
          '--add-state',
          'Member',
        ],
        env,
      );
      assert.equal(update.code, 0, update.stderr);
      const rotated = await cli(['app', 'rotate-secret', forum], env);
      assert.equal(rotated.code, 0, rotated.stderr);
      const text = await cli(['import', 'plugin-apps'], env);
      assert.equal(text.code, 1, 'only the legacy application fails, as before');
      assert.match(
        text.stdout,
        new RegExp(
          `^skipped ${forum} \\(Forum\\): ${exists}, with settings other than the plugin's: redirect_uris, states; the plugin's secret does not authenticate as it \\(a relying party that sends the plugin's secret is refused\\); left as it is \\("aa-oidc app show ${forum}" shows it, "aa-oidc app update ${forum} …" changes it\\)$`,
          'm',
        ),
      );
      const json = await cli(['import', 'plugin-apps', '--format', 'json'], env);
      assert.equal(json.code, 1, json.stderr);
      const applications = (JSON.parse(json.stdout) as { applications: Array<{ client_id: string }> })
        .applications;
      assert.deepEqual(
        applications.find((app) => app.client_id === forum),
        {
          client_id: forum,
          name: 'Forum',
          outcome: 'skipped',
          reason: exists,
          secret: null,
          left_out: [],
          warnings: [],
          existing: { differences: ['redirect_uris', 'states'], secret: 'does_not_verify' },
        },
      );
      assert.deepEqual(
        applications.find((app) => app.client_id === 'wiki-client-id-from-the-plugin'),
        {
          client_id: 'wiki-client-id-from-the-plugin',
          name: 'Wiki',
          outcome: 'skipped',
          reason: exists,
          secret: null,
          left_out: [],
          warnings: [],
          existing: { differences: [], secret: 'not_compared' },
        },
      );
      assert.equal(json.stdout.includes(CLEAR_SECRET), false, 'never the secret');
      const shown = JSON.parse((await cli(['app', 'show', forum, '--format', 'json'], env)).stdout);
      assert.deepEqual(shown.states, ['Member'], 'left as it is');
    });

    it("tells whether the plugin's secret authenticates as an application whose secret is still the hash an earlier import left", async () => {
      const clientId = 'hash-still-held-client';
      await pluginApp({
        client_id: clientId,
        name: 'Hash held',
        redirect_uris: 'https://held.example.org/cb',
        client_secret: await makeDjangoPbkdf2(SECRET, 20_000),
      });
      const first = await cli(['import', 'plugin-apps'], env);
      assert.match(
        first.stdout,
        /^imported hash-still-held-client \(Hash held\): its PBKDF2-hashed secret keeps working$/m,
      );
      const line = async () => {
        const result = await cli(['import', 'plugin-apps', '--dry-run'], env);
        return /^skipped hash-still-held-client .*$/m.exec(result.stdout)?.[0];
      };
      assert.match(
        (await line()) ?? '',
        /with the plugin's settings; the plugin's secret authenticates as it$/,
      );
      // The plugin's admin since gave it a secret kept in clear: checked against the hash held here.
      const setSecret = (secret: string) =>
        sql`update allianceauth_oidc_allianceauthapplication set client_secret = ${secret}, hash_client_secret = ${fixture.bool(false)} where client_id = ${clientId}`.execute(
          fixture.owner,
        );
      await setSecret(SECRET);
      assert.match(
        (await line()) ?? '',
        /with the plugin's settings; the plugin's secret authenticates as it$/,
      );
      await setSecret(`${SECRET}-another`);
      assert.match(
        (await line()) ?? '',
        /with the plugin's settings; the plugin's secret does not authenticate as it \(a relying party that sends the plugin's secret is refused\); left as it is/,
      );
    });

    it('warns of a secret the plugin kept in clear that is shorter than 32 characters, never showing it', async () => {
      await pluginApp({
        client_id: 'weak-secret-client',
        name: 'Weak secret',
        redirect_uris: 'https://weak.example.org/cb',
        client_secret: 'hunter2',
        hash_client_secret: fixture.bool(false),
      });
      await pluginApp({
        client_id: 'long-enough-secret-client',
        name: 'Long enough',
        redirect_uris: 'https://long.example.org/cb',
        client_secret: 'k'.repeat(32),
        hash_client_secret: fixture.bool(false),
      });
      const result = await cli(['import', 'plugin-apps', '--dry-run'], env);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stdout,
        /^would import weak-secret-client \(Weak secret\): its secret kept as a digest; warning: its secret, kept in clear by the plugin, is shorter than 32 characters \(aa-oidc's own secrets are 256 random bits\): whoever guesses it authenticates as the relying party; once the switch is done, "aa-oidc app rotate-secret weak-secret-client" and give the relying party the new secret$/m,
      );
      assert.match(
        result.stdout,
        /^would import long-enough-secret-client \(Long enough\): its secret kept as a digest$/m,
      );
      assert.equal(result.stdout.includes('hunter2'), false, 'never the secret');
    });

    it('refuses an empty client secret, saying it is empty, whether the plugin marks it hashed or not', async () => {
      for (const [clientId, hashed] of [
        ['empty-hashed-secret-client', true],
        ['empty-clear-secret-client', false],
      ] as const) {
        await pluginApp({
          client_id: clientId,
          name: 'Empty secret',
          redirect_uris: 'https://empty.example.org/cb',
          client_secret: '',
          hash_client_secret: fixture.bool(hashed),
        });
      }
      const result = await cli(['import', 'plugin-apps', '--dry-run'], env);
      assert.equal(result.code, 1, result.stderr);
      for (const clientId of ['empty-hashed-secret-client', 'empty-clear-secret-client']) {
        assert.match(
          result.stdout,
          new RegExp(
            `^not imported ${clientId} \\(Empty secret\\): its client secret is empty, so no relying party can authenticate with it: give it a new secret in the plugin's admin with "Hash client secret" unticked \\(aa-oidc keeps only a digest\\) and import again$`,
            'm',
          ),
        );
      }
    });

    it('leaves out the applications clients registered themselves (dynamic registration, metadata documents), naming each', async () => {
      // As django-oauth-toolkit's registration leaves them: no whitelist, so open to everyone.
      await pluginApp({
        client_id: 'dcr-registered-client',
        name: 'Self-registered',
        redirect_uris: 'https://selfreg.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
        registration_source: 'dcr',
      });
      await pluginApp({
        client_id: 'https://mcp.example.org/oauth/client.json',
        name: 'MCP client',
        client_type: 'public',
        redirect_uris: 'https://mcp.example.org/cb',
        registration_source: 'cimd',
        cimd_expires_at: '2025-01-02 00:00:00',
      });
      // A later plugin's way, unknown here, is not taken for an operator's.
      await pluginApp({
        client_id: 'unknown-source-client',
        name: 'Unknown source',
        redirect_uris: 'https://unknown.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
        registration_source: 'federation',
      });
      for (const dryRun of [['--dry-run'], []]) {
        const result = await cli(['import', 'plugin-apps', ...dryRun], env);
        assert.equal(result.code, 1, result.stderr);
        assert.match(
          result.stdout,
          /^not imported dcr-registered-client \(Self-registered\): the client registered itself through the plugin's dynamic client registration \(registration source "dcr"\): aa-oidc takes only applications an operator made, with whitelists chosen for them; if the relying party is wanted, create it with "aa-oidc app create" and whitelist its states or groups$/m,
        );
        assert.match(
          result.stdout,
          /^not imported https:\/\/mcp\.example\.org\/oauth\/client\.json \(MCP client\): the client registered itself from a client ID metadata document the plugin fetched \(registration source "cimd"\): aa-oidc takes only/m,
        );
        assert.match(
          result.stdout,
          /^not imported unknown-source-client \(Unknown source\): registration source "federation" is not one aa-oidc knows: it imports only applications an operator made \("manual"\)$/m,
        );
      }
      const list = JSON.parse((await cli(['app', 'list', '--format', 'json'], env)).stdout) as Array<{
        client_id: string;
      }>;
      assert.deepEqual(
        list.filter((app) => /dcr|mcp|unknown/.test(app.client_id)),
        [],
      );
    });

    it('carries debug mode over, and names on the line the id_token signing and CORS origins aa-oidc does not keep', async () => {
      const secret = { client_secret: CLEAR_SECRET, hash_client_secret: fixture.bool(false) };
      await pluginApp({
        client_id: 'hs256-client',
        name: 'Signed with the secret',
        redirect_uris: 'https://hs.example.org/cb',
        algorithm: 'HS256',
        debug_mode: fixture.bool(true),
        ...secret,
      });
      await pluginApp({
        client_id: 'spa-with-origins',
        name: 'SPA',
        client_type: 'public',
        redirect_uris: 'https://spa.example.org/cb',
        allowed_origins: 'https://spa.example.org https://other.example.org',
      });
      // The plugin issued no id_token without an algorithm: aa-oidc's RS256 ones lose nothing.
      await pluginApp({
        client_id: 'spa-same-origin',
        name: 'Same-origin SPA',
        client_type: 'public',
        redirect_uris: 'https://same.example.org/cb',
        allowed_origins: 'https://same.example.org',
        algorithm: '',
      });
      // Its origin is a redirect URI's, but aa-oidc's token endpoint answers browsers for public clients only.
      await pluginApp({
        client_id: 'server-with-origin',
        name: 'Server',
        redirect_uris: 'https://server.example.org/cb',
        allowed_origins: 'https://server.example.org',
        ...secret,
      });
      const result = await cli(['import', 'plugin-apps'], env);
      assert.equal(result.code, 1, result.stderr);
      const cors =
        "\\(aa-oidc answers browsers only from a redirect URI's origin, and at the token endpoint only for public clients\\)";
      assert.match(
        result.stdout,
        /^imported hs256-client \(Signed with the secret\): its secret kept as a digest; left out its "HS256" id_token signing \(aa-oidc signs id_tokens with RS256 only: set the relying party to verify them with the issuer's JWKS, not the client secret\)$/m,
      );
      assert.match(
        result.stdout,
        new RegExp(
          `^imported spa-with-origins \\(SPA\\): a public client; left out its CORS origin "https://other\\.example\\.org" ${cors}$`,
          'm',
        ),
      );
      assert.match(result.stdout, /^imported spa-same-origin \(Same-origin SPA\): a public client$/m);
      assert.match(
        result.stdout,
        new RegExp(
          `^imported server-with-origin \\(Server\\): its secret kept as a digest; left out its CORS origin "https://server\\.example\\.org" ${cors}$`,
          'm',
        ),
      );
      const debugMode = async (clientId: string) =>
        (
          JSON.parse((await cli(['app', 'show', clientId, '--format', 'json'], env)).stdout) as Record<
            string,
            unknown
          >
        ).debug_mode;
      assert.equal(await debugMode('hs256-client'), true);
      assert.equal(await debugMode('spa-same-origin'), false);
    });

    it('warns, naming them, about a confidential application whose redirect URIs are all on loopback, and about loopback IP URIs that now match only at their port', async () => {
      const secret = { client_secret: CLEAR_SECRET, hash_client_secret: fixture.bool(false) };
      await pluginApp({
        client_id: 'dev-copy-client',
        name: 'Developer copy',
        redirect_uris: 'http://localhost:8000/oidc/callback http://127.0.0.1:8000/oidc/callback',
        ...secret,
      });
      // Its server's https URI beside a developer's one: members can sign in; only the port changes.
      await pluginApp({
        client_id: 'wiki-with-dev-uri',
        name: 'Wiki and its dev copy',
        redirect_uris: 'https://wiki2.example.org/cb http://[::1]:8000/cb',
        ...secret,
      });
      // A command-line tool listening on a port the system gives it.
      await pluginApp({
        client_id: 'cli-tool-client',
        name: 'CLI tool',
        client_type: 'public',
        redirect_uris: 'http://127.0.0.1/callback',
      });
      // A native app: its loopback IP URIs match at any port here too, as under the plugin.
      await pluginApp({
        client_id: 'native-app-client',
        name: 'Native app',
        client_type: 'public',
        redirect_uris: 'org.example.app:/callback http://127.0.0.1/callback',
      });
      const result = await cli(['import', 'plugin-apps', '--dry-run'], env);
      assert.equal(result.code, 1, result.stderr);
      const anyPort = (uri: string) =>
        `warning: its loopback redirect URI ${uri} matches here only at the port registered, exactly \\(the plugin took any port\\): a program that listens on a port the system gives it at each sign-in is refused \\(docs/migrating-from-the-plugin\\.md, step 5\\)`;
      assert.match(
        result.stdout,
        new RegExp(
          `^would import dev-copy-client \\(Developer copy\\): its secret kept as a digest; warning: its redirect URIs are all on loopback \\("http://localhost:8000/oidc/callback" "http://127\\.0\\.0\\.1:8000/oidc/callback"\\): a member's browser would be sent back to the member's own machine, so it cannot sign anyone in from a server \\(a developer's copy\\?\\); give it its server's https URI \\("aa-oidc app update CLIENT_ID --add-redirect-uri …"\\) or deactivate it; ${anyPort('"http://127\\.0\\.0\\.1:8000/oidc/callback"')}$`,
          'm',
        ),
      );
      assert.match(
        result.stdout,
        new RegExp(
          `^would import wiki-with-dev-uri \\(Wiki and its dev copy\\): its secret kept as a digest; ${anyPort('"http://\\[::1\\]:8000/cb"')}$`,
          'm',
        ),
      );
      assert.match(
        result.stdout,
        new RegExp(
          `^would import cli-tool-client \\(CLI tool\\): a public client; ${anyPort('"http://127\\.0\\.0\\.1/callback"')}$`,
          'm',
        ),
      );
      assert.match(result.stdout, /^would import native-app-client \(Native app\): a public client$/m);
    });

    it('warns about a public application the plugin let sign in without PKCE, which aa-oidc imports requiring it', async () => {
      await pluginApp({
        client_id: 'spa-without-pkce',
        name: 'SPA without PKCE',
        client_type: 'public',
        redirect_uris: 'https://nopkce.example.org/cb',
        pkce_required: fixture.bool(false),
      });
      const result = await cli(['import', 'plugin-apps'], env);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stdout,
        /^imported spa-without-pkce \(SPA without PKCE\): a public client; warning: the plugin let it sign in without PKCE \("PKCE required" unticked\), and aa-oidc requires PKCE of every public client: a relying party that sends no code_challenge is refused \(invalid_request\) after the switch; have it send one, with S256 \(docs\/migrating-from-the-plugin\.md, step 5\)$/m,
      );
      const shown = JSON.parse(
        (await cli(['app', 'show', 'spa-without-pkce', '--format', 'json'], env)).stdout,
      );
      assert.equal(shown.pkce_required, true);
    });

    it("shows the control characters of a plugin application's name escaped, never sending them to the terminal", async () => {
      await pluginApp({
        client_id: 'escape-sequence-client',
        name: 'Evil\u001b]0;pwned\u0007\u001b[2J\u009b31m',
        redirect_uris: 'https://evil.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
      });
      const result = await cli(['import', 'plugin-apps', '--dry-run'], env);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stdout,
        /^not imported escape-sequence-client \(Evil\\x1b\]0;pwned\\x07\\x1b\[2J\\u009b31m\): name: must not contain U\+001B, a control character \(it can make the name show as something else, or break its line\)$/m,
      );
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(result.stdout + result.stderr, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    });

    it('refuses a secret hashed with more PBKDF2 iterations than aa-oidc checks, saying what to do', async () => {
      const costly = (await makeDjangoPbkdf2(SECRET, 1000)).replace('$1000$', '$10000000$');
      await pluginApp({
        client_id: 'costly-hash-client',
        name: 'Costly',
        redirect_uris: 'https://costly.example.org/cb',
        client_secret: costly,
      });
      const result = await cli(['import', 'plugin-apps'], env);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stdout,
        /^not imported costly-hash-client \(Costly\): its client secret is hashed with 10000000 PBKDF2 iterations, more than the 2000000 aa-oidc checks \(each wrong secret sent would cost that much\): give it a new secret in the plugin's admin with "Hash client secret" unticked \(aa-oidc keeps only a digest\) and import again$/m,
      );
      const list = JSON.parse((await cli(['app', 'list', '--format', 'json'], env)).stdout) as Array<{
        client_id: string;
      }>;
      assert.ok(!list.some((app) => app.client_id === 'costly-hash-client'));
    });

    it('refuses a secret stored by another hasher, or with more iterations than a Django hash has, saying what to do', async () => {
      const tooCostly = (await makeDjangoPbkdf2(SECRET, 1000)).replace('$1000$', '$10000001$');
      const argon = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g';
      for (const [clientId, secret] of [
        ['argon-hash-client', `argon2${argon}`],
        ['too-costly-hash-client', tooCostly],
      ]) {
        await pluginApp({
          client_id: clientId,
          name: 'Odd hash',
          redirect_uris: 'https://odd.example.org/cb',
          client_secret: secret,
        });
      }
      const result = await cli(['import', 'plugin-apps'], env);
      assert.equal(result.code, 1, result.stderr);
      for (const clientId of ['argon-hash-client', 'too-costly-hash-client']) {
        assert.match(
          result.stdout,
          new RegExp(
            `^not imported ${clientId} \\(Odd hash\\): its client secret is stored as something aa-oidc cannot check: not a Django PBKDF2-SHA256 hash \\(another hasher, or more than 10000000 iterations\\): give it a new secret in the plugin's admin with "Hash client secret" unticked \\(aa-oidc keeps only a digest; a plugin older than its migration 0004 has no such box: upgrade it first\\) and import again$`,
            'm',
          ),
        );
      }
      assert.doesNotMatch(result.stdout + result.stderr, /argon2\$|10000001\$/);
    });

    // Near the end: it drops a column of the plugin's table.
    it("refuses, saying why, a plugin application named longer than aa-oidc's 100 characters, or one whose client_id differs only in case from an application's here", async () => {
      // django-oauth-toolkit's names take 255 characters, and may be blank.
      const long = `Long ${'x'.repeat(145)}`;
      await pluginApp({
        client_id: 'long-name-client',
        name: long,
        redirect_uris: 'https://long-name.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
      });
      await pluginApp({
        client_id: 'blank-name-client',
        name: '',
        redirect_uris: 'https://blank-name.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
      });
      // Made here by hand before the import: the same relying party, perhaps, or another.
      const made = await cli(
        [
          'app',
          'create',
          '--name',
          'Case',
          '--client-id',
          'Case-Client',
          '--redirect-uri',
          'https://case.example.org/cb',
        ],
        env,
      );
      assert.equal(made.code, 0, made.stderr);
      await pluginApp({
        client_id: 'case-client',
        name: 'Case',
        redirect_uris: 'https://case.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
      });
      for (const dryRun of [['--dry-run'], []]) {
        const result = await cli(['import', 'plugin-apps', ...dryRun], env);
        assert.equal(result.code, 1, result.stderr);
        assert.match(
          result.stdout,
          new RegExp(`^not imported long-name-client \\(${long}\\): name: must be 1–100 characters$`, 'm'),
        );
        assert.match(result.stdout, /^not imported blank-name-client \(\): name: must be 1–100 characters$/m);
        assert.match(
          result.stdout,
          /^not imported case-client \(Case\): client_id: "case-client" differs only in case from the client_id of application "Case-Client", which would be easily mistaken for it; choose another or omit it$/m,
        );
      }
      const list = JSON.parse((await cli(['app', 'list', '--format', 'json'], env)).stdout) as Array<{
        client_id: string;
      }>;
      assert.deepEqual(
        list.map((app) => app.client_id).filter((id) => /name-client|case-client/i.test(id)),
        ['Case-Client'],
        'none of them imported',
      );
    });

    it(
      'refuses in a dry run, as the real run does, a plugin application whose client_id differs only in case from one imported before it',
      // MariaDB's case-insensitive collation keeps such a pair out of the plugin's table.
      {
        skip:
          kind === 'mysql' && 'the plugin table on MariaDB cannot hold two client ids differing only in case',
      },
      async () => {
        for (const clientId of ['twin-client', 'Twin-Client'])
          await pluginApp({
            client_id: clientId,
            name: 'Twin',
            redirect_uris: 'https://twin.example.org/cb',
            client_secret: CLEAR_SECRET,
            hash_client_secret: fixture.bool(false),
          });
        const refusal =
          /^not imported (twin-client|Twin-Client) \(Twin\): client_id: "\1" differs only in case from the client_id of application "(?!\1)(?:twin-client|Twin-Client)"/m;
        const outcomes = async (dryRun: string[]) => {
          const result = await cli(['import', 'plugin-apps', ...dryRun], env);
          return result.stdout
            .split('\n')
            .filter((line) => /twin-client/i.test(line))
            .map((line) => (refusal.test(line) ? 'refused' : line.split(' ')[0]));
        };
        assert.deepEqual(await outcomes(['--dry-run']), ['would', 'refused']);
        assert.deepEqual(await outcomes([]), ['imported', 'refused']);
      },
    );

    it('imports from a plugin older than its migration 0021, whose table has no registration source', async () => {
      await pluginApp({
        client_id: 'older-plugin-client',
        name: 'Older plugin',
        redirect_uris: 'https://older.example.org/cb',
        client_secret: CLEAR_SECRET,
        hash_client_secret: fixture.bool(false),
      });
      await sql`alter table allianceauth_oidc_allianceauthapplication drop column registration_source`.execute(
        fixture.owner,
      );
      const result = await cli(['import', 'plugin-apps', '--dry-run'], env);
      assert.match(
        result.stdout,
        /^would import older-plugin-client \(Older plugin\): its secret kept as a digest$/m,
        result.stderr,
      );
    });

    // After the one above: it drops the columns the plugin's migrations 0002–0014 added.
    it("reads a plugin table older than its migration 0002 as the plugin's later migrations filled it in: active, PKCE required, every secret hashed", async () => {
      await pluginApp({
        client_id: 'first-plugin-client',
        name: 'First plugin',
        redirect_uris: 'https://first.example.org/cb',
        registration_source: undefined,
        client_secret: await makeDjangoPbkdf2(SECRET, 20_000),
      });
      const added = [
        'active',
        'debug_mode',
        'logo_url',
        'allowed_origins',
        'hash_client_secret',
        'pkce_required',
        'access_token_format',
        'backchannel_logout_uri',
        'backchannel_logout_on_revoke_only',
        'cimd_expires_at',
      ];
      for (const column of added) {
        await sql`alter table allianceauth_oidc_allianceauthapplication drop column ${sql.ref(column)}`.execute(
          fixture.owner,
        );
      }
      const result = await cli(['import', 'plugin-apps'], env);
      assert.match(
        result.stdout,
        /^imported first-plugin-client \(First plugin\): its PBKDF2-hashed secret keeps working$/m,
        result.stderr,
      );
      const shown = JSON.parse(
        (await cli(['app', 'show', 'first-plugin-client', '--format', 'json'], env)).stdout,
      );
      assert.equal(shown.active, true);
      assert.equal(shown.pkce_required, true);
      assert.equal(shown.imported_secret_hash, true);
    });
  },
);
