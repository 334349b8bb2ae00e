import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decideEveSignIn } from '../../src/alliance-auth/eve-login.ts';
import { createEveSsoClient, type EveSsoClient, EveSsoError } from '../../src/alliance-auth/eve-sso.ts';
import { startEveSsoStandIn, type EveSsoStandIn, type TokenTamper } from '../helpers/eve-sso-stand-in.ts';

const ALICE = {
  characterId: 2112000001,
  characterName: 'Alice Alpha',
  ownerHash: 'P8rvoR9OjWGt6ovw4rQkclyzj0k=',
};
const REDIRECT = 'http://127.0.0.1:9/o/eve-sso/callback';

/** Runs the browser's part: the authorize URL, the stand-in's redirect back, the code. */
async function authorize(client: EveSsoClient): Promise<{ code: string; codeVerifier: string }> {
  const request = client.authorizationRequest(REDIRECT);
  const response = await fetch(request.url, { redirect: 'manual' });
  assert.equal(response.status, 302);
  const back = new URL(response.headers.get('location')!);
  assert.equal(back.searchParams.get('state'), request.state);
  return { code: back.searchParams.get('code')!, codeVerifier: request.codeVerifier };
}

describe('EVE SSO v2 sign-in (against a local stand-in)', () => {
  let standIn: EveSsoStandIn;
  let client: EveSsoClient;
  before(async () => {
    standIn = await startEveSsoStandIn();
    client = createEveSsoClient(standIn.settings);
  });
  after(() => standIn?.close());

  it('asks for publicData with a state and S256 PKCE, and learns the character, its name and owner hash', async () => {
    const request = client.authorizationRequest(REDIRECT);
    const url = new URL(request.url);
    assert.equal(url.searchParams.get('scope'), 'publicData');
    assert.equal(url.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(url.searchParams.get('redirect_uri'), REDIRECT);
    standIn.signInAs(ALICE);
    const { code, codeVerifier } = await authorize(client);
    assert.deepEqual(await client.identify(code, REDIRECT, codeVerifier), ALICE);
  });

  it('refuses a code presented twice, or with another verifier', async () => {
    standIn.signInAs(ALICE);
    const { code, codeVerifier } = await authorize(client);
    await assert.rejects(
      client.identify(code, REDIRECT, `${codeVerifier}x`),
      (error: EveSsoError) => error.kind === 'rejected',
    );
    await assert.rejects(client.identify(code, REDIRECT, codeVerifier), /refused the request \(400\)/);
  });

  it("accepts CCP's issuer from before its 2023 change (login.eveonline.com, without https://)", async () => {
    standIn.signInAs(ALICE);
    const { code, codeVerifier } = await authorize(client);
    standIn.tamperNextToken({ issuer: 'login.eveonline.com' });
    assert.deepEqual(await client.identify(code, REDIRECT, codeVerifier), ALICE);
  });

  for (const [label, tamper, message] of [
    [
      'an issuer other than CCP',
      { issuer: 'https://evil.example' },
      /does not verify \(ERR_JWT_CLAIM_VALIDATION_FAILED\)/,
    ],
    ['an audience without "EVE Online"', { audience: ['eve-client-0123456789abcdef'] }, /does not verify/],
    [
      'an audience without our client id',
      { audience: ['someone-else', 'EVE Online'] },
      /issued to another application/,
    ],
    ['a subject that is no character', { subject: 'CORPORATION:EVE:98700001' }, /does not name a character/],
    ['an expired token', { expiresInSeconds: -3600 }, /does not verify \(ERR_JWT_EXPIRED\)/],
    ['a signature from another key', { foreignKey: true }, /does not verify/],
  ] as const) {
    it(`refuses a token with ${label}`, async () => {
      standIn.signInAs(ALICE);
      const { code, codeVerifier } = await authorize(client);
      standIn.tamperNextToken(tamper as TokenTamper);
      await assert.rejects(client.identify(code, REDIRECT, codeVerifier), (error: unknown) => {
        assert.ok(error instanceof EveSsoError);
        assert.equal(error.kind, 'rejected');
        assert.match(error.message, message);
        return true;
      });
    });
  }

  it('calls an EVE SSO outage "unavailable", so that the person is asked to try again', async () => {
    standIn.signInAs(ALICE);
    const { code, codeVerifier } = await authorize(client);
    standIn.failTokenEndpoint(502);
    try {
      await assert.rejects(
        client.identify(code, REDIRECT, codeVerifier),
        (error: EveSsoError) => error.kind === 'unavailable',
      );
    } finally {
      standIn.failTokenEndpoint(undefined);
    }
    const closed = createEveSsoClient({ ...standIn.settings, tokenUrl: 'http://127.0.0.1:9/v2/oauth/token' });
    await assert.rejects(
      closed.identify('code', REDIRECT, 'verifier'),
      (error: EveSsoError) => error.kind === 'unavailable',
    );
  });
});

describe('Whether an EVE SSO sign-in is accepted (as Alliance Auth decides without writing)', () => {
  const owned = (
    over: Partial<{
      userId: number;
      ownerHash: string;
      userActive: boolean;
      mainCharacterId: number | null;
    }> = {},
  ) => ({
    characterKnown: true,
    ownership: {
      userId: 2,
      ownerHash: ALICE.ownerHash,
      userActive: true,
      mainCharacterId: ALICE.characterId,
      ...over,
    },
  });
  for (const [label, record, decision] of [
    ['the main character of an active user, same owner hash', owned(), { outcome: 'accept', userId: 2 }],
    ['an alt', owned({ mainCharacterId: 2112000002 }), { outcome: 'refer', reason: 'not_main' }],
    [
      'a user without a main character',
      owned({ mainCharacterId: null }),
      { outcome: 'refer', reason: 'no_main' },
    ],
    [
      'a changed owner hash',
      owned({ ownerHash: 'somebody-else-entirely=' }),
      { outcome: 'refer', reason: 'owner_changed' },
    ],
    ['an inactive user', owned({ userActive: false }), { outcome: 'refer', reason: 'inactive' }],
    [
      'a character nobody owns',
      { characterKnown: true, ownership: null },
      { outcome: 'refer', reason: 'no_ownership' },
    ],
    [
      'a character AA never saw',
      { characterKnown: false, ownership: null },
      { outcome: 'refer', reason: 'unknown_character' },
    ],
  ] as const) {
    it(`${decision.outcome === 'accept' ? 'accepts' : 'refers to Alliance Auth'} ${label}`, () => {
      assert.deepEqual(decideEveSignIn(ALICE, record), decision);
    });
  }
});
