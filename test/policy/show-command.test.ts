import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createServices, type Services } from '../../src/services.ts';
import { cli as runCli, type CliResult } from '../helpers/cli.ts';
import { testConfig, testEnv } from '../helpers/config.ts';
import { createTestDatabase, type TestDatabase, testDatabaseKind } from '../helpers/database.ts';

/** `aa-oidc policy show` as an operator runs it, against a real database. */
describe(`aa-oidc policy show (${testDatabaseKind})`, () => {
  let database: TestDatabase;
  let services: Services;
  let wiki: string;
  let inactive: string;

  function cli(...args: string[]): Promise<CliResult> {
    return runCli(args, testEnv(database));
  }

  before(async () => {
    database = await createTestDatabase({ migrated: true });
    services = await createServices(testConfig(database), { migrate: true });
    const { directoryAdmin: directory, applications } = services;
    await directory.createState('Member', 100, true);
    await directory.createState('Guest', 10, false);
    await directory.createState('Blue', 50, true);
    await directory.createGroup('Fleet', false);
    await directory.createGroup('Directors', false);
    await directory.createGroup('Miners', true);
    await directory.createUser({ username: 'outsider', state: 'Member', groups: ['Directors'] });
    await directory.createUser({ username: 'fleetpilot', state: 'Member', groups: ['Fleet'] });
    await directory.createUser({ username: 'guest', state: 'Guest', groups: ['Fleet'] });
    const created = await applications.create(
      {
        name: 'Fleet Wiki',
        redirectUris: ['https://wiki.example.org/cb'],
        states: ['Blue'],
        groups: ['Fleet'],
      },
      'test',
    );
    wiki = created.application.clientId;
    const off = await applications.create(
      { name: 'Retired', redirectUris: ['https://old.example.org/cb'], active: false },
      'test',
    );
    inactive = off.application.clientId;
  });
  after(async () => {
    await services.close();
    await database.drop();
  });

  it('explains a whitelist denial in the table format: what the user has and what would be needed', async () => {
    const { code, stdout } = await cli('policy', 'show', wiki, '--username', 'outsider');
    assert.equal(code, 0);
    const field = (name: string) => new RegExp(`^${name}\\s{2,}(.*)$`, 'm').exec(stdout)?.[1];
    assert.equal(field('decision'), 'deny');
    assert.equal(field('reason'), 'app');
    assert.equal(field('app_active'), 'true');
    assert.equal(field('global_gate'), 'pass');
    assert.equal(field('oidc_access_via'), 'state');
    assert.equal(field('user_state'), 'Member');
    assert.equal(field('user_groups'), 'Directors');
    assert.equal(field('app_states'), 'Blue');
    assert.equal(field('app_groups'), 'Fleet');
    assert.equal(field('needed_states'), 'Blue');
    assert.equal(field('needed_groups'), 'Fleet');
    assert.match(field('explanation') ?? '', /whitelists/);
  });

  it('explains a global denial in JSON, naming the states and groups that carry oidc_access', async () => {
    const { code, stdout } = await cli('policy', 'show', wiki, '--username', 'guest', '--format', 'json');
    assert.equal(code, 0);
    const body = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(body.decision, 'deny');
    assert.equal(body.reason, 'global');
    assert.equal(body.global_gate, 'fail');
    assert.deepEqual(body.oidc_access_via, []);
    assert.equal(body.user_state, 'Guest');
    assert.deepEqual(body.user_groups, ['Fleet']);
    assert.deepEqual(body.app_groups, ['Fleet']);
    assert.deepEqual(body.needed_states, ['Member', 'Blue']);
    assert.deepEqual(body.needed_groups, ['Miners']);
    assert.match(String(body.explanation), /global gate/);
  });

  it('explains a deactivated application and an allowed user in CSV', async () => {
    const denied = await cli('policy', 'show', inactive, '--username', 'fleetpilot', '--format', 'csv');
    assert.equal(denied.code, 0);
    const [header, row, ...rest] = denied.stdout.split('\r\n');
    assert.deepEqual(rest, ['']);
    const columns = header!.split(',');
    const values = row!.split(',');
    const value = (name: string) => values[columns.indexOf(name)];
    assert.equal(value('decision'), 'deny');
    assert.equal(value('reason'), 'app_unusable');
    assert.equal(value('app_active'), 'false');
    assert.equal(value('global_gate'), 'pass');

    const allowed = await cli('policy', 'show', wiki, '--username', 'fleetpilot', '--format', 'csv');
    assert.equal(allowed.code, 0);
    assert.match(allowed.stdout, /^client_id,username,decision,reason,/);
    assert.match(allowed.stdout.split('\r\n')[1]!, new RegExp(`^${wiki},fleetpilot,allow,via_group,`));
  });

  it('fails with a one-line reason for an unknown user or application', async () => {
    const noUser = await cli('policy', 'show', wiki, '--username', 'nobody');
    assert.notEqual(noUser.code, 0);
    assert.equal(noUser.stdout, '');
    assert.match(noUser.stderr, /^aa-oidc: no user named "nobody"/);
    assert.equal(noUser.stderr.trim().split('\n').length, 1);
    const noApp = await cli('policy', 'show', 'no-such-client', '--username', 'outsider');
    assert.notEqual(noApp.code, 0);
    assert.match(noApp.stderr, /^aa-oidc: no application with client_id "no-such-client"/);
    assert.equal(noApp.stderr.trim().split('\n').length, 1);
    const missing = await cli('policy', 'show', wiki);
    assert.notEqual(missing.code, 0, '--username is required');
  });
});
