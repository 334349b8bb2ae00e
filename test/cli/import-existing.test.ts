import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ComparedSettings,
  type DirectoryCatalog,
  settingsThatDiffer,
} from '../../src/cli/commands/import-existing.ts';

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

const DIRECTORY: DirectoryCatalog = {
  states: new Set(['Member', 'Guest']),
  groups: new Set(['Directors', 'Fleet Commanders']),
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
        DIRECTORY,
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
        DIRECTORY,
      ),
      ['logo_url', 'redirect_uris', 'states', 'active', 'access_token_format', 'backchannel_logout_uri'],
    );
  });

  it('has the plugin’s whitelists when their names differ from the directory’s only in case, as the write path stores them', () => {
    // The directory (built-in, say) spells them in lower case; the plugin's Alliance Auth does not.
    const directory: DirectoryCatalog = {
      states: new Set(['member']),
      groups: new Set(['directors', 'fleet commanders']),
    };
    const stored = { ...IMPORTED, states: ['member'], groups: ['directors', 'fleet commanders'] };
    assert.deepEqual(settingsThatDiffer(stored, IMPORTED, directory), []);
    // A name the directory does not hold is not the stored one, whatever its case.
    assert.deepEqual(settingsThatDiffer(stored, IMPORTED, { ...directory, states: new Set(['members']) }), [
      'states',
    ]);
  });

  it('tells whitelists apart whose names the directory holds in two spellings (Alliance Auth on PostgreSQL)', () => {
    const directory: DirectoryCatalog = {
      states: new Set(['Member']),
      groups: new Set(['Directors', 'directors', 'Fleet Commanders']),
    };
    assert.deepEqual(
      settingsThatDiffer({ ...IMPORTED, groups: ['directors', 'Fleet Commanders'] }, IMPORTED, directory),
      ['groups'],
    );
  });
});
