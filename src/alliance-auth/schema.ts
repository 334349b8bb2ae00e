import type { Kysely } from 'kysely';
/**
 * The Alliance Auth tables aa-oidc reads (Alliance Auth 4.x on Django 4.2, and 5.x), as Kysely
 * types. Names and columns are AA's own: every foreign key holds the surrogate `id` of the row it
 * points at, never an EVE id, and EVE ids live in `eveonline_evecharacter` as plain integers.
 *
 * Booleans are `tinyint(1)` on MariaDB/MySQL (0/1) and `boolean` on PostgreSQL, so they are typed
 * `AaBool` and read through `truthy()`. aa-oidc never writes to any of these tables.
 */
export type AaBool = boolean | number;

export interface AuthUserTable {
  id: number;
  password: string;
  /** A number for PostgreSQL's `infinity` and `-infinity` (`djangoTime`). */
  last_login: Date | string | number | null;
  is_superuser: AaBool;
  username: string;
  first_name: string;
  last_name: string;
  email: string;
  is_staff: AaBool;
  is_active: AaBool;
  date_joined: Date | string | number;
}

export interface AuthGroupTable {
  id: number;
  name: string;
}

export interface AuthUserGroupsTable {
  id: number;
  user_id: number;
  group_id: number;
}

export interface AuthPermissionTable {
  id: number;
  name: string;
  content_type_id: number;
  codename: string;
}

export interface DjangoContentTypeTable {
  id: number;
  app_label: string;
  model: string;
}

export interface AuthUserUserPermissionsTable {
  id: number;
  user_id: number;
  permission_id: number;
}

export interface AuthGroupPermissionsTable {
  id: number;
  group_id: number;
  permission_id: number;
}

export interface DjangoMigrationsTable {
  id: number;
  app: string;
  name: string;
  applied: Date | string;
}

export interface AuthenticationStateTable {
  id: number;
  name: string;
  priority: number;
  public: AaBool;
}

export interface AuthenticationStatePermissionsTable {
  id: number;
  state_id: number;
  permission_id: number;
}

export interface AuthenticationUserProfileTable {
  id: number;
  user_id: number;
  main_character_id: number | null;
  state_id: number;
  language: string;
}

export interface AuthenticationCharacterOwnershipTable {
  id: number;
  character_id: number;
  owner_hash: string;
  user_id: number;
}

export interface EveCharacterTable {
  id: number;
  character_id: number;
  character_name: string;
  corporation_id: number;
  corporation_name: string;
  corporation_ticker: string;
  alliance_id: number | null;
  alliance_name: string | null;
  alliance_ticker: string | null;
  faction_id: number | null;
  faction_name: string | null;
}

/**
 * The Python plugin's application table (app label `allianceauth_oidc`): a django-oauth-toolkit
 * application plus the plugin's fields, as its migrations 0001–0022 leave it. It is read with
 * `selectAll()`, so a column an older plugin lacks comes back `undefined`: those are optional.
 */
export interface PluginApplicationTable {
  id: number | string;
  client_id: string;
  /** Space-separated. */
  redirect_uris: string;
  /** Space-separated. */
  post_logout_redirect_uris: string;
  client_type: string;
  authorization_grant_type: string;
  /** A Django PBKDF2 hash when `hash_client_secret`, the secret in clear otherwise. */
  client_secret: string;
  name: string;
  skip_authorization: AaBool;
  /** The id_token signing algorithm: `RS256`, `HS256` (keyed with the client secret), or `""`. */
  algorithm: string;
  /** Absent before the plugin's migration 0002. */
  active?: AaBool;
  /** Absent before 0003, as `logo_url`. */
  debug_mode?: AaBool;
  logo_url?: string | null;
  /** Space-separated origins the plugin answered CORS requests from (its token endpoint). */
  allowed_origins?: string;
  /** Absent before 0004, when django-oauth-toolkit hashed every secret. */
  hash_client_secret?: AaBool;
  /** Absent before 0010. */
  pkce_required?: AaBool;
  access_token_format?: string | null;
  backchannel_logout_uri?: string;
  backchannel_logout_on_revoke_only?: AaBool;
  /**
   * `manual` (made in the plugin's admin), `dcr` (RFC 7591 dynamic client registration) or `cimd`
   * (a client ID metadata document): absent before the plugin's migration 0021.
   */
  registration_source?: string;
}

export interface PluginApplicationStatesTable {
  id: number;
  allianceauthapplication_id: number | string;
  state_id: number;
}

export interface PluginApplicationGroupsTable {
  id: number;
  allianceauthapplication_id: number | string;
  group_id: number;
}

export interface AllianceAuthDatabase {
  auth_user: AuthUserTable;
  auth_group: AuthGroupTable;
  auth_user_groups: AuthUserGroupsTable;
  auth_permission: AuthPermissionTable;
  auth_user_user_permissions: AuthUserUserPermissionsTable;
  auth_group_permissions: AuthGroupPermissionsTable;
  django_content_type: DjangoContentTypeTable;
  django_migrations: DjangoMigrationsTable;
  authentication_state: AuthenticationStateTable;
  authentication_state_permissions: AuthenticationStatePermissionsTable;
  authentication_userprofile: AuthenticationUserProfileTable;
  authentication_characterownership: AuthenticationCharacterOwnershipTable;
  eveonline_evecharacter: EveCharacterTable;
  allianceauth_oidc_allianceauthapplication: PluginApplicationTable;
  allianceauth_oidc_allianceauthapplication_states: PluginApplicationStatesTable;
  allianceauth_oidc_allianceauthapplication_groups: PluginApplicationGroupsTable;
}

/** 1, true, '1' → true. */
export function truthy(value: AaBool | string | null | undefined): boolean {
  return value === true || value === 1 || value === '1';
}

/** Alliance Auth's database, read through Kysely. */
export type AaDb = Kysely<AllianceAuthDatabase>;
