import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import {
  type Client,
  codeFlow,
  isActive,
  type Pilot,
  seedClient,
  seedDirectory,
  seedPilot,
  userinfo,
  verifyAccessToken,
} from './helpers.ts';

describe(`aa-oidc tokens revoke-user / audit (${testDatabaseKind})`, () => {
  let harness: LeakHarness;
  let server: TestServer;
  let jwtClient: Client;
  let opaqueClient: Client;
  let pilot: Pilot;
  let bystander: Pilot;

  async function cli(...args: string[]): Promise<CliResult> {
    const result = await runCli(args, testEnv(server.database));
    harness.scanText(`aa-oidc ${args.join(' ')} stdout`, result.stdout);
    harness.scanText(`aa-oidc ${args.join(' ')} stderr`, result.stderr);
    return result;
  }

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    await seedDirectory(server);
    pilot = await seedPilot(server, harness);
    bystander = await seedPilot(server, harness);
    jwtClient = await seedClient(server, harness, { accessTokenFormat: 'jwt' });
    opaqueClient = await seedClient(server, harness, { accessTokenFormat: 'opaque' });
  });
  after(async () => {
    await harness.assertNoLeaks();
    await server.close();
  });

  it('lists tokens without values, revokes every token of one user in one go (dry run first), and the JWT turns inactive', async () => {
    const jwt = await codeFlow(server, harness, jwtClient, pilot, 'openid profile');
    const opaque = await codeFlow(server, harness, opaqueClient, pilot, 'openid email');
    const other = await codeFlow(server, harness, jwtClient, bystander, 'openid');
    await verifyAccessToken(server, jwtClient, jwt.accessToken);
    assert.equal(await isActive(server, jwtClient, jwt.accessToken), true);

    const audit = await cli('tokens', 'audit', '--username', pilot.username, '--format', 'json');
    assert.equal(audit.code, 0, audit.stderr);
    const listed = JSON.parse(audit.stdout) as Array<Record<string, unknown>>;
    assert.equal(listed.length, 4, 'two access and two refresh tokens');
    const jwtRow = listed.find((row) => row.format === 'jwt');
    assert.ok(jwtRow);
    assert.equal(jwtRow.client_id, jwtClient.clientId);
    assert.equal(jwtRow.username, pilot.username);
    assert.deepEqual(jwtRow.scopes, ['openid', 'profile']);
    assert.equal(jwtRow.status, 'active');
    assert.equal(jwtRow.revoked, false);
    assert.ok(listed.every((row) => row.username === pilot.username));
    const byClient = JSON.parse(
      (await cli('tokens', 'audit', '--client-id', opaqueClient.clientId, '--format', 'json')).stdout,
    ) as Array<Record<string, unknown>>;
    assert.ok(byClient.length >= 2 && byClient.every((row) => row.client_id === opaqueClient.clientId));

    const dry = await cli('tokens', 'revoke-user', '--username', pilot.username, '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /dry run: would revoke 4 code\(s\) and token\(s\)/);
    assert.equal(await isActive(server, jwtClient, jwt.accessToken), true, 'a dry run changes nothing');

    const revoked = await cli(
      'tokens',
      'revoke-user',
      '--username',
      pilot.username,
      '--reason',
      'left the alliance',
      '--format',
      'json',
    );
    assert.equal(revoked.code, 0, revoked.stderr);
    const result = JSON.parse(revoked.stdout) as { revoked: number; dry_run: boolean };
    assert.equal(result.dry_run, false);
    assert.equal(
      result.revoked,
      4,
      'two access and two refresh tokens; the exchanged codes are spent already',
    );
    for (const token of [jwt.accessToken, jwt.refreshToken!, opaque.accessToken, opaque.refreshToken!]) {
      assert.equal(await isActive(server, jwtClient, token), false);
    }
    assert.equal((await userinfo(server, jwt.accessToken)).status, 401);
    assert.equal(
      await isActive(server, jwtClient, other.accessToken),
      true,
      "another user's token is untouched",
    );

    const after = JSON.parse(
      (await cli('tokens', 'audit', '--username', pilot.username, '--format', 'json')).stdout,
    ) as Array<Record<string, unknown>>;
    assert.ok(after.every((row) => row.status === 'revoked' && row.revoked_reason === 'user_revoked'));
    const table = await cli('tokens', 'audit', '--username', pilot.username);
    assert.match(table.stdout, /^TOKEN_SHA256\s+TYPE\s+FORMAT\s+CLIENT_ID/);
    const csv = await cli('tokens', 'audit', '--format', 'csv', '--include-expired');
    assert.match(
      csv.stdout,
      /^token_sha256,type,format,client_id,user,scopes,expires_at,status,revoked_reason\r\n/,
    );

    const unknown = await cli('tokens', 'revoke-user', '--username', 'nobody-here');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no user named "nobody-here"/);
    const unknownApp = await cli('tokens', 'audit', '--client-id', 'no-such-app');
    assert.equal(unknownApp.code, 1);
    assert.equal(unknownApp.stdout, '');
    assert.match(unknownApp.stderr, /^aa-oidc: client_id: no application with client_id "no-such-app"$/m);
    const badReason = await cli(
      'tokens',
      'revoke-user',
      '--username',
      pilot.username,
      '--reason',
      'a\u0007b',
    );
    assert.notEqual(badReason.code, 0);
    assert.match(badReason.stderr, /--reason must not contain control characters/);
  });
});
