import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { createSecretFormatter, sha256Hex } from '../../src/logging/secrets.ts';

const TOKEN = 'Zm9vYmFyLWFjY2Vzcy10b2tlbi12YWx1ZS0xMjM0NTY';

describe('secret formatter', () => {
  it('names a secret by its sha256 hex digest', () => {
    assert.equal(sha256Hex(TOKEN), createHash('sha256').update(TOKEN).digest('hex'));
    assert.equal(sha256Hex(Buffer.from(TOKEN)), sha256Hex(TOKEN));
    assert.match(sha256Hex(''), /^[0-9a-f]{64}$/);
  });

  it('masks head and tail only in development with logging.maskedSecrets on', () => {
    const formatter = createSecretFormatter({
      mode: 'development',
      logging: { level: 'info', maskedSecrets: true },
    });
    assert.equal(formatter.masksEnabled, true);
    assert.equal(formatter.maskSecret(TOKEN), `${TOKEN.slice(0, 4)}…${TOKEN.slice(-4)}`);
    // Too short to show fragments without revealing most of it.
    assert.equal(formatter.maskSecret('short-secret'), `sha256:${sha256Hex('short-secret')}`);
  });

  it('returns only a digest when masking is off', () => {
    const formatter = createSecretFormatter({
      mode: 'development',
      logging: { level: 'info', maskedSecrets: false },
    });
    assert.equal(formatter.masksEnabled, false);
    assert.equal(formatter.maskSecret(TOKEN), `sha256:${sha256Hex(TOKEN)}`);
  });

  it('returns only a digest in production even with logging.maskedSecrets on (check W001 warns)', () => {
    const formatter = createSecretFormatter({
      mode: 'production',
      logging: { level: 'info', maskedSecrets: true },
    });
    assert.equal(formatter.masksEnabled, false);
    const masked = formatter.maskSecret(TOKEN);
    assert.equal(masked, `sha256:${sha256Hex(TOKEN)}`);
  });
});
