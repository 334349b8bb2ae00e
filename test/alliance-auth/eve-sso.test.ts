import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { eveSsoAuthenticator } from '../../src/alliance-auth/eve-authenticator.ts';
import { decideEveSignIn } from '../../src/alliance-auth/eve-login.ts';
import {
  createEveSsoClient,
  type EveSsoClient,
  EveSsoError,
  type EveSsoSettings,
} from '../../src/alliance-auth/eve-sso.ts';
import type { AaDb } from '../../src/alliance-auth/schema.ts';
import {
  startEveSsoStandIn,
  STAND_IN_CLIENT,
  type EveSsoStandIn,
  type TokenTamper,
} from '../helpers/eve-sso-stand-in.ts';
import { guardedConnector, PUBLIC_V4, tableResolver, v4 } from '../logout/helpers.ts';

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
    client = createEveSsoClient(standIn.settings, { mode: 'development' });
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
    const closed = createEveSsoClient(
      { ...standIn.settings, tokenUrl: 'http://127.0.0.1:9/v2/oauth/token' },
      { mode: 'development' },
    );
    await assert.rejects(
      closed.identify('code', REDIRECT, 'verifier'),
      (error: EveSsoError) => error.kind === 'unavailable',
    );
  });

  it('says why EVE SSO gave no usable answer in fixed words, never in the library’s or the peer’s text', async () => {
    // A token endpoint that answers what undici refuses, each time with text of its own in it.
    const PEER_TEXT = 'peer-text-7f3a';
    const replies: ReadonlyArray<[string, string, string]> = [
      ['garbage', `${PEER_TEXT}\r\n\r\n`, 'the response is not valid HTTP/1.1 (HTTPParserError)'],
      [
        'an upgrade',
        `HTTP/1.1 101 ${PEER_TEXT}\r\nConnection: upgrade\r\nUpgrade: ${PEER_TEXT}\r\n\r\n`,
        'EVE SSO switched protocols (101) instead of answering the POST (UND_ERR_SOCKET)',
      ],
      ['a close without an answer', '', 'EVE SSO closed the connection without answering (UND_ERR_SOCKET)'],
    ];
    for (const [what, reply, words] of replies) {
      const server = net.createServer((socket) => {
        socket.on('error', () => undefined);
        socket.once('data', () => socket.end(reply));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as net.AddressInfo;
      try {
        const odd = createEveSsoClient(
          { ...standIn.settings, tokenUrl: `http://127.0.0.1:${port}/v2/oauth/token` },
          { mode: 'development' },
        );
        await assert.rejects(odd.identify('code', REDIRECT, 'verifier'), (error: unknown) => {
          assert.ok(error instanceof EveSsoError, String(error));
          assert.equal(error.kind, 'unavailable', what);
          assert.equal(
            error.message,
            `EVE SSO is unreachable (127.0.0.1:${port}: 127.0.0.1: ${words})`,
            what,
          );
          assert.ok(!error.message.includes(PEER_TEXT), what);
          return true;
        });
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }
  });

  /** Tokens as CCP sends them, naming their key, and without a `kid`: what the log says of each. */
  const tokens = [
    ['naming its key', undefined, /^the EVE SSO JWKS's key "JWT-Signature-Key-[^"]+" cannot be used: /],
    [
      'naming no key',
      { withoutKid: true },
      /^the EVE SSO access token names no key and none of the EVE SSO JWKS's keys can be used: key "JWT-Signature-Key-[^"]+": /,
    ],
  ] as const;
  for (const [how, problem] of [
    ['kty', /its "kty" is "EC", not "RSA"/],
    ['alg', /its "alg" is "RS512", not "RS256"/],
    ['modulus', /its modulus "n" has 17 bits, fewer than the 2048 RS256 requires/],
    ['missing_n', /it lacks the "n" member/],
  ] as const) {
    for (const [token, tamper, said] of tokens) {
      it(`does not keep a JWKS whose key for a token ${token} cannot be used (${how}): the log says which and why, and a fixed JWKS is fetched at the next unknown-key refetch`, async () => {
        let clock = Date.now();
        const fresh = createEveSsoClient(standIn.settings, { mode: 'development' }, () => clock);
        const warnings: { fields: { err?: { message?: string } }; line: string }[] = [];
        const authenticator = eveSsoAuthenticator({
          aa: {} as AaDb,
          settings: standIn.settings,
          mode: 'development',
          loginUrl: 'https://auth.example.org/',
          logger: {
            info: () => undefined,
            warn: (fields: { err?: { message?: string } }, line: string) => warnings.push({ fields, line }),
          } as never,
          client: fresh,
        });
        const signIn = async () => {
          standIn.signInAs(ALICE);
          if (tamper) standIn.tamperNextToken(tamper);
          const { code, codeVerifier } = await authorize(fresh);
          return { code, codeVerifier, verified: await authenticator.verify(code, REDIRECT, codeVerifier) };
        };
        const servedBefore = standIn.jwksServed();
        standIn.breakJwksKey(how);
        try {
          const broken = await signIn();
          assert.equal(broken.verified.outcome, 'failed');
          assert.ok(broken.verified.outcome === 'failed');
          assert.equal(broken.verified.kind, 'unavailable', 'CCP is at fault, not the person: try again');
          assert.equal(warnings.length, 1);
          const { fields, line } = warnings[0]!;
          assert.equal(line, 'EVE SSO sign-in failed');
          assert.match(fields.err?.message ?? '', said);
          assert.match(fields.err?.message ?? '', problem);
          const logged = JSON.stringify(warnings[0]);
          for (const secret of [STAND_IN_CLIENT.clientSecret, broken.code, broken.codeVerifier])
            assert.ok(!logged.includes(secret), 'no secret, code or verifier in the log line');
          assert.doesNotMatch(logged, /eyJ/, 'no token in the log line');
        } finally {
          standIn.breakJwksKey(undefined);
        }
        // Fixed at CCP; within the unknown-key refetch limit the JWKS is not asked again...
        const soon = await signIn();
        assert.equal(soon.verified.outcome, 'failed');
        assert.equal(standIn.jwksServed(), servedBefore + 1);
        // ...and past it, the fixed JWKS is fetched and the sign-in verifies.
        clock += 61_000;
        const later = await signIn();
        assert.equal(later.verified.outcome, 'verified');
        assert.ok(later.verified.outcome === 'verified');
        assert.deepEqual(later.verified.identity, ALICE);
        assert.equal(standIn.jwksServed(), servedBefore + 2);
      });
    }
  }

  it('gives up on a JWKS answered a byte at a time once the request deadline has passed: "unavailable"', async () => {
    const requestTimeoutMs = 600;
    const slow = createEveSsoClient({ ...standIn.settings, requestTimeoutMs }, { mode: 'development' });
    standIn.signInAs(ALICE);
    const { code, codeVerifier } = await authorize(slow);
    standIn.trickle('jwks', true);
    try {
      const started = performance.now();
      await assert.rejects(
        Promise.race([
          slow.identify(code, REDIRECT, codeVerifier),
          // Without the deadline the answer never ends: fail rather than hang.
          new Promise((_resolve, reject) =>
            setTimeout(() => reject(new Error('still waiting')), 10_000).unref(),
          ),
        ]),
        (error: unknown) => {
          assert.ok(error instanceof EveSsoError, String(error));
          assert.equal(error.kind, 'unavailable');
          assert.match(error.message, new RegExp(`did not answer within ${requestTimeoutMs} ms`));
          return true;
        },
      );
      assert.ok(performance.now() - started < requestTimeoutMs + 5000, 'ended at the deadline');
    } finally {
      standIn.trickle('jwks', false);
    }
  });
});

describe("EVE SSO's requests pass the SSRF gate (names resolved by a table, connections mapped to loopback)", () => {
  let standIn: EveSsoStandIn;
  let port: number;
  before(async () => {
    standIn = await startEveSsoStandIn();
    port = Number(new URL(standIn.settings.tokenUrl).port);
  });
  after(() => standIn?.close());

  /** The stand-in's endpoints under a name (the authorization URL stays: the browser goes there). */
  const named = (host: string, over: Partial<EveSsoSettings> = {}): EveSsoSettings => ({
    ...standIn.settings,
    tokenUrl: `http://${host}:${port}/v2/oauth/token`,
    jwksUrl: `http://${host}:${port}/oauth/jwks`,
    allowPrivateEndpoints: false,
    ...over,
  });

  it('signs in when the name resolves to a public address, connecting only to that address', async () => {
    const resolver = tableResolver({ 'login.eve.test': [v4(PUBLIC_V4)] });
    const { connector, attempts, refused } = guardedConnector({ [PUBLIC_V4]: port });
    const gated = createEveSsoClient(named('login.eve.test'), { mode: 'development', resolver, connector });
    standIn.signInAs(ALICE);
    const { code, codeVerifier } = await authorize(gated);
    assert.deepEqual(await gated.identify(code, REDIRECT, codeVerifier), ALICE);
    // The token request and the JWKS, each resolved once and pinned to the address checked.
    assert.deepEqual(resolver.lookups, ['login.eve.test', 'login.eve.test']);
    assert.deepEqual(
      attempts.map((target) => [target.address, target.port, target.servername]),
      [
        [PUBLIC_V4, port, 'login.eve.test'],
        [PUBLIC_V4, port, 'login.eve.test'],
      ],
    );
    assert.deepEqual(refused, []);
  });

  for (const [label, answer, addressClass, settings] of [
    ['a private address', '10.20.30.40', 'private', {}],
    ['a CGNAT address', '100.64.1.2', 'cgnat', {}],
    ['a loopback address', '127.0.0.1', 'loopback', {}],
    // Not even the escape hatch lets a request reach the cloud's metadata and credentials.
    ['the cloud metadata address', '169.254.169.254', 'cloud_metadata', { allowPrivateEndpoints: true }],
  ] as const) {
    it(`refuses a token endpoint whose name resolves to ${label}: "unavailable", logged with the class, nothing sent`, async () => {
      const resolver = tableResolver({ 'login.eve.test': [v4(answer)] });
      const { connector, attempts } = guardedConnector({ [answer]: port });
      const gated = createEveSsoClient(named('login.eve.test', settings), {
        mode: 'development',
        resolver,
        connector,
      });
      const warnings: { fields: unknown; line: string }[] = [];
      const authenticator = eveSsoAuthenticator({
        // verify() never asks Alliance Auth's database.
        aa: {} as AaDb,
        settings: named('login.eve.test', settings),
        mode: 'development',
        loginUrl: 'https://auth.example.org/',
        logger: {
          info: () => undefined,
          warn: (fields: unknown, line: string) => warnings.push({ fields, line }),
        } as never,
        client: gated,
      });
      const redeemedBefore = standIn.redeemed();
      standIn.signInAs(ALICE);
      const { code, codeVerifier } = await authorize(gated);
      const verified = await authenticator.verify(code, REDIRECT, codeVerifier);
      assert.equal(verified.outcome, 'failed');
      assert.ok(verified.outcome === 'failed');
      assert.equal(verified.kind, 'unavailable');
      assert.deepEqual(attempts, [], 'no connection was opened');
      assert.equal(standIn.redeemed(), redeemedBefore, 'the code never reached the stand-in');
      assert.equal(warnings.length, 1);
      const logged = JSON.stringify(warnings[0]);
      assert.match(logged, new RegExp(`unsafe_target_ip, ${addressClass}`));
      assert.match(logged, new RegExp(answer.replaceAll('.', '\\.')));
      assert.match(logged, /login\.eve\.test/);
      for (const secret of [STAND_IN_CLIENT.clientSecret, code, codeVerifier])
        assert.ok(!logged.includes(secret), 'no secret, code or verifier in the log line');
    });
  }

  it('refuses a JWKS whose name resolves to a private address, even after the token request passed', async () => {
    const resolver = tableResolver({
      'login.eve.test': [v4(PUBLIC_V4)],
      'keys.eve.test': [v4('192.168.1.9')],
    });
    const { connector, attempts } = guardedConnector({ [PUBLIC_V4]: port, '192.168.1.9': port });
    const gated = createEveSsoClient(
      named('login.eve.test', { jwksUrl: `http://keys.eve.test:${port}/oauth/jwks` }),
      { mode: 'development', resolver, connector },
    );
    standIn.signInAs(ALICE);
    const { code, codeVerifier } = await authorize(gated);
    await assert.rejects(gated.identify(code, REDIRECT, codeVerifier), (error: unknown) => {
      assert.ok(error instanceof EveSsoError);
      assert.equal(error.kind, 'unavailable');
      assert.match(error.message, /SSRF gate refused the EVE SSO endpoint \(unsafe_target_ip, private\)/);
      assert.match(error.message, /keys\.eve\.test resolves to an unsafe address: 192\.168\.1\.9/);
      return true;
    });
    assert.deepEqual(
      attempts.map((target) => target.address),
      [PUBLIC_V4],
      'only the token request was sent',
    );
  });

  it('refuses the loopback stand-in itself without the escape hatch, and plain http outside development', async () => {
    const { connector, attempts } = guardedConnector({ '127.0.0.1': port });
    for (const [settings, mode, message] of [
      [{ ...standIn.settings, allowPrivateEndpoints: false }, 'development', /unsafe_target_ip, loopback/],
      [standIn.settings, 'production', /scheme_not_allowed\): uses http, but production requires https/],
    ] as const) {
      const gated = createEveSsoClient(settings, { mode, connector });
      await assert.rejects(gated.identify('code', REDIRECT, 'verifier'), (error: unknown) => {
        assert.ok(error instanceof EveSsoError);
        assert.equal(error.kind, 'unavailable');
        assert.match(error.message, message);
        return true;
      });
    }
    assert.deepEqual(attempts, []);
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
