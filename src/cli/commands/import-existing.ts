import type { PluginApplication } from '../../alliance-auth/plugin-apps.ts';
import { importedSecretHash, verifyClientSecret } from '../../applications/secret.ts';
import type { Application, ImportedSecret } from '../../applications/types.ts';
import { type DirectoryNames, directorySpellings } from '../../applications/validate.ts';
import { verifyDjangoPbkdf2 } from '../../util/django-pbkdf2.ts';
import { sameText } from '../../util/same-text.ts';

/**
 * What `import plugin-apps` tells of an application whose client id exists in aa-oidc already (it is
 * left as it is): whether it is what the import would create, and whether a relying party that sends
 * the plugin's secret authenticates with it. Never a secret, a hash or a digest.
 */

/** The settings an import sets, as both an application and what the import would create hold them. */
export type ComparedSettings = Pick<
  Application,
  | 'name'
  | 'logoUrl'
  | 'redirectUris'
  | 'postLogoutRedirectUris'
  | 'clientType'
  | 'grantTypes'
  | 'skipAuthorization'
  | 'states'
  | 'groups'
  | 'active'
  | 'debugMode'
  | 'pkceRequired'
  | 'accessTokenFormat'
  | 'backchannelLogoutUri'
  | 'backchannelLogoutOnRevokeOnly'
>;

const unordered = (list: readonly string[]) => [...new Set(list)].sort();

/**
 * Each compared setting by its spec name (as `app show --format json` names it), in a form where equal
 * means the same application: lists whose order means nothing sorted, the name trimmed as the write
 * path stores it. `id_token_claims` is aa-oidc's own (the plugin has none): not compared.
 */
const COMPARED: ReadonlyArray<readonly [string, (settings: ComparedSettings) => unknown]> = [
  ['name', (settings) => settings.name.trim()],
  ['logo_url', (settings) => settings.logoUrl],
  ['redirect_uris', (settings) => unordered(settings.redirectUris)],
  ['post_logout_redirect_uris', (settings) => unordered(settings.postLogoutRedirectUris)],
  ['client_type', (settings) => settings.clientType],
  ['grant_types', (settings) => unordered(settings.grantTypes)],
  ['skip_authorization', (settings) => settings.skipAuthorization],
  ['states', (settings) => unordered(settings.states)],
  ['groups', (settings) => unordered(settings.groups)],
  ['active', (settings) => settings.active],
  ['debug_mode', (settings) => settings.debugMode],
  ['pkce_required', (settings) => settings.pkceRequired],
  ['access_token_format', (settings) => settings.accessTokenFormat],
  ['backchannel_logout_uri', (settings) => settings.backchannelLogoutUri],
  ['backchannel_logout_on_revoke_only', (settings) => settings.backchannelLogoutOnRevokeOnly],
];

/** Every state and every group of the directory, whose spellings whitelists store. */
export interface DirectoryCatalog {
  states: DirectoryNames;
  groups: DirectoryNames;
}

/**
 * Pure: the spec names of the settings in which `existing` is not what the import would create. The
 * plugin's state and group names are compared as the write path would store them, in the directory's
 * spelling (`Member` is the directory's `member`), so that a difference of case alone is none; a name
 * the directory holds in two spellings means the one spelt exactly.
 */
export function settingsThatDiffer(
  existing: ComparedSettings,
  imported: ComparedSettings,
  directory: DirectoryCatalog,
): string[] {
  const stored = (names: DirectoryNames) => {
    const spellingsOf = directorySpellings(names);
    return (name: string) => {
      const spellings = spellingsOf(name);
      return spellings.length === 1 ? spellings[0]! : name;
    };
  };
  const asStored = {
    ...imported,
    states: imported.states.map(stored(directory.states)),
    groups: imported.groups.map(stored(directory.groups)),
  };
  return COMPARED.filter(
    ([, value]) => JSON.stringify(value(existing)) !== JSON.stringify(value(asStored)),
  ).map(([field]) => field);
}

/**
 * Whether the plugin's secret authenticates as the existing application: `verifies` or
 * `does_not_verify`; `not_compared` when the plugin keeps only a hash of it that is not the one aa-oidc
 * holds (its secret cannot be derived from either); `none` when either side is a public client.
 */
export type ExistingSecret = 'verifies' | 'does_not_verify' | 'not_compared' | 'none';

/**
 * Compares the plugin's secret with the existing application's. A secret the plugin keeps in clear is
 * checked as a client authentication would check it: against aa-oidc's digest, or against the hash
 * an earlier import left (one PBKDF2 run, at most `IMPORTED_SECRET_MAX_ITERATIONS`; a costlier hash
 * authenticates nobody). A plugin's hash is compared only with the same hash still held here.
 */
export async function compareSecret(
  app: Pick<PluginApplication, 'clientSecret'>,
  imported: ImportedSecret | undefined,
  existing: Pick<Application, 'clientType' | 'clientSecretSha256' | 'clientSecretPbkdf2'>,
): Promise<ExistingSecret> {
  if (imported === undefined || existing.clientType !== 'confidential') return 'none';
  const existingHash = existing.clientSecretPbkdf2;
  if ('djangoPbkdf2' in imported) {
    return existingHash !== null && sameText(existingHash, imported.djangoPbkdf2)
      ? 'verifies'
      : 'not_compared';
  }
  if (existingHash === null) {
    return verifyClientSecret(existing, app.clientSecret) ? 'verifies' : 'does_not_verify';
  }
  if (!importedSecretHash(existing)?.checked) return 'does_not_verify';
  return (await verifyDjangoPbkdf2(existingHash, app.clientSecret)) ? 'verifies' : 'does_not_verify';
}
