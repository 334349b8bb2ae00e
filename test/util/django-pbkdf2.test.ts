import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isDjangoPbkdf2, makeDjangoPbkdf2, verifyDjangoPbkdf2 } from '../../src/util/django-pbkdf2.ts';
import { FIXTURE_DIR, FIXTURE_PASSWORD } from '../helpers/alliance-auth.ts';

/** The password hashes Django itself wrote into the fixture dump (none when the fixture is absent). */
function fixtureHashes(): string[] {
  try {
    const dump = readFileSync(path.join(FIXTURE_DIR, 'aa-postgres.sql'), 'utf8');
    return [...dump.matchAll(/'(pbkdf2_sha256\$[^']+)'/g)].map((match) => match[1]!);
  } catch {
    return [];
  }
}

describe('Django PBKDF2 password hashes', () => {
  const hashes = fixtureHashes();
  it(
    'verify the passwords Django hashed in the Alliance Auth fixture',
    { skip: hashes.length === 0 && 'no fixture' },
    async () => {
      assert.equal(hashes.length, 6);
      for (const hash of hashes.slice(0, 2)) {
        assert.equal(await verifyDjangoPbkdf2(hash, FIXTURE_PASSWORD), true);
        assert.equal(await verifyDjangoPbkdf2(hash, `${FIXTURE_PASSWORD}x`), false);
      }
    },
  );

  it('verify what they make, and refuse other hashers, unusable and malformed values', async () => {
    const made = await makeDjangoPbkdf2('s3cret-ünïcode', 1000, 'somesalt');
    assert.match(made, /^pbkdf2_sha256\$1000\$somesalt\$[A-Za-z0-9+/]{43}=$/);
    assert.equal(await verifyDjangoPbkdf2(made, 's3cret-ünïcode'), true);
    assert.equal(await verifyDjangoPbkdf2(made, 's3cret-unicode'), false);
    for (const value of [
      '!unusablepasswordxxxxxxxxxxxxxxxxxxxx',
      'argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA',
      'pbkdf2_sha1$1000$salt$aGFzaA==',
      made.replace('$1000$', '$0$'),
      made.replace('$1000$', '$99999999999$'),
      made.slice(0, -3),
      '',
    ]) {
      assert.equal(isDjangoPbkdf2(value), false, value);
      assert.equal(await verifyDjangoPbkdf2(value, 's3cret-ünïcode'), false, value);
    }
    assert.equal(await verifyDjangoPbkdf2(null, 'x'), false);
  });
});
