import { createHmac, randomBytes } from 'node:crypto';
import type Koa from 'koa';
import { sameText } from '../../util/same-text.ts';

/**
 * CSRF protection of the interaction forms: a double-submit token tied to the interaction. A random
 * value goes into an HttpOnly cookie scoped to the interaction's path; the form carries
 * HMAC(key, uid + cookie value). A forged form would need both the victim's cookie value and the
 * server's key, and a token is worthless for any other interaction.
 */
export const CSRF_COOKIE = '_aa_oidc_csrf';
export const CSRF_FIELD = 'csrf_token';

export interface CsrfOptions {
  key: Buffer;
  secure: boolean;
}

function tokenFor(key: Buffer, uid: string, nonce: string): string {
  return createHmac('sha256', key).update(`interaction:${uid}:${nonce}`).digest('base64url');
}

/** The token to put in the form, (re)setting the cookie when needed. */
export function issueCsrfToken(ctx: Koa.Context, uid: string, path: string, options: CsrfOptions): string {
  let nonce = ctx.cookies.get(CSRF_COOKIE, { signed: false });
  if (!nonce || !/^[A-Za-z0-9_-]{43}$/.test(nonce)) {
    nonce = randomBytes(32).toString('base64url');
    ctx.cookies.set(CSRF_COOKIE, nonce, {
      httpOnly: true,
      sameSite: 'lax',
      secure: options.secure,
      path,
      overwrite: true,
      signed: false,
    });
  }
  return tokenFor(options.key, uid, nonce);
}

/** True when the submitted token matches the cookie for this interaction. */
export function verifyCsrfToken(
  ctx: Koa.Context,
  uid: string,
  submitted: unknown,
  options: CsrfOptions,
): boolean {
  const nonce = ctx.cookies.get(CSRF_COOKIE, { signed: false });
  if (!nonce || typeof submitted !== 'string' || submitted.length === 0) return false;
  return sameText(tokenFor(options.key, uid, nonce), submitted);
}
