import { type AaBool, type AaDb, truthy } from './schema.ts';

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
  debugMode: boolean;
  /** The id_token signing algorithm: `RS256`, `HS256`, or `""` (the plugin then issued none). */
  algorithm: string;
  /** The origins the plugin answered CORS requests from. */
  allowedOrigins: string[];
  /**
   * `manual` (an operator made it; also every application of a plugin older than its migration
   * 0021), or how the client registered itself: `dcr`, `cimd`.
   */
  registrationSource: string;
}

function words(text: string | null | undefined): string[] {
  return (text ?? '').split(/\s+/).filter((word) => word !== '');
}

/**
 * A flag of a column an older plugin lacks read as that column's default when the plugin's migration
 * added it to the rows already there: `active` (0002), `hash_client_secret` (0004: django-oauth-toolkit
 * had hashed every secret until then) and `pkce_required` (0010) are true.
 */
function flagOrTrue(value: AaBool | undefined): boolean {
  return value === undefined || truthy(value);
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
    pkceRequired: flagOrTrue(row.pkce_required),
    accessTokenFormat: textOrNull(row.access_token_format),
    backchannelLogoutUri: textOrNull(row.backchannel_logout_uri),
    backchannelLogoutOnRevokeOnly: truthy(row.backchannel_logout_on_revoke_only),
    active: flagOrTrue(row.active),
    logoUrl: textOrNull(row.logo_url),
    clientSecret: row.client_secret,
    hashClientSecret: flagOrTrue(row.hash_client_secret),
    states: namesOf(states, row.id),
    groups: namesOf(groups, row.id),
    debugMode: truthy(row.debug_mode),
    algorithm: (row.algorithm ?? '').trim(),
    allowedOrigins: words(row.allowed_origins),
    registrationSource: textOrNull(row.registration_source) ?? 'manual',
  }));
}
