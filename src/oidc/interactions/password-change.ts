import { createHmac } from 'node:crypto';
import { sameText } from '../../util/same-text.ts';

/**
 * The proof, carried by the "choose a new password" form, that this interaction's sign-in already
 * gave the right password for this user: HMAC(key, uid, user id, expiry). It is worthless for any
 * other interaction (whose cookie the browser would also need) and after ten minutes.
 */
const LIFETIME_MS = 10 * 60 * 1000;

function mac(key: Buffer, body: string): string {
  return createHmac('sha256', key).update(`password change:${body}`).digest('base64url');
}

export function issuePasswordChangeToken(key: Buffer, uid: string, userId: number, now = Date.now()): string {
  const body = `${uid}.${userId}.${now + LIFETIME_MS}`;
  return `${body}.${mac(key, body)}`;
}

/** The user the token was issued for, or undefined when it is forged, foreign or expired. */
export function verifyPasswordChangeToken(
  key: Buffer,
  token: unknown,
  uid: string,
  now = Date.now(),
): number | undefined {
  if (typeof token !== 'string' || token.length > 512) return undefined;
  const parts = token.split('.');
  if (parts.length !== 4) return undefined;
  const [tokenUid, userId, expires, signature] = parts as [string, string, string, string];
  if (!sameText(mac(key, `${tokenUid}.${userId}.${expires}`), signature)) return undefined;
  if (tokenUid !== uid || !/^[1-9]\d{0,15}$/.test(userId) || !/^\d{1,16}$/.test(expires)) return undefined;
  if (Number(expires) <= now) return undefined;
  return Number(userId);
}
