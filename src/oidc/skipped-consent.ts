import type { KoaContextWithOIDC } from 'oidc-provider';

/** Claims the consent prompt never asks about (oidc-provider's `op_claims_missing` check). */
const NEVER_ASKED = new Set(['sub', 'sid', 'auth_time', 'acr', 'amr', 'iss']);

/**
 * An application with `skip_authorization` never asks for consent: once the access policy allows the
 * user, the grant is made to cover what the request asks for, as the consent page would on a click.
 * The consent prompt then finds nothing missing, so that a `prompt=none` request (a relying party's
 * silent sign-in) gets a code at such an application the session has no grant at yet, or that asks
 * for a scope more, instead of `consent_required` (django-oauth-toolkit, under the Python plugin,
 * issued the code). `prompt=consent` still shows the consent page.
 *
 * Run by the access prompt's check once it allows (check-access.ts): a user the policy refuses is
 * given no grant.
 */
export async function grantSkippedConsent(ctx: KoaContextWithOIDC): Promise<void> {
  const { oidc } = ctx;
  const client = oidc.client as unknown as { clientId: string; skip_authorization?: unknown } | undefined;
  const { grant, session } = oidc;
  if (client?.skip_authorization !== true || oidc.prompts.has('consent') || !grant || !session) return;
  const scopes = new Set(grant.getOIDCScopeEncountered().split(' '));
  const missingScopes = [...oidc.requestParamOIDCScopes].filter((scope) => !scopes.has(scope));
  const claims = new Set(grant.getOIDCClaimsEncountered());
  const missingClaims = [...oidc.requestParamClaims].filter(
    (claim) => !claims.has(claim) && !NEVER_ASKED.has(claim),
  );
  if (missingScopes.length === 0 && missingClaims.length === 0) return;
  if (missingScopes.length > 0) grant.addOIDCScope(missingScopes.join(' '));
  if (missingClaims.length > 0) grant.addOIDCClaims(missingClaims);
  const grantId = await grant.save();
  session.ensureClientContainer(client.clientId);
  session.grantIdFor(client.clientId, grantId);
}
