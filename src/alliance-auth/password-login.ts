import type { PasswordAuthenticator } from '../directory/authenticator.ts';
import { verifyDjangoPassword } from './django-password.ts';
import type { AaDb } from './schema.ts';
import { selectPasswordRecord } from './sign-in-queries.ts';

/**
 * Sign-in with an Alliance Auth password (`AA_OIDC_AA_PASSWORD_LOGIN=true`): Django's
 * `pbkdf2_sha256$iterations$salt$hash` (its default), verified with node:crypto in constant time,
 * or its `argon2$…` (an AA whose settings put the Argon2 hasher first). Users made by
 * EVE SSO have an unusable password (`!…`) and never pass. The username is matched as Django's
 * login matches it (the database's collation decides the case). aa-oidc never writes to AA's
 * database, so AA's `last_login` is left alone and a password is never upgraded or replaced here.
 */
export function allianceAuthPasswordAuthenticator(aa: AaDb): PasswordAuthenticator {
  return {
    kind: 'password',
    async authenticate(username, password) {
      const record = await selectPasswordRecord(aa, username);
      // One PBKDF2 run whatever the case (unknown user, unusable password), so timing tells nothing.
      const valid = await verifyDjangoPassword(record?.password, password);
      if (!record || !valid) return { outcome: 'refused', reason: 'invalid' };
      if (!record.active) return { outcome: 'refused', reason: 'inactive' };
      return { outcome: 'authenticated', userId: record.id, amr: ['pwd'] };
    },
    async replacePassword() {
      // Passwords are Alliance Auth's: nobody is ever asked to choose one here.
      return { outcome: 'not_pending' };
    },
  };
}
