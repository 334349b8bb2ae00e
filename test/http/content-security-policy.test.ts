import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { notFramedPolicy, pagePolicy } from '../../src/http/content-security-policy.ts';

const HASH = "'sha256-AAAA'";

/** The policy each kind of page is sent with, as its header reads. */
describe('Content-Security-Policy of each kind of page', () => {
  it('lets the sign-in pages run their one inline script, by its hash', () => {
    assert.equal(
      pagePolicy({ scripts: [HASH] }),
      `default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; script-src ${HASH}; base-uri 'none'; frame-ancestors 'none'`,
    );
  });

  it('runs no script on the external sign-in pages', () => {
    assert.equal(
      pagePolicy(),
      "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; base-uri 'none'; frame-ancestors 'none'",
    );
  });

  it('lets the console run its own script files and post its forms to this site only', () => {
    assert.equal(
      pagePolicy({ scripts: ["'self'"], formsToSelf: true }),
      "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; script-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
  });

  it("keeps the provider's pages out of frames, and lets the logout page confirm by itself by its script's hash", () => {
    assert.equal(notFramedPolicy(), "frame-ancestors 'none'");
    assert.equal(notFramedPolicy([HASH]), `frame-ancestors 'none'; script-src ${HASH}`);
  });
});
