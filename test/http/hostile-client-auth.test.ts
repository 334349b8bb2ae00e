import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { ACCOUNT_CONSOLE_CLIENT_ID } from '../../src/applications/account-console.ts';
import {
  CLIENT_AUTH_ENDPOINT_NAMES,
  CLIENT_AUTH_ENDPOINTS,
  CLIENT_AUTH_FAILED,
  clientAuthFailureCounts,
  clientAuthFailureLines,
  type ClientAuthEndpoint,
  neverIssuedBody,
} from '../helpers/client-auth-failures.ts';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { basicAuth, seedApp, startServer, type TestServer } from '../helpers/server.ts';
import { type RawResponse, rawRequest } from './raw-request.ts';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const STACK_OR_DRIVER_TEXT =
  /\bat [^\n]*\.[cm]?[jt]s:\d+|TypeError|ReferenceError|RangeError|invalid byte sequence|SQLITE_|syntax error at/;
/** A secret no client has, long enough for the leak harness to look for. */
const WRONG_SECRET = 'wrong-secret-of-nobody-5f1c2e';
/** An id that names no application: never logged, only its length. */
const UNKNOWN_ID = 'no-such-client-typed-by-hand';

type Reason = 'wrong_secret' | 'unknown_client' | 'deactivated' | 'method_mismatch';

/** How a probe is answered: an error read before authentication, or the client not authenticated. */
type Outcome =
  | { status: 400 | 413 | 415; error: string; description?: RegExp }
  | { status: 401; reason: Reason; client: string | null; authMethod: string };

interface Probe {
  what: string;
  /** The endpoints it is sent to (default: all three). */
  only?: readonly ClientAuthEndpoint[];
  /** Headers beside (or, with their own content-type, in place of) the form's. */
  headers?: Record<string, string>;
  /** Fields after the endpoint's own form (`neverIssuedBody`), starting with `&`. */
  extra?: string;
  /** The whole body, in place of `neverIssuedBody` + `extra`. */
  body?: string | Buffer;
  expect: Outcome;
}

/**
 * Hostile client authentication at the token, introspection and revocation endpoints, as a table:
 * malformed Basic headers, secrets in the body, both at once, clients unknown, deactivated, public or
 * built in, parameters repeated or as arrays, bodies of another type or charset, grant types that do
 * not exist. Each is answered with its OAuth error (`invalid_request` 400 for what cannot be read,
 * `invalid_client` 401 with `WWW-Authenticate: Basic` when the Authorization header was used,
 * `unsupported_grant_type`…), never a 5xx; nothing is stored; each failed authentication is counted
 * and logged once (client-auth-failures.ts), the rest not at all; no secret reaches an answer or a log
 * line. The device flow, PAR and CIBA are off (configuration.ts): their endpoints are 404.
 * test/oidc/client-authentication.test.ts has what needs a raw connection (two Authorization headers,
 * control characters, Node's header limit).
 */
describe(`hostile client authentication at the token, introspection and revocation endpoints (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;
  /** A confidential relying party (authorization code and refresh). */
  let web: { clientId: string; clientSecret: string };
  /** A confidential back end with client_credentials, its steps logged (debug mode). */
  let machine: { clientId: string; clientSecret: string };
  let publicClient: string;
  let deactivated: { clientId: string; clientSecret: string };
  const answers: RawResponse[] = [];

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    const seeded = await seedApp(server, { name: 'Wiki' });
    web = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
    const cron = await seedApp(server, {
      name: 'Cron',
      grantTypes: ['client_credentials'],
      redirectUris: [],
      debugMode: true,
    });
    machine = { clientId: cron.clientId, clientSecret: cron.clientSecret! };
    publicClient = (await seedApp(server, { name: 'Mobile', clientType: 'public' })).clientId;
    const old = await seedApp(server, { name: 'Retired' });
    deactivated = { clientId: old.clientId, clientSecret: old.clientSecret! };
    await server.app.applications.deactivate(deactivated.clientId, 'test');
    harness.registerSecret(web.clientSecret, 'the relying party secret');
    harness.registerSecret(machine.clientSecret, 'the back end secret');
    harness.registerSecret(deactivated.clientSecret, "the deactivated application's secret");
    harness.registerSecret(WRONG_SECRET, 'the wrong secret presented');
    harness.registerSecret(UNKNOWN_ID, 'the unknown client id');
  });
  after(async () => server?.close());

  async function send(
    endpoint: ClientAuthEndpoint,
    probe: Pick<Probe, 'headers' | 'extra' | 'body'>,
  ): Promise<RawResponse> {
    const answer = await rawRequest(`${server.origin}${CLIENT_AUTH_ENDPOINTS[endpoint]}`, {
      method: 'POST',
      headers: { ...FORM, ...probe.headers },
      body: probe.body ?? `${neverIssuedBody(endpoint)}${probe.extra ?? ''}`,
    });
    answers.push(answer);
    return answer;
  }

  const counts = () => clientAuthFailureCounts(server);
  const failureLines = () => clientAuthFailureLines(harness);

  /** Everything a request at these endpoints could write: tokens, codes, login failures, logout jobs, the applications' secrets. */
  async function stored(): Promise<string> {
    const db = server.app.database.db;
    const tables = ['oidc_payload', 'issued_code', 'login_failure', 'bcl_job', 'change_log'] as const;
    const counted = await Promise.all(
      tables.map(async (table) => {
        const { n } = await db
          .selectFrom(table)
          .select(sql<number>`count(*)`.as('n'))
          .executeTakeFirstOrThrow();
        return `${table}=${n}`;
      }),
    );
    const applications = await db
      .selectFrom('application')
      .select(['client_id', 'client_secret_sha256', 'client_secret_pbkdf2', 'active', 'updated_at'])
      .orderBy('client_id')
      .execute();
    return JSON.stringify({ counted, applications });
  }

  const base64 = (bytes: string | Buffer) => Buffer.from(bytes).toString('base64');
  const basic = (raw: string | Buffer) => ({ authorization: `Basic ${base64(raw)}` });
  const unreadable = (what: string, authorization: () => string): Probe => ({
    what,
    headers: { authorization: authorization() },
    expect: { status: 400, error: 'invalid_request' },
  });

  function probes(): Probe[] {
    const right = () => ({ authorization: basicAuth(machine.clientId, machine.clientSecret) });
    const failed = (reason: Reason, client: string | null, authMethod: string) =>
      ({ status: 401, reason, client, authMethod }) as const;
    const viaBasic = (reason: Reason, client: string | null) => failed(reason, client, 'client_secret_basic');
    const viaPost = (reason: Reason, client: string | null) => failed(reason, client, 'client_secret_post');
    const invalidRequest = (description?: RegExp) =>
      ({ status: 400, error: 'invalid_request', description }) as const;
    return [
      // The Authorization header as RFC 6749 §2.3.1 and RFC 7617 do not allow it: read by the provider
      // (lib/shared/client_auth.js), refused before any client is looked up.
      unreadable('Basic with no value', () => 'Basic'),
      unreadable('Basic and two values', () => `${basicAuth(web.clientId, web.clientSecret)} extra`),
      unreadable('not base64', () => 'Basic !!!!'),
      unreadable('base64 with a wrong padding', () => 'Basic YWJj=='),
      unreadable('no colon', () => `Basic ${base64(`${web.clientId}${web.clientSecret}`)}`),
      unreadable('an empty client id', () => `Basic ${base64(`:${web.clientSecret}`)}`),
      unreadable('an empty secret', () => `Basic ${base64(`${web.clientId}:`)}`),
      unreadable('a colon alone', () => `Basic ${base64(':')}`),
      unreadable(
        'bytes that are no UTF-8',
        () =>
          basic(Buffer.concat([Buffer.from(`${web.clientId}:`), Buffer.from([0xff, 0xfe])])).authorization,
      ),
      unreadable('a lone % in the id', () => `Basic ${base64(`%:${web.clientSecret}`)}`),
      unreadable('%zz in the secret', () => `Basic ${base64(`${web.clientId}:%zz${web.clientSecret}`)}`),
      unreadable('%00 in the id', () => `Basic ${base64(`a%00b:${web.clientSecret}`)}`),
      unreadable('a raw NUL in the id', () => `Basic ${base64(`a\u0000b:${web.clientSecret}`)}`),
      unreadable('a raw DEL in the secret', () => `Basic ${base64(`${web.clientId}:a\u007fb`)}`),
      unreadable('unencoded unicode in the id', () => `Basic ${base64(`pilöt:${web.clientSecret}`)}`),
      unreadable('a Bearer token', () => `Bearer ${web.clientSecret}`),
      unreadable('Digest', () => 'Digest username="x", realm="y"'),
      // Read, and not authenticated: 401 with the Basic challenge, counted under the application (or `unknown`).
      {
        what: 'a wrong secret',
        headers: { authorization: basicAuth(web.clientId, WRONG_SECRET) },
        expect: viaBasic('wrong_secret', web.clientId),
      },
      {
        what: 'a wrong secret under BASIC',
        headers: { authorization: basicAuth(web.clientId, WRONG_SECRET).replace('Basic', 'BASIC') },
        expect: viaBasic('wrong_secret', web.clientId),
      },
      {
        what: "another client's secret",
        headers: { authorization: basicAuth(web.clientId, machine.clientSecret) },
        expect: viaBasic('wrong_secret', web.clientId),
      },
      {
        // `+` is a space in the form encoding of RFC 6749 §2.3.1: the secret then ends with one.
        what: 'the right secret and a raw +',
        headers: {
          authorization: `Basic ${base64(`${web.clientId}:${encodeURIComponent(web.clientSecret)}+`)}`,
        },
        expect: viaBasic('wrong_secret', web.clientId),
      },
      {
        what: 'a 6 KB secret',
        headers: { authorization: basicAuth(web.clientId, `${'S'.repeat(6000)}${web.clientSecret}`) },
        expect: viaBasic('wrong_secret', web.clientId),
      },
      {
        what: 'an unknown client',
        headers: { authorization: basicAuth(UNKNOWN_ID, web.clientSecret) },
        expect: viaBasic('unknown_client', null),
      },
      {
        what: 'a client id of 3000 characters',
        headers: { authorization: basicAuth('i'.repeat(3000), WRONG_SECRET) },
        expect: viaBasic('unknown_client', null),
      },
      {
        what: 'the client id in another case',
        headers: { authorization: basicAuth(web.clientId.toLowerCase(), web.clientSecret) },
        expect: viaBasic('unknown_client', null),
      },
      {
        // A relying party that swapped its id and secret: the secret is never logged, only its length.
        what: 'the secret where the id belongs',
        headers: { authorization: basicAuth(web.clientSecret, web.clientId) },
        expect: viaBasic('unknown_client', null),
      },
      {
        what: 'a deactivated application with its right secret',
        headers: { authorization: basicAuth(deactivated.clientId, deactivated.clientSecret) },
        expect: viaBasic('deactivated', deactivated.clientId),
      },
      {
        what: 'a public client with a secret',
        headers: { authorization: basicAuth(publicClient, WRONG_SECRET) },
        expect: viaBasic('method_mismatch', publicClient),
      },
      {
        // The built-in console's client: confidential, its secret derived from the secret key and given to no one.
        what: 'the account console with a guessed secret',
        headers: { authorization: basicAuth(ACCOUNT_CONSOLE_CLIENT_ID, 'x'.repeat(43)) },
        expect: viaBasic('wrong_secret', ACCOUNT_CONSOLE_CLIENT_ID),
      },
      // client_secret_post: the same, without a challenge (no Authorization header was used).
      {
        what: 'a wrong secret in the body',
        extra: `&client_id=${web.clientId}&client_secret=${WRONG_SECRET}`,
        expect: viaPost('wrong_secret', web.clientId),
      },
      {
        // The provider counts an empty header as no credential and takes the body's secret: logged as
        // that method (it still answers with the Basic challenge, the header having been sent).
        what: 'a wrong secret in the body beside an empty Authorization header',
        headers: { authorization: '' },
        extra: `&client_id=${web.clientId}&client_secret=${WRONG_SECRET}`,
        expect: viaPost('wrong_secret', web.clientId),
      },
      {
        what: 'the right secret and a NUL byte in the body',
        extra: `&client_id=${web.clientId}&client_secret=${encodeURIComponent(web.clientSecret)}%00`,
        expect: viaPost('wrong_secret', web.clientId),
      },
      {
        what: 'a 40 KB secret in the body',
        extra: `&client_id=${web.clientId}&client_secret=${'S'.repeat(40_000)}`,
        expect: viaPost('wrong_secret', web.clientId),
      },
      {
        what: 'a NUL byte in the client id',
        extra: `&client_id=a%00b&client_secret=${WRONG_SECRET}`,
        expect: viaPost('unknown_client', null),
      },
      {
        what: 'a client id of 40 KB',
        extra: `&client_id=${'i'.repeat(40_000)}&client_secret=${WRONG_SECRET}`,
        expect: viaPost('unknown_client', null),
      },
      {
        what: 'a client id that is a lone surrogate',
        extra: `&client_id=%ED%A0%80&client_secret=${WRONG_SECRET}`,
        expect: viaPost('unknown_client', null),
      },
      {
        what: 'the secret as the client id',
        extra: `&client_id=${web.clientSecret}&client_secret=${WRONG_SECRET}`,
        expect: viaPost('unknown_client', null),
      },
      {
        what: 'a deactivated application with its right secret in the body',
        extra: `&client_id=${deactivated.clientId}&client_secret=${deactivated.clientSecret}`,
        expect: viaPost('deactivated', deactivated.clientId),
      },
      {
        what: 'a confidential client id and no secret',
        extra: `&client_id=${web.clientId}`,
        expect: failed('method_mismatch', web.clientId, 'none'),
      },
      {
        what: 'an empty secret',
        extra: `&client_id=${web.clientId}&client_secret=`,
        expect: failed('method_mismatch', web.clientId, 'none'),
      },
      {
        // `client_secret[]` is another parameter's name, which the provider ignores.
        what: 'the secret as an array',
        extra: `&client_id=${web.clientId}&client_secret[]=${web.clientSecret}`,
        expect: failed('method_mismatch', web.clientId, 'none'),
      },
      {
        // No client registers client_secret_jwt or private_key_jwt (clientAuthMethods): an assertion
        // beside a client id is a method no client is registered for.
        what: 'a client assertion with alg none',
        extra: `&client_id=${web.clientId}&client_assertion=${base64('{"alg":"none"}')}.${base64(
          JSON.stringify({ iss: web.clientId, sub: web.clientId, aud: 'x', exp: 1 }),
        )}.&client_assertion_type=${encodeURIComponent('urn:ietf:params:oauth:client-assertion-type:jwt-bearer')}`,
        expect: failed('method_mismatch', web.clientId, 'client_assertion'),
      },
      // Parameters of client authentication the provider cannot take one value of.
      {
        what: 'Basic and client_secret at once',
        headers: { authorization: basicAuth(web.clientId, web.clientSecret) },
        extra: `&client_secret=${web.clientSecret}`,
        expect: invalidRequest(/only be provided using one mechanism/),
      },
      {
        what: 'another client id in the body than in Basic',
        headers: { authorization: basicAuth(web.clientId, web.clientSecret) },
        extra: `&client_id=${machine.clientId}`,
        expect: invalidRequest(/client_id mismatch/),
      },
      {
        what: 'the client id twice',
        extra: `&client_id=${web.clientId}&client_id=${web.clientId}&client_secret=${web.clientSecret}`,
        expect: invalidRequest(/'client_id' parameter must not be provided twice/),
      },
      {
        what: 'two client ids',
        extra: `&client_id=${UNKNOWN_ID}&client_id=${web.clientId}&client_secret=${web.clientSecret}`,
        expect: invalidRequest(/'client_id' parameter must not be provided twice/),
      },
      {
        what: 'the secret twice',
        extra: `&client_id=${web.clientId}&client_secret=${web.clientSecret}&client_secret=${web.clientSecret}`,
        expect: invalidRequest(/'client_secret' parameter must not be provided twice/),
      },
      {
        what: 'the client id as an array',
        extra: `&client_id[]=${web.clientId}&client_secret=${web.clientSecret}`,
        expect: invalidRequest(/no client authentication mechanism provided/),
      },
      {
        what: 'the client id as an object',
        extra: `&client_id[x]=${web.clientId}&client_secret=${web.clientSecret}`,
        expect: invalidRequest(/no client authentication mechanism provided/),
      },
      {
        what: 'an empty client id',
        extra: `&client_id=&client_secret=${web.clientSecret}`,
        expect: invalidRequest(/no client authentication mechanism provided/),
      },
      { what: 'no client at all', expect: invalidRequest(/no client authentication mechanism provided/) },
      {
        what: 'a client attestation, a method no client is registered for',
        headers: { 'oauth-client-attestation': 'not-a-jwt' },
        extra: `&client_id=${web.clientId}`,
        expect: invalidRequest(/OAuth-Client-Attestation/),
      },
      {
        what: 'a client attestation beside Basic',
        headers: { ...right(), 'oauth-client-attestation-pop': 'x' },
        expect: invalidRequest(/only be provided using one mechanism/),
      },
      // Bodies the endpoints cannot read as a form.
      {
        what: 'JSON',
        headers: { 'content-type': 'application/json', ...right() },
        body: JSON.stringify({ grant_type: 'client_credentials', token: 'x' }),
        expect: invalidRequest(/only application\/x-www-form-urlencoded/),
      },
      {
        what: 'multipart',
        headers: { 'content-type': 'multipart/form-data; boundary=b', ...right() },
        body: '--b\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n--b--\r\n',
        expect: invalidRequest(/only application\/x-www-form-urlencoded/),
      },
      {
        what: 'text/plain holding a form',
        headers: { 'content-type': 'text/plain', ...right() },
        expect: invalidRequest(/only application\/x-www-form-urlencoded/),
      },
      {
        what: 'a form declared UTF-16',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-16', ...right() },
        expect: { status: 415, error: 'invalid_request', description: /charset other than UTF-8/ },
      },
      {
        what: 'a gzip form',
        headers: { 'content-encoding': 'gzip', ...right() },
        expect: { status: 415, error: 'invalid_request', description: /Content encodings/ },
      },
      {
        what: 'a form of 60 KB',
        headers: right(),
        extra: `&padding=${'p'.repeat(60_000)}`,
        expect: { status: 413, error: 'invalid_request' },
      },
      // What the token endpoint reads past authentication, the client authenticated.
      ...[
        'password',
        'implicit',
        'urn:ietf:params:oauth:grant-type:device_code',
        'urn:ietf:params:oauth:grant-type:token-exchange',
        'urn:ietf:params:oauth:grant-type:jwt-bearer',
        'urn:openid:params:grant-type:ciba',
      ].map((grantType): Probe => ({
        what: `grant_type ${grantType}`,
        only: ['token'],
        headers: right(),
        body: `grant_type=${encodeURIComponent(grantType)}&username=a&password=b&device_code=x`,
        expect: { status: 400, error: 'unsupported_grant_type' },
      })),
      ...(
        [
          ['no grant_type', 'scope=openid', /missing required parameter 'grant_type'/],
          [
            'grant_type as an array',
            'grant_type[]=client_credentials',
            /missing required parameter 'grant_type'/,
          ],
          [
            'grant_type twice',
            'grant_type=client_credentials&grant_type=client_credentials',
            /provided twice/,
          ],
          ['two grant types', 'grant_type=client_credentials&grant_type=refresh_token', /provided twice/],
        ] as const
      ).map(([what, body, description]): Probe => ({
        what,
        only: ['token'],
        headers: right(),
        body,
        expect: invalidRequest(description),
      })),
      {
        // RFC 6749 §5.2 names this `unauthorized_client`; the provider answers `invalid_request`
        // (lib/actions/token.js), harmlessly: the grant is refused either way.
        what: 'client_credentials by a client without that grant',
        only: ['token'],
        headers: { authorization: basicAuth(web.clientId, web.clientSecret) },
        body: 'grant_type=client_credentials',
        expect: invalidRequest(/requested grant type is not allowed for this client/),
      },
      {
        what: 'client_credentials by a public client',
        only: ['token'],
        body: `grant_type=client_credentials&client_id=${publicClient}`,
        expect: invalidRequest(/requested grant type is not allowed for this client/),
      },
      {
        what: 'a form with no type',
        only: ['token'],
        headers: { 'content-type': '', ...right() },
        body: 'grant_type=client_credentials',
        expect: invalidRequest(/missing required parameter 'grant_type'/),
      },
      // What introspection and revocation read past authentication.
      ...(
        [
          ['no token', 'token_type_hint=access_token', /missing required parameter 'token'/],
          ['the token as an array', 'token[]=x', /missing required parameter 'token'/],
          ['the token twice', 'token=x&token=y', /'token' parameter must not be provided twice/],
        ] as const
      ).map(([what, body, description]): Probe => ({
        what,
        only: ['introspection', 'revocation'],
        headers: right(),
        body,
        expect: invalidRequest(description),
      })),
    ];
  }

  it('answers each with its OAuth error, never a 5xx, counting and logging only failed authentications, storing nothing', async () => {
    const storedBefore = await stored();
    const auditBefore = harness.auditRecords.length;
    for (const probe of probes()) {
      for (const endpoint of probe.only ?? CLIENT_AUTH_ENDPOINT_NAMES) {
        const label = `${endpoint}: ${probe.what}`;
        const countsBefore = await counts();
        const linesBefore = failureLines().length;
        const answer = await send(endpoint, probe);
        assert.ok(answer.status < 500, `${label}: ${answer.status} ${answer.body.slice(0, 200)}`);
        assert.doesNotMatch(answer.body, STACK_OR_DRIVER_TEXT, `${label}: no stack trace or driver text`);
        assert.match(String(answer.headers['content-type']), /^application\/json/, label);
        const body = JSON.parse(answer.body) as { error?: string; error_description?: string };
        const lines = failureLines().slice(linesBefore);
        const countsAfter = await counts();
        const { expect } = probe;
        assert.equal(answer.status, expect.status, `${label}: ${answer.body.slice(0, 200)}`);
        if (expect.status === 401) {
          assert.deepEqual(body, { error: 'invalid_client', error_description: CLIENT_AUTH_FAILED }, label);
          const challenge = answer.headers['www-authenticate'];
          if (probe.headers?.authorization === undefined) assert.equal(challenge, undefined, label);
          else
            assert.equal(
              challenge,
              `Basic realm="${server.issuer}", error="invalid_client", error_description="${CLIENT_AUTH_FAILED}"`,
              label,
            );
          assert.equal(lines.length, 1, `${label}: one line`);
          const [line] = lines;
          assert.equal(line!.level, 30, `${label}: at info`);
          assert.equal(line!.endpoint, endpoint, label);
          assert.equal(line!.reason, expect.reason, label);
          assert.equal(line!.clientId, expect.client, label);
          assert.equal(line!.authMethod, expect.authMethod, label);
          const key = `${endpoint} ${expect.client ?? 'unknown'}`;
          assert.equal(countsAfter.get(key), (countsBefore.get(key) ?? 0) + 1, `${label}: counted once`);
          assert.equal(
            [...countsAfter.values()].reduce((sum, value) => sum + value, 0),
            [...countsBefore.values()].reduce((sum, value) => sum + value, 0) + 1,
            `${label}: under its label only`,
          );
        } else {
          assert.equal(body.error, expect.error, label);
          if (expect.description) assert.match(body.error_description ?? '', expect.description, label);
          assert.equal(answer.headers['www-authenticate'], undefined, label);
          assert.deepEqual(lines, [], `${label}: no failed authentication logged`);
          assert.deepEqual(countsAfter, countsBefore, `${label}: nothing counted`);
        }
      }
    }
    assert.equal(
      await stored(),
      storedBefore,
      'nothing stored: no token, code, login failure, logout job or secret changed',
    );
    // The events these requests publish: the introspection of a token no one was issued, by a
    // client that authenticated (section H's token_introspected), and the use of a deactivated
    // application, refused by the app-usability layer at the request's stage (client-policy.ts).
    for (const record of harness.auditRecords.slice(auditBefore)) {
      const expected =
        (record.kind === 'token_introspected' && !record.active) ||
        (record.kind === 'policy_denied' &&
          record.reason === 'app_unusable' &&
          record.client_id === deactivated.clientId);
      assert.ok(expected, JSON.stringify(record));
    }
  });

  it('takes, as the provider does today, what it ignores or reads as RFC 6749 allows', async () => {
    const right = basicAuth(machine.clientId, machine.clientSecret);
    const issued: Array<[string, Record<string, string>, string]> = [
      // The scheme is case-insensitive (RFC 9110 §11.1).
      ['lower-case basic', { authorization: right.replace('Basic', 'basic') }, ''],
      ['upper-case BASIC', { authorization: right.replace('Basic', 'BASIC') }, ''],
      // RFC 6749 §2.3.1: the id and the secret are form-encoded first; a %-escape of any character reads as it.
      [
        'the id with an escaped first letter',
        {
          authorization: `Basic ${base64(
            `%${machine.clientId.charCodeAt(0).toString(16)}${machine.clientId.slice(1)}:${encodeURIComponent(machine.clientSecret)}`,
          )}`,
        },
        '',
      ],
      // Not a parameter of any method enabled (clientAuthMethods has no *_jwt): ignored as any unknown
      // parameter (RFC 6749 §3.2), Basic authenticates.
      [
        'a client assertion beside Basic',
        { authorization: right },
        `&client_assertion=a.b.c&client_assertion_type=${encodeURIComponent('urn:ietf:params:oauth:client-assertion-type:jwt-bearer')}`,
      ],
      // DPoP and resource indicators are off: their header and parameter are ignored.
      ['a DPoP header', { authorization: right, dpop: 'not-a-proof' }, ''],
      ['a resource', { authorization: right }, '&resource=https%3A%2F%2Fapi.example.org%2F'],
      // The provider counts a credential only when it is not empty: an empty header is none.
      [
        'an empty Authorization header beside client_secret_post',
        { authorization: '' },
        `&client_id=${machine.clientId}&client_secret=${machine.clientSecret}`,
      ],
      // A charset parameter with no value: Koa's reading takes no charset, the provider reads UTF-8.
      [
        'a charset with no value',
        { 'content-type': 'application/x-www-form-urlencoded; charset', authorization: right },
        '',
      ],
    ];
    for (const [what, headers, extra] of issued) {
      const answer = await rawRequest(`${server.origin}${CLIENT_AUTH_ENDPOINTS.token}`, {
        method: 'POST',
        headers: { ...FORM, ...headers },
        body: `grant_type=client_credentials${extra}`,
      });
      assert.equal(answer.status, 200, `${what}: ${answer.body.slice(0, 200)}`);
      // Not scanned with the refusals' answers: this one holds the token it issued, which no log line may.
      harness.registerSecret((JSON.parse(answer.body) as { access_token: string }).access_token, what);
    }
    // A public client authenticates with its id alone (RFC 6749 §2.1): it may introspect and revoke
    // its own tokens; another client's are inactive to it (introspection-policy.ts).
    for (const endpoint of ['introspection', 'revocation'] as const) {
      const answer = await send(endpoint, { extra: `&client_id=${publicClient}` });
      assert.equal(answer.status, 200, endpoint);
    }
  });

  it('answers 404 at the device authorization, pushed authorization and CIBA endpoints, which are off', async () => {
    for (const path of ['/o/device/auth', '/o/request', '/o/backchannel']) {
      const answer = await rawRequest(`${server.origin}${path}`, {
        method: 'POST',
        headers: { ...FORM, authorization: basicAuth(machine.clientId, machine.clientSecret) },
        body: `client_id=${publicClient}&scope=openid`,
      });
      answers.push(answer);
      assert.equal(answer.status, 404, path);
    }
  });

  it('writes no secret into an answer or a log line, and logs no warning or error', async () => {
    for (const [index, answer] of answers.entries())
      harness.scanText(`answer ${index + 1}`, `${JSON.stringify(answer.headers)}\n${answer.body}`);
    await harness.assertNoLeaks();
    const loud = harness.logLines.filter((line) => (JSON.parse(line) as { level: number }).level >= 40);
    assert.deepEqual(loud, [], 'no warning or error logged');
  });
});
