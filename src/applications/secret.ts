import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Application } from './types.ts';

/** Bytes of entropy in a client secret (256 bits). */
export const CLIENT_SECRET_BYTES = 32;
/** Bytes of randomness in a generated client_id (32 base64url characters). */
const CLIENT_ID_BYTES = 24;

/** A new client secret: 256 random bits, base64url (43 characters). Shown once, never stored. */
export function generateClientSecret(): string {
  return randomBytes(CLIENT_SECRET_BYTES).toString('base64url');
}

/** A new client_id: random, URL-safe, 32 characters. */
export function generateClientId(): string {
  return randomBytes(CLIENT_ID_BYTES).toString('base64url');
}

/**
 * The stored form of a client secret. SHA-256, not a slow password hash: the secret already has
 * 256 bits of entropy, and a slow hash would cap every authenticated token request (section C).
 */
export function clientSecretDigest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** True when `presented` is the application's current secret. Compares digests in constant time. */
export function verifyClientSecret(
  app: Pick<Application, 'clientSecretSha256'>,
  presented: unknown,
): boolean {
  if (app.clientSecretSha256 === null || typeof presented !== 'string') return false;
  const expected = Buffer.from(app.clientSecretSha256, 'hex');
  const actual = createHash('sha256').update(presented, 'utf8').digest();
  if (expected.length !== actual.length) return false;
  return timingSafeEqual(expected, actual);
}
