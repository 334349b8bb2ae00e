import type { AccessTokenFormatSetting, ApplicationInput, GrantType } from '../applications/types.ts';
import type { ImportedSecret } from '../applications/types.ts';
import { clientSecretDigest } from '../applications/secret.ts';
import { isDjangoPbkdf2 } from '../util/django-pbkdf2.ts';
import type { AaDb } from './queries.ts';
import { truthy } from './schema.ts';

/**
 * The Python plugin's applications (`allianceauth_oidc_allianceauthapplication`, a
 * django-oauth-toolkit application with the plugin's fields, and its `…_states` / `…_groups`
 * whitelists), read from Alliance Auth's database and turned into aa-oidc applications with the
 * same client id, so that relying parties keep their configuration. Read only: the plugin's tables
 * are left as they are (roll back by switching the relying parties' issuer back).
 */
export const PLUGIN_APPLICATION_TABLE = 'allianceauth_oidc_allianceauthapplication';

/** One application of the plugin, as stored there (plain values). */
export interface PluginApplication {
  clientId: string;
  name: string;
  clientType: string;
  grantType: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  skipAuthorization: boolean;
  pkceRequired: boolean;
  /** `opaque`, `jwt`, or null for the deployment's default. */
  accessTokenFormat: string | null;
  backchannelLogoutUri: string | null;
  backchannelLogoutOnRevokeOnly: boolean;
  active: boolean;
  logoUrl: string | null;
  /** As stored: a Django PBKDF2 hash when `hashClientSecret`, else the secret in clear. */
  clientSecret: string;
  hashClientSecret: boolean;
  states: string[];
  groups: string[];
}

/** What the import does with one plugin application. */
export type PluginImportPlan =
  | { clientId: string; name: string; outcome: 'import'; input: ApplicationInput; secret?: ImportedSecret }
  | { clientId: string; name: string; outcome: 'unsupported'; reason: string };

function words(text: string | null | undefined): string[] {
  return (text ?? '').split(/\s+/).filter((word) => word !== '');
}

function textOrNull(text: string | null | undefined): string | null {
  return text === null || text === undefined || text.trim() === '' ? null : text.trim();
}

/** The plugin's applications with their whitelists by name, by client id. */
export async function readPluginApplications(aa: AaDb): Promise<PluginApplication[]> {
  const rows = await aa
    .selectFrom('allianceauth_oidc_allianceauthapplication')
    .selectAll()
    .orderBy('client_id')
    .execute();
  const [states, groups] = await Promise.all([
    aa
      .selectFrom('allianceauth_oidc_allianceauthapplication_states as w')
      .innerJoin('authentication_state as s', 's.id', 'w.state_id')
      .select(['w.allianceauthapplication_id as app', 's.name'])
      .execute(),
    aa
      .selectFrom('allianceauth_oidc_allianceauthapplication_groups as w')
      .innerJoin('auth_group as g', 'g.id', 'w.group_id')
      .select(['w.allianceauthapplication_id as app', 'g.name'])
      .execute(),
  ]);
  const namesOf = (list: Array<{ app: number | string; name: string }>, id: number | string) =>
    list
      .filter((entry) => String(entry.app) === String(id))
      .map((entry) => entry.name)
      .sort();
  return rows.map((row) => ({
    clientId: row.client_id,
    name: row.name,
    clientType: row.client_type,
    grantType: row.authorization_grant_type,
    redirectUris: words(row.redirect_uris),
    postLogoutRedirectUris: words(row.post_logout_redirect_uris),
    skipAuthorization: truthy(row.skip_authorization),
    pkceRequired: truthy(row.pkce_required),
    accessTokenFormat: textOrNull(row.access_token_format),
    backchannelLogoutUri: textOrNull(row.backchannel_logout_uri),
    backchannelLogoutOnRevokeOnly: truthy(row.backchannel_logout_on_revoke_only),
    active: truthy(row.active),
    logoUrl: textOrNull(row.logo_url),
    clientSecret: row.client_secret,
    hashClientSecret: truthy(row.hash_client_secret),
    states: namesOf(states, row.id),
    groups: namesOf(groups, row.id),
  }));
}

/** django-oauth-toolkit's grant type → aa-oidc's grant types (DOT issues refresh tokens with codes). */
const GRANT_TYPES: Readonly<Record<string, GrantType[]>> = {
  'authorization-code': ['authorization_code', 'refresh_token'],
  'client-credentials': ['client_credentials'],
};

/** Pure: what aa-oidc creates for a plugin application, or why it cannot. */
export function planPluginImport(app: PluginApplication): PluginImportPlan {
  const refuse = (reason: string): PluginImportPlan => ({
    clientId: app.clientId,
    name: app.name,
    outcome: 'unsupported',
    reason,
  });
  const grantTypes = GRANT_TYPES[app.grantType];
  if (!grantTypes) {
    return refuse(
      `grant type "${app.grantType}" is not supported (aa-oidc offers authorization-code and client-credentials)`,
    );
  }
  if (app.clientType !== 'confidential' && app.clientType !== 'public') {
    return refuse(`client type "${app.clientType}" is neither confidential nor public`);
  }
  let accessTokenFormat: AccessTokenFormatSetting = 'inherit';
  if (app.accessTokenFormat === 'opaque' || app.accessTokenFormat === 'jwt') {
    accessTokenFormat = app.accessTokenFormat;
  } else if (app.accessTokenFormat !== null) {
    return refuse(`access token format "${app.accessTokenFormat}" is neither opaque nor jwt`);
  }
  let secret: ImportedSecret | undefined;
  if (app.clientType === 'confidential') {
    if (app.hashClientSecret) {
      if (!isDjangoPbkdf2(app.clientSecret)) {
        return refuse('the stored client secret is hashed with something other than Django PBKDF2-SHA256');
      }
      secret = { djangoPbkdf2: app.clientSecret };
    } else {
      if (app.clientSecret === '') return refuse('the client secret is empty');
      secret = { sha256Hex: clientSecretDigest(app.clientSecret) };
    }
  }
  const input: ApplicationInput = {
    clientId: app.clientId,
    name: app.name,
    logoUrl: app.logoUrl,
    redirectUris: app.redirectUris,
    postLogoutRedirectUris: app.postLogoutRedirectUris,
    clientType: app.clientType,
    grantTypes,
    skipAuthorization: app.skipAuthorization,
    states: app.states,
    groups: app.groups,
    active: app.active,
    // A public client always uses PKCE here.
    pkceRequired: app.clientType === 'public' ? true : app.pkceRequired,
    accessTokenFormat,
    backchannelLogoutUri: app.backchannelLogoutUri,
    backchannelLogoutOnRevokeOnly: app.backchannelLogoutOnRevokeOnly,
  };
  return {
    clientId: app.clientId,
    name: app.name,
    outcome: 'import',
    input,
    ...(secret !== undefined && { secret }),
  };
}
