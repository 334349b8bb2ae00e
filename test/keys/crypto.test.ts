import assert from 'node:assert/strict';
import { createHash, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { calculateJwkThumbprint } from 'jose';
import {
  decryptPrivateJwk,
  deriveKeyEncryptionKey,
  encryptPrivateJwk,
  generateSigningKey,
  importBoundsProblems,
  importPrivateJwk,
  KeyDecryptionError,
  rsaShape,
  signingKeyFromPem,
} from '../../src/keys/crypto.ts';
import { craftedPem } from './helpers.ts';

const SECRET = 'a-test-secret-key-of-at-least-32-characters';
const OTHER_SECRET = 'another-secret-key-of-at-least-32-characters';

describe('signing-key encryption at rest', () => {
  it('decrypts what it encrypted, and the stored text holds no private member in clear', async () => {
    const key = await generateSigningKey();
    const encryptionKey = deriveKeyEncryptionKey(SECRET);
    const stored = encryptPrivateJwk(key.privateJwk, key.kid, encryptionKey);
    assert.match(stored, /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const) {
      const value = key.privateJwk[member];
      assert.ok(typeof value === 'string' && value.length > 40);
      assert.ok(!stored.includes(value), `private member ${member} does not appear in the stored text`);
    }
    assert.deepEqual(decryptPrivateJwk(stored, key.kid, encryptionKey), key.privateJwk);
    // A fresh IV every time: the same key never encrypts to the same text.
    assert.notEqual(encryptPrivateJwk(key.privateJwk, key.kid, encryptionKey), stored);
  });

  it('names AA_OIDC_SECRET_KEY when the secret key is not the one the key was encrypted with', async () => {
    const key = await generateSigningKey();
    const stored = encryptPrivateJwk(key.privateJwk, key.kid, deriveKeyEncryptionKey(SECRET));
    assert.throws(
      () => decryptPrivateJwk(stored, key.kid, deriveKeyEncryptionKey(OTHER_SECRET)),
      (error: unknown) => {
        assert.ok(error instanceof KeyDecryptionError);
        assert.equal(error.kid, key.kid);
        assert.match(error.message, /AA_OIDC_SECRET_KEY/);
        assert.ok(!error.message.includes(SECRET) && !error.message.includes(OTHER_SECRET));
        return true;
      },
    );
  });

  it('refuses a ciphertext moved onto another kid, and damaged text', async () => {
    const [first, second] = await Promise.all([generateSigningKey(), generateSigningKey()]);
    const encryptionKey = deriveKeyEncryptionKey(SECRET);
    const stored = encryptPrivateJwk(first.privateJwk, first.kid, encryptionKey);
    assert.throws(() => decryptPrivateJwk(stored, second.kid, encryptionKey), KeyDecryptionError);
    const [version, iv, tag, ciphertext] = stored.split('.') as [string, string, string, string];
    const flipped = `${ciphertext.startsWith('A') ? 'B' : 'A'}${ciphertext.slice(1)}`;
    assert.throws(
      () => decryptPrivateJwk([version, iv, tag, flipped].join('.'), first.kid, encryptionKey),
      KeyDecryptionError,
    );
    assert.throws(() => decryptPrivateJwk('v0.a.b.c', first.kid, encryptionKey), /not in the v1 format/);
    assert.throws(
      () => decryptPrivateJwk(`v1.${iv}.${tag}`, first.kid, encryptionKey),
      /not in the v1 format/,
    );
  });

  it('gives a generated key the RFC 7638 thumbprint of its public key as kid', async () => {
    const key = await generateSigningKey();
    assert.equal(key.kid, await calculateJwkThumbprint(key.publicJwk, 'sha256'));
    // RFC 7638 by hand: SHA-256 over the required members in lexicographic order, no whitespace.
    const canonical = JSON.stringify({ e: key.publicJwk.e, kty: 'RSA', n: key.publicJwk.n });
    assert.equal(key.kid, createHash('sha256').update(canonical).digest('base64url'));
    assert.deepEqual(Object.keys(key.publicJwk).sort(), ['e', 'kty', 'n']);
    assert.equal(Buffer.from(key.publicJwk.n!, 'base64url').length * 8, 2048);
    const privateKey = await importPrivateJwk(key.privateJwk, key.kid, key.publicJwk);
    assert.equal(privateKey.asymmetricKeyType, 'rsa');
    const other = await generateSigningKey();
    await assert.rejects(
      importPrivateJwk(other.privateJwk, key.kid, key.publicJwk),
      /does not match its kid/,
    );
  });
});

/** A PKCS#8 PEM of a generated RSA key. */
function rsaPem(bits: number, publicExponent = 65537): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

describe('importing an RSA private key (PEM)', () => {
  it('accepts 2048 to 4096 bits with public exponent 65537', async () => {
    for (const bits of [2048, 4096]) {
      const key = await signingKeyFromPem(rsaPem(bits));
      assert.equal(Buffer.from(key.publicJwk.n!, 'base64url').length * 8, bits);
      assert.equal(key.publicJwk.e, 'AQAB');
    }
  });

  it('refuses a key larger than 4096 bits, whose every signature would be slow, naming its size and the valid ones', async () => {
    for (const bits of [4104, 8192, 16384]) {
      await assert.rejects(
        signingKeyFromPem(craftedPem(bits, 65537)),
        new RegExp(
          `^Error: the RSA key has ${bits} bits; at most 4096 are accepted .*use a key of 2048 to 4096 bits$`,
        ),
        `${bits} bits`,
      );
    }
  });

  it('refuses a key whose signatures would not verify: private parts that do not belong to its modulus', async () => {
    const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const altered = (member: string | undefined) => {
      const bytes = Buffer.from(member!, 'base64url');
      bytes[bytes.length - 1]! ^= 0x02;
      return bytes.toString('base64url');
    };
    // OpenSSL redoes with d a CRT signature that fails its own check, so a key with one bad private
    // part still signs correctly: these spoil both ways of signing.
    for (const [name, changes] of [
      ['d and dp altered', { d: altered(jwk.d), dp: altered(jwk.dp) }],
      ['d and qi altered', { d: altered(jwk.d), qi: altered(jwk.qi) }],
      [
        "another key's private parts",
        { d: other.d, p: other.p, q: other.q, dp: other.dp, dq: other.dq, qi: other.qi },
      ],
    ] as const) {
      const spoilt = { ...jwk, ...changes };
      // Node takes such a key, and writes it out as any other.
      const pem = createPrivateKey({ key: spoilt, format: 'jwk' })
        .export({ format: 'pem', type: 'pkcs1' })
        .toString();
      await assert.rejects(
        signingKeyFromPem(pem),
        (error: unknown) => {
          assert.match(
            (error as Error).message,
            /^the RSA private key is inconsistent: a signature made with it does not verify with its public key .*export the key again from its source/,
          );
          for (const member of [spoilt.n, spoilt.d, spoilt.p, pem.split('\n')[1]])
            assert.ok(!(error as Error).message.includes(member!), 'no key material in the message');
          return true;
        },
        name,
      );
    }
  });

  it('reads the modulus size and public exponent of a public key, and says what puts them outside the bounds', async () => {
    for (const bits of [2048, 4096]) {
      const { publicJwk } = await signingKeyFromPem(rsaPem(bits));
      assert.deepEqual(rsaShape(publicJwk), { modulusBits: bits, publicExponent: 65537n });
      assert.deepEqual(importBoundsProblems(bits, 65537n), []);
    }
    const crafted = createPrivateKey(craftedPem(4104, 3)).export({ format: 'jwk' });
    assert.deepEqual(rsaShape(crafted), { modulusBits: 4104, publicExponent: 3n });
    assert.deepEqual(importBoundsProblems(4104, 3n), [
      '4104 bits, more than 4096',
      'public exponent 3, not 65537',
    ]);
    assert.deepEqual(importBoundsProblems(1024, 65537n), ['1024 bits, fewer than 2048']);
  });

  it('refuses a public exponent other than 65537 (small, large or even), naming it', async () => {
    for (const [pem, exponent] of [
      [rsaPem(2048, 3), 3],
      [rsaPem(2048, 17), 17],
      [rsaPem(2048, 65539), 65539],
      [craftedPem(2048, 2), 2],
    ] as const) {
      await assert.rejects(
        signingKeyFromPem(pem),
        new RegExp(`^Error: the RSA key's public exponent is ${exponent}; a signing key must have 65537 `),
        `exponent ${exponent}`,
      );
    }
  });
});
