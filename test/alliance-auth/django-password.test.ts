import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import argon2 from 'argon2';
import {
  explainUnverifiable,
  readDjangoPassword,
  verifyDjangoPassword,
} from '../../src/alliance-auth/django-password.ts';
import { makeDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import { djangoArgon2, djangoScrypt } from '../helpers/alliance-auth.ts';

/** Django's BCryptSHA256PasswordHasher's form: the hasher, then bcrypt's own `$2b$12$…`. */
const BCRYPT_SHA256 = 'bcrypt_sha256$$2b$12$NF7ZcEKXV8vIXmSEc4yWFOyhVjHJL3zMrUWC4fh4MhAaX2t5ZGpyi';

describe("Alliance Auth's stored passwords", () => {
  it('reads Django’s encoding', async () => {
    assert.match(
      await djangoArgon2('x'),
      /^argon2\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
    );
    assert.match(await djangoScrypt('x'), /^scrypt\$16384\$[A-Za-z0-9]{22}\$8\$1\$[A-Za-z0-9+/]{86}==$/);
  });

  it('verifies Django’s Argon2 (argon2id, and argon2i of Django before 3.2), scrypt and PBKDF2-SHA256', async () => {
    for (const encoded of [
      await djangoArgon2('Correct-Horse', { type: argon2.argon2id }),
      await djangoArgon2('Correct-Horse', { type: argon2.argon2i }),
      // Django 4.0–4.2's defaults, then Django 5's (five passes).
      await djangoScrypt('Correct-Horse'),
      await djangoScrypt('Correct-Horse', { p: 5 }),
      await makeDjangoPbkdf2('Correct-Horse', 1000),
    ]) {
      assert.equal(readDjangoPassword(encoded).kind, 'verifiable', encoded.slice(0, 16));
      assert.equal(await verifyDjangoPassword(encoded, 'Correct-Horse'), true, encoded.slice(0, 16));
      assert.equal(await verifyDjangoPassword(encoded, 'correct-horse'), false, encoded.slice(0, 16));
    }
  });

  it('verifies a password outside ASCII as Django does, by its UTF-8 bytes', async () => {
    const password = 'Fëdor-Ω-пароль';
    const encoded = await djangoScrypt(password);
    assert.equal(await verifyDjangoPassword(encoded, password), true);
    assert.equal(await verifyDjangoPassword(encoded, password.normalize('NFD')), false);
  });

  it('refuses what it cannot verify: unusable, malformed, or costlier than any Django makes', async () => {
    const argon = await djangoArgon2('Correct-Horse');
    const scrypt = await djangoScrypt('Correct-Horse');
    for (const encoded of [
      null,
      '',
      '!unusable-password-of-an-eve-sso-user',
      'argon2$garbage',
      argon.replace('$argon2id$', '$argon2x$'),
      argon.replace('m=1024', 'm=4194304'),
      scrypt.replace('scrypt$16384$', 'scrypt$16383$'),
      scrypt.replace('scrypt$16384$', 'scrypt$1048576$'),
      scrypt.replace('$8$1$', '$8$17$'),
      scrypt.slice(0, -4),
      BCRYPT_SHA256,
    ]) {
      assert.equal(await verifyDjangoPassword(encoded, 'Correct-Horse'), false, String(encoded));
    }
  });

  it('names the hasher of a password it cannot verify, and why', async () => {
    const scrypt = await djangoScrypt('Correct-Horse');
    const cases: Array<[string | null, ReturnType<typeof readDjangoPassword>]> = [
      [null, { kind: 'unusable' }],
      ['', { kind: 'unusable' }],
      ['!Xk2vI6QyQ0LTM3cFydAMi1fLEKjYr0pB0Vh5Xn3f', { kind: 'unusable' }],
      [BCRYPT_SHA256, { kind: 'unverifiable', hasher: 'bcrypt_sha256', reason: 'hasher' }],
      [
        BCRYPT_SHA256.replace('bcrypt_sha256', 'bcrypt'),
        { kind: 'unverifiable', hasher: 'bcrypt', reason: 'hasher' },
      ],
      [
        'md5$salt$0cbc6611f5540bd0809a388dc95a615b',
        { kind: 'unverifiable', hasher: 'md5', reason: 'hasher' },
      ],
      [
        '0cbc6611f5540bd0809a388dc95a615b',
        { kind: 'unverifiable', hasher: 'unsalted_md5', reason: 'hasher' },
      ],
      ['plain text', { kind: 'unverifiable', hasher: 'unrecognised', reason: 'hasher' }],
      ['pbkdf2_sha256$0$salt$x', { kind: 'unverifiable', hasher: 'pbkdf2_sha256', reason: 'malformed' }],
      [scrypt.replace('$8$1$', '$8$17$'), { kind: 'unverifiable', hasher: 'scrypt', reason: 'cost' }],
    ];
    for (const [encoded, expected] of cases) {
      assert.deepEqual(readDjangoPassword(encoded), expected, String(encoded));
    }
    const explained = explainUnverifiable({ hasher: 'bcrypt_sha256', reason: 'hasher' });
    assert.match(explained, /Django's bcrypt_sha256 hasher, which aa-oidc does not verify/);
    assert.match(explained, /PASSWORD_HASHERS setting: put one of pbkdf2_sha256, argon2, scrypt first/);
    assert.match(explained, /EVE SSO/);
    assert.match(
      explainUnverifiable({ hasher: 'scrypt', reason: 'cost' }),
      /costs beyond any Django default/,
    );
  });
});
