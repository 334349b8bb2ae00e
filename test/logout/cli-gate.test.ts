import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/**
 * `aa-oidc app create|update --backchannel-logout-uri`: the CLI's write path
 * runs the SSRF gate. Only IP literals here, which the gate judges without any name lookup.
 */
describe(`aa-oidc app: back-channel URIs pass the SSRF gate (${testDatabaseKind})`, () => {
  let database: TestDatabase;

  function cli(extra: Record<string, string>, ...args: string[]): Promise<CliResult> {
    return runCli(args, testEnv(database, extra));
  }

  before(async () => {
    database = await createTestDatabase();
    const migrated = await cli({}, 'migrate');
    assert.equal(migrated.code, 0, migrated.stderr);
  });
  after(async () => database.drop());

  for (const [uri, detail] of [
    ['http://10.0.0.1/bcl', '10.0.0.1 is a private address'],
    ['http://2130706433/bcl', '127.0.0.1 is a loopback address'],
    ['http://[::ffff:169.254.169.254]/latest/meta-data/', 'embeds 169.254.169.254 (IPv4-mapped IPv6)'],
    ['http://localhost:8080/bcl', 'localhost always names this machine'],
  ]) {
    it(`refuses app create --backchannel-logout-uri ${uri}`, async () => {
      const result = await cli(
        {},
        'app',
        'create',
        '--name',
        'Intranet',
        '--redirect-uri',
        'https://rp.example.org/callback',
        '--backchannel-logout-uri',
        uri!,
      );
      assert.notEqual(result.code, 0, result.stdout);
      assert.match(
        result.stderr,
        /backchannel_logout_uri: .* is refused by the SSRF gate \(unsafe_target_ip\)/,
      );
      assert.ok(result.stderr.includes(detail!), result.stderr);
    });
  }

  it('accepts a loopback target with logout.allowPrivateTargets, and still refuses metadata', async () => {
    const allow = { AA_OIDC_LOGOUT_ALLOW_PRIVATE_TARGETS: 'true' };
    const created = await cli(
      allow,
      'app',
      'create',
      '--name',
      'Local RP',
      '--client-id',
      'local-rp',
      '--redirect-uri',
      'http://127.0.0.1:3000/callback',
      '--backchannel-logout-uri',
      'http://127.0.0.1:3000/bcl',
    );
    assert.equal(created.code, 0, created.stderr);
    const metadata = await cli(
      allow,
      'app',
      'update',
      'local-rp',
      '--backchannel-logout-uri',
      'http://169.254.169.254/latest/meta-data/',
    );
    assert.notEqual(metadata.code, 0);
    assert.match(
      metadata.stderr,
      /\(unsafe_target_ip\): 169\.254\.169\.254 is a cloud metadata service address/,
    );
  });
});
