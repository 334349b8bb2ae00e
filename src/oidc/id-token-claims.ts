import type { Claims } from './claims.ts';

/** The client metadata that opts an application into the scopes' claims in its id_tokens. */
export const ID_TOKEN_CLAIMS_METADATA = 'id_token_claims';

/**
 * Which of the account's claims go into an id_token, per application.
 *
 * By default an id_token is minimal, as the Python plugin's was: `sub` and the protocol claims the
 * provider adds (auth_time, sid, nonce, at_hash, …), plus whatever the claims parameter asks for
 * there; the granted scopes' claims are answered at userinfo. An application created with
 * `--id-token-claims` (client metadata `id_token_claims`) gets every claim of its granted scopes in
 * its id_tokens too, for relying parties that read them only there (oauth2-proxy's email and
 * groups).
 *
 * The provider's own switch, `conformIdTokenClaims`, is one for all clients, so it is off and this
 * decides per client: the provider still keeps only what the granted scopes and the claims parameter
 * release, and drops what the user refused.
 */
export function idTokenClaims(
  claims: Claims,
  client: object | undefined,
  requested: Readonly<Record<string, unknown>> | undefined,
): Claims {
  if (client !== undefined && (client as Record<string, unknown>)[ID_TOKEN_CLAIMS_METADATA] === true)
    return claims;
  const minimal: Claims = { sub: claims.sub };
  for (const name of Object.keys(requested ?? {}))
    if (name !== 'sub' && claims[name] !== undefined) minimal[name] = claims[name];
  return minimal;
}
