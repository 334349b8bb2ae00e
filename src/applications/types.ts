export type ClientType = 'confidential' | 'public';
export type AccessTokenFormatSetting = 'inherit' | 'opaque' | 'jwt';
export type GrantType = 'authorization_code' | 'refresh_token' | 'client_credentials';

/** An application (OIDC client) as read from our tables; whitelists resolved to names. */
export interface Application {
  clientId: string;
  /** SHA-256 digest (hex) of the client secret; null for public clients. Never the secret itself. */
  clientSecretSha256: string | null;
  name: string;
  logoUrl: string | null;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  clientType: ClientType;
  grantTypes: GrantType[];
  skipAuthorization: boolean;
  /** Whitelisted state names (empty with empty `groups` = open to everyone past the global gate). */
  states: string[];
  /** Whitelisted group names. */
  groups: string[];
  active: boolean;
  debugMode: boolean;
  pkceRequired: boolean;
  accessTokenFormat: AccessTokenFormatSetting;
  backchannelLogoutUri: string | null;
  backchannelLogoutOnRevokeOnly: boolean;
  createdBy: string | null;
  createdAt: number;
  updatedAt: number;
}
