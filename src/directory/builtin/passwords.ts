import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';
import { invalid } from '../errors.ts';

export const MIN_PASSWORD_LENGTH = 8;
/**
 * The longest password, in UTF-16 units (an emoji counts as two), for every directory: a longer new
 * one is refused with this limit named, and a longer one presented at sign-in (or as the current
 * password) fails as a wrong one would, after the same hash check, never cut to this length. So no
 * password can be set that could never sign in, and nobody can make us hash megabytes.
 */
export const MAX_PASSWORD_LENGTH = 1024;

/**
 * argon2id with OWASP's first recommended parameter set (19 MiB, 2 passes, 1 lane): about 25 ms a
 * hash on a small server, so login stays cheap while an offline guess stays expensive.
 */
export const PASSWORD_HASH_PARAMETERS = {
  type: argon2.argon2id,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1,
} as const;

/** Throws `invalid` for a password that may not be set; the message never repeats the password. */
export function validateNewPassword(password: string): void {
  if (typeof password !== 'string') throw invalid('the password must be a string');
  if (password.includes('\0')) throw invalid('the password must not contain NUL bytes');
  if ([...password].length < MIN_PASSWORD_LENGTH)
    throw invalid(`the password is too short; at least ${MIN_PASSWORD_LENGTH} characters are required`);
  if (password.length > MAX_PASSWORD_LENGTH)
    throw invalid(
      `the password is too long: at most ${MAX_PASSWORD_LENGTH} characters are accepted, an emoji counting as two`,
    );
}

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password, PASSWORD_HASH_PARAMETERS);
}

/** True when `password` matches `hash`; a malformed hash counts as a mismatch. */
export async function passwordMatches(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

/** True when a hash was made with other parameters than today's and should be replaced at login. */
export function passwordNeedsRehash(hash: string): boolean {
  try {
    return !hash.startsWith('$argon2id$') || argon2.needsRehash(hash, PASSWORD_HASH_PARAMETERS);
  } catch {
    return true;
  }
}

/**
 * A hash of a random password nobody knows, made with the current parameters: verifying against it
 * costs the same as verifying a real user's hash.
 */
export function createDummyHash(): () => Promise<string> {
  let dummy: Promise<string> | undefined;
  return () => (dummy ??= hashPassword(randomBytes(32).toString('base64url')));
}

/** A random password of 24 URL-safe characters (144 bits). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
