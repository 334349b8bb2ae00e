import type Koa from 'koa';
import type { Config } from '../config/load.ts';

/**
 * Post-processing of the provider's discovery document (and the CORS header of discovery and
 * JWKS), run once the provider has answered (`afterProviderResponse` in provider.ts). The document ends
 * up with exactly the fields aa-oidc supports: what the provider computes from our configuration, plus
 * the fields it does not know about (`backchannel_logout_session_supported`: ID tokens and logout
 * tokens of a session's end carry `sid` for back-channel logout); every endpoint on the issuer's origin.
 */
export function discoveryPostProcessing(
  config: Pick<Config, 'logout' | 'issuer'>,
): (ctx: Koa.Context) => void {
  const issuerOrigin = new URL(config.issuer).origin;
  const onIssuerOrigin = `${issuerOrigin}/`;
  return (ctx) => {
    const route = (ctx as unknown as { _matchedRouteName?: string })._matchedRouteName;
    if ((route === 'discovery' || route === 'jwks') && ctx.method !== 'OPTIONS') {
      ctx.set('Access-Control-Allow-Origin', '*');
    }
    if (route !== 'discovery' || ctx.status !== 200 || typeof ctx.body !== 'object' || ctx.body === null)
      return;
    const document = ctx.body as Record<string, unknown>;
    document.response_types_supported = ['code'];
    document.code_challenge_methods_supported = ['S256'];
    document.acr_values_supported = ['0'];
    document.prompt_values_supported = ['none', 'login', 'consent', 'select_account'];
    document.claims_parameter_supported = true;
    document.request_parameter_supported = false;
    document.request_uri_parameter_supported = false;
    document.backchannel_logout_supported = true;
    document.backchannel_logout_session_supported = true;
    document.access_token_signing_alg_values_supported = ['RS256'];
    document.grant_types_supported = ['authorization_code', 'refresh_token', 'client_credentials'];
    if (!config.logout.rpInitiated) delete document.end_session_endpoint;
    // The provider builds endpoint URLs from the request's Host; the document names the issuer's
    // own origin instead, so that a forged Host header cannot put foreign endpoints into a cached
    // copy of it.
    for (const name in document) {
      const value = document[name];
      if (
        typeof value === 'string' &&
        !value.startsWith(onIssuerOrigin) &&
        (name.endsWith('_endpoint') || name === 'jwks_uri')
      ) {
        const url = URL.parse(String(value));
        if (url && url.origin !== issuerOrigin)
          document[name] = `${issuerOrigin}${url.pathname}${url.search}`;
      }
    }
  };
}
