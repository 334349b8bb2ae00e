import { pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const pbkdf2Async = promisify(pbkdf2);

/**
 * Django's default password hash, `pbkdf2_sha256$<iterations>$<salt>$<base64 digest>`
 * (`django.contrib.auth.hashers.PBKDF2PasswordHasher`): Alliance Auth's user passwords, and the
 * client secrets django-oauth-toolkit stores hashed. Verified with node:crypto (on the thread pool,
 * never blocking the event loop) and compared in constant time.
 */
export const DJANGO_PBKDF2_PREFIX = 'pbkdf2_sha256$';

/** Django 4.2's iteration count: the cost of a verification against a made-up hash. */
const DUMMY_ITERATIONS = 600_000;
/** Far above any Django release (1,000,000 in 5.2): a stored value beyond it is not trusted. */
export const MAX_PBKDF2_ITERATIONS = 10_000_000;

export interface DjangoPbkdf2Hash {
  iterations: number;
  salt: string;
  digest: Buffer;
}

/** The parts of a `pbkdf2_sha256$…` value, or undefined for any other form (unusable, other hashers). */
export function parseDjangoPbkdf2(encoded: string): DjangoPbkdf2Hash | undefined {
  if (typeof encoded !== 'string' || !encoded.startsWith(DJANGO_PBKDF2_PREFIX)) return undefined;
  const parts = encoded.split('$');
  if (parts.length !== 4) return undefined;
  const [, iterationsText, salt, digestText] = parts as [string, string, string, string];
  if (!/^[1-9][0-9]{0,8}$/.test(iterationsText) || salt === '' || salt.includes('$')) return undefined;
  const iterations = Number(iterationsText);
  if (iterations > MAX_PBKDF2_ITERATIONS) return undefined;
  if (!/^[A-Za-z0-9+/]{43}=$/.test(digestText)) return undefined;
  return { iterations, salt, digest: Buffer.from(digestText, 'base64') };
}

/** True when `encoded` is a Django PBKDF2-SHA256 hash aa-oidc can verify. */
export function isDjangoPbkdf2(encoded: string): boolean {
  return parseDjangoPbkdf2(encoded) !== undefined;
}

/**
 * Checks `password` against a stored Django value. A value aa-oidc cannot verify (an unusable
 * password `!…`, another hasher, garbage) still costs one PBKDF2 run against a made-up hash, so the
 * time taken tells nothing about which case it was.
 */
export async function verifyDjangoPbkdf2(
  encoded: string | null | undefined,
  password: string,
): Promise<boolean> {
  const parsed = typeof encoded === 'string' ? parseDjangoPbkdf2(encoded) : undefined;
  const target = parsed ?? {
    iterations: DUMMY_ITERATIONS,
    salt: 'aa-oidc-dummy-salt',
    digest: randomBytes(32),
  };
  // Django hashes the password's UTF-8 bytes as they are (no normalisation).
  const derived = await pbkdf2Async(password, target.salt, target.iterations, 32, 'sha256');
  const matches = timingSafeEqual(derived, target.digest);
  return parsed !== undefined && matches;
}

/** A Django PBKDF2-SHA256 value for `password` (tests, and fixtures made by hand). */
export async function makeDjangoPbkdf2(
  password: string,
  iterations = DUMMY_ITERATIONS,
  salt?: string,
): Promise<string> {
  const useSalt =
    salt ??
    randomBytes(16)
      .toString('base64url')
      .replace(/[^A-Za-z0-9]/g, '')
      .slice(0, 22);
  const digest = await pbkdf2Async(password, useSalt, iterations, 32, 'sha256');
  return `${DJANGO_PBKDF2_PREFIX}${iterations}$${useSalt}$${digest.toString('base64')}`;
}
