import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { syntacticBackchannelTargetCheck } from '../../src/applications/backchannel-target.ts';
import { ApplicationError } from '../../src/applications/errors.ts';
import type { ApplicationInput } from '../../src/applications/types.ts';
import {
  URIS_MAX,
  type ValidationContext,
  validateApplicationInput,
  WHITELIST_MAX,
} from '../../src/applications/validate.ts';
import { createLeakHarness } from '../helpers/leak-harness.ts';

function context(mode: 'development' | 'production' = 'production'): ValidationContext {
  return {
    mode,
    states: new Map([
      ['Member', 1],
      ['Blue', 2],
    ]),
    groups: new Map([['Wiki Editors', 7]]),
    backchannelTargetCheck: syntacticBackchannelTargetCheck(mode),
  };
}

const base: ApplicationInput = {
  clientId: 'wiki-client-0001',
  name: 'Wiki',
  redirectUris: ['https://wiki.example.org/login/callback'],
};

async function refusal(
  input: ApplicationInput,
  mode?: 'development' | 'production',
): Promise<ApplicationError> {
  try {
    await validateApplicationInput(input, context(mode));
  } catch (error) {
    assert.ok(error instanceof ApplicationError, `expected ApplicationError, got ${String(error)}`);
    assert.equal(error.code, 'invalid_input');
    assert.ok(!error.message.includes('\n'), 'the message is one line');
    return error;
  }
  assert.fail(`expected ${JSON.stringify(input)} to be refused`);
}

describe('validateApplicationInput', () => {
  it('applies the application defaults to a minimal confidential application', async () => {
    const valid = await validateApplicationInput(base, context());
    assert.equal(valid.clientType, 'confidential');
    assert.deepEqual(valid.grantTypes, ['authorization_code', 'refresh_token']);
    assert.equal(valid.pkceRequired, true);
    assert.equal(valid.accessTokenFormat, 'inherit');
    assert.equal(valid.active, true);
    assert.equal(valid.skipAuthorization, false);
    assert.deepEqual(valid.states, []);
    assert.equal(valid.logoUrl, null);
    assert.equal(valid.backchannelLogoutUri, null);
    assert.equal(valid.idTokenClaims, false, 'a minimal id_token');
  });

  it('accepts loopback http, private-use schemes for public clients, and resolves whitelist names', async () => {
    const valid = await validateApplicationInput(
      {
        ...base,
        clientType: 'public',
        redirectUris: [
          'http://127.0.0.1:8765/cb',
          'http://[::1]/cb',
          'http://localhost:3000/cb',
          'com.example.app:/oauth2redirect',
          'https://wiki.example.org/cb?x=1',
          'https://wiki.example.org/cb?x=1',
        ],
        states: ['Member', 'Blue'],
        groups: ['Wiki Editors'],
        backchannelLogoutUri: 'https://wiki.example.org/bcl',
        logoUrl: 'https://cdn.example.org/logo.png',
      },
      context(),
    );
    assert.equal(valid.redirectUris.length, 5, 'duplicates are dropped');
    assert.deepEqual(valid.states, ['Blue', 'Member']);
    assert.deepEqual(valid.groups, ['Wiki Editors']);
  });

  it('allows http on any host in development mode only', async () => {
    const input = { ...base, redirectUris: ['http://wiki.internal/cb'] };
    assert.deepEqual((await validateApplicationInput(input, context('development'))).redirectUris, [
      'http://wiki.internal/cb',
    ]);
    assert.match((await refusal(input, 'production')).message, /must use https/);
  });

  const table: Array<[string, ApplicationInput, RegExp]> = [
    ['an empty name', { ...base, name: '   ' }, /^name: must be 1–100 characters$/],
    ['a name over 100 characters', { ...base, name: 'x'.repeat(101) }, /^name: must be 1–100 characters$/],
    ['a NUL byte in the name', { ...base, name: 'Wi\0ki' }, /^name: must not contain NUL bytes$/],
    [
      'a NUL byte in a redirect URI',
      { ...base, redirectUris: ['https://wiki.example.org/\0cb'] },
      /^redirect_uris\[0\]: must not contain NUL bytes$/,
    ],
    [
      'a relative redirect URI',
      { ...base, redirectUris: ['/login/callback'] },
      /^redirect_uris\[0\]: "\/login\/callback" must be an absolute URI such as https:/,
    ],
    [
      'a redirect URI with a fragment',
      { ...base, redirectUris: ['https://wiki.example.org/cb#frag'] },
      /^redirect_uris\[0\]: ".*" must not contain a fragment/,
    ],
    [
      'a malformed redirect URI',
      { ...base, redirectUris: ['https:wiki.example.org/cb'] },
      /^redirect_uris\[0\]: ".*" is malformed: expected https:\/\/host\/path$/,
    ],
    [
      'a redirect URI with a space',
      { ...base, redirectUris: ['https://wiki.example.org/c b'] },
      /^redirect_uris\[0\]: ".*" is malformed: it contains whitespace/,
    ],
    [
      'a redirect URI with a bad port',
      { ...base, redirectUris: ['https://wiki.example.org:99999/cb'] },
      /^redirect_uris\[0\]: ".*" is not a valid URI$/,
    ],
    [
      'http on a non-loopback host in production',
      { ...base, redirectUris: ['http://wiki.example.org/cb'] },
      /^redirect_uris\[0\]: "http:\/\/wiki.example.org\/cb" must use https \(http is allowed only for the loopback hosts 127\.0\.0\.1, \[::1\] and localhost, or in development mode\)$/,
    ],
    [
      'credentials in a redirect URI (masked in the message)',
      { ...base, redirectUris: ['https://user:hunter2@wiki.example.org/cb'] },
      /^redirect_uris\[0\]: "https:\/\/\*\*\*@wiki.example.org\/cb" must not contain credentials/,
    ],
    [
      'port 0 in a redirect URI, which nothing listens on',
      { ...base, redirectUris: ['https://wiki.example.org:0/cb'] },
      /^redirect_uris\[0\]: "https:\/\/wiki\.example\.org:0\/cb" has port 0, which nothing listens on: give the port the application listens on, or none$/,
    ],
    [
      'port 0 in a post-logout redirect URI, written with leading zeros',
      { ...base, postLogoutRedirectUris: ['https://wiki.example.org:000/bye'] },
      /^post_logout_redirect_uris\[0\]: ".*" has port 0/,
    ],
    [
      'an invalid percent-escape in a redirect URI',
      { ...base, redirectUris: ['https://wiki.example.org/cb?next=%zz'] },
      /^redirect_uris\[0\]: ".*" has an invalid percent-escape "%zz": a % must be followed by two hexadecimal digits \(write a % itself as %25\)$/,
    ],
    [
      'a % at the end of a private-use redirect URI',
      { ...base, clientType: 'public', redirectUris: ['com.example.app:/cb%4'] },
      /^redirect_uris\[0\]: ".*" has an invalid percent-escape "%4"/,
    ],
    [
      'a wildcard host in a redirect URI',
      { ...base, redirectUris: ['https://*.example.org/cb'] },
      /^redirect_uris\[0\]: "https:\/\/\*\.example\.org\/cb" has a \* in its host: redirect URIs are matched exactly, with no wildcards; register each host's URI$/,
    ],
    [
      'a wildcard host in a post-logout redirect URI',
      { ...base, postLogoutRedirectUris: ['https://wiki.*/'] },
      /^post_logout_redirect_uris\[0\]: ".*" has a \* in its host/,
    ],
    [
      'a javascript: redirect URI',
      { ...base, clientType: 'public', redirectUris: ['javascript:alert(1)'] },
      /^redirect_uris\[0\]: scheme "javascript:" is not allowed/,
    ],
    [
      'a private-use scheme on a confidential client',
      { ...base, redirectUris: ['com.example.app:/cb'] },
      /^redirect_uris\[0\]: private-use scheme "com.example.app:" is allowed for public clients only/,
    ],
    [
      'a bad post-logout redirect URI',
      { ...base, postLogoutRedirectUris: ['http://wiki.example.org/bye'] },
      /^post_logout_redirect_uris\[0\]: ".*" must use https/,
    ],
    [
      'no redirect URI with the authorization_code grant',
      { ...base, redirectUris: [] },
      /^redirect_uris: at least one redirect URI is required for the authorization_code grant$/,
    ],
    [
      'a javascript: logo URL',
      { ...base, logoUrl: 'javascript:alert(1)' },
      /^logo_url: must be an https URL, not "javascript:"$/,
    ],
    [
      'a relative logo URL',
      { ...base, logoUrl: 'logo.png' },
      /^logo_url: "logo.png" must be an absolute https URL such as https:\/\/app\.example\.com\/logo\.png$/,
    ],
    [
      // The pages' Content-Security-Policy (img-src 'self' https: data:) would block it.
      'an http logo URL',
      { ...base, logoUrl: 'http://cdn.example.org/logo.png' },
      /^logo_url: "http:\/\/cdn\.example\.org\/logo\.png" must use https: the pages load images over https only \(their Content-Security-Policy\), so an http logo would not show$/,
    ],
    [
      'an http logo URL on a loopback host',
      { ...base, logoUrl: 'http://127.0.0.1:8080/logo.png' },
      /^logo_url: ".*" must use https/,
    ],
    [
      'an unknown state',
      { ...base, states: ['Member', 'Alumni'] },
      /^states: unknown state "Alumni"; existing states: Blue, Member$/,
    ],
    [
      'an unknown group',
      { ...base, groups: ['Nope'] },
      /^groups: unknown group "Nope"; existing groups: Wiki Editors$/,
    ],
    [
      'client_credentials on a public client',
      { ...base, clientType: 'public', grantTypes: ['authorization_code', 'client_credentials'] },
      /^grant_types: client_credentials is for confidential clients only/,
    ],
    [
      'an unknown grant type',
      { ...base, grantTypes: ['password' as never] },
      /^grant_types: unknown grant type "password"; valid: authorization_code, refresh_token, client_credentials$/,
    ],
    [
      'refresh_token without authorization_code',
      { ...base, grantTypes: ['refresh_token', 'client_credentials'] },
      /^grant_types: refresh_token requires authorization_code/,
    ],
    ['no grant type', { ...base, grantTypes: [] }, /^grant_types: at least one is required/],
    [
      'a bad access token format',
      { ...base, accessTokenFormat: 'paseto' as never },
      /^access_token_format: "paseto" is not valid; use one of inherit, opaque, jwt$/,
    ],
    [
      'a bad client type',
      { ...base, clientType: 'native' as never },
      /^client_type: "native" is not valid; use confidential or public$/,
    ],
    [
      'a public client without PKCE',
      { ...base, clientType: 'public', pkceRequired: false },
      /^pkce_required: public clients must require PKCE/,
    ],
    ['a malformed client_id', { ...base, clientId: 'has space' }, /^client_id: must be 3–100 characters/],
    [
      'a client_id that reads as an option',
      { ...base, clientId: '-abc' },
      /^client_id: must be 3–100 characters/,
    ],
    [
      "the built-in account console's client_id",
      { ...base, clientId: 'AA-OIDC-account' },
      /^client_id: is reserved for the built-in account console/,
    ],
    [
      'a client_id that is a page of the admin UI',
      { ...base, clientId: 'new' },
      /^client_id: "new" is reserved: \/admin\/apps\/new is a page of the admin UI/,
    ],
    [
      'another page of the admin UI',
      { ...base, clientId: 'test-logout' },
      /^client_id: "test-logout" is reserved/,
    ],
    [
      'an http back-channel URI in production',
      { ...base, backchannelLogoutUri: 'http://wiki.example.org/bcl' },
      /^backchannel_logout_uri: "http:\/\/wiki.example.org\/bcl" must use https in production$/,
    ],
    [
      'a back-channel URI with credentials',
      { ...base, backchannelLogoutUri: 'https://u:p@wiki.example.org/bcl' },
      /^backchannel_logout_uri: "https:\/\/\*\*\*@wiki.example.org\/bcl" must not contain credentials/,
    ],
    [
      'a back-channel URI with a fragment',
      { ...base, backchannelLogoutUri: 'https://wiki.example.org/bcl#x' },
      /^backchannel_logout_uri: ".*" must not contain a fragment/,
    ],
    [
      'a relative back-channel URI',
      { ...base, backchannelLogoutUri: '/bcl' },
      /^backchannel_logout_uri: "\/bcl" must be an absolute URI/,
    ],
    [
      'a non-boolean flag',
      { ...base, skipAuthorization: 'yes' as never },
      /^skip_authorization: must be true or false$/,
    ],
    [
      'an id_token_claims that is not a boolean',
      { ...base, idTokenClaims: 'yes' as never },
      /^id_token_claims: must be true or false$/,
    ],
  ];
  for (const [what, input, message] of table) {
    it(`refuses ${what}`, async () => {
      assert.match((await refusal(input)).message, message);
    });
  }

  it('takes an https logo only, in development too, but keeps an http logo stored before on an update', async () => {
    const http = 'http://localhost:8080/logo.png';
    // The pages' Content-Security-Policy is the same in every mode: an http logo never shows.
    assert.match(
      (await refusal({ ...base, logoUrl: http }, 'development')).message,
      /^logo_url: .* must use https/,
    );
    const https = await validateApplicationInput(
      { ...base, logoUrl: 'https://cdn.example.org/l.svg' },
      context(),
    );
    assert.equal(https.logoUrl, 'https://cdn.example.org/l.svg');
    const kept = await validateApplicationInput(
      { ...base, logoUrl: http },
      { ...context(), storedLogoUrl: http },
    );
    assert.equal(kept.logoUrl, http, 'an edit of something else is not refused for it');
    await assert.rejects(
      validateApplicationInput(
        { ...base, logoUrl: 'http://localhost:8080/other.png' },
        { ...context(), storedLogoUrl: http },
      ),
      /logo_url: .* must use https/,
    );
  });

  it('keeps a redirect URI with a * in its host stored before on an update, in its own list only', async () => {
    const star = 'https://*.example.org/cb';
    const kept = await validateApplicationInput(
      { ...base, redirectUris: [star, 'https://wiki.example.org/cb'], postLogoutRedirectUris: [] },
      { ...context(), storedRedirectUris: [star] },
    );
    assert.deepEqual(kept.redirectUris, [star, 'https://wiki.example.org/cb']);
    const refused = validateApplicationInput(
      { ...base, redirectUris: [star, 'https://*.other.example.org/cb'], postLogoutRedirectUris: [star] },
      { ...context(), storedRedirectUris: [star] },
    );
    await assert.rejects(refused, ApplicationError);
    assert.deepEqual(
      ((await refused.catch((error: unknown) => error)) as ApplicationError).issues.map(
        (issue) => issue.field,
      ),
      ['redirect_uris[1]', 'post_logout_redirect_uris[0]'],
    );
  });

  it('takes escapes and ports that are valid, and keeps a port 0 or bad escape stored before on an update', async () => {
    const valid = await validateApplicationInput(
      { ...base, redirectUris: ['https://wiki.example.org:8443/c%C3%A9?a=%2F'] },
      context(),
    );
    assert.deepEqual(valid.redirectUris, ['https://wiki.example.org:8443/c%C3%A9?a=%2F']);
    const stored = ['https://wiki.example.org:0/cb', 'https://wiki.example.org/cb%zz'];
    const kept = await validateApplicationInput(
      { ...base, redirectUris: stored },
      { ...context(), storedRedirectUris: stored },
    );
    assert.deepEqual(kept.redirectUris, stored);
  });

  /** Each URI field of an application, with the input that gives it `uri`. */
  const URI_FIELDS: ReadonlyArray<readonly [field: string, input: (uri: string) => ApplicationInput]> = [
    ['redirect_uris[0]', (uri) => ({ ...base, redirectUris: [uri] })],
    ['post_logout_redirect_uris[0]', (uri) => ({ ...base, postLogoutRedirectUris: [uri] })],
    ['logo_url', (uri) => ({ ...base, logoUrl: uri })],
    ['backchannel_logout_uri', (uri) => ({ ...base, backchannelLogoutUri: uri })],
  ];

  it('refuses a bidirectional control or invisible character in every URI field, naming the field and its code point', async () => {
    const hidden = [
      '\u202e',
      '\u202a',
      '\u2066',
      '\u2069',
      '\u061c',
      '\u200b',
      '\u200c',
      '\u200d',
      '\u200e',
      '\u200f',
      '\ufeff',
      '\u00ad',
    ];
    for (const [field, input] of URI_FIELDS) {
      for (const char of hidden) {
        const code = `U+${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
        const escape = `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
        for (const uri of [`https://wiki.example.org/cb${char}`, `https://wiki${char}.example.org/cb`]) {
          const error = await refusal(input(uri));
          const what = `${field} ${code} in ${JSON.stringify(uri)}`;
          assert.deepEqual(
            error.issues.map((issue) => issue.field),
            [field],
            what,
          );
          assert.ok(
            error.message.startsWith(`${field}: "${uri.replace(char, escape)}" contains ${code}, `),
            `${what}: ${error.message}`,
          );
          assert.ok(error.message.includes(encodeURIComponent(char)), `${what}: its percent-encoded form`);
          assert.ok(!error.message.includes(char), `${what}: the message shows it escaped`);
        }
      }
    }
    // Percent-encoded, it shows: taken.
    const valid = await validateApplicationInput(
      {
        ...base,
        redirectUris: ['https://wiki.example.org/cb%E2%80%AE'],
        logoUrl: 'https://wiki.example.org/l%C2%AD.png',
      },
      context(),
    );
    assert.deepEqual(valid.redirectUris, ['https://wiki.example.org/cb%E2%80%AE']);
  });

  it('refuses a malformed percent-escape in a logo URL and a back-channel logout URI too', async () => {
    for (const [field, input] of URI_FIELDS) {
      for (const [uri, escape] of [
        ['https://wiki.example.org/logo%zz.png', '%zz'],
        ['https://wiki.example.org/logo.png?v=%4', '%4'],
      ]) {
        const error = await refusal(input(uri!));
        assert.equal(
          error.message,
          `${field}: ${JSON.stringify(uri)} has an invalid percent-escape "${escape}": a % must be followed by two hexadecimal digits (write a % itself as %25)`,
        );
      }
    }
  });

  it('refuses a host no DNS name can be or a malformed percent-escape in every URI field, before the back-channel gate is asked', async () => {
    const label63 = 'a'.repeat(63);
    const name253 = `${label63}.${label63}.${label63}.${'b'.repeat(61)}`;
    assert.equal(name253.length, 253);
    const refused: ReadonlyArray<readonly [uri: string, reason: RegExp]> = [
      [
        'https://xn--/cb',
        /has the host label "xn--", which is no valid punycode: a label starting with xn-- must be the ASCII form of an international name/,
      ],
      ['https://XN--/cb', /has the host label "xn--", which is no valid punycode/],
      ['https://wiki.xn--zz.example.org/cb', /has the host label "xn--zz", which is no valid punycode/],
      ['https://xn--abc-.example.org/cb', /has the host label "xn--abc-", which is no valid punycode/],
      [
        `https://${label63}a.example.org/cb`,
        /has a label of 64 characters in its host, where DNS allows at most 63 \(counted in punycode\)$/,
      ],
      [
        `https://${name253}x/cb`,
        /has a host name of 254 characters, where DNS allows at most 253 \(counted in punycode\)$/,
      ],
      // 57 characters as it reads, 64 in punycode (xn--aaa…-o6a), as it is sent.
      [`https://ü${'a'.repeat(56)}.example.org/cb`, /has a label of 64 characters/],
      ['https://wiki..example.org/cb', /has the host "wiki\.\.example\.org", with an empty label/],
      ['https://wiki.example.org/cb%zz', /has an invalid percent-escape "%zz"/],
    ];
    for (const [field, input] of URI_FIELDS) {
      for (const [uri, reason] of refused) {
        const seen: string[] = [];
        const ctx: ValidationContext = {
          ...context(),
          backchannelTargetCheck: async (target) => {
            seen.push(target);
            return { ok: true };
          },
        };
        const refusedWrite = validateApplicationInput(input(uri), ctx);
        const error = (await refusedWrite.catch((thrown: unknown) => thrown)) as ApplicationError;
        assert.ok(error instanceof ApplicationError, `${field} ${uri}: refused`);
        assert.deepEqual(
          error.issues.map((issue) => issue.field),
          [field],
          uri,
        );
        assert.match(error.issues[0]!.message, reason, `${field} ${uri}`);
        assert.deepEqual(seen, [], `${field} ${uri}: the gate was not asked (nothing resolved)`);
      }
    }
    // International names, as they read or in punycode, and the longest names and labels DNS takes.
    for (const uri of [
      'https://xn--bcher-kva.example.org/cb',
      'https://bücher.example.org/cb',
      'https://xn--e1afmkfd.xn--p1ai/cb',
      `https://${label63}.example.org/cb`,
      `https://${name253}/cb`,
      `https://${name253}./cb`,
      'https://wiki.example.org./cb',
      'https://192.0.2.1/cb',
      'https://[2001:db8::1]/cb',
    ]) {
      const valid = await validateApplicationInput(
        { ...base, redirectUris: [uri], logoUrl: uri, backchannelLogoutUri: uri },
        context(),
      );
      assert.deepEqual(valid.redirectUris, [uri], uri);
      assert.equal(valid.logoUrl, uri);
      assert.equal(valid.backchannelLogoutUri, uri);
    }
  });

  it('keeps a URI stored before these rules on an update, and refuses the same rules in a new one', async () => {
    const redirect = 'https://wiki.example.org/cb\u202e';
    const postLogout = 'https://xn--/bye';
    const logo = 'https://wiki.example.org/logo%zz.png';
    const backchannel = 'https://wiki\u200b.example.org/bcl';
    const stored: Partial<ValidationContext> = {
      storedRedirectUris: [redirect],
      storedPostLogoutRedirectUris: [postLogout],
      storedLogoUrl: logo,
      storedBackchannelLogoutUri: backchannel,
    };
    const input = {
      ...base,
      redirectUris: [redirect],
      postLogoutRedirectUris: [postLogout],
      logoUrl: logo,
      backchannelLogoutUri: backchannel,
    };
    const kept = await validateApplicationInput(input, { ...context(), ...stored });
    assert.deepEqual(
      [kept.redirectUris, kept.postLogoutRedirectUris, kept.logoUrl, kept.backchannelLogoutUri],
      [[redirect], [postLogout], logo, backchannel],
    );
    const error = await refusal(input);
    assert.deepEqual(
      error.issues.map((issue) => issue.field),
      ['logo_url', 'redirect_uris[0]', 'post_logout_redirect_uris[0]', 'backchannel_logout_uri'],
    );
  });

  it('reports every problem at once, and says when no states exist yet', async () => {
    const error = await refusal(
      { ...base, name: '', redirectUris: ['nope'], states: ['Alumni'] },
      'production',
    );
    assert.deepEqual(
      error.issues.map((issue) => issue.field),
      ['name', 'redirect_uris[0]', 'states'],
    );
    assert.match(error.message, /^name: .+; redirect_uris\[0\]: .+; states: unknown state "Alumni"/);
    const noStates = { ...context(), states: new Map<string, number>() };
    await assert.rejects(validateApplicationInput({ ...base, states: ['Member'] }, noStates), {
      message: 'states: unknown state "Member"; no states exist yet (create one with `aa-oidc state create`)',
    });
  });

  // Thousands of URIs or names (an admin form holds 64 KiB) were each checked against the ones before
  // them, and each unknown name against every name the directory has: seconds of CPU.
  it('refuses a list past its limit for its length alone, without checking each item', async () => {
    const error = await refusal({
      ...base,
      redirectUris: Array.from({ length: 8_000 }, (_, index) => `nope${index}`),
      postLogoutRedirectUris: Array.from({ length: URIS_MAX + 1 }, () => 'https://wiki.example.org/bye'),
      states: Array.from({ length: 8_000 }, (_, index) => `Alumni ${index}`),
      groups: Array.from({ length: WHITELIST_MAX + 1 }, () => 'Wiki Editors'),
    });
    assert.deepEqual(error.issues, [
      { field: 'redirect_uris', message: `at most ${URIS_MAX} URIs are allowed (8000 given)` },
      {
        field: 'post_logout_redirect_uris',
        message: `at most ${URIS_MAX} URIs are allowed (${URIS_MAX + 1} given)`,
      },
      { field: 'states', message: `at most ${WHITELIST_MAX} states are allowed (8000 given)` },
      {
        field: 'groups',
        message: `at most ${WHITELIST_MAX} groups are allowed (${WHITELIST_MAX + 1} given)`,
      },
    ]);
  });

  it('looks for the names a listing shows as an unknown one once, not for each unknown name', async () => {
    const groups = new Map(Array.from({ length: 2_000 }, (_, index) => [`Group ${index}`, index]));
    groups.set('Esc\x1b', 2_000);
    const unknown = [
      ...Array.from({ length: WHITELIST_MAX - 1 }, (_, index) => `Missing ${index}`),
      'ESC\\X1B',
    ];
    const toLowerCase = Object.getOwnPropertyDescriptor(String.prototype, 'toLowerCase')!;
    const original = toLowerCase.value as () => string;
    let lowered = 0;
    Object.defineProperty(String.prototype, 'toLowerCase', {
      ...toLowerCase,
      value(this: string) {
        lowered += 1;
        return original.call(this);
      },
    });
    let error: unknown;
    try {
      await validateApplicationInput({ ...base, groups: unknown }, { ...context(), groups });
    } catch (caught) {
      error = caught;
    } finally {
      Object.defineProperty(String.prototype, 'toLowerCase', toLowerCase);
    }
    assert.ok(error instanceof ApplicationError);
    assert.match(
      error.message,
      /; a listing shows the group \$'Esc\\x1b' as ESC\\X1B: give it as \$'Esc\\x1b'/,
    );
    // Each name and each unknown one a few times, not every name for each unknown one (400,000).
    assert.ok(lowered < 5 * (groups.size + unknown.length), `${lowered} names lowered`);
  });

  it('quotes a refused URI without its password, its credential parameters or a token in its fragment', async () => {
    const secrets = ['hunter2/x?y#z', 'tok-query-8f3a', 'sec-query-5b2c', 'at-fragment-7d1e'];
    const uri = `https://wiki:${secrets[0]}@wiki.example.org/cb?token=${secrets[1]}&client_secret=${secrets[2]}&state=s1#access_token=${secrets[3]}`;
    const error = await refusal({
      ...base,
      redirectUris: [uri],
      postLogoutRedirectUris: [uri.replace('/cb', '/bye')],
      backchannelLogoutUri: uri.replace('/cb', '/bcl'),
      logoUrl: `${uri} `,
    });
    assert.equal(
      error.issues.find((issue) => issue.field === 'redirect_uris[0]')?.message,
      // Cut in the middle (106 characters once redacted): its start and its end, where the fault is.
      '"https://***@wiki.example.org/cb?token=[r…dacted]&state=s1#access_token=[redacted]" (106 characters) must not contain a fragment (#…)',
    );
    assert.equal(error.issues.length, 4, error.message);
    const harness = createLeakHarness();
    for (const [index, secret] of secrets.entries()) harness.registerSecret(secret, `secret ${index + 1}`);
    harness.scanText('the refusal', `${error.message}\n${JSON.stringify(error.issues)}`);
    await harness.assertNoLeaks();
  });

  it('quotes a refused URI without any part of a password that holds both white space and a slash', async () => {
    // A log line's scrubbing cuts a URL in free text at white space; a field's value is the URL whole.
    const password = 'hunter2 pa/ss?wo#rd';
    const uri = `https://wiki:${password}@wiki.example.org/cb`;
    const error = await refusal({ ...base, redirectUris: [uri], logoUrl: uri });
    const messages = error.issues.map((issue) => issue.message);
    assert.deepEqual(messages, [
      '"https://***@wiki.example.org/cb" is malformed: it contains whitespace, control characters or backslashes',
      '"https://***@wiki.example.org/cb" is malformed: it contains whitespace, control characters or backslashes',
    ]);
    for (const part of ['hunter2', 'pa/ss', 'wo#rd']) assert.doesNotMatch(error.message, new RegExp(part));
    const harness = createLeakHarness();
    harness.registerSecret(password, 'the password');
    harness.scanText('the refusal', `${error.message}\n${JSON.stringify(error.issues)}`);
    await harness.assertNoLeaks();
  });

  it('uses the injected back-channel target check and reports its reason', async () => {
    const seen: string[] = [];
    const ctx: ValidationContext = {
      ...context(),
      backchannelTargetCheck: async (uri) => {
        seen.push(uri);
        return { ok: false, reason: 'resolves to a private address (10.0.0.1)' };
      },
    };
    await assert.rejects(
      validateApplicationInput({ ...base, backchannelLogoutUri: 'https://rp.example/bcl' }, ctx),
      {
        message: 'backchannel_logout_uri: "https://rp.example/bcl" resolves to a private address (10.0.0.1)',
      },
    );
    assert.deepEqual(seen, ['https://rp.example/bcl']);
  });
});
