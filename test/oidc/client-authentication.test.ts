import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { testDatabaseKind } from '../helpers/database.ts';
import { createLeakHarness, type LeakHarness } from '../helpers/leak-harness.ts';
import { basicAuth, seedApp, startServer, type TestServer } from '../helpers/server.ts';

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/**
 * One request written byte for byte on its own connection, with header lines as given (two
 * Authorization headers, a control character), which Node's client would not send.
 */
function sendRaw(port: number, path: string, headerLines: readonly string[], body: string): Promise<Answer> {
  const head = [
    `POST ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Connection: close',
    'Content-Type: application/x-www-form-urlencoded',
    ...headerLines,
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    '',
  ].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const done = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no answer to POST ${path}`));
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: text.slice(end + 4) });
    };
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', done);
    // A server that answers before reading all of a request (431) may reset the connection.
    socket.on('error', () => (chunks.length > 0 ? done() : reject(new Error(`POST ${path} failed`))));
    // Not ended: a client that half-closes its side is one gone, whose request is not answered.
    socket.write(Buffer.from(head + body, 'latin1'));
  });
}

const ENDPOINTS = ['/o/token/', '/o/introspect/', '/o/revoke_token/'] as const;

/** A form each endpoint reads past client authentication: a grant or a token no one was issued. */
function formFor(path: (typeof ENDPOINTS)[number]): string {
  return path === '/o/token/' ? 'grant_type=refresh_token&refresh_token=never-issued' : 'token=never-issued';
}

/** What each endpoint answers an authenticated client about what `formFor` sends. */
const AUTHENTICATED: Record<(typeof ENDPOINTS)[number], number> = {
  '/o/token/': 400,
  '/o/introspect/': 200,
  '/o/revoke_token/': 200,
};

/**
 * Hostile client authentication at the endpoints that authenticate the client (RFC 6749 §2.3, §5.2):
 * what cannot be read is `invalid_request` (400), a client not authenticated over Basic is
 * `invalid_client` (401) with `WWW-Authenticate: Basic`, never a 500, and no answer or log line holds
 * a secret the client sent.
 */
describe(`client authentication under hostile requests (${testDatabaseKind})`, () => {
  let server: TestServer;
  let harness: LeakHarness;
  let port: number;
  let client: { clientId: string; clientSecret: string };
  let other: { clientId: string; clientSecret: string };

  before(async () => {
    harness = createLeakHarness();
    server = await startServer({}, { harness });
    port = Number(new URL(server.origin).port);
    const seeded = await seedApp(server);
    const second = await seedApp(server);
    client = { clientId: seeded.clientId, clientSecret: seeded.clientSecret! };
    other = { clientId: second.clientId, clientSecret: second.clientSecret! };
    harness.registerSecret(client.clientSecret, 'client secret');
    harness.registerSecret(other.clientSecret, "the other client's secret");
  });
  after(async () => server?.close());

  async function post(path: (typeof ENDPOINTS)[number], headerLines: string[], extra = ''): Promise<Answer> {
    const answer = await sendRaw(port, path, headerLines, `${formFor(path)}${extra}`);
    harness.scanText(`${path} ${headerLines.join(' ').slice(0, 80)}`, JSON.stringify([...answer.headers]));
    harness.scanText(`${path} ${headerLines.join(' ').slice(0, 80)}`, answer.body);
    assert.ok(answer.status < 500, `${path} ${headerLines.join(' ').slice(0, 80)}: ${answer.status}`);
    return answer;
  }

  const base64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

  it('answers an Authorization header that cannot be read with 400 invalid_request', async () => {
    const secret = () => client.clientSecret;
    const malformed: Array<[string, () => string]> = [
      ['Basic with no value', () => 'Basic'],
      ['not base64', () => 'Basic !!!!'],
      ['base64 without a colon', () => `Basic ${base64(`${client.clientId}${secret()}`)}`],
      ['an empty client id', () => `Basic ${base64(`:${secret()}`)}`],
      ['an empty secret', () => `Basic ${base64(`${client.clientId}:`)}`],
      ['%zz in the id', () => `Basic ${base64(`%zz:${secret()}`)}`],
      // At the end: before the secret, a % and its first two characters could read as an escape.
      ['a lone % in the secret', () => `Basic ${base64(`${client.clientId}:${secret()}%`)}`],
      ['%00 in the id', () => `Basic ${base64(`a%00b:${secret()}`)}`],
      ['unicode in the id', () => basicAuth('pilöt😀', secret())],
      ['two spaces after Basic', () => basicAuth(client.clientId, secret()).replace('Basic ', 'Basic  ')],
      ['a Bearer token', () => `Bearer ${secret()}`],
    ];
    for (const path of ENDPOINTS) {
      for (const [what, header] of malformed) {
        const answer = await post(path, [`Authorization: ${header()}`]);
        assert.equal(answer.status, 400, `${path} ${what}`);
        assert.equal(JSON.parse(answer.body).error, 'invalid_request', `${path} ${what}`);
      }
    }
  });

  it('answers a client that fails authentication over Basic with 401 invalid_client and WWW-Authenticate: Basic', async () => {
    const failing: Array<[string, () => string]> = [
      ['a wrong secret', () => basicAuth(client.clientId, 'not-the-secret')],
      ["another client's secret", () => basicAuth(client.clientId, other.clientSecret)],
      ['an unknown client', () => basicAuth('no-such-client', client.clientSecret)],
      ['a 6 KB secret', () => basicAuth(client.clientId, `${'S'.repeat(6000)}${client.clientSecret}`)],
      [
        'lowercase basic, a wrong secret',
        () => basicAuth(client.clientId, 'not-the-secret').replace('Basic', 'basic'),
      ],
    ];
    for (const path of ENDPOINTS) {
      for (const [what, header] of failing) {
        const answer = await post(path, [`Authorization: ${header()}`]);
        assert.equal(answer.status, 401, `${path} ${what}`);
        assert.deepEqual(
          JSON.parse(answer.body),
          { error: 'invalid_client', error_description: 'client authentication failed' },
          `${path} ${what}`,
        );
        const challenge = answer.headers.get('www-authenticate') ?? '';
        assert.match(challenge, /^Basic realm="[^"]+", error="invalid_client"/, `${path} ${what}`);
        assert.ok(challenge.includes(`realm="${server.issuer}"`), `${path} ${what}: realm is the issuer`);
      }
      // The scheme is case-insensitive (RFC 9110 §11.1): the right secret under `basic` authenticates.
      const lower = await post(path, [
        `Authorization: ${basicAuth(client.clientId, client.clientSecret).replace('Basic', 'basic')}`,
      ]);
      assert.equal(lower.status, AUTHENTICATED[path], `${path} lowercase basic`);
    }
  });

  it('refuses two ways of authenticating at once, and two Authorization headers, with 400 invalid_request', async () => {
    const good = basicAuth(client.clientId, client.clientSecret);
    const wrong = basicAuth(client.clientId, 'not-the-secret');
    for (const path of ENDPOINTS) {
      const both = await post(path, [`Authorization: ${good}`], `&client_secret=${client.clientSecret}`);
      assert.equal(both.status, 400, `${path} Basic and client_secret`);
      assert.equal(
        JSON.parse(both.body).error_description,
        'client authentication must only be provided using one mechanism',
      );

      // Node keeps the first of two headers: either order would authenticate by one credential of two.
      for (const [what, headers] of [
        ['the right one first', [good, wrong]],
        ['the wrong one first', [wrong, good]],
        ['the same one twice', [good, good]],
      ] as const) {
        const answer = await post(
          path,
          headers.map((header) => `Authorization: ${header}`),
        );
        assert.equal(answer.status, 400, `${path} two Authorization headers, ${what}`);
        assert.deepEqual(
          JSON.parse(answer.body),
          {
            error: 'invalid_request',
            error_description:
              'The Authorization header is given more than once: send it once, with one credential.',
          },
          `${path} two Authorization headers, ${what}`,
        );
      }

      const mismatch = await post(path, [`Authorization: ${good}`], `&client_id=${other.clientId}`);
      assert.equal(mismatch.status, 400, `${path} client_id of another client in the body`);
      assert.equal(JSON.parse(mismatch.body).error, 'invalid_request');
      const repeated = await post(
        path,
        [],
        `&client_id=${client.clientId}&client_id=${client.clientId}&client_secret=${client.clientSecret}`,
      );
      assert.equal(repeated.status, 400, `${path} client_id twice`);
      assert.equal(JSON.parse(repeated.body).error, 'invalid_request');
      // The same client named in the body as in the header is no second way.
      const same = await post(path, [`Authorization: ${good}`], `&client_id=${client.clientId}`);
      assert.equal(same.status, AUTHENTICATED[path], `${path} the same client_id in the body`);
    }
  });

  it('refuses two Authorization headers at userinfo with 400 invalid_request and a Bearer challenge', async () => {
    const userinfo = (headers: string[]) => sendRaw(port, '/o/userinfo/', headers, 'ignored=1');
    // One token no one was issued is read, and refused as such.
    const one = await userinfo(['Authorization: Bearer never-issued']);
    assert.equal(one.status, 401);
    assert.equal(JSON.parse(one.body).error, 'invalid_token');
    for (const headers of [
      ['Authorization: Bearer never-issued', 'Authorization: Bearer another-never-issued'],
      ['Authorization: Bearer never-issued', 'authorization: Bearer never-issued'],
    ]) {
      const answer = await userinfo(headers);
      assert.equal(answer.status, 400, headers.join(' '));
      assert.equal(JSON.parse(answer.body).error, 'invalid_request', headers.join(' '));
      assert.equal(
        answer.headers.get('www-authenticate'),
        `Bearer realm="${server.issuer}", error="invalid_request", error_description="The Authorization header is given more than once: send it once, with one credential."`,
      );
    }
  });

  it('answers a client assertion, a method no client is registered for, with 401 invalid_client', async () => {
    const assertion = (payload: object) =>
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.`;
    const type = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
    for (const path of ENDPOINTS) {
      for (const [what, value] of [
        ['not a JWT', 'not-a-jwt'],
        ['alg none', assertion({ iss: client.clientId, sub: client.clientId, aud: server.issuer })],
        ['expired, for another audience', assertion({ sub: client.clientId, aud: 'x', exp: 1 })],
        ['50 KB', 'a'.repeat(50_000)],
      ] as const) {
        const answer = await post(
          path,
          [],
          `&client_id=${client.clientId}&client_assertion=${value}&client_assertion_type=${encodeURIComponent(type)}`,
        );
        assert.equal(answer.status, 401, `${path} ${what}`);
        assert.equal(JSON.parse(answer.body).error, 'invalid_client', `${path} ${what}`);
      }
    }
  });

  it("leaves Node's answers to headers it cannot take: 431 past its header limit, 400 for a control character", async () => {
    for (const path of ENDPOINTS) {
      // Read whole before the answer (a longer one, left partly unread, may be cut by a reset).
      const long = await post(path, [`Authorization: ${basicAuth(client.clientId, 'S'.repeat(20_000))}`]);
      assert.equal(long.status, 431, `${path} a 27 KB Authorization header`);
      for (const control of ['\u0000', '\u0001', '\u007f']) {
        const answer = await post(path, [`Authorization: Basic ab${control}cd`]);
        assert.equal(answer.status, 400, `${path} U+${control.charCodeAt(0).toString(16).padStart(4, '0')}`);
      }
    }
  });

  it('writes no secret the clients sent into a log line or an answer', async () => {
    await harness.assertNoLeaks();
    assert.equal(
      harness.logLines.filter((line) => /"level":(50|60)/.test(line)).length,
      0,
      'no error was logged',
    );
  });
});
