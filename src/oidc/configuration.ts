import { hkdfSync } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { JWK } from 'jose';
import { interactionPolicy, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { ACCESS_TOKEN_FORMAT_SETTINGS } from '../applications/types.ts';
import type { Config } from '../config/load.ts';
import type { Database } from '../db/schema.ts';
import type { WriteBatch } from '../db/write-batch.ts';
import type { OwnCodes } from './own-codes.ts';
import { bearerLookup, KyselyAdapter, type AdapterWriteHooks, type LookupEpochs } from './adapter.ts';
import type { ChangeEpochs } from './change-epoch-cache.ts';
import type { PolicyEnforcer } from './policy-enforcer.ts';
import { accessPrompt } from './check-access.ts';
import { recordClientRefusal } from './client-policy.ts';
import { anotherAccountCheck, selectAccountPrompt } from './select-account.ts';
import { scopeClaims } from './claims.ts';
import { ApplicationClientAdapter, EXTRA_CLIENT_METADATA, type ApplicationLookup } from './clients.ts';
import { createFindAccount, type ProfileSource } from './find-account.ts';
import { introspectionAllowedPolicy } from './introspection-policy.ts';
import { jwtAccessTokenCustomizer } from './jwt-access-token-claims.ts';
import { keepGrantedOfflineAccess } from './refresh-scope.ts';
import { renderError } from './render-error.ts';
import { brandingFrom } from '../http/pages/branding.ts';
import { logoutSource } from './logout-source.ts';
import { postLogoutSuccessSource } from './post-logout-success-source.ts';
import { PROVIDER_ROUTES } from './mount.ts';
import { createBearerSaveGuard } from './save-bearer.ts';
import { hostCookieName } from '../util/host-cookie.ts';

export interface ProviderConfigurationDependencies {
  config: Config;
  db: Kysely<Database>;
  applications: ApplicationLookup;
  directory: ProfileSource;
  /** Private signing JWKs, the active key first (`KeyStore.signingJwks()`). */
  jwks: { keys: JWK[] };
  /** The access policy: asked at every stage of every flow (see src/policy/stages.ts for where). */
  policy: PolicyEnforcer;
  /** Code reuse: the issued-code audit around the adapter's writes (src/tokens/issued-codes.ts). */
  adapterHooks?: AdapterWriteHooks;
  /**
   * Told the change epoch the token lookup carried (change-epoch-cache.ts); asked the epoch a request
   * saw, at which a client-credentials token is written (save-bearer.ts).
   */
  changeEpochs?: LookupEpochs & Pick<ChangeEpochs, 'ofRequest'>;
  /** Where the adapters write the rows they save (src/db/write-batch.ts); at once when absent. */
  writes?: WriteBatch;
  /** The codes and refresh tokens this process wrote, found without a read (own-codes.ts). */
  ownCodes?: OwnCodes;
}

/** Lifetimes the spec does not make configurable. */
const SESSION_TTL_SECONDS = 14 * 24 * 3600;
const INTERACTION_TTL_SECONDS = 30 * 60;
/**
 * A grant outlives every token issued under it; refresh-token rotation keeps a grant in use for as
 * long as the client keeps refreshing, up to this bound (then the user signs in again).
 */
const GRANT_TTL_SECONDS = 365 * 24 * 3600;

/** Where the interaction pages live: under the issuer's path (`/o/interaction/:uid`). */
export function interactionPath(issuer: string, uid: string): string {
  return `${issuerPath(issuer)}/interaction/${encodeURIComponent(uid)}`;
}

export function issuerPath(issuer: string): string {
  return new URL(issuer).pathname.replace(/\/+$/, '');
}

/**
 * Cookie signing keys, derived from `AA_OIDC_SECRET_KEY` with HKDF so that the secret key itself
 * never signs anything and other derived keys (CSRF) stay independent.
 */
export function deriveKey(secretKey: string, purpose: string): Buffer {
  return Buffer.from(
    hkdfSync('sha256', Buffer.from(secretKey, 'utf8'), Buffer.alloc(0), `aa-oidc ${purpose}`, 32),
  );
}

/**
 * The keys that sign the session and interaction cookies. The provider reads its cookies through a
 * context of its own and sets them through ours (it runs mounted in our Koa app), so both the
 * provider and the Koa app get these keys.
 */
export function cookieKeys(secretKey: string): string[] {
  return [deriveKey(secretKey, 'cookie signing').toString('base64url')];
}

/**
 * The oidc-provider configuration. Everything not listed keeps the provider's default;
 * every default hook that the provider asks us to replace is replaced here.
 */
export function providerConfiguration(deps: ProviderConfigurationDependencies): Configuration {
  const { config, db, applications, directory, policy: accessPolicy } = deps;
  const clientAdapter = new ApplicationClientAdapter(applications, recordClientRefusal(accessPolicy));
  // One save_bearer decision per request for the access, refresh and client-credentials tokens.
  const guardBearerSaves = createBearerSaveGuard(accessPolicy, deps.changeEpochs);
  // Introspection and revocation look a value up in three models at once: one query per request.
  // It also carries the change epoch, which says whether applications and profiles kept in memory
  // are still current (change-epoch-cache.ts).
  const lookup = bearerLookup(undefined, deps.changeEpochs);
  const secure = config.mode === 'production';
  const cookieOptions = { httpOnly: true, sameSite: 'lax' as const, secure, overwrite: true };
  const policy = interactionPolicy.base();
  policy.get('login')!.checks.add(anotherAccountCheck());
  policy.add(selectAccountPrompt(), 0);
  policy.add(accessPrompt(accessPolicy), 2);
  const tokens = config.tokens;
  const branding = brandingFrom(config);

  return {
    adapter: (name: string) =>
      name === 'Client'
        ? clientAdapter
        : guardBearerSaves(
            name,
            new KyselyAdapter(name, db, undefined, deps.adapterHooks, lookup, deps.writes, deps.ownCodes),
          ),
    clients: [],
    jwks: deps.jwks as Configuration['jwks'],
    findAccount: createFindAccount(directory, config, accessPolicy),

    scopes: [...config.oidc.scopes],
    claims: {
      acr: null,
      auth_time: null,
      iss: null,
      sid: null,
      ...scopeClaims(config.oidc, config.oidc.scopes),
    },
    // Per application instead (id-token-claims.ts): the id_token is minimal unless the application
    // asks for the scopes' claims there.
    conformIdTokenClaims: false,
    // Access-token formats: JWT access tokens (chosen per application, src/tokens/formats.ts) carry auth_time
    // and the identity claims of the granted scopes, from the claims function userinfo uses.
    formats: { customizers: { jwt: jwtAccessTokenCustomizer(config.oidc, directory) } },
    acrValues: ['0'],
    subjectTypes: ['public'],
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
    allowOmittingSingleRegisteredRedirectUri: false,
    // POST to authorize and logout is served by routes.ts as the equivalent GET: the provider's own
    // POST support would need SameSite=None session cookies, and the session cookie is SameSite=Lax.
    enableHttpPostMethods: false,
    acceptQueryParamAccessTokens: false,

    extraClientMetadata: {
      properties: [...EXTRA_CLIENT_METADATA],
      validator(_ctx, key, value) {
        if (key === 'access_token_format') {
          if (!(ACCESS_TOKEN_FORMAT_SETTINGS as readonly unknown[]).includes(value))
            throw new TypeError(
              `client metadata ${key} must be one of ${ACCESS_TOKEN_FORMAT_SETTINGS.join(', ')}`,
            );
          return;
        }
        if (typeof value !== 'boolean') throw new TypeError(`client metadata ${key} must be a boolean`);
      },
    },

    pkce: {
      required: (_ctx, client) =>
        client.clientAuthMethod === 'none' ||
        (client as unknown as Record<string, unknown>).pkce_required === true,
    },

    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // Every refresh rotates; the call is also where a refresh asking again for the offline_access
    // its token carries gets it back in the new access token's scope (refresh-scope.ts).
    rotateRefreshToken: (ctx) => {
      keepGrantedOfflineAccess(ctx);
      return true;
    },
    // Every code and token is bound to the browser session that authorized it, offline_access or
    // not: signing out (RP-initiated logout) or the session's end revokes them, as the Python
    // plugin's logout deleted the user's tokens. Within the session they live by their own TTLs.
    expiresWithSession: async () => true,

    ttl: {
      AccessToken: tokens.accessTokenTtl,
      ClientCredentials: tokens.accessTokenTtl,
      AuthorizationCode: tokens.codeTtl,
      IdToken: tokens.idTokenTtl,
      RefreshToken: tokens.refreshTokenTtl,
      Grant: Math.max(GRANT_TTL_SECONDS, tokens.refreshTokenTtl),
      Session: Math.max(SESSION_TTL_SECONDS, tokens.refreshTokenTtl),
      Interaction: INTERACTION_TTL_SECONDS,
    },

    cookies: {
      // The session cookie is host-wide (Path=/), so it takes `__Host-` when Secure. The interaction
      // and resume cookies are scoped to their interaction's paths, which the prefix does not allow.
      names: {
        session: hostCookieName('_session', secure),
        interaction: '_interaction',
        resume: '_interaction_resume',
      },
      long: cookieOptions,
      short: cookieOptions,
      keys: cookieKeys(config.secretKey),
    },

    routes: PROVIDER_ROUTES,

    interactions: {
      policy,
      url: (_ctx: KoaContextWithOIDC, interaction) => interactionPath(config.issuer, interaction.uid),
    },

    discovery: {
      claim_types_supported: ['normal'],
      ...(config.oidc.opPolicyUri ? { op_policy_uri: config.oidc.opPolicyUri } : {}),
      ...(config.oidc.opTosUri ? { op_tos_uri: config.oidc.opTosUri } : {}),
    },

    enabledJWA: {
      idTokenSigningAlgValues: ['RS256'],
      userinfoSigningAlgValues: ['RS256'],
      introspectionSigningAlgValues: ['RS256'],
      authorizationSigningAlgValues: ['RS256'],
      // No symmetric algorithm anywhere: the client "secret" the provider holds is a digest.
      clientAuthSigningAlgValues: ['RS256'],
      requestObjectSigningAlgValues: ['RS256'],
    },

    // Same rule as the provider's default, without its "you should change this" notice: browsers may
    // call the token-side endpoints only from a public client's own redirect origins, and userinfo
    // from any registered redirect origin.
    clientBasedCORS(ctx, origin, client) {
      if (origin === 'null') return false;
      if (ctx.oidc.route !== 'userinfo' && client.clientAuthMethod !== 'none') return false;
      return client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false;
    },

    renderError: renderError(branding),

    features: {
      devInteractions: { enabled: false },
      registration: { enabled: false },
      registrationManagement: { enabled: false },
      deviceFlow: { enabled: false },
      ciba: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      requestObjects: { enabled: false },
      resourceIndicators: { enabled: false },
      dPoP: { enabled: false },
      mTLS: { enabled: false },
      encryption: { enabled: false },
      jwtResponseModes: { enabled: false },
      jwtUserinfo: { enabled: false },
      jwtIntrospection: { enabled: false },
      webMessageResponseMode: { enabled: false },
      richAuthorizationRequests: { enabled: false },
      rpMetadataChoices: { enabled: false },
      claimsParameter: { enabled: true },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      introspection: {
        enabled: true,
        // The validate_bearer stage of introspection, after who may ask (introspection-policy.ts).
        allowedPolicy: introspectionAllowedPolicy(accessPolicy, directory),
      },
      revocation: {
        enabled: true,
        // A client may revoke only its own tokens (RFC 7009 §2.1).
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      rpInitiatedLogout: {
        enabled: config.logout.rpInitiated,
        logoutSource: logoutSource(branding, { issuer: config.issuer, secure }),
        postLogoutSuccessSource: postLogoutSuccessSource(branding),
      },
      // Advertised (backchannel_logout_supported); delivery is the back-channel logout's durable queue, so no
      // client handed to the provider carries a backchannel_logout_uri (see clients.ts).
      backchannelLogout: { enabled: true },
    },
  } as Configuration;
}
