import type { Provider } from 'oidc-provider';
import {
  ACCESS_TOKEN_FORMAT_SETTINGS,
  type AccessTokenFormatSetting,
  type Application,
} from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { Logger } from '../logging/logger.ts';
import { sha256Hex } from '../logging/secrets.ts';
import { FORMAT_MARKER, VALUE_DIGEST_MARKER } from './adapter.ts';

export type AccessTokenFormat = 'opaque' | 'jwt';

/** The format an application's access tokens take: its own setting, or the global default. */
export function accessTokenFormatFor(
  app: Pick<Application, 'accessTokenFormat'> | undefined,
  defaultFormat: AccessTokenFormat,
): AccessTokenFormat {
  const setting = app?.accessTokenFormat ?? 'inherit';
  return setting === 'inherit' ? defaultFormat : setting;
}

function isFormatSetting(value: unknown): value is AccessTokenFormatSetting {
  return (ACCESS_TOKEN_FORMAT_SETTINGS as readonly unknown[]).includes(value);
}

export interface AccessTokenFormatDependencies {
  config: Pick<Config, 'tokens'>;
  logger: Pick<Logger, 'warn'>;
  applications: { findByClientId(clientId: string): Promise<Application | undefined> };
}

/** The parts of oidc-provider's AccessToken / ClientCredentials models used here. */
interface TokenModel {
  clientId?: string;
  /** The provider's Client the token is issued to, as loaded in this request (`clients.ts`). */
  client?: { clientId?: unknown; access_token_format?: unknown };
  iat?: number;
  exp?: number;
  aud?: string;
  format?: string;
  expiration: number;
  resourceServer?: unknown;
  getValueAndPayload(this: TokenModel): Promise<{ value: string; payload?: Record<string, unknown> }>;
}

/**
 * The access-token format (opaque or RFC 9068 JWT, per application) on oidc-provider 9, which chooses a token's format from its resource server
 * (`formats/index.js`: `token.resourceServer?.accessTokenFormat`) and neither stores a JWT access
 * token (`BaseModel#save` upserts only when the format returns a payload) nor lets one reach
 * userinfo (an audience there is refused). Here the stored token is always the provider's opaque
 * model, so userinfo, introspection, revocation, grant revocation and the session binding treat
 * both formats alike; for an application whose format is `jwt` the *value* handed out is the
 * provider's own RFC 9068 JWT of that same model:
 *
 * 1. the opaque payload is computed (what the adapter stores, keyed by the token's `jti`);
 * 2. the token is given a transient resource server naming the client as audience, RS256 with the
 *    provider's keystore (kid = the key's RFC 7638 thumbprint), and the provider's `jwt` format
 *    signs it (`typ: at+jwt`, `formats.customizers.jwt` adds `auth_time` and the identity claims);
 * 3. the audience is taken off the model again, so that the stored token has none (userinfo keeps
 *    accepting it; what the id_token carries is the application's choice, id-token-claims.ts) and
 *    the stored row carries the format and the SHA-256 of the JWT (the adapter finds a JWT only by
 *    the whole token, never its jti).
 *
 * A JWT over `tokens.jwtSizeWarnBytes` logs a warning naming the client and the size; the token is
 * issued unchanged.
 */
export function installAccessTokenFormats(provider: Provider, deps: AccessTokenFormatDependencies): void {
  const { config, logger, applications } = deps;
  /**
   * The application's format setting from the client metadata loaded (and checked) in this request,
   * when the token carries its client; undefined when it does not (then the application lookup says).
   */
  const loadedSettingOf = (token: TokenModel, clientId: string): AccessTokenFormatSetting | undefined => {
    const client = token.client;
    return client?.clientId === clientId && isFormatSetting(client.access_token_format)
      ? client.access_token_format
      : undefined;
  };
  const ResourceServer = (provider as unknown as { ResourceServer: new (id: string, data: object) => object })
    .ResourceServer;

  for (const model of [provider.AccessToken, provider.ClientCredentials] as unknown as Array<{
    prototype: TokenModel;
  }>) {
    const prototype = model.prototype;
    const original = prototype.getValueAndPayload;
    /** The provider's RFC 9068 JWT of the token, whose opaque payload is what is stored. */
    const asJwt = async (token: TokenModel, clientId: string) => {
      // One issued-at and expiry for the stored payload and the JWT.
      token.iat ??= Math.floor(Date.now() / 1000);
      token.exp ??= token.iat + token.expiration;
      token.format = 'opaque';
      const { payload } = await original.call(token);
      if (!payload) throw new Error('the opaque access-token format returned no payload');
      const audience = token.aud;
      token.resourceServer = new ResourceServer(clientId, {
        audience: clientId,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      });
      token.format = 'jwt';
      let value: string;
      try {
        ({ value } = await original.call(token));
      } finally {
        if (audience === undefined) delete token.aud;
        else token.aud = audience;
      }
      const size = Buffer.byteLength(value, 'utf8');
      if (size > config.tokens.jwtSizeWarnBytes) {
        logger.warn(
          { client_id: clientId, size_bytes: size, limit_bytes: config.tokens.jwtSizeWarnBytes },
          'JWT access token larger than tokens.jwtSizeWarnBytes (issued unchanged; consider fewer scopes or opaque tokens)',
        );
      }
      return {
        value,
        payload: {
          ...payload,
          [FORMAT_MARKER]: 'jwt',
          [VALUE_DIGEST_MARKER]: sha256Hex(value),
        },
      };
    };
    /** The token's value and payload in the format `setting` (the application's) gives it. */
    const inFormat = (
      token: TokenModel,
      clientId: string | undefined,
      setting: AccessTokenFormatSetting | undefined,
    ): Promise<{ value: string; payload?: Record<string, unknown> }> => {
      const format = accessTokenFormatFor(
        setting === undefined ? undefined : { accessTokenFormat: setting },
        config.tokens.defaultAccessTokenFormat,
      );
      if (!clientId || format !== 'jwt') {
        token.format = 'opaque';
        return original.call(token);
      }
      return asJwt(token, clientId);
    };
    // Not an async function: the setting of the client loaded in this request (every token the
    // provider issues there) is known at once, and an opaque token is the provider's own answer.
    prototype.getValueAndPayload = function getValueAndPayloadInConfiguredFormat(this: TokenModel) {
      try {
        const clientId = this.clientId;
        const loaded = clientId === undefined ? undefined : loadedSettingOf(this, clientId);
        if (clientId === undefined || loaded !== undefined) return inFormat(this, clientId, loaded);
        return applications
          .findByClientId(clientId)
          .then((app) => inFormat(this, clientId, app?.accessTokenFormat));
      } catch (error) {
        return Promise.reject(error as Error);
      }
    };
  }
}
