import { createHmac } from 'node:crypto';
import { clientSecretDigest } from './secret.ts';
import type { Application } from './types.ts';

/**
 * The provider's own web console (the account page at `/account` and the admin UI at `/admin`) signs
 * people in as a relying party of this provider: it sends them through the provider's own login page
 * and shares the provider session that login creates (no second password form anywhere).
 *
 * Its client is built in, not a row of the `application` table: it cannot be edited, deactivated or
 * listed, and its client_id is reserved. It is confidential with a secret derived from the secret key
 * and never given to anyone: its codes are redeemed in-process by the console (it needs no tokens), so
 * nothing else can exchange them. It admits every active user, whatever their access to applications
 * (the account page is for everyone with an account); what each page shows is the console's business.
 */
export const ACCOUNT_CONSOLE_CLIENT_ID = 'aa-oidc-account';

/** Where the console receives the provider's answer, relative to the issuer's origin. */
export const ACCOUNT_CONSOLE_CALLBACK_PATH = '/account/callback';

/** The built-in console's application, with the policy flag that admits every active user. */
export type AccountConsoleApplication = Application & { admitsEveryActiveUser: true };

export function accountConsoleApplication(config: {
  issuer: string;
  secretKey: string;
  branding: { name: string };
}): AccountConsoleApplication {
  const origin = new URL(config.issuer).origin;
  const secret = createHmac('sha256', config.secretKey).update('aa-oidc account console client').digest();
  return {
    clientId: ACCOUNT_CONSOLE_CLIENT_ID,
    clientSecretSha256: clientSecretDigest(secret.toString('base64url')),
    clientSecretPbkdf2: null,
    name: `${config.branding.name} account`,
    logoUrl: null,
    redirectUris: [`${origin}${ACCOUNT_CONSOLE_CALLBACK_PATH}`],
    postLogoutRedirectUris: [`${origin}/`],
    clientType: 'confidential',
    grantTypes: ['authorization_code'],
    skipAuthorization: true,
    states: [],
    groups: [],
    active: true,
    debugMode: false,
    pkceRequired: true,
    accessTokenFormat: 'opaque',
    backchannelLogoutUri: null,
    backchannelLogoutOnRevokeOnly: false,
    idTokenClaims: false,
    createdBy: 'built-in',
    createdAt: 0,
    updatedAt: 0,
    admitsEveryActiveUser: true,
  };
}

/** An application lookup that also knows the built-in console (whose client_id no row can take). */
export function withAccountConsole<
  Lookup extends { findByClientId(clientId: string): Promise<Application | undefined> },
>(
  lookup: Lookup,
  console: AccountConsoleApplication,
): { findByClientId(clientId: string): Promise<Application | undefined> } {
  return {
    findByClientId: (clientId) =>
      clientId === ACCOUNT_CONSOLE_CLIENT_ID ? Promise.resolve(console) : lookup.findByClientId(clientId),
  };
}
