import type { Adapter, AdapterPayload, ClientMetadata } from 'oidc-provider';
import type { Application } from '../applications/types.ts';
import { decideApplication } from '../policy/decide.ts';
import { assertNever } from '../util/assert-never.ts';
import type { ClientRefusal } from './client-policy.ts';
import { DEBUG_MODE_METADATA } from './application-debug.ts';
import { ID_TOKEN_CLAIMS_METADATA } from './id-token-claims.ts';

/** What the provider needs from the applications domain: one lookup by client_id. */
export interface ApplicationLookup {
  findByClientId(clientId: string): Promise<Application | undefined>;
}

/**
 * Metadata our applications carry beyond the registered OIDC client fields. `access_token_format`
 * is the application's own setting (`inherit`, `opaque` or `jwt`): the token format is read from the
 * client already loaded in the request (src/tokens/formats.ts), not from another query;
 * `id_token_claims` likewise says whether its id_tokens carry the scopes' claims (id-token-claims.ts).
 */
export const EXTRA_CLIENT_METADATA = [
  'pkce_required',
  'skip_authorization',
  'access_token_format',
  ID_TOKEN_CLAIMS_METADATA,
  DEBUG_MODE_METADATA,
] as const;

/**
 * An application as oidc-provider client metadata.
 *
 * - The secret given to the provider is the stored SHA-256 digest (or, for a secret imported from the
 *   Python plugin and not used yet, its Django PBKDF2 hash), never a secret: client authentication
 *   compares digests (`client-auth.ts`), and no HMAC algorithm is enabled that would use it as a key.
 * - `backchannel_logout_uri` is deliberately left out: the provider would deliver logout tokens
 *   itself, without the SSRF gate and the durable queue of back-channel logout.
 * - Clients with any non-http(s) redirect URI (an app's custom scheme) are `native`, others `web`;
 *   a native app's loopback IP redirect URIs match at any port (loopback-redirects.ts).
 */
export function clientMetadataFor(app: Application): ClientMetadata {
  let metadata = metadataByApplication.get(app);
  if (!metadata) {
    metadata = buildClientMetadata(app);
    metadataByApplication.set(app, metadata);
  }
  return metadata;
}

/**
 * The metadata of each application object, built once: applications are kept in memory while the
 * change epoch stands (change-epoch-cache.ts), and the provider asks for the client on every request
 * (a changed application is a new object, so its metadata is built anew). The provider only reads it.
 */
const metadataByApplication = new WeakMap<Application, ClientMetadata>();

/**
 * Whether an application with these redirect URIs is a native app: one with a URI of another scheme
 * than http(s) (a private-use one, such as `com.example.app:/callback`).
 */
export function isNativeApplication(redirectUris: readonly string[]): boolean {
  return redirectUris.some((uri) => !/^https?:/i.test(uri));
}

function buildClientMetadata(app: Application): ClientMetadata {
  const native = isNativeApplication(app.redirectUris);
  const usesCode = app.grantTypes.includes('authorization_code');
  return {
    client_id: app.clientId,
    ...(app.clientType === 'confidential' && app.clientSecretSha256 !== null
      ? {
          client_secret: app.clientSecretPbkdf2 ?? app.clientSecretSha256,
          token_endpoint_auth_method: 'client_secret_basic',
        }
      : { token_endpoint_auth_method: 'none' }),
    client_name: app.name,
    ...(app.logoUrl ? { logo_uri: app.logoUrl } : {}),
    application_type: native ? 'native' : 'web',
    redirect_uris: usesCode ? [...app.redirectUris] : [],
    post_logout_redirect_uris: [...app.postLogoutRedirectUris],
    grant_types: [...app.grantTypes],
    response_types: usesCode ? ['code'] : [],
    id_token_signed_response_alg: 'RS256',
    pkce_required: app.clientType === 'public' || app.pkceRequired,
    skip_authorization: app.skipAuthorization,
    access_token_format: app.accessTokenFormat,
    [ID_TOKEN_CLAIMS_METADATA]: app.idTokenClaims,
    [DEBUG_MODE_METADATA]: app.debugMode,
  };
}

/**
 * The provider's `Client` model storage, answered from the `application` table, kept in memory
 * while the change epoch stands (change-epoch-cache.ts; `perRequestApplicationLookup` shares one
 * lookup within a request), so that a change or a deactivation takes effect on the next request,
 * at every instance. A deactivated
 * application is not found: it can do nothing (no authorize, no token, no introspection, no logout).
 */
export class ApplicationClientAdapter implements Adapter {
  readonly #applications: ApplicationLookup;
  readonly #onRefused: ((clientId: string, refusal: ClientRefusal) => void) | undefined;

  /** `onRefused` hears every refusal of the app-usability layer (the access policy's metrics and audit). */
  constructor(
    applications: ApplicationLookup,
    onRefused?: (clientId: string, refusal: ClientRefusal) => void,
  ) {
    this.#applications = applications;
    this.#onRefused = onRefused;
  }

  // Not an async function: every request that authenticates a client comes here, and the answer is a
  // chain on the application lookup's promise rather than a frame of its own awaiting it.
  find(clientId: string): Promise<AdapterPayload | undefined> {
    if (typeof clientId !== 'string' || clientId.length === 0 || clientId.length > 100)
      return Promise.resolve(undefined);
    return this.#applications.findByClientId(clientId).then((app) => this.#usable(clientId, app));
  }

  #usable(clientId: string, app: Application | undefined): AdapterPayload | undefined {
    const decision = decideApplication(app);
    switch (decision.outcome) {
      case 'allow':
        return app ? (clientMetadataFor(app) as AdapterPayload) : undefined;
      case 'deny':
        this.#onRefused?.(clientId, decision);
        return undefined;
      default:
        return assertNever(decision);
    }
  }

  // Clients are written by the applications service only (no dynamic registration).
  async upsert(): Promise<void> {
    throw new Error('clients are managed by the applications service');
  }
  async findByUid(): Promise<undefined> {
    return undefined;
  }
  async findByUserCode(): Promise<undefined> {
    return undefined;
  }
  async consume(): Promise<void> {
    throw new Error('clients are managed by the applications service');
  }
  async destroy(): Promise<void> {
    throw new Error('clients are managed by the applications service');
  }
  async revokeByGrantId(): Promise<void> {
    throw new Error('clients are managed by the applications service');
  }
}
