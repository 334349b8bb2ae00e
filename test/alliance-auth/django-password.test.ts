import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import argon2 from 'argon2';
import { verifyDjangoPassword } from '../../src/alliance-auth/django-password.ts';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import { djangoArgon2 } from '../helpers/alliance-auth.ts';

describe("Alliance Auth's stored passwords", () => {
  it('reads Django’s encoding', async () => {
    assert.match(
      await djangoArgon2('x'),
      /^argon2\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
    );
  });

  it('verifies Django’s Argon2 (argon2id, and argon2i of Django before 3.2) and PBKDF2-SHA256', async () => {
    for (const encoded of [
      await djangoArgon2('Correct-Horse', { type: argon2.argon2id }),
      await djangoArgon2('Correct-Horse', { type: argon2.argon2i }),
      await makeDjangoPbkdf2('Correct-Horse', 1000),
    ]) {
      assert.equal(await verifyDjangoPassword(encoded, 'Correct-Horse'), true, encoded.slice(0, 16));
      assert.equal(await verifyDjangoPassword(encoded, 'correct-horse'), false, encoded.slice(0, 16));
    }
  });

  it('refuses what it cannot verify: unusable, malformed, or costlier than any Django makes', async () => {
    const valid = await djangoArgon2('Correct-Horse');
    for (const encoded of [
      null,
      '!unusable-password-of-an-eve-sso-user',
      'argon2$garbage',
      valid.replace('$argon2id$', '$argon2x$'),
      valid.replace('m=1024', 'm=4194304'),
      'bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuv',
    ]) {
      assert.equal(await verifyDjangoPassword(encoded, 'Correct-Horse'), false, String(encoded));
    }
  });
});
