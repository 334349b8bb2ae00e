import type { AuthenticationResult, PasswordAuthenticator } from '../directory/authenticator.ts';
import { MAX_PASSWORD_LENGTH } from '../directory/builtin/passwords.ts';
import type { Logger } from '../logging/logger.ts';
import type { AllianceAuthDatabaseKind } from './database.ts';
import { explainUnverifiable, readDjangoPassword, verifyStoredDjangoPassword } from './django-password.ts';
import type { AaDb } from './schema.ts';
import { type PasswordRecord, selectPasswordRecord, unkeptUserId } from './sign-in-queries.ts';
import { allianceAuthThrottleKey } from './throttle-key.ts';

/**
 * Sign-in with an Alliance Auth password (`AA_OIDC_AA_PASSWORD_LOGIN=true`): Django's
 * `pbkdf2_sha256$iterations$salt$hash` (its default), verified with node:crypto in constant time,
 * or its `argon2$…` and `scrypt$…` (an AA whose settings put one of those hashers first). Users made
 * by EVE SSO have an unusable password (`!…`) and never pass. A password stored by a hasher aa-oidc
 * does not verify (bcrypt, for one) is refused as a wrong one, and the log says which hasher and what
 * to change, naming the user but never the stored value. The username is read and matched as
 * Django's login reads and matches it (NFKC, then the database's collation decides the case; see
 * `selectPasswordRecord`), and counted in the login throttle as the database compares it, whether or
 * not it is a user's (`allianceAuthThrottleKey`). aa-oidc never writes to AA's
 * database, so AA's `last_login` is left alone and a password is never upgraded or replaced here.
 */
export function allianceAuthPasswordAuthenticator(
  aa: AaDb,
  kind: AllianceAuthDatabaseKind,
  log: Logger,
): PasswordAuthenticator {
  const throttleKey = allianceAuthThrottleKey(aa, kind);
  async function checkPassword(
    record: PasswordRecord | undefined,
    password: string,
  ): Promise<AuthenticationResult> {
    const stored = readDjangoPassword(record?.password);
    if (record && stored.kind === 'unverifiable') {
      log.warn(
        { username: record.username, hasher: stored.hasher },
        `Alliance Auth password sign-in refused: ${explainUnverifiable(stored)}`,
      );
    }
    // Never cut: a password longer than sign-in takes fails as a wrong one, its hash check run on
    // an empty one instead. So does one holding a NUL, which Django's login form refuses
    // (`ProhibitNullCharactersValidator`): PBKDF2's HMAC pads a short password with NUL bytes, so
    // `pw\0` would pass where `pw` is the password, a sign-in Alliance Auth itself never allows.
    const usable = password.length <= MAX_PASSWORD_LENGTH && !password.includes('\u0000');
    // One PBKDF2 run whatever the case (unknown user, unusable password), so timing tells nothing.
    const valid = await verifyStoredDjangoPassword(stored, usable ? password : '');
    if (!record || !usable || !valid) return { outcome: 'refused', reason: 'invalid' };
    if (!record.active) return { outcome: 'refused', reason: 'inactive' };
    const unkept = unkeptUserId(record.id);
    if (unkept !== undefined) {
      log.warn({ username: record.username }, `Alliance Auth password sign-in refused: the user's ${unkept}`);
      return { outcome: 'refused', reason: 'invalid' };
    }
    return { outcome: 'authenticated', userId: record.id, amr: ['pwd'] };
  }

  return {
    kind: 'password',
    async prepare(username) {
      // One read of auth_user serves the attempt: the password is checked against the row it found.
      // The throttle counts the typed name as the database compares it, never the row's name, which
      // would tell whether there is one. Either read failing is the attempt's failure, before the
      // throttle (create.ts answers an outage with the try-again page).
      const record = await selectPasswordRecord(aa, username);
      return {
        throttledName: await throttleKey(username),
        authenticate: (password) => checkPassword(record, password),
      };
    },
    async replacePassword() {
      // Passwords are Alliance Auth's: nobody is ever asked to choose one here.
      return { outcome: 'not_pending' };
    },
  };
}
