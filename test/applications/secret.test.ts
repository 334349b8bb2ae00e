import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clientSecretDigest,
  generateClientId,
  generateClientSecret,
  verifyClientSecret,
} from '../../src/applications/secret.ts';

describe('client ids and secrets', () => {
  it('generates client_ids of 32 letters and digits that never look like a command-line option', () => {
    const ids = Array.from({ length: 2000 }, generateClientId);
    for (const id of ids) assert.match(id, /^[A-Za-z0-9]{32}$/);
    assert.equal(new Set(ids).size, ids.length);
  });

  it('generates 256-bit secrets and verifies only the exact secret against its digest', () => {
    const secret = generateClientSecret();
    assert.equal(Buffer.from(secret, 'base64url').length, 32);
    assert.notEqual(generateClientSecret(), secret);
    const app = { clientSecretSha256: clientSecretDigest(secret) };
    assert.match(app.clientSecretSha256, /^[0-9a-f]{64}$/);
    assert.equal(verifyClientSecret(app, secret), true);
    assert.equal(verifyClientSecret(app, secret.slice(0, -1)), false);
    assert.equal(verifyClientSecret(app, app.clientSecretSha256), false, 'the digest is not the secret');
    assert.equal(verifyClientSecret(app, undefined), false);
    assert.equal(verifyClientSecret({ clientSecretSha256: null }, secret), false);
    assert.equal(verifyClientSecret({ clientSecretSha256: 'not-hex' }, secret), false);
    const unusual = 'sécret ☃ 🔑';
    assert.equal(verifyClientSecret({ clientSecretSha256: clientSecretDigest(unusual) }, unusual), true);
    assert.equal(
      verifyClientSecret({ clientSecretSha256: clientSecretDigest(unusual) }, 'secret ☃ 🔑'),
      false,
    );
  });
});
