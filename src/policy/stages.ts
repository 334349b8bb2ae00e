/**
 * The stages of a flow at which the access policy is asked, in the order a user meets them. Each
 * is a label of `aa_oidc_policy_rejections_total{stage}` and the `stage` of a `policy_denied` event.
 *
 * - `authorize`: an authorization request right after the user signed in.
 * - `validate_silent_auth`: an authorization request answered from an existing session, without a
 *   sign-in (including every `prompt=none` request).
 * - `validate_code`: an authorization code exchanged at the token endpoint.
 * - `validate_refresh`: a refresh token presented at the token endpoint.
 * - `validate_bearer`: an access token (or any token) used at userinfo or asked about at introspection.
 * - `save_bearer`: immediately before an access or refresh token is stored (every grant, including
 *   `client_credentials`, where only the app-usability layer applies).
 */
export const POLICY_STAGES = [
  'authorize',
  'validate_silent_auth',
  'validate_code',
  'validate_refresh',
  'validate_bearer',
  'save_bearer',
] as const;

export type PolicyStage = (typeof POLICY_STAGES)[number];

/** Stages that refuse an authorization request (also counted in `aa_oidc_authorize_denied_total`). */
export function isAuthorizationStage(stage: PolicyStage): boolean {
  return stage === 'authorize' || stage === 'validate_silent_auth';
}
