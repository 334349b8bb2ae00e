import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { parseDjangoPbkdf2 } from '../util/django-pbkdf2.ts';
import type { Application } from './types.ts';

/**
 * The most PBKDF2 iterations aa-oidc runs to check a client secret imported as a Django hash. Above
 * every Django default (600,000 in Django 4.2, which Alliance Auth 4 runs; 1,000,000 in 5.2;
 * 1,500,000 in 6.1; 1,800,000 planned for 6.2), so every hash django-oauth-toolkit made with
 * Django's own hasher passes; a costlier one was made by a raised setting, and every wrong secret
 * presented for its client would cost that much CPU (about 0.3 s per 2,000,000 on one core).
 */
export const IMPORTED_SECRET_MAX_ITERATIONS = 2_000_000;

/**
 * What may be told of a client secret still held as the hash imported from the Python plugin: its
 * cost, never the hash (salt and digest stay unshown).
 */
export interface ImportedSecretHash {
  /** Its PBKDF2 iteration count; null when the stored value is no hash aa-oidc can read. */
  iterations: number | null;
  /**
   * True when a client authentication checks it (one PBKDF2 run); false when aa-oidc never does (more
   * than `IMPORTED_SECRET_MAX_ITERATIONS`, or unreadable): it then authenticates nobody.
   */
  checked: boolean;
}

/**
 * The imported hash an application's secret still is (until the relying party's first successful
 * authentication replaces it, or a rotation), or null when its secret is aa-oidc's digest (or it has none).
 */
export function importedSecretHash(app: Pick<Application, 'clientSecretPbkdf2'>): ImportedSecretHash | null {
  if (app.clientSecretPbkdf2 === null) return null;
  const iterations = parseDjangoPbkdf2(app.clientSecretPbkdf2)?.iterations ?? null;
  return { iterations, checked: iterations !== null && iterations <= IMPORTED_SECRET_MAX_ITERATIONS };
}

/** Bytes of entropy in a client secret (256 bits). */
export const CLIENT_SECRET_BYTES = 32;
const CLIENT_ID_LENGTH = 32;
const CLIENT_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A new client secret: 256 random bits, base64url (43 characters). Shown once, never stored. */
export function generateClientSecret(): string {
  return randomBytes(CLIENT_SECRET_BYTES).toString('base64url');
}

/**
 * A new client_id: 32 random letters and digits (about 190 bits). Letters and digits only, so that
 * it never starts with `-` (a command line would read it as an option) and needs no escaping.
 */
export function generateClientId(): string {
  let id = '';
  while (id.length < CLIENT_ID_LENGTH) {
    for (const byte of randomBytes(CLIENT_ID_LENGTH)) {
      // 248 = 4 × 62: rejecting the rest keeps every character equally likely.
      if (byte < 248 && id.length < CLIENT_ID_LENGTH) id += CLIENT_ID_ALPHABET[byte % 62];
    }
  }
  return id;
}

/**
 * The stored form of a client secret. SHA-256, not a slow password hash: the secret already has
 * 256 bits of entropy, and a slow hash would cap every authenticated token request.
 */
export function clientSecretDigest(secret: string): string {
  return hash('sha256', secret, 'hex');
}

/**
 * True when `presented` is the application's current secret. Compares digests in constant time.
 * Every authenticated request of a confidential client comes here: `hash` is the one-shot digest,
 * without a Hash object per call, and the two digests are compared in their stored form, lower-case
 * hex (every writer stores that form: `clientSecretDigest`, and imports are checked for it), as
 * latin1 bytes: copying a string's characters is cheaper than decoding hex.
 */
export function verifyClientSecret(
  app: Pick<Application, 'clientSecretSha256'>,
  presented: unknown,
): boolean {
  if (app.clientSecretSha256 === null || typeof presented !== 'string') return false;
  const expected = Buffer.from(app.clientSecretSha256, 'latin1');
  const actual = Buffer.from(hash('sha256', presented, 'hex'), 'latin1');
  if (expected.length !== actual.length) return false;
  return timingSafeEqual(expected, actual);
}

/**
 * What a rotation form carries of the secret it was shown for (`rotateSecret`'s `expectedFingerprint`):
 * a digest of the stored digest, never the secret nor the stored digest itself. Any rotation (and the
 * replacement of an imported hash by its digest) changes it, so a form sent twice, or from a page shown
 * before another rotation, is recognised as stale. Null when there is no secret.
 */
export function secretFingerprint(app: Pick<Application, 'clientSecretSha256'>): string | null {
  if (app.clientSecretSha256 === null) return null;
  return hash('sha256', `aa-oidc secret fingerprint\n${app.clientSecretSha256}`, 'hex').slice(0, 32);
}

/** True when `presented` is the application's current `secretFingerprint`, compared in constant time. */
export function matchesSecretFingerprint(
  app: Pick<Application, 'clientSecretSha256'>,
  presented: unknown,
): boolean {
  const expected = secretFingerprint(app);
  if (expected === null || typeof presented !== 'string' || presented.length !== expected.length)
    return false;
  return timingSafeEqual(Buffer.from(expected, 'latin1'), Buffer.from(presented, 'latin1'));
}
