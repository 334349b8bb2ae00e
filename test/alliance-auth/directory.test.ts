import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import { decodeJwt } from 'jose';
import type { GroupRow, StateRow, UserRow } from '../../src/db/schema.ts';
import { toUserProfile } from '../../src/directory/builtin/profile.ts';
import { claimsFor } from '../../src/oidc/claims.ts';
import { djangoTime } from '../../src/alliance-auth/user-queries.ts';
import {
  createAllianceAuthDatabase,
  describeOnEachAllianceAuth,
  djangoArgon2,
  djangoScrypt,
  allianceAuthEnv,
  type ExpectedFixture,
  expectedFixture,
  FIXTURE_PASSWORD,
} from '../helpers/alliance-auth.ts';
import { insertAllianceAuthUser } from '../helpers/alliance-auth-changes.ts';
import { serveAllianceAuth } from '../helpers/alliance-auth-server.ts';
import { cli } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { authorize, codeFrom, exchangeCode, userinfo } from '../helpers/flows.ts';
import { Browser, seedApp, type TestServer } from '../helpers/server.ts';

const SCOPE = 'openid profile email groups';

/** What the built-in directory releases for a user holding the same data as `want`. */
function builtinClaims(
  server: TestServer,
  expected: ExpectedFixture,
  want: ExpectedFixture['users'][number],
): Record<string, unknown> {
  const main = want.main_character;
  const row: UserRow = {
    id: want.id,
    username: want.username,
    username_key: null,
    email: want.email,
    email_verified: 1,
    password_hash: null,
    active: want.is_active ? 1 : 0,
    superuser: want.is_superuser ? 1 : 0,
    oidc_access: want.oidc_permission_sources.includes('user') ? 1 : 0,
    state_id: want.state.id,
    character_id: main?.character_id ?? null,
    character_name: main?.character_name ?? null,
    corporation_id: main?.corporation_id ?? null,
    corporation_name: main?.corporation_name ?? null,
    corporation_ticker: main?.corporation_ticker ?? null,
    alliance_id: main?.alliance_id ?? null,
    alliance_name: main?.alliance_name ?? null,
    alliance_ticker: main?.alliance_ticker ?? null,
    faction_id: main?.faction_id ?? null,
    faction_name: main?.faction_name ?? null,
    locale: null,
    last_login_at: null,
    must_change_password: 0,
    created_at: 0,
    updated_at: 0,
  };
  const state = expected.states.find((candidate) => candidate.id === want.state.id)!;
  const stateRow: StateRow = {
    id: state.id,
    name: state.name,
    name_key: null,
    priority: state.priority,
    oidc_access: state.grants_oidc ? 1 : 0,
    created_at: 0,
  };
  const groups: GroupRow[] = want.groups.toSorted().map((name) => {
    const group = expected.groups.find((candidate) => candidate.name === name)!;
    return { id: group.id, name, name_key: null, oidc_access: group.grants_oidc ? 1 : 0, created_at: 0 };
  });
  const profile = toUserProfile({ user: row, state: stateRow, groups });
  return claimsFor(profile, SCOPE.split(' '), server.app.config.oidc);
}

await describeOnEachAllianceAuth(
  (database) => `Alliance Auth as the directory, on ${database}`,
  (kind) => {
    const suite = serveAllianceAuth(kind, { directory: { passwordLogin: true }, harness: true });
    let client: { clientId: string; clientSecret: string };
    const expected = expectedFixture();

    before(async () => {
      const created = await seedApp(suite.server, { name: 'Wiki' });
      client = { clientId: created.clientId, clientSecret: created.clientSecret! };
    });

    it("gives every user of expected.json its access, and the built-in directory's claims for the same data", async () => {
      for (const want of expected.users) {
        const { response, verifier } = await authorize(
          suite.server,
          new Browser(),
          client,
          want.username,
          { scope: SCOPE },
          { password: FIXTURE_PASSWORD },
        );
        if (!want.is_active) {
          assert.equal(response.status, 401, `${want.username}: an inactive user cannot sign in`);
          continue;
        }
        if (!want.oidc_access) {
          assert.equal(response.status, 403, `${want.username}: refused by the global gate`);
          assert.match(await response.text(), /access|allowed|denied/i);
          continue;
        }
        const tokens = await exchangeCode(suite.server, client, response, verifier);
        const idToken = decodeJwt(tokens.id_token as string);
        assert.equal(idToken.sub, String(want.id), `${want.username}: sub is auth_user.id`);
        const info = await userinfo(suite.server, tokens.access_token as string);
        assert.equal(info.status, 200);
        const claims = JSON.parse(info.body) as Record<string, unknown>;
        assert.deepEqual(claims, builtinClaims(suite.server, expected, want), `${want.username}'s claims`);
        assert.equal(claims.sub, String(want.id));
        assert.equal(claims.name, want.main_character?.character_name);
        assert.deepEqual(claims.groups, [...want.groups.toSorted(), want.state.name]);
      }
    });

    it('lists, shows and explains AA users on the command line, and refuses to change them', async () => {
      const env = testEnv(suite.server.database, allianceAuthEnv(suite.fixture.readerUrl));
      const list = await cli(['user', 'list', '--format', 'json'], env);
      assert.equal(list.code, 0, list.stderr);
      const users = JSON.parse(list.stdout) as Array<{
        id: number;
        username: string;
        state: string;
        oidc_access: boolean;
      }>;
      // oidc_access: AA's permission held by the user directly (erin), not through a group or the state.
      const sorted = expected.users.toSorted((a, b) => (a.username < b.username ? -1 : 1));
      const heldDirectly = sorted.map((user) => user.oidc_permission_sources.includes('user'));
      assert.deepEqual(
        users.map((user) => [user.id, user.username, user.state, user.oidc_access]),
        sorted.map((user, index) => [user.id, user.username, user.state.name, heldDirectly[index]]),
      );
      assert.ok(heldDirectly.includes(true) && heldDirectly.includes(false), 'the fixture holds both');
      const table = await cli(['user', 'list'], env);
      assert.equal(table.code, 0, table.stderr);
      const [heading, ...rows] = table.stdout.trimEnd().split('\n');
      const column = heading!.indexOf('DIRECT OIDC ACCESS');
      assert.deepEqual(
        rows.map((row) => row.slice(column).split(' ')[0]),
        heldDirectly.map(String),
        table.stdout,
      );
      const show = await cli(['user', 'show', 'alice', '--format', 'json'], env);
      assert.equal(show.code, 0, show.stderr);
      const shown = JSON.parse(show.stdout) as { character_name: string; created_at: string };
      assert.equal(shown.character_name, 'Alice Alpha');
      // When AA made the account (auth_user.date_joined), not the epoch.
      const joined = await suite.fixture.owner
        .selectFrom('auth_user')
        .select('date_joined')
        .where('username', '=', 'alice')
        .executeTakeFirstOrThrow();
      assert.equal(Date.parse(shown.created_at), djangoTime(joined.date_joined));
      assert.ok(Date.parse(shown.created_at) > Date.parse('2000-01-01'), shown.created_at);

      const policy = await cli(['policy', 'show', client.clientId, '--username', 'bob'], env);
      assert.equal(policy.code, 0, policy.stderr);
      assert.match(policy.stdout, /deny|denied|refused/i);

      const audit = await cli(['tokens', 'audit', '--username', 'alice'], env);
      assert.equal(audit.code, 0, audit.stderr);
      // aa-oidc's own sessions and tokens of an AA user are ours to end.
      const signOut = await cli(['user', 'sign-out', 'alice', '--dry-run'], env);
      assert.equal(signOut.code, 0, signOut.stderr);
      assert.match(signOut.stdout, /dry run: would sign alice out/);
      const revoke = await cli(['tokens', 'revoke-user', '--username', 'alice', '--dry-run'], env);
      assert.equal(revoke.code, 0, revoke.stderr);
      assert.match(revoke.stdout, /dry run: would revoke \d+ code\(s\) and token\(s\) of alice/);

      for (const args of [
        ['user', 'deactivate', 'alice'],
        ['user', 'set-state', 'alice', 'Blue'],
        [
          'user',
          'set-main-character',
          'alice',
          '--character-id',
          '95465499',
          '--character-name',
          'Kaelen Voss',
        ],
        ['user', 'set-main-character', 'alice', '--clear'],
        ['user', 'set-main-character', 'alice', '--clear', '--dry-run'],
        ['user', 'set-locale', 'alice', 'de'],
        ['user', 'set-locale', 'alice', 'de', '--dry-run'],
        ['user', 'set-email', 'alice', 'alice@example.org', '--dry-run'],
        ['user', 'set-password', 'alice', '--dry-run'],
        // Refused before a password is asked for (here, without a terminal, before saying there is no prompt).
        ['user', 'set-password', 'alice'],
        ['user', 'grant-access', 'alice'],
        ['user', 'grant-access', 'alice', '--revoke', '--dry-run'],
        ['group', 'create', 'Pilots'],
        ['state', 'create', 'Allies', '--priority', '10'],
      ]) {
        const refused = await cli(args, env);
        assert.notEqual(refused.code, 0, args.join(' '));
        assert.match(refused.stderr, /The directory is Alliance Auth/, args.join(' '));
      }
      // Nothing changed in Alliance Auth.
      const alice = await suite.fixture.owner
        .selectFrom('auth_user')
        .select('is_active')
        .where('id', '=', 2)
        .executeTakeFirstOrThrow();
      assert.equal(Boolean(alice.is_active), true);
    });

    /** Carol signs in with `password`, in a fresh browser. */
    const carolSignsIn = async (password: string) =>
      (await authorize(suite.server, new Browser(), client, 'carol', { scope: SCOPE }, { password }))
        .response;

    it("signs in a user whose password Alliance Auth stored with Django's Argon2 or scrypt hasher", async () => {
      // As Django's Argon2PasswordHasher stores it, with its default parameters: "argon2" followed by
      // argon2's own encoding. An AA whose settings put that hasher first re-hashes at each AA login.
      const django = await djangoArgon2(FIXTURE_PASSWORD, {
        memoryCost: 102_400,
        timeCost: 2,
        parallelism: 8,
      });
      assert.match(django, /^argon2\$argon2id\$v=19\$m=102400,t=2,p=8\$/);
      // Django 5's ScryptPasswordHasher with its defaults (N = 2^14, r = 8, p = 5), made by OpenSSL.
      const scrypt = await djangoScrypt(FIXTURE_PASSWORD, { p: 5 });
      for (const stored of [django, scrypt]) {
        await suite.fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', [stored, 'carol']);
        const signedIn = await carolSignsIn(FIXTURE_PASSWORD);
        assert.ok(codeFrom(signedIn), `${stored.slice(0, 6)}: signed in, a code for the application`);
        const refused = await carolSignsIn(`${FIXTURE_PASSWORD}-not`);
        assert.equal(refused.status, 401, `${stored.slice(0, 6)}: a wrong password is refused`);
      }
    });

    it('refuses a password stored by a hasher it does not verify, and tells the operator which and why', async () => {
      // Django's BCryptSHA256PasswordHasher: bcrypt is not verified here (no dependency computes it).
      const bcrypt = 'bcrypt_sha256$$2b$12$NF7ZcEKXV8vIXmSEc4yWFOyhVjHJL3zMrUWC4fh4MhAaX2t5ZGpyi';
      suite.harness.registerSecret(bcrypt, "carol's stored bcrypt hash");
      suite.harness.registerSecret(FIXTURE_PASSWORD, "carol's password");
      await suite.fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', [bcrypt, 'carol']);
      const linesBefore = suite.harness.logLines.length;
      const response = await carolSignsIn(FIXTURE_PASSWORD);
      assert.equal(response.status, 401, 'refused as a wrong password: nothing tells the visitor more');
      const warnings = suite.harness.logLines
        .slice(linesBefore)
        .map((line) => JSON.parse(line) as { level: number; msg: string; username?: string; hasher?: string })
        .filter((line) => line.hasher !== undefined);
      assert.equal(warnings.length, 1, 'one warning for the one attempt');
      const [warning] = warnings;
      assert.equal(warning!.level, 40);
      assert.equal(warning!.username, 'carol');
      assert.equal(warning!.hasher, 'bcrypt_sha256');
      assert.match(warning!.msg, /Django's bcrypt_sha256 hasher, which aa-oidc does not verify/);
      assert.match(warning!.msg, /PASSWORD_HASHERS/);
      // An EVE SSO user's unusable password is no news: no warning for it.
      await suite.fixture.run('UPDATE auth_user SET password = ? WHERE username = ?', ['!unusable', 'carol']);
      const quiet = suite.harness.logLines.length;
      const unusable = await carolSignsIn(FIXTURE_PASSWORD);
      assert.equal(unusable.status, 401);
      assert.equal(suite.harness.logLines.slice(quiet).filter((line) => line.includes('"hasher"')).length, 0);
      await suite.harness.assertNoLeaks();
    });

    it('says how to give a username `user list` shows with an escape, when the escape is typed', async () => {
      // Alliance Auth's usernames are not aa-oidc's to judge: one may hold ESC.
      await insertAllianceAuthUser(suite.fixture, 90, 'Esc\u001b', FIXTURE_PASSWORD);
      const env = testEnv(suite.server.database, allianceAuthEnv(suite.fixture.readerUrl));
      const list = await cli(['user', 'list', '--search', 'Esc'], env);
      assert.match(list.stdout, /^Esc\\x1b /m, list.stderr);
      const hint =
        "a listing shows the user $'Esc\\x1b' as Esc\\x1b: give it as $'Esc\\x1b' ($'…' is the quoting of bash and zsh)";
      const shown = await cli(['user', 'show', 'Esc\\x1b'], env);
      assert.notEqual(shown.code, 0);
      assert.ok(
        shown.stderr.endsWith(`aa-oidc: no user named "Esc\\\\x1b" in Alliance Auth; ${hint}\n`),
        shown.stderr,
      );
      const signOut = await cli(['user', 'sign-out', 'Esc\\x1b', '--dry-run'], env);
      assert.notEqual(signOut.code, 0);
      assert.ok(
        signOut.stderr.endsWith(`aa-oidc: no user named "Esc\\\\x1b" (see 'aa-oidc user list'); ${hint}\n`),
        signOut.stderr,
      );
      // Given as the help says (bash's $'Esc\x1b'): the character itself.
      const given = await cli(['user', 'show', 'Esc\u001b', '--format', 'json'], env);
      assert.equal(given.code, 0, given.stderr);
      assert.equal((JSON.parse(given.stdout) as { id: number }).id, 90);
    });
  },
);

await describeOnEachAllianceAuth(
  (database) => `aa-oidc user show of an Alliance Auth user on ${database}`,
  (kind) => {
    it('says whether AA holds a usable password and whether it signs in here, and gives no updated_at, which AA does not keep', async () => {
      const fixture = await createAllianceAuthDatabase(kind);
      const database = await createTestDatabase({ migrated: true });
      try {
        // Django's unusable password (what AA gives the accounts EVE SSO makes), and none at all.
        await fixture.run("UPDATE auth_user SET password = ? WHERE username = 'bob'", [
          '!q3ZbO2NGC9eTTcL4kpDW7RhcU1Hjw5zEmA8sVXfy',
        ]);
        await fixture.run("UPDATE auth_user SET password = '' WHERE username = 'carol'");
        // Django's BCryptSHA256PasswordHasher: AA takes it, aa-oidc cannot check it.
        const bcrypt = 'bcrypt_sha256$$2b$12$NF7ZcEKXV8vIXmSEc4yWFOyhVjHJL3zMrUWC4fh4MhAaX2t5ZGpyi';
        await fixture.run("UPDATE auth_user SET password = ? WHERE username = 'erin'", [bcrypt]);
        const eveOnly = testEnv(database, allianceAuthEnv(fixture.readerUrl));
        const withPasswords = testEnv(database, allianceAuthEnv(fixture.readerUrl, { passwordLogin: true }));
        const shown = async (username: string, env = withPasswords) => {
          const show = await cli(['user', 'show', username, '--format', 'json'], env);
          assert.equal(show.code, 0, show.stderr);
          assert.ok(!show.stdout.includes('NF7ZcEKXV8vIXmSEc4yWFO'), 'no hash shown');
          return JSON.parse(show.stdout) as {
            has_password: boolean;
            password_signs_in_here: boolean | null;
            updated_at: unknown;
          };
        };
        const passwords = async (username: string, env = withPasswords) => {
          const { has_password, password_signs_in_here } = await shown(username, env);
          return { has_password, password_signs_in_here };
        };
        // alice's password is the fixture's, with which AA password sign-in works.
        const alice = await shown('alice');
        assert.equal(alice.has_password, true);
        assert.equal(alice.password_signs_in_here, true);
        assert.equal(alice.updated_at, null);
        assert.deepEqual(await passwords('bob'), { has_password: false, password_signs_in_here: false });
        assert.deepEqual(await passwords('carol'), { has_password: false, password_signs_in_here: false });
        // AA holds erin's password, but it signs her in nowhere but there.
        assert.deepEqual(await passwords('erin'), { has_password: true, password_signs_in_here: false });
        // Without AA password sign-in no AA password signs in here: the question does not arise.
        assert.deepEqual(await passwords('alice', eveOnly), {
          has_password: true,
          password_signs_in_here: null,
        });
        const table = await cli(['user', 'show', 'erin'], withPasswords);
        assert.equal(table.code, 0, table.stderr);
        assert.match(table.stdout, /^has_password +true *\n^password_signs_in_here +false *$/m);
        assert.match(table.stdout, /^updated_at *$/m);
        const csv = await cli(['user', 'show', 'erin', '--format', 'csv'], withPasswords);
        assert.match(csv.stdout, /^password_signs_in_here,false\r?$/m);
        assert.match(csv.stdout, /^updated_at,\r?$/m);
        const offTable = await cli(['user', 'show', 'alice'], eveOnly);
        assert.match(offTable.stdout, /^password_signs_in_here *$/m);
        assert.doesNotMatch(table.stdout + csv.stdout + offTable.stdout, /1970-01-01|NF7ZcEKXV8vIXmSEc4yWFO/);
      } finally {
        await database.drop();
        await fixture.drop();
      }
    });
  },
);
