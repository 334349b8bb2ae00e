import { scrypt, timingSafeEqual } from 'node:crypto';
import argon2 from 'argon2';
import { parseDjangoPbkdf2, verifyDjangoPbkdf2 } from '../util/django-pbkdf2.ts';

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
 * Django's `ScryptPasswordHasher` (Django 4.0 and later): `scrypt$N$SALT$r$p$HASH`, the hash 64 bytes
 * in base64, the salt Django's alphanumeric string used as its UTF-8 bytes.
 */
const DJANGO_SCRYPT =
  /^scrypt\$(?<cost>[1-9][0-9]{0,9})\$(?<salt>[A-Za-z0-9]{1,128})\$(?<blockSize>[1-9][0-9]{0,3})\$(?<passes>[1-9][0-9]{0,3})\$(?<hash>[A-Za-z0-9+/]{86}==)$/;

/**
 * Django's defaults need 16 MiB (N = 2^14, r = 8) and 1 to 5 passes (p): up to 128 MiB of memory
 * (128 · N · r bytes) and 16 passes are verified, a costlier value is not trusted.
 */
const MAX_SCRYPT = { memoryBytes: 128 * 1024 * 1024, passes: 16 };

/** The hashers verified here, as Django names them (the prefix of the stored value). */
const VERIFIED_HASHERS = ['pbkdf2_sha256', 'argon2', 'scrypt'] as const;

/** What a stored Alliance Auth password allows. */
export type StoredDjangoPassword =
  | { kind: 'verifiable'; verify(password: string): Promise<boolean> }
  /** Django's unusable password (`!…`: users made by EVE SSO), or none at all. */
  | { kind: 'unusable' }
  /** A usable password aa-oidc cannot check; `hasher` is Django's name for it, or a description. */
  | { kind: 'unverifiable'; hasher: string; reason: 'hasher' | 'cost' | 'malformed' };

/**
 * Reads a password as Django stores it (`auth_user.password`): PBKDF2-SHA256 (Django's default),
 * Argon2 and scrypt are verified; anything else is named, so that an operator can be told why a user
 * cannot sign in with it. The stored value itself never leaves this function.
 */
export function readDjangoPassword(encoded: string | null | undefined): StoredDjangoPassword {
  if (typeof encoded !== 'string' || encoded === '' || encoded.startsWith('!')) {
    return { kind: 'unusable' };
  }
  const hasher = djangoHasherName(encoded);
  switch (hasher) {
    case 'pbkdf2_sha256':
      return parseDjangoPbkdf2(encoded)
        ? { kind: 'verifiable', verify: (password) => verifyDjangoPbkdf2(encoded, password) }
        : { kind: 'unverifiable', hasher, reason: 'malformed' };
    case 'argon2':
      return readArgon2(encoded);
    case 'scrypt':
      return readScrypt(encoded);
    default:
      return { kind: 'unverifiable', hasher, reason: 'hasher' };
  }
}

/**
 * Checks `password` against a password Alliance Auth stored. A value that cannot be verified (an
 * unusable password `!…`, another hasher, garbage, costs beyond any Django default) costs one PBKDF2
 * run against a made-up hash and fails, so that the time taken tells nothing about the user.
 * `password` is checked as typed, never normalised to NFC as the built-in directory's passwords are:
 * Django hashes a password's UTF-8 as it comes, so AA's hash is of the text as it was typed at AA,
 * and its NFC form may not be the same password there.
 */
export async function verifyDjangoPassword(
  encoded: string | null | undefined,
  password: string,
): Promise<boolean> {
  return verifyStoredDjangoPassword(readDjangoPassword(encoded), password);
}

/** {@link verifyDjangoPassword} for a value already read. */
export async function verifyStoredDjangoPassword(
  stored: StoredDjangoPassword,
  password: string,
): Promise<boolean> {
  if (stored.kind === 'verifiable') return stored.verify(password);
  return verifyDjangoPbkdf2(undefined, password);
}

/**
 * Django's name for the hasher of a stored value, as `identify_hasher` reads it: the part before
 * the first `$`, and `unsalted_md5` for a bare 32-character hex digest (Django before 1.4).
 */
function djangoHasherName(encoded: string): string {
  if (/^[0-9a-f]{32}$/.test(encoded) || /^md5\$\$[0-9a-f]{32}$/.test(encoded)) return 'unsalted_md5';
  const prefix = encoded.split('$', 1)[0] ?? '';
  return /^[a-z0-9_]{1,32}$/.test(prefix) && encoded.includes('$') ? prefix : 'unrecognised';
}

function readArgon2(encoded: string): StoredDjangoPassword {
  const argon = DJANGO_ARGON2.exec(encoded);
  if (!argon) return { kind: 'unverifiable', hasher: 'argon2', reason: 'malformed' };
  const [, phc, parameterList] = argon as unknown as [string, string, string];
  const parameters = new Map(
    parameterList.split(',').map((item) => [item[0], Number(item.slice(2))] as const),
  );
  const memory = parameters.get('m') ?? Infinity;
  const passes = parameters.get('t') ?? Infinity;
  const lanes = parameters.get('p') ?? Infinity;
  if (memory > MAX_ARGON2.memoryKiB || passes > MAX_ARGON2.passes || lanes > MAX_ARGON2.lanes) {
    return { kind: 'unverifiable', hasher: 'argon2', reason: 'cost' };
  }
  return {
    kind: 'verifiable',
    async verify(password) {
      try {
        return await argon2.verify(phc, password);
      } catch {
        return false;
      }
    },
  };
}

function readScrypt(encoded: string): StoredDjangoPassword {
  const parts = DJANGO_SCRYPT.exec(encoded)?.groups;
  if (!parts) return { kind: 'unverifiable', hasher: 'scrypt', reason: 'malformed' };
  const { salt, hash } = parts as { salt: string; hash: string };
  const cost = Number(parts.cost);
  const blockSize = Number(parts.blockSize);
  const passes = Number(parts.passes);
  const memory = 128 * cost * blockSize;
  // N must be a power of two above 1 (scrypt refuses anything else).
  if (cost < 2 || (cost & (cost - 1)) !== 0 || cost > 2 ** 30) {
    return { kind: 'unverifiable', hasher: 'scrypt', reason: 'malformed' };
  }
  if (memory > MAX_SCRYPT.memoryBytes || passes > MAX_SCRYPT.passes) {
    return { kind: 'unverifiable', hasher: 'scrypt', reason: 'cost' };
  }
  const expected = Buffer.from(hash, 'base64');
  return {
    kind: 'verifiable',
    verify: (password) =>
      new Promise((resolve) => {
        // On libuv's pool, as PBKDF2 and Argon2: the event loop never waits for it.
        scrypt(
          password,
          salt,
          expected.length,
          // Twice what OpenSSL asks for (128 · r · (N + p + 2) bytes).
          { N: cost, r: blockSize, p: passes, maxmem: 256 * blockSize * (cost + passes + 2) },
          (error, derived) => resolve(!error && timingSafeEqual(derived, expected)),
        );
      }),
  };
}

/** For an operator: why a stored password of this kind cannot be used to sign in here. */
export function explainUnverifiable(stored: { hasher: string; reason: string }): string {
  const rehash =
    `Alliance Auth re-hashes a password at the user's next AA login with the first hasher of its ` +
    `PASSWORD_HASHERS setting: put one of ${VERIFIED_HASHERS.join(', ')} first`;
  switch (stored.reason) {
    case 'cost':
      return `the user's Alliance Auth password is stored by Django's ${stored.hasher} hasher with costs beyond any Django default, which aa-oidc does not compute; ${rehash} with its default costs`;
    case 'malformed':
      return `the user's Alliance Auth password is stored in a form of Django's ${stored.hasher} hasher that aa-oidc cannot read; ${rehash}`;
    default:
      return `the user's Alliance Auth password is stored by Django's ${stored.hasher} hasher, which aa-oidc does not verify (it verifies ${VERIFIED_HASHERS.join(', ')}); ${rehash}, or let the user sign in with EVE SSO`;
  }
}
