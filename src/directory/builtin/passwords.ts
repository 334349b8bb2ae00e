import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';
import { codePoint, hiddenCharacter } from '../../util/hidden-characters.ts';
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

/**
 * The text a password is hashed as: its NFC form, so that one password typed where accents come
 * composed (`é`, U+00E9) and where they come as a letter and a combining mark (`e` + U+0301), as
 * keyboards and systems differ, is one password. Its rules (length, NUL, control and hidden
 * characters) are of this form too.
 */
export function normalizePassword(password: string): string {
  return password.normalize('NFC');
}

// C0 controls (a line break, a tab, ESC), DEL and C1 controls; NUL, refused first, has its own message.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0001-\u001f\u007f-\u009f]/;

/**
 * Throws `invalid` for a password that may not be set; the message never repeats the password. One
 * holding a control character is refused, the character named: no sign-in page can type one (a
 * browser's password field drops line breaks; a tab moves on, ESC and the others are no keys that
 * type), so it would be a password that never signs in there. So is one holding a hidden format
 * character (`hiddenCharacter`: a bidirectional control such as U+202E, or an invisible one such as
 * U+200B, U+FEFF or U+00AD): no one types one at a sign-in page on purpose (it comes pasted with the
 * text around it), and it makes a password that looks like another, the one the member then types.
 * The zero-width joiner and non-joiner (U+200D, U+200C) are not refused: an emoji sequence (woman,
 * U+200D, laptop: one technologist) holds the joiner, as the emoji keyboard types it, and Persian and Indic keyboards type the
 * non-joiner with a key of its own; nor are the variation selectors (U+FE0F after an emoji).
 * The CLI refuses both kinds before they get here (`cli/prompt.ts`), naming what likely put them
 * there; a form sent by hand is refused here. Only new passwords are judged: a stored one that holds
 * such a character still signs in.
 */
export function validateNewPassword(password: string): void {
  if (typeof password !== 'string') throw invalid('the password must be a string');
  const normalized = normalizePassword(password);
  if (normalized.includes('\0')) throw invalid('the password must not contain NUL bytes');
  const control = CONTROL_CHARACTER.exec(normalized)?.[0];
  if (control !== undefined)
    throw invalid(
      `the password holds a control character (${codePoint(control)}), which no sign-in page can type: choose one without it`,
    );
  const hidden = hiddenCharacter(normalized);
  if (hidden !== undefined)
    throw invalid(
      `the password holds a hidden character (${hidden}), which no one types at a sign-in page on purpose and which makes it look like another password: choose one without it`,
    );
  if ([...normalized].length < MIN_PASSWORD_LENGTH)
    throw invalid(`the password is too short; at least ${MIN_PASSWORD_LENGTH} characters are required`);
  if (normalized.length > MAX_PASSWORD_LENGTH)
    throw invalid(
      `the password is too long: at most ${MAX_PASSWORD_LENGTH} characters are accepted, an emoji counting as two`,
    );
}

/** Whether some password may be this text: none is longer than the limit or holds a NUL byte. */
export function isPossiblePassword(text: string): boolean {
  return text.length <= MAX_PASSWORD_LENGTH && !text.includes('\0');
}

/** The argon2id hash of a new password's NFC form (`normalizePassword`). */
export function hashPassword(password: string): Promise<string> {
  return argon2.hash(normalizePassword(password), PASSWORD_HASH_PARAMETERS);
}

/** True when `password` matches `hash`; a malformed hash counts as a mismatch. */
async function passwordMatches(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

/**
 * How a typed password matches a stored hash: as its NFC form (`normalized`), which every hash made
 * by `hashPassword` is of, or else as typed (`as_typed`), which a hash made before passwords were
 * normalised may be of, until sign-in replaces it; `none` for no match. NFC first: every new hash
 * and most older ones (most keyboards compose) match in one verification, and the second one runs
 * only for a text that is not NFC already, whose NFC form failed. A text no password can be (too
 * long, a NUL byte) is never cut: its verification runs on an empty text instead and fails, so the
 * work done does not depend on the stored hash.
 */
export async function matchPassword(hash: string, typed: string): Promise<PasswordMatch> {
  const text = typeof typed === 'string' ? typed : '';
  const normalized = normalizePassword(text);
  const tries: [PasswordMatch, string][] = [['normalized', normalized]];
  if (text !== normalized) tries.push(['as_typed', text]);
  for (const [match, candidate] of tries) {
    const usable = isPossiblePassword(candidate);
    if ((await passwordMatches(hash, usable ? candidate : '')) && usable) return match;
  }
  return 'none';
}

export type PasswordMatch = 'normalized' | 'as_typed' | 'none';

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
