import argon2 from 'argon2';
import { verifyDjangoPbkdf2 } from '../util/django-pbkdf2.ts';

/**
 * Django's `Argon2PasswordHasher` stores `argon2` followed by argon2's own encoding
 * (`argon2$argon2id$v=19$m=102400,t=2,p=8$SALT$HASH`; `argon2i` before Django 3.2). An Alliance Auth
 * whose settings put that hasher first gives each user such a hash at their next AA login.
 */
const DJANGO_ARGON2 =
  /^argon2(\$argon2(?:id|i|d)\$v=\d+\$([a-z]=\d+(?:,[a-z]=\d+)*)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+)$/;

/**
 * Far above Django's defaults (100 MiB, 2 passes, 8 lanes): a stored value beyond them is not
 * trusted, since verifying it would cost a sign-in that much memory or time.
 */
const MAX_ARGON2 = { memoryKiB: 1_048_576, passes: 16, lanes: 64 };

/**
 * Checks `password` against a password Alliance Auth stored: Django's PBKDF2-SHA256 (its default
 * hasher) or Argon2. Anything else (an unusable password `!…`, another hasher, garbage) costs one
 * PBKDF2 run against a made-up hash and fails, so that the time taken tells nothing about the user.
 */
export async function verifyDjangoPassword(
  encoded: string | null | undefined,
  password: string,
): Promise<boolean> {
  const argon = typeof encoded === 'string' ? DJANGO_ARGON2.exec(encoded) : null;
  if (!argon) return verifyDjangoPbkdf2(encoded, password);
  const [, phc, parameterList] = argon as unknown as [string, string, string];
  const parameters = new Map(
    parameterList.split(',').map((item) => [item[0], Number(item.slice(2))] as const),
  );
  const memory = parameters.get('m') ?? Infinity;
  const passes = parameters.get('t') ?? Infinity;
  const lanes = parameters.get('p') ?? Infinity;
  if (memory > MAX_ARGON2.memoryKiB || passes > MAX_ARGON2.passes || lanes > MAX_ARGON2.lanes) {
    return verifyDjangoPbkdf2(undefined, password);
  }
  try {
    return await argon2.verify(phc, password);
  } catch {
    return false;
  }
}
