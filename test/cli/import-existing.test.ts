import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ComparedSettings, settingsThatDiffer } from '../../src/cli/commands/import-existing.ts';

const IMPORTED: ComparedSettings = {
  name: 'Wiki',
  logoUrl: null,
  redirectUris: ['https://wiki.example.org/cb', 'https://wiki.example.org/other'],
  postLogoutRedirectUris: [],
  clientType: 'confidential',
  grantTypes: ['authorization_code', 'refresh_token'],
  skipAuthorization: false,
  states: ['Member'],
  groups: ['Directors', 'Fleet Commanders'],
  active: true,
  debugMode: false,
  pkceRequired: true,
  accessTokenFormat: 'inherit',
  backchannelLogoutUri: null,
  backchannelLogoutOnRevokeOnly: false,
};

describe('import plugin-apps: an application that exists already', () => {
  it('has the plugin’s settings when only the order of its lists or the spaces around its name differ', () => {
    assert.deepEqual(
      settingsThatDiffer(
        {
          ...IMPORTED,
          name: ' Wiki ',
          redirectUris: ['https://wiki.example.org/other', 'https://wiki.example.org/cb'],
          grantTypes: ['refresh_token', 'authorization_code'],
          groups: ['Fleet Commanders', 'Directors'],
        },
        IMPORTED,
      ),
      [],
    );
  });

  it('names each setting that differs, by the name app show gives it', () => {
    assert.deepEqual(
      settingsThatDiffer(
        {
          ...IMPORTED,
          logoUrl: 'https://wiki.example.org/logo.png',
          redirectUris: ['https://wiki.example.org/cb'],
          states: [],
          active: false,
          accessTokenFormat: 'jwt',
          backchannelLogoutUri: 'https://wiki.example.org/bcl',
        },
        IMPORTED,
      ),
      ['logo_url', 'redirect_uris', 'states', 'active', 'access_token_format', 'backchannel_logout_uri'],
    );
  });
});
