import { createHmac } from 'node:crypto';
import { sameText } from '../../util/same-text.ts';

/**
 * A value a browser carries for aa-oidc and hands back (a cookie, a hidden field): JSON in base64url,
 * then an HMAC of `purpose` and that body. The purpose is signed with it, so that a value sealed for
 * one use (an EVE sign-in's flow cookie, which any browser can get for its own sign-in) is nothing in
 * another (the result cookie, which says who signed in; the two-factor step's pending login).
 */
function macOf(key: Buffer, purpose: string, body: string): string {
  return createHmac('sha256', key).update(`${purpose}:${body}`).digest('base64url');
}

export function sealValue(key: Buffer, purpose: string, value: unknown): string {
  const body = Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${body}.${macOf(key, purpose, body)}`;
}

/**
 * The value `sealValue` sealed for `purpose`; undefined when there is none, it was sealed for another
 * purpose or with another key, or it is not exactly the two parts `sealValue` wrote (one with a part
 * appended, `<value>.x`, is no value of ours). Its shape is the caller's to check.
 */
export function unsealValue(key: Buffer, purpose: string, sealed: string | null | undefined): unknown {
  if (!sealed) return undefined;
  const [body, mac, ...more] = sealed.split('.');
  if (!body || !mac || more.length > 0) return undefined;
  if (!sameText(macOf(key, purpose, body), mac)) return undefined;
  try {
    return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}
